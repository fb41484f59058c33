package health

import (
	"sort"
	"sync"
	"time"
)

// IncidentKey identifies identical events.
type IncidentKey struct {
	Node      string
	Component string // "gpu3", "mlx5_0/1"
	Kind      string // "xid", "gpu_lost", "ib_link_downed", …
	Code      int64  // the XID for kind "xid", else 0
}

// Incident is a run of identical events with no gap longer than the
// aggregator's window.
type Incident struct {
	Key       IncidentKey
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int
}

// Incidents collapses identical events: an event whose key was last seen
// within Window extends that incident; otherwise it opens a new one. An XID
// storm of thousands of lines is therefore one incident. Safe for
// concurrent use.
type Incidents struct {
	window time.Duration

	mu   sync.Mutex
	open map[IncidentKey]*Incident
}

// NewIncidents returns an aggregator with the given collapsing window.
func NewIncidents(window time.Duration) *Incidents {
	return &Incidents{window: window, open: make(map[IncidentKey]*Incident)}
}

// Observe records one event at t. It returns the incident after the event
// and whether the event opened it. The previous incident of the same key, if
// the event came after the window, is replaced (the caller has already been
// told about it when it opened).
func (a *Incidents) Observe(key IncidentKey, t time.Time) (Incident, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if inc, ok := a.open[key]; ok && t.Sub(inc.LastSeen) <= a.window {
		inc.Count++
		if t.After(inc.LastSeen) {
			inc.LastSeen = t
		}
		if t.Before(inc.FirstSeen) {
			inc.FirstSeen = t
		}
		return *inc, false
	}
	inc := &Incident{Key: key, FirstSeen: t, LastSeen: t, Count: 1}
	a.open[key] = inc
	return *inc, true
}

// Open returns the incidents seen within the window before now, oldest
// first, and forgets the others.
func (a *Incidents) Open(now time.Time) []Incident {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Incident
	for k, inc := range a.open {
		if now.Sub(inc.LastSeen) > a.window {
			delete(a.open, k)
			continue
		}
		out = append(out, *inc)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		a, b := out[i].Key, out[j].Key
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Code < b.Code
	})
	return out
}
