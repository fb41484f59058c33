package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RetryEvent is one retry the controller started.
type RetryEvent struct {
	Time    time.Time `json:"time"`
	RunID   string    `json:"run_id"`
	Attempt int       `json:"attempt"` // the attempt that began
	Cause   string    `json:"cause"`
	Nodes   []string  `json:"nodes,omitempty"`
}

func retryKey(t time.Time, runID string) []byte {
	k := make([]byte, 8, 8+len(runID))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	return append(k, runID...)
}

// PutRetry logs a retry. An empty run id is refused with
// ErrInvalidArgument.
func (s *Store) PutRetry(ctx context.Context, e RetryEvent) error {
	if e.RunID == "" || e.Time.IsZero() {
		return fmt.Errorf("%w: retry event needs a run id and a time", ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode retry event: %w", err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRetries)
		if b == nil {
			return fmt.Errorf("store: bucket %q missing", bucketRetries)
		}
		return b.Put(retryKey(e.Time, e.RunID), v)
	})
}

// RetriesSince returns the retries logged at or after since, oldest first.
func (s *Store) RetriesSince(ctx context.Context, since time.Time) ([]RetryEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []RetryEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRetries)
		if b == nil {
			return fmt.Errorf("store: bucket %q missing", bucketRetries)
		}
		c := b.Cursor()
		start := make([]byte, 8)
		binary.BigEndian.PutUint64(start, uint64(max(since.UnixNano(), 0)))
		for k, v := c.Seek(start); k != nil; k, v = c.Next() {
			var e RetryEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode retry event %x: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
