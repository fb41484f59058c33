package store

import (
	"bytes"
	"context"
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

// openTestStore opens path (NoSync) and, at cleanup, runs Check (bbolt's
// tx.Check and every index against the records), failing the test on any
// error, then closes the store. A store the test closed itself is skipped
// (the test reopened the file and that store has its own cleanup).
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
		if err := s.Check(); err != nil {
			t.Errorf("Check at cleanup:\n%v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// writeOldStore writes a closed store file at path as schema version v
// left it (the first v migrations), holding runs.
func writeOldStore(t *testing.T, path string, v int, runs ...*run.Run) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations()[:v]); err != nil {
			return err
		}
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		for _, r := range runs {
			if _, err := b.insert(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
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
// agrees with the records. Tests call it after each mutation sequence.
func checkIndexes(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, err := range checkIndexesTx(tx) {
			t.Error(err)
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

// mustGet returns the stored run id.
func mustGet(t testing.TB, s *Store, id string) *run.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}
