package slurmjson

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// The fixtures live with the backends that capture them and are read from
// there: slurmrestd answers (captured from 22.05 and written from the
// v0.0.40+ documentation) and squeue --json output (captured from 22.05).
const (
	restTestdata = "../slurmrest/testdata"
	fixtures2205 = restTestdata + "/slurm-22.05-v0.0.38"
	cliTestdata  = "../slurmcli/testdata/slurm-22.05"
)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return data
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// oneJob parses a fixture that holds exactly one job.
func oneJob(t *testing.T, path string) scheduler.JobStatus {
	t.Helper()
	jobs, err := ParseJobs(readFixture(t, path))
	if err != nil {
		t.Fatalf("ParseJobs(%s): %v", path, err)
	}
	if len(jobs) != 1 {
		t.Fatalf("ParseJobs(%s): got %d jobs, want 1", path, len(jobs))
	}
	return jobs[0]
}

func assertJob(t *testing.T, got, want scheduler.JobStatus) {
	t.Helper()
	if got.JobID != want.JobID || got.Name != want.Name || got.State != want.State ||
		got.Reason != want.Reason || got.Comment != want.Comment || got.Nodes != want.Nodes ||
		got.ExitCode != want.ExitCode || got.Signal != want.Signal ||
		!got.StartTime.Equal(want.StartTime) || !got.EndTime.Equal(want.EndTime) {
		t.Errorf("job mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

// The captured 22.05 answers: job_state a string, exit_code the raw wait
// status (768 = "exit 3", 15 = killed by SIGTERM), times in Unix seconds.
func TestParseJobs_Slurm2205Captured(t *testing.T) {
	tests := []struct {
		name string
		file string
		want scheduler.JobStatus
	}{
		{
			name: "completed on two nodes",
			file: "job-completed.json",
			want: scheduler.JobStatus{JobID: "4", Name: "fx-completed", State: "COMPLETED", Reason: "None",
				Comment: "sopilot:fx-completed", Nodes: "worker-[0-1]", ExitCode: 0,
				StartTime: unix(1795943308), EndTime: unix(1795943308)},
		},
		{
			name: "exit 3 is raw status 768",
			file: "job-failed.json",
			want: scheduler.JobStatus{JobID: "2", Name: "a very long job name with spaces, commas|pipes and more text",
				State: "FAILED", Reason: "NonZeroExitCode",
				Comment: "sopilot:key=0123456789abcdef0123456789abcdef|x,y", Nodes: "worker-0", ExitCode: 3,
				StartTime: unix(1795943237), EndTime: unix(1795943237)},
		},
		{
			name: "timeout is SIGTERM",
			file: "job-timeout.json",
			want: scheduler.JobStatus{JobID: "3", Name: "fx-timeout", State: "TIMEOUT", Reason: "TimeLimit",
				Comment: "sopilot:fx-timeout", Nodes: "worker-0", ExitCode: 0, Signal: 15,
				StartTime: unix(1795943308), EndTime: unix(1795943388)},
		},
		{
			name: "cancelled while running",
			file: "job-cancelled-while-running.json",
			want: scheduler.JobStatus{JobID: "22", Name: "fx-running", State: "CANCELLED", Reason: "None",
				Comment: "sopilot:fx-running2", Nodes: "worker-0", ExitCode: 0, Signal: 15,
				StartTime: unix(1795943457), EndTime: unix(1795943457)},
		},
		{
			name: "cancelled while pending keeps Slurm's times",
			file: "job-cancelled-while-pending.json",
			want: scheduler.JobStatus{JobID: "11", Name: "fx-cancelled", State: "CANCELLED", Reason: "Priority",
				Comment: "sopilot:fx-cancelled", ExitCode: 0,
				StartTime: unix(1795943316), EndTime: unix(1795943316)},
		},
		{
			name: "pending: estimated times dropped, exit unknown",
			file: "job-pending.json",
			want: scheduler.JobStatus{JobID: "9", Name: "fx-pending", State: "PENDING", Reason: "Resources",
				Comment: "sopilot:fx-pending", ExitCode: -1},
		},
		{
			name: "pending on dependency",
			file: "job-dependent.json",
			want: scheduler.JobStatus{JobID: "10", Name: "fx-dependent", State: "PENDING", Reason: "Dependency",
				Comment: "sopilot:fx-dependent", ExitCode: -1},
		},
		{
			name: "running: expected end dropped",
			file: "job-running.json",
			want: scheduler.JobStatus{JobID: "8", Name: "fx-running", State: "RUNNING", Reason: "None",
				Comment: "sopilot:fx-running", Nodes: "worker-[0-1]", ExitCode: -1,
				StartTime: unix(1795943311)},
		},
		{
			name: "completing: ended, exit status not settled yet",
			file: "job-completing.json",
			want: scheduler.JobStatus{JobID: "24", Name: "fx-completing", State: "COMPLETING", Reason: "None",
				Comment: "sopilot:fx-completing2", Nodes: "worker-0", ExitCode: -1,
				StartTime: unix(1795943460), EndTime: unix(1795943462)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertJob(t, oneJob(t, filepath.Join(fixtures2205, tt.file)), tt.want)
		})
	}
}

// Every captured listing parses, every job in it has an id, and no job is
// dropped.
func TestParseJobs_Slurm2205Listings(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures2205, "job*.json"))
	if len(files) == 0 {
		t.Fatalf("no captured 22.05 listings in %s", fixtures2205)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data := readFixture(t, f)
			var raw struct {
				Jobs []json.RawMessage `json:"jobs"`
			}
			if err := json.Unmarshal(data, &raw); err != nil {
				t.Fatalf("fixture is not a listing: %v", err)
			}
			jobs, err := ParseJobs(data)
			if err != nil {
				t.Fatalf("parseJobs: %v", err)
			}
			if len(jobs) != len(raw.Jobs) {
				t.Fatalf("got %d jobs, fixture has %d", len(jobs), len(raw.Jobs))
			}
			for _, j := range jobs {
				if j.JobID == "" || j.State == "" {
					t.Errorf("job without id or state: %+v", j)
				}
				if j.ExitCode < -1 || j.ExitCode > 255 || j.Signal < 0 || j.Signal > 127 {
					t.Errorf("exit code out of range: %+v", j)
				}
			}
		})
	}
}

// squeue --json prints the same document as slurmrestd (captured from
// 22.05 next to the slurmcli fixtures). ParseJobs reports what Slurm says;
// slurmcli applies its own rules on top (no start time for job 101).
func TestParseJobs_SqueueJSON(t *testing.T) {
	jobs, err := ParseJobs(readFixture(t, filepath.Join(cliTestdata, "squeue-json-states.stdout")))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 29 {
		t.Fatalf("got %d jobs, want 29", len(jobs))
	}
	want := map[string]scheduler.JobStatus{
		"95": {JobID: "95", Name: "fxj-running", State: "RUNNING", Reason: "None", Comment: "sopilot:fxj-running",
			Nodes: "worker-0", ExitCode: -1, StartTime: unix(1795944803)},
		"96": {JobID: "96", Name: "fxj-dependent", State: "PENDING", Reason: "Dependency", Comment: "sopilot:fxj-dependent",
			ExitCode: -1},
		"97": {JobID: "97", Name: "fxj-completed", State: "COMPLETED", Reason: "None", Comment: "sopilot:fxj-completed",
			Nodes: "worker-[0-1]", ExitCode: 0, StartTime: unix(1795944803), EndTime: unix(1795944807)},
		"98": {JobID: "98", Name: "fxj-failed", State: "FAILED", Reason: "NonZeroExitCode", Comment: "sopilot:fxj-failed",
			Nodes: "worker-0", ExitCode: 3, StartTime: unix(1795944803), EndTime: unix(1795944803)},
		"99": {JobID: "99", Name: "fxj-cancelled", State: "CANCELLED", Reason: "None", Comment: "sopilot:fxj-cancelled",
			Nodes: "worker-0", ExitCode: 0, Signal: 15, StartTime: unix(1795944803), EndTime: unix(1795944805)},
		"100": {JobID: "100", Name: "fxj-held", State: "PENDING", Reason: "JobHeldUser", Comment: "sopilot:fxj-held",
			ExitCode: -1},
		"101": {JobID: "101", Name: "fxj-cancelled-pending", State: "CANCELLED", Reason: "JobHeldUser",
			Comment: "sopilot:fxj-cancelled-pending", ExitCode: 0, StartTime: unix(1795944802), EndTime: unix(1795944802)},
		// Slurm prints "(null)" for it in the format query, "" here.
		"20": {JobID: "20", Name: "fx-dep-failed", State: "CANCELLED", Reason: "DependencyNeverSatisfied",
			ExitCode: 0, StartTime: unix(1795944578), EndTime: unix(1795944578)},
	}
	seen := 0
	for _, j := range jobs {
		if w, ok := want[j.JobID]; ok {
			seen++
			assertJob(t, j, w)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d jobs", seen, len(want))
	}
}

func TestIntAndString(t *testing.T) {
	ints := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`7`, 7, true}, {` "12" `, 12, true}, {`{"set":true,"infinite":false,"number":5}`, 5, true},
		{`{"set":false,"number":5}`, 0, false}, {`{"infinite":true,"number":5}`, 0, false},
		{`1e3`, 1000, true}, {`1.5`, 0, false}, {`true`, 0, false}, {`null`, 0, false}, {``, 0, false}, {`[1]`, 0, false},
	}
	for _, tt := range ints {
		if got, ok := Int(json.RawMessage(tt.in)); got != tt.want || ok != tt.ok {
			t.Errorf("Int(%s) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	strs := []struct{ in, want string }{
		{`"a\u00e9"`, "a\u00e9"}, {`12`, "12"}, {`true`, "true"}, {`null`, ""}, {`{}`, ""}, {`[]`, ""}, {`"bad`, ""},
	}
	for _, tt := range strs {
		if got := String(json.RawMessage(tt.in)); got != tt.want {
			t.Errorf("String(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// newerListings are the listings captured from Slurm 24.11.5 and 26.05.5:
// slurmrestd's GET /jobs for every API version each serves, and squeue
// --json. Jobs 2-10 are the CLI capture script's
// (../slurmcli/testdata/slurm-24.11/README.md); by the time of the REST
// captures all had ended.
func newerListings(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		restTestdata + "/slurm-2[46].*-v0.0.*/jobs*.json",
		"../slurmcli/testdata/slurm-2[46].*/squeue-json-*.stdout",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if !strings.Contains(f, "controller-down") { // empty: squeue failed
				files = append(files, f)
			}
		}
	}
	if len(files) < 20 {
		t.Fatalf("only %d newer listings: %v", len(files), files)
	}
	return files
}

func TestParseJobs_NewerCaptured(t *testing.T) {
	// Jobs that had ended before every capture, as every capture must read them.
	want := map[string]scheduler.JobStatus{
		"2": {JobID: "2", Name: "fx-completed", State: "COMPLETED", Reason: "None", Comment: "sopilot:fx-completed",
			Nodes: "worker-[0-1]", ExitCode: 0},
		"5": {JobID: "5", Name: "fxj-failed", State: "FAILED", Reason: "NonZeroExitCode", Comment: "sopilot:fxj-failed",
			Nodes: "worker-0", ExitCode: 3},
		"6": {JobID: "6", Name: "fxj-cancelled", State: "CANCELLED", Reason: "None", Comment: "sopilot:fxj-cancelled",
			Nodes: "worker-0", ExitCode: 0, Signal: 15},
		"8": {JobID: "8", Name: "fxj-held-cancelled", State: "CANCELLED", Reason: "JobHeldUser", Comment: "sopilot:fxj-held-cancelled",
			ExitCode: 0},
	}
	for _, path := range newerListings(t) {
		t.Run(path, func(t *testing.T) {
			jobs, err := ParseJobs(readFixture(t, path))
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, j := range jobs {
				w, ok := want[j.JobID]
				if !ok {
					if j.State == "COMPLETING" || !ended(j.State) {
						if j.ExitCode != -1 || j.Signal != 0 {
							t.Errorf("job %s not final but with an exit code: %+v", j.JobID, j)
						}
					}
					continue
				}
				seen++
				// (A job cancelled while held has start = end = the
				// cancel time here; slurmcli drops that start.)
				if j.StartTime.IsZero() || j.EndTime.IsZero() {
					t.Errorf("job %s times %v %v", j.JobID, j.StartTime, j.EndTime)
				}
				w.StartTime, w.EndTime = j.StartTime, j.EndTime
				assertJob(t, j, w)
			}
			if seen != len(want) {
				t.Errorf("%d of the %d ended jobs found", seen, len(want))
			}
		})
	}
}

func TestParseJobs_Shapes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []scheduler.JobStatus
		wantErr bool
	}{
		{name: "not json", in: `<html>`, wantErr: true},
		{name: "array at top level", in: `[]`, wantErr: true},
		{name: "null document", in: `null`, wantErr: true},
		{name: "no jobs field", in: `{"errors":[]}`, wantErr: true},
		{name: "jobs is an object", in: `{"jobs":{}}`, wantErr: true},
		{name: "jobs null", in: `{"jobs":null}`, want: []scheduler.JobStatus{}},
		{name: "empty list", in: `{"jobs":[]}`, want: []scheduler.JobStatus{}},
		{
			name: "only an id: unknown state, zero values",
			in:   `{"jobs":[{"job_id":7}]}`,
			want: []scheduler.JobStatus{{JobID: "7", ExitCode: -1}},
		},
		{
			name: "junk entries and jobs without id are skipped",
			in:   `{"jobs":[1,"x",null,[],{"name":"noid"},{"job_id":null},{"job_id":0},{"job_id":4294967294},{"job_id":"12"}]}`,
			want: []scheduler.JobStatus{{JobID: "12", ExitCode: -1}},
		},
		{
			name: "wrong types give zero values",
			in: `{"jobs":[{"job_id":{"set":true,"number":5},"name":12,"job_state":{"a":1},"comment":["x"],` +
				`"nodes":null,"exit_code":"abc","start_time":"soon","end_time":true}]}`,
			want: []scheduler.JobStatus{{JobID: "5", Name: "12", ExitCode: -1}},
		},
		{
			name: "v0.0.38 strings, lower case state",
			in: `{"jobs":[{"job_id":3,"name":"n","job_state":"failed","state_reason":"NonZeroExitCode",` +
				`"exit_code":256,"start_time":100,"end_time":200,"nodes":"w0"}]}`,
			want: []scheduler.JobStatus{{JobID: "3", Name: "n", State: "FAILED", Reason: "NonZeroExitCode",
				Nodes: "w0", ExitCode: 1, StartTime: unix(100), EndTime: unix(200)}},
		},
		{
			name: "v0.0.38 exit code NO_VAL is unknown",
			in:   `{"jobs":[{"job_id":3,"job_state":"FAILED","exit_code":4294967294}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "FAILED", ExitCode: -1}},
		},
		{
			name: "v0.0.39 exit code structure around the raw status",
			in:   `{"jobs":[{"job_id":3,"job_state":"FAILED","exit_code":{"set":true,"infinite":false,"number":512}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "FAILED", ExitCode: 2}},
		},
		{
			name: "v0.0.40 flags only: first entry",
			in:   `{"jobs":[{"job_id":3,"job_state":["COMPLETING","REQUEUED"]}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "COMPLETING", ExitCode: -1}},
		},
		{
			name: "v0.0.40 completing flag wins over the base state, exit not settled",
			in:   `{"jobs":[{"job_id":3,"job_state":["COMPLETING","FAILED"],"exit_code":{"status":["ERROR"],"return_code":{"set":true,"infinite":false,"number":42}}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "COMPLETING", ExitCode: -1}},
		},
		{
			name: "v0.0.40 base state after a flag job_state_string does not print",
			in:   `{"jobs":[{"job_id":3,"job_state":["LAUNCH_FAILED","FAILED"],"exit_code":{"status":["ERROR"],"return_code":{"set":true,"infinite":false,"number":42}}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "FAILED", ExitCode: 42}},
		},
		{
			name: "24.11 right after scancel: cancelled, completing, exit SUCCESS not final",
			in:   `{"jobs":[{"job_id":3,"job_state":["CANCELLED","COMPLETING"],"exit_code":{"status":["SUCCESS"],"return_code":{"set":true,"infinite":false,"number":0},"signal":{"id":{"set":false,"infinite":false,"number":0},"name":""}},"end_time":{"set":true,"infinite":false,"number":200}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "COMPLETING", ExitCode: -1, EndTime: unix(200)}},
		},
		{
			name: "flag precedence: completing before requeued",
			in:   `{"jobs":[{"job_id":3,"job_state":["PENDING","REQUEUED","COMPLETING"]}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "COMPLETING", ExitCode: -1}},
		},
		{
			name: "v0.0.40 empty state array",
			in:   `{"jobs":[{"job_id":3,"job_state":[]}]}`,
			want: []scheduler.JobStatus{{JobID: "3", ExitCode: -1}},
		},
		{
			name: "v0.0.40 signal by name only",
			in:   `{"jobs":[{"job_id":3,"job_state":["CANCELLED"],"exit_code":{"status":["SIGNALED"],"signal":{"name":"TERM"}}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "CANCELLED", Signal: 15}},
		},
		{
			name: "v0.0.40 unknown signal printed as a number",
			in:   `{"jobs":[{"job_id":3,"job_state":["CANCELLED"],"exit_code":{"status":["SIGNALED"],"signal":{"id":{"set":false},"name":"31"}}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "CANCELLED", Signal: 31}},
		},
		{
			name: "v0.0.40 complex mode: plain numbers and nulls",
			in: `{"jobs":[{"job_id":3,"job_state":["FAILED"],"exit_code":{"status":["ERROR"],"return_code":7,"signal":{"id":null,"name":null}},` +
				`"start_time":100,"end_time":null}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "FAILED", ExitCode: 7, StartTime: unix(100)}},
		},
		{
			name: "infinite and unset times are zero",
			in:   `{"jobs":[{"job_id":3,"job_state":["TIMEOUT"],"start_time":{"set":false,"number":5},"end_time":{"set":true,"infinite":true,"number":9}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "TIMEOUT", ExitCode: -1}},
		},
		{
			name: "pending exit status object is unknown",
			in:   `{"jobs":[{"job_id":3,"job_state":["FAILED"],"exit_code":{"status":["PENDING"],"return_code":{"set":false}}}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "FAILED", ExitCode: -1}},
		},
		{
			name: "float numbers that are integers",
			in:   `{"jobs":[{"job_id":3.0,"job_state":"COMPLETED","exit_code":0.0,"start_time":1e3}]}`,
			want: []scheduler.JobStatus{{JobID: "3", State: "COMPLETED", StartTime: unix(1000)}},
		},
		{
			name: "huge numbers do not overflow",
			in:   `{"jobs":[{"job_id":99999999999999999999999,"job_state":"COMPLETED"},{"job_id":2,"job_state":"COMPLETED","start_time":1e300,"exit_code":-5}]}`,
			want: []scheduler.JobStatus{{JobID: "2", State: "COMPLETED", ExitCode: -1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJobs([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJobs: %v", err)
			}
			if got == nil {
				t.Fatal("nil slice for a valid listing")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d jobs %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				assertJob(t, got[i], tt.want[i])
			}
		})
	}
}

func TestWaitStatus(t *testing.T) {
	tests := []struct {
		name     string
		raw      int64
		code     int
		signal   int
		describe string
	}{
		{name: "exit 0", raw: 0, code: 0},
		{name: "exit 3", raw: 3 << 8, code: 3},
		{name: "exit 255", raw: 255 << 8, code: 255},
		{name: "SIGKILL", raw: 9, signal: 9},
		{name: "SIGTERM", raw: 15, signal: 15},
		{name: "SIGSEGV with core", raw: 11 | 0x80, signal: 11},
		{name: "stopped", raw: 0x7f | 19<<8, code: -1},
		{name: "negative", raw: -1, code: -1},
		{name: "NO_VAL", raw: NoVal, code: -1},
		{name: "INFINITE", raw: Infinite, code: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, sig := waitStatus(tt.raw)
			if code != tt.code || sig != tt.signal {
				t.Errorf("waitStatus(%d) = %d, %d; want %d, %d", tt.raw, code, sig, tt.code, tt.signal)
			}
		})
	}
}

// seedFiles are every JSON answer under the slurmrest testdata, captured or
// written, and every squeue --json capture.
func seedFiles(t testing.TB) []string {
	var files []string
	err := filepath.WalkDir(restTestdata, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") && !strings.HasSuffix(path, ".request.json") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk testdata: %v", err)
	}
	squeue, _ := filepath.Glob(filepath.Join(cliTestdata, "squeue-json*.stdout"))
	if len(files) == 0 || len(squeue) == 0 {
		t.Fatalf("no seed files under %s and %s", restTestdata, cliTestdata)
	}
	return append(files, squeue...)
}

func FuzzParseJobs(f *testing.F) {
	for _, path := range seedFiles(f) {
		f.Add(readFixture(f, path))
	}
	f.Add([]byte(`{"jobs":[{"job_id":1,"job_state":["RUNNING","COMPLETING"],"exit_code":{"status":["SIGNALED"],"return_code":{"set":false},"signal":{"id":{"set":true,"number":9},"name":"KILL"}},"start_time":{"set":true,"infinite":false,"number":1700000000}}]}`))
	f.Add([]byte(`{"jobs":[{"job_id":"1","exit_code":768,"job_state":"FAILED","start_time":1,"end_time":2}]}`))
	for _, in := range referenceCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Exactly what the map-based parser gave, on any input.
		sameResult(t, data)
		jobs, err := ParseJobs(data)
		if err != nil {
			return
		}
		for _, j := range jobs {
			if j.JobID == "" {
				t.Fatalf("job without id: %+v", j)
			}
			if j.ExitCode < -1 || j.ExitCode > 0xffffffff || j.Signal < 0 || j.Signal > 255 {
				t.Fatalf("exit code out of range: %+v", j)
			}
			if !ended(j.State) && (j.ExitCode != -1 || !j.EndTime.IsZero()) {
				t.Fatalf("unfinished job with final values: %+v", j)
			}
		}
	})
}
