// Package fleet is the controller's side of the node agents: it serves
// AgentService.Connect, keeps the latest GPU and InfiniBand telemetry of
// every node in memory, aggregates per-run GPU usage, and makes what must
// survive a restart durable before acking it.
//
// Delivery: each agent numbers its batches per boot. A batch whose sequence
// is not above the highest one applied for that node and boot is a
// duplicate (a resend after a reconnect) and is dropped. Batches from all
// agents that arrive within CommitInterval are made durable together — the
// node's sequence, its health events and its runs' progress, in bbolt — and
// only then acked, so an agent never forgets a batch the controller could
// lose. On a reconnect the controller's first message is an ack of the
// highest durable sequence for that boot; the agent resends everything
// after it.
//
// Liveness: a node whose agent has sent nothing for Options.Silence is
// UNKNOWN. Silence is never treated as evidence of a fault.
package fleet
