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
	collectOpts := func(opts LogOptions) (string, error) {
		var b strings.Builder
		err := fx.svc.Logs(ctx, r.ID, opts, func(off int64, p []byte) error {
			if want := opts.Offset + int64(b.Len()); opts.TailBytes == 0 && opts.TailLines == 0 && off != want {
				t.Errorf("chunk at offset %d, want %d", off, want)
			}
			b.Write(p)
			return nil
		})
		return b.String(), err
	}
	collect := func(follow bool, tail int64) (string, error) {
		return collectOpts(LogOptions{Follow: follow, TailBytes: tail})
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
	for _, tc := range []struct {
		name string
		opts LogOptions
		want string
	}{
		{"last line", LogOptions{TailLines: 1}, "epoch 2 loss 0.5\n"},
		{"both lines", LogOptions{TailLines: 2}, got},
		{"more lines than the file", LogOptions{TailLines: 50}, got},
		{"resume at an offset", LogOptions{Offset: 17}, "epoch 2 loss 0.5\n"},
		{"offset past the end", LogOptions{Offset: 1000}, ""},
	} {
		if s, err := collectOpts(tc.opts); err != nil || s != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, s, err, tc.want)
		}
	}
	if _, err := collectOpts(LogOptions{TailLines: 1, Offset: 3}); !errors.As(err, &verr) {
		t.Errorf("tail_lines with offset: err = %v, want a ValidationError", err)
	}
	if err := fx.svc.Logs(ctx, "r-nope", LogOptions{}, func(int64, []byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown run: %v", err)
	}
}

func TestLastLinesStart(t *testing.T) {
	tests := []struct {
		name, text string
		n          int64
		want       int64
	}{
		{"empty file", "", 3, 0},
		{"trailing newline", "a\nb\nc\n", 2, 2},
		{"no trailing newline", "a\nb\nc", 1, 4},
		{"all lines", "a\nb\n", 2, 0},
		{"empty lines count", "a\n\n\n", 2, 2},
		{"lines longer than the read buffer", strings.Repeat("x", 40<<10) + "\n" + strings.Repeat("y", 40<<10) + "\n", 1, 40<<10 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/out"
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := lastLinesStart(f, int64(len(tt.text)), tt.n)
			if err != nil || got != tt.want {
				t.Errorf("lastLinesStart(%d) = %d, %v; want %d", tt.n, got, err, tt.want)
			}
		})
	}
}
