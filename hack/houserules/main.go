// Command houserules checks the import rules that gofmt, go vet and
// staticcheck do not know about (rules.go): os/exec only where Slurm,
// Terraform and NCCL are run, generated protobuf packages only at the
// edges, internal/health independent of the agent. `make lint` runs it;
// it prints one line per violation, naming the file and the rule, and
// exits 1 when there is any.
package main

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	if err := run(root, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "houserules:", err)
		os.Exit(1)
	}
}

var errViolations = errors.New("house rules broken")

// run checks every .go file under root (a module root) and prints the
// violations to w.
func run(root string, w io.Writer) error {
	module, err := modulePath(root)
	if err != nil {
		return err
	}
	vs, err := check(root, module)
	if err != nil {
		return err
	}
	for _, v := range vs {
		fmt.Fprintln(w, v)
	}
	if len(vs) > 0 {
		return fmt.Errorf("%d violations: %w (the rules: hack/houserules/rules.go)", len(vs), errViolations)
	}
	return nil
}

func modulePath(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", filepath.Join(root, "go.mod"))
}

func check(root, module string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			imp, _ := strconv.Unquote(spec.Path.Value)
			out = append(out, violations(rel, module, imp)...)
		}
		return nil
	})
	return out, err
}

// violations are the rules file rel breaks by importing imp.
func violations(rel, module, imp string) []string {
	test := strings.HasSuffix(rel, "_test.go")
	dir := path.Dir(rel)
	var out []string
	if imp == "os/exec" && !test && !under(rel, keys(execAllowed)) {
		out = append(out, fmt.Sprintf("%s: imports os/exec, which lives only where Slurm, Terraform and NCCL are run (execAllowed)", rel))
	}
	local, ok := strings.CutPrefix(imp, module+"/")
	if !ok {
		return out
	}
	if slices.Contains(protoPackages, local) && !test && !protoImporters[dir] && !under(rel, keys(protoImporters)) {
		out = append(out, fmt.Sprintf("%s: imports %s outside the edge packages: internal/ speaks domain types (protoImporters)", rel, local))
	}
	for _, r := range forbiddenImports {
		if strings.HasPrefix(rel, r.from) && (local == r.to || strings.HasPrefix(local, r.to+"/")) {
			out = append(out, fmt.Sprintf("%s: imports %s: %s (forbiddenImports)", rel, local, r.why))
		}
	}
	return out
}

// under reports whether rel is one of the files, or under one of the
// directories (ending in "/"), in list.
func under(rel string, list []string) bool {
	for _, p := range list {
		if rel == p || strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
