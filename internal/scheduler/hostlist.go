package scheduler

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxHostlistNames bounds how many names ExpandHostlist produces; a longer
// expansion is an error, not a truncation.
const MaxHostlistNames = 100_000

// maxHostlistBytes bounds the total size of the names ExpandHostlist
// produces, so a long name times a large range cannot exhaust memory.
const maxHostlistBytes = 16 << 20

// maxRangeDigits bounds the digits of one range bound; 18 decimal digits
// always fit an int64.
const maxRangeDigits = 18

// ExpandHostlist expands a Slurm compact node list into node names, in order:
//
//	""                       → nil
//	"node1"                  → [node1]
//	"worker-[0-1]"           → [worker-0 worker-1]
//	"worker-[0,2-3],login-0" → [worker-0 worker-2 worker-3 login-0]
//	"gpu[01-03]"             → [gpu01 gpu02 gpu03]
//	"rack[1-2]-node[1-2]"    → [rack1-node1 rack1-node2 rack2-node1 rack2-node2]
//
// Names are separated by commas (or, as Slurm also accepts, white space)
// outside brackets; empty names between separators are skipped. A bracket
// holds comma-separated numbers and lo-hi ranges (lo <= hi); like Slurm, each
// number is printed at least as wide as the range's lo was written, so
// "[01-03]" keeps its zero and "[8-10]" gives 8 9 10. A name may have several
// bracket groups, expanded as a cartesian product with the first group
// varying slowest, and text after the last group ("node[1-2]-ib"). Brackets
// do not nest. More than MaxHostlistNames names, or more than 16 MiB of them,
// is an error.
func ExpandHostlist(s string) ([]string, error) {
	var names []string
	total, size := 0, 0
	for tok := range hostlistTokens(s) {
		if tok.err != nil {
			return nil, fmt.Errorf("scheduler: hostlist %q: %w", truncate(s, 80), tok.err)
		}
		parts, err := parseHostPattern(tok.s)
		if err != nil {
			return nil, fmt.Errorf("scheduler: hostlist %q: name %q: %w", truncate(s, 80), truncate(tok.s, 80), err)
		}
		// Count before expanding, so nothing huge is ever built.
		n, length := 1, 0
		for _, p := range parts {
			c := p.count()
			if c > MaxHostlistNames || n > MaxHostlistNames/c {
				n = MaxHostlistNames + 1
				break
			}
			n *= c
			length += p.maxWidth()
		}
		if n > MaxHostlistNames-total {
			return nil, fmt.Errorf("scheduler: hostlist %q: expands to more than %d names", truncate(s, 80), MaxHostlistNames)
		}
		total += n
		// length bounds each name's size from above.
		if length > 0 && n > (maxHostlistBytes-size)/length {
			return nil, fmt.Errorf("scheduler: hostlist %q: expands to more than %d bytes", truncate(s, 80), maxHostlistBytes)
		}
		size += n * length
		names = expandParts(names, parts, "")
	}
	return names, nil
}

type hostlistToken struct {
	s   string
	err error
}

func isHostlistSep(c byte) bool {
	return c == ',' || c == ' ' || c == '\t' || c == '\n'
}

// hostlistTokens yields the names of s split at separators outside
// brackets, or an error for unbalanced brackets.
func hostlistTokens(s string) func(yield func(hostlistToken) bool) {
	return func(yield func(hostlistToken) bool) {
		start, depth := 0, 0
		for i := 0; i <= len(s); i++ {
			if i < len(s) {
				switch c := s[i]; {
				case c == '[':
					if depth > 0 {
						yield(hostlistToken{err: fmt.Errorf("nested '[' at byte %d", i)})
						return
					}
					depth++
					continue
				case c == ']':
					if depth == 0 {
						yield(hostlistToken{err: fmt.Errorf("']' without '[' at byte %d", i)})
						return
					}
					depth--
					continue
				case depth > 0 || !isHostlistSep(c):
					continue
				}
			} else if depth > 0 {
				yield(hostlistToken{err: fmt.Errorf("'[' without ']'")})
				return
			}
			if i > start && !yield(hostlistToken{s: s[start:i]}) {
				return
			}
			start = i + 1
		}
	}
}

// hostPart is one piece of a name pattern: literal text, or a bracket
// group's numbers.
type hostPart struct {
	literal string
	ranges  []hostRange // nil for a literal
}

type hostRange struct {
	lo, hi int64
	width  int // digits of lo as written
}

func (p hostPart) count() int {
	if p.ranges == nil {
		return 1
	}
	n := 0
	for _, r := range p.ranges {
		c := r.hi - r.lo + 1
		if c > MaxHostlistNames || int64(n)+c > MaxHostlistNames {
			return MaxHostlistNames + 1
		}
		n += int(c)
	}
	return n
}

// maxWidth is the most bytes the part contributes to one name.
func (p hostPart) maxWidth() int {
	if p.ranges == nil {
		return len(p.literal)
	}
	w := 0
	for _, r := range p.ranges {
		w = max(w, r.width, len(strconv.FormatInt(r.hi, 10)))
	}
	return w
}

// parseHostPattern splits one name into literal and bracket parts. The
// brackets are known to be balanced and not nested.
func parseHostPattern(s string) ([]hostPart, error) {
	var parts []hostPart
	for s != "" {
		open := strings.IndexByte(s, '[')
		if open < 0 {
			parts = append(parts, hostPart{literal: s})
			break
		}
		if open > 0 {
			parts = append(parts, hostPart{literal: s[:open]})
		}
		end := strings.IndexByte(s, ']')
		ranges, err := parseRanges(s[open+1 : end])
		if err != nil {
			return nil, err
		}
		parts = append(parts, hostPart{ranges: ranges})
		s = s[end+1:]
	}
	return parts, nil
}

// parseRanges parses a bracket's contents: "0,2-3,07".
func parseRanges(s string) ([]hostRange, error) {
	if s == "" {
		return nil, fmt.Errorf("empty brackets")
	}
	var ranges []hostRange
	for item := range strings.SplitSeq(s, ",") {
		loS, hiS, isRange := strings.Cut(item, "-")
		lo, err := parseRangeBound(loS)
		if err != nil {
			return nil, fmt.Errorf("range %q: %w", truncate(item, 40), err)
		}
		hi := lo
		if isRange {
			if hi, err = parseRangeBound(hiS); err != nil {
				return nil, fmt.Errorf("range %q: %w", truncate(item, 40), err)
			}
			if hi < lo {
				return nil, fmt.Errorf("range %q: end is before start", truncate(item, 40))
			}
		}
		ranges = append(ranges, hostRange{lo: lo, hi: hi, width: len(loS)})
	}
	return ranges, nil
}

func parseRangeBound(s string) (int64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("want a number or lo-hi of decimal digits")
	}
	if len(s) > maxRangeDigits {
		return 0, fmt.Errorf("number longer than %d digits", maxRangeDigits)
	}
	return strconv.ParseInt(s, 10, 64)
}

// expandParts appends to names every name prefix+parts expands to, the
// first part varying slowest.
func expandParts(names []string, parts []hostPart, prefix string) []string {
	if len(parts) == 0 {
		return append(names, prefix)
	}
	p := parts[0]
	if p.ranges == nil {
		return expandParts(names, parts[1:], prefix+p.literal)
	}
	for _, r := range p.ranges {
		for n := r.lo; n <= r.hi; n++ {
			names = expandParts(names, parts[1:], prefix+padNumber(n, r.width))
		}
	}
	return names
}

// padNumber formats n in decimal with leading zeros to at least width
// digits, as Slurm's "%0*lu".
func padNumber(n int64, width int) string {
	s := strconv.FormatInt(n, 10)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
