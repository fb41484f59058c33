package nccl

import (
	"bytes"
	"strings"
	"testing"
)

func TestSimulatedOutputRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		gpus  int
		model string
		peak  float64
		min   float64
		pass  bool
	}{
		{8, "NVIDIA H100 80GB HBM3", 480, 460, true},
		{8, "NVIDIA H200", 470, 431, true},
		{8, "NVIDIA H100 80GB HBM3", 210, 460, false},
		{4, "NVIDIA H200", 440, 431, true},
	} {
		out := SimulatedOutput(tc.gpus, tc.model, tc.peak)
		if !bytes.HasPrefix(out, []byte(SimulatedHeader+"\n")) {
			t.Fatalf("missing simulated header: %q", out[:60])
		}
		res, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Devices) != tc.gpus || res.Devices[tc.gpus-1].Model != tc.model || res.Config.GPUs != tc.gpus {
			t.Errorf("devices %+v", res.Devices)
		}
		if len(res.Rows) != 32 || res.Version == "" || res.AvgBusBandwidthGBps == nil || !res.OutOfBoundsOK {
			t.Fatalf("result %+v", res)
		}
		// Ramps up with size, towards the peak.
		prev := -1.0
		for _, r := range res.Rows {
			if r.OutOfPlace.BusBWGBps < prev {
				t.Errorf("busbw falls at %d: %v after %v", r.SizeBytes, r.OutOfPlace.BusBWGBps, prev)
			}
			prev = r.OutOfPlace.BusBWGBps
			if r.OutOfPlace.BusBWGBps > tc.peak || r.InPlace.BusBWGBps > tc.peak {
				t.Errorf("busbw above peak at %d", r.SizeBytes)
			}
		}
		bw, _ := res.BusBandwidthAt(16 << 30)
		if bw < 0.99*tc.peak {
			t.Errorf("busbw at 16 GiB %v, want about %v", bw, tc.peak)
		}
		if small, _ := res.BusBandwidthAt(1 << 20); small > 0.5*tc.peak {
			t.Errorf("busbw at 1 MiB %v: no ramp", small)
		}
		var sum float64
		for _, r := range res.Rows {
			sum += r.OutOfPlace.BusBWGBps + r.InPlace.BusBWGBps
		}
		if avg := sum / 64; avg-*res.AvgBusBandwidthGBps > 0.01 || *res.AvgBusBandwidthGBps-avg > 0.01 {
			t.Errorf("avg footer %v, rows average %v", *res.AvgBusBandwidthGBps, avg)
		}
		v := Judge(Measure(res, 16<<30), tc.min)
		if v.Passed != tc.pass || !strings.Contains(v.Summary, "at 16 GiB") {
			t.Errorf("%v GB/s vs %v: %+v", tc.peak, tc.min, v)
		}
	}
}

func TestSimulatedOutputFormat(t *testing.T) {
	out := string(SimulatedOutput(8, "", 480))
	for _, want := range []string{
		"\n#  Rank  7 Group  0 Pid   4242 on  simulated device  7 [0000:db:00] NVIDIA H100 80GB HBM3\n",
		"\n#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong \n",
		"\n           8             2     float     sum      -1    18.00    0.00    0.00       0    17.89    0.00    0.00       0\n",
		"\n 17179869184    4294967296     float     sum      -1  62652.9  274.21  479.86       0  62903.6  273.11  477.95       0\n",
		"\n# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 183.624 \n#\n# Collective test concluded: all_reduce_perf\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if SimulatedOutput(8, "", 480) == nil || !bytes.Equal(SimulatedOutput(8, "", 480), []byte(out)) {
		t.Error("not deterministic")
	}
}

func TestSimulatedOutputEdges(t *testing.T) {
	for _, tc := range []struct {
		gpus int
		peak float64
	}{{0, 480}, {-3, 480}, {1, 480}, {8, 0}, {8, -1}, {64, 1e6}} {
		res, err := Parse(bytes.NewReader(SimulatedOutput(tc.gpus, "X", tc.peak)))
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if len(res.Rows) != 32 {
			t.Errorf("%+v: %d rows", tc, len(res.Rows))
		}
		if tc.gpus <= 1 {
			if bw, _ := res.BusBandwidthAt(16 << 30); bw != 0 || len(res.Devices) != 1 {
				t.Errorf("single GPU busbw %v devices %d", bw, len(res.Devices))
			}
		}
	}
}

func TestFloatStr(t *testing.T) {
	for _, tc := range []struct {
		v     float64
		width int
		want  string
	}{
		{18, 7, "  18.00"}, {9999.994, 7, "9999.99"}, {15676.7, 7, "15676.7"}, {123456.7, 7, " 123457"},
		{12345678, 7, "1.2e+07"}, {479.86, 6, "479.86"}, {1234.56, 6, "1234.6"}, {1234567, 6, " 1e+06"},
	} {
		if got := floatStr(tc.v, tc.width); got != tc.want {
			t.Errorf("floatStr(%v, %d) = %q, want %q", tc.v, tc.width, got, tc.want)
		}
	}
}
