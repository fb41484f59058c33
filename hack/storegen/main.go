// Command storegen writes a controller store of production size through the
// store's API (internal/storegen), for benchmarks of the controller's start:
//
//	go run ./hack/storegen -db /var/tmp/big.db -runs 100000 -nodes 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/sopilot/sopilot/internal/storegen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "storegen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("storegen", flag.ContinueOnError)
	db := fs.String("db", "", "path of the store to create (must not exist)")
	runs := fs.Int("runs", 100_000, "runs in the history")
	nodes := fs.Int("nodes", 10_000, "node agents the controller knows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		return fmt.Errorf("-db: a path is required")
	}
	st, err := storegen.Write(ctx, *db, storegen.Options{Runs: *runs, Nodes: *nodes})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d runs (%d active), %d nodes; %d bytes (%d with the runs alone: %.0f bytes a run); took %s\n",
		*db, st.Runs, st.Active, st.Nodes, st.FileBytes, st.RunsFileBytes, st.BytesPerRun(), st.Took.Round(1e6))
	return nil
}
