package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// watchServer is the run API as the controller serves it (the real
// Service, bbolt store with fsync, the controller's gRPC server) on a
// loopback TCP socket, with runs whose progress the test moves.
type watchServer struct {
	addr string
	svc  *controller.Service
	ids  []string
}

func serveWatch(t testing.TB, runs int) watchServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(t.TempDir(), "runs.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := controller.New(controller.Config{DefaultWorkDir: "/work"}, st, &resultsSlurm{}, logger, nil)
	srv, _ := server.NewGRPC(logger, metrics.NewController())
	apipb.RegisterRunServiceServer(srv, NewRunServer(svc, logger))
	t.Cleanup(func() { // after the server stops
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	addr, _ := startGRPC(t, srv, true)
	ws := watchServer{addr: addr, svc: svc}
	for i := range runs {
		r, err := svc.Create(context.Background(), run.Spec{JobName: fmt.Sprintf("train-%d", i), Nodes: 2, TasksPerNode: 8, GPUsPerNode: 8,
			TimeLimit: time.Hour, Argv: []string{"torchrun", "train.py"}, Labels: map[string]string{"team": "research"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ws.ids = append(ws.ids, r.ID)
	}
	return ws
}

// step moves every run's training progress to step k, as the agents'
// progress reports do: one ApplyProgress (one fsynced transaction) for all
// runs, stamped now.
func (ws watchServer) step(ctx context.Context, k int64) error {
	now := time.Now().UTC()
	updates := make(map[string]run.Progress, len(ws.ids))
	for _, id := range ws.ids {
		updates[id] = run.Progress{Step: k, TotalSteps: 1_000_000, Loss: 1 / float64(k+1), UpdateTime: now}
	}
	return ws.svc.ApplyProgress(ctx, updates)
}

// watchSummary is what the watchers saw.
type watchSummary struct {
	Watchers  int   `json:"watchers"`
	Connected int   `json:"connected"` // watchers whose stream stayed open to the end
	Messages  int64 `json:"messages"`  // progress updates received
	// Missed counts steps a watcher never saw (a gap in its sequence).
	Missed int64 `json:"missed"`
	// Lag is from the progress' update time (when the change was made) to
	// its receipt by the watcher, over every update received.
	LagP50Ms float64 `json:"lag_p50_ms"`
	LagP99Ms float64 `json:"lag_p99_ms"`
	LagMaxMs float64 `json:"lag_max_ms"`
	// FewestUpdates is the fewest updates one watcher received.
	FewestUpdates int64 `json:"fewest_updates"`
}

// watchAll runs n WatchRun streams over conns client connections, spread
// over ids, until ctx ends. ready is called once every stream has its
// run's first state.
func watchAll(ctx context.Context, addr string, ids []string, n, conns int, ready func()) (watchSummary, error) {
	cs := make([]*grpc.ClientConn, max(1, min(conns, n)))
	for i := range cs {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return watchSummary{}, err
		}
		defer c.Close()
		cs[i] = c
	}
	var (
		mu      sync.Mutex
		sum     = watchSummary{Watchers: n, FewestUpdates: -1}
		lags    []time.Duration
		started sync.WaitGroup
		wg      sync.WaitGroup
		errs    []error
	)
	started.Add(n)
	for i := range n {
		wg.Go(func() {
			first := true
			markStarted := func() {
				if first {
					first = false
					started.Done()
				}
			}
			defer markStarted()
			stream, err := apipb.NewRunServiceClient(cs[i%len(cs)]).WatchRun(ctx, &apipb.WatchRunRequest{RunId: ids[i%len(ids)]})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			var last, got, missed int64
			seenFirst := false
			var mine []time.Duration
			for {
				resp, err := stream.Recv()
				if err != nil {
					mu.Lock()
					if ctx.Err() != nil {
						sum.Connected++
					} else {
						errs = append(errs, err)
					}
					sum.Messages += got
					sum.Missed += missed
					if sum.FewestUpdates < 0 || got < sum.FewestUpdates {
						sum.FewestUpdates = got
					}
					lags = append(lags, mine...)
					mu.Unlock()
					return
				}
				now := time.Now()
				markStarted()
				// The stream's first message is the run as it stood when
				// the watch began, not a change: it sets the baseline.
				p := resp.GetRun().GetProgress()
				if !seenFirst {
					seenFirst, last = true, p.GetStep()
					continue
				}
				if s := p.GetStep(); s > last {
					missed += s - last - 1
					got++
					mine = append(mine, now.Sub(p.GetUpdateTime().AsTime()))
					last = s
				}
			}
		})
	}
	started.Wait()
	if ready != nil {
		ready()
	}
	wg.Wait()
	if len(lags) > 0 {
		slices.Sort(lags)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		sum.LagP50Ms = ms(lags[len(lags)/2])
		sum.LagP99Ms = ms(lags[len(lags)*99/100])
		sum.LagMaxMs = ms(lags[len(lags)-1])
	}
	if len(errs) > 0 {
		return sum, fmt.Errorf("%d watch streams failed, first: %w", len(errs), errs[0])
	}
	return sum, nil
}

// Environment of the watchers' helper process.
const (
	watchHelperEnv = "SOPILOT_WATCH_HELPER" // "addr;watchers;conns;id,id,..."
	watchCPUsEnv   = "SOPILOT_BENCH_WATCHER_CPUS"
)

// TestWatchRunHelperProcess is not a test: it is the watchers' process of
// BenchmarkWatchRun1000, so that the controller's CPU time is its own. It
// watches until its stdin closes, printing "ready" once every stream has
// started and its summary (JSON) at the end.
func TestWatchRunHelperProcess(t *testing.T) {
	spec := os.Getenv(watchHelperEnv)
	if spec == "" {
		t.Skip("the watchers' helper process of BenchmarkWatchRun1000")
	}
	parts := strings.Split(spec, ";")
	if len(parts) != 4 {
		t.Fatalf("%s=%q: want addr;watchers;conns;ids", watchHelperEnv, spec)
	}
	n, err1 := strconv.Atoi(parts[1])
	conns, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("%s=%q: watchers and conns must be numbers", watchHelperEnv, spec)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	sum, err := watchAll(ctx, parts[0], strings.Split(parts[3], ","), n, conns, func() { fmt.Println("ready") })
	if err != nil {
		t.Error(err)
	}
	out, _ := json.Marshal(sum)
	fmt.Printf("summary %s\n", out)
}

// cpuTime is this process's user + system CPU time.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWatchRun1000 holds 1,000 WatchRun streams (one client
// connection each, as 1,000 `sopilot run watch` would) on 100 runs whose
// progress changes every second, for a 30 s window (SOPILOT_BENCH_WINDOW),
// and reports the controller's CPU (process CPU time over wall time: the
// real run service, store and gRPC server in this process; the watchers
// in a child process), against the same window with no watchers, and what
// the watchers saw: updates missed, and the lag from each change to its
// receipt. Pin the two processes apart with
//
//	go test -c -o /tmp/api.test ./internal/api/
//	SOPILOT_BENCH_WATCHER_CPUS=1 taskset -c 0 /tmp/api.test -test.run '^$' -test.bench WatchRun1000 -test.benchtime 1x -test.count 5
func BenchmarkWatchRun1000(b *testing.B) {
	const watchers, runs = 1000, 100
	window := 30 * time.Second
	if s := os.Getenv("SOPILOT_BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SOPILOT_BENCH_WINDOW: %v", err)
		}
		window = d
	}
	ws := serveWatch(b, runs)
	ctx := context.Background()
	var k int64
	// drive moves every run once a second for d and returns this process's
	// CPU time over the wall time.
	drive := func(d time.Duration) float64 {
		cpu0, t0 := cpuTime(b), time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for end := t0.Add(d); time.Now().Before(end); <-tick.C {
			k++
			if err := ws.step(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		return float64(cpuTime(b)-cpu0) / float64(time.Since(t0))
	}
	for b.Loop() {
		idle := drive(window / 3)

		cmd := exec.Command(os.Args[0], "-test.run", "^TestWatchRunHelperProcess$", "-test.v")
		if cpus := os.Getenv(watchCPUsEnv); cpus != "" {
			cmd = exec.Command("taskset", "-c", cpus, os.Args[0], "-test.run", "^TestWatchRunHelperProcess$", "-test.v")
		}
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s;%d;%d;%s", watchHelperEnv, ws.addr, watchers, watchers, strings.Join(ws.ids, ",")))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		var summary string
		for lines.Scan() {
			if lines.Text() == "ready" {
				break
			}
		}
		watched := drive(window)
		stdin.Close()
		for lines.Scan() {
			if s, ok := strings.CutPrefix(lines.Text(), "summary "); ok {
				summary = s
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("watchers' process: %v", err)
		}
		var sum watchSummary
		if err := json.Unmarshal([]byte(summary), &sum); err != nil {
			b.Fatalf("watchers' summary %q: %v", summary, err)
		}
		b.Logf("%+v", sum)
		if sum.Connected != watchers || sum.Missed != 0 {
			b.Errorf("%d of %d watchers stayed connected, %d updates missed", sum.Connected, watchers, sum.Missed)
		}
		b.ReportMetric(100*watched, "controller-cpu-%")
		b.ReportMetric(100*idle, "no-watchers-cpu-%")
		b.ReportMetric(sum.LagP50Ms, "lag-p50-ms")
		b.ReportMetric(sum.LagP99Ms, "lag-p99-ms")
		b.ReportMetric(sum.LagMaxMs, "lag-max-ms")
		b.ReportMetric(float64(sum.Missed), "missed")
		b.ReportMetric(float64(sum.FewestUpdates), "fewest-updates")
	}
	b.ReportMetric(0, "ns/op")
}

// TestWatchersAreNotStarved is the short version of BenchmarkWatchRun1000
// for the test suite: 200 watchers on 20 runs that change every second,
// for 3 s, in one process. Every watcher must see every change, and no
// change may take 10 s to arrive (the benchmark's lag is milliseconds):
// it catches a starved watcher or an order-of-magnitude regression.
func TestWatchersAreNotStarved(t *testing.T) {
	ws := serveWatch(t, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		sum watchSummary
		err error
	}
	done := make(chan result, 1)
	ready := make(chan struct{})
	go func() {
		sum, err := watchAll(ctx, ws.addr, ws.ids, 200, 20, func() { close(ready) })
		done <- result{sum, err}
	}()
	<-ready
	const changes = 3
	for k := int64(1); k <= changes; k++ {
		if err := ws.step(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	cancel()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	sum := res.sum
	t.Logf("%+v", sum)
	if sum.Connected != 200 || sum.Missed != 0 || sum.FewestUpdates != changes {
		t.Errorf("%d of 200 watchers connected to the end, %d updates missed, the least served saw %d of %d changes", sum.Connected, sum.Missed, sum.FewestUpdates, changes)
	}
	if sum.LagMaxMs > 10_000 {
		t.Errorf("a change took %.0f ms to reach its watcher", sum.LagMaxMs)
	}
}
