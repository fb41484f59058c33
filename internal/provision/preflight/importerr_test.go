package preflight

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func readRecording(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, "diagnostics", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseDiagnosticsRecorded(t *testing.T) {
	tests := []struct {
		file string
		want []Diagnostic // Detail is checked for a prefix only
	}{
		{"already-exists.txt", []Diagnostic{
			{Severity: "error", Summary: "local-exec provisioner error", Address: "module.k8s.terraform_data.accounting[0]", File: "modules/k8s/main.tf", Line: 7, Detail: "Error running command"},
			{Severity: "error", Summary: "local-exec provisioner error", Address: "module.k8s.terraform_data.controller", File: "modules/k8s/main.tf", Line: 13, Detail: "Error running command"},
		}},
		{"missing-newline.txt", []Diagnostic{
			{Severity: "error", Summary: "Missing attribute separator", File: "modules/filestore/main.tf", Line: 8, Detail: "Expected a newline or comma"},
		}},
		{"unreadable-module.txt", []Diagnostic{
			{Severity: "error", Summary: "Unreadable module directory", Detail: "Unable to evaluate directory symlink"},
			{Severity: "error", Summary: "Unreadable module directory", Detail: `The directory  could not be read for module "nfs-server" at main.tf:11.`},
			{Severity: "error", Summary: "Unreadable module directory", Detail: "Unable to evaluate directory symlink"},
			{Severity: "error", Summary: "Unreadable module directory", Detail: `The directory  could not be read for module "nvidia_operator_gpu" at`},
		}},
		{"already-managed.txt", []Diagnostic{
			{Severity: "error", Summary: "Resource already managed by Terraform", Detail: "Terraform is already managing a remote object for terraform_data.a."},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := ParseDiagnostics(readRecording(t, tt.file))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				g := got[i]
				if !strings.HasPrefix(g.Detail, w.Detail) {
					t.Errorf("[%d] detail %q, want prefix %q", i, g.Detail, w.Detail)
				}
				g.Detail, w.Detail = "", ""
				if g != w {
					t.Errorf("[%d] got %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestImportCommandsRecorded(t *testing.T) {
	// The recording's resources are terraform_data standing in for node
	// groups; the test rules give terraform_data the node group ID pattern.
	diags := ParseDiagnostics(readRecording(t, "already-exists.txt"))
	got := ImportCommands(diags, testRules(t))
	want := []ImportCommand{
		{Address: "module.k8s.terraform_data.accounting[0]", Type: "terraform_data", ID: "mk8snodegroup-e00accountingxyz",
			Command: "terraform import 'module.k8s.terraform_data.accounting[0]' mk8snodegroup-e00accountingxyz"},
		{Address: "module.k8s.terraform_data.controller", Type: "terraform_data",
			Command: "terraform import module.k8s.terraform_data.controller '<ID>'"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	if fs := ImportFinding(got); len(fs) != 1 || fs[0].SeedProblem != 8 || len(fs[0].Commands) != 2 {
		t.Fatalf("finding %+v", fs)
	}
}

func TestImportCommandsNebius(t *testing.T) {
	// Terraform's diagnostic layout around errors in the shape the seed
	// reports for node groups (the Nebius provider's exact wording is not
	// recorded here: the rules match "already exists" in any case).
	text := `
╷
│ Error: Error creating resource
│
│   with module.k8s.nebius_mk8s_v1_node_group.accounting[0],
│   on ../../modules/k8s/k8s_ng_accounting.tf line 1, in resource "nebius_mk8s_v1_node_group" "accounting":
│    1: resource "nebius_mk8s_v1_node_group" "accounting" {
│
│ rpc error: code = AlreadyExists desc = node group already exists:
│ mk8snodegroup-e00abc123
╵
╷
│ Error: Error creating resource
│
│   with module.k8s.nebius_mk8s_v1_node_group.controller,
│   on ../../modules/k8s/k8s_ng_controller.tf line 1, in resource "nebius_mk8s_v1_node_group" "controller":
│    1: resource "nebius_mk8s_v1_node_group" "controller" {
│
│ resource with this name already
│ exists
╵
╷
│ Error: Error creating resource
│
│   with module.k8s.nebius_mk8s_v1_node_group.controller,
│
│ AlreadyExists (repeated for the same address)
╵
╷
│ Warning: Something already exists
│
│   with module.k8s.nebius_mk8s_v1_cluster.this,
╵
╷
│ Error: Quota limit exceeded
│
│   with module.filestore.nebius_compute_v1_filesystem.jail,
╵
`
	got := ImportCommands(ParseDiagnostics(text), DefaultRules())
	if len(got) != 2 {
		t.Fatalf("got %+v, want two commands", got)
	}
	if got[0].Command != "terraform import 'module.k8s.nebius_mk8s_v1_node_group.accounting[0]' mk8snodegroup-e00abc123" {
		t.Errorf("accounting: %q", got[0].Command)
	}
	if got[1].ID != "" || !strings.Contains(got[1].Command, "'<ID>'") ||
		!strings.Contains(got[1].Lookup, "nebius mk8s node-group list") {
		t.Errorf("controller (no ID in the text, wrapped 'already exists'): %+v", got[1])
	}
}

// The 1.20.1 recipe creates more than node groups: a GPU cluster keyed by
// the worker node set's index, the GPU and network operators as k8s
// releases, and (backups on) a service account and a bucket; its .envrc
// makes access keys. Each gets an import command, with the ID from the
// text where the rules know its pattern, sorted by address.
func TestImportCommandsRecipeTypes(t *testing.T) {
	block := func(addr, detail string) string {
		return "╷\n│ Error: Error creating resource\n│\n│   with " + addr + ",\n│\n│ " + detail + "\n╵\n"
	}
	text := block(`module.k8s.nebius_compute_v1_gpu_cluster.this["0"]`, "rpc error: code = AlreadyExists desc = computegpucluster-e00gpu0 already exists") +
		block(`module.nvidia_operator_gpu[0].nebius_applications_v1alpha1_k8s_release.this`, "release gpu-operator already exists") +
		block(`module.backups[0].nebius_iam_v1_service_account.backups_service_account`, "ALREADY_EXISTS: serviceaccount-e00backupsa") +
		block(`nebius_iam_v1_access_key.terraform`, "AlreadyExists accesskey-e00key1") +
		block(`module.backups_store[0].nebius_storage_v1_bucket.backups_bucket`, "bucket already exists: storagebucket-e00bkt")
	got := ImportCommands(ParseDiagnostics(text), DefaultRules())
	type row struct{ typ, id, command string }
	var rows []row
	for _, c := range got {
		rows = append(rows, row{c.Type, c.ID, c.Command})
		if c.ID == "" && !strings.Contains(c.Lookup, "applications") {
			t.Errorf("%s: no ID and lookup %q", c.Address, c.Lookup)
		}
	}
	want := []row{
		{"nebius_iam_v1_service_account", "serviceaccount-e00backupsa", "terraform import 'module.backups[0].nebius_iam_v1_service_account.backups_service_account' serviceaccount-e00backupsa"},
		{"nebius_storage_v1_bucket", "storagebucket-e00bkt", "terraform import 'module.backups_store[0].nebius_storage_v1_bucket.backups_bucket' storagebucket-e00bkt"},
		{"nebius_compute_v1_gpu_cluster", "computegpucluster-e00gpu0", `terraform import 'module.k8s.nebius_compute_v1_gpu_cluster.this["0"]' computegpucluster-e00gpu0`},
		{"nebius_applications_v1alpha1_k8s_release", "", "terraform import 'module.nvidia_operator_gpu[0].nebius_applications_v1alpha1_k8s_release.this' '<ID>'"},
		{"nebius_iam_v1_access_key", "accesskey-e00key1", "terraform import nebius_iam_v1_access_key.terraform accesskey-e00key1"},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("got\n%q\nwant\n%q", rows, want)
	}
}

func TestResourceType(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"nebius_compute_v1_filesystem.jail", "nebius_compute_v1_filesystem"},
		{`module.filestore.nebius_compute_v1_filesystem.jail_submount["inference"]`, "nebius_compute_v1_filesystem"},
		{"module.k8s.nebius_mk8s_v1_node_group.accounting[0]", "nebius_mk8s_v1_node_group"},
		{`module.a["x.y"].module.b[1].t.n`, "t"},
		{"data.nebius_iam_v1_project.this", "nebius_iam_v1_project"},
		{"module.k8s", ""},
		{"", ""},
		{"single", ""},
		{`module.a["unterminated.t.n`, ""},
		{"bad-type!.n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := ResourceType(tt.addr); got != tt.want {
				t.Fatalf("ResourceType(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"terraform_data.a", "terraform_data.a"},
		{`x["a"]`, `'x["a"]'`},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzParseDiagnostics: the parser reads text pasted by users or captured
// from Terraform; it must never panic and must keep its invariants.
func FuzzParseDiagnostics(f *testing.F) {
	for _, name := range []string{"already-exists.txt", "missing-newline.txt", "unreadable-module.txt", "already-managed.txt"} {
		f.Add(readRecording(f, name))
	}
	f.Add("Error: x\n  with a.b,\n  on f line 99999999999999999999:\n")
	f.Add("│ Error: \n╵\n╷")
	rules := DefaultRules()
	f.Fuzz(func(t *testing.T, text string) {
		diags := ParseDiagnostics(text)
		for _, d := range diags {
			if d.Severity != "error" && d.Severity != "warning" {
				t.Fatalf("severity %q", d.Severity)
			}
			if strings.ContainsAny(d.Address, "\n") || strings.ContainsAny(d.Summary, "\n") {
				t.Fatalf("multi-line address or summary: %+v", d)
			}
			if d.Line < 0 {
				t.Fatalf("negative line: %+v", d)
			}
		}
		for _, c := range ImportCommands(diags, rules) {
			if !strings.HasPrefix(c.Command, "terraform import ") {
				t.Fatalf("command %q", c.Command)
			}
			if utf8.ValidString(text) && !utf8.ValidString(c.Command) {
				t.Fatalf("invalid UTF-8 from valid input: %q", c.Command)
			}
		}
	})
}

func FuzzResourceType(f *testing.F) {
	f.Add(`module.filestore.nebius_compute_v1_filesystem.jail_submount["inference"]`)
	f.Add(`module.a["x.y\"z"].t.n[0]`)
	f.Fuzz(func(t *testing.T, addr string) {
		typ := ResourceType(addr)
		if strings.ContainsAny(typ, ".[]\" ") {
			t.Fatalf("ResourceType(%q) = %q", addr, typ)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"5TiB", "7.28 TB", "1024", "0.5KiB", "1e9GiB", ".GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseSize(s)
		if err == nil && b < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, b)
		}
	})
}

func FuzzParseTfvars(f *testing.F) {
	b, err := os.ReadFile(filepath.Join(testdata, "seed-quota", "terraform.tfvars"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add(`filestore_jail_submounts = [{ spec = { size_gibibytes = 1e400 } }]`)
	rules := DefaultRules()
	f.Fuzz(func(t *testing.T, src string) {
		vars, _, err := parseTfvarsLines([]byte(src), "fuzz.tfvars")
		if err != nil {
			return
		}
		items, _ := TfvarsSizes(vars, rules)
		for _, it := range items {
			if it.Bytes < 0 {
				t.Fatalf("negative size %+v", it)
			}
		}
	})
}
