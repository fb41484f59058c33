package monitor_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/testclock"
	"github.com/sopilot/sopilot/internal/testwait"
)

// drainedThenRestarted drains worker-0 for three XID 79s at t0, stops the
// controller and starts a new one on the same store a minute later, with
// Slurm as the drain left it.
func drainedThenRestarted(t *testing.T) (before *store.Incident, e2 *env) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "db")
	clk := testclock.New(t0)
	e := newEnv(t, db, clk)
	a := e.agent("worker-0")
	a.healthy()
	a.events("gpu1", "xid", 79, 3)
	before = e.only("worker-0", "xid_drain")
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return i.Action == "drained" })
	drained := e.slurm.node("worker-0")
	a.stopF()
	e.stop()

	clk.Advance(time.Minute)
	e2 = newEnv(t, db, clk)
	e2.slurm.mu.Lock()
	e2.slurm.nodes["worker-0"] = &drained
	e2.slurm.mu.Unlock()
	e2.fl.SetSlurmNodes(context.Background(), e2.slurm.snapshot())
	if got := e2.incidents(store.IncidentQuery{OpenOnly: true}); len(got) != 1 || got[0].ID != before.ID {
		t.Fatalf("open incidents after restart = %s", dump(got))
	}
	return before, e2
}

// A restart does not shorten the evidence window: the incident reloaded
// stays open, and its node drained, until EventWindow after its last
// evidence, then ClearFor and a verification as usual.
func TestRestartKeepsEvidenceWindow(t *testing.T) {
	before, e := drainedThenRestarted(t)
	a := e.agent("worker-0")
	a.run(time.Minute)
	e.settle()
	if got := e.only("worker-0", "xid_drain"); got.ID != before.ID || !got.Open() {
		t.Fatalf("2 minutes after an XID 79, the restart resolved its incident: %+v", *got)
	}
	a.run(12 * time.Minute) // t0+14m
	e.settle()
	if got := e.slurm.ops(); len(got) != 0 || a.h.count() != 0 {
		t.Fatalf("14 minutes after an XID 79: slurm calls %+v, %d checks; want none", got, a.h.count())
	}
	if got := e.only("worker-0", "xid_drain"); !got.Open() {
		t.Fatalf("14 minutes after an XID 79: %+v", *got)
	}
	a.run(2 * time.Minute) // t0+16m
	got := e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	if got.ID != before.ID || got.ResolvedBy != "evidence cleared" || got.ResolveTime.Before(t0.Add(15*time.Minute)) {
		t.Errorf("resolved = %+v", *got)
	}
	a.run(2*time.Minute + 10*time.Second)
	testwait.For(t, "resume", func() bool { return len(e.slurm.ops()) == 1 })
	if c := e.slurm.ops()[0]; c.Op != "resume" {
		t.Errorf("slurm call = %+v", c)
	}
}

// The same evidence after a restart updates the incident opened before it.
func TestRestartSameEvidenceSameIncident(t *testing.T) {
	before, e := drainedThenRestarted(t)
	a := e.agent("worker-0")
	a.events("gpu1", "xid", 79, 2)
	after := e.only("worker-0", "xid_drain")
	if after.ID != before.ID || after.Count != 5 || !after.FirstSeen.Equal(before.FirstSeen) || !after.Open() || after.Action != "drained" {
		t.Errorf("after restart = %+v\nbefore = %+v", *after, *before)
	}
	if all := e.incidents(store.IncidentQuery{}); len(all) != 1 {
		t.Errorf("incidents = %s", dump(all))
	}
	a.run(20 * time.Second)
	e.settle()
	if got := e.slurm.ops(); len(got) != 0 {
		t.Errorf("slurm calls after restart on a node already drained by us: %+v", got)
	}
}

// restartedWithoutIncidentInReason is drainedThenRestarted with Slurm's
// reason stripped of its incident id, as an operator who edits the text (or
// an older controller) leaves it: the monitor must know the drain's
// incident from its own store, not from Slurm's text.
func restartedWithoutIncidentInReason(t *testing.T) (*store.Incident, *env) {
	t.Helper()
	before, e := drainedThenRestarted(t)
	e.slurm.mu.Lock()
	n := e.slurm.nodes["worker-0"]
	n.Reason = strings.Replace(n.Reason, " incident="+before.ID, "", 1)
	if n.Reason == "" || strings.Contains(n.Reason, "incident=") {
		e.slurm.mu.Unlock()
		t.Fatalf("reason %q", n.Reason)
	}
	e.slurm.mu.Unlock()
	e.fl.SetSlurmNodes(context.Background(), e.slurm.snapshot())
	return before, e
}

// After a restart, the resume of a node drained before it is noted on the
// incident that drained it.
func TestRestartResumeNotedOnDrainingIncident(t *testing.T) {
	before, e := restartedWithoutIncidentInReason(t)
	a := e.agent("worker-0")
	a.run(16 * time.Minute)
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	a.run(2*time.Minute + 10*time.Second)
	testwait.For(t, "resume", func() bool { return len(e.slurm.ops()) == 1 })
	got := e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool {
		return strings.Contains(i.Action, "resumed after verification")
	})
	if got.ID != before.ID || !strings.HasPrefix(got.Action, "drained; ") {
		t.Errorf("incident after the resume = %+v", *got)
	}
}

// After a restart, a failed verification relabels the drain with the
// incident that caused it.
func TestRestartVerificationFailureKeepsIncident(t *testing.T) {
	before, e := restartedWithoutIncidentInReason(t)
	a := e.agent("worker-0")
	a.h.set(200)
	a.run(16 * time.Minute)
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	a.run(2*time.Minute + 10*time.Second)
	want := "[sopilot] verify failed: busbw 200.0 GB/s at 16 GiB < 460 incident=" + before.ID
	testwait.For(t, "reason updated", func() bool { return e.slurm.node("worker-0").Reason == want })
}
