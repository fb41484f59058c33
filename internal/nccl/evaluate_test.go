package nccl

import (
	"math"
	"strings"
	"testing"
)

func TestBusBandwidthAt(t *testing.T) {
	mk := func(sizes ...int64) Result {
		var r Result
		for i, s := range sizes {
			bw := float64(i+1) * 10
			r.Rows = append(r.Rows, Row{SizeBytes: s, OutOfPlace: Measurement{BusBWGBps: bw}, InPlace: Measurement{BusBWGBps: bw + 2}})
		}
		return r
	}
	r := mk(1<<20, 1<<30, 2<<30, 4<<30)
	for _, tc := range []struct {
		target int64
		want   float64
	}{
		{1 << 30, 21},       // exact
		{3 << 30, 31},       // largest ≤ target
		{16 << 30, 41},      // run stopped short: its largest size
		{1024, 11},          // every row larger: the smallest
		{(1 << 30) - 1, 11}, // just below a size
	} {
		got, ok := r.BusBandwidthAt(tc.target)
		if !ok || got != tc.want {
			t.Errorf("BusBandwidthAt(%d) = %v, %v, want %v", tc.target, got, ok, tc.want)
		}
	}
	if _, ok := (Result{}).BusBandwidthAt(1); ok {
		t.Error("no rows reported ok")
	}
	// Repeated cycles (-N): the lowest.
	r = mk(1<<30, 1<<30, 1<<30)
	r.Rows[1].OutOfPlace.BusBWGBps, r.Rows[1].InPlace.BusBWGBps = 5, 7
	if got, _ := r.BusBandwidthAt(1 << 30); got != 6 {
		t.Errorf("repeated size: %v, want 6", got)
	}
}

func TestEvaluateRecorded(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		file    string
		min     float64
		pass    bool
		bw      float64
		summary string
	}{
		{"h100_8gpu.txt", 460, true, 478.27, "busbw 478.3 GB/s at 16 GiB ≥ 460 (ok)"},
		{"h200_8gpu.txt", 431, true, 466.84, "busbw 466.8 GB/s at 16 GiB ≥ 431 (ok)"},
		{"h200_novalidation.txt", 431, true, 469.895, "busbw 469.9 GB/s at 16 GiB ≥ 431 (ok)"},
		{"h100_degraded.txt", 460, false, 208.965, "busbw 209.0 GB/s at 16 GiB < 460"},
		{"h100_nccl_failure.txt", 460, false, 481.005, "nccl error: unhandled cuda error (run with NCCL_DEBUG=INFO for details) / Cuda failure 214 'uncorrectable ECC error encountered' (and 1 more failure lines)"},
		{"h100_wrong_values.txt", 460, false, 0, "50333648 wrong values (first at 4 GiB)"},
		{"v100_2019_format.txt", 460, false, 0, "busbw 129.0 GB/s at 128 MiB (largest run ≤ 16 GiB) < 460"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			res := parseFile(t, tc.file)
			v := Judge(Measure(res, 16*gib), tc.min)
			if v.Passed != tc.pass || v.Summary != tc.summary {
				t.Errorf("verdict = %v %q, want %v %q", v.Passed, v.Summary, tc.pass, tc.summary)
			}
			if tc.bw != 0 && !near2(v.BusBWGBps, tc.bw) {
				t.Errorf("busbw %v, want %v", v.BusBWGBps, tc.bw)
			}
		})
	}
}

func near2(a, b float64) bool { return a-b < 0.01 && b-a < 0.01 }

func TestEvaluateEdges(t *testing.T) {
	zero := int64(0)
	ok := Result{Rows: []Row{{SizeBytes: 16 << 30, OutOfPlace: Measurement{BusBWGBps: 470}, InPlace: Measurement{BusBWGBps: 470}}},
		OutOfBounds: &zero, OutOfBoundsOK: true}
	cut := ok
	cut.OutOfBounds = nil
	if v := Judge(Measure(cut, 16<<30), 460); v.Passed || v.Summary != `incomplete run: no "Out of bounds values" footer (busbw 470.0 GB/s at 16 GiB)` || v.BusBWGBps != 470 {
		t.Errorf("no footer: %+v", v)
	}
	if v := Judge(Measure(ok, 16<<30), 470); !v.Passed || v.Summary != "busbw 470.0 GB/s at 16 GiB ≥ 470 (ok)" {
		t.Errorf("equal to floor: %+v", v)
	}
	if v := Judge(Measure(ok, 16<<30), 430.5); !v.Passed || !strings.HasSuffix(v.Summary, "≥ 430.5 (ok)") {
		t.Errorf("fractional floor: %+v", v)
	}
	if v := Judge(Measure(Result{}, 16<<30), 0); v.Passed || v.Summary != "no results in all_reduce_perf output" {
		t.Errorf("empty: %+v", v)
	}
	oob := ok
	n := int64(0)
	oob.OutOfBounds, oob.OutOfBoundsOK = &n, false // "0 FAILED" cannot happen, but is not ok
	if v := Judge(Measure(oob, 16<<30), 0); v.Passed || v.Summary != "out of bounds values: 0 FAILED" {
		t.Errorf("out of bounds: %+v", v)
	}
	small := Result{Rows: []Row{{SizeBytes: 32 << 30, OutOfPlace: Measurement{BusBWGBps: 480}, InPlace: Measurement{BusBWGBps: 480}}},
		OutOfBounds: &zero, OutOfBoundsOK: true}
	if v := Judge(Measure(small, 16<<30), 460); !v.Passed || v.Summary != "busbw 480.0 GB/s at 32 GiB (smallest run, above 16 GiB) ≥ 460 (ok)" || v.SizeBytes != 32<<30 {
		t.Errorf("above target: %+v", v)
	}
}

func TestEvaluateWrongSaturates(t *testing.T) {
	big := int64(math.MaxInt64)
	r := Result{Rows: []Row{
		{SizeBytes: 1, OutOfPlace: Measurement{Wrong: &big}, InPlace: Measurement{Wrong: &big}},
	}}
	if v := Judge(Measure(r, 1), 0); v.Passed || !strings.HasPrefix(v.Summary, "9223372036854775807 wrong values") {
		t.Errorf("%+v", v)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 8: "8 B", 1000: "1000 B", 1024: "1 KiB", 3 << 20: "3 MiB", 16 << 30: "16 GiB", 1 << 40: "1 TiB", (1 << 30) + 1: "1073741825 B"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
