package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sopilot/sopilot/pkg/apipb"
)

func newRunLogsCommand(a *app, o *clientOptions) *cobra.Command {
	var (
		follow bool
		tail   int64
	)
	cmd := &cobra.Command{
		Use:   "logs RUN_ID",
		Short: "Print a run's output (its job's stdout and stderr); -f follows it to the end",
		Long: `Print a run's output file, which the controller reads from the shared
filesystem where the job writes it: the seed tutorial's
'tail -f training-<id>.out', by run id.

  sopilot run logs r-01jdx2k7a8m3q0c4n5p6r7s8t9
  sopilot run logs -f --tail 4096 r-01jdx2k7a8m3q0c4n5p6r7s8t9

With -f it waits for a pending job's file to appear and stops once the run
has ended and everything it wrote was printed.`,
		Args: exactArgs(1, "RUN_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return fmt.Errorf("%w: --tail must not be negative (0 prints the whole file)", ErrUsage)
			}
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx := cmd.Context()
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = o.call(ctx)
				defer cancel()
			}
			stream, err := apipb.NewRunServiceClient(conn).GetRunLogs(ctx, &apipb.GetRunLogsRequest{RunId: args[0], Follow: follow, TailBytes: tail})
			if err != nil {
				return o.clientError("logs of run "+args[0], err)
			}
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return o.clientError("logs of run "+args[0], err)
				}
				if _, err := a.env.Stdout.Write(resp.GetData()); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the job writes until the run ends")
	cmd.Flags().Int64Var(&tail, "tail", 0, "start this many bytes before the end of the file (0: the whole file)")
	return cmd
}
