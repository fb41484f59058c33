package preflight

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Diagnostic is one Terraform error or warning: parsed from the text
// Terraform prints (ParseDiagnostics) or taken from its -json stream.
type Diagnostic struct {
	Severity string `json:"severity"` // "error" or "warning"
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	// Address is the resource the diagnostic is about ("with ADDR," in
	// the text; "address" in the JSON stream); empty if none.
	Address string `json:"address,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
}

var (
	ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	withLine   = regexp.MustCompile(`^with (.+),$`)
	onLine     = regexp.MustCompile(`^on (.+?) line (\d+)`)
	snippet    = regexp.MustCompile(`^\d+:( |$)`)
)

// ParseDiagnostics extracts the diagnostics from Terraform's human output
// (what `terraform apply` prints, or the text of a terraform-exec error),
// with or without colour and with or without the │ box Terraform 1.x draws.
// Anything that is not part of an "Error:" or "Warning:" block is ignored.
func ParseDiagnostics(text string) []Diagnostic {
	text = ansiEscape.ReplaceAllString(text, "")
	var out []Diagnostic
	var cur *Diagnostic
	var detail []string
	flush := func() {
		if cur == nil {
			return
		}
		cur.Detail = strings.TrimSpace(strings.Join(detail, "\n"))
		out = append(out, *cur)
		cur, detail = nil, nil
	}
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "╷":
			flush()
			continue
		case trimmed == "╵":
			flush()
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "│"); ok {
			trimmed = strings.TrimSpace(rest)
		}
		if s, ok := strings.CutPrefix(trimmed, "Error: "); ok {
			flush()
			cur = &Diagnostic{Severity: "error", Summary: strings.TrimSpace(s)}
			continue
		}
		if s, ok := strings.CutPrefix(trimmed, "Warning: "); ok {
			flush()
			cur = &Diagnostic{Severity: "warning", Summary: strings.TrimSpace(s)}
			continue
		}
		if cur == nil {
			continue
		}
		if m := withLine.FindStringSubmatch(trimmed); m != nil && cur.Address == "" {
			cur.Address = m[1]
			continue
		}
		if m := onLine.FindStringSubmatch(trimmed); m != nil && cur.File == "" {
			cur.File = m[1]
			cur.Line, _ = strconv.Atoi(m[2])
			continue
		}
		if snippet.MatchString(trimmed) {
			continue
		}
		detail = append(detail, trimmed)
	}
	flush()
	return out
}

// ImportCommand brings one existing cloud resource under Terraform.
type ImportCommand struct {
	Address string `json:"address"`
	Type    string `json:"resource_type"`
	// ID is the cloud ID found in the error text; empty when the text did
	// not carry one (then Command has an <ID> placeholder and Lookup says
	// how to find it).
	ID      string `json:"id,omitempty"`
	Command string `json:"command"`
	Lookup  string `json:"lookup,omitempty"`
}

// ImportCommands turns "already exists" diagnostics into the terraform
// import commands that adopt the existing resources (seed problem 8: node
// groups created by an interrupted apply were unknown to the state, and the
// next apply failed trying to create them again). One command per address.
func ImportCommands(diags []Diagnostic, rules *Rules) []ImportCommand {
	var out []ImportCommand
	seen := map[string]bool{}
	for _, d := range diags {
		if d.Severity != "error" || d.Address == "" || seen[d.Address] {
			continue
		}
		// Terraform wraps detail text at 78 columns: match on words, not lines.
		text := strings.Join(strings.Fields(d.Summary+" "+d.Detail), " ")
		if !rules.matchesAlreadyExists(text) {
			continue
		}
		seen[d.Address] = true
		ic := ImportCommand{Address: d.Address, Type: ResourceType(d.Address)}
		if re := rules.idPatterns[ic.Type]; re != nil {
			ic.ID = re.FindString(text)
		}
		id := ic.ID
		if id == "" {
			id = "<ID>"
			ic.Lookup = execTemplate(rules.lookups[ic.Type], struct{ Address, Type string }{ic.Address, ic.Type})
		}
		ic.Command = "terraform import " + shellQuote(ic.Address) + " " + shellQuote(id)
		out = append(out, ic)
	}
	// Terraform applies in parallel: the order of its errors means nothing.
	slices.SortFunc(out, func(a, b ImportCommand) int { return strings.Compare(a.Address, b.Address) })
	return out
}

func (r *Rules) matchesAlreadyExists(text string) bool {
	for _, re := range r.alreadyExists {
		if re.MatchString(text) {
			return true
		}
	}
	return false
}

// ImportFinding wraps import commands into one finding.
func ImportFinding(cmds []ImportCommand) []Finding {
	if len(cmds) == 0 {
		return nil
	}
	f := Finding{
		Check: CheckImport, Severity: Error, SeedProblem: 8,
		Summary: fmt.Sprintf("%d resource(s) already exist in the cloud but not in the Terraform state", len(cmds)),
		Detail: "An earlier apply created them and was interrupted or lost its state, so Terraform tries to create them again. " +
			"Import them so Terraform manages the existing ones instead of failing.",
		Fix: "run these imports in the installation directory (or `sopilot cluster import --from-error FILE --run`), then plan again",
	}
	for _, c := range cmds {
		if c.Lookup != "" {
			f.Commands = append(f.Commands, "# find <ID> for "+c.Address+": "+c.Lookup)
		}
		f.Commands = append(f.Commands, c.Command)
	}
	return []Finding{f}
}

// ResourceType returns the resource type of a resource instance address:
// "nebius_mk8s_v1_node_group" for
// `module.k8s.nebius_mk8s_v1_node_group.accounting[0]`, "" if the address
// is not one.
func ResourceType(addr string) string {
	parts := splitAddress(addr)
	i := 0
	for i+1 < len(parts) && parts[i] == "module" {
		i += 2
	}
	if i < len(parts) && parts[i] == "data" {
		i++
	}
	if i+1 >= len(parts) {
		return ""
	}
	typ := parts[i]
	if typ == "" || strings.IndexFunc(typ, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return ""
	}
	return typ
}

// splitAddress splits on dots outside [...] and quotes, dropping index
// suffixes: module.a["x.y"].t.n[0] → module, a, t, n.
func splitAddress(addr string) []string {
	var parts []string
	var b strings.Builder
	depth, inQuote, escaped := 0, false, false
	for _, r := range addr {
		switch {
		case inQuote:
			if escaped {
				escaped = false
			} else if r == '\\' {
				escaped = true
			} else if r == '"' {
				inQuote = false
			}
			continue
		case r == '"':
			inQuote = true
			continue
		case r == '[':
			depth++
			continue
		case r == ']':
			if depth > 0 {
				depth--
			}
			continue
		case depth > 0:
			continue
		case r == '.':
			parts = append(parts, b.String())
			b.Reset()
			continue
		}
		b.WriteRune(r)
	}
	return append(parts, b.String())
}
