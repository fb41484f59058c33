package preflight

import (
	"github.com/hashicorp/go-version"
	tfjson "github.com/hashicorp/terraform-json"
)

// StaticInput is what the checks that run before Terraform need.
type StaticInput struct {
	Config *Config
	Rules  *Rules
	// LookPath and Tools: the tools to find (terraform, kubectl, yq, the
	// cloud CLI).
	LookPath LookPath
	Tools    []string
	// Installed is the Terraform version found; nil if none.
	Installed *version.Version
	// Quota is the filesystem size quota; 0 when unknown.
	Quota Bytes
	// DiskQuotas are the disk size quotas by quota name
	// (compute.disk.size.network-ssd); absent ones are unknown.
	DiskQuotas map[string]Bytes
}

// Static runs every check that needs no Terraform run: tools (seed
// problems 1–3), Terraform version (4), tfvars filesystem and disk quotas
// (5), missing modules (7), tfvars against the variable types. Findings are
// sorted, errors first.
func Static(in StaticInput) []Finding {
	var out []Finding
	if in.LookPath != nil {
		out = append(out, Tools(in.LookPath, in.Tools, in.Rules)...)
	}
	if in.Config != nil {
		out = append(out, TerraformVersion(in.Config, in.Installed, in.Rules)...)
		out = append(out, Modules(in.Config)...)
		out = append(out, Quota(in.Config, in.Quota, in.Rules)...)
		out = append(out, DiskQuota(in.Config, in.DiskQuotas, in.Rules)...)
		out = append(out, VarTypes(in.Config)...)
	}
	Sort(out)
	return out
}

// Plan runs the checks on a saved plan: shrink (seed problem 6) and the
// quota on planned sizes (5). dir is the installation directory, quoted in
// recovery commands.
func Plan(plan *tfjson.Plan, quota Bytes, rules *Rules, dir string) []Finding {
	out := Shrink(plan, rules, dir)
	out = append(out, PlanQuota(plan, quota, rules)...)
	Sort(out)
	return out
}
