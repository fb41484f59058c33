// The tests are in package run_test so that FuzzValidate can render the
// accepted specs with the scheduler package without an import cycle.
package run_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// validSpec is the seed's training job, normalized.
func validSpec() run.Spec {
	return run.Spec{
		JobName:          "training-with-original",
		Nodes:            2,
		TasksPerNode:     8,
		GPUsPerNode:      8,
		CPUsPerTask:      4,
		TimeLimit:        6 * time.Hour,
		Partition:        "gpu",
		Argv:             []string{"python3", "train.py", "--epochs", "3"},
		WorkingDirectory: "/shared/work",
		Environment:      map[string]string{"HF_HOME": "/shared/hf", "OMP_NUM_THREADS": "4"},
		OutputDirectory:  "/shared/out",
		DependsOn:        []string{"r-01jdx2k7a8m3q0c4n5p6r7s8t9"},
		Labels:           map[string]string{"team": "nlp", "example.com/exp": "baseline"},
		ResultsPath:      "/shared/results/r.jsonl",
	}
}

func TestValidateRules(t *testing.T) {
	lim := run.DefaultLimits()
	tests := []struct {
		name   string
		mutate func(*run.Spec)
		want   []string // exact fields reported, in order; nil = valid
	}{
		{"valid seed spec", func(*run.Spec) {}, nil},

		// job_name
		{"job_name 64 chars", func(s *run.Spec) { s.JobName = strings.Repeat("a", 64) }, nil},
		{"job_name digit first, dots", func(s *run.Spec) { s.JobName = "0train.v2_x-y" }, nil},
		{"job_name empty", func(s *run.Spec) { s.JobName = "" }, []string{"spec.job_name"}},
		{"job_name 65 chars", func(s *run.Spec) { s.JobName = strings.Repeat("a", 65) }, []string{"spec.job_name"}},
		{"job_name starts with dot", func(s *run.Spec) { s.JobName = ".hidden" }, []string{"spec.job_name"}},
		{"job_name starts with dash", func(s *run.Spec) { s.JobName = "-x" }, []string{"spec.job_name"}},
		{"job_name space", func(s *run.Spec) { s.JobName = "a b" }, []string{"spec.job_name"}},
		{"job_name percent", func(s *run.Spec) { s.JobName = "a%j" }, []string{"spec.job_name"}},
		{"job_name non-ASCII", func(s *run.Spec) { s.JobName = "trainé" }, []string{"spec.job_name"}},

		// nodes
		{"nodes 1", func(s *run.Spec) { s.Nodes = 1 }, nil},
		{"nodes max", func(s *run.Spec) { s.Nodes = lim.MaxNodes }, nil},
		{"nodes 0", func(s *run.Spec) { s.Nodes = 0 }, []string{"spec.nodes"}},
		{"nodes negative", func(s *run.Spec) { s.Nodes = -1 }, []string{"spec.nodes"}},
		{"nodes over max", func(s *run.Spec) { s.Nodes = lim.MaxNodes + 1 }, []string{"spec.nodes"}},

		// tasks_per_node
		{"tasks_per_node max", func(s *run.Spec) { s.TasksPerNode = lim.MaxTasksPerNode }, nil},
		{"tasks_per_node 0 (not normalized)", func(s *run.Spec) { s.TasksPerNode = 0 }, []string{"spec.tasks_per_node"}},
		{"tasks_per_node over max", func(s *run.Spec) { s.TasksPerNode = lim.MaxTasksPerNode + 1 }, []string{"spec.tasks_per_node"}},

		// gpus_per_node
		{"gpus_per_node 0", func(s *run.Spec) { s.GPUsPerNode = 0 }, nil},
		{"gpus_per_node negative", func(s *run.Spec) { s.GPUsPerNode = -1 }, []string{"spec.gpus_per_node"}},
		{"gpus_per_node over max", func(s *run.Spec) { s.GPUsPerNode = lim.MaxGPUsPerNode + 1 }, []string{"spec.gpus_per_node"}},

		// cpus_per_task
		{"cpus_per_task 0", func(s *run.Spec) { s.CPUsPerTask = 0 }, nil},
		{"cpus_per_task max", func(s *run.Spec) { s.CPUsPerTask = lim.MaxCPUsPerTask }, nil},
		{"cpus_per_task negative", func(s *run.Spec) { s.CPUsPerTask = -2 }, []string{"spec.cpus_per_task"}},
		{"cpus_per_task over max", func(s *run.Spec) { s.CPUsPerTask = lim.MaxCPUsPerTask + 1 }, []string{"spec.cpus_per_task"}},

		// time_limit
		{"time_limit 1s", func(s *run.Spec) { s.TimeLimit = time.Second }, nil},
		{"time_limit max", func(s *run.Spec) { s.TimeLimit = lim.MaxTimeLimit }, nil},
		{"time_limit 0", func(s *run.Spec) { s.TimeLimit = 0 }, []string{"spec.time_limit"}},
		{"time_limit negative", func(s *run.Spec) { s.TimeLimit = -time.Hour }, []string{"spec.time_limit"}},
		{"time_limit fraction", func(s *run.Spec) { s.TimeLimit = 1500 * time.Millisecond }, []string{"spec.time_limit"}},
		{"time_limit over max", func(s *run.Spec) { s.TimeLimit = lim.MaxTimeLimit + time.Second }, []string{"spec.time_limit"}},

		// partition
		{"partition empty", func(s *run.Spec) { s.Partition = "" }, nil},
		{"partition 64 chars", func(s *run.Spec) { s.Partition = strings.Repeat("p", 64) }, nil},
		{"partition underscore dash", func(s *run.Spec) { s.Partition = "gpu_h100-x" }, nil},
		{"partition 65 chars", func(s *run.Spec) { s.Partition = strings.Repeat("p", 65) }, []string{"spec.partition"}},
		{"partition dot", func(s *run.Spec) { s.Partition = "gpu.h100" }, []string{"spec.partition"}},
		{"partition comma (several partitions)", func(s *run.Spec) { s.Partition = "a,b" }, []string{"spec.partition"}},

		// argv / script
		{"script instead of argv", func(s *run.Spec) { s.Argv = nil; s.Script = "srun python3 train.py\n" }, nil},
		{"argv and script", func(s *run.Spec) { s.Script = "echo hi\n" }, []string{"spec.argv"}},
		{"neither argv nor script", func(s *run.Spec) { s.Argv = nil }, []string{"spec.argv"}},
		{"argv empty slice", func(s *run.Spec) { s.Argv = []string{} }, []string{"spec.argv"}},
		{"argv nasty but fine", func(s *run.Spec) {
			s.Argv = []string{"-leading-dash", "--", "$(rm -rf /)", "`x`", "a'b", "multi\nline", "ünï", "\r", "a:b", "::"}
		}, nil},
		{"argv empty element", func(s *run.Spec) { s.Argv = []string{"python3", "", "x"} }, []string{"spec.argv[1]"}},
		{"argv NUL", func(s *run.Spec) { s.Argv = []string{"python3", "a\x00b"} }, []string{"spec.argv[1]"}},
		{"argv lone colon", func(s *run.Spec) { s.Argv = []string{"echo", "a", ":", "b"} }, []string{"spec.argv[2]"}},
		{"argv CR LF", func(s *run.Spec) { s.Argv = []string{"echo", "a\r\nb"} }, []string{"spec.argv[1]"}},
		{"argv element too long", func(s *run.Spec) { s.Argv = []string{"echo", strings.Repeat("x", 128<<10)} }, []string{"spec.argv[1]"}},
		{"argv max elements", func(s *run.Spec) { s.Argv = slices.Repeat([]string{"x"}, lim.MaxArgs) }, nil},
		{"argv too many elements", func(s *run.Spec) { s.Argv = slices.Repeat([]string{"x"}, lim.MaxArgs+1) }, []string{"spec.argv"}},
		{"argv too many bytes", func(s *run.Spec) {
			s.Argv = slices.Repeat([]string{strings.Repeat("x", 100<<10)}, 11)
		}, []string{"spec.argv"}},
		{"argv too many bytes once quoted", func(s *run.Spec) {
			s.Argv = slices.Repeat([]string{strings.Repeat("'", 100<<10)}, 3) // 300 KiB raw, 1.2 MiB quoted
		}, []string{"spec.argv"}},
		{"script max bytes", func(s *run.Spec) { s.Argv = nil; s.Script = "#" + strings.Repeat("x", lim.MaxScriptBytes-2) + "\n" }, nil},
		{"script too long", func(s *run.Spec) { s.Argv = nil; s.Script = "#" + strings.Repeat("x", lim.MaxScriptBytes) }, []string{"spec.script"}},
		{"script NUL", func(s *run.Spec) { s.Argv = nil; s.Script = "echo a\x00b\n" }, []string{"spec.script"}},
		{"script CR LF", func(s *run.Spec) { s.Argv = nil; s.Script = "echo a\r\necho b\r\n" }, []string{"spec.script"}},
		{"script lone CR is fine", func(s *run.Spec) { s.Argv = nil; s.Script = "printf 'a\rb'\n" }, nil},
		{"script blank", func(s *run.Spec) { s.Argv = nil; s.Script = " \n\t\n" }, []string{"spec.script"}},
		{"script with own #SBATCH lines", func(s *run.Spec) { s.Argv = nil; s.Script = "#SBATCH --nodes=99\nhostname\n" }, nil},

		// paths
		{"paths empty", func(s *run.Spec) { s.WorkingDirectory, s.OutputDirectory, s.ResultsPath = "", "", "" }, nil},
		{"path root dir", func(s *run.Spec) { s.WorkingDirectory = "/" }, nil},
		{"path allowed punctuation", func(s *run.Spec) { s.OutputDirectory = "/a/b.c_d/e+f-g@h/.dot" }, nil},
		{"working_directory relative", func(s *run.Spec) { s.WorkingDirectory = "work" }, []string{"spec.working_directory"}},
		{"working_directory dotdot", func(s *run.Spec) { s.WorkingDirectory = "/shared/../etc" }, []string{"spec.working_directory"}},
		{"working_directory trailing slash", func(s *run.Spec) { s.WorkingDirectory = "/shared/" }, []string{"spec.working_directory"}},
		{"working_directory double slash", func(s *run.Spec) { s.WorkingDirectory = "//shared" }, []string{"spec.working_directory"}},
		{"working_directory dot element", func(s *run.Spec) { s.WorkingDirectory = "/shared/./x" }, []string{"spec.working_directory"}},
		{"output_directory percent", func(s *run.Spec) { s.OutputDirectory = "/out/%j" }, []string{"spec.output_directory"}},
		{"output_directory space", func(s *run.Spec) { s.OutputDirectory = "/my out" }, []string{"spec.output_directory"}},
		{"output_directory newline", func(s *run.Spec) { s.OutputDirectory = "/out\n#SBATCH --uid=0" }, []string{"spec.output_directory"}},
		{"output_directory too long", func(s *run.Spec) { s.OutputDirectory = "/" + strings.Repeat("a", 4096) }, []string{"spec.output_directory"}},
		{"results_path root", func(s *run.Spec) { s.ResultsPath = "/" }, []string{"spec.results_path"}},
		{"results_path colon", func(s *run.Spec) { s.ResultsPath = "/a:b" }, []string{"spec.results_path"}},
		{"results_path non-ASCII", func(s *run.Spec) { s.ResultsPath = "/résultats" }, []string{"spec.results_path"}},

		// environment
		{"environment nil", func(s *run.Spec) { s.Environment = nil }, nil},
		{"environment underscore key, any value", func(s *run.Spec) { s.Environment = map[string]string{"_x1": "a b\n'$(x)'", "E": ""} }, nil},
		{"environment lowercase slurm_ is not reserved", func(s *run.Spec) { s.Environment = map[string]string{"slurm_x": "1"} }, nil},
		{"environment key digit first", func(s *run.Spec) { s.Environment = map[string]string{"1X": "1"} }, []string{`spec.environment["1X"]`}},
		{"environment key dash", func(s *run.Spec) { s.Environment = map[string]string{"A-B": "1"} }, []string{`spec.environment["A-B"]`}},
		{"environment key empty", func(s *run.Spec) { s.Environment = map[string]string{"": "1"} }, []string{`spec.environment[""]`}},
		{"environment key SLURM_", func(s *run.Spec) { s.Environment = map[string]string{"SLURM_NTASKS": "1"} }, []string{`spec.environment["SLURM_NTASKS"]`}},
		{"environment key SOPILOT_", func(s *run.Spec) { s.Environment = map[string]string{"SOPILOT_RUN_ID": "1"} }, []string{`spec.environment["SOPILOT_RUN_ID"]`}},
		{"environment key SRUN_ changes the launch", func(s *run.Spec) { s.Environment = map[string]string{"SRUN_CPUS_PER_TASK": "9"} }, []string{`spec.environment["SRUN_CPUS_PER_TASK"]`}},
		{"environment key SBATCH_", func(s *run.Spec) { s.Environment = map[string]string{"SBATCH_PARTITION": "x"} }, []string{`spec.environment["SBATCH_PARTITION"]`}},
		{"too many labels", func(s *run.Spec) {
			s.Labels = map[string]string{}
			for i := range 65 {
				s.Labels[fmt.Sprintf("k%d", i)] = "v"
			}
		}, []string{"spec.labels"}},
		{"too many dependencies", func(s *run.Spec) {
			s.DependsOn = nil
			for i := range 65 {
				s.DependsOn = append(s.DependsOn, fmt.Sprintf("r-%d", i))
			}
		}, []string{"spec.depends_on"}},
		{"environment value NUL", func(s *run.Spec) { s.Environment = map[string]string{"A": "x\x00"} }, []string{`spec.environment["A"]`}},
		{"environment too big", func(s *run.Spec) {
			s.Environment = map[string]string{"A": strings.Repeat("x", 40<<10), "B": strings.Repeat("x", 40<<10)}
		}, []string{"spec.environment"}},

		// depends_on
		{"depends_on empty", func(s *run.Spec) { s.DependsOn = nil }, nil},
		{"depends_on short id", func(s *run.Spec) { s.DependsOn = []string{"r-1", "r-" + strings.Repeat("z", 40)} }, nil},
		{"depends_on slurm job id", func(s *run.Spec) { s.DependsOn = []string{"r-1", "12345"} }, []string{"spec.depends_on[1]"}},
		{"depends_on upper case", func(s *run.Spec) { s.DependsOn = []string{"r-ABC"} }, []string{"spec.depends_on[0]"}},
		{"depends_on bare prefix", func(s *run.Spec) { s.DependsOn = []string{"r-"} }, []string{"spec.depends_on[0]"}},
		{"depends_on too long", func(s *run.Spec) { s.DependsOn = []string{"r-" + strings.Repeat("z", 41)} }, []string{"spec.depends_on[0]"}},
		{"depends_on duplicate", func(s *run.Spec) { s.DependsOn = []string{"r-1", "r-2", "r-1"} }, []string{"spec.depends_on[2]"}},

		// labels
		{"labels nil", func(s *run.Spec) { s.Labels = nil }, nil},
		{"labels 63-char key, 256-rune value", func(s *run.Spec) {
			s.Labels = map[string]string{strings.Repeat("k", 63): strings.Repeat("é", 256), "a.b-c_d/e": ""}
		}, nil},
		{"labels upper-case key", func(s *run.Spec) { s.Labels = map[string]string{"Team": "x"} }, []string{`spec.labels["Team"]`}},
		{"labels empty key", func(s *run.Spec) { s.Labels = map[string]string{"": "x"} }, []string{`spec.labels[""]`}},
		{"labels 64-char key", func(s *run.Spec) { s.Labels = map[string]string{strings.Repeat("k", 64): "x"} }, []string{`spec.labels["` + strings.Repeat("k", 64) + `"]`}},
		{"labels 257-rune value", func(s *run.Spec) { s.Labels = map[string]string{"k": strings.Repeat("é", 257)} }, []string{`spec.labels["k"]`}},
		{"labels invalid UTF-8 value", func(s *run.Spec) { s.Labels = map[string]string{"k": "\xff"} }, []string{`spec.labels["k"]`}},
		{"labels printable value", func(s *run.Spec) {
			s.Labels = map[string]string{"k": `a b "c" 'd' $(e) ü 日本 😀 \n`}
		}, nil},
		{"labels NUL value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\x00b"} }, []string{`spec.labels["k"]`}},
		{"labels CR LF value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\r\nb"} }, []string{`spec.labels["k"]`}},
		{"labels LF value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\nb"} }, []string{`spec.labels["k"]`}},
		{"labels CR value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\rb"} }, []string{`spec.labels["k"]`}},
		{"labels tab value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\tb"} }, []string{`spec.labels["k"]`}},
		{"labels escape value", func(s *run.Spec) { s.Labels = map[string]string{"k": "\x1b[2J"} }, []string{`spec.labels["k"]`}},
		{"labels DEL value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\x7f"} }, []string{`spec.labels["k"]`}},
		{"labels C1 value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\u0085b"} }, []string{`spec.labels["k"]`}},
		{"labels line separator value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\u2028b"} }, []string{`spec.labels["k"]`}},
		{"labels paragraph separator value", func(s *run.Spec) { s.Labels = map[string]string{"k": "a\u2029b"} }, []string{`spec.labels["k"]`}},
		{"labels control in one of two", func(s *run.Spec) { s.Labels = map[string]string{"ok": "fine", "bad": "x\ny"} }, []string{`spec.labels["bad"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.mutate(&s)
			err := run.Validate(s, lim)
			got := violationFields(t, err)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("fields = %q, want %q\nerror: %v", got, tt.want, err)
			}
		})
	}
}

// violationFields returns the fields err reports, failing the test if err
// is not a *ValidationError (or nil) or a description is empty.
func violationFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *run.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *run.ValidationError", err, err)
	}
	var fields []string
	for _, v := range ve.Violations {
		if v.Description == "" {
			t.Errorf("violation of %s has no description", v.Field)
		}
		fields = append(fields, v.Field)
	}
	return fields
}

func TestValidateReportsEveryViolation(t *testing.T) {
	s := run.Spec{
		JobName:          "-bad name",
		Nodes:            0,
		TasksPerNode:     0,
		GPUsPerNode:      99,
		CPUsPerTask:      -1,
		TimeLimit:        90 * time.Millisecond,
		Partition:        "a b",
		Argv:             []string{"echo", "", "x\x00"},
		Script:           "echo\x00",
		WorkingDirectory: "relative",
		Environment:      map[string]string{"SLURM_X": "1", "OK": "fine", "9": "\x00"},
		OutputDirectory:  "/out/%j",
		DependsOn:        []string{"r-1", "r-1", "42"},
		Labels:           map[string]string{"Bad": "x", "ok": strings.Repeat("v", 300)},
		ResultsPath:      "/a/../b",
	}
	want := []string{
		"spec.job_name",
		"spec.nodes",
		"spec.tasks_per_node",
		"spec.gpus_per_node",
		"spec.cpus_per_task",
		"spec.time_limit",
		"spec.partition",
		"spec.argv",
		"spec.argv[1]",
		"spec.argv[2]",
		"spec.script",
		"spec.working_directory",
		`spec.environment["9"]`, // key and value: two violations
		`spec.environment["9"]`,
		`spec.environment["SLURM_X"]`,
		"spec.output_directory",
		"spec.depends_on[1]",
		"spec.depends_on[2]",
		`spec.labels["Bad"]`,
		`spec.labels["ok"]`,
		"spec.results_path",
	}
	err := run.Validate(s, run.DefaultLimits())
	if got := violationFields(t, err); !slices.Equal(got, want) {
		t.Fatalf("fields =\n%q\nwant\n%q", got, want)
	}
	// Error() mentions every field.
	for _, f := range want {
		if !strings.Contains(err.Error(), f+": ") {
			t.Errorf("Error() does not mention %s: %v", f, err)
		}
	}
}

func TestValidateDescriptions(t *testing.T) {
	s := validSpec()
	s.JobName = strings.Repeat("a", 70)
	s.Nodes = 2000
	err := run.Validate(s, run.DefaultLimits())
	var ve *run.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	want := []run.FieldViolation{
		{"spec.job_name", "must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit; got 70 characters"},
		{"spec.nodes", "must be 1-1024; got 2000"},
	}
	if !slices.Equal(ve.Violations, want) {
		t.Fatalf("violations =\n%q\nwant\n%q", ve.Violations, want)
	}
	if got, want := err.Error(), "invalid argument (2 problems): spec.job_name: must be 1-64"; !strings.HasPrefix(got, want) {
		t.Errorf("Error() = %q, want prefix %q", got, want)
	}
}

// A label value with a line break is refused with a description that
// names the character and where it is.
func TestValidateLabelControlDescription(t *testing.T) {
	s := validSpec()
	s.Labels = map[string]string{"team": "nlp\r\nX-Injected: 1"}
	var ve *run.ValidationError
	if err := run.Validate(s, run.DefaultLimits()); !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want a ValidationError", err)
	}
	want := []run.FieldViolation{{`spec.labels["team"]`,
		`value must be one line of printable text, without control characters (NUL, CR, LF, tab, DEL, C1) or line separators; got '\r' (U+000D) at byte 3`}}
	if !slices.Equal(ve.Violations, want) {
		t.Fatalf("violations =\n%q\nwant\n%q", ve.Violations, want)
	}
}

func TestValidateDeterministic(t *testing.T) {
	s := validSpec()
	s.Environment = map[string]string{}
	s.Labels = map[string]string{}
	for _, k := range []string{"Z", "A", "M", "SLURM_A", "1", "b-c"} {
		s.Environment[k] = "\x00"
		s.Labels[k] = "x"
	}
	first := run.Validate(s, run.DefaultLimits()).Error()
	for range 20 {
		if got := run.Validate(s, run.DefaultLimits()).Error(); got != first {
			t.Fatalf("Validate is not deterministic:\n%s\n%s", first, got)
		}
	}
}

func TestNormalize(t *testing.T) {
	s := validSpec()
	s.TasksPerNode = 0
	s.Normalize()
	if s.TasksPerNode != 1 {
		t.Errorf("TasksPerNode = %d after Normalize, want 1", s.TasksPerNode)
	}
	if err := run.Validate(s, run.DefaultLimits()); err != nil {
		t.Errorf("Validate after Normalize: %v", err)
	}
	s.TasksPerNode = 4
	s.Normalize()
	if s.TasksPerNode != 4 {
		t.Errorf("Normalize changed TasksPerNode 4 to %d", s.TasksPerNode)
	}
}

func TestDefaultLimits(t *testing.T) {
	want := run.Limits{
		MaxNodes: 1024, MaxTasksPerNode: 256, MaxGPUsPerNode: 8, MaxCPUsPerTask: 256,
		MaxTimeLimit: 30 * 24 * time.Hour, MaxEnvironmentBytes: 64 << 10,
		MaxScriptBytes: 1 << 20, MaxArgs: 4096,
	}
	if got := run.DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
}

func TestValidateRequestID(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"5f0c6a8e-2b1d-4c3e-9f7a-0b1c2d3e4f5a", true},
		{"a", true},
		{".x_Y-9", true},
		{strings.Repeat("k", 64), true},
		{"", false},
		{strings.Repeat("k", 65), false},
		{"a b", false},
		{"a/b", false},
		{"key\n", false},
		{"ключ", false},
	} {
		err := run.ValidateRequestID(tt.id)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidateRequestID(%q) = %v, want nil", tt.id, err)
			}
			continue
		}
		if got := violationFields(t, err); !slices.Equal(got, []string{"request_id"}) {
			t.Errorf("ValidateRequestID(%q) fields = %q (%v), want [request_id]", tt.id, got, err)
		}
	}
}

// FuzzValidate checks that Validate never panics, and that whatever it
// accepts renders into a batch script: validation is at least as strict as
// the renderer's own checks.
func FuzzValidate(f *testing.F) {
	f.Add("training-with-original", 2, 8, 8, 0, int64(6*time.Hour), "gpu", "python3\x1ftrain.py\x1f--epochs\x1f3", "",
		"/shared/work", "/shared/out", "HF_HOME=/x\x1fA=b", "r-1\x1fr-2", "team=nlp", "/r.jsonl")
	f.Add("s", 1, 0, 0, 4, int64(time.Minute), "", "", "#SBATCH --nodes=9\nexit 3\n", "", "", "", "", "", "")
	f.Add("x", 1, 1, 0, 0, int64(time.Second), "", ":\x1f-\x1f'\r\n\x1fa\x00", "", "/", "/", "=\x1fSLURM_A=1", "r-", "K=v", "/")
	f.Add("l", 1, 1, 0, 0, int64(time.Minute), "", "true", "", "", "", "", "", "a=x\r\ny\x1fb=\x00\x1fc=\u2028\x1fd=ok", "")
	f.Fuzz(func(t *testing.T, name string, nodes, tasks, gpus, cpus int, limit int64, partition, argv, script,
		workdir, outdir, env, deps, labels, results string) {
		s := run.Spec{
			JobName:          name,
			Nodes:            nodes,
			TasksPerNode:     tasks,
			GPUsPerNode:      gpus,
			CPUsPerTask:      cpus,
			TimeLimit:        time.Duration(limit),
			Partition:        partition,
			Argv:             splitList(argv),
			Script:           script,
			WorkingDirectory: workdir,
			Environment:      splitPairs(env),
			OutputDirectory:  outdir,
			DependsOn:        splitList(deps),
			Labels:           splitPairs(labels),
			ResultsPath:      results,
		}
		s.Normalize()
		err := run.Validate(s, run.DefaultLimits())
		if err != nil {
			fields := violationFields(t, err)
			if len(fields) == 0 {
				t.Fatalf("error without violations: %v", err)
			}
			return
		}
		job := scheduler.JobSpec{
			Name:         s.JobName,
			Partition:    s.Partition,
			Nodes:        s.Nodes,
			TasksPerNode: s.TasksPerNode,
			GPUsPerNode:  s.GPUsPerNode,
			CPUsPerTask:  s.CPUsPerTask,
			TimeLimit:    s.TimeLimit,
			WorkDir:      s.WorkingDirectory,
			Comment:      "sopilot:req-1",
			Dependencies: []string{"101", "102"},
			Environment:  s.Environment,
		}
		if s.OutputDirectory != "" {
			job.OutputPath = strings.TrimSuffix(s.OutputDirectory, "/") + "/%x-%j.out"
		}
		if _, err := scheduler.RenderScript(job, s.Argv, s.Script); err != nil {
			t.Fatalf("Validate accepted the spec but RenderScript refused it: %v\nspec: %#v", err, s)
		}
		for k, v := range s.Labels {
			if i := strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }); i >= 0 {
				t.Fatalf("Validate accepted label %q with a control character at byte %d: %q", k, i, v)
			}
		}
	})
}

// splitList splits s at 0x1f bytes (ASCII unit separator), the fuzzer's way
// of passing a []string; "" is nil.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x1f")
}

// splitPairs turns "k=v\x1fk2=v2" into a map; "" is nil.
func splitPairs(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
