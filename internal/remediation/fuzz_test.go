package remediation_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sopilot/sopilot/internal/remediation"
)

func FuzzFormatReason(f *testing.F) {
	f.Add("xid 79 (drain) on gpu3", "01JDXQ7Z3K9V5M8N2P4R6T0W1Y", "fan failure", "alice")
	f.Add("a\nb\tc\x00", "I 1\n", "x\xff", "")
	f.Add(strings.Repeat("é", 200), strings.Repeat("I", 100), strings.Repeat("\u2028", 50), strings.Repeat("w", 40))
	f.Fuzz(func(t *testing.T, evidence, incident, reason, who string) {
		for _, prefix := range []string{"[sopilot]", "[x]"} {
			auto := remediation.FormatReason(prefix, evidence, incident)
			checkReason(t, prefix, auto)
			// The incident id survives whatever the evidence is, at the
			// end, for people to read; it is left out only when it had
			// nothing printable.
			bare := remediation.FormatReason(prefix, "", incident)
			i := strings.LastIndex(bare, " incident=")
			if i >= 0 && !strings.HasSuffix(auto, bare[i:]) {
				t.Errorf("reason %q lost the incident of %q", auto, bare)
			}
			if i < 0 && printable(incident) {
				t.Errorf("incident %q lost", incident)
			}
			handoff := remediation.FormatHandoffReason(evidence, incident)
			checkReason(t, remediation.HandoffReasonPrefix, handoff)
			if !remediation.IsHandoff(handoff) || remediation.Owned(prefix, handoff) {
				t.Errorf("hand-off reason %q: IsHandoff false or owned by %q", handoff, prefix)
			}
			if i >= 0 && !strings.HasSuffix(handoff, bare[i:]) {
				t.Errorf("hand-off reason %q lost the incident of %q", handoff, bare)
			}
			manual := remediation.FormatManualReason(prefix, reason, who)
			checkReason(t, prefix, manual)
			if !strings.HasPrefix(manual, prefix+" manual:") {
				t.Errorf("manual reason %q", manual)
			}
		}
	})
}

func FuzzOwned(f *testing.F) {
	f.Add("[sopilot]", "[sopilot] xid 79")
	f.Add("[sopilot]", "[sopilot]x")
	f.Add("", "")
	f.Add("[a]", " [a] b")
	f.Fuzz(func(t *testing.T, prefix, reason string) {
		got := remediation.Owned(prefix, reason)
		if prefix == "" && got {
			t.Fatalf("empty prefix owns %q", reason)
		}
		if got && !strings.HasPrefix(reason, prefix) {
			t.Fatalf("Owned(%q, %q) without the prefix", prefix, reason)
		}
		if prefix != "" && !remediation.Owned(prefix, prefix+" "+reason) {
			t.Fatalf("Owned(%q, prefix+space+%q) = false", prefix, reason)
		}
		if prefix != "" && prefix[0] != ' ' && remediation.Owned(prefix, " "+prefix+" "+reason) {
			t.Fatalf("owned with a leading space: %q", reason)
		}
	})
}

// printable reports whether s holds a valid, printable, non-space rune.
func printable(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if !(r == utf8.RuneError && n == 1) && unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return true
		}
	}
	return false
}
