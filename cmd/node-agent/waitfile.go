package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sopilot/sopilot/internal/agent/waitfile"
	"github.com/sopilot/sopilot/internal/config"
)

const waitFileSummary = `
node-agent wait-file - wait until a file exists, then exit 0.

Usage: node-agent wait-file [flags] PATH

Exits 0 as soon as PATH is a regular file, 1 when --timeout passes first.
The Helm chart runs it as the agent's init container to wait for the NVIDIA
container toolkit (the GPU Operator's validator writes
/run/nvidia/validations/toolkit-ready), so the chart needs no image but the
agent's.

Example:
  node-agent wait-file --timeout 30m /run/nvidia/validations/toolkit-ready
`

// runWaitFile is the wait-file subcommand (args follow "wait-file").
func runWaitFile(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("node-agent wait-file", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var timeout, interval time.Duration
	fs.DurationVar(&timeout, "timeout", 0, "give up after this long (exit 1); 0: wait until stopped")
	fs.DurationVar(&interval, "poll-interval", waitfile.DefaultInterval, "how often to look")
	fs.Usage = config.Usage(fs, stderr, waitFileSummary)
	// PATH may come before or after the flags.
	err := fs.Parse(args)
	if err == nil {
		if fs.NArg() == 0 {
			return usageError{errors.New("wait-file: give the PATH to wait for (see --help)")}
		}
		path := fs.Arg(0)
		if err = config.Parse(fs, fs.Args()[1:], getenv); err == nil {
			return waitFile(ctx, path, timeout, interval, stderr)
		}
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return usageError{fmt.Errorf("wait-file: %w", err)}
}

func waitFile(ctx context.Context, path string, timeout, interval time.Duration, stderr io.Writer) error {
	var problems []error
	if timeout < 0 {
		problems = append(problems, fmt.Errorf("--timeout must not be negative, got %s", timeout))
	}
	if interval < 10*time.Millisecond {
		problems = append(problems, fmt.Errorf("--poll-interval must be at least 10ms, got %s", interval))
	}
	if path == "" {
		problems = append(problems, errors.New("wait-file: PATH is empty"))
	}
	if len(problems) > 0 {
		return usageError{errors.Join(problems...)}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "wait-file")
	return waitfile.Wait(ctx, path, waitfile.Options{Timeout: timeout, Interval: interval, Logger: logger})
}
