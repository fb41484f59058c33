package preflight

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// DiskItem is one kind of compute disk the tfvars ask for: Count disks of
// Each bytes, of one disk type.
type DiskItem struct {
	Key   string `json:"key"`
	What  string `json:"what"`
	Label string `json:"label,omitempty"`
	Type  string `json:"type"`
	Count int64  `json:"count"`
	Each  Bytes  `json:"each_bytes"`
	Note  string `json:"note,omitempty"`
}

// Total is Count × Each.
func (d DiskItem) Total() Bytes { return Bytes(d.Count) * d.Each }

// DiskQuotaName is the quota a disk type counts against:
// compute.disk.size.network-ssd-io-m3 for NETWORK_SSD_IO_M3.
func (r *Rules) DiskQuotaName(diskType string) string {
	return r.Disks.QuotaPrefix + strings.ReplaceAll(strings.ToLower(diskType), "_", "-")
}

// TfvarsDisks lists the compute disks the tfvars ask for, following
// rules.Disks: boot disks of every node set, the disks each worker gets for
// node-local submounts and images, the NFS server's disks. Notes say what
// could not be counted.
func TfvarsDisks(vars map[string]cty.Value, rules *Rules) (items []DiskItem, notes []string) {
	for _, d := range rules.Disks.Sizes {
		if d.EnabledBy != "" {
			en, _ := parseVarPath(d.EnabledBy)
			ms := resolve(vars, en)
			if len(ms) != 1 || !ms[0].value.Type().Equals(cty.Bool) || ms[0].value.False() {
				continue // off, or not set: the recipe's defaults are off
			}
		}
		matches := []pathMatch{{path: "(fixed " + d.Size + ")", elem: cty.NilVal}}
		if d.Path != "" {
			steps, _ := parseVarPath(d.Path)
			matches = resolve(vars, steps)
		}
		for _, m := range matches {
			var each Bytes
			var ok bool
			if d.Path != "" {
				each, ok = numberBytes(m.value, d.Unit)
			} else {
				var err error
				each, err = ParseSize(d.Size)
				ok = err == nil
			}
			if !ok {
				notes = append(notes, fmt.Sprintf("%s (%s) is not a number; not counted", m.path, d.What))
				continue
			}
			typ, ok := diskType(vars, d, m.elem)
			if !ok {
				notes = append(notes, fmt.Sprintf("%s: the disk type is not set; not counted", m.path))
				continue
			}
			count, ok := diskCount(vars, d, m.elem)
			if !ok {
				notes = append(notes, fmt.Sprintf("%s: how many (%s) is not set; not counted", m.path, countText(d)))
				continue
			}
			if count == 0 {
				continue
			}
			it := DiskItem{Key: m.path, What: d.What, Type: typ, Count: count, Each: each, Note: d.Note}
			if d.LabelAttribute != "" {
				it.Label, _ = getString(m.elem, d.LabelAttribute)
			}
			items = append(items, it)
		}
	}
	return items, notes
}

func diskType(vars map[string]cty.Value, d DiskSize, elem cty.Value) (string, bool) {
	switch {
	case d.TypeAttribute != "":
		return getPathString(elem, d.TypeAttribute)
	case d.TypePath != "":
		steps, _ := parseVarPath(d.TypePath)
		ms := resolve(vars, steps)
		if len(ms) != 1 || !ms[0].value.Type().Equals(cty.String) {
			return "", false
		}
		return ms[0].value.AsString(), true
	default:
		return d.Type, d.Type != ""
	}
}

func diskCount(vars map[string]cty.Value, d DiskSize, elem cty.Value) (int64, bool) {
	switch {
	case d.CountAttribute != "":
		v, ok := getPath(elem, d.CountAttribute)
		if !ok {
			return 0, false
		}
		return wholeNumber(v)
	case len(d.CountPaths) > 0:
		var n int64
		found := false
		for _, p := range d.CountPaths {
			steps, _ := parseVarPath(p)
			for _, m := range resolve(vars, steps) {
				k, ok := wholeNumber(m.value)
				if !ok {
					return 0, false
				}
				n += k
				found = true
			}
		}
		return n, found
	default:
		return 1, true
	}
}

func countText(d DiskSize) string {
	if d.CountAttribute != "" {
		return d.CountAttribute
	}
	return strings.Join(d.CountPaths, " + ")
}

func wholeNumber(v cty.Value) (int64, bool) {
	if v.IsNull() || !v.IsKnown() || !v.Type().Equals(cty.Number) {
		return 0, false
	}
	f := v.AsBigFloat()
	if !f.IsInt() || f.Sign() < 0 {
		return 0, false
	}
	n, acc := f.Int64()
	return n, acc == big.Exact && n < 1<<20
}

// getPath walks a dotted attribute path ("boot_disk.type") in an object.
func getPath(v cty.Value, path string) (cty.Value, bool) {
	for _, a := range strings.Split(path, ".") {
		if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
			return cty.NilVal, false
		}
		ty := v.Type()
		switch {
		case ty.IsObjectType() && ty.HasAttribute(a):
			v = v.GetAttr(a)
		case ty.IsMapType() && v.HasIndex(cty.StringVal(a)).True():
			v = v.Index(cty.StringVal(a))
		default:
			return cty.NilVal, false
		}
	}
	if v.IsNull() || !v.IsKnown() {
		return cty.NilVal, false
	}
	return v, true
}

func getPathString(v cty.Value, path string) (string, bool) {
	s, ok := getPath(v, path)
	if !ok || !s.Type().Equals(cty.String) {
		return "", false
	}
	return s.AsString(), true
}

// DiskQuota sums the compute disks the tfvars ask for per disk type and
// checks each sum against its quota (quotas: quota name → size; a type
// without one is reported as Info). The filesystem quota check sees only
// filesystems; the 1.20.1 recipe's node-local disks (1024 GiB per worker
// and submount, 930 GiB image disk per worker), its NFS server's 3720 GiB
// disk and every node's boot disk count against the disk quotas instead.
func DiskQuota(c *Config, quotas map[string]Bytes, rules *Rules) []Finding {
	items, notes := TfvarsDisks(c.Vars, rules)
	if len(items) == 0 {
		return nil
	}
	byType := map[string][]DiskItem{}
	for _, it := range items {
		byType[it.Type] = append(byType[it.Type], it)
	}
	types := sortedKeys(byType)
	var out []Finding
	for _, typ := range types {
		var total Bytes
		var lines []string
		for _, it := range byType[typ] {
			total += it.Total()
			key := it.Key
			if it.Label != "" {
				key += " (" + it.Label + ")"
			}
			line := fmt.Sprintf("  %-55s %3d × %-10s = %s  %s", key, it.Count, it.Each.Human(), it.Total().Human(), it.What)
			if it.Note != "" {
				line += " (" + it.Note + ")"
			}
			lines = append(lines, line)
		}
		detail := strings.Join(lines, "\n")
		if len(notes) > 0 && typ == types[0] {
			detail += "\n  note: " + strings.Join(notes, "\n  note: ")
		}
		name := rules.DiskQuotaName(typ)
		f := Finding{Check: CheckDiskQuota, SeedProblem: 5, Detail: detail}
		quota, ok := quotas[name]
		switch {
		case !ok || quota <= 0:
			f.Severity = Info
			f.Summary = fmt.Sprintf("%s disks in %s request %s in total (quota %s)", typ, varFilesText(c), total, name)
			f.Fix = fmt.Sprintf("pass --disk-quota %s=SIZE to have this checked before apply", name)
		case total <= quota:
			f.Severity = Info
			f.Summary = fmt.Sprintf("%s disks in %s request %s, within the %s quota of %s", typ, varFilesText(c), total.Human(), name, quota.Human())
			f.Fix = "nothing to do"
		default:
			f.Severity = Error
			f.Summary = fmt.Sprintf("%s disks in %s request %s but the %s quota is %s: %s over", typ, varFilesText(c), total, name, quota, (total - quota).Human())
			f.Detail = "The cloud would refuse a disk half-way through apply, or the CSI driver a worker's volume after it (the node-local disks are created per worker pod).\n" + detail
			f.Fix = fmt.Sprintf("reduce the sizes or the node counts by at least %s, or ask for a larger %s quota", (total - quota).Human(), name)
		}
		out = append(out, f)
	}
	return out
}

// ParseDiskQuotas reads --disk-quota values: NAME=SIZE, NAME being the
// quota name (compute.disk.size.network-ssd) or its last part
// (network-ssd).
func ParseDiskQuotas(specs []string, rules *Rules) (map[string]Bytes, error) {
	out := map[string]Bytes{}
	for _, s := range specs {
		name, size, ok := strings.Cut(s, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: disk quota %q: want NAME=SIZE, e.g. network-ssd=20TiB", ErrBadSize, s)
		}
		b, err := ParseSize(strings.TrimSpace(size))
		if err != nil {
			return nil, fmt.Errorf("disk quota %q: %w", s, err)
		}
		if !strings.Contains(name, ".") {
			name = rules.Disks.QuotaPrefix + strings.ToLower(name)
		}
		out[name] = b
	}
	return out, nil
}
