package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

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
  sopilot run logs -f --tail 20 r-01jdx2k7a8m3q0c4n5p6r7s8t9

With -f it waits for a pending job's file to appear and stops once the run
has ended and everything it wrote was printed. If the controller restarts
meanwhile, -f reconnects and goes on after the last byte it printed.`,
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
			req := &apipb.GetRunLogsRequest{RunId: args[0], Follow: follow, TailLines: tail}
			return followLogs(cmd.Context(), a, o, apipb.NewRunServiceClient(conn), req, defaultFollow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the job writes until the run ends")
	cmd.Flags().Int64Var(&tail, "tail", 0, "start with the last N lines of the file (0: the whole file)")
	return cmd
}

// followLogs streams GetRunLogs to stdout. With req.Follow, a stream that
// breaks (the controller restarts) is opened again with the offset after
// the last byte printed, so nothing is printed twice or skipped.
func followLogs(ctx context.Context, a *app, o *clientOptions, c apipb.RunServiceClient, req *apipb.GetRunLogsRequest, fs followSettings) error {
	id := req.GetRunId()
	errw := a.env.Stderr
	if errw == nil {
		errw = io.Discard
	}
	var (
		next      int64 // the offset after the last byte printed
		received  bool  // whether any chunk came
		lostSince time.Time
		attempts  int
	)
	if req.GetFollow() {
		// A stream that waits for a pending job's file sends nothing for a
		// while; reaching the controller once first tells a controller
		// that went away later from one that was never there.
		cctx, cancel := o.call(ctx)
		_, err := c.GetRun(cctx, &apipb.GetRunRequest{RunId: id})
		cancel()
		if err != nil {
			return o.clientError("logs of run "+id, err)
		}
	}
	for {
		callCtx, cancel := ctx, context.CancelFunc(func() {})
		if !req.GetFollow() {
			callCtx, cancel = o.call(ctx)
		}
		err := func() error {
			defer cancel()
			stream, err := c.GetRunLogs(callCtx, req)
			if err != nil {
				return err
			}
			for {
				resp, err := stream.Recv()
				if err != nil {
					return err
				}
				if !lostSince.IsZero() {
					fmt.Fprintf(errw, "sopilot: reconnected to the controller after %s\n", fmtDuration(time.Since(lostSince)))
					lostSince, attempts = time.Time{}, 0
				}
				data := resp.GetData()
				if received && resp.GetOffset() < next {
					// Bytes printed before the reconnect.
					data = data[min(next-resp.GetOffset(), int64(len(data))):]
				}
				received = true
				next = max(next, resp.GetOffset()+int64(len(resp.GetData())))
				if _, err := a.env.Stdout.Write(data); err != nil {
					return err
				}
			}
		}()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case ctx.Err() != nil:
			if req.GetFollow() {
				return stoppedError{what: "following its output", again: "logs -f", id: id}
			}
			return stoppedError{what: "printing its output", again: "logs", id: id}
		case !req.GetFollow() || !reconnectable(err):
			return o.clientError("logs of run "+id, err)
		}
		if lostSince.IsZero() {
			lostSince = time.Now()
			fmt.Fprintf(errw, "sopilot: lost the controller at %s (%s); reconnecting for up to %s\n", o.controller, status.Convert(err).Message(), fmtDuration(fs.reconnectFor))
		}
		if time.Since(lostSince) >= fs.reconnectFor {
			return unreachable(fmt.Errorf("logs of run %s: the controller at %s was unreachable for %s; the run may still be running: sopilot run logs -f %s",
				id, o.controller, fmtDuration(time.Since(lostSince)), id))
		}
		if received {
			req = &apipb.GetRunLogsRequest{RunId: id, Follow: true, Offset: next}
		}
		attempts++
		if err := sleepCtx(ctx, fs.retryDelay(attempts)); err != nil {
			return stoppedError{what: "following its output", again: "logs -f", id: id}
		}
	}
}
