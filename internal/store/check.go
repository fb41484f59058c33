package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the file: bbolt's own page-level consistency check, then
// every invariant listed in schema.go (each index agrees with the records).
// It returns all problems found, joined, or nil. It reads the whole file
// and holds the write lock meanwhile (bbolt's check is only safe alongside
// writers that way), so it is meant for tests, tooling and startup checks,
// not for a request path.
func (s *Store) Check() error {
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, fmt.Errorf("bbolt: %w", err))
	}
	errs = append(errs, checkIndexesTx(tx)...)
	errs = append(errs, checkResultsTx(tx)...)
	return errors.Join(errs...)
}

// checkIndexesTx checks the invariants of schema.go in tx.
func checkIndexesTx(tx *bolt.Tx) []error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 100 {
			errs = append(errs, fmt.Errorf("store: "+format, args...))
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return append(errs, errors.New("store: meta bucket missing"))
	}
	if v := meta.Get(keySchemaVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != uint64(len(migrations())) {
		bad("schema version is %x, want %d", v, len(migrations()))
	}
	b, err := bucketsOf(tx)
	if err != nil {
		return append(errs, err)
	}

	type rec struct {
		id, requestID string
		state         byte
		terminal      bool
	}
	bySeq := map[uint64]rec{}
	var maxSeq uint64
	_ = b.runs.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			bad("runs key %x is not 8 bytes", k)
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		r, err := decodeRun(seq, v)
		if err != nil {
			bad("%v", err)
			return nil
		}
		if !validState(r.State) {
			bad("run %s has unknown state %d", r.ID, int(r.State))
		}
		bySeq[seq] = rec{r.ID, r.RequestID, byte(r.State), r.State.Terminal()}
		maxSeq = max(maxSeq, seq)
		return nil
	})
	if b.runs.Sequence() < maxSeq {
		bad("runs sequence %d is below the largest key %d", b.runs.Sequence(), maxSeq)
	}

	// run_ids: one entry per record, pointing at it.
	ids := map[string]uint64{}
	_ = b.runIDs.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			bad("run_ids[%q] = %x, not 8 bytes", k, v)
			return nil
		}
		ids[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	})
	if len(ids) != len(bySeq) {
		bad("run_ids has %d entries, runs has %d", len(ids), len(bySeq))
	}
	for seq, r := range bySeq {
		if got, ok := ids[r.id]; !ok || got != seq {
			bad("run_ids[%q] = %d (present %v), want %d", r.id, got, ok, seq)
		}
	}

	// request_ids: each entry names an existing run with that request id.
	_ = b.requestIDs.ForEach(func(k, v []byte) error {
		seq, ok := ids[string(v)]
		switch {
		case !ok:
			bad("request_ids[%q] = %q, an unknown run", k, v)
		case bySeq[seq].requestID != string(k):
			bad("request_ids[%q] = %q, whose request id is %q", k, v, bySeq[seq].requestID)
		}
		return nil
	})

	// active: exactly the non-terminal runs.
	active := map[uint64]bool{}
	_ = b.active.ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) != 0 {
			bad("active entry %x=%x malformed", k, v)
			return nil
		}
		active[binary.BigEndian.Uint64(k)] = true
		return nil
	})
	for seq, r := range bySeq {
		if active[seq] == r.terminal {
			bad("run %s (seq %d, state %d): in active = %v", r.id, seq, r.state, active[seq])
		}
	}
	for seq := range active {
		if _, ok := bySeq[seq]; !ok {
			bad("active holds %d, which is no record", seq)
		}
	}

	// by_state: exactly one entry per record, for its state.
	n := 0
	_ = b.byState.ForEach(func(k, v []byte) error {
		n++
		if len(k) != 9 || len(v) != 0 {
			bad("by_state entry %x=%x malformed", k, v)
			return nil
		}
		seq := binary.BigEndian.Uint64(k[1:])
		if r, ok := bySeq[seq]; !ok || r.state != k[0] {
			bad("by_state entry (state %d, seq %d) does not match its record (present %v, state %d)", k[0], seq, ok, r.state)
		}
		return nil
	})
	if n != len(bySeq) {
		bad("by_state has %d entries, runs has %d", n, len(bySeq))
	}
	return errs
}
