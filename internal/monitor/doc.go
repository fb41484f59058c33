// Package monitor turns what the node agents report into per-node health
// verdicts (internal/health's rules), incidents persisted in bbolt, and
// remediation in Slurm (internal/remediation's engine). It also runs the
// active NCCL check through the agents, flags runs whose progress stopped
// moving while Slurm says they run (suspected hangs), and records on each
// run the incidents of its nodes while it ran.
//
// Timing: health events are evaluated as soon as the fleet makes them
// durable, so a drain-worthy XID reaches remediation within one commit
// interval; samples are evaluated every Interval. A silent agent makes its
// node UNKNOWN, which never drains it and never resolves its incidents.
//
// Files by responsibility: evidence.go keeps what agents report
// (fleet.Observer, fleet.EventSink); monitor.go judges nodes and runs the
// loop; incidents.go is incident identity and persistence; remediate.go
// hands verdicts to the remediation engine, with the incident each drain
// belongs to (remembered from the engine's decisions, and after a restart
// found in the store: never parsed out of Slurm's reason), and records
// its decisions;
// checks.go is the NCCL check; stalls.go the progress stalls; tasks.go the
// background work Run owns. What the monitor needs of the fleet, the store
// and the engine are the small interfaces Fleet, IncidentStore and
// Remediator.
package monitor
