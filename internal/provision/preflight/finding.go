// Package preflight owns the checks that stop a Soperator installation
// before Terraform hits one of the failures the seed tutorial hit: missing
// tools (seed problems 1–3), a Terraform too old for the configuration (4),
// filesystem and compute-disk sizes over quota (5), a filesystem shrink the
// cloud refuses (6), module directories missing on disk (7), resources that
// exist in the cloud but not in state (8), and tfvars that do not fit the
// declared variable types.
//
// Each check is one small function returning Findings; none of them runs
// Terraform. They read .tf and .tfvars files with hashicorp/hcl/v2, plans
// as terraform-json values, and error text as a string. What a filesystem
// is, which attribute is its size and which tfvars keys hold sizes are
// Rules (data, see rules/default.json), not code.
package preflight

import (
	"fmt"
	"slices"
	"strings"
)

// Severity orders findings: an Error refuses the operation.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Check names, stable for --allow and for JSON consumers.
const (
	CheckTools            = "tools"
	CheckTerraformVersion = "terraform-version"
	CheckQuota            = "quota"
	CheckShrink           = "shrink"
	CheckModules          = "modules"
	CheckImport           = "import"
	CheckVariables        = "variables"
	CheckDiskQuota        = "disk-quota"
)

// Finding is one result of a check. It is part of the JSON output of
// `sopilot cluster preflight -o json` (and of plan/apply reports): fields
// are only ever added.
type Finding struct {
	// Check is one of the Check* names.
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// SeedProblem is the number (1–8) of the seed tutorial's problem this
	// finding prevents; 0 when none.
	SeedProblem int `json:"seed_problem,omitempty"`
	// Summary is one line: what is wrong.
	Summary string `json:"summary"`
	// Detail explains why it matters, with the numbers.
	Detail string `json:"detail,omitempty"`
	// Fix says what to do.
	Fix string `json:"fix"`
	// Commands are shell commands that carry out (part of) the fix, in
	// order. They may contain <placeholders> to fill in.
	Commands []string `json:"commands,omitempty"`
	// Locations point into the configuration.
	Locations []Location `json:"locations,omitempty"`
}

// Location is a place in a configuration file.
type Location struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// What is found there, e.g. "provider::units::from_gib".
	What string `json:"what,omitempty"`
}

func (l Location) String() string {
	if l.What == "" {
		return fmt.Sprintf("%s:%d", l.File, l.Line)
	}
	return fmt.Sprintf("%s:%d (%s)", l.File, l.Line, l.What)
}

// Blocking reports whether any finding is an Error.
func Blocking(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

// Allow downgrades Error findings of the named checks to Warning: the
// user's explicit, per-check escape hatch (--allow shrink).
func Allow(fs []Finding, checks []string) []Finding {
	out := slices.Clone(fs)
	for i := range out {
		if out[i].Severity == Error && slices.Contains(checks, out[i].Check) {
			out[i].Severity = Warning
			out[i].Detail = strings.TrimSpace(out[i].Detail + "\n(allowed by --allow " + out[i].Check + ")")
		}
	}
	return out
}

// Sort orders findings errors first, then in the order of the seed's
// problems (findings of no seed problem last), then by check, keeping the
// order within a check.
func Sort(fs []Finding) {
	rank := map[Severity]int{Error: 0, Warning: 1, Info: 2}
	seed := func(f Finding) int {
		if f.SeedProblem == 0 {
			return 1 << 10
		}
		return f.SeedProblem
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if d := rank[a.Severity] - rank[b.Severity]; d != 0 {
			return d
		}
		if d := seed(a) - seed(b); d != 0 {
			return d
		}
		return strings.Compare(a.Check, b.Check)
	})
}
