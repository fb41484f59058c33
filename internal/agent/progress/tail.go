package progress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// DefaultMaxBytesPerPoll is how much of the file one Poll reads at most
// unless TailOptions says otherwise.
const DefaultMaxBytesPerPoll = 1 << 20

// TailOptions tune a Tailer. The zero value is usable.
type TailOptions struct {
	// MaxBytesPerPoll bounds how many bytes one Poll reads (default
	// DefaultMaxBytesPerPoll); a larger backlog is read over several polls.
	// Values below MaxLineBytes+1 are raised to it, so that a full line
	// always fits in one read.
	MaxBytesPerPoll int
}

// LineError is a rejected line: its 1-based number in the file (counted
// from the last reset) and why.
type LineError struct {
	Line int64
	Err  error
}

// Error implements error.
func (e *LineError) Error() string {
	var fe *FieldError
	if errors.As(e.Err, &fe) {
		return fmt.Sprintf("progress: line %d: %s", e.Line, fe.msg())
	}
	return fmt.Sprintf("progress: line %d: %s", e.Line, strings.TrimPrefix(e.Err.Error(), "progress: "))
}

// Unwrap returns the reason.
func (e *LineError) Unwrap() error { return e.Err }

// Tailer follows a progress file that a training process appends to. It
// is not safe for concurrent use; one goroutine calls Poll periodically.
//
// The file is opened anew on every Poll, so a Tailer holds no descriptor
// between polls. The file is read from the start; a file whose identity
// (device and inode) changes, or that becomes shorter than what has been
// read, is read again from the start and counted in Resets. Lines appended
// to a replaced file after the last Poll that saw it are not read; nor is
// a truncation noticed when the file has grown past the old offset again
// by the next Poll.
type Tailer struct {
	path    string
	max     int
	buf     []byte
	partial []byte      // an incomplete last line, waiting for its newline
	skipTo  bool        // inside an overlong line: drop bytes up to the next newline
	ident   fs.FileInfo // the file read so far, for os.SameFile
	offset  int64
	line    int64 // lines consumed since the last reset
	resets  int
}

// NewTailer returns a Tailer for path. Nothing is opened until Poll.
func NewTailer(path string, opts TailOptions) *Tailer {
	n := opts.MaxBytesPerPoll
	if n <= 0 {
		n = DefaultMaxBytesPerPoll
	}
	if n < MaxLineBytes+1 {
		n = MaxLineBytes + 1
	}
	return &Tailer{path: path, max: n}
}

// Path returns the file the Tailer follows.
func (t *Tailer) Path() string { return t.path }

// Offset returns how many bytes of the current file have been read,
// including a partial last line that is being held.
func (t *Tailer) Offset() int64 { return t.offset }

// Resets returns how many times the file was found truncated or replaced
// and read again from the start.
func (t *Tailer) Resets() int { return t.resets }

// Poll reads what was appended since the last Poll, at most
// MaxBytesPerPoll bytes, and returns the complete lines parsed, in file
// order, with Time set to now where a line has none. Lines that fail to
// parse come back in rejected as *LineError values and do not stop the
// tail; blank lines are skipped. A file that does not exist yet is not an
// error: Poll returns nothing. err is set when the file exists but cannot
// be read (permissions, I/O errors, a directory); updates and rejected are
// then empty, and the next Poll tries again from the same offset.
func (t *Tailer) Poll(now time.Time) (updates []Update, rejected []error, err error) {
	f, err := os.Open(t.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("progress: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("progress: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("progress: %s is not a regular file (%s)", t.path, fi.Mode().Type())
	}
	if t.ident != nil && (!os.SameFile(t.ident, fi) || fi.Size() < t.offset) {
		t.reset()
	}
	t.ident = fi
	if fi.Size() == t.offset {
		return nil, nil, nil
	}
	if t.buf == nil {
		t.buf = make([]byte, t.max)
	}
	n, err := f.ReadAt(t.buf, t.offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("progress: %w", err)
	}
	t.offset += int64(n)
	data := t.buf[:n]

	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			t.hold(data, &rejected)
			break
		}
		chunk := data[:nl]
		data = data[nl+1:]
		if t.skipTo { // the rest of an overlong line, already rejected
			t.skipTo = false
			continue
		}
		line := chunk
		if len(t.partial) > 0 {
			t.partial = append(t.partial, chunk...)
			line = t.partial
		}
		t.line++
		if len(line) > MaxLineBytes {
			rejected = append(rejected, &LineError{Line: t.line, Err: fieldErr("", "line is %d bytes, longer than the limit of %d", len(line), MaxLineBytes)})
		} else if len(bytes.TrimSpace(line)) > 0 {
			u, err := Parse(line)
			if err != nil {
				rejected = append(rejected, &LineError{Line: t.line, Err: err})
			} else {
				if u.Time.IsZero() {
					u.Time = now
				}
				updates = append(updates, u)
			}
		}
		t.partial = t.partial[:0]
	}
	return updates, rejected, nil
}

// hold keeps an incomplete last line for the next Poll, or rejects it once
// it is longer than a line may be.
func (t *Tailer) hold(data []byte, rejected *[]error) {
	if t.skipTo {
		return
	}
	if len(t.partial)+len(data) <= MaxLineBytes {
		t.partial = append(t.partial, data...)
		return
	}
	t.line++
	*rejected = append(*rejected, &LineError{Line: t.line, Err: fieldErr("", "line is longer than the limit of %d bytes", MaxLineBytes)})
	t.partial = t.partial[:0]
	t.skipTo = true
}

// reset starts over at the beginning of a new or truncated file.
func (t *Tailer) reset() {
	t.offset = 0
	t.line = 0
	t.partial = t.partial[:0]
	t.skipTo = false
	t.resets++
}
