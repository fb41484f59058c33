package slurmcli

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// fakeRunner records commands and answers them from a function.
type fakeRunner struct {
	mu    sync.Mutex
	calls []command
	reply func(ctx context.Context, c command) (result, error)
}

func (f *fakeRunner) run(ctx context.Context, c command) (result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.reply == nil {
		return result{}, nil
	}
	return f.reply(ctx, c)
}

// replay answers every command with a captured fixture.
func replay(t testing.TB, name string) *fakeRunner {
	res := fixture(t, name)
	return &fakeRunner{reply: func(context.Context, command) (result, error) { return res, nil }}
}

// fakeEnv is the controller environment the tests pretend to have; none of
// it but PATH, HOME and SLURM_CONF may reach a tool.
func fakeEnv(k string) string {
	return map[string]string{
		"PATH":       "/opt/slurm/bin:/usr/bin",
		"HOME":       "/var/lib/sopilot",
		"SLURM_CONF": "/from/controller/env/slurm.conf",
		"SECRET":     "do-not-leak",
		"LANG":       "de_DE.UTF-8",
	}[k]
}

func newTestBackend(cfg Config, r runner) *Backend {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	return newBackend(cfg, nil, r, fakeEnv)
}

func seedJob() scheduler.JobSpec {
	return scheduler.JobSpec{
		Name:         "train-llm",
		Partition:    "main",
		Nodes:        2,
		TasksPerNode: 8,
		GPUsPerNode:  8,
		CPUsPerTask:  4,
		TimeLimit:    90*time.Minute + 1500*time.Millisecond,
		WorkDir:      "/data/run 1",
		OutputPath:   "/data/run 1/%x-%j.out",
		Comment:      "sopilot:run-0123",
		Dependencies: []string{"11", "12"},
		Exclude:      []string{"worker-3", "worker-5"},
		Environment:  map[string]string{"WANDB_MODE": "offline", "PATH": "/job/bin:/usr/bin", "QUOTE": `a'b"c $(x)`},
		Script:       "#!/bin/bash\nsrun python train.py\n",
	}
}

func TestSubmitCommand(t *testing.T) {
	r := &fakeRunner{reply: func(context.Context, command) (result, error) {
		return result{stdout: []byte("1234\n")}, nil
	}}
	b := newTestBackend(Config{Sbatch: "/usr/bin/sbatch", SlurmConf: "/etc/sopilot/slurm.conf"}, r)
	id, err := b.Submit(context.Background(), seedJob())
	if err != nil || id != "1234" {
		t.Fatalf("Submit = %q, %v; want 1234", id, err)
	}
	if len(r.calls) != 1 {
		t.Fatalf("%d commands, want 1", len(r.calls))
	}
	c := r.calls[0]
	wantArgs := []string{
		"--parsable",
		"--job-name=train-llm",
		"--partition=main",
		"--nodes=2",
		"--ntasks-per-node=8",
		"--gres=gpu:8",
		"--cpus-per-task=4",
		"--time=01:30:02",
		"--chdir=/data/run 1",
		"--output=/data/run 1/%x-%j.out",
		"--error=/data/run 1/%x-%j.out",
		"--comment=sopilot:run-0123",
		"--dependency=afterok:11:12",
		"--exclude=worker-3,worker-5",
		"--export=ALL",
	}
	if c.path != "/usr/bin/sbatch" || !slices.Equal(c.args, wantArgs) {
		t.Errorf("command %s %q\nwant %q", c.path, c.args, wantArgs)
	}
	wantEnv := []string{
		"HOME=/var/lib/sopilot",
		"LANG=C.UTF-8",
		"PATH=/job/bin:/usr/bin", // the job's PATH wins
		`QUOTE=a'b"c $(x)`,
		"SLURM_CONF=/etc/sopilot/slurm.conf",
		"WANDB_MODE=offline",
	}
	if !slices.Equal(c.env, wantEnv) {
		t.Errorf("env %q\nwant %q", c.env, wantEnv)
	}
	if c.stdin != seedJob().Script {
		t.Errorf("stdin %q, want the script", c.stdin)
	}
}

func TestSubmitMinimalSpec(t *testing.T) {
	r := &fakeRunner{reply: func(context.Context, command) (result, error) {
		return result{stdout: []byte("7;sopilot\n")}, nil
	}}
	b := newTestBackend(Config{}, r)
	id, err := b.Submit(context.Background(), scheduler.JobSpec{Script: "#!/bin/sh\ntrue\n"})
	if err != nil || id != "7" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	c := r.calls[0]
	if c.path != "sbatch" || !slices.Equal(c.args, []string{"--parsable", "--export=ALL"}) {
		t.Errorf("command %s %q", c.path, c.args)
	}
	// SLURM_CONF from the controller's environment configures the tools.
	want := []string{"HOME=/var/lib/sopilot", "LANG=C.UTF-8", "PATH=/opt/slurm/bin:/usr/bin", "SLURM_CONF=/from/controller/env/slurm.conf"}
	if !slices.Equal(c.env, want) {
		t.Errorf("env %q, want %q", c.env, want)
	}
}

func TestSubmitRefusedSpecRunsNothing(t *testing.T) {
	tests := []struct {
		name string
		edit func(*scheduler.JobSpec)
	}{
		{"empty script", func(j *scheduler.JobSpec) { j.Script = "" }},
		{"negative nodes", func(j *scheduler.JobSpec) { j.Nodes = -1 }},
		{"negative time", func(j *scheduler.JobSpec) { j.TimeLimit = -time.Second }},
		{"dependency not an id", func(j *scheduler.JobSpec) { j.Dependencies = []string{"12", "--wrap=x"} }},
		{"newline in comment", func(j *scheduler.JobSpec) { j.Comment = "a\nb" }},
		{"separator in name", func(j *scheduler.JobSpec) { j.Name = "a\x1fb" }},
		{"SBATCH_ variable", func(j *scheduler.JobSpec) { j.Environment = map[string]string{"SBATCH_RESERVATION": "x"} }},
		{"SLURM_ variable", func(j *scheduler.JobSpec) { j.Environment = map[string]string{"SLURM_CONF": "/tmp/evil"} }},
		{"bad variable name", func(j *scheduler.JobSpec) { j.Environment = map[string]string{"A=B": "x"} }},
		{"NUL in value", func(j *scheduler.JobSpec) { j.Environment = map[string]string{"A": "x\x00y"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{}
			job := seedJob()
			tt.edit(&job)
			_, err := newTestBackend(Config{}, r).Submit(context.Background(), job)
			if !errors.Is(err, scheduler.ErrRejected) {
				t.Errorf("err = %v, want ErrRejected", err)
			}
			if len(r.calls) != 0 {
				t.Errorf("ran %d commands", len(r.calls))
			}
		})
	}
}

func TestSubmitFailures(t *testing.T) {
	tests := []struct {
		name    string
		runner  *fakeRunner
		want    error // sentinel; nil: neither
		message string
	}{
		{name: "invalid partition", runner: replay(t, "sbatch-invalid-partition"), want: scheduler.ErrRejected, message: "Invalid partition name specified"},
		{name: "too many gpus", runner: replay(t, "sbatch-too-many-gpus"), want: scheduler.ErrRejected, message: "Requested node configuration is not available"},
		{name: "invalid dependency", runner: replay(t, "sbatch-invalid-dependency-syntax"), want: scheduler.ErrRejected, message: "Job dependency problem"},
		{name: "controller down", runner: replay(t, "sbatch-controller-down"), want: scheduler.ErrUnavailable, message: "Unable to contact slurm controller"},
		{name: "sbatch missing", runner: &fakeRunner{reply: func(context.Context, command) (result, error) {
			return result{exitCode: -1}, errors.New(`exec: "sbatch": executable file not found in $PATH`)
		}}, want: scheduler.ErrUnavailable, message: "executable file not found"},
		{name: "exit 0 without an id", runner: &fakeRunner{reply: func(context.Context, command) (result, error) {
			return result{stdout: []byte("oops\n")}, nil
		}}, message: `sbatch printed "oops", not a job id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := newTestBackend(Config{}, tt.runner).Submit(context.Background(), seedJob())
			if err == nil || id != "" {
				t.Fatalf("Submit = %q, %v; want an error", id, err)
			}
			for _, s := range []error{scheduler.ErrRejected, scheduler.ErrUnavailable} {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, s != tt.want)
				}
			}
			if !strings.HasPrefix(err.Error(), "sbatch: ") || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q lacks %q", err, tt.message)
			}
		})
	}
}

func TestJobs(t *testing.T) {
	tests := []struct {
		name    string
		ids     []string
		wantIDs []string
		calls   int
	}{
		{name: "no ids runs nothing", ids: nil, calls: 0},
		{name: "empty slice runs nothing", ids: []string{}, calls: 0},
		{name: "one id", ids: []string{"3"}, wantIDs: []string{"3"}, calls: 1},
		{name: "many ids one call, squeue order", ids: []string{"8", "2", "999999", "11", "3", "1"}, wantIDs: []string{"11", "1", "2", "8", "3"}, calls: 1},
		{name: "unknown only", ids: []string{"999999"}, wantIDs: nil, calls: 1},
		{name: "duplicates", ids: []string{"2", "2"}, wantIDs: []string{"2"}, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replay(t, "squeue-all")
			got, err := newTestBackend(Config{Squeue: "/opt/squeue", Query: QueryFormat}, r).Jobs(context.Background(), tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range got {
				ids = append(ids, j.JobID)
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("ids %q, want %q", ids, tt.wantIDs)
			}
			if len(r.calls) != tt.calls {
				t.Fatalf("%d commands, want %d", len(r.calls), tt.calls)
			}
			if tt.calls == 1 {
				c := r.calls[0]
				if c.path != "/opt/squeue" || !slices.Equal(c.args, squeueArgs()) {
					t.Errorf("command %s %q", c.path, c.args)
				}
				want := []string{"PATH=/opt/slurm/bin:/usr/bin", "HOME=/var/lib/sopilot", "LANG=C.UTF-8", "SLURM_CONF=/from/controller/env/slurm.conf"}
				if !slices.Equal(c.env, want) {
					t.Errorf("env %q, want %q", c.env, want)
				}
			}
		})
	}
}

func TestJobsValues(t *testing.T) {
	got, err := newTestBackend(Config{Query: QueryFormat}, replay(t, "squeue-all")).Jobs(context.Background(), []string{"2"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Jobs = %v, %v", got, err)
	}
	want := scheduler.JobStatus{JobID: "2", Name: "a very long job name with spaces, commas|pipes and more text",
		State: "FAILED", Reason: "NonZeroExitCode", Comment: "sopilot:key=0123456789abcdef0123456789abcdef|x,y",
		Nodes: "worker-0", ExitCode: 3, StartTime: at("09:07:17"), EndTime: at("09:07:17")}
	if got[0] != want {
		t.Errorf("got %+v\nwant %+v", got[0], want)
	}
}

func TestJobsMalformedRecords(t *testing.T) {
	good := "7\x1fn\x1fCOMPLETED\x1fNone\x1fc\x1fworker-0\x1f0\x1fN/A\x1fN/A\x1e\n"
	bad := "8\x1fn\x1fRUNNING\x1e\n"
	r := &fakeRunner{reply: func(context.Context, command) (result, error) {
		return result{stdout: []byte(bad + good)}, nil
	}}
	b := newTestBackend(Config{Query: QueryFormat}, r)
	got, err := b.Jobs(context.Background(), []string{"7"})
	if err != nil || len(got) != 1 || got[0].JobID != "7" {
		t.Errorf("another job's bad record: Jobs = %+v, %v; want job 7", got, err)
	}
	if _, err := b.Jobs(context.Background(), []string{"7", "8"}); err == nil {
		t.Error("a requested job's bad record: no error")
	}
	if got, err := b.FindByComment(context.Background(), "c"); err != nil || len(got) != 1 {
		t.Errorf("FindByComment = %+v, %v", got, err)
	}
}

func TestJobsFailures(t *testing.T) {
	_, err := newTestBackend(Config{}, replay(t, "squeue-controller-down")).Jobs(context.Background(), []string{"1"})
	if !errors.Is(err, scheduler.ErrUnavailable) || !strings.HasPrefix(err.Error(), "squeue: ") {
		t.Errorf("err = %v, want squeue: ... ErrUnavailable", err)
	}
	r := &fakeRunner{reply: func(context.Context, command) (result, error) {
		return result{exitCode: 1, stderr: []byte("squeue: error: Invalid user: nobody\n")}, nil
	}}
	_, err = newTestBackend(Config{}, r).Jobs(context.Background(), []string{"1"})
	if err == nil || errors.Is(err, scheduler.ErrUnavailable) || errors.Is(err, scheduler.ErrRejected) {
		t.Errorf("err = %v, want a plain error", err)
	}
}

func TestFindByComment(t *testing.T) {
	tests := []struct {
		prefix string
		want   []string
	}{
		{"sopilot:fx-", []string{"11", "13", "4", "9", "10", "8", "3"}},
		{"sopilot:key=0123", []string{"2"}},
		{"slurmrest-dev:", []string{"12"}},
		{"nothing-has-this", nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			r := replay(t, "squeue-all")
			got, err := newTestBackend(Config{Query: QueryFormat}, r).FindByComment(context.Background(), tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range got {
				ids = append(ids, j.JobID)
			}
			if !slices.Equal(ids, tt.want) || len(r.calls) != 1 {
				t.Errorf("ids %q after %d calls, want %q after 1", ids, len(r.calls), tt.want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		runner  *fakeRunner
		want    error // nil: success; else errors.Is target (or errPlain)
		command bool
	}{
		{name: "running job", id: "22", runner: replay(t, "scancel-running-job"), command: true},
		{name: "unknown job (silent exit 0)", id: "999999", runner: replay(t, "scancel-unknown"), command: true},
		{name: "completed job (silent exit 0)", id: "4", runner: replay(t, "scancel-completed"), command: true},
		{name: "unknown job with exit 1", id: "999999", command: true, runner: &fakeRunner{reply: func(context.Context, command) (result, error) {
			r := fixture(t, "scancel-unknown-verbose")
			r.exitCode = 1
			return r, nil
		}}},
		{name: "completed job with exit 1", id: "4", command: true, runner: &fakeRunner{reply: func(context.Context, command) (result, error) {
			r := fixture(t, "scancel-completed-verbose")
			r.exitCode = 1
			return r, nil
		}}},
		{name: "controller down", id: "4", runner: replay(t, "scancel-controller-down"), want: scheduler.ErrUnavailable, command: true},
		{name: "other failure", id: "4", runner: &fakeRunner{reply: func(context.Context, command) (result, error) {
			return result{exitCode: 1, stderr: []byte("scancel: error: Kill job error on job id 4: Access/permission denied\n")}, nil
		}}, want: errPlain, command: true},
		{name: "option-looking id", id: "-u", runner: &fakeRunner{}, want: scheduler.ErrRejected},
		{name: "empty id", id: "", runner: &fakeRunner{}, want: scheduler.ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newTestBackend(Config{Scancel: "/x/scancel"}, tt.runner).Cancel(context.Background(), tt.id)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.want == errPlain && (err == nil || errors.Is(err, scheduler.ErrUnavailable) || errors.Is(err, scheduler.ErrRejected)):
				t.Errorf("err = %v, want a plain error", err)
			case tt.want != nil && tt.want != errPlain && !errors.Is(err, tt.want):
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if got := len(tt.runner.calls); got != map[bool]int{true: 1, false: 0}[tt.command] {
				t.Fatalf("%d commands", got)
			}
			if tt.command {
				if c := tt.runner.calls[0]; c.path != "/x/scancel" || !slices.Equal(c.args, []string{tt.id}) {
					t.Errorf("command %s %q", c.path, c.args)
				}
			}
		})
	}
}

var errPlain = errors.New("plain error")

func TestRunTimeoutAndCancellation(t *testing.T) {
	block := &fakeRunner{reply: func(ctx context.Context, _ command) (result, error) {
		<-ctx.Done()
		return result{exitCode: -1}, errors.New("signal: killed")
	}}
	b := newTestBackend(Config{Timeout: 20 * time.Millisecond}, block)
	_, err := b.Jobs(context.Background(), []string{"1"})
	if !errors.Is(err, scheduler.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within 20ms") {
		t.Errorf("timeout: err = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = b.Submit(ctx, seedJob())
	if !errors.Is(err, context.Canceled) || errors.Is(err, scheduler.ErrUnavailable) {
		t.Errorf("cancelled: err = %v, want context.Canceled only", err)
	}
}

func TestPing(t *testing.T) {
	tests := []struct {
		name   string
		res    result
		wantOK bool
	}{
		{"up", result{stdout: []byte("Slurmctld(primary) at vm is UP\n")}, true},
		{"down", result{exitCode: 1, stdout: []byte("Slurmctld(primary) at vm is DOWN\n")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{reply: func(context.Context, command) (result, error) { return tt.res, nil }}
			if tt.wantOK {
				r = pingRunner("24.11.5", "24.11.5") // the version check follows a ping that succeeded
			}
			err := newTestBackend(Config{}, r).Ping(context.Background())
			if (err == nil) != tt.wantOK || (err != nil && !errors.Is(err, scheduler.ErrUnavailable)) {
				t.Errorf("Ping = %v", err)
			}
		})
	}
}

func TestName(t *testing.T) {
	if got := New(Config{}, nil).Name(); got != "cli" {
		t.Errorf("Name() = %q", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := replay(t, "squeue-json")
	b := newTestBackend(Config{}, r)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs, err := b.Jobs(context.Background(), []string{"2", "3"})
			if err != nil || len(jobs) != 2 {
				t.Errorf("goroutine %d: Jobs = %d jobs, %v", i, len(jobs), err)
			}
		}()
	}
	wg.Wait()
	if len(r.calls) != 16 {
		t.Errorf("%d commands, want 16", len(r.calls))
	}
}

// The #SBATCH lines a user reads in the script say exactly what sbatch got.
func TestArgsMatchScriptDirectives(t *testing.T) {
	job := scheduler.JobSpec{
		Name: "train", Partition: "main", Nodes: 2, TasksPerNode: 8, GPUsPerNode: 8, CPUsPerTask: 4,
		TimeLimit: 6 * time.Hour, WorkDir: "/jail/demo", OutputPath: "/jail/demo/train-%j.out",
		Comment: "sopilot:run=r-1", Dependencies: []string{"11", "12"},
	}
	script, err := scheduler.RenderScript(job, []string{"python3", "train.py"}, "")
	if err != nil {
		t.Fatal(err)
	}
	job.Script = script
	args, err := sbatchArgs(job)
	if err != nil {
		t.Fatal(err)
	}
	var directives []string
	for _, line := range strings.Split(script, "\n") {
		if d, ok := strings.CutPrefix(line, "#SBATCH "); ok {
			directives = append(directives, d)
		}
	}
	want := append([]string{"--parsable"}, directives...)
	want = append(want, "--export=ALL")
	if strings.Join(args, "\n") != strings.Join(want, "\n") {
		t.Errorf("sbatch args:\n%s\nscript directives (+ --parsable, --export=ALL):\n%s", strings.Join(args, "\n"), strings.Join(want, "\n"))
	}
	if len(directives) != 12 {
		t.Errorf("%d directives, want 12 (every field of the job): %v", len(directives), directives)
	}
}
