package slurmjson

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
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

// BenchmarkParseJobs parses 500 copies of a real job: the 22.05 squeue --json
// capture (v0.0.38 shape, 1.6 MB) and the v0.0.44 documentation example
// (3.9 MB).
//
// Medians of -count 5 on a 2-core Xeon, go1.26:
//
//	                 map per job (before)         scanner (now)
//	v0.0.38-squeue   54.9 ms  29.4 MB/s 180033 allocs   10.4 ms 155.9 MB/s 1501 allocs
//	v0.0.44-docs    116.2 ms  33.4 MB/s 246535 allocs   30.7 ms 126.4 MB/s 37003 allocs
func BenchmarkParseJobs(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"v0.0.38-squeue", filepath.Join(cliTestdata, "squeue-json-states.stdout")},
		{"26.05-v0.0.44", filepath.Join(restTestdata, "slurm-26.05-v0.0.44", "jobs.json")},
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
