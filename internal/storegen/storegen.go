// Package storegen writes a controller store of production size through the
// store's own API, for the benchmarks of a controller starting on a long
// history: realistic runs (names, labels, a 2-node × 8-GPU spec, ~2 %
// active) and node agents with a full inventory (8 GPUs, 8 InfiniBand
// ports) and a Slurm instance id each.
package storegen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// Options says what to write.
type Options struct {
	Runs  int // runs in the history
	Nodes int // node agents the controller knows
	// Epoch is the creation time of the first run; later runs follow one
	// a second. Zero means Runs seconds before now, so the newest run is
	// about now.
	Epoch time.Time
}

// Stats is what Write wrote.
type Stats struct {
	Runs, Active, Nodes int
	// FileBytes is the bbolt file's size after the runs, and after the
	// nodes too.
	RunsFileBytes, FileBytes int64
	Took                     time.Duration
}

// BytesPerRun is the file's size with the runs alone over the runs.
func (s Stats) BytesPerRun() float64 {
	if s.Runs == 0 {
		return 0
	}
	return float64(s.RunsFileBytes) / float64(s.Runs)
}

// ErrExists means the store file is already there: Write only makes new
// ones.
var ErrExists = errors.New("store file already exists")

// batchSize runs are written per transaction.
const batchSize = 10_000

// Write creates the store at path (which must not exist) and fills it.
func Write(ctx context.Context, path string, o Options) (Stats, error) {
	if o.Runs < 0 || o.Nodes < 0 {
		return Stats{}, fmt.Errorf("storegen: runs %d, nodes %d: must not be negative", o.Runs, o.Nodes)
	}
	if _, err := os.Stat(path); err == nil {
		return Stats{}, fmt.Errorf("storegen: %s: %w", path, ErrExists)
	}
	start := time.Now()
	if o.Epoch.IsZero() {
		o.Epoch = start.UTC().Add(-time.Duration(o.Runs) * time.Second).Truncate(time.Second)
	}
	// Bulk writes are synced once at the end (Close), not per transaction.
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		return Stats{}, err
	}
	var stats Stats
	for i := 0; i < o.Runs; i += batchSize {
		batch := make([]*run.Run, 0, min(batchSize, o.Runs-i))
		for j := i; j < o.Runs && j < i+batchSize; j++ {
			r := Run(j, o.Epoch)
			if !r.State.Terminal() {
				stats.Active++
			}
			batch = append(batch, r)
		}
		n, err := st.CreateRuns(ctx, batch)
		if err != nil {
			_ = st.Close()
			return Stats{}, fmt.Errorf("storegen: runs %d-%d: %w", i, i+len(batch)-1, err)
		}
		stats.Runs += n
	}
	if err := st.Sync(); err != nil {
		_ = st.Close()
		return Stats{}, err
	}
	if stats.RunsFileBytes, err = fileSize(path); err != nil {
		_ = st.Close()
		return Stats{}, err
	}
	recs := make([]store.NodeRecord, o.Nodes)
	instances := make(map[string]string, o.Nodes)
	for i := range recs {
		if recs[i], err = Node(i, start); err != nil {
			_ = st.Close()
			return Stats{}, err
		}
		instances[SlurmNodeName(i)] = recs[i].Name
	}
	if err := st.PutNodes(ctx, recs); err != nil {
		_ = st.Close()
		return Stats{}, fmt.Errorf("storegen: nodes: %w", err)
	}
	if err := st.PutSlurmInstances(ctx, instances); err != nil {
		_ = st.Close()
		return Stats{}, fmt.Errorf("storegen: slurm instances: %w", err)
	}
	stats.Nodes = o.Nodes
	if err := st.Sync(); err != nil {
		_ = st.Close()
		return Stats{}, err
	}
	if err := st.Close(); err != nil {
		return Stats{}, err
	}
	if stats.FileBytes, err = fileSize(path); err != nil {
		return Stats{}, err
	}
	stats.Took = time.Since(start)
	return stats, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

var (
	names    = []string{"llama-ft", "resnet-sweep", "bert-pretrain", "eval-harness", "dpo-tune", "vit-ablation"}
	teams    = []string{"research", "applied", "infra", "eval"}
	projects = []string{"atlas", "borealis", "cygnus", "draco", "eridanus"}
)

// State gives the mix over a history: 2 % active (half pending, half
// running), the rest mostly completed.
func State(i int) run.State {
	switch m := i % 100; {
	case m == 0:
		return run.StatePending
	case m == 1:
		return run.StateRunning
	case m < 10:
		return run.StateFailed
	case m < 15:
		return run.StateCancelled
	case m < 17:
		return run.StateTimeout
	default:
		return run.StateCompleted
	}
}

// Run is the i-th run of a generated history, created epoch + i seconds.
// Every run has a Slurm job id (active ones too: a generated active run
// looks submitted, so a controller started on the history tracks it rather
// than resubmitting it).
func Run(i int, epoch time.Time) *run.Run {
	state := State(i)
	created := epoch.Add(time.Duration(i) * time.Second)
	r := &run.Run{
		ID:        fmt.Sprintf("r-gen%09d", i),
		RequestID: fmt.Sprintf("gen-%09d", i),
		Owner:     "alice",
		Spec: run.Spec{
			JobName:          fmt.Sprintf("%s-%d", names[i%len(names)], i),
			Nodes:            2,
			TasksPerNode:     8,
			GPUsPerNode:      8,
			CPUsPerTask:      12,
			TimeLimit:        4 * time.Hour,
			Partition:        "gpu",
			Argv:             []string{"torchrun", "--nnodes=2", "--nproc-per-node=8", "train.py", "--config", "configs/run.yaml"},
			WorkingDirectory: "/home/alice/projects/train",
			Environment:      map[string]string{"NCCL_DEBUG": "WARN", "WANDB_PROJECT": projects[i%len(projects)], "OMP_NUM_THREADS": "12"},
			OutputDirectory:  "/scratch/alice/runs",
			Labels: map[string]string{
				"team":       teams[i%len(teams)],
				"project":    projects[i%len(projects)],
				"experiment": fmt.Sprintf("exp-%d", i%100),
			},
		},
		State:      state,
		SlurmJobID: fmt.Sprint(1_000_000 + i),
		SubmitTime: created.Add(time.Second),
		CreateTime: created,
		UpdateTime: created.Add(time.Second),
	}
	r.OutputPath = fmt.Sprintf("/scratch/alice/runs/%s-%s.out", r.Spec.JobName, r.SlurmJobID)
	if state != run.StatePending {
		r.SlurmState = state.String()
		r.NodeList = fmt.Sprintf("gpu-%04d,gpu-%04d", (2*i)%10_000, (2*i+1)%10_000)
		r.StartTime = created.Add(time.Minute)
		r.UpdateTime = r.StartTime
	}
	if state.Terminal() {
		r.EndTime = created.Add(3 * time.Hour)
		r.UpdateTime = r.EndTime
		if state != run.StateCompleted {
			r.ExitCode = 1
		}
	}
	return r
}

// NodeName is the i-th node agent's name (its machine); SlurmNodeName the
// Slurm node on it.
func NodeName(i int) string      { return fmt.Sprintf("gpu-node-%05d", i) }
func SlurmNodeName(i int) string { return fmt.Sprintf("worker-%05d", i) }

// Node is the i-th node agent's record: last seen at seen, with the
// inventory of an 8 × H200 machine with 8 InfiniBand ports.
func Node(i int, seen time.Time) (store.NodeRecord, error) {
	name := NodeName(i)
	inv := telemetry.Inventory{DriverVersion: "570.124.06", CUDAVersion: "12.8", NCCLVersion: "2.25.1"}
	for g := range 8 {
		inv.GPUs = append(inv.GPUs, telemetry.GPUInfo{Index: g, UUID: fmt.Sprintf("GPU-%08x-%04x-%04x", i, g, i%65536),
			Model: "NVIDIA H200", MemoryTotalBytes: 141 << 30})
		inv.IBPorts = append(inv.IBPorts, telemetry.IBPortInfo{Device: fmt.Sprintf("mlx5_%d", g), Port: 1, RateGbps: 400, LinkLayer: "InfiniBand"})
	}
	b, err := telemetry.MarshalInventory(inv)
	if err != nil {
		return store.NodeRecord{}, fmt.Errorf("storegen: inventory of %s: %w", name, err)
	}
	return store.NodeRecord{Name: name, BootID: fmt.Sprintf("boot-%05d", i), Sequence: 86_400, LastSeen: seen.UTC(),
		AgentVersion: "v0.18.0", Inventory: b}, nil
}
