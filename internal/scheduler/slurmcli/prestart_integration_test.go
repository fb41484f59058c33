package slurmcli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/slurmtest"
)

// TestLivePrestartedMakesTheSameJob submits one job with a cold sbatch
// (the options on its command line, the environment as its own) and the
// same job through a prestarted sbatch (the options as #SBATCH lines, the
// environment from descriptor 3), and compares what Slurm made of each:
// every field scontrol shows but the per-job ones, and the environment
// the batch script sees, byte for byte.
func TestLivePrestartedMakesTheSameJob(t *testing.T) {
	env := slurmtest.Require(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	coldB := New(Config{SlurmConf: env.SlurmConf, Timeout: time.Minute}, logger)
	warmB := New(Config{SlurmConf: env.SlurmConf, Timeout: time.Minute, Prestart: true}, logger)
	t.Cleanup(func() { warmB.Close() })
	ctx := context.Background()
	open := func() error { return nil }

	dir, err := os.MkdirTemp(env.WorkDir, "prestart-") // where the jobs can write
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The first submission of warmB starts cold and prestarts the next.
	first := liveJob(t, env, "#!/bin/sh\ntrue\n")
	first.Script, err = scheduler.RenderScript(first, nil, first.Script)
	if err != nil {
		t.Fatal(err)
	}
	var firstID string
	firstID, err = warmB.SubmitGated(ctx, first, open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = warmB.Cancel(context.Background(), firstID) })
	waitFor(t, warmB, firstID, 2*time.Minute, final)

	job := scheduler.JobSpec{
		Name: "slurmcli-prestart", Nodes: 1, TasksPerNode: 2, GPUsPerNode: 1, CPUsPerTask: 1,
		TimeLimit: 3 * time.Minute, WorkDir: dir, OutputPath: filepath.Join(dir, "job-%j.out"),
		Dependencies: []string{firstID}, Exclude: []string{"worker-1"},
		Environment: map[string]string{
			"SOPILOT_TEST_VALUE": "hello world",
			"TRICKY":             "a,b c\nd'e\"f=g\\h $HOME ü",
			"PATH":               "/usr/local/bin:/usr/bin:/bin:/opt/test/bin",
		},
	}
	ids := map[string]string{}
	for _, how := range []string{"cold", "prestarted"} {
		b := coldB
		if how == "prestarted" {
			b = warmB
		}
		j := job
		j.Comment = fmt.Sprintf("slurmcli-test:prestart-%s:%d", how, time.Now().UnixNano())
		script, err := scheduler.RenderScript(j, nil, "#!/bin/sh\nenv -0 > "+dir+"/env-$SLURM_JOB_ID\n")
		if err != nil {
			t.Fatal(err)
		}
		j.Script = script
		var waiting *prestarted
		if how == "prestarted" {
			waiting, _ = waitPrestarted(t, b, nil)
		}
		id, err := b.SubmitGated(ctx, j, open)
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		t.Cleanup(func() { _ = b.Cancel(context.Background(), id) })
		// The very process that was waiting printed this job's id (not
		// one retired meanwhile and replaced by a cold submission).
		if waiting != nil && (!waiting.exited() || strings.TrimSpace(waiting.stdout.String()) != id) {
			t.Fatalf("job %s was not submitted by the prestarted sbatch (exited %v, printed %q)", id, waiting.exited(), waiting.stdout.String())
		}
		ids[how] = id
		// One after the other, so that both get the node's first GPU.
		if st := waitFor(t, coldB, id, 3*time.Minute, final); st.State != "COMPLETED" || st.Nodes != "worker-0" {
			t.Fatalf("%s job %s: %+v, want COMPLETED on worker-0", how, id, st)
		}
	}
	fields, envs := map[string]map[string]string{}, map[string]map[string]string{}
	for how, id := range ids {
		fields[how] = scontrolJob(t, env, id)
		raw, err := os.ReadFile(filepath.Join(dir, "env-"+id))
		if err != nil {
			t.Fatalf("%s job's environment: %v", how, err)
		}
		envs[how] = map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			envs[how][k] = strings.ReplaceAll(v, id, "<id>")
		}
	}
	// What differs between any two jobs: ids (26.05's SLUID too), times,
	// the comment, which of slurmctld's schedulers started it; and, by
	// design, the command line 26.05 shows (SubmitLine): the options are on
	// a cold sbatch's, a prestarted one's is prestartArgs.
	perJob := map[string]bool{"JobId": true, "SubmitTime": true, "EligibleTime": true, "AccrueTime": true, "StartTime": true,
		"EndTime": true, "LastSchedEval": true, "Comment": true, "Priority": true, "RunTime": true, "Deadline": true,
		"PreemptEligibleTime": true, "PreemptTime": true, "SuspendTime": true, "SecsPreSuspend": true, "Scheduler": true,
		"SubmitLine":   true,
		"SLURM_JOB_ID": true, "SLURM_JOBID": true, "SLURM_TASK_PID": true, "SLURM_JOB_START_TIME": true,
		"SLURM_JOB_END_TIME": true, "SLURM_JOB_COMMENT": true, "SLURM_JOB_SLUID": true,
		// Set by the shell of the test clusters' chroot shim around a cold
		// sbatch, and passed on from its environment; a prestarted sbatch
		// passes on only its export file.
		"OLDPWD": true}
	compare := func(what string, cold, warm map[string]string) {
		for k, v := range cold {
			if !perJob[k] && warm[k] != v {
				t.Errorf("%s %s: cold %q, prestarted %q", what, k, v, warm[k])
			}
		}
		for k, v := range warm {
			if _, ok := cold[k]; !ok && !perJob[k] {
				t.Errorf("%s %s: only the prestarted job has it (%q)", what, k, v)
			}
		}
	}
	compare("scontrol show job:", fields["cold"], fields["prestarted"])
	compare("job environment:", envs["cold"], envs["prestarted"])
	for k, want := range job.Environment {
		if got := envs["prestarted"][k]; got != want {
			t.Errorf("prestarted job's %s = %q, want %q", k, got, want)
		}
	}
	t.Logf("%d scontrol fields and %d environment variables compared", len(fields["cold"]), len(envs["cold"]))
}

// scontrolJob returns scontrol's fields of job id (--oneliner, split at
// spaces: of the values here only SubmitLine holds any), with the job id in
// values replaced by "<id>".
func scontrolJob(t *testing.T, env slurmtest.Env, id string) map[string]string {
	t.Helper()
	cmd := exec.Command("scontrol", "show", "job", "--oneliner", id)
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v", id, err)
	}
	fields := map[string]string{}
	last := ""
	for _, f := range strings.Fields(string(out)) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || strings.HasPrefix(f, "-") { // the rest of a value with spaces (SubmitLine)
			fields[last] += " " + strings.ReplaceAll(f, id, "<id>")
			continue
		}
		fields[k], last = strings.ReplaceAll(v, id, "<id>"), k
	}
	return fields
}

// TestLivePrestartedSbatchWithdrawnMakesNoJob: a prestarted sbatch whose
// gate refuses, and one retired unused, both exit without a job.
func TestLivePrestartedSbatchWithdrawnMakesNoJob(t *testing.T) {
	env := slurmtest.Require(t)
	b := New(Config{SlurmConf: env.SlurmConf, Timeout: time.Minute, Prestart: true}, nil)
	ctx := context.Background()
	first := liveJob(t, env, "#!/bin/sh\ntrue\n")
	first.Script, _ = scheduler.RenderScript(first, nil, first.Script)
	id, err := b.SubmitGated(ctx, first, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Cancel(context.Background(), id) })

	refused := fmt.Errorf("record run: refused by the test")
	job := liveJob(t, env, "#!/bin/sh\ntrue\n")
	job.Script, _ = scheduler.RenderScript(job, nil, job.Script)
	p, _ := waitPrestarted(t, b, nil)
	if id, err := b.SubmitGated(ctx, job, func() error { return refused }); id != "" || err == nil {
		t.Fatalf("refused gate: SubmitGated = %q, %v", id, err)
	}
	if !p.exited() || !strings.Contains(p.stderr.String(), "empty") {
		t.Errorf("the withdrawn sbatch: exited %v, said %q; want it to refuse an empty script", p.exited(), p.stderr.String())
	}
	jobs, err := b.FindByComment(ctx, job.Comment)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("refused gate: jobs with the comment: %+v, %v; want none", jobs, err)
	}

	q, _ := waitPrestarted(t, b, p)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !q.exited() || !strings.Contains(q.stderr.String(), "empty") {
		t.Errorf("the retired sbatch: exited %v, said %q; want it to refuse an empty script", q.exited(), q.stderr.String())
	}
}
