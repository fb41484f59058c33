package cli

// results.go: the `results` group. `results upload` checks a results file
// (docs/results.md) here, then streams it to ReportRunResults in columns:
// a few dozen messages of packed float64s, no per-sample map.

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/pkg/apipb"
)

const resultsLong = `Store a run's per-sample results on the controller, where 'sopilot compare'
reads them.

  sopilot results upload r-01m8kc4a4s0xq0n7w6zv5c2k9e eval/results.jsonl
  python3 eval.py | sopilot results upload r-01m8kc4a4s0xq0n7w6zv5c2k9e -

FILE is a results file in the JSON-lines format of docs/results.md (the same
file a run's spec.results_path names), or - for standard input. It is
checked completely before anything is sent: a bad line is reported with its
number and field, and nothing is stored. The upload replaces any results the
run had, all at once: an interrupted upload stores nothing.

The controller is at --controller (SOPILOT_CONTROLLER, default ` + DefaultController + `).`

// uploadBatch is the samples one ReportRunResults message carries: with 3
// metrics and 14-byte ids about 2 MB, well under gRPC's 4 MiB message limit
// whatever the ids (256 bytes at most) and metrics (up to 9 metrics at the
// longest ids; fewer samples a batch beyond, see batchSize).
const uploadBatch = 50_000

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
		Short: "Check a results file (JSON lines, or - for stdin) and store it as the run's results",
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
	set, err := readResults(a, path)
	if err != nil {
		return err
	}
	conn, err := o.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	p := newUploadProgress(a, set.Len())
	start := time.Now()
	resp, err := uploadResults(ctx, apipb.NewRunServiceClient(conn), runID, set, p.add)
	if err != nil {
		p.abandon()
		return o.clientError(fmt.Sprintf("upload results of run %s", runID), err)
	}
	p.finish()
	if a.json() {
		return writeProto(a.env.Stdout, a.root.output, resp)
	}
	fmt.Fprintf(a.env.Stdout, "stored %d samples (%d metrics, %d run metrics) as the results of run %s in %s\n",
		resp.GetSampleCount(), len(set.Metrics()), len(set.RunMetrics()), runID, time.Since(start).Round(time.Millisecond))
	return nil
}

// readResults parses the file at path ("-": standard input) with the rules
// the controller applies, so that a bad file is refused before a byte is
// sent.
func readResults(a *app, path string) (*results.Set, error) {
	var r io.Reader = a.env.Stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%w: FILE: %w", ErrUsage, err)
		}
		defer f.Close()
		r, name = f, path
	}
	set, err := results.Parse(r, results.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w; nothing was sent", name, err)
	}
	return set, nil
}

// uploadResults streams set to ReportRunResults in column batches and
// returns the controller's answer. sent, when not nil, is told the samples
// each batch carried once it is handed to gRPC. Cancelling ctx ends the
// stream without closing it, so the controller stores nothing.
func uploadResults(ctx context.Context, c apipb.RunServiceClient, runID string, set *results.Set, sent func(int)) (*apipb.ReportRunResultsResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ReportRunResults(ctx)
	if err != nil {
		return nil, err
	}
	per := batchSize(set)
	for start := 0; start == 0 || start < set.Len(); start += per {
		req := &apipb.ReportRunResultsRequest{}
		if start == 0 {
			req.RunId, req.RunMetrics = runID, set.RunMetrics()
		}
		if set.Len() > 0 {
			req.Columns = resultBatch(set, start, min(start+per, set.Len()))
		}
		if err := stream.Send(req); err != nil {
			// The controller ended the stream; its status says why.
			_, err := stream.CloseAndRecv()
			return nil, err
		}
		if sent != nil {
			sent(len(req.GetColumns().GetSampleIds()))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// resultBatch is samples [start, end) of set as one ResultColumns message.
// Values are the set's own columns, sliced: an absent value is NaN there,
// and the controller ignores the values at the positions a column lists as
// absent.
func resultBatch(set *results.Set, start, end int) *apipb.ResultColumns {
	b := &apipb.ResultColumns{SampleIds: make([]string, 0, end-start)}
	for i := start; i < end; i++ {
		b.SampleIds = append(b.SampleIds, set.SampleID(i))
	}
	for _, name := range set.Metrics() {
		all, _ := set.Column(name)
		col := &apipb.ResultColumn{Name: name, Values: all[start:end]}
		for i, v := range col.Values {
			if math.IsNaN(v) {
				col.Absent = append(col.Absent, uint32(i))
			}
		}
		b.Metrics = append(b.Metrics, col)
	}
	return b
}

// batchSize is how many samples a batch carries: uploadBatch, fewer when
// the set's samples are large (long ids, many metrics), so that a message
// stays near maxUploadMessage.
func batchSize(set *results.Set) int {
	if set.Len() == 0 {
		return uploadBatch
	}
	// Per sample: the id with its tag and length, 8 bytes a metric (and 5
	// more for an absent position, at worst).
	perSample := set.Size()/int64(set.Len()) + 3 + 5*int64(len(set.Metrics()))
	return int(max(1, min(uploadBatch, maxUploadMessage/perSample)))
}

// uploadProgress shows how many samples were sent: a progress bar on a
// terminal, otherwise a plain line at every quarter.
type uploadProgress struct {
	bar         *progressbar.ProgressBar // nil unless on a terminal
	w           io.Writer
	total, done int
	quarter     int // quarters reported so far, plain lines only
}

func newUploadProgress(a *app, total int) *uploadProgress {
	p := &uploadProgress{w: a.env.Stderr, total: total}
	w := a.env.Stderr
	if sw, ok := w.(*syncWriter); ok {
		w = sw.w
	}
	if a.env.IsTerminal(w) {
		p.bar = progressbar.NewOptions64(int64(total),
			progressbar.OptionSetWriter(a.env.Stderr),
			progressbar.OptionSetDescription("uploading"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("samples"),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionEnableColorCodes(a.colorFor(a.env.Stderr)),
		)
		return p
	}
	fmt.Fprintf(p.w, "uploading %d samples\n", total)
	return p
}

func (p *uploadProgress) add(n int) {
	p.done += n
	if p.bar != nil {
		_ = p.bar.Add(n) // only fails writing to the terminal
		return
	}
	if p.total > 0 && p.done*4 >= (p.quarter+1)*p.total {
		p.quarter = p.done * 4 / p.total
		fmt.Fprintf(p.w, "sent %d/%d samples (%d%%)\n", p.done, p.total, p.done*100/p.total)
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
