package slurmcli

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestLiveGatedSubmission checks against the real sbatch what crash-safe
// pipelining rests on: started but sent no script (the gate refused, as
// after a failed commit or a duplicate request_id), sbatch makes no job;
// sent the script, exactly one, with the script whole, also one larger
// than a new pipe holds.
func TestLiveGatedSubmission(t *testing.T) {
	b, env := liveBackend(t)
	ctx := context.Background()

	refused := errors.New("record run: refused by the test")
	job := liveJob(t, env, "#!/bin/sh\ntrue\n")
	calls := 0
	id, err := b.SubmitGated(ctx, job, func() error { calls++; return refused })
	if id != "" || !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("refused gate: SubmitGated = %q, %v after %d gate calls; want no job, the gate's error, 1 call", id, err, calls)
	}
	// sbatch has exited (SubmitGated reaps it): had it made a job,
	// Slurm would list it now.
	jobs, err := b.FindByComment(ctx, job.Comment)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		for _, j := range jobs {
			_ = b.Cancel(ctx, j.JobID)
		}
		t.Fatalf("refused gate: Slurm has %d jobs with the comment %q (%+v), want none", len(jobs), job.Comment, jobs)
	}

	// 256 KiB: four times a new pipe's capacity.
	big := "#!/bin/sh\n" + strings.Repeat("# padding to outgrow a pipe's default 64 KiB\n", 256<<10/46) + "true\n"
	for _, script := range []string{"#!/bin/sh\ntrue\n", big} {
		job := liveJob(t, env, script)
		calls := 0
		id, err := b.SubmitGated(ctx, job, func() error { calls++; return nil })
		if err != nil || calls != 1 {
			t.Fatalf("open gate, %d-byte script: SubmitGated = %q, %v after %d gate calls", len(script), id, err, calls)
		}
		t.Cleanup(func() {
			if err := b.Cancel(context.Background(), id); err != nil {
				t.Errorf("cleanup: Cancel(%s): %v", id, err)
			}
		})
		jobs, err := b.FindByComment(ctx, job.Comment)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 || jobs[0].JobID != id {
			t.Fatalf("open gate: jobs with the comment %+v, want exactly job %s", jobs, id)
		}
		cmd := exec.Command("scontrol", "write", "batch_script", id, "-")
		cmd.Env = env.Environ()
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("scontrol write batch_script %s: %v", id, err)
		}
		if string(got) != script {
			t.Errorf("job %s holds a %d-byte script, want the %d bytes sent", id, len(got), len(script))
		}
	}
}
