package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/goleak"

	"github.com/sopilot/sopilot/internal/run"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestStore opens a store on a fresh file in t.TempDir().
func newTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "runs.db")
	return openTestStore(t, path), path
}

// openTestStore opens path (NoSync) and, at cleanup, checks every index
// against the records and runs bbolt's own consistency check, failing the
// test on any error, then closes the store. A store the test closed itself
// is skipped (the test reopened the file and that store has its own
// cleanup).
func openTestStore(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.db.View(func(*bolt.Tx) error { return nil }); errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			return
		}
		checkIndexes(t, s)
		checkBolt(t, s)
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// checkBolt runs tx.Check and reports every error it finds.
func checkBolt(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}

// checkIndexes verifies the invariants listed in schema.go: every index
// agrees with the records.
func checkIndexes(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		if v := tx.Bucket(bucketMeta).Get(keySchemaVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != uint64(len(migrations())) {
			t.Errorf("schema version = %x, want %d", v, len(migrations()))
		}
		bySeq := map[uint64]*run.Run{}
		var maxSeq uint64
		if err := b.runs.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				t.Errorf("runs key %x is not 8 bytes", k)
				return nil
			}
			seq := binary.BigEndian.Uint64(k)
			r, err := decodeRun(seq, v)
			if err != nil {
				t.Errorf("runs[%d]: %v", seq, err)
				return nil
			}
			bySeq[seq] = r
			maxSeq = max(maxSeq, seq)
			return nil
		}); err != nil {
			return err
		}
		if b.runs.Sequence() < maxSeq {
			t.Errorf("runs sequence %d is below the largest key %d", b.runs.Sequence(), maxSeq)
		}

		// run_ids: a bijection onto runs.
		ids := map[string]uint64{}
		if err := b.runIDs.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				t.Errorf("run_ids[%s] = %x, not 8 bytes", k, v)
				return nil
			}
			ids[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return err
		}
		if len(ids) != len(bySeq) {
			t.Errorf("run_ids has %d entries, runs has %d", len(ids), len(bySeq))
		}
		for seq, r := range bySeq {
			if got, ok := ids[r.ID]; !ok || got != seq {
				t.Errorf("run_ids[%s] = %d (present %v), want %d", r.ID, got, ok, seq)
			}
		}

		// request_ids: each entry names an existing run with that request id.
		if err := b.requestIDs.ForEach(func(k, v []byte) error {
			seq, ok := ids[string(v)]
			switch {
			case !ok:
				t.Errorf("request_ids[%s] = %s, an unknown run", k, v)
			case bySeq[seq].RequestID != string(k):
				t.Errorf("request_ids[%s] = %s, whose request id is %s", k, v, bySeq[seq].RequestID)
			}
			return nil
		}); err != nil {
			return err
		}

		// active: exactly the non-terminal runs.
		active := map[uint64]bool{}
		if err := b.active.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) != 0 {
				t.Errorf("active entry %x=%x malformed", k, v)
				return nil
			}
			active[binary.BigEndian.Uint64(k)] = true
			return nil
		}); err != nil {
			return err
		}
		for seq, r := range bySeq {
			if active[seq] == r.State.Terminal() {
				t.Errorf("run %s (seq %d, %s): in active = %v", r.ID, seq, r.State, active[seq])
			}
		}
		for seq := range active {
			if bySeq[seq] == nil {
				t.Errorf("active holds %d, which is no record", seq)
			}
		}

		// by_state: exactly one entry per run, for its state.
		n := 0
		if err := b.byState.ForEach(func(k, v []byte) error {
			n++
			if len(k) != 9 || len(v) != 0 {
				t.Errorf("by_state entry %x=%x malformed", k, v)
				return nil
			}
			seq := binary.BigEndian.Uint64(k[1:])
			if r := bySeq[seq]; r == nil || byte(r.State) != k[0] {
				t.Errorf("by_state entry state %d seq %d does not match record %+v", k[0], seq, r)
			}
			return nil
		}); err != nil {
			return err
		}
		if n != len(bySeq) {
			t.Errorf("by_state has %d entries, runs has %d", n, len(bySeq))
		}
		return nil
	})
	if err != nil {
		t.Errorf("checkIndexes: %v", err)
	}
}

var (
	testNames    = []string{"llama-pretrain", "llama-sft", "mistral-eval", "bert-finetune", "vit-sweep", "diffusion-train"}
	testTeams    = []string{"nlp", "vision", "speech", "infra", "research"}
	testProjects = []string{"atlas", "borealis", "cobalt", "dune", "ember", "fjord", "glacier"}
	testEpoch    = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
)

// testRun returns a realistic run numbered i: 2 nodes x 8 tasks, labels,
// environment, created i seconds after testEpoch.
func testRun(i int, state run.State) *run.Run {
	created := testEpoch.Add(time.Duration(i) * time.Second)
	r := &run.Run{
		ID:        fmt.Sprintf("r-%07d", i),
		RequestID: fmt.Sprintf("req-%07d", i),
		Spec: run.Spec{
			JobName:          fmt.Sprintf("%s-%d", testNames[i%len(testNames)], i),
			Nodes:            2,
			TasksPerNode:     8,
			GPUsPerNode:      8,
			CPUsPerTask:      12,
			TimeLimit:        4 * time.Hour,
			Partition:        "gpu",
			Argv:             []string{"torchrun", "--nnodes=2", "--nproc-per-node=8", "train.py", "--config", "configs/run.yaml"},
			WorkingDirectory: "/home/alice/projects/train",
			Environment:      map[string]string{"NCCL_DEBUG": "WARN", "WANDB_PROJECT": testProjects[i%len(testProjects)], "OMP_NUM_THREADS": "12"},
			OutputDirectory:  "/scratch/alice/runs",
			Labels: map[string]string{
				"team":       testTeams[i%len(testTeams)],
				"project":    testProjects[i%len(testProjects)],
				"experiment": fmt.Sprintf("exp-%d", i%100),
			},
		},
		State:      state,
		CreateTime: created,
		UpdateTime: created,
	}
	if state != run.StatePending && state != run.StateUnspecified {
		r.SlurmJobID = fmt.Sprint(100000 + i)
		r.SubmitTime = created.Add(time.Second)
		r.SlurmState = state.String()
		r.NodeList = fmt.Sprintf("gpu[%03d-%03d]", i%64, i%64+1)
		r.StartTime = created.Add(time.Minute)
	}
	if state.Terminal() {
		r.EndTime = created.Add(3 * time.Hour)
		r.UpdateTime = r.EndTime
		if state != run.StateCompleted {
			r.ExitCode = 1
		}
	}
	return r
}

// seedRuns stores runs in batches of one transaction each, much faster than
// CreateRun one by one.
func seedRuns(t testing.TB, s *Store, runs []*run.Run) {
	t.Helper()
	const batch = 10_000
	for len(runs) > 0 {
		n := min(batch, len(runs))
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, err := bucketsOf(tx)
			if err != nil {
				return err
			}
			for _, r := range runs[:n] {
				if err := validateRun(r); err != nil {
					return err
				}
				if _, data, err := b.create(r); err != nil {
					return err
				} else if data == nil {
					return fmt.Errorf("request id %s already stored", r.RequestID)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
		runs = runs[n:]
	}
}

func mustCreate(t testing.TB, s *Store, r *run.Run) *run.Run {
	t.Helper()
	stored, created, err := s.CreateRun(context.Background(), r)
	if err != nil || !created {
		t.Fatalf("CreateRun(%s) = created %v, %v", r.ID, created, err)
	}
	return stored
}

// sameRun compares runs by their stored form.
func sameRun(t testing.TB, what string, got, want *run.Run) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// indexEntries returns whether run id is in active and the states by_state
// lists it under.
func indexEntries(t testing.TB, s *Store, id string) (inActive bool, states []run.State) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		seq, err := b.seqOf(id)
		if err != nil {
			return err
		}
		inActive = hasKey(b.active, seqKey(seq))
		for st := range 256 {
			if hasKey(b.byState, stateKey(run.State(st), seq)) {
				states = append(states, run.State(st))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("indexEntries(%s): %v", id, err)
	}
	return inActive, states
}

// hasKey reports whether key is in b (Get cannot tell an empty value from
// a missing key).
func hasKey(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return bytes.Equal(k, key)
}

func ids(runs []*run.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}
