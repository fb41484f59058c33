// Package store is the controller's durable run history: every run.Run it
// ever recorded, kept in one bbolt file together with the indexes the
// controller needs (by run id, by client request id, the active runs, and by
// state). The layout is documented in schema.go.
//
// Each method is one short bbolt transaction, so a record and all of its
// index entries change together or not at all. Values read from bbolt are
// decoded (and so copied) before the transaction ends; callers own what they
// get back and may change it freely.
//
// A Store is safe for concurrent use. bbolt allows one writer at a time and
// any number of readers alongside it.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sopilot/sopilot/internal/run"
)

// Sentinel errors. Methods wrap them with detail; test with errors.Is.
var (
	// ErrNotFound means no run has the given id or request id.
	ErrNotFound = errors.New("run not found")
	// ErrInvalidPageToken means a ListRuns page token is malformed or was
	// issued for a different filter.
	ErrInvalidPageToken = errors.New("invalid page token")
	// ErrInvalidArgument means the caller passed something the store cannot
	// accept: an empty id, an unknown state, a negative page size, or an
	// update that changes a run's ID or RequestID.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAlreadyExists means CreateRun was given a run id that is already
	// stored under a different request id.
	ErrAlreadyExists = errors.New("run id already exists")
	// ErrAlreadySubmitted means ReleaseRequestID was asked to release the
	// request id of a run Slurm accepted (it has a Slurm job id); only a
	// run whose submission was refused may give its request id back.
	ErrAlreadySubmitted = errors.New("run already submitted to slurm")
	// ErrLocked means another process holds the database file open and the
	// lock did not come free within Options.Timeout.
	ErrLocked = errors.New("database is locked by another process")
	// ErrUnsupportedVersion means the file's schema version is newer than
	// this build knows, or the file is not a sopilot store.
	ErrUnsupportedVersion = errors.New("unsupported database schema")
)

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// defaultScanLimit bounds how many records one filtered ListRuns call
// examines (see ListRuns).
const defaultScanLimit = 10_000

// Options configures Open.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// file lock before failing with ErrLocked. Zero means DefaultTimeout;
	// negative values are treated as zero.
	Timeout time.Duration
	// NoSync skips fsync after each commit. A crash can then lose or
	// corrupt recent writes: for tests and benchmarks only.
	NoSync bool
}

// Store is the run history. Create it with Open and release it with Close.
type Store struct {
	db        *bolt.DB
	scanLimit int // records one filtered ListRuns call may examine
}

// Open opens (creating if needed) the store at path and brings its schema up
// to date. The parent directory must exist. Only one process may have the
// file open at a time; a second Open fails with ErrLocked after
// opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		NoSync:  opts.NoSync,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w (waited %s)", path, ErrLocked, timeout)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations()) }); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, scanLimit: defaultScanLimit}, nil
}

// Close releases the file. Methods called after Close fail.
func (s *Store) Close() error {
	return s.db.Close()
}

// buckets are the store's buckets inside one transaction.
type buckets struct {
	runs, runIDs, requestIDs, active, byState *bolt.Bucket
	dirty                                     bool // something was written
}

func bucketsOf(tx *bolt.Tx) (*buckets, error) {
	b := &buckets{
		runs:       tx.Bucket(bucketRuns),
		runIDs:     tx.Bucket(bucketRunIDs),
		requestIDs: tx.Bucket(bucketRequestIDs),
		active:     tx.Bucket(bucketActive),
		byState:    tx.Bucket(bucketByState),
	}
	if b.runs == nil || b.runIDs == nil || b.requestIDs == nil || b.active == nil || b.byState == nil {
		return nil, errors.New("store: schema bucket missing")
	}
	if tx.Writable() {
		// Sequence keys only ever grow, so pages of these buckets fill up
		// from the right; splitting them full keeps the file small.
		b.runs.FillPercent = 0.9
		b.active.FillPercent = 0.9
	}
	return b, nil
}

// view and update check ctx before starting the transaction.
func (s *Store) view(ctx context.Context, fn func(*buckets) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// update commits only if fn wrote something: a transaction that changed
// nothing (a tracker poll where no run moved, an idempotent CreateRun) is
// rolled back, which spares the fsync of a commit.
func (s *Store) update(ctx context.Context, fn func(*buckets) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	// Rolls back on error or panic; after Commit it is a no-op.
	defer func() { _ = tx.Rollback() }()
	b, err := bucketsOf(tx)
	if err != nil {
		return err
	}
	if err := fn(b); err != nil {
		return err
	}
	if !b.dirty {
		return nil
	}
	return tx.Commit()
}

func validateRun(r *run.Run) error {
	switch {
	case r.ID == "":
		return fmt.Errorf("%w: run id is empty", ErrInvalidArgument)
	case r.RequestID == "":
		return fmt.Errorf("%w: request id is empty", ErrInvalidArgument)
	case !validState(r.State):
		return fmt.Errorf("%w: run %s has unknown state %d", ErrInvalidArgument, r.ID, int(r.State))
	}
	return nil
}

func decodeRun(seq uint64, v []byte) (*run.Run, error) {
	if v == nil {
		return nil, fmt.Errorf("store: index points at missing record %d", seq)
	}
	r := new(run.Run)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("store: decode record %d: %w", seq, err)
	}
	return r, nil
}

// seqOf returns the sequence of run id, or ErrNotFound.
func (b *buckets) seqOf(id string) (uint64, error) {
	v := b.runIDs.Get([]byte(id))
	if v == nil {
		return 0, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("store: run_ids entry of %q is %d bytes, want 8", id, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func (b *buckets) get(id string) (uint64, *run.Run, error) {
	seq, err := b.seqOf(id)
	if err != nil {
		return 0, nil, err
	}
	r, err := decodeRun(seq, b.runs.Get(seqKey(seq)))
	return seq, r, err
}

// insert stores a new run and its index entries and returns the encoded
// record. The caller has validated r and checked that neither its id nor its
// request id is taken.
func (b *buckets) insert(r *run.Run) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("store: encode run %s: %w", r.ID, err)
	}
	b.dirty = true
	seq, err := b.runs.NextSequence()
	if err != nil {
		return nil, err
	}
	k := seqKey(seq)
	if err := b.runs.Put(k, data); err != nil {
		return nil, err
	}
	if err := b.runIDs.Put([]byte(r.ID), k); err != nil {
		return nil, err
	}
	if err := b.requestIDs.Put([]byte(r.RequestID), []byte(r.ID)); err != nil {
		return nil, err
	}
	if !r.State.Terminal() {
		if err := b.active.Put(k, nil); err != nil {
			return nil, err
		}
	}
	return data, b.byState.Put(stateKey(r.State, seq), nil)
}

// create is CreateRun inside a transaction. It returns either the existing
// run the request id maps to, or the encoded new record.
func (b *buckets) create(r *run.Run) (existing *run.Run, data []byte, err error) {
	if id := b.requestIDs.Get([]byte(r.RequestID)); id != nil {
		_, existing, err := b.get(string(id))
		if err != nil {
			return nil, nil, fmt.Errorf("store: request id %q: %w", r.RequestID, err)
		}
		return existing, nil, nil
	}
	if b.runIDs.Get([]byte(r.ID)) != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrAlreadyExists, r.ID)
	}
	data, err = b.insert(r)
	return nil, data, err
}

// CreateRun stores r (r.ID and r.RequestID set by the caller) and its index
// entries in one transaction and returns the run as stored. If r.RequestID
// already maps to a run, nothing is written and that run is returned with
// created=false. A new r.ID that is already stored under another request id
// fails with ErrAlreadyExists. r itself is not modified.
func (s *Store) CreateRun(ctx context.Context, r *run.Run) (stored *run.Run, created bool, err error) {
	if err := validateRun(r); err != nil {
		return nil, false, err
	}
	var data []byte
	err = s.update(ctx, func(b *buckets) error {
		stored, data, err = b.create(r)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if stored != nil {
		return stored, false, nil
	}
	// Decode what was stored, so the caller gets the same value a GetRun
	// would (times after their JSON round trip).
	if stored, err = decodeRun(0, data); err != nil {
		return nil, false, err
	}
	return stored, true, nil
}

// GetRun returns the run with this id, or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (*run.Run, error) {
	var r *run.Run
	err := s.view(ctx, func(b *buckets) error {
		var err error
		_, r, err = b.get(id)
		return err
	})
	return r, err
}

// GetRunByRequestID returns the run the request id currently maps to, or
// ErrNotFound (also after ReleaseRequestID).
func (s *Store) GetRunByRequestID(ctx context.Context, requestID string) (*run.Run, error) {
	var r *run.Run
	err := s.view(ctx, func(b *buckets) error {
		id := b.requestIDs.Get([]byte(requestID))
		if id == nil {
			return fmt.Errorf("%w: request id %q", ErrNotFound, requestID)
		}
		var err error
		_, r, err = b.get(string(id))
		return err
	})
	return r, err
}

// apply runs fn on the stored run id and, if fn returns true, writes the
// result and moves its index entries. It returns the run as it now is and
// whether it was written.
func (b *buckets) apply(id string, fn func(*run.Run) bool) (*run.Run, bool, error) {
	seq, r, err := b.get(id)
	if err != nil {
		return nil, false, err
	}
	// r was just decoded, so it is already a private copy; keep another to
	// compare against and to hand back when fn declines.
	before := r.Clone()
	if !fn(r) {
		return before, false, nil
	}
	switch {
	case r.ID != before.ID:
		return nil, false, fmt.Errorf("%w: update of run %s changed its id to %q", ErrInvalidArgument, before.ID, r.ID)
	case r.RequestID != before.RequestID:
		return nil, false, fmt.Errorf("%w: update of run %s changed its request id", ErrInvalidArgument, before.ID)
	case !validState(r.State):
		return nil, false, fmt.Errorf("%w: update of run %s set unknown state %d", ErrInvalidArgument, before.ID, int(r.State))
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, false, fmt.Errorf("store: encode run %s: %w", id, err)
	}
	b.dirty = true
	k := seqKey(seq)
	if err := b.runs.Put(k, data); err != nil {
		return nil, false, err
	}
	if r.State != before.State {
		if err := b.byState.Delete(stateKey(before.State, seq)); err != nil {
			return nil, false, err
		}
		if err := b.byState.Put(stateKey(r.State, seq), nil); err != nil {
			return nil, false, err
		}
		switch {
		case r.State.Terminal() && !before.State.Terminal():
			err = b.active.Delete(k)
		case !r.State.Terminal() && before.State.Terminal():
			err = b.active.Put(k, nil)
		}
		if err != nil {
			return nil, false, err
		}
	}
	// Hand back a value that went through the same JSON round trip as what
	// GetRun returns.
	out, err := decodeRun(seq, data)
	return out, true, err
}

// UpdateRun reads the run, calls fn on a copy, and writes it back in the same
// transaction if fn returns true, keeping the active and by_state indexes in
// step with its state. It returns the run as stored afterwards (unchanged if
// fn returned false), or ErrNotFound. fn must not change ID or RequestID
// (ErrInvalidArgument, nothing written), and must not call the Store: it
// runs inside the write transaction.
func (s *Store) UpdateRun(ctx context.Context, id string, fn func(*run.Run) bool) (*run.Run, error) {
	var out *run.Run
	err := s.update(ctx, func(b *buckets) error {
		var err error
		out, _, err = b.apply(id, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateRuns does what UpdateRun does for every id in one transaction, and
// returns the runs fn changed, in the order of ids. A repeated id is applied
// once. If any id is unknown (ErrNotFound) or any update is invalid, nothing
// is written.
func (s *Store) UpdateRuns(ctx context.Context, ids []string, fn func(*run.Run) bool) ([]*run.Run, error) {
	var changed []*run.Run
	err := s.update(ctx, func(b *buckets) error {
		changed = changed[:0]
		seen := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			r, wrote, err := b.apply(id, fn)
			if err != nil {
				return err
			}
			if wrote {
				changed = append(changed, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// ReleaseRequestID removes the request-id index entry of a run whose
// submission Slurm refused, so a client retry creates a new run; the failed
// run stays in history and GetRun still finds it. It releases the key only
// while it still maps to runID, so a late release cannot free the key of a
// newer run created by a retry. It fails with ErrNotFound if the request id
// maps to no run or to another run, and with ErrAlreadySubmitted if the run
// has a Slurm job id.
func (s *Store) ReleaseRequestID(ctx context.Context, requestID, runID string) error {
	return s.update(ctx, func(b *buckets) error {
		key := []byte(requestID)
		id := b.requestIDs.Get(key)
		if id == nil {
			return fmt.Errorf("%w: request id %q", ErrNotFound, requestID)
		}
		if string(id) != runID {
			return fmt.Errorf("%w: request id %q now belongs to run %s, not %s", ErrNotFound, requestID, id, runID)
		}
		_, r, err := b.get(string(id))
		if err != nil {
			return fmt.Errorf("store: request id %q: %w", requestID, err)
		}
		if r.Submitted() {
			return fmt.Errorf("%w: request id %q maps to run %s (slurm job %s)", ErrAlreadySubmitted, requestID, r.ID, r.SlurmJobID)
		}
		b.dirty = true
		return b.requestIDs.Delete(key)
	})
}

// ActiveRuns returns every run whose state is not terminal, oldest first. It
// reads the active index, not every record.
func (s *Store) ActiveRuns(ctx context.Context) ([]*run.Run, error) {
	var out []*run.Run
	err := s.view(ctx, func(b *buckets) error {
		return b.active.ForEach(func(k, _ []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("store: active key is %d bytes, want 8", len(k))
			}
			seq := binary.BigEndian.Uint64(k)
			r, err := decodeRun(seq, b.runs.Get(k))
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateRuns stores many runs in one transaction, as CreateRun does each
// (ids and request ids set by the caller; a request id already stored is
// skipped), and returns how many it created. For imports and generated
// histories: one commit instead of one per run. If any run is invalid or
// its id is taken under another request id, nothing is written.
func (s *Store) CreateRuns(ctx context.Context, runs []*run.Run) (created int, err error) {
	for _, r := range runs {
		if err := validateRun(r); err != nil {
			return 0, err
		}
	}
	err = s.update(ctx, func(b *buckets) error {
		created = 0
		for _, r := range runs {
			_, data, err := b.create(r)
			if err != nil {
				return err
			}
			if data != nil {
				created++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return created, nil
}

// Sync flushes the file to disk: for a Store opened with NoSync (bulk
// writes), so that what was written is durable before Close.
func (s *Store) Sync() error { return s.db.Sync() }
