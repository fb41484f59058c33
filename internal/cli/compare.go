package cli

// compare.go: the `compare` command, ComparisonService.CompareRuns for
// people (the verdict first, then a table) and scripts (-o json).

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sopilot/sopilot/pkg/apipb"
)

type compareOptions struct {
	metrics    []string
	seed       int64
	resamples  int32
	confidence float64
	minAbs     float64
	minRel     float64
}

func newCompareCommand(a *app) *cobra.Command {
	o := &clientOptions{}
	c := &compareOptions{}
	cmd := &cobra.Command{
		Use:   "compare BASELINE_RUN CANDIDATE_RUN --metric NAME:higher|lower...",
		Short: "Compare a candidate run against a baseline on their per-sample results",
		Long: `Compare two runs' per-sample results (reported by the runs, see docs/results.md)
with paired statistics where both scored the same samples.

  sopilot compare r-baseline r-candidate --metric correct:higher --metric loss:lower --seed 1

Every metric needs its direction: higher or lower is better (there is no
default: guessing would call a higher loss an improvement). The first metric
decides the overall verdict, printed first. -o json prints the whole
response, report_json (with the seed's compare_models.py fields) included.

Samples are paired by sample id; samples only one run scored are left out
and counted. A verdict is IMPROVED or REGRESSED only when significant, and
at least --min-absolute-improvement / --min-relative-improvement (applied to
every --metric); INCONCLUSIVE means too few samples to decide.

Groups of runs (the same training repeated with different seeds) are
compared by giving comma-separated run ids: each run counts once, by its
mean of the metric, and the groups are compared with Welch's t-test.

  sopilot compare r-a1,r-a2,r-a3 r-b1,r-b2,r-b3 --metric correct:higher`,
		Args: exactArgs(2, "BASELINE_RUN and CANDIDATE_RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.Contains(args[0], ",") || strings.Contains(args[1], ",") {
				return c.runGroups(cmd, a, o, args[0], args[1])
			}
			req, err := c.request(args[0], args[1])
			if err != nil {
				return err
			}
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := apipb.NewComparisonServiceClient(conn).CompareRuns(ctx, req)
			if err != nil {
				return o.clientError(fmt.Sprintf("compare baseline %s with candidate %s", args[0], args[1]), err)
			}
			if a.json() {
				return writeProto(a.env.Stdout, a.root.output, resp)
			}
			printComparison(a.env.Stdout, resp, a.colorFor(a.env.Stdout), args[0], args[1])
			return nil
		},
	}
	addClientFlags(cmd, o)
	fs := cmd.Flags()
	fs.StringArrayVar(&c.metrics, "metric", nil, "metric to compare and which way is better, NAME:higher or NAME:lower (repeatable, at least one; the first decides the verdict)")
	fs.Int64Var(&c.seed, "seed", 0, "bootstrap seed, for reproducible confidence intervals")
	fs.Int32Var(&c.resamples, "resamples", 0, "bootstrap resamples (0: the controller's default, 10000)")
	fs.Float64Var(&c.confidence, "confidence", 0.95, "confidence level of the intervals, in (0, 1)")
	fs.Float64Var(&c.minAbs, "min-absolute-improvement", 0, "smallest change, in each metric's units, that counts as improved or regressed (0: none)")
	fs.Float64Var(&c.minRel, "min-relative-improvement", 0, "smallest relative change (0.01 = 1%) that counts as improved or regressed (0: none)")
	return cmd
}

func (c *compareOptions) request(baseline, candidate string) (*apipb.CompareRunsRequest, error) {
	if len(c.metrics) == 0 {
		return nil, fmt.Errorf("%w: give at least one --metric NAME:higher|lower, e.g. --metric correct:higher", ErrUsage)
	}
	if c.confidence <= 0 || c.confidence >= 1 {
		return nil, fmt.Errorf("%w: --confidence %v: want a level in (0, 1), e.g. 0.95", ErrUsage, c.confidence)
	}
	if c.resamples < 0 {
		return nil, fmt.Errorf("%w: --resamples must be 0 (default) or positive", ErrUsage)
	}
	if !(c.minAbs >= 0) || math.IsInf(c.minAbs, 0) {
		return nil, fmt.Errorf("%w: --min-absolute-improvement %v: want a finite value ≥ 0", ErrUsage, c.minAbs)
	}
	if !(c.minRel >= 0) || math.IsInf(c.minRel, 0) {
		return nil, fmt.Errorf("%w: --min-relative-improvement %v: want a finite value ≥ 0, e.g. 0.01 for 1%%", ErrUsage, c.minRel)
	}
	req := &apipb.CompareRunsRequest{
		BaselineRunId: baseline, CandidateRunId: candidate,
		ConfidenceLevel: c.confidence, BootstrapResamples: c.resamples, Seed: c.seed,
	}
	for _, m := range c.metrics {
		ms, err := parseMetric(m)
		if err != nil {
			return nil, err
		}
		ms.MinAbsoluteImprovement, ms.MinRelativeImprovement = c.minAbs, c.minRel
		req.Metrics = append(req.Metrics, ms)
	}
	return req, nil
}

func parseMetric(s string) (*apipb.MetricSpec, error) {
	name, dir, ok := strings.Cut(s, ":")
	if ok && name != "" {
		switch strings.ToLower(dir) {
		case "higher":
			return &apipb.MetricSpec{Name: name, Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}, nil
		case "lower":
			return &apipb.MetricSpec{Name: name, Direction: apipb.Direction_DIRECTION_LOWER_IS_BETTER}, nil
		}
	}
	return nil, fmt.Errorf("%w: --metric %q: want NAME:higher or NAME:lower, e.g. correct:higher or loss:lower", ErrUsage, s)
}

func verdictName(v apipb.Verdict) string {
	return strings.TrimPrefix(v.String(), "VERDICT_")
}

func directionText(d apipb.Direction) string {
	switch d {
	case apipb.Direction_DIRECTION_HIGHER_IS_BETTER:
		return "higher is better"
	case apipb.Direction_DIRECTION_LOWER_IS_BETTER:
		return "lower is better"
	}
	return "no direction"
}

func fmtSigned(v float64) string {
	s := fmtFloat(v)
	if v >= 0 {
		s = "+" + s
	}
	return s
}

// printComparison writes the verdict line (coloured when color is set),
// the runs in command-line order, then one row per metric, then notes,
// efficiency, run metrics and incidents.
func printComparison(w io.Writer, r *apipb.CompareRunsResponse, color bool, baseline, candidate string) {
	v := verdictName(r.GetVerdict())
	if color {
		switch r.GetVerdict() {
		case apipb.Verdict_VERDICT_IMPROVED:
			v = "\x1b[32;1m" + v + "\x1b[0m"
		case apipb.Verdict_VERDICT_REGRESSED:
			v = "\x1b[31;1m" + v + "\x1b[0m"
		case apipb.Verdict_VERDICT_INCONCLUSIVE:
			v = "\x1b[33;1m" + v + "\x1b[0m"
		}
	}
	verdict := "verdict: " + v
	if ms := r.GetMetrics(); len(ms) > 0 {
		verdict += fmt.Sprintf(" (on %s, %s)", ms[0].GetName(), directionText(ms[0].GetDirection()))
	}
	fmt.Fprintln(w, verdict)
	fmt.Fprintf(w, "baseline %s, candidate %s\n", baseline, candidate)
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tVERDICT\tPAIRED\tTEST\tN\tBASELINE\tCANDIDATE\tCHANGE [CI]\tRELATIVE\tP-VALUE\tWINS/TIES/LOSSES")
	var notes []string
	for _, m := range r.GetMetrics() {
		paired := "no"
		if m.GetPaired() {
			paired = "yes"
		}
		rel := "omitted"
		if m.RelativeChange != nil {
			rel = fmt.Sprintf("%+.1f%%", m.GetRelativeChange()*100)
		} else if m.GetRelativeChangeNote() != "" {
			rel = "omitted: " + m.GetRelativeChangeNote()
		}
		tol := m.GetTieTolerance()
		ci := fmt.Sprintf("%s [%s, %s] @%.0f%%", fmtChange(m.GetAbsoluteChange(), tol), fmtChange(m.GetCiLow(), tol), fmtChange(m.GetCiHigh(), tol), m.GetConfidenceLevel()*100)
		wtl := "-"
		if m.GetPaired() {
			wtl = fmt.Sprintf("%d/%d/%d", m.GetWins(), m.GetTies(), m.GetLosses())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%.2g\t%s\n",
			m.GetName(), verdictName(m.GetVerdict()), paired, orDash(m.GetTest()),
			m.GetBaseline().GetN(), m.GetCandidate().GetN(),
			meanStd(m.GetBaseline()), meanStd(m.GetCandidate()), ci, rel, m.GetPValue(), wtl)
		if bo, co := m.GetBaselineOnlySamples(), m.GetCandidateOnlySamples(); bo+co > 0 {
			notes = append(notes, fmt.Sprintf("%s: left out %d samples only the baseline scored and %d only the candidate scored", m.GetName(), bo, co))
		}
		for _, t := range m.GetTests() {
			if t.GetName() != m.GetTest() {
				notes = append(notes, fmt.Sprintf("%s: also %s p = %.2g (%s)", m.GetName(), t.GetName(), t.GetPValue(), t.GetMethod()))
			}
		}
		if d := m.GetDeltas(); d != nil {
			notes = append(notes, fmt.Sprintf("%s: deltas min %s, median %s, p90 %s, max %s", m.GetName(),
				fmtChange(d.GetMin(), tol), fmtChange(d.GetP50(), tol), fmtChange(d.GetP90(), tol), fmtChange(d.GetMax(), tol)))
		}
		if m.GetNote() != "" {
			notes = append(notes, m.GetName()+": "+m.GetNote())
		}
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, "note: "+n)
	}
	be, ce := r.GetBaselineEfficiency(), r.GetCandidateEfficiency()
	if be.GetWallSeconds() != 0 || ce.GetWallSeconds() != 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EFFICIENCY\tWALL\tQUEUE\tGPUS\tGPU-HOURS\tGPU UTIL\tSAMPLES/S")
		for _, e := range []struct {
			name string
			e    *apipb.Efficiency
		}{{"baseline", be}, {"candidate", ce}} {
			util, rate := "—", "—"
			if e.e.GetGpuUtilizationMeasured() {
				util = fmt.Sprintf("%.0f%%", e.e.GetGpuUtilizationMeanPercent())
			}
			if e.e.GetSamplesPerSecondReported() {
				rate = fmtFloat(e.e.GetSamplesPerSecond())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%s\t%s\n", e.name,
				fmtDuration(secondsDuration(e.e.GetWallSeconds())), fmtDuration(secondsDuration(e.e.GetQueueSeconds())),
				e.e.GetGpuCount(), e.e.GetGpuHours(), util, rate)
		}
		tw.Flush()
		printGoodput(w, be, ce)
		if r.GetSpeedup() != 0 {
			fmt.Fprintf(w, "speed-up %.2fx, scaling efficiency %.0f%%\n", r.GetSpeedup(), r.GetScalingEfficiency()*100)
		}
	}
	if rms := r.GetRunMetrics(); len(rms) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN METRIC\tBASELINE\tCANDIDATE")
		for _, rm := range rms {
			b, c := "—", "—"
			if rm.Baseline != nil {
				b = fmtFloat(rm.GetBaseline())
			}
			if rm.Candidate != nil {
				c = fmtFloat(rm.GetCandidate())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", rm.GetName(), b, c)
		}
		tw.Flush()
	}
	if ids := r.GetIncidentIds(); len(ids) > 0 {
		fmt.Fprintln(w, "incidents during the runs: "+strings.Join(ids, ", "))
	}
}

// fmtChange prints a change signed, and as 0 when it is within the
// comparison's tie tolerance of 0 (or, without one, below 1e-12 of a unit
// in the last printed place): an interval end of -2.776e-17 is rounding
// noise, not a change.
func fmtChange(v, tol float64) string {
	if math.Abs(v) <= tol {
		return "0"
	}
	return fmtSigned(v)
}

func meanStd(s *apipb.Summary) string {
	return fmtFloat(s.GetMean()) + " ± " + fmtFloat(s.GetStd())
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// runGroups compares two groups of runs (CompareRunGroups).
func (c *compareOptions) runGroups(cmd *cobra.Command, a *app, o *clientOptions, baseline, candidate string) error {
	one, err := c.request("x", "y") // the shared checks of --metric, --confidence, --resamples
	if err != nil {
		return err
	}
	split := func(flag, s string) ([]string, error) {
		var ids []string
		for _, id := range strings.Split(s, ",") {
			if id = strings.TrimSpace(id); id == "" {
				return nil, fmt.Errorf("%w: %s %q: an empty run id in the list", ErrUsage, flag, s)
			}
			ids = append(ids, id)
		}
		if len(ids) < 2 {
			return nil, fmt.Errorf("%w: %s %q: a group needs at least 2 runs (compare single runs without commas)", ErrUsage, flag, s)
		}
		return ids, nil
	}
	base, err := split("BASELINE_RUN", baseline)
	if err != nil {
		return err
	}
	cand, err := split("CANDIDATE_RUN", candidate)
	if err != nil {
		return err
	}
	req := &apipb.CompareRunGroupsRequest{
		Baseline:  &apipb.RunGroup{Name: "baseline", RunIds: base},
		Candidate: &apipb.RunGroup{Name: "candidate", RunIds: cand},
		Metrics:   one.GetMetrics(), ConfidenceLevel: one.GetConfidenceLevel(), Seed: one.GetSeed(),
	}
	conn, err := o.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := o.call(cmd.Context())
	defer cancel()
	resp, err := apipb.NewComparisonServiceClient(conn).CompareRunGroups(ctx, req)
	if err != nil {
		return o.clientError(fmt.Sprintf("compare groups of %d and %d runs", len(base), len(cand)), err)
	}
	if a.json() {
		return writeProto(a.env.Stdout, a.root.output, resp)
	}
	printGroupComparison(a.env.Stdout, resp, c.confidence)
	return nil
}

func printGroupComparison(w io.Writer, resp *apipb.CompareRunGroupsResponse, level float64) {
	fmt.Fprintf(w, "verdict: %s (groups of runs, Welch's t-test on run means)\n\n", verdictName(resp.GetVerdict()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tVERDICT\tBASELINE (mean ± sd, runs)\tCANDIDATE (mean ± sd, runs)\tCHANGE CI\tP-VALUE")
	for _, m := range resp.GetMetrics() {
		b, c := m.GetBaseline(), m.GetCandidate()
		fmt.Fprintf(tw, "%s\t%s\t%.4g ± %.4g, %d\t%.4g ± %.4g, %d\t[%+.4g, %+.4g] @%g%%\t%.2g\n", m.GetName(), verdictName(m.GetVerdict()),
			b.GetMean(), b.GetStd(), b.GetRuns(), c.GetMean(), c.GetStd(), c.GetRuns(), m.GetCiLow(), m.GetCiHigh(), level*100, m.GetPValue())
	}
	_ = tw.Flush()
	for _, m := range resp.GetMetrics() {
		if note := constantGroupsNote(m); note != "" {
			fmt.Fprintf(w, "note: %s: %s\n", m.GetName(), note)
		}
	}
}

// constantGroupsNote explains a group comparison in which every run of each
// group gave the same value: Welch's t is undefined there, so the controller
// uses the exact permutation test, whose p-value cannot go below
// 2/C(nb+nc, nb) however large the difference (1/3 with two runs a side).
// Without the note a large, clean change reads as a contradiction.
func constantGroupsNote(m *apipb.GroupMetricComparison) string {
	b, c := m.GetBaseline(), m.GetCandidate()
	if b.GetStd() != 0 || c.GetStd() != 0 || b.GetMean() == c.GetMean() || b.GetRuns() < 1 || c.GetRuns() < 1 {
		return ""
	}
	nb, nc := int(b.GetRuns()), int(c.GetRuns())
	minP := 2 / binomial(nb+nc, nb)
	return fmt.Sprintf("every run of each group gave the same value, so the p-value is the exact permutation test's (not Welch's t); "+
		"with %d and %d runs it cannot go below %.2g (2/C(%d,%d)): more runs per group are needed to show a change", nb, nc, min(minP, 1), nb+nc, nb)
}

// binomial is C(n, k) as a float64 (exact for the group sizes compared here).
func binomial(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// printGoodput prints each run's attempts and the GPU-hours it used, kept
// and lost (by cause), "—" where the controller did not measure them.
func printGoodput(w io.Writer, be, ce *apipb.Efficiency) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GOODPUT\tATTEMPTS\tGPU-HOURS USED\tKEPT\tLOST")
	for _, e := range []struct {
		name string
		e    *apipb.Efficiency
	}{{"baseline", be}, {"candidate", ce}} {
		attempts, used, kept, lost := "—", "—", "—", "—"
		if n := e.e.GetAttempts(); n > 0 {
			attempts = fmt.Sprint(n)
		}
		if g := e.e.GetGoodput(); g != nil {
			used, kept = fmt.Sprintf("%.3f", g.GetGpuHoursUsed()), fmt.Sprintf("%.3f", g.GetGpuHoursKept())
			lost = fmtLost(g.GetLostGpuHoursByCause())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.name, attempts, used, kept, lost)
	}
	tw.Flush()
}

// fmtLost prints lost GPU-hours in all and by cause: "0.012 (HARDWARE 0.012)".
func fmtLost(byCause map[string]float64) string {
	if len(byCause) == 0 {
		return "0"
	}
	causes := make([]string, 0, len(byCause))
	total := 0.0
	for c, h := range byCause {
		causes = append(causes, c)
		total += h
	}
	sort.Strings(causes)
	parts := make([]string, len(causes))
	for i, c := range causes {
		parts[i] = fmt.Sprintf("%s %.3f", c, byCause[c])
	}
	return fmt.Sprintf("%.3f (%s)", total, strings.Join(parts, ", "))
}
