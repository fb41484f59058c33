package cli

// run_render.go: how runs look to people (tables, the watch line), and the
// watch loop.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// stateName is RUN_STATE_COMPLETED without its prefix.
func stateName(s apipb.RunState) string {
	return strings.TrimPrefix(s.String(), "RUN_STATE_")
}

func terminal(s apipb.RunState) bool {
	return s >= apipb.RunState_RUN_STATE_COMPLETED
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05Z")
}

// fmtDuration is 1h02m03s rounded to the second, or 3d04h05m for long ones.
func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = 0
	}
	h, m, s := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	switch {
	case h >= 24:
		return fmt.Sprintf("%dd%02dh%02dm", h/24, h%24, m)
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// elapsed is how long the run has run (start to end or now), or, before it
// started, how long it has waited, prefixed "queued ".
func elapsed(r *apipb.Run, now time.Time) string {
	end := now
	if r.GetEndTime() != nil {
		end = r.GetEndTime().AsTime()
	}
	if r.GetStartTime() != nil {
		return fmtDuration(end.Sub(r.GetStartTime().AsTime()))
	}
	if r.GetCreateTime() != nil && !terminal(r.GetState()) {
		return "queued " + fmtDuration(end.Sub(r.GetCreateTime().AsTime()))
	}
	return "-"
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// progressText is "step 120/1000 loss 0.4321 812 samples/s ETA 12m03s", or
// "" when the run reports no progress.
func progressText(p *apipb.RunProgress) string {
	if p == nil {
		return ""
	}
	var parts []string
	if p.GetTotalSteps() > 0 {
		parts = append(parts, fmt.Sprintf("step %d/%d", p.GetStep(), p.GetTotalSteps()))
	} else if p.GetStep() > 0 {
		parts = append(parts, fmt.Sprintf("step %d", p.GetStep()))
	}
	if p.GetLoss() != 0 {
		parts = append(parts, "loss "+fmtFloat(p.GetLoss()))
	}
	if p.GetSamplesPerSecond() != 0 {
		parts = append(parts, fmtFloat(p.GetSamplesPerSecond())+" samples/s")
	}
	if p.GetEta() != nil {
		parts = append(parts, "ETA "+fmtDuration(p.GetEta().AsDuration()))
	}
	return strings.Join(parts, " ")
}

// printRun is the detail view of run get/submit/cancel.
func printRun(w io.Writer, r *apipb.Run, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	state := stateName(r.GetState())
	if r.GetSlurmState() != "" {
		state += " (slurm " + r.GetSlurmState() + ")"
	}
	row("ID", r.GetId())
	row("Name", r.GetName())
	row("State", state)
	row("Reason", r.GetReason())
	row("Slurm job", orDash(r.GetSlurmJobId()))
	spec := r.GetSpec()
	shape := fmt.Sprintf("%d node(s) x %d task(s), %d GPU(s)/node", spec.GetNodes(), max(spec.GetTasksPerNode(), 1), spec.GetGpusPerNode())
	if spec.GetTimeLimit() != nil {
		shape += ", time " + fmtDuration(spec.GetTimeLimit().AsDuration())
	}
	if spec.GetPartition() != "" {
		shape += ", partition " + spec.GetPartition()
	}
	row("Resources", shape)
	row("Nodes", r.GetNodeList())
	if terminal(r.GetState()) {
		exit := strconv.Itoa(int(r.GetExitCode()))
		if r.GetExitSignal() != 0 {
			exit += fmt.Sprintf(" (signal %d)", r.GetExitSignal())
		}
		row("Exit code", exit)
	}
	row("Output", r.GetOutputPath())
	row("Created", fmtTime(r.GetCreateTime()))
	if r.GetStartTime() != nil {
		row("Started", fmtTime(r.GetStartTime()))
	}
	if r.GetEndTime() != nil {
		row("Ended", fmtTime(r.GetEndTime()))
	}
	row("Elapsed", elapsed(r, now))
	row("Progress", progressText(r.GetProgress()))
	if u := r.GetUsage(); u != nil {
		usage := fmt.Sprintf("%d GPU(s), %.2f GPU-hours, utilization mean %.0f%% p95 %.0f%%", u.GetGpuCount(), u.GetGpuHours(), u.GetGpuUtilizationMeanPercent(), u.GetGpuUtilizationP95Percent())
		if u.GetSimulated() {
			usage += " (simulated)"
		}
		row("Usage", usage)
	}
	row("Labels", joinMap(spec.GetLabels()))
	row("Depends on", strings.Join(spec.GetDependsOn(), ", "))
	row("Request id", r.GetRequestId())
	if len(spec.GetArgv()) > 0 {
		row("Command", shellJoin(spec.GetArgv()))
	} else if spec.GetScript() != "" {
		first, _, _ := strings.Cut(strings.TrimSpace(spec.GetScript()), "\n")
		row("Script", first+" ...")
	}
	row("Incidents", strings.Join(r.GetIncidentIds(), ", "))
	tw.Flush()
	printAttempts(w, r)
}

func joinMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

// statusLine is the one-line status of run watch: statusHead and the
// run's progress.
func statusLine(r *apipb.Run, now time.Time) string {
	head := statusHead(r, now)
	if p := progressText(r.GetProgress()); p != "" {
		return head + "  " + p
	}
	return head
}

// statusHead is the run's id, state, Slurm state, reason, nodes and
// elapsed time.
func statusHead(r *apipb.Run, now time.Time) string {
	parts := []string{r.GetId(), stateName(r.GetState())}
	if r.GetSlurmState() != "" {
		parts = append(parts, "slurm="+r.GetSlurmState())
	}
	if r.GetReason() != "" && !terminal(r.GetState()) {
		parts = append(parts, "reason="+r.GetReason())
	}
	if r.GetNodeList() != "" {
		parts = append(parts, "nodes="+r.GetNodeList())
	}
	parts = append(parts, elapsed(r, now))
	return strings.Join(parts, "  ")
}

// endError is nil when the run COMPLETED, else ErrRunNotCompleted naming
// how it ended.
func endError(r *apipb.Run) error {
	if r.GetState() == apipb.RunState_RUN_STATE_COMPLETED {
		return nil
	}
	msg := fmt.Sprintf("run %s ended %s", r.GetId(), stateName(r.GetState()))
	var details []string
	if r.GetSlurmState() != "" {
		details = append(details, "slurm "+r.GetSlurmState())
	}
	details = append(details, "exit code "+strconv.Itoa(int(r.GetExitCode())))
	if r.GetReason() != "" {
		details = append(details, r.GetReason())
	}
	msg += " (" + strings.Join(details, ", ") + ")"
	if r.GetOutputPath() != "" {
		msg += "; its output: " + r.GetOutputPath()
	}
	return runEndedError(msg)
}

// runEndedError is ErrRunNotCompleted with a message that says how the run
// ended.
type runEndedError string

func (e runEndedError) Error() string        { return string(e) }
func (e runEndedError) Is(target error) bool { return target == ErrRunNotCompleted }

// finalUsage reads the ended run r once more for its usage; r when that
// fails or brings nothing new.
func finalUsage(ctx context.Context, o *clientOptions, c apipb.RunServiceClient, r *apipb.Run) *apipb.Run {
	cctx, cancel := o.call(ctx)
	defer cancel()
	resp, err := c.GetRun(cctx, &apipb.GetRunRequest{RunId: r.GetId()})
	if err != nil || resp.GetRun().GetUsage() == nil {
		return r
	}
	out := proto.Clone(r).(*apipb.Run)
	out.Usage = resp.GetRun().GetUsage()
	return out
}

// shellJoin joins argv the way a shell would need it typed.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:@%+,-") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
