package ib

import (
	"errors"
	"fmt"
	"math"
)

// errNotAvailable is what a counter file holds when the device cannot
// report the counter ("N/A (no PMA)" on some older drivers): the counter is
// omitted without a FieldError.
var errNotAvailable = errors.New("counter not available")

// isSpace reports whether c is ASCII white space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// trimSpace trims ASCII white space from both ends of b without copying.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// quote renders at most 64 bytes of untrusted file content for an error.
func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q…", b[:64])
	}
	return fmt.Sprintf("%q", b)
}

// parseState parses a state or phys_state file: "<id>: <name>\n" as the
// kernel prints it ("4: ACTIVE", "5: LinkUp", "7: Phy Test"). The name is
// returned as printed; the known names come back as constants, so parsing
// them does not allocate.
func parseState(b []byte) (id int, name string, err error) {
	s := trimSpace(b)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if id > (math.MaxInt32-9)/10 {
			return 0, "", fmt.Errorf("state id too large in %s", quote(b))
		}
		id = id*10 + int(s[i]-'0')
		i++
	}
	if i == 0 || i+1 >= len(s) || s[i] != ':' || s[i+1] != ' ' {
		return 0, "", fmt.Errorf("want \"<id>: <name>\", got %s", quote(b))
	}
	// s is trimmed and s[i+1] is a space, so the name is not empty.
	rest := trimSpace(s[i+2:])
	for _, c := range rest {
		if c < 0x20 || c >= 0x7f {
			return 0, "", fmt.Errorf("state name is not printable ASCII in %s", quote(b))
		}
	}
	return id, internState(rest), nil
}

// internState returns the constant for a known state name; the comparison
// string(b) == "..." does not allocate.
func internState(b []byte) string {
	switch string(b) {
	case "ACTIVE":
		return "ACTIVE"
	case "DOWN":
		return "DOWN"
	case "INIT":
		return "INIT"
	case "ARMED":
		return "ARMED"
	case "NOP":
		return "NOP"
	case "ACTIVE_DEFER":
		return "ACTIVE_DEFER"
	case "LinkUp":
		return "LinkUp"
	case "Polling":
		return "Polling"
	case "Disabled":
		return "Disabled"
	case "Sleep":
		return "Sleep"
	case "PortConfigurationTraining":
		return "PortConfigurationTraining"
	case "LinkErrorRecovery":
		return "LinkErrorRecovery"
	case "Phy Test":
		return "Phy Test"
	case "<unknown>":
		return "<unknown>"
	case "UNKNOWN":
		return "UNKNOWN"
	}
	return string(b)
}

// maxRateMbps bounds a parsed rate (1 Pb/s) so that arithmetic on it never
// overflows.
const maxRateMbps = 1_000_000_000

// parseRate parses a rate file, "<n>[.<frac>] Gb/sec[ (<width>X[ <speed>])]"
// ("400 Gb/sec (4X NDR)", "2.5 Gb/sec (1X SDR)", "10 Gb/sec (4X)" on older
// kernels), and returns the rate in Mb/s. Fraction digits beyond the third
// are dropped.
func parseRate(b []byte) (mbps int64, err error) {
	s := trimSpace(b)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		mbps = mbps*10 + int64(s[i]-'0')*1000
		if mbps > maxRateMbps {
			return 0, fmt.Errorf("rate too large in %s", quote(b))
		}
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("want \"<n> Gb/sec (<width>X <speed>)\", got %s", quote(b))
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		scale := int64(100)
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			mbps += int64(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return 0, fmt.Errorf("want digits after the decimal point in %s", quote(b))
		}
	}
	const unit = " Gb/sec"
	if len(s)-i < len(unit) || string(s[i:i+len(unit)]) != unit {
		return 0, fmt.Errorf("want \"<n> Gb/sec (<width>X <speed>)\", got %s", quote(b))
	}
	if tail := s[i+len(unit):]; len(tail) > 0 {
		if len(tail) < 3 || tail[0] != ' ' || tail[1] != '(' || tail[len(tail)-1] != ')' {
			return 0, fmt.Errorf("want \"(<width>X <speed>)\" after the rate, got %s", quote(b))
		}
	}
	return mbps, nil
}

// roundGbps rounds Mb/s to the nearest Gb/s, halves up: 2500 → 3.
func roundGbps(mbps int64) int64 { return (mbps + 500) / 1000 }

// parseCounter parses a counter file: a decimal unsigned 64-bit number
// followed by a newline. "N/A…" yields errNotAvailable.
func parseCounter(b []byte) (uint64, error) {
	s := trimSpace(b)
	if len(s) == 0 {
		return 0, errors.New("empty counter file")
	}
	if len(s) >= 3 && s[0] == 'N' && s[1] == '/' && s[2] == 'A' {
		return 0, errNotAvailable
	}
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("want a decimal counter, got %s", quote(b))
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("counter overflows uint64: %s", quote(b))
		}
		v = v*10 + d
	}
	return v, nil
}
