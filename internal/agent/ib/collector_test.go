package ib

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func sample(t *testing.T, tree string, now time.Time) []Sample {
	t.Helper()
	ss, err := New(filepath.Join("testdata", tree)).Sample(now)
	if err != nil {
		t.Fatalf("Sample(%s): %v", tree, err)
	}
	return ss
}

func byName(ss []Sample) map[string]Sample {
	m := make(map[string]Sample, len(ss))
	for _, s := range ss {
		m[s.Device] = s
	}
	return m
}

func fields(fes []FieldError) []string {
	var out []string
	for _, fe := range fes {
		out = append(out, fe.Field)
	}
	return out
}

// healthyCounters are the counter file names (and hw_ names) of the NDR
// fixtures.
var (
	ibCounterNames = []string{"VL15_dropped", "excessive_buffer_overrun_errors", "link_downed", "link_error_recovery",
		"local_link_integrity_errors", "multicast_rcv_packets", "multicast_xmit_packets", "port_rcv_constraint_errors",
		"port_rcv_data", "port_rcv_errors", "port_rcv_packets", "port_rcv_remote_physical_errors",
		"port_rcv_switch_relay_errors", "port_xmit_constraint_errors", "port_xmit_data", "port_xmit_discards",
		"port_xmit_packets", "port_xmit_wait", "symbol_error", "unicast_rcv_packets", "unicast_xmit_packets"}
	ibHWNames = []string{"hw_duplicate_request", "hw_implied_nak_seq_err", "hw_local_ack_timeout_err", "hw_out_of_buffer",
		"hw_out_of_sequence", "hw_packet_seq_err", "hw_req_cqe_error", "hw_req_cqe_flush_error",
		"hw_req_remote_access_errors", "hw_req_remote_invalid_request", "hw_resp_cqe_error", "hw_resp_cqe_flush_error",
		"hw_resp_local_length_error", "hw_resp_remote_access_errors", "hw_rnr_nak_retry_err", "hw_rx_atomic_requests",
		"hw_rx_read_requests", "hw_rx_write_requests"}
)

func TestInventoryHealthy(t *testing.T) {
	inv, err := New("testdata/healthy").Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) != 8 {
		t.Fatalf("%d ports, want 8", len(inv))
	}
	want0 := PortInfo{Device: "mlx5_0", Port: 1, RateGbps: 400, RateMbps: 400000, LinkLayer: "InfiniBand",
		NodeGUID: "a088:c203:004a:1c20", FirmwareVersion: "28.39.1002", NodeDesc: "worker-0 mlx5_0", HCAType: "MT4129"}
	if !reflect.DeepEqual(inv[0], want0) {
		t.Errorf("inv[0] = %+v\nwant     %+v", inv[0], want0)
	}
	want7 := PortInfo{Device: "mlx5_7", Port: 1, RateGbps: 400, RateMbps: 400000, LinkLayer: "InfiniBand",
		NodeGUID: "a088:c203:0051:1c2e", FirmwareVersion: "28.39.1002", NodeDesc: "worker-0 mlx5_7", HCAType: "MT4129"}
	if !reflect.DeepEqual(inv[7], want7) {
		t.Errorf("inv[7] = %+v\nwant     %+v", inv[7], want7)
	}
	for i, p := range inv {
		if want := "mlx5_" + string(rune('0'+i)); p.Device != want || p.Port != 1 || len(p.FieldErrors) != 0 {
			t.Errorf("inv[%d] = %s/%d errors %v, want %s/1 and none", i, p.Device, p.Port, p.FieldErrors, want)
		}
	}
}

func TestSampleHealthy(t *testing.T) {
	ss := sample(t, "healthy", t0)
	if len(ss) != 8 {
		t.Fatalf("%d samples, want 8", len(ss))
	}
	for i, s := range ss {
		if want := "mlx5_" + string(rune('0'+i)); s.Device != want || s.Port != 1 {
			t.Errorf("sample %d is %s/%d, want %s/1", i, s.Device, s.Port, want)
		}
		if !s.Time.Equal(t0) || s.State != "ACTIVE" || s.PhysState != "LinkUp" || s.RateGbps != 400 || s.RateMbps != 400000 || s.LinkLayer != "InfiniBand" {
			t.Errorf("%s: %v %s/%s %d Gb/s %d Mb/s %s", s.Device, s.Time, s.State, s.PhysState, s.RateGbps, s.RateMbps, s.LinkLayer)
		}
		if len(s.FieldErrors) != 0 {
			t.Errorf("%s: FieldErrors %v", s.Device, s.FieldErrors)
		}
		if got, want := slices.Sorted(maps.Keys(s.Counters)), slices.Sorted(slices.Values(slices.Concat(ibCounterNames, ibHWNames))); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: counters %v\nwant %v", s.Device, got, want)
		}
		if !s.HealthComplete() {
			t.Errorf("%s: HealthComplete false", s.Device)
		}
	}
	c := ss[3].Counters
	for k, want := range map[string]uint64{
		"port_rcv_data":         1622486432109933,
		"port_xmit_data":        1636102678901273,
		"port_rcv_packets":      1534991894143,
		"unicast_xmit_packets":  1542038336225,
		"link_downed":           1,
		"symbol_error":          0,
		"port_xmit_discards":    4,
		"port_xmit_wait":        2874427090,
		"multicast_rcv_packets": 41270,
		"hw_rx_write_requests":  1205186727,
		"hw_lifespan":           0, // a setting, not collected
	} {
		if got, ok := c[k]; got != want || ok != (k != "hw_lifespan") {
			t.Errorf("mlx5_3 %s = %d (present %v), want %d", k, got, ok, want)
		}
	}
	h := ss[3].Telemetry()
	wantH := telemetry.IBPortSample{Time: t0, Device: "mlx5_3", Port: 1, State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400,
		Counters: telemetry.IBCounters{LinkDowned: 1}}
	if !reflect.DeepEqual(h, wantH) || !h.Up() {
		t.Errorf("Telemetry() = %+v, want %+v", h, wantH)
	}
}

func TestSamplePortDown(t *testing.T) {
	healthy := byName(sample(t, "healthy", t0))
	down := byName(sample(t, "port_down", t0.Add(30*time.Second)))
	if len(down) != 3 {
		t.Fatalf("%d samples, want 3", len(down))
	}
	for _, tt := range []struct {
		dev, state, phys string
		rate             int64
		linkDowned       uint64
	}{
		{"mlx5_0", "ACTIVE", "LinkUp", 400, 0},
		{"mlx5_1", "DOWN", "Disabled", 10, 2},
		{"mlx5_2", "DOWN", "Polling", 10, 1},
	} {
		s := down[tt.dev]
		if s.State != tt.state || s.PhysState != tt.phys || s.RateGbps != tt.rate || s.Counters["link_downed"] != tt.linkDowned {
			t.Errorf("%s: %s/%s %d Gb/s link_downed %d; want %s/%s %d Gb/s link_downed %d", tt.dev, s.State, s.PhysState,
				s.RateGbps, s.Counters["link_downed"], tt.state, tt.phys, tt.rate, tt.linkDowned)
		}
		if got, want := s.Counters["link_downed"]-healthy[tt.dev].Counters["link_downed"], map[bool]uint64{true: 1, false: 0}[tt.state == "DOWN"]; got != want {
			t.Errorf("%s: link_downed rose by %d, want %d", tt.dev, got, want)
		}
		if len(s.FieldErrors) != 0 || !s.HealthComplete() {
			t.Errorf("%s: FieldErrors %v, complete %v", tt.dev, s.FieldErrors, s.HealthComplete())
		}
		if s.Telemetry().Up() != (tt.state == "ACTIVE") {
			t.Errorf("%s: Up() = %v", tt.dev, s.Telemetry().Up())
		}
	}
}

type finding struct {
	Component, Rule string
	Verdict         health.Verdict
	Action          health.Action
}

func evaluate(t *testing.T, now time.Time, ss ...[]Sample) (health.Result, []finding) {
	t.Helper()
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	ev := health.Evidence{Node: "worker-0", LastReport: now}
	for _, l := range ss {
		for _, s := range l {
			if !s.HealthComplete() {
				t.Fatalf("%s/%d: incomplete sample fed to the rules", s.Device, s.Port)
			}
			ev.IBPorts = append(ev.IBPorts, s.Telemetry())
		}
	}
	r := health.Evaluate(now, ev, th)
	var fs []finding
	for _, f := range r.Findings {
		fs = append(fs, finding{f.Component, f.Rule, f.Verdict, f.Action})
	}
	return r, fs
}

func TestHealthPortDown(t *testing.T) {
	before := sample(t, "healthy", t0)[:3]
	after := sample(t, "port_down", t0.Add(30*time.Second))
	r, fs := evaluate(t, t0.Add(31*time.Second), before, after)
	want := []finding{
		{"ib:mlx5_1/1", "ib_link_down", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_1/1", "ib_link_downed", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_2/1", "ib_link_down", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_2/1", "ib_link_downed", health.Unhealthy, health.ActionDrainAfterJob},
	}
	if r.Verdict != health.Unhealthy || r.Action != health.ActionDrainAfterJob || !reflect.DeepEqual(fs, want) {
		t.Errorf("Evaluate = %s/%s %v\nwant UNHEALTHY/drain_after_job %v", r.Verdict, r.Action, fs, want)
	}
	if !strings.Contains(r.Findings[0].Reason, "DOWN/Disabled") {
		t.Errorf("reason %q does not show the port state", r.Findings[0].Reason)
	}

	// The healthy reading alone is healthy.
	r, fs = evaluate(t, t0.Add(time.Second), sample(t, "healthy", t0))
	if r.Verdict != health.Healthy || len(fs) != 0 {
		t.Errorf("healthy tree: %s %v", r.Verdict, fs)
	}
}

func TestHealthRisingErrors(t *testing.T) {
	s0 := sample(t, "errors_t0", t0)
	s1 := sample(t, "errors_t1", t0.Add(10*time.Second))
	s2 := sample(t, "errors_t2", t0.Add(20*time.Second))
	for i, tt := range []struct {
		sym, rcv uint64
		s        []Sample
	}{{3, 0, s0}, {115, 20, s1}, {480, 260, s2}} {
		if len(tt.s) != 1 || tt.s[0].Device != "mlx5_4" || tt.s[0].Counters["symbol_error"] != tt.sym || tt.s[0].Counters["port_rcv_errors"] != tt.rcv {
			t.Fatalf("errors_t%d: %+v, want mlx5_4 symbol_error %d port_rcv_errors %d", i, tt.s, tt.sym, tt.rcv)
		}
	}

	r, fs := evaluate(t, t0, s0)
	if r.Verdict != health.Healthy || len(fs) != 0 {
		t.Errorf("t0: %s %v, want HEALTHY and no findings", r.Verdict, fs)
	}
	// t0→t1: 112 symbol errors in 10 s (11.2/s > 10/s), 112 in the hour (≤ 120).
	r, fs = evaluate(t, t0.Add(10*time.Second), s0, s1)
	want := []finding{{"ib:mlx5_4/1", "ib_symbol_error_rate", health.Degraded, health.ActionNone}}
	if r.Verdict != health.Degraded || !reflect.DeepEqual(fs, want) {
		t.Errorf("t1: %s %v, want DEGRADED %v", r.Verdict, fs, want)
	}
	// t1→t2: 477 symbol errors in the hour (> 120); port_rcv_errors at 24/s.
	r, fs = evaluate(t, t0.Add(20*time.Second), s0, s1, s2)
	want = []finding{
		{"ib:mlx5_4/1", "ib_symbol_error_fatal", health.Unhealthy, health.ActionDrainAfterJob},
		{"ib:mlx5_4/1", "ib_port_rcv_error_rate", health.Degraded, health.ActionNone},
	}
	if r.Verdict != health.Unhealthy || r.Action != health.ActionDrainAfterJob || !reflect.DeepEqual(fs, want) {
		t.Errorf("t2: %s/%s %v, want UNHEALTHY %v", r.Verdict, r.Action, fs, want)
	}
	if !strings.Contains(r.Findings[1].Reason, "24.0/s") {
		t.Errorf("rcv reason %q, want the 24.0/s rate", r.Findings[1].Reason)
	}
}

func TestSampleRoCE(t *testing.T) {
	ss := sample(t, "roce", t0)
	if len(ss) != 2 {
		t.Fatalf("%d samples, want 2", len(ss))
	}
	for i, want := range []struct {
		rate   int64
		cnp    uint64
		oob    uint64
		icrcOK bool
	}{{100, 1845, 37, true}, {25, 1846, 37, true}} {
		s := ss[i]
		if s.LinkLayer != LinkLayerEthernet || s.State != "ACTIVE" || s.PhysState != "LinkUp" || s.RateGbps != want.rate {
			t.Errorf("%s: %s %s/%s %d Gb/s, want Ethernet ACTIVE/LinkUp %d", s.Device, s.LinkLayer, s.State, s.PhysState, s.RateGbps, want.rate)
		}
		if s.Counters["hw_np_cnp_sent"] != want.cnp || s.Counters["hw_out_of_buffer"] != want.oob {
			t.Errorf("%s: hw_np_cnp_sent %d hw_out_of_buffer %d", s.Device, s.Counters["hw_np_cnp_sent"], s.Counters["hw_out_of_buffer"])
		}
		if _, ok := s.Counters["hw_rx_icrc_encapsulated"]; !ok || len(s.Counters) != 21+18+10 {
			t.Errorf("%s: %d counters, want 49 incl. hw_rx_icrc_encapsulated", s.Device, len(s.Counters))
		}
		if len(s.FieldErrors) != 0 {
			t.Errorf("%s: FieldErrors %v", s.Device, s.FieldErrors)
		}
	}
	inv, err := New("testdata/roce").Inventory()
	if err != nil || len(inv) != 2 || inv[1].LinkLayer != "Ethernet" || inv[1].RateGbps != 25 || inv[1].HCAType != "MT4127" || inv[1].FirmwareVersion != "26.36.1010" {
		t.Errorf("Inventory = %+v, %v", inv, err)
	}
}

func TestSampleBroken(t *testing.T) {
	healthy := byName(sample(t, "healthy", t0))
	ss := byName(sample(t, "broken", t0))

	s := ss["mlx5_0"]
	if got, want := fields(s.FieldErrors), []string{"counters/port_rcv_errors", "counters/symbol_error"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mlx5_0 FieldErrors %v, want fields %v", s.FieldErrors, want)
	}
	if msg := s.FieldErrors[0].Error(); !strings.Contains(msg, "counters/port_rcv_errors") || !strings.Contains(msg, `"12x4\n"`) {
		t.Errorf("garbage error %q does not name the file and content", msg)
	}
	if !errors.Is(s.FieldErrors[1], fs.ErrNotExist) {
		t.Errorf("missing error %v is not ErrNotExist", s.FieldErrors[1])
	}
	for _, k := range []string{"port_rcv_errors", "symbol_error", "port_xmit_wait"} {
		if _, ok := s.Counters[k]; ok {
			t.Errorf("mlx5_0 %s present, want omitted", k)
		}
	}
	if len(s.Counters) != 21-3+18 || s.Counters["port_rcv_data"] != healthy["mlx5_0"].Counters["port_rcv_data"] ||
		s.State != "ACTIVE" || s.PhysState != "LinkUp" || s.RateGbps != 400 {
		t.Errorf("mlx5_0 rest not intact: %d counters, %+v", len(s.Counters), s)
	}
	if s.HealthComplete() {
		t.Error("mlx5_0 HealthComplete true without symbol_error")
	}

	s = ss["mlx5_1"]
	if got, want := fields(s.FieldErrors), []string{"state", "phys_state"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mlx5_1 FieldErrors %v, want fields %v", s.FieldErrors, want)
	}
	if !strings.Contains(s.FieldErrors[0].Error(), `"ACTIVE\n"`) || !errors.Is(s.FieldErrors[1], fs.ErrNotExist) {
		t.Errorf("mlx5_1 FieldErrors %v", s.FieldErrors)
	}
	if s.State != "" || s.PhysState != "" || s.RateGbps != 3 || s.RateMbps != 2500 || len(s.Counters) != 21 ||
		s.Counters["port_xmit_data"] != healthy["mlx5_1"].Counters["port_xmit_data"] || s.HealthComplete() {
		t.Errorf("mlx5_1 = %+v", s)
	}

	inv, err := New("testdata/broken").Inventory()
	if err != nil || len(inv) != 2 {
		t.Fatalf("Inventory = %+v, %v", inv, err)
	}
	if got := fields(inv[1].FieldErrors); !reflect.DeepEqual(got, []string{"node_guid"}) || inv[1].NodeGUID != "" || inv[1].FirmwareVersion != "28.39.1002" || inv[1].RateGbps != 3 {
		t.Errorf("inv[1] = %+v", inv[1])
	}
	if len(inv[0].FieldErrors) != 0 || inv[0].NodeGUID != "a088:c203:004a:1c20" {
		t.Errorf("inv[0] = %+v", inv[0])
	}
}

func TestNoInfiniBand(t *testing.T) {
	dir := t.TempDir()
	c := New(dir)
	ss, err := c.Sample(t0)
	if err != nil || ss != nil {
		t.Errorf("Sample without class/infiniband = %v, %v; want none, nil", ss, err)
	}
	inv, err := c.Inventory()
	if err != nil || len(inv) != 0 {
		t.Errorf("Inventory without class/infiniband = %v, %v", inv, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "class", "infiniband"), 0o755); err != nil {
		t.Fatal(err)
	}
	if ss, err := New(dir).Sample(t0); err != nil || ss != nil {
		t.Errorf("Sample with an empty class/infiniband = %v, %v", ss, err)
	}
	if c := New(""); c.root != "/sys/class/infiniband" {
		t.Errorf(`New("") reads %s`, c.root)
	}
}

func TestDeviceWithoutPorts(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/errors_t0", dir)
	if err := os.MkdirAll(filepath.Join(dir, "class", "infiniband", "mlx5_9"), 0o755); err != nil {
		t.Fatal(err)
	}
	ss, err := New(dir).Sample(t0)
	if err == nil || !strings.Contains(err.Error(), "mlx5_9") || len(ss) != 1 || ss[0].Device != "mlx5_4" {
		t.Errorf("Sample = %v, %v; want mlx5_4 and an error naming mlx5_9", ss, err)
	}
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRescan(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/errors_t0", dir)
	c := New(dir)
	if ss, err := c.Sample(t0); err != nil || len(ss) != 1 || len(ss[0].FieldErrors) != 0 {
		t.Fatalf("first Sample = %+v, %v", ss, err)
	}
	counters := filepath.Join(dir, "class", "infiniband", "mlx5_4", "ports", "1", "counters")
	if err := os.Remove(filepath.Join(counters, "VL15_dropped")); err != nil {
		t.Fatal(err)
	}
	ss, _ := c.Sample(t0.Add(time.Second))
	if got := fields(ss[0].FieldErrors); !reflect.DeepEqual(got, []string{"counters/VL15_dropped"}) || !errors.Is(ss[0].FieldErrors[0], fs.ErrNotExist) {
		t.Errorf("after removing VL15_dropped: FieldErrors %v", ss[0].FieldErrors)
	}
	// The vanished file made the collector list again: it is no longer expected.
	ss, _ = c.Sample(t0.Add(2 * time.Second))
	if _, ok := ss[0].Counters["VL15_dropped"]; ok || len(ss[0].FieldErrors) != 0 || len(ss[0].Counters) != 21-1+18 {
		t.Errorf("after the rescan: %d counters, FieldErrors %v", len(ss[0].Counters), ss[0].FieldErrors)
	}

	// A new device shows up at the next periodic listing, not before.
	copyTree(t, "testdata/healthy/class/infiniband/mlx5_0", filepath.Join(dir, "class", "infiniband", "mlx5_0"))
	if ss, _ := c.Sample(t0.Add(3 * time.Second)); len(ss) != 1 {
		t.Errorf("%d samples before the rescan interval, want 1", len(ss))
	}
	if ss, _ := c.Sample(t0.Add(2*time.Second + RescanInterval)); len(ss) != 2 || ss[0].Device != "mlx5_0" {
		t.Errorf("after the rescan interval: %d samples, want mlx5_0 and mlx5_4", len(ss))
	}

	// Inventory lists by itself; a clock that steps back lists again.
	copyTree(t, "testdata/healthy/class/infiniband/mlx5_1", filepath.Join(dir, "class", "infiniband", "mlx5_1"))
	if inv, err := c.Inventory(); err != nil || len(inv) != 3 {
		t.Errorf("Inventory = %d ports, %v; want 3", len(inv), err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "class", "infiniband", "mlx5_0")); err != nil {
		t.Fatal(err)
	}
	if ss, _ := c.Sample(t0); len(ss) != 2 || ss[0].Device != "mlx5_1" || len(ss[0].FieldErrors) != 0 {
		t.Errorf("after the clock stepped back: %+v, want mlx5_1 and mlx5_4", ss)
	}
}

func TestSampleAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	c := New("testdata/healthy")
	if _, err := c.Sample(t0); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := c.Sample(t0); err != nil {
			t.Fatal(err)
		}
	})
	// The result slice and one map (with its groups) per port; no per-file
	// allocation.
	if allocs > 1+8*8 {
		t.Errorf("Sample allocates %.0f times for 8 ports", allocs)
	}
	t.Logf("%.0f allocations per Sample of 8 ports", allocs)
}

func BenchmarkSample8Ports(b *testing.B) {
	c := New("testdata/healthy")
	if _, err := c.Sample(t0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ss, err := c.Sample(t0)
		if err != nil || len(ss) != 8 {
			b.Fatal(len(ss), err)
		}
	}
}
