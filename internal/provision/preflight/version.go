package preflight

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// FeatureUse is one place where the configuration uses a feature that
// needs a minimum Terraform version.
type FeatureUse struct {
	Feature    string
	MinVersion *version.Version
	Symptom    string
	Location   Location
}

// ScanFeatures finds every use of a version-gated feature in the
// configuration's .tf files. Files that parse are walked as HCL syntax
// trees; a file that does not parse (an older HCL, a typo elsewhere) is
// scanned token by token, so a provider:: call is still found.
// JSON-syntax files are not scanned: their expressions are strings.
func ScanFeatures(c *Config, rules *Rules) []FeatureUse {
	var out []FeatureUse
	for _, m := range c.Modules {
		for _, f := range m.Files {
			if strings.HasSuffix(f.Path, ".json") {
				continue
			}
			var calls []nameAt
			var blocks []nameAt
			if f.Body != nil {
				calls, blocks = syntaxUses(f.Body)
			} else {
				calls, blocks = tokenUses(f.Src, f.Path)
			}
			for _, call := range calls {
				if u, ok := matchFunction(rules, call, f.Path); ok {
					out = append(out, u)
				}
			}
			for _, b := range blocks {
				for _, r := range rules.VersionFeatures.Blocks {
					if r.Type == b.name {
						out = append(out, FeatureUse{
							Feature: r.Feature, MinVersion: version.Must(version.NewVersion(r.MinVersion)), Symptom: r.Symptom,
							Location: Location{File: f.Path, Line: b.line, What: b.name + " block"},
						})
					}
				}
			}
		}
	}
	return out
}

type nameAt struct {
	name string
	line int
}

func matchFunction(rules *Rules, call nameAt, file string) (FeatureUse, bool) {
	loc := Location{File: file, Line: call.line, What: call.name}
	for _, r := range rules.VersionFeatures.FunctionPrefixes {
		if strings.HasPrefix(call.name, r.Prefix) {
			return FeatureUse{Feature: r.Feature, MinVersion: version.Must(version.NewVersion(r.MinVersion)), Symptom: r.Symptom, Location: loc}, true
		}
	}
	for _, r := range rules.VersionFeatures.Functions {
		if call.name == r.Name {
			return FeatureUse{Feature: r.Feature, MinVersion: version.Must(version.NewVersion(r.MinVersion)), Symptom: r.Symptom, Location: loc}, true
		}
	}
	return FeatureUse{}, false
}

func syntaxUses(body *hclsyntax.Body) (calls, blocks []nameAt) {
	for _, b := range body.Blocks {
		blocks = append(blocks, nameAt{b.Type, b.TypeRange.Start.Line})
	}
	_ = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		if fc, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			calls = append(calls, nameAt{fc.Name, fc.NameRange.Start.Line})
		}
		return nil
	})
	return calls, blocks
}

// tokenUses is the fallback scanner for files that do not parse: a call is
// an identifier, optionally followed by "::" identifier pairs, directly
// followed by "(" and not preceded by "."; a top-level block is an
// identifier at the start of a line at brace depth 0 followed by labels and
// "{". Comments and string literals are tokens of their own, so text in
// them is never mistaken for a call.
func tokenUses(src []byte, filename string) (calls, blocks []nameAt) {
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	depth := 0
	lineStart := true
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		switch tok.Type {
		case hclsyntax.TokenNewline:
			lineStart = true
			continue
		case hclsyntax.TokenComment: // a line comment token carries its newline
			if n := len(tok.Bytes); n > 0 && tok.Bytes[n-1] == '\n' {
				lineStart = true
			}
			continue
		case hclsyntax.TokenOBrace:
			depth++
		case hclsyntax.TokenCBrace:
			if depth > 0 {
				depth--
			}
		case hclsyntax.TokenIdent:
			name := string(tok.Bytes)
			j := i + 1
			for j+1 < len(toks) && toks[j].Type == hclsyntax.TokenDoubleColon && toks[j+1].Type == hclsyntax.TokenIdent {
				name += "::" + string(toks[j+1].Bytes)
				j += 2
			}
			if j < len(toks) && toks[j].Type == hclsyntax.TokenOParen && (i == 0 || toks[i-1].Type != hclsyntax.TokenDot) {
				calls = append(calls, nameAt{name, tok.Range.Start.Line})
			}
			if depth == 0 && lineStart && isBlockHeader(toks[i+1:]) {
				blocks = append(blocks, nameAt{name, tok.Range.Start.Line})
			}
			i = j - 1 // past the namespace parts: "units" in provider::units::f is not a call
		}
		lineStart = false
	}
	return calls, blocks
}

func isBlockHeader(rest hclsyntax.Tokens) bool {
	for _, t := range rest {
		switch t.Type {
		case hclsyntax.TokenOBrace:
			return true
		case hclsyntax.TokenIdent, hclsyntax.TokenOQuote, hclsyntax.TokenQuotedLit, hclsyntax.TokenCQuote:
			continue
		default:
			return false
		}
	}
	return false
}

// RequiredVersion is a `required_version` constraint of a terraform block.
type RequiredVersion struct {
	Constraint version.Constraints
	Text       string
	Location   Location
}

// RequiredVersions lists the required_version constraints of every module.
func RequiredVersions(c *Config) ([]RequiredVersion, []Finding) {
	var out []RequiredVersion
	var bad []Finding
	for _, m := range c.Modules {
		for _, f := range m.Files {
			if f.Body == nil {
				continue
			}
			for _, b := range f.Body.Blocks {
				if b.Type != "terraform" {
					continue
				}
				attr, ok := b.Body.Attributes["required_version"]
				if !ok {
					continue
				}
				loc := Location{File: f.Path, Line: attr.SrcRange.Start.Line, What: "required_version"}
				v, diags := attr.Expr.Value(nil)
				if diags.HasErrors() || !v.Type().Equals(cty.String) || v.IsNull() {
					continue
				}
				cons, err := version.NewConstraint(v.AsString())
				if err != nil {
					bad = append(bad, Finding{
						Check: CheckTerraformVersion, Severity: Error, SeedProblem: 4,
						Summary:   fmt.Sprintf("%s: required_version %q does not parse", loc, v.AsString()),
						Fix:       "write a version constraint such as \">= 1.8.0, < 2.0.0\"",
						Locations: []Location{loc},
					})
					continue
				}
				out = append(out, RequiredVersion{Constraint: cons, Text: v.AsString(), Location: loc})
			}
		}
	}
	return out, bad
}

// TerraformVersion reports what the configuration needs that the installed
// Terraform lacks (seed problem 4: Terraform 1.5.7 stopped with "Missing
// newline after argument" at a provider::units::from_gib call, which needs
// 1.8). installed is nil when Terraform was not found; then the findings
// say which version to install. One finding per feature, with every
// location that uses it.
func TerraformVersion(c *Config, installed *version.Version, rules *Rules) []Finding {
	uses := ScanFeatures(c, rules)
	reqs, out := RequiredVersions(c)
	var core *version.Version
	if installed != nil {
		core = installed.Core()
	}
	byFeature := map[string][]FeatureUse{}
	var order []string
	for _, u := range uses {
		if core != nil && !core.LessThan(u.MinVersion) {
			continue
		}
		if _, ok := byFeature[u.Feature]; !ok {
			order = append(order, u.Feature)
		}
		byFeature[u.Feature] = append(byFeature[u.Feature], u)
	}
	need := MinimumVersion(uses)
	for _, feature := range order {
		us := byFeature[feature]
		first := us[0]
		f := Finding{Check: CheckTerraformVersion, SeedProblem: 4}
		for _, u := range us {
			f.Locations = append(f.Locations, u.Location)
		}
		where := first.Location.String()
		if len(us) > 1 {
			where += fmt.Sprintf(" and %d more", len(us)-1)
		}
		if core == nil {
			f.Severity = Warning
			f.Summary = fmt.Sprintf("%s needs Terraform >= %s (%s)", where, first.MinVersion, feature)
			f.Fix = fmt.Sprintf("install Terraform >= %s", need)
		} else {
			f.Severity = Error
			f.Summary = fmt.Sprintf("%s needs Terraform >= %s for %s; this Terraform is %s", where, first.MinVersion, feature, installed)
			f.Detail = fmt.Sprintf("Terraform %s cannot read this configuration", installed)
			if first.Symptom != "" {
				f.Detail += fmt.Sprintf("; it would stop at %s with %q", first.Location.File+":"+fmt.Sprint(first.Location.Line), first.Symptom)
			}
			f.Detail += "."
			seg := need.Segments()
			tfenv := fmt.Sprintf("latest:^%d.%d", seg[0], seg[1])
			f.Fix = fmt.Sprintf("install Terraform >= %s (every feature used here needs at most that): `tfenv install %s && tfenv use %s`, or point --terraform at a newer binary", need, tfenv, tfenv)
		}
		out = append(out, f)
	}
	for _, r := range reqs {
		if core == nil {
			continue
		}
		if !r.Constraint.Check(core) {
			out = append(out, Finding{
				Check: CheckTerraformVersion, Severity: Error, SeedProblem: 4,
				Summary:   fmt.Sprintf("%s requires Terraform %q; this Terraform is %s", r.Location.File+":"+fmt.Sprint(r.Location.Line), r.Text, installed),
				Fix:       fmt.Sprintf("install a Terraform version matching %q", r.Text),
				Locations: []Location{r.Location},
			})
		}
	}
	return out
}

// MinimumVersion is the highest minimum version among uses (nil if none).
func MinimumVersion(uses []FeatureUse) *version.Version {
	var vs []*version.Version
	for _, u := range uses {
		vs = append(vs, u.MinVersion)
	}
	if len(vs) == 0 {
		return nil
	}
	return slices.MaxFunc(vs, func(a, b *version.Version) int { return a.Compare(b) })
}
