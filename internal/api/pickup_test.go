package api

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// createRunWithResults creates a run whose job writes its results to path.
func (rs resultsServer) createRunWithResults(t testing.TB, path string) (runID, jobID string) {
	t.Helper()
	r, err := rs.svc.Create(context.Background(), run.Spec{
		JobName: "inference-trained", Nodes: 1, TimeLimit: time.Hour, Argv: []string{"python3", "infer.py"}, ResultsPath: path,
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r.ID, r.SlurmJobID
}

// uploadChunks is a parsed results file as `sopilot results upload` sends
// it: column batches of per samples, the set's own columns sliced, NaN
// positions listed as absent, the run metrics in the first message.
func uploadChunks(set *results.Set, runID string, per int) []*apipb.ReportRunResultsRequest {
	var out []*apipb.ReportRunResultsRequest
	for start := 0; start < set.Len(); start += per {
		end := min(start+per, set.Len())
		cols := &apipb.ResultColumns{}
		for i := start; i < end; i++ {
			cols.SampleIds = append(cols.SampleIds, set.SampleID(i))
		}
		for _, name := range set.Metrics() {
			all, _ := set.Column(name)
			col := &apipb.ResultColumn{Name: name, Values: all[start:end]}
			for i, v := range col.Values {
				if math.IsNaN(v) {
					col.Absent = append(col.Absent, uint32(i))
				}
			}
			cols.Metrics = append(cols.Metrics, col)
		}
		out = append(out, &apipb.ReportRunResultsRequest{Columns: cols})
	}
	out[0].RunId, out[0].RunMetrics = runID, set.RunMetrics()
	return out
}

// TestResultsPickupStoresWhatUploadStores: the results_path file a run
// leaves is stored, when the run completes, exactly as uploading the same
// file through ReportRunResults stores it: ids in file order (here out of
// order, so the id index is built), both record shapes, nulls, booleans,
// a metric only some samples have, and run metrics.
func TestResultsPickupStoresWhatUploadStores(t *testing.T) {
	rs := serveResultsWith(t, resultsServerOptions{})
	ctx := context.Background()
	var b strings.Builder
	const n = 25_000
	for k := range n {
		i := (k * 7919) % n // every id once, out of order
		switch {
		case i%11 == 0:
			fmt.Fprintf(&b, "{\"sample_id\": \"q-%05d\", \"values\": {\"correct\": %t, \"loss\": %g, \"rare\": null}}\n", i, i%3 == 0, float64(i)/7)
		case i%13 == 0:
			fmt.Fprintf(&b, "{\"sample_id\": \"q-%05d\", \"correct\": 1, \"rare\": %g}\n", i, -float64(i)*1e-300)
		default:
			fmt.Fprintf(&b, "{\"sample_id\": \"q-%05d\", \"correct\": %d, \"loss\": %.17g}\n", i, i%2, math.Sqrt(float64(i)))
		}
		if k == n/2 {
			b.WriteString("{\"run_metrics\": {\"accuracy\": 0.5, \"wall_seconds\": 1234}}\n")
		}
	}
	path := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	picked, job := rs.createRunWithResults(t, path)
	rs.slurm.complete(job)
	if err := rs.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := rs.svc.Get(ctx, picked); err != nil || r.State != run.StateCompleted || r.Reason != "" {
		t.Fatalf("run after the poll: %+v, %v", r, err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := results.Parse(f, results.Limits{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	uploaded := rs.createRun(t)
	if got, err := sendChunks(ctx, rs.client, uploadChunks(parsed, uploaded, 10_000)); err != nil || got != n {
		t.Fatalf("upload: %d samples, %v", got, err)
	}

	a, err := rs.svc.Results(ctx, picked)
	if err != nil {
		t.Fatal(err)
	}
	u, err := rs.svc.Results(ctx, uploaded)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(u) {
		t.Fatalf("picked up %d samples %v, run metrics %v; uploaded %d samples %v, run metrics %v",
			a.Len(), a.Info(), a.RunMetrics(), u.Len(), u.Info(), u.RunMetrics())
	}
	if a.Len() != n || len(a.RunMetrics()) != 2 || a.Present("rare") == 0 {
		t.Errorf("stored set: %d samples, info %+v", a.Len(), a.Info())
	}
}

// BenchmarkResultsPickup1M times the results_path pickup of a 1,000,000
// line file (the upload benchmarks' baseline run as JSON lines, 80 MB):
// the poll that sees the run's job COMPLETED reads and parses the file and
// stores the set (bbolt with fsync), then commits the run's state.
//
//	go test -run '^$' -bench ResultsPickup1M -benchtime 3x -count 5 ./internal/api/
func BenchmarkResultsPickup1M(b *testing.B) {
	rs := serveResultsWith(b, resultsServerOptions{tcp: true, sync: true})
	dir := b.TempDir()
	writeBenchFiles(b, dir, map[string]benchRun{"baseline": makeBenchRun(benchSamples, 0)})
	path := filepath.Join(dir, "baseline.jsonl")
	ctx := context.Background()
	runtime.GC()
	var peak uint64
	for b.Loop() {
		b.StopTimer()
		id, job := rs.createRunWithResults(b, path)
		rs.slurm.complete(job)
		b.StartTimer()
		stop := heapPeak()
		err := rs.svc.Poll(ctx)
		peak = max(peak, stop())
		if err != nil {
			b.Fatal(err)
		}
		if r, err := rs.svc.Get(ctx, id); err != nil || r.State != run.StateCompleted || r.Reason != "" {
			b.Fatalf("run after the poll: %+v, %v", r, err)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
