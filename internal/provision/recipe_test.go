package provision_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/provision"
	"github.com/sopilot/sopilot/internal/provision/preflight"
	"github.com/sopilot/sopilot/internal/provision/tftest"
)

const nebiusSource = "terraform-provider.storage.eu-north1.nebius.cloud/nebius/nebius"

// mirrorEnv is OfflineEnv with a filesystem mirror holding a placeholder
// nebius provider, so that `terraform init` gets past provider
// installation without the network. (The placeholder cannot serve a
// schema: `validate` needs the real provider.)
func mirrorEnv(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	plat := filepath.Join(dir, "mirror", filepath.FromSlash(nebiusSource), "0.5.0", runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(plat, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plat, "terraform-provider-nebius"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mirror.tfrc")
	body := "disable_checkpoint = true\nprovider_installation {\n  filesystem_mirror {\n    path = \"" + filepath.ToSlash(filepath.Join(dir, "mirror")) + "\"\n  }\n}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"TF_CLI_CONFIG_FILE": cfg, "CHECKPOINT_DISABLE": "1"}
}

// The 1.20.1 recipe's missing modules, on the real binary: the three
// modules init cannot read are the three preflight names; stubs that
// declare the nebius provider's source satisfy init with the calls'
// `providers = { nebius = nebius }`, and a stub without them is the
// "Provider type mismatch" init stops with.
func TestRecipeModulesAndProviderStubs(t *testing.T) {
	t.Parallel()
	bin := tftest.Require(t)
	root := tftest.CopyConfig(t, filepath.Join("testdata", "recipe-1.20.1"))
	dir := filepath.Join(root, "soperator", "installations", "example")
	// The recipe wants Terraform >= 1.8.0 and make tools pins 1.5.7, the
	// seed's version (the terraform-version check has its own tests): drop
	// the constraint from the copy so that init gets to the modules.
	dropRequiredVersion(t, filepath.Join(dir, "terraform.tf"))
	r, err := provision.New(provision.Options{Dir: dir, Terraform: bin, Env: mirrorEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = r.Init(ctx, nil)
	if err == nil {
		t.Fatal("init succeeded without the module directories")
	}
	var unreadable []string
	for _, d := range preflight.ParseDiagnostics(err.Error()) {
		if d.Summary == "Unreadable module directory" && strings.Contains(d.Detail, "for module") {
			_, rest, _ := strings.Cut(d.Detail, `for module "`)
			name, _, _ := strings.Cut(rest, `"`)
			unreadable = append(unreadable, name)
		}
	}
	c, err := preflight.LoadConfig(dir, []string{filepath.Join(dir, "seed.tfvars")})
	if err != nil {
		t.Fatal(err)
	}
	mms := preflight.MissingModules(c)
	var named []string
	for _, mm := range mms {
		named = append(named, mm.Call.Name)
	}
	slices.Sort(unreadable)
	slices.Sort(named)
	if !slices.Equal(named, unreadable) || len(named) != 3 {
		t.Fatalf("preflight names %q, terraform cannot read %q", named, unreadable)
	}
	// A stub without the provider's source: what the seed wrote by hand.
	nfs := filepath.Join(root, "modules", "nfs-server")
	if err := os.MkdirAll(nfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nfs, "main.tf"), []byte("variable \"parent_id\" {\n  default = null\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = r.Init(ctx, nil)
	if err == nil || !slices.ContainsFunc(preflight.ParseDiagnostics(err.Error()), func(d preflight.Diagnostic) bool {
		return d.Summary == "Provider type mismatch"
	}) {
		t.Fatalf("a stub without required_providers: init error %v, want Provider type mismatch", err)
	}
	if err := os.RemoveAll(nfs); err != nil {
		t.Fatal(err)
	}
	// Stubs as preflight writes them. The two operator modules are not
	// safe to stub (module.k8s.gpu_involved is known only at plan); the
	// test stubs them anyway to prove the stub's shape to Terraform.
	for _, mm := range mms {
		mm.State = preflight.Disabled
		if _, err := preflight.WriteStub(mm); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Init(ctx, nil); err != nil {
		t.Fatalf("init with stubs: %v", err)
	}
}

// The seed's tfvars against the 1.20.1 variable types, on the real binary:
// Terraform refuses the variables preflight reports, and only warns about
// the undeclared gpu_cluster that preflight also reports.
func TestRecipeVarTypesMatchTerraform(t *testing.T) {
	t.Parallel()
	bin := tftest.Require(t)
	src := filepath.Join("testdata", "recipe-1.20.1", "soperator", "installations", "example")
	dir := t.TempDir()
	for _, name := range []string{"variables.tf", "seed.tfvars", "terraform.tfvars"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "terraform.tfvars" {
			name = "example.tfvars" // not loaded automatically
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := provision.New(provision.Options{Dir: dir, Terraform: bin, Env: tftest.OfflineEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Init(ctx, nil); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.tfvars")
	prog := provision.NewProgress(io.Discard, provision.ProgressOptions{})
	_, planErr := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "p"), VarFiles: []string{seed}}, prog)
	if planErr == nil {
		t.Fatal("terraform planned the seed's tfvars")
	}
	var refused []string
	warnedUndeclared := false
	for _, d := range prog.Diagnostics() {
		if d.Severity == "warning" && d.Summary == "Value for undeclared variable" && strings.Contains(d.Detail, `"gpu_cluster"`) {
			warnedUndeclared = true
		}
		if d.Severity == "error" && d.Summary == "Invalid value for input variable" {
			_, rest, _ := strings.Cut(d.Detail, "var.")
			name, _, _ := strings.Cut(rest, " ")
			refused = append(refused, name)
		}
	}
	c, err := preflight.LoadConfig(dir, []string{seed})
	if err != nil {
		t.Fatal(err)
	}
	var reported []string
	for _, f := range preflight.VarTypes(c) {
		if f.Locations[0].What != "gpu_cluster" {
			reported = append(reported, f.Locations[0].What)
		}
	}
	if !warnedUndeclared {
		t.Errorf("terraform did not warn about the undeclared gpu_cluster: %+v", prog.Diagnostics())
	}
	slices.Sort(refused)
	slices.Sort(reported)
	if !slices.Equal(refused, reported) || len(refused) != 2 {
		t.Fatalf("terraform refused %q, preflight reported %q\n%v", refused, reported, planErr)
	}
	// The recipe's own example plans, and preflight agrees.
	example := filepath.Join(dir, "example.tfvars")
	if _, err := r.Plan(ctx, provision.PlanRequest{Out: filepath.Join(dir, "p"), VarFiles: []string{example}}, nil); err != nil {
		t.Fatalf("plan of the example tfvars: %v", err)
	}
	c, err = preflight.LoadConfig(dir, []string{example})
	if err != nil {
		t.Fatal(err)
	}
	if fs := preflight.VarTypes(c); len(fs) != 0 {
		t.Fatalf("preflight on the example: %+v", fs)
	}
}

// dropRequiredVersion removes the required_version line from a copied .tf
// file, failing the test if there is none (the copy is not what it expects).
func dropRequiredVersion(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "required_version") {
			kept = append(kept, line)
		}
	}
	if len(kept) == strings.Count(string(b), "\n")+1 {
		t.Fatalf("%s has no required_version line", path)
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}
