package controller

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
)

func TestLogs(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	spec := seedSpec()
	spec.OutputDirectory = t.TempDir()
	r, err := fx.svc.Create(ctx, spec, "logs")
	if err != nil {
		t.Fatal(err)
	}
	collect := func(follow bool, tail int64) (string, error) {
		var b strings.Builder
		err := fx.svc.Logs(ctx, r.ID, follow, tail, func(p []byte) error { b.Write(p); return nil })
		return b.String(), err
	}

	if _, err := collect(false, 0); !errors.Is(err, ErrNoOutput) {
		t.Fatalf("no file yet: err = %v, want ErrNoOutput", err)
	}
	var verr *run.ValidationError
	if _, err := collect(false, -1); !errors.As(err, &verr) || verr.Violations[0].Field != "tail_bytes" {
		t.Errorf("negative tail: err = %v", err)
	}

	// Follow from before the file exists, through the job writing, to its end.
	var (
		wg     sync.WaitGroup
		got    string
		gotErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, gotErr = collect(true, 0)
	}()
	time.Sleep(50 * time.Millisecond)
	f, err := os.Create(r.OutputPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"epoch 1 loss 0.9\n", "epoch 2 loss 0.5\n"} {
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	f.Close()
	fx.advance(time.Second)
	fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State = "COMPLETED" })
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("following the log did not end after the run completed")
	}
	if gotErr != nil || got != "epoch 1 loss 0.9\nepoch 2 loss 0.5\n" {
		t.Errorf("followed log = %q, %v", got, gotErr)
	}

	if all, err := collect(false, 0); err != nil || all != got {
		t.Errorf("whole log = %q, %v", all, err)
	}
	if tail, err := collect(false, 4); err != nil || tail != "0.5\n" {
		t.Errorf("last 4 bytes = %q, %v", tail, err)
	}
	if tail, err := collect(false, 1<<20); err != nil || tail != got {
		t.Errorf("tail longer than the file = %q, %v", tail, err)
	}
	if err := fx.svc.Logs(ctx, "r-nope", false, 0, func([]byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown run: %v", err)
	}
}
