package nccl

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) Result {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return res
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestParseH100(t *testing.T) {
	res := parseFile(t, "h100_8gpu.txt")
	if res.Version != "2.19.6" || res.NCCLVersion != "2.27.3" || res.Program != "all_reduce_perf" {
		t.Errorf("version %q nccl %q program %q", res.Version, res.NCCLVersion, res.Program)
	}
	want := Config{Threads: 1, GPUs: 8, MinBytes: 8, MaxBytes: 16 << 30, Iters: 20, WarmupIters: 5, Validation: 1}
	if res.Config == nil || *res.Config != want {
		t.Errorf("config %+v, want %+v", res.Config, want)
	}
	if len(res.Devices) != 8 {
		t.Fatalf("%d devices, want 8", len(res.Devices))
	}
	d := res.Devices[3]
	if d != (Device{Rank: 3, Group: 0, Pid: 58211, Host: "gpu-h100-017", Index: 3, BusID: "0000:5d:00", Model: "NVIDIA H100 80GB HBM3"}) {
		t.Errorf("device 3 = %+v", d)
	}
	if len(res.Rows) != 32 {
		t.Fatalf("%d rows, want 32 (8 B .. 16 GiB)", len(res.Rows))
	}
	first, last := res.Rows[0], res.Rows[31]
	if first.SizeBytes != 8 || first.Count != 2 || first.Type != "float" || first.RedOp != "sum" || first.Root != -1 {
		t.Errorf("first row %+v", first)
	}
	if last.SizeBytes != 16<<30 || last.Count != 4<<30 || !near(last.OutOfPlace.TimeMicros, 62971.7) ||
		!near(last.OutOfPlace.AlgBWGBps, 272.82) || !near(last.OutOfPlace.BusBWGBps, 477.43) ||
		!near(last.InPlace.BusBWGBps, 479.11) || last.InPlace.Wrong == nil || *last.InPlace.Wrong != 0 {
		t.Errorf("last row %+v", last)
	}
	if last.Line != 49 {
		t.Errorf("last row line %d, want 49", last.Line)
	}
	if res.AvgBusBandwidthGBps == nil || *res.AvgBusBandwidthGBps != 187.33 {
		t.Errorf("avg busbw %v", res.AvgBusBandwidthGBps)
	}
	if res.OutOfBounds == nil || *res.OutOfBounds != 0 || !res.OutOfBoundsOK {
		t.Errorf("out of bounds %v ok %v", res.OutOfBounds, res.OutOfBoundsOK)
	}
	if len(res.Failures) != 0 || len(res.Warnings) != 0 {
		t.Errorf("failures %q warnings %q", res.Failures, res.Warnings)
	}
}

func TestParseH200OlderFormat(t *testing.T) {
	res := parseFile(t, "h200_8gpu.txt")
	if res.Version != "" || res.NCCLVersion != "2.21.5" {
		t.Errorf("version %q nccl %q", res.Version, res.NCCLVersion)
	}
	if len(res.Devices) != 8 || res.Devices[7].BusID != "0xdb" || res.Devices[7].Model != "NVIDIA H200" || res.Devices[7].Host != "gpu-h200-003" {
		t.Errorf("devices %+v", res.Devices)
	}
	if len(res.Rows) != 32 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	bw, ok := res.BusBandwidthAt(16 << 30)
	if !ok || !near(bw, (465.18+468.50)/2) {
		t.Errorf("busbw at 16 GiB = %v, %v", bw, ok)
	}
}

func TestParseWrongValues(t *testing.T) {
	res := parseFile(t, "h100_wrong_values.txt")
	var got []int64
	for _, r := range res.Rows {
		if w := r.OutOfPlace.Wrong; w != nil && *w > 0 {
			got = append(got, *w)
		}
	}
	// "1.25829e+07" is %g of 12582912: six significant digits survive.
	want := []int64{1024, 12582900, 12582900}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("wrong values %v, want %v", got, want)
	}
	if res.OutOfBounds == nil || *res.OutOfBounds != 6 || res.OutOfBoundsOK {
		t.Errorf("out of bounds %v ok %v", res.OutOfBounds, res.OutOfBoundsOK)
	}
}

func TestParseFailure(t *testing.T) {
	res := parseFile(t, "h100_nccl_failure.txt")
	if len(res.Rows) != 29 || res.Rows[28].SizeBytes != 2<<30 {
		t.Errorf("%d rows", len(res.Rows))
	}
	if len(res.Failures) != 2 || !strings.HasPrefix(res.Failures[0], "gpu-h100-023: Test NCCL failure common.cu:1279 ") ||
		!strings.Contains(res.Failures[1], "Test failure common.cu:1100") {
		t.Errorf("failures %q", res.Failures)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "NCCL WARN Cuda failure 214") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if res.AvgBusBandwidthGBps != nil || res.OutOfBounds != nil {
		t.Errorf("footer present in an aborted run")
	}
}

func TestParseNoValidation(t *testing.T) {
	res := parseFile(t, "h200_novalidation.txt")
	if res.Config == nil || res.Config.Validation != 0 || res.Config.MinBytes != 1<<30 {
		t.Errorf("config %+v", res.Config)
	}
	if len(res.Rows) != 5 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	for _, r := range res.Rows {
		if r.OutOfPlace.Wrong != nil || r.InPlace.Wrong != nil {
			t.Errorf("row %d: #wrong N/A parsed as a value", r.SizeBytes)
		}
	}
}

func TestParse2019Format(t *testing.T) {
	res := parseFile(t, "v100_2019_format.txt")
	if len(res.Devices) != 8 || res.Devices[4] != (Device{Rank: 4, Pid: 23391, Host: "dgx1-04", Index: 4, BusID: "0x85", Model: "Tesla V100-SXM2-32GB"}) {
		t.Errorf("devices %+v", res.Devices)
	}
	if len(res.Rows) != 25 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	last := res.Rows[24]
	if last.SizeBytes != 128<<20 || last.RedOp != "sum" || last.Root != -1 || last.OutOfPlace.Wrong != nil ||
		last.OutOfPlace.MaxError == nil || *last.OutOfPlace.MaxError != 2e-7 {
		t.Errorf("last row %+v", last)
	}
	if last.OutOfPlace.TimeMicros < 1000 || last.OutOfPlace.TimeMicros > 10000 {
		t.Errorf("time %v µs", last.OutOfPlace.TimeMicros)
	}
}

func TestParse2017FormatMilliseconds(t *testing.T) {
	res := parseFile(t, "p100_2017_format.txt")
	if len(res.Devices) != 4 || res.Devices[2].Host != "node03" || res.Devices[2].Pid != 0 || res.Devices[2].Model != "Tesla P100-SXM2-16GB" {
		t.Errorf("devices %+v", res.Devices)
	}
	if len(res.Rows) != 23 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	last := res.Rows[22]
	// "1.795" ms.
	if !near(last.OutOfPlace.TimeMicros, 1795) || last.RedOp != "sum" || last.OutOfPlace.MaxError == nil {
		t.Errorf("last row %+v", last)
	}
	if res.AvgBusBandwidthGBps == nil || *res.AvgBusBandwidthGBps != 8.33875 || res.OutOfBounds == nil || !res.OutOfBoundsOK {
		t.Errorf("footer avg %v oob %v", res.AvgBusBandwidthGBps, res.OutOfBounds)
	}
}

const header = `#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong 
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)         
`

func TestParsePerIterationAndTimestamps(t *testing.T) {
	in := `#       size         count      type   redop    root     time   algbw   busbw  #wrong    i_min    i_max    i_p99    i_cv%     time   algbw   busbw  #wrong    i_min    i_max    i_p99    i_cv%           timestamp
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)     (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)   %Y-%m-%d %H:%M:%S
  1073741824     268435456     float     sum      -1  3905.07  274.96  481.18       0  3890.11  3921.50  3921.50     0.21  3927.77  273.37  478.40       0  3911.02  3950.16  3950.16     0.25  2026-11-29 10:01:02
`
	res, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || !near(res.Rows[0].InPlace.BusBWGBps, 478.40) || !near(res.Rows[0].InPlace.TimeMicros, 3927.77) {
		t.Errorf("rows %+v", res.Rows)
	}
}

func TestParseTolerates(t *testing.T) {
	in := "Run-1 Starting command at 2025-05-22 07:36:17\n" +
		"# Reducing maxBytes to 27951912277 due to memory limitation\n" +
		"# some future comment line: 12 x\n" +
		"10-0-0-7:123:456 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.7<0>\n" +
		"2025-05-22 07:36:17 wrapper log line\n" +
		"--------------------------------------------------------------------------\n" +
		header +
		"8             2     float     sum      -1    97.98    0.00    0.00      0    190.2    0.00    0.00      0\r\n" +
		"# GPU memory usage     : Initialization 1.23 GB | User-Allocated 4.00 GB | Collective 0 B | Total  5.23 GB\n" +
		"# error: NVLS multicast support is not available\n"
	res, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || !near(res.Rows[0].InPlace.TimeMicros, 190.2) || res.Rows[0].Line != 9 {
		t.Errorf("rows %+v", res.Rows)
	}
	if len(res.Warnings) != 1 || res.Warnings[0] != "# error: NVLS multicast support is not available" {
		t.Errorf("warnings %q", res.Warnings)
	}
}

func TestParseConcatenatedRuns(t *testing.T) {
	in := "# Out of bounds values : 2 FAILED\n# Avg bus bandwidth    : 10 \n# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 20 \n"
	res, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if *res.OutOfBounds != 2 || res.OutOfBoundsOK || *res.AvgBusBandwidthGBps != 20 {
		t.Errorf("oob %d ok %v avg %v", *res.OutOfBounds, res.OutOfBoundsOK, *res.AvgBusBandwidthGBps)
	}
}

func TestParseOldFailureLine(t *testing.T) {
	res, err := Parse(strings.NewReader("NCCL failure all_reduce.cu:95 'unhandled cuda error'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 {
		t.Errorf("failures %q", res.Failures)
	}
	res, err = Parse(strings.NewReader("node-1: Test timeout (300s) common.cu:523\nInvalid number of GPUs: 8 requested but only 4 were found.\n"))
	if err != nil || len(res.Failures) != 2 {
		t.Errorf("failures %q, %v", res.Failures, err)
	}
}

func TestParseErrors(t *testing.T) {
	row := "  1073741824     268435456     float     sum      -1  3905.07  274.96  481.18       0  3927.77  273.37  478.40       0\n"
	for _, tc := range []struct {
		name, in, field string
		line            int
	}{
		{"short row", header + "  1073741824     268435456     float     sum      -1  3905.07  274.96  481.18       0\n", "row", 3},
		{"bad busbw", header + strings.Replace(row, "481.18", "481.1x", 1), "out-of-place busbw", 3},
		{"nan algbw", header + strings.Replace(row, "273.37", "nan", 1), "in-place algbw", 3},
		{"negative time", header + strings.Replace(row, "3927.77", "-3927.7", 1), "in-place time", 3},
		{"fractional wrong", header + strings.Replace(row, "478.40       0", "478.40     0.5", 1), "in-place #wrong", 3},
		{"bad count", header + strings.Replace(row, "268435456", "26843545x", 1), "count", 3},
		{"huge size", header + strings.Replace(row, "1073741824", "99999999999999999999", 1), "size", 3},
		{"bad root", header + strings.Replace(row, "-1", "-7", 1), "root", 3},
		{"numeric type", header + strings.Replace(row, "float", "32", 1), "type", 3},
		{"unknown column", "#       size         count      type   color     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong\n", "column header", 1},
		{"bad oob", "# Out of bounds values : x OK\n", "out of bounds values", 1},
		{"bad oob verdict", "# Out of bounds values : 0 MAYBE\n", "out of bounds values", 1},
		{"bad avg", "\n\n# Avg bus bandwidth    : -3 \n", "avg bus bandwidth", 3},
		{"bad parameters", "# nThread 1 nGpus eight minBytes 8\n", "parameters", 1},
		{"long line", strings.Repeat("x", MaxLineBytes+1) + "\n", "line", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ParseError", err)
			}
			if pe.Line != tc.line || pe.Field != tc.field {
				t.Errorf("line %d field %q (%v), want line %d field %q", pe.Line, pe.Field, err, tc.line, tc.field)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(SimulatedOutput(2, "NVIDIA H200", 100))
	for _, seed := range []string{
		header + "1 2 float sum -1 1 2 3 N/A 4 5 6 1e3\n",
		"#  Rank  0 Group  0 Pid  28307 on      gpu59 device  0 [0x16] NVIDIA GeForce RTX 4090\n",
		"#   Rank  1 on     node03 device  1 [0x00] Tesla P100-PCIE-16GB\n",
		"# nThread 1 nGpus 8 minBytes 8 maxBytes 17179869184 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0\n",
		"# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 1.5e-05 FAILED\n",
		"# nccl-tests version 2.20.0 (b4d5bee) nccl-headers=23102 nccl-library=23102\n",
		"h: Test NCCL failure common.cu:1 'x / y'\n .. h pid 1: Test failure common.cu:2\n",
		"h:1:2 [0] init.cc:1 NCCL WARN x\nNCCL version 2.18.3+cuda12.1\n",
		"#      bytes             N    type      op     time  algbw  busbw      res     time  algbw  busbw      res\n8 2 float sum 0.020 0.00 0.00 0e+00 0.020 0.00 0.00 0e+00\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Parse(strings.NewReader(string(b)))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Field == "" {
				t.Fatalf("error %v is not a ParseError with line and field", err)
			}
			return
		}
		for _, r := range res.Rows {
			for _, m := range []Measurement{r.OutOfPlace, r.InPlace} {
				if m.TimeMicros < 0 || m.BusBWGBps < 0 || math.IsNaN(m.AlgBWGBps) || (m.Wrong != nil && *m.Wrong < 0) {
					t.Fatalf("bad measurement %+v", m)
				}
			}
			if r.SizeBytes < 0 || r.Count < 0 || r.Line < 1 {
				t.Fatalf("bad row %+v", r)
			}
		}
		// Measure and Judge must not panic on anything Parse accepts, and
		// never pass a run with failures or wrong values.
		v := Judge(Measure(res, 16<<30), 0)
		if v.Passed {
			if len(res.Failures) > 0 || res.OutOfBounds == nil || !res.OutOfBoundsOK || len(res.Rows) == 0 {
				t.Fatalf("passed: %+v for %+v", v, res)
			}
			for _, r := range res.Rows {
				for _, m := range []Measurement{r.OutOfPlace, r.InPlace} {
					if m.Wrong != nil && *m.Wrong > 0 {
						t.Fatalf("passed with wrong values: %+v", v)
					}
				}
			}
		}
	})
}
