// Package waitfile waits until a regular file exists. It is the node
// agent's wait-file subcommand, which the Helm chart runs as the agent's
// init container until the NVIDIA GPU Operator's validator writes
// /run/nvidia/validations/toolkit-ready: before that the nvidia runtime
// cannot inject the driver into the agent. Doing it in the agent's own
// binary keeps the chart to the agent's image (a shell image would be a
// third image to mirror, scan and pin).
package waitfile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// ErrTimeout: the file did not appear before Options.Timeout.
var ErrTimeout = errors.New("file did not appear in time")

// DefaultInterval is how often Wait looks when Options.Interval is zero.
const DefaultInterval = 2 * time.Second

// Options tune Wait.
type Options struct {
	// Interval between looks; zero: DefaultInterval.
	Interval time.Duration
	// Timeout is how long to wait in all; zero: until ctx ends.
	Timeout time.Duration
	// Logger gets a line when the wait starts, once a minute while it
	// lasts (with the reason the file does not count yet), and when it
	// ends.
	Logger *slog.Logger
}

// Wait returns nil once path names a regular file (following symbolic
// links), ErrTimeout when Options.Timeout passes first, or ctx's error
// when ctx ends first. A path that cannot be read (missing, a directory,
// permission denied) is waited for, like a missing one: the directory of
// a host path may appear, or be mounted, later.
func Wait(ctx context.Context, path string, o Options) error {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("path", path)
	start := time.Now()
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.Timeout, ErrTimeout)
		defer cancel()
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var lastLog time.Time
	for {
		why := check(path)
		if why == nil {
			if !lastLog.IsZero() {
				log.Info("file appeared", "waited", time.Since(start).Round(time.Second).String())
			}
			return nil
		}
		if lastLog.IsZero() || time.Since(lastLog) >= time.Minute {
			log.Info("waiting for file", "waited", time.Since(start).Round(time.Second).String(), "reason", why.Error())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			err := context.Cause(ctx)
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("%s: %w after %s (last: %v)", path, ErrTimeout, o.Timeout, why)
			}
			return fmt.Errorf("wait for %s: %w", path, err)
		case <-tick.C:
		}
	}
}

// errNotRegular: the path exists but is not a regular file.
var errNotRegular = errors.New("not a regular file")

// check says why path is not (yet) a regular file, or nil when it is.
func check(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (%s)", path, errNotRegular, fi.Mode().Type())
	}
	return nil
}
