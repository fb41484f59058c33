package preflight

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
	tfjson "github.com/hashicorp/terraform-json"
	"github.com/zclconf/go-cty/cty"
)

const testdata = "../testdata"

func mustConfig(t *testing.T, dir string, varFiles ...string) *Config {
	t.Helper()
	c, err := LoadConfig(dir, varFiles)
	if err != nil {
		t.Fatalf("LoadConfig(%s): %v", dir, err)
	}
	return c
}

func testRules(t *testing.T) *Rules {
	t.Helper()
	r, err := LoadRules(filepath.Join(testdata, "roundtrip", "shrink-rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDefaultRulesParse(t *testing.T) {
	r := DefaultRules()
	if _, ok := r.filesystem("nebius_compute_v1_filesystem"); !ok {
		t.Error("default rules do not know nebius_compute_v1_filesystem")
	}
	for _, tool := range []string{"terraform", "nebius", "yq", "kubectl"} {
		if r.Tool(tool).SeedProblem == 0 && tool != "kubectl" {
			t.Errorf("tool %s has no seed problem", tool)
		}
	}
	// The 1.20.1 recipe's README lists jq and coreutils; its .envrc calls
	// jq nine times and names the state bucket with md5sum.
	for tool, says := range map[string]string{"jq": ".envrc", "md5sum": "coreutils", "yq": "local-exec"} {
		if rule := r.Tool(tool); !strings.Contains(rule.Why, says) || strings.HasPrefix(rule.Install, "install "+tool) {
			t.Errorf("tool %s: rule %+v does not say why (%q) and how to install", tool, rule, says)
		}
	}
}

func TestParseRulesRejects(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", `{"tols": []}`, "unknown field"},
		{"bad regexp", `{"imports": {"already_exists": ["("]}}`, "already_exists pattern"},
		{"bad unit", `{"filesystems": {"resources": [{"type": "x", "size_attributes": [{"path": "s", "unit": "GB2"}]}]}}`, "unknown unit"},
		{"bad version", `{"version_features": {"blocks": [{"type": "removed", "min_version": "one"}]}}`, "min_version"},
		{"bad path", `{"filesystems": {"tfvars_sizes": [{"path": "a[x].b", "unit": "GiB"}]}}`, "index"},
		{"bad template", `{"imports": {"resources": [{"type": "t", "lookup_command": "{{"}]}}`, "lookup_command"},
		{"tool with slash", `{"tools": [{"name": "/usr/bin/x"}]}`, "bare command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules([]byte(tt.doc))
			if !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRules: got %v, want ErrInvalidRules mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Bytes
		err  bool
	}{
		{"5TiB", 5497558138880, false},
		{"5 TiB", 5497558138880, false},
		{"5tib", 5497558138880, false},
		{"6784GiB", 7284264534016, false},
		{"7.28TB", 7280000000000, false},
		{"1024", 1024, false},
		{"0.5KiB", 512, false},
		{"", 0, true},
		{"TiB", 0, true},
		{"5 Ti", 0, true},
		{"-1GiB", 0, true},
		{"1.2.3GiB", 0, true},
		{"99999999PiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d, err=%v", tt.in, got, err, tt.want, tt.err)
			}
			if err != nil && !errors.Is(err, ErrBadSize) {
				t.Fatalf("error %v is not ErrBadSize", err)
			}
		})
	}
}

func TestBytesString(t *testing.T) {
	tests := []struct {
		b    Bytes
		want string
	}{
		{7284264534016, "6.625 TiB (7284264534016 bytes)"},
		{5497558138880, "5 TiB (5497558138880 bytes)"},
		{128 << 30, "128 GiB (137438953472 bytes)"},
		{100, "100 B (100 bytes)"},
	}
	for _, tt := range tests {
		if got := tt.b.String(); got != tt.want {
			t.Errorf("%d: got %q, want %q", int64(tt.b), got, tt.want)
		}
	}
}

func TestTools(t *testing.T) {
	onPath := map[string]bool{"terraform": true, "kubectl": true}
	look := func(name string) (string, error) {
		if onPath[name] {
			return "/usr/bin/" + name, nil
		}
		return "", errors.New("not found")
	}
	tests := []struct {
		name  string
		tools []string
		want  []string // summaries
		seed  []int
	}{
		{"all present", []string{"terraform", "kubectl"}, nil, nil},
		{"seed problems 2 and 3 at once", []string{"terraform", "nebius", "yq", "kubectl"},
			[]string{"nebius: command not found", "yq: command not found"}, []int{2, 3}},
		{"duplicates and empties", []string{"yq", "", "yq"}, []string{"yq: command not found"}, []int{3}},
		{"unknown tool gets a generic hint", []string{"aws"}, []string{"aws: command not found"}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := Tools(look, tt.tools, DefaultRules())
			var got []string
			var seed []int
			for _, f := range fs {
				got = append(got, f.Summary)
				seed = append(seed, f.SeedProblem)
				if f.Severity != Error || f.Fix == "" {
					t.Errorf("finding %+v: want an error with a fix", f)
				}
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(seed, tt.seed) {
				t.Fatalf("got %q %v, want %q %v", got, seed, tt.want, tt.seed)
			}
		})
	}
}

func TestTerraformVersionProviderFunctions(t *testing.T) {
	c := mustConfig(t, filepath.Join(testdata, "provider-functions"))
	tests := []struct {
		name      string
		installed string
		severity  Severity
		count     int
	}{
		{"1.5.7 is too old (seed problem 4)", "1.5.7", Error, 1},
		{"unknown version says what to install", "", Warning, 1},
		{"1.8.5 is fine", "1.8.5", "", 0},
		{"a 1.8 prerelease counts as 1.8", "1.8.0-rc1", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v *version.Version
			if tt.installed != "" {
				v = version.Must(version.NewVersion(tt.installed))
			}
			fs := TerraformVersion(c, v, DefaultRules())
			if len(fs) != tt.count {
				t.Fatalf("got %d findings, want %d: %+v", len(fs), tt.count, fs)
			}
			if tt.count == 0 {
				return
			}
			f := fs[0]
			if f.Severity != tt.severity || f.SeedProblem != 4 {
				t.Errorf("severity %s seed %d, want %s 4", f.Severity, f.SeedProblem, tt.severity)
			}
			want := Location{File: filepath.Join("modules", "filestore", "main.tf"), Line: 8, What: "provider::units::from_gib"}
			if !slices.Equal(f.Locations, []Location{want}) {
				t.Errorf("locations %v, want only %v (comments and strings are not calls)", f.Locations, want)
			}
			if !strings.Contains(f.Summary, "modules/filestore/main.tf:8") || !strings.Contains(f.Summary, ">= 1.8.0") {
				t.Errorf("summary %q does not say which file:line needs which version", f.Summary)
			}
		})
	}
}

// The version check must point where Terraform 1.5.7 itself fails: the
// location recorded from the real binary.
func TestTerraformVersionMatchesRealFailure(t *testing.T) {
	recorded, err := os.ReadFile(filepath.Join(testdata, "diagnostics", "missing-newline.txt"))
	if err != nil {
		t.Fatal(err)
	}
	diags := ParseDiagnostics(string(recorded))
	if len(diags) != 1 {
		t.Fatalf("parsed %d diagnostics from the recording, want 1: %+v", len(diags), diags)
	}
	c := mustConfig(t, filepath.Join(testdata, "provider-functions"))
	fs := TerraformVersion(c, version.Must(version.NewVersion("1.5.7")), DefaultRules())
	if len(fs) == 0 {
		t.Fatal("no finding")
	}
	loc := fs[0].Locations[0]
	if loc.File != diags[0].File || loc.Line != diags[0].Line {
		t.Fatalf("preflight points at %s:%d, Terraform 1.5.7 failed at %s:%d", loc.File, loc.Line, diags[0].File, diags[0].Line)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTerraformVersionFeatures(t *testing.T) {
	v157 := version.Must(version.NewVersion("1.5.7"))
	tests := []struct {
		name  string
		files map[string]string
		want  []string // "file:line what"
	}{
		{"required_version too new", map[string]string{"versions.tf": "terraform {\n  required_version = \">= 1.8.0\"\n}\n"},
			[]string{"versions.tf:2 required_version"}},
		{"required_version satisfied", map[string]string{"versions.tf": "terraform {\n  required_version = \">= 1.5\"\n}\n"}, nil},
		{"removed block needs 1.7", map[string]string{"main.tf": "resource \"terraform_data\" \"a\" {}\n\nremoved {\n  from = terraform_data.b\n}\n"},
			[]string{"main.tf:3 removed block"}},
		{"import block is fine on 1.5.7", map[string]string{"main.tf": "import {\n  to = terraform_data.a\n  id = \"x\"\n}\n"}, nil},
		{"templatestring needs 1.9", map[string]string{"main.tf": "locals {\n  a = templatestring(\"x\", {})\n}\n"},
			[]string{"main.tf:2 templatestring"}},
		{"a method-like call is not a function", map[string]string{"main.tf": "locals {\n  a = x.templatestring\n}\n"}, nil},
		{"file that does not parse is still scanned",
			map[string]string{"main.tf": "locals {\n  a = = 1\n  b = provider::units::from_gib(2)\n}\n\nremoved {\n  from = x.y\n}\n"},
			[]string{"main.tf:3 provider::units::from_gib", "main.tf:6 removed block"}},
		{"JSON files are not scanned", map[string]string{"main.tf.json": `{"locals": {"a": "${provider::units::from_gib(2)}"}}`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, writeFiles(t, tt.files))
			var got []string
			for _, f := range TerraformVersion(c, v157, DefaultRules()) {
				if f.Severity != Error {
					t.Errorf("finding %q is %s, want error", f.Summary, f.Severity)
				}
				for _, l := range f.Locations {
					got = append(got, l.String())
				}
			}
			var want []string
			for _, w := range tt.want {
				file, rest, _ := strings.Cut(w, " ")
				want = append(want, file+" ("+rest+")")
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// The token scanner is the fallback for files that do not parse; on files
// that do, it must find what the syntax tree finds.
func TestTokenScannerAgreesWithParser(t *testing.T) {
	for _, dir := range []string{"provider-functions", "roundtrip", "seed-quota", "missing-module"} {
		c := mustConfig(t, filepath.Join(testdata, dir))
		for _, m := range c.Modules {
			for _, f := range m.Files {
				if f.Body == nil {
					continue
				}
				sc, sb := syntaxUses(f.Body)
				tc, tb := tokenUses(f.Src, f.Path)
				if !slices.Equal(sc, tc) || !slices.Equal(sb, tb) {
					t.Errorf("%s: parser found calls %v blocks %v; scanner %v %v", f.Path, sc, sb, tc, tb)
				}
			}
		}
	}
}

func TestQuotaSeed(t *testing.T) {
	dir := filepath.Join(testdata, "seed-quota")
	fiveTiB := Bytes(5 << 40)
	tests := []struct {
		name     string
		varFiles []string
		quota    Bytes
		severity Severity
		total    Bytes
		contains []string
	}{
		{"seed problem 5: 6784 GiB against 5 TiB", nil, fiveTiB, Error, 6784 << 30,
			[]string{"limit 5497558138880, requested 7284264534016", "6.625 TiB", "1.625 TiB over",
				"filestore_jail_submounts[1].spec.size_gibibytes (inference)", "filestore_accounting.spec.size_gibibytes"}},
		{"the seed's fix fits", []string{filepath.Join(dir, "fits.tfvars")}, fiveTiB, Info, (128 + 3*1024 + 512) << 30,
			[]string{"within"}},
		{"no quota given: the total is reported", nil, 0, Info, 6784 << 30, []string{"--quota"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, dir, tt.varFiles...)
			fs := Quota(c, tt.quota, DefaultRules())
			if len(fs) != 1 {
				t.Fatalf("got %d findings: %+v", len(fs), fs)
			}
			f := fs[0]
			if f.Severity != tt.severity || f.SeedProblem != 5 {
				t.Errorf("severity %s, want %s", f.Severity, tt.severity)
			}
			items, _ := TfvarsSizes(c.Vars, DefaultRules())
			var total Bytes
			for _, it := range items {
				total += it.Bytes
			}
			if total != tt.total {
				t.Errorf("total %d, want %d", total, tt.total)
			}
			text := f.Summary + "\n" + f.Detail + "\n" + f.Fix
			for _, s := range tt.contains {
				if !strings.Contains(text, s) {
					t.Errorf("finding does not contain %q:\n%s", s, text)
				}
			}
		})
	}
}

func TestTfvarsSizes(t *testing.T) {
	tests := []struct {
		name   string
		tfvars string
		want   []SizeItem
		notes  int
	}{
		{"existing filesystems are not counted",
			`filestore_jail = { existing = { id = "computefilesystem-x" } }
filestore_jail_submounts = [{ name = "data", existing = { id = "y" } }, { name = "scratch", spec = { size_gibibytes = 10 } }]`,
			[]SizeItem{{Key: "filestore_jail_submounts[1].spec.size_gibibytes", Label: "scratch", Bytes: 10 << 30}}, 0},
		{"accounting off",
			`accounting_enabled = false
filestore_accounting = { spec = { size_gibibytes = 512 } }`, nil, 0},
		{"accounting not set is counted, with a note",
			`filestore_accounting = { spec = { size_gibibytes = 512 } }`,
			[]SizeItem{{Key: "filestore_accounting.spec.size_gibibytes", Bytes: 512 << 30}}, 1},
		{"a string size is not counted",
			`filestore_jail = { spec = { size_gibibytes = "big" } }`, nil, 1},
		{"a map works like an object",
			`filestore_jail = { spec = { size_gibibytes = 1 } }`,
			[]SizeItem{{Key: "filestore_jail.spec.size_gibibytes", Bytes: 1 << 30}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars, _, err := parseTfvarsLines([]byte(tt.tfvars), "t.tfvars")
			if err != nil {
				t.Fatal(err)
			}
			got, notes := TfvarsSizes(vars, DefaultRules())
			if !slices.Equal(got, tt.want) || len(notes) != tt.notes {
				t.Fatalf("got %+v notes %q; want %+v and %d notes", got, notes, tt.want, tt.notes)
			}
		})
	}
}

func TestTfvarsJSONAndPrecedence(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.tf":               "variable \"filestore_jail\" {\n  default = { spec = { size_gibibytes = 1 } }\n}\n",
		"terraform.tfvars":      "filestore_jail = { spec = { size_gibibytes = 2 } }\n",
		"b.auto.tfvars.json":    `{"filestore_jail": {"spec": {"size_gibibytes": 4}}}`,
		"a.auto.tfvars":         "filestore_jail = { spec = { size_gibibytes = 3 } }\n",
		"extra/override.tfvars": "filestore_jail = { spec = { size_gibibytes = 5 } }\n",
	})
	tests := []struct {
		name  string
		extra []string
		want  Bytes
	}{
		{"auto files in lexical order win over terraform.tfvars", nil, 4 << 30},
		{"-var-file wins over everything", []string{filepath.Join(dir, "extra", "override.tfvars")}, 5 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, dir, tt.extra...)
			items, _ := TfvarsSizes(c.Vars, DefaultRules())
			if len(items) != 1 || items[0].Bytes != tt.want {
				t.Fatalf("got %+v, want one item of %d", items, tt.want)
			}
		})
	}
}

func TestResolvePaths(t *testing.T) {
	vars := map[string]cty.Value{
		"l": cty.TupleVal([]cty.Value{
			cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(1)}),
			cty.ObjectVal(map[string]cty.Value{"b": cty.NumberIntVal(2)}),
			cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(3)}),
		}),
		"m": cty.MapVal(map[string]cty.Value{"k": cty.NumberIntVal(4)}),
		"n": cty.NullVal(cty.DynamicPseudoType),
	}
	tests := []struct {
		path string
		want []string
	}{
		{"l[*].a", []string{"l[0].a", "l[2].a"}},
		{"l[2].a", []string{"l[2].a"}},
		{"l[5].a", nil},
		{"m.k", []string{"m.k"}},
		{"m.k.z", nil},
		{"n.x", nil},
		{"absent", nil},
		{"l.a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			steps, err := parseVarPath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range resolve(vars, steps) {
				got = append(got, m.path)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func fsChange(addr string, actions tfjson.Actions, before, after any) *tfjson.ResourceChange {
	return &tfjson.ResourceChange{
		Address: addr, Mode: tfjson.ManagedResourceMode, Type: "nebius_compute_v1_filesystem",
		Change: &tfjson.Change{Actions: actions, Before: before, After: after},
	}
}

func TestShrink(t *testing.T) {
	const addr = `module.filestore.nebius_compute_v1_filesystem.jail_submount["inference"]`
	gib := func(n int64) json.Number { return json.Number(strconv.FormatInt(n<<30, 10)) }
	tests := []struct {
		name     string
		rc       *tfjson.ResourceChange
		severity Severity
		commands []string
	}{
		{"seed problem 6: 2048 to 1024 GiB", fsChange(addr, tfjson.Actions{tfjson.ActionUpdate},
			map[string]any{"id": "computefilesystem-e00inference", "size_bytes": gib(2048)},
			map[string]any{"id": "computefilesystem-e00inference", "size_bytes": gib(1024)}),
			Error, []string{
				`terraform state rm 'module.filestore.nebius_compute_v1_filesystem.jail_submount["inference"]'`,
				"nebius compute filesystem delete --id computefilesystem-e00inference",
				"sopilot cluster plan --dir soperator/installations/demo",
				"sopilot cluster apply --dir soperator/installations/demo",
			}},
		{"size_gibibytes as float64", fsChange(addr, tfjson.Actions{tfjson.ActionUpdate},
			map[string]any{"size_gibibytes": float64(2048)}, map[string]any{"size_gibibytes": float64(1024)}), Error, nil},
		{"growing is fine", fsChange(addr, tfjson.Actions{tfjson.ActionUpdate},
			map[string]any{"size_bytes": gib(1024)}, map[string]any{"size_bytes": gib(2048)}), "", nil},
		{"unknown size after is not judged", fsChange(addr, tfjson.Actions{tfjson.ActionUpdate},
			map[string]any{"size_bytes": gib(1024)}, map[string]any{}), "", nil},
		{"replace loses data", fsChange(addr, tfjson.Actions{tfjson.ActionDelete, tfjson.ActionCreate},
			map[string]any{"size_bytes": gib(2048)}, map[string]any{"size_bytes": gib(1024)}), Warning, nil},
		{"other resource types are ignored", &tfjson.ResourceChange{Address: "x.y", Mode: tfjson.ManagedResourceMode, Type: "nebius_mk8s_v1_node_group",
			Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionUpdate}, Before: map[string]any{"size_bytes": gib(2)}, After: map[string]any{"size_bytes": gib(1)}}}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{tt.rc}}
			fs := Shrink(plan, DefaultRules(), "soperator/installations/demo")
			if tt.severity == "" {
				if len(fs) != 0 {
					t.Fatalf("want no findings, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Severity != tt.severity || fs[0].SeedProblem != 6 {
				t.Fatalf("got %+v, want one %s finding", fs, tt.severity)
			}
			if tt.commands != nil && !slices.Equal(fs[0].Commands, tt.commands) {
				t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(fs[0].Commands, "\n"), strings.Join(tt.commands, "\n"))
			}
		})
	}
}

func TestPlanQuota(t *testing.T) {
	plan := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{
		fsChange("a", tfjson.Actions{tfjson.ActionCreate}, nil, map[string]any{"size_gibibytes": float64(4096)}),
		fsChange("b", tfjson.Actions{tfjson.ActionNoop}, map[string]any{"size_gibibytes": float64(2048)}, map[string]any{"size_gibibytes": float64(2048)}),
		fsChange("c", tfjson.Actions{tfjson.ActionDelete}, map[string]any{"size_gibibytes": float64(2048)}, nil),
		fsChange("d", tfjson.Actions{tfjson.ActionCreate}, nil, map[string]any{}),
	}}
	fs := PlanQuota(plan, 5<<40, DefaultRules())
	if len(fs) != 1 || fs[0].Severity != Error {
		t.Fatalf("got %+v, want one error", fs)
	}
	if !strings.Contains(fs[0].Summary, "6 TiB") || !strings.Contains(fs[0].Detail, "d: size unknown") {
		t.Fatalf("finding %q / %q: want the 6 TiB total and a note on d", fs[0].Summary, fs[0].Detail)
	}
}

func TestMissingModules(t *testing.T) {
	dir := filepath.Join(testdata, "missing-module")
	tests := []struct {
		name     string
		varFiles []string
		states   map[string]Enablement
	}{
		{"nfs disabled in tfvars, gpu operator enabled by default", nil,
			map[string]Enablement{"nfs-server": Disabled, "nvidia_operator_gpu": Enabled}},
		{"both disabled", []string{filepath.Join(dir, "no-gpu.tfvars")},
			map[string]Enablement{"nfs-server": Disabled, "nvidia_operator_gpu": Disabled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, dir, tt.varFiles...)
			mms := MissingModules(c)
			got := map[string]Enablement{}
			for _, mm := range mms {
				got[mm.Call.Name] = mm.State
				if mm.Call.Name == "nfs-server" {
					if !slices.Equal(mm.Arguments, []string{"instance_name", "nfs_size"}) ||
						!slices.Equal(mm.Outputs, []string{"nfs_export_path", "nfs_server_internal_ip"}) ||
						mm.Because != "count = var.nfs.enabled ? 1 : 0" {
						t.Errorf("nfs-server: %+v", mm)
					}
				}
			}
			if len(got) != len(tt.states) {
				t.Fatalf("got %v, want %v", got, tt.states)
			}
			for k, v := range tt.states {
				if got[k] != v {
					t.Errorf("%s: %s, want %s", k, got[k], v)
				}
			}
			for _, f := range Modules(c) {
				if f.Severity != Error || f.SeedProblem != 7 || len(f.Locations) != 1 {
					t.Errorf("finding %+v", f)
				}
			}
		})
	}
}

func TestEnablement(t *testing.T) {
	tests := []struct {
		name, block, tfvars string
		want                Enablement
	}{
		{"no count", `module "m" { source = "./gone" }`, ``, Enabled},
		{"count 0", `module "m" {
  source = "./gone"
  count  = 0
}`, ``, Disabled},
		{"for_each empty map", `module "m" {
  source   = "./gone"
  for_each = var.m
}`, `m = {}`, Disabled},
		{"for_each non-empty set", `module "m" {
  source   = "./gone"
  for_each = toset(var.l)
}`, `l = ["a"]`, Unknown}, // functions are not evaluated
		{"count from a local", `module "m" {
  source = "./gone"
  count  = local.n
}`, ``, Unknown},
		{"count from an unset variable", `module "m" {
  source = "./gone"
  count  = var.on ? 1 : 0
}`, ``, Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, writeFiles(t, map[string]string{"main.tf": tt.block + "\n", "terraform.tfvars": tt.tfvars + "\n"}))
			mms := MissingModules(c)
			if len(mms) != 1 || mms[0].State != tt.want {
				t.Fatalf("got %+v, want one module %s", mms, tt.want)
			}
			if fs := Modules(c); len(fs) != 1 || fs[0].Fix == "" {
				t.Fatalf("findings %+v", fs)
			}
		})
	}
}

func TestNestedLocalModulesAreFollowed(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"installations/demo/main.tf":    "module \"k8s\" {\n  source = \"../../modules/k8s\"\n}\n",
		"modules/k8s/main.tf":           "module \"gpu\" {\n  source = \"../gpu-operator\"\n}\n",
		"modules/k8s/functions.tf":      "locals {\n  b = provider::units::from_gib(1)\n}\n",
		"modules/unrelated/main.tf":     "locals {\n  b = provider::units::from_gib(1)\n}\n",
		"installations/demo/.terraform": "",
	})
	c := mustConfig(t, filepath.Join(dir, "installations", "demo"))
	fs := Modules(c)
	if len(fs) != 1 || !strings.Contains(fs[0].Summary, "modules/gpu-operator at the root of the checkout that holds installations/demo") {
		t.Fatalf("got %+v, want the missing gpu-operator reached through modules/k8s", fs)
	}
	uses := ScanFeatures(c, DefaultRules())
	if len(uses) != 1 || uses[0].Location.File != filepath.Join("..", "..", "modules", "k8s", "functions.tf") {
		t.Fatalf("uses %+v, want only modules/k8s/functions.tf", uses)
	}
}

func TestWriteStub(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(testdata, "missing-module"))); err != nil {
		t.Fatal(err)
	}
	c := mustConfig(t, dir)
	for _, mm := range MissingModules(c) {
		path, err := WriteStub(mm)
		switch mm.Call.Name {
		case "nvidia_operator_gpu":
			if !errors.Is(err, ErrModuleEnabled) {
				t.Errorf("stub for an enabled module: got %v, want ErrModuleEnabled", err)
			}
		case "nfs-server":
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			for _, want := range []string{`variable "instance_name"`, `variable "nfs_size"`, `output "nfs_export_path"`, `output "nfs_server_internal_ip"`} {
				if !strings.Contains(string(b), want) {
					t.Errorf("stub lacks %s:\n%s", want, b)
				}
			}
		}
	}
	c = mustConfig(t, dir)
	if fs := Modules(c); len(fs) != 1 || !strings.Contains(fs[0].Summary, "nvidia_operator_gpu") {
		t.Fatalf("after stubbing nfs-server: %+v", fs)
	}
	// Enabling a stubbed module again is an error: it would create nothing.
	if err := os.WriteFile(filepath.Join(dir, "nfs-on.tfvars"), []byte("nfs = { enabled = true }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = mustConfig(t, dir, filepath.Join(dir, "nfs-on.tfvars"))
	fs := Modules(c)
	if len(fs) != 2 || !strings.Contains(fs[1].Summary, `module "nfs-server" (main.tf:11) is a stub`) {
		t.Fatalf("stub enabled again: %+v", fs)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	if _, err := LoadConfig(t.TempDir(), nil); !errors.Is(err, ErrNoConfig) {
		t.Errorf("empty dir: got %v, want ErrNoConfig", err)
	}
	dir := writeFiles(t, map[string]string{"main.tf": "locals {}\n"})
	if _, err := LoadConfig(dir, []string{filepath.Join(dir, "nope.tfvars")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing var file: got %v, want ErrNotExist", err)
	}
	bad := writeFiles(t, map[string]string{"main.tf": "locals {}\n", "terraform.tfvars": "a = = 1\n"})
	if _, err := LoadConfig(bad, nil); err == nil {
		t.Error("a tfvars that does not parse: no error")
	}
}

func TestAllowAndBlocking(t *testing.T) {
	fs := []Finding{{Check: CheckShrink, Severity: Error}, {Check: CheckQuota, Severity: Info}}
	if !Blocking(fs) {
		t.Fatal("an error finding does not block")
	}
	allowed := Allow(fs, []string{CheckShrink})
	if Blocking(allowed) || fs[0].Severity != Error {
		t.Fatalf("Allow: %+v (and must not modify its input: %+v)", allowed, fs)
	}
}

// FuzzScanners: configuration files are read from disk as they are; the
// token scanner (the fallback for files that do not parse) must not panic
// on anything and must report sane positions. (Agreement with the parser
// on real files is TestTokenScannerAgreesWithParser.)
func FuzzScanners(f *testing.F) {
	for _, p := range []string{"provider-functions/modules/filestore/main.tf", "missing-module/main.tf", "roundtrip/main.tf"} {
		b, err := os.ReadFile(filepath.Join(testdata, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("locals {\n  a = = provider::x::y(\n")
	f.Add("removed {\n}\n# c\nimport {\n}\n")
	f.Fuzz(func(t *testing.T, src string) {
		calls, _ := tokenUses([]byte(src), "fuzz.tf")
		for _, c := range calls {
			if c.line < 1 || c.name == "" {
				t.Fatalf("call %+v", c)
			}
		}
	})
}
