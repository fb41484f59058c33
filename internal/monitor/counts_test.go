package monitor_test

import (
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/testclock"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Different events on one GPU count into their own incidents.
func TestEventCountsPerIncident(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	a.send(a.batch("", func(b *agentpb.Batch) {
		at := timestamppb.New(t0)
		b.HealthEvents = []*agentpb.HealthEvent{{EventTime: at, Component: "gpu0", Kind: "xid", Code: 79}}
		for range 3 {
			b.HealthEvents = append(b.HealthEvents, &agentpb.HealthEvent{EventTime: at, Component: "gpu0", Kind: "xid", Code: 13})
		}
	}))
	if inc := e.only("worker-0", "xid_drain"); inc.Count != 1 || inc.Summary != "xid 79 (drain) on gpu0" {
		t.Errorf("xid_drain = %+v, want count 1", *inc)
	}
	if inc := e.only("worker-0", "xid_application"); inc.Count != 3 || inc.Summary != "xid 13 (application) on gpu0 x3" {
		t.Errorf("xid_application = %+v, want count 3", *inc)
	}
}
