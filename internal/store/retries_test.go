package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
)

func TestRetries(t *testing.T) {
	st := openTestStore(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := context.Background()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"r-a", "r-b", "r-c"} {
		if err := st.PutRetry(ctx, RetryEvent{Time: t0.Add(time.Duration(i) * time.Minute), RunID: id, Attempt: 2, Cause: "HARDWARE", Nodes: []string{"worker-0"}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.RetriesSince(ctx, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].RunID != "r-b" || got[1].RunID != "r-c" || got[1].Nodes[0] != "worker-0" || !got[0].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("retries since +1m: %+v", got)
	}
	if err := st.PutRetry(ctx, RetryEvent{Time: t0}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("PutRetry without run id: %v", err)
	}
}

// A v4 file (runs without attempts) opens as v5: its runs read as one
// attempt, and retries can be logged.
func TestMigrateV4ToV5(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v4.db")
	old := testRun(1, run.StateRunning)
	writeOldStore(t, path, 4, old)
	s := openTestStore(t, path)
	ctx := context.Background()
	got := mustGet(t, s, old.ID)
	if got.Attempt() != 1 || len(got.AllAttempts()) != 1 || got.AllAttempts()[0].SlurmJobID != old.SlurmJobID {
		t.Fatalf("v4 run after the upgrade: attempt %d, %+v", got.Attempt(), got.AllAttempts())
	}
	if err := s.PutRetry(ctx, RetryEvent{Time: time.Now(), RunID: old.ID, Attempt: 2, Cause: "NODE_FAIL"}); err != nil {
		t.Fatalf("PutRetry after the upgrade: %v", err)
	}
}
