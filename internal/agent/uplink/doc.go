// Package uplink is the node agent's side of AgentService.Connect: a bounded
// buffer of sequence-numbered batches and a client that keeps one stream to
// the controller open, resends what the controller has not acked after
// every reconnect (with jittered exponential backoff), and hands what the
// controller pushes (config, run assignments, commands) to a Handler.
//
// Delivery is at least once; the controller drops duplicates by sequence.
// Sequence numbers are given when a batch is first written to a stream, not
// when it is created, so a partition can drop old telemetry (oldest first,
// counted in the next batch's dropped_samples) without leaving holes in the
// sequence. Health events are never dropped before telemetry.
//
// The agent proves who it is with a client certificate (the TLS
// configuration) or with a bearer token (TokenFile): its pod's service
// account token, re-read at every connect.
package uplink
