package store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sopilot/sopilot/internal/run"
)

// Page sizes of ListRuns.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// ListQuery selects and pages runs for ListRuns. Every non-zero field narrows
// the result (they combine with AND).
type ListQuery struct {
	// PageSize is the most runs one page holds: 0 means DefaultPageSize,
	// more than MaxPageSize is clamped to it, negative is an error.
	PageSize int
	// PageToken is the next-page token of the previous call, or "" for the
	// first page. It is only valid with the same filter fields as the call
	// that returned it (PageSize may change).
	PageToken string
	// States keeps runs in any of these states.
	States []run.State
	// Labels keeps runs that have every one of these labels with exactly
	// this value (a label with an empty value must be present and empty).
	Labels map[string]string
	// NamePrefix keeps runs whose Spec.JobName starts with it.
	NamePrefix string
	// CreatedAfter and CreatedBefore keep runs with CreatedAfter <
	// CreateTime < CreatedBefore; a zero time does not bound.
	CreatedAfter, CreatedBefore time.Time
}

// ListRuns returns runs matching q, newest first (by creation order), and an
// opaque token for the next page ("" after the last page).
//
// Paging follows the creation sequence, so runs created while a client pages
// through do not shift later pages: each page continues strictly below the
// last run the previous page examined, and runs created since are not shown
// until the client starts over.
//
// With only a state filter (or none) the runs come straight from an index.
// Label, name and time filters examine records newest first; one call
// examines at most 10,000 records and, if it reaches that bound, returns the
// matches found so far (possibly none) with a token that continues where it
// stopped. A page may therefore be short, or even empty, and still have a
// next token (AIP-158 allows this); the token is "" only at the end.
//
// A malformed token, or one issued for a different filter, fails with
// ErrInvalidPageToken.
func (s *Store) ListRuns(ctx context.Context, q ListQuery) ([]*run.Run, string, error) {
	pageSize := q.PageSize
	switch {
	case pageSize < 0:
		return nil, "", fmt.Errorf("%w: page size %d is negative", ErrInvalidArgument, pageSize)
	case pageSize == 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	f, err := newFilter(q)
	if err != nil {
		return nil, "", err
	}
	hash := f.hash()
	var below uint64 // 0: start at the newest run
	if q.PageToken != "" {
		if below, err = decodePageToken(q.PageToken, hash); err != nil {
			return nil, "", err
		}
	}

	var (
		out  []*run.Run
		next string
	)
	err = s.view(ctx, func(b *buckets) error {
		out = nil
		var it seqIterator
		if len(f.states) > 0 {
			it = newStateIterator(b.byState, f.states, below)
		} else {
			it = newRunsIterator(b.runs, below)
		}
		var (
			scanned int
			last    uint64 // the last sequence examined
		)
		for {
			seq, val, ok := it.next()
			if !ok {
				next = ""
				return nil
			}
			if len(out) == pageSize || scanned == s.scanLimit {
				// There is at least one more candidate; continue below
				// the last one examined.
				next = encodePageToken(last, hash)
				return nil
			}
			if scanned%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			scanned++
			last = seq
			if val == nil {
				val = b.runs.Get(seqKey(seq))
			}
			if f.scans() {
				// Reject cheaply from the raw JSON; if it cannot tell,
				// decode and let match decide.
				if ok, err := f.matchRaw(val); err == nil && !ok {
					continue
				}
			}
			r, err := decodeRun(seq, val)
			if err != nil {
				return err
			}
			if f.match(r) {
				out = append(out, r)
			}
		}
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// filter is a validated ListQuery without its paging fields.
type filter struct {
	states        []run.State // sorted, no duplicates
	labels        map[string]string
	namePrefix    string
	after, before time.Time
}

func newFilter(q ListQuery) (*filter, error) {
	f := &filter{
		labels:     q.Labels,
		namePrefix: q.NamePrefix,
		after:      q.CreatedAfter,
		before:     q.CreatedBefore,
	}
	for _, st := range q.States {
		if !validState(st) {
			return nil, fmt.Errorf("%w: unknown state %d in filter", ErrInvalidArgument, int(st))
		}
		f.states = append(f.states, st)
	}
	slices.Sort(f.states)
	f.states = slices.Compact(f.states)
	return f, nil
}

// scans reports whether the filter needs to look at records, not only at
// the state index.
func (f *filter) scans() bool {
	return len(f.labels) > 0 || f.namePrefix != "" || !f.after.IsZero() || !f.before.IsZero()
}

// match checks everything but the states, which the state index already
// selected.
func (f *filter) match(r *run.Run) bool {
	if !f.matchName(r.Spec.JobName) || !f.matchTime(r.CreateTime) {
		return false
	}
	for k, want := range f.labels {
		if got, ok := r.Spec.Labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

func (f *filter) matchName(name string) bool {
	return strings.HasPrefix(name, f.namePrefix)
}

func (f *filter) matchTime(t time.Time) bool {
	return (f.after.IsZero() || t.After(f.after)) && (f.before.IsZero() || t.Before(f.before))
}

// matchRaw is match on a record's JSON, reading only the fields the filter
// needs (see jsonscan.go). An error means it could not tell; the caller
// then decodes the record and uses match.
func (f *filter) matchRaw(record []byte) (bool, error) {
	if !f.after.IsZero() || !f.before.IsZero() {
		raw, found, err := jsonField(record, "create_time")
		if err != nil {
			return false, err
		}
		var t time.Time
		if found {
			if err := t.UnmarshalJSON(raw); err != nil {
				return false, errJSONScan
			}
		}
		if !f.matchTime(t) {
			return false, nil
		}
	}
	if f.namePrefix == "" && len(f.labels) == 0 {
		return true, nil
	}
	spec, found, err := jsonField(record, "spec")
	if err != nil {
		return false, err
	}
	if !found || string(spec) == "null" {
		spec = []byte("{}")
	}
	if f.namePrefix != "" {
		raw, found, err := jsonField(spec, "job_name")
		if err != nil {
			return false, err
		}
		var name string
		if found {
			if name, err = jsonString(raw); err != nil {
				return false, err
			}
		}
		if !f.matchName(name) {
			return false, nil
		}
	}
	if len(f.labels) == 0 {
		return true, nil
	}
	labels, found, err := jsonField(spec, "labels")
	if err != nil {
		return false, err
	}
	if !found || string(labels) == "null" {
		return false, nil
	}
	for k, want := range f.labels {
		raw, found, err := jsonField(labels, k)
		if err != nil {
			return false, err
		}
		if !found {
			return false, nil
		}
		if string(raw) == "null" { // decodes as ""
			raw = []byte(`""`)
		}
		if raw[0] != '"' {
			return false, errJSONScan
		}
		if eq, err := stringEquals(raw, want); err != nil || !eq {
			return false, err
		}
	}
	return true, nil
}

// hash identifies the filter in page tokens: FNV-1a over a canonical,
// length-prefixed encoding of every filter field.
func (f *filter) hash() uint64 {
	h := fnv.New64a()
	var buf [8]byte
	putUint := func(v uint64) {
		binary.BigEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	putString := func(s string) {
		putUint(uint64(len(s)))
		h.Write([]byte(s))
	}
	putTime := func(t time.Time) {
		if t.IsZero() {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		putUint(uint64(t.Unix()))
		putUint(uint64(t.Nanosecond()))
	}
	h.Write([]byte("sopilot.store.filter.v1"))
	putUint(uint64(len(f.states)))
	for _, st := range f.states {
		putUint(uint64(st))
	}
	putUint(uint64(len(f.labels)))
	for _, k := range slices.Sorted(maps.Keys(f.labels)) {
		putString(k)
		putString(f.labels[k])
	}
	putString(f.namePrefix)
	putTime(f.after)
	putTime(f.before)
	return h.Sum64()
}

// Page tokens are base64url (unpadded, strict) of 17 bytes:
//
//	version (1 byte, = 1) | seq (8 bytes big-endian) | filter hash (8 bytes big-endian)
//
// The next page holds runs with a sequence strictly below seq, which is
// never 0 (sequences start at 1).
const (
	pageTokenVersion = 1
	pageTokenLen     = 17
)

func pageTokenEncoding() *base64.Encoding { return base64.RawURLEncoding.Strict() }

func encodePageToken(seq, filterHash uint64) string {
	var b [pageTokenLen]byte
	b[0] = pageTokenVersion
	binary.BigEndian.PutUint64(b[1:9], seq)
	binary.BigEndian.PutUint64(b[9:], filterHash)
	return pageTokenEncoding().EncodeToString(b[:])
}

// decodePageToken returns the sequence to continue below, or an error
// wrapping ErrInvalidPageToken that says why.
func decodePageToken(tok string, filterHash uint64) (uint64, error) {
	if len(tok) != pageTokenEncoding().EncodedLen(pageTokenLen) {
		return 0, fmt.Errorf("%w: wrong length", ErrInvalidPageToken)
	}
	b, err := pageTokenEncoding().DecodeString(tok)
	if err != nil {
		return 0, fmt.Errorf("%w: not base64url", ErrInvalidPageToken)
	}
	if len(b) != pageTokenLen {
		return 0, fmt.Errorf("%w: wrong length", ErrInvalidPageToken)
	}
	if b[0] != pageTokenVersion {
		return 0, fmt.Errorf("%w: unknown version %d", ErrInvalidPageToken, b[0])
	}
	if binary.BigEndian.Uint64(b[9:]) != filterHash {
		return 0, fmt.Errorf("%w: issued for a different filter", ErrInvalidPageToken)
	}
	seq := binary.BigEndian.Uint64(b[1:9])
	if seq == 0 {
		return 0, fmt.Errorf("%w: zero position", ErrInvalidPageToken)
	}
	return seq, nil
}

// seqIterator yields candidate runs newest first, starting strictly below a
// sequence. val is the record when the iterator has it at hand, else nil.
type seqIterator interface {
	next() (seq uint64, val []byte, ok bool)
}

// seekBefore positions c on the last key < key and returns it (nil if none).
func seekBefore(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// runsIterator walks the runs bucket backwards.
type runsIterator struct {
	c       *bolt.Cursor
	below   uint64
	started bool
}

func newRunsIterator(runs *bolt.Bucket, below uint64) *runsIterator {
	return &runsIterator{c: runs.Cursor(), below: below}
}

func (it *runsIterator) next() (uint64, []byte, bool) {
	var k, v []byte
	switch {
	case it.started:
		k, v = it.c.Prev()
	case it.below == 0:
		k, v = it.c.Last()
	default:
		k, v = seekBefore(it.c, seqKey(it.below))
	}
	it.started = true
	if len(k) != 8 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(k), v, true
}

// stateIterator merges the by_state ranges of several states, newest first.
type stateIterator struct {
	heads []stateHead
}

type stateHead struct {
	c   *bolt.Cursor
	st  byte
	seq uint64
	ok  bool
}

func newStateIterator(byState *bolt.Bucket, states []run.State, below uint64) *stateIterator {
	it := &stateIterator{heads: make([]stateHead, len(states))}
	for i, st := range states {
		h := &it.heads[i]
		h.c, h.st = byState.Cursor(), byte(st)
		var k []byte
		if below == 0 {
			k, _ = seekBefore(h.c, []byte{h.st + 1})
		} else {
			k, _ = seekBefore(h.c, stateKey(st, below))
		}
		h.load(k)
	}
	return it
}

func (h *stateHead) load(k []byte) {
	h.ok = len(k) == 9 && k[0] == h.st
	if h.ok {
		h.seq = binary.BigEndian.Uint64(k[1:])
	}
}

func (it *stateIterator) next() (uint64, []byte, bool) {
	best := -1
	for i := range it.heads {
		if it.heads[i].ok && (best < 0 || it.heads[i].seq > it.heads[best].seq) {
			best = i
		}
	}
	if best < 0 {
		return 0, nil, false
	}
	h := &it.heads[best]
	seq := h.seq
	k, _ := h.c.Prev()
	h.load(k)
	return seq, nil, true
}

// Compile-time checks.
var (
	_ seqIterator = (*runsIterator)(nil)
	_ seqIterator = (*stateIterator)(nil)
)
