package fleet_test

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// healthyBatch is one second of a healthy 8-GPU, 8-port node.
func healthyBatch(seq uint64, at time.Time) *agentpb.Batch {
	ts := timestamppb.New(at)
	b := &agentpb.Batch{Sequence: seq, CreateTime: ts}
	for i := range 8 {
		u, mem, e := float64(50+i), int64(60+i)<<30, seq*450_000
		zero := uint64(0)
		b.GpuSamples = append(b.GpuSamples, &agentpb.GpuSample{SampleTime: ts, Index: int32(i), Uuid: fmt.Sprintf("GPU-%d", i),
			SmUtilizationPercent: &u, MemoryUsedBytes: &mem, EnergyMillijoules: &e, ThrottleReasons: &zero,
			EccVolatileCorrected: &zero, PcieReplayCount: &zero, NvlinkErrorCount: &zero})
		b.IbSamples = append(b.IbSamples, &agentpb.IbSample{SampleTime: ts, Device: fmt.Sprintf("mlx5_%d", i), Port: 1,
			State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400, Counters: &agentpb.IbCounters{PortRcvData: seq}})
	}
	return b
}

// BenchmarkIngest is the controller's work for one healthy batch once it is
// decoded, with the health monitor attached as in the controller. The
// batches are built before the timer starts.
func BenchmarkIngest(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "db"), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	clock := func() time.Time { return now }
	late := &lateMonitor{} // the monitor reads the fleet: bound below
	fl, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{Now: clock, Observer: late})
	if err != nil {
		b.Fatal(err)
	}
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		b.Fatal(err)
	}
	mon, err := monitor.New(monitor.Config{Thresholds: th, Now: clock}, fl, st, nil, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	late.Monitor = mon
	ingest := fl.IngestFunc("bench-0")
	batches := make([]*agentpb.Batch, b.N)
	for i := range batches {
		batches[i] = healthyBatch(uint64(i+1), t0.Add(time.Duration(i)*time.Second))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i, bt := range batches {
		now = t0.Add(time.Duration(i) * time.Second)
		if err := ingest(bt); err != nil {
			b.Fatal(err)
		}
	}
}

// lateMonitor is the monitor as the fleet reaches it before it is built.
type lateMonitor struct{ *monitor.Monitor }
