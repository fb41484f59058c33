package slurmcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// command is one run of a Slurm tool.
type command struct {
	path  string   // the tool; a bare name is looked up on the controller's PATH
	args  []string // argv[1:]
	env   []string // the complete environment; never inherited
	stdin string
}

// String renders the command for logs and error messages.
func (c command) String() string {
	return strings.TrimSpace(c.path + " " + strings.Join(c.args, " "))
}

// result is what a tool printed and how it exited.
type result struct {
	stdout, stderr []byte
	exitCode       int
}

// runner runs one command. It returns a non-nil error only when the command
// could not be started or did not exit by itself (killed, context done); a
// non-zero exit status is reported in result.exitCode with a nil error.
type runner interface {
	run(ctx context.Context, c command) (result, error)
}

// gatedRunner is a runner that can start a command and hold back its stdin
// until gate allows it. A runner that is not one (the tests' fakes) makes
// SubmitGated call the gate before it runs sbatch at all.
type gatedRunner interface {
	// runGated runs c as run does, calling gate at most once (and once
	// whenever the pipe could be made): c.stdin reaches the command only if
	// gate was called and returned nil; else the command's stdin ends
	// empty. When runGated returns without having called gate, the command
	// could not be started.
	runGated(ctx context.Context, c command, gate func() error) (result, error)
}

// execRunner runs commands with os/exec.
type execRunner struct {
	// pipeSize gives the pipe behind w room for n bytes if it can and
	// returns its capacity (0 when unknown); nil means growPipe. A test
	// hook.
	pipeSize func(w *os.File, n int) (int, error)
}

var _ gatedRunner = execRunner{}

// newCmd prepares c, with stdout and stderr collected.
func newCmd(ctx context.Context, c command) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer) {
	cmd = exec.CommandContext(ctx, c.path, c.args...)
	// A nil Env would inherit the controller's environment.
	cmd.Env = append([]string{}, c.env...)
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Do not wait forever for pipes held open by a stray child.
	cmd.WaitDelay = 2 * time.Second
	return cmd, stdout, stderr
}

// exitResult turns what cmd.Run or cmd.Wait returned into run's answer.
func exitResult(c command, stdout, stderr *bytes.Buffer, err error) (result, error) {
	res := result{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if err == nil {
		return res, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		res.exitCode = ee.ExitCode()
		return res, nil
	}
	res.exitCode = -1
	return res, fmt.Errorf("run %s: %w", c.path, err)
}

func (execRunner) run(ctx context.Context, c command) (result, error) {
	cmd, stdout, stderr := newCmd(ctx, c)
	cmd.Stdin = strings.NewReader(c.stdin)
	return exitResult(c, stdout, stderr, cmd.Run())
}

// runGated starts the command on one end of a pipe of its own, calls gate
// while the command starts up, and writes c.stdin into the pipe in one
// write only if gate returned nil. If the pipe cannot hold all of c.stdin,
// it calls gate first and starts the command only if gate returned nil
// (see below).
func (r execRunner) runGated(ctx context.Context, c command, gate func() error) (result, error) {
	// os.Pipe opens both ends close-on-exec: no other child of the
	// controller inherits the write end, which would keep the command
	// waiting for more input (and, had it been written to, feed it).
	pr, pw, err := os.Pipe()
	if err != nil {
		return result{exitCode: -1}, fmt.Errorf("run %s: stdin pipe: %w", c.path, err)
	}
	defer pw.Close() // on every early return; closing twice is harmless
	size := r.pipeSize
	if size == nil {
		size = growPipe
	}
	// A capacity that cannot be read or set counts as too small.
	capacity, _ := size(pw, len(c.stdin))
	early := capacity < len(c.stdin)
	if early {
		// The script cannot go in one write: a crash between two writes
		// would leave the command a truncated script, which sbatch
		// accepts. So take the safe order, as Submit does: gate, then
		// the command, fed as the rest of this function feeds it (a
		// crash mid-write then leaves a job whose run is recorded).
		// Pipes this small come from the user's pipe page limit
		// (fs.pipe-user-pages-soft), scripts are this large only above
		// fs.pipe-max-size (1 MiB), both rare.
		if err := gate(); err != nil {
			pr.Close()
			return result{}, nil
		}
	}
	cmd, stdout, stderr := newCmd(ctx, c)
	// An *os.File is handed to the child as its stdin as it is: no
	// goroutine copies into it, so what the child reads is exactly what
	// the write below puts there.
	cmd.Stdin = pr
	// The gate runs while the command starts: Start alone (fork, exec,
	// and waiting to hear that exec succeeded) takes about as long as a
	// commit, and the command reads its stdin soon after.
	var gateErr error
	gated := make(chan struct{})
	if early {
		close(gated)
	} else {
		go func() {
			defer close(gated)
			gateErr = gate()
		}()
	}
	err = cmd.Start()
	pr.Close() // the child has its own copy; ours would hide EOF from it
	<-gated
	if err != nil {
		return result{exitCode: -1}, fmt.Errorf("run %s: %w", c.path, err)
	}
	var werr error
	if gateErr == nil {
		// Crash safety rests on this write. Nothing reaches the command
		// before gate has returned nil (for sbatch: before the run's
		// record is durable). The pipe is empty and holds len(c.stdin)
		// bytes, so the kernel takes the whole script in one write(2)
		// without ever waiting for room, and a pipe write checks for
		// signals only while it waits: even SIGKILL cannot cut it in
		// half. Dying before it, the controller leaves the command an
		// empty stdin at exit (the kernel closes the write end), and
		// sbatch then refuses ("Batch script is empty!") and creates no
		// job; dying after it leaves the whole script, a job and its
		// durable run.
		werr = writeOnce(pw, c.stdin)
	}
	if err := pw.Close(); werr == nil {
		werr = err
	}
	res, err := exitResult(c, stdout, stderr, cmd.Wait())
	if err == nil && werr != nil && res.exitCode == 0 {
		// The command says it succeeded but did not get its input as
		// written: report it as a failed run, whose outcome is unknown.
		return res, fmt.Errorf("run %s: write stdin: %w", c.path, werr)
	}
	return res, err
}

// writeOnce writes s to a pipe with one write(2), which a signal cannot
// cut when the pipe has room for all of s (see runGated).
func writeOnce(f *os.File, s string) error {
	n, err := io.WriteString(f, s)
	if err == nil && n != len(s) {
		err = io.ErrShortWrite
	}
	return err
}
