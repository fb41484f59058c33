package nccl

import (
	"bytes"
	"fmt"
	"strconv"
)

// SimulatedHeader is the first line of SimulatedOutput, so that a
// simulated result can never pass for a measured one.
const SimulatedHeader = "# sopilot simulated all_reduce_perf output"

// SimulatedOutput returns made-up all_reduce_perf output for demos and
// tests, in the format of nccl-tests 2.19 run with "-b 8 -e 16G -f 2 -g
// gpus" on one host, after a SimulatedHeader line. The bus bandwidth
// ramps up with the message size (a fixed latency plus size over
// bandwidth) and approaches peakBusBW GB/s at 16 GiB. It is
// deterministic. gpus below 1 is treated as 1 (a single GPU has a bus
// bandwidth of 0, as in the real tool); an empty model is "NVIDIA H100
// 80GB HBM3"; peakBusBW below 0.01 is treated as 0.01.
func SimulatedOutput(gpus int, model string, peakBusBW float64) []byte {
	gpus = max(gpus, 1)
	if model == "" {
		model = "NVIDIA H100 80GB HBM3"
	}
	if !(peakBusBW >= 0.01) {
		peakBusBW = 0.01
	}
	const (
		minBytes = int64(8)
		maxBytes = int64(16) << 30
		host     = "simulated"
		pid      = 4242
	)
	var b bytes.Buffer
	pr := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	pr("%s\n", SimulatedHeader)
	pr("# nccl-tests version 2.19.6 nccl-headers=22703 nccl-library=22703\n")
	pr("# Collective test starting: all_reduce_perf\n")
	pr("# nThread 1 nGpus %d minBytes %d maxBytes %d step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0 unalign: 0\n", gpus, minBytes, maxBytes)
	pr("#\n# Using devices\n")
	busIDs := []int{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb}
	for i := range gpus {
		bus := 0x10 + i
		if i < len(busIDs) {
			bus = busIDs[i]
		}
		pr("#  Rank %2d Group %2d Pid %6d on %10s device %2d [%04x:%02x:%02x] %s\n", i, 0, pid, host, i, 0, bus&0xff, 0, model)
	}
	pr("#\n")
	pr("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          \n", "", "", "", "", "")
	pr("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s %s\n", "size", "count", "type", "redop", "root",
		"time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong", "")
	pr("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s %s\n", "(B)", "(elements)", "", "", "",
		"(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "", "")

	factor := 2 * float64(gpus-1) / float64(gpus)
	// Wire rate per byte of message: the bus carries factor bytes per
	// message byte; a single GPU only copies locally.
	perByte := factor / (peakBusBW * 1e3) // µs per byte
	if gpus == 1 {
		perByte = 1 / 2000e3
	}
	latency := 10 + 1.0*float64(gpus) // µs
	var sum float64
	var n int
	for size := minBytes; size <= maxBytes; size *= 2 {
		pr("%12d  %12d  %8s  %6s  %6s", size, size/4, "float", "sum", "-1")
		for half, skew := range []float64{1, 1.004} {
			t := (latency + float64(size)*perByte) * skew
			if half == 1 && size < 1<<20 {
				t = t * 0.99 // in-place skips a copy; visible only when small
			}
			alg := float64(size) / (t * 1e3)
			bus := alg * factor
			sum += bus
			n++
			pr("  %7s  %6s  %6s  %6d", floatStr(t, 7), floatStr(alg, 6), floatStr(bus, 6), 0)
		}
		pr("\n")
	}
	pr("# %-20s : %d %s\n", "Out of bounds values", 0, "OK")
	pr("# %-20s : %s %s\n", "Avg bus bandwidth", strconv.FormatFloat(sum/float64(n), 'g', 6, 64), "")
	pr("#\n# Collective test concluded: all_reduce_perf\n#\n\n")
	return b.Bytes()
}

// floatStr formats like nccl-tests' getFloatStr: as many decimals (2, 1,
// 0) as fit in width, else scientific notation.
func floatStr(v float64, width int) string {
	for _, prec := range []int{2, 1, 0} {
		if s := fmt.Sprintf("%*.*f", width, prec, v); len(s) <= width {
			return s
		}
	}
	if width >= 7 {
		return fmt.Sprintf("%*.1e", width, v)
	}
	return fmt.Sprintf("%*.0e", width, v)
}
