package slurmcli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/slurmtest"
)

// These tests run against the local cluster of hack/slurm/cluster.sh
// (slurmtest.Require skips them without one). Other tests and engineers
// may share the cluster, so jobs carry unique comments, waits are generous
// and every job is cancelled at the end.

func liveBackend(t *testing.T) (*Backend, slurmtest.Env) {
	t.Helper()
	env := slurmtest.Require(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(Config{SlurmConf: env.SlurmConf, Timeout: 60 * time.Second}, logger), env
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// liveJob is a small job spec with a unique comment and output file.
func liveJob(t *testing.T, env slurmtest.Env, script string) scheduler.JobSpec {
	t.Helper()
	tag := fmt.Sprintf("slurmcli-test:%s:%d", t.Name(), time.Now().UnixNano())
	return scheduler.JobSpec{
		Name:         "slurmcli-test",
		Nodes:        1,
		TasksPerNode: 1,
		TimeLimit:    3 * time.Minute,
		WorkDir:      env.WorkDir,
		OutputPath:   filepath.Join(env.WorkDir, "slurmcli-test-%j.out"),
		Comment:      tag,
		Environment:  map[string]string{"SOPILOT_TEST_VALUE": "hello world"},
		Script:       script,
	}
}

// submit submits job and cancels it when the test ends.
func submit(t *testing.T, b *Backend, job scheduler.JobSpec) string {
	t.Helper()
	id, err := b.Submit(context.Background(), job)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Cancel(context.Background(), id); err != nil {
			t.Errorf("cleanup: Cancel(%s): %v", id, err)
		}
	})
	return id
}

// waitFor polls Jobs until cond holds for job id or the deadline passes.
func waitFor(t *testing.T, b *Backend, id string, within time.Duration, cond func(scheduler.JobStatus) bool) scheduler.JobStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	var last scheduler.JobStatus
	for time.Now().Before(deadline) {
		jobs, err := b.Jobs(context.Background(), []string{id})
		if err != nil {
			t.Fatalf("Jobs: %v", err)
		}
		if len(jobs) == 1 {
			last = jobs[0]
			if cond(last) {
				return last
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("job %s: condition not met within %s; last status %+v", id, within, last)
	return last
}

func final(st scheduler.JobStatus) bool { return isFinal(st.State) }

func TestLiveSeedShapeCompletes(t *testing.T) {
	b, env := liveBackend(t)
	job := liveJob(t, env, "#!/bin/bash\nset -e\nsrun true\n[ \"$SOPILOT_TEST_VALUE\" = 'hello world' ]\n")
	job.Nodes, job.TasksPerNode, job.GPUsPerNode = 2, 8, 8
	id := submit(t, b, job)
	st := waitFor(t, b, id, 4*time.Minute, final)
	if st.State != "COMPLETED" || st.ExitCode != 0 || st.Signal != 0 {
		t.Fatalf("status %+v, want COMPLETED with exit code 0", st)
	}
	if st.Nodes != "worker-[0-1]" || st.Comment != job.Comment || st.Name != job.Name {
		t.Errorf("status %+v: want nodes worker-[0-1] and the job's comment and name", st)
	}
	if st.StartTime.IsZero() || st.EndTime.Before(st.StartTime) {
		t.Errorf("times %v .. %v", st.StartTime, st.EndTime)
	}
}

func TestLiveEnvironmentIsClean(t *testing.T) {
	b, env := liveBackend(t)
	t.Setenv("SOPILOT_LEAK_CHECK", "leaked") // in the controller's environment only
	out := filepath.Join(env.WorkDir, fmt.Sprintf("slurmcli-env-%d.out", time.Now().UnixNano()))
	job := liveJob(t, env, "#!/bin/sh\nenv\n")
	job.OutputPath = out
	id := submit(t, b, job)
	st := waitFor(t, b, id, 2*time.Minute, final)
	if st.State != "COMPLETED" {
		t.Fatalf("status %+v", st)
	}
	t.Cleanup(func() { os.Remove(out) })
	b2, err := os.ReadFile(out)
	if err != nil {
		t.Skipf("job output not readable here: %v", err)
	}
	got := string(b2)
	for _, want := range []string{"SOPILOT_TEST_VALUE=hello world", "LANG=C.UTF-8", "SLURM_CONF=" + env.SlurmConf} {
		if !containsLine(got, want) {
			t.Errorf("job environment lacks %q", want)
		}
	}
	if containsLine(got, "SOPILOT_LEAK_CHECK=leaked") {
		t.Error("the controller's environment leaked into the job")
	}
}

func containsLine(s, line string) bool {
	return slices.Contains(strings.Split(s, "\n"), line)
}

func TestLiveExit3Fails(t *testing.T) {
	b, env := liveBackend(t)
	id := submit(t, b, liveJob(t, env, "#!/bin/sh\nexit 3\n"))
	st := waitFor(t, b, id, 2*time.Minute, final)
	if st.State != "FAILED" || st.ExitCode != 3 || st.Signal != 0 || st.Reason != "NonZeroExitCode" {
		t.Fatalf("status %+v, want FAILED, exit code 3, reason NonZeroExitCode", st)
	}
}

func TestLiveCancelRunning(t *testing.T) {
	b, env := liveBackend(t)
	id := submit(t, b, liveJob(t, env, "#!/bin/sh\nsleep 300\n"))
	waitFor(t, b, id, 2*time.Minute, func(st scheduler.JobStatus) bool { return st.State == "RUNNING" })
	if err := b.Cancel(context.Background(), id); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st := waitFor(t, b, id, time.Minute, final)
	if st.State != "CANCELLED" || st.Signal != 15 {
		t.Fatalf("status %+v, want CANCELLED by signal 15", st)
	}
	// Cancelling again, and cancelling an unknown job, are no-ops.
	if err := b.Cancel(context.Background(), id); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
	if err := b.Cancel(context.Background(), "4000000000"); err != nil {
		t.Errorf("Cancel of an unknown job: %v", err)
	}
}

func TestLiveRejected(t *testing.T) {
	b, env := liveBackend(t)
	tests := []struct {
		name string
		edit func(*scheduler.JobSpec)
	}{
		{"bad partition", func(j *scheduler.JobSpec) { j.Partition = "nosuchpartition" }},
		{"more gpus than a node has", func(j *scheduler.JobSpec) { j.GPUsPerNode = 9 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := liveJob(t, env, "#!/bin/sh\ntrue\n")
			tt.edit(&job)
			id, err := b.Submit(context.Background(), job)
			if err == nil {
				_ = b.Cancel(context.Background(), id)
			}
			if !errors.Is(err, scheduler.ErrRejected) {
				t.Fatalf("Submit = %q, %v; want ErrRejected", id, err)
			}
			t.Logf("refusal: %v", err)
		})
	}
}

func TestLiveJobsEdgeCases(t *testing.T) {
	b, _ := liveBackend(t)
	jobs, err := b.Jobs(context.Background(), nil)
	if err != nil || jobs != nil {
		t.Errorf("Jobs(nil) = %v, %v", jobs, err)
	}
	jobs, err = b.Jobs(context.Background(), []string{"4000000000"})
	if err != nil || len(jobs) != 0 {
		t.Errorf("Jobs(unknown) = %v, %v; want nothing", jobs, err)
	}
}

func TestLiveFindByComment(t *testing.T) {
	b, env := liveBackend(t)
	job := liveJob(t, env, "#!/bin/sh\nsleep 60\n")
	id := submit(t, b, job)
	other := submit(t, b, liveJob(t, env, "#!/bin/sh\ntrue\n"))
	found, err := b.FindByComment(context.Background(), job.Comment)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].JobID != id || found[0].Comment != job.Comment {
		t.Fatalf("FindByComment = %+v, want only job %s (not %s)", found, id, other)
	}
}
