package nccl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Defaults for Runner.
const (
	// DefaultPath is looked up in PATH when Runner.Path is empty.
	DefaultPath = "all_reduce_perf"
	// DefaultTimeout bounds one run when Runner.Timeout is zero.
	DefaultTimeout = 5 * time.Minute
	// MaxOutputBytes caps the raw output Run keeps: the first and last
	// halves are kept and the middle is replaced by one "# ..." line.
	MaxOutputBytes = 1 << 20
)

// DefaultArgs suit one 8-GPU node in a single process: 8 B to 16 GiB,
// doubling (-f 2), 8 GPUs in one thread (-g 8).
var DefaultArgs = []string{"-b", "8", "-e", "16G", "-f", "2", "-g", "8"}

// Runner runs all_reduce_perf on this node.
type Runner struct {
	// Path of the executable; DefaultPath when empty. It is run directly,
	// never through a shell.
	Path string
	// Args; DefaultArgs when nil.
	Args []string
	// Timeout for the whole run; DefaultTimeout when zero.
	Timeout time.Duration
	// Env is added to this process's environment (later entries win),
	// e.g. "NCCL_DEBUG=WARN".
	Env []string
}

// Run starts the executable, waits for it and parses its output (stdout
// and stderr together). On timeout or when ctx ends, the whole process
// group is killed. The raw output (capped at MaxOutputBytes) and whatever
// Parse understood are returned even when err is not nil: a non-zero exit
// status gives an error that includes the tail of the output; a parse
// error is joined to it.
func (r Runner) Run(ctx context.Context) (Result, []byte, error) {
	path := r.Path
	if path == "" {
		path = DefaultPath
	}
	args := r.Args
	if args == nil {
		args = DefaultArgs
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := &cappedBuffer{limit: MaxOutputBytes}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), r.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	// Children that keep the output pipe open must not hold Wait forever.
	cmd.WaitDelay = 5 * time.Second

	runErr := cmd.Run()
	if runErr == nil {
		// The leader exited; stragglers in its group would keep GPUs busy.
		_ = killProcessGroup(cmd)
	}
	raw := out.Bytes()
	res, parseErr := Parse(bytes.NewReader(raw))

	var err error
	switch {
	case runErr != nil && parent.Err() != nil:
		err = fmt.Errorf("nccl: %s stopped: %w", path, parent.Err())
	case runErr != nil && ctx.Err() != nil:
		err = fmt.Errorf("nccl: %s timed out after %s: %w: %s", path, timeout, context.DeadlineExceeded, tail(raw))
	case runErr != nil:
		var exitErr *exec.ExitError
		if errors.As(runErr, &exitErr) {
			err = fmt.Errorf("nccl: %s exited with status %d: %s", path, exitErr.ExitCode(), tail(raw))
		} else {
			err = fmt.Errorf("nccl: run %s: %w", path, runErr)
		}
	}
	if parseErr != nil {
		err = errors.Join(err, parseErr)
	}
	return res, raw, err
}

// tailBytes is how much of the output a failed run's error quotes.
const tailBytes = 2048

// tail returns the last lines of the output, at most tailBytes, on one
// line with " | " between the original lines.
func tail(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "(no output)"
	}
	if len(s) > tailBytes {
		s = s[len(s)-tailBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = "..." + s
	}
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " | ")
}

// cappedBuffer keeps the first limit/2 bytes and the last limit/2 bytes
// written to it.
type cappedBuffer struct {
	limit   int
	head    []byte
	tail    []byte // ring of the most recent bytes once head is full
	start   int    // index of the oldest byte in tail when it is full
	dropped int64
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	half := b.limit / 2
	if room := half - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		if len(b.tail) < half {
			k := min(half-len(b.tail), len(p))
			b.tail = append(b.tail, p[:k]...)
			p = p[k:]
			continue
		}
		k := min(half-b.start, len(p))
		b.dropped += int64(k)
		copy(b.tail[b.start:], p[:k])
		b.start = (b.start + k) % half
		p = p[k:]
	}
	return n, nil
}

// Bytes returns what was kept. When bytes were dropped, the head is cut
// after its last full line, the tail starts at its first full line, and a
// comment line saying how much was left out goes between them.
func (b *cappedBuffer) Bytes() []byte {
	tail := append(append([]byte(nil), b.tail[b.start:]...), b.tail[:b.start]...)
	if b.dropped == 0 {
		return append(append([]byte(nil), b.head...), tail...)
	}
	head := b.head
	if i := bytes.LastIndexByte(head, '\n'); i >= 0 {
		head = head[:i+1]
	}
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	omitted := int64(len(b.head)+len(b.tail)) + b.dropped - int64(len(head)+len(tail))
	out := append([]byte(nil), head...)
	out = fmt.Appendf(out, "# ... %d bytes of output omitted ...\n", omitted)
	return append(out, tail...)
}
