package api

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// A node as an agent reports it goes from the agent's wire messages through
// the fleet's domain view to the API's Node; the result is golden.
func TestNodeToProtoGolden(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	inv := &agentpb.Inventory{
		DriverVersion: "570.86.15", CudaVersion: "12.8", NcclVersion: "2.25.1", Simulated: true,
		Gpus: []*agentpb.GpuInfo{
			{Index: 0, Uuid: "GPU-0", Model: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30},
			{Index: 1, Uuid: "GPU-1", Model: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30},
			{Index: 2, Uuid: "GPU-2", Model: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30},
		},
		IbPorts: []*agentpb.IbPortInfo{{Device: "mlx5_0", Port: 1, RateGbps: 400, LinkLayer: "InfiniBand"}},
	}
	busy := &agentpb.GpuSample{
		SampleTime: timestamppb.New(at), Index: 0, Uuid: "GPU-0",
		SmUtilizationPercent: proto.Float64(97), MemoryUsedBytes: proto.Int64(70 << 30), TemperatureCelsius: proto.Float64(71),
		MemoryTemperatureCelsius: proto.Float64(80), PowerMilliwatts: proto.Int64(650_000), PowerLimitMilliwatts: proto.Int64(700_000),
		ThrottleReasons: proto.Uint64(0x40), EccVolatileUncorrected: proto.Uint64(0), RowRemapFailure: proto.Bool(false),
		Processes: []*agentpb.GpuProcess{{Pid: 1001}, {Pid: 1002, SlurmJobId: "4242"}},
	}
	lost := &agentpb.GpuSample{SampleTime: timestamppb.New(at), Index: 1, Uuid: "GPU-1"} // fell off the bus
	port := &agentpb.IbSample{SampleTime: timestamppb.New(at), Device: "mlx5_0", Port: 1, State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400,
		Counters: &agentpb.IbCounters{SymbolError: 3, LinkDowned: 1, PortRcvErrors: 2, PortXmitData: 1 << 40}}

	v := fleet.NodeView{
		Name: "worker-0", BootID: "boot-1", AgentVersion: "v0.4.0", Connected: true, LastSeen: at,
		Inventory: telemetry.InventoryFromProto(inv),
		GPUs:      []telemetry.GPUSample{telemetry.GPUSampleFromProto(busy), telemetry.GPUSampleFromProto(lost)},
		IBPorts:   []telemetry.IBPortSample{telemetry.IBPortSampleFromProto(port)},
		Slurm:     &scheduler.NodeStatus{Name: "worker-0", State: "MIXED", Reason: "[sopilot] xid 79 (drain) on gpu1"},
		Verdict:   fleet.Verdict{Verdict: "UNHEALTHY", Reasons: []string{"gpu1: fell off the bus"}},
		RunIDs:    []string{"r-1"},
	}
	got := NodeToProto(v)

	path := filepath.Join("testdata", "node.textproto")
	text := prototext.MarshalOptions{Multiline: true}.Format(got)
	if *update {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &apipb.Node{}
	if err := prototext.Unmarshal(golden, want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("NodeToProto =\n%s\nwant (%s)\n%s", text, path, golden)
	}
}
