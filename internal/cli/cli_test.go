package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"

	"github.com/sopilot/sopilot/internal/provision"
	"github.com/sopilot/sopilot/internal/provision/preflight"
	"github.com/sopilot/sopilot/internal/provision/tftest"
)

const testdata = "../provision/testdata"

type result struct {
	stdout, stderr string
	err            error
	code           int
}

type invocation struct {
	args  []string
	env   map[string]string // SOPILOT_* etc.
	stdin string
	// onPath are the tools LookPath finds (terraform is found through
	// --terraform / SOPILOT_TERRAFORM only).
	onPath   []string
	terminal bool
}

func sopilot(t *testing.T, inv invocation) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := Env{
		Getenv: func(k string) string {
			// Test controllers serve plaintext (--insecure), as in local
			// development; a test can say otherwise.
			if v, ok := inv.env[k]; ok || k != "SOPILOT_INSECURE" {
				return v
			}
			return "true"
		},
		Stdin:  strings.NewReader(inv.stdin),
		Stdout: &stdout,
		Stderr: &stderr,
		LookPath: func(name string) (string, error) {
			if slices.Contains(inv.onPath, name) {
				return "/usr/bin/" + name, nil
			}
			return "", fmt.Errorf("%s: executable file not found in $PATH", name)
		},
		IsTerminal:   func(io.Writer) bool { return inv.terminal },
		TerraformEnv: tftest.OfflineEnv(t),
	}
	err := Execute(context.Background(), inv.args, env)
	return result{stdout.String(), stderr.String(), err, ExitCode(err)}
}

// withTerraform requires the real binary and names it through the
// environment, as a user would with SOPILOT_TERRAFORM.
func withTerraform(t *testing.T, inv invocation) invocation {
	t.Helper()
	bin := tftest.Require(t)
	if inv.env == nil {
		inv.env = map[string]string{}
	}
	inv.env["SOPILOT_TERRAFORM"] = bin
	if inv.onPath == nil {
		inv.onPath = []string{"kubectl", "jq", "yq", "md5sum", "nebius"}
	}
	return inv
}

func TestHelpTeaches(t *testing.T) {
	r := sopilot(t, invocation{args: []string{"--help"}})
	if r.code != 0 || !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "cluster") {
		t.Fatalf("root help (exit %d):\n%s", r.code, r.stdout)
	}
	for _, sub := range []string{"preflight", "plan", "apply", "destroy", "output", "import"} {
		t.Run(sub, func(t *testing.T) {
			r := sopilot(t, invocation{args: []string{"cluster", sub, "--help"}})
			for _, want := range []string{"Examples:", "sopilot cluster " + sub, "[SOPILOT_DIR]", "[SOPILOT_OUTPUT]"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("help lacks %q:\n%s", want, r.stdout)
				}
			}
			if strings.Count(r.stdout, "[SOPILOT_DIR]") != 1 {
				t.Errorf("the env annotation is repeated:\n%s", r.stdout)
			}
		})
	}
	r = sopilot(t, invocation{args: []string{"cluster"}})
	if r.code != 0 || !strings.Contains(r.stdout, "What the checks catch") {
		t.Fatalf("cluster group help (exit %d):\n%s", r.code, r.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := filepath.Join(testdata, "seed-quota")
	tests := []struct {
		name string
		inv  invocation
		want string
	}{
		{"unknown command", invocation{args: []string{"clustr"}}, "unknown command"},
		{"unknown flag", invocation{args: []string{"cluster", "plan", "--dri", dir}}, "unknown flag"},
		{"bad output format", invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "xml"}}, "--output"},
		{"bad quota", invocation{args: []string{"cluster", "preflight", "--dir", dir, "--quota", "5 apples"}}, "--quota"},
		{"bad quota from the environment", invocation{args: []string{"cluster", "preflight", "--dir", dir},
			env: map[string]string{"SOPILOT_INIT_ATTEMPTS": "many"}}, "SOPILOT_INIT_ATTEMPTS"},
		{"unknown check to allow", invocation{args: []string{"cluster", "preflight", "--dir", dir, "--allow", "everything"}}, "--allow"},
		{"dir is not a directory", invocation{args: []string{"cluster", "preflight", "--dir", filepath.Join(dir, "terraform.tfvars")}}, "not a directory"},
		{"import wants ADDRESS ID", invocation{args: []string{"cluster", "import", "--dir", dir, "only-address"}}, "ADDRESS ID"},
		{"import --from-error takes no arguments", invocation{args: []string{"cluster", "import", "--dir", dir, "--from-error", "x", "a", "b"}}, "no ADDRESS ID"},
		{"output takes one name", invocation{args: []string{"cluster", "output", "--dir", dir, "a", "b"}}, "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sopilot(t, tt.inv)
			if r.code != ExitUsage || !errors.Is(r.err, ErrUsage) {
				t.Fatalf("exit %d (%v), want %d", r.code, r.err, ExitUsage)
			}
			if !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "Run 'sopilot ") || !strings.Contains(r.stderr, " --help' for usage.") {
				t.Fatalf("stderr %q lacks %q", r.stderr, tt.want)
			}
		})
	}
}

func preflightReport(t *testing.T, r result) PreflightReport {
	t.Helper()
	var rep PreflightReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a preflight report: %v\n%s\nstderr: %s", err, r.stdout, r.stderr)
	}
	if rep.Kind != KindPreflight {
		t.Fatalf("kind %q", rep.Kind)
	}
	return rep
}

func seedProblems(fs []preflight.Finding, sev preflight.Severity) []int {
	var out []int
	for _, f := range fs {
		if f.Severity == sev && f.SeedProblem > 0 && !slices.Contains(out, f.SeedProblem) {
			out = append(out, f.SeedProblem)
		}
	}
	slices.Sort(out)
	return out
}

// Seed problems 1-3 and 5, with no terraform needed: every missing tool
// is reported at once, and the tfvars quota is checked.
func TestPreflightWithoutTerraform(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testdata, "seed-quota")
	tests := []struct {
		name   string
		inv    invocation
		errors []int
		code   int
	}{
		{"seed problems 1, 2, 3 at once", invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "json"}}, []int{1, 2, 3}, ExitRefused},
		{"seed problem 5 from SOPILOT_QUOTA", invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "json", "--tools", "yq", "--cloud-cli", "", "--allow", "tools"},
			env: map[string]string{"SOPILOT_QUOTA": "5TiB"}, onPath: []string{"yq"}}, []int{5}, ExitRefused},
		{"a flag wins over the environment", invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "json", "--quota", "7TiB", "--allow", "tools"},
			env: map[string]string{"SOPILOT_QUOTA": "5TiB"}}, nil, ExitOK},
		{"the seed's fix passes", invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "json", "--quota", "5TiB", "--allow", "tools",
			"--var-file", filepath.Join(dir, "fits.tfvars")}}, nil, ExitOK},
		{"var file relative to --dir", invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "json", "--quota", "5TiB", "--allow", "tools",
			"--var-file", "fits.tfvars"}}, nil, ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sopilot(t, tt.inv)
			if r.code != tt.code {
				t.Fatalf("exit %d (%v), want %d\n%s", r.code, r.err, tt.code, r.stdout)
			}
			rep := preflightReport(t, r)
			if got := seedProblems(rep.Findings, preflight.Error); !slices.Equal(got, tt.errors) {
				t.Fatalf("error findings for seed problems %v, want %v\n%s", got, tt.errors, r.stdout)
			}
			if rep.Blocking != (tt.code == ExitRefused) {
				t.Errorf("blocking %v", rep.Blocking)
			}
		})
	}
}

func TestPreflightTable(t *testing.T) {
	dir := filepath.Join(testdata, "seed-quota")
	tests := []struct {
		name     string
		terminal bool
		color    string
		ansi     bool
	}{
		{"no colour when not a terminal", false, "auto", false},
		{"colour on a terminal", true, "auto", true},
		{"--color never on a terminal", true, "never", false},
		{"--color always into a pipe", false, "always", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sopilot(t, invocation{args: []string{"cluster", "preflight", "--dir", dir, "--quota", "5TiB", "--color", tt.color}, terminal: tt.terminal})
			if r.code != ExitRefused {
				t.Fatalf("exit %d", r.code)
			}
			for _, want := range []string{"ERROR [quota] (seed problem 5)", "requested 7284264534016", "fix: reduce the sizes", "ERROR [tools] (seed problem 1) terraform: command not found"} {
				if !strings.Contains(stripANSI(r.stdout), want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if strings.Contains(r.stdout, "\x1b[") != tt.ansi {
				t.Errorf("ANSI codes present: %v, want %v", !tt.ansi, tt.ansi)
			}
		})
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestPrintRules(t *testing.T) {
	r := sopilot(t, invocation{args: []string{"cluster", "preflight", "--print-rules"}})
	if r.code != 0 {
		t.Fatal(r.err)
	}
	if _, err := preflight.ParseRules([]byte(r.stdout)); err != nil {
		t.Fatalf("printed rules do not parse: %v", err)
	}
	custom := filepath.Join(testdata, "roundtrip", "shrink-rules.json")
	r = sopilot(t, invocation{args: []string{"cluster", "preflight", "--print-rules", "--rules", custom}})
	if !strings.Contains(r.stdout, "terraform_data stands in") {
		t.Fatalf("--rules not printed:\n%s", r.stdout)
	}
}

// Seed problem 4 through the CLI: refused before Terraform runs, naming
// the file and line.
func TestPlanRefusesOldTerraform(t *testing.T) {
	t.Parallel()
	dir := tftest.CopyConfig(t, filepath.Join(testdata, "provider-functions"))
	r := sopilot(t, withTerraform(t, invocation{args: []string{"cluster", "plan", "--dir", dir, "-o", "json"}}))
	var rep RunReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s\n%s", err, r.stdout, r.stderr)
	}
	if rep.Terraform == nil {
		t.Fatalf("no terraform in the report\n%s", r.stdout)
	}
	if v := version.Must(version.NewVersion(rep.Terraform.Version)); !v.LessThan(version.Must(version.NewVersion("1.8.0"))) {
		t.Skipf("terraform %s supports provider-defined functions; the refusal needs one older than 1.8 (bin/terraform is 1.5.7)", v)
	}
	if r.code != ExitRefused || !rep.Refused || rep.PlanFile != "" {
		t.Fatalf("exit %d, report %+v", r.code, rep)
	}
	if got := seedProblems(rep.Findings, preflight.Error); !slices.Equal(got, []int{4}) {
		t.Fatalf("seed problems %v\n%s", got, r.stdout)
	}
	if !strings.Contains(rep.Findings[0].Summary, "modules/filestore/main.tf:8") {
		t.Errorf("summary %q", rep.Findings[0].Summary)
	}
	if strings.Contains(r.stderr, "Initializing") {
		t.Errorf("terraform init ran:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".terraform")); err == nil {
		t.Error("terraform ran in the directory")
	}
}

// Seed problem 7 through the CLI: reported, then --write-stubs fixes the
// disabled module and leaves the enabled one reported.
func TestPreflightWriteStubs(t *testing.T) {
	t.Parallel()
	dir := tftest.CopyConfig(t, filepath.Join(testdata, "missing-module"))
	r := sopilot(t, invocation{args: []string{"cluster", "preflight", "--dir", dir, "-o", "json", "--allow", "tools", "--write-stubs"}})
	rep := preflightReport(t, r)
	if r.code != ExitRefused || len(rep.StubsWritten) != 1 || !strings.Contains(rep.StubsWritten[0], "nfs-server") {
		t.Fatalf("exit %d, stubs %v", r.code, rep.StubsWritten)
	}
	var modules []string
	for _, f := range rep.Findings {
		if f.Check == preflight.CheckModules {
			modules = append(modules, f.Summary)
		}
	}
	if len(modules) != 1 || !strings.Contains(modules[0], "nvidia_operator_gpu") {
		t.Fatalf("module findings after stubs: %q", modules)
	}
	r = sopilot(t, invocation{args: []string{"cluster", "preflight", "--dir", dir, "--allow", "tools", "--var-file", "no-gpu.tfvars", "--write-stubs"}})
	if r.code != ExitOK || !strings.Contains(r.stdout, "Preflight passed") {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
}

// The whole cycle through the CLI on the real binary: plan, apply of that
// plan, output, the seed's shrink refused (problem 6), destroy.
func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	dir := tftest.CopyConfig(t, filepath.Join(testdata, "roundtrip"))
	run := func(stdin string, args ...string) result {
		return sopilot(t, withTerraform(t, invocation{args: append([]string{"cluster"}, args...), stdin: stdin}))
	}

	r := run("", "plan", "--dir", dir)
	planFile := filepath.Join(dir, "sopilot.tfplan")
	if r.code != 0 || !strings.Contains(r.stdout, "Plan: 4 to add") || !strings.Contains(r.stdout, "--plan "+planFile) {
		t.Fatalf("plan: exit %d %v\n%s\n%s", r.code, r.err, r.stdout, r.stderr)
	}
	if _, err := os.Stat(planFile); err != nil {
		t.Fatal(err)
	}

	r = run("no\n", "apply", "--dir", dir, "--plan", planFile)
	if r.code != ExitNotConfirmed {
		t.Fatalf("apply answered no: exit %d", r.code)
	}
	r = run("yes\n", "apply", "--dir", dir, "--plan", planFile, "-o", "json")
	var rep RunReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("apply: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if !rep.Applied || rep.Kind != KindApply || string(rep.Outputs["slurm_login_ip"].Value) != `"203.0.113.10"` {
		t.Fatalf("apply report %+v", rep)
	}
	if !strings.Contains(r.stderr, "[4/4]") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}

	r = run("", "output", "--dir", dir, "slurm_login_ip")
	if r.code != 0 || r.stdout != "203.0.113.10\n" {
		t.Fatalf("output slurm_login_ip: exit %d %q", r.code, r.stdout)
	}
	r = run("", "output", "--dir", dir, "-o", "json")
	var outs OutputsReport
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs.Outputs) != 2 {
		t.Fatalf("output -o json: %v\n%s", err, r.stdout)
	}
	r = run("", "output", "--dir", dir, "nope")
	if r.code != ExitError || !strings.Contains(r.stderr, "slurm_login_ip") {
		t.Fatalf("unknown output: exit %d %s", r.code, r.stderr)
	}

	// Seed problem 6: the shrink is refused from the real plan; nothing
	// is applied and the refused plan file is gone.
	rules := filepath.Join(dir, "shrink-rules.json")
	r = run("yes\n", "apply", "--dir", dir, "--var-file", "shrink.tfvars", "--rules", rules, "-o", "json")
	rep = RunReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err, r.stdout)
	}
	if r.code != ExitRefused || !rep.Refused || rep.Applied || rep.PlanFile != "" {
		t.Fatalf("shrink: exit %d report %+v\n%s", r.code, rep, r.stderr)
	}
	if got := seedProblems(rep.Findings, preflight.Error); !slices.Equal(got, []int{6}) {
		t.Fatalf("seed problems %v", got)
	}
	if !slices.ContainsFunc(rep.Findings[0].Commands, func(c string) bool { return strings.HasPrefix(c, "terraform state rm ") }) {
		t.Errorf("no recovery commands: %+v", rep.Findings[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "sopilot.tfplan")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused plan file left behind: %v", err)
	}

	// An allowed shrink goes through (terraform_data accepts it).
	r = run("", "apply", "--dir", dir, "--var-file", "shrink.tfvars", "--rules", rules, "--allow", "shrink", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "Apply complete: 0 to add, 1 to change") {
		t.Fatalf("allowed shrink: exit %d %v\n%s\n%s", r.code, r.err, r.stdout, r.stderr)
	}

	r = run("", "destroy", "--dir", dir)
	if r.code != ExitNotConfirmed || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("destroy without an answer: exit %d\n%s", r.code, r.stderr)
	}
	r = run("", "destroy", "--dir", dir, "--yes", "-o", "json")
	rep = RunReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.Applied || rep.Changes.Destroy != 4 {
		t.Fatalf("destroy: exit %d %v %+v\n%s", r.code, err, rep, r.stderr)
	}
	r = run("", "plan", "--dir", dir, "-o", "json")
	rep = RunReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Changes.Add != 4 {
		t.Fatalf("plan after destroy: %v %+v", err, rep)
	}
}

// Seed problem 8 through the CLI: the failed apply's JSON diagnostics give
// the import commands; the recorded text of the same failure, given to
// import --from-error --run, imports what has an ID.
func TestAlreadyExists(t *testing.T) {
	t.Parallel()
	rules := filepath.Join(testdata, "roundtrip", "shrink-rules.json")
	dir := tftest.CopyConfig(t, filepath.Join(testdata, "already-exists"))
	r := sopilot(t, withTerraform(t, invocation{args: []string{"cluster", "apply", "--dir", dir, "--rules", rules, "--yes", "-o", "json"}}))
	var rep RunReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s\n%s", err, r.stdout, r.stderr)
	}
	if r.code != ExitError || rep.Applied || len(rep.ImportCommands) != 2 {
		t.Fatalf("exit %d, report %+v\n%s", r.code, rep, r.stderr)
	}
	if rep.ImportCommands[0].Command != "terraform import 'module.k8s.terraform_data.accounting[0]' mk8snodegroup-e00accountingxyz" {
		t.Errorf("import command %q", rep.ImportCommands[0].Command)
	}
	if got := seedProblems(rep.Findings, preflight.Error); !slices.Equal(got, []int{8}) {
		t.Errorf("seed problems %v", got)
	}

	// A clean copy: the resources "exist" (fail = false) but are not in state.
	dir = tftest.CopyConfig(t, filepath.Join(testdata, "already-exists"))
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars"), []byte("fail = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recorded := filepath.Join(testdata, "diagnostics", "already-exists.txt")
	r = sopilot(t, invocation{args: []string{"cluster", "import", "--dir", dir, "--rules", rules, "--from-error", recorded}})
	if r.code != 0 || !strings.Contains(r.stdout, "$ terraform import 'module.k8s.terraform_data.accounting[0]' mk8snodegroup-e00accountingxyz") {
		t.Fatalf("import --from-error: exit %d %v\n%s", r.code, r.err, r.stdout)
	}
	r = sopilot(t, withTerraform(t, invocation{args: []string{"cluster", "import", "--dir", dir, "--rules", rules, "--from-error", "-", "--run", "-o", "json"},
		stdin: readFile(t, recorded)}))
	var ir ImportReport
	if err := json.Unmarshal([]byte(r.stdout), &ir); err != nil {
		t.Fatal(err, r.stdout)
	}
	if r.code != ExitError || !slices.Equal(ir.Imported, []string{"module.k8s.terraform_data.accounting[0]"}) {
		t.Fatalf("import --run: exit %d %+v\n%s", r.code, ir, r.stderr)
	}
	r = sopilot(t, withTerraform(t, invocation{args: []string{"cluster", "import", "--dir", dir, "module.k8s.terraform_data.controller", "mk8snodegroup-e00controller"}}))
	if r.code != 0 || !strings.Contains(r.stdout, "imported module.k8s.terraform_data.controller") {
		t.Fatalf("import ADDRESS ID: exit %d %v\n%s", r.code, r.err, r.stderr)
	}
	r = sopilot(t, withTerraform(t, invocation{args: []string{"cluster", "plan", "--dir", dir, "-o", "json"}}))
	rep = RunReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Changes.Add != 0 {
		t.Fatalf("after the imports the plan still creates: %v %+v", err, rep.Changes)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{fmt.Errorf("x: %w", ErrUsage), ExitUsage},
		{fmt.Errorf("x: %w", ErrRefused), ExitRefused},
		{ErrNotConfirmed, ExitNotConfirmed},
		{fmt.Errorf("apply: %w (%w)", provision.ErrCancelled, context.Canceled), ExitInterrupted},
		{context.Canceled, ExitInterrupted},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
