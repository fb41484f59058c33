package preflight

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
)

// Bytes is a storage size. Binary units (KiB, GiB, TiB) are powers of 1024,
// decimal ones (KB, GB, TB) powers of 1000 — the seed mixed them up: its
// "7.28 TiB requested" was 7,284,264,534,016 bytes, which is 7.28 TB but
// 6.625 TiB.
type Bytes int64

var units = []struct {
	name string
	size int64
}{
	{"B", 1},
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
}

// ErrBadSize is returned (wrapped) by ParseSize.
var ErrBadSize = errors.New("bad size")

func unitBytes(unit string) (int64, error) {
	for _, u := range units {
		if u.name == unit {
			return u.size, nil
		}
	}
	for _, u := range units { // "gib", "TIB": case is not what users get wrong
		if strings.EqualFold(u.name, unit) {
			return u.size, nil
		}
	}
	return 0, fmt.Errorf("unknown unit %q (use B, KiB, MiB, GiB, TiB, PiB or KB, MB, GB, TB, PB)", unit)
}

// ParseSize parses "5TiB", "5 TiB", "5120GiB", "7.28TB" or a plain number
// of bytes.
func ParseSize(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.') })
	num, unit := s, "B"
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	}
	if num == "" {
		return 0, fmt.Errorf("%w %q: no number", ErrBadSize, s)
	}
	mult, err := unitBytes(unit)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrBadSize, s, err)
	}
	f, ok := new(big.Float).SetPrec(128).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%w %q: not a number", ErrBadSize, s)
	}
	return toBytes(f, mult)
}

func toBytes(f *big.Float, mult int64) (Bytes, error) {
	if f.Sign() < 0 {
		return 0, fmt.Errorf("%w: negative", ErrBadSize)
	}
	v := new(big.Float).SetPrec(128).Mul(f, new(big.Float).SetInt64(mult))
	if v.Cmp(new(big.Float).SetInt64(math.MaxInt64)) > 0 {
		return 0, fmt.Errorf("%w: too large", ErrBadSize)
	}
	n, _ := v.Int64()
	return Bytes(n), nil
}

// String renders the size in the largest binary unit that keeps it at or
// above 1, with up to three decimals, and the exact byte count:
// "6.625 TiB (7284264534016 bytes)".
func (b Bytes) String() string {
	return b.Human() + " (" + strconv.FormatInt(int64(b), 10) + " bytes)"
}

// Human renders the size in binary units only: "6.625 TiB", "128 GiB".
func (b Bytes) Human() string {
	names := []string{"PiB", "TiB", "GiB", "MiB", "KiB"}
	for i, n := range names {
		size := int64(1) << (10 * (5 - i))
		if int64(b) >= size {
			v := float64(b) / float64(size)
			return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64) + " " + n
		}
	}
	return strconv.FormatInt(int64(b), 10) + " B"
}
