package fleet_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/internal/testwait"
)

type countingObserver struct{ batches, events atomic.Int64 }

func (o *countingObserver) ObserveBatch(_ string, _ int, b *telemetry.Batch, _ []string) {
	o.batches.Add(1)
	o.events.Add(int64(len(b.Events)))
}

// TestOverloadSlowsAgentsKeepsEvents: while the controller is short of
// CPU its acks ask agents to sample less often, telemetry-only batches
// skip the monitor (counted), batches with health events never do, and
// every batch is still acked; when the overload ends, the acks stop
// asking.
func TestOverloadSlowsAgentsKeepsEvents(t *testing.T) {
	obs := &countingObserver{}
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{Observer: obs}, nil)
	a := startAgent(t, c.addr, "worker-0", uplink.BufferOptions{})
	testwait.For(t, "agent connected", a.client.Connected)
	if d := a.client.MinSampleInterval(); d != 0 {
		t.Fatalf("not overloaded, yet the agent was asked to sample every %v", d)
	}

	c.fleet.SetOverloadFactor(4)
	a.addTelemetry()
	testwait.For(t, "telemetry acked", func() bool { return a.buf.Acked() == 1 })
	if d := a.client.MinSampleInterval(); d != 4*time.Second {
		t.Fatalf("overloaded ×4: agent asked to sample every %v, want 4s", d)
	}
	for range 5 {
		a.addTelemetry()
	}
	testwait.For(t, "telemetry acked", func() bool { return a.buf.Acked() == 6 })
	if got := obs.batches.Load(); got != 1 {
		t.Errorf("monitor saw %d of 6 telemetry-only batches within a second at factor 4; want 1", got)
	}
	if got := value(c.m.Coarsened); got != 5 {
		t.Errorf("coarsened = %v, want 5", got)
	}
	for range 3 {
		a.add(1, "") // one health event each
	}
	testwait.For(t, "events acked", func() bool { return a.buf.Acked() == 9 })
	if got := obs.events.Load(); got != 3 {
		t.Errorf("monitor saw %d of 3 health events while overloaded", got)
	}
	if got := len(c.events.get("worker-0")); got != 3 {
		t.Errorf("%d of 3 health events recorded while overloaded", got)
	}

	c.fleet.SetOverloadFactor(1)
	a.addTelemetry()
	testwait.For(t, "acked after the overload", func() bool { return a.buf.Acked() == 10 })
	if d := a.client.MinSampleInterval(); d != 0 {
		t.Errorf("overload over, yet the agent is asked to sample every %v", d)
	}
}
