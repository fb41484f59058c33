package remediation_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sopilot/sopilot/internal/remediation"
)

func TestOwned(t *testing.T) {
	tests := []struct {
		prefix, reason string
		want           bool
	}{
		{"[sopilot]", "[sopilot] xid 79 (drain) on gpu3 incident=01J", true},
		{"[sopilot]", "[sopilot] manual: fan (by ann)", true},
		{"[sopilot]", "[sopilot]", true},
		{"[sopilot]", "[sopilot]x", false},
		{"[sopilot]", "[sopilot]\tx", false},
		{"[sopilot]", " [sopilot] x", false},
		{"[sopilot]", "[SOPILOT] x", false},
		{"[sopilot]", "maintenance [sopilot] x", false},
		{"[sopilot]", "", false},
		{"", "anything", false},
		{"", "", false},
		{"[acme]", "[sopilot] x", false},
		{"[acme]", "[acme] x", true},
	}
	for _, tt := range tests {
		if got := remediation.Owned(tt.prefix, tt.reason); got != tt.want {
			t.Errorf("Owned(%q, %q) = %v, want %v", tt.prefix, tt.reason, got, tt.want)
		}
	}
}

func TestFormatReason(t *testing.T) {
	long := strings.Repeat("ecc ", 60)
	tests := []struct {
		name, evidence, incident, want string
	}{
		{"plain", "xid 79 (drain) on gpu3", "01JDXQ7Z3K", "[sopilot] xid 79 (drain) on gpu3 incident=01JDXQ7Z3K"},
		{"no incident", "xid 79 (drain) on gpu3", "", "[sopilot] xid 79 (drain) on gpu3"},
		{"no evidence", "", "I1", "[sopilot] incident=I1"},
		{"newlines and tabs", "line1\nline2\r\n\tline3", "I\n1", "[sopilot] line1 line2 line3 incident=I_1"},
		{"control characters", "a\x00b\x1bc\u0085d\u2028e", " I 1 ", "[sopilot] a b c d e incident=I_1"},
		{"invalid utf-8", "a\xffb", "", "[sopilot] a b"},
		{"special characters kept", `xid=79 gpu=3 "q" it's a;b|c $HOME`, "I", `[sopilot] xid=79 gpu=3 "q" it's a;b|c $HOME incident=I`},
		{"long evidence is cut, incident kept", long, "01JDXQ7Z3K9V5M8N2P4R6T0W1Y",
			"[sopilot] " + strings.TrimSpace(long[:120-len("[sopilot] ")-len("... incident=01JDXQ7Z3K9V5M8N2P4R6T0W1Y")]) + "... incident=01JDXQ7Z3K9V5M8N2P4R6T0W1Y"},
		{"multibyte cut on a rune boundary", strings.Repeat("é", 100), "", "[sopilot] " + strings.Repeat("é", 53) + "..."},
		{"long incident id is capped", "x", strings.Repeat("I", 100), "[sopilot] x incident=" + strings.Repeat("I", 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := remediation.FormatReason("[sopilot]", tt.evidence, tt.incident)
			if got != tt.want {
				t.Errorf("FormatReason = %q\nwant          %q", got, tt.want)
			}
			checkReason(t, "[sopilot]", got)
		})
	}
}

func TestFormatManualReason(t *testing.T) {
	tests := []struct{ reason, who, want string }{
		{"fan failure", "alice", "[sopilot] manual: fan failure (by alice)"},
		{"fan\nfailure", "al ice\n", "[sopilot] manual: fan failure (by al ice)"},
		{strings.Repeat("x", 200), "bob", "[sopilot] manual: " + strings.Repeat("x", 120-len("[sopilot] manual: ")-len("... (by bob)")) + "... (by bob)"},
		{"r", strings.Repeat("w", 50), "[sopilot] manual: r (by " + strings.Repeat("w", 32) + ")"},
	}
	for _, tt := range tests {
		got := remediation.FormatManualReason("[sopilot]", tt.reason, tt.who)
		if got != tt.want {
			t.Errorf("FormatManualReason(%q, %q) = %q\nwant %q", tt.reason, tt.who, got, tt.want)
		}
		checkReason(t, "[sopilot]", got)
	}
}

// checkReason asserts what every reason the engine writes must be: ours,
// one printable line, valid UTF-8, within MaxReasonLen.
func checkReason(t *testing.T, prefix, r string) {
	t.Helper()
	if len(r) > remediation.MaxReasonLen {
		t.Errorf("reason %q is %d bytes, over %d", r, len(r), remediation.MaxReasonLen)
	}
	if !utf8.ValidString(r) {
		t.Errorf("reason %q is not valid UTF-8", r)
	}
	if !remediation.Owned(prefix, r) {
		t.Errorf("reason %q is not owned by %q", r, prefix)
	}
	for _, c := range r {
		if c != ' ' && (unicode.IsSpace(c) || !unicode.IsPrint(c)) {
			t.Errorf("reason %q holds %U", r, c)
		}
	}
	if strings.Contains(r, "  ") || strings.HasSuffix(r, " ") {
		t.Errorf("reason %q has runs of spaces or a trailing space", r)
	}
}

func TestHoldsDrain(t *testing.T) {
	tests := []struct {
		action string
		want   bool
	}{
		{"drained", true},
		{"drained (running job allowed to finish)", true},
		{"dry-run: would drain", true},
		{"verification failed: busbw 200.0 GB/s; stays drained, retry after 10m0s", true},
		{"verification could not run: timeout; stays drained, retry after 10m0s", true},
		{"drained; resumed after verification: busbw 480.0 GB/s", false},
		{"resumed after verification: busbw 480.0 GB/s", false},
		{"breaker open: would drain (limit of 1 of 2 nodes drained reached)", false},
		{"skipped: drained by someone else (reason \"fan\")", false},
		{"drain failed: slurm unreachable", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := remediation.HoldsDrain(tt.action); got != tt.want {
			t.Errorf("HoldsDrain(%q) = %v, want %v", tt.action, got, tt.want)
		}
	}
}
