package health

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func TestIncidentsStormCollapses(t *testing.T) {
	a := NewIncidents(5 * time.Minute)
	key := IncidentKey{Node: "n1", Component: "gpu3", Kind: "xid", Code: 79}
	opened := 0
	for i := range 10000 {
		if _, isNew := a.Observe(key, t0.Add(time.Duration(i)*10*time.Millisecond)); isNew {
			opened++
		}
	}
	if opened != 1 {
		t.Fatalf("opened %d incidents, want 1", opened)
	}
	got := a.Open(t0.Add(2 * time.Minute))
	if len(got) != 1 {
		t.Fatalf("open = %d incidents, want 1", len(got))
	}
	inc := got[0]
	if inc.Count != 10000 || !inc.FirstSeen.Equal(t0) || !inc.LastSeen.Equal(t0.Add(99990*time.Millisecond)) {
		t.Errorf("incident = %+v", inc)
	}
}

func TestIncidentsConcurrentStorm(t *testing.T) {
	a := NewIncidents(time.Minute)
	key := IncidentKey{Node: "n1", Component: "gpu0", Kind: "xid", Code: 13}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2500 {
				a.Observe(key, t0.Add(time.Duration(g*2500+i)*time.Millisecond))
			}
		})
	}
	wg.Wait()
	got := a.Open(t0.Add(10 * time.Second))
	if len(got) != 1 || got[0].Count != 10000 {
		t.Fatalf("got %+v, want one incident of 10000", got)
	}
}

func TestIncidentsKeysAndWindow(t *testing.T) {
	a := NewIncidents(time.Minute)
	base := IncidentKey{Node: "n1", Component: "gpu3", Kind: "xid", Code: 79}
	steps := []struct {
		name   string
		key    IncidentKey
		at     time.Duration
		isNew  bool
		count  int
		opened time.Duration
	}{
		{"first", base, 0, true, 1, 0},
		{"same within window", base, 30 * time.Second, false, 2, 0},
		{"window counts from last seen", base, 80 * time.Second, false, 3, 0},
		{"other code", IncidentKey{"n1", "gpu3", "xid", 48}, 81 * time.Second, true, 1, 81 * time.Second},
		{"other gpu", IncidentKey{"n1", "gpu4", "xid", 79}, 82 * time.Second, true, 1, 82 * time.Second},
		{"other node", IncidentKey{"n2", "gpu3", "xid", 79}, 83 * time.Second, true, 1, 83 * time.Second},
		{"other kind", IncidentKey{"n1", "gpu3", "gpu_lost", 79}, 84 * time.Second, true, 1, 84 * time.Second},
		{"after window: new incident", base, 80*time.Second + time.Minute + time.Second, true, 1, 141 * time.Second},
	}
	for _, s := range steps {
		inc, isNew := a.Observe(s.key, t0.Add(s.at))
		if isNew != s.isNew || inc.Count != s.count || !inc.FirstSeen.Equal(t0.Add(s.opened)) {
			t.Errorf("%s: got %+v new=%v, want new=%v count=%d first=+%v", s.name, inc, isNew, s.isNew, s.count, s.opened)
		}
	}
	if n := len(a.Open(t0.Add(140 * time.Second))); n != 5 {
		t.Errorf("open at +140s = %d, want 5", n)
	}
	// The +81s..+84s incidents have expired by +190s; only the +141s one remains at +190s.
	got := a.Open(t0.Add(190 * time.Second))
	if len(got) != 1 || got[0].Key != base {
		t.Errorf("open at +190s = %+v, want only the reopened %v", got, base)
	}
}
