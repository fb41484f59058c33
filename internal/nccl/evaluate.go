package nccl

import (
	"fmt"
	"strings"
)

// BusBandwidthAt returns the bus bandwidth of the row whose size is the
// largest one not above sizeBytes. When every row is larger than
// sizeBytes, the smallest row is used instead; so when the run stopped
// short of sizeBytes the largest size it reached is used. The bandwidth of
// a row is the mean of its out-of-place and in-place busbw; when the same
// size appears more than once (several cycles, -N) the lowest of those
// means is returned. The second result is false only when there are no
// rows.
func (r Result) BusBandwidthAt(sizeBytes int64) (float64, bool) {
	_, bw, ok := r.busBandwidthAt(sizeBytes)
	return bw, ok
}

func (r Result) busBandwidthAt(sizeBytes int64) (size int64, bw float64, ok bool) {
	if len(r.Rows) == 0 {
		return 0, 0, false
	}
	best := int64(-1)
	smallest := r.Rows[0].SizeBytes
	for _, row := range r.Rows {
		if row.SizeBytes <= sizeBytes && row.SizeBytes > best {
			best = row.SizeBytes
		}
		smallest = min(smallest, row.SizeBytes)
	}
	if best < 0 {
		best = smallest
	}
	first := true
	for _, row := range r.Rows {
		if row.SizeBytes != best {
			continue
		}
		v := (row.OutOfPlace.BusBWGBps + row.InPlace.BusBWGBps) / 2
		if first || v < bw {
			bw, first = v, false
		}
	}
	return best, bw, true
}

// Reading is what one run measured, before any floor is applied: the
// agent reports it, the controller judges it (Judge) against its own
// thresholds.
type Reading struct {
	// Sound: the run finished and its results are correct (no failure
	// lines, no wrong or out of bounds values, the footer present).
	Sound bool
	// BusBWGBps is the bus bandwidth at the size judged (see
	// Result.BusBandwidthAt); 0 when the run failed before producing rows.
	BusBWGBps float64
	// SizeBytes is the message size of the row judged.
	SizeBytes int64
	// Summary is one line for people: "busbw 472.3 GB/s at 16 GiB" for a
	// sound run, what went wrong otherwise.
	Summary string
}

// Verdict is the outcome of Judge.
type Verdict struct {
	Passed    bool
	BusBWGBps float64
	SizeBytes int64
	// Summary is one line for people, e.g. "busbw 472.3 GB/s at 16 GiB ≥
	// 460 (ok)".
	Summary string
}

// Measure reads one run at a message size, normally health.Thresholds'
// NCCLMessageBytes. Failure lines, wrong values (#wrong > 0) and out of
// bounds values make the run unsound whatever the bandwidth; so does a run
// without rows, and one whose output stops before the "Out of bounds
// values" footer (killed, or cut short).
func Measure(res Result, messageBytes int64) Reading {
	size, bw, ok := res.busBandwidthAt(messageBytes)
	m := Reading{BusBWGBps: bw, SizeBytes: size}
	at := formatSize(size)
	if ok && size != messageBytes {
		at = fmt.Sprintf("%s (largest run ≤ %s)", at, formatSize(messageBytes))
		if size > messageBytes {
			at = fmt.Sprintf("%s (smallest run, above %s)", formatSize(size), formatSize(messageBytes))
		}
	}
	switch wrong, row := wrongValues(res.Rows); {
	case len(res.Failures) > 0:
		m.Summary = "nccl error: " + failureMessage(res.Failures[0])
		if n := len(res.Failures); n > 1 {
			m.Summary += fmt.Sprintf(" (and %d more failure lines)", n-1)
		}
	case wrong > 0:
		m.Summary = fmt.Sprintf("%d wrong values (first at %s)", wrong, formatSize(row.SizeBytes))
	case res.OutOfBounds != nil && (*res.OutOfBounds > 0 || !res.OutOfBoundsOK):
		m.Summary = fmt.Sprintf("out of bounds values: %d FAILED", *res.OutOfBounds)
	case !ok:
		m.Summary = "no results in all_reduce_perf output"
	case res.OutOfBounds == nil:
		m.Summary = fmt.Sprintf("incomplete run: no \"Out of bounds values\" footer (busbw %.1f GB/s at %s)", bw, at)
	default:
		m.Sound = true
		m.Summary = fmt.Sprintf("busbw %.1f GB/s at %s", bw, at)
	}
	return m
}

// Judge holds a reading against a bus bandwidth floor (GB/s), normally
// health.Thresholds' NCCLMinBusBandwidthGBps. An unsound run fails whatever
// its bandwidth; a floor of 0 only checks soundness.
func Judge(m Reading, minBusBW float64) Verdict {
	v := Verdict{BusBWGBps: m.BusBWGBps, SizeBytes: m.SizeBytes, Summary: m.Summary}
	if !m.Sound {
		return v
	}
	if m.BusBWGBps >= minBusBW {
		v.Passed = true
		v.Summary = fmt.Sprintf("%s ≥ %s (ok)", m.Summary, formatGBps(minBusBW))
	} else {
		v.Summary = fmt.Sprintf("%s < %s", m.Summary, formatGBps(minBusBW))
	}
	return v
}

func wrongValues(rows []Row) (int64, Row) {
	var total int64
	var first Row
	for _, row := range rows {
		for _, m := range []Measurement{row.OutOfPlace, row.InPlace} {
			if m.Wrong != nil && *m.Wrong > 0 {
				if total == 0 {
					first = row
				}
				total = addSat(total, *m.Wrong)
			}
		}
	}
	return total, first
}

// failureMessage extracts the quoted message of a "Test NCCL failure"
// line; other lines are returned whole.
func failureMessage(line string) string {
	if m := reFailure.FindStringSubmatch(line); m != nil {
		msg := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[1]), "/"))
		if msg != "" {
			return msg
		}
	}
	return line
}

func formatGBps(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
}

// formatSize prints a byte count as "16 GiB", "512 MiB", "8 B".
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
