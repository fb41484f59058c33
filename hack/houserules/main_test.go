package main

import (
	"errors"
	"strings"
	"testing"
)

// The fixture tree breaks each rule once and keeps each allowance once.
func TestFixtureTree(t *testing.T) {
	var out strings.Builder
	err := run("testdata/tree", &out)
	if !errors.Is(err, errViolations) {
		t.Fatalf("run = %v, want errViolations", err)
	}
	want := []string{
		"internal/bad/run.go: imports os/exec, which lives only where Slurm, Terraform and NCCL are run (execAllowed)",
		"internal/health/judge.go: imports internal/agent/gpu: health judges telemetry from any source and knows nothing of the agent (forbiddenImports)",
		"internal/store/store.go: imports pkg/apipb outside the edge packages: internal/ speaks domain types (protoImporters)",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The project itself keeps its rules.
func TestProjectKeepsTheRules(t *testing.T) {
	var out strings.Builder
	if err := run("../..", &out); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
}
