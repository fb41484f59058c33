package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// Config is a Terraform installation directory read for the checks: the
// root module, every local module it reaches ("./x", "../x" sources, the
// way Soperator's installations point at soperator/modules), the module
// calls whose directory is missing, and the input variables' values as
// Terraform would load them.
type Config struct {
	// Dir is the installation directory (the root module).
	Dir     string
	Modules []*Module
	// Calls are every local module call found, in the order found.
	Calls []*ModuleCall
	// Vars are the root module's input variables: declared defaults,
	// overridden by terraform.tfvars, *.auto.tfvars and the var files given,
	// in Terraform's order. Only literal values are known; variables whose
	// value needs functions or references are absent.
	Vars map[string]cty.Value
	// VarFiles are the variable files that were read, in order.
	VarFiles []string
	// VarOrigins say where each value in Vars that came from a variable
	// file was set: the last file that set it, and the line.
	VarOrigins map[string]Location
}

// Module is one module directory.
type Module struct {
	Dir   string // as found on disk
	Rel   string // relative to Config.Dir, for messages ("." for the root)
	Files []*File
}

// File is one .tf or .tf.json file.
type File struct {
	Path  string // relative to Config.Dir, for messages
	Src   []byte
	HCL   *hcl.File
	Body  *hclsyntax.Body // nil for JSON files and for files that did not parse
	Diags hcl.Diagnostics
}

// ModuleCall is a `module "name" { source = "./..." }` block with a local
// source.
type ModuleCall struct {
	Name   string
	Source string
	// Dir is the source resolved against the calling module's directory.
	Dir     string
	Caller  *Module
	File    *File
	Line    int
	Block   *hclsyntax.Block
	Missing bool
}

// ErrNoConfig is returned when the directory holds no .tf files.
var ErrNoConfig = errors.New("no Terraform configuration files")

// LoadConfig reads the installation in dir. varFiles are extra variable
// files (as -var-file), read after terraform.tfvars and *.auto.tfvars.
func LoadConfig(dir string, varFiles []string) (*Config, error) {
	root, err := loadModule(dir, dir)
	if err != nil {
		return nil, err
	}
	if len(root.Files) == 0 {
		return nil, fmt.Errorf("%s: %w (is --dir the installation directory, e.g. soperator/installations/<name>?)", dir, ErrNoConfig)
	}
	c := &Config{Dir: dir, Modules: []*Module{root}}
	seen := map[string]bool{absClean(dir): true}
	for i := 0; i < len(c.Modules); i++ {
		m := c.Modules[i]
		for _, call := range moduleCalls(m) {
			c.Calls = append(c.Calls, call)
			key := absClean(call.Dir)
			if seen[key] {
				continue
			}
			st, err := os.Stat(call.Dir)
			if err != nil || !st.IsDir() {
				call.Missing = true
				continue
			}
			seen[key] = true
			sub, err := loadModule(dir, call.Dir)
			if err != nil {
				return nil, err
			}
			c.Modules = append(c.Modules, sub)
		}
	}
	if c.Vars, c.VarFiles, c.VarOrigins, err = loadVars(root, dir, varFiles); err != nil {
		return nil, err
	}
	return c, nil
}

func absClean(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

func loadModule(root, dir string) (*Module, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read module directory: %w", err)
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		rel = dir
	}
	m := &Module{Dir: dir, Rel: rel}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tf.json")) {
			continue
		}
		path := filepath.Join(dir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		f := &File{Path: filepath.Join(rel, name), Src: src}
		if strings.HasSuffix(name, ".json") {
			f.HCL, f.Diags = json.Parse(src, f.Path)
		} else {
			f.HCL, f.Diags = hclsyntax.ParseConfig(src, f.Path, hcl.InitialPos)
			if body, ok := f.HCL.Body.(*hclsyntax.Body); ok && !f.Diags.HasErrors() {
				f.Body = body
			}
		}
		m.Files = append(m.Files, f)
	}
	return m, nil
}

// moduleCalls lists the module blocks of m whose source is a local path.
// Registry and git sources are Terraform's to download at init.
func moduleCalls(m *Module) []*ModuleCall {
	var out []*ModuleCall
	for _, f := range m.Files {
		if f.Body == nil {
			continue
		}
		for _, b := range f.Body.Blocks {
			if b.Type != "module" || len(b.Labels) != 1 {
				continue
			}
			attr, ok := b.Body.Attributes["source"]
			if !ok {
				continue
			}
			v, diags := attr.Expr.Value(nil)
			if diags.HasErrors() || !v.Type().Equals(cty.String) || v.IsNull() {
				continue
			}
			src := v.AsString()
			if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
				continue
			}
			out = append(out, &ModuleCall{
				Name:   b.Labels[0],
				Source: src,
				Dir:    filepath.Join(m.Dir, filepath.FromSlash(src)),
				Caller: m,
				File:   f,
				Line:   b.TypeRange.Start.Line,
				Block:  b,
			})
		}
	}
	return out
}

// loadVars gives the root module's variable values in Terraform's order:
// declared defaults, terraform.tfvars, terraform.tfvars.json, *.auto.tfvars
// and *.auto.tfvars.json in lexical order, then the -var-file files.
func loadVars(root *Module, dir string, extra []string) (map[string]cty.Value, []string, map[string]Location, error) {
	vars := map[string]cty.Value{}
	for _, f := range root.Files {
		if f.Body == nil {
			continue
		}
		for _, b := range f.Body.Blocks {
			if b.Type != "variable" || len(b.Labels) != 1 {
				continue
			}
			if attr, ok := b.Body.Attributes["default"]; ok {
				if v, diags := attr.Expr.Value(nil); !diags.HasErrors() {
					vars[b.Labels[0]] = v
				}
			}
		}
	}
	var files []string
	for _, name := range []string{"terraform.tfvars", "terraform.tfvars.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			files = append(files, filepath.Join(dir, name))
		}
	}
	auto, err := filepath.Glob(filepath.Join(dir, "*.auto.tfvars*"))
	if err != nil {
		return nil, nil, nil, err
	}
	slices.Sort(auto)
	for _, a := range auto {
		if strings.HasSuffix(a, ".auto.tfvars") || strings.HasSuffix(a, ".auto.tfvars.json") {
			files = append(files, a)
		}
	}
	files = append(files, extra...)
	origins := map[string]Location{}
	for _, path := range files {
		vals, lines, err := readTfvars(path)
		if err != nil {
			return nil, nil, nil, err
		}
		for k, v := range vals {
			vars[k] = v
			origins[k] = Location{File: path, Line: lines[k], What: k}
		}
	}
	return vars, files, origins, nil
}

// readTfvars reads a .tfvars (HCL) or .tfvars.json file and gives the
// line of each variable. Values that are not literals (they call functions
// or reference something) are skipped: Terraform does not allow them in
// tfvars either.
func readTfvars(path string) (map[string]cty.Value, map[string]int, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("variable file %s: %w", path, err)
		}
		return nil, nil, fmt.Errorf("read variable file: %w", err)
	}
	return parseTfvarsLines(src, path)
}

func parseTfvarsLines(src []byte, name string) (map[string]cty.Value, map[string]int, error) {
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(name, ".json") {
		f, diags = json.Parse(src, name)
	} else {
		f, diags = hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	}
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("variable file %s: %w", name, diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("variable file %s: %w", name, diags)
	}
	out := map[string]cty.Value{}
	lines := map[string]int{}
	for name, attr := range attrs {
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			continue
		}
		out[name] = v
		lines[name] = attr.NameRange.Start.Line
	}
	return out, lines, nil
}
