package preflight

import "fmt"

// LookPath finds a command the way exec.LookPath does; injected so tests
// (and the CLI's --terraform flag) decide what is "on PATH".
type LookPath func(name string) (string, error)

// Tools reports each of the named tools that lookPath cannot find, with why
// it is needed and how to install it (seed problems 1–3: terraform, nebius,
// yq were each discovered missing one failure at a time; this reports all
// of them at once).
func Tools(lookPath LookPath, names []string, rules *Rules) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, name := range names {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		if _, err := lookPath(name); err == nil {
			continue
		}
		rule := rules.Tool(name)
		out = append(out, Finding{
			Check:       CheckTools,
			Severity:    Error,
			SeedProblem: rule.SeedProblem,
			Summary:     fmt.Sprintf("%s: command not found", name),
			Detail:      fmt.Sprintf("%s is needed: %s.", name, rule.Why),
			Fix:         rule.Install,
		})
	}
	return out
}
