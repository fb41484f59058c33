package slurmjson

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// largeListing builds a job listing of n copies of the first job of a real
// fixture (the controller polls the whole listing every few seconds; a busy
// cluster has hundreds of jobs).
func largeListing(tb testing.TB, path string, n int) []byte {
	tb.Helper()
	var doc struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(readFixture(tb, path), &doc); err != nil || len(doc.Jobs) == 0 {
		tb.Fatalf("fixture %s: %v", path, err)
	}
	var b bytes.Buffer
	b.WriteString(`{"meta":{},"errors":[],"jobs":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.Write(doc.Jobs[0])
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// BenchmarkParseJobs parses 500 copies of a real job from each Slurm
// version's squeue --json (22.05: v0.0.38 shape; 24.11 and 26.05: their
// data_parser shapes) and from a slurmrestd v0.0.44 listing of 26.05.
// Figures in docs/benchmarks.md.
func BenchmarkParseJobs(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"22.05-squeue", filepath.Join(cliTestdata, "squeue-json-states.stdout")},
		{"24.11-squeue", filepath.Join(cliTestdata, "..", "slurm-24.11", "squeue-json-states.stdout")},
		{"26.05-squeue", filepath.Join(cliTestdata, "..", "slurm-26.05", "squeue-json-states.stdout")},
		{"26.05-rest-v0.0.44", filepath.Join(restTestdata, "slurm-26.05-v0.0.44", "jobs.json")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := largeListing(b, bc.path, 500)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				jobs, err := ParseJobs(data)
				if err != nil || len(jobs) != 500 {
					b.Fatalf("got %d jobs, %v", len(jobs), err)
				}
			}
		})
	}
}

// BenchmarkReadListing is what the CLI backend does with each squeue --json
// listing it polls: look for Slurm's errors in the document, then read the
// jobs (500 copies of a real 24.11 job, 13.7 MB): ParseJobList, and the two
// calls it stands for. Figures in docs/benchmarks.md.
func BenchmarkReadListing(b *testing.B) {
	data := largeListing(b, filepath.Join(cliTestdata, "..", "slurm-24.11", "squeue-json-states.stdout"), 500)
	for _, bc := range []struct {
		name string
		read func() ([]Error, []scheduler.JobStatus, error)
	}{
		{"ParseJobList", func() ([]Error, []scheduler.JobStatus, error) {
			jobs, errs, err := ParseJobList(data)
			return errs, jobs, err
		}},
		{"ParseErrors+ParseJobs", func() ([]Error, []scheduler.JobStatus, error) {
			errs, _ := ParseErrors(data)
			jobs, err := ParseJobs(data)
			return errs, jobs, err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if errs, jobs, err := bc.read(); len(errs) != 0 || err != nil || len(jobs) != 500 {
					b.Fatalf("errors %v, %d jobs, %v", errs, len(jobs), err)
				}
			}
		})
	}
}
