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

// LogOptions say where Logs starts and whether it follows. At most one of
// TailBytes, TailLines and Offset is set.
type LogOptions struct {
	// Follow keeps sending what the job appends until the run has ended.
	Follow bool
	// TailBytes > 0 starts that many bytes before the end.
	TailBytes int64
	// TailLines > 0 starts at the first of the file's last TailLines lines,
	// like tail -n (a last line without its newline counts as a line).
	TailLines int64
	// Offset > 0 starts at that byte: how a client resumes after losing
	// its stream.
	Offset int64
}

func (o LogOptions) validate() error {
	var v []run.FieldViolation
	for _, f := range []struct {
		name string
		n    int64
	}{{"tail_bytes", o.TailBytes}, {"tail_lines", o.TailLines}, {"offset", o.Offset}} {
		if f.n < 0 {
			v = append(v, run.FieldViolation{Field: f.name, Description: "must not be negative (0 means from the start)"})
		}
	}
	set := 0
	for _, n := range []int64{o.TailBytes, o.TailLines, o.Offset} {
		if n > 0 {
			set++
		}
	}
	if set > 1 {
		v = append(v, run.FieldViolation{Field: "tail_lines", Description: "give at most one of tail_bytes, tail_lines and offset"})
	}
	if len(v) > 0 {
		return &run.ValidationError{Violations: v}
	}
	return nil
}

// Logs sends the run's output file (the job's stdout and stderr, like the
// seed's `tail -f training-<id>.out`), each chunk with its offset in the
// file, starting where opts says. With opts.Follow it keeps sending what
// the job appends until the run has ended and the file is read to its end;
// without, it stops at the end of the file.
func (s *Service) Logs(ctx context.Context, runID string, opts LogOptions, send func(offset int64, data []byte) error) error {
	if err := opts.validate(); err != nil {
		return err
	}
	follow := opts.Follow
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
	start, err := startOffset(f, opts)
	if err != nil {
		return fmt.Errorf("output of run %s: %w", runID, err)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("seek output of run %s: %w", runID, err)
	}
	offset := start
	buf := make([]byte, logChunk)
	var quietSince time.Time // at EOF with the run ended, since when
	for {
		n, err := f.Read(buf)
		if n > 0 {
			quietSince = time.Time{}
			if serr := send(offset, append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
			offset += int64(n)
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

// startOffset is where in f the options start: the end less TailBytes, the
// start of the last TailLines lines, or Offset (clamped to the file).
func startOffset(f *os.File, opts LogOptions) (int64, error) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	switch {
	case opts.TailBytes > 0:
		return max(end-opts.TailBytes, 0), nil
	case opts.TailLines > 0:
		return lastLinesStart(f, end, opts.TailLines)
	case opts.Offset > 0:
		return min(opts.Offset, end), nil
	}
	return 0, nil
}

// lastLinesStart reads f backwards from end and returns where its last n
// lines begin. A newline as the file's last byte ends the last line; it
// does not start another.
func lastLinesStart(f *os.File, end, n int64) (int64, error) {
	buf := make([]byte, 32<<10)
	pos := end
	skipLast := true // the newline that ends the last line
	for pos > 0 {
		size := min(int64(len(buf)), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast {
				skipLast = false
				continue
			}
			n--
			if n == 0 {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}
