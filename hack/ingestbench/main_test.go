package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

func TestParseStatTicks(t *testing.T) {
	// A command name with a space and a ')' in it.
	line := "4242 (node agent) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 157 43 0 0 20 0 9 0 100 1000000 6000 18446744073709551615\n"
	got, err := parseStatTicks(line)
	if err != nil {
		t.Fatal(err)
	}
	if got != 200 {
		t.Errorf("ticks = %d, want 157+43 = 200", got)
	}
	for _, bad := range []string{"", "1 (a S 1", "1 (a) S 1 2 3", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 43 0"} {
		if _, err := parseStatTicks(bad); err == nil || !strings.Contains(err.Error(), "stat") {
			t.Errorf("parseStatTicks(%q) = %v, want an error naming stat", bad, err)
		}
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tnode-agent\nVmHWM:\t   25000 kB\nVmRSS:\t   24100 kB\nThreads:\t9\n"
	for name, want := range map[string]int64{"VmRSS": 24100, "VmHWM": 25000} {
		got, err := parseStatusKiB(status, name)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", name, got, err, want)
		}
	}
	if _, err := parseStatusKiB(status, "VmSwap"); err == nil || !strings.Contains(err.Error(), "VmSwap") {
		t.Errorf("missing field: err = %v, want one naming VmSwap", err)
	}
	if _, err := parseStatusKiB("VmRSS: 12 MB\n", "VmRSS"); err == nil || !strings.Contains(err.Error(), "VmRSS") {
		t.Errorf("wrong unit: err = %v, want one naming VmRSS", err)
	}
}

func FuzzParseStatTicks(f *testing.F) {
	f.Add("4242 (node-agent) S 1 4242 4242 0 -1 4194560 1234 0 0 0 157 43 0 0 20 0 9 0")
	f.Add("1 ()) ) S")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseStatTicks(s)
		if err == nil && v < 0 {
			t.Fatalf("negative ticks %d from %q", v, s)
		}
	})
}

func FuzzParseStatusKiB(f *testing.F) {
	f.Add("VmRSS:\t 24100 kB\n")
	f.Add("VmRSS: -1 kB")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseStatusKiB(s, "VmRSS")
		if err == nil && v < 0 {
			t.Fatalf("negative size %d from %q", v, s)
		}
	})
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v, want 0", got)
	}
}

// Every optional GPU field is set, and every port has its 21 counters.
func TestMakeBatchIsComplete(t *testing.T) {
	b := makeBatch("n1", 3, time.Unix(1700000000, 0))
	if len(b.GpuSamples) != 8 || len(b.IbSamples) != 8 || len(b.HealthEvents) != 0 {
		t.Fatalf("batch has %d GPU samples, %d IB samples, %d events; want 8, 8, 0", len(b.GpuSamples), len(b.IbSamples), len(b.HealthEvents))
	}
	fields := b.GpuSamples[0].ProtoReflect().Descriptor().Fields()
	for _, g := range b.GpuSamples {
		m := g.ProtoReflect()
		for i := range fields.Len() {
			if fd := fields.Get(i); fd.HasPresence() && !m.Has(fd) {
				t.Errorf("gpu %d: %s not set", g.GetIndex(), fd.Name())
			}
		}
		if len(g.Processes) != 1 || g.Processes[0].SlurmJobId == "" {
			t.Errorf("gpu %d: processes %v, want one attributed to a job", g.GetIndex(), g.Processes)
		}
	}
	for _, p := range b.IbSamples {
		c := p.GetCounters()
		if c.GetSymbolError() == 0 || c.GetLinkDowned() == 0 || c.GetMulticastXmitPackets() == 0 || c.GetPortXmitData() == 0 {
			t.Errorf("%s: counters %v, want all 21 set", p.Device, c)
		}
	}
	if got := b.GpuSamples[2].GetEnergyMillijoules(); got != 3*450_000 {
		t.Errorf("energy = %d, want %d", got, 3*450_000)
	}
	size := proto.Size(b)
	if size < 1500 || size > 8000 {
		t.Errorf("batch is %d bytes on the wire; a real 8-GPU, 8-port batch is about 2 KiB", size)
	}
	var _ protoreflect.Message = b.ProtoReflect()
}

func TestParseFlagsErrorsNameTheFlag(t *testing.T) {
	for args, want := range map[string]string{
		"-role agents":            "-connect",
		"-role nope":              "-role",
		"-agents 0":               "-agents",
		"-agents 5 -conns 6":      "-conns",
		"-duration 0s":            "-duration",
		"-interval -1s":           "-interval",
		"-warmup -1s -agents 100": "-warmup",
		"-role agents -connect 127.0.0.1:1 -restart": "-server-pid",
		"-memprofile x.heap":                         "-memprofile",
	} {
		_, err := parseFlags(strings.Fields(args), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one naming %s", args, err, want)
		}
	}
	o, err := parseFlags([]string{"-agents", "7"}, &bytes.Buffer{})
	if err != nil || o.conns != 7 || o.role != "all" {
		t.Errorf("defaults: %+v, %v; want conns = agents = 7, role all", o, err)
	}
}

// A small run end to end: every batch of the window is acked, within the
// commit interval's reach, over one connection per agent, in plaintext and
// over mTLS with a client certificate per agent.
func TestRunAllSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds")
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plaintext", false}, {"mtls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-agents", "20", "-duration", "3s", "-warmup", "2s", "-ramp", "500ms", "-grace", "3s"}
			tlsDir := ""
			if tc.tls {
				tlsDir = t.TempDir()
				args = append(args, "-tls-dir", tlsDir)
			}
			o, err := parseFlags(args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := startController("127.0.0.1:0", true, tlsDir, 0, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer c.stop()
			res, err := runAgents(context.Background(), o, c.addr, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			// 20 agents at 1 Hz over ~3 s: 60 batches, ±1 per agent at the edges.
			if res.offered < 40 || res.offered > 80 {
				t.Errorf("offered %d batches, want about 60", res.offered)
			}
			if res.acked != res.offered || res.unacked != 0 {
				t.Errorf("acked %d of %d, %d unacked; want all", res.acked, res.offered, res.unacked)
			}
			if res.p50 <= 0 || res.p99 > time.Second || res.max < res.p99 {
				t.Errorf("ack p50 %v, p99 %v, max %v; want 0 < p50, p99 ≤ 1 s ≤ ..., max ≥ p99", res.p50, res.p99, res.max)
			}
			if res.reconnects != 0 || res.late != 0 || res.disconnected != 0 {
				t.Errorf("%d reconnects, %d connected late, %d down at the end; want 0", res.reconnects, res.late, res.disconnected)
			}
			var out bytes.Buffer
			res.print(&out, true)
			if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[2], "| 20 | 20 |") || strings.Count(lines[0], "|") != 17 {
				t.Errorf("table:\n%s", out.String())
			}
		})
	}
}

// The batches describe healthy nodes: the benchmark measures ingest, not
// 10,000 incidents.
func TestBatchesAreHealthy(t *testing.T) {
	now := time.Now()
	var ev health.Evidence
	ev.LastReport = now
	for n := uint64(1); n <= 3; n++ {
		for _, p := range makeBatch("w", n, now.Add(time.Duration(n)*time.Second)).IbSamples {
			ev.IBPorts = append(ev.IBPorts, telemetry.IBPortSampleFromProto(p))
		}
	}
	th, _ := health.DefaultThresholds("h100")
	if r := health.Evaluate(now.Add(4*time.Second), ev, th); r.Verdict != health.Healthy {
		t.Errorf("benchmark batches are judged %v: %v", r.Verdict, r.Findings)
	}
}
