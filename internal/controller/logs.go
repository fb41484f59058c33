package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/sopilot/sopilot/internal/run"
)

// logPollInterval is how often a followed output file is checked for new
// bytes when nothing else wakes the reader.
const logPollInterval = 500 * time.Millisecond

// logChunk is the most one send carries.
const logChunk = 64 << 10

// ErrNoOutput: the run has no output file (yet), and the caller did not ask
// to wait for one.
var ErrNoOutput = errors.New("run has no output file yet")

// Logs sends the run's output file (the job's stdout and stderr, like the
// seed's `tail -f training-<id>.out`). With tailBytes > 0 it starts that
// many bytes before the end. With follow it keeps sending what the job
// appends until the run has ended and the file is read to its end;
// without, it stops at the end of the file.
func (s *Service) Logs(ctx context.Context, runID string, follow bool, tailBytes int64, send func([]byte) error) error {
	if tailBytes < 0 {
		return &run.ValidationError{Violations: []run.FieldViolation{{Field: "tail_bytes", Description: "must not be negative (0 means from the start)"}}}
	}
	updates, cancel := s.hub.subscribe(runID)
	defer cancel()
	r, err := s.Get(ctx, runID)
	if err != nil {
		return err
	}
	// Wait for the job to exist and its file to appear (a pending job has
	// none yet), unless the caller only wants what is there.
	var f *os.File
	for {
		if r.Submitted() {
			f, err = os.Open(r.OutputPath)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("open output of run %s: %w", runID, err)
			}
		}
		if !follow || r.State.Terminal() {
			if r.Submitted() {
				return fmt.Errorf("run %s (%s): output file %s does not exist (on the controller's filesystem): %w", runID, r.State, r.OutputPath, ErrNoOutput)
			}
			return fmt.Errorf("run %s (%s) was never accepted by Slurm: %w", runID, r.State, ErrNoOutput)
		}
		if r, err = s.waitForChange(ctx, runID, r, updates); err != nil {
			return err
		}
	}
	defer f.Close()
	if tailBytes > 0 {
		if end, err := f.Seek(0, io.SeekEnd); err == nil && end > tailBytes {
			if _, err := f.Seek(end-tailBytes, io.SeekStart); err != nil {
				return fmt.Errorf("seek output of run %s: %w", runID, err)
			}
		} else if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("seek output of run %s: %w", runID, err)
		}
	}
	buf := make([]byte, logChunk)
	var quietSince time.Time // at EOF with the run ended, since when
	for {
		n, err := f.Read(buf)
		if n > 0 {
			quietSince = time.Time{}
			if serr := send(append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read output of run %s: %w", runID, err)
		}
		// At the end of what is written so far.
		if !follow {
			return nil
		}
		if r.State.Terminal() {
			// Output of tasks on other nodes can land in the file a moment
			// after Slurm reports the job ended: stop only once the file
			// has stopped growing for logSettle.
			if quietSince.IsZero() {
				quietSince = time.Now()
			}
			if time.Since(quietSince) >= logSettle {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(logSettle / 10):
			}
			continue
		}
		if r, err = s.waitForChange(ctx, runID, r, updates); err != nil {
			return err
		}
	}
}

// logSettle is how long a followed file must stop growing after its run
// ended before the stream ends.
const logSettle = time.Second

// waitForChange waits for a run update or the poll interval, and returns
// the run as it is then.
func (s *Service) waitForChange(ctx context.Context, runID string, r *run.Run, updates <-chan *run.Run) (*run.Run, error) {
	t := time.NewTimer(logPollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case next := <-updates:
		return next, nil
	case <-t.C:
	}
	if r.State.Terminal() {
		return r, nil
	}
	return s.Get(ctx, runID)
}
