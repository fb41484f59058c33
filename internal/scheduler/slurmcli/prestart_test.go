package slurmcli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// fakePrestartSbatch writes an sbatch stand-in that records, per process
// (files named by its pid), its arguments, its environment, what it reads
// on descriptor 3 and on stdin, and answers as sbatch does: an empty
// script is refused, else it prints its own pid as the job id.
func fakePrestartSbatch(t *testing.T) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	script := `#!/bin/sh
d='` + dir + `'
printf '%s\n' "$*" > "$d/args-$$"
env > "$d/env-$$"
: > "$d/started-$$"
case "$*" in *--export-file=3*) cat <&3 > "$d/exportfile-$$" ;; esac
cat > "$d/stdin-$$"
if [ ! -s "$d/stdin-$$" ]; then
	echo 'sbatch: error: Batch script is empty!' >&2
	exit 1
fi
echo $$
`
	path = filepath.Join(dir, "sbatch")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func prestartBackend(sbatch string) *Backend {
	getenv := func(k string) string {
		return map[string]string{"PATH": "/usr/bin:/bin", "HOME": "/home/ctl"}[k]
	}
	return newBackend(Config{Sbatch: sbatch, Timeout: 20 * time.Second, SlurmConf: "/etc/slurm-test/slurm.conf", Prestart: true},
		nil, execRunner{}, getenv)
}

// renderedJob is a job whose script RenderScript made, as the controller's
// are, with an environment no command line or #SBATCH line could carry.
func renderedJob(t *testing.T) scheduler.JobSpec {
	t.Helper()
	job := scheduler.JobSpec{Name: "train-1", Nodes: 2, TasksPerNode: 8, GPUsPerNode: 8, CPUsPerTask: 4,
		TimeLimit: 90 * time.Minute, WorkDir: "/shared/work", OutputPath: "/shared/out/train-1-%j.out",
		Comment: "sopilot:run=r-01abc", Dependencies: []string{"17", "18"}, Exclude: []string{"worker-3"},
		Environment: map[string]string{"TRICKY": "a,b c\nd'e\"f=g\\h $HOME ü", "PATH": "/opt/conda/bin:/usr/bin"}}
	script, err := scheduler.RenderScript(job, []string{"python", "train.py"}, "")
	if err != nil {
		t.Fatal(err)
	}
	job.Script = script
	return job
}

// waitPrestarted waits for a prestarted sbatch to be waiting (not p) and
// returns it with its pid.
func waitPrestarted(t *testing.T, b *Backend, not *prestarted) (*prestarted, string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b.prestart.mu.Lock()
		p := b.prestart.ready
		b.prestart.mu.Unlock()
		if p != nil && p != not {
			return p, strconv.Itoa(p.cmd.Process.Pid)
		}
	}
	t.Fatal("no prestarted sbatch within 10 s")
	return nil, ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrestartedSbatchTakesTheNextJob(t *testing.T) {
	sbatch, dir := fakePrestartSbatch(t)
	b := prestartBackend(sbatch)
	t.Cleanup(func() { b.Close() })
	job := renderedJob(t)
	ctx := context.Background()
	open := func() error { return nil }

	// The first submission starts its own sbatch, with the options on its
	// command line, and a prestarted one after it.
	cold, err := b.SubmitGated(ctx, job, open)
	if err != nil {
		t.Fatal(err)
	}
	if args := readFile(t, filepath.Join(dir, "args-"+cold)); !strings.Contains(args, "--job-name=train-1") {
		t.Fatalf("first submission's sbatch ran with %q, want the job's options", args)
	}
	_, pid := waitPrestarted(t, b, nil)

	calls := 0
	id, err := b.SubmitGated(ctx, job, func() error {
		calls++
		// It was started before this call; under load its shell may not
		// have got as far as recording that yet.
		if err := waitForFile(filepath.Join(dir, "started-"+pid)); err != nil {
			t.Error(err)
		}
		if got := readFile(t, filepath.Join(dir, "stdin-"+pid)) + readFile(t, filepath.Join(dir, "exportfile-"+pid)); got != "" {
			t.Errorf("the prestarted sbatch read %q before the gate opened", got)
		}
		return nil
	})
	if err != nil || id != pid || calls != 1 {
		t.Fatalf("SubmitGated = %q, %v after %d gate calls; want the prestarted sbatch (pid %s) to submit it, 1 call", id, err, calls, pid)
	}
	if got, want := readFile(t, filepath.Join(dir, "args-"+pid)), strings.Join(prestartArgs, " ")+"\n"; got != want {
		t.Errorf("prestarted sbatch's arguments %q, want %q", got, want)
	}
	for _, kv := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "env-"+pid))), "\n") {
		k, _, _ := strings.Cut(kv, "=")
		if k != "SLURM_CONF" && k != "PWD" && k != "SHLVL" && k != "_" {
			t.Errorf("prestarted sbatch's own environment holds %q; want SLURM_CONF alone (and what sh sets)", kv)
		}
	}
	if got, want := readFile(t, filepath.Join(dir, "exportfile-"+pid)), exportFile(append(sbatchEnv(b.base, job), "SLURM_JOB_NAME=train-1", "SLURM_JOB_DEPENDENCY=afterok:17:18")); got != want {
		t.Errorf("export file %q, want %q", got, want)
	}
	for _, want := range []string{"TRICKY=a,b c\nd'e\"f=g\\h $HOME ü\x00", "PATH=/opt/conda/bin:/usr/bin\x00", "HOME=/home/ctl\x00", "SLURM_CONF=/etc/slurm-test/slurm.conf\x00"} {
		if !strings.Contains(readFile(t, filepath.Join(dir, "exportfile-"+pid)), want) {
			t.Errorf("export file lacks %q", want)
		}
	}
	if got := readFile(t, filepath.Join(dir, "stdin-"+pid)); got != job.Script {
		t.Errorf("prestarted sbatch read the script %q, want %q", got, job.Script)
	}
	// And one is waiting again for the next job.
	waitPrestarted(t, b, nil)
}

func TestPrestartedSbatchRefusedGateSendsNothing(t *testing.T) {
	sbatch, dir := fakePrestartSbatch(t)
	b := prestartBackend(sbatch)
	t.Cleanup(func() { b.Close() })
	job := renderedJob(t)
	if _, err := b.SubmitGated(context.Background(), job, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	p, pid := waitPrestarted(t, b, nil)
	refused := errors.New("record run: disk full")
	id, err := b.SubmitGated(context.Background(), job, func() error { return refused })
	if id != "" || !errors.Is(err, refused) {
		t.Fatalf("SubmitGated = %q, %v; want no job and the gate's error", id, err)
	}
	if !p.exited() {
		t.Error("the prestarted sbatch was not reaped")
	}
	if got := readFile(t, filepath.Join(dir, "stdin-"+pid)) + readFile(t, filepath.Join(dir, "exportfile-"+pid)); got != "" {
		t.Errorf("the prestarted sbatch read %q; want nothing", got)
	}
}

func TestPrestartedSbatchLeftForJobsItCannotCarry(t *testing.T) {
	sbatch, dir := fakePrestartSbatch(t)
	b := prestartBackend(sbatch)
	t.Cleanup(func() { b.Close() })
	if _, err := b.SubmitGated(context.Background(), renderedJob(t), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	p, pid := waitPrestarted(t, b, nil)

	unmirrored := renderedJob(t)
	unmirrored.Partition = "gpu" // after the script was rendered
	plain := renderedJob(t)
	plain.Script = "#!/bin/sh\ntrue\n"
	for name, job := range map[string]scheduler.JobSpec{"an option the script lacks": unmirrored, "a script without the #SBATCH lines": plain} {
		id, err := b.SubmitGated(context.Background(), job, func() error { return nil })
		if err != nil || id == pid || id == "" {
			t.Fatalf("%s: SubmitGated = %q, %v; want a cold sbatch's job", name, id, err)
		}
		if args := readFile(t, filepath.Join(dir, "args-"+id)); !strings.Contains(args, "--chdir="+job.WorkDir) {
			t.Errorf("%s: cold sbatch ran with %q, want the options on its command line", name, args)
		}
		if q, _ := waitPrestarted(t, b, nil); q != p {
			t.Errorf("%s: the waiting sbatch was used or replaced", name)
		}
	}
}

func TestNoSbatchPrestartedForJobsItCouldNotCarry(t *testing.T) {
	sbatch, _ := fakePrestartSbatch(t)
	b := prestartBackend(sbatch)
	t.Cleanup(func() { b.Close() })
	plain := renderedJob(t)
	plain.Script = "#!/bin/sh\ntrue\n"
	if _, err := b.SubmitGated(context.Background(), plain, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * prestartDelay)
	b.prestart.mu.Lock()
	defer b.prestart.mu.Unlock()
	if b.prestart.ready != nil || b.prestart.starting {
		t.Error("a sbatch was prestarted after a job no prestarted sbatch could take")
	}
}

func TestPrestartedSbatchIsReplacedWhenOld(t *testing.T) {
	sbatch, dir := fakePrestartSbatch(t)
	b := prestartBackend(sbatch)
	t.Cleanup(func() { b.Close() })
	b.prestart.maxAge = 200 * time.Millisecond
	if _, err := b.SubmitGated(context.Background(), renderedJob(t), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	p1, pid1 := waitPrestarted(t, b, nil)
	waitPrestarted(t, b, p1) // its replacement (itself retired 200 ms later)
	select {
	case <-p1.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the retired sbatch did not exit")
	}
	if got := readFile(t, filepath.Join(dir, "stdin-"+pid1)); got != "" || p1.waitErr == nil {
		t.Errorf("the retired sbatch read %q and exited with %v; want an empty script, refused", got, p1.waitErr)
	}
}

func TestCloseRetiresThePrestartedSbatch(t *testing.T) {
	sbatch, dir := fakePrestartSbatch(t)
	b := prestartBackend(sbatch)
	if _, err := b.SubmitGated(context.Background(), renderedJob(t), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	p, pid := waitPrestarted(t, b, nil)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.exited() || readFile(t, filepath.Join(dir, "stdin-"+pid)) != "" {
		t.Fatal("Close left the prestarted sbatch running, or sent it something")
	}
	// Submissions go on, each with its own sbatch, and none is prestarted.
	id, err := b.SubmitGated(context.Background(), renderedJob(t), func() error { return nil })
	if err != nil || id == "" || id == pid {
		t.Fatalf("after Close: SubmitGated = %q, %v", id, err)
	}
	time.Sleep(50 * time.Millisecond)
	b.prestart.mu.Lock()
	defer b.prestart.mu.Unlock()
	if b.prestart.ready != nil || b.prestart.starting {
		t.Error("a sbatch was prestarted after Close")
	}
}

func TestCloseKillsAStuckPrestartedSbatch(t *testing.T) {
	defer func(g time.Duration) { retireGrace = g }(retireGrace)
	retireGrace = 300 * time.Millisecond
	// An sbatch stuck before it reads its input (a hung file system):
	// ending its input does not end it.
	dir := t.TempDir()
	sbatch := filepath.Join(dir, "sbatch")
	if err := os.WriteFile(sbatch, []byte("#!/bin/sh\ncase \"$*\" in *--export-file*) exec sleep 60 ;; esac\ncat >/dev/null\necho 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := prestartBackend(sbatch)
	if _, err := b.SubmitGated(context.Background(), renderedJob(t), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	p, _ := waitPrestarted(t, b, nil)
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); !p.exited() || took > 5*time.Second {
		t.Fatalf("Close returned after %s, the stuck sbatch exited: %v; want it killed after the grace", took, p.exited())
	}
}

func TestPrestartable(t *testing.T) {
	job := renderedJob(t)
	with := func(f func(*scheduler.JobSpec)) scheduler.JobSpec {
		j := job
		f(&j)
		return j
	}
	first, rest, _ := strings.Cut(job.Script, "\n")
	cases := []struct {
		name string
		job  scheduler.JobSpec
		want bool
	}{
		{"rendered", job, true},
		{"#SBATCH line after the script's first command", with(func(j *scheduler.JobSpec) { j.Script += "#SBATCH --nodes=9\n" }), true},
		{"no #! line", with(func(j *scheduler.JobSpec) { j.Script = rest }), false},
		{"no #SBATCH lines", with(func(j *scheduler.JobSpec) { j.Script = first + "\ntrue\n" }), false},
		{"an option not in the script", with(func(j *scheduler.JobSpec) { j.Partition = "gpu" }), false},
		{"another #SBATCH line in the block", with(func(j *scheduler.JobSpec) {
			j.Script = strings.Replace(j.Script, "#SBATCH --exclude=worker-3\n", "#SBATCH --exclude=worker-3\n#\n#SBATCH --mem=1G\n", 1)
		}), false},
		{"a space in a value", with(func(j *scheduler.JobSpec) {
			j.Comment = "run 1"
			j.Script = strings.Replace(j.Script, "--comment=sopilot:run=r-01abc", "--comment=run 1", 1)
		}), false},
		{"a quote in a value", with(func(j *scheduler.JobSpec) {
			j.Name = `a"b`
			j.Script = strings.Replace(j.Script, "--job-name=train-1", `--job-name=a"b`, 1)
		}), false},
	}
	for _, c := range cases {
		if got := prestartable(c.job); got != c.want {
			t.Errorf("%s: prestartable = %v, want %v", c.name, got, c.want)
		}
	}
}
