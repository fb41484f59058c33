package scheduler

import (
	"fmt"
	"unicode/utf8"
)

// MaxNodeReasonLen is the longest drain reason, in bytes, that CheckNodeReason
// accepts. Slurm itself has no limit short of its message size; reasons are
// shown in one line of sinfo -R and scontrol show node.
const MaxNodeReasonLen = 256

// maxNodeNameLen is the longest node name CheckNodeName accepts (a DNS
// host name).
const maxNodeNameLen = 253

// CheckNodeName refuses a node name that is not one plain Slurm host name:
// 1 to 253 characters from [A-Za-z0-9._-], starting with a letter or digit.
// A hostlist expression ("worker-[0-1]", "a,b") is refused, so that one
// Drain can never reach more than the node it names. The error wraps
// ErrRejected and names the field.
func CheckNodeName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: node name is empty", ErrRejected)
	}
	if len(name) > maxNodeNameLen {
		return fmt.Errorf("%w: node name %q...: longer than %d bytes", ErrRejected, name[:32], maxNodeNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%w: node name %q: character %q at byte %d is not allowed (want one host name of [A-Za-z0-9._-], starting with a letter or digit)",
				ErrRejected, name, c, i)
		}
	}
	return nil
}

// CheckNodeReason refuses a drain reason that Slurm would store differently
// or that would break one-line displays: empty or blank, longer than
// MaxNodeReasonLen bytes, not valid UTF-8, with control characters (line
// breaks, tabs, NUL) or with leading or trailing spaces. Spaces inside,
// quotes, '=', '[' and ']' are fine: the reason reaches Slurm as one
// argument or one JSON string, and Slurm stores it byte for byte. The
// error wraps ErrRejected and names the field.
func CheckNodeReason(reason string) error {
	switch {
	case reason == "":
		return fmt.Errorf("%w: node reason is empty (Slurm requires a reason to drain a node)", ErrRejected)
	case len(reason) > MaxNodeReasonLen:
		return fmt.Errorf("%w: node reason is %d bytes, more than %d", ErrRejected, len(reason), MaxNodeReasonLen)
	case !utf8.ValidString(reason):
		return fmt.Errorf("%w: node reason is not valid UTF-8", ErrRejected)
	case reason[0] == ' ' || reason[len(reason)-1] == ' ':
		return fmt.Errorf("%w: node reason %q has leading or trailing spaces", ErrRejected, reason)
	}
	for i, r := range reason {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("%w: node reason %q: control character %U at byte %d", ErrRejected, reason, r, i)
		}
	}
	return nil
}
