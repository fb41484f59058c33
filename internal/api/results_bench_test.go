package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// benchSamples is the size of the upload benchmarks: the 1,000,000.
const benchSamples = 1_000_000

// benchRun is one run's results as a client holds them before it sends
// them: ids and three metric columns ("score" absent for every tenth
// sample), the shape of docs/results.md's example.
type benchRun struct {
	ids                  []string
	correct, loss, score []float64
}

// makeBenchRun returns deterministic results; shift moves "correct" and
// "loss" so that a candidate differs from its baseline.
func makeBenchRun(n int, shift int) benchRun {
	r := benchRun{ids: make([]string, n), correct: make([]float64, n), loss: make([]float64, n), score: make([]float64, n)}
	for i := range n {
		r.ids[i] = fmt.Sprintf("sample-%07d", i)
		h := uint32(i)*2654435761 + uint32(shift)*40503
		if h%100 < uint32(70+shift) {
			r.correct[i] = 1
		}
		r.loss[i] = float64(h%1000)/1000 - float64(shift)/100
		r.score[i] = math.NaN()
		if i%10 != 0 {
			r.score[i] = float64(h%997) / 997
		}
	}
	return r
}

// recordChunks is the records shape, 10,000 records a message.
func (r benchRun) recordChunks(runID string) []*apipb.ReportRunResultsRequest {
	const per = 10_000
	var out []*apipb.ReportRunResultsRequest
	for start := 0; start < len(r.ids); start += per {
		req := &apipb.ReportRunResultsRequest{}
		if start == 0 {
			req.RunId = runID
		}
		for i := start; i < min(start+per, len(r.ids)); i++ {
			v := map[string]float64{"correct": r.correct[i], "loss": r.loss[i]}
			if !math.IsNaN(r.score[i]) {
				v["score"] = r.score[i]
			}
			req.Records = append(req.Records, &apipb.ResultRecord{SampleId: r.ids[i], Values: v})
		}
		out = append(out, req)
	}
	return out
}

// columnChunks is the columns shape, 50,000 samples (about 1.9 MB) a
// message.
func (r benchRun) columnChunks(runID string) []*apipb.ReportRunResultsRequest {
	const per = 50_000
	var out []*apipb.ReportRunResultsRequest
	for start := 0; start < len(r.ids); start += per {
		end := min(start+per, len(r.ids))
		score := &apipb.ResultColumn{Name: "score", Values: r.score[start:end]}
		for i, v := range score.Values {
			if math.IsNaN(v) {
				score.Absent = append(score.Absent, uint32(i))
			}
		}
		req := &apipb.ReportRunResultsRequest{Columns: &apipb.ResultColumns{
			SampleIds: r.ids[start:end],
			Metrics: []*apipb.ResultColumn{
				{Name: "correct", Values: r.correct[start:end]},
				{Name: "loss", Values: r.loss[start:end]},
				score,
			},
		}}
		if start == 0 {
			req.RunId = runID
		}
		out = append(out, req)
	}
	return out
}

func sendChunks(ctx context.Context, c apipb.RunServiceClient, chunks []*apipb.ReportRunResultsRequest) (int64, error) {
	stream, err := c.ReportRunResults(ctx)
	if err != nil {
		return 0, err
	}
	for _, req := range chunks {
		if err := stream.Send(req); err != nil {
			break // the status comes from CloseAndRecv
		}
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetSampleCount(), err
}

// heapPeak samples the live heap every 5 ms until stopped and returns the
// largest value seen: the benchmark's client and server share the process,
// so it bounds the controller's share from above.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// BenchmarkReportRunResults1M uploads 1,000,000 samples (3 metrics)
// through ReportRunResults over a loopback TCP socket into the real store
// with fsync, building the messages inside the timed loop as a client must.
//
//	go test -run '^$' -bench ReportRunResults1M -benchtime 3x -count 5 ./internal/api/
func BenchmarkReportRunResults1M(b *testing.B) {
	rs := serveResultsWith(b, resultsServerOptions{tcp: true, sync: true})
	data := makeBenchRun(benchSamples, 0)
	id := rs.createRun(b)
	for _, shape := range []struct {
		name   string
		chunks func(benchRun, string) []*apipb.ReportRunResultsRequest
	}{
		{"columns", benchRun.columnChunks},
		{"records", benchRun.recordChunks},
	} {
		b.Run(shape.name, func(b *testing.B) { benchUpload(b, rs, data, id, shape.chunks) })
	}
}

func benchUpload(b *testing.B, rs resultsServer, data benchRun, id string, chunksOf func(benchRun, string) []*apipb.ReportRunResultsRequest) {
	runtime.GC()
	var peak uint64
	for b.Loop() {
		stop := heapPeak()
		chunks := chunksOf(data, id)
		n, err := sendChunks(context.Background(), rs.client, chunks)
		peak = max(peak, stop())
		if err != nil || n != benchSamples {
			b.Fatalf("stored %d samples: %v", n, err)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkUploadAndCompare1M is the end-to-end figure: upload a
// baseline and a candidate run of 1,000,000 samples each (columns) and
// compare them (CompareRuns on "correct", higher is better, and "loss",
// lower is better, 10,000 bootstrap resamples), all through the loopback
// socket. It reports each step's milliseconds beside the total.
//
//	go test -run '^$' -bench UploadAndCompare1M -benchtime 3x -count 5 ./internal/api/
func BenchmarkUploadAndCompare1M(b *testing.B) {
	rs := serveResultsWith(b, resultsServerOptions{tcp: true, sync: true})
	base, cand := makeBenchRun(benchSamples, 0), makeBenchRun(benchSamples, 3)
	ctx := context.Background()
	runtime.GC()
	var upBase, upCand, cmp time.Duration
	var peak uint64
	for b.Loop() {
		baseID, candID := rs.createRun(b), rs.createRun(b)
		stop := heapPeak()
		t0 := time.Now()
		if n, err := sendChunks(ctx, rs.client, base.columnChunks(baseID)); err != nil || n != benchSamples {
			b.Fatalf("baseline: %d samples, %v", n, err)
		}
		t1 := time.Now()
		if n, err := sendChunks(ctx, rs.client, cand.columnChunks(candID)); err != nil || n != benchSamples {
			b.Fatalf("candidate: %d samples, %v", n, err)
		}
		t2 := time.Now()
		resp, err := rs.compare.CompareRuns(ctx, &apipb.CompareRunsRequest{
			BaselineRunId: baseID, CandidateRunId: candID, Seed: 1,
			Metrics: []*apipb.MetricSpec{
				{Name: "correct", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER},
				{Name: "loss", Direction: apipb.Direction_DIRECTION_LOWER_IS_BETTER},
			},
		})
		t3 := time.Now()
		peak = max(peak, stop())
		if err != nil || resp.GetVerdict() != apipb.Verdict_VERDICT_IMPROVED {
			b.Fatalf("CompareRuns: %v, verdict %v", err, resp.GetVerdict())
		}
		upBase += t1.Sub(t0)
		upCand += t2.Sub(t1)
		cmp += t3.Sub(t2)
	}
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(ms(upBase), "upload-baseline-ms")
	b.ReportMetric(ms(upCand), "upload-candidate-ms")
	b.ReportMetric(ms(cmp), "compare-ms")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// TestWriteUploadBenchmarkData writes the benchmarks' two runs as results
// files (docs/results.md's flat shape) for testdata/bench_upload_seed.sh,
// which times the seed's comparison arithmetic on the same samples. It
// runs only when asked:
//
//	SOPILOT_UPLOAD_BENCH_DATA=<dir> go test -run WriteUploadBenchmarkData ./internal/api/
func TestWriteUploadBenchmarkData(t *testing.T) {
	dir := os.Getenv("SOPILOT_UPLOAD_BENCH_DATA")
	if dir == "" {
		t.Skip("set SOPILOT_UPLOAD_BENCH_DATA=<dir> to write the benchmark data")
	}
	writeBenchFiles(t, dir, map[string]benchRun{"baseline": makeBenchRun(benchSamples, 0), "candidate": makeBenchRun(benchSamples, 3)})
}

// writeBenchFiles writes each run as dir/<name>.jsonl.
func writeBenchFiles(t testing.TB, dir string, runs map[string]benchRun) {
	t.Helper()
	for name, r := range runs {
		b := results.NewBuilder(results.Limits{})
		err := b.AddColumns(results.Columns{IDs: r.ids, Metrics: []results.Column{
			{Name: "correct", Values: r.correct}, {Name: "loss", Values: r.loss}, {Name: "score", Values: r.score, Absent: nanPositions(r.score)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		set, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		if err := set.WriteJSONL(w); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(w.Flush(), f.Close()); err != nil {
			t.Fatal(err)
		}
	}
}

func nanPositions(xs []float64) []uint32 {
	var out []uint32
	for i, x := range xs {
		if math.IsNaN(x) {
			out = append(out, uint32(i))
		}
	}
	return out
}

// BenchmarkCompareRuns1M times CompareRuns alone on two stored runs of
// 1,000,000 samples (uploaded once, before the timer), through the same
// loopback socket: the end-to-end benchmark's two metrics, and all three
// ("score" is absent for every tenth sample, so 900,000 are shared),
// default options (10,000 resamples).
//
//	go test -run '^$' -bench CompareRuns1M -benchtime 3x -count 5 ./internal/api/
func BenchmarkCompareRuns1M(b *testing.B) {
	rs := serveResultsWith(b, resultsServerOptions{tcp: true, sync: true})
	ctx := context.Background()
	baseID, candID := rs.createRun(b), rs.createRun(b)
	if n, err := sendChunks(ctx, rs.client, makeBenchRun(benchSamples, 0).columnChunks(baseID)); err != nil || n != benchSamples {
		b.Fatalf("baseline: %d samples, %v", n, err)
	}
	if n, err := sendChunks(ctx, rs.client, makeBenchRun(benchSamples, 3).columnChunks(candID)); err != nil || n != benchSamples {
		b.Fatalf("candidate: %d samples, %v", n, err)
	}
	correct := &apipb.MetricSpec{Name: "correct", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}
	loss := &apipb.MetricSpec{Name: "loss", Direction: apipb.Direction_DIRECTION_LOWER_IS_BETTER}
	score := &apipb.MetricSpec{Name: "score", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}
	for _, tc := range []struct {
		name    string
		metrics []*apipb.MetricSpec
	}{
		{"metrics=2", []*apipb.MetricSpec{correct, loss}},
		{"metrics=3", []*apipb.MetricSpec{correct, loss, score}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			runtime.GC()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rs.compare.CompareRuns(ctx, &apipb.CompareRunsRequest{
					BaselineRunId: baseID, CandidateRunId: candID, Seed: 1, Metrics: tc.metrics,
				})
				if err != nil || resp.GetVerdict() != apipb.Verdict_VERDICT_IMPROVED {
					b.Fatalf("CompareRuns: %v, verdict %v", err, resp.GetVerdict())
				}
			}
		})
	}
}
