package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// viewsFleet is a fleet of reporting nodes for the monitor's pass.
type viewsFleet struct{ views []fleet.NodeView }

func (f *viewsFleet) Summaries() []fleet.NodeView      { return f.views }
func (f *viewsFleet) SetVerdict(string, fleet.Verdict) {}
func (f *viewsFleet) RunCommand(context.Context, string, string, map[string]string) (*agentpb.CommandResult, error) {
	return nil, errors.New("no agents here")
}

// hourBatch is what an 8-GPU, 8-port node reports at t: every GPU field
// and IB counter set, as hack/ingestbench's agents send. With errs, every
// error counter the rules read grows with every batch (a faulty node);
// else they stand still (a healthy one).
func hourBatch(node string, n uint64, t time.Time, errs bool) *agentpb.Batch {
	e := uint64(0)
	if errs {
		e = n
	}
	ts := timestamppb.New(t)
	b := &agentpb.Batch{Sequence: n}
	for i := range 8 {
		u := float64((int(n)*7+i*13)%100) + 0.5
		b.GpuSamples = append(b.GpuSamples, &agentpb.GpuSample{
			SampleTime: ts, Index: int32(i), Uuid: fmt.Sprintf("GPU-%s-%d", node, i),
			SmUtilizationPercent: ptr(u), MemoryUtilizationPercent: ptr(u / 2), MemoryUsedBytes: ptr(int64(60+i) << 30),
			TemperatureCelsius: ptr(55 + u/10), MemoryTemperatureCelsius: ptr(60 + u/10),
			PowerMilliwatts: ptr(int64(400_000 + 1000*int(u))), PowerLimitMilliwatts: ptr(int64(700_000)),
			EnergyMillijoules: ptr(n * 450_000), SmClockMhz: ptr(int32(1980)), MemoryClockMhz: ptr(int32(2619)),
			ThrottleReasons: ptr(uint64(0)), EccVolatileCorrected: ptr(e), EccVolatileUncorrected: ptr(uint64(0)),
			EccAggregateCorrected: ptr(uint64(3)), EccAggregateUncorrected: ptr(uint64(0)),
			RowRemapPending: ptr(false), RowRemapFailure: ptr(false), PcieReplayCount: ptr(e), NvlinkErrorCount: ptr(e),
		})
	}
	for p := range 8 {
		c := &agentpb.IbCounters{SymbolError: 3 + e, LinkDowned: 1, PortRcvErrors: 2 + e, LocalLinkIntegrityErrors: 1, ExcessiveBufferOverrunErrors: 1,
			PortRcvData: n * 14_000_042, PortXmitData: n * 15_000_045}
		b.IbSamples = append(b.IbSamples, &agentpb.IbSample{SampleTime: ts, Device: fmt.Sprintf("mlx5_%d", p), Port: 1,
			State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400, Counters: c})
	}
	return b
}

// BenchmarkEvidenceAnHour measures the monitor in its steady state: every
// node has reported for an hour, so each GPU and port holds an hour of
// samples thinned to one a minute (what the rate rules read), for healthy
// nodes (error counters standing still: a run of equal points is kept as
// two) and faulty ones (error counters growing all hour). It reports
// the live heap the evidence takes per node and what one pass that
// re-judges every node costs per node. SOPILOT_BENCH_NODES sets the number
// of nodes (default 1,000; the figures are per node);
// SOPILOT_BENCH_HEAPPROFILE=FILE writes the heap profile once the hour is in.
func BenchmarkEvidenceAnHour(b *testing.B) {
	b.Run("healthy", func(b *testing.B) { benchEvidenceAnHour(b, false) })
	b.Run("errors-growing", func(b *testing.B) { benchEvidenceAnHour(b, true) })
}

func benchEvidenceAnHour(b *testing.B, errs bool) {
	nodes := 1000
	if s := os.Getenv("SOPILOT_BENCH_NODES"); s != "" {
		var err error
		if nodes, err = strconv.Atoi(s); err != nil {
			b.Fatalf("SOPILOT_BENCH_NODES: %v", err)
		}
	}
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(b.TempDir(), "db"), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	now := t0
	fl := &viewsFleet{}
	for i := range nodes {
		fl.views = append(fl.views, fleet.NodeView{Name: fmt.Sprintf("node-%05d", i), Connected: true})
	}
	heapBefore := liveHeap()
	mon, err := monitor.New(monitor.Config{Thresholds: th, Now: func() time.Time { return now }}, fl, st, nil, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	// An hour of reports, one every 20 s: what is kept is the same as at
	// 1 Hz (one sample a minute and the newest), at a twentieth of the
	// time to build.
	var tb telemetry.Batch
	for n := uint64(1); n <= 181; n++ {
		for i := range fl.views {
			tb.SetFromProto(hourBatch(fl.views[i].Name, n, now, errs), now)
			mon.ObserveBatch(fl.views[i].Name, 8, &tb, nil)
		}
		now = now.Add(20 * time.Second)
	}
	for i := range fl.views {
		fl.views[i].LastSeen = now
	}
	perNode := float64(liveHeap()-heapBefore) / float64(nodes)
	if path := os.Getenv("SOPILOT_BENCH_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		now = now.Add(time.Minute) // every node due for evaluation again
		for i := range fl.views {
			tb.SetFromProto(hourBatch(fl.views[i].Name, 182, now, errs), now)
			mon.ObserveBatch(fl.views[i].Name, 8, &tb, nil)
		}
		start := time.Now()
		mon.Tick(ctx)
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(nodes), "ns/node-evaluated")
	}
	b.StopTimer()
	b.ReportMetric(perNode, "live-B/node")
	runtime.KeepAlive(mon)
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
