package store

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
)

// benchState gives a realistic mix over history: 2% active, the rest
// mostly completed.
func benchState(i int) run.State {
	switch m := i % 100; {
	case m == 0:
		return run.StatePending
	case m == 1:
		return run.StateRunning
	case m < 10:
		return run.StateFailed
	case m < 15:
		return run.StateCancelled
	case m < 17:
		return run.StateTimeout
	default:
		return run.StateCompleted
	}
}

// benchStore opens a store holding n runs, written in big batches without
// fsync.
func benchStore(b *testing.B, n int, opts Options) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "runs.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	runs := make([]*run.Run, n)
	for i := range runs {
		runs[i] = testRun(i, benchState(i))
	}
	start := time.Now()
	seedRuns(b, s, runs)
	b.Logf("seeded %d runs in %s", n, time.Since(start).Round(time.Millisecond))
	runs = nil
	runtime.GC() // the seed's garbage is no part of what is measured
	s.db.NoSync = opts.NoSync
	b.Cleanup(func() { s.Close() })
	return s
}

// go test -run XXX -bench BenchmarkListRuns ./internal/store/
func BenchmarkListRuns(b *testing.B) {
	const n = 100_000
	s := benchStore(b, n, Options{NoSync: true})
	ctx := context.Background()
	deep := func(q ListQuery) ListQuery {
		f, err := newFilter(q)
		if err != nil {
			b.Fatal(err)
		}
		q.PageToken = encodePageToken(n/2, f.hash()) // halfway through history
		return q
	}
	failed := []run.State{run.StateFailed}
	tests := []struct {
		name string
		q    ListQuery
	}{
		{"first_page", ListQuery{}},
		{"deep_page", deep(ListQuery{})},
		{"state_FAILED", ListQuery{States: failed}},
		{"state_FAILED_deep", deep(ListQuery{States: failed})},
		{"state_active", ListQuery{States: []run.State{run.StatePending, run.StateRunning, run.StateCompleting}}},
		{"label_team_20pct", ListQuery{Labels: map[string]string{"team": "vision"}}},
		{"label_experiment_1pct", ListQuery{Labels: map[string]string{"experiment": "exp-42"}}},
		{"label_none_scan_bound", ListQuery{Labels: map[string]string{"team": "nobody"}}},
		{"name_prefix", ListQuery{NamePrefix: "llama-pretrain-"}},
		{"created_before_scan_bound", ListQuery{CreatedBefore: testEpoch.Add(n / 100 * time.Second)}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			var got int
			for b.Loop() {
				page, _, err := s.ListRuns(ctx, tt.q)
				if err != nil {
					b.Fatal(err)
				}
				got = len(page)
			}
			b.ReportMetric(float64(got), "runs/page")
		})
	}
}

// go test -run XXX -bench BenchmarkCreateRun ./internal/store/
func BenchmarkCreateRun(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(mode.name, func(b *testing.B) {
			s := benchStore(b, 10_000, Options{NoSync: mode.noSync})
			ctx := context.Background()
			i := 1_000_000
			for b.Loop() {
				i++
				if _, created, err := s.CreateRun(ctx, testRun(i, run.StatePending)); err != nil || !created {
					b.Fatalf("CreateRun: created %v, %v", created, err)
				}
			}
		})
	}
}

// One tracker poll applied to 500 active runs in one transaction.
//
// go test -run XXX -bench BenchmarkUpdateRuns500 ./internal/store/
func BenchmarkUpdateRuns500(b *testing.B) {
	const active = 500
	for _, mode := range []struct {
		name    string
		noSync  bool
		changed bool
	}{
		{"all_changed_fsync", false, true},
		{"none_changed_fsync", false, false},
		{"all_changed_nosync", true, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			// 500 active runs among 25,000 (benchState makes 2% active).
			s := benchStore(b, active*50, Options{NoSync: mode.noSync})
			ctx := context.Background()
			runs, err := s.ActiveRuns(ctx)
			if err != nil || len(runs) != active {
				b.Fatalf("ActiveRuns = %d, %v", len(runs), err)
			}
			ids := ids(runs)
			now := testEpoch.Add(time.Hour)
			var changed int
			for b.Loop() {
				now = now.Add(time.Second)
				got, err := s.UpdateRuns(ctx, ids, func(r *run.Run) bool {
					if !mode.changed {
						return r.Apply(run.Observation{SlurmState: r.SlurmState, Reason: r.Reason, NodeList: r.NodeList, StartTime: r.StartTime}, now)
					}
					// The job reports progress each poll.
					step := int64(1)
					if r.Progress != nil {
						step = r.Progress.Step + 1
					}
					r.Progress = &run.Progress{Step: step, TotalSteps: 100000, Loss: 1 / float64(step), UpdateTime: now}
					r.UpdateTime = now
					return true
				})
				if err != nil {
					b.Fatal(err)
				}
				changed = len(got)
			}
			b.ReportMetric(float64(changed), "changed/op")
		})
	}
}

// BenchmarkMatchRaw is the raw-JSON filter alone on one stored record: the
// per-record cost of a filtered ListRuns scan, without bbolt.
//
// go test -run XXX -bench BenchmarkMatchRaw ./internal/store/
func BenchmarkMatchRaw(b *testing.B) {
	data, err := json.Marshal(testRun(42, run.StateCompleted))
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		q    ListQuery
	}{
		{"created_before", ListQuery{CreatedBefore: testEpoch.Add(time.Hour)}},
		{"name_prefix", ListQuery{NamePrefix: "llama-pretrain-"}},
		{"label_team", ListQuery{Labels: map[string]string{"team": "vision"}}},
		{"labels_name_time", ListQuery{NamePrefix: testNames[42%len(testNames)], CreatedAfter: testEpoch, Labels: map[string]string{"team": testTeams[42%len(testTeams)], "experiment": "exp-42"}}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			f, err := newFilter(tt.q)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.matchRaw(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
