package preflight

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"

	"github.com/hashicorp/go-version"
)

// Rules are the facts the checks need about the cloud and Terraform: which
// resource type is a filesystem and which attribute holds its size, which
// tfvars keys size the filesystems, which Terraform features need which
// version, how to install each tool, how to look up an existing resource's
// ID. They are data so that a new provider version or another installation
// layout needs a file, not a release. DefaultRules follows the Nebius
// provider and the Soperator installation layout.
type Rules struct {
	Description     string          `json:"description,omitempty"`
	Tools           []ToolRule      `json:"tools"`
	VersionFeatures VersionFeatures `json:"version_features"`
	Filesystems     FilesystemRules `json:"filesystems"`
	Disks           DiskRules       `json:"disks"`
	Imports         ImportRules     `json:"imports"`

	alreadyExists []*regexp.Regexp
	idPatterns    map[string]*regexp.Regexp
	lookups       map[string]*template.Template
	deletes       map[string]*template.Template
}

// ToolRule says why a command-line tool is needed and how to install it.
type ToolRule struct {
	Name        string `json:"name"`
	Why         string `json:"why"`
	Install     string `json:"install"`
	SeedProblem int    `json:"seed_problem,omitempty"`
}

// VersionFeatures maps configuration features to the Terraform version that
// introduced them.
type VersionFeatures struct {
	FunctionPrefixes []FunctionPrefixRule `json:"function_prefixes"`
	Functions        []FunctionRule       `json:"functions"`
	Blocks           []BlockRule          `json:"blocks"`
}

// FunctionPrefixRule matches calls whose name starts with Prefix
// ("provider::" for provider-defined functions).
type FunctionPrefixRule struct {
	Prefix     string `json:"prefix"`
	MinVersion string `json:"min_version"`
	Feature    string `json:"feature"`
	// Symptom is the error an older Terraform prints instead.
	Symptom string `json:"symptom,omitempty"`
}

// FunctionRule matches calls of one built-in function.
type FunctionRule struct {
	Name       string `json:"name"`
	MinVersion string `json:"min_version"`
	Feature    string `json:"feature"`
	// Symptom is the error an older Terraform prints instead.
	Symptom string `json:"symptom,omitempty"`
}

// BlockRule matches top-level blocks of one type.
type BlockRule struct {
	Type       string `json:"type"`
	MinVersion string `json:"min_version"`
	Feature    string `json:"feature"`
	// Symptom is the error an older Terraform prints instead.
	Symptom string `json:"symptom,omitempty"`
}

// FilesystemRules say which planned resources are filesystems and which
// tfvars keys size them.
type FilesystemRules struct {
	Resources   []FilesystemResource `json:"resources"`
	TfvarsSizes []TfvarsSize         `json:"tfvars_sizes"`
	// QuotaName is the cloud's name for the quota the sizes count against,
	// quoted in findings so the user can find it in the console.
	QuotaName string `json:"quota_name,omitempty"`
}

// FilesystemResource describes one resource type that is a filesystem.
type FilesystemResource struct {
	Type string `json:"type"`
	// SizeAttributes are tried in order; the first one set in a resource's
	// values gives its size.
	SizeAttributes []SizeAttribute `json:"size_attributes"`
	// IDAttribute names the attribute holding the cloud ID ("id").
	IDAttribute string `json:"id_attribute"`
	// DeleteCommand is a text/template for the command that deletes the
	// filesystem by hand; it sees .ID and .Address.
	DeleteCommand string `json:"delete_command,omitempty"`
}

// SizeAttribute is a dotted attribute path ("size_bytes",
// "input.size_gibibytes") and the unit of its number.
type SizeAttribute struct {
	Path string `json:"path"`
	Unit string `json:"unit"`
}

// TfvarsSize is a tfvars path holding a filesystem size, e.g.
// "filestore_jail_submounts[*].spec.size_gibibytes".
type TfvarsSize struct {
	Path string `json:"path"`
	Unit string `json:"unit"`
	// LabelAttribute names an attribute of the list element matched by
	// "[*]" that identifies it in findings ("name").
	LabelAttribute string `json:"label_attribute,omitempty"`
	// EnabledBy is a tfvars path to a bool; when it is false the size is
	// not counted (the filesystem is not created).
	EnabledBy string `json:"enabled_by,omitempty"`
}

// DiskRules say which tfvars settings become compute disks. Disks count
// against a quota per disk type, not against the filesystem quota.
type DiskRules struct {
	Sizes []DiskSize `json:"tfvars_sizes"`
	// QuotaPrefix and the disk type, lower case with "-" for "_", name the
	// quota: compute.disk.size. + NETWORK_SSD_IO_M3 →
	// compute.disk.size.network-ssd-io-m3.
	QuotaPrefix string `json:"quota_prefix"`
}

// DiskSize is one kind of disk the tfvars ask for: its size (a tfvars path
// or a constant), its type (a path, an attribute of the "[*]" element, or a
// constant) and how many there are (a count attribute of the element, or
// the sum of the numbers at CountPaths, e.g. every worker node set's size
// for a disk each worker gets; 1 when neither is given).
type DiskSize struct {
	What           string   `json:"what"`
	Path           string   `json:"path,omitempty"`
	Size           string   `json:"size,omitempty"`
	Unit           string   `json:"unit,omitempty"`
	Type           string   `json:"type,omitempty"`
	TypePath       string   `json:"type_path,omitempty"`
	TypeAttribute  string   `json:"type_attribute,omitempty"`
	CountAttribute string   `json:"count_attribute,omitempty"`
	CountPaths     []string `json:"count_paths,omitempty"`
	LabelAttribute string   `json:"label_attribute,omitempty"`
	EnabledBy      string   `json:"enabled_by,omitempty"`
	// Note is said with the item, e.g. that autoscaling may add more.
	Note string `json:"note,omitempty"`
}

// ImportRules turn a provider's "already exists" error into import commands.
type ImportRules struct {
	// AlreadyExists are regular expressions; a diagnostic matching any of
	// them reports a resource that exists in the cloud but not in state.
	AlreadyExists []string         `json:"already_exists"`
	Resources     []ImportResource `json:"resources"`
}

// ImportResource says how to find the cloud ID of a resource type: in the
// error text (IDPattern) or with a command (LookupCommand, a text/template
// seeing .Address and .Type).
type ImportResource struct {
	Type          string `json:"type"`
	IDPattern     string `json:"id_pattern,omitempty"`
	LookupCommand string `json:"lookup_command,omitempty"`
}

//go:embed rules/default.json
var defaultRulesJSON []byte

// ErrInvalidRules is returned (wrapped) for a rules file that does not
// parse or whose patterns, versions or units are malformed.
var ErrInvalidRules = errors.New("invalid preflight rules")

// DefaultRules returns the embedded rules for Nebius Soperator.
func DefaultRules() *Rules {
	r, err := ParseRules(defaultRulesJSON)
	if err != nil {
		panic("embedded rules/default.json: " + err.Error()) // covered by TestDefaultRulesParse
	}
	return r
}

// DefaultRulesJSON returns the embedded rules file, for users to copy.
func DefaultRulesJSON() []byte { return bytes.Clone(defaultRulesJSON) }

// LoadRules reads a rules file; an empty path gives DefaultRules.
func LoadRules(path string) (*Rules, error) {
	if path == "" {
		return DefaultRules(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	r, err := ParseRules(b)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return r, nil
}

// ParseRules decodes and validates a rules document. Unknown fields are
// errors, so that a typo does not silently disable a check.
func ParseRules(b []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Rules
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRules, err)
	}
	if err := r.compile(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRules, err)
	}
	return &r, nil
}

func (r *Rules) compile() error {
	var errs []error
	checkVersion := func(where, v string) {
		if _, err := version.NewVersion(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: min_version %q: %v", where, v, err))
		}
	}
	for _, f := range r.VersionFeatures.FunctionPrefixes {
		checkVersion("function prefix "+f.Prefix, f.MinVersion)
		if f.Prefix == "" {
			errs = append(errs, errors.New("function prefix: empty prefix"))
		}
	}
	for _, f := range r.VersionFeatures.Functions {
		checkVersion("function "+f.Name, f.MinVersion)
	}
	for _, b := range r.VersionFeatures.Blocks {
		checkVersion("block "+b.Type, b.MinVersion)
	}
	r.deletes = map[string]*template.Template{}
	for _, fs := range r.Filesystems.Resources {
		if fs.Type == "" || len(fs.SizeAttributes) == 0 {
			errs = append(errs, fmt.Errorf("filesystem resource %q: type and size_attributes are required", fs.Type))
		}
		for _, a := range fs.SizeAttributes {
			if _, err := unitBytes(a.Unit); err != nil {
				errs = append(errs, fmt.Errorf("filesystem resource %s attribute %s: %v", fs.Type, a.Path, err))
			}
		}
		if fs.DeleteCommand != "" {
			t, err := template.New(fs.Type).Option("missingkey=error").Parse(fs.DeleteCommand)
			if err != nil {
				errs = append(errs, fmt.Errorf("filesystem resource %s delete_command: %v", fs.Type, err))
			}
			r.deletes[fs.Type] = t
		}
	}
	for _, s := range r.Filesystems.TfvarsSizes {
		if _, err := unitBytes(s.Unit); err != nil {
			errs = append(errs, fmt.Errorf("tfvars size %s: %v", s.Path, err))
		}
		if _, err := parseVarPath(s.Path); err != nil {
			errs = append(errs, fmt.Errorf("tfvars size: %v", err))
		}
		if s.EnabledBy != "" {
			if _, err := parseVarPath(s.EnabledBy); err != nil {
				errs = append(errs, fmt.Errorf("tfvars size %s enabled_by: %v", s.Path, err))
			}
		}
	}
	for _, d := range r.Disks.Sizes {
		if (d.Path == "") == (d.Size == "") {
			errs = append(errs, fmt.Errorf("disk %q: exactly one of path and size", d.What))
		}
		if d.Path != "" {
			if _, err := unitBytes(d.Unit); err != nil {
				errs = append(errs, fmt.Errorf("disk %q: %v", d.What, err))
			}
		}
		if d.Size != "" {
			if _, err := ParseSize(d.Size); err != nil {
				errs = append(errs, fmt.Errorf("disk %q size: %v", d.What, err))
			}
		}
		if d.Type == "" && d.TypePath == "" && d.TypeAttribute == "" {
			errs = append(errs, fmt.Errorf("disk %q: one of type, type_path, type_attribute is required", d.What))
		}
		for _, p := range append([]string{d.Path, d.TypePath, d.EnabledBy}, d.CountPaths...) {
			if p == "" {
				continue
			}
			if _, err := parseVarPath(p); err != nil {
				errs = append(errs, fmt.Errorf("disk %q: %v", d.What, err))
			}
		}
	}
	r.alreadyExists = nil
	for _, p := range r.Imports.AlreadyExists {
		re, err := regexp.Compile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("already_exists pattern %q: %v", p, err))
			continue
		}
		r.alreadyExists = append(r.alreadyExists, re)
	}
	r.idPatterns = map[string]*regexp.Regexp{}
	r.lookups = map[string]*template.Template{}
	for _, ir := range r.Imports.Resources {
		if ir.IDPattern != "" {
			re, err := regexp.Compile(ir.IDPattern)
			if err != nil {
				errs = append(errs, fmt.Errorf("import resource %s id_pattern: %v", ir.Type, err))
			} else {
				r.idPatterns[ir.Type] = re
			}
		}
		if ir.LookupCommand != "" {
			t, err := template.New(ir.Type).Option("missingkey=error").Parse(ir.LookupCommand)
			if err != nil {
				errs = append(errs, fmt.Errorf("import resource %s lookup_command: %v", ir.Type, err))
			} else {
				r.lookups[ir.Type] = t
			}
		}
	}
	for _, t := range r.Tools {
		if t.Name == "" || strings.ContainsAny(t.Name, "/ \t") {
			errs = append(errs, fmt.Errorf("tool %q: name must be a bare command name", t.Name))
		}
	}
	return errors.Join(errs...)
}

// Tool returns the rule for a tool, or a generic one.
func (r *Rules) Tool(name string) ToolRule {
	for _, t := range r.Tools {
		if t.Name == name {
			return t
		}
	}
	return ToolRule{Name: name, Why: "named in the configuration", Install: "install " + name + " with your package manager and make sure it is on PATH"}
}

// filesystem returns the rule for a resource type, if it is a filesystem.
func (r *Rules) filesystem(resourceType string) (FilesystemResource, bool) {
	for _, fs := range r.Filesystems.Resources {
		if fs.Type == resourceType {
			return fs, true
		}
	}
	return FilesystemResource{}, false
}

func execTemplate(t *template.Template, data any) string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return ""
	}
	return b.String()
}
