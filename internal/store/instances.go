package store

import (
	"context"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// SlurmInstances returns the last instance id seen for each Slurm node (the
// machine its slurmd ran on, see scheduler.NodeStatus.InstanceID), by node
// name. Nodes never seen with one are absent.
func (s *Store) SlurmInstances(ctx context.Context) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSlurmInstances)
		if b == nil {
			return fmt.Errorf("store: bucket %q missing", bucketSlurmInstances)
		}
		return b.ForEach(func(k, v []byte) error {
			// string() copies: the bytes are bbolt's only while tx lasts.
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutSlurmInstances records the last seen instance id of each Slurm node in
// ids (node name → instance id) in one transaction; nodes not in ids keep
// theirs. An empty name or instance id is refused with ErrInvalidArgument:
// a node seen without one keeps its last.
func (s *Store) PutSlurmInstances(ctx context.Context, ids map[string]string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	names := make([]string, 0, len(ids))
	for n, id := range ids {
		if n == "" || id == "" {
			return fmt.Errorf("%w: slurm instance %q of node %q: both must be set", ErrInvalidArgument, id, n)
		}
		names = append(names, n)
	}
	sort.Strings(names) // in key order: bbolt appends rather than shifts
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSlurmInstances)
		if b == nil {
			return fmt.Errorf("store: bucket %q missing", bucketSlurmInstances)
		}
		for _, n := range names {
			if err := b.Put([]byte(n), []byte(ids[n])); err != nil {
				return fmt.Errorf("store: slurm instance of %q: %w", n, err)
			}
		}
		return nil
	})
}
