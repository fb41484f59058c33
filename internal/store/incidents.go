package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Incident is a health problem of one node component: identical evidence
// collapsed into one record with a count.
type Incident struct {
	ID        string `json:"id"` // ULID-based, so ids sort by opening time
	Node      string `json:"node"`
	Component string `json:"component"` // "gpu3", "ib:mlx5_0/1", "nccl", "run"
	// Rule is the health rule (or event kind) that found it: "xid_drain",
	// "ib_link_down", "nccl_busbw", "progress_stalled", ...
	Rule     string `json:"rule"`
	Summary  string `json:"summary"`
	Severity string `json:"severity"` // DEGRADED, UNHEALTHY
	// Evidence is the latest evidence line, e.g. "xid 79 (drain) on gpu3".
	Evidence  string    `json:"evidence,omitempty"`
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Action is what the controller did: "drained", "dry-run: would drain",
	// "breaker open: would drain", "none", ...
	Action string `json:"action,omitempty"`
	// ResolveTime and ResolvedBy are set when it closed ("evidence cleared",
	// "operator alice", ...).
	ResolveTime time.Time `json:"resolve_time,omitzero"`
	ResolvedBy  string    `json:"resolved_by,omitempty"`
	RunIDs      []string  `json:"run_ids,omitempty"`
}

// Open reports whether the incident is not resolved.
func (i *Incident) Open() bool { return i.ResolveTime.IsZero() }

func indexKey(prefix, id string) []byte {
	k := make([]byte, 0, len(prefix)+1+len(id))
	k = append(k, prefix...)
	k = append(k, 0)
	return append(k, id...)
}

// PutIncidents inserts or replaces incidents (by id) and keeps the node and
// run indexes, in one transaction.
func (s *Store) PutIncidents(ctx context.Context, incs []*Incident) error {
	if len(incs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// In the node index's key order (node, then id; ids grow with time, so
	// new ones append there too): bbolt inserts a new key by
	// shifting the rest of its in-memory node, quadratic in random order.
	incs = append([]*Incident(nil), incs...)
	sort.Slice(incs, func(i, j int) bool {
		return incs[i].Node < incs[j].Node || incs[i].Node == incs[j].Node && incs[i].ID < incs[j].ID
	})
	return s.db.Update(func(tx *bolt.Tx) error {
		b, byNode, byRun := tx.Bucket(bucketIncidents), tx.Bucket(bucketIncByNode), tx.Bucket(bucketIncByRun)
		if b == nil || byNode == nil || byRun == nil {
			return fmt.Errorf("store: incident buckets missing")
		}
		b.FillPercent = 0.9
		for _, inc := range incs {
			if inc.ID == "" || inc.Node == "" {
				return fmt.Errorf("%w: incident needs an id and a node", ErrInvalidArgument)
			}
			v, err := json.Marshal(inc)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(inc.ID), v); err != nil {
				return err
			}
			if err := byNode.Put(indexKey(inc.Node, inc.ID), nil); err != nil {
				return err
			}
			for _, r := range inc.RunIDs {
				if err := byRun.Put(indexKey(r, inc.ID), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// GetIncident returns one incident.
func (s *Store) GetIncident(ctx context.Context, id string) (*Incident, error) {
	var out *Incident
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIncidents).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: incident %q", ErrNotFound, id)
		}
		out = &Incident{}
		return json.Unmarshal(v, out)
	})
	return out, err
}

// IncidentQuery selects incidents: by node, by run, or all; newest first.
type IncidentQuery struct {
	Node, RunID string
	// OpenOnly skips resolved incidents.
	OpenOnly bool
	PageSize int    // default 100, at most 1000
	After    string // the last id of the previous page ("" = from the newest)
}

// ListIncidents returns a page of incidents, newest first, and the id to
// pass as After for the next page ("" when there is none).
func (s *Store) ListIncidents(ctx context.Context, q IncidentQuery) ([]*Incident, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if q.Node != "" && q.RunID != "" {
		return nil, "", fmt.Errorf("%w: filter by node or by run, not both", ErrInvalidArgument)
	}
	size := q.PageSize
	if size <= 0 {
		size = 100
	}
	size = min(size, 1000)
	var out []*Incident
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIncidents)
		var (
			c      *bolt.Cursor
			prefix []byte
		)
		switch {
		case q.Node != "":
			c, prefix = tx.Bucket(bucketIncByNode).Cursor(), indexKey(q.Node, "")
		case q.RunID != "":
			c, prefix = tx.Bucket(bucketIncByRun).Cursor(), indexKey(q.RunID, "")
		default:
			c = b.Cursor()
		}
		// Walk backwards from just below After (or from the end of the
		// prefix range).
		var k []byte
		if q.After != "" {
			k, _ = c.Seek(append(append([]byte{}, prefix...), q.After...))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			end := append(append([]byte{}, prefix...), 0xff)
			if len(prefix) == 0 {
				k, _ = c.Last()
			} else if k, _ = c.Seek(end); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			id := k[len(prefix):]
			if q.After != "" && string(id) >= q.After {
				continue
			}
			v := b.Get(id)
			if v == nil {
				continue
			}
			inc := &Incident{}
			if err := json.Unmarshal(v, inc); err != nil {
				return fmt.Errorf("store: incident %q: %w", id, err)
			}
			if q.OpenOnly && !inc.Open() {
				continue
			}
			if len(out) == size {
				next = out[len(out)-1].ID
				return nil
			}
			out = append(out, inc)
		}
		return nil
	})
	return out, next, err
}
