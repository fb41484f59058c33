// Command controller is sopilot's control plane: it submits and tracks runs
// on Slurm, keeps their history in bbolt and serves the gRPC API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	// Agent ingest allocates a protobuf message per sample; the default
	// GOGC=100 spends about a fifth of the controller's CPU on collection
	// at a few thousand agents. Trade memory for it unless told otherwise
	// (GOGC, and GOMEMLIMIT from the container's limit, still win).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(exitCode(err))
	}
}
