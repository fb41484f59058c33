package fleet_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/testwait"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// TestMisbehavingAgentSlowedOthersNot: an agent sending far past the
// per-agent batch rate is read at that rate (its sends wait on flow
// control), while a well-behaved agent's batch sent in the middle of the
// flood is acked at once.
func TestMisbehavingAgentSlowedOthersNot(t *testing.T) {
	const (
		rate    = 50
		burst   = 10
		batches = 110 // 2 s of reading at the limit after the burst
	)
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{MaxBatchRate: rate, MaxBatchBurst: burst}, nil)
	good := startAgent(t, c.addr, "worker-good", uplink.BufferOptions{})
	testwait.For(t, "good agent connected", good.client.Connected)

	flood := raw(t, c.addr)
	if err := flood.Send(hello("worker-flood")); err != nil {
		t.Fatal(err)
	}
	if _, err := flood.Recv(); err != nil { // the handshake
		t.Fatal(err)
	}
	var acked atomic.Uint64
	recvDone := make(chan error, 1)
	go func() {
		for {
			m, err := flood.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			if a := m.GetAck(); a != nil {
				acked.Store(a.GetSequence())
			}
		}
	}()
	start := time.Now()
	sendDone := make(chan error, 1)
	go func() {
		for i := range uint64(batches) {
			b := &agentpb.Batch{Sequence: i + 1, CreateTime: timestamppb.Now()}
			if err := flood.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: b}}); err != nil {
				sendDone <- err
				return
			}
		}
		sendDone <- nil
	}()
	testwait.For(t, "flood throttled", func() bool { return value(c.m.RateLimited) > 0 })

	sent := time.Now()
	good.add(1, "")
	testwait.For(t, "good agent's batch acked", func() bool { return good.buf.Acked() == 1 })
	if d := time.Since(sent); d > time.Second {
		t.Errorf("the well-behaved agent's batch took %v to be acked during the flood", d)
	}
	if a := acked.Load(); a >= batches {
		t.Fatalf("the flood was all acked (%d) before the good agent's batch; not throttled", a)
	}

	testwait.For(t, "flood acked", func() bool { return acked.Load() == batches })
	elapsed := time.Since(start)
	// 100 batches past the burst at 50/s take 2 s; allow for scheduling.
	if min := time.Duration(float64(batches-burst)/rate*float64(time.Second)) * 9 / 10; elapsed < min {
		t.Errorf("flood of %d batches acked in %v; the limit (%d/s, burst %d) allows no less than %v", batches, elapsed, rate, burst, min)
	}
	if err := <-sendDone; err != nil {
		t.Fatalf("the throttled agent's stream ended: %v", err)
	}
	if limited := value(c.m.RateLimited); limited < batches-burst-5 {
		t.Errorf("rate-limited batches = %v; want about %d", limited, batches-burst)
	}
	_ = flood.CloseSend()
	select {
	case <-recvDone:
	case <-time.After(5 * time.Second):
		t.Error("the throttled stream did not end after CloseSend")
	}
}
