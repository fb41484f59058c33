package ib

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/health"
)

func newSim(t *testing.T, devices int) (*SimTree, *Collector) {
	t.Helper()
	st, err := NewSimTree(t.TempDir(), devices)
	if err != nil {
		t.Fatal(err)
	}
	return st, New(st.Root())
}

func mustSample(t *testing.T, c *Collector, now time.Time) map[string]Sample {
	t.Helper()
	ss, err := c.Sample(now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if len(s.FieldErrors) != 0 {
			t.Fatalf("%s: FieldErrors %v", s.Device, s.FieldErrors)
		}
	}
	return byName(ss)
}

func TestSimTreeRoundTrip(t *testing.T) {
	st, c := newSim(t, 8)
	if b, err := os.ReadFile(filepath.Join(st.Root(), SimulatedMarker)); err != nil || !strings.Contains(string(b), "simulated") {
		t.Errorf("SIMULATED marker: %q, %v", b, err)
	}
	inv, err := c.Inventory()
	if err != nil || len(inv) != 8 {
		t.Fatalf("Inventory = %d ports, %v", len(inv), err)
	}
	for i, p := range inv {
		if p.Device != "mlx5_"+string(rune('0'+i)) || p.Port != 1 || p.RateGbps != 400 || p.LinkLayer != LinkLayerInfiniBand ||
			!strings.HasSuffix(p.NodeDesc, " "+p.Device+" (simulated)") || p.FirmwareVersion != "28.39.1002" || len(p.FieldErrors) != 0 {
			t.Errorf("inv[%d] = %+v", i, p)
		}
	}
	if inv[3].NodeGUID != "0200:5e00:0000:0003" {
		t.Errorf("mlx5_3 GUID %q", inv[3].NodeGUID)
	}

	s := mustSample(t, c, t0)
	for dev, x := range s {
		if x.State != "ACTIVE" || x.PhysState != "LinkUp" || x.RateGbps != 400 || !x.HealthComplete() || x.Counters["port_xmit_data"] != 0 || len(x.Counters) != 21+7 {
			t.Errorf("%s at start: %+v", dev, x)
		}
	}

	if err := st.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	s = mustSample(t, c, t0.Add(time.Second))
	lo, hi := uint64(0.55*400e9/8/4), uint64(0.85*400e9/8/4)
	for dev, x := range s {
		for _, k := range []string{"port_xmit_data", "port_rcv_data"} {
			if v := x.Counters[k]; v < lo || v > hi {
				t.Errorf("%s %s = %d after 1 s, want %d..%d words", dev, k, v, lo, hi)
			}
		}
		if p := x.Counters["port_xmit_packets"]; p != x.Counters["unicast_xmit_packets"] || p < x.Counters["port_xmit_data"]*4/4200-1 || p > x.Counters["port_xmit_data"]*4/4200+1 {
			t.Errorf("%s: %d packets for %d words", dev, p, x.Counters["port_xmit_data"])
		}
		if x.Counters["symbol_error"] != 0 || x.Counters["hw_rx_write_requests"] != 250000 {
			t.Errorf("%s: symbol_error %d hw_rx_write_requests %d", dev, x.Counters["symbol_error"], x.Counters["hw_rx_write_requests"])
		}
	}

	for _, f := range []Fault{{"mlx5_2", 1, FaultPortDown}, {"mlx5_3", 1, FaultSymbolErrors}, {"mlx5_5", 1, FaultRcvErrors}, {"mlx5_5", 1, FaultRcvErrors}} {
		if err := st.Inject(f.Device, f.Port, f.Kind); err != nil {
			t.Fatal(err)
		}
	}
	wantFaults := []Fault{{"mlx5_2", 1, FaultPortDown}, {"mlx5_3", 1, FaultSymbolErrors}, {"mlx5_5", 1, FaultRcvErrors}}
	if got := st.Faults(); !reflect.DeepEqual(got, wantFaults) {
		t.Errorf("Faults() = %v, want %v", got, wantFaults)
	}
	before := s
	s = mustSample(t, c, t0.Add(2*time.Second))
	if x := s["mlx5_2"]; x.State != "DOWN" || x.PhysState != "Disabled" || x.RateGbps != 10 || x.Counters["link_downed"] != 1 || x.Telemetry().Up() {
		t.Errorf("mlx5_2 after port_down: %s/%s %d Gb/s link_downed %d", x.State, x.PhysState, x.RateGbps, x.Counters["link_downed"])
	}
	if err := st.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	after := mustSample(t, c, t0.Add(3*time.Second))
	if a, b := after["mlx5_2"].Counters["port_xmit_data"], before["mlx5_2"].Counters["port_xmit_data"]; a != b {
		t.Errorf("down port carried traffic: %d → %d", b, a)
	}
	if a, b := after["mlx5_0"].Counters["port_xmit_data"], before["mlx5_0"].Counters["port_xmit_data"]; a <= b {
		t.Errorf("up port carried no traffic: %d → %d", b, a)
	}
	if got := after["mlx5_3"].Counters["symbol_error"]; got != 600 {
		t.Errorf("symbol_error = %d after one 1 s Advance, want 600", got)
	}
	if got := after["mlx5_5"].Counters["port_rcv_errors"]; got != 600 || after["mlx5_5"].Counters["symbol_error"] != 0 {
		t.Errorf("port_rcv_errors = %d, symbol_error %d", got, after["mlx5_5"].Counters["symbol_error"])
	}

	// What the simulation writes is what the rules catch.
	var all []Sample
	for _, m := range []map[string]Sample{before, s, after} {
		for _, x := range m {
			all = append(all, x)
		}
	}
	r, fs := evaluate(t, t0.Add(3*time.Second), all)
	want := []finding{
		{"ib:mlx5_2/1", "ib_link_down", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_2/1", "ib_link_downed", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_3/1", "ib_symbol_error_fatal", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_5/1", "ib_port_rcv_error_rate", health.Degraded, health.ActionNone},
	}
	if r.Verdict != health.Unhealthy || !reflect.DeepEqual(fs, want) {
		t.Errorf("Evaluate = %s %v\nwant %v", r.Verdict, fs, want)
	}

	if err := st.Clear("mlx5_2", 1); err != nil {
		t.Fatal(err)
	}
	s = mustSample(t, c, t0.Add(4*time.Second))
	if x := s["mlx5_2"]; x.State != "ACTIVE" || x.PhysState != "LinkUp" || x.RateGbps != 400 || x.Counters["link_downed"] != 1 {
		t.Errorf("mlx5_2 after Clear: %s/%s %d Gb/s link_downed %d", x.State, x.PhysState, x.RateGbps, x.Counters["link_downed"])
	}
	if got := st.Faults(); !reflect.DeepEqual(got, wantFaults[1:]) {
		t.Errorf("Faults() after Clear = %v", got)
	}
	if err := st.ClearAll(); err != nil {
		t.Fatal(err)
	}
	if err := st.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	s = mustSample(t, c, t0.Add(5*time.Second))
	if got := st.Faults(); len(got) != 0 || s["mlx5_3"].Counters["symbol_error"] != 600 {
		t.Errorf("after ClearAll: faults %v, symbol_error %d (want it to stop at 600)", got, s["mlx5_3"].Counters["symbol_error"])
	}
}

func TestSimTreeErrors(t *testing.T) {
	st, _ := newSim(t, 2)
	for _, tt := range []struct {
		dev   string
		port  int
		kind  string
		field string
	}{
		{"", 1, FaultPortDown, "device"},
		{"mlx5_9", 1, FaultPortDown, "device"},
		{"mlx5_1", 2, FaultPortDown, "port"},
		{"mlx5_1", 1, "melt", "kind"},
		{"mlx5_1", 1, "", "kind"},
	} {
		err := st.Inject(tt.dev, tt.port, tt.kind)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != tt.field || !strings.HasPrefix(err.Error(), tt.field+": ") {
			t.Errorf("Inject(%q, %d, %q) = %v, want an InputError on %s", tt.dev, tt.port, tt.kind, err, tt.field)
		}
	}
	var ie *InputError
	if err := st.Clear("mlx5_7", 1); !errors.As(err, &ie) || ie.Field != "device" {
		t.Errorf("Clear(mlx5_7) = %v", err)
	}
	if _, err := NewSimTree(t.TempDir(), 0); err == nil {
		t.Error("NewSimTree with 0 devices succeeded")
	}

	// A foreign tree is never overwritten; a simulated one is replaced.
	foreign := t.TempDir()
	copyTree(t, "testdata/errors_t0", foreign)
	if _, err := NewSimTree(foreign, 2); err == nil || !strings.Contains(err.Error(), "not simulated") {
		t.Errorf("NewSimTree over a real tree = %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "class", "infiniband", "mlx5_4", "ports", "1", "state")); err != nil {
		t.Errorf("foreign tree touched: %v", err)
	}
	again, err := NewSimTree(st.Root(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if ss, err := New(again.Root()).Sample(t0); err != nil || len(ss) != 1 {
		t.Errorf("re-created tree: %d ports, %v; want 1", len(ss), err)
	}
}

func TestSimTreeSaturates(t *testing.T) {
	st, c := newSim(t, 1)
	if err := st.Inject("mlx5_0", 1, FaultSymbolErrors); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := st.Advance(10 * time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustSample(t, c, t0)["mlx5_0"].Counters["symbol_error"]; got != 65535 {
		t.Errorf("symbol_error = %d, want saturated at 65535", got)
	}
	// Repeated down/up cycles saturate link_downed at 255.
	for i := 0; i < 300; i++ {
		if err := st.Inject("mlx5_0", 1, FaultPortDown); err != nil {
			t.Fatal(err)
		}
		if err := st.Clear("mlx5_0", 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustSample(t, c, t0)["mlx5_0"].Counters["link_downed"]; got != 255 {
		t.Errorf("link_downed = %d, want saturated at 255", got)
	}
}

// TestSimTreeConcurrent samples while the tree advances and faults come and
// go: atomic writes mean no sample ever sees a torn or missing file.
func TestSimTreeConcurrent(t *testing.T) {
	st, c := newSim(t, 4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := st.Advance(100 * time.Millisecond); err != nil {
				t.Error(err)
				return
			}
			var err error
			switch i % 4 {
			case 0:
				err = st.Inject("mlx5_1", 1, FaultPortDown)
			case 1:
				err = st.Inject("mlx5_2", 1, FaultSymbolErrors)
			case 2:
				err = st.Clear("mlx5_1", 1)
			case 3:
				err = st.ClearAll()
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	last := map[string]uint64{}
	deadline := time.Now().Add(500 * time.Millisecond)
	for n := 0; time.Now().Before(deadline) || n < 20; n++ {
		ss, err := c.Sample(t0.Add(time.Duration(n) * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 4 {
			t.Fatalf("%d samples, want 4", len(ss))
		}
		for _, s := range ss {
			if len(s.FieldErrors) != 0 {
				t.Fatalf("%s: FieldErrors %v", s.Device, s.FieldErrors)
			}
			if s.State != "ACTIVE" && s.State != "DOWN" {
				t.Fatalf("%s: state %q", s.Device, s.State)
			}
			for _, k := range []string{"port_xmit_data", "symbol_error", "link_downed"} {
				key := s.Device + "/" + k
				if v := s.Counters[k]; v < last[key] {
					t.Fatalf("%s went backwards: %d → %d", key, last[key], v)
				}
				last[key] = s.Counters[k]
			}
		}
	}
	close(stop)
	wg.Wait()
	if last["mlx5_0/port_xmit_data"] == 0 {
		t.Error("no traffic observed")
	}
}
