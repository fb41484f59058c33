package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestIncidentsIndexesAndPaging(t *testing.T) {
	s, path := newTestStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var incs []*Incident
	for i := range 7 {
		node := "worker-0"
		if i%2 == 1 {
			node = "worker-1"
		}
		inc := &Incident{ID: fmt.Sprintf("i-%02d", i), Node: node, Component: "gpu3", Rule: "xid_drain", Count: 1, FirstSeen: t0, LastSeen: t0}
		if i < 3 {
			inc.RunIDs = []string{"r-a"}
		}
		incs = append(incs, inc)
	}
	if err := s.PutIncidents(ctx, incs); err != nil {
		t.Fatal(err)
	}
	// Update in place: count and resolution.
	incs[4].Count, incs[4].ResolveTime, incs[4].ResolvedBy = 9000, t0.Add(time.Minute), "evidence cleared"
	if err := s.PutIncidents(ctx, incs[4:5]); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIncidents(ctx, []*Incident{{ID: "x"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("incident without node: %v", err)
	}
	s.Close()
	s = openTestStore(t, path)

	ids := func(q IncidentQuery) ([]string, string) {
		t.Helper()
		got, next, err := s.ListIncidents(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range got {
			out = append(out, i.ID)
		}
		return out, next
	}
	check := func(name string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	all, _ := ids(IncidentQuery{})
	check("all", all, "i-06", "i-05", "i-04", "i-03", "i-02", "i-01", "i-00")
	w0, _ := ids(IncidentQuery{Node: "worker-0"})
	check("worker-0", w0, "i-06", "i-04", "i-02", "i-00")
	open0, _ := ids(IncidentQuery{Node: "worker-0", OpenOnly: true})
	check("worker-0 open", open0, "i-06", "i-02", "i-00")
	ra, _ := ids(IncidentQuery{RunID: "r-a"})
	check("run r-a", ra, "i-02", "i-01", "i-00")
	p1, next := ids(IncidentQuery{Node: "worker-1", PageSize: 2})
	check("worker-1 page 1", p1, "i-05", "i-03")
	p2, next2 := ids(IncidentQuery{Node: "worker-1", PageSize: 2, After: next})
	check("worker-1 page 2", p2, "i-01")
	if next != "i-03" || next2 != "" {
		t.Errorf("next tokens %q, %q", next, next2)
	}
	none, _ := ids(IncidentQuery{Node: "worker-9"})
	check("unknown node", none)
	got, err := s.GetIncident(ctx, "i-04")
	if err != nil || got.Count != 9000 || got.Open() || got.ResolvedBy != "evidence cleared" {
		t.Errorf("GetIncident = %+v, %v", got, err)
	}
	if _, err := s.GetIncident(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing incident: %v", err)
	}
	if _, _, err := s.ListIncidents(ctx, IncidentQuery{Node: "a", RunID: "b"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("node and run: %v", err)
	}
}
