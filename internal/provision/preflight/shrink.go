package preflight

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// Shrink refuses a plan that updates a filesystem to a smaller size (seed
// problem 6: the jail submounts were created at 2048 GiB and the tfvars
// then said 1024; the cloud answered "Size cannot be less than current
// actual size" in the middle of apply). A plan that replaces a filesystem
// (delete, then create) is reported as a warning: its data is lost.
func Shrink(plan *tfjson.Plan, rules *Rules, dir string) []Finding {
	var out []Finding
	for _, rc := range plan.ResourceChanges {
		fs, ok := rules.filesystem(rc.Type)
		if !ok || rc.Change == nil || rc.Mode != tfjson.ManagedResourceMode {
			continue
		}
		acts := rc.Change.Actions
		before, okBefore := sizeOf(rc.Change.Before, fs)
		after, okAfter := sizeOf(rc.Change.After, fs)
		id := stringAttr(rc.Change.Before, fs.IDAttribute)
		switch {
		case acts.Update() && okBefore && okAfter && after < before:
			out = append(out, shrinkFinding(rc.Address, id, before, after, fs, rules, dir))
		case acts.Replace():
			f := Finding{
				Check: CheckShrink, Severity: Warning, SeedProblem: 6,
				Summary: fmt.Sprintf("%s will be destroyed and recreated: the data on it is lost", rc.Address),
				Fix:     "copy what you need off the filesystem first, or change the configuration so that it is updated in place",
			}
			if okBefore && okAfter {
				f.Detail = fmt.Sprintf("size %s → %s", before.Human(), after.Human())
			}
			out = append(out, f)
		}
	}
	return out
}

func shrinkFinding(addr, id string, before, after Bytes, fs FilesystemResource, rules *Rules, dir string) Finding {
	if id == "" {
		id = "<filesystem-id>"
	}
	del := execTemplate(rules.deletes[fs.Type], struct{ ID, Address string }{id, addr})
	if del == "" {
		del = "# delete the filesystem " + id + " with your cloud's CLI or console"
	}
	dirFlag := ""
	if dir != "" && dir != "." {
		dirFlag = " --dir " + shellQuote(dir)
	}
	return Finding{
		Check: CheckShrink, Severity: Error, SeedProblem: 6,
		Summary: fmt.Sprintf("%s would shrink from %s to %s; filesystems cannot shrink in place", addr, before.Human(), after.Human()),
		Detail: "The cloud refuses the update (\"Size cannot be less than current actual size\") after other resources " +
			"may already have changed. Growing is fine; shrinking means a new, empty filesystem.",
		Fix: fmt.Sprintf("either keep the size: set it back to %s (or more) in your tfvars and plan again; "+
			"or, if the data on it can go, recreate it empty at the new size with the commands below "+
			"(copy what you need off it first — this deletes it)", before.Human()),
		Commands: []string{
			"terraform state rm " + shellQuote(addr),
			del,
			"sopilot cluster plan" + dirFlag,
			"sopilot cluster apply" + dirFlag,
		},
	}
}

// sizeOf reads the first size attribute set in a resource's planned or
// prior values (a JSON object as terraform show -json gives it).
func sizeOf(values any, fs FilesystemResource) (Bytes, bool) {
	for _, a := range fs.SizeAttributes {
		v, ok := lookup(values, a.Path)
		if !ok || v == nil {
			continue
		}
		f, ok := toBigFloat(v)
		if !ok {
			continue
		}
		mult, err := unitBytes(a.Unit)
		if err != nil {
			continue
		}
		b, err := toBytes(f, mult)
		if err != nil {
			continue
		}
		return b, true
	}
	return 0, false
}

func lookup(values any, path string) (any, bool) {
	cur := values
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func toBigFloat(v any) (*big.Float, bool) {
	switch n := v.(type) {
	case float64:
		return new(big.Float).SetFloat64(n), true
	case json.Number:
		f, ok := new(big.Float).SetPrec(128).SetString(n.String())
		return f, ok
	case string: // some providers keep int64 sizes as strings
		f, ok := new(big.Float).SetPrec(128).SetString(n)
		return f, ok
	}
	return nil, false
}

func stringAttr(values any, path string) string {
	if path == "" {
		return ""
	}
	v, ok := lookup(values, path)
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

// shellQuote quotes s for a POSIX shell when it needs quoting: resource
// addresses carry brackets and double quotes (jail_submount["inference"]).
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
