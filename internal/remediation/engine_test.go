package remediation_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func only(t *testing.T, ds []remediation.Decision) remediation.Decision {
	t.Helper()
	if len(ds) != 1 {
		t.Fatalf("decisions = %+v, want exactly one", ds)
	}
	return ds[0]
}

func TestStepDrains(t *testing.T) {
	const incident = "01JDXQ7Z3K9V5M8N2P4R6T0W1Y"
	tests := []struct {
		name   string
		state  string
		setup  func(*fakeSlurm)
		result health.Result
		// want: the one decision (zero Kind: none at all).
		wantKind   remediation.Kind
		wantAction string
		wantReason string
		wantState  string // the node afterwards
		wantCalls  []call // Drain and Resume calls
	}{
		{
			name: "idle node, xid 79: drained now", state: "IDLE", result: xid79(3),
			wantKind: remediation.KindDrain, wantAction: "drained",
			wantReason: "[sopilot] xid 79 (drain) on gpu3 incident=" + incident,
			wantState:  "IDLE+DRAIN",
			wantCalls:  []call{{"drain", "n1", "[sopilot] xid 79 (drain) on gpu3 incident=" + incident}},
		},
		{
			name: "allocated node, drain after job: job keeps running", state: "ALLOCATED", result: eccAfterJob(),
			wantKind: remediation.KindDrain, wantAction: "drained (running job allowed to finish)",
			wantReason: "[sopilot] uncorrected ECC error on gpu1 incident=" + incident,
			wantState:  "ALLOCATED+DRAIN",
			wantCalls:  []call{{"drain", "n1", "[sopilot] uncorrected ECC error on gpu1 incident=" + incident}},
		},
		{
			name: "mixed node, drain now: job still allowed to finish", state: "MIXED", result: xid79(0),
			wantKind: remediation.KindDrain, wantAction: "drained (running job allowed to finish)",
			wantReason: "[sopilot] xid 79 (drain) on gpu0 incident=" + incident,
			wantState:  "MIXED+DRAIN",
			wantCalls:  []call{{"drain", "n1", "[sopilot] xid 79 (drain) on gpu0 incident=" + incident}},
		},
		{
			name: "agent silent: never drained for silence", state: "IDLE", result: silent(),
			wantState: "IDLE",
		},
		{
			name: "degraded, reset when idle: not drained", state: "IDLE",
			result:    health.Result{Verdict: health.Degraded, Action: health.ActionResetWhenIdle},
			wantState: "IDLE",
		},
		{
			name: "application xid recorded against run: not drained", state: "ALLOCATED",
			result:    health.Result{Verdict: health.Healthy, Action: health.ActionRecordAgainstRun},
			wantState: "ALLOCATED",
		},
		{
			name: "drained by a person: reason untouched", state: "IDLE",
			setup:    func(f *fakeSlurm) { f.humanDrain("n1", "bad PSU, ticket 4711", "alice") },
			result:   xid79(3),
			wantKind: remediation.KindSkip, wantAction: `skipped: drained by someone else (reason "bad PSU, ticket 4711" by alice)`,
			wantReason: "bad PSU, ticket 4711", wantState: "IDLE+DRAIN",
		},
		{
			name: "down with slurm's reason: reason untouched", state: "DOWN",
			setup: func(f *fakeSlurm) {
				f.mu.Lock()
				f.nodes["n1"].Reason, f.nodes["n1"].ReasonUser = "Not responding", "slurm"
				f.mu.Unlock()
			},
			result:   xid79(3),
			wantKind: remediation.KindSkip, wantAction: `skipped: down by someone else (reason "Not responding" by slurm)`,
			wantReason: "Not responding", wantState: "DOWN",
		},
		{
			name: "already drained by us: not drained again", state: "IDLE",
			setup:     func(f *fakeSlurm) { f.humanDrain("n1", "[sopilot] gpu0 fell off the bus incident=X", "slurm") },
			result:    xid79(3),
			wantState: "IDLE+DRAIN",
		},
		{
			name: "drained by another tool with a look-alike prefix", state: "IDLE",
			setup:    func(f *fakeSlurm) { f.humanDrain("n1", "[sopilot]x not ours", "bob") },
			result:   xid79(3),
			wantKind: remediation.KindSkip, wantAction: `skipped: drained by someone else (reason "[sopilot]x not ours" by bob)`,
			wantReason: "[sopilot]x not ours", wantState: "IDLE+DRAIN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, remediation.Config{}, "n1="+tt.state, "n2", "n3", "n4")
			if tt.setup != nil {
				tt.setup(e.slurm)
			}
			before := e.slurm.node("n1")
			ds := e.step(node{name: "n1", result: tt.result, incident: incident})
			if tt.wantKind == "" {
				if len(ds) != 0 {
					t.Fatalf("decisions = %+v, want none", ds)
				}
			} else {
				d := only(t, ds)
				if d.Node != "n1" || d.Kind != tt.wantKind || d.Action != tt.wantAction || d.Reason != tt.wantReason || d.Err != nil || d.Manual || d.DryRun {
					t.Errorf("decision = %+v\nwant kind %s action %q reason %q", d, tt.wantKind, tt.wantAction, tt.wantReason)
				}
			}
			after := e.slurm.node("n1")
			if got := after.StateString(); got != tt.wantState {
				t.Errorf("state = %s, want %s", got, tt.wantState)
			}
			if !reflect.DeepEqual(e.slurm.mutations(), tt.wantCalls) {
				t.Errorf("calls = %+v, want %+v", e.slurm.mutations(), tt.wantCalls)
			}
			if tt.wantCalls == nil && (after.Reason != before.Reason || after.ReasonUser != before.ReasonUser) {
				t.Errorf("reason changed from %q/%s to %q/%s", before.Reason, before.ReasonUser, after.Reason, after.ReasonUser)
			}
			if tt.state == "ALLOCATED" || tt.state == "MIXED" {
				if got := e.slurm.jobsOn("n1"); len(got) != 1 {
					t.Errorf("jobs on n1 = %v, want the running job kept", got)
				}
			}
			if e.ver.count() != 0 {
				t.Errorf("verifier called %d times", e.ver.count())
			}
		})
	}
}

// A node drained while its job runs shows ALLOCATED+DRAIN, and IDLE+DRAIN
// once the job has ended; it is never resumed while the evidence stands.
func TestDrainAfterJobLetsJobFinish(t *testing.T) {
	e := newEnv(t, remediation.Config{}, "n1=ALLOCATED", "n2", "n3", "n4")
	d := only(t, e.step(node{name: "n1", result: eccAfterJob()}))
	if d.Action != "drained (running job allowed to finish)" {
		t.Fatalf("action = %q", d.Action)
	}
	if st := e.slurm.node("n1"); st.StateString() != "ALLOCATED+DRAIN" || len(e.slurm.jobsOn("n1")) != 1 {
		t.Fatalf("state %s jobs %v, want ALLOCATED+DRAIN with the job running", st.StateString(), e.slurm.jobsOn("n1"))
	}
	e.clock.Advance(time.Hour)
	e.slurm.finishJobs("n1")
	if ds := e.step(node{name: "n1", result: eccAfterJob()}); len(ds) != 0 {
		t.Fatalf("decisions after the job ended = %+v, want none", ds)
	}
	if st := e.slurm.node("n1"); st.StateString() != "IDLE+DRAIN" {
		t.Fatalf("state = %s, want IDLE+DRAIN", st.StateString())
	}
	if got := len(e.slurm.mutations()); got != 1 {
		t.Fatalf("%d drain/resume calls, want 1", got)
	}
}

// The engine holds only a scheduler.NodeBackend, whose methods cannot end
// a job, and its source names no way to cancel one.
func TestNoJobCancellation(t *testing.T) {
	typ := reflect.TypeFor[scheduler.NodeBackend]()
	var methods []string
	for i := range typ.NumMethod() {
		methods = append(methods, typ.Method(i).Name)
	}
	if want := []string{"Drain", "Nodes", "Resume"}; !reflect.DeepEqual(methods, want) {
		t.Fatalf("NodeBackend methods = %v, want %v: check the engine never ends jobs through a new one", methods, want)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				if l := strings.ToLower(n.Name); strings.Contains(l, "cancel") || strings.Contains(l, "kill") || strings.Contains(l, "requeue") {
					t.Errorf("%s: identifier %s", fset.Position(n.Pos()), n.Name)
				}
			case *ast.BasicLit:
				if l := strings.ToLower(n.Value); strings.Contains(l, "scancel") || strings.Contains(l, "state=down") {
					t.Errorf("%s: literal %s", fset.Position(n.Pos()), n.Value)
				}
			}
			return true
		})
	}
}

// Someone else's drain is never touched: no Drain or Resume call, from
// Step or from an operator, and the verifier never runs on it.
func TestForeignDrainUntouched(t *testing.T) {
	for _, dry := range []bool{false, true} {
		t.Run(fmt.Sprint("dry-run=", dry), func(t *testing.T) {
			e := newEnv(t, remediation.Config{DryRun: dry}, "n1", "n2", "n3", "n4")
			e.slurm.humanDrain("n1", "maintenance: BIOS update", "root")
			e.slurm.humanDrain("n2", "maintenance: BIOS update", "root")

			ds := e.step(node{name: "n1", result: xid79(1)}, node{name: "n2", result: healthy(), healthySince: t0.Add(-time.Hour)})
			d := only(t, ds)
			if d.Node != "n1" || d.Kind != remediation.KindSkip || !strings.HasPrefix(d.Action, "skipped: drained by someone else") ||
				!strings.Contains(d.Action, `"maintenance: BIOS update"`) || d.Reason != "maintenance: BIOS update" {
				t.Fatalf("decision = %+v", d)
			}
			e.clock.Advance(time.Hour)
			e.step(node{name: "n1", result: xid79(1)}, node{name: "n2", result: healthy(), healthySince: t0.Add(-time.Hour)})

			d, err := e.eng.Drain(context.Background(), "n1", "flaky", "bob")
			if !errors.Is(err, remediation.ErrForeign) || !strings.Contains(err.Error(), `"maintenance: BIOS update"`) {
				t.Errorf("Drain error = %v, want ErrForeign naming the reason", err)
			}
			if d.Kind != remediation.KindSkip || d.Reason != "maintenance: BIOS update" {
				t.Errorf("Drain decision = %+v", d)
			}
			for _, skip := range []bool{false, true} {
				_, err = e.eng.Undrain(context.Background(), "n2", skip, "bob")
				if !errors.Is(err, remediation.ErrForeign) || !strings.Contains(err.Error(), `"maintenance: BIOS update"`) {
					t.Errorf("Undrain(skip=%v) error = %v, want ErrForeign naming the reason", skip, err)
				}
			}
			if m := e.slurm.mutations(); len(m) != 0 {
				t.Errorf("calls = %+v, want none", m)
			}
			if e.ver.count() != 0 {
				t.Errorf("verifier ran %d times on someone else's node", e.ver.count())
			}
			for _, n := range []string{"n1", "n2"} {
				if st := e.slurm.node(n); st.Reason != "maintenance: BIOS update" || st.ReasonUser != "root" || !st.Drained() {
					t.Errorf("%s = %+v", n, st)
				}
			}
			if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "skipped_foreign"); got != 1 {
				t.Errorf("auto skipped_foreign = %v, want 1 (repeats are not recounted)", got)
			}
			if got := e.counter("sopilot_remediation_drains_total", "mode", "manual", "result", "skipped_foreign"); got != 1 {
				t.Errorf("manual skipped_foreign = %v, want 1", got)
			}
		})
	}
}

// A snapshot that is a few seconds old cannot make the engine overwrite a
// reason set in the meantime: it reads Slurm again before changing it.
func TestStaleSnapshotDoesNotOverwrite(t *testing.T) {
	e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
	in := e.inputs(node{name: "n1", result: xid79(2)}) // snapshot: n1 IDLE
	e.slurm.humanDrain("n1", "swapping GPU 2", "carol")
	d := only(t, e.eng.Step(context.Background(), in))
	if d.Kind != remediation.KindSkip || !strings.Contains(d.Action, `"swapping GPU 2" by carol`) {
		t.Fatalf("decision = %+v", d)
	}
	if m := e.slurm.mutations(); len(m) != 0 {
		t.Fatalf("calls = %+v, want none", m)
	}

	// The other way round: the snapshot predates our own drain.
	e2 := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
	stale := e2.inputs(node{name: "n1", result: xid79(2)})
	only(t, e2.eng.Step(context.Background(), stale))
	if ds := e2.eng.Step(context.Background(), stale); len(ds) != 0 {
		t.Fatalf("second step on the stale snapshot = %+v, want none", ds)
	}
	if got := len(e2.slurm.mutations()); got != 1 {
		t.Fatalf("%d drain calls, want 1", got)
	}
}

func TestIdempotentSteps(t *testing.T) {
	e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8")
	e.slurm.humanDrain("n3", "hands off", "root")
	faults := []node{{name: "n1", result: xid79(1)}, {name: "n2", result: silent()}, {name: "n3", result: xid79(0)}}
	first := e.step(faults...)
	if len(first) != 2 || first[0].Node != "n3" || first[0].Kind != remediation.KindSkip || first[1].Node != "n1" || first[1].Kind != remediation.KindDrain {
		t.Fatalf("first step = %+v", first)
	}
	for i := range 5 {
		e.clock.Advance(30 * time.Second)
		if ds := e.step(faults...); len(ds) != 0 {
			t.Fatalf("step %d = %+v, want none", i+2, ds)
		}
	}
	if got := e.slurm.mutations(); len(got) != 1 {
		t.Fatalf("calls = %+v, want one drain", got)
	}
	// The evidence changes: the first reason stays.
	e.step(node{name: "n1", result: eccAfterJob()})
	if st := e.slurm.node("n1"); st.Reason != "[sopilot] xid 79 (drain) on gpu1" {
		t.Fatalf("reason = %q, want the first one", st.Reason)
	}
	// Nothing is read from Slurm while there is nothing to change.
	e.slurm.resetCalls()
	e.step(faults...)
	if got := e.slurm.ops(); len(got) != 0 {
		t.Fatalf("calls on a settled cluster = %+v, want none", got)
	}
}

func TestBreakerShare(t *testing.T) {
	// 8 nodes, faults on 6: at most 25% (2 nodes) drained by us.
	e := newEnv(t, remediation.Config{MaxDrainsPerWindow: 100}, "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8")
	faults := []node{
		{name: "n1", result: eccAfterJob()}, {name: "n2", result: eccAfterJob()}, {name: "n3", result: xid79(0)},
		{name: "n4", result: eccAfterJob()}, {name: "n5", result: xid79(5)}, {name: "n6", result: eccAfterJob()},
	}
	ds := e.step(faults...)
	var drained, breaker []string
	var alerts []remediation.Decision
	for _, d := range ds {
		switch {
		case d.Kind == remediation.KindDrain:
			drained = append(drained, d.Node)
		case d.Kind == remediation.KindSkip && d.Action == "breaker open: would drain (limit of 2 of 8 nodes drained reached)":
			breaker = append(breaker, d.Node)
			if !strings.HasPrefix(d.Reason, "[sopilot] ") {
				t.Errorf("breaker decision reason = %q, want the reason it would set", d.Reason)
			}
		case d.Kind == remediation.KindAlert:
			alerts = append(alerts, d)
		default:
			t.Errorf("unexpected decision %+v", d)
		}
	}
	// Drain-now evidence is served first.
	if !reflect.DeepEqual(drained, []string{"n3", "n5"}) || !reflect.DeepEqual(breaker, []string{"n1", "n2", "n4", "n6"}) {
		t.Fatalf("drained %v, breaker %v", drained, breaker)
	}
	if len(alerts) != 1 || alerts[0].Node != "" || !strings.Contains(alerts[0].Action, "n1, n2, n4, n6") {
		t.Fatalf("alerts = %+v", alerts)
	}
	if !e.eng.BreakerOpen() || e.counter("sopilot_remediation_breaker_open") != 1 || e.counter("sopilot_remediation_breaker_trips_total") != 1 {
		t.Fatalf("breaker open %v gauge %v trips %v", e.eng.BreakerOpen(), e.counter("sopilot_remediation_breaker_open"), e.counter("sopilot_remediation_breaker_trips_total"))
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "breaker"); got != 4 {
		t.Errorf("breaker drains = %v, want 4", got)
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "drained"); got != 2 {
		t.Errorf("drained = %v, want 2", got)
	}
	// Still open, nothing new recorded, no new alert.
	e.clock.Advance(time.Hour)
	if ds := e.step(faults...); len(ds) != 0 || !e.eng.BreakerOpen() {
		t.Fatalf("repeat step = %+v open %v", ds, e.eng.BreakerOpen())
	}
	if len(e.slurm.mutations()) != 2 {
		t.Fatalf("calls = %+v", e.slurm.mutations())
	}

	// Operators bypass the breaker.
	if _, err := e.eng.Drain(context.Background(), "n7", "fan noise", "dave"); err != nil {
		t.Fatal(err)
	}

	// n3 recovers and is resumed after verification: the share falls, and
	// the breaker lets one more drain through (n7 now counts: 2 of 2).
	faults[2] = node{name: "n3", result: healthy(), healthySince: e.clock.Now().Add(-3 * time.Minute)}
	ds = e.step(faults...)
	if d := only(t, ds); d.Node != "n3" || d.Kind != remediation.KindResume {
		t.Fatalf("decisions = %+v", ds)
	}
	ds = e.step(faults...)
	if len(ds) != 0 {
		t.Fatalf("decisions = %+v, want none: n5 and n7 hold the share", ds)
	}
	if _, err := e.eng.Undrain(context.Background(), "n7", true, "dave"); err != nil {
		t.Fatal(err)
	}
	ds = e.step(faults...)
	if d := only(t, ds); d.Node != "n1" || d.Kind != remediation.KindDrain {
		t.Fatalf("decisions = %+v, want n1 drained", ds)
	}
	if !e.eng.BreakerOpen() {
		t.Fatal("breaker closed while n2, n4, n6 are still refused")
	}
	// The remaining faults clear: the breaker closes by itself.
	ds = e.step()
	if e.eng.BreakerOpen() || e.counter("sopilot_remediation_breaker_open") != 0 {
		t.Fatalf("breaker still open after the faults cleared (decisions %+v)", ds)
	}
}

func TestBreakerWindow(t *testing.T) {
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("n%02d", i)
	}
	e := newEnv(t, remediation.Config{MaxDrainsPerWindow: 2, Window: 10 * time.Minute}, names...)
	faults := []node{{name: "n00", result: xid79(0)}, {name: "n01", result: xid79(1)}, {name: "n02", result: xid79(2)}, {name: "n03", result: xid79(3)}}
	ds := e.step(faults...)
	want := []string{
		"n00 drain drained", "n01 drain drained",
		"n02 skip breaker open: would drain (limit of 2 automatic drains per 10m0s reached)",
		"n03 skip breaker open: would drain (limit of 2 automatic drains per 10m0s reached)",
	}
	var got []string
	alerts := 0
	for _, d := range ds {
		if d.Kind == remediation.KindAlert {
			alerts++
			continue
		}
		got = append(got, fmt.Sprintf("%s %s %s", d.Node, d.Kind, d.Action))
	}
	if !reflect.DeepEqual(got, want) || alerts != 1 || !e.eng.BreakerOpen() {
		t.Fatalf("decisions = %q alerts %d open %v", got, alerts, e.eng.BreakerOpen())
	}
	e.clock.Advance(9 * time.Minute)
	if ds := e.step(faults...); len(ds) != 0 || !e.eng.BreakerOpen() {
		t.Fatalf("within the window: %+v open %v", ds, e.eng.BreakerOpen())
	}
	e.clock.Advance(time.Minute)
	ds = e.step(faults...)
	if len(ds) != 2 || ds[0].Node != "n02" || ds[0].Kind != remediation.KindDrain || ds[1].Node != "n03" || ds[1].Kind != remediation.KindDrain {
		t.Fatalf("after the window: %+v", ds)
	}
	if e.eng.BreakerOpen() || e.counter("sopilot_remediation_breaker_open") != 0 {
		t.Fatal("breaker still open after the window passed")
	}
	// A new fault right away trips it again, with a second alert.
	faults = append(faults, node{name: "n04", result: xid79(4)})
	ds = e.step(faults...)
	if len(ds) != 2 || ds[0].Kind != remediation.KindSkip || ds[1].Kind != remediation.KindAlert {
		t.Fatalf("decisions = %+v", ds)
	}
	if got := e.counter("sopilot_remediation_breaker_trips_total"); got != 2 {
		t.Fatalf("trips = %v, want 2", got)
	}
	// Slurm cannot be read: the drain fails, the breaker stays as it was.
	e.slurm.failNodes = errors.New("slurm_load_node: Socket timed out")
	ds = e.step(faults...)
	if d := only(t, ds); d.Node != "n04" || d.Err == nil || !e.eng.BreakerOpen() {
		t.Fatalf("decisions = %+v, open %v", ds, e.eng.BreakerOpen())
	}
}

// Without MaxDrainsPerWindow, 10% of the nodes (at least one) may be drained
// per window; at least one node may always be drained, even in a cluster
// too small for its share.
func TestBreakerDefaults(t *testing.T) {
	e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8")
	ds := e.step(node{name: "n1", result: xid79(0)}, node{name: "n2", result: xid79(0)})
	if len(ds) != 3 || ds[0].Kind != remediation.KindDrain || ds[1].Action != "breaker open: would drain (limit of 1 automatic drains per 10m0s reached)" {
		t.Fatalf("decisions = %+v", ds)
	}
	small := newEnv(t, remediation.Config{}, "worker-0", "worker-1")
	ds = small.step(node{name: "worker-0", result: xid79(0)}, node{name: "worker-1", result: xid79(0)})
	if len(ds) != 3 || ds[0].Node != "worker-0" || ds[0].Kind != remediation.KindDrain ||
		ds[1].Action != "breaker open: would drain (limit of 1 of 2 nodes drained reached)" {
		t.Fatalf("decisions = %+v", ds)
	}
}

func TestDryRun(t *testing.T) {
	e := newEnv(t, remediation.Config{DryRun: true, MaxDrainsPerWindow: 10}, "n1=ALLOCATED", "n2", "n3", "n4", "n5", "n6", "n7", "n8")
	faults := []node{{name: "n1", result: eccAfterJob(), incident: "I1"}, {name: "n2", result: xid79(2), incident: "I2"}, {name: "n3", result: xid79(3), incident: "I3"}}
	ds := e.step(faults...)
	want := []remediation.Decision{
		{Node: "n2", Kind: remediation.KindDrain, Action: "dry-run: would drain", Reason: "[sopilot] xid 79 (drain) on gpu2 incident=I2", IncidentID: "I2", DryRun: true},
		{Node: "n3", Kind: remediation.KindDrain, Action: "dry-run: would drain", Reason: "[sopilot] xid 79 (drain) on gpu3 incident=I3", IncidentID: "I3", DryRun: true},
		{Node: "n1", Kind: remediation.KindSkip, Action: "breaker open: would drain (limit of 2 of 8 nodes drained reached)", Reason: "[sopilot] uncorrected ECC error on gpu1 incident=I1", IncidentID: "I1"},
	}
	if len(ds) != 4 || !reflect.DeepEqual(ds[:3], want) || ds[3].Kind != remediation.KindAlert {
		t.Fatalf("decisions =\n%+v\nwant\n%+v and an alert", ds, want)
	}
	// Repeats decide nothing new.
	if ds := e.step(faults...); len(ds) != 0 {
		t.Fatalf("repeat = %+v", ds)
	}
	// n2 recovers: would resume once ClearFor has passed, without verifying.
	faults[1] = node{name: "n2", result: healthy(), healthySince: e.clock.Now()}
	if ds := e.step(faults...); len(ds) != 0 {
		t.Fatalf("before ClearFor = %+v", ds)
	}
	e.clock.Advance(2 * time.Minute)
	// Drains are decided before resumes: n1 waits for the next step.
	ds = e.step(faults...)
	if d := only(t, ds); d.Node != "n2" || d.Kind != remediation.KindResume || d.Reason != "[sopilot] xid 79 (drain) on gpu2 incident=I2" ||
		d.Action != "dry-run: would resume (after a verification, not run in dry-run)" || !d.DryRun {
		t.Fatalf("decisions = %+v", ds)
	}
	ds = e.step(faults...)
	if d := only(t, ds); d.Node != "n1" || d.Action != "dry-run: would drain (running job would be allowed to finish)" {
		t.Fatalf("decisions = %+v", ds)
	}
	if e.eng.BreakerOpen() {
		t.Fatal("breaker still open")
	}
	if ds := e.step(faults...); len(ds) != 0 {
		t.Fatalf("repeat = %+v", ds)
	}
	// Operators in dry-run: decisions, no change.
	d, err := e.eng.Drain(context.Background(), "n5", "check cabling", "erin")
	if err != nil || d.Action != "dry-run: would drain" || !d.DryRun || d.Reason != "[sopilot] manual: check cabling (by erin)" {
		t.Fatalf("Drain = %+v, %v", d, err)
	}
	d, err = e.eng.Undrain(context.Background(), "n5", false, "erin")
	if err != nil || !strings.HasPrefix(d.Action, "dry-run: would resume") {
		t.Fatalf("Undrain = %+v, %v", d, err)
	}
	if got := e.slurm.mutations(); len(got) != 0 {
		t.Fatalf("dry-run changed slurm: %+v", got)
	}
	if got := e.slurm.ops("nodes"); len(got) != 2 {
		t.Fatalf("reads = %d, want 2 (one per operator call, none from Step)", len(got))
	}
	if e.ver.count() != 0 {
		t.Fatalf("verifier ran %d times in dry-run", e.ver.count())
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "dry_run"); got != 3 {
		t.Errorf("auto dry_run drains = %v, want 3", got)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if st := e.slurm.node(n); st.Drained() {
			t.Errorf("%s drained in dry-run", n)
		}
	}
}

func TestDryRunStepMakesNoBackendCalls(t *testing.T) {
	e := newEnv(t, remediation.Config{DryRun: true}, "n1", "n2", "n3", "n4")
	e.slurm.humanDrain("n4", "[sopilot] xid 48 (drain) on gpu0 incident=OLD", "slurm")
	for range 3 {
		e.step(node{name: "n1", result: xid79(1)}, node{name: "n4", result: healthy(), healthySince: t0.Add(-time.Hour)})
		e.clock.Advance(time.Minute)
	}
	if got := e.slurm.ops(); len(got) != 0 {
		t.Fatalf("calls = %+v, want none", got)
	}
}

func TestResumeAfterVerification(t *testing.T) {
	const old = "[sopilot] xid 79 (drain) on gpu3 incident=01JOLD"
	setup := func(t *testing.T) *env {
		e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
		e.slurm.humanDrain("n1", old, "slurm")
		return e
	}
	t.Run("waits ClearFor, then verifies and resumes", func(t *testing.T) {
		e := setup(t)
		since := e.clock.Now()
		ok := node{name: "n1", result: healthy(), healthySince: since}
		e.clock.Advance(119 * time.Second)
		if ds := e.step(ok); len(ds) != 0 || e.ver.count() != 0 {
			t.Fatalf("before ClearFor: %+v, verifier %d", ds, e.ver.count())
		}
		e.clock.Advance(time.Second)
		d := only(t, e.step(ok))
		if d.Kind != remediation.KindResume || d.Action != "resumed after verification: nccl all_reduce 480 GB/s" || d.Reason != old || d.Err != nil {
			t.Fatalf("decision = %+v", d)
		}
		if st := e.slurm.node("n1"); st.Drained() || st.Reason != "" {
			t.Fatalf("n1 = %+v, want resumed", st)
		}
		if e.ver.count() != 1 || e.counter("sopilot_remediation_verifications_total", "result", "passed") != 1 ||
			e.counter("sopilot_remediation_resumes_total", "mode", "auto", "result", "resumed") != 1 {
			t.Fatal("verifier or metrics off")
		}
		if ds := e.step(ok); len(ds) != 0 {
			t.Fatalf("after resume: %+v", ds)
		}
	})
	t.Run("waits for the jobs to end before the check", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1=ALLOCATED", "n2", "n3", "n4")
		e.slurm.humanDrain("n1", old, "slurm")
		e.clock.Advance(time.Hour)
		ok := node{name: "n1", result: healthy(), healthySince: t0}
		if ds := e.step(ok); len(ds) != 0 || e.ver.count() != 0 {
			t.Fatalf("with a job running: %+v, verifier %d", ds, e.ver.count())
		}
		e.slurm.finishJobs("n1")
		if d := only(t, e.step(ok)); d.Kind != remediation.KindResume || e.ver.count() != 1 {
			t.Fatalf("decision = %+v, verifier %d", d, e.ver.count())
		}
	})
	t.Run("unknown or degraded verdicts keep it drained", func(t *testing.T) {
		e := setup(t)
		e.clock.Advance(time.Hour)
		for _, r := range []health.Result{silent(), {Verdict: health.Degraded, Action: health.ActionRecordAgainstRun}} {
			if ds := e.step(node{name: "n1", result: r, healthySince: t0}); len(ds) != 0 {
				t.Fatalf("decisions = %+v", ds)
			}
		}
		if e.ver.count() != 0 || len(e.slurm.mutations()) != 0 {
			t.Fatal("verified or changed a node whose evidence has not cleared")
		}
	})
	t.Run("failed check keeps it drained, relabels, backs off", func(t *testing.T) {
		e := setup(t)
		e.ver.set(func(string) (bool, string, error) { return false, "busbw 12 GB/s\n< 300 GB/s", nil })
		// The caller names the incident the node was drained for; the
		// engine does not read it back from Slurm's reason.
		ok := node{name: "n1", result: healthy(), healthySince: t0, incident: "01JOLD"}
		e.clock.Advance(3 * time.Minute)
		d := only(t, e.step(ok))
		wantReason := "[sopilot] verify failed: busbw 12 GB/s < 300 GB/s incident=01JOLD"
		if d.Kind != remediation.KindVerifyFailed || d.Action != "verification failed: busbw 12 GB/s < 300 GB/s; stays drained, retry after 10m0s" ||
			d.Reason != wantReason || d.IncidentID != "01JOLD" {
			t.Fatalf("decision = %+v", d)
		}
		if st := e.slurm.node("n1"); !st.Drained() || st.Reason != wantReason {
			t.Fatalf("n1 = %+v", st)
		}
		if want := []call{{"drain", "n1", wantReason}}; !reflect.DeepEqual(e.slurm.mutations(), want) {
			t.Fatalf("calls = %+v, want %+v", e.slurm.mutations(), want)
		}
		e.clock.Advance(9 * time.Minute)
		if ds := e.step(ok); len(ds) != 0 || e.ver.count() != 1 {
			t.Fatalf("within backoff: %+v verifier %d", ds, e.ver.count())
		}
		e.clock.Advance(time.Minute)
		e.ver.set(nil)
		d = only(t, e.step(ok))
		if d.Kind != remediation.KindResume || d.Reason != wantReason || e.ver.count() != 2 {
			t.Fatalf("decision = %+v, verifier %d", d, e.ver.count())
		}
		if st := e.slurm.node("n1"); st.Drained() {
			t.Fatal("not resumed")
		}
	})
	t.Run("check that cannot run keeps it drained, reason unchanged", func(t *testing.T) {
		e := setup(t)
		boom := errors.New("sbatch: partition main not available")
		e.ver.set(func(string) (bool, string, error) { return false, "", boom })
		e.clock.Advance(3 * time.Minute)
		d := only(t, e.step(node{name: "n1", result: healthy(), healthySince: t0}))
		if d.Kind != remediation.KindVerifyFailed || !errors.Is(d.Err, boom) || !strings.HasPrefix(d.Action, "verification could not run: sbatch") {
			t.Fatalf("decision = %+v", d)
		}
		if st := e.slurm.node("n1"); st.Reason != old || len(e.slurm.mutations()) != 0 {
			t.Fatalf("n1 = %+v calls %+v", st, e.slurm.mutations())
		}
		if e.counter("sopilot_remediation_verifications_total", "result", "error") != 1 {
			t.Fatal("error not counted")
		}
	})
	t.Run("verifier panic keeps it drained", func(t *testing.T) {
		e := setup(t)
		e.ver.set(func(string) (bool, string, error) { panic("boom") })
		e.clock.Advance(3 * time.Minute)
		d := only(t, e.step(node{name: "n1", result: healthy(), healthySince: t0}))
		if d.Kind != remediation.KindVerifyFailed || d.Err == nil || !strings.Contains(d.Err.Error(), "verifier panicked: boom") || !e.slurm.node("n1").Drained() {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("operator drains are never resumed automatically", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
		if _, err := e.eng.Drain(context.Background(), "n1", "reseat NIC", "frank"); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(24 * time.Hour)
		if ds := e.step(node{name: "n1", result: healthy(), healthySince: t0}); len(ds) != 0 || e.ver.count() != 0 {
			t.Fatalf("decisions = %+v verifier %d", ds, e.ver.count())
		}
	})
	t.Run("someone relabels the node during the check", func(t *testing.T) {
		e := setup(t)
		e.ver.set(func(string) (bool, string, error) {
			e.slurm.humanDrain("n1", "keep out", "root")
			return true, "ok", nil
		})
		e.clock.Advance(3 * time.Minute)
		d := only(t, e.step(node{name: "n1", result: healthy(), healthySince: t0}))
		if d.Kind != remediation.KindSkip || !strings.Contains(d.Action, `"keep out" by root`) {
			t.Fatalf("decision = %+v", d)
		}
		if st := e.slurm.node("n1"); !st.Drained() || st.Reason != "keep out" || len(e.slurm.mutations()) != 0 {
			t.Fatalf("n1 = %+v calls %+v", st, e.slurm.mutations())
		}
	})
}

func TestManualDrain(t *testing.T) {
	e := newEnv(t, remediation.Config{MaxDrainsPerWindow: 1}, "n1=ALLOCATED", "n2", "n3", "n4")
	ctx := context.Background()
	for _, tc := range []struct{ node, reason, who, field string }{
		{"", "x", "op", "node"}, {"n1", "", "op", "reason"}, {"n1", " \n\t", "op", "reason"}, {"n1", "x", "", "who"},
	} {
		if _, err := e.eng.Drain(ctx, tc.node, tc.reason, tc.who); err == nil || !strings.Contains(err.Error(), tc.field+": empty") {
			t.Errorf("Drain(%q, %q, %q) = %v, want an error naming %s", tc.node, tc.reason, tc.who, err, tc.field)
		}
	}
	if _, err := e.eng.Drain(ctx, "nope", "x", "op"); !errors.Is(err, remediation.ErrUnknownNode) {
		t.Errorf("unknown node: %v", err)
	}
	d, err := e.eng.Drain(ctx, "n1", "fan\nfailure", "gina")
	want := remediation.Decision{Node: "n1", Kind: remediation.KindDrain, Action: "drained (running job allowed to finish)",
		Reason: "[sopilot] manual: fan failure (by gina)", Manual: true}
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Fatalf("Drain = %+v, %v\nwant %+v", d, err, want)
	}
	if st := e.slurm.node("n1"); st.StateString() != "ALLOCATED+DRAIN" || len(e.slurm.jobsOn("n1")) != 1 {
		t.Fatalf("n1 = %s jobs %v", st.StateString(), e.slurm.jobsOn("n1"))
	}
	// Again: already ours, first reason kept, no call.
	d, err = e.eng.Drain(ctx, "n1", "other", "hank")
	if err != nil || d.Kind != remediation.KindSkip || d.Reason != want.Reason {
		t.Fatalf("second Drain = %+v, %v", d, err)
	}
	// Manual drains bypass the breaker, but do not use up its window.
	if _, err := e.eng.Drain(ctx, "n2", "x", "op"); err != nil {
		t.Fatal(err)
	}
	ds := e.step(node{name: "n3", result: xid79(0)})
	if len(ds) != 2 || ds[0].Node != "n3" || ds[0].Action != "breaker open: would drain (limit of 1 of 4 nodes drained reached)" {
		t.Fatalf("step = %+v", ds)
	}
	e.slurm.failDrain = errors.New("slurm_update error: Unable to contact slurm controller")
	if _, err := e.eng.Drain(ctx, "n4", "x", "op"); err == nil || !strings.Contains(err.Error(), "Unable to contact") {
		t.Fatalf("failed drain: %v", err)
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "manual", "result", "drained"); got != 2 {
		t.Errorf("manual drained = %v", got)
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "manual", "result", "error"); got != 1 {
		t.Errorf("manual error = %v", got)
	}
	if got := len(e.slurm.ops("drain")); got != 3 {
		t.Errorf("drain calls = %d, want 3", got)
	}
}

// An operator's Drain of a node the engine drained keeps the first reason
// but stops the automatic resume.
func TestManualDrainPinsAutoDrain(t *testing.T) {
	e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
	only(t, e.step(node{name: "n1", result: xid79(0)}))
	d, err := e.eng.Drain(context.Background(), "n1", "keep it out", "ivy")
	if err != nil || d.Kind != remediation.KindSkip || d.Reason != "[sopilot] xid 79 (drain) on gpu0" {
		t.Fatalf("Drain = %+v, %v", d, err)
	}
	e.clock.Advance(time.Hour)
	if ds := e.step(node{name: "n1", result: healthy(), healthySince: t0}); len(ds) != 0 || e.ver.count() != 0 {
		t.Fatalf("pinned node: %+v verifier %d", ds, e.ver.count())
	}
	if _, err := e.eng.Undrain(context.Background(), "n1", false, "ivy"); err != nil {
		t.Fatal(err)
	}
	if st := e.slurm.node("n1"); st.Drained() {
		t.Fatal("not resumed")
	}
}

func TestManualUndrain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
	if _, err := e.eng.Undrain(ctx, "n1", false, ""); err == nil || !strings.Contains(err.Error(), "who: empty") {
		t.Errorf("empty who: %v", err)
	}
	if _, err := e.eng.Undrain(ctx, "n1", false, "op"); !errors.Is(err, remediation.ErrNotDrained) {
		t.Errorf("not drained: %v", err)
	}
	if _, err := e.eng.Undrain(ctx, "zz", false, "op"); !errors.Is(err, remediation.ErrUnknownNode) {
		t.Errorf("unknown: %v", err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if _, err := e.eng.Drain(ctx, n, "test", "op"); err != nil {
			t.Fatal(err)
		}
	}
	// Verification fails: stays drained.
	e.ver.set(func(string) (bool, string, error) { return false, "gpu2 missing", nil })
	d, err := e.eng.Undrain(ctx, "n1", false, "jo")
	if !errors.Is(err, remediation.ErrVerificationFailed) || !strings.Contains(err.Error(), "gpu2 missing") ||
		d.Kind != remediation.KindVerifyFailed || d.Action != "verification failed: gpu2 missing; stays drained" {
		t.Fatalf("Undrain = %+v, %v", d, err)
	}
	if !e.slurm.node("n1").Drained() {
		t.Fatal("resumed after a failed check")
	}
	// The check passes.
	e.ver.set(nil)
	d, err = e.eng.Undrain(ctx, "n1", false, "jo")
	if err != nil || d.Kind != remediation.KindResume || d.Action != "resumed after verification: nccl all_reduce 480 GB/s (by jo)" || !d.Manual {
		t.Fatalf("Undrain = %+v, %v", d, err)
	}
	// Skipped check: the verifier is not called.
	before := e.ver.count()
	d, err = e.eng.Undrain(ctx, "n2", true, "jo")
	if err != nil || d.Action != "resumed without verification (by jo)" || e.ver.count() != before {
		t.Fatalf("Undrain = %+v, %v (verifier %d→%d)", d, err, before, e.ver.count())
	}
	// Verifier error.
	e.ver.set(func(string) (bool, string, error) { return false, "", context.DeadlineExceeded })
	if _, err := e.eng.Undrain(ctx, "n3", false, "jo"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("verifier error: %v", err)
	}
	// A verifier that panics is a check that could not run.
	e.ver.set(func(string) (bool, string, error) { panic("nil map") })
	if _, err := e.eng.Undrain(ctx, "n3", false, "jo"); err == nil || !strings.Contains(err.Error(), "verifier panicked: nil map") {
		t.Fatalf("verifier panic: %v", err)
	}
	// Resume rejected by Slurm.
	e.ver.set(nil)
	e.slurm.failResume = errors.New("slurm_update error: Access/permission denied")
	if _, err := e.eng.Undrain(ctx, "n3", true, "jo"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("resume error: %v", err)
	}
	for n, want := range map[string]bool{"n1": false, "n2": false, "n3": true} {
		if got := e.slurm.node(n).Drained(); got != want {
			t.Errorf("%s drained = %v, want %v", n, got, want)
		}
	}
	if got := e.counter("sopilot_remediation_resumes_total", "mode", "manual", "result", "resumed"); got != 2 {
		t.Errorf("manual resumed = %v", got)
	}
	if got := e.counter("sopilot_remediation_verifications_total", "result", "failed"); got != 1 {
		t.Errorf("failed verifications = %v", got)
	}
}

func TestStepBackendErrors(t *testing.T) {
	e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
	e.slurm.humanDrain("n2", "[sopilot] xid 48 (drain) on gpu1", "slurm")
	e.slurm.humanDrain("n3", "not ours", "root")
	e.slurm.failNodes = errors.New("slurm_load_node: Unable to contact slurm controller")
	// Only n1 needs a drain; n2 (ours) and n3 (someone else's, recorded as
	// such) are not failed drains.
	ds := e.step(node{name: "n1", result: xid79(0)}, node{name: "n2", result: xid79(1)}, node{name: "n3", result: xid79(1)})
	if len(ds) != 2 || ds[0].Node != "n1" || ds[1].Node != "n3" || ds[1].Kind != remediation.KindSkip {
		t.Fatalf("decisions = %+v", ds)
	}
	d := ds[0]
	if d.Kind != remediation.KindDrain || d.Err == nil || !strings.HasPrefix(d.Action, "drain failed: read slurm nodes:") {
		t.Fatalf("decision = %+v", d)
	}
	if len(e.slurm.mutations()) != 0 {
		t.Fatal("drained without a fresh read")
	}
	e.slurm.failNodes = nil
	e.slurm.failDrain = errors.New("slurm_update error: Invalid node state specified")
	e.slurm.mu.Lock()
	e.slurm.nodes["n2"].Flags, e.slurm.nodes["n2"].Reason = nil, ""
	e.slurm.nodes["n3"].Flags, e.slurm.nodes["n3"].Reason = nil, ""
	e.slurm.mu.Unlock()
	d = only(t, e.step(node{name: "n1", result: xid79(0)}))
	if d.Kind != remediation.KindDrain || d.Err == nil || d.Action != "drain failed: slurm_update error: Invalid node state specified" {
		t.Fatalf("decision = %+v", d)
	}
	// The same failure again is retried but not recorded again.
	if ds := e.step(node{name: "n1", result: xid79(0)}); len(ds) != 0 {
		t.Fatalf("repeat = %+v", ds)
	}
	if got := len(e.slurm.ops("drain")); got != 2 {
		t.Fatalf("drain attempts = %d, want 2", got)
	}
	if got := e.counter("sopilot_remediation_drains_total", "mode", "auto", "result", "error"); got != 3 {
		t.Fatalf("errors = %v, want 3", got)
	}
	e.slurm.failDrain = nil
	if d := only(t, e.step(node{name: "n1", result: xid79(0)})); d.Action != "drained" {
		t.Fatalf("decision = %+v", d)
	}
}

func TestNewValidates(t *testing.T) {
	f := newFakeSlurm(time.Now)
	v := &fakeVerifier{}
	for _, tc := range []struct {
		cfg   remediation.Config
		field string
	}{
		{remediation.Config{Prefix: "[a]\n"}, "Prefix"},
		{remediation.Config{Prefix: " [a]"}, "Prefix"},
		{remediation.Config{Prefix: strings.Repeat("p", 33)}, "Prefix"},
		{remediation.Config{MaxDrainShare: 1.5}, "MaxDrainShare"},
		{remediation.Config{MaxDrainShare: -0.1}, "MaxDrainShare"},
		{remediation.Config{MaxDrainShare: math.NaN()}, "MaxDrainShare"},
		{remediation.Config{MaxDrainsPerWindow: -1}, "MaxDrainsPerWindow"},
		{remediation.Config{Window: -time.Second}, "Window"},
		{remediation.Config{ClearFor: -time.Second}, "ClearFor"},
		{remediation.Config{VerifyBackoff: -time.Second}, "VerifyBackoff"},
	} {
		if _, err := remediation.New(tc.cfg, f, v, nil); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := remediation.New(remediation.Config{}, nil, v, nil); err == nil || !strings.Contains(err.Error(), "backend") {
		t.Errorf("nil backend: %v", err)
	}
	if _, err := remediation.New(remediation.Config{}, f, nil, nil); err == nil || !strings.Contains(err.Error(), "verifier") {
		t.Errorf("nil verifier: %v", err)
	}
	e, err := remediation.New(remediation.Config{}, f, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := remediation.Config{Prefix: "[sopilot]", MaxDrainShare: 0.25, Window: 10 * time.Minute, ClearFor: 2 * time.Minute, VerifyBackoff: 10 * time.Minute}
	if got := e.Config(); got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if _, err := remediation.NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
}

// Step and the operators' calls run concurrently without races, and the
// safety rules hold whatever the interleaving.
func TestConcurrentUse(t *testing.T) {
	names := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	e := newEnv(t, remediation.Config{MaxDrainShare: 1, MaxDrainsPerWindow: 100, ClearFor: time.Second, VerifyBackoff: time.Second}, names...)
	e.slurm.humanDrain("n7", "human", "root")
	e.ver.set(func(string) (bool, string, error) {
		time.Sleep(time.Millisecond)
		return true, "ok", nil
	})
	var wg sync.WaitGroup
	ctx := context.Background()
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				var ns []node
				for k, n := range names {
					if (i+k+g)%3 == 0 {
						ns = append(ns, node{name: n, result: xid79(k)})
					} else {
						ns = append(ns, node{name: n, result: healthy(), healthySince: t0})
					}
				}
				e.eng.Step(ctx, e.inputs(ns...))
				e.clock.Advance(time.Second)
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			for i := range 50 {
				n := names[(i+g)%len(names)]
				if i%2 == 0 {
					e.eng.Drain(ctx, n, "ops", "op")
				} else {
					e.eng.Undrain(ctx, n, i%3 == 0, "op")
				}
				e.eng.BreakerOpen()
			}
		})
	}
	wg.Wait()
	if st := e.slurm.node("n7"); st.Reason != "human" || !st.Drained() {
		t.Fatalf("n7 = %+v", st)
	}
	for _, c := range e.slurm.mutations() {
		if c.Node == "n7" {
			t.Fatalf("call on someone else's node: %+v", c)
		}
		if c.Op == "drain" && !strings.HasPrefix(c.Reason, "[sopilot] ") {
			t.Fatalf("drain without our prefix: %+v", c)
		}
	}
}

// The reason names the worst drain-worthy finding and counts the others.
func TestDrainReasonEvidence(t *testing.T) {
	tests := []struct {
		name   string
		result health.Result
		want   string
	}{
		{"several findings", health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainNow, Findings: []health.Finding{
			{Component: "gpu2", Rule: "gpu_lost", Verdict: health.Unhealthy, Action: health.ActionDrainNow, Reason: "gpu2 fell off the bus"},
			{Component: "ib:mlx5_0/1", Rule: "ib_link_downed", Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob, Reason: "link_downed +1"},
			{Component: "gpu1", Rule: "xid_application", Verdict: health.Healthy, Action: health.ActionRecordAgainstRun, Reason: "xid 13"},
		}}, "[sopilot] gpu2 fell off the bus (+1 more) incident=I"},
		{"finding without a reason", health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainNow, Findings: []health.Finding{
			{Component: "node", Rule: "gpu_count", Verdict: health.Unhealthy, Action: health.ActionDrainNow},
		}}, "[sopilot] gpu_count incident=I"},
		{"no findings", health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob}, "[sopilot] unhealthy drain_after_job incident=I"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
			if d := only(t, e.step(node{name: "n1", result: tt.result, incident: "I"})); d.Reason != tt.want {
				t.Fatalf("reason = %q, want %q", d.Reason, tt.want)
			}
			if st := e.slurm.node("n1"); st.Reason != tt.want {
				t.Fatalf("slurm reason = %q", st.Reason)
			}
		})
	}
}

func TestVerifierFunc(t *testing.T) {
	f := newFakeSlurm(time.Now)
	f.add("n1", "IDLE")
	f.humanDrain("n1", "[sopilot] manual: x (by y)", "slurm")
	var got string
	v := remediation.VerifierFunc(func(_ context.Context, node string) (bool, string, error) {
		got = node
		return true, "fine", nil
	})
	e, err := remediation.New(remediation.Config{}, f, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Undrain(context.Background(), "n1", false, "z")
	if err != nil || got != "n1" || d.Action != "resumed after verification: fine (by z)" {
		t.Fatalf("Undrain = %+v, %v (verified %q)", d, err, got)
	}
}
