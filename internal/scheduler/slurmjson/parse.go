package slurmjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/jsonscan"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// Slurm's "no value" markers for 32-bit fields (NO_VAL, INFINITE). Numbers
// at or above NoVal are never real ids, times or exit statuses.
const (
	NoVal    = 0xfffffffe
	Infinite = 0xffffffff
)

// ParseJobs reads the job list of a slurmrestd GET /slurm/{ver}/jobs answer,
// or of `squeue --json`, in any of the shapes Slurm has used:
//
//   - v0.0.38: job_state "RUNNING", exit_code the raw wait(2) status (768
//     for "exit 3"), times in Unix seconds, nodes "worker-[0-1]";
//   - v0.0.39: like v0.0.38 but exit_code a {"set","infinite","number"}
//     structure around the raw status;
//   - v0.0.40 and later: job_state ["RUNNING","COMPLETING"] (base state
//     first, then flags), exit_code {"status":["EXITED"],"return_code":
//     {"set":true,"infinite":false,"number":3},"signal":{"id":{...},
//     "name":"..."}}, times {"set":true,"infinite":false,"number":1700000000}.
//
// A field that is missing, null or of an unexpected type yields the zero
// value; a job without a usable job_id is skipped. Only a body that is not a
// JSON object, or whose "jobs" is missing or not an array, is an error.
func ParseJobs(data []byte) ([]scheduler.JobStatus, error) {
	// One validating pass (encoding/json's own scanner), then a walk over
	// the now well-formed document that copies nothing but the handful of
	// fields a JobStatus needs. Decoding every job into a map (or a struct,
	// whose keys encoding/json matches case-insensitively) cost 4x as much.
	if !json.Valid(data) {
		return nil, decodeError(data, new(map[string]json.RawMessage), "")
	}
	return parseJobs(data)
}

// ParseJobList reads a listing that may carry Slurm's errors instead of
// jobs (squeue --json with slurmctld down prints an empty list and an
// error): errs when the document has any (see ParseErrors), else its jobs
// as ParseJobs reads them. What ParseErrors then ParseJobs would say, with
// the document validated once instead of twice.
func ParseJobList(data []byte) (jobs []scheduler.JobStatus, errs []Error, err error) {
	if !json.Valid(data) {
		return nil, nil, decodeError(data, new(map[string]json.RawMessage), "")
	}
	if errs, _ = errorsOf(data); len(errs) > 0 {
		return nil, errs, nil
	}
	jobs, err = parseJobs(data)
	return jobs, nil, err
}

// parseJobs is ParseJobs on a document json.Valid accepted.
func parseJobs(data []byte) ([]scheduler.JobStatus, error) {
	i := jsonscan.SkipSpace(data, 0)
	if i >= len(data) {
		return nil, errMalformed
	}
	switch data[i] {
	case '{':
	case 'n':
		return nil, errors.New("decode job list: not a JSON object")
	default:
		return nil, decodeError(data, new(map[string]json.RawMessage), "")
	}
	var jobs []byte
	if _, ok := jsonscan.Fields(data, i, func(key []byte, escaped bool, val []byte) {
		if jsonscan.KeyIs(key, escaped, "jobs") {
			jobs = val // the last duplicate wins, as in a map
		}
	}); !ok {
		return nil, errMalformed
	}
	if jobs == nil {
		return nil, errors.New("decode job list: no \"jobs\" field")
	}
	switch jobs[0] {
	case 'n':
		return []scheduler.JobStatus{}, nil
	case '[':
	default:
		return nil, decodeError(jobs, new([]json.RawMessage), "\"jobs\" is not an array: ")
	}
	out := make([]scheduler.JobStatus, 0, countHint(jobs))
	if _, ok := jsonscan.Elements(jobs, 0, func(job []byte) int {
		if job[0] != '{' {
			return 0 // numbers, strings, null, arrays: not a job
		}
		var f jobFields
		end, ok := jsonscan.Fields(job, 0, f.set)
		if !ok {
			return 0 // Elements fails on it too
		}
		if js, ok := f.status(); ok {
			out = append(out, js)
		}
		return end
	}); !ok {
		return nil, errMalformed
	}
	return out, nil
}

// errMalformed is returned if the walk finds something json.Valid accepted
// but the walk cannot read: it never should.
var errMalformed = errors.New("decode job list: malformed JSON")

// decodeError lets encoding/json describe why data does not decode into v.
func decodeError(data []byte, v any, what string) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode job list: %s%w", what, err)
	}
	return errMalformed
}

// countHint guesses the number of jobs in a listing from its size, to size
// the result once; it only has to be in the right range.
func countHint(jobs []byte) int {
	n := len(jobs) / 1024
	if n > 4096 {
		n = 4096
	}
	return n
}

// jobFields holds the raw values of the fields ParseJobs reads from one
// job object. Keys match exactly (after unescaping), and the last of
// duplicate keys wins: what decoding into a map[string]json.RawMessage did.
type jobFields struct {
	id, name, state, reason, comment, nodes, exit, start, end json.RawMessage
}

func (f *jobFields) set(key []byte, escaped bool, val []byte) {
	name := key[1 : len(key)-1]
	if escaped {
		s, ok := jsonscan.Unquote(key)
		if !ok {
			return
		}
		name = []byte(s)
	}
	switch string(name) {
	case "job_id":
		f.id = val
	case "name":
		f.name = val
	case "job_state":
		f.state = val
	case "state_reason":
		f.reason = val
	case "comment":
		f.comment = val
	case "nodes":
		f.nodes = val
	case "exit_code":
		f.exit = val
	case "start_time":
		f.start = val
	case "end_time":
		f.end = val
	}
}

// status converts one job; ok is false when it has no usable job id.
func (f *jobFields) status() (scheduler.JobStatus, bool) {
	id, ok := Int(f.id)
	if !ok || id <= 0 || id >= NoVal {
		return scheduler.JobStatus{}, false
	}
	js := scheduler.JobStatus{
		JobID:     strconv.FormatInt(id, 10),
		Name:      String(f.name),
		State:     flexState(f.state),
		Reason:    String(f.reason),
		Comment:   String(f.comment),
		Nodes:     String(f.nodes),
		StartTime: flexTime(f.start),
		EndTime:   flexTime(f.end),
	}
	js.ExitCode, js.Signal = flexExit(f.exit)
	if !started(js.State) {
		// A pending job's start_time is the backfill scheduler's estimate.
		js.StartTime = time.Time{}
	}
	if !ended(js.State) {
		// Slurm reports 0 (or PENDING) for a job that has not finished, and
		// end_time is the expected end of a running job: neither is known yet.
		js.ExitCode, js.Signal = -1, 0
		js.EndTime = time.Time{}
	}
	if settling(js.State) {
		js.ExitCode, js.Signal = -1, 0
	}
	return js, true
}

// ended reports whether a job in state s has finished running its batch
// script, so its exit code and end time are final. Unknown states are
// treated as ended so that Slurm's values are passed through.
func ended(s string) bool {
	switch s {
	case "PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "REQUEUED",
		"REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED", "RESIZING",
		"SIGNALING", "UPDATE_DB", "POWER_UP_NODE", "":
		return false
	}
	return true
}

// started reports whether a job in state s has (or had) its allocation.
// Pending, held and requeued jobs have not: their start_time is an estimate
// or a previous run's.
func started(s string) bool {
	switch s {
	case "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "":
		return false
	}
	return true
}

// baseStates are Slurm's job base states (JOB_STATE_BASE); everything else
// in a v0.0.40+ job_state array is a flag.
var baseStates = map[string]bool{
	"PENDING": true, "RUNNING": true, "SUSPENDED": true, "COMPLETED": true,
	"CANCELLED": true, "FAILED": true, "TIMEOUT": true, "NODE_FAIL": true,
	"PREEMPTED": true, "BOOT_FAIL": true, "DEADLINE": true, "OUT_OF_MEMORY": true,
}

// shownFlags are the job state flags that Slurm's job_state_string() prints
// instead of the base state, in its order of precedence. squeue's State
// column, v0.0.38's job_state string and scontrol print that one word, so
// reading a v0.0.40+ array the same way gives one State on every version
// and in every query mode: ["CANCELLED","COMPLETING"] (24.11 and 26.05,
// right after scancel) is "COMPLETING", as 22.05 said at that moment.
var shownFlags = []string{
	"COMPLETING", "STAGE_OUT", "CONFIGURING", "RESIZING", "REQUEUED", "REQUEUE_FED",
	"REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED", "REVOKED", "RESV_DEL_HOLD", "SIGNALING",
}

// flexState reads job_state: a string (v0.0.38/39, where Slurm already
// replaced the base state by the most important flag, e.g. "COMPLETING"), or
// an array of base state and flags (v0.0.40+), read as job_state_string()
// would print it: the first of shownFlags present, else the base state,
// else the first entry.
func flexState(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			return ""
		}
		first, base := "", ""
		present := make(map[string]bool, len(list))
		for _, e := range list {
			s := normState(String(e))
			if s == "" {
				continue
			}
			present[s] = true
			if base == "" && baseStates[s] {
				base = s
			}
			if first == "" {
				first = s
			}
		}
		for _, f := range shownFlags {
			if present[f] {
				return f
			}
		}
		if base != "" {
			return base
		}
		return first
	}
	return normState(String(raw))
}

// settling reports states of jobs whose batch script has ended but whose
// exit status Slurm has not settled yet: right after scancel, 24.11 and
// 26.05 report ["CANCELLED","COMPLETING"] with exit status SUCCESS, and
// only about 3 s later ["CANCELLED"] with the signal (or 143).
func settling(s string) bool { return s == "COMPLETING" || s == "STAGE_OUT" }

func normState(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

// flexExit reads exit_code and returns the exit status and signal. A number
// (or a number structure) is the raw wait(2) status Slurm stores; an object
// with return_code/signal is the v0.0.40+ verbose form. Unknown is (-1, 0).
// A job killed by a signal has exit status 0, as in Slurm's "0:9".
func flexExit(raw json.RawMessage) (code, signal int) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return -1, 0
	}
	if raw[0] == '{' {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return -1, 0
		}
		_, hasRC := obj["return_code"]
		_, hasSig := obj["signal"]
		_, hasStatus := obj["status"]
		if hasRC || hasSig || hasStatus {
			return verboseExit(obj)
		}
	}
	v, ok := Int(raw)
	if !ok {
		return -1, 0
	}
	return waitStatus(v)
}

// waitStatus decodes a raw wait(2) status as Linux encodes it: the low 7
// bits are the terminating signal (0: exited, 0x7f: stopped), bits 8-15
// the exit status.
func waitStatus(v int64) (code, signal int) {
	if v < 0 || v >= NoVal {
		return -1, 0
	}
	low := int(v & 0x7f)
	switch low {
	case 0:
		return int((v >> 8) & 0xff), 0
	case 0x7f:
		return -1, 0
	default:
		return 0, low
	}
}

func verboseExit(obj map[string]json.RawMessage) (code, signal int) {
	rc, rcOK := Int(obj["return_code"])
	if rcOK && (rc < 0 || rc >= NoVal) {
		rcOK = false
	}
	sig := 0
	if sraw, ok := obj["signal"]; ok {
		var so map[string]json.RawMessage
		if json.Unmarshal(sraw, &so) == nil && so != nil {
			if id, ok := Int(so["id"]); ok && id > 0 && id < 256 {
				sig = int(id)
			} else if n := signalNumber(String(so["name"])); n > 0 {
				sig = n
			}
		} else if id, ok := Int(sraw); ok && id > 0 && id < 256 {
			sig = int(id)
		}
	}
	switch {
	case sig > 0 && rcOK:
		return int(rc), sig
	case sig > 0:
		return 0, sig
	case rcOK:
		return int(rc), 0
	}
	return -1, 0
}

// signalNumber maps Slurm's signal names (with or without "SIG") to Linux
// numbers; 0 when unknown.
func signalNumber(name string) int {
	name = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 256 {
		return n // sig_num2name prints numbers it has no name for
	}
	switch name {
	case "HUP":
		return 1
	case "INT":
		return 2
	case "QUIT":
		return 3
	case "ILL":
		return 4
	case "TRAP":
		return 5
	case "ABRT":
		return 6
	case "BUS":
		return 7
	case "FPE":
		return 8
	case "KILL":
		return 9
	case "USR1":
		return 10
	case "SEGV":
		return 11
	case "USR2":
		return 12
	case "PIPE":
		return 13
	case "ALRM":
		return 14
	case "TERM":
		return 15
	case "XCPU":
		return 24
	}
	return 0
}

// flexTime reads a Unix time (number, numeric string or number structure);
// 0, unset and infinite are the zero time.
func flexTime(raw json.RawMessage) time.Time {
	v, ok := Int(raw)
	if !ok || v <= 0 || v >= NoVal {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

// String reads a JSON string leniently: numbers and booleans give their
// JSON text, anything else (objects, arrays, null, invalid JSON) "".
func String(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		s, _ := jsonscan.Unquote(raw)
		return s
	case '{', '[', 'n':
		return ""
	default:
		return string(raw)
	}
}

// Int reads an integer from a JSON number, a numeric string or a Slurm
// number structure {"set":bool,"infinite":bool,"number":n}. ok is false for
// anything else, for an unset or infinite structure, and for numbers that
// are not integers or do not fit in int64.
func Int(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	switch raw[0] {
	case '{':
		var s struct {
			Set      *bool           `json:"set"`
			Infinite *bool           `json:"infinite"`
			Number   json.RawMessage `json:"number"`
		}
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		if (s.Set != nil && !*s.Set) || (s.Infinite != nil && *s.Infinite) {
			return 0, false
		}
		n := bytes.TrimSpace(s.Number)
		if len(n) == 0 || n[0] == '{' {
			return 0, false
		}
		return Int(n)
	case '"':
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return 0, false
		}
		return parseIntText(strings.TrimSpace(str))
	case 't', 'f', 'n', '[':
		return 0, false
	default:
		return parseIntText(string(raw))
	}
}

func parseIntText(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) ||
		f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0, false
	}
	return int64(f), true
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
