// Package fleet is the controller's side of the node agents: it serves
// AgentService.Connect, keeps the latest GPU and InfiniBand telemetry of
// every node in memory, aggregates per-run GPU usage, and makes what must
// survive a restart durable before acking it.
//
// Delivery: each agent numbers its batches per boot. A batch whose sequence
// is not above the highest one applied for that node and boot is a
// duplicate (a resend after a reconnect) and is dropped. A batch is acked
// once what it carries is safe: telemetry once applied in memory (it is
// only ever the latest value), health events and progress once durable —
// batches with them from all agents that arrive within CommitInterval are
// committed to bbolt together, and the cumulative ack never passes one that
// is not. Node records (boot id, sequence) are written every PersistEvery.
// On a reconnect the controller's first message is an ack of the highest
// sequence it holds for that boot (after a controller restart, the agent's
// own acked count if that is higher); the agent resends everything after
// it.
//
// Liveness: a node whose agent has sent nothing for Options.Silence is
// UNKNOWN. Silence is never treated as evidence of a fault.
package fleet
