package slurmcli

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

const fixtureDir = "testdata/slurm-22.05"

// fixture loads NAME.stdout, NAME.stderr and NAME.rc captured from Slurm.
func fixture(t testing.TB, name string) result {
	t.Helper()
	read := func(ext string) []byte {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name+"."+ext))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rc, err := strconv.Atoi(strings.TrimSpace(string(read("rc"))))
	if err != nil {
		t.Fatalf("%s.rc: %v", name, err)
	}
	return result{stdout: read("stdout"), stderr: read("stderr"), exitCode: rc}
}

// at is a time on the capture day, in UTC (the capture machine's zone).
func at(hms string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04:05", "2026-11-29T"+hms, time.UTC)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSqueueFormat(t *testing.T) {
	want := "JobID:0\x1f,Name:0\x1f,State:0\x1f,Reason:0\x1f,Comment:0\x1f,NodeList:0\x1f,exit_code:0\x1f,StartTime:0\x1f,EndTime:0\x1e"
	if got := squeueFormat(); got != want {
		t.Errorf("squeueFormat() = %q, want %q", got, want)
	}
}

func TestParseSqueue(t *testing.T) {
	zero := time.Time{}
	tests := []struct {
		name    string
		fixture string
		count   int
		want    map[string]scheduler.JobStatus // by job id; only these are checked
	}{
		{
			name:    "all states after the first batch",
			fixture: "squeue-all",
			count:   13,
			want: map[string]scheduler.JobStatus{
				"1": {JobID: "1", Name: "sbatch", State: "COMPLETED", Reason: "None", Comment: "", Nodes: "worker-[0-1]",
					ExitCode: 0, StartTime: at("09:06:58"), EndTime: at("09:06:58")},
				"2": {JobID: "2", Name: "a very long job name with spaces, commas|pipes and more text", State: "FAILED",
					Reason: "NonZeroExitCode", Comment: "sopilot:key=0123456789abcdef0123456789abcdef|x,y", Nodes: "worker-0",
					ExitCode: 3, StartTime: at("09:07:17"), EndTime: at("09:07:17")},
				"3": {JobID: "3", Name: "fx-timeout", State: "TIMEOUT", Reason: "TimeLimit", Comment: "sopilot:fx-timeout",
					Nodes: "worker-0", ExitCode: 0, Signal: 15, StartTime: at("09:08:28"), EndTime: at("09:09:48")},
				"5": {JobID: "5", Name: "sbatch", State: "PENDING", Reason: "PartitionNodeLimit", ExitCode: -1},
				"6": {JobID: "6", Name: "sbatch", State: "FAILED", Reason: "BadConstraints", ExitCode: 0, Signal: 1,
					StartTime: zero, EndTime: at("09:08:28")},
				"8": {JobID: "8", Name: "fx-running", State: "RUNNING", Reason: "None", Comment: "sopilot:fx-running",
					Nodes: "worker-[0-1]", ExitCode: -1, StartTime: at("09:08:31")},
				// squeue prints expected start/end times for this one: dropped.
				"9":  {JobID: "9", Name: "fx-pending", State: "PENDING", Reason: "Resources", Comment: "sopilot:fx-pending", ExitCode: -1},
				"10": {JobID: "10", Name: "fx-dependent", State: "PENDING", Reason: "Dependency", Comment: "sopilot:fx-dependent", ExitCode: -1},
				// Cancelled while pending: squeue says start = end = cancel time.
				"11": {JobID: "11", Name: "fx-cancelled", State: "CANCELLED", Reason: "Priority", Comment: "sopilot:fx-cancelled",
					ExitCode: 0, EndTime: at("09:08:36")},
			},
		},
		{
			name:    "completing",
			fixture: "squeue-completing",
			count:   22,
			want: map[string]scheduler.JobStatus{
				"24": {JobID: "24", Name: "fx-completing", State: "COMPLETING", Reason: "None", Comment: "sopilot:fx-completing2",
					Nodes: "worker-0", ExitCode: -1, StartTime: at("09:11:00"), EndTime: at("09:11:02")},
				"20": {JobID: "20", Name: "fx-dep-failed", State: "PENDING", Reason: "DependencyNeverSatisfied", ExitCode: -1},
			},
		},
		{
			name:    "cancelled while running",
			fixture: "squeue-cancelled",
			count:   21,
			want: map[string]scheduler.JobStatus{
				"22": {JobID: "22", Name: "fx-running", State: "CANCELLED", Reason: "None", Comment: "sopilot:fx-running2",
					Nodes: "worker-0", ExitCode: 0, Signal: 15, StartTime: at("09:10:57"), EndTime: at("09:10:57")},
			},
		},
		{
			name:    "running single node",
			fixture: "squeue-running",
			count:   21,
			want: map[string]scheduler.JobStatus{
				"22": {JobID: "22", Name: "fx-running", State: "RUNNING", Reason: "None", Comment: "sopilot:fx-running2",
					Nodes: "worker-0", ExitCode: -1, StartTime: at("09:10:57")},
			},
		},
		{
			name:    "dependency never satisfied",
			fixture: "squeue-never-satisfied",
			count:   17,
			want: map[string]scheduler.JobStatus{
				"10": {JobID: "10", Name: "fx-dependent", State: "PENDING", Reason: "DependencyNeverSatisfied",
					Comment: "sopilot:fx-dependent", ExitCode: -1},
				"8": {JobID: "8", Name: "fx-running", State: "CANCELLED", Reason: "None", Comment: "sopilot:fx-running",
					Nodes: "worker-[0-1]", ExitCode: 0, Signal: 15, StartTime: at("09:08:31"), EndTime: at("09:10:02")},
			},
		},
		{name: "controller down prints nothing", fixture: "squeue-controller-down", count: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := parseSqueue(fixture(t, tt.fixture).stdout, time.UTC)
			if len(recs) != tt.count {
				t.Fatalf("got %d records, want %d", len(recs), tt.count)
			}
			got := map[string]scheduler.JobStatus{}
			for _, r := range recs {
				if r.err != nil {
					t.Errorf("record %q: %v", r.status.JobID, r.err)
				}
				got[r.status.JobID] = r.status
			}
			for id, want := range tt.want {
				if g, ok := got[id]; !ok {
					t.Errorf("job %s missing", id)
				} else if g != want {
					t.Errorf("job %s:\n got %+v\nwant %+v", id, g, want)
				}
			}
		})
	}
}

func TestParseSqueueMalformed(t *testing.T) {
	ok := "7\x1fn\x1fCOMPLETED\x1fNone\x1fc\x1fworker-0\x1f0\x1fN/A\x1fN/A\x1e\n"
	tests := []struct {
		name    string
		in      string
		wantIDs []string // records, in order
		wantErr []bool
	}{
		{name: "empty", in: ""},
		{name: "only newlines", in: "\n\n"},
		{name: "one good record", in: ok, wantIDs: []string{"7"}, wantErr: []bool{false}},
		{name: "no trailing newline", in: strings.TrimSuffix(ok, "\n"), wantIDs: []string{"7"}, wantErr: []bool{false}},
		{name: "too few fields", in: "8\x1fn\x1fRUNNING\x1e\n" + ok, wantIDs: []string{"8", "7"}, wantErr: []bool{true, false}},
		{name: "separator inside a comment", in: "9\x1fn\x1fRUNNING\x1fNone\x1fa\x1fb\x1fw\x1f0\x1fN/A\x1fN/A\x1e\n", wantIDs: []string{"9"}, wantErr: []bool{true}},
		{name: "non-numeric id", in: "x\x1fn\x1fRUNNING\x1fNone\x1fc\x1fw\x1f0\x1fN/A\x1fN/A\x1e\n", wantIDs: []string{"x"}, wantErr: []bool{true}},
		{name: "bad time", in: "9\x1fn\x1fRUNNING\x1fNone\x1fc\x1fw\x1f0\x1fyesterday\x1fN/A\x1e\n", wantIDs: []string{"9"}, wantErr: []bool{true}},
		{name: "human output", in: fixtureString(t, "squeue-all-human"), wantIDs: []string{"*"}, wantErr: []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := parseSqueue([]byte(tt.in), time.UTC)
			if len(recs) != len(tt.wantIDs) {
				t.Fatalf("got %d records, want %d: %+v", len(recs), len(tt.wantIDs), recs)
			}
			for i, r := range recs {
				if tt.wantIDs[i] != "*" && r.status.JobID != tt.wantIDs[i] {
					t.Errorf("record %d: id %q, want %q", i, r.status.JobID, tt.wantIDs[i])
				}
				if (r.err != nil) != tt.wantErr[i] {
					t.Errorf("record %d: err = %v, want error %v", i, r.err, tt.wantErr[i])
				}
			}
		})
	}
}

func fixtureString(t testing.TB, name string) string { return string(fixture(t, name).stdout) }

func TestParseSbatch(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "captured success", in: fixtureString(t, "sbatch-success"), want: "4"},
		{name: "captured invalid dependency accepted", in: fixtureString(t, "sbatch-invalid-dependency"), want: "7"},
		// --parsable prints "jobid;cluster" in a multi-cluster setup; it
		// cannot be produced without slurmdbd (see the README).
		{name: "with cluster", in: "123;sopilot\n", want: "123"},
		{name: "no newline", in: "42", want: "42"},
		{name: "surrounding space", in: "  42 \n\n", want: "42"},
		{name: "something printed before", in: "note\n42\n", want: "42"},
		{name: "empty", in: "", wantErr: true},
		{name: "captured failure prints nothing", in: fixtureString(t, "sbatch-invalid-partition"), wantErr: true},
		{name: "not a number", in: "Submitted batch job 42\n", wantErr: true},
		{name: "empty id before cluster", in: ";sopilot\n", wantErr: true},
		{name: "negative", in: "-1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSbatch([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSbatch(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDecodeWaitStatus(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		code, signal int
	}{
		{"success", "0", 0, 0},
		{"exit 3", "768", 3, 0},
		{"exit 255", "65280", 255, 0},
		{"SIGTERM", "15", 0, 15},
		{"SIGKILL", "9", 0, 9},
		{"SIGHUP (BadConstraints)", "1", 0, 1},
		{"NO_VAL", "4294967294", -1, 0},
		{"empty", "", -1, 0},
		{"24.11 exit 3", "3:0", 3, 0},
		{"24.11 success", "0:0", 0, 0},
		{"24.11 SIGTERM", "0:15", 0, 15},
		{"24.11 cancelled batch step exit 143", "143:0", 143, 0},
		{"24.11 exit 255", " 255:0 ", 255, 0},
		{"exit:signal, exit out of range", "256:0", -1, 0},
		{"exit:signal, signal out of range", "0:128", -1, 0},
		{"exit:signal, empty half", "3:", -1, 0},
		{"exit:signal, negative", "-1:0", -1, 0},
		{"exit:signal, three parts", "1:2:3", -1, 0},
		{"garbage", "x", -1, 0},
		{"negative", "-1", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := decodeWaitStatus(tt.in)
			if c != tt.code || s != tt.signal {
				t.Errorf("decodeWaitStatus(%q) = %d, %d; want %d, %d", tt.in, c, s, tt.code, tt.signal)
			}
		})
	}
}

func TestParseSlurmTime(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr bool
	}{
		{name: "timestamp", in: "2026-11-29T09:12:01", want: at("09:12:01")},
		{name: "N/A", in: "N/A"},
		{name: "Unknown", in: "Unknown"},
		{name: "None", in: "None"},
		{name: "empty", in: ""},
		{name: "date only", in: "2026-11-29", wantErr: true},
		{name: "garbage", in: "soon", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSlurmTime(tt.in, time.UTC)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("parseSlurmTime(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestBaseState(t *testing.T) {
	for in, want := range map[string]string{
		"RUNNING": "RUNNING", "completing": "COMPLETING", "CANCELLED by 0": "CANCELLED",
		"RUNNING+REQUEUED": "RUNNING", " PENDING ": "PENDING", "": "",
	} {
		if got := baseState(in); got != want {
			t.Errorf("baseState(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToolError(t *testing.T) {
	tests := []struct {
		name    string
		tool    string
		fixture string
		refusal error
		want    error // errors.Is target; nil: neither sentinel
		msg     string
	}{
		{name: "invalid partition", tool: "sbatch", fixture: "sbatch-invalid-partition", refusal: scheduler.ErrRejected,
			want: scheduler.ErrRejected, msg: "sbatch: slurm rejected the request: invalid partition specified: nosuch; Batch job submission failed: Invalid partition name specified"},
		{name: "too many gpus", tool: "sbatch", fixture: "sbatch-too-many-gpus", refusal: scheduler.ErrRejected,
			want: scheduler.ErrRejected, msg: "sbatch: slurm rejected the request: Batch job submission failed: Requested node configuration is not available"},
		{name: "dependency syntax", tool: "sbatch", fixture: "sbatch-invalid-dependency-syntax", refusal: scheduler.ErrRejected,
			want: scheduler.ErrRejected, msg: "sbatch: slurm rejected the request: Batch job submission failed: Job dependency problem"},
		{name: "dependency on self", tool: "sbatch", fixture: "sbatch-invalid-dependency-self", refusal: scheduler.ErrRejected,
			want: scheduler.ErrRejected, msg: "sbatch: slurm rejected the request: Batch job submission failed: Job dependency problem"},
		{name: "bad time", tool: "sbatch", fixture: "sbatch-invalid-time", refusal: scheduler.ErrRejected,
			want: scheduler.ErrRejected, msg: "sbatch: slurm rejected the request: Invalid --time specification"},
		{name: "no shebang", tool: "sbatch", fixture: "sbatch-no-shebang", refusal: scheduler.ErrRejected,
			want: scheduler.ErrRejected, msg: "sbatch: slurm rejected the request: This does not look like a batch script.  The first; line must start with #! followed by the path to an interpreter.; For instance: #!/bin/sh"},
		{name: "controller down", tool: "sbatch", fixture: "sbatch-controller-down", refusal: scheduler.ErrRejected,
			want: scheduler.ErrUnavailable, msg: "sbatch: slurm unavailable: Batch job submission failed: Unable to contact slurm controller (connect failure)"},
		{name: "no slurm.conf", tool: "sbatch", fixture: "sbatch-no-config", refusal: scheduler.ErrRejected,
			want: scheduler.ErrUnavailable},
		{name: "squeue controller down", tool: "squeue", fixture: "squeue-controller-down",
			want: scheduler.ErrUnavailable, msg: "squeue: slurm unavailable: slurm_load_jobs error: Unable to contact slurm controller (connect failure)"},
		{name: "scancel controller down", tool: "scancel", fixture: "scancel-controller-down",
			want: scheduler.ErrUnavailable, msg: "scancel: slurm unavailable: Kill job error on job id 4: Unable to contact slurm controller (connect failure)"},
		{name: "scancel empty id", tool: "scancel", fixture: "scancel-empty-id", msg: "scancel: exit status 1: Invalid job id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := fixture(t, tt.fixture)
			if res.exitCode == 0 {
				t.Fatalf("fixture %s exited 0", tt.fixture)
			}
			err := toolError(tt.tool, res, tt.refusal)
			for _, s := range []error{scheduler.ErrRejected, scheduler.ErrUnavailable} {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.want))
				}
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("error\n got %q\nwant %q", err, tt.msg)
			}
		})
	}
}

func TestIsGoneJob(t *testing.T) {
	tests := []struct {
		fixture string
		want    bool
	}{
		{"scancel-unknown-verbose", true},
		{"scancel-completed-verbose", true},
		{"scancel-controller-down", false},
		{"scancel-empty-id", false},
		{"scancel-unknown", false}, // silent: exit status 0 says it all
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			if got := isGoneJob(string(fixture(t, tt.fixture).stderr)); got != tt.want {
				t.Errorf("isGoneJob = %v, want %v", got, tt.want)
			}
		})
	}
}
