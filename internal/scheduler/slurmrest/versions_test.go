package slurmrest

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// capturedDirs are the slurmrestd captures of every Slurm version and API
// version this package speaks (testdata/slurm-*/README.md), with the jobs
// each capture script submitted over REST.
var capturedDirs = []struct {
	dir             string
	ok, cancelled   string // job ids: completed, cancelled while running
	servedFromPaths []int  // from openapi-v3-paths.json, where captured
}{
	{dir: "slurm-24.11-v0.0.40", ok: "11", cancelled: "12"},
	{dir: "slurm-24.11-v0.0.41", ok: "13", cancelled: "14"},
	{dir: "slurm-24.11-v0.0.42", ok: "15", cancelled: "16", servedFromPaths: []int{40, 41, 42}},
	{dir: "slurm-26.05-v0.0.42", ok: "11", cancelled: "12"},
	{dir: "slurm-26.05-v0.0.43", ok: "13", cancelled: "14"},
	{dir: "slurm-26.05-v0.0.44", ok: "15", cancelled: "16"},
	{dir: "slurm-26.05-v0.0.45", ok: "17", cancelled: "18", servedFromPaths: []int{42, 43, 44, 45}},
}

// TestCaptured_EveryVersion runs the Backend against the real answers of
// each version: submit, listing, cancel (running, again, ended, unknown),
// nodes, slurmctld unreachable and unknown paths, each with the outcome
// the Backend documents.
func TestCaptured_EveryVersion(t *testing.T) {
	for _, c := range capturedDirs {
		ver := c.dir[len(c.dir)-7:]
		t.Run(c.dir, func(t *testing.T) {
			ctx := context.Background()
			backend := func(t *testing.T, fixture string) *Backend {
				f := newFakeRESTFixture(t, filepath.Join("testdata", c.dir, fixture))
				return newTestBackend(t, Config{BaseURL: f.srv.URL, APIVersion: ver})
			}
			if id, err := backend(t, "submit-success.json").Submit(ctx, seedSpec()); err != nil || id != c.ok {
				t.Errorf("submit-success: %q, %v; want %s", id, err, c.ok)
			}
			if _, err := backend(t, "submit-invalid-partition.json").Submit(ctx, seedSpec()); sentinel(err) != "rejected" {
				t.Errorf("submit-invalid-partition: %v", err)
			}
			for fixture, want := range map[string]struct {
				state        string
				exit, signal int
			}{
				"job-completed.json": {"COMPLETED", 0, 0},
				"job-running.json":   {"RUNNING", -1, 0},
				"job-cancelled.json": {"CANCELLED", 0, 15},
			} {
				jobs, err := backend(t, fixture).Jobs(ctx, []string{c.ok, c.cancelled})
				if err != nil || len(jobs) != 1 || jobs[0].State != want.state || jobs[0].ExitCode != want.exit || jobs[0].Signal != want.signal {
					t.Errorf("%s: %+v, %v; want %+v", fixture, jobs, err, want)
				}
			}
			// Right after the cancel: ["CANCELLED","COMPLETING"] with exit
			// status SUCCESS, which is not the job's final word.
			settling, err := backend(t, "jobs-after-cancel.json").Jobs(ctx, []string{c.cancelled})
			if err != nil || len(settling) != 1 || settling[0].State != "COMPLETING" || settling[0].ExitCode != -1 || settling[0].Signal != 0 {
				t.Errorf("jobs-after-cancel: %+v, %v; want COMPLETING, exit -1", settling, err)
			}
			jobs, err := backend(t, "jobs.json").FindByComment(ctx, "sopilot:fxr-ok")
			if err != nil || !slices.ContainsFunc(jobs, func(j scheduler.JobStatus) bool { return j.JobID == c.ok }) {
				t.Errorf("jobs.json: %+v, %v", jobs, err)
			}
			for _, fixture := range []string{"cancel-job.json", "cancel-job-again.json", "cancel-completed.json", "cancel-unknown.json"} {
				if err := backend(t, fixture).Cancel(ctx, c.cancelled); err != nil {
					t.Errorf("%s: %v", fixture, err)
				}
			}
			nodes, err := backend(t, "nodes.json").Nodes(ctx)
			if err != nil || len(nodes) != 2 || nodes[0].Name != "worker-0" || nodes[1].Name != "worker-1" || nodes[0].GPUs != 8 || nodes[1].GPUs != 8 {
				t.Errorf("nodes.json: %+v, %v", nodes, err)
			}
			for fixture, op := range map[string]string{
				"controller-down-jobs.json": "jobs", "controller-down-nodes.json": "nodes",
				"controller-down-submit.json": "submit", "controller-down-cancel.json": "cancel",
			} {
				b := backend(t, fixture)
				var err error
				switch op {
				case "jobs":
					_, err = b.Jobs(ctx, []string{"1"})
				case "nodes":
					_, err = b.Nodes(ctx)
				case "submit":
					_, err = b.Submit(ctx, seedSpec())
				case "cancel":
					err = b.Cancel(ctx, "4")
				}
				if sentinel(err) != "unavailable" {
					t.Errorf("%s: %v (%s), want unavailable", fixture, err, sentinel(err))
				}
			}
			for _, fixture := range []string{"unknown-path.json", "unknown-version.json"} {
				if _, err := backend(t, fixture).Jobs(ctx, []string{"1"}); sentinel(err) != "not served" {
					t.Errorf("%s: %v", fixture, err)
				}
			}
			if c.servedFromPaths != nil {
				if got := ServedVersions(readFixture(t, filepath.Join("testdata", c.dir, "openapi-v3-paths.json"))); !slices.Equal(got, c.servedFromPaths) {
					t.Errorf("ServedVersions = %v, want %v", got, c.servedFromPaths)
				}
				v, err := pickVersion(c.servedFromPaths)
				if err != nil || !strings.HasSuffix(c.dir, v.name) {
					t.Errorf("pickVersion = %v, %v", v, err)
				}
			}
		})
	}
}

// TestCheck_DataParser: from v0.0.40 Check lists the jobs changed since
// now, because slurmrestd 24.11+ refuses the impossible job id of the
// v0.0.38 probe itself, without asking slurmctld (and so without checking
// the token).
func TestCheck_DataParser(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"accepted", 200, `{"jobs":[],"errors":[],"warnings":[]}`, "nil"},
		{"token refused (24.11: 511, 1007)", 511, `{"jobs":[],"errors":[{"description":"Unable to query jobs","error_number":1007,"error":"Protocol authentication error","source":"slurm_load_jobs()"}]}`, "unauthorized"},
		{"slurmctld down (24.11 capture)", 0, "slurm-24.11-v0.0.42/controller-down-jobs.json", "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f *fakeREST
			if tt.status == 0 {
				f = newFakeRESTFixture(t, filepath.Join("testdata", tt.body))
			} else {
				f = newFakeREST(t, tt.status, []byte(tt.body))
			}
			b := newTestBackend(t, Config{BaseURL: f.srv.URL, APIVersion: "v0.0.42"})
			if err := b.Check(context.Background()); sentinel(err) != tt.want {
				t.Fatalf("Check = %v (%s), want %s", err, sentinel(err), tt.want)
			}
			c := f.calls()
			if len(c) != 1 || c[0].Method != "GET" || c[0].Path != "/slurm/v0.0.42/jobs" || c[0].Query != "update_time=now" {
				t.Fatalf("requests %+v", c)
			}
		})
	}
}

// Check remembers slurmrestd's Slurm release from the meta of its answer,
// in v0.0.38's spelling ("Slurm") and the data_parser's ("slurm").
func TestCheckNotesSlurmRelease(t *testing.T) {
	for _, c := range []struct{ dir, fixture, api, want string }{
		{"slurm-22.05-v0.0.38", "cancel-unknown.json", "v0.0.38", "slurmrestd Slurm 22.05.8"},
		{"slurm-24.11-v0.0.42", "jobs.json", "v0.0.42", "slurmrestd Slurm 24.11.5"},
		{"slurm-26.05-v0.0.45", "jobs.json", "v0.0.45", "slurmrestd Slurm 26.05.5"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			f := newFakeRESTFixture(t, filepath.Join("testdata", c.dir, c.fixture))
			b := newTestBackend(t, Config{BaseURL: f.srv.URL, APIVersion: c.api})
			if b.SlurmVersions() != "" {
				t.Fatalf("SlurmVersions before any Check = %q", b.SlurmVersions())
			}
			if err := b.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := b.SlurmVersions(); got != c.want {
				t.Errorf("SlurmVersions = %q, want %q", got, c.want)
			}
		})
	}
}
