package preflight

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Variable is a root-module `variable` block read for the type check.
type Variable struct {
	Name string
	// Type is the declared type constraint (cty.DynamicPseudoType when the
	// block has none); Defaults are its optional() attribute defaults.
	Type     cty.Type
	Defaults *typeexpr.Defaults
	// Default is the declared default value; cty.NilVal when none.
	Default  cty.Value
	Nullable bool
	Location Location
}

// Variables reads the root module's variable declarations the way
// Terraform does: type constraints with hcl's typeexpr (optional()
// attributes and their defaults included). A type that does not parse is
// left as "any": Terraform itself reports it.
func Variables(c *Config) map[string]*Variable {
	out := map[string]*Variable{}
	root := c.Modules[0]
	for _, f := range root.Files {
		if f.Body == nil {
			continue
		}
		for _, b := range f.Body.Blocks {
			if b.Type != "variable" || len(b.Labels) != 1 {
				continue
			}
			v := &Variable{
				Name: b.Labels[0], Type: cty.DynamicPseudoType, Default: cty.NilVal, Nullable: true,
				Location: Location{File: f.Path, Line: b.TypeRange.Start.Line, What: "variable " + strconv.Quote(b.Labels[0])},
			}
			if attr, ok := b.Body.Attributes["type"]; ok {
				if ty, defs, diags := typeexpr.TypeConstraintWithDefaults(attr.Expr); !diags.HasErrors() {
					v.Type, v.Defaults = ty, defs
				}
			}
			if attr, ok := b.Body.Attributes["default"]; ok {
				if val, diags := attr.Expr.Value(nil); !diags.HasErrors() {
					v.Default = val
				}
			}
			if attr, ok := b.Body.Attributes["nullable"]; ok {
				if val, diags := attr.Expr.Value(nil); !diags.HasErrors() && val.Type() == cty.Bool && val.IsKnown() && !val.IsNull() {
					v.Nullable = val.True()
				}
			}
			out[v.Name] = v
		}
	}
	return out
}

// Problem kinds of a variable value against its type.
const (
	ProblemMissing    = "missing"    // a required attribute is not set
	ProblemUnexpected = "unexpected" // an attribute the type does not have (Terraform drops it silently)
	ProblemType       = "type"       // a value of the wrong type
	ProblemUndeclared = "undeclared" // a variable file sets a variable the configuration does not declare
	ProblemNull       = "null"       // null for a variable that is not nullable
)

// VarProblem is one place where a value in the variable files does not fit
// the declared type.
type VarProblem struct {
	Kind string `json:"kind"`
	// Path is the field: slurm_nodeset_workers[0].nodes_per_nodegroup.
	Path string `json:"path"`
	// Want describes what the type wants there ("number", "object with
	// infiniband_fabric"); empty for unexpected and undeclared fields.
	Want string `json:"want,omitempty"`
	// Instead says what to write, from the declaration (its default, or
	// where a field of that name lives in the declared types).
	Instead string `json:"instead,omitempty"`
}

// CheckVarTypes compares every value the variable files set with the
// declared type of its variable, the way Terraform converts it (optional()
// defaults, then cty conversion), and reports each field that does not
// fit: a required attribute missing, an attribute the type lacks (Terraform
// would drop it without a word, so a setting the user believes in does
// nothing), a value of the wrong type, a variable that is not declared at
// all (Terraform only warns, and the value is lost).
func CheckVarTypes(c *Config) []VarProblem {
	decl := Variables(c)
	var names []string
	for name := range c.VarOrigins {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []VarProblem
	for _, name := range names {
		val := c.Vars[name]
		v, ok := decl[name]
		if !ok {
			p := VarProblem{Kind: ProblemUndeclared, Path: name}
			if where := fieldHomes(decl, name); len(where) > 0 {
				p.Instead = "move it into " + strings.Join(where, " or ") + ": write " + name + " = " + hclText(val) + " there"
			} else {
				p.Instead = "remove it, or check the variable's name against the configuration's variables"
			}
			out = append(out, p)
			continue
		}
		out = append(out, checkVarValue(v, val)...)
	}
	return out
}

func checkVarValue(v *Variable, val cty.Value) []VarProblem {
	if val.IsNull() {
		if !v.Nullable {
			return []VarProblem{{Kind: ProblemNull, Path: v.Name, Want: typeText(v.Type), Instead: "set a value, or remove the line to use the default"}}
		}
		return nil
	}
	ex := example(v)
	out := walkType(v.Name, val, v.Type, ex)
	if len(out) > 0 {
		return out
	}
	// The structural walk found nothing; the conversion has the last word.
	in := val
	if v.Defaults != nil && !in.Type().IsPrimitiveType() {
		in = v.Defaults.Apply(in)
	}
	if _, err := convert.Convert(in, v.Type); err != nil {
		return []VarProblem{{Kind: ProblemType, Path: v.Name, Want: typeText(v.Type) + " (" + err.Error() + ")"}}
	}
	return nil
}

// example is a value of the variable's type to quote in "write this
// instead": the declared default.
func example(v *Variable) cty.Value {
	if v.Default == cty.NilVal || v.Default.IsNull() {
		return cty.NilVal
	}
	return v.Default
}

// walkType finds the fields of val that do not fit ty. ex is the matching
// part of the declared default (or cty.NilVal), to quote as an example.
func walkType(path string, val cty.Value, ty cty.Type, ex cty.Value) []VarProblem {
	if val.IsNull() || !val.IsKnown() || ty == cty.DynamicPseudoType {
		return nil
	}
	vt := val.Type()
	switch {
	case ty.IsObjectType():
		if !(vt.IsObjectType() || vt.IsMapType()) {
			return []VarProblem{{Kind: ProblemType, Path: path, Want: typeText(ty)}}
		}
		have := map[string]cty.Value{}
		for it := val.ElementIterator(); it.Next(); {
			k, e := it.Element()
			have[k.AsString()] = e
		}
		var out []VarProblem
		attrs := sortedKeys(ty.AttributeTypes())
		for _, name := range attrs {
			at := ty.AttributeType(name)
			e, ok := have[name]
			sub := exampleAttr(ex, name)
			if !ok {
				if ty.AttributeOptional(name) {
					continue
				}
				p := VarProblem{Kind: ProblemMissing, Path: path + "." + name, Want: typeText(at)}
				if sub != cty.NilVal {
					p.Instead = name + " = " + hclText(sub) + " (as in the variable's default)"
				}
				out = append(out, p)
				continue
			}
			out = append(out, walkType(path+"."+name, e, at, sub)...)
		}
		for _, name := range sortedKeys(have) {
			if ty.HasAttribute(name) {
				continue
			}
			out = append(out, VarProblem{Kind: ProblemUnexpected, Path: path + "." + name,
				Instead: "remove it: the type's attributes are " + strings.Join(attrs, ", ")})
		}
		return out
	case ty.IsListType() || ty.IsSetType():
		if !(vt.IsListType() || vt.IsSetType() || vt.IsTupleType()) {
			return []VarProblem{{Kind: ProblemType, Path: path, Want: typeText(ty)}}
		}
		var out []VarProblem
		i := 0
		for it := val.ElementIterator(); it.Next(); i++ {
			_, e := it.Element()
			out = append(out, walkType(fmt.Sprintf("%s[%d]", path, i), e, ty.ElementType(), firstElem(ex))...)
		}
		return out
	case ty.IsMapType():
		if !(vt.IsMapType() || vt.IsObjectType()) {
			return []VarProblem{{Kind: ProblemType, Path: path, Want: typeText(ty)}}
		}
		var out []VarProblem
		for it := val.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out = append(out, walkType(fmt.Sprintf("%s[%q]", path, k.AsString()), e, ty.ElementType(), cty.NilVal)...)
		}
		return out
	default:
		if _, err := convert.Convert(val, ty); err != nil {
			return []VarProblem{{Kind: ProblemType, Path: path, Want: typeText(ty)}}
		}
		return nil
	}
}

func exampleAttr(ex cty.Value, name string) cty.Value {
	if ex == cty.NilVal || ex.IsNull() || !ex.IsKnown() {
		return cty.NilVal
	}
	t := ex.Type()
	var v cty.Value
	switch {
	case t.IsObjectType() && t.HasAttribute(name):
		v = ex.GetAttr(name)
	case t.IsMapType() && ex.HasIndex(cty.StringVal(name)).True():
		v = ex.Index(cty.StringVal(name))
	default:
		return cty.NilVal
	}
	if v.IsNull() {
		return cty.NilVal
	}
	return v
}

func firstElem(ex cty.Value) cty.Value {
	if ex == cty.NilVal || ex.IsNull() || !ex.IsKnown() || !ex.CanIterateElements() || ex.LengthInt() == 0 {
		return cty.NilVal
	}
	it := ex.ElementIterator()
	it.Next()
	_, e := it.Element()
	return e
}

// fieldHomes lists where a field of this name lives inside the declared
// variables' types: gpu_cluster → slurm_nodeset_workers[*].gpu_cluster.
func fieldHomes(decl map[string]*Variable, field string) []string {
	var out []string
	var walk func(path string, ty cty.Type, depth int)
	walk = func(path string, ty cty.Type, depth int) {
		if depth > 8 {
			return
		}
		switch {
		case ty.IsObjectType():
			for _, name := range sortedKeys(ty.AttributeTypes()) {
				if name == field {
					out = append(out, path+"."+name)
				}
				walk(path+"."+name, ty.AttributeType(name), depth+1)
			}
		case ty.IsListType() || ty.IsSetType():
			walk(path+"[*]", ty.ElementType(), depth+1)
		case ty.IsMapType():
			walk(path+"[*]", ty.ElementType(), depth+1)
		}
	}
	for _, name := range sortedKeys(decl) {
		walk(name, decl[name].Type, 0)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// typeText writes a type the way it is declared: object({a = number}).
func typeText(ty cty.Type) string {
	switch {
	case ty == cty.DynamicPseudoType:
		return "any"
	case ty.IsPrimitiveType():
		return ty.FriendlyNameForConstraint()
	case ty.IsObjectType():
		var parts []string
		for _, name := range sortedKeys(ty.AttributeTypes()) {
			t := typeText(ty.AttributeType(name))
			if ty.AttributeOptional(name) {
				t = "optional(" + t + ")"
			}
			parts = append(parts, name+" = "+t)
		}
		return "object({" + strings.Join(parts, ", ") + "})"
	case ty.IsListType():
		return "list(" + typeText(ty.ElementType()) + ")"
	case ty.IsSetType():
		return "set(" + typeText(ty.ElementType()) + ")"
	case ty.IsMapType():
		return "map(" + typeText(ty.ElementType()) + ")"
	default:
		return ty.FriendlyNameForConstraint()
	}
}

// hclText writes a known value as HCL, on one line.
func hclText(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	if !v.IsKnown() {
		return "(unknown)"
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return strconv.Quote(v.AsString())
	case t == cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case t == cty.Bool:
		return strconv.FormatBool(v.True())
	case t.IsObjectType() || t.IsMapType():
		var parts []string
		m := v.AsValueMap()
		for _, k := range sortedKeys(m) {
			parts = append(parts, k+" = "+hclText(m[k]))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case t.IsListType() || t.IsSetType() || t.IsTupleType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			parts = append(parts, hclText(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return v.GoString()
}

// VarTypes turns the type problems into findings: one per variable, every
// field in it, errors (Terraform refuses a value that misses a required
// attribute, and drops unexpected ones or undeclared variables without a
// word, so what the user set is not what the cluster gets).
func VarTypes(c *Config) []Finding {
	problems := CheckVarTypes(c)
	byVar := map[string][]VarProblem{}
	var order []string
	for _, p := range problems {
		root := rootName(p.Path)
		if _, ok := byVar[root]; !ok {
			order = append(order, root)
		}
		byVar[root] = append(byVar[root], p)
	}
	decl := Variables(c)
	var out []Finding
	for _, name := range order {
		ps := byVar[name]
		loc := c.VarOrigins[name]
		f := Finding{Check: CheckVariables, Severity: Error, Locations: []Location{loc}}
		var lines, fixes []string
		for _, p := range ps {
			line := "  " + p.Path + ": " + problemText(p)
			lines = append(lines, line)
			if p.Instead != "" {
				fixes = append(fixes, p.Path+": "+p.Instead)
			}
		}
		if v, ok := decl[name]; ok {
			f.Summary = fmt.Sprintf("%s:%d: %s does not fit the type declared at %s:%d (%d field(s))", loc.File, loc.Line, name, v.Location.File, v.Location.Line, len(ps))
			f.Detail = "Terraform refuses a value missing a required attribute (\"Invalid value for input variable\") and drops attributes the type does not have without a word.\n" + strings.Join(lines, "\n")
		} else {
			f.Summary = fmt.Sprintf("%s:%d: %s is not a variable of this configuration", loc.File, loc.Line, name)
			f.Detail = "Terraform only warns (\"Value for undeclared variable\") and ignores it: the setting has no effect.\n" + strings.Join(lines, "\n")
		}
		f.Fix = strings.Join(fixes, "; ")
		if f.Fix == "" {
			f.Fix = "write the value in the shape of the declared type"
		}
		out = append(out, f)
	}
	return out
}

func problemText(p VarProblem) string {
	switch p.Kind {
	case ProblemMissing:
		return "required, not set (" + p.Want + ")"
	case ProblemUnexpected:
		return "not an attribute of the type"
	case ProblemUndeclared:
		return "no such variable"
	case ProblemNull:
		return "null, but the variable is not nullable"
	default:
		return "wrong type, want " + p.Want
	}
}

// rootName is the variable name a field path starts with.
func rootName(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}
