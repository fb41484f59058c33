package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/storegen"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// startTimes is how long one controller start took on a store: from the
// exec to gRPC health SERVING, and to the first ListRuns page answered.
type startTimes struct{ serving, listed time.Duration }

// timeStart starts the controller binary on db (a copy of a generated
// store) and times it until it serves. With SOPILOT_BENCH_CONTROLLER_CPUS
// set (e.g. "0") the controller runs under taskset on those CPUs.
func timeStart(tb testing.TB, env slurmtest.Env, db string) startTimes {
	tb.Helper()
	bin := controllerBinary(tb)
	args := []string{"--db", db, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "", "--insecure", "--log-level", "warn", "--default-workdir", tb.TempDir()}
	cmd := exec.Command(bin, args...)
	if cpus := os.Getenv(controllerCPUsEnv); cpus != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
	}
	cmd.Env = env.Environ()
	stderr := &lockedBuffer{}
	start := time.Now()
	addr := testbin.Start(tb, cmd, stderr, listenRE)[1]
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var t startTimes
	health := healthpb.NewHealthClient(conn)
	for {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			t.serving = time.Since(start)
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("not SERVING within a minute: %v\n%s", err, stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	page, err := apipb.NewRunServiceClient(conn).ListRuns(ctx, &apipb.ListRunsRequest{PageSize: 50})
	if err != nil {
		tb.Fatalf("ListRuns: %v", err)
	}
	t.listed = time.Since(start)
	if len(page.GetRuns()) != 50 {
		tb.Fatalf("ListRuns answered %d runs, want a full page of 50", len(page.GetRuns()))
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return t
}

// generatedStore writes a store of runs and nodes (storegen) once per test
// binary and directory, and returns a fresh copy of it for each start.
func generatedStore(tb testing.TB, dir string, runs, nodes int) (fresh func() string, st storegen.Stats) {
	tb.Helper()
	golden := filepath.Join(dir, "golden.db")
	st, err := storegen.Write(context.Background(), golden, storegen.Options{Runs: runs, Nodes: nodes})
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	return func() string {
		n++
		path := filepath.Join(dir, "start-"+time.Now().Format("150405.000000")+".db")
		src, err := os.Open(golden)
		if err != nil {
			tb.Fatal(err)
		}
		defer src.Close()
		dst, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			tb.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.Remove(path) })
		return path
	}, st
}

// BenchmarkStartOn100kRuns starts the controller binary on a store holding
// 100,000 runs (2 % active) and 10,000 known nodes, written through the
// store's API (internal/storegen), and times it until gRPC health says
// SERVING and until ListRuns has answered a first page. Each start gets a
// fresh copy of the same store (in the page cache: a warm restart). A
// start on a store of 50 runs and no nodes, alternating with it, is the
// baseline: process start, Slurm tool checks and the listeners.
//
//	go test -run XXX -bench StartOn100kRuns -benchtime 10x ./cmd/controller/
func BenchmarkStartOn100kRuns(b *testing.B) {
	env := slurmtest.Require(b)
	fresh, st := generatedStore(b, b.TempDir(), 100_000, 10_000)
	b.Logf("store: %d runs (%d active), %d nodes, %d bytes (%.0f bytes a run with the runs alone), written in %s",
		st.Runs, st.Active, st.Nodes, st.FileBytes, st.BytesPerRun(), st.Took.Round(time.Millisecond))
	// The baseline, started alternately in the same loop: the same binary
	// on a store with one page of runs and no nodes.
	freshSmall, _ := generatedStore(b, b.TempDir(), 50, 0)
	var serving, listed, baseline []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		db, small := fresh(), freshSmall()
		b.StartTimer()
		if i%2 == 1 {
			baseline = append(baseline, timeStart(b, env, small).listed)
		}
		t := timeStart(b, env, db)
		serving, listed = append(serving, t.serving), append(listed, t.listed)
		if i%2 == 0 {
			baseline = append(baseline, timeStart(b, env, small).listed)
		}
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(serving), "serving-median-ms")
	b.ReportMetric(med(listed), "listruns-median-ms")
	b.ReportMetric(float64(slices.Max(listed).Microseconds())/1000, "listruns-max-ms")
	b.ReportMetric(med(baseline), "small-store-listruns-median-ms")
	b.ReportMetric(st.BytesPerRun(), "bytes/run")
	b.ReportMetric(0, "ns/op")
}

// TestStartOnLargeStoreIsNotOrdersSlower is the short version of
// BenchmarkStartOn100kRuns for the test suite: it catches a start that got
// an order of magnitude slower (loading every run, say), not a regression
// of a few percent. The goal is 2 s; the bound is ten times that, for a
// loaded machine and a race-enabled binary.
func TestStartOnLargeStoreIsNotOrdersSlower(t *testing.T) {
	env := slurmtest.Require(t)
	if testing.Short() {
		t.Skip("writes a 200 MB store")
	}
	fresh, st := generatedStore(t, t.TempDir(), 100_000, 10_000)
	got := timeStart(t, env, fresh())
	t.Logf("start on %d runs and %d nodes (%d bytes): SERVING after %s, first ListRuns page after %s",
		st.Runs, st.Nodes, st.FileBytes, got.serving.Round(time.Millisecond), got.listed.Round(time.Millisecond))
	if bound := 20 * time.Second; got.listed > bound {
		t.Errorf("the controller took %s to answer ListRuns on %d runs, over %s (ten times the 2 s goal)", got.listed, st.Runs, bound)
	}
}
