package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"github.com/sopilot/sopilot/internal/results"
)

// ErrNoResults means the run exists but has no results stored. It also
// matches ErrNotFound, so callers that only care whether something was
// found can test for that.
var ErrNoResults error = noResultsError{}

type noResultsError struct{}

func (noResultsError) Error() string        { return "no results stored" }
func (noResultsError) Is(target error) bool { return target == ErrNotFound }

// resultsPieceSize bounds one value of the results bucket (see schema.go).
// A variable only so tests can cut small sets into many pieces.
var resultsPieceSize = 1 << 20

// putResultsPiece writes one piece; tests replace it to fail a PutResults
// half way through its transaction.
var putResultsPiece = func(b *bolt.Bucket, k, v []byte) error { return b.Put(k, v) }

// resultsKey is the results key of piece i of the run with sequence seq.
func resultsKey(seq uint64, piece uint32) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, seq)
	binary.BigEndian.PutUint32(k[8:], piece)
	return k
}

func resultsBucket(b *buckets) (*bolt.Bucket, error) {
	rb := b.runs.Tx().Bucket(bucketResults)
	if rb == nil {
		return nil, errors.New("store: schema bucket missing")
	}
	return rb, nil
}

// pieceWriter collects what results.Encode writes as pieces of at most
// resultsPieceSize bytes.
type pieceWriter struct {
	pieces [][]byte
	size   int64
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		last := len(w.pieces) - 1
		if last < 0 || len(w.pieces[last]) == resultsPieceSize {
			w.pieces = append(w.pieces, make([]byte, 0, min(resultsPieceSize, max(len(p), 64<<10))))
			last++
		}
		k := min(len(p), resultsPieceSize-len(w.pieces[last]))
		w.pieces[last] = append(w.pieces[last], p[:k]...)
		p = p[k:]
	}
	w.size += int64(n)
	return n, nil
}

// PutResults stores set as the results of run runID, replacing whatever
// results it had, in one transaction: a reader sees the old results or the
// new ones, never a mix, and a failure leaves the old ones. The run must
// exist (ErrNotFound otherwise); its state does not matter. The set is
// encoded before the transaction starts, so the write lock is held only
// while the pieces are written.
func (s *Store) PutResults(ctx context.Context, runID string, set *results.Set) error {
	if set == nil {
		return fmt.Errorf("%w: nil results for run %s", ErrInvalidArgument, runID)
	}
	var w pieceWriter
	if _, err := results.Encode(&w, set); err != nil {
		return fmt.Errorf("store: encode results of run %s: %w", runID, err)
	}
	return s.update(ctx, func(b *buckets) error {
		seq, err := b.seqOf(runID)
		if err != nil {
			return err
		}
		rb, err := resultsBucket(b)
		if err != nil {
			return err
		}
		b.dirty = true
		if err := deleteResults(rb, seq); err != nil {
			return err
		}
		// Pieces arrive in ascending key order, so full pages are best.
		rb.FillPercent = 1
		for i, piece := range w.pieces {
			if err := putResultsPiece(rb, resultsKey(seq, uint32(i)), piece); err != nil {
				return fmt.Errorf("store: results of run %s, piece %d: %w", runID, i, err)
			}
		}
		return nil
	})
}

// deleteResults removes every piece of run seq. Keys are collected first:
// deleting under a moving bbolt cursor can skip the next key.
func deleteResults(rb *bolt.Bucket, seq uint64) error {
	prefix := seqKey(seq)
	var keys [][]byte
	c := rb.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := rb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// GetResults returns the results of run runID: ErrNotFound if there is no
// such run, ErrNoResults if it has none. The set is decoded (and so
// copied out of the file) inside the read transaction.
func (s *Store) GetResults(ctx context.Context, runID string) (*results.Set, error) {
	var set *results.Set
	err := s.viewResults(ctx, runID, func(r *pieceReader) error {
		var err error
		set, err = results.Decode(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// ResultsInfo is what ResultsInfo reports about a run's stored results.
type ResultsInfo struct {
	results.Info
	// StoredBytes is the size of the encoding in the store.
	StoredBytes int64
}

// ResultsInfo returns the sample count, metric names with how many samples
// have each, and run metrics of run runID's results, reading only the
// encoding's header, not the values. Errors as GetResults.
func (s *Store) ResultsInfo(ctx context.Context, runID string) (*ResultsInfo, error) {
	var out *ResultsInfo
	err := s.viewResults(ctx, runID, func(r *pieceReader) error {
		info, err := results.DecodeInfo(r)
		if err != nil {
			return err
		}
		out = &ResultsInfo{Info: *info}
		c := r.c.Bucket().Cursor()
		prefix := seqKey(r.seq)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out.StoredBytes += int64(len(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) viewResults(ctx context.Context, runID string, fn func(*pieceReader) error) error {
	return s.view(ctx, func(b *buckets) error {
		seq, err := b.seqOf(runID)
		if err != nil {
			return err
		}
		rb, err := resultsBucket(b)
		if err != nil {
			return err
		}
		r := &pieceReader{c: rb.Cursor(), seq: seq}
		if k, _ := r.c.Seek(seqKey(seq)); k == nil || !bytes.HasPrefix(k, seqKey(seq)) {
			return fmt.Errorf("run %s: %w", runID, ErrNoResults)
		}
		if err := fn(r); err != nil {
			return fmt.Errorf("store: results of run %s: %w", runID, err)
		}
		return nil
	})
}

// pieceReader reads a run's pieces in order straight from the file's
// memory map; it must be used inside the transaction of its cursor.
type pieceReader struct {
	c       *bolt.Cursor
	seq     uint64
	next    uint32 // the piece expected next
	cur     []byte // unread rest of the current piece
	started bool
	done    bool
}

func (r *pieceReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.done {
			return 0, io.EOF
		}
		var k, v []byte
		if !r.started {
			k, v = r.c.Seek(resultsKey(r.seq, 0))
			r.started = true
		} else {
			k, v = r.c.Next()
		}
		if k == nil || !bytes.HasPrefix(k, seqKey(r.seq)) {
			r.done = true
			return 0, io.EOF
		}
		if len(k) != 12 || binary.BigEndian.Uint32(k[8:]) != r.next {
			return 0, fmt.Errorf("%w: results key %x, want piece %d", results.ErrCorrupt, k, r.next)
		}
		r.next++
		r.cur = v
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// checkResultsTx checks the results invariants of schema.go: keys, piece
// numbering and sizes, that each key belongs to a stored run, and that each
// run's pieces decode.
func checkResultsTx(tx *bolt.Tx) []error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 100 {
			errs = append(errs, fmt.Errorf("store: "+format, args...))
		}
	}
	rb := tx.Bucket(bucketResults)
	runs := tx.Bucket(bucketRuns)
	if rb == nil || runs == nil {
		return append(errs, errors.New("store: results or runs bucket missing"))
	}
	var seqs []uint64
	var prevSeq uint64
	var nextPiece uint32
	_ = rb.ForEach(func(k, v []byte) error {
		if len(k) != 12 {
			bad("results key %x is not 12 bytes", k)
			return nil
		}
		seq, piece := binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:])
		if len(seqs) == 0 || seq != prevSeq {
			seqs, prevSeq, nextPiece = append(seqs, seq), seq, 0
			if runs.Get(k[:8]) == nil {
				bad("results of seq %d, which is no run", seq)
			}
		}
		if piece != nextPiece {
			bad("results of seq %d: piece %d where %d was due", seq, piece, nextPiece)
		}
		nextPiece = piece + 1
		if len(v) == 0 || len(v) > resultsPieceSize {
			bad("results of seq %d piece %d is %d bytes", seq, piece, len(v))
		}
		return nil
	})
	for _, seq := range seqs {
		r := &pieceReader{c: rb.Cursor(), seq: seq}
		if _, err := results.Decode(r); err != nil {
			bad("results of seq %d: %v", seq, err)
		}
	}
	return errs
}
