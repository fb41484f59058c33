package scheduler

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/script")

// fakeSrunEnv marks a run of this test binary as the fake srun (see init).
const fakeSrunEnv = "SOPILOT_TEST_FAKE_SRUN"

// When this test binary is started as "srun" (through a symlink the tests
// put first in PATH) with fakeSrunEnv set, it is a fake srun: it writes its
// arguments, each followed by a NUL byte, to stdout and exits. The bash tests
// use it to see exactly which argv a rendered script hands to srun.
func init() {
	if os.Getenv(fakeSrunEnv) == "1" && filepath.Base(os.Args[0]) == "srun" {
		var b bytes.Buffer
		for _, a := range os.Args[1:] {
			b.WriteString(a)
			b.WriteByte(0)
		}
		os.Stdout.Write(b.Bytes())
		os.Exit(0)
	}
}

// seedJob is the seed's training job: 2 nodes, 8 tasks each, 8 GPUs each,
// 6 hours.
func seedJob() JobSpec {
	return JobSpec{
		Name:         "training-with-original",
		Nodes:        2,
		TasksPerNode: 8,
		GPUsPerNode:  8,
		TimeLimit:    6 * time.Hour,
		WorkDir:      "/shared/sopilot/work",
		OutputPath:   "/shared/sopilot/out/%x-%j.out",
		Comment:      "sopilot:5f0c6a8e-2b1d-4c3e-9f7a-0b1c2d3e4f5a",
		Environment:  map[string]string{"HF_TOKEN": "secret-never-in-script"},
	}
}

func scriptJob() JobSpec {
	return JobSpec{
		Name:         "eval-sweep",
		Partition:    "debug",
		Nodes:        1,
		TasksPerNode: 1,
		CPUsPerTask:  4,
		TimeLimit:    90 * time.Minute,
		WorkDir:      "/shared/sopilot/work",
		OutputPath:   "/shared/sopilot/out/%x-%j.out",
		Comment:      "sopilot:req-42",
		Dependencies: []string{"1041", "1042"},
	}
}

const goldenScriptBody = `#!/bin/bash
#SBATCH --nodes=64
# The line above is the user's; it must stay a comment.
set -u
for ckpt in /shared/ckpt/*; do
  srun python3 eval.py --checkpoint "$ckpt" || exit 3
done
cat <<'EOF' > /tmp/done
$ckpt is not expanded here
EOF
exit 0
`

func TestRenderScriptGolden(t *testing.T) {
	tests := []struct {
		name   string
		job    JobSpec
		argv   []string
		script string
	}{
		{"training-argv", seedJob(), []string{"python3", "train.py", "--epochs", "3"}, ""},
		{"eval-script", scriptJob(), nil, goldenScriptBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderScript(tt.job, tt.argv, tt.script)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "script", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/scheduler -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("RenderScript differs from %s (update with -update):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
			checkRendered(t, tt.job, tt.script, got)
		})
	}
}

// checkRendered checks properties every rendered script has: a #!/bin/bash
// first line; no byte sbatch refuses; sbatch reads exactly the directives
// job calls for (none from a user's script body); the body verbatim at the
// end; the environment nowhere.
func checkRendered(t *testing.T, job JobSpec, body, script string) {
	t.Helper()
	if !strings.HasPrefix(script, "#!/bin/bash\n") {
		t.Errorf("script does not start with #!/bin/bash:\n%s", script)
	}
	if i := strings.IndexByte(script, 0); i >= 0 {
		t.Errorf("script has a NUL byte at %d", i)
	}
	if i := strings.Index(script, "\r\n"); i >= 0 {
		t.Errorf("script has a CR LF pair at %d", i)
	}
	got, err := sbatchDirectives(script)
	if err != nil {
		t.Fatalf("sbatch would refuse the directives: %v\n%s", err, script)
	}
	if want := wantDirectives(job); !slices.Equal(got, want) {
		t.Errorf("sbatch reads the directives\n%q\nwant\n%q\nscript:\n%s", got, want, script)
	}
	if body != "" && !strings.HasSuffix(script, "\n:\n"+scriptCommentFor(script, body)+body) {
		t.Errorf("script does not end with \":\", the comment and the body verbatim:\n%s", script)
	}
	for k, v := range job.Environment {
		if strings.Contains(script, k) || (len(v) > 3 && strings.Contains(script, v)) {
			t.Errorf("the environment variable %s appears in the script", k)
		}
	}
}

// scriptCommentFor returns the comment RenderScript put before body.
func scriptCommentFor(script, body string) string {
	head := strings.TrimSuffix(script, body)
	i := strings.LastIndex(head, "# The user's script follows")
	if i < 0 {
		return "<no comment>"
	}
	return head[i:]
}

// wantDirectives lists the options, as sbatch's directive parser yields
// them, that RenderScript should write for job.
func wantDirectives(job JobSpec) []string {
	d := []string{"--job-name=" + job.Name}
	if job.Partition != "" {
		d = append(d, "--partition="+job.Partition)
	}
	d = append(d, "--nodes="+strconv.Itoa(job.Nodes), "--ntasks-per-node="+strconv.Itoa(job.TasksPerNode))
	if job.GPUsPerNode > 0 {
		d = append(d, "--gres=gpu:"+strconv.Itoa(job.GPUsPerNode))
	}
	if job.CPUsPerTask > 0 {
		d = append(d, "--cpus-per-task="+strconv.Itoa(job.CPUsPerTask))
	}
	d = append(d, "--time="+FormatTimeLimit(job.TimeLimit))
	if job.WorkDir != "" {
		d = append(d, "--chdir="+job.WorkDir)
	}
	if job.OutputPath != "" {
		d = append(d, "--output="+job.OutputPath, "--error="+job.OutputPath)
	}
	if job.Comment != "" {
		d = append(d, "--comment="+job.Comment)
	}
	if len(job.Dependencies) > 0 {
		d = append(d, "--dependency=afterok:"+strings.Join(job.Dependencies, ":"))
	}
	return d
}

// sbatchDirectives is a port of sbatch's directive scan (_opt_batch_script
// and get_argument in src/sbatch/opt.c): it returns the arguments sbatch
// would take from the script's #SBATCH (and #SLURM) lines.
func sbatchDirectives(script string) ([]string, error) {
	var args []string
	for lineno, line := range strings.Split(script, "\n") {
		var rest string
		switch {
		case strings.HasPrefix(line, "#SBATCH"):
			rest = line[len("#SBATCH"):]
		case strings.HasPrefix(line, "#SLURM"):
			rest = line[len("#SLURM"):]
		default:
			// A line whose first non-space character is not '#' ends the scan.
			if t := strings.TrimLeft(line, " \t\n\v\f\r"); t != "" && t[0] != '#' {
				return args, nil
			}
			continue
		}
		for {
			arg, n, err := sbatchArgument(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineno+1, err)
			}
			if n == 0 && arg == "" {
				break
			}
			if arg != "" {
				args = append(args, arg)
			}
			rest = rest[n:]
			if n == 0 {
				break
			}
		}
	}
	return args, nil
}

func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// sbatchArgument is get_argument: the next argument of a directive line and
// how many bytes it consumed; ("", 0) when there is none.
func sbatchArgument(line string) (string, int, error) {
	i := 0
	for i < len(line) && isCSpace(line[i]) {
		i++
	}
	if rest := line[i:]; strings.HasPrefix(strings.ToLower(rest), "hetjob") &&
		(len(rest) == 6 || isCSpace(rest[6])) {
		return "", 0, fmt.Errorf("unexpected hetjob separator")
	}
	if i < len(line) && line[i] == ':' {
		return "", 0, fmt.Errorf("unexpected ':'")
	}
	if i == len(line) {
		return "", 0, nil
	}
	var arg []byte
	var quote byte
	escape := false
	for i < len(line) && (quote != 0 || !isCSpace(line[i])) && line[i] != '\n' && line[i] != 0 {
		c := line[i]
		switch {
		case escape:
			escape = false
		case c == '\\':
			i++
			if i < len(line) && line[i] == ' ' {
				arg = append(arg, ' ')
				i++
			} else {
				escape = true
			}
			continue
		case quote != 0:
			if c == quote {
				quote = 0
				i++
				continue
			}
		case c == '"' || c == '\'':
			quote = c
			i++
			continue
		case c == '#':
			return string(arg), i, nil
		}
		arg = append(arg, c)
		i++
	}
	if quote != 0 {
		return "", 0, fmt.Errorf("unmatched %c", quote)
	}
	return string(arg), i, nil
}

func TestSbatchDirectivesPort(t *testing.T) {
	got, err := sbatchDirectives("#!/bin/bash\n#SBATCH -N 2 --comment=\"a b\" # note\n\n# plain\n#SBATCH --x=y\\ z\necho\n#SBATCH --late\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-N", "2", "--comment=a b", "--x=y z"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFormatTimeLimit(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{59 * time.Second, "00:00:59"},
		{60 * time.Second, "00:01:00"},
		{6 * time.Hour, "06:00:00"},
		{24*time.Hour - time.Second, "23:59:59"},
		{24 * time.Hour, "1-00:00:00"},
		{26*time.Hour + 3*time.Minute + 4*time.Second, "1-02:03:04"},
		{30 * 24 * time.Hour, "30-00:00:00"},
		{time.Nanosecond, "00:00:01"},                   // rounds up
		{59*time.Second + time.Millisecond, "00:01:00"}, // rounds up
		{time.Hour - time.Nanosecond, "01:00:00"},       // rounds up
		{0, "00:00:00"},                                 // RenderScript refuses it
		{-time.Hour, "00:00:00"},                        // RenderScript refuses it
		{1<<63 - 1, "106751-23:47:17"},                  // no overflow
	} {
		if got := FormatTimeLimit(tt.d); got != tt.want {
			t.Errorf("FormatTimeLimit(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                       `''`,
		"a":                      `'a'`,
		"a'b":                    `'a'\''b'`,
		"'":                      `''\'''`,
		"$(rm -rf /) `rm -rf /`": "'$(rm -rf /) `rm -rf /`'",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// nastyArgs are arguments that would be run, split or changed if quoting
// failed anywhere. They also seed the fuzzers, so their commands are harmless
// even if one mutates and escapes: echo only. (Scripts that run them get a
// PATH with nothing but the fake srun in it, too.)
var nastyArgs = []string{
	"python3",
	"--",
	"-",
	"-n",
	"--epochs=3",
	"",
	" ",
	"a b\tc",
	"multi\nline\n",
	"\n",
	"'",
	"''",
	`'"'`,
	`"`,
	`\`,
	`\'`,
	"'\\''",
	"$(echo INJECTED)",
	"`echo INJECTED`",
	"'; echo INJECTED; '",
	"\"; echo INJECTED; \"",
	"${HOME}",
	"$HOME",
	"$0 $1 $@ $* $# $? $$ $!",
	"!!",
	"~",
	"~root",
	"*",
	"/*",
	"?",
	"[a-z]",
	"{a,b}",
	"a;b",
	"a&&b||c|d&",
	"<(x) >(y) < > >>",
	"#not a comment",
	"%s%n%x",
	"\x01\x7f\x1b[31m",
	"ünïcödé ✓ 日本語 🚀",
	"\xff\xfe invalid utf-8 \xc3",
	"\xe2'",
	"\r",
	"a\rb",
	"exit 1",
	"EOF",
	"=x",
	"IFS=x",
	"::",
	"a:b",
	"#SBATCH --nodes=99",
}

func TestRenderScriptArgvThroughBash(t *testing.T) {
	sr := newFakeSrun(t, t.TempDir())
	// Destructive-looking ones too, here only: the scripts run with a PATH
	// holding nothing but the fake srun, so even a quoting bug could not
	// find rm.
	args := append(slices.Clone(nastyArgs), "$(rm -rf /)", "`rm -rf /`", "; rm -rf /")
	for _, locale := range []string{"C", "C.UTF-8"} {
		// All at once, and each on its own (so one failure is easy to read).
		cases := [][]string{args}
		for _, a := range args {
			cases = append(cases, []string{"prog", a})
		}
		cases = append(cases, []string{"-starts-with-dash", "x"}, []string{"--", "--"})
		for _, argv := range cases {
			for _, job := range []JobSpec{seedJob(), scriptJob()} {
				script, err := RenderScript(job, argv, "")
				if err != nil {
					t.Fatalf("RenderScript(%q): %v", argv, err)
				}
				checkRendered(t, job, "", script)
				got := sr.run(t, script, locale)
				want := srunArgs(job, argv)
				if !slices.Equal(got, want) {
					t.Errorf("locale %s: srun got\n%q\nwant\n%q\nscript:\n%s", locale, got, want, script)
				}
			}
		}
	}
}

// srunArgs is what srun should receive for job and argv.
func srunArgs(job JobSpec, argv []string) []string {
	var want []string
	if job.CPUsPerTask > 0 {
		want = append(want, "--cpus-per-task="+strconv.Itoa(job.CPUsPerTask))
	}
	return append(append(want, "--"), argv...)
}

func TestRenderScriptBodyThroughBash(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name     string
		body     string
		wantOut  string
		wantCode int
	}{
		{"no set -e", "false\necho after\n", "after\n", 0},
		{"unset variable allowed", "echo \"[$NO_SUCH_VAR]\"\n", "[]\n", 0},
		{"pipefail not set", "false | true\necho $?\n", "0\n", 0},
		{"exit code", "echo one\nexit 7\necho never\n", "one\n", 7},
		{"last status is the job's", "echo x\n(exit 5)\n", "x\n", 5},
		{"heredoc", "cat <<'EOF'\n$HOME `x` 'y'\n#SBATCH --nodes=9\nEOF\ncat <<EOF\n$((1+2))\nEOF\n", "$HOME `x` 'y'\n#SBATCH --nodes=9\n3\n", 0},
		{"own #SBATCH and shebang lines", "#!/bin/sh\n#SBATCH --nodes=99\n#SBATCH --time=0\necho ok\n", "ok\n", 0},
		{"no trailing newline", "printf x", "x", 0},
		{"function and trap", "f() { echo in f; }\ntrap 'echo bye' EXIT\nf\n", "in f\nbye\n", 0},
		{"lone CR", "printf 'a\rb\\n'\n", "a\rb\n", 0},
		{"line numbers", "echo $LINENO\n", "", 0}, // checked below
		{"starts with a colon", ":\n: ${X:=1}\necho $X\n", "1\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			job := scriptJob()
			script, err := RenderScript(job, nil, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			checkRendered(t, job, tt.body, script)
			out, code := runBash(t, dir, dir+":/usr/bin:/bin", script, "C.UTF-8", nil)
			if tt.name == "line numbers" {
				// The comment before the body says which line it starts on.
				c := scriptCommentFor(script, tt.body)
				i := strings.Index(c, "is line ")
				n, _ := strconv.Atoi(strings.TrimRight(c[i+len("is line "):], ").\n"))
				if n == 0 || strings.Count(script[:len(script)-len(tt.body)], "\n")+1 != n {
					t.Fatalf("comment %q names the wrong line", c)
				}
				tt.wantOut = strconv.Itoa(n) + "\n"
			}
			if out != tt.wantOut || code != tt.wantCode {
				t.Errorf("bash printed %q and exited %d, want %q and %d\nscript:\n%s", out, code, tt.wantOut, tt.wantCode, script)
			}
		})
	}
}

func TestRenderScriptRefuses(t *testing.T) {
	argv := []string{"python3", "train.py"}
	for _, tt := range []struct {
		name   string
		mutate func(*JobSpec)
		argv   []string
		script string
		field  string // must appear in the error
	}{
		{"argv and script", nil, argv, "echo\n", "argv and script"},
		{"neither", nil, nil, "", "neither"},
		{"argv NUL", nil, []string{"a", "b\x00"}, "", "argv[1]"},
		{"argv lone colon", nil, []string{"a", ":"}, "", "argv[1]"},
		{"argv CR LF", nil, []string{"a\r\nb"}, "", "argv[0]"},
		{"script NUL", nil, nil, "echo\x00\n", "script"},
		{"script CR LF", nil, nil, "echo\r\n", "script"},
		{"name empty", func(j *JobSpec) { j.Name = "" }, argv, "", "Name"},
		{"name newline", func(j *JobSpec) { j.Name = "x\n#SBATCH --uid=0" }, argv, "", "Name"},
		{"name space", func(j *JobSpec) { j.Name = "x --uid=0" }, argv, "", "Name"},
		{"name NUL", func(j *JobSpec) { j.Name = "x\x00" }, argv, "", "Name"},
		{"partition CR", func(j *JobSpec) { j.Partition = "p\r" }, argv, "", "Partition"},
		{"partition quote", func(j *JobSpec) { j.Partition = `p"` }, argv, "", "Partition"},
		{"workdir hash", func(j *JobSpec) { j.WorkDir = "/a#b" }, argv, "", "WorkDir"},
		{"workdir relative", func(j *JobSpec) { j.WorkDir = "a" }, argv, "", "WorkDir"},
		{"output backslash", func(j *JobSpec) { j.OutputPath = `/a\b` }, argv, "", "OutputPath"},
		{"output relative", func(j *JobSpec) { j.OutputPath = "out.txt" }, argv, "", "OutputPath"},
		{"output newline", func(j *JobSpec) { j.OutputPath = "/a\n" }, argv, "", "OutputPath"},
		{"comment tab", func(j *JobSpec) { j.Comment = "a\tb" }, argv, "", "Comment"},
		{"comment non-ASCII", func(j *JobSpec) { j.Comment = "é" }, argv, "", "Comment"},
		{"dependency not a job id", func(j *JobSpec) { j.Dependencies = []string{"1", "2:3"} }, argv, "", "Dependencies[1]"},
		{"dependency empty", func(j *JobSpec) { j.Dependencies = []string{""} }, argv, "", "Dependencies[0]"},
		{"nodes 0", func(j *JobSpec) { j.Nodes = 0 }, argv, "", "Nodes"},
		{"tasks 0", func(j *JobSpec) { j.TasksPerNode = 0 }, argv, "", "TasksPerNode"},
		{"gpus negative", func(j *JobSpec) { j.GPUsPerNode = -1 }, argv, "", "GPUsPerNode"},
		{"cpus negative", func(j *JobSpec) { j.CPUsPerTask = -1 }, argv, "", "CPUsPerTask"},
		{"time 0 (Slurm: no limit)", func(j *JobSpec) { j.TimeLimit = 0 }, argv, "", "TimeLimit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			job := seedJob()
			if tt.mutate != nil {
				tt.mutate(&job)
			}
			got, err := RenderScript(job, tt.argv, tt.script)
			if err == nil {
				t.Fatalf("RenderScript accepted it:\n%s", got)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
		})
	}
}

// FuzzShellQuote checks, with the real /bin/bash in two locales, that
// ShellQuote'd words reach a command byte for byte.
func FuzzShellQuote(f *testing.F) {
	for _, a := range nastyArgs {
		f.Add(a, "x")
	}
	f.Add("", "")
	empty := f.TempDir() // PATH: builtins only, should quoting ever fail
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.IndexByte(a, 0) >= 0 || strings.IndexByte(b, 0) >= 0 {
			t.Skip("no program argument can hold a NUL byte")
		}
		cmd := "printf '%s\\0' " + ShellQuote(a) + " " + ShellQuote(b)
		want := a + "\x00" + b + "\x00"
		for _, locale := range []string{"C", "C.UTF-8"} {
			c := exec.Command("/bin/bash", "-c", cmd)
			c.Dir = empty
			c.Env = []string{"PATH=" + empty, "LC_ALL=" + locale}
			out, err := c.Output()
			if err != nil {
				t.Fatalf("locale %s: bash -c %q: %v", locale, cmd, err)
			}
			if string(out) != want {
				t.Fatalf("locale %s: bash -c %q printed %q, want %q", locale, cmd, out, want)
			}
		}
	})
}

// FuzzRenderScriptArgv renders whole batch scripts and runs them, as Slurm
// would, through their #!/bin/bash line, with a fake srun that reports the
// argv it got: whatever the arguments, srun must get exactly them (after its
// own "--"), and sbatch must read exactly our directives. Arguments
// RenderScript refuses must be the documented ones.
func FuzzRenderScriptArgv(f *testing.F) {
	for _, a := range nastyArgs {
		f.Add(a, "--", "x")
	}
	f.Add(":", "", "")
	f.Add("a\r\nb", "", "")
	sr := newFakeSrun(f, f.TempDir())
	f.Fuzz(func(t *testing.T, a, b, c string) {
		argv := []string{a, b, c}
		job := seedJob()
		if len(a)%2 == 1 {
			job = scriptJob()
		}
		script, err := RenderScript(job, argv, "")
		refuse := false
		for _, x := range argv {
			refuse = refuse || x == ":" || strings.IndexByte(x, 0) >= 0 || strings.Contains(x, "\r\n")
		}
		if refuse {
			if err == nil {
				t.Fatalf("RenderScript accepted %q", argv)
			}
			return
		}
		if err != nil {
			t.Fatalf("RenderScript(%q): %v", argv, err)
		}
		checkRendered(t, job, "", script)
		locale := "C"
		if len(b)%2 == 1 {
			locale = "C.UTF-8"
		}
		if got, want := sr.run(t, script, locale), srunArgs(job, argv); !slices.Equal(got, want) {
			t.Fatalf("locale %s: srun got\n%q\nwant\n%q\nscript:\n%s", locale, got, want, script)
		}
	})
}

// FuzzRenderScriptBody checks that any script body lands verbatim at the end
// of the script and that none of it is read as an sbatch directive.
func FuzzRenderScriptBody(f *testing.F) {
	f.Add(goldenScriptBody)
	f.Add("#SBATCH --nodes=99\n")
	f.Add("\n\n#SBATCH --nodes=99\necho\n")
	f.Add("exit 3")
	f.Add("x\r")
	f.Fuzz(func(t *testing.T, body string) {
		job := scriptJob()
		script, err := RenderScript(job, nil, body)
		if body == "" || strings.IndexByte(body, 0) >= 0 || strings.Contains(body, "\r\n") {
			if err == nil {
				t.Fatalf("RenderScript accepted body %q", body)
			}
			return
		}
		if err != nil {
			t.Fatalf("RenderScript(body %q): %v", body, err)
		}
		checkRendered(t, job, body, script)
	})
}

// fakeSrun runs rendered scripts with a fake srun first in PATH.
type fakeSrun struct{ dir string }

func newFakeSrun(tb testing.TB, dir string) *fakeSrun {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "srun")); err != nil {
		tb.Fatal(err)
	}
	return &fakeSrun{dir: dir}
}

// run executes script and returns the arguments the fake srun got.
func (s *fakeSrun) run(t *testing.T, script, locale string) []string {
	t.Helper()
	// GORACE: a -race binary otherwise sleeps a second at exit.
	out, code := runBash(t, s.dir, s.dir, script, locale, []string{fakeSrunEnv + "=1", "GORACE=atexit_sleep_ms=0"})
	if code != 0 {
		t.Fatalf("script exited %d; output %q\n%s", code, out, script)
	}
	if !strings.HasSuffix(out, "\x00") {
		t.Fatalf("fake srun output %q does not end in NUL\n%s", out, script)
	}
	return strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
}

// runBash writes script to dir and executes it there (so its #! line picks
// the interpreter, as when Slurm starts a batch script) with PATH set to
// path. It returns stdout and the exit status; stderr goes to the test log.
func runBash(t *testing.T, dir, path, script, locale string, env []string) (string, int) {
	t.Helper()
	file := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(file, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, file)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + path, "LC_ALL=" + locale, "HOME=/nonexistent"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("script timed out:\n%s", script)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return stdout.String(), ee.ExitCode()
		}
		t.Fatalf("running script: %v", err)
	}
	return stdout.String(), 0
}
