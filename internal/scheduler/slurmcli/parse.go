package slurmcli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// Separators of the squeue output. Neither can appear in a job sopilot
// submits (run validation allows only [A-Za-z0-9._-] in names and
// checkSpec refuses them everywhere); a record of some other job that does
// not split into squeueFieldCount fields is reported as malformed, never
// guessed at.
const (
	fieldSep  = "\x1f" // ASCII unit separator, after every field but the last
	recordSep = "\x1e" // ASCII record separator, after the last field
)

// squeueFields are the squeue --Format fields, in output order.
var squeueFields = []string{
	"JobID", "Name", "State", "Reason", "Comment", "NodeList",
	"exit_code", "StartTime", "EndTime",
}

const squeueFieldCount = 9

// squeueFormat is the --Format value: ":0" means no padding and no
// truncation; the text after the size is printed after the field.
func squeueFormat() string {
	var b strings.Builder
	for i, f := range squeueFields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f)
		b.WriteString(":0")
		if i == len(squeueFields)-1 {
			b.WriteString(recordSep)
		} else {
			b.WriteString(fieldSep)
		}
	}
	return b.String()
}

// parseSbatch reads the job id from sbatch --parsable's stdout: "jobid" or
// "jobid;cluster", on the last non-empty line.
func parseSbatch(stdout []byte) (string, error) {
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return "", errors.New("sbatch printed no job id")
	}
	id, _, _ := strings.Cut(last, ";")
	id = strings.TrimSpace(id)
	if !isJobID(id) {
		return "", fmt.Errorf("sbatch printed %q, not a job id", truncate(last, 80))
	}
	return id, nil
}

// isJobID reports whether s is a plain numeric Slurm job id.
func isJobID(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// squeueRecord is one job of squeue's output, or why it could not be read.
type squeueRecord struct {
	status scheduler.JobStatus
	// err is set when the record is malformed; status.JobID then holds the
	// first field if there was one, so the caller can tell whose record it was.
	err error
}

// parseSqueue splits squeue output made with squeueFormat into records.
// Malformed records are returned with err set rather than failing the whole
// listing, so that one odd job does not hide all the others.
func parseSqueue(out []byte, loc *time.Location) []squeueRecord {
	var recs []squeueRecord
	for chunk := range strings.SplitSeq(string(out), recordSep) {
		// Each record ends with recordSep followed by squeue's newline,
		// which therefore begins the next chunk.
		chunk = strings.TrimPrefix(chunk, "\n")
		if strings.TrimSpace(chunk) == "" {
			continue
		}
		recs = append(recs, parseSqueueRecord(chunk, loc))
	}
	return recs
}

func parseSqueueRecord(rec string, loc *time.Location) squeueRecord {
	f := strings.Split(rec, fieldSep)
	id := strings.TrimSpace(f[0])
	if len(f) != squeueFieldCount {
		return squeueRecord{
			status: scheduler.JobStatus{JobID: id},
			err:    fmt.Errorf("squeue record %q has %d fields, want %d", truncate(rec, 120), len(f), squeueFieldCount),
		}
	}
	if !isJobID(id) {
		return squeueRecord{
			status: scheduler.JobStatus{JobID: id},
			err:    fmt.Errorf("squeue record %q: job id %q is not numeric", truncate(rec, 120), truncate(id, 40)),
		}
	}
	st := scheduler.JobStatus{
		JobID:   id,
		Name:    f[1],
		State:   baseState(f[2]),
		Reason:  strings.TrimSpace(f[3]),
		Comment: nullToEmpty(f[4]),
		Nodes:   nullToEmpty(strings.TrimSpace(f[5])),
	}
	st.ExitCode, st.Signal = decodeWaitStatus(f[6])
	start, errStart := parseSlurmTime(f[7], loc)
	end, errEnd := parseSlurmTime(f[8], loc)
	if err := errors.Join(errStart, errEnd); err != nil {
		return squeueRecord{status: scheduler.JobStatus{JobID: id}, err: fmt.Errorf("squeue record for job %s: %w", id, err)}
	}
	st.StartTime, st.EndTime = start, end
	return squeueRecord{status: finalizeStatus(st)}
}

// finalizeStatus applies slurmcli's rules for what is known about a job to
// a status read from either squeue output (format or JSON), so that both
// query modes report the same values:
//
//   - the exit code and signal are final only in a final state (COMPLETING
//     and running jobs report -1, 0);
//   - squeue reports expected times for jobs that have not started or
//     ended: a pending job has neither, a running one no end yet;
//   - a job that ended without ever getting nodes (cancelled while pending,
//     refused at submission) has no start time, although Slurm reports
//     start = end = the time it ended.
func finalizeStatus(st scheduler.JobStatus) scheduler.JobStatus {
	if !isFinal(st.State) {
		st.ExitCode, st.Signal = -1, 0
	}
	switch {
	case isPending(st.State):
		st.StartTime, st.EndTime = time.Time{}, time.Time{}
	case isEnded(st.State):
		if st.Nodes == "" {
			st.StartTime = time.Time{}
		}
	default: // running, suspended, configuring, ...
		st.EndTime = time.Time{}
	}
	return st
}

// baseState upper-cases Slurm's state and drops anything after the first
// word or flag separator ("CANCELLED by 0", "RUNNING+REQUEUED").
func baseState(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " +,"); i >= 0 {
		s = s[:i]
	}
	return strings.ToUpper(s)
}

// isPending reports states of jobs that have not started yet.
func isPending(state string) bool {
	switch state {
	case string(scheduler.StatePending), "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "REVOKED":
		return true
	}
	return false
}

// isFinal reports states whose exit code is final.
func isFinal(state string) bool {
	switch scheduler.State(state) {
	case scheduler.StateCompleted, scheduler.StateFailed, scheduler.StateCancelled,
		scheduler.StateTimeout, scheduler.StateNodeFail, scheduler.StatePreempted,
		scheduler.StateOutOfMemory, scheduler.StateBootFail, scheduler.StateDeadline:
		return true
	}
	return state == "SPECIAL_EXIT"
}

// isEnded reports states of jobs that have stopped running (their end time
// is real): the final ones and COMPLETING (ended, still cleaning up).
func isEnded(state string) bool {
	return isFinal(state) || state == string(scheduler.StateCompleting) || state == "STAGE_OUT"
}

// decodeWaitStatus turns squeue's exit_code into exit code and signal. It
// reads both forms Slurm has printed: the raw wait(2) status of the batch
// script (22.05: 768 = exit 3, 15 = killed by signal 15) and "exit:signal"
// (24.11 and later: "3:0", "0:15", "143:0"). Anything unreadable is exit
// code -1.
func decodeWaitStatus(s string) (exitCode, signal int) {
	s = strings.TrimSpace(s)
	if code, sig, ok := strings.Cut(s, ":"); ok {
		c, errC := strconv.ParseUint(code, 10, 8)
		g, errG := strconv.ParseUint(sig, 10, 8)
		if errC != nil || errG != nil || g > 0x7f {
			return -1, 0
		}
		return int(c), int(g)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v > 0xffff {
		// NO_VAL (0xfffffffe) and friends: Slurm does not know.
		return -1, 0
	}
	return int(v>>8) & 0xff, int(v & 0x7f)
}

// parseSlurmTime reads Slurm's local-time timestamps ("2026-11-29T09:12:01").
// "N/A", "Unknown", "None", "(null)" and "" mean no time.
func parseSlurmTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "N/A", "Unknown", "None", "(null)", "0":
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q", truncate(s, 40))
	}
	return t, nil
}

func nullToEmpty(s string) string {
	if s == "(null)" {
		return ""
	}
	return s
}

// Failure classification.

// unavailableMarkers are Slurm messages meaning slurmctld could not be
// reached or could not answer now; the request may succeed later.
var unavailableMarkers = []string{
	"unable to contact slurm controller",
	"connect failure",
	"connection refused",
	"socket timed out",
	"communication connection failure",
	"zero bytes were transmitted or received",
	"slurm backup controller in standby mode",
	"slurmctld is in the process of shutting down",
	"resource temporarily unavailable",
	"temporarily unable to accept job",
	"could not establish a configuration source",
	"unable to establish controller machine",
	"munge encode failed",
	"munge decode failed",
}

// isUnavailable reports whether a tool's stderr says Slurm could not be
// reached (as opposed to refusing the request).
func isUnavailable(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range unavailableMarkers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// noJSONMarkers are what squeue prints when it cannot print JSON: getopt's
// message for an unknown option (squeue before 21.08), and the plugin
// loader's for a missing openapi (21.08-23.02), data_parser (23.02 and
// later) or serializer/json plugin, e.g. "squeue: fatal: Unable to find
// plugin: openapi/v0.0.38" (captured on 22.05).
var noJSONMarkers = []string{
	"unrecognized option",
	"unknown option",
	"invalid option",
	"openapi/",
	"data_parser",
	"serializer/json",
}

// isNoJSON reports whether squeue's stderr says it cannot print JSON, as
// opposed to failing for another reason.
func isNoJSON(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range noJSONMarkers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// isGoneJob reports whether scancel's stderr says the job is unknown or
// already over: cancelling it is then a no-op.
func isGoneJob(stderr string) bool {
	s := strings.ToLower(stderr)
	return strings.Contains(s, "invalid job id specified") ||
		strings.Contains(s, "already completing or completed") ||
		strings.Contains(s, "job/step already completed")
}

// toolMessage condenses a tool's stderr into one line for an error
// message: "sbatch: error: " prefixes dropped, lines joined with "; ".
func toolMessage(tool string, stderr []byte) string {
	var parts []string
	for line := range strings.SplitSeq(string(stderr), "\n") {
		line = strings.TrimSpace(line)
		for _, p := range []string{tool + ": error: ", tool + ": fatal: ", tool + ": "} {
			if rest, ok := strings.CutPrefix(line, p); ok {
				line = rest
				break
			}
		}
		if line != "" {
			parts = append(parts, line)
		}
	}
	if len(parts) == 0 {
		return "no error message"
	}
	return truncate(strings.Join(parts, "; "), 1024)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
