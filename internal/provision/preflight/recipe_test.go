package preflight

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// recipeDir is the 1.20.1 installation excerpt (testdata/README.md).
var recipeDir = filepath.Join(testdata, "recipe-1.20.1", "soperator", "installations", "example")

// The seed's tfvars do not fit the 1.20.1 variable types: each field that
// does not fit, by path, with what to write instead.
func TestVarTypesSeedTfvars(t *testing.T) {
	c := mustConfig(t, recipeDir, filepath.Join(recipeDir, "seed.tfvars"))
	type row struct{ kind, path, instead string }
	var got []row
	for _, p := range CheckVarTypes(c) {
		got = append(got, row{p.Kind, p.Path, p.Instead})
	}
	want := []row{
		{ProblemUndeclared, "gpu_cluster", `move it into slurm_nodeset_workers[*].gpu_cluster: write gpu_cluster = { infiniband_fabric = "fabric-6" } there`},
		{ProblemMissing, "nfs.public_ip", "public_ip = false (as in the variable's default)"},
		{ProblemMissing, "nfs.resource", `resource = { platform = "cpu-d3", preset = "32vcpu-128gb" } (as in the variable's default)`},
		{ProblemMissing, "nfs.size_gibibytes", "size_gibibytes = 93 (as in the variable's default)"},
		{ProblemMissing, "slurm_nodeset_workers[0].boot_disk", `boot_disk = { block_size_kibibytes = 4, size_gibibytes = 128, type = "NETWORK_SSD" } (as in the variable's default)`},
		{ProblemMissing, "slurm_nodeset_workers[0].max_unavailable_percent", "max_unavailable_percent = 50 (as in the variable's default)"},
		{ProblemMissing, "slurm_nodeset_workers[0].nodes_per_nodegroup", "nodes_per_nodegroup = 1 (as in the variable's default)"},
		{ProblemUnexpected, "slurm_nodeset_workers[0].name", "remove it: the type's attributes are boot_disk, gpu_cluster, max_unavailable_percent, nodes_per_nodegroup, resource, size"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	fs := VarTypes(c)
	var summaries []string
	for _, f := range fs {
		if f.Check != CheckVariables || f.Severity != Error || len(f.Locations) != 1 {
			t.Errorf("finding %+v", f)
		}
		summaries = append(summaries, filepath.Base(f.Locations[0].File)+":"+strconv.Itoa(f.Locations[0].Line)+" "+f.Locations[0].What)
	}
	if !slices.Equal(summaries, []string{"seed.tfvars:19 gpu_cluster", "seed.tfvars:42 nfs", "seed.tfvars:10 slurm_nodeset_workers"}) {
		t.Errorf("locations %q", summaries)
	}
	if !strings.Contains(fs[2].Summary, "slurm_nodeset_workers does not fit the type declared at variables.tf:267 (4 field(s))") {
		t.Errorf("summary %q", fs[2].Summary)
	}
}

// The recipe's own example fits.
func TestVarTypesRecipeExample(t *testing.T) {
	c := mustConfig(t, recipeDir)
	if ps := CheckVarTypes(c); len(ps) != 0 {
		t.Fatalf("the 1.20.1 example tfvars: %+v", ps)
	}
}

func TestVarTypesCases(t *testing.T) {
	decl := `variable "o" {
  type = object({ a = number, b = optional(string, "x"), l = list(object({ n = number })) })
}
variable "m" {
  type     = map(number)
  nullable = false
  default  = {}
}
variable "free" {}
`
	tests := []struct {
		name, tfvars string
		want         []string // kind path
	}{
		{"fits", `o = { a = 1, l = [{ n = 2 }] }`, nil},
		{"wrong primitive", `o = { a = "one", l = [] }`, []string{"type o.a"}},
		{"a number string converts", `o = { a = "1", l = [] }`, nil},
		{"list element", `o = { a = 1, l = [{ n = 1 }, { m = 1 }] }`, []string{"missing o.l[1].n", "unexpected o.l[1].m"}},
		{"object for a list", `o = { a = 1, l = { n = 1 } }`, []string{"type o.l"}},
		{"map values", `m = { x = 1, y = "z" }`, []string{`type m["y"]`}},
		{"null for a non-nullable", `m = null`, []string{"null m"}},
		{"untyped takes anything", `free = { any = [1, "2"] }`, nil},
		{"undeclared, nowhere else", `nope = 1`, []string{"undeclared nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, writeFiles(t, map[string]string{"variables.tf": decl, "terraform.tfvars": tt.tfvars + "\n"}))
			var got []string
			for _, p := range CheckVarTypes(c) {
				got = append(got, p.Kind+" "+p.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// The recipe's missing modules: at the repository root, two of them
// counted by an output of module k8s, every one passed the nebius provider.
func TestMissingModulesRecipe(t *testing.T) {
	c := mustConfig(t, recipeDir, filepath.Join(recipeDir, "seed.tfvars"))
	type row struct {
		name      string
		state     Enablement
		dependsOn string
		providers string
	}
	var got []row
	for _, mm := range MissingModules(c) {
		var ps []string
		for _, p := range mm.Providers {
			ps = append(ps, p.Name+"="+p.Source)
		}
		got = append(got, row{mm.Call.Name, mm.State, strings.Join(mm.DependsOn, ","), strings.Join(ps, ",")})
	}
	const nebius = "nebius=terraform-provider.storage.eu-north1.nebius.cloud/nebius/nebius"
	want := []row{
		{"nfs-server", Disabled, "", nebius},
		{"nvidia_operator_network", Unknown, "module.k8s.gpu_involved", nebius},
		{"nvidia_operator_gpu", Unknown, "module.k8s.gpu_involved", nebius},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	fs := Modules(c)
	if len(fs) != 3 {
		t.Fatalf("findings %+v", fs)
	}
	for i, dir := range []string{"modules/nfs-server", "modules/network-operator", "modules/gpu-operator"} {
		wantWhere := dir + ` at the root of the checkout that holds soperator/installations/example (source "../../../` + dir + `")`
		if !strings.Contains(fs[i].Summary, wantWhere) {
			t.Errorf("summary %q does not say %q", fs[i].Summary, wantWhere)
		}
	}
	if !strings.Contains(fs[1].Detail, "module.k8s.gpu_involved (count = module.k8s.gpu_involved ? 1 : 0)") ||
		!strings.Contains(fs[1].Detail, "A stub is not safe") {
		t.Errorf("gpu_involved finding: %s", fs[1].Detail)
	}
	if !strings.Contains(fs[0].Fix, "the providers nebius (terraform-provider.storage.eu-north1.nebius.cloud/nebius/nebius)") {
		t.Errorf("nfs-server fix: %s", fs[0].Fix)
	}
	// A stub is written only for the disabled one; it declares the provider.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(testdata, "recipe-1.20.1"))); err != nil {
		t.Fatal(err)
	}
	inst := filepath.Join(dir, "soperator", "installations", "example")
	c = mustConfig(t, inst, filepath.Join(inst, "seed.tfvars"))
	for _, mm := range MissingModules(c) {
		path, err := WriteStub(mm)
		if mm.State != Disabled {
			if !errors.Is(err, ErrModuleEnabled) {
				t.Errorf("%s: got %v, want ErrModuleEnabled", mm.Call.Name, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), "required_providers {\n    nebius = {\n      source = \"terraform-provider.storage.eu-north1.nebius.cloud/nebius/nebius\"\n    }") ||
			!strings.Contains(string(b), `output "nfs_export_path"`) {
			t.Errorf("stub:\n%s", b)
		}
	}
}

// Compute disks of the recipe's example tfvars, by disk type.
func TestDiskQuotaRecipe(t *testing.T) {
	c := mustConfig(t, recipeDir)
	items, notes := TfvarsDisks(c.Vars, DefaultRules())
	if len(notes) != 0 {
		t.Errorf("notes %q", notes)
	}
	type row struct {
		key, typ string
		count    int64
		gib      int64
	}
	var got []row
	totals := map[string]Bytes{}
	for _, it := range items {
		got = append(got, row{it.Key, it.Type, it.Count, int64(it.Each >> 30)})
		totals[it.Type] += it.Total()
	}
	want := []row{
		{"slurm_nodeset_system.boot_disk.size_gibibytes", "NETWORK_SSD", 3, 192},
		{"slurm_nodeset_controller.boot_disk.size_gibibytes", "NETWORK_SSD", 2, 128},
		{"slurm_nodeset_workers[0].boot_disk.size_gibibytes", "NETWORK_SSD", 16, 512},
		{"slurm_nodeset_login.boot_disk.size_gibibytes", "NETWORK_SSD", 2, 256},
		{"slurm_nodeset_accounting.boot_disk.size_gibibytes", "NETWORK_SSD", 1, 128},
		{"node_local_jail_submounts[0].size_gibibytes", "NETWORK_SSD", 16, 1024},
		{"node_local_image_disk.spec.size_gibibytes", "NETWORK_SSD_IO_M3", 16, 930},
		{"nfs.size_gibibytes", "NETWORK_SSD_IO_M3", 1, 3720},
		{"(fixed 60GiB)", "NETWORK_SSD", 1, 60},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// 576 + 256 + 8192 + 512 + 128 + 16384 + 60 GiB; 14880 + 3720 GiB.
	if totals["NETWORK_SSD"] != 26108<<30 || totals["NETWORK_SSD_IO_M3"] != 18600<<30 {
		t.Fatalf("totals %v", totals)
	}
	quotas, err := ParseDiskQuotas([]string{"network-ssd=20TiB", "compute.disk.size.network-ssd-io-m3=20TiB"}, DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	fs := DiskQuota(c, quotas, DefaultRules())
	if len(fs) != 2 || fs[0].Severity != Error || fs[1].Severity != Info {
		t.Fatalf("findings %+v", fs)
	}
	if !strings.Contains(fs[0].Summary, "28033251540992 bytes") || !strings.Contains(fs[0].Summary, "5.496 TiB over") ||
		!strings.Contains(fs[1].Summary, "within the compute.disk.size.network-ssd-io-m3 quota of 20 TiB") {
		t.Errorf("summaries %q / %q", fs[0].Summary, fs[1].Summary)
	}
	// The filesystem quota still counts only filesystems: the controller
	// spool and accounting (jail and submount are existing ones).
	fsItems, _ := TfvarsSizes(c.Vars, DefaultRules())
	var fsTotal Bytes
	for _, it := range fsItems {
		fsTotal += it.Bytes
	}
	if fsTotal != (128+512)<<30 {
		t.Errorf("filesystems %d", fsTotal)
	}
}

func TestParseDiskQuotasRejects(t *testing.T) {
	for _, in := range []string{"network-ssd", "=1TiB", "network-ssd=lots"} {
		if _, err := ParseDiskQuotas([]string{in}, DefaultRules()); !errors.Is(err, ErrBadSize) {
			t.Errorf("%q: got %v, want ErrBadSize", in, err)
		}
	}
}

// FuzzVarTypes: variable files are the user's text; reading them and
// checking them against the recipe's types must not panic, and every
// problem names a field under a variable the file sets.
func FuzzVarTypes(f *testing.F) {
	for _, name := range []string{"seed.tfvars", "terraform.tfvars"} {
		b, err := os.ReadFile(filepath.Join(recipeDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add(`slurm_nodeset_workers = [null, 1, { size = "x", boot_disk = [] }]`)
	f.Add(`nfs = { enabled = true, resource = null }` + "\nnode_local_jail_submounts = {}")
	base, err := LoadConfig(recipeDir, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		vars, lines, err := parseTfvarsLines([]byte(src), "fuzz.tfvars")
		if err != nil {
			return
		}
		c := *base
		c.Vars, c.VarOrigins = vars, map[string]Location{}
		for k := range vars {
			c.VarOrigins[k] = Location{File: "fuzz.tfvars", Line: lines[k]}
		}
		for _, p := range CheckVarTypes(&c) {
			if _, ok := vars[rootName(p.Path)]; !ok || p.Kind == "" {
				t.Fatalf("problem %+v is not about a variable the file sets", p)
			}
		}
		_, _ = TfvarsDisks(vars, DefaultRules())
	})
}
