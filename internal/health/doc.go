// Package health turns evidence about one node (GPU samples and health
// events from the node agent, InfiniBand port samples, the inventory the
// node should have and the agent's liveness) into a node verdict with
// per-component reasons and a recommended action.
//
// The package is pure: no I/O, no gRPC, no Slurm, nothing of the agent's;
// evidence is in telemetry's vocabulary. Evaluate is a function of
// its arguments; Thresholds are loaded from JSON bytes by the caller.
//
// The rules follow the product brief ("Facts for the health side"): XID
// classes are ClassifyXID's (the only XID table); row-remap pending drains after the
// running job and remap failure drains now; any increase of IB link_downed,
// excessive_buffer_overrun_errors or local_link_integrity_errors is fatal;
// symbol_error above 120/h is fatal and above 10/s degraded; port_rcv_errors
// above 10/s is degraded; link flaps are judged by cumulative downtime. An
// agent that has gone silent makes the node Unknown, never Unhealthy.
package health
