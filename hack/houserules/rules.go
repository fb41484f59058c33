package main

// The house rules, in one place. Paths are slash-separated and relative to
// the module root; a path ending in "/" is a directory and everything under
// it.

// execAllowed are the non-test files that may import os/exec, each with the
// reason (test files and hack/ may always).
var execAllowed = map[string]string{
	"internal/scheduler/slurmcli/exec.go": "runs the Slurm CLI (sbatch, squeue, scontrol, ...)",
	"internal/nccl/runner.go":             "runs nccl-tests' all_reduce_perf",
	"internal/nccl/proc_unix.go":          "the NCCL runner's process group",
	"internal/nccl/proc_other.go":         "the NCCL runner's process group",
	"internal/provision/terraform.go":     "terraform-exec's options (tfexec runs terraform)",
	"internal/provision/tftest/":          "test helper: finds the real terraform binary",
	"internal/cli/root.go":                "exec.LookPath only: finds the tools a command needs",
	"internal/testbin/":                   "test helper: builds and starts the project's binaries",
	"internal/slurmtest/":                 "test helper: asks hack/slurm/cluster.sh for the cluster",
	"hack/":                               "developer and CI programs",
}

// protoImporters are the edge packages whose non-test files may import the
// generated protobuf packages; the rest of internal/ speaks domain types.
var protoImporters = map[string]bool{
	"cmd/":                     true,
	"hack/":                    true,
	"internal/agent":           true,
	"internal/agent/uplink":    true,
	"internal/api":             true,
	"internal/auth":            true,
	"internal/cli":             true,
	"internal/controlplane":    true,
	"internal/fleet":           true,
	"internal/fleet/fleettest": true,
	"internal/monitor":         true,
	"internal/telemetry":       true,
}

// protoPackages are the generated packages protoImporters guards.
var protoPackages = []string{"pkg/agentpb", "pkg/apipb"}

// forbiddenImports: a package (directory prefix) that must not import
// another (import path prefix, under the module), and why.
var forbiddenImports = []struct{ from, to, why string }{
	{"internal/health/", "internal/agent", "health judges telemetry from any source and knows nothing of the agent"},
}
