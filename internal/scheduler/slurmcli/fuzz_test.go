package slurmcli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// addFixtureSeeds adds every captured file with the given extension.
func addFixtureSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures match %s: %v", pattern, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseSqueue(f *testing.F) {
	addFixtureSeeds(f, "squeue-*.stdout")
	addFixtureSeeds(f, "../slurm-*/squeue-*.stdout")
	f.Add([]byte("1\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1e"))
	f.Add([]byte("\x1e\x1e\n\x1f"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, r := range parseSqueue(in, time.UTC) {
			if r.err != nil {
				continue
			}
			st := r.status
			if !isJobID(st.JobID) {
				t.Fatalf("accepted job id %q", st.JobID)
			}
			if st.ExitCode < -1 || st.ExitCode > 255 || st.Signal < 0 || st.Signal > 127 {
				t.Fatalf("exit %d signal %d", st.ExitCode, st.Signal)
			}
			if st.ExitCode == -1 && st.Signal != 0 {
				t.Fatalf("signal %d with unknown exit code", st.Signal)
			}
			if isPending(st.State) && (!st.StartTime.IsZero() || !st.EndTime.IsZero()) {
				t.Fatalf("pending job with times %v %v", st.StartTime, st.EndTime)
			}
			for _, s := range []string{st.Name, st.State, st.Reason, st.Comment, st.Nodes} {
				if strings.ContainsAny(s, fieldSep+recordSep) {
					t.Fatalf("separator left in field %q", s)
				}
			}
		}
	})
}

// FuzzSqueueJSON runs any squeue --json output through the backend's JSON
// path (slurmjson.ParseJobs, then finalizeStatus) and checks slurmcli's
// rules hold for every job reported.
func FuzzSqueueJSON(f *testing.F) {
	addFixtureSeeds(f, "squeue-json*.stdout")
	addFixtureSeeds(f, "../slurm-*/squeue-json*.stdout")
	f.Add([]byte(`{"jobs":[{"job_id":1,"job_state":["PENDING"],"start_time":5,"end_time":6,"exit_code":768}]}`))
	f.Add([]byte(`{"jobs":[{"job_id":2,"job_state":"CANCELLED","nodes":"","start_time":5,"end_time":6,"exit_code":15}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &fakeRunner{reply: func(context.Context, command) (result, error) { return result{stdout: in}, nil }}
		jobs, err := newTestBackend(Config{Query: QueryJSON}, r).FindByComment(context.Background(), "")
		if err != nil {
			errs, _ := slurmjson.ParseErrors(in)
			if errors.Is(err, errNoJSON) || errors.Is(err, scheduler.ErrUnavailable) != (len(errs) > 0) {
				t.Fatalf("output classified wrong: %v", err)
			}
			return
		}
		for _, st := range jobs {
			if !isJobID(st.JobID) {
				t.Fatalf("job id %q", st.JobID)
			}
			if !isFinal(st.State) && (st.ExitCode != -1 || st.Signal != 0) {
				t.Fatalf("exit code of an unfinished job: %+v", st)
			}
			if st.ExitCode < -1 || st.ExitCode > 255 || st.Signal < 0 || st.Signal > 255 {
				t.Fatalf("exit %d signal %d", st.ExitCode, st.Signal)
			}
			if isPending(st.State) && (!st.StartTime.IsZero() || !st.EndTime.IsZero()) {
				t.Fatalf("pending job with times: %+v", st)
			}
			if isEnded(st.State) && st.Nodes == "" && !st.StartTime.IsZero() {
				t.Fatalf("job that never had nodes with a start time: %+v", st)
			}
			if !isPending(st.State) && !isEnded(st.State) && !st.EndTime.IsZero() {
				t.Fatalf("running job with an end time: %+v", st)
			}
		}
	})
}

func FuzzParseSbatch(f *testing.F) {
	addFixtureSeeds(f, "sbatch-*.stdout")
	f.Add([]byte("123;sopilot\n"))
	f.Add([]byte(";\n;"))
	f.Fuzz(func(t *testing.T, in []byte) {
		id, err := parseSbatch(in)
		if err == nil && !isJobID(id) {
			t.Fatalf("parseSbatch(%q) = %q, not a job id", in, id)
		}
		if err != nil && id != "" {
			t.Fatalf("parseSbatch(%q) = %q and %v", in, id, err)
		}
	})
}

func FuzzToolError(f *testing.F) {
	addFixtureSeeds(f, "*.stderr")
	f.Fuzz(func(t *testing.T, stderr []byte) {
		for _, tool := range []string{"sbatch", "squeue", "scancel"} {
			err := toolError(tool, result{stderr: stderr, exitCode: 1}, scheduler.ErrRejected)
			if err == nil || !strings.HasPrefix(err.Error(), tool+": ") {
				t.Fatalf("toolError = %v", err)
			}
			_ = isGoneJob(string(stderr))
		}
		if msg := toolMessage("sbatch", stderr); len(msg) > 1024+3 {
			t.Fatalf("message of %d bytes", len(msg))
		}
	})
}

func FuzzParseFields(f *testing.F) {
	f.Add("768", "2026-11-29T09:12:01", "CANCELLED by 0")
	f.Add("4294967294", "N/A", "completing")
	f.Fuzz(func(t *testing.T, status, ts, state string) {
		code, sig := decodeWaitStatus(status)
		if code < -1 || code > 255 || sig < 0 || sig > 127 {
			t.Fatalf("decodeWaitStatus(%q) = %d, %d", status, code, sig)
		}
		if tm, err := parseSlurmTime(ts, time.UTC); err != nil && !tm.IsZero() {
			t.Fatalf("parseSlurmTime(%q) = %v with error %v", ts, tm, err)
		}
		if s := baseState(state); strings.ContainsAny(s, " +,") {
			t.Fatalf("baseState(%q) = %q", state, s)
		}
	})
}

// FuzzSbatchArgs checks that whatever a spec holds, sbatch gets only
// "--option=value" elements (nothing it could read as a script path or a
// separate option) or the spec is refused.
func FuzzSbatchArgs(f *testing.F) {
	f.Add("train", "main", "/w", "/w/%j.out", "sopilot:1", "12", "K", "v", int64(time.Hour))
	f.Add("-x", "--wrap=id", "", "", "a\nb", "1:2", "SBATCH_X", "\x00", int64(-1))
	f.Fuzz(func(t *testing.T, name, part, wd, out, comment, dep, ek, ev string, limit int64) {
		job := scheduler.JobSpec{
			Name: name, Partition: part, Nodes: 2, TasksPerNode: 8, GPUsPerNode: 8,
			TimeLimit: time.Duration(limit), WorkDir: wd, OutputPath: out, Comment: comment,
			Dependencies: []string{dep}, Environment: map[string]string{ek: ev}, Script: "#!/bin/sh\n",
		}
		args, err := sbatchArgs(job)
		if err != nil {
			return
		}
		for _, a := range args {
			if !strings.HasPrefix(a, "--") || (a != "--parsable" && !strings.Contains(a, "=")) {
				t.Fatalf("argument %q", a)
			}
			if strings.ContainsAny(a, "\x00\n") {
				t.Fatalf("argument %q has NUL or newline", a)
			}
		}
		if limit > 0 {
			want := "--time=" + scheduler.FormatTimeLimit(time.Duration(limit))
			if !contains(args, want) || strings.HasSuffix(want, "=0-00:00:00") {
				t.Fatalf("time limit %d: args %q", limit, args)
			}
		}
		for _, kv := range sbatchEnv(baseEnv{path: "/bin", home: "/"}, job) {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || !validEnvKey(k) || !utf8.ValidString(k) {
				t.Fatalf("env entry %q", kv)
			}
		}
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
