package run

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func TestValidateRetry(t *testing.T) {
	tests := []struct {
		name   string
		policy *RetryPolicy
		fields []string
	}{
		{"none", nil, nil},
		{"defaults", &RetryPolicy{MaxAttempts: 3}, nil},
		{"every cause", &RetryPolicy{MaxAttempts: 2, Causes: []Cause{CauseHardware, CauseNodeFail, CausePreempted, CauseExitCode}, Backoff: time.Minute}, nil},
		{"one attempt", &RetryPolicy{MaxAttempts: 1}, []string{"spec.retry.max_attempts"}},
		{"too many", &RetryPolicy{MaxAttempts: MaxAttemptsLimit + 1}, []string{"spec.retry.max_attempts"}},
		{"dependency is not a user cause", &RetryPolicy{MaxAttempts: 2, Causes: []Cause{CauseDependency}}, []string{"spec.retry.causes[0]"}},
		{"unspecified", &RetryPolicy{MaxAttempts: 2, Causes: []Cause{CauseHardware, CauseUnspecified}}, []string{"spec.retry.causes[1]"}},
		{"repeat", &RetryPolicy{MaxAttempts: 2, Causes: []Cause{CauseNodeFail, CauseNodeFail}}, []string{"spec.retry.causes[1]"}},
		{"negative backoff", &RetryPolicy{MaxAttempts: 2, Backoff: -time.Second}, []string{"spec.retry.backoff"}},
		{"long backoff", &RetryPolicy{MaxAttempts: 2, Backoff: 2 * time.Hour}, []string{"spec.retry.backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := retrySpec()
			s.Retry = tt.policy
			err := Validate(s, DefaultLimits())
			var got []string
			var verr *ValidationError
			if errors.As(err, &verr) {
				for _, v := range verr.Violations {
					got = append(got, v.Field)
				}
			} else if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !slices.Equal(got, tt.fields) {
				t.Fatalf("violations %v, want %v (err %v)", got, tt.fields, err)
			}
		})
	}
}

func TestDecideRetry(t *testing.T) {
	pol := &RetryPolicy{MaxAttempts: 3}
	tests := []struct {
		name     string
		policy   *RetryPolicy
		attempts []Attempt
		cause    Cause
		retry    bool
	}{
		{"no policy", nil, nil, CauseHardware, false},
		{"no policy, dependency", nil, nil, CauseDependency, true},
		{"hardware", pol, nil, CauseHardware, true},
		{"node fail", pol, nil, CauseNodeFail, true},
		{"preempted", pol, nil, CausePreempted, true},
		{"own exit code is never retried by default", pol, nil, CauseExitCode, false},
		{"exit code when asked", &RetryPolicy{MaxAttempts: 3, Causes: []Cause{CauseExitCode}}, nil, CauseExitCode, true},
		{"only what is named", &RetryPolicy{MaxAttempts: 3, Causes: []Cause{CausePreempted}}, nil, CauseHardware, false},
		{"last attempt", pol, []Attempt{{Cause: CauseHardware}, {Cause: CauseNodeFail}}, CauseHardware, false},
		{"dependency replacements do not count", pol, []Attempt{{Cause: CauseDependency}, {Cause: CauseHardware}}, CauseHardware, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Run{Spec: Spec{Retry: tt.policy}, Attempts: tt.attempts}
			d := r.DecideRetry(tt.cause)
			if d.Retry != tt.retry {
				t.Fatalf("retry %v (%s), want %v", d.Retry, d.Why, tt.retry)
			}
			if !d.Retry && d.Why == "" {
				t.Fatal("a refusal must say why")
			}
		})
	}
}

func TestCauseOf(t *testing.T) {
	for st, want := range map[State]Cause{StateNodeFail: CauseNodeFail, StatePreempted: CausePreempted, StateFailed: CauseExitCode, StateOutOfMemory: CauseExitCode} {
		if c, ok := CauseOf(st); !ok || c != want {
			t.Errorf("CauseOf(%s) = %s, %v; want %s", st, c, ok, want)
		}
	}
	for _, st := range []State{StateCompleted, StateCancelled, StateTimeout, StateLost, StateRunning} {
		if c, ok := CauseOf(st); ok {
			t.Errorf("CauseOf(%s) = %s; want none", st, c)
		}
	}
}

func TestBeginRetry(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	r := &Run{
		ID: "r-1", Spec: Spec{Nodes: 1, GPUsPerNode: 8, Retry: &RetryPolicy{MaxAttempts: 3, Backoff: 10 * time.Second}},
		State: StateRunning, SlurmState: "RUNNING", SlurmJobID: "41", NodeList: "worker-0",
		SubmitTime: t0, StartTime: t0.Add(time.Second),
		Checkpoint: &Checkpoint{Step: 500, Path: "/ckpt/500.pt", Time: t0.Add(30 * time.Minute)},
	}
	now := t0.Add(time.Hour)
	r.BeginRetry(CauseHardware, []string{"worker-0"}, "inc-1", StateCancelled, true, now)
	if r.Attempt() != 2 || r.State != StatePending || r.Submitted() || r.NodeList != "" || !r.StartTime.IsZero() || r.Checkpoint != nil {
		t.Fatalf("after BeginRetry: attempt %d, state %s, job %q, nodes %q, start %v, checkpoint %v", r.Attempt(), r.State, r.SlurmJobID, r.NodeList, r.StartTime, r.Checkpoint)
	}
	a := r.Attempts[0]
	if a.Number != 1 || a.SlurmJobID != "41" || a.NodeList != "worker-0" || a.Cause != CauseHardware || a.IncidentID != "inc-1" ||
		!a.CancelPending || a.State != StateCancelled || !a.EndTime.Equal(now) || a.Checkpoint == nil || a.Checkpoint.Step != 500 {
		t.Fatalf("attempt record %+v", a)
	}
	if !r.NotBefore.Equal(now.Add(10*time.Second)) || !r.AttemptTime.Equal(now) {
		t.Fatalf("not before %v, attempt time %v", r.NotBefore, r.AttemptTime)
	}
	if got := r.ExcludedNodes(); !slices.Equal(got, []string{"worker-0"}) {
		t.Fatalf("excluded %v", got)
	}
	if c := r.ResumeCheckpoint(); c == nil || c.Path != "/ckpt/500.pt" {
		t.Fatalf("resume from %v", c)
	}
	// Goodput: 1 GPU-hour×8 used in attempt 1, of which the 29 min after
	// the start up to the checkpoint are kept.
	g := r.ComputeGoodput(now)
	used := (time.Hour - time.Second).Hours() * 8
	kept := (30*time.Minute - time.Second).Hours() * 8
	if !near(g.GPUHoursUsed, used) || !near(g.GPUHoursKept, kept) || !near(g.LostByCause["HARDWARE"], used-kept) {
		t.Fatalf("goodput %+v, want used %.3f kept %.3f", g, used, kept)
	}
	// The second back-off doubles; the third attempt is the last.
	r.SlurmJobID, r.State, r.StartTime = "42", StateRunning, now.Add(time.Minute)
	r.BeginRetry(CauseNodeFail, []string{"worker-1"}, "", StateNodeFail, false, now.Add(2*time.Minute))
	if !r.NotBefore.Equal(now.Add(2*time.Minute + 20*time.Second)) {
		t.Fatalf("second back-off: not before %v", r.NotBefore)
	}
	if d := r.DecideRetry(CauseHardware); d.Retry {
		t.Fatal("a fourth attempt was allowed with max_attempts 3")
	}
	if got := r.ExcludedNodes(); !slices.Equal(got, []string{"worker-0", "worker-1"}) {
		t.Fatalf("excluded %v", got)
	}
	// Attempt 2 reported no checkpoint: its minute is lost to NODE_FAIL.
	g = r.ComputeGoodput(now.Add(2 * time.Minute))
	if !near(g.LostByCause["NODE_FAIL"], time.Minute.Hours()*8) {
		t.Fatalf("lost by cause %v", g.LostByCause)
	}
	if all := r.AllAttempts(); len(all) != 3 || all[2].Number != 3 {
		t.Fatalf("all attempts %+v", all)
	}
	// Survives the store's JSON, causes by name.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Attempts[1].Cause != CauseNodeFail || back.Attempt() != 3 {
		t.Fatalf("round trip: %+v", back.Attempts)
	}
	c := r.Clone()
	c.Attempts[0].FaultyNodes[0] = "x"
	if r.Attempts[0].FaultyNodes[0] != "worker-0" {
		t.Fatal("Clone shares attempt slices")
	}
}

func TestKeepFaultyNodes(t *testing.T) {
	r := &Run{Spec: Spec{Retry: &RetryPolicy{MaxAttempts: 2, KeepFaultyNodes: true}}, Attempts: []Attempt{{FaultyNodes: []string{"w0"}}}}
	if got := r.ExcludedNodes(); got != nil {
		t.Fatalf("excluded %v with keep_faulty_nodes", got)
	}
}

func TestComment(t *testing.T) {
	const p = "sopilot:run="
	tests := []struct {
		comment string
		id      string
		n       int
		ok      bool
	}{
		{"sopilot:run=r-abc", "r-abc", 1, true},
		{"sopilot:run=r-abc;attempt=2", "r-abc", 2, true},
		{"sopilot:run=r-abc;attempt=12", "r-abc", 12, true},
		{"sopilot:run=r-abc;attempt=1", "", 0, false},
		{"sopilot:run=r-abc;attempt=", "", 0, false},
		{"sopilot:run=r-abc;attempt=2x", "", 0, false},
		{"sopilot:run=;attempt=2", "", 0, false},
		{"other", "", 0, false},
		{"sopilot:run=", "", 0, false},
	}
	for _, tt := range tests {
		id, n, ok := ParseComment(p, tt.comment)
		if id != tt.id || n != tt.n || ok != tt.ok {
			t.Errorf("ParseComment(%q) = %q, %d, %v; want %q, %d, %v", tt.comment, id, n, ok, tt.id, tt.n, tt.ok)
		}
	}
	for n := 1; n <= 3; n++ {
		if id, got, ok := ParseComment(p, CommentFor(p, "r-x", n)); !ok || id != "r-x" || got != n {
			t.Errorf("round trip of attempt %d: %q %d %v", n, id, got, ok)
		}
	}
}

func FuzzParseComment(f *testing.F) {
	for _, s := range []string{"sopilot:run=r-a", "sopilot:run=r-a;attempt=3", "sopilot:run=;attempt=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, n, ok := ParseComment("sopilot:run=", s)
		if !ok {
			return
		}
		if id == "" || n < 1 {
			t.Fatalf("ok with id %q attempt %d", id, n)
		}
		if n > 1 && CommentFor("sopilot:run=", id, n) != s {
			t.Fatalf("%q does not round trip (%q, %d)", s, id, n)
		}
	})
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func retrySpec() Spec {
	return Spec{
		JobName: "train", Nodes: 2, TasksPerNode: 1, TimeLimit: time.Hour,
		Argv: []string{"python3", "train.py"}, WorkingDirectory: "/shared/work", OutputDirectory: "/shared/out",
	}
}
