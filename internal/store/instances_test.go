package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// Instance ids survive a reopen; later puts change only the nodes they name.
func TestSlurmInstancesRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	ctx := context.Background()
	s := openTestStore(t, path)
	if got, err := s.SlurmInstances(ctx); err != nil || len(got) != 0 {
		t.Fatalf("new store: %v, %v; want none", got, err)
	}
	if err := s.PutSlurmInstances(ctx, map[string]string{"worker-1": "gpu-node-1", "worker-0": "gpu-node-0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSlurmInstances(ctx, map[string]string{"worker-1": "gpu-node-9"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	got, err := s.SlurmInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"worker-0": "gpu-node-0", "worker-1": "gpu-node-9"}
	if len(got) != len(want) || got["worker-0"] != want["worker-0"] || got["worker-1"] != want["worker-1"] {
		t.Errorf("after reopen: %v, want %v", got, want)
	}
}

func TestPutSlurmInstancesRefusesEmpty(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "c.db"))
	ctx := context.Background()
	for name, ids := range map[string]map[string]string{
		"empty instance": {"worker-0": ""},
		"empty node":     {"": "gpu-node-0"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.PutSlurmInstances(ctx, ids); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("PutSlurmInstances(%v) = %v, want ErrInvalidArgument", ids, err)
			}
		})
	}
	if got, _ := s.SlurmInstances(ctx); len(got) != 0 {
		t.Errorf("refused puts stored %v", got)
	}
}

// A version 3 file (before slurm_instances) is upgraded in place: the
// bucket appears, what was stored stays.
func TestOpenUpgradesV3ToSlurmInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	writeOldStore(t, path, 3)
	s := openTestStore(t, path)
	ctx := context.Background()
	if err := s.PutNodes(ctx, []NodeRecord{{Name: "gpu-node-0", BootID: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSlurmInstances(ctx, map[string]string{"worker-0": "gpu-node-0"}); err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	if got, err := s.SlurmInstances(ctx); err != nil || got["worker-0"] != "gpu-node-0" {
		t.Errorf("SlurmInstances = %v, %v", got, err)
	}
}
