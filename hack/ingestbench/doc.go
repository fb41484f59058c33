// Command ingestbench measures how many node agents one controller can
// ingest at 1 Hz, and what one node agent costs.
//
// It runs the controller as it ships, built by internal/controlplane (the
// same assembly cmd/controller runs: gRPC server and interceptors, fleet
// over a bbolt file, run service, health monitor), in insecure mode and
// with no Slurm behind it, and N simulated agents, each an uplink.Buffer and
// uplink.Client over its own gRPC connection, adding one realistic batch per
// second (8 GPU samples with every field set, 8 InfiniBand ports with 21
// counters, no health events) at staggered times. The ack latency of each
// batch is measured on the agent side, from the moment it is added to the
// buffer to the moment the ack that covers it is received, through a client
// stream interceptor that watches the Connect stream (no change to the
// uplink package).
//
// Roles:
//
//	-role all      controller and agents in this process (the default)
//	-role server   the controller only; prints its address
//	-role agents   the agents only, against -connect; with -server-pid the
//	               controller's CPU and memory are read from /proc and its
//	               CPU profile is started and stopped with SIGUSR1/SIGUSR2
//	-role agent    real node agents (internal/agent with simulated NVML and
//	               InfiniBand) against an in-process controller, for
//	               profiling the agent with -cpuprofile
//
// Each -role all or -role agents run prints one table row: agents,
// connections, batches per second offered and acked, ack latency p50, p99
// and max, batches still unacked after a grace period, reconnects, and CPU
// (percent of one core) and resident memory of the controller and of the
// agents. hack/bench.sh runs the sweep behind docs/benchmarks.md.
package main
