package controller

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/testbin"
)

// syncBuffer is a bytes.Buffer a logger and a test may share.
type syncBuffer = testbin.Buffer

// newResultsFixture is newFixture with the controller's log kept, and with
// the service built on st (nil: the fixture's own store).
func newResultsFixture(t *testing.T, st func(*store.Store) Store) (*fixture, *syncBuffer) {
	t.Helper()
	fx := newFixture(t)
	var s Store = fx.store
	if st != nil {
		s = st(fx.store)
	}
	logs := &syncBuffer{}
	fx.svc = New(Config{PollInterval: time.Second, MinJobAge: 300 * time.Second, DefaultWorkDir: "/work", Now: fx.clock},
		s, fx.slurm, slog.New(slog.NewTextHandler(logs, nil)), nil)
	return fx, logs
}

const evalResults = `{"sample_id": "img-0017", "correct": 1, "loss": 0.231}
{"sample_id": "img-0018", "correct": 0, "loss": 1.92}
{"run_metrics": {"accuracy": 0.5}}
`

func parsed(t *testing.T, text string) *results.Set {
	t.Helper()
	s, err := results.Parse(strings.NewReader(text), results.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// evalSpec is an evaluation run that writes its results to path.
func evalSpec(path string) run.Spec {
	return run.Spec{
		JobName: "inference-trained", Nodes: 1, TasksPerNode: 1, TimeLimit: time.Hour,
		Argv: []string{"python3", "infer.py", "--out", path}, ResultsPath: path,
	}
}

// finish makes the fake Slurm report the run's job ended in state.
func (fx *fixture) finish(r *run.Run, state string) {
	fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) {
		j.State, j.Reason, j.ExitCode = state, "None", 0
		if state != "COMPLETED" {
			j.ExitCode = 1
		}
	})
}

func TestResultsPickedUpWhenRunCompletes(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, path string) // makes the file
		noPath     bool                            // the spec has no results_path
		slurmState string
		wantState  run.State
		wantReason string // "%s" is the file's path
		want       string // results file text the stored set must equal; "" = none stored
		wantWarn   bool
	}{
		{
			name:       "valid file is stored",
			setup:      func(t *testing.T, path string) { writeFile(t, path, evalResults) },
			slurmState: "COMPLETED", wantState: run.StateCompleted,
			want: evalResults,
		},
		{
			name:       "missing file is recorded in the reason",
			setup:      func(*testing.T, string) {},
			slurmState: "COMPLETED", wantState: run.StateCompleted,
			wantReason: "results: stat %s: no such file or directory", wantWarn: true,
		},
		{
			name: "malformed file is recorded with its line and field",
			setup: func(t *testing.T, path string) {
				writeFile(t, path, "{\"sample_id\": \"a\", \"loss\": 1}\n{\"sample_id\": \"b\", \"loss\": \"high\"}\n")
			},
			slurmState: "COMPLETED", wantState: run.StateCompleted,
			wantReason: `results: %s: line 2: values["loss"]: must be a number, true, false or null, got a string`, wantWarn: true,
		},
		{
			name:       "empty file",
			setup:      func(t *testing.T, path string) { writeFile(t, path, "") },
			slurmState: "COMPLETED", wantState: run.StateCompleted,
			wantReason: "results: %s: no records and no run_metrics", wantWarn: true,
		},
		{
			name: "a directory is not read",
			setup: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			slurmState: "COMPLETED", wantState: run.StateCompleted,
			wantReason: "results: %s is not a regular file (d---------)", wantWarn: true,
		},
		{
			name:       "a failed job's file is not picked up",
			setup:      func(t *testing.T, path string) { writeFile(t, path, evalResults) },
			slurmState: "FAILED", wantState: run.StateFailed,
		},
		{
			name:       "a cancelled job's file is not picked up",
			setup:      func(t *testing.T, path string) { writeFile(t, path, evalResults) },
			slurmState: "CANCELLED", wantState: run.StateCancelled,
		},
		{
			name:       "no results_path, nothing to pick up",
			setup:      func(*testing.T, string) {},
			noPath:     true,
			slurmState: "COMPLETED", wantState: run.StateCompleted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx, logs := newResultsFixture(t, nil)
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "results.jsonl")
			spec := evalSpec(path)
			if tt.noPath {
				spec.ResultsPath = ""
			}
			r, err := fx.svc.Create(ctx, spec, "")
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(t, path)
			fx.finish(r, tt.slurmState)
			if err := fx.svc.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := fx.svc.Get(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantReason := strings.Replace(tt.wantReason, "%s", path, 1)
			if got.State != tt.wantState || got.Reason != wantReason {
				t.Errorf("run state %s reason %q\nwant state %s reason %q", got.State, got.Reason, tt.wantState, wantReason)
			}
			set, err := fx.svc.Results(ctx, r.ID)
			switch {
			case tt.want == "" && !errors.Is(err, store.ErrNoResults):
				t.Errorf("Results: %v, want store.ErrNoResults", err)
			case tt.want != "" && err != nil:
				t.Errorf("Results: %v", err)
			case tt.want != "" && !set.Equal(parsed(t, tt.want)):
				t.Errorf("stored results differ from the file")
			}
			warned := strings.Contains(logs.String(), "level=WARN msg=\"results file not stored")
			if warned != tt.wantWarn {
				t.Errorf("warned %v, want %v; log:\n%s", warned, tt.wantWarn, logs)
			}
			// The run has left the active set: later polls neither read
			// the file again nor touch the run.
			before := got.UpdateTime
			fx.advance(time.Minute)
			_ = fx.svc.Poll(ctx)
			if again, _ := fx.svc.Get(ctx, r.ID); !again.UpdateTime.Equal(before) {
				t.Errorf("a later poll changed the ended run: %+v", again)
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResultsBadFileDoesNotHoldUpOtherRuns(t *testing.T) {
	fx, _ := newResultsFixture(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	good, err := fx.svc.Create(ctx, evalSpec(filepath.Join(dir, "good.jsonl")), "")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := fx.svc.Create(ctx, evalSpec(filepath.Join(dir, "bad.jsonl")), "")
	if err != nil {
		t.Fatal(err)
	}
	running, err := fx.svc.Create(ctx, seedSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "good.jsonl"), evalResults)
	writeFile(t, filepath.Join(dir, "bad.jsonl"), "not json\n")
	fx.finish(good, "COMPLETED")
	fx.finish(bad, "COMPLETED")
	fx.slurm.set(running.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.Reason = "RUNNING", "None" })
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r      *run.Run
		state  run.State
		reason string
	}{
		{good, run.StateCompleted, ""},
		{bad, run.StateCompleted, "results: " + filepath.Join(dir, "bad.jsonl") + ": line 1: invalid JSON at column 1: a line must be one JSON object"},
		{running, run.StateRunning, ""},
	} {
		got, err := fx.svc.Get(ctx, c.r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != c.state || got.Reason != c.reason {
			t.Errorf("run %s: state %s reason %q, want %s %q", c.r.Spec.JobName, got.State, got.Reason, c.state, c.reason)
		}
	}
	if set, err := fx.svc.Results(ctx, good.ID); err != nil || !set.Equal(parsed(t, evalResults)) {
		t.Errorf("good run's results: %v", err)
	}
	if fx.slurm.jobsCalls != 1 {
		t.Errorf("%d Slurm queries for one poll", fx.slurm.jobsCalls)
	}
}

// failingUpdates fails UpdateRuns while fail is set, like a controller
// that dies between picking results up and committing the states.
type failingUpdates struct {
	*store.Store
	mu   sync.Mutex
	fail bool
}

func (f *failingUpdates) UpdateRuns(ctx context.Context, ids []string, fn func(*run.Run) bool) ([]*run.Run, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, errors.New("crash")
	}
	return f.Store.UpdateRuns(ctx, ids, fn)
}

func TestResultsPickedUpAgainIfTheStateWasNotCommitted(t *testing.T) {
	flaky := &failingUpdates{}
	fx, _ := newResultsFixture(t, func(s *store.Store) Store { flaky.Store = s; return flaky })
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.jsonl")
	r, err := fx.svc.Create(ctx, evalSpec(path), "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "{\"sample_id\": \"a\", \"x\": 1}\n")
	fx.finish(r, "COMPLETED")
	flaky.fail = true
	if err := fx.svc.Poll(ctx); err == nil {
		t.Fatal("poll succeeded although the state update failed")
	}
	if got, _ := fx.svc.Get(ctx, r.ID); got.State.Terminal() {
		t.Fatalf("state committed: %s", got.State)
	}
	// The job rewrote its file before the controller came back; the next
	// poll stores what the file holds now.
	writeFile(t, path, evalResults)
	flaky.mu.Lock()
	flaky.fail = false
	flaky.mu.Unlock()
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := fx.svc.Get(ctx, r.ID); got.State != run.StateCompleted || got.Reason != "" {
		t.Errorf("run %s %q, want COMPLETED without a reason", got.State, got.Reason)
	}
	if set, err := fx.svc.Results(ctx, r.ID); err != nil || !set.Equal(parsed(t, evalResults)) {
		t.Errorf("results after the retried poll: %v", err)
	}
}

func TestWatchersSeeCompletedAfterResultsAreStored(t *testing.T) {
	fx, _ := newResultsFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "results.jsonl")
	r, err := fx.svc.Create(ctx, evalSpec(path), "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, evalResults)
	sawState := make(chan error, 1)
	subscribed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		_ = fx.svc.Watch(ctx, r.ID, func(w *run.Run) error {
			if first {
				first = false
				close(subscribed)
			}
			if w.State == run.StateCompleted {
				_, err := fx.svc.Results(ctx, w.ID)
				sawState <- err
			}
			return nil
		})
	}()
	<-subscribed
	fx.finish(r, "COMPLETED")
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sawState:
		if err != nil {
			t.Errorf("a watcher told COMPLETED found no results: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("watcher never saw COMPLETED")
	}
	<-done
}

func TestReportResults(t *testing.T) {
	tests := []struct {
		name  string
		state string // Slurm state of the job when the results come; "" = as created
	}{
		{"while pending", ""},
		{"while running, from inside the job", "RUNNING"},
		{"after completion", "COMPLETED"},
		{"after failure", "FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx, logs := newResultsFixture(t, nil)
			ctx := context.Background()
			r, err := fx.svc.Create(ctx, seedSpec(), "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.state != "" {
				fx.finish(r, tt.state)
				fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State = tt.state })
				if err := fx.svc.Poll(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := fx.svc.Get(ctx, r.ID)
			set := parsed(t, evalResults)
			if err := fx.svc.ReportResults(ctx, r.ID, set); err != nil {
				t.Fatal(err)
			}
			got, err := fx.svc.Results(ctx, r.ID)
			if err != nil || !got.Equal(set) {
				t.Errorf("Results after ReportResults: %v", err)
			}
			after, _ := fx.svc.Get(ctx, r.ID)
			if !after.UpdateTime.Equal(before.UpdateTime) || after.State != before.State {
				t.Errorf("reporting results changed the run: %+v -> %+v", before, after)
			}
			if !strings.Contains(logs.String(), "msg=\"results stored\" component=controller run_id="+r.ID+" source=api samples=2 metrics=2 run_metrics=1") {
				t.Errorf("log lacks the results line:\n%s", logs)
			}
		})
	}
}

func TestReportResultsErrors(t *testing.T) {
	fx, _ := newResultsFixture(t, nil)
	ctx := context.Background()
	if err := fx.svc.ReportResults(ctx, "r-nope", parsed(t, evalResults)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReportResults for an unknown run: %v, want ErrNotFound", err)
	}
	if _, err := fx.svc.Results(ctx, "r-nope"); !errors.Is(err, ErrNotFound) || errors.Is(err, store.ErrNoResults) {
		t.Errorf("Results of an unknown run: %v, want ErrNotFound only", err)
	}
	r, err := fx.svc.Create(ctx, seedSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.svc.Results(ctx, r.ID); !errors.Is(err, store.ErrNoResults) {
		t.Errorf("Results of a run without results: %v, want store.ErrNoResults", err)
	}
}

func TestResultsFileReplacesReportedResults(t *testing.T) {
	fx, _ := newResultsFixture(t, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.jsonl")
	r, err := fx.svc.Create(ctx, evalSpec(path), "")
	if err != nil {
		t.Fatal(err)
	}
	fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.Reason = "RUNNING", "None" })
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fx.svc.ReportResults(ctx, r.ID, parsed(t, `{"sample_id": "partial", "x": 1}`)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, evalResults)
	fx.finish(r, "COMPLETED")
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if set, err := fx.svc.Results(ctx, r.ID); err != nil || !set.Equal(parsed(t, evalResults)) {
		t.Errorf("results after completion are not the file's: %v", err)
	}
}
