package fleet

import (
	"context"

	"golang.org/x/time/rate"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// IngestFunc opens a session for node as Connect would, without a stream,
// and returns what applies one batch on it: the ingest path alone.
func (f *Fleet) IngestFunc(node string) func(*agentpb.Batch) error {
	n := f.node(node)
	s := newSession(context.Background(), func(error) {}, n, discard{}, f.overload, rate.NewLimiter(rate.Inf, 0))
	s.flushing = false
	n.mu.Lock()
	n.session, n.bootID = s, "boot-"+node
	n.inventory = telemetry.Inventory{GPUs: make([]telemetry.GPUInfo, 8)}
	n.mu.Unlock()
	return func(b *agentpb.Batch) error { return f.ingest(s, b) }
}

// RunUsage is the fleet's usage ledger's RunUsage.
func (f *Fleet) RunUsage(runID string, final bool) *run.Usage {
	return f.opts.Usage.RunUsage(runID, final)
}

// SetOverloadFactor sets the overload factor as the scheduling latency
// watcher would.
func (f *Fleet) SetOverloadFactor(factor int) { f.overload.factor.Store(int32(factor)) }

// discard is a stream that drops what is sent.
type discard struct{}

func (discard) Send(*agentpb.ConnectResponse) error { return nil }
