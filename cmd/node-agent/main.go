// Command node-agent runs on every GPU worker: it samples NVML, InfiniBand
// and training progress every second and streams them to the controller
// (AgentService.Connect). See internal/agent.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var u usageError
		if !errors.As(err, &u) || u.error != nil {
			fmt.Fprintln(os.Stderr, "node-agent:", err)
		}
		os.Exit(exitCode(err))
	}
}
