package cli

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/spf13/pflag"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/pkg/apipb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func submitSpec(t *testing.T, args []string, stdin string) (*apipb.RunSpec, error) {
	t.Helper()
	fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
	s := &submitOptions{}
	s.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return s.spec(fs, fs.Args(), strings.NewReader(stdin))
}

func TestSubmitFlagsToSpec(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(script, []byte("srun hostname\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runFile := filepath.Join(dir, "run.json")
	if err := os.WriteFile(runFile, []byte(`{"job_name": "from-file", "nodes": 4, "time_limit": "600s",
		"argv": ["python3", "eval.py"], "labels": {"team": "nlp"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	base := func(s *apipb.RunSpec) *apipb.RunSpec {
		if s.Nodes == 0 {
			s.Nodes = 1
		}
		if s.TasksPerNode == 0 {
			s.TasksPerNode = 1
		}
		return s
	}
	hour := durationpb.New(time.Hour)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  *apipb.RunSpec
	}{
		{
			name: "every flag",
			args: []string{"--job-name", "training-with-original", "--nodes", "2", "--ntasks-per-node", "8",
				"--gpus-per-node", "8", "--cpus-per-task", "4", "--time", "06:00:00", "--partition", "gpu",
				"--chdir", "/work", "--output-dir", "/work/out", "--env", "NCCL_DEBUG=INFO", "--env", "A=b=c",
				"--label", "experiment=lr", "--label", "seed=1", "--depends-on", "r-1", "--depends-on", "r-2",
				"--results-path", "/work/results.jsonl", "--", "python3", "train.py", "--lr", "3e-4"},
			want: &apipb.RunSpec{JobName: "training-with-original", Nodes: 2, TasksPerNode: 8, GpusPerNode: 8,
				CpusPerTask: 4, TimeLimit: durationpb.New(6 * time.Hour), Partition: "gpu",
				WorkingDirectory: "/work", OutputDirectory: "/work/out",
				Environment: map[string]string{"NCCL_DEBUG": "INFO", "A": "b=c"},
				Labels:      map[string]string{"experiment": "lr", "seed": "1"},
				DependsOn:   []string{"r-1", "r-2"}, ResultsPath: "/work/results.jsonl",
				Argv: []string{"python3", "train.py", "--lr", "3e-4"}},
		},
		{
			name: "short flags and gres",
			args: []string{"-J", "j", "-N", "3", "--gres", "gpu:4", "-c", "2", "-t", "90", "-p", "debug", "-D", "/w", "--", "true"},
			want: &apipb.RunSpec{JobName: "j", Nodes: 3, TasksPerNode: 1, GpusPerNode: 4, CpusPerTask: 2,
				TimeLimit: durationpb.New(90 * time.Minute), Partition: "debug", WorkingDirectory: "/w", Argv: []string{"true"}},
		},
		{
			name: "gres agreeing with gpus-per-node",
			args: []string{"-J", "j", "--gres", "gpu:8", "--gpus-per-node", "8", "-t", "1h", "--", "true"},
			want: base(&apipb.RunSpec{JobName: "j", GpusPerNode: 8, TimeLimit: hour, Argv: []string{"true"}}),
		},
		{
			name: "script file",
			args: []string{"-J", "j", "-t", "1h", "--script", script},
			want: base(&apipb.RunSpec{JobName: "j", TimeLimit: hour, Script: "srun hostname\n"}),
		},
		{
			name:  "script from stdin",
			args:  []string{"-J", "j", "-t", "1h", "--script", "-"},
			stdin: "echo hi\n",
			want:  base(&apipb.RunSpec{JobName: "j", TimeLimit: hour, Script: "echo hi\n"}),
		},
		{
			name: "run file alone",
			args: []string{"-f", runFile},
			want: &apipb.RunSpec{JobName: "from-file", Nodes: 4, TimeLimit: durationpb.New(10 * time.Minute),
				Argv: []string{"python3", "eval.py"}, Labels: map[string]string{"team": "nlp"}},
		},
		{
			name: "flags override the run file",
			args: []string{"-f", runFile, "--nodes", "1", "--time", "0-01", "--", "python3", "eval.py", "--fast"},
			want: &apipb.RunSpec{JobName: "from-file", Nodes: 1, TimeLimit: hour,
				Argv: []string{"python3", "eval.py", "--fast"}, Labels: map[string]string{"team": "nlp"}},
		},
		{
			name:  "run file from stdin, camelCase",
			args:  []string{"-f", "-"},
			stdin: `{"jobName": "s", "nodes": 1, "timeLimit": "60s", "script": "true"}`,
			want:  &apipb.RunSpec{JobName: "s", Nodes: 1, TimeLimit: durationpb.New(time.Minute), Script: "true"},
		},
		{
			name: "YAML run file, like the seed's #SBATCH lines",
			args: []string{"-f", "-"},
			stdin: "# training-with-original\njob_name: training-with-original\nnodes: 2\ntasks_per_node: 8\ngpus_per_node: 8\n" +
				"time_limit: 21600s\nargv: [python3, train.py, --epochs, \"30\"]\nlabels:\n  team: nlp\n",
			want: &apipb.RunSpec{JobName: "training-with-original", Nodes: 2, TasksPerNode: 8, GpusPerNode: 8,
				TimeLimit: durationpb.New(6 * time.Hour), Argv: []string{"python3", "train.py", "--epochs", "30"}, Labels: map[string]string{"team": "nlp"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := submitSpec(t, tt.args, tt.stdin)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("spec =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestSubmitFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"bad time", []string{"-J", "j", "--time", "6 hours", "--", "true"}, `--time "6 hours"`},
		{"negative time", []string{"-J", "j", "--time", "-5m", "--", "true"}, `--time "-5m"`},
		{"fractional time", []string{"-J", "j", "--time", "1.5s", "--", "true"}, `--time "1.5s": must be whole seconds`},
		{"missing time", []string{"-J", "j", "--", "true"}, "--time is required"},
		{"env without =", []string{"-J", "j", "-t", "1h", "--env", "NCCL_DEBUG", "--", "true"}, `--env "NCCL_DEBUG": want KEY=VALUE`},
		{"env empty key", []string{"-J", "j", "-t", "1h", "--env", "=x", "--", "true"}, `--env "=x"`},
		{"env twice", []string{"-J", "j", "-t", "1h", "--env", "A=1", "--env", "A=2", "--", "true"}, `--env: "A" given twice`},
		{"label without =", []string{"-J", "j", "-t", "1h", "--label", "team", "--", "true"}, `--label "team": want key=value`},
		{"gres not gpu", []string{"-J", "j", "-t", "1h", "--gres", "mps:100", "--", "true"}, `--gres "mps:100"`},
		{"gres disagrees", []string{"-J", "j", "-t", "1h", "--gres", "gpu:4", "--gpus-per-node", "8", "--", "true"}, "--gres gpu:4 and --gpus-per-node 8 disagree"},
		{"no command", []string{"-J", "j", "-t", "1h"}, "no command"},
		{"argv and script", []string{"-J", "j", "-t", "1h", "--script", "x.sh", "--", "true"}, "not both"},
		{"missing script", []string{"-J", "j", "-t", "1h", "--script", "/nonexistent/x.sh"}, "--script: open /nonexistent/x.sh"},
		{"bad run file", []string{"-f", "-"}, "--file -: neither YAML nor JSON: yaml: line 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := submitSpec(t, tt.args, "{nope")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("error %v is not a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseTimeLimit(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Minute},
		{"30:15", 30*time.Minute + 15*time.Second},
		{"06:00:00", 6 * time.Hour},
		{"1-00:00:00", 24 * time.Hour},
		{"2-12", 60 * time.Hour},
		{"1-02:30", 26*time.Hour + 30*time.Minute},
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeLimit(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("parseTimeLimit(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "0", "1:2:3:4", "x-1", "UNLIMITED", "1-", "00:00:00"} {
		if d, err := parseTimeLimit(bad); err == nil {
			t.Errorf("parseTimeLimit(%q) = %v, want an error", bad, d)
		}
	}
}

func TestListRequest(t *testing.T) {
	// --state failed,pending arrives split by pflag's StringSlice.
	fs := pflag.NewFlagSet("list", pflag.ContinueOnError)
	var states []string
	fs.StringSliceVar(&states, "state", nil, "")
	if err := fs.Parse([]string{"--state", "running,COMPLETED", "--state", "RUN_STATE_FAILED,out-of-memory"}); err != nil {
		t.Fatal(err)
	}
	l := &listOptions{states: states,
		labels: []string{"experiment=doc", "exp", "!pipeline"}, namePrefix: "train", limit: 20, since: 2 * time.Hour}
	got, sel, err := l.request(renderNow)
	if err != nil {
		t.Fatal(err)
	}
	want := &apipb.ListRunsRequest{PageSize: 20, NamePrefix: "train", Labels: map[string]string{"experiment": "doc"},
		States: []apipb.RunState{apipb.RunState_RUN_STATE_RUNNING, apipb.RunState_RUN_STATE_COMPLETED,
			apipb.RunState_RUN_STATE_FAILED, apipb.RunState_RUN_STATE_OUT_OF_MEMORY},
		CreateTimeAfter: timestamppb.New(renderNow.Add(-2 * time.Hour))}
	if !proto.Equal(got, want) {
		t.Errorf("request = %v, want %v", got, want)
	}
	for _, c := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"exp": "1"}, true},
		{map[string]string{"exp": ""}, true},
		{map[string]string{"exp": "1", "pipeline": "p"}, false},
		{map[string]string{"other": "1"}, false},
	} {
		if got := sel.matches(c.labels); got != c.want {
			t.Errorf("selector on %v = %v, want %v", c.labels, got, c.want)
		}
	}
	l = &listOptions{createdAfter: "2026-03-01"}
	if got, _, err := l.request(renderNow); err != nil || !got.GetCreateTimeAfter().AsTime().Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("--created-after 2026-03-01: %v, %v", got, err)
	}
	for _, bad := range []*listOptions{{states: []string{"finished"}}, {labels: []string{"!"}}, {labels: []string{"=x"}}, {labels: []string{"!a=b"}}, {limit: -1},
		{createdAfter: "yesterday"}, {since: time.Hour, createdAfter: "2026-03-01"}} {
		if _, _, err := bad.request(renderNow); !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: err = %v, want a usage error", bad, err)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"bash", "-c", "echo rank $SLURM_PROCID", "it's", "--lr=3e-4", ""})
	want := `bash -c 'echo rank $SLURM_PROCID' 'it'\''s' --lr=3e-4 ''`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := newRequestID(), newRequestID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("request ids %q, %q: want two distinct UUIDv4s", a, b)
	}
}

func TestClientError(t *testing.T) {
	o := &clientOptions{controller: "10.0.0.1:50051", timeout: 5 * time.Second}
	bad, err := status.New(codes.InvalidArgument, "invalid argument (2 problems)").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "spec.job_name", Description: "must be 1-64 characters"},
			{Field: "spec.nodes", Description: "must be at least 1"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unavailable", status.Error(codes.Unavailable, "connection refused"),
			"get run r-1: cannot reach the controller at 10.0.0.1:50051: is it running? (--controller / SOPILOT_CONTROLLER)\n  (connection refused)"},
		{"not found", status.Error(codes.NotFound, `run "r-1" not found`), `run "r-1" not found`},
		{"field violations", bad.Err(),
			"get run r-1: the controller refused the request:\n  spec.job_name: must be 1-64 characters\n  spec.nodes: must be at least 1"},
		{"invalid without details", status.Error(codes.InvalidArgument, "bad page token"), "get run r-1: invalid request: bad page token"},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"get run r-1: the controller at 10.0.0.1:50051 did not answer within 5s (--timeout / SOPILOT_TIMEOUT)"},
		{"other", status.Error(codes.Internal, "boom"), "get run r-1: Internal: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := o.clientError("get run r-1", tt.err).Error(); got != tt.want {
				t.Errorf("message =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRunUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad env", []string{"run", "submit", "-J", "j", "-t", "1h", "--env", "X", "--", "true"}, nil, `--env "X"`},
		{"get without id", []string{"run", "get"}, nil, "wants RUN_ID"},
		{"compare without metric", []string{"compare", "r-1", "r-2"}, nil, "at least one --metric"},
		{"compare bad metric", []string{"compare", "r-1", "r-2", "--metric", "loss"}, nil, `--metric "loss"`},
		{"bad SOPILOT_TIMEOUT", []string{"run", "get", "r-1"}, map[string]string{"SOPILOT_TIMEOUT": "soon"}, "SOPILOT_TIMEOUT"},
		{"token in clear text", []string{"run", "get", "r-1", "--insecure", "--token", "abc"}, nil, "--insecure sends everything in clear text"},
		{"both token flags", []string{"run", "get", "r-1", "--insecure=false", "--token", "a", "--token-file", "/f"}, nil, "give --token or --token-file, not both"},
		{"missing CA file", []string{"run", "get", "r-1", "--insecure=false", "--tls-ca-file", "/nonexistent/ca.pem"}, nil, "--tls-ca-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sopilot(t, invocation{args: tt.args, env: tt.env})
			if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, ExitUsage, tt.want)
			}
		})
	}
}

func TestUnreachableController(t *testing.T) {
	r := sopilot(t, invocation{args: []string{"run", "list"}, env: map[string]string{"SOPILOT_CONTROLLER": "127.0.0.1:1"}})
	want := "sopilot: list runs: cannot reach the controller at 127.0.0.1:1: is it running? (--controller / SOPILOT_CONTROLLER)"
	if r.code != ExitUnreachable || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, ExitUnreachable, want)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

var renderNow = time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)

func ts(min, sec int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2026, 11, 29, 10, min, sec, 0, time.UTC))
}

func completedRun() *apipb.Run {
	return &apipb.Run{
		Id: "r-01m8kc4a4s0xq0n7w6zv5c2k9e", Name: "training-with-original",
		Spec: &apipb.RunSpec{JobName: "training-with-original", Nodes: 2, TasksPerNode: 8, GpusPerNode: 8,
			TimeLimit: durationpb.New(6 * time.Hour), Argv: []string{"python3", "train.py"},
			Labels: map[string]string{"experiment": "doc", "seed": "1"}},
		State: apipb.RunState_RUN_STATE_COMPLETED, SlurmState: "COMPLETED", SlurmJobId: "71",
		NodeList: "worker-[0-1]", Nodes: []string{"worker-0", "worker-1"},
		OutputPath: "/tmp/sopilot-slurm/work/training-with-original-71.out", RequestId: "doc-seed-1",
		CreateTime: ts(2, 11), SubmitTime: ts(2, 11), StartTime: ts(2, 12), EndTime: ts(14, 40),
		Progress: &apipb.RunProgress{Step: 1000, TotalSteps: 1000, Loss: 0.1234, SamplesPerSecond: 812.5},
		Usage:    &apipb.RunUsage{GpuCount: 16, GpuUtilizationMeanPercent: 87.2, GpuUtilizationP95Percent: 99, GpuHours: 3.33, Simulated: true},
	}
}

func TestRenderRuns(t *testing.T) {
	pending := &apipb.Run{Id: "r-01m8kc9zzzz0000000000000aa", Name: "doc-sleeper",
		Spec:  &apipb.RunSpec{JobName: "doc-sleeper", Nodes: 1, TimeLimit: durationpb.New(5 * time.Minute), Script: "sleep 300\necho done\n"},
		State: apipb.RunState_RUN_STATE_PENDING, SlurmState: "PENDING", Reason: "Resources", SlurmJobId: "72",
		CreateTime: ts(29, 15)}
	running := &apipb.Run{Id: "r-01m8kcb0000000000000000bbb", Name: "eval",
		Spec:  &apipb.RunSpec{JobName: "eval", Nodes: 1, GpusPerNode: 1, TimeLimit: durationpb.New(time.Hour), Argv: []string{"true"}},
		State: apipb.RunState_RUN_STATE_RUNNING, SlurmState: "RUNNING", SlurmJobId: "73", NodeList: "worker-0",
		CreateTime: ts(20, 0), StartTime: ts(20, 5),
		Progress: &apipb.RunProgress{Step: 120, TotalSteps: 1000, Loss: 0.4321, SamplesPerSecond: 812, Eta: durationpb.New(12*time.Minute + 3*time.Second)}}

	var b strings.Builder
	printRun(&b, completedRun(), renderNow)
	golden(t, "run_get.golden", b.String())

	b.Reset()
	longName := proto.Clone(running).(*apipb.Run)
	longName.Id, longName.Name, longName.NodeList = "r-01m8kcb0000000000000000ccc", "a-job-name-much-longer-than-the-column", "worker-[0-15],gpu-node-[100-131]"
	list := []*apipb.Run{pending, running, longName, completedRun()}
	printRunList(&b, list, renderNow, 80)
	golden(t, "run_list.golden", b.String())
	for i, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if w := runewidth.StringWidth(line); w > 80 {
			t.Errorf("run list line %d is %d columns wide, more than 80: %q", i, w, line)
		}
	}

	b.Reset()
	printRunList(&b, list, renderNow, 0)
	golden(t, "run_list_wide.golden", b.String())
	if !strings.Contains(b.String(), "a-job-name-much-longer-than-the-column") || !strings.Contains(b.String(), "gpu-node-[100-131]") {
		t.Errorf("-o wide cut a column:\n%s", b.String())
	}

	b.Reset()
	for _, r := range []*apipb.Run{pending, running, completedRun()} {
		b.WriteString(statusLine(r, renderNow) + "\n")
	}
	golden(t, "run_watch.golden", b.String())
}

func TestEndError(t *testing.T) {
	if err := endError(completedRun()); err != nil {
		t.Errorf("completed: %v", err)
	}
	failed := completedRun()
	failed.State, failed.SlurmState, failed.ExitCode, failed.Reason = apipb.RunState_RUN_STATE_FAILED, "FAILED", 2, "NonZeroExitCode"
	err := endError(failed)
	want := "run r-01m8kc4a4s0xq0n7w6zv5c2k9e ended FAILED (slurm FAILED, exit code 2, NonZeroExitCode); its output: /tmp/sopilot-slurm/work/training-with-original-71.out"
	if !errors.Is(err, ErrRunNotCompleted) || err.Error() != want || ExitCode(err) != ExitError {
		t.Errorf("endError = %v (exit %d), want %q (exit 1)", err, ExitCode(err), want)
	}
}

func TestRunFileYAML(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		want     *apipb.RunSpec
		wantErrs []string // each must appear in the error
	}{
		{
			name: "time_limit like --time",
			file: "job_name: eval\nnodes: 2\ntime_limit: 10m\nargv: [python3, eval.py, --lr, 3e-4, true]\nlabels: {team: nlp, gpus: 8}\n",
			want: &apipb.RunSpec{JobName: "eval", Nodes: 2, TimeLimit: durationpb.New(10 * time.Minute), Argv: []string{"python3", "eval.py", "--lr", "3e-4", "true"}, Labels: map[string]string{"team": "nlp", "gpus": "8"}},
		},
		{
			name: "Slurm's D-HH:MM:SS and camelCase",
			file: "jobName: eval\ntimeLimit: 1-02:03:04\nscript: |\n  srun hostname\n",
			want: &apipb.RunSpec{JobName: "eval", TimeLimit: durationpb.New(26*time.Hour + 3*time.Minute + 4*time.Second), Script: "srun hostname\n"},
		},
		{
			name: "JSON with protojson's seconds",
			file: `{"job_name": "eval", "time_limit": "600s", "argv": ["true"]}`,
			want: &apipb.RunSpec{JobName: "eval", TimeLimit: durationpb.New(10 * time.Minute), Argv: []string{"true"}},
		},
		{
			name:     "errors name the line and the field",
			file:     "job_name: eval\nnodez: 2\ntime_limit: 10 minutes\nnodes: two\nargv: [true]\n",
			wantErrs: []string{"3 problem(s)", "line 2: nodez: not a RunSpec field", `line 3: time_limit: "10 minutes": want MINUTES`, "line 4: nodes: invalid value for int32 field nodes: \"two\""},
		},
		{
			name:     "not a mapping",
			file:     "- a\n- b\n",
			wantErrs: []string{"line 1: want a mapping of RunSpec fields"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.yaml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := submitSpec(t, []string{"-f", path}, "")
			if tt.wantErrs != nil {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v, want ErrUsage", err)
				}
				for _, w := range tt.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "{") {
					t.Errorf("err = %v: points into converted JSON", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("spec = %v\nwant %v", got, tt.want)
			}
		})
	}
}

// FuzzRunFile: any file gives a spec or problems, never a panic, and a
// spec it accepts has a time limit that --time would accept.
func FuzzRunFile(f *testing.F) {
	f.Add([]byte("job_name: eval\ntime_limit: 10m\nargv: [true]\n"))
	f.Add([]byte(`{"time_limit": "1-00:00:00", "labels": {"a": 1}}`))
	f.Add([]byte("time_limit: [1]\nnodes: {a: b}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := parseYAMLDoc(b)
		if err != nil {
			return
		}
		spec, probs := specFromNode(doc)
		if len(probs) == 0 && spec.GetTimeLimit() != nil && spec.GetTimeLimit().AsDuration() <= 0 {
			t.Errorf("accepted time_limit %v", spec.GetTimeLimit().AsDuration())
		}
	})
}
