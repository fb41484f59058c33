package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/sopilot/sopilot/internal/run"
)

// The on-disk schema, version 5. Every bucket is top-level; there are no
// nested buckets. "seq" is the 8-byte big-endian uint64 that the runs
// bucket's NextSequence handed out when the run was created: it starts at 1,
// is never reused, and orders runs by creation, so a cursor walking a bucket
// keyed by seq backwards walks runs newest first.
//
//	meta         "schema_version"   -> uint64, 8 bytes big-endian
//	runs         seq                -> JSON of run.Run (encoding/json.Marshal)
//	run_ids      run id             -> seq
//	request_ids  request id         -> run id
//	active       seq                -> empty (exactly the runs whose state is not terminal)
//	by_state     state (1 byte) seq -> empty (exactly one entry per run, for its current state)
//	results      seq piece          -> piece of the run's encoded results (v2)
//	nodes        node name          -> JSON of NodeRecord (v3)
//	incidents    incident id        -> JSON of Incident (v3)
//	incidents_by_node  node 0x00 id -> empty (v3)
//	incidents_by_run   run id 0x00 id -> empty (v3)
//	slurm_instances    slurm node name -> instance id, raw bytes (v4)
//	retries      time run id        -> JSON of RetryEvent (v5)
//
// nodes holds what must survive a controller restart about each node agent:
// its boot id and the highest batch sequence made durable, so a resent batch
// is recognised as a duplicate, and the last inventory it reported.
// slurm_instances holds the last instance id (the machine its slurmd ran
// on; on Soperator the Kubernetes node) seen for each Slurm node, so that a
// node replaced while the controller was down is still recognised as
// replaced when it starts (internal/fleet compares the first listing with
// it). Written only when an id changes; a node listed without one keeps
// its last.
// retries logs every retry the controller started (a run's attempt ended
// by a fault and the next one decided), keyed by the 8-byte big-endian
// unix nanoseconds of the decision and the run id, so the retry breaker
// (internal/controller) counts the retries of its window after a restart
// too. A run's attempts themselves live in its record ("attempts", v5);
// records written before v5 have none, which reads as one attempt.
// Incident ids are ULIDs, so each index walks a node's or run's incidents in
// the order they opened.
//
// results holds each run's per-sample results (results.Encode's bytes, a
// version byte, a columnar body and a CRC-32C) cut into pieces of at most
// resultsPieceSize (1 MiB) so that no bbolt value grows past a few pages'
// worth of overflow; piece is a 4-byte big-endian number counting from 0,
// so a run's pieces are adjacent and in order under the 8-byte prefix seq.
// PutResults deletes every piece of the run and writes the new ones in one
// transaction, so a reader sees the old results or the new, never a mix.
// 1M samples with 3 metrics and 14-byte ids take 39 MB, 38 pieces.
//
// Invariants, kept by writing the record and every index entry in the same
// transaction (checkIndexes in the tests verifies them after every mutation):
//
//   - runs and run_ids are in one-to-one correspondence: run_ids[r.ID] is the
//     seq of the record whose ID is r.ID.
//   - request_ids[k] = id only if the run id exists and its RequestID is k.
//     A run whose request id was released (ReleaseRequestID) has no entry,
//     or its request id now maps to the newer run a retry created.
//   - active holds seq for exactly the runs with !State.Terminal().
//   - by_state holds byte(State)||seq for exactly every run; States fit a
//     byte (they are validated against run.ParseState before any write).
//   - results keys are seq||piece for a seq of a stored run, each run's
//     pieces numbered 0..n-1 without gaps, each 1 to resultsPieceSize
//     bytes, and their concatenation decodes (checkResultsTx verifies this).
//
// Records are never deleted; the history is append-only apart from updates
// of a record in place.
//
// Values in runs are exactly encoding/json.Marshal of run.Run, so their
// field names are run.Run's JSON tags. Filtered ListRuns calls read
// "create_time", "spec"."job_name" and "spec"."labels" straight from that
// JSON (jsonscan.go) before decoding a record; renaming those tags needs a
// migration that rewrites every record (TestMatchRawAgreesWithMatch fails
// first).
//
// ListRuns page tokens are not stored; their format is described at
// encodePageToken in list.go.
//
// Schema changes go through migrations: a new version appends a function to
// migrations; Open applies every missing one, oldest first, and stores the
// new version, all in one transaction, so a crash leaves the old version
// intact. A file whose version is newer than len(migrations()) is refused
// with ErrUnsupportedVersion rather than being read with the wrong layout.
var (
	bucketMeta           = []byte("meta")
	bucketRuns           = []byte("runs")
	bucketRunIDs         = []byte("run_ids")
	bucketRequestIDs     = []byte("request_ids")
	bucketActive         = []byte("active")
	bucketByState        = []byte("by_state")
	bucketResults        = []byte("results")
	bucketNodes          = []byte("nodes")
	bucketIncidents      = []byte("incidents")
	bucketIncByNode      = []byte("incidents_by_node")
	bucketIncByRun       = []byte("incidents_by_run")
	bucketSlurmInstances = []byte("slurm_instances")
	bucketRetries        = []byte("retries")

	keySchemaVersion = []byte("schema_version")
)

// migration moves a database from version i to i+1, where i is its index in
// migrations(). It runs inside the Open transaction.
type migration struct {
	name string
	fn   func(tx *bolt.Tx) error
}

// migrations returns the schema history. Append only; never edit a released
// entry. The schema version of a database is the number of migrations
// applied to it, and the current version is len(migrations()).
func migrations() []migration {
	return []migration{
		{name: "v1: runs, run_ids, request_ids, active, by_state", fn: migrateV1},
		{name: "v2: results", fn: migrateV2},
		{name: "v3: nodes, incidents, incidents_by_node, incidents_by_run", fn: migrateV3},
		{name: "v4: slurm_instances", fn: migrateV4},
		{name: "v5: retries (run records gain attempts)", fn: migrateV5},
	}
}

func migrateV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRuns, bucketRunIDs, bucketRequestIDs, bucketActive, bucketByState} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	return nil
}

func migrateV2(tx *bolt.Tx) error {
	if _, err := tx.CreateBucket(bucketResults); err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketResults, err)
	}
	return nil
}

func migrateV3(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketNodes, bucketIncidents, bucketIncByNode, bucketIncByRun} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	return nil
}

func migrateV4(tx *bolt.Tx) error {
	if _, err := tx.CreateBucket(bucketSlurmInstances); err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketSlurmInstances, err)
	}
	return nil
}

func migrateV5(tx *bolt.Tx) error {
	if _, err := tx.CreateBucket(bucketRetries); err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketRetries, err)
	}
	return nil
}

// migrate brings the database to len(ms) by applying the missing migrations
// in tx. An empty file is at version 0; a file that has buckets but no meta
// bucket is not a sopilot store and is refused.
func migrate(tx *bolt.Tx, ms []migration) error {
	var version uint64
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		foreign := false
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			foreign = true
			return errors.New("stop")
		})
		if foreign {
			return fmt.Errorf("%w: file has buckets but no %q bucket; not a sopilot store", ErrUnsupportedVersion, bucketMeta)
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return fmt.Errorf("create bucket %q: %w", bucketMeta, err)
		}
	} else {
		v := meta.Get(keySchemaVersion)
		if len(v) != 8 {
			return fmt.Errorf("%w: schema version key is %d bytes, want 8", ErrUnsupportedVersion, len(v))
		}
		version = binary.BigEndian.Uint64(v)
	}
	if version > uint64(len(ms)) {
		return fmt.Errorf("%w: database schema version is %d, this build knows up to %d; upgrade sopilot", ErrUnsupportedVersion, version, len(ms))
	}
	for i := version; i < uint64(len(ms)); i++ {
		if err := ms[i].fn(tx); err != nil {
			return fmt.Errorf("migration to version %d (%s): %w", i+1, ms[i].name, err)
		}
	}
	if version == uint64(len(ms)) {
		return nil
	}
	return meta.Put(keySchemaVersion, seqKey(uint64(len(ms))))
}

// seqKey encodes a sequence as an 8-byte big-endian key.
func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// stateKey is the by_state key of the run with this state and sequence.
func stateKey(s run.State, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = byte(s)
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// validState reports whether s is one of the states run knows (and so fits
// the one byte by_state gives it).
func validState(s run.State) bool {
	p, ok := run.ParseState(s.String())
	return ok && p == s
}
