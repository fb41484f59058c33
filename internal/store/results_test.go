package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
)

// parseResults builds a set from results-file lines.
func parseResults(t testing.TB, lines ...string) *results.Set {
	t.Helper()
	s, err := results.Parse(strings.NewReader(strings.Join(lines, "\n")), results.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// generatedResults is n samples "<prefix>-0000000".. with loss, correct
// (0/1) and, on all but every tenth sample, score.
func generatedResults(t testing.TB, prefix string, n int) *results.Set {
	t.Helper()
	b := results.NewBuilder(results.Limits{})
	vals := map[string]float64{}
	id := []byte(prefix + "-0000000")
	digits := id[len(prefix)+1:]
	for i := range n {
		clear(vals)
		vals["loss"] = float64(i) / 7
		vals["correct"] = float64(i % 2)
		if i%10 != 0 {
			vals["score"] = math.Sqrt(float64(i))
		}
		for k, v := len(digits)-1, i; k >= 0; k, v = k-1, v/10 {
			digits[k] = byte('0' + v%10)
		}
		if err := b.Add(string(id), vals); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddRunMetric("accuracy", 0.5); err != nil {
		t.Fatal(err)
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encodedLen(t testing.TB, s *results.Set) int {
	t.Helper()
	var buf bytes.Buffer
	n, err := results.Encode(&buf, s)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// checkResults runs checkResultsTx (Check does not know the results bucket
// yet) and fails the test on any problem.
func checkResults(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, err := range checkResultsTx(tx) {
			t.Error(err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pieces returns the sizes of run id's result pieces, in key order.
func pieces(t testing.TB, s *Store, id string) []int {
	t.Helper()
	var sizes []int
	err := s.view(context.Background(), func(b *buckets) error {
		seq, err := b.seqOf(id)
		if err != nil {
			return err
		}
		rb, err := resultsBucket(b)
		if err != nil {
			return err
		}
		c := rb.Cursor()
		for k, v := c.Seek(seqKey(seq)); k != nil && bytes.HasPrefix(k, seqKey(seq)); k, v = c.Next() {
			sizes = append(sizes, len(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes
}

// setPieceSize lowers resultsPieceSize for one test (not parallel).
func setPieceSize(t *testing.T, n int) {
	old := resultsPieceSize
	resultsPieceSize = n
	t.Cleanup(func() { resultsPieceSize = old })
}

func TestPutGetResults(t *testing.T) {
	tests := []struct {
		name     string
		set      *results.Set
		wantInfo string
	}{
		{
			name: "records and run metrics",
			set: parseResults(t,
				`{"sample_id": "img-0017", "correct": 1, "loss": 0.231}`,
				`{"sample_id": "img-0018", "correct": 0, "loss": 1.92}`,
				`{"sample_id": "img-0019", "correct": 1}`,
				`{"run_metrics": {"accuracy": 0.667}}`),
			wantInfo: "{Samples:3 Metrics:[{Name:correct Present:3} {Name:loss Present:2}] RunMetrics:map[accuracy:0.667]}",
		},
		{
			name:     "run metrics only",
			set:      parseResults(t, `{"run_metrics": {"bleu": 31.5}}`),
			wantInfo: "{Samples:0 Metrics:[] RunMetrics:map[bleu:31.5]}",
		},
		{
			name:     "one sample",
			set:      parseResults(t, `{"sample_id": "only", "score": -0.5}`),
			wantInfo: "{Samples:1 Metrics:[{Name:score Present:1}] RunMetrics:map[]}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t)
			ctx := context.Background()
			r := mustCreate(t, s, testRun(1, run.StateRunning))
			if err := s.PutResults(ctx, r.ID, tt.set); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetResults(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.set) {
				t.Errorf("GetResults differs from what was put")
			}
			info, err := s.ResultsInfo(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if g := fmt.Sprintf("%+v", info.Info); g != tt.wantInfo {
				t.Errorf("ResultsInfo = %s\nwant %s", g, tt.wantInfo)
			}
			if want := int64(encodedLen(t, tt.set)); info.StoredBytes != want {
				t.Errorf("StoredBytes = %d, want %d", info.StoredBytes, want)
			}
			// The run record itself is untouched.
			sameRun(t, "run after PutResults", mustGet(t, s, r.ID), r)
			checkResults(t, s)
		})
	}
}

func TestResultsMillionSamples(t *testing.T) {
	s, path := newTestStore(t)
	ctx := context.Background()
	r := mustCreate(t, s, testRun(1, run.StateCompleted))
	set := generatedResults(t, "sample", 1_000_000)

	start := time.Now()
	if err := s.PutResults(ctx, r.ID, set); err != nil {
		t.Fatal(err)
	}
	put := time.Since(start)
	start = time.Now()
	got, err := s.GetResults(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	get := time.Since(start)
	if !got.Equal(set) {
		t.Fatal("1M samples did not come back exactly")
	}
	for _, i := range []int{0, 1, 499_999, 999_999} {
		id := fmt.Sprintf("sample-%07d", i)
		j, ok := got.Index(id)
		loss, _ := got.Value("loss", j)
		if !ok || j != i || loss != float64(i)/7 {
			t.Errorf("sample %s: index %d (%v), loss %v", id, j, ok, loss)
		}
	}
	info, err := s.ResultsInfo(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	ps := pieces(t, s, r.ID)
	if want := (encodedLen(t, set) + resultsPieceSize - 1) / resultsPieceSize; len(ps) != want {
		t.Errorf("%d pieces, want %d", len(ps), want)
	}
	for i, n := range ps[:len(ps)-1] {
		if n != resultsPieceSize {
			t.Errorf("piece %d is %d bytes", i, n)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1M samples x 3 metrics: %d bytes encoded (%.1f a sample) in %d pieces; file %d bytes; put %v, get %v",
		info.StoredBytes, float64(info.StoredBytes)/1e6, len(ps), fi.Size(), put.Round(time.Millisecond), get.Round(time.Millisecond))
	// No checkResults here: it would decode the 39 MB again, and Equal
	// above already compared every value.
}

func TestResultsPieceBoundaries(t *testing.T) {
	set := generatedResults(t, "s", 50)
	total := encodedLen(t, set)
	third := (total + 2) / 3
	tests := []struct {
		name       string
		pieceSize  int
		wantPieces []int
	}{
		{"exactly one piece", total, []int{total}},
		{"one byte to spare", total + 1, []int{total}},
		{"one byte over", total - 1, []int{total - 1, 1}},
		{"three pieces", third, []int{third, third, total - 2*third}},
		{"tiny pieces", 7, nil}, // ceil(total/7) pieces, checked below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setPieceSize(t, tt.pieceSize)
			s, _ := newTestStore(t)
			ctx := context.Background()
			r := mustCreate(t, s, testRun(1, run.StateCompleted))
			if err := s.PutResults(ctx, r.ID, set); err != nil {
				t.Fatal(err)
			}
			got := pieces(t, s, r.ID)
			if tt.wantPieces != nil && fmt.Sprint(got) != fmt.Sprint(tt.wantPieces) {
				t.Errorf("pieces %v, want %v", got, tt.wantPieces)
			}
			if want := (total + tt.pieceSize - 1) / tt.pieceSize; len(got) != want {
				t.Errorf("%d pieces, want %d", len(got), want)
			}
			back, err := s.GetResults(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(set) {
				t.Error("set differs after the round trip")
			}
			if info, err := s.ResultsInfo(ctx, r.ID); err != nil || info.Samples != 50 || info.StoredBytes != int64(total) {
				t.Errorf("ResultsInfo = %+v, %v", info, err)
			}
			checkResults(t, s)
		})
	}
}

func TestPutResultsReplaces(t *testing.T) {
	setPieceSize(t, 1000)
	s, _ := newTestStore(t)
	ctx := context.Background()
	// Three neighbouring runs: deleting run 2's pieces must not touch the
	// keys of runs 1 and 3 that sort right beside them.
	r1 := mustCreate(t, s, testRun(1, run.StateCompleted))
	r2 := mustCreate(t, s, testRun(2, run.StateCompleted))
	r3 := mustCreate(t, s, testRun(3, run.StateCompleted))
	big, small := generatedResults(t, "big", 500), parseResults(t, `{"sample_id": "x", "loss": 1}`)
	for _, r := range []*run.Run{r1, r2, r3} {
		if err := s.PutResults(ctx, r.ID, big); err != nil {
			t.Fatal(err)
		}
	}
	before := len(pieces(t, s, r2.ID))
	if before < 10 {
		t.Fatalf("big set is only %d pieces", before)
	}
	if err := s.PutResults(ctx, r2.ID, small); err != nil {
		t.Fatal(err)
	}
	if got := pieces(t, s, r2.ID); len(got) != 1 {
		t.Errorf("after replacing, run 2 has pieces %v, want 1", got)
	}
	if got, err := s.GetResults(ctx, r2.ID); err != nil || !got.Equal(small) {
		t.Errorf("run 2 after replacing: %v", err)
	}
	for _, r := range []*run.Run{r1, r3} {
		if got, err := s.GetResults(ctx, r.ID); err != nil || !got.Equal(big) {
			t.Errorf("run %s's results changed when run 2's were replaced (err %v)", r.ID, err)
		}
		if n := len(pieces(t, s, r.ID)); n != before {
			t.Errorf("run %s has %d pieces, want %d", r.ID, n, before)
		}
	}
	// And back to the big one.
	if err := s.PutResults(ctx, r2.ID, big); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetResults(ctx, r2.ID); err != nil || !got.Equal(big) {
		t.Errorf("run 2 after replacing again: %v", err)
	}
	checkResults(t, s)
}

func TestPutResultsFailureKeepsPrevious(t *testing.T) {
	setPieceSize(t, 100)
	s, _ := newTestStore(t)
	ctx := context.Background()
	r := mustCreate(t, s, testRun(1, run.StateCompleted))
	first := generatedResults(t, "first", 40)
	if err := s.PutResults(ctx, r.ID, first); err != nil {
		t.Fatal(err)
	}
	// Fail the third piece of the replacement: by then the old pieces are
	// deleted and two new ones written, all in the failing transaction.
	diskFull := errors.New("no space left on device")
	written := 0
	orig := putResultsPiece
	putResultsPiece = func(b *bolt.Bucket, k, v []byte) error {
		if written == 2 {
			return diskFull
		}
		written++
		return b.Put(k, v)
	}
	t.Cleanup(func() { putResultsPiece = orig })
	err := s.PutResults(ctx, r.ID, generatedResults(t, "second", 40))
	if !errors.Is(err, diskFull) {
		t.Fatalf("PutResults err = %v, want %v", err, diskFull)
	}
	putResultsPiece = orig
	got, err := s.GetResults(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(first) {
		t.Error("a failed PutResults changed the stored results")
	}
	checkResults(t, s)
}

func TestResultsReadersSeeOldOrNew(t *testing.T) {
	setPieceSize(t, 4096)
	s, _ := newTestStore(t)
	ctx := context.Background()
	r := mustCreate(t, s, testRun(1, run.StateRunning))
	a, b := generatedResults(t, "a", 3000), generatedResults(t, "b", 2000)
	if err := s.PutResults(ctx, r.ID, a); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	reads := 0
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.GetResults(ctx, r.ID)
				if err != nil {
					t.Error(err)
					return
				}
				if !got.Equal(a) && !got.Equal(b) {
					t.Error("a reader saw a mix of two result sets")
					return
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		}()
	}
	for i := range 20 {
		next := a
		if i%2 == 0 {
			next = b
		}
		if err := s.PutResults(ctx, r.ID, next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if reads == 0 {
		t.Error("the readers never read")
	}
}

func TestResultsErrors(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	r := mustCreate(t, s, testRun(1, run.StatePending))
	set := parseResults(t, `{"sample_id": "a", "x": 1}`)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		call    func() error
		want    error
		notWant error
	}{
		{"put for an unknown run", func() error { return s.PutResults(ctx, "r-nope", set) }, ErrNotFound, ErrNoResults},
		{"get for an unknown run", func() error { _, err := s.GetResults(ctx, "r-nope"); return err }, ErrNotFound, ErrNoResults},
		{"info for an unknown run", func() error { _, err := s.ResultsInfo(ctx, "r-nope"); return err }, ErrNotFound, ErrNoResults},
		{"get for a run without results", func() error { _, err := s.GetResults(ctx, r.ID); return err }, ErrNoResults, nil},
		{"a run without results is also not found", func() error { _, err := s.GetResults(ctx, r.ID); return err }, ErrNotFound, nil},
		{"info for a run without results", func() error { _, err := s.ResultsInfo(ctx, r.ID); return err }, ErrNoResults, nil},
		{"nil set", func() error { return s.PutResults(ctx, r.ID, nil) }, ErrInvalidArgument, nil},
		{"cancelled context", func() error { return s.PutResults(cancelled, r.ID, set) }, context.Canceled, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) || tt.notWant != nil && errors.Is(err, tt.notWant) {
				t.Errorf("err = %v, want %v (and not %v)", err, tt.want, tt.notWant)
			}
		})
	}
	if _, err := s.GetResults(ctx, r.ID); !errors.Is(err, ErrNoResults) {
		t.Errorf("failed puts stored something: %v", err)
	}
}

func TestOpenUpgradesV1ToResults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	// A file as version 1 left it: the v1 buckets, a run, version 1.
	old := testRun(1, run.StateCompleted)
	writeOldStore(t, path, 1, old)

	s := openTestStore(t, path)
	ctx := context.Background()
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != uint64(len(migrations())) {
			t.Errorf("schema version after Open = %d, want %d", v, len(migrations()))
		}
		if tx.Bucket(bucketResults) == nil {
			t.Error("results bucket missing after the upgrade")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRun(t, "run kept across the upgrade", mustGet(t, s, old.ID), old)
	if _, err := s.GetResults(ctx, old.ID); !errors.Is(err, ErrNoResults) {
		t.Errorf("GetResults after upgrade: %v, want ErrNoResults", err)
	}
	set := parseResults(t, `{"sample_id": "a", "x": 1}`)
	if err := s.PutResults(ctx, old.ID, set); err != nil {
		t.Fatal(err)
	}
	if back, err := s.GetResults(ctx, old.ID); err != nil || !back.Equal(set) {
		t.Errorf("GetResults after upgrade and put: %v", err)
	}
	checkResults(t, s)
}

func TestCheckResultsFindsDamage(t *testing.T) {
	setPieceSize(t, 64)
	tests := []struct {
		name   string
		damage func(rb *bolt.Bucket, seq uint64) error
		want   string
	}{
		{"orphan pieces", func(rb *bolt.Bucket, _ uint64) error { return rb.Put(resultsKey(99, 0), []byte{1}) }, "results of seq 99, which is no run"},
		{"gap in the pieces", func(rb *bolt.Bucket, seq uint64) error { return rb.Delete(resultsKey(seq, 1)) }, "piece 2 where 1 was due"},
		{"altered byte", func(rb *bolt.Bucket, seq uint64) error {
			v := bytes.Clone(rb.Get(resultsKey(seq, 1)))
			v[10] ^= 0xff
			return rb.Put(resultsKey(seq, 1), v)
		}, "corrupt results encoding"},
		{"short key", func(rb *bolt.Bucket, _ uint64) error { return rb.Put([]byte("short"), []byte{1}) }, "is not 12 bytes"},
		{"empty piece", func(rb *bolt.Bucket, seq uint64) error { return rb.Put(resultsKey(seq, 1000), nil) }, "is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runs.db")
			s, err := Open(path, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := mustCreate(t, s, testRun(1, run.StateCompleted))
			if err := s.PutResults(context.Background(), r.ID, generatedResults(t, "s", 20)); err != nil {
				t.Fatal(err)
			}
			err = s.db.Update(func(tx *bolt.Tx) error {
				return tt.damage(tx.Bucket(bucketResults), 1)
			})
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			_ = s.db.View(func(tx *bolt.Tx) error {
				for _, err := range checkResultsTx(tx) {
					found = append(found, err.Error())
				}
				return nil
			})
			if !strings.Contains(strings.Join(found, "\n"), tt.want) {
				t.Errorf("checkResultsTx found %q, want a problem containing %q", found, tt.want)
			}
		})
	}
}

func TestErrNoResultsText(t *testing.T) {
	s, _ := newTestStore(t)
	r := mustCreate(t, s, testRun(1, run.StatePending))
	_, err := s.GetResults(context.Background(), r.ID)
	if want := "run " + r.ID + ": no results stored"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrNoResults) || !errors.Is(err, ErrNotFound) || errors.Is(ErrNotFound, ErrNoResults) {
		t.Error("ErrNoResults must match itself and ErrNotFound, and ErrNotFound must not match ErrNoResults")
	}
}
