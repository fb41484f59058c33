package remediation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// Verifier checks a drained node before it is resumed (e.g. a single-node
// NCCL all-reduce). passed false with a summary is a failed check; err is a
// check that could not run. Verify should honour ctx: Step waits for it.
type Verifier interface {
	Verify(ctx context.Context, node string) (passed bool, summary string, err error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, node string) (passed bool, summary string, err error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, node string) (bool, string, error) {
	return f(ctx, node)
}

// Kind is what a Decision did (or would have done).
type Kind string

// Decision kinds.
const (
	// KindDrain: the node was drained (or would be, in dry-run).
	KindDrain Kind = "drain"
	// KindResume: the node was resumed (or would be, in dry-run).
	KindResume Kind = "resume"
	// KindSkip: a drain or resume the evidence asked for was not done
	// (someone else's drain, the breaker, a node Slurm does not know).
	KindSkip Kind = "skip"
	// KindVerifyFailed: the verification of a drained node failed or could
	// not run; the node stays drained.
	KindVerifyFailed Kind = "verify_failed"
	// KindAlert: the circuit breaker opened. Node is empty.
	KindAlert Kind = "alert"
	// KindReturned: a node handed off to Soperator is back in Slurm,
	// neither drained nor carrying the hand-off reason (replaced, or
	// resumed by someone); the engine forgot what it knew of it.
	KindReturned Kind = "returned"
)

// Decision is one thing the engine decided, for the incident record.
type Decision struct {
	// Node is the node decided on ("" for an alert).
	Node string
	// Kind is what was decided.
	Kind Kind
	// Action is the text recorded in the incident: "drained",
	// "dry-run: would drain", "breaker open: would drain",
	// "skipped: drained by someone else (reason ...)",
	// "resumed after verification: <summary>", ...
	Action string
	// Reason is the Slurm reason set, or that would have been set; for a
	// node drained by someone else, their reason.
	Reason string
	// IncidentID is the incident the decision is about: the one whose
	// evidence drained the node, from NodeInput ("" when none, or for
	// an operator's Drain or Undrain).
	IncidentID string
	// Manual is true for an operator's Drain or Undrain.
	Manual bool
	// DryRun is true when nothing was changed because of Config.DryRun.
	DryRun bool
	// Handoff is true for a drain with the hand-off reason (Soperator's
	// "[node_problem]"), for the skips of a node handed off and for its
	// return.
	Handoff bool
	// Err is the failure of a Slurm or verifier call, if any.
	Err error
}

// NodeInput is what Step knows about one node.
type NodeInput struct {
	// Name is the Slurm node name.
	Name string
	// Result is the node's current health verdict.
	Result health.Result
	// IncidentID is the incident the evidence belongs to, or for a node
	// the engine drained, the incident it was drained for ("" when none);
	// it is written into the drain reason, for people, and carried by
	// the decisions about the node.
	IncidentID string
	// Slurm is the node as Slurm last reported it; a zero State means
	// Slurm does not know the node.
	Slurm scheduler.NodeStatus
	// HealthySince is when the verdict last became Healthy (zero while it
	// is not Healthy).
	HealthySince time.Time
}

// Errors of the manual operations, for errors.Is.
var (
	ErrForeign            = errors.New("drained by someone else")
	ErrNotDrained         = errors.New("node is not drained")
	ErrUnknownNode        = errors.New("node not known to slurm")
	ErrBusy               = errors.New("another operation on the node is in progress")
	ErrVerificationFailed = errors.New("verification failed")
)

// Engine decides and performs drains and resumes. It is safe for
// concurrent use: Step and the manual operations may run at the same time.
type Engine struct {
	cfg      Config
	backend  scheduler.NodeBackend
	verifier Verifier
	now      func() time.Time

	mu          sync.Mutex
	nodes       map[string]*nodeState
	drains      []time.Time // automatic drains (dry-run ones too), oldest first
	breakerOpen bool
	// breakerWhy says, while the breaker is open, which drains it refused
	// and which limit was hit.
	breakerWhy string
}

// nodeState is what the engine remembers about one node between calls.
type nodeState struct {
	// last is the key of the last decision recorded for the node, so that
	// a decision that repeats every Step is returned once.
	last string
	// nextVerify is the earliest time of the next verification.
	nextVerify time.Time
	// pinned: an operator asked to drain a node the engine had already
	// drained; only Undrain resumes it.
	pinned bool
	// busy: a verification (and resume) of the node is in flight.
	busy bool
	// dry is the simulated state in dry-run: "drained" with dryReason, or
	// "resumed".
	dry       string
	dryReason string
	// handedOff: the node was drained with the hand-off reason (by this
	// engine, or seen so in Slurm); it is Soperator's until it is back.
	handedOff bool
}

// New returns an engine. verifier is required; now nil means time.Now.
// Errors name the Config field at fault.
func New(cfg Config, backend scheduler.NodeBackend, verifier Verifier, now func() time.Time) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if backend == nil {
		return nil, errors.New("remediation: backend: nil")
	}
	if verifier == nil {
		return nil, errors.New("remediation: verifier: nil")
	}
	if now == nil {
		now = time.Now
	}
	cfg.Metrics.breaker(false, false)
	return &Engine{cfg: cfg, backend: backend, verifier: verifier, now: now, nodes: make(map[string]*nodeState)}, nil
}

// Config returns the configuration in use, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// BreakerOpen reports whether the last Step refused an automatic drain.
func (e *Engine) BreakerOpen() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.breakerOpen
}

// Breaker reports whether the last Step refused an automatic drain and,
// if so, why (the refused nodes and the limits).
func (e *Engine) Breaker() (open bool, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.breakerOpen, e.breakerWhy
}

func (e *Engine) state(node string) *nodeState {
	ns, ok := e.nodes[node]
	if !ok {
		ns = &nodeState{}
		e.nodes[node] = ns
	}
	return ns
}

// effective is st with the dry-run simulation applied.
func (e *Engine) effective(st scheduler.NodeStatus) scheduler.NodeStatus {
	ns, ok := e.nodes[st.Name]
	if !e.cfg.DryRun || !ok || st.State == "" {
		return st
	}
	switch {
	case ns.dry == "drained" && (!st.Drained() || IsHandoff(ns.dryReason) && e.ours(st)):
		st.Flags = append(slices.Clone(st.Flags), "DRAIN")
		st.Reason = ns.dryReason
	case ns.dry == "resumed" && e.ours(st):
		st.Flags = slices.DeleteFunc(slices.Clone(st.Flags), func(f string) bool { return f == "DRAIN" })
		st.Reason = ""
	}
	return st
}

// ours: drained, with our reason.
func (e *Engine) ours(st scheduler.NodeStatus) bool {
	return st.Drained() && Owned(e.cfg.Prefix, st.Reason)
}

// handedOff: drained with the hand-off reason. Such a drain is foreign
// (Soperator's from then on) but still counts towards the breaker.
func handedOff(st scheduler.NodeStatus) bool {
	return st.Drained() && IsHandoff(st.Reason)
}

// held: drained by the engine, with its own reason or handed off; what the
// breaker's share counts.
func (e *Engine) held(st scheduler.NodeStatus) bool {
	return e.ours(st) && !e.isCheckHold(st.Reason) || handedOff(st)
}

// handoffFor is the hand-off evidence of a result when the engine hands
// off and the result's evidence is hardware-class.
func (e *Engine) handoffFor(r health.Result) (string, bool) {
	if e.cfg.Handoff != HandoffSoperator {
		return "", false
	}
	return handoffEvidence(r)
}

// converts reports whether a node the engine drained with its own reason is
// to be handed off: hand-off mode, hardware-class evidence, an automatic
// drain (an operator's drain stays the operator's).
func (e *Engine) converts(in NodeInput, st scheduler.NodeStatus, ns *nodeState) bool {
	if !wantsDrain(in.Result) || ns.pinned || isManual(e.cfg.Prefix, st.Reason) {
		return false
	}
	_, ok := e.handoffFor(in.Result)
	return ok
}

// foreign: drained or carrying a reason (DOWN, FAIL) that is not ours.
func (e *Engine) foreign(st scheduler.NodeStatus) bool {
	return (st.Drained() || st.Reason != "") && !Owned(e.cfg.Prefix, st.Reason)
}

func wantsDrain(r health.Result) bool {
	return r.Verdict == health.Unhealthy && r.Action >= health.ActionDrainAfterJob
}

func foreignText(st scheduler.NodeStatus) string {
	who := ""
	if st.ReasonUser != "" {
		who = " by " + st.ReasonUser
	}
	what := "drained"
	if !st.Drained() {
		what = strings.ToLower(st.State)
	}
	return fmt.Sprintf("skipped: %s by someone else (reason %q%s)", what, st.Reason, who)
}

func drainedText(st scheduler.NodeStatus, dry bool) string {
	switch {
	case dry && st.Allocated():
		return "dry-run: would drain (running job would be allowed to finish)"
	case dry:
		return "dry-run: would drain"
	case st.Allocated():
		return "drained (running job allowed to finish)"
	}
	return "drained"
}

func handoffText(st scheduler.NodeStatus, dry bool) string {
	what := "handed off to soperator: drained with [node_problem] for its node replacement"
	if dry {
		what = "dry-run: would hand off to soperator: drain with [node_problem] for its node replacement"
	}
	if st.Allocated() {
		what += " (running job allowed to finish)"
	}
	return what
}

// record returns d for the caller unless it repeats the node's last
// recorded decision.
func (e *Engine) record(out *[]Decision, seen map[string]bool, d Decision) bool {
	key := fmt.Sprint(d.Kind, "\x00", d.Action, "\x00", d.Reason)
	seen[d.Node] = true
	ns := e.state(d.Node)
	if ns.last == key {
		return false
	}
	ns.last = key
	*out = append(*out, d)
	return true
}

type drainCandidate struct {
	in NodeInput
	st scheduler.NodeStatus
}

type verifyJob struct {
	in      NodeInput
	reason  string
	passed  bool
	summary string
	err     error
}

// Step judges every node once and acts: drains nodes whose evidence asks
// for it, verifies and resumes nodes the engine drained whose evidence has
// cleared. nodes should be every node of the cluster: the breaker's share
// is counted over them. Step returns what it decided; a decision that only
// repeats the last one recorded for the node is not returned again.
//
// Step waits for the verifications it starts (in parallel, one per node).
// Except in dry-run, before it changes anything it reads Slurm once more and
// decides on that fresh state, so a stale snapshot cannot make it overwrite
// a reason someone set in the meantime. Decisions come in this order:
// per-node skips, drains and breaker refusals (worst evidence first), the
// breaker's alert, then the outcomes of verifications.
//
// Step holds the engine's lock while it reads and changes Slurm, not while
// verifications run; a node being verified is left alone by other Steps,
// and an operator's Undrain of it fails with ErrBusy.
func (e *Engine) Step(ctx context.Context, nodes []NodeInput) []Decision {
	e.mu.Lock()
	now := e.now()
	e.pruneWindow(now)

	var out []Decision
	seen := make(map[string]bool)
	inputs := make([]NodeInput, 0, len(nodes))
	names := make(map[string]bool, len(nodes))
	for _, in := range nodes {
		if in.Name == "" || names[in.Name] {
			continue // nameless or repeated: only the first counts
		}
		names[in.Name] = true
		inputs = append(inputs, in)
	}
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].Name < inputs[j].Name })

	status := make(map[string]scheduler.NodeStatus, len(inputs))
	for _, in := range inputs {
		st := in.Slurm
		st.Name = in.Name
		status[in.Name] = e.effective(st)
	}
	var readErr error
	if !e.cfg.DryRun && e.mayAct(inputs, status, now) {
		fresh, err := e.backend.Nodes(ctx)
		if err != nil {
			readErr = fmt.Errorf("read slurm nodes: %w", err)
		} else {
			for _, in := range inputs {
				status[in.Name] = scheduler.NodeStatus{Name: in.Name}
			}
			for _, st := range fresh {
				status[st.Name] = st
			}
		}
	}

	var drains []drainCandidate
	var verify []*verifyJob
	var convert []drainCandidate
	for _, in := range inputs {
		st := status[in.Name]
		ns := e.state(in.Name)
		if ns.busy {
			seen[in.Name] = true // keep its last decision while in flight
			continue
		}
		want := wantsDrain(in.Result)
		switch {
		case st.State == "":
			if want {
				e.record(&out, seen, Decision{Node: in.Name, Kind: KindSkip, Action: "skipped: node not known to slurm"})
			}
		case handedOff(st):
			// Soperator's now: never resumed, rewritten or drained over.
			ns.handedOff = true
			if want {
				e.record(&out, seen, Decision{Node: in.Name, Kind: KindSkip, Reason: st.Reason, IncidentID: in.IncidentID, Handoff: true,
					Action: "handed off to soperator: left to its node replacement"})
			}
		case ns.handedOff && !st.Drained():
			// Back in Slurm (replaced, or resumed by someone): a new
			// node for the engine. Judged from the next Step on.
			delete(e.nodes, in.Name)
			seen[in.Name] = true
			out = append(out, Decision{Node: in.Name, Kind: KindReturned, IncidentID: in.IncidentID, Handoff: true,
				Action: "hand-off ended: node resumed in Slurm (" + st.StateString() + "), taken up fresh"})
		case e.foreign(st):
			if want && e.record(&out, seen, Decision{Node: in.Name, Kind: KindSkip, Action: foreignText(st), Reason: st.Reason}) {
				e.cfg.Metrics.drain(modeAuto, resultSkippedForeign)
			}
		case e.ours(st) && e.converts(in, st, ns):
			// Our own drain blocks Soperator's flow (its checks skip
			// drained nodes): the drain becomes a hand-off.
			if readErr != nil {
				e.record(&out, seen, Decision{Node: in.Name, Kind: KindDrain, Handoff: true, IncidentID: in.IncidentID,
					Action: "hand-off failed: " + readErr.Error(), Err: readErr})
				break
			}
			convert = append(convert, drainCandidate{in: in, st: st})
		case e.ours(st):
			// Already drained by us: the first reason stays. Resume only
			// automatic drains, once the evidence has cleared for
			// ClearFor, the node's jobs have ended (the check needs its
			// GPUs) and the backoff of a failed check has passed.
			if !want && !ns.pinned && !isManual(e.cfg.Prefix, st.Reason) &&
				e.cleared(in, st, now) && !now.Before(ns.nextVerify) {
				verify = append(verify, &verifyJob{in: in, reason: st.Reason})
			}
		case want && readErr != nil:
			// Without a fresh read, someone's reason could be overwritten.
			e.cfg.Metrics.drain(modeAuto, resultError)
			e.record(&out, seen, Decision{Node: in.Name, Kind: KindDrain, Action: "drain failed: " + readErr.Error(), Err: readErr})
		case want:
			drains = append(drains, drainCandidate{in: in, st: st})
		}
	}

	out = append(out, e.convertAll(ctx, convert, seen)...)
	if readErr == nil {
		// Without a fresh read nothing was due; the breaker stays as it was.
		out = append(out, e.drainAll(ctx, now, status, drains, seen)...)
	}

	if e.cfg.DryRun {
		for _, j := range verify {
			ns := e.state(j.in.Name)
			ns.dry, ns.dryReason = "resumed", ""
			e.cfg.Metrics.resume(modeAuto, resultDryRun)
			e.record(&out, seen, Decision{Node: j.in.Name, Kind: KindResume, DryRun: true, Reason: j.reason, IncidentID: j.in.IncidentID,
				Action: "dry-run: would resume (after a verification, not run in dry-run)"})
		}
		verify = nil
	}
	for _, j := range verify {
		e.state(j.in.Name).busy = true
		seen[j.in.Name] = true
	}
	e.forget(names, seen)
	e.mu.Unlock()

	if len(verify) == 0 {
		return out
	}
	var wg sync.WaitGroup
	for _, j := range verify {
		wg.Go(func() { j.passed, j.summary, j.err = e.verify(ctx, j.in.Name) })
	}
	wg.Wait()

	e.mu.Lock()
	defer e.mu.Unlock()
	return append(out, e.finishVerify(ctx, verify)...)
}

// verify runs the verifier; a panic in it is a check that could not run.
func (e *Engine) verify(ctx context.Context, node string) (passed bool, summary string, err error) {
	defer func() {
		if p := recover(); p != nil {
			passed, summary, err = false, "", fmt.Errorf("verifier panicked: %v", p)
		}
	}()
	return e.verifier.Verify(ctx, node)
}

// verifyUnlocked runs verify with e.mu released.
func (e *Engine) verifyUnlocked(ctx context.Context, node string) (bool, string, error) {
	e.mu.Unlock()
	defer e.mu.Lock()
	return e.verify(ctx, node)
}

// mayAct reports whether the snapshot suggests a change to Slurm, which is
// worth a fresh read.
func (e *Engine) mayAct(inputs []NodeInput, status map[string]scheduler.NodeStatus, now time.Time) bool {
	for _, in := range inputs {
		st := status[in.Name]
		if wantsDrain(in.Result) && !e.ours(st) && !e.foreign(st) {
			return true
		}
		if e.ours(st) && (e.cleared(in, st, now) || e.converts(in, st, e.state(in.Name))) {
			return true
		}
	}
	return false
}

// cleared reports whether a drained node is ready for its check: Healthy
// for ClearFor, and no job left on it.
func (e *Engine) cleared(in NodeInput, st scheduler.NodeStatus, now time.Time) bool {
	return in.Result.Verdict == health.Healthy && !in.HealthySince.IsZero() &&
		now.Sub(in.HealthySince) >= e.cfg.ClearFor && !st.Allocated()
}

// drainAll drains the candidates, worst first, as far as the breaker
// allows, and opens or closes the breaker.
func (e *Engine) drainAll(ctx context.Context, now time.Time, status map[string]scheduler.NodeStatus, cands []drainCandidate, seen map[string]bool) []Decision {
	var out []Decision
	total := len(status)
	held := 0
	for _, st := range status {
		if e.held(st) {
			held++
		}
	}
	shareCap, windowCap := e.cfg.shareCap(total), e.cfg.windowCap(total)
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].in.Result.Action > cands[j].in.Result.Action })

	var refused []string
	for _, c := range cands {
		reason := FormatReason(e.cfg.Prefix, evidence(c.in.Result), c.in.IncidentID)
		hwEvidence, handoff := e.handoffFor(c.in.Result)
		if handoff {
			reason = FormatHandoffReason(hwEvidence, c.in.IncidentID)
		}
		if held+1 > shareCap || len(e.drains)+1 > windowCap {
			refused = append(refused, c.in.Name)
			why := fmt.Sprintf("limit of %d automatic drains per %s reached", windowCap, e.cfg.Window)
			if held+1 > shareCap {
				why = fmt.Sprintf("limit of %d of %d nodes drained reached", shareCap, total)
			}
			if e.record(&out, seen, Decision{Node: c.in.Name, Kind: KindSkip, Reason: reason, IncidentID: c.in.IncidentID, Handoff: handoff,
				Action: "breaker open: would drain (" + why + ")"}) {
				e.cfg.Metrics.drain(modeAuto, resultBreaker)
			}
			continue
		}
		d := Decision{Node: c.in.Name, Kind: KindDrain, Reason: reason, IncidentID: c.in.IncidentID, Action: drainedText(c.st, e.cfg.DryRun), DryRun: e.cfg.DryRun, Handoff: handoff}
		if handoff {
			d.Action = handoffText(c.st, e.cfg.DryRun)
		}
		if e.cfg.DryRun {
			ns := e.state(c.in.Name)
			ns.dry, ns.dryReason = "drained", reason
			e.cfg.Metrics.drain(modeAuto, resultDryRun)
		} else if err := e.backend.Drain(ctx, c.in.Name, reason); err != nil {
			d.Action, d.Err = "drain failed: "+err.Error(), err
			e.cfg.Metrics.drain(modeAuto, resultError)
			e.record(&out, seen, d)
			continue
		} else if handoff {
			e.cfg.Metrics.drain(modeAuto, resultHandedOff)
		} else {
			e.cfg.Metrics.drain(modeAuto, resultDrained)
		}
		held++
		e.drains = append(e.drains, now)
		ns := e.state(c.in.Name)
		ns.nextVerify = time.Time{}
		ns.handedOff = handoff
		e.record(&out, seen, d)
	}

	open := len(refused) > 0
	tripped := open && !e.breakerOpen
	e.breakerWhy = ""
	if open {
		e.breakerWhy = fmt.Sprintf("refused automatic drains of %s (%d of %d nodes drained by us, limit %d; %d automatic drains in %s, limit %d)",
			strings.Join(refused, ", "), held, total, shareCap, len(e.drains), e.cfg.Window, windowCap)
	}
	if tripped {
		out = append(out, Decision{Kind: KindAlert, Action: "breaker open: " + e.breakerWhy})
	}
	e.breakerOpen = open
	e.cfg.Metrics.breaker(open, tripped)
	return out
}

// convertAll hands off nodes the engine had drained with its own reason:
// their reason becomes the hand-off reason. Not a new drain: the breaker
// already counts them. Called with e.mu held, after a fresh read.
func (e *Engine) convertAll(ctx context.Context, cands []drainCandidate, seen map[string]bool) []Decision {
	var out []Decision
	for _, c := range cands {
		hwEvidence, _ := e.handoffFor(c.in.Result)
		reason := FormatHandoffReason(hwEvidence, c.in.IncidentID)
		d := Decision{Node: c.in.Name, Kind: KindDrain, Reason: reason, IncidentID: c.in.IncidentID, Handoff: true, DryRun: e.cfg.DryRun,
			Action: "handed off to soperator: sopilot's drain became [node_problem] for its node replacement"}
		ns := e.state(c.in.Name)
		switch {
		case e.cfg.DryRun:
			d.Action = "dry-run: would hand off to soperator: sopilot's drain would become [node_problem] for its node replacement"
			ns.dry, ns.dryReason = "drained", reason
			e.cfg.Metrics.drain(modeAuto, resultDryRun)
		default:
			if err := e.backend.Drain(ctx, c.in.Name, reason); err != nil {
				d.Action, d.Err = "hand-off failed: "+err.Error(), err
				e.cfg.Metrics.drain(modeAuto, resultError)
				e.record(&out, seen, d)
				continue
			}
			e.cfg.Metrics.drain(modeAuto, resultHandedOff)
		}
		ns.handedOff, ns.nextVerify = true, time.Time{}
		e.record(&out, seen, d)
	}
	return out
}

// finishVerify resumes the nodes whose verification passed and keeps the
// others drained with a backoff. Called with e.mu held.
func (e *Engine) finishVerify(ctx context.Context, jobs []*verifyJob) []Decision {
	var out []Decision
	now := e.now()
	fresh, readErr := e.backend.Nodes(ctx)
	byName := make(map[string]scheduler.NodeStatus, len(fresh))
	for _, st := range fresh {
		byName[st.Name] = st
	}
	for _, j := range jobs {
		node := j.in.Name
		ns := e.state(node)
		ns.busy = false
		ns.last = ""
		st, known := byName[node]
		d := Decision{Node: node, Reason: j.reason, IncidentID: j.in.IncidentID}
		switch {
		case j.err != nil:
			e.cfg.Metrics.verification(resultError)
			ns.nextVerify = now.Add(e.cfg.VerifyBackoff)
			d.Kind, d.Err = KindVerifyFailed, j.err
			d.Action = fmt.Sprintf("verification could not run: %v; stays drained, retry after %s", j.err, e.cfg.VerifyBackoff)
		case !j.passed:
			e.cfg.Metrics.verification(resultFailed)
			ns.nextVerify = now.Add(e.cfg.VerifyBackoff)
			d.Kind = KindVerifyFailed
			d.Action = fmt.Sprintf("verification failed: %s; stays drained, retry after %s", oneLine(j.summary), e.cfg.VerifyBackoff)
			if readErr != nil || !known || !e.ours(st) || isManual(e.cfg.Prefix, st.Reason) {
				break // not ours to relabel any more, or unknown: leave it
			}
			reason := FormatReason(e.cfg.Prefix, "verify failed: "+j.summary, j.in.IncidentID)
			d.Reason = reason
			if reason != st.Reason {
				if err := e.backend.Drain(ctx, node, reason); err != nil {
					d.Reason, d.Err = st.Reason, fmt.Errorf("update reason: %w", err)
				}
			}
		default:
			e.cfg.Metrics.verification(resultPassed)
			d.Kind = KindResume
			switch {
			case readErr != nil:
				ns.nextVerify = now.Add(e.cfg.VerifyBackoff)
				d.Action, d.Err = "resume failed: "+readErr.Error(), readErr
				e.cfg.Metrics.resume(modeAuto, resultError)
			case !known || !st.Drained():
				continue // gone or resumed by someone else meanwhile
			case !e.ours(st):
				d.Kind, d.Reason, d.Action = KindSkip, st.Reason, foreignText(st)
				e.cfg.Metrics.resume(modeAuto, resultSkippedForeign)
			case ns.pinned || isManual(e.cfg.Prefix, st.Reason):
				continue // an operator took it over meanwhile
			default:
				if err := e.backend.Resume(ctx, node); err != nil {
					ns.nextVerify = now.Add(e.cfg.VerifyBackoff)
					d.Action, d.Err = "resume failed: "+err.Error(), err
					e.cfg.Metrics.resume(modeAuto, resultError)
					break
				}
				ns.nextVerify = time.Time{}
				d.Action = "resumed after verification: " + oneLine(j.summary)
				e.cfg.Metrics.resume(modeAuto, resultResumed)
			}
		}
		ns.last = fmt.Sprint(d.Kind, "\x00", d.Action, "\x00", d.Reason)
		out = append(out, d)
	}
	return out
}

// pruneWindow drops automatic drains older than the window.
func (e *Engine) pruneWindow(now time.Time) {
	cut := 0
	for cut < len(e.drains) && now.Sub(e.drains[cut]) >= e.cfg.Window {
		cut++
	}
	e.drains = e.drains[cut:]
}

// forget clears the last decision of nodes that had none this Step, so a
// later repeat is recorded again, and drops the state of nodes that left
// the input and carry nothing worth keeping.
func (e *Engine) forget(names, seen map[string]bool) {
	for name, ns := range e.nodes {
		if !seen[name] {
			ns.last = ""
		}
		if !names[name] && !ns.busy && !ns.pinned && !ns.handedOff && ns.dry == "" && ns.nextVerify.IsZero() {
			delete(e.nodes, name)
		}
	}
}

func oneLine(s string) string {
	s = clean(s, 200)
	if s == "" {
		return "(no summary)"
	}
	return s
}

// lookup reads the node from Slurm, with the dry-run simulation applied.
func (e *Engine) lookup(ctx context.Context, node string) (scheduler.NodeStatus, error) {
	nodes, err := e.backend.Nodes(ctx)
	if err != nil {
		return scheduler.NodeStatus{}, fmt.Errorf("read slurm nodes: %w", err)
	}
	for _, st := range nodes {
		if st.Name == node {
			return e.effective(st), nil
		}
	}
	return scheduler.NodeStatus{}, fmt.Errorf("node %q: %w", node, ErrUnknownNode)
}

func checkManual(node, who string) error {
	switch {
	case strings.TrimSpace(node) == "":
		return errors.New("remediation: node: empty")
	case clean(who, maxWhoLen) == "":
		return errors.New("remediation: who: empty")
	}
	return nil
}

// Drain is an operator's drain of node: reason "<prefix> manual: <reason>
// (by <who>)". It bypasses the breaker but never touches a node drained (or
// down) by someone else: that is an error wrapping ErrForeign that names
// their reason, and Slurm is not changed. A node the engine has already
// drained keeps its first reason and is no longer resumed automatically.
// Running jobs on the node keep running.
func (e *Engine) Drain(ctx context.Context, node, reason, who string) (Decision, error) {
	if err := checkManual(node, who); err != nil {
		return Decision{}, err
	}
	if clean(reason, MaxReasonLen) == "" {
		return Decision{}, errors.New("remediation: reason: empty")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ns := e.state(node)
	d := Decision{Node: node, Kind: KindDrain, Manual: true, DryRun: e.cfg.DryRun}
	if ns.busy {
		// Only a node the engine drained is verified: keep it drained.
		ns.pinned = true
		d.Kind = KindSkip
		d.Action = "already drained by sopilot, verification in progress: resumed only by an operator's undrain (requested by " + clean(who, maxWhoLen) + ")"
		return d, nil
	}
	st, err := e.lookup(ctx, node)
	if err != nil {
		if !errors.Is(err, ErrUnknownNode) {
			e.cfg.Metrics.drain(modeManual, resultError)
		}
		d.Action, d.Err = "drain failed: "+err.Error(), err
		return d, fmt.Errorf("drain %s: %w", node, err)
	}
	d.Reason = FormatManualReason(e.cfg.Prefix, reason, who)
	switch {
	case e.foreign(st):
		e.cfg.Metrics.drain(modeManual, resultSkippedForeign)
		d.Kind, d.Reason, d.Action = KindSkip, st.Reason, foreignText(st)
		return d, fmt.Errorf("drain %s: %w (reason %q, set by %q): not changed", node, ErrForeign, st.Reason, st.ReasonUser)
	case e.ours(st):
		ns.pinned = true
		d.Kind, d.Reason = KindSkip, st.Reason
		d.Action = fmt.Sprintf("already drained by sopilot (reason %q): reason kept, resumed only by an operator's undrain (requested by %s)", st.Reason, clean(who, maxWhoLen))
		return d, nil
	case e.cfg.DryRun:
		ns.dry, ns.dryReason = "drained", d.Reason
		d.Action = drainedText(st, true)
		e.cfg.Metrics.drain(modeManual, resultDryRun)
		return d, nil
	}
	if err := e.backend.Drain(ctx, node, d.Reason); err != nil {
		e.cfg.Metrics.drain(modeManual, resultError)
		d.Action, d.Err = "drain failed: "+err.Error(), err
		return d, fmt.Errorf("drain %s: %w", node, err)
	}
	e.cfg.Metrics.drain(modeManual, resultDrained)
	d.Action = drainedText(st, false)
	return d, nil
}

// Undrain is an operator's resume of a node the engine drained (manually
// or automatically). It runs the verifier first unless skipVerification;
// a failed check leaves the node drained and returns an error wrapping
// ErrVerificationFailed. A node that is not drained, or drained by someone
// else, is an error (ErrNotDrained, ErrForeign) and Slurm is not changed.
func (e *Engine) Undrain(ctx context.Context, node string, skipVerification bool, who string) (Decision, error) {
	if err := checkManual(node, who); err != nil {
		return Decision{}, err
	}
	who = clean(who, maxWhoLen)
	e.mu.Lock()
	defer e.mu.Unlock()
	ns := e.state(node)
	d := Decision{Node: node, Kind: KindResume, Manual: true, DryRun: e.cfg.DryRun}
	if ns.busy {
		d.Kind, d.Action = KindSkip, "skipped: verification in progress"
		return d, fmt.Errorf("undrain %s: %w", node, ErrBusy)
	}
	st, err := e.lookup(ctx, node)
	if err != nil {
		if !errors.Is(err, ErrUnknownNode) {
			e.cfg.Metrics.resume(modeManual, resultError)
		}
		d.Action, d.Err = "resume failed: "+err.Error(), err
		return d, fmt.Errorf("undrain %s: %w", node, err)
	}
	d.Reason = st.Reason
	switch {
	case !st.Drained():
		d.Kind, d.Action = KindSkip, "skipped: not drained"
		return d, fmt.Errorf("undrain %s: %w (state %s)", node, ErrNotDrained, st.StateString())
	case e.foreign(st):
		e.cfg.Metrics.resume(modeManual, resultSkippedForeign)
		d.Kind, d.Action = KindSkip, foreignText(st)
		return d, fmt.Errorf("undrain %s: %w (reason %q, set by %q): not changed", node, ErrForeign, st.Reason, st.ReasonUser)
	case e.cfg.DryRun:
		ns.dry, ns.dryReason, ns.pinned = "resumed", "", false
		d.Action = "dry-run: would resume (by " + who + ")"
		if !skipVerification {
			d.Action = "dry-run: would resume after verification, not run in dry-run (by " + who + ")"
		}
		e.cfg.Metrics.resume(modeManual, resultDryRun)
		return d, nil
	}

	summary := ""
	if !skipVerification {
		ns.busy = true
		passed, sum, verr := e.verifyUnlocked(ctx, node)
		ns.busy = false
		summary = oneLine(sum)
		switch {
		case verr != nil:
			e.cfg.Metrics.verification(resultError)
			d.Kind, d.Err = KindVerifyFailed, verr
			d.Action = fmt.Sprintf("verification could not run: %v; stays drained", verr)
			return d, fmt.Errorf("undrain %s: verification could not run: %w", node, verr)
		case !passed:
			e.cfg.Metrics.verification(resultFailed)
			ns.nextVerify = e.now().Add(e.cfg.VerifyBackoff)
			d.Kind = KindVerifyFailed
			d.Action = "verification failed: " + summary + "; stays drained"
			return d, fmt.Errorf("undrain %s: %w: %s", node, ErrVerificationFailed, summary)
		}
		e.cfg.Metrics.verification(resultPassed)
		// The verification took a while: look again before resuming.
		if st, err = e.lookup(ctx, node); err != nil {
			e.cfg.Metrics.resume(modeManual, resultError)
			d.Action, d.Err = "resume failed: "+err.Error(), err
			return d, fmt.Errorf("undrain %s: %w", node, err)
		}
		switch {
		case !st.Drained():
			d.Kind, d.Action = KindSkip, "skipped: no longer drained"
			return d, fmt.Errorf("undrain %s: %w (state %s)", node, ErrNotDrained, st.StateString())
		case e.foreign(st):
			e.cfg.Metrics.resume(modeManual, resultSkippedForeign)
			d.Kind, d.Reason, d.Action = KindSkip, st.Reason, foreignText(st)
			return d, fmt.Errorf("undrain %s: %w (reason %q, set by %q): not changed", node, ErrForeign, st.Reason, st.ReasonUser)
		}
	}
	if err := e.backend.Resume(ctx, node); err != nil {
		e.cfg.Metrics.resume(modeManual, resultError)
		d.Action, d.Err = "resume failed: "+err.Error(), err
		return d, fmt.Errorf("undrain %s: %w", node, err)
	}
	e.cfg.Metrics.resume(modeManual, resultResumed)
	ns.pinned, ns.nextVerify, ns.last = false, time.Time{}, ""
	if skipVerification {
		d.Action = "resumed without verification (by " + who + ")"
	} else {
		d.Action = "resumed after verification: " + summary + " (by " + who + ")"
	}
	return d, nil
}
