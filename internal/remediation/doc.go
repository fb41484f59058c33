// Package remediation decides when a GPU node is taken out of Slurm
// scheduling (drained) and when it is put back (resumed), and does it
// safely. It reads health verdicts from package health and changes Slurm
// only through scheduler.NodeBackend's Drain and Resume.
//
// # Safety rules
//
// Only our own drains are ours. Every reason the engine writes starts with
// a prefix, "[sopilot]" by default: "[sopilot] xid 79 (drain) on gpu3
// incident=01J..." for an automatic drain, "[sopilot] manual: <reason> (by
// <who>)" for an operator's. A node that is drained (or down) with any other
// reason belongs to a person or another tool: the engine never overwrites
// that reason, never drains over it and never resumes the node, not even
// when an operator asks through the engine. It records "skipped: drained by
// someone else (reason ...)" instead. The prefix is all the engine reads of
// a reason: which incident a drain belongs to comes with NodeInput and goes
// out with each Decision (the incident id in the text is for people).
// Before it changes anything, the engine
// reads Slurm again and decides on that fresh state, so a snapshot that is
// a few seconds old cannot make it overwrite a reason set in the meantime.
//
// Running jobs are never killed. A drain only sets Slurm's DRAIN flag: jobs
// already running on the node keep running to the end, and no new job
// starts there. That holds for "drain after the job" and for "drain now"
// alike; the record says so ("drained (running job allowed to finish)").
// The engine has no way to cancel a job and never asks for one.
//
// Only nodes whose verdict is Unhealthy with a drain action are drained. A
// node we cannot see (verdict Unknown: its agent is silent) is never
// drained for the silence alone.
//
// A node comes back only after drain, then verify, then resume. A node the
// engine drained automatically is considered for resuming once its verdict
// has been Healthy for ClearFor (two minutes by default) and no job is left
// on it. It is then checked by a Verifier (for example a single-node NCCL
// test). If the check
// passes, the node is resumed. If it fails, the node stays drained, its
// reason is changed to say the verification failed, and the check is tried
// again after VerifyBackoff. A node an operator drained is never resumed
// automatically: only an operator's Undrain brings it back, and Undrain
// runs the same check unless told to skip it.
//
// A circuit breaker limits automatic drains, so that a bad rule or a
// broken sensor cannot empty the cluster. An automatic drain is refused
// when the nodes drained by the engine would then exceed MaxDrainShare of
// the cluster (25% by default, but at least one node), or when
// MaxDrainsPerWindow automatic drains (10% of the nodes by default, at
// least one) already happened within Window (ten minutes by default). A
// refused drain is recorded as "breaker open: would drain (...)", and an
// alert is raised once when the breaker opens. The worst evidence (drain
// now before drain after the job) is served first. The breaker closes by
// itself when the window has passed or drained nodes have come back.
// Operators' drains bypass the breaker, though they still respect other
// people's drains, and they count towards the share.
//
// Dry-run computes and records every decision exactly as it would be
// made, with "dry-run: would drain" and "dry-run: would resume", but never
// changes Slurm and never runs the verifier. The engine remembers what it
// would have done, so the next step does not decide it again.
//
// Steps are idempotent. A node already drained by the engine is not
// drained again, and its first reason is kept. A decision that only
// repeats the last one recorded for the node (the same refusal, the same
// skip) is not returned again until something else has happened to the
// node.
//
// # Hand-off to Soperator
//
// With Config.Handoff set to HandoffSoperator, a node whose drain-worthy
// evidence is hardware-class (HandoffRule: XIDs of class drain, a lost or
// missing GPU, a failed row remap, a down InfiniBand port) is drained with
// Soperator's reason instead of ours: "[node_problem] sopilot: <evidence>
// incident=<id>" (FormatHandoffReason), so that Soperator's soperatorchecks
// replaces the machine. From then on the drain is foreign: the engine never
// resumes, verifies, rewrites or drains over it, and its manual Drain and
// Undrain refuse it with ErrForeign, but the breaker counts it like a drain
// of ours. A drain of ours already in place (automatic, not an operator's)
// is converted to the hand-off reason when such evidence arrives, because
// Soperator's checks skip drained nodes. A handed-off node that Slurm shows
// no longer drained is a new node: the engine forgets it (KindReturned).
// The engine recognises its hand-offs by the reason's prefix, so a
// restarted controller finds them too. Other evidence keeps the flow above.
//
// # Reasons
//
// Reasons are kept to one line of at most MaxReasonLen (120) bytes. Slurm
// itself accepts any length, and keeps newlines, which break every
// line-based reader of sinfo and scontrol. Control characters become
// spaces, and over-long evidence is cut with "...", so the incident id (up
// to 40 bytes) and the operator's name (up to 32) always fit.
//
// # Metrics
//
// NewMetrics registers the counters described on Metrics on a Registerer
// the caller provides. None of them has a node label.
package remediation
