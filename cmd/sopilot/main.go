// Command sopilot is the human command line of sopilot (see internal/cli):
// `sopilot run ...`, `sopilot compare`, `sopilot nodes` and `sopilot node
// ...` talk to the controller's gRPC API;
// `sopilot cluster ...` provisions a Soperator cluster through Terraform.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sopilot/sopilot/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli.ExitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)))
}

// run executes the command line; errors are already printed to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.Execute(ctx, args, cli.Env{Getenv: getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
}
