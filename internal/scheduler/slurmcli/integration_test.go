package slurmcli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	id := submit(t, b, liveJob(t, env, "#!/bin/sh\necho started\nsleep 300\n"))
	waitFor(t, b, id, 2*time.Minute, func(st scheduler.JobStatus) bool { return st.State == "RUNNING" })
	// RUNNING comes before the script runs; a job cancelled in between
	// ends 0:0. Cancel once the script has said it started.
	slurmtest.WaitForOutput(t, filepath.Join(env.WorkDir, "slurmcli-test-"+id+".out"), "started", time.Minute)
	if err := b.Cancel(context.Background(), id); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// Until Slurm has settled the exit status (24.11 and 26.05 first report
	// ["CANCELLED","COMPLETING"] with exit status SUCCESS), the job must
	// read COMPLETING, not final, with no exit code.
	seen := map[string]bool{}
	st := waitFor(t, b, id, time.Minute, func(st scheduler.JobStatus) bool {
		seen[st.State] = true
		if !final(st) && (st.ExitCode != -1 || st.Signal != 0 || st.State != "RUNNING" && st.State != "COMPLETING") {
			t.Errorf("job %s while being cancelled: %+v", id, st)
		}
		return final(st)
	})
	t.Logf("states seen while cancelling: %v", seen)
	// The exit status depends on who dies of the SIGTERM first: the shell
	// (it exits 143 = 128+15) or its sleep (then the step reports signal 15).
	if st.State != "CANCELLED" || !(st.ExitCode == 143 && st.Signal == 0 || st.ExitCode == 0 && st.Signal == 15) {
		t.Fatalf("status %+v, want CANCELLED with exit 143 or signal 15", st)
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

// sdiagCounts runs sdiag and returns slurmctld's RPC counters by message
// type ("REQUEST_JOB_INFO" -> count) since slurmctld started or the last
// sdiag --reset.
func sdiagCounts(t testing.TB, env slurmtest.Env) map[string]int {
	t.Helper()
	cmd := exec.Command("sdiag")
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sdiag: %v", err)
	}
	counts := map[string]int{}
	inTypes := false
	for line := range strings.SplitSeq(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Remote Procedure Call statistics by message type"):
			inTypes = true
			continue
		case strings.HasPrefix(line, "Remote Procedure Call statistics by user"), strings.HasPrefix(line, "Pending RPC"):
			inTypes = false
		}
		if !inTypes {
			continue
		}
		// "\tREQUEST_JOB_INFO   ( 2003) count:263    ave_time:1513   total_time:397974"
		f := strings.Fields(line)
		_, c, ok := strings.Cut(line, "count:")
		if len(f) == 0 || !ok {
			continue
		}
		n, err := strconv.Atoi(strings.Fields(c)[0])
		if err != nil {
			t.Fatalf("sdiag line %q: %v", line, err)
		}
		counts[f[0]] = n
	}
	if len(counts) == 0 {
		t.Fatalf("sdiag printed no RPC statistics:\n%s", out)
	}
	return counts
}

// liveSlurmVersion is the cluster's Slurm release as "major.minor"
// ("22.05", "24.11"), from sinfo --version ("slurm 24.11.5").
func liveSlurmVersion(t testing.TB, env slurmtest.Env) string {
	t.Helper()
	cmd := exec.Command("sinfo", "--version")
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sinfo --version: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("sinfo --version printed %q", out)
	}
	parts := strings.Split(f[1], ".")
	if len(parts) < 2 {
		t.Fatalf("sinfo --version printed %q", out)
	}
	return parts[0] + "." + parts[1]
}

// RPC names sdiag prints, and the sum of all of them.
const (
	rpcJobInfo  = "REQUEST_JOB_INFO"
	rpcPartInfo = "REQUEST_PARTITION_INFO"
	rpcNodeInfo = "REQUEST_NODE_INFO"
	rpcTotal    = "all RPCs"
)

// measureRPCs returns what one call of fn costs slurmctld, RPC by RPC
// (the names of want, plus rpcTotal).
//
// sdiag's counters are cluster-wide and cannot be narrowed to this
// process: its per-user table does not help, since every client of the test
// cluster (other test packages running at the same time, other engineers)
// is root. Concurrent RPCs can only add to a difference of two readings,
// so each count is taken as its minimum over several tries: that is this
// call's own cost as long as one try was not disturbed, and a try that saw
// a counter go backwards (sdiag --reset) is discarded. The reading before
// the call costs one REQUEST_STATS_INFO, which slurmctld records after
// answering it, so it shows in the reading after and is subtracted.
func measureRPCs(t *testing.T, env slurmtest.Env, names []string, fn func() error) map[string]int {
	t.Helper()
	const tries = 8
	sum := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	minimum := map[string]int{}
	valid := 0
	for try := range tries {
		before := sdiagCounts(t, env)
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		after := sdiagCounts(t, env)
		delta := map[string]int{rpcTotal: sum(after) - sum(before) - 1} // the first sdiag's own RPC
		for _, n := range names {
			delta[n] = after[n] - before[n]
		}
		t.Logf("try %d: %v", try, delta)
		if slices.ContainsFunc(slices.Collect(maps.Values(delta)), func(v int) bool { return v < 0 }) {
			continue // counters were reset in between
		}
		for k, v := range delta {
			if m, ok := minimum[k]; !ok || v < m {
				minimum[k] = v
			}
		}
		valid++
	}
	if valid == 0 {
		t.Fatal("sdiag counters went backwards in every try")
	}
	return minimum
}

// TestLiveListingRPCs measures with sdiag what one Jobs call costs
// slurmctld: squeue --json is one REQUEST_JOB_INFO; the --Format query adds
// a REQUEST_PARTITION_INFO on 22.05. Jobs asks for 30 ids, as a controller
// polling its active runs would. The expected counts are per Slurm version,
// as measured (see the package comment).
func TestLiveListingRPCs(t *testing.T) {
	env := slurmtest.Require(t)
	version := liveSlurmVersion(t, env)
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = strconv.Itoa(4000000000 + i) // never real; the RPC is the same
	}
	json := map[string]int{rpcJobInfo: 1, rpcPartInfo: 0, rpcTotal: 1}
	format := map[string]int{rpcJobInfo: 1, rpcPartInfo: 1, rpcTotal: 2}
	wants := map[string]map[string]map[string]int{
		"22.05": {QueryJSON: json, QueryFormat: format, QueryAuto: json},
		"24.11": {QueryJSON: json, QueryFormat: format, QueryAuto: json},
		"26.05": {QueryJSON: json, QueryFormat: format, QueryAuto: json},
	}
	for _, query := range []string{QueryJSON, QueryFormat, QueryAuto} {
		t.Run(query, func(t *testing.T) {
			b := New(Config{SlurmConf: env.SlurmConf, Timeout: 60 * time.Second, Query: query}, nil)
			got := measureRPCs(t, env, []string{rpcJobInfo, rpcPartInfo}, func() error {
				_, err := b.Jobs(context.Background(), ids)
				return err
			})
			t.Logf("Slurm %s: one Jobs call with %d ids, query %s: %v", version, len(ids), query, got)
			want, ok := wants[version][query]
			if !ok {
				t.Fatalf("no expected counts for Slurm %s; measured %v", version, got)
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s per Jobs call: %d, want %d", k, got[k], w)
				}
			}
		})
	}
}

// TestLiveNodeListingRPCs measures what one Nodes call costs slurmctld:
// scontrol --json show nodes (23.02+) or sinfo --json (22.05).
func TestLiveNodeListingRPCs(t *testing.T) {
	env := slurmtest.Require(t)
	version := liveSlurmVersion(t, env)
	twoRPCs := map[string]int{rpcNodeInfo: 1, rpcPartInfo: 1, rpcTotal: 2}
	wants := map[string]map[string]int{"22.05": twoRPCs, "24.11": twoRPCs, "26.05": twoRPCs}
	b := New(Config{SlurmConf: env.SlurmConf, Timeout: 60 * time.Second}, nil)
	if _, err := b.Nodes(context.Background()); err != nil { // settles scontrol or sinfo
		t.Fatal(err)
	}
	got := measureRPCs(t, env, []string{rpcNodeInfo, rpcPartInfo}, func() error {
		_, err := b.Nodes(context.Background())
		return err
	})
	tool := "scontrol --json show nodes"
	if b.noScontrolJSON.Load() {
		tool = "sinfo --json"
	}
	t.Logf("Slurm %s: one Nodes call (%s): %v", version, tool, got)
	want, ok := wants[version]
	if !ok {
		t.Fatalf("no expected counts for Slurm %s; measured %v", version, got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s per Nodes call: %d, want %d", k, got[k], w)
		}
	}
}

// BenchmarkLiveJobs500 times one Jobs call for 500 jobs in each query mode.
// It submits 500 held jobs (they never run) and cancels them all at the
// end; run it on purpose only:
//
//	go test -run '^$' -bench LiveJobs500 -benchtime 20x ./internal/scheduler/slurmcli
func BenchmarkLiveJobs500(b *testing.B) {
	env := slurmtest.Require(b)
	const n = 500
	tag := fmt.Sprintf("slurmcli-bench:%d", time.Now().UnixNano())
	ids := make([]string, 0, n)
	b.Cleanup(func() {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), 100)]
			ids = ids[len(chunk):]
			cmd := exec.Command("scancel", chunk...)
			cmd.Env = env.Environ()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Errorf("scancel: %v: %s", err, out)
			}
		}
	})
	for range n {
		cmd := exec.Command("sbatch", "--parsable", "--hold", "--job-name=slurmcli-bench", "--comment="+tag,
			"--time=1", "--chdir="+env.WorkDir, "--output=/dev/null", "--wrap=true")
		cmd.Env = env.Environ()
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("sbatch: %v", err)
		}
		id, err := parseSbatch(out)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	want := slices.Clone(ids)
	for _, q := range []string{QueryJSON, QueryFormat} {
		b.Run(q, func(b *testing.B) {
			be := New(Config{SlurmConf: env.SlurmConf, Timeout: 60 * time.Second, Query: q}, nil)
			for b.Loop() {
				jobs, err := be.Jobs(context.Background(), want)
				if err != nil || len(jobs) != n {
					b.Fatalf("Jobs = %d jobs, %v", len(jobs), err)
				}
			}
		})
	}
}

// TestLivePingNamesVersions: on the local cluster the tools and slurmctld
// are the same release, which Ping reads and accepts.
func TestLivePingNamesVersions(t *testing.T) {
	b, env := liveBackend(t)
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	v := b.versions.Load()
	if v == nil || v.client != v.server || v.server.Major() != env.Version {
		t.Fatalf("versions %+v, want the cluster's %s on both sides", v, env.Version)
	}
	if got := b.SlurmVersions(); !strings.HasPrefix(got, "Slurm tools "+env.Version+".") {
		t.Errorf("SlurmVersions = %q", got)
	}
}
