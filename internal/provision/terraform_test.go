package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-version"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/sopilot/sopilot/internal/provision"
	"github.com/sopilot/sopilot/internal/provision/preflight"
	"github.com/sopilot/sopilot/internal/provision/tftest"
)

// newRunner copies testdata/<config> and returns a Runner on the copy,
// offline, with the real terraform.
func newRunner(t *testing.T, config string) (*provision.Runner, string) {
	t.Helper()
	bin := tftest.Require(t)
	dir := tftest.CopyConfig(t, filepath.Join("testdata", config))
	r, err := provision.New(provision.Options{Dir: dir, Terraform: bin, Env: tftest.OfflineEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func stateAddresses(t *testing.T, r *provision.Runner) []string {
	t.Helper()
	st, err := r.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if st.Values == nil {
		return nil
	}
	var walk func(m *tfjson.StateModule)
	walk = func(m *tfjson.StateModule) {
		for _, res := range m.Resources {
			out = append(out, res.Address)
		}
		for _, c := range m.ChildModules {
			walk(c)
		}
	}
	walk(st.Values.RootModule)
	slices.Sort(out)
	return out
}

func stateID(t *testing.T, r *provision.Runner, addr string) string {
	t.Helper()
	st, err := r.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var id string
	var walk func(m *tfjson.StateModule)
	walk = func(m *tfjson.StateModule) {
		for _, res := range m.Resources {
			if res.Address == addr {
				id, _ = res.AttributeValues["id"].(string)
			}
		}
		for _, c := range m.ChildModules {
			walk(c)
		}
	}
	walk(st.Values.RootModule)
	if id == "" {
		t.Fatalf("%s has no id in state", addr)
	}
	return id
}

// The whole life of an installation on the real binary: init, plan to a
// file, apply exactly that file, output, the seed's shrink refused and its
// recovery path carried out, import after lost state, destroy.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, "roundtrip")
	ctx := context.Background()

	v, err := r.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("terraform %s", v)

	var initOut bytes.Buffer
	if err := r.Init(ctx, &initOut); err != nil {
		t.Fatalf("init: %v\n%s", err, initOut.String())
	}

	// plan -out, show -json
	var planOut bytes.Buffer
	prog := provision.NewProgress(&planOut, provision.ProgressOptions{ShowPlanned: true})
	plan, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "first.tfplan")}, prog)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, planOut.String())
	}
	if !plan.HasChanges || len(plan.Plan.ResourceChanges) != 4 {
		t.Fatalf("plan: changes %v, %d resource changes", plan.HasChanges, len(plan.Plan.ResourceChanges))
	}
	if s, _ := prog.Summary(); s.Add != 4 {
		t.Fatalf("plan summary %+v\n%s", s, planOut.String())
	}
	if strings.Contains(planOut.String(), "format_version") {
		t.Fatalf("the show -json after the plan leaked into the plan's progress writer:\n%s", planOut.String())
	}

	// apply exactly that plan
	var applyOut bytes.Buffer
	prog = provision.NewProgress(&applyOut, provision.ProgressOptions{})
	if err := r.Apply(ctx, plan.Path, prog); err != nil {
		t.Fatalf("apply: %v\n%s", err, applyOut.String())
	}
	if done, total, errored := prog.Counts(); done != 4 || total != 4 || errored != 0 {
		t.Fatalf("apply progress %d/%d errored %d\n%s", done, total, errored, applyOut.String())
	}
	if !strings.Contains(applyOut.String(), "[4/4]") {
		t.Errorf("no [4/4] in\n%s", applyOut.String())
	}
	// A saved plan is applied once: the state has moved on.
	if err := r.Apply(ctx, plan.Path, nil); err == nil {
		t.Error("applying a stale plan succeeded")
	}

	// output
	outs, err := r.Outputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	if err := json.Unmarshal(outs["slurm_login_ip"].Value, &ip); err != nil || ip != "203.0.113.10" {
		t.Fatalf("slurm_login_ip = %q (%v)", outs["slurm_login_ip"].Value, err)
	}

	// Seed problem 6: shrinking a created "filesystem" is refused from the
	// real plan, with the recovery commands.
	rules, err := preflight.LoadRules(filepath.Join(dir, "shrink-rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	shrinkVars := []string{filepath.Join(dir, "shrink.tfvars")}
	shrink, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "shrink.tfplan"), VarFiles: shrinkVars}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const inference = `module.filestore.terraform_data.jail_submount["inference"]`
	id := stateID(t, r, inference)
	fs := preflight.Plan(shrink.Plan, 0, rules, dir)
	if !preflight.Blocking(fs) || fs[0].Check != preflight.CheckShrink {
		t.Fatalf("shrink not refused: %+v", fs)
	}
	f := fs[0]
	if !strings.Contains(f.Summary, "from 2 TiB to 1 TiB") || !strings.Contains(f.Summary, inference) {
		t.Errorf("summary %q", f.Summary)
	}
	wantCmds := []string{"terraform state rm '" + inference + "'", "echo delete filesystem " + id}
	if len(f.Commands) < 2 || !slices.Equal(f.Commands[:2], wantCmds) {
		t.Errorf("commands %q, want first %q", f.Commands, wantCmds)
	}

	// The recovery path, for real: state rm, (delete by hand), plan again:
	// now a create, which the checks accept.
	if err := r.StateRm(ctx, inference); err != nil {
		t.Fatal(err)
	}
	again, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "recreate.tfplan"), VarFiles: shrinkVars}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fs := preflight.Plan(again.Plan, 0, rules, dir); preflight.Blocking(fs) {
		t.Fatalf("after state rm the plan is still refused: %+v", fs)
	}
	if err := r.Apply(ctx, again.Path, nil); err != nil {
		t.Fatal(err)
	}
	if got := stateID(t, r, inference); got == id {
		t.Errorf("the filesystem was not recreated (same id %s)", id)
	}

	// Seed problem 8: a resource that exists but fell out of the state is
	// imported (terraform_data supports import in 1.5.7).
	const jail = "module.filestore.terraform_data.jail"
	jailID := stateID(t, r, jail)
	if err := r.StateRm(ctx, jail); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(stateAddresses(t, r), jail) {
		t.Fatal("state rm left the resource")
	}
	if err := r.Import(ctx, jail, jailID, shrinkVars); err != nil {
		t.Fatal(err)
	}
	if got := stateID(t, r, jail); got != jailID {
		t.Fatalf("imported id %q, want %q", got, jailID)
	}
	// Importing over a managed address fails with Terraform's own text.
	err = r.Import(ctx, jail, jailID, shrinkVars)
	if err == nil || len(preflight.ParseDiagnostics(err.Error())) == 0 {
		t.Fatalf("second import: %v (want a parsable diagnostic)", err)
	}

	// destroy through a destroy plan, so what is destroyed is what was shown
	destroy, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "destroy.tfplan"), Destroy: true, VarFiles: shrinkVars}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range destroy.Plan.ResourceChanges {
		if !rc.Change.Actions.Delete() {
			t.Errorf("destroy plan: %s %v", rc.Address, rc.Change.Actions)
		}
	}
	prog = provision.NewProgress(&bytes.Buffer{}, provision.ProgressOptions{})
	if err := r.Apply(ctx, destroy.Path, prog); err != nil {
		t.Fatal(err)
	}
	if done, total, _ := prog.Counts(); done != 4 || total != 4 {
		t.Errorf("destroy progress %d/%d", done, total)
	}
	if got := stateAddresses(t, r); len(got) != 0 {
		t.Errorf("after destroy the state holds %v", got)
	}
}

// Cancelling mid-apply interrupts Terraform the way Ctrl-C does: it stops,
// writes its state, and the state stays readable and consistent.
func TestCancelMidApply(t *testing.T) {
	t.Parallel()
	bin := tftest.Require(t)
	dir := t.TempDir()
	const cfg = `resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "sleep 600"
  }
}

resource "terraform_data" "fast" {
  input = 1
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := provision.New(provision.Options{Dir: dir, Terraform: bin, Env: tftest.OfflineEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Init(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	p, err := r.Plan(context.Background(), provision.PlanRequest{Out: filepath.Join(dir, "p")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	prog := provision.NewProgress(&out, provision.ProgressOptions{OnEvent: func(ev provision.Event) {
		// Ctrl-C once the slow resource's provisioner is running.
		if ev.Type == "provision_start" && ev.Hook != nil && ev.Hook.Resource.Addr == "terraform_data.slow" {
			cancel()
		}
	}})
	err = r.Apply(ctx, p.Path, prog)
	if !errors.Is(err, provision.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("apply: %v, want ErrCancelled and context.Canceled\n%s", err, out.String())
	}
	// The state was written: the finished resource is in it, the
	// interrupted one is tainted (recreated by the next apply), and a new
	// plan reads it without complaint.
	st, err := r.State(context.Background())
	if err != nil {
		t.Fatalf("state after cancel: %v", err)
	}
	got := map[string]bool{}
	for _, res := range st.Values.RootModule.Resources {
		got[res.Address] = res.Tainted
	}
	if tainted, ok := got["terraform_data.slow"]; ok && !tainted {
		t.Errorf("interrupted resource in state and not tainted: %+v", got)
	}
	if _, err := r.Plan(context.Background(), provision.PlanRequest{Out: filepath.Join(dir, "p2")}, nil); err != nil {
		t.Fatalf("plan after cancel: %v", err)
	}
}

func TestInitRetriesOnlyTransientFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		config   string // testdata directory, or "" for main.tf below
		mainTF   string
		attempts int // init runs expected
	}{
		{"unreachable module source is retried", "", "module \"m\" {\n  source = \"git::https://127.0.0.1:1/modules.git\"\n}\n", 3},
		{"a missing module directory is not", "missing-module", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := tftest.Require(t)
			dir := t.TempDir()
			if tt.config != "" {
				dir = tftest.CopyConfig(t, filepath.Join("testdata", tt.config))
			} else if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tt.mainTF), 0o644); err != nil {
				t.Fatal(err)
			}
			var sleeps []time.Duration
			r, err := provision.New(provision.Options{
				Dir: dir, Terraform: bin, Env: tftest.OfflineEnv(t), InitBackoff: time.Second,
				Sleep: func(ctx context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = r.Init(context.Background(), &out)
			if !errors.Is(err, provision.ErrInit) {
				t.Fatalf("init: %v, want ErrInit", err)
			}
			want := []time.Duration{time.Second, 2 * time.Second}[:tt.attempts-1]
			if !slices.Equal(sleeps, want) {
				t.Fatalf("waits %v, want %v (%d attempts)\n%s", sleeps, want, tt.attempts, out.String())
			}
		})
	}
}

func TestTransientInitError(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"Error: Failed to query available provider packages\n\nCould not retrieve the list of available versions for provider nebius/nebius: could not connect to registry.terraform.io", true},
		{"Error: Failed to download module ... error downloading 'https://x': dial tcp: i/o timeout", true},
		{"lookup registry.terraform.io: no such host", true},
		{"503 Service Unavailable", true},
		{"Error: Unreadable module directory", false},
		{"Error: Missing newline after argument", false},
		{"Error: Unsupported Terraform Core version", false},
	}
	for _, tt := range tests {
		if got := provision.TransientInitError(tt.text); got != tt.want {
			t.Errorf("TransientInitError(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
}

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "terraform")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := func(string) (string, error) { return "/usr/local/bin/terraform", nil }
	notOnPath := func(string) (string, error) { return "", errors.New("executable file not found in $PATH") }
	tests := []struct {
		name     string
		explicit string
		look     func(string) (string, error)
		want     string
		err      bool
	}{
		{"explicit wins", exe, onPath, exe, false},
		{"PATH", "", onPath, "/usr/local/bin/terraform", false},
		{"nowhere", "", notOnPath, "", true},
		{"explicit missing", filepath.Join(dir, "nope"), onPath, "", true},
		{"explicit not executable", plain, onPath, "", true},
		{"explicit is a directory", dir, onPath, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := provision.Locate(tt.explicit, tt.look)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("Locate = %q, %v", got, err)
			}
			if err != nil && !errors.Is(err, provision.ErrTerraformNotFound) {
				t.Fatalf("error %v is not ErrTerraformNotFound", err)
			}
		})
	}
}

// Seed problem 4 end to end: the preflight points at the file and line
// where this Terraform stops, before Terraform runs; Terraform 1.5.7 then
// really does stop there.
func TestVersionCheckBeforeTerraform(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, "provider-functions")
	ctx := context.Background()
	v, err := r.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := preflight.LoadConfig(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := preflight.TerraformVersion(c, v, preflight.DefaultRules())
	if !v.LessThan(version.Must(version.NewVersion("1.8.0"))) {
		if len(fs) != 0 {
			t.Fatalf("terraform %s supports provider functions, yet: %+v", v, fs)
		}
		t.Skipf("terraform %s supports provider-defined functions; the refusal needs one older than 1.8 (bin/terraform is 1.5.7)", v)
	}
	if len(fs) != 1 || fs[0].Severity != preflight.Error {
		t.Fatalf("findings %+v", fs)
	}
	loc := fs[0].Locations[0]
	if !strings.Contains(fs[0].Summary, "needs Terraform >= 1.8.0") {
		t.Errorf("summary %q", fs[0].Summary)
	}
	err = r.Init(ctx, nil)
	if err == nil {
		t.Fatal("terraform init accepted provider:: functions")
	}
	diags := preflight.ParseDiagnostics(err.Error())
	if len(diags) == 0 || diags[0].File != loc.File || diags[0].Line != loc.Line {
		t.Fatalf("terraform failed with %+v; preflight predicted %s", diags, loc)
	}
}

// Seed problem 7 end to end: the modules Terraform cannot read are the
// ones preflight reports; stubs for the disabled ones satisfy Terraform.
func TestMissingModulesAndStubs(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, "missing-module")
	ctx := context.Background()
	err := r.Init(ctx, nil)
	if err == nil {
		t.Fatal("init succeeded without the module directories")
	}
	var unreadable []string
	for _, d := range preflight.ParseDiagnostics(err.Error()) {
		if d.Summary == "Unreadable module directory" && strings.Contains(d.Detail, "for module") {
			unreadable = append(unreadable, d.Detail)
		}
	}
	noGPU := filepath.Join(dir, "no-gpu.tfvars")
	c, err := preflight.LoadConfig(dir, []string{noGPU})
	if err != nil {
		t.Fatal(err)
	}
	fs := preflight.Modules(c)
	if len(fs) != len(unreadable) || len(fs) != 2 {
		t.Fatalf("preflight: %d findings, terraform: %d unreadable modules %q", len(fs), len(unreadable), unreadable)
	}
	for _, mm := range preflight.MissingModules(c) {
		if _, err := preflight.WriteStub(mm); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := r.Init(ctx, &out); err != nil {
		t.Fatalf("init with stubs: %v\n%s", err, out.String())
	}
	if _, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "p"), VarFiles: []string{noGPU}}, nil); err != nil {
		t.Fatalf("plan with stubs: %v", err)
	}
}

// Seed problem 5 on a real plan: the planned sizes of the rules' filesystem
// resources count against the quota.
func TestPlanQuotaRealPlan(t *testing.T) {
	t.Parallel()
	r, dir := newRunner(t, "roundtrip")
	ctx := context.Background()
	if err := r.Init(ctx, nil); err != nil {
		t.Fatal(err)
	}
	p, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "p")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := preflight.LoadRules(filepath.Join(dir, "shrink-rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	fs := preflight.Plan(p.Plan, 5<<40, rules, dir)
	if len(fs) != 1 || fs[0].Severity != preflight.Error || !strings.Contains(fs[0].Summary, "6 TiB") {
		t.Fatalf("findings %+v, want 3 x 2048 GiB = 6 TiB refused against 5 TiB", fs)
	}
}
