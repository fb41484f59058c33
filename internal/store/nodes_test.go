package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNodesRoundTripAcrossReopen(t *testing.T) {
	s, path := newTestStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	recs := []NodeRecord{
		{Name: "worker-1", BootID: "b1", Sequence: 41, LastSeen: t0, Inventory: []byte{1, 2, 3}},
		{Name: "worker-0", BootID: "b0", Sequence: 7, LastSeen: t0.Add(time.Second), AgentVersion: "v1"},
	}
	if err := s.PutNodes(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// A later write replaces the record; without an inventory it keeps
	// the stored one.
	recs[0].Sequence, recs[0].Inventory = 42, nil
	if err := s.PutNodes(ctx, recs[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNodes(ctx, []NodeRecord{{BootID: "x"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("PutNodes without a name: %v, want ErrInvalidArgument", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	got, err := s.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "worker-0" || got[1].Name != "worker-1" {
		t.Fatalf("Nodes = %+v, want worker-0, worker-1", got)
	}
	if got[1].Sequence != 42 || got[1].BootID != "b1" || string(got[1].Inventory) != "\x01\x02\x03" || !got[1].LastSeen.Equal(t0) {
		t.Errorf("worker-1 = %+v", got[1])
	}
	if got[0].Sequence != 7 || got[0].AgentVersion != "v1" {
		t.Errorf("worker-0 = %+v", got[0])
	}
}

// Each node gets its own inventory, also where one name is a prefix of
// another and where a node between them has none.
func TestNodesPairEachRecordWithItsInventory(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	recs := []NodeRecord{
		{Name: "gpu-1", Inventory: []byte("inv-1")},
		{Name: "gpu-10", Inventory: []byte("inv-10")},
		{Name: "gpu-1-a"},
		{Name: "gpu-10x", Inventory: []byte("inv-10x")},
		{Name: "gpu-2"},
	}
	if err := s.PutNodes(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"gpu-1": "inv-1", "gpu-10": "inv-10", "gpu-1-a": "", "gpu-10x": "inv-10x", "gpu-2": ""}
	if len(got) != len(want) {
		t.Fatalf("Nodes = %d records, want %d", len(got), len(want))
	}
	for _, r := range got {
		if string(r.Inventory) != want[r.Name] {
			t.Errorf("%s: inventory %q, want %q", r.Name, r.Inventory, want[r.Name])
		}
	}
}
