package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmcli"
	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/store"
)

// BenchmarkCreateBreakdown says where CreateRun's time goes, in one
// process, against the local cluster: Service.Create (the real bbolt store
// with fsync, the real CLI backend) against backend.Submit of the same job
// alone, and the store's parts (the transaction that records the run, and one
// that updates it) alone, alternating so that machine noise hits all three. The gRPC hop of
// the real CreateRun is cmd/controller's BenchmarkCreateRunVsSbatch.
func BenchmarkCreateBreakdown(b *testing.B) {
	env := slurmtest.Require(b)
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "runs.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend := slurmcli.New(slurmcli.Config{SlurmConf: env.SlurmConf}, logger)
	// Inside Create, its sbatch and its store transaction are timed too.
	var inSubmit, inRecord []time.Duration
	svc := New(Config{PollInterval: time.Hour, DefaultWorkDir: env.WorkDir}, &timedStore{Store: st, d: &inRecord},
		&timedBackend{Backend: backend, d: &inSubmit}, logger, nil)
	ctx := context.Background()
	spec := run.Spec{JobName: "bench-breakdown", Nodes: 1, TimeLimit: time.Minute, Script: "#!/bin/bash\ntrue\n"}
	b.Cleanup(func() {
		// Cancel what the benchmark submitted (runs and bare jobs alike).
		jobs, err := backend.FindByComment(context.Background(), CommentPrefix)
		if err != nil {
			b.Logf("list jobs to cancel: %v", err)
			return
		}
		for _, j := range jobs {
			_ = backend.Cancel(context.Background(), j.JobID)
		}
	})
	submit := func(i int) {
		r := &run.Run{ID: fmt.Sprintf("r-bench-%d-%d", time.Now().UnixNano(), i), Spec: spec, OutputPath: env.WorkDir + "/bench-%j.out"}
		r.Spec.WorkingDirectory, r.Spec.OutputDirectory = env.WorkDir, env.WorkDir
		r.Spec.Normalize()
		job, err := jobSpec(r, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := backend.Submit(ctx, job); err != nil {
			b.Fatal(err)
		}
	}
	create := func(i int) {
		if _, err := svc.Create(ctx, spec, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)); err != nil {
			b.Fatal(err)
		}
	}
	var lastRecorded string
	record := func(i int) {
		now := time.Now().UTC()
		r := &run.Run{ID: fmt.Sprintf("r-rec-%d-%d", now.UnixNano(), i), RequestID: fmt.Sprintf("rec-%d-%d", now.UnixNano(), i),
			Spec: spec, State: run.StatePending, CreateTime: now, UpdateTime: now}
		if _, _, err := st.CreateRun(ctx, r); err != nil {
			b.Fatal(err)
		}
		lastRecorded = r.ID
	}
	update := func() {
		if _, err := st.UpdateRun(ctx, lastRecorded, func(x *run.Run) bool { x.SlurmJobID = "1"; return true }); err != nil {
			b.Fatal(err)
		}
	}
	create(-1) // warm up
	submit(-1)
	inSubmit, inRecord = nil, nil
	var tCreate, tSubmit, tRecord, tUpdate []time.Duration
	timed := func(f func()) time.Duration { t0 := time.Now(); f(); return time.Since(t0) }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		arms := []func(){
			func() { tCreate = append(tCreate, timed(func() { create(i) })) },
			func() { tSubmit = append(tSubmit, timed(func() { submit(i) })) },
			func() {
				tRecord = append(tRecord, timed(func() { record(i) }))
				tUpdate = append(tUpdate, timed(update))
			},
		}
		for k := range arms {
			arms[(k+i)%len(arms)]()
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(tCreate), "create-ms")
	b.ReportMetric(med(tSubmit), "submit-ms")
	b.ReportMetric(med(tRecord), "record-ms")
	b.ReportMetric(med(tUpdate), "update-ms")
	b.ReportMetric(med(tCreate)/med(tSubmit), "ratio")
	b.ReportMetric(med(inSubmit), "create-sbatch-ms")
	b.ReportMetric(med(inRecord), "create-record-ms")
	b.ReportMetric(0, "ns/op")
}

// timedBackend and timedStore time the calls Create makes.
type timedBackend struct {
	scheduler.Backend
	d *[]time.Duration
}

func (t *timedBackend) Submit(ctx context.Context, job scheduler.JobSpec) (string, error) {
	t0 := time.Now()
	id, err := t.Backend.Submit(ctx, job)
	*t.d = append(*t.d, time.Since(t0))
	return id, err
}

// SubmitGated keeps the backend's gated submission (Create's path) visible
// through the wrapper; the time includes the overlapped commit.
func (t *timedBackend) SubmitGated(ctx context.Context, job scheduler.JobSpec, gate func() error) (string, error) {
	t0 := time.Now()
	id, err := scheduler.SubmitAfter(ctx, t.Backend, job, gate)
	*t.d = append(*t.d, time.Since(t0))
	return id, err
}

type timedStore struct {
	*store.Store
	d *[]time.Duration
}

func (t *timedStore) CreateRun(ctx context.Context, r *run.Run) (*run.Run, bool, error) {
	t0 := time.Now()
	stored, created, err := t.Store.CreateRun(ctx, r)
	*t.d = append(*t.d, time.Since(t0))
	return stored, created, err
}
