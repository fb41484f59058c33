package slurmcli

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/testbin"
)

// Tests of the squeue --json path (QueryJSON, QueryAuto) and of the choice
// between the two queries, through the runner interface.

// isJSONQuery reports whether c is squeue --json.
func isJSONQuery(c command) bool { return slices.Contains(c.args, "--json") }

// byQuery answers squeue --json with the fixture jsonName and the format
// query with formatName.
func byQuery(t testing.TB, jsonName, formatName string) *fakeRunner {
	j, f := fixture(t, jsonName), fixture(t, formatName)
	return &fakeRunner{reply: func(_ context.Context, c command) (result, error) {
		if isJSONQuery(c) {
			return j, nil
		}
		return f, nil
	}}
}

// logTo returns a logger writing text into buf (safe for concurrent use).
func logTo(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type syncBuffer = testbin.Buffer

// fxj are the jobs of the squeue-json-states capture (see the README), as
// Jobs reports them.
var fxj = map[string]scheduler.JobStatus{
	"95": {JobID: "95", Name: "fxj-running", State: "RUNNING", Reason: "None", Comment: "sopilot:fxj-running",
		Nodes: "worker-0", ExitCode: -1, StartTime: at("09:33:23")},
	"96": {JobID: "96", Name: "fxj-dependent", State: "PENDING", Reason: "Dependency", Comment: "sopilot:fxj-dependent",
		ExitCode: -1},
	"97": {JobID: "97", Name: "fxj-completed", State: "COMPLETED", Reason: "None", Comment: "sopilot:fxj-completed",
		Nodes: "worker-[0-1]", ExitCode: 0, StartTime: at("09:33:23"), EndTime: at("09:33:27")},
	"98": {JobID: "98", Name: "fxj-failed", State: "FAILED", Reason: "NonZeroExitCode", Comment: "sopilot:fxj-failed",
		Nodes: "worker-0", ExitCode: 3, StartTime: at("09:33:23"), EndTime: at("09:33:23")},
	"99": {JobID: "99", Name: "fxj-cancelled", State: "CANCELLED", Reason: "None", Comment: "sopilot:fxj-cancelled",
		Nodes: "worker-0", ExitCode: 0, Signal: 15, StartTime: at("09:33:23"), EndTime: at("09:33:25")},
	"100": {JobID: "100", Name: "fxj-held", State: "PENDING", Reason: "JobHeldUser", Comment: "sopilot:fxj-held",
		ExitCode: -1},
	// Cancelled while held: Slurm says start_time = end_time = cancel
	// time; it never ran, so no start time.
	"101": {JobID: "101", Name: "fxj-cancelled-pending", State: "CANCELLED", Reason: "JobHeldUser",
		Comment: "sopilot:fxj-cancelled-pending", ExitCode: 0, EndTime: at("09:33:22")},
}

func sameStatus(a, b scheduler.JobStatus) bool {
	return a.JobID == b.JobID && a.Name == b.Name && a.State == b.State && a.Reason == b.Reason &&
		a.Comment == b.Comment && a.Nodes == b.Nodes && a.ExitCode == b.ExitCode && a.Signal == b.Signal &&
		a.StartTime.Equal(b.StartTime) && a.EndTime.Equal(b.EndTime)
}

func TestJobsJSON(t *testing.T) {
	r := replay(t, "squeue-json-states")
	b := newTestBackend(Config{Squeue: "/opt/squeue"}, r) // default: QueryAuto
	ids := []string{"101", "95", "96", "97", "98", "99", "100", "4000000000", " 97 "}
	got, err := b.Jobs(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	// squeue --json's order (job id), each job once.
	var gotIDs []string
	for _, j := range got {
		gotIDs = append(gotIDs, j.JobID)
		if want, ok := fxj[j.JobID]; !ok {
			t.Errorf("unexpected job %+v", j)
		} else if !sameStatus(j, want) {
			t.Errorf("job %s:\n got %+v\nwant %+v", j.JobID, j, want)
		}
	}
	if want := []string{"95", "96", "97", "98", "99", "100", "101"}; !slices.Equal(gotIDs, want) {
		t.Errorf("ids %q, want %q", gotIDs, want)
	}
	if len(r.calls) != 1 {
		t.Fatalf("%d commands, want 1", len(r.calls))
	}
	c := r.calls[0]
	if c.path != "/opt/squeue" || !slices.Equal(c.args, []string{"--all", "--states=all", "--json"}) {
		t.Errorf("command %s %q", c.path, c.args)
	}
	want := []string{"PATH=/opt/slurm/bin:/usr/bin", "HOME=/var/lib/sopilot", "LANG=C.UTF-8", "SLURM_CONF=/from/controller/env/slurm.conf"}
	if !slices.Equal(c.env, want) {
		t.Errorf("env %q, want %q", c.env, want)
	}
}

func TestJobsJSONNoIDsRunsNothing(t *testing.T) {
	for _, q := range []string{QueryAuto, QueryJSON, QueryFormat} {
		r := replay(t, "squeue-json-states")
		got, err := newTestBackend(Config{Query: q}, r).Jobs(context.Background(), nil)
		if got != nil || err != nil || len(r.calls) != 0 {
			t.Errorf("%s: Jobs(nil) = %v, %v after %d commands", q, got, err, len(r.calls))
		}
	}
}

// The older capture: the moment of squeue-all, with the 22.05 fixture jobs.
func TestJobsJSONFirstBatch(t *testing.T) {
	got, err := newTestBackend(Config{Query: QueryJSON}, replay(t, "squeue-json")).Jobs(context.Background(), []string{"2", "3", "8", "10", "11"})
	if err != nil {
		t.Fatal(err)
	}
	want := []scheduler.JobStatus{
		{JobID: "2", Name: "a very long job name with spaces, commas|pipes and more text", State: "FAILED",
			Reason: "NonZeroExitCode", Comment: "sopilot:key=0123456789abcdef0123456789abcdef|x,y", Nodes: "worker-0",
			ExitCode: 3, StartTime: at("09:07:17"), EndTime: at("09:07:17")},
		{JobID: "3", Name: "fx-timeout", State: "TIMEOUT", Reason: "TimeLimit", Comment: "sopilot:fx-timeout",
			Nodes: "worker-0", ExitCode: 0, Signal: 15, StartTime: at("09:08:28"), EndTime: at("09:09:48")},
		{JobID: "8", Name: "fx-running", State: "RUNNING", Reason: "None", Comment: "sopilot:fx-running",
			Nodes: "worker-[0-1]", ExitCode: -1, StartTime: at("09:08:31")},
		{JobID: "10", Name: "fx-dependent", State: "PENDING", Reason: "Dependency", Comment: "sopilot:fx-dependent", ExitCode: -1},
		{JobID: "11", Name: "fx-cancelled", State: "CANCELLED", Reason: "Priority", Comment: "sopilot:fx-cancelled",
			ExitCode: 0, EndTime: at("09:08:36")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d jobs %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !sameStatus(got[i], want[i]) {
			t.Errorf("job %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestFindByCommentJSON(t *testing.T) {
	tests := []struct {
		fixture, prefix string
		want            []string
	}{
		{"squeue-json-states", "sopilot:fxj-", []string{"95", "96", "97", "98", "99", "100", "101"}},
		{"squeue-json-states", "sopilot:fxj-cancelled", []string{"99", "101"}},
		{"squeue-json-states", "slurmrest-it:", []string{"90", "91", "92", "93", "94"}},
		{"squeue-json-states", "nothing-has-this", nil},
		{"squeue-json", "sopilot:fx-", []string{"3", "4", "8", "9", "10", "11", "13"}},
		{"squeue-json", "", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}},
		{"squeue-json", "sopilot:key=0123", []string{"2"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.prefix, func(t *testing.T) {
			r := replay(t, tt.fixture)
			got, err := newTestBackend(Config{}, r).FindByComment(context.Background(), tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range got {
				ids = append(ids, j.JobID)
				if !strings.HasPrefix(j.Comment, tt.prefix) {
					t.Errorf("job %s comment %q", j.JobID, j.Comment)
				}
			}
			if !slices.Equal(ids, tt.want) || len(r.calls) != 1 || !isJSONQuery(r.calls[0]) {
				t.Errorf("ids %q after %d calls, want %q after one squeue --json", ids, len(r.calls), tt.want)
			}
		})
	}
}

// Each JSON capture was taken right next to a format capture of the same
// jobs: both queries must report every job identically.
func TestQueryModesAgree(t *testing.T) {
	for _, pair := range [][2]string{{"squeue-json-states", "squeue-states"}, {"squeue-json", "squeue-all"}} {
		t.Run(pair[0], func(t *testing.T) {
			var ids []string
			for _, rec := range parseSqueue(fixture(t, pair[1]).stdout, time.UTC) {
				ids = append(ids, rec.status.JobID)
			}
			if len(ids) < 10 {
				t.Fatalf("only %d jobs in %s", len(ids), pair[1])
			}
			r := byQuery(t, pair[0], pair[1])
			asJSON, err := newTestBackend(Config{Query: QueryJSON}, r).Jobs(context.Background(), ids)
			if err != nil {
				t.Fatal(err)
			}
			asFormat, err := newTestBackend(Config{Query: QueryFormat}, r).Jobs(context.Background(), ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(asJSON) != len(ids) || len(asFormat) != len(ids) {
				t.Fatalf("%d jobs from JSON, %d from format, want %d", len(asJSON), len(asFormat), len(ids))
			}
			formatByID := map[string]scheduler.JobStatus{}
			for _, j := range asFormat {
				formatByID[j.JobID] = j
			}
			for _, j := range asJSON {
				if f := formatByID[j.JobID]; !sameStatus(j, f) {
					t.Errorf("job %s:\n  json %+v\nformat %+v", j.JobID, j, f)
				}
			}
			if len(r.calls) != 2 || !isJSONQuery(r.calls[0]) || isJSONQuery(r.calls[1]) {
				t.Errorf("commands %v", r.calls)
			}
		})
	}
}

func TestQueryAutoFallsBackOnce(t *testing.T) {
	for _, failure := range []string{"squeue-json-no-openapi", "squeue-json-no-serializer", "unrecognized option"} {
		t.Run(failure, func(t *testing.T) {
			var r *fakeRunner
			if failure == "unrecognized option" {
				// What a squeue without --json (before 21.08) says: getopt's
				// message, as 22.05's squeue prints it for `squeue --jsonx`.
				f := fixture(t, "squeue-states")
				r = &fakeRunner{reply: func(_ context.Context, c command) (result, error) {
					if isJSONQuery(c) {
						return result{exitCode: 1, stderr: []byte("squeue: unrecognized option '--json'\nTry \"squeue --help\" for more information\n")}, nil
					}
					return f, nil
				}}
			} else {
				r = byQuery(t, failure, "squeue-states")
			}
			var logs syncBuffer
			b := newBackend(Config{Location: time.UTC}, logTo(&logs), r, fakeEnv)
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := b.Jobs(context.Background(), []string{"97", "98"})
					if err != nil || len(got) != 2 || !sameStatus(got[0], fxj["97"]) || !sameStatus(got[1], fxj["98"]) {
						t.Errorf("Jobs = %+v, %v", got, err)
					}
				}()
			}
			wg.Wait()
			// One log line, at Warn, whatever the number of concurrent calls.
			if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "level=WARN") ||
				!strings.Contains(logs.String(), "cannot print JSON") {
				t.Errorf("%d log lines, want one warning:\n%s", n, logs.String())
			}
			// From now on only the format query runs.
			before := len(r.calls)
			if _, err := b.FindByComment(context.Background(), "sopilot:"); err != nil {
				t.Fatal(err)
			}
			if len(r.calls) != before+1 || isJSONQuery(r.calls[before]) {
				t.Errorf("after the fallback: %d more commands, json=%v", len(r.calls)-before, isJSONQuery(r.calls[len(r.calls)-1]))
			}
			var jsonCalls int
			for _, c := range r.calls {
				if isJSONQuery(c) {
					jsonCalls++
				}
			}
			if jsonCalls < 1 || jsonCalls > 8 {
				t.Errorf("%d squeue --json runs", jsonCalls)
			}
		})
	}
}

func TestQueryJSONDoesNotFallBack(t *testing.T) {
	r := byQuery(t, "squeue-json-no-openapi", "squeue-states")
	b := newTestBackend(Config{Query: " JSON "}, r)
	for range 2 {
		_, err := b.Jobs(context.Background(), []string{"97"})
		if !errors.Is(err, errNoJSON) || errors.Is(err, scheduler.ErrUnavailable) || errors.Is(err, scheduler.ErrRejected) {
			t.Errorf("err = %v, want errNoJSON only", err)
		}
		if err != nil && !strings.Contains(err.Error(), "Unable to find plugin: openapi/v0.0.38") {
			t.Errorf("err = %v lacks squeue's message", err)
		}
	}
	for _, c := range r.calls {
		if !isJSONQuery(c) {
			t.Errorf("QueryJSON ran %q", c.args)
		}
	}
	if len(r.calls) != 2 {
		t.Errorf("%d commands, want 2", len(r.calls))
	}
}

// Failures that are not about JSON support never switch the query.
func TestQueryAutoKeepsJSONOnOtherFailures(t *testing.T) {
	tests := []struct {
		name   string
		res    result
		target error // nil: a plain error
	}{
		{name: "controller down", res: fixture(t, "squeue-controller-down"), target: scheduler.ErrUnavailable},
		{name: "other error", res: result{exitCode: 1, stderr: []byte("squeue: error: Invalid user: nobody\n")}},
		{name: "controller down in the document", target: scheduler.ErrUnavailable, res: result{exitCode: 1,
			stdout: []byte(`{"jobs":[],"errors":[{"error":"Unable to contact slurm controller (connect failure)","error_number":1800}]}`)}},
		{name: "not a job listing", res: result{stdout: []byte(`{"meta":{},"errors":[]}`)}},
		{name: "not json", res: fixture(t, "squeue-states")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{reply: func(context.Context, command) (result, error) { return tt.res, nil }}
			var logs syncBuffer
			b := newBackend(Config{}, logTo(&logs), r, fakeEnv)
			for range 2 {
				_, err := b.Jobs(context.Background(), []string{"1"})
				switch {
				case err == nil:
					t.Fatal("no error")
				case tt.target != nil && !errors.Is(err, tt.target):
					t.Errorf("err = %v, want %v", err, tt.target)
				case tt.target == nil && (errors.Is(err, scheduler.ErrUnavailable) || errors.Is(err, scheduler.ErrRejected)):
					t.Errorf("err = %v, want a plain error", err)
				case errors.Is(err, errNoJSON):
					t.Errorf("err = %v taken for missing JSON support", err)
				}
				if !strings.HasPrefix(err.Error(), "squeue") {
					t.Errorf("err = %q", err)
				}
			}
			if len(r.calls) != 2 || !isJSONQuery(r.calls[0]) || !isJSONQuery(r.calls[1]) || b.noJSON.Load() {
				t.Errorf("%d commands; fell back: %v", len(r.calls), b.noJSON.Load())
			}
			if logs.String() != "" {
				t.Errorf("logged %s", logs.String())
			}
		})
	}
}

func TestQueryFormatNeverRunsJSON(t *testing.T) {
	r := byQuery(t, "squeue-json-states", "squeue-states")
	b := newTestBackend(Config{Query: QueryFormat}, r)
	got, err := b.Jobs(context.Background(), []string{"99"})
	if err != nil || len(got) != 1 || !sameStatus(got[0], fxj["99"]) {
		t.Fatalf("Jobs = %+v, %v", got, err)
	}
	if _, err := b.FindByComment(context.Background(), "sopilot:"); err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 2 || isJSONQuery(r.calls[0]) || isJSONQuery(r.calls[1]) {
		t.Errorf("commands %v", r.calls)
	}
}

func TestQueryModeConfig(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", QueryAuto}, {"auto", QueryAuto}, {"json", QueryJSON}, {" Format ", QueryFormat}, {"yaml", QueryAuto},
	}
	for _, tt := range tests {
		var logs syncBuffer
		b := newBackend(Config{Query: tt.in}, logTo(&logs), &fakeRunner{}, fakeEnv)
		if b.cfg.Query != tt.want {
			t.Errorf("Query %q -> %q, want %q", tt.in, b.cfg.Query, tt.want)
		}
		if warned := strings.Contains(logs.String(), "unknown squeue query mode"); warned != (tt.in == "yaml") {
			t.Errorf("Query %q: warning logged = %v", tt.in, warned)
		}
	}
}

func TestIsNoJSON(t *testing.T) {
	tests := []struct {
		stderr string
		want   bool
	}{
		{string(fixture(t, "squeue-json-no-openapi").stderr), true},
		{string(fixture(t, "squeue-json-no-serializer").stderr), true},
		{"squeue: unrecognized option '--json'\nTry \"squeue --help\" for more information\n", true},
		// The same loader message for newer Slurm's plugin (not captured).
		{"squeue: fatal: Unable to find plugin: data_parser/v0.0.40\n", true},
		{string(fixture(t, "squeue-controller-down").stderr), false},
		{"squeue: error: Invalid user: nobody\n", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isNoJSON(tt.stderr); got != tt.want {
			t.Errorf("isNoJSON(%q) = %v, want %v", tt.stderr, got, tt.want)
		}
	}
}

// TestJSONListingWithErrors: with slurmctld down, squeue --json exits 0
// and prints an empty job list next to an "errors" entry (captured on
// 22.05; 24.11 and 26.05 do the same). That is ErrUnavailable, never "no
// jobs", and it does not make QueryAuto fall back.
func TestJSONListingWithErrors(t *testing.T) {
	r := replay(t, "squeue-json-controller-down")
	b := newTestBackend(Config{}, r)
	for range 2 {
		jobs, err := b.Jobs(context.Background(), []string{"1"})
		if !errors.Is(err, scheduler.ErrUnavailable) || errors.Is(err, scheduler.ErrRejected) || jobs != nil {
			t.Fatalf("Jobs = %+v, %v; want ErrUnavailable", jobs, err)
		}
		if !strings.Contains(err.Error(), "Failed while looking for jobs") {
			t.Errorf("error %q does not say why", err)
		}
		if _, err := b.FindByComment(context.Background(), "sopilot:"); !errors.Is(err, scheduler.ErrUnavailable) {
			t.Fatalf("FindByComment: %v", err)
		}
	}
	for _, c := range r.calls {
		if !slices.Contains(c.args, "--json") {
			t.Fatalf("fell back to %q", c.args)
		}
	}
}
