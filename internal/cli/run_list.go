package cli

// run_list.go: run list, with selectors like kubectl's (comma lists,
// key-only and !key labels, a time window) and its output formats.

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// Output formats only some commands have (see outputsAnnotation).
const (
	formatWide = "wide"
	formatName = "name"
)

// outputsAnnotation lists, comma-separated, the -o formats a command has
// besides table, json and yaml.
const outputsAnnotation = "sopilot.outputs"

// extraOutput reports whether cmd has the -o format f besides table, json
// and yaml.
func extraOutput(cmd *cobra.Command, f string) bool {
	for _, x := range strings.Split(cmd.Annotations[outputsAnnotation], ",") {
		if x != "" && x == f {
			return true
		}
	}
	return false
}

// noEnvAnnotation marks a flag that its SOPILOT_* variable does not set:
// run list's --label, so that SOPILOT_LABEL (meant for run submit) does
// not silently filter the list.
const noEnvAnnotation = "sopilot.no-env"

func noEnv(f *pflag.Flag) {
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[noEnvAnnotation] = []string{"true"}
}

func envIgnored(f *pflag.Flag) bool { return f.Annotations[noEnvAnnotation] != nil }

type listOptions struct {
	states       []string
	labels       []string
	namePrefix   string
	since        time.Duration
	createdAfter string
	limit        int
}

// labelSelector is what --label selects: key=value pairs the controller
// filters on, and keys that must be present or absent, checked here.
type labelSelector struct {
	equal   map[string]string
	present []string
	absent  []string
}

func (s labelSelector) matches(labels map[string]string) bool {
	for _, k := range s.present {
		if _, ok := labels[k]; !ok {
			return false
		}
	}
	for _, k := range s.absent {
		if _, ok := labels[k]; ok {
			return false
		}
	}
	return true
}

func newRunListCommand(a *app, o *clientOptions) *cobra.Command {
	l := &listOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Long: `List runs, newest first.

  sopilot run list --state failed,pending --label experiment=lr-sweep
  sopilot run list --label '!pipeline' --since 2h
  sopilot run list -o wide
  sopilot run cancel $(sopilot run list --state pending -o name)

NODELIST(REASON) is the run's nodes, or, while it waits, Slurm's reason in
parentheses (like squeue). The table fits the terminal (long names are cut
with …); -o wide shows every column in full, -o name only the run ids.`,
		Args: cobra.NoArgs,
		Annotations: map[string]string{
			outputsAnnotation: formatWide + "," + formatName,
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, sel, err := l.request(time.Now())
			if err != nil {
				return err
			}
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			c := apipb.NewRunServiceClient(conn)
			all := &apipb.ListRunsResponse{}
			for {
				ctx, cancel := o.call(cmd.Context())
				resp, err := c.ListRuns(ctx, req)
				cancel()
				if err != nil {
					return o.clientError("list runs", err)
				}
				for _, r := range resp.GetRuns() {
					if sel.matches(r.GetSpec().GetLabels()) {
						all.Runs = append(all.Runs, r)
					}
				}
				if l.limit > 0 && len(all.Runs) >= l.limit {
					all.Runs = all.Runs[:l.limit]
					break
				}
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			switch a.root.output {
			case formatName:
				for _, r := range all.GetRuns() {
					fmt.Fprintln(a.env.Stdout, r.GetId())
				}
				return nil
			case formatWide:
				printRunList(a.env.Stdout, all.GetRuns(), time.Now(), 0)
				return nil
			}
			if a.json() {
				return writeProto(a.env.Stdout, a.root.output, all)
			}
			printRunList(a.env.Stdout, all.GetRuns(), time.Now(), termWidth(a.env.Stdout, a.env.Getenv))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&l.states, "state", nil, "only runs in these states (comma list or repeated): pending, running, completing, completed, failed, cancelled, timeout, node_fail, preempted, out_of_memory, lost")
	fs.StringArrayVarP(&l.labels, "label", "l", nil, "only runs with this label (repeatable, all must hold): key=value, key (has the label) or !key (does not)")
	fs.StringVar(&l.namePrefix, "name-prefix", "", "only runs whose job name starts with this")
	fs.DurationVar(&l.since, "since", 0, "only runs created in this last span, e.g. 2h or 30m")
	fs.StringVar(&l.createdAfter, "created-after", "", "only runs created at or after this time: RFC 3339 (2026-03-01T12:00:00Z) or a date (2026-03-01, UTC)")
	fs.IntVar(&l.limit, "limit", 50, "at most this many runs (0: all, fetched page by page)")
	// --label selects here; SOPILOT_LABEL is for run submit.
	noEnv(fs.Lookup("label"))
	return cmd
}

func (l *listOptions) request(now time.Time) (*apipb.ListRunsRequest, labelSelector, error) {
	var sel labelSelector
	if l.limit < 0 {
		return nil, sel, fmt.Errorf("%w: --limit must be 0 (all) or positive", ErrUsage)
	}
	req := &apipb.ListRunsRequest{NamePrefix: l.namePrefix, PageSize: 1000}
	if l.limit > 0 && l.limit < 1000 {
		req.PageSize = int32(l.limit)
	}
	for _, s := range l.states {
		st, err := parseRunState(strings.TrimSpace(s))
		if err != nil {
			return nil, sel, err
		}
		req.States = append(req.States, st)
	}
	for _, kv := range l.labels {
		k, v, hasValue := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(kv, "!") && !hasValue && len(kv) > 1:
			sel.absent = append(sel.absent, kv[1:])
		case !hasValue && k != "" && !strings.HasPrefix(k, "!"):
			sel.present = append(sel.present, k)
		case k != "" && !strings.HasPrefix(k, "!"):
			if sel.equal == nil {
				sel.equal = map[string]string{}
			}
			if _, dup := sel.equal[k]; dup {
				return nil, sel, fmt.Errorf("%w: --label: %q given twice", ErrUsage, k)
			}
			sel.equal[k] = v
		default:
			return nil, sel, fmt.Errorf("%w: --label %q: want key=value, key or !key", ErrUsage, kv)
		}
	}
	req.Labels = sel.equal
	if l.since < 0 {
		return nil, sel, fmt.Errorf("%w: --since must be positive, e.g. 2h", ErrUsage)
	}
	if l.since > 0 && l.createdAfter != "" {
		return nil, sel, fmt.Errorf("%w: give --since or --created-after, not both", ErrUsage)
	}
	if l.since > 0 {
		req.CreateTimeAfter = timestamppb.New(now.Add(-l.since))
	}
	if l.createdAfter != "" {
		t, err := time.Parse(time.RFC3339, l.createdAfter)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, l.createdAfter); err != nil {
				return nil, sel, fmt.Errorf("%w: --created-after %q: want RFC 3339 (2026-03-01T12:00:00Z) or a date (2026-03-01)", ErrUsage, l.createdAfter)
			}
		}
		req.CreateTimeAfter = timestamppb.New(t)
	}
	return req, sel, nil
}

// age is how long ago t was, kubectl style: 45s, 5m, 2h, 3d.
func age(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := max(now.Sub(t.AsTime()), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// runTime is how long the run has run, or - before it started.
func runTime(r *apipb.Run, now time.Time) string {
	if r.GetStartTime() == nil {
		return "-"
	}
	end := now
	if r.GetEndTime() != nil {
		end = r.GetEndTime().AsTime()
	}
	return fmtDuration(end.Sub(r.GetStartTime().AsTime()))
}

// nodesOrReason is squeue's NODELIST(REASON): the nodes, or why the run
// waits (or ended without nodes) in parentheses.
func nodesOrReason(r *apipb.Run) string {
	if r.GetNodeList() != "" && r.GetState() != apipb.RunState_RUN_STATE_PENDING {
		return r.GetNodeList()
	}
	if r.GetReason() != "" && r.GetReason() != "None" {
		return "(" + r.GetReason() + ")"
	}
	return orDash(r.GetNodeList())
}

// printRunList is run list's table, fitted to width columns (the names
// and NODELIST(REASON) cut with …); width 0 is -o wide: every column, in
// full.
func printRunList(w io.Writer, runs []*apipb.Run, now time.Time, width int) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "No runs.")
		return
	}
	var rows [][]string
	var shrink []int // columns that may be cut, in the order they are
	if width == 0 {
		rows = append(rows, []string{"ID", "NAME", "STATE", "SLURM STATE", "JOB", "PARTITION", "NODELIST(REASON)", "AGE", "TIME", "CREATED", "LABELS"})
		for _, r := range runs {
			rows = append(rows, []string{r.GetId(), r.GetName(), stateName(r.GetState()), orDash(r.GetSlurmState()), orDash(r.GetSlurmJobId()),
				orDash(r.GetSpec().GetPartition()), nodesOrReason(r), age(r.GetCreateTime(), now), runTime(r, now), fmtTime(r.GetCreateTime()), orDash(joinMap(r.GetSpec().GetLabels()))})
		}
	} else {
		// The Slurm job id, its state and the rest are in -o wide: the
		// ids alone take 28 of 80 columns.
		rows = append(rows, []string{"ID", "NAME", "STATE", "AGE", "TIME", "NODELIST(REASON)"})
		for _, r := range runs {
			rows = append(rows, []string{r.GetId(), r.GetName(), stateName(r.GetState()),
				age(r.GetCreateTime(), now), runTime(r, now), nodesOrReason(r)})
		}
		shrink = []int{5, 1} // NODELIST(REASON), NAME
	}
	writeTable(w, rows, width, shrink)
}

// writeTable writes rows in columns two spaces apart. With width > 0, the
// columns in shrink are cut (with …), the widest first, until a row fits
// in width, none narrower than its header or minCut; width 0 never cuts.
// minCut is the narrowest a cut column gets: enough to tell names apart.
const minCut = 8

func writeTable(w io.Writer, rows [][]string, width int, shrink []int) {
	cols := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			cols[i] = max(cols[i], runewidth.StringWidth(c))
		}
	}
	if width > 0 {
		total := func() int {
			t := 2 * (len(cols) - 1)
			for _, c := range cols {
				t += c
			}
			return t
		}
		for total() > width {
			// Cut the widest of the cuttable columns by one.
			best := -1
			for _, i := range shrink {
				if cols[i] > max(runewidth.StringWidth(rows[0][i]), minCut) && (best < 0 || cols[i] > cols[best]) {
					best = i
				}
			}
			if best < 0 {
				break // cannot fit: the terminal wraps it
			}
			cols[best]--
		}
	}
	cut := map[int]bool{}
	for _, i := range shrink {
		cut[i] = true
	}
	var b strings.Builder
	for _, row := range rows {
		b.Reset()
		for i, c := range row {
			if cut[i] {
				c = runewidth.Truncate(c, cols[i], "…")
			}
			if i == len(row)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(runewidth.FillRight(c, cols[i]+2))
		}
		fmt.Fprintln(w, b.String())
	}
}
