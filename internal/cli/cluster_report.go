package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/sopilot/sopilot/internal/provision/preflight"
)

// The JSON documents `sopilot cluster ... -o json` prints on stdout, one
// per run. Each has a "kind" naming it and its version; fields are only
// ever added within a version. docs/provisioning.md describes them.
const (
	KindPreflight = "sopilot.cluster.preflight/v1"
	KindPlan      = "sopilot.cluster.plan/v1"
	KindApply     = "sopilot.cluster.apply/v1"
	KindDestroy   = "sopilot.cluster.destroy/v1"
	KindOutputs   = "sopilot.cluster.outputs/v1"
	KindImport    = "sopilot.cluster.import/v1"
)

// TerraformInfo is the binary used.
type TerraformInfo struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
}

// PreflightReport is printed by `sopilot cluster preflight -o json`.
type PreflightReport struct {
	Kind      string              `json:"kind"`
	Dir       string              `json:"dir"`
	Terraform *TerraformInfo      `json:"terraform,omitempty"`
	Findings  []preflight.Finding `json:"findings"`
	// Blocking is true when a finding is an error: plan/apply would refuse.
	Blocking bool `json:"blocking"`
	// StubsWritten lists the stub modules --write-stubs wrote.
	StubsWritten []string `json:"stubs_written,omitempty"`
}

// Changes counts planned resource changes; a replace counts once, as
// Replace, not as Add and Destroy.
type Changes struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Replace int `json:"replace"`
	Destroy int `json:"destroy"`
}

// ResourceChange is one planned change.
type ResourceChange struct {
	Address string   `json:"address"`
	Type    string   `json:"type"`
	Actions []string `json:"actions"`
}

// OutputValue is one Terraform output; Value is null for a sensitive output
// unless it was asked for by name or with --show-sensitive.
type OutputValue struct {
	Sensitive bool            `json:"sensitive"`
	Value     json.RawMessage `json:"value"`
}

// RunReport is printed by plan, apply and destroy with -o json.
type RunReport struct {
	Kind      string         `json:"kind"`
	Dir       string         `json:"dir"`
	Terraform *TerraformInfo `json:"terraform,omitempty"`
	// PlanFile is the saved plan (absent when refused before planning).
	PlanFile  string              `json:"plan_file,omitempty"`
	Changes   *Changes            `json:"changes,omitempty"`
	Resources []ResourceChange    `json:"resources,omitempty"`
	Findings  []preflight.Finding `json:"findings"`
	// Refused is true when a check refused the run; nothing was changed.
	Refused bool `json:"refused"`
	// Applied is true when apply/destroy ran to completion.
	Applied bool `json:"applied"`
	// Outputs after a successful apply.
	Outputs map[string]OutputValue `json:"outputs,omitempty"`
	// ImportCommands adopt resources an apply found already existing.
	ImportCommands []preflight.ImportCommand `json:"import_commands,omitempty"`
	// Error is the failure, if any.
	Error string `json:"error,omitempty"`
}

// OutputsReport is printed by `sopilot cluster output -o json`.
type OutputsReport struct {
	Kind    string                 `json:"kind"`
	Dir     string                 `json:"dir"`
	Outputs map[string]OutputValue `json:"outputs"`
}

// ImportReport is printed by `sopilot cluster import -o json`.
type ImportReport struct {
	Kind     string                    `json:"kind"`
	Dir      string                    `json:"dir"`
	Commands []preflight.ImportCommand `json:"commands"`
	// Imported are the addresses imported (with --run, or ADDRESS ID).
	Imported []string `json:"imported,omitempty"`
}

// writeJSON prints v as indented JSON, or as YAML for -o yaml.
func writeJSON(w io.Writer, format string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // commands carry <ID> placeholders
	if err := enc.Encode(v); err != nil {
		return err
	}
	doc, err := formatJSONDoc(format, b.Bytes())
	if err != nil {
		return err
	}
	_, err = w.Write(doc)
	return err
}

func summarizePlan(plan *tfjson.Plan) (Changes, []ResourceChange) {
	var c Changes
	var rs []ResourceChange
	for _, rc := range plan.ResourceChanges {
		if rc.Change == nil || rc.Mode != tfjson.ManagedResourceMode {
			continue
		}
		acts := rc.Change.Actions
		switch {
		case acts.Replace():
			c.Replace++
		case acts.Create():
			c.Add++
		case acts.Update():
			c.Change++
		case acts.Delete():
			c.Destroy++
		default:
			continue
		}
		var names []string
		for _, a := range acts {
			names = append(names, string(a))
		}
		rs = append(rs, ResourceChange{Address: rc.Address, Type: rc.Type, Actions: names})
	}
	return c, rs
}

func (c Changes) String() string {
	return fmt.Sprintf("%d to add, %d to change, %d to replace, %d to destroy", c.Add, c.Change, c.Replace, c.Destroy)
}

func (c Changes) empty() bool { return c == Changes{} }

// printFindings writes findings for people: severity, the seed problem it
// prevents, what is wrong, why, the fix and commands.
func printFindings(w io.Writer, fs []preflight.Finding, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + "\x1b[0m"
	}
	for _, f := range fs {
		label := strings.ToUpper(string(f.Severity))
		switch f.Severity {
		case preflight.Error:
			label = paint("\x1b[31;1m", label)
		case preflight.Warning:
			label = paint("\x1b[33;1m", label)
		}
		seed := ""
		if f.SeedProblem > 0 {
			seed = fmt.Sprintf(" (seed problem %d)", f.SeedProblem)
		}
		fmt.Fprintf(w, "%s [%s]%s %s\n", label, f.Check, seed, f.Summary)
		if f.Detail != "" {
			for _, l := range strings.Split(f.Detail, "\n") {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
		if len(f.Locations) > 1 {
			fmt.Fprintf(w, "    at:\n")
			for _, l := range f.Locations {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
		if f.Fix != "" && f.Fix != "nothing to do" {
			fmt.Fprintf(w, "    fix: %s\n", f.Fix)
		}
		for _, c := range f.Commands {
			fmt.Fprintf(w, "      $ %s\n", c)
		}
	}
}

func printResources(w io.Writer, rs []ResourceChange) {
	for _, r := range rs {
		sym := map[string]string{"create": "+", "update": "~", "delete": "-"}
		s := sym[r.Actions[0]]
		if len(r.Actions) == 2 {
			s = "-/+"
		}
		fmt.Fprintf(w, "  %-3s %s\n", s, r.Address)
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
