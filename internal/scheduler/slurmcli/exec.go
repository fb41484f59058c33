package slurmcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// execRunner runs commands with os/exec.
type execRunner struct{}

func (execRunner) run(ctx context.Context, c command) (result, error) {
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	// A nil Env would inherit the controller's environment.
	cmd.Env = append([]string{}, c.env...)
	cmd.Stdin = strings.NewReader(c.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Do not wait forever for pipes held open by a stray child.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
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
