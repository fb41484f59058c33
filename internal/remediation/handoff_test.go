package remediation_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/remediation"
)

// handoffCfg hands off, with a breaker that lets the tests' few drains
// through unless a test sets its own limits.
func handoffCfg() remediation.Config {
	return remediation.Config{Handoff: remediation.HandoffSoperator, MaxDrainShare: 1, MaxDrainsPerWindow: 10}
}

// soperatorParses is what Soperator's soperatorchecks requires of a
// "[node_problem]" reason before it starts the node replacement
// (parseHealthCheckReason in internal/controller/soperatorchecks/
// slurm_nodes_controller.go): "<...>: <message>", the part before the first
// ": " without "[node_problem] " camel-casing into a condition reason.
func soperatorParses(reason string) (string, bool) {
	head, message, ok := strings.Cut(reason, ": ")
	if !ok || !strings.Contains(reason, "[node_problem]") {
		return "", false
	}
	raw := strings.TrimPrefix(head, "[node_problem] ")
	words := regexp.MustCompile(`[^A-Za-z0-9]+`).Split(raw, -1)
	var camel strings.Builder
	for _, w := range words {
		w = strings.TrimLeft(w, "0123456789")
		if w == "" {
			continue
		}
		if camel.Len() == 0 {
			camel.WriteString(strings.ToLower(w))
		} else {
			camel.WriteString(strings.ToUpper(w[:1]) + strings.ToLower(w[1:]))
		}
	}
	if !regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`).MatchString(camel.String()) {
		return "", false
	}
	return message, true
}

func TestFormatHandoffReason(t *testing.T) {
	const incident = "01JDXQ7Z3K9V5M8N2P4R6T0W1Y"
	tests := []struct {
		name, evidence, incident, want string
	}{
		{"xid", "xid 79 (drain) on gpu3", incident, "[node_problem] sopilot: xid 79 (drain) on gpu3 incident=" + incident},
		{"no incident", "gpu2 fell off the bus", "", "[node_problem] sopilot: gpu2 fell off the bus"},
		{"evidence with colons", "ib:mlx5_0/1: port Down/Disabled", incident, "[node_problem] sopilot: ib:mlx5_0/1: port Down/Disabled incident=" + incident},
		{"long evidence cut, incident kept", strings.Repeat("xid 79 on gpu3 ", 20), incident, ""},
		{"control characters", "xid 79\non\tgpu3\x00", "01J X", "[node_problem] sopilot: xid 79 on gpu3 incident=01J_X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := remediation.FormatHandoffReason(tt.evidence, tt.incident)
			if tt.want != "" && got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
			if len(got) > remediation.MaxReasonLen {
				t.Errorf("reason is %d bytes, more than %d: %q", len(got), remediation.MaxReasonLen, got)
			}
			if !remediation.IsHandoff(got) {
				t.Errorf("IsHandoff(%q) = false", got)
			}
			if remediation.Owned(remediation.DefaultPrefix, got) {
				t.Errorf("Owned(%q, %q) = true: a hand-off drain must be foreign", remediation.DefaultPrefix, got)
			}
			if tt.incident != "" && !strings.HasSuffix(got, " incident="+strings.ReplaceAll(tt.incident, " ", "_")) {
				t.Errorf("reason %q lost the incident id", got)
			}
			msg, ok := soperatorParses(got)
			if !ok {
				t.Fatalf("soperator would not parse %q", got)
			}
			if !strings.HasPrefix(msg, "xid 79") && !strings.HasPrefix(msg, "gpu2") && !strings.HasPrefix(msg, "ib:") {
				t.Errorf("soperator's message %q does not start with the evidence", msg)
			}
		})
	}
}

func TestParseHandoff(t *testing.T) {
	for in, want := range map[string]remediation.Handoff{"": remediation.HandoffNone, "none": remediation.HandoffNone, "soperator": remediation.HandoffSoperator} {
		got, err := remediation.ParseHandoff(in)
		if err != nil || got != want {
			t.Errorf("ParseHandoff(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := remediation.ParseHandoff("Soperator"); err == nil || !strings.Contains(err.Error(), "handoff") {
		t.Errorf("ParseHandoff(Soperator) error = %v, want one naming handoff", err)
	}
	if _, err := remediation.New(remediation.Config{Handoff: "slurm"}, newFakeSlurm(time.Now), &fakeVerifier{}, nil); err == nil || !strings.Contains(err.Error(), "Handoff") {
		t.Errorf("New with Handoff slurm: error = %v, want one naming Handoff", err)
	}
	if _, err := remediation.New(remediation.Config{Prefix: "[node_problem]"}, newFakeSlurm(time.Now), &fakeVerifier{}, nil); err == nil || !strings.Contains(err.Error(), "Prefix") {
		t.Errorf("New with a prefix owning the hand-off reason: error = %v, want one naming Prefix", err)
	}
}

func gpuLost(gpu string) health.Result {
	return health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainNow, Findings: []health.Finding{{
		Component: gpu, Rule: "gpu_lost", Verdict: health.Unhealthy, Action: health.ActionDrainNow, Reason: gpu + " fell off the bus",
	}}}
}

func TestHandoffDrain(t *testing.T) {
	const incident = "01JDXQ7Z3K9V5M8N2P4R6T0W1Y"
	tests := []struct {
		name       string
		state      string
		result     health.Result
		wantAction string
		wantReason string
		wantState  string
	}{
		{
			name: "xid 79: handed off", state: "IDLE", result: xid79(3),
			wantAction: "handed off to soperator: drained with [node_problem] for its node replacement",
			wantReason: "[node_problem] sopilot: xid 79 (drain) on gpu3 incident=" + incident, wantState: "IDLE+DRAIN",
		},
		{
			name: "lost gpu under a job: handed off, job keeps running", state: "ALLOCATED", result: gpuLost("gpu5"),
			wantAction: "handed off to soperator: drained with [node_problem] for its node replacement (running job allowed to finish)",
			wantReason: "[node_problem] sopilot: gpu5 fell off the bus incident=" + incident, wantState: "ALLOCATED+DRAIN",
		},
		{
			name: "ib port down: handed off", state: "IDLE",
			result: health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob, Findings: []health.Finding{{
				Component: "ib:mlx5_0/1", Rule: "ib_link_down", Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob, Reason: "ib:mlx5_0/1: port Down/Disabled",
			}}},
			wantAction: "handed off to soperator: drained with [node_problem] for its node replacement",
			wantReason: "[node_problem] sopilot: ib:mlx5_0/1: port Down/Disabled incident=" + incident, wantState: "IDLE+DRAIN",
		},
		{
			name: "uncorrected ecc (a reset cures it): sopilot's own drain", state: "IDLE", result: eccAfterJob(),
			wantAction: "drained",
			wantReason: "[sopilot] uncorrected ECC error on gpu1 incident=" + incident, wantState: "IDLE+DRAIN",
		},
		{
			name: "hardware and other evidence: handed off with the hardware evidence", state: "IDLE",
			result: health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainNow, Findings: []health.Finding{
				{Component: "gpu1", Rule: "ecc_uncorrected_event", Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob, Reason: "uncorrected ECC error on gpu1"},
				{Component: "gpu2", Rule: "gpu_lost", Verdict: health.Unhealthy, Action: health.ActionDrainNow, Reason: "gpu2 fell off the bus"},
			}},
			wantAction: "handed off to soperator: drained with [node_problem] for its node replacement",
			wantReason: "[node_problem] sopilot: gpu2 fell off the bus incident=" + incident, wantState: "IDLE+DRAIN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, handoffCfg(), "n1="+tt.state, "n2", "n3", "n4")
			d := only(t, e.step(node{name: "n1", result: tt.result, incident: incident}))
			if d.Kind != remediation.KindDrain || d.Action != tt.wantAction || d.Reason != tt.wantReason || d.IncidentID != incident {
				t.Errorf("decision = %+v, want drain %q with reason %q", d, tt.wantAction, tt.wantReason)
			}
			if d.Handoff != remediation.IsHandoff(tt.wantReason) {
				t.Errorf("decision Handoff = %v", d.Handoff)
			}
			if got := e.slurm.node("n1"); got.StateString() != tt.wantState || got.Reason != tt.wantReason {
				t.Errorf("node = %s %q, want %s %q", got.StateString(), got.Reason, tt.wantState, tt.wantReason)
			}
			if jobs := e.slurm.jobsOn("n1"); tt.state == "ALLOCATED" && len(jobs) != 1 {
				t.Errorf("jobs on n1 = %v, want the running job kept", jobs)
			}
			result := "drained"
			if d.Handoff {
				result = "handed_off"
			}
			if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", result); got != 1 {
				t.Errorf("drains_total{result=%s} = %v, want 1", result, got)
			}
		})
	}
}

func TestHandoffIsForeignAfterwards(t *testing.T) {
	e := newEnv(t, handoffCfg(), "n1", "n2", "n3", "n4")
	e.step(node{name: "n1", result: xid79(3), incident: "I1"})
	reason := e.slurm.node("n1").Reason
	e.slurm.resetCalls()

	// Evidence goes on: recorded once, nothing written.
	d := only(t, e.step(node{name: "n1", result: xid79(3), incident: "I1"}))
	if d.Kind != remediation.KindSkip || !d.Handoff || d.Action != "handed off to soperator: left to its node replacement" || d.Reason != reason {
		t.Errorf("decision = %+v", d)
	}
	if ds := e.step(node{name: "n1", result: xid79(3), incident: "I1"}); len(ds) != 0 {
		t.Errorf("repeat decisions = %+v, want none", ds)
	}
	// Evidence clears for long: never verified, never resumed.
	e.clock.Advance(time.Hour)
	for range 3 {
		if ds := e.step(node{name: "n1", result: healthy(), healthySince: t0}); len(ds) != 0 {
			t.Errorf("healthy decisions = %+v, want none", ds)
		}
	}
	if e.ver.count() != 0 {
		t.Errorf("verifier ran %d times on a handed-off node", e.ver.count())
	}
	// Other, non-hardware evidence: reason not rewritten.
	e.step(node{name: "n1", result: eccAfterJob(), incident: "I2"})
	// An operator cannot undrain or re-drain it through the engine.
	if _, err := e.eng.Undrain(context.Background(), "n1", true, "alice"); !errors.Is(err, remediation.ErrForeign) {
		t.Errorf("Undrain error = %v, want ErrForeign", err)
	}
	if _, err := e.eng.Drain(context.Background(), "n1", "look at it", "alice"); !errors.Is(err, remediation.ErrForeign) {
		t.Errorf("Drain error = %v, want ErrForeign", err)
	}
	if m := e.slurm.mutations(); len(m) != 0 {
		t.Errorf("Slurm changed after the hand-off: %+v", m)
	}
	if got := e.slurm.node("n1"); got.Reason != reason || !got.Drained() {
		t.Errorf("node = %s %q, want still drained with %q", got.StateString(), got.Reason, reason)
	}
	if !remediation.HoldsDrain(d.Action) {
		t.Errorf("HoldsDrain(%q) = false", d.Action)
	}
}

func TestHandoffReplacementTakenUpFresh(t *testing.T) {
	e := newEnv(t, handoffCfg(), "n1", "n2", "n3", "n4")
	e.step(node{name: "n1", result: xid79(3), incident: "I1"})

	// Soperator's replacement: the worker moves to a new machine and
	// soperatorchecks resumes the Slurm node (DRAIN and reason gone).
	e.slurm.mu.Lock()
	n := e.slurm.nodes["n1"]
	n.Flags, n.Reason, n.ReasonUser = nil, "", ""
	e.slurm.mu.Unlock()
	e.slurm.resetCalls()

	d := only(t, e.step(node{name: "n1", result: healthy(), incident: "I1"}))
	if d.Kind != remediation.KindReturned || !d.Handoff || d.IncidentID != "I1" || !strings.Contains(d.Action, "resumed") {
		t.Errorf("decision = %+v, want returned", d)
	}
	if remediation.HoldsDrain(d.Action) {
		t.Errorf("HoldsDrain(%q) = true after the return", d.Action)
	}
	// A new fault on the new machine is handed off again, under the
	// breaker like any drain.
	d = only(t, e.step(node{name: "n1", result: gpuLost("gpu0"), incident: "I9"}))
	if d.Kind != remediation.KindDrain || !d.Handoff || d.Reason != "[node_problem] sopilot: gpu0 fell off the bus incident=I9" {
		t.Errorf("decision = %+v, want a new hand-off", d)
	}
}

func TestHandoffConvertsOwnDrain(t *testing.T) {
	t.Run("automatic drain becomes a hand-off", func(t *testing.T) {
		e := newEnv(t, handoffCfg(), "n1", "n2", "n3", "n4")
		d := only(t, e.step(node{name: "n1", result: eccAfterJob(), incident: "I1"}))
		if d.Reason != "[sopilot] uncorrected ECC error on gpu1 incident=I1" {
			t.Fatalf("first drain = %+v", d)
		}
		d = only(t, e.step(node{name: "n1", result: xid79(2), incident: "I2"}))
		want := "[node_problem] sopilot: xid 79 (drain) on gpu2 incident=I2"
		if d.Kind != remediation.KindDrain || !d.Handoff || d.Reason != want ||
			d.Action != "handed off to soperator: sopilot's drain became [node_problem] for its node replacement" {
			t.Errorf("decision = %+v", d)
		}
		if got := e.slurm.node("n1").Reason; got != want {
			t.Errorf("reason = %q, want %q", got, want)
		}
		// Not a new drain for the breaker's window.
		if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "handed_off"); got != 1 {
			t.Errorf("handed_off = %v, want 1", got)
		}
	})
	t.Run("operator's drain stays the operator's", func(t *testing.T) {
		e := newEnv(t, handoffCfg(), "n1", "n2", "n3", "n4")
		if _, err := e.eng.Drain(context.Background(), "n1", "testing", "alice"); err != nil {
			t.Fatal(err)
		}
		e.slurm.resetCalls()
		if ds := e.step(node{name: "n1", result: xid79(2), incident: "I2"}); len(ds) != 0 {
			t.Errorf("decisions = %+v, want none", ds)
		}
		if m := e.slurm.mutations(); len(m) != 0 {
			t.Errorf("mutations = %+v", m)
		}
	})
	t.Run("plain mode never hands off", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
		d := only(t, e.step(node{name: "n1", result: xid79(2), incident: "I2"}))
		if d.Handoff || d.Reason != "[sopilot] xid 79 (drain) on gpu2 incident=I2" {
			t.Errorf("decision = %+v", d)
		}
	})
}

func TestHandoffBreaker(t *testing.T) {
	// 8 nodes, share 25%: at most 2 drained by sopilot, hand-offs included.
	cfg := handoffCfg()
	cfg.MaxDrainShare = 0.25
	e := newEnv(t, cfg, "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8")
	ds := e.step(node{name: "n1", result: xid79(0), incident: "I1"}, node{name: "n2", result: eccAfterJob(), incident: "I2"})
	if len(ds) != 2 {
		t.Fatalf("decisions = %+v", ds)
	}
	ds = e.step(node{name: "n1", result: xid79(0), incident: "I1"}, node{name: "n2", result: eccAfterJob(), incident: "I2"},
		node{name: "n3", result: gpuLost("gpu1"), incident: "I3"})
	var refused, alert bool
	for _, d := range ds {
		switch {
		case d.Node == "n3" && d.Kind == remediation.KindSkip && strings.HasPrefix(d.Action, "breaker open: would drain (limit of 2 of 8 nodes drained reached)"):
			refused = true
			if !d.Handoff || !remediation.IsHandoff(d.Reason) {
				t.Errorf("refused decision = %+v, want the hand-off it would have been", d)
			}
		case d.Kind == remediation.KindAlert:
			alert = true
		}
	}
	if !refused || !alert {
		t.Errorf("decisions = %+v, want n3 refused by the breaker and an alert", ds)
	}
	if e.slurm.node("n3").Drained() {
		t.Error("n3 drained past the breaker")
	}
}

func TestHandoffDryRun(t *testing.T) {
	cfg := handoffCfg()
	cfg.DryRun = true
	e := newEnv(t, cfg, "n1", "n2", "n3", "n4")
	d := only(t, e.step(node{name: "n1", result: xid79(3), incident: "I1"}))
	if d.Kind != remediation.KindDrain || !d.DryRun || !d.Handoff ||
		d.Action != "dry-run: would hand off to soperator: drain with [node_problem] for its node replacement" ||
		d.Reason != "[node_problem] sopilot: xid 79 (drain) on gpu3 incident=I1" {
		t.Errorf("decision = %+v", d)
	}
	if !remediation.HoldsDrain(d.Action) {
		t.Errorf("HoldsDrain(%q) = false", d.Action)
	}
	// Remembered as handed off: the next step only records the skip.
	d = only(t, e.step(node{name: "n1", result: xid79(3), incident: "I1"}))
	if d.Kind != remediation.KindSkip || !d.Handoff {
		t.Errorf("second decision = %+v", d)
	}
	// A dry-run conversion of a dry-run sopilot drain.
	only(t, e.step(node{name: "n2", result: eccAfterJob(), incident: "I2"}))
	d = only(t, e.step(node{name: "n2", result: gpuLost("gpu4"), incident: "I3"}))
	if d.Kind != remediation.KindDrain || !d.DryRun || !d.Handoff || !strings.HasPrefix(d.Action, "dry-run: would hand off") {
		t.Errorf("conversion decision = %+v", d)
	}
	if calls := e.slurm.ops(); len(calls) != 0 {
		t.Errorf("dry-run called Slurm: %+v", calls)
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "dry_run"); got != 3 {
		t.Errorf("dry_run drains = %v, want 3", got)
	}
}

func TestHandoffSeenAfterRestart(t *testing.T) {
	// A controller that restarts finds the hand-off in Slurm by its
	// reason: foreign, counted by the breaker, and fresh once back.
	cfg := handoffCfg()
	cfg.MaxDrainShare = 0.25
	e := newEnv(t, cfg, "n1", "n2", "n3", "n4")
	e.slurm.humanDrain("n1", "[node_problem] sopilot: xid 79 (drain) on gpu3 incident=I1", "root")
	// 4 nodes: share cap 1, already held by the hand-off.
	ds := e.step(node{name: "n2", result: xid79(1), incident: "I2"})
	d := only(t, ds[:1])
	if d.Node != "n2" || d.Kind != remediation.KindSkip || !strings.HasPrefix(d.Action, "breaker open") {
		t.Errorf("decisions = %+v, want n2 refused: the hand-off counts towards the share", ds)
	}
	e.slurm.mu.Lock()
	e.slurm.nodes["n1"].Flags, e.slurm.nodes["n1"].Reason = nil, ""
	e.slurm.mu.Unlock()
	var returned bool
	for _, d := range e.step() {
		returned = returned || d.Node == "n1" && d.Kind == remediation.KindReturned
	}
	if !returned {
		t.Error("no return decision for n1")
	}
}
