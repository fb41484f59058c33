package preflight

import (
	"fmt"
	"strconv"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/zclconf/go-cty/cty"
)

// pathStep is one step of a variable path: an attribute, then optionally
// an index ("[2]") or every element ("[*]").
type pathStep struct {
	attr  string
	index int // -1: none; -2: every element
}

const (
	noIndex  = -1
	allIndex = -2
)

// parseVarPath parses "filestore_jail_submounts[*].spec.size_gibibytes".
func parseVarPath(p string) ([]pathStep, error) {
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	var steps []pathStep
	for _, seg := range strings.Split(p, ".") {
		st := pathStep{attr: seg, index: noIndex}
		if i := strings.IndexByte(seg, '['); i >= 0 {
			if !strings.HasSuffix(seg, "]") {
				return nil, fmt.Errorf("path %q: unterminated index in %q", p, seg)
			}
			st.attr = seg[:i]
			idx := seg[i+1 : len(seg)-1]
			if idx == "*" {
				st.index = allIndex
			} else {
				n, err := strconv.Atoi(idx)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("path %q: index %q is not * or a number", p, idx)
				}
				st.index = n
			}
		}
		if st.attr == "" {
			return nil, fmt.Errorf("path %q: empty attribute name", p)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// pathMatch is one value a path resolved to.
type pathMatch struct {
	path  string    // concrete: filestore_jail_submounts[1].spec.size_gibibytes
	value cty.Value // the value at the path
	elem  cty.Value // the element a "[*]" matched (for labels); NilVal if none
}

// resolve walks steps through vars. Missing or null attributes end a branch
// silently: "spec" is null when a filesystem is "existing" instead.
func resolve(vars map[string]cty.Value, steps []pathStep) []pathMatch {
	root, ok := vars[steps[0].attr]
	if !ok {
		return nil
	}
	var out []pathMatch
	var walk func(v cty.Value, i int, path string, elem cty.Value)
	walk = func(v cty.Value, i int, path string, elem cty.Value) {
		if v.IsNull() || !v.IsKnown() {
			return
		}
		st := steps[i]
		if i > 0 {
			ty := v.Type()
			if !(ty.IsObjectType() || ty.IsMapType()) {
				return
			}
			if ty.IsObjectType() && !ty.HasAttribute(st.attr) {
				return
			}
			if ty.IsMapType() && !v.HasIndex(cty.StringVal(st.attr)).True() {
				return
			}
			if ty.IsObjectType() {
				v = v.GetAttr(st.attr)
			} else {
				v = v.Index(cty.StringVal(st.attr))
			}
			path += "." + st.attr
			if v.IsNull() || !v.IsKnown() {
				return
			}
		}
		next := func(v cty.Value, path string, elem cty.Value) {
			if i+1 == len(steps) {
				out = append(out, pathMatch{path: path, value: v, elem: elem})
				return
			}
			walk(v, i+1, path, elem)
		}
		switch st.index {
		case noIndex:
			next(v, path, elem)
		default:
			ty := v.Type()
			if !(ty.IsListType() || ty.IsTupleType() || ty.IsSetType()) {
				return
			}
			n := 0
			for it := v.ElementIterator(); it.Next(); n++ {
				_, ev := it.Element()
				if st.index == allIndex || st.index == n {
					next(ev, fmt.Sprintf("%s[%d]", path, n), ev)
				}
			}
		}
	}
	walk(root, 0, steps[0].attr, cty.NilVal)
	return out
}

// getString reads a string attribute of an object, if it has one.
func getString(v cty.Value, attr string) (string, bool) {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
		return "", false
	}
	ty := v.Type()
	if !ty.IsObjectType() || !ty.HasAttribute(attr) {
		return "", false
	}
	a := v.GetAttr(attr)
	if a.IsNull() || !a.IsKnown() || !a.Type().Equals(cty.String) {
		return "", false
	}
	return a.AsString(), true
}

func numberBytes(v cty.Value, unit string) (Bytes, bool) {
	if v.IsNull() || !v.IsKnown() || !v.Type().Equals(cty.Number) {
		return 0, false
	}
	mult, err := unitBytes(unit)
	if err != nil {
		return 0, false
	}
	b, err := toBytes(v.AsBigFloat(), mult)
	return b, err == nil
}

// SizeItem is one filesystem size counted against the quota.
type SizeItem struct {
	// Key is where the size is set: a tfvars path or a resource address.
	Key   string `json:"key"`
	Label string `json:"label,omitempty"`
	Bytes Bytes  `json:"bytes"`
}

// TfvarsSizes sums the filesystem sizes the tfvars ask for, following
// rules.Filesystems.TfvarsSizes. Sizes switched off by their enabled_by
// variable are skipped; notes say what was assumed.
func TfvarsSizes(vars map[string]cty.Value, rules *Rules) (items []SizeItem, notes []string) {
	for _, s := range rules.Filesystems.TfvarsSizes {
		steps, err := parseVarPath(s.Path)
		if err != nil {
			continue // rejected when the rules were loaded
		}
		if s.EnabledBy != "" {
			en, _ := parseVarPath(s.EnabledBy)
			ms := resolve(vars, en)
			switch {
			case len(ms) == 1 && ms[0].value.Type().Equals(cty.Bool) && ms[0].value.False():
				continue
			case len(ms) == 0:
				if len(resolve(vars, steps)) > 0 {
					notes = append(notes, fmt.Sprintf("%s is not set; counting %s as enabled", s.EnabledBy, s.Path))
				}
			}
		}
		for _, m := range resolve(vars, steps) {
			b, ok := numberBytes(m.value, s.Unit)
			if !ok {
				notes = append(notes, fmt.Sprintf("%s is not a number; not counted", m.path))
				continue
			}
			item := SizeItem{Key: m.path, Bytes: b}
			if s.LabelAttribute != "" {
				item.Label, _ = getString(m.elem, s.LabelAttribute)
			}
			items = append(items, item)
		}
	}
	return items, notes
}

// Quota refuses filesystem sizes in the tfvars that add up to more than
// quota (seed problem 5: jail 2048 + two submounts of 2048 + controller
// spool 128 + accounting 512 GiB = 6784 GiB = 7,284,264,534,016 bytes
// against a 5 TiB compute.filesystem.size.network-ssd quota, found only
// when the cloud refused the create). quota <= 0 means unknown: the total
// is reported as Info.
func Quota(c *Config, quota Bytes, rules *Rules) []Finding {
	items, notes := TfvarsSizes(c.Vars, rules)
	return quotaFindings(items, notes, quota, rules, "in "+varFilesText(c))
}

// PlanQuota is Quota on a plan: it sums the planned size of every
// filesystem resource the plan keeps or creates, so sizes computed inside
// modules and filesystems added outside the tfvars layout are counted too.
func PlanQuota(plan *tfjson.Plan, quota Bytes, rules *Rules) []Finding {
	var items []SizeItem
	var notes []string
	for _, rc := range plan.ResourceChanges {
		fs, ok := rules.filesystem(rc.Type)
		if !ok || rc.Change == nil || rc.Mode != tfjson.ManagedResourceMode {
			continue
		}
		if rc.Change.Actions.Delete() || rc.Change.Actions.Read() {
			continue
		}
		b, ok := sizeOf(rc.Change.After, fs)
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: size unknown until apply; not counted", rc.Address))
			continue
		}
		items = append(items, SizeItem{Key: rc.Address, Bytes: b})
	}
	return quotaFindings(items, notes, quota, rules, "in the plan")
}

func varFilesText(c *Config) string {
	if len(c.VarFiles) == 0 {
		return "the variable defaults"
	}
	return strings.Join(c.VarFiles, ", ")
}

func quotaFindings(items []SizeItem, notes []string, quota Bytes, rules *Rules, where string) []Finding {
	if len(items) == 0 {
		return nil
	}
	var total Bytes
	var lines []string
	for _, it := range items {
		total += it.Bytes
		line := fmt.Sprintf("  %-60s %s", it.Key, it.Bytes.Human())
		if it.Label != "" {
			line = fmt.Sprintf("  %-60s %s", it.Key+" ("+it.Label+")", it.Bytes.Human())
		}
		lines = append(lines, line)
	}
	breakdown := strings.Join(lines, "\n")
	if len(notes) > 0 {
		breakdown += "\n  note: " + strings.Join(notes, "\n  note: ")
	}
	quotaName := rules.Filesystems.QuotaName
	if quotaName == "" {
		quotaName = "filesystem size"
	}
	if quota <= 0 {
		return []Finding{{
			Check: CheckQuota, Severity: Info, SeedProblem: 5,
			Summary: fmt.Sprintf("filesystems %s request %s in total", where, total),
			Detail:  breakdown,
			Fix:     fmt.Sprintf("pass --quota (your %s quota, e.g. 5TiB) to have this checked before apply", quotaName),
		}}
	}
	if total <= quota {
		return []Finding{{
			Check: CheckQuota, Severity: Info, SeedProblem: 5,
			Summary: fmt.Sprintf("filesystems %s request %s, within the %s quota of %s", where, total.Human(), quotaName, quota.Human()),
			Detail:  breakdown,
			Fix:     "nothing to do",
		}}
	}
	over := total - quota
	return []Finding{{
		Check: CheckQuota, Severity: Error, SeedProblem: 5,
		Summary: fmt.Sprintf("filesystems %s request %s but the %s quota is %s: %s over",
			where, total, quotaName, quota, over.Human()),
		Detail: "The cloud would refuse the create half-way through apply (\"Quota limit exceeded ... " + quotaName +
			" (limit " + strconv.FormatInt(int64(quota), 10) + ", requested " + strconv.FormatInt(int64(total), 10) + ")\").\n" + breakdown,
		Fix: fmt.Sprintf("reduce the sizes by at least %s (e.g. 1024 GiB each for jail and submounts instead of 2048), "+
			"or mount an existing filesystem (`existing = { id = ... }` instead of `spec`), or ask for a larger %s quota", over.Human(), quotaName),
	}}
}
