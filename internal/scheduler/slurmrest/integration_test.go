package slurmrest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/slurmtest"
)

// These tests run against the local cluster of hack/slurm/cluster.sh
// (Slurm 22.05.8, slurmrestd v0.0.38, partition main with worker-0 and
// worker-1, 8 GPUs each). They skip without it, or fail when
// SOPILOT_REQUIRE_SLURM=1.

// itBackend returns a Backend on the cluster with its static token, and a
// comment prefix unique to this test.
func itBackend(t *testing.T) (*Backend, slurmtest.Env, string) {
	t.Helper()
	env := slurmtest.Require(t)
	if env.RESTURL == "" || env.JWT == "" {
		t.Fatalf("cluster has no slurmrestd coordinates: %+v", env)
	}
	b, err := New(Config{BaseURL: env.RESTURL, Token: env.JWT, UserName: env.JWTUser, APIVersion: itAPIVersion()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := b.Negotiate(ctx)
	if err != nil {
		t.Fatalf("Negotiate: %v", err)
	}
	t.Logf("slurmrestd API version %s", v)
	return b, env, uniquePrefix()
}

// itAPIVersion is the API version the tests use: SOPILOT_SLURMRESTD_API_VERSION
// when set, else "auto" (the newest the cluster's slurmrestd serves).
func itAPIVersion() string {
	if v := os.Getenv("SOPILOT_SLURMRESTD_API_VERSION"); v != "" {
		return v
	}
	return APIVersionAuto
}

// uniquePrefix is a comment prefix no other test run uses.
func uniquePrefix() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return "slurmrest-it:" + hex.EncodeToString(r[:]) + ":"
}

// itSpec is a small job in the cluster's work directory.
func itSpec(env slurmtest.Env, prefix, name, script string) scheduler.JobSpec {
	return scheduler.JobSpec{
		Name:        "slurmrest-it-" + name,
		Partition:   "main",
		Nodes:       1,
		TimeLimit:   2 * time.Minute,
		WorkDir:     env.WorkDir,
		OutputPath:  filepath.Join(env.WorkDir, "slurmrest-it-%j.out"),
		Comment:     prefix + name,
		Environment: map[string]string{"SOPILOT_RUN": name},
		Script:      script,
	}
}

// submit submits and registers a cleanup that cancels the job.
func submit(t *testing.T, b *Backend, spec scheduler.JobSpec) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := b.Submit(ctx, spec)
	if err != nil {
		t.Fatalf("Submit(%s): %v", spec.Name, err)
	}
	t.Logf("submitted %s as job %s", spec.Name, id)
	if spec.OutputPath != "" {
		out := strings.ReplaceAll(spec.OutputPath, "%j", id)
		t.Cleanup(func() { _ = os.Remove(out) })
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Cancel(ctx, id); err != nil {
			t.Errorf("cleanup: cancel %s: %v", id, err)
		}
	})
	return id
}

// waitFor polls Jobs until done says so or the deadline passes.
func waitFor(t *testing.T, b *Backend, id string, timeout time.Duration, done func(scheduler.JobStatus) bool) scheduler.JobStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last scheduler.JobStatus
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		jobs, err := b.Jobs(ctx, []string{id})
		cancel()
		if err != nil {
			t.Fatalf("Jobs(%s): %v", id, err)
		}
		if len(jobs) != 1 {
			t.Fatalf("Jobs(%s) = %+v, want one job", id, jobs)
		}
		last = jobs[0]
		if done(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: still %+v after %v", id, last, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func terminal(j scheduler.JobStatus) bool {
	switch scheduler.State(j.State) {
	case scheduler.StateCompleted, scheduler.StateFailed, scheduler.StateCancelled, scheduler.StateTimeout,
		scheduler.StateNodeFail, scheduler.StatePreempted, scheduler.StateOutOfMemory, scheduler.StateBootFail,
		scheduler.StateDeadline:
		return true
	}
	return false
}

func outputOf(env slurmtest.Env, id string) string {
	data, _ := os.ReadFile(filepath.Join(env.WorkDir, "slurmrest-it-"+id+".out"))
	return string(data)
}

// The controller's shape: 2 nodes × 8 tasks × 8 GPUs, srun in the script.
// The script checks what slurmrestd 22.05 gets wrong unless asked right
// (node count, task count) and the exact environment, and exits non-zero
// with a distinct code on the first mismatch.
func TestIntegration_SeedShapeCompletes(t *testing.T) {
	b, env, prefix := itBackend(t)
	spec := itSpec(env, prefix, "seed", `#!/bin/bash
[ "$SLURM_JOB_NUM_NODES" = 2 ] || exit 10
[ "$SLURM_NTASKS" = 16 ] || exit 11
[ "$SLURM_GPUS_ON_NODE" = 8 ] || exit 12
[ "$SOPILOT_RUN" = seed ] || exit 13
[ "$FOO" = "bar baz \$x" ] || exit 14
[ "$LANG" = C.UTF-8 ] || exit 15
[ "$PATH" = /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ] || exit 16
[ -z "${SOPILOT_SLURM_TOKEN:-}" ] && [ -z "${SOPILOT_SLURM_JWT_KEY_FILE:-}" ] || exit 17
[ "$(srun hostname | wc -l)" = 16 ] || exit 18
srun true
`)
	spec.Nodes, spec.TasksPerNode, spec.GPUsPerNode = 2, 8, 8
	spec.Environment["FOO"] = "bar baz $x"
	id := submit(t, b, spec)

	j := waitFor(t, b, id, 3*time.Minute, terminal)
	if j.State != "COMPLETED" || j.ExitCode != 0 || j.Signal != 0 {
		t.Fatalf("job %s = %+v, want COMPLETED 0:0; output:\n%s", id, j, outputOf(env, id))
	}
	if j.Nodes != "worker-[0-1]" || j.Name != spec.Name || j.Comment != spec.Comment {
		t.Errorf("job %s = %+v", id, j)
	}
	if j.StartTime.IsZero() || j.EndTime.IsZero() || j.EndTime.Before(j.StartTime) {
		t.Errorf("times: %+v", j)
	}

	found, err := b.FindByComment(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].JobID != id {
		t.Errorf("FindByComment(%q) = %+v", prefix, found)
	}
}

// "exit 3" is stored by Slurm as the raw wait status 768 (v0.0.38); the
// backend reports exit code 3, no signal. A job depending on it (afterok)
// can then never run.
func TestIntegration_ExitCodeAndDependency(t *testing.T) {
	b, env, prefix := itBackend(t)
	id := submit(t, b, itSpec(env, prefix, "exit3", "#!/bin/sh\nexit 3\n"))
	dep := itSpec(env, prefix, "dependent", "#!/bin/sh\ntrue\n")
	dep.Dependencies = []string{id}
	depID := submit(t, b, dep)

	j := waitFor(t, b, id, 3*time.Minute, terminal)
	if j.State != "FAILED" || j.ExitCode != 3 || j.Signal != 0 || j.Reason != "NonZeroExitCode" {
		t.Fatalf("job %s = %+v, want FAILED 3:0 NonZeroExitCode", id, j)
	}
	d := waitFor(t, b, depID, time.Minute, func(j scheduler.JobStatus) bool {
		return j.Reason == "DependencyNeverSatisfied" || terminal(j)
	})
	if d.State != "PENDING" || d.ExitCode != -1 || !d.StartTime.IsZero() {
		t.Errorf("dependent job %s = %+v, want PENDING/DependencyNeverSatisfied", depID, d)
	}
}

func TestIntegration_CancelRunning(t *testing.T) {
	b, env, prefix := itBackend(t)
	id := submit(t, b, itSpec(env, prefix, "sleep", "#!/bin/sh\necho started\nsleep 300\n"))
	waitFor(t, b, id, 3*time.Minute, func(j scheduler.JobStatus) bool {
		if terminal(j) {
			t.Fatalf("job %s ended before it was cancelled: %+v", id, j)
		}
		return j.State == "RUNNING"
	})
	// RUNNING comes before the script runs; a job cancelled in between
	// ends 0:0. Cancel once the script has said it started.
	slurmtest.WaitForOutput(t, filepath.Join(env.WorkDir, "slurmrest-it-"+id+".out"), "started", time.Minute)
	ctx := context.Background()
	if err := b.Cancel(ctx, id); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// Until Slurm has settled the exit status (24.11 and 26.05 first report
	// ["CANCELLED","COMPLETING"] with exit status SUCCESS), the job must
	// read COMPLETING, not final, with no exit code.
	seen := map[string]bool{}
	j := waitFor(t, b, id, time.Minute, func(j scheduler.JobStatus) bool {
		seen[j.State] = true
		if !terminal(j) && (j.ExitCode != -1 || j.Signal != 0 || j.State != "RUNNING" && j.State != "COMPLETING") {
			t.Errorf("job %s while being cancelled: %+v", id, j)
		}
		return terminal(j)
	})
	t.Logf("states seen while cancelling: %v", seen)
	// The exit status depends on who dies of the SIGTERM first: the shell
	// (it exits 143 = 128+15) or its sleep (then the step reports signal 15).
	if j.State != "CANCELLED" || !(j.ExitCode == 143 && j.Signal == 0 || j.ExitCode == 0 && j.Signal == 15) {
		t.Fatalf("job %s = %+v, want CANCELLED with exit 143 or signal 15", id, j)
	}
	t.Logf("cancelled job reported as exit %d signal %d", j.ExitCode, j.Signal)
	if err := b.Cancel(ctx, id); err != nil {
		t.Errorf("Cancel of a cancelled job: %v", err)
	}
	if err := b.Cancel(ctx, probeJobID); err != nil {
		t.Errorf("Cancel of an unknown job: %v", err)
	}
}

func TestIntegration_Rejections(t *testing.T) {
	b, env, prefix := itBackend(t)
	ctx := context.Background()
	spec := itSpec(env, prefix, "badpart", "#!/bin/sh\ntrue\n")
	spec.Partition = "no-such-partition"
	id, err := b.Submit(ctx, spec)
	if !errors.Is(err, scheduler.ErrRejected) || errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Submit to a bad partition = %q, %v; want ErrRejected", id, err)
	}
	if !strings.Contains(err.Error(), "Invalid partition name specified") {
		t.Errorf("err = %v, want Slurm's text", err)
	}
	found, err := b.FindByComment(ctx, prefix)
	if err != nil || len(found) != 0 {
		t.Errorf("FindByComment after a rejection = %+v, %v", found, err)
	}
}

func TestIntegration_Auth(t *testing.T) {
	env := slurmtest.Require(t)
	if env.JWTKeyFile == "" || env.JWTUser == "" {
		t.Fatalf("cluster has no JWT key file or user: %+v", env)
	}
	if _, err := os.Stat(env.JWTKeyFile); err != nil {
		t.Skipf("JWT key file not readable here: %v", err)
	}
	ctx := context.Background()
	newB := func(cfg Config) *Backend {
		t.Helper()
		cfg.BaseURL = env.RESTURL
		cfg.APIVersion = itAPIVersion()
		b, err := New(cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("minted token works", func(t *testing.T) {
		b := newB(Config{JWTKeyFile: env.JWTKeyFile, UserName: env.JWTUser, TokenLifetime: 2 * time.Minute})
		if err := b.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if _, err := b.Jobs(ctx, []string{"1"}); err != nil {
			t.Fatalf("Jobs: %v", err)
		}
		id := submit(t, b, itSpec(env, uniquePrefix(), "minted", "#!/bin/sh\ntrue\n"))
		j := waitFor(t, b, id, 3*time.Minute, terminal)
		if j.State != "COMPLETED" {
			t.Errorf("job %s = %+v", id, j)
		}
	})
	t.Run("static token passes Check", func(t *testing.T) {
		if err := newB(Config{Token: env.JWT, UserName: env.JWTUser}).Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("token signed with another key", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "other.key")
		if err := os.WriteFile(key, []byte("not slurm's key"), 0o600); err != nil {
			t.Fatal(err)
		}
		b := newB(Config{JWTKeyFile: key, UserName: env.JWTUser})
		if err := b.Check(ctx); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Check = %v, want ErrUnauthorized", err)
		}
		// 22.05 answers a listing with a refused token like an unreachable
		// slurmctld (the message hints at the JWT); 24.11 and later say
		// so: error 1007, HTTP 511.
		_, err := b.Jobs(ctx, []string{"1"})
		if err == nil || !errors.Is(err, ErrUnauthorized) && !strings.Contains(err.Error(), "JWT") {
			t.Fatalf("Jobs = %v, want ErrUnauthorized or an error that mentions the JWT", err)
		}
	})
	t.Run("no credentials: 401", func(t *testing.T) {
		// An empty token header is what slurmrestd sees as "no token".
		b := newB(Config{Token: "x"})
		b.tokens = newStaticToken("", time.Now)
		b.user = ""
		if _, err := b.Jobs(ctx, []string{"1"}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Jobs = %v, want ErrUnauthorized", err)
		}
	})
}
