package main

// The house rules, in one place. Paths are slash-separated and relative to
// the module root; a path ending in "/" is a directory and everything under
// it.

// execAllowed are the non-test files that may import os/exec, each with the
// reason (test files and hack/ may always).
var execAllowed = map[string]string{
	"internal/scheduler/slurmcli/exec.go":     "runs the Slurm CLI (sbatch, squeue, scontrol, ...)",
	"internal/scheduler/slurmcli/prestart.go": "starts sbatch ahead of its job (Config.Prestart)",
	"internal/nccl/runner.go":                 "runs nccl-tests' all_reduce_perf",
	"internal/nccl/proc_unix.go":              "the NCCL runner's process group",
	"internal/nccl/proc_other.go":             "the NCCL runner's process group",
	"internal/provision/tftest/":              "test helper: finds the real terraform binary",
	"internal/cli/root.go":                    "exec.LookPath only: finds the tools a command needs",
	"internal/testbin/":                       "test helper: builds and starts the project's binaries",
	"internal/slurmtest/":                     "test helper: asks hack/slurm/cluster.sh for the cluster",
	"hack/":                                   "developer and CI programs",
}

// protoImporters are the edge packages whose non-test files may import the
// generated protobuf packages, each with the reason; the rest of internal/
// speaks domain types. It lists exactly the packages that import them.
var protoImporters = map[string]bool{
	"hack/ingestbench":         true, // drives the controller's AgentService as thousands of agents would
	"internal/agent":           true, // the agent's sender: samples, events and command results go out as agentpb
	"internal/agent/uplink":    true, // the agent's stream to the controller (AgentService.Connect)
	"internal/api":             true, // the gRPC handlers: apipb in, domain types to the services, apipb out
	"internal/auth":            true, // the policy names each RPC by its generated full method name
	"internal/cli":             true, // sopilot's commands are clients of the API (apipb)
	"internal/controlplane":    true, // registers the services on the one gRPC server
	"internal/fleet":           true, // the controller's end of the agents' streams (AgentService.Connect)
	"internal/fleet/fleettest": true, // serves a fleet over AgentService for the agent's tests
	"internal/monitor":         true, // its Commander returns the fleet's agentpb.CommandResult (NCCL checks)
	"internal/telemetry":       true, // converts agentpb samples to and from the domain types (proto.go)
}

// protoPackages are the generated packages protoImporters guards.
var protoPackages = []string{"pkg/agentpb", "pkg/apipb"}

// forbiddenImports: a package (directory prefix) that must not import
// another (import path prefix, under the module), and why.
var forbiddenImports = []struct{ from, to, why string }{
	{"internal/health/", "internal/agent", "health judges telemetry from any source and knows nothing of the agent"},
}
