// Command controller is sopilot's control plane: it submits and tracks runs
// on Slurm, keeps their history in bbolt and serves the gRPC API.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func main() {
	// Agent ingest allocates a protobuf message per sample; the default
	// GOGC=100 spends about a fifth of the controller's CPU on collection
	// at a few thousand agents. Trade memory for it unless told otherwise
	// (GOGC, and GOMEMLIMIT from the container's limit, still win).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	// What bounds that trade: a soft memory limit at 90 % of the
	// container's (cgroup) limit, unless GOMEMLIMIT is set. Without it the
	// heap grows to 4× what is live and the kernel kills the controller
	// before the collector runs; with it the collector works harder only
	// near the limit. No cgroup limit, no soft limit. The limit is in the
	// "controller ready" line; only failures are logged here.
	_, _ = memlimit.Set(memlimit.WithRatio(0.9),
		memlimit.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(exitCode(err))
	}
}
