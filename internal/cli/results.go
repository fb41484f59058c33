package cli

// results.go: the `results` group. `results upload` parses a results file
// (docs/results.md) batch by batch and streams each batch to
// ReportRunResults in columns while it parses the next; a bad line found
// after the first batch abandons the stream, so the controller stores
// nothing.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/pkg/apipb"
)

const resultsLong = `Store a run's per-sample results on the controller, where 'sopilot compare'
reads them.

  sopilot results upload r-01m8kc4a4s0xq0n7w6zv5c2k9e eval/results.jsonl
  python3 eval.py | sopilot results upload r-01m8kc4a4s0xq0n7w6zv5c2k9e -

FILE is a results file in the JSON-lines format of docs/results.md (the same
file a run's spec.results_path names), or - for standard input. It is
checked as it is sent, batch by batch, with the controller's rules: a bad
line is reported with its number and field, the upload is abandoned, and
nothing is stored. The upload replaces any results the run had, all at
once: an interrupted upload stores nothing.

The controller is at --controller (SOPILOT_CONTROLLER, default ` + DefaultController + `).`

// uploadBatch is the most samples one ReportRunResults message carries:
// with 3 metrics and 14-byte ids about 2 MB, well under gRPC's 4 MiB
// message limit; fewer when samples are larger (see nextBatchSize).
const uploadBatch = 50_000

// firstBatch is the samples of the first message, fewer so that the
// controller checks the run (and the pipeline fills) sooner.
const firstBatch = 5_000

// maxUploadMessage is the protobuf bytes a batch aims to stay under.
const maxUploadMessage = 3 << 20

func newResultsCommand(a *app) *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "results",
		Short: "Upload a run's per-sample results for comparisons",
		Long:  resultsLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	addClientFlags(cmd, o)
	cmd.AddCommand(newResultsUploadCommand(a, o))
	return cmd
}

func newResultsUploadCommand(a *app, o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "upload RUN_ID FILE",
		Short: "Check and store a results file (JSON lines, or - for stdin) as the run's results",
		Long:  resultsLong,
		Args:  exactArgs(2, "RUN_ID and FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return uploadResultsFile(cmd.Context(), a, o, args[0], args[1])
		},
	}
}

func uploadResultsFile(ctx context.Context, a *app, o *clientOptions, runID, path string) error {
	if runID == "" {
		return fmt.Errorf("%w: RUN_ID is empty", ErrUsage)
	}
	in, name, size, err := openResults(a, path)
	if err != nil {
		return err
	}
	defer in.Close()
	conn, err := o.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	p := newUploadProgress(a, name, size)
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan parsedBatch, 1)
	g.Go(func() error {
		parseBatches(gctx, results.NewReader(in, results.Limits{}), batches)
		return nil
	})
	var up upload
	g.Go(func() error {
		up, err = uploadBatches(gctx, apipb.NewRunServiceClient(conn), runID, batches, p.add)
		if err != nil {
			cancel() // the parser stops too
		}
		return nil
	})
	_ = g.Wait() // both report through err
	if err != nil {
		p.abandon()
		var fe *fileError
		if errors.As(err, &fe) {
			if fe.sent {
				return fmt.Errorf("%s: %w; the upload was abandoned and nothing was stored", name, fe.err)
			}
			return fmt.Errorf("%s: %w; nothing was sent", name, fe.err)
		}
		return o.clientError(fmt.Sprintf("upload results of run %s", runID), err)
	}
	p.finish()
	if a.json() {
		return writeProto(a.env.Stdout, a.root.output, up.resp)
	}
	fmt.Fprintf(a.env.Stdout, "stored %d samples (%d metrics, %d run metrics) as the results of run %s in %s\n",
		up.resp.GetSampleCount(), len(up.set.Metrics()), len(up.set.RunMetrics()), runID, time.Since(start).Round(time.Millisecond))
	return nil
}

// openResults opens the file at path ("-": standard input) and returns its
// name for messages and its size (-1 when unknown).
func openResults(a *app, path string) (io.ReadCloser, string, int64, error) {
	if path == "-" {
		return io.NopCloser(a.env.Stdin), "standard input", -1, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%w: FILE: %w", ErrUsage, err)
	}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, path, size, nil
}

// parsedBatch is one step of the parser: a batch, or the parse error, or
// at the end the whole set (for its counts).
type parsedBatch struct {
	batch results.Batch
	set   *results.Set
	err   error
}

// fileError is a problem of the results file; sent says whether batches
// had already gone to the controller.
type fileError struct {
	err  error
	sent bool
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// parseBatches reads r into out until the input ends (a last item with the
// set), a line is bad (an item with the error) or ctx ends; it closes out.
// Batch sizes follow the samples' size (nextBatchSize).
func parseBatches(ctx context.Context, r *results.Reader, out chan<- parsedBatch) {
	defer close(out)
	emit := func(item parsedBatch) bool {
		select {
		case out <- item:
			return true
		case <-ctx.Done():
			return false
		}
	}
	n := firstBatch
	for {
		b, err := r.Next(n)
		if errors.Is(err, io.EOF) {
			set, err := r.Finish()
			emit(parsedBatch{set: set, err: err})
			return
		}
		if err != nil {
			emit(parsedBatch{err: err})
			return
		}
		if !emit(parsedBatch{batch: b}) {
			return
		}
		n = nextBatchSize(b.Columns)
	}
}

// upload is what a finished upload returns.
type upload struct {
	resp *apipb.ReportRunResultsResponse
	set  *results.Set
}

// uploadBatches streams the batches from in to ReportRunResults, one
// message each (more when a batch is over maxUploadMessage), and returns
// the controller's answer. The stream is opened with the first batch, so a
// file bad in its first batch is refused before anything is sent; a bad
// line later (a *fileError) or a cancelled ctx ends the stream without
// closing it, so the controller stores nothing. sent, when not nil, is
// told the samples of each message handed to gRPC and the bytes of input
// parsed.
func uploadBatches(ctx context.Context, c apipb.RunServiceClient, runID string, in <-chan parsedBatch, sent func(samples int, offset int64)) (upload, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends an unclosed stream
	var stream grpc.ClientStreamingClient[apipb.ReportRunResultsRequest, apipb.ReportRunResultsResponse]
	for item := range in {
		if item.err != nil {
			return upload{}, &fileError{err: item.err, sent: stream != nil}
		}
		if item.set != nil {
			if stream == nil { // only run metrics, or nothing but blank lines
				var err error
				if stream, err = c.ReportRunResults(ctx); err != nil {
					return upload{}, err
				}
				if err := stream.Send(&apipb.ReportRunResultsRequest{RunId: runID, RunMetrics: item.set.RunMetrics()}); err != nil {
					_, err := stream.CloseAndRecv()
					return upload{}, err
				}
			}
			resp, err := stream.CloseAndRecv()
			return upload{resp: resp, set: item.set}, err
		}
		for k, cols := range splitColumns(item.batch.Columns) {
			req := &apipb.ReportRunResultsRequest{Columns: columnsToProto(cols)}
			if stream == nil {
				var err error
				if stream, err = c.ReportRunResults(ctx); err != nil {
					return upload{}, err
				}
				req.RunId = runID
			}
			if k == 0 {
				req.RunMetrics = item.batch.RunMetrics
			}
			if err := stream.Send(req); err != nil {
				// The controller ended the stream; its status says why.
				_, err := stream.CloseAndRecv()
				return upload{}, err
			}
			if sent != nil {
				sent(len(cols.IDs), item.batch.Offset)
			}
			if err := ctx.Err(); err != nil {
				return upload{}, err
			}
		}
	}
	// in closed without an end: the parser stopped for ctx.
	if err := ctx.Err(); err != nil {
		return upload{}, err
	}
	return upload{}, errors.New("results parser stopped early")
}

// columnsToProto is one batch as a ResultColumns message; the slices are
// the batch's own.
func columnsToProto(c results.Columns) *apipb.ResultColumns {
	b := &apipb.ResultColumns{SampleIds: c.IDs, Metrics: make([]*apipb.ResultColumn, len(c.Metrics))}
	for j, m := range c.Metrics {
		b.Metrics[j] = &apipb.ResultColumn{Name: m.Name, Values: m.Values, Absent: m.Absent}
	}
	return b
}

// perSampleBytes is about what one sample of c takes in a message: its id
// with tag and length, 8 bytes a value and, at worst, 5 for an absent
// position.
func perSampleBytes(c results.Columns) int {
	if len(c.IDs) == 0 {
		return 1
	}
	idBytes := 0
	for _, id := range c.IDs {
		idBytes += len(id)
	}
	return idBytes/len(c.IDs) + 3 + 13*len(c.Metrics)
}

// nextBatchSize is how many samples to read for the next message, judged
// from the last batch: uploadBatch, fewer when samples are large (long
// ids, many metrics), so that a message stays near maxUploadMessage.
func nextBatchSize(last results.Columns) int {
	return max(1, min(uploadBatch, maxUploadMessage/perSampleBytes(last)))
}

// splitColumns cuts c into pieces of at most maxUploadMessage bytes each:
// one piece, unless its samples are larger than the batch before them.
func splitColumns(c results.Columns) func(yield func(int, results.Columns) bool) {
	return func(yield func(int, results.Columns) bool) {
		per := nextBatchSize(c)
		if len(c.IDs) <= per {
			yield(0, c)
			return
		}
		for k, lo := 0, 0; lo < len(c.IDs); k, lo = k+1, lo+per {
			hi := min(lo+per, len(c.IDs))
			piece := results.Columns{IDs: c.IDs[lo:hi]}
			for _, m := range c.Metrics {
				col := results.Column{Name: m.Name, Values: m.Values[lo:hi]}
				for _, pos := range m.Absent {
					if int(pos) >= lo && int(pos) < hi {
						col.Absent = append(col.Absent, pos-uint32(lo))
					}
				}
				if len(col.Absent) < hi-lo {
					piece.Metrics = append(piece.Metrics, col)
				}
			}
			if !yield(k, piece) {
				return
			}
		}
	}
}

// uploadProgress shows how much was sent: a progress bar of the file's
// bytes on a terminal, otherwise a plain line at every quarter of the file
// (every million samples from standard input).
type uploadProgress struct {
	bar     *progressbar.ProgressBar // nil unless on a terminal
	w       io.Writer
	size    int64 // -1: unknown
	samples int
	quarter int64  // quarters (or millions) reported so far, plain lines only
	header  string // the plain first line, until it is written
}

func newUploadProgress(a *app, name string, size int64) *uploadProgress {
	p := &uploadProgress{w: a.env.Stderr, size: size}
	w := a.env.Stderr
	if sw, ok := w.(*syncWriter); ok {
		w = sw.w
	}
	if a.env.IsTerminal(w) {
		p.bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(a.env.Stderr),
			progressbar.OptionSetDescription("uploading"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionEnableColorCodes(a.colorFor(a.env.Stderr)),
		)
		return p
	}
	// Said with the first message sent: a file bad in its first batch is
	// refused with no word of an upload.
	p.header = fmt.Sprintf("uploading %s\n", name)
	if size >= 0 {
		p.header = fmt.Sprintf("uploading %s (%d bytes)\n", name, size)
	}
	return p
}

// add counts a message of n samples sent, with the input parsed up to
// offset.
func (p *uploadProgress) add(n int, offset int64) {
	p.samples += n
	if p.bar != nil {
		_ = p.bar.Set64(offset) // only fails writing to the terminal
		return
	}
	if p.header != "" {
		fmt.Fprint(p.w, p.header)
		p.header = ""
	}
	if p.size < 0 {
		if q := int64(p.samples / 1_000_000); q > p.quarter {
			p.quarter = q
			fmt.Fprintf(p.w, "sent %d samples\n", p.samples)
		}
		return
	}
	offset = min(offset, p.size)
	if p.size > 0 && offset*4 >= (p.quarter+1)*p.size {
		p.quarter = offset * 4 / p.size
		fmt.Fprintf(p.w, "sent %d samples (%d%% of the file)\n", p.samples, offset*100/p.size)
	}
}

func (p *uploadProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// abandon leaves the bar where it stopped, on its own line.
func (p *uploadProgress) abandon() {
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}
