package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseStatTicks returns utime+stime (fields 14 and 15, clock ticks) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no ')' closing the command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	var sum int64
	for _, n := range []int{14, 15} {
		v, err := strconv.ParseInt(f[n-3], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("stat field %d: %q is not a tick count", n, f[n-3])
		}
		sum += v
	}
	return sum, nil
}

// parseStatusKiB returns a "Name:   123 kB" field of /proc/<pid>/status.
func parseStatusKiB(status, name string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status %s: %q is not \"<n> kB\"", name, strings.TrimSpace(v))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("status %s: %q is not a size", name, f[0])
		}
		return n, nil
	}
	return 0, fmt.Errorf("status %s: missing", name)
}
