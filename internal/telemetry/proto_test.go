package telemetry_test

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

var at = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// Every field of the wire messages the controller reads survives
// agentpb → telemetry → agentpb.
func TestRoundTrip(t *testing.T) {
	gpu := &agentpb.GpuSample{
		SampleTime: timestamppb.New(at), Index: 3, Uuid: "GPU-3",
		SmUtilizationPercent: proto.Float64(97.5), MemoryUtilizationPercent: proto.Float64(40),
		MemoryUsedBytes: proto.Int64(70 << 30), TemperatureCelsius: proto.Float64(71), MemoryTemperatureCelsius: proto.Float64(80),
		PowerMilliwatts: proto.Int64(650_000), PowerLimitMilliwatts: proto.Int64(700_000), EnergyMillijoules: proto.Uint64(1e9),
		SmClockMhz: proto.Int32(1980), MemoryClockMhz: proto.Int32(2619), ThrottleReasons: proto.Uint64(0x40),
		EccVolatileCorrected: proto.Uint64(1), EccVolatileUncorrected: proto.Uint64(2), EccAggregateCorrected: proto.Uint64(3),
		EccAggregateUncorrected: proto.Uint64(4), RowRemapPending: proto.Bool(true), RowRemapFailure: proto.Bool(false),
		PcieReplayCount: proto.Uint64(5), NvlinkErrorCount: proto.Uint64(6),
		Processes: []*agentpb.GpuProcess{{SlurmJobId: "4242"}},
	}
	ib := &agentpb.IbSample{
		SampleTime: timestamppb.New(at), Device: "mlx5_0", Port: 1, State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400,
		Counters: &agentpb.IbCounters{LinkDowned: 1, ExcessiveBufferOverrunErrors: 2, LocalLinkIntegrityErrors: 3, SymbolError: 4, PortRcvErrors: 5},
	}
	ev := &agentpb.HealthEvent{EventTime: timestamppb.New(at), Component: "gpu3", Kind: telemetry.KindXID, Code: 79, Message: "XID 79"}
	prog := &agentpb.ProgressUpdate{RunId: "r-1", UpdateTime: timestamppb.New(at), Step: 10, TotalSteps: 100, Loss: 0.5,
		SamplesPerSecond: 1200, Metrics: map[string]float64{"accuracy": 0.9},
		Checkpoint: &agentpb.ProgressCheckpoint{Step: 8, Path: "/ckpt/step-8.pt", WriteTime: timestamppb.New(at.Add(-time.Second))}}
	batch := &agentpb.Batch{Sequence: 7, DroppedSamples: 2, GpuSamples: []*agentpb.GpuSample{gpu}, IbSamples: []*agentpb.IbSample{ib},
		HealthEvents: []*agentpb.HealthEvent{ev}, Progress: []*agentpb.ProgressUpdate{prog}}
	// Filled twice: the second fill reuses the first one's slices.
	var dom telemetry.Batch
	dom.SetFromProto(&agentpb.Batch{GpuSamples: []*agentpb.GpuSample{gpu, gpu}, HealthEvents: []*agentpb.HealthEvent{ev, ev}}, at)
	dom.SetFromProto(batch, at)
	batchBack := dom.ToProto()
	for _, tc := range []struct {
		name string
		in   proto.Message
		back proto.Message
	}{
		{"gpu sample", gpu, telemetry.GPUSampleFromProto(gpu).ToProto()},
		{"gpu sample without fields", &agentpb.GpuSample{SampleTime: timestamppb.New(at), Index: 1}, telemetry.GPUSampleFromProto(&agentpb.GpuSample{SampleTime: timestamppb.New(at), Index: 1}).ToProto()},
		{"ib sample", ib, telemetry.IBPortSampleFromProto(ib).ToProto()},
		{"health event", ev, telemetry.HealthEventFromProto(ev, time.Time{}).ToProto()},
		{"progress", prog, telemetry.ProgressFromProto(prog).ToProto()},
		{"batch", batch, batchBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !proto.Equal(tc.in, tc.back) {
				t.Errorf("round trip:\n in   %v\n back %v", prototext.Format(tc.in), prototext.Format(tc.back))
			}
		})
	}
}

func TestFromProto(t *testing.T) {
	now := at.Add(time.Hour)
	if e := telemetry.HealthEventFromProto(&agentpb.HealthEvent{Component: "gpu1", Kind: "gpu_lost"}, now); !e.Time.Equal(now) {
		t.Errorf("event without a time = %v, want now", e.Time)
	}
	g := &agentpb.GpuSample{SampleTime: timestamppb.New(at), Index: 2, Uuid: "GPU-2", SmUtilizationPercent: proto.Float64(1),
		EccVolatileCorrected: proto.Uint64(7), PcieReplayCount: proto.Uint64(8), NvlinkErrorCount: proto.Uint64(9)}
	if c := telemetry.GPUSampleFromProto(g); c.UUID != "GPU-2" || *c.SMUtilizationPercent != 1 || !c.Time.Equal(at) || c.Index != 2 ||
		*c.ECCVolatileCorrected != 7 || *c.PCIeReplayCount != 8 || *c.NVLinkErrorCount != 9 {
		t.Errorf("sample = %+v", c)
	}
	if s := telemetry.IBPortSampleFromProto(&agentpb.IbSample{State: "ACTIVE"}); !s.Up() || s.Counters != (telemetry.IBCounters{}) {
		t.Errorf("ib sample without counters = %+v, up %v", s, s.Up())
	}
	if (telemetry.IBPortSample{State: "ACTIVE", PhysState: "Polling"}).Up() {
		t.Error("ACTIVE/Polling is up")
	}
}

func TestMarshalInventoryRoundTrips(t *testing.T) {
	inv := telemetry.Inventory{
		GPUs:          []telemetry.GPUInfo{{Index: 0, UUID: "GPU-a", Model: "NVIDIA H200", MemoryTotalBytes: 141 << 30}, {Index: 1, UUID: "GPU-b", Model: "NVIDIA H200", MemoryTotalBytes: 141 << 30}},
		IBPorts:       []telemetry.IBPortInfo{{Device: "mlx5_0", Port: 1, RateGbps: 400, LinkLayer: "InfiniBand"}},
		DriverVersion: "570.124.06", CUDAVersion: "12.8", NCCLVersion: "2.25.1", Simulated: true,
	}
	b, err := telemetry.MarshalInventory(inv)
	if err != nil {
		t.Fatal(err)
	}
	var wire agentpb.Inventory
	if err := proto.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if got := telemetry.InventoryFromProto(&wire); !reflect.DeepEqual(got, inv) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, inv)
	}
}
