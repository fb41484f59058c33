package storegen

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
)

func TestWriteMakesAStoreTheControllerReads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gen.db")
	st, err := Write(ctx, path, Options{Runs: 1_000, Nodes: 30})
	if err != nil {
		t.Fatal(err)
	}
	if st.Runs != 1_000 || st.Active != 20 || st.Nodes != 30 || st.BytesPerRun() <= 0 || st.FileBytes < st.RunsFileBytes {
		t.Fatalf("stats = %+v", st)
	}
	if _, err := Write(ctx, path, Options{Runs: 1}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Write: err = %v, want ErrExists", err)
	}
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	active, err := s.ActiveRuns(ctx)
	if err != nil || len(active) != 20 {
		t.Fatalf("active runs: %d, %v", len(active), err)
	}
	for _, r := range active {
		if !r.Submitted() {
			t.Errorf("active run %s has no Slurm job: a controller would resubmit it", r.ID)
		}
	}
	page, _, err := s.ListRuns(ctx, store.ListQuery{PageSize: 10, States: []run.State{run.StateFailed}})
	if err != nil || len(page) != 10 {
		t.Fatalf("failed runs: %d, %v", len(page), err)
	}
	nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 30 {
		t.Fatalf("nodes: %d, %v", len(nodes), err)
	}
	if len(nodes[0].Inventory) == 0 {
		t.Errorf("node %s has no inventory", nodes[0].Name)
	}
	inst, err := s.SlurmInstances(ctx)
	if err != nil || inst[SlurmNodeName(7)] != NodeName(7) {
		t.Fatalf("slurm instances: %v, %v", inst[SlurmNodeName(7)], err)
	}
}
