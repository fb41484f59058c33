package remediation

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sopilot/sopilot/internal/health"
)

// DefaultPrefix starts every Slurm reason the engine writes.
const DefaultPrefix = "[sopilot]"

// MaxReasonLen is the longest reason, in bytes, the engine writes to Slurm.
// Slurm itself stores reasons of any length (and keeps newlines, which break
// every line-oriented reader of sinfo and scontrol output), so the cap and
// the one-line rule are ours.
const MaxReasonLen = 120

// maxPrefixLen, maxIncidentLen and maxWhoLen bound the parts of a reason
// that are not truncated with "...", so that the evidence always has room.
const (
	maxPrefixLen   = 32
	maxIncidentLen = 40
	maxWhoLen      = 32
)

const ellipsis = "..."

// Owned reports whether a Slurm reason was written by the engine that uses
// prefix: the reason starts with prefix, followed by a space or nothing. An
// empty prefix owns nothing.
func Owned(prefix, reason string) bool {
	if prefix == "" || !strings.HasPrefix(reason, prefix) {
		return false
	}
	rest := reason[len(prefix):]
	return rest == "" || rest[0] == ' '
}

// manualMarker follows the prefix in the reason of an operator's drain.
const manualMarker = " manual:"

// isManual reports whether an owned reason records an operator's drain,
// which only an operator's Undrain resumes.
func isManual(prefix, reason string) bool {
	return Owned(prefix, reason) && strings.HasPrefix(reason[len(prefix):], manualMarker)
}

// FormatReason builds the reason of an automatic drain:
// "<prefix> <evidence> incident=<id>". Every part is put on one line
// (control characters become spaces, runs of white space one space), the
// incident id loses its spaces, and the evidence is cut with "..." so that
// the whole fits in MaxReasonLen bytes. An empty evidence or incident id is
// left out.
func FormatReason(prefix, evidence, incidentID string) string {
	tail := ""
	if id := token(incidentID, maxIncidentLen); id != "" {
		tail = " incident=" + id
	}
	return compose(clean(prefix, maxPrefixLen), clean(evidence, MaxReasonLen), tail)
}

// FormatManualReason builds the reason of an operator's drain:
// "<prefix> manual: <reason> (by <who>)", on one line and cut to fit in
// MaxReasonLen bytes like FormatReason.
func FormatManualReason(prefix, reason, who string) string {
	tail := " (by " + clean(who, maxWhoLen) + ")"
	return compose(clean(prefix, maxPrefixLen)+manualMarker, clean(reason, MaxReasonLen), tail)
}

// HoldsDrain reports whether an incident's recorded action (a Decision's
// Action) says the engine drained the node for it and has not resumed it:
// after a restart, how the controller finds which incident a drain of its
// own belongs to.
func HoldsDrain(action string) bool {
	if strings.Contains(action, "resumed") {
		return false
	}
	for _, p := range []string{"drained", "dry-run: would drain", "verification failed", "verification could not run", "handed off", "dry-run: would hand off"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// compose joins head, body and tail with body cut to fit MaxReasonLen.
func compose(head, body, tail string) string {
	if body == "" {
		return cut(head+tail, MaxReasonLen)
	}
	room := MaxReasonLen - len(head) - 1 - len(tail)
	if len(body) > room {
		if room <= len(ellipsis) {
			return cut(head+tail, MaxReasonLen)
		}
		body = strings.TrimRightFunc(cut(body, room-len(ellipsis)), unicode.IsSpace) + ellipsis
	}
	return head + " " + body + tail
}

// clean puts s on one line: invalid UTF-8 and characters that are not
// printable become spaces, runs of white space become one space, and the
// ends are trimmed. The result is cut to max bytes.
func clean(s string, max int) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if (r == utf8.RuneError && n == 1) || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return strings.TrimRightFunc(cut(b.String(), max), unicode.IsSpace)
}

// token is clean with the inner spaces made underscores, for a value that
// must stay one word (the incident id).
func token(s string, max int) string {
	return strings.ReplaceAll(clean(s, max), " ", "_")
}

// cut returns the longest prefix of s that has at most max bytes and does
// not split a UTF-8 sequence.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// evidence summarizes why a result asks for a drain: the reason of the worst
// finding that recommends a drain, with the count of the others.
func evidence(r health.Result) string {
	var first string
	more := 0
	for _, f := range r.Findings {
		if f.Action < health.ActionDrainAfterJob {
			continue
		}
		if first == "" {
			first = f.Reason
			if first == "" {
				first = f.Rule
			}
			continue
		}
		more++
	}
	if first == "" {
		first = strings.ToLower(r.Verdict.String()) + " " + r.Action.String()
	}
	if more > 0 {
		first += fmt.Sprintf(" (+%d more)", more)
	}
	return first
}
