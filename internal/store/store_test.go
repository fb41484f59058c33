package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sopilot/sopilot/internal/run"
)

func TestCreateRun(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup runs are created first.
		setup   []*run.Run
		in      *run.Run
		wantErr error
		// wantCreated false: the returned run must be wantExisting.
		wantCreated  bool
		wantExisting string
		wantActive   bool
	}{
		{name: "new pending run", in: testRun(1, run.StatePending), wantCreated: true, wantActive: true},
		{name: "new unspecified run", in: testRun(1, run.StateUnspecified), wantCreated: true, wantActive: true},
		{name: "new terminal run", in: testRun(1, run.StateFailed), wantCreated: true, wantActive: false},
		{
			name:  "same request id returns the first run",
			setup: []*run.Run{testRun(1, run.StatePending)},
			in: func() *run.Run {
				r := testRun(2, run.StatePending)
				r.RequestID = testRun(1, 0).RequestID
				return r
			}(),
			wantExisting: testRun(1, 0).ID,
		},
		{
			name:  "run id taken under another request id",
			setup: []*run.Run{testRun(1, run.StatePending)},
			in: func() *run.Run {
				r := testRun(2, run.StatePending)
				r.ID = testRun(1, 0).ID
				return r
			}(),
			wantErr: ErrAlreadyExists,
		},
		{name: "empty id", in: func() *run.Run { r := testRun(1, 0); r.ID = ""; return r }(), wantErr: ErrInvalidArgument},
		{name: "empty request id", in: func() *run.Run { r := testRun(1, 0); r.RequestID = ""; return r }(), wantErr: ErrInvalidArgument},
		{name: "unknown state", in: testRun(1, run.State(99)), wantErr: ErrInvalidArgument},
		{name: "negative state", in: testRun(1, run.State(-1)), wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t)
			for _, r := range tt.setup {
				mustCreate(t, s, r)
			}
			seqBefore, nBefore := seqAndCount(t, s)
			in := tt.in.Clone()

			got, created, err := s.CreateRun(ctx, tt.in)

			sameRun(t, "input after CreateRun", tt.in, in) // not modified
			if tt.wantErr != nil || !tt.wantCreated {
				// Nothing written: the sequence did not move either.
				if seq, n := seqAndCount(t, s); seq != seqBefore || n != nBefore {
					t.Errorf("sequence, count = %d, %d; want unchanged %d, %d", seq, n, seqBefore, nBefore)
				}
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CreateRun error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateRun: %v", err)
			}
			if created != tt.wantCreated {
				t.Fatalf("created = %v, want %v", created, tt.wantCreated)
			}
			if !created {
				if got.ID != tt.wantExisting {
					t.Fatalf("CreateRun returned %s, want existing %s", got.ID, tt.wantExisting)
				}
				if _, err := s.GetRun(ctx, tt.in.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("GetRun(%s) of the duplicate = %v, want ErrNotFound", tt.in.ID, err)
				}
				checkIndexes(t, s)
				return
			}
			sameRun(t, "returned run", got, tt.in)
			sameRun(t, "GetRun", mustGet(t, s, tt.in.ID), got)
			byReq, err := s.GetRunByRequestID(ctx, tt.in.RequestID)
			if err != nil {
				t.Fatalf("GetRunByRequestID: %v", err)
			}
			sameRun(t, "GetRunByRequestID", byReq, got)
			active, states := indexEntries(t, s, tt.in.ID)
			if active != tt.wantActive || !slices.Equal(states, []run.State{tt.in.State}) {
				t.Errorf("index entries: active %v by_state %v; want %v %v", active, states, tt.wantActive, []run.State{tt.in.State})
			}
			checkIndexes(t, s)
		})
	}
}

// seqAndCount returns the runs bucket's sequence and record count.
func seqAndCount(t testing.TB, s *Store) (seq uint64, n int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		seq, n = b.Sequence(), b.Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq, n
}

func TestCreateRunReturnsCopies(t *testing.T) {
	s, _ := newTestStore(t)
	stored := mustCreate(t, s, testRun(1, run.StatePending))
	stored.Spec.Labels["team"] = "changed"
	stored.Spec.Argv[0] = "changed"
	got := mustGet(t, s, stored.ID)
	got.Spec.Labels["team"] = "changed again"
	sameRun(t, "stored run after callers changed their copies", mustGet(t, s, stored.ID), testRun(1, run.StatePending))
}

func TestGetNotFound(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	mustCreate(t, s, testRun(1, run.StatePending))
	tests := []struct {
		name string
		get  func() (*run.Run, error)
	}{
		{"GetRun unknown id", func() (*run.Run, error) { return s.GetRun(ctx, "nope") }},
		{"GetRun empty id", func() (*run.Run, error) { return s.GetRun(ctx, "") }},
		{"GetRun by request id", func() (*run.Run, error) { return s.GetRun(ctx, testRun(1, 0).RequestID) }},
		{"GetRunByRequestID unknown", func() (*run.Run, error) { return s.GetRunByRequestID(ctx, "nope") }},
		{"GetRunByRequestID by run id", func() (*run.Run, error) { return s.GetRunByRequestID(ctx, testRun(1, 0).ID) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.get()
			if !errors.Is(err, ErrNotFound) || r != nil {
				t.Errorf("got %v, %v; want nil, ErrNotFound", r, err)
			}
		})
	}
}

func TestUpdateRun(t *testing.T) {
	ctx := context.Background()
	now := testEpoch.Add(time.Hour)
	tests := []struct {
		name       string
		from       run.State
		fn         func(*run.Run) bool
		id         string // default: the run's id
		wantErr    error
		wantState  run.State // the stored state afterwards
		wantActive bool
		wantWrite  bool
	}{
		{
			name: "pending to running moves by_state, stays active",
			from: run.StatePending,
			fn: func(r *run.Run) bool {
				return r.Apply(run.Observation{SlurmState: "RUNNING", NodeList: "gpu[001-002]"}, now)
			},
			wantState: run.StateRunning, wantActive: true, wantWrite: true,
		},
		{
			name:      "running to completed leaves active",
			from:      run.StateRunning,
			fn:        func(r *run.Run) bool { return r.Apply(run.Observation{SlurmState: "COMPLETED"}, now) },
			wantState: run.StateCompleted, wantActive: false, wantWrite: true,
		},
		{
			name:      "pending to failed leaves active",
			from:      run.StatePending,
			fn:        func(r *run.Run) bool { return r.MarkFailed("sbatch: invalid partition", now) },
			wantState: run.StateFailed, wantActive: false, wantWrite: true,
		},
		{
			name:      "change without state change",
			from:      run.StateRunning,
			fn:        func(r *run.Run) bool { r.Progress = &run.Progress{Step: 10, UpdateTime: now}; return true },
			wantState: run.StateRunning, wantActive: true, wantWrite: true,
		},
		{
			name:      "terminal back to pending re-enters active",
			from:      run.StateCancelled,
			fn:        func(r *run.Run) bool { r.State = run.StatePending; return true },
			wantState: run.StatePending, wantActive: true, wantWrite: true,
		},
		{
			name:      "fn returns false: nothing written",
			from:      run.StatePending,
			fn:        func(r *run.Run) bool { r.State = run.StateFailed; r.Reason = "not kept"; return false },
			wantState: run.StatePending, wantActive: true,
		},
		{
			name:      "terminal run: Apply declines",
			from:      run.StateCompleted,
			fn:        func(r *run.Run) bool { return r.Apply(run.Observation{SlurmState: "RUNNING"}, now) },
			wantState: run.StateCompleted,
		},
		{
			name:      "changing the id is refused",
			from:      run.StatePending,
			fn:        func(r *run.Run) bool { r.ID = "other"; r.State = run.StateRunning; return true },
			wantErr:   ErrInvalidArgument,
			wantState: run.StatePending, wantActive: true,
		},
		{
			name:      "changing the request id is refused",
			from:      run.StatePending,
			fn:        func(r *run.Run) bool { r.RequestID = "other"; return true },
			wantErr:   ErrInvalidArgument,
			wantState: run.StatePending, wantActive: true,
		},
		{
			name:      "unknown state is refused",
			from:      run.StateRunning,
			fn:        func(r *run.Run) bool { r.State = 42; return true },
			wantErr:   ErrInvalidArgument,
			wantState: run.StateRunning, wantActive: true,
		},
		{
			name:      "unknown id",
			from:      run.StateRunning,
			id:        "nope",
			fn:        func(r *run.Run) bool { return true },
			wantErr:   ErrNotFound,
			wantState: run.StateRunning, wantActive: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t)
			orig := mustCreate(t, s, testRun(7, tt.from))
			id := orig.ID
			if tt.id != "" {
				id = tt.id
			}
			var seen *run.Run
			got, err := s.UpdateRun(ctx, id, func(r *run.Run) bool {
				seen = r
				return tt.fn(r)
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("UpdateRun error = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("UpdateRun: %v", err)
			}
			stored := mustGet(t, s, orig.ID)
			if tt.wantErr == nil {
				sameRun(t, "returned run vs stored", got, stored)
			}
			if stored.State != tt.wantState {
				t.Errorf("stored state = %s, want %s", stored.State, tt.wantState)
			}
			if !tt.wantWrite {
				sameRun(t, "stored run after no write", stored, orig)
			} else {
				sameRun(t, "stored run vs what fn left", stored, seen)
			}
			active, states := indexEntries(t, s, orig.ID)
			if active != tt.wantActive || !slices.Equal(states, []run.State{tt.wantState}) {
				t.Errorf("index entries: active %v by_state %v; want %v [%s]", active, states, tt.wantActive, tt.wantState)
			}
			checkIndexes(t, s)
		})
	}
}

func TestUpdateRunFnGetsCopy(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	orig := mustCreate(t, s, testRun(1, run.StateRunning))
	var kept *run.Run
	if _, err := s.UpdateRun(ctx, orig.ID, func(r *run.Run) bool { kept = r; return false }); err != nil {
		t.Fatal(err)
	}
	kept.Spec.Labels["team"] = "changed after the tx"
	sameRun(t, "stored run", mustGet(t, s, orig.ID), orig)
}

func TestUpdateRuns(t *testing.T) {
	ctx := context.Background()
	now := testEpoch.Add(time.Hour)
	const n = 60
	tests := []struct {
		name string
		// ids to update, as indexes into the created runs; -1 is an unknown id.
		idx     []int
		fn      func(i int, r *run.Run) bool
		wantErr error
		// wantChanged lists the indexes of the runs returned, in order.
		wantChanged []int
	}{
		{
			name: "every third starts running, others unchanged",
			idx:  seq(0, n),
			fn: func(i int, r *run.Run) bool {
				if i%3 != 0 {
					return false
				}
				return r.Apply(run.Observation{SlurmState: "RUNNING"}, now)
			},
			wantChanged: every(0, n, 3),
		},
		{
			name:        "all end",
			idx:         seq(0, n),
			fn:          func(i int, r *run.Run) bool { return r.Apply(run.Observation{SlurmState: "COMPLETED"}, now) },
			wantChanged: seq(0, n),
		},
		{
			name:        "repeated ids are applied once",
			idx:         []int{5, 6, 5, 7, 6},
			fn:          func(i int, r *run.Run) bool { r.Reason = r.Reason + "x"; return true },
			wantChanged: []int{5, 6, 7},
		},
		{
			name:        "no ids",
			idx:         nil,
			fn:          func(i int, r *run.Run) bool { return true },
			wantChanged: nil,
		},
		{
			name:    "an unknown id writes nothing",
			idx:     append(seq(0, 10), -1),
			fn:      func(i int, r *run.Run) bool { return r.Apply(run.Observation{SlurmState: "FAILED"}, now) },
			wantErr: ErrNotFound,
		},
		{
			name: "an invalid update writes nothing",
			idx:  seq(0, 10),
			fn: func(i int, r *run.Run) bool {
				if i == 9 {
					r.ID = "moved"
				}
				return r.Apply(run.Observation{SlurmState: "FAILED"}, now)
			},
			wantErr: ErrInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t)
			var runs []*run.Run
			index := map[string]int{}
			for i := range n {
				runs = append(runs, mustCreate(t, s, testRun(i, run.StatePending)))
				index[runs[i].ID] = i
			}
			var ids []string
			for _, i := range tt.idx {
				if i < 0 {
					ids = append(ids, "unknown")
				} else {
					ids = append(ids, runs[i].ID)
				}
			}
			calls := map[string]int{}
			changed, err := s.UpdateRuns(ctx, ids, func(r *run.Run) bool {
				calls[r.ID]++
				return tt.fn(index[r.ID], r)
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("UpdateRuns error = %v, want %v", err, tt.wantErr)
				}
				for _, r := range runs {
					sameRun(t, "run after failed UpdateRuns", mustGet(t, s, r.ID), r)
				}
				checkIndexes(t, s)
				return
			}
			if err != nil {
				t.Fatalf("UpdateRuns: %v", err)
			}
			for id, c := range calls {
				if c != 1 {
					t.Errorf("fn called %d times for %s", c, id)
				}
			}
			var got []int
			for _, r := range changed {
				got = append(got, index[r.ID])
				sameRun(t, "changed run vs stored", r, mustGet(t, s, r.ID))
			}
			if !slices.Equal(got, tt.wantChanged) {
				t.Errorf("changed = %v, want %v", got, tt.wantChanged)
			}
			// Unchanged runs are as they were.
			for i, r := range runs {
				if slices.Contains(tt.wantChanged, i) {
					continue
				}
				sameRun(t, "unchanged run", mustGet(t, s, r.ID), r)
			}
			checkIndexes(t, s)
			assertActive(t, s)
		})
	}
}

func seq(from, to int) []int { return every(from, to, 1) }

func every(from, to, step int) []int {
	var out []int
	for i := from; i < to; i += step {
		out = append(out, i)
	}
	return out
}

// assertActive compares ActiveRuns with a scan of every record.
func assertActive(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	got, err := s.ActiveRuns(ctx)
	if err != nil {
		t.Fatalf("ActiveRuns: %v", err)
	}
	var want []string
	all := listAll(t, s, ListQuery{PageSize: MaxPageSize})
	for i := len(all) - 1; i >= 0; i-- { // oldest first
		if !all[i].State.Terminal() {
			want = append(want, all[i].ID)
		}
	}
	if !slices.Equal(ids(got), want) {
		t.Errorf("ActiveRuns = %v, want %v", ids(got), want)
	}
}

func TestActiveRuns(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	if got, err := s.ActiveRuns(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ActiveRuns of an empty store = %v, %v", got, err)
	}
	states := []run.State{run.StatePending, run.StateRunning, run.StateCompleted, run.StateFailed, run.StateCompleting, run.StateLost, run.StateUnspecified}
	for i := range 70 {
		mustCreate(t, s, testRun(i, states[i%len(states)]))
	}
	assertActive(t, s)
	if _, err := s.UpdateRun(ctx, testRun(0, 0).ID, func(r *run.Run) bool { return r.MarkLost("gone", testEpoch) }); err != nil {
		t.Fatal(err)
	}
	assertActive(t, s)
	got, err := s.ActiveRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 39 { // 70 runs, 4 of 7 states active -> 40, one lost
		t.Errorf("len(ActiveRuns) = %d, want 39", len(got))
	}
	checkIndexes(t, s)
}

func TestReleaseRequestID(t *testing.T) {
	ctx := context.Background()
	now := testEpoch.Add(time.Minute)
	s, _ := newTestStore(t)

	refused := mustCreate(t, s, testRun(1, run.StatePending))
	if _, err := s.UpdateRun(ctx, refused.ID, func(r *run.Run) bool { return r.MarkFailed("sbatch: error", now) }); err != nil {
		t.Fatal(err)
	}
	accepted := mustCreate(t, s, testRun(2, run.StateRunning))

	tests := []struct {
		name      string
		requestID string
		runID     string
		wantErr   error
	}{
		{"key of another run is kept", refused.RequestID, accepted.ID, ErrNotFound},
		{"refused submission", refused.RequestID, refused.ID, nil},
		{"released twice", refused.RequestID, refused.ID, ErrNotFound},
		{"unknown request id", "nope", refused.ID, ErrNotFound},
		{"submitted run keeps its request id", accepted.RequestID, accepted.ID, ErrAlreadySubmitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.ReleaseRequestID(ctx, tt.requestID, tt.runID); !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReleaseRequestID(%s) = %v, want %v", tt.requestID, err, tt.wantErr)
			}
			checkIndexes(t, s)
		})
	}

	// The failed run stays in history.
	if got, err := s.GetRun(ctx, refused.ID); err != nil || got.State != run.StateFailed {
		t.Fatalf("GetRun(refused) = %v, %v", got, err)
	}
	if _, err := s.GetRunByRequestID(ctx, refused.RequestID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRunByRequestID(released) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRunByRequestID(ctx, accepted.RequestID); err != nil {
		t.Fatalf("GetRunByRequestID(accepted): %v", err)
	}
	// A retry with the same request id creates a new run.
	retry := testRun(3, run.StatePending)
	retry.RequestID = refused.RequestID
	stored, created, err := s.CreateRun(ctx, retry)
	if err != nil || !created || stored.ID != retry.ID {
		t.Fatalf("retry CreateRun = %v, created %v, %v", stored, created, err)
	}
	if got, err := s.GetRunByRequestID(ctx, refused.RequestID); err != nil || got.ID != retry.ID {
		t.Fatalf("GetRunByRequestID after retry = %v, %v; want %s", got, err, retry.ID)
	}
	// The retry's request id is now idempotent again.
	again := testRun(4, run.StatePending)
	again.RequestID = refused.RequestID
	if got, created, err := s.CreateRun(ctx, again); err != nil || created || got.ID != retry.ID {
		t.Fatalf("second retry = %v, created %v, %v; want existing %s", got, created, err, retry.ID)
	}
	checkIndexes(t, s)
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	now := testEpoch.Add(time.Hour)
	path := filepath.Join(t.TempDir(), "runs.db")
	s := openTestStore(t, path)
	for i := range 40 {
		mustCreate(t, s, testRun(i, run.StatePending))
	}
	if _, err := s.UpdateRuns(ctx, ids(listAll(t, s, ListQuery{}))[:20], func(r *run.Run) bool {
		return r.Apply(run.Observation{SlurmState: "COMPLETED", ExitCode: 0}, now)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRun(ctx, testRun(3, 0).ID, func(r *run.Run) bool { return r.MarkFailed("refused", now) }); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseRequestID(ctx, testRun(3, 0).RequestID, testRun(3, 0).ID); err != nil {
		t.Fatal(err)
	}
	before := listAll(t, s, ListQuery{PageSize: 7})
	activeBefore, err := s.ActiveRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s)
	checkBolt(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	after := listAll(t, s, ListQuery{PageSize: 7})
	if len(after) != len(before) {
		t.Fatalf("after reopen %d runs, before %d", len(after), len(before))
	}
	for i := range before {
		sameRun(t, "run after reopen", after[i], before[i])
		sameRun(t, "GetRun after reopen", mustGet(t, s, before[i].ID), before[i])
	}
	activeAfter, err := s.ActiveRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(activeAfter), ids(activeBefore)) {
		t.Errorf("ActiveRuns after reopen = %v, want %v", ids(activeAfter), ids(activeBefore))
	}
	if _, err := s.GetRunByRequestID(ctx, testRun(3, 0).RequestID); !errors.Is(err, ErrNotFound) {
		t.Errorf("released request id after reopen: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRunByRequestID(ctx, testRun(4, 0).RequestID); err != nil {
		t.Errorf("request id after reopen: %v", err)
	}
	// The sequence carries on: a new run is the newest.
	mustCreate(t, s, testRun(100, run.StatePending))
	if first, _, err := s.ListRuns(ctx, ListQuery{PageSize: 1}); err != nil || len(first) != 1 || first[0].ID != testRun(100, 0).ID {
		t.Errorf("newest after reopen = %v, %v", first, err)
	}
	checkIndexes(t, s)
}

// storeWithVersion makes a store file at path and writes schema version v
// into it.
func storeWithVersion(t *testing.T, path string, v []byte) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchemaVersion, v) }); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesUnknownSchema(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantMsg string
	}{
		{
			name: "newer version",
			prepare: func(t *testing.T, path string) {
				storeWithVersion(t, path, seqKey(uint64(len(migrations())+1)))
			},
			wantMsg: fmt.Sprintf("database schema version is %d, this build knows up to %d", len(migrations())+1, len(migrations())),
		},
		{
			name: "malformed version",
			prepare: func(t *testing.T, path string) {
				storeWithVersion(t, path, []byte{1})
			},
			wantMsg: "schema version key is 1 bytes",
		},
		{
			name: "someone else's bbolt file",
			prepare: func(t *testing.T, path string) {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: "not a sopilot store",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runs.db")
			tt.prepare(t, path)
			s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Open error = %v; want ErrUnsupportedVersion mentioning %q", err, tt.wantMsg)
			}
			// The failed Open released the file.
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("file still locked after failed Open: %v", err)
			}
			db.Close()
		})
	}
}

func TestOpenLocked(t *testing.T) {
	s, path := newTestStore(t)
	start := time.Now()
	s2, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	// bbolt gives up one 50ms retry interval before the timeout.
	if elapsed < 100*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("second Open gave up after %s, want about 200ms", elapsed)
	}
	// The first store is unaffected; once it closes the file opens again.
	mustCreate(t, s, testRun(1, run.StatePending))
	checkIndexes(t, s)
	checkBolt(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openTestStore(t, path)
	if _, err := s3.GetRun(context.Background(), testRun(1, 0).ID); err != nil {
		t.Fatal(err)
	}
}

func TestMigrate(t *testing.T) {
	var applied []string
	step := func(name string, fail bool) migration {
		return migration{name: name, fn: func(tx *bolt.Tx) error {
			applied = append(applied, name)
			if _, err := tx.CreateBucket([]byte("bucket-" + name)); err != nil {
				return err
			}
			if fail {
				return errors.New("boom")
			}
			return nil
		}}
	}
	m1, m2, m3 := step("m1", false), step("m2", false), step("m3", true)

	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	version := func() uint64 {
		var v uint64
		if err := db.View(func(tx *bolt.Tx) error {
			v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchemaVersion))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	buckets := func() []string {
		var out []string
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, _ *bolt.Bucket) error { out = append(out, string(name)); return nil })
		})
		return out
	}

	tests := []struct {
		name        string
		ms          []migration
		wantErr     bool
		wantApplied []string
		wantVersion uint64
		wantBuckets []string
	}{
		{"empty file to v1", []migration{m1}, false, []string{"m1"}, 1, []string{"bucket-m1", "meta"}},
		{"v1 again is a no-op", []migration{m1}, false, nil, 1, []string{"bucket-m1", "meta"}},
		{"v1 to v2 applies only the new one", []migration{m1, m2}, false, []string{"m2"}, 2, []string{"bucket-m1", "bucket-m2", "meta"}},
		{"a failing migration rolls back", []migration{m1, m2, m3}, true, []string{"m3"}, 2, []string{"bucket-m1", "bucket-m2", "meta"}},
		{"older code refuses v2", []migration{m1}, true, nil, 2, []string{"bucket-m1", "bucket-m2", "meta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applied = nil
			err := db.Update(func(tx *bolt.Tx) error { return migrate(tx, tt.ms) })
			if (err != nil) != tt.wantErr {
				t.Fatalf("migrate error = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(applied, tt.wantApplied) {
				t.Errorf("applied %v, want %v", applied, tt.wantApplied)
			}
			if v := version(); v != tt.wantVersion {
				t.Errorf("version = %d, want %d", v, tt.wantVersion)
			}
			if b := buckets(); !slices.Equal(b, tt.wantBuckets) {
				t.Errorf("buckets = %v, want %v", b, tt.wantBuckets)
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	s, _ := newTestStore(t)
	r := mustCreate(t, s, testRun(1, run.StatePending))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var called sync.Map
	never := func(r *run.Run) bool { called.Store(r.ID, true); return true }
	tests := []struct {
		name string
		call func() error
	}{
		{"CreateRun", func() error { _, _, err := s.CreateRun(ctx, testRun(2, run.StatePending)); return err }},
		{"GetRun", func() error { _, err := s.GetRun(ctx, r.ID); return err }},
		{"GetRunByRequestID", func() error { _, err := s.GetRunByRequestID(ctx, r.RequestID); return err }},
		{"UpdateRun", func() error { _, err := s.UpdateRun(ctx, r.ID, never); return err }},
		{"UpdateRuns", func() error { _, err := s.UpdateRuns(ctx, []string{r.ID}, never); return err }},
		{"ReleaseRequestID", func() error { return s.ReleaseRequestID(ctx, r.RequestID, r.ID) }},
		{"ActiveRuns", func() error { _, err := s.ActiveRuns(ctx); return err }},
		{"ListRuns", func() error { _, _, err := s.ListRuns(ctx, ListQuery{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context = %v, want context.Canceled", tt.name, err)
			}
		})
	}
	if _, n := seqAndCount(t, s); n != 1 {
		t.Errorf("%d runs stored, want 1", n)
	}
	called.Range(func(k, _ any) bool { t.Errorf("fn called for %v with a canceled context", k); return true })
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				n := w*perWriter + i
				r, _, err := s.CreateRun(ctx, testRun(n, run.StatePending))
				if err != nil {
					errs <- err
					return
				}
				// A client retry races the original.
				if again, created, err := s.CreateRun(ctx, testRun(n, run.StatePending)); err != nil || created || again.ID != r.ID {
					errs <- fmt.Errorf("retry of %s: %v created %v %v", r.ID, again, created, err)
					return
				}
			}
		})
	}
	wg.Go(func() { // the tracker
		for range 20 {
			active, err := s.ActiveRuns(ctx)
			if err != nil {
				errs <- err
				return
			}
			if _, err := s.UpdateRuns(ctx, ids(active), func(r *run.Run) bool {
				return r.Apply(run.Observation{SlurmState: "RUNNING"}, testEpoch)
			}); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 2 { // API readers
		wg.Go(func() {
			for range 20 {
				var tok string
				seen := map[string]bool{}
				for {
					page, next, err := s.ListRuns(ctx, ListQuery{PageSize: 10, PageToken: tok, States: []run.State{run.StatePending, run.StateRunning}})
					if err != nil {
						errs <- err
						return
					}
					for _, r := range page {
						if seen[r.ID] {
							errs <- fmt.Errorf("run %s listed twice in one walk", r.ID)
							return
						}
						seen[r.ID] = true
					}
					if tok = next; tok == "" {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, n := seqAndCount(t, s); n != writers*perWriter {
		t.Errorf("%d runs stored, want %d", n, writers*perWriter)
	}
	checkIndexes(t, s)
}

// txID is the id of the last committed transaction.
func txID(t testing.TB, s *Store) int {
	t.Helper()
	tx, err := s.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	return tx.ID()
}

func TestNoOpWritesDoNotCommit(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	first := mustCreate(t, s, testRun(1, run.StateRunning))
	second := mustCreate(t, s, testRun(2, run.StatePending))
	tests := []struct {
		name       string
		call       func() error
		wantCommit bool
	}{
		{"idempotent CreateRun", func() error { _, _, err := s.CreateRun(ctx, testRun(1, run.StateRunning)); return err }, false},
		{"UpdateRun declined", func() error { _, err := s.UpdateRun(ctx, first.ID, func(*run.Run) bool { return false }); return err }, false},
		{"UpdateRuns all declined", func() error {
			_, err := s.UpdateRuns(ctx, []string{first.ID, second.ID}, func(*run.Run) bool { return false })
			return err
		}, false},
		{"UpdateRun failed", func() error {
			_, err := s.UpdateRun(ctx, first.ID, func(r *run.Run) bool { r.ID = "x"; return true })
			if errors.Is(err, ErrInvalidArgument) {
				return nil
			}
			return err
		}, false},
		{"UpdateRuns one change", func() error {
			_, err := s.UpdateRuns(ctx, []string{first.ID, second.ID}, func(r *run.Run) bool { return r.ID == second.ID })
			return err
		}, true},
		{"CreateRun", func() error { _, _, err := s.CreateRun(ctx, testRun(3, run.StatePending)); return err }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := txID(t, s)
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if committed := txID(t, s) != before; committed != tt.wantCommit {
				t.Errorf("committed = %v, want %v", committed, tt.wantCommit)
			}
			checkIndexes(t, s)
		})
	}
}

func TestUpdateRunPanicRollsBack(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	r := mustCreate(t, s, testRun(1, run.StatePending))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		_, _ = s.UpdateRuns(ctx, []string{r.ID}, func(x *run.Run) bool { x.State = run.StateFailed; panic("tracker bug") })
	}()
	// The write lock is free again and nothing changed.
	got, err := s.UpdateRun(ctx, r.ID, func(*run.Run) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	sameRun(t, "run after a panicking update", got, r)
	checkIndexes(t, s)
}

func TestCheckFindsBrokenIndexes(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(tx *bolt.Tx, seq uint64) error
		want    string
	}{
		{"active entry missing", func(tx *bolt.Tx, seq uint64) error {
			return tx.Bucket(bucketActive).Delete(seqKey(seq))
		}, "in active = false"},
		{"stray by_state entry", func(tx *bolt.Tx, seq uint64) error {
			return tx.Bucket(bucketByState).Put(stateKey(run.StateFailed, seq), nil)
		}, "by_state has 3 entries, runs has 2"},
		{"request id of an unknown run", func(tx *bolt.Tx, seq uint64) error {
			return tx.Bucket(bucketRequestIDs).Put([]byte("q"), []byte("ghost"))
		}, `request_ids["q"] = "ghost", an unknown run`},
		{"run id pointing elsewhere", func(tx *bolt.Tx, seq uint64) error {
			return tx.Bucket(bucketRunIDs).Put([]byte(testRun(1, 0).ID), seqKey(seq+1))
		}, "run_ids"},
		{"undecodable record", func(tx *bolt.Tx, seq uint64) error {
			return tx.Bucket(bucketRuns).Put(seqKey(seq), []byte("{"))
		}, "decode record"},
		{"wrong schema version", func(tx *bolt.Tx, seq uint64) error {
			return tx.Bucket(bucketMeta).Put(keySchemaVersion, seqKey(7))
		}, "schema version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "runs.db"), Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustCreate(t, s, testRun(1, run.StatePending))
			mustCreate(t, s, testRun(2, run.StatePending))
			if err := s.Check(); err != nil {
				t.Fatalf("Check of a sound store: %v", err)
			}
			if err := s.db.Update(func(tx *bolt.Tx) error { return tt.corrupt(tx, 1) }); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// A LOST run that Slurm reports again leaves LOST (run.Apply): back into
// the active index when the job still runs, out of it again when it ends,
// with by_state following every step.
func TestLostRunRevivedKeepsIndexes(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	r := mustCreate(t, s, testRun(1, run.StateRunning))
	steps := []struct {
		name   string
		fn     func(*run.Run) bool
		want   run.State
		active int
	}{
		{"marked lost", func(x *run.Run) bool { return x.MarkLost("gone", testEpoch) }, run.StateLost, 0},
		{"seen running again", func(x *run.Run) bool { return x.Apply(run.Observation{SlurmState: "RUNNING"}, testEpoch) }, run.StateRunning, 1},
		{"lost again", func(x *run.Run) bool { return x.MarkLost("gone", testEpoch) }, run.StateLost, 0},
		{"seen completed", func(x *run.Run) bool { return x.Apply(run.Observation{SlurmState: "COMPLETED"}, testEpoch) }, run.StateCompleted, 0},
	}
	for _, st := range steps {
		got, err := s.UpdateRun(ctx, r.ID, st.fn)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		active, err := s.ActiveRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != st.want || len(active) != st.active {
			t.Errorf("%s: state %s, %d active; want %s, %d", st.name, got.State, len(active), st.want, st.active)
		}
		byState, _, err := s.ListRuns(ctx, ListQuery{States: []run.State{st.want}})
		if err != nil || len(byState) != 1 || byState[0].ID != r.ID {
			t.Errorf("%s: by_state lists %v (%v)", st.name, byState, err)
		}
		checkIndexes(t, s)
	}
}

func TestCreateRunsIsOneTransactionAndSkipsKnownRequests(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	first := mustCreate(t, s, testRun(0, run.StateCompleted))
	runs := []*run.Run{testRun(0, run.StateCompleted), testRun(1, run.StatePending), testRun(2, run.StateFailed)}
	n, err := s.CreateRuns(ctx, runs)
	if err != nil || n != 2 {
		t.Fatalf("CreateRuns = %d, %v; want 2 created (one request id was stored)", n, err)
	}
	if got, err := s.GetRun(ctx, first.ID); err != nil || got.RequestID != first.RequestID {
		t.Fatalf("run 0: %v, %v", got, err)
	}
	for _, r := range runs[1:] {
		sameRun(t, r.ID, mustGet(t, s, r.ID), r)
	}
	checkIndexes(t, s)
	bad := []*run.Run{testRun(3, run.StatePending), {ID: "r-x", RequestID: "", State: run.StatePending}}
	if _, err := s.CreateRuns(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("invalid run: err = %v, want ErrInvalidArgument", err)
	}
	if _, err := s.GetRun(ctx, bad[0].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a batch with an invalid run wrote %s: %v", bad[0].ID, err)
	}
	clash := testRun(4, run.StatePending)
	clash.ID = runs[1].ID
	if _, err := s.CreateRuns(ctx, []*run.Run{testRun(5, run.StatePending), clash}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("taken id: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.GetRun(ctx, testRun(5, run.StatePending).ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a batch with a taken id wrote its other runs: %v", err)
	}
	checkIndexes(t, s)
}
