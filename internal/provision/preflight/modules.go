package preflight

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Enablement says whether a module call creates anything.
type Enablement string

const (
	Enabled  Enablement = "enabled"
	Disabled Enablement = "disabled" // count = 0 or an empty for_each
	Unknown  Enablement = "unknown"  // count/for_each need values only known at plan time
)

// MissingModule is a local module call whose source directory is missing.
type MissingModule struct {
	Call *ModuleCall
	// State is Disabled when count/for_each evaluate to nothing with the
	// tfvars (e.g. `count = var.nfs.enabled ? 1 : 0` with nfs.enabled =
	// false), Enabled when they evaluate to something or are absent.
	State Enablement
	// Because is the expression that decided State, e.g.
	// "count = var.nfs.enabled ? 1 : 0".
	Because string
	// DependsOn are the module outputs count/for_each read
	// ("module.k8s.gpu_involved"): Terraform knows them only during plan,
	// so State is Unknown.
	DependsOn []string
	// Arguments are the call's arguments; Outputs are the outputs the
	// calling module reads from it. A stub module must declare both.
	Arguments []string
	Outputs   []string
	// Providers are the provider configurations the call passes
	// (`providers = { nebius = nebius }`): the module's local name and the
	// source address the caller's required_providers give it. A stub must
	// declare them, or Terraform takes "nebius" for hashicorp/nebius and
	// stops with "Provider type mismatch".
	Providers []ProviderRequirement
}

// ProviderRequirement is a provider a module needs: its local name in the
// module and its source address ("" when the caller does not declare one).
type ProviderRequirement struct {
	Name   string
	Source string
}

// MissingModules finds local module calls whose directory does not exist,
// and whether each is switched off in the tfvars.
func MissingModules(c *Config) []MissingModule {
	var out []MissingModule
	for _, call := range c.Calls {
		if !call.Missing {
			continue
		}
		mm := MissingModule{Call: call}
		mm.State, mm.Because = callState(c, call)
		mm.DependsOn = moduleOutputsRead(call)
		mm.Providers = passedProviders(c, call)
		for name := range call.Block.Body.Attributes {
			switch name {
			case "source", "version", "count", "for_each", "providers", "depends_on":
				continue
			}
			mm.Arguments = append(mm.Arguments, name)
		}
		slices.Sort(mm.Arguments)
		mm.Outputs = outputsRead(call.Caller, call.Name)
		out = append(out, mm)
	}
	return out
}

// callState evaluates a module call's count or for_each with the tfvars.
func callState(c *Config, call *ModuleCall) (Enablement, string) {
	state, because := Enabled, ""
	var vars map[string]cty.Value
	if call.Caller.Rel == "." {
		vars = c.Vars // tfvars feed the root module only
	}
	for _, meta := range []string{"count", "for_each"} {
		attr, ok := call.Block.Body.Attributes[meta]
		if !ok {
			continue
		}
		state = evalEnablement(attr.Expr, meta, vars)
		because = meta + " = " + strings.TrimSpace(string(attr.Expr.Range().SliceBytes(call.File.Src)))
	}
	return state, because
}

func evalEnablement(expr hclsyntax.Expression, meta string, vars map[string]cty.Value) Enablement {
	if vars == nil {
		return Unknown
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
		return Unknown
	}
	switch meta {
	case "count":
		if !v.Type().Equals(cty.Number) {
			return Unknown
		}
		if v.Equals(cty.Zero).True() {
			return Disabled
		}
		return Enabled
	default:
		ty := v.Type()
		if !(ty.IsMapType() || ty.IsSetType() || ty.IsObjectType()) {
			return Unknown
		}
		if v.LengthInt() == 0 {
			return Disabled
		}
		return Enabled
	}
}

// moduleOutputsRead lists the module outputs a call's count and for_each
// read: module.k8s.gpu_involved in `count = module.k8s.gpu_involved ? 1 : 0`.
func moduleOutputsRead(call *ModuleCall) []string {
	seen := map[string]bool{}
	for _, meta := range []string{"count", "for_each"} {
		attr, ok := call.Block.Body.Attributes[meta]
		if !ok {
			continue
		}
		for _, tr := range attr.Expr.Variables() {
			if tr.RootName() != "module" || len(tr) < 2 {
				continue
			}
			name, ok := tr[1].(hcl.TraverseAttr)
			if !ok {
				continue
			}
			ref := "module." + name.Name
			for _, step := range tr[2:] {
				if a, ok := step.(hcl.TraverseAttr); ok {
					ref += "." + a.Name
					break
				}
			}
			seen[ref] = true
		}
	}
	return sortedKeys(seen)
}

// passedProviders reads a call's `providers = { child = parent }` map and
// gives each child name the source address the caller declares for parent.
func passedProviders(c *Config, call *ModuleCall) []ProviderRequirement {
	attr, ok := call.Block.Body.Attributes["providers"]
	if !ok {
		return nil
	}
	pairs, diags := hcl.ExprMap(attr.Expr)
	if diags.HasErrors() {
		return nil
	}
	var out []ProviderRequirement
	for _, p := range pairs {
		child := hcl.ExprAsKeyword(p.Key)
		tr, diags := hcl.AbsTraversalForExpr(p.Value)
		if child == "" || diags.HasErrors() {
			continue
		}
		out = append(out, ProviderRequirement{Name: child, Source: providerSource(c, call.Caller, tr.RootName())})
	}
	slices.SortFunc(out, func(a, b ProviderRequirement) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// providerSource is the source address module m's required_providers give
// a local provider name; "" when m does not declare it.
func providerSource(c *Config, m *Module, name string) string {
	for _, f := range m.Files {
		if f.Body == nil {
			continue
		}
		for _, tb := range f.Body.Blocks {
			if tb.Type != "terraform" {
				continue
			}
			for _, rp := range tb.Body.Blocks {
				if rp.Type != "required_providers" {
					continue
				}
				attr, ok := rp.Body.Attributes[name]
				if !ok {
					continue
				}
				v, diags := attr.Expr.Value(nil)
				if diags.HasErrors() || v.IsNull() || !v.IsKnown() {
					continue
				}
				if v.Type() == cty.String { // the pre-0.13 form: a version only
					continue
				}
				if src, ok := getString(v, "source"); ok {
					return src
				}
			}
		}
	}
	return ""
}

// outputsRead lists the attributes the module m reads from module.<name>,
// e.g. nfs_export_path from `module.nfs-server[0].nfs_export_path`.
func outputsRead(m *Module, name string) []string {
	seen := map[string]bool{}
	for _, f := range m.Files {
		if f.Body == nil {
			continue
		}
		_ = hclsyntax.VisitAll(f.Body, func(n hclsyntax.Node) hcl.Diagnostics {
			st, ok := n.(*hclsyntax.ScopeTraversalExpr)
			if !ok || len(st.Traversal) < 2 || st.Traversal.RootName() != "module" {
				return nil
			}
			if a, ok := st.Traversal[1].(hcl.TraverseAttr); !ok || a.Name != name {
				return nil
			}
			for _, step := range st.Traversal[2:] { // skip [0] / ["key"], take the attribute
				if a, ok := step.(hcl.TraverseAttr); ok {
					seen[a.Name] = true
					break
				}
				if _, ok := step.(hcl.TraverseIndex); !ok {
					break
				}
			}
			return nil
		})
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Modules reports missing module directories (seed problem 7: the
// installation referenced nfs-server, gpu-operator and network-operator
// modules that were not on disk, and `terraform init` stopped with
// "Unreadable module directory"). Terraform loads every module at init,
// even one whose count is 0, so a disabled module still needs a directory:
// a stub will do. An enabled one must be restored.
func Modules(c *Config) []Finding {
	var out []Finding
	for _, mm := range MissingModules(c) {
		call := mm.Call
		loc := Location{File: call.File.Path, Line: call.Line, What: fmt.Sprintf("module %q", call.Name)}
		where := sourcePlace(c, call)
		f := Finding{
			Check: CheckModules, Severity: Error, SeedProblem: 7,
			Summary:   fmt.Sprintf("module %q (%s:%d) points at %s, which does not exist", call.Name, loc.File, loc.Line, where),
			Locations: []Location{loc},
		}
		restore := "restore " + where + " from the same release of the solution library (clone the whole repository, not only the installation directory)"
		switch mm.State {
		case Disabled:
			f.Detail = fmt.Sprintf("The module is disabled (%s evaluates to nothing with your tfvars), but `terraform init` "+
				"reads every module directory anyway and stops with \"Unreadable module directory\".", mm.Because)
			f.Fix = restore + ", or write a stub module " +
				"(`sopilot cluster preflight --write-stubs` writes one declaring the arguments " +
				listOrNone(mm.Arguments) + ", the outputs " + listOrNone(mm.Outputs) + providersText(mm.Providers) + ")"
		case Unknown:
			if len(mm.DependsOn) > 0 {
				f.Detail = fmt.Sprintf("Whether it is created depends on %s (%s), an output Terraform knows only during plan; "+
					"`terraform init` stops with \"Unreadable module directory\" either way. A stub is not safe: when the output "+
					"turns out true, the cluster silently lacks what this module installs.", strings.Join(mm.DependsOn, ", "), mm.Because)
			} else {
				f.Detail = fmt.Sprintf("Whether it is enabled depends on %s, which is only known at plan time; "+
					"`terraform init` stops with \"Unreadable module directory\" either way.", mm.Because)
			}
			f.Fix = restore
		default:
			because := "it has no count or for_each"
			if mm.Because != "" {
				because = mm.Because + " evaluates to something with your tfvars"
			}
			f.Detail = fmt.Sprintf("The module is enabled (%s): the cluster needs it. "+
				"`terraform init` stops with \"Unreadable module directory\".", because)
			f.Fix = restore + "; if you do not need the feature, disable it in terraform.tfvars " +
				"(e.g. `nfs = { enabled = false, ... }`) and then write a stub with `sopilot cluster preflight --write-stubs`"
		}
		out = append(out, f)
	}
	return append(out, enabledStubs(c)...)
}

// sourcePlace names a missing module directory the way a user finds it:
// relative to the checkout when the source climbs out of the installation
// ("modules/gpu-operator at the root of the checkout that holds
// soperator/installations/demo, source ../../../modules/gpu-operator"),
// else relative to the installation.
func sourcePlace(c *Config, call *ModuleCall) string {
	rel, err := filepath.Rel(absClean(c.Dir), absClean(call.Dir))
	if err != nil {
		return call.Dir
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	up := 0
	for up < len(parts) && parts[up] == ".." {
		up++
	}
	if up == 0 {
		return filepath.ToSlash(rel)
	}
	dir := strings.Split(filepath.ToSlash(absClean(c.Dir)), "/")
	if up >= len(dir) {
		return filepath.ToSlash(rel)
	}
	inst := strings.Join(dir[len(dir)-up:], "/")
	return fmt.Sprintf("%s at the root of the checkout that holds %s (source %q)", strings.Join(parts[up:], "/"), inst, call.Source)
}

func providersText(ps []ProviderRequirement) string {
	if len(ps) == 0 {
		return ""
	}
	var names []string
	for _, p := range ps {
		n := p.Name
		if p.Source != "" {
			n += " (" + p.Source + ")"
		}
		names = append(names, n)
	}
	return " and the providers " + strings.Join(names, ", ")
}

// stubMarker starts every stub WriteStub writes.
const stubMarker = "# Stub written by `sopilot cluster preflight --write-stubs`."

// enabledStubs reports stub modules (written by WriteStub) whose call is no
// longer disabled: the cluster would silently lack what the module does.
func enabledStubs(c *Config) []Finding {
	var out []Finding
	for _, call := range c.Calls {
		if call.Missing || !isStub(c, call.Dir) {
			continue
		}
		state, because := callState(c, call)
		if state == Disabled {
			continue
		}
		if because == "" {
			because = "it has no count or for_each"
		}
		out = append(out, Finding{
			Check: CheckModules, Severity: Error, SeedProblem: 7,
			Summary:   fmt.Sprintf("module %q (%s:%d) is a stub written by sopilot, but it is not disabled (%s)", call.Name, call.File.Path, call.Line, because),
			Detail:    "A stub creates nothing and returns null outputs: the cluster would silently lack this part.",
			Fix:       "restore the real module directory from the solution library checkout, or disable the module in terraform.tfvars again",
			Locations: []Location{{File: call.File.Path, Line: call.Line, What: fmt.Sprintf("module %q", call.Name)}},
		})
	}
	return out
}

func isStub(c *Config, dir string) bool {
	for _, m := range c.Modules {
		if absClean(m.Dir) != absClean(dir) {
			continue
		}
		for _, f := range m.Files {
			if strings.HasPrefix(string(f.Src), stubMarker) {
				return true
			}
		}
	}
	return false
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(xs, ", ")
}

// ErrModuleEnabled is returned by WriteStub for a module that is not
// disabled: a stub would silently drop part of the cluster.
var ErrModuleEnabled = errors.New("module is not disabled in the tfvars; restore it instead of stubbing it")

// WriteStub writes a stub module into the missing directory of a disabled
// module call: a variable for each argument the call passes (type any,
// default null) and a null output for each output the caller reads. It
// returns the file written.
func WriteStub(mm MissingModule) (string, error) {
	if mm.State != Disabled {
		return "", fmt.Errorf("module %q: %w", mm.Call.Name, ErrModuleEnabled)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", stubMarker)
	fmt.Fprintf(&b, "# Module %q is disabled (%s) but Terraform reads every module\n", mm.Call.Name, mm.Because)
	fmt.Fprintf(&b, "# directory at init. Replace this with the real module before enabling it.\n\n")
	if len(mm.Providers) > 0 {
		// The call passes these providers: without their source addresses
		// Terraform takes "nebius" for hashicorp/nebius and stops with
		// "Provider type mismatch".
		fmt.Fprintf(&b, "terraform {\n  required_providers {\n")
		for _, p := range mm.Providers {
			if p.Source == "" {
				fmt.Fprintf(&b, "    %s = {}\n", p.Name)
				continue
			}
			fmt.Fprintf(&b, "    %s = {\n      source = %q\n    }\n", p.Name, p.Source)
		}
		fmt.Fprintf(&b, "  }\n}\n\n")
	}
	for _, a := range mm.Arguments {
		fmt.Fprintf(&b, "variable %q {\n  type    = any\n  default = null\n}\n\n", a)
	}
	for _, o := range mm.Outputs {
		fmt.Fprintf(&b, "output %q {\n  value = null\n}\n\n", o)
	}
	if err := os.MkdirAll(mm.Call.Dir, 0o755); err != nil {
		return "", fmt.Errorf("write stub for module %q: %w", mm.Call.Name, err)
	}
	path := filepath.Join(mm.Call.Dir, "main.tf")
	if err := os.WriteFile(path, []byte(strings.TrimRight(b.String(), "\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write stub for module %q: %w", mm.Call.Name, err)
	}
	return path, nil
}
