package cli

// run_attempts.go: a retried run's attempts and goodput (docs/resilience.md),
// shown by run get and at the end of run watch.

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// printAttempts prints the run's attempts, one row each, and its goodput.
// Nothing for a run without a retry policy that had one attempt (the API
// lists no attempts for it).
func printAttempts(w io.Writer, r *apipb.Run) {
	as := r.GetAttempts()
	if len(as) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTEMPT\tSLURM JOB\tNODES\tSTATE\tSTARTED\tENDED\tCHECKPOINT\tENDED BY")
	for _, a := range as {
		started, ended := "-", "-"
		if a.GetStartTime() != nil {
			started = fmtTime(a.GetStartTime())
		}
		if a.GetEndTime() != nil {
			ended = fmtTime(a.GetEndTime())
		}
		ckpt := "-"
		if a.GetCheckpointPath() != "" {
			ckpt = fmt.Sprintf("step %d", a.GetCheckpointStep())
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetNumber(), orDash(a.GetSlurmJobId()), orDash(a.GetNodeList()),
			stateName(a.GetState()), started, ended, ckpt, attemptCause(a))
	}
	tw.Flush()
	if g := r.GetGoodput(); g != nil && g.GetGpuHoursUsed() > 0 {
		line := fmt.Sprintf("Goodput: %.3f of %.3f GPU-hours kept (%.0f%%)", g.GetGpuHoursKept(), g.GetGpuHoursUsed(),
			100*g.GetGpuHoursKept()/g.GetGpuHoursUsed())
		if lost := g.GetLostGpuHoursByCause(); len(lost) > 0 {
			causes := make([]string, 0, len(lost))
			for c := range lost {
				causes = append(causes, c)
			}
			sort.Strings(causes)
			for i, c := range causes {
				causes[i] = fmt.Sprintf("%s %.3f", c, lost[c])
			}
			line += ", lost: " + strings.Join(causes, ", ")
		}
		fmt.Fprintln(w, line)
	}
}

// attemptCause says why an attempt ended and the next began: the cause,
// the blamed nodes and the incident; "-" for the current attempt.
func attemptCause(a *apipb.RunAttempt) string {
	if a.GetCause() == apipb.RetryCause_RETRY_CAUSE_UNSPECIFIED {
		return "-"
	}
	s := strings.TrimPrefix(a.GetCause().String(), "RETRY_CAUSE_")
	if n := a.GetFaultyNodes(); len(n) > 0 {
		s += " on " + strings.Join(n, ",")
	}
	if id := a.GetIncidentId(); id != "" {
		s += " (" + id + ")"
	}
	return s
}
