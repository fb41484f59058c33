package api

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// BenchmarkNodes10000 serves 10,000 simulated nodes (8 GPUs, 8 IB ports
// each) through real gRPC on loopback: the first page as `sopilot nodes`
// asks for it (BASIC, 200), the default first page in FULL (500), a walk
// of every node in FULL pages of 1,000, and one node.
//
//	go test -run '^$' -bench Nodes10000 -benchtime 20x -count 5 ./internal/api/
func BenchmarkNodes10000(b *testing.B) {
	f := newSimFleet(10_000)
	c, _ := serveNodes(b, f)
	ctx := context.Background()
	b.Run("FirstScreenBasic", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.ListNodes(ctx, &apipb.ListNodesRequest{PageSize: 200, View: apipb.NodeView_NODE_VIEW_BASIC}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FirstPageFull", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.ListNodes(ctx, &apipb.ListNodesRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WalkFull", func(b *testing.B) {
		for b.Loop() {
			if names, _, err := walk(ctx, c, &apipb.ListNodesRequest{PageSize: maxNodePageSize}, nil); err != nil || len(names) != 10_000 {
				b.Fatal(len(names), err)
			}
		}
	})
	b.Run("GetNode", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.GetNode(ctx, &apipb.GetNodeRequest{Name: "node-05000"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWatchNodes100 holds 100 WatchNodes streams (BASIC view, one
// connection each) on 10,000 nodes that all report every second, 100 of
// which change verdict each second, for SOPILOT_BENCH_WINDOW (20 s), and
// reports the process's CPU (server and watchers together: an upper bound
// for the server), the lag from each verdict change to its receipt, and
// the fewest verdict changes any watcher saw against those made.
//
//	go test -run '^$' -bench WatchNodes100 -benchtime 1x -count 3 ./internal/api/
func BenchmarkWatchNodes100(b *testing.B) {
	const watchers, nodes, every = 100, 10_000, 100
	window := 20 * time.Second
	if d, err := time.ParseDuration(os.Getenv("SOPILOT_BENCH_WINDOW")); err == nil {
		window = d
	}
	for b.Loop() {
		f := newSimFleet(nodes)
		clients := make([]apipb.NodeServiceClient, watchers)
		for i := range clients {
			clients[i], _ = serveNodesConn(b, f, i)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var lags []time.Duration
		seen := make([]int, watchers)
		var wg sync.WaitGroup
		started := make(chan struct{}, watchers)
		for i, c := range clients {
			wg.Go(func() {
				stream, err := c.WatchNodes(ctx, &apipb.WatchNodesRequest{View: apipb.NodeView_NODE_VIEW_BASIC})
				if err != nil {
					b.Error(err)
					return
				}
				first := 0
				last := map[string]int64{}
				for {
					resp, err := stream.Recv()
					if err != nil {
						return
					}
					if first++; first == nodes {
						started <- struct{}{}
					}
					r := resp.GetNode().GetVerdictReasons()
					if len(r) == 1 && strings.HasPrefix(r[0], "changed_at ") {
						at, _ := strconv.ParseInt(strings.TrimPrefix(r[0], "changed_at "), 10, 64)
						if last[resp.GetNode().GetName()] == at {
							continue // a telemetry refresh of a change seen before
						}
						last[resp.GetNode().GetName()] = at
						lag := time.Since(time.Unix(0, at))
						mu.Lock()
						lags = append(lags, lag)
						seen[i]++
						mu.Unlock()
					}
				}
			})
		}
		for range watchers {
			<-started
		}
		cpu0, t0 := cpuTime(b), time.Now()
		made := 0
		tick := time.NewTicker(time.Second)
		for k := 0; time.Since(t0) < window; k++ {
			<-tick.C
			f.step(k, every)
			made += nodes / every
		}
		tick.Stop()
		time.Sleep(3 * time.Second) // the last changes arrive
		cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
		cancel()
		wg.Wait()
		mu.Lock()
		slices.Sort(lags)
		q := func(p float64) float64 {
			if len(lags) == 0 {
				return 0
			}
			return float64(lags[int(p*float64(len(lags)-1))]) / 1e6
		}
		b.ReportMetric(float64(cpu)/float64(wall), "cpus")
		b.ReportMetric(q(0.5), "lag-p50-ms")
		b.ReportMetric(q(0.99), "lag-p99-ms")
		b.ReportMetric(q(1), "lag-max-ms")
		b.ReportMetric(float64(slices.Min(seen))/float64(made), "min-seen/made")
		mu.Unlock()
	}
}
