package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// benchRetryScript is the benchmark's job: a step every 100 ms, a
// checkpoint (a file holding the step) every 10 steps, each progress line
// tagged with the attempt; a later attempt starts after the step in
// SOPILOT_RESUME_FROM.
const benchRetryScript = `set -e
p="$SOPILOT_PROGRESS_FILE"
d=$(dirname "$SOPILOT_PROGRESS_FILE")
step=0
if [ -n "${SOPILOT_RESUME_FROM:-}" ]; then step=$(cat "$SOPILOT_RESUME_FROM"); fi
echo "attempt=$SOPILOT_ATTEMPT resume_step=$step node=$SLURMD_NODENAME"
while [ "$step" -lt 100000 ]; do
  step=$((step + 1))
  if [ $((step % 10)) = 0 ]; then
    echo "$step" > "$d/ckpt-$SLURM_JOB_ID-$step"
    echo "{\"step\": $step, \"total_steps\": 100000, \"attempt\": $SOPILOT_ATTEMPT, \"checkpoint\": \"$d/ckpt-$SLURM_JOB_ID-$step\"}" >> "$p"
  else
    echo "{\"step\": $step, \"total_steps\": 100000, \"attempt\": $SOPILOT_ATTEMPT}" >> "$p"
  fi
  sleep 0.1
done
`

// benchCheckpointEvery is the script's checkpoint interval, in steps.
const benchCheckpointEvery = 10

// BenchmarkExclusiveRetryFaultToResume measures docs/resilience.md's
// recovery time: an XID 79 injected on the node of a 1-node run with a
// retry policy, in the middle of a checkpoint interval, until the resumed
// job's (attempt 2's) first progress line is seen through GetRun (polled
// every 20 ms). It splits the time into sopilot's share (the fault seen,
// the node drained, the job cancelled, attempt 2 submitted: until Slurm
// accepted attempt 2's job) and the rest (Slurm scheduling and starting the
// job, the job's first line, the agent reading it). It checks that attempt
// 2 resumes from attempt 1's last checkpoint and that the work lost (steps
// reported after that checkpoint before the fault) is at most one
// checkpoint interval. SOPILOT_BENCH_INJECTIONS injections (default 20);
// the controller is replaced every 7, as its retry breaker refuses more
// than 8 retries in 10 minutes. With the cluster to itself:
//
//	SOPILOT_SLURM_EXCLUSIVE=1 go test -run '^$' -bench ExclusiveRetryFaultToResume -benchtime 1x ./cmd/controller
func BenchmarkExclusiveRetryFaultToResume(b *testing.B) {
	env := slurmtest.RequireExclusive(b)
	n := 20
	if s := os.Getenv("SOPILOT_BENCH_INJECTIONS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("SOPILOT_BENCH_INJECTIONS=%q: want a positive count", s)
		}
	}
	ctx := context.Background()
	var total, ours, slurms []time.Duration
	var p *proc
	var admin map[string]string
	for i := range n * b.N {
		if i%7 == 0 {
			p = startController(b, env, filepath.Join(b.TempDir(), "c.db"), "--slurm-conf", env.SlurmConf,
				"--health-event-window", "1s", "--health-evaluate-every", "200ms", "--node-poll-interval", "1s",
				"--max-drain-share", "1", "--max-drains-per-window", "100000", "--drain-window", "1s", "--log-level", "info")
			admin = retryCluster(b, env, p)
		}
		spec := &apipb.RunSpec{JobName: fmt.Sprintf("retry-bench-%d", i), Nodes: 1, GpusPerNode: 8,
			TimeLimit: durationpb.New(10 * time.Minute), Script: benchRetryScript,
			Retry: &apipb.RetryPolicy{MaxAttempts: 2, Causes: []apipb.RetryCause{apipb.RetryCause_RETRY_CAUSE_HARDWARE}}}
		resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		id := resp.GetRun().GetId()
		r := waitRun(b, p.runs, id, "attempt 1's first checkpoint", 2*time.Minute, func(r *apipb.Run) bool {
			a := r.GetAttempts()
			return len(a) == 1 && a[0].GetCheckpointStep() >= 2*benchCheckpointEvery && len(r.GetNodes()) == 1
		})
		// Somewhere in a checkpoint interval (1 s).
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
		faulty := r.GetNodes()[0]
		before, err := p.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: id})
		if err != nil {
			b.Fatal(err)
		}
		injected := time.Now()
		inject(b, admin[faulty], `{"gpu":3,"kind":"xid","code":79}`)
		var resumed time.Time
		r = waitRun(b, p.runs, id, "attempt 2's first progress line", 5*time.Minute, func(r *apipb.Run) bool {
			if len(r.GetAttempts()) == 2 && r.GetProgress().GetMetrics()["attempt"] == 2 {
				resumed = time.Now()
				return true
			}
			return false
		})
		a1, a2 := r.GetAttempts()[0], r.GetAttempts()[1]
		submitted := a2.GetSubmitTime().AsTime()
		if a2.GetNodeList() == faulty || a1.GetCause() != apipb.RetryCause_RETRY_CAUSE_HARDWARE {
			b.Fatalf("injection %d: attempt 2 on %s (fault on %s), attempt 1 ended by %v", i, a2.GetNodeList(), faulty, a1.GetCause())
		}
		ckpt := a1.GetCheckpointStep()
		// The job prints where it resumed; the first step seen through
		// the API is later (the agent reads the progress file once a second).
		out, err := os.ReadFile(r.GetOutputPath())
		if err != nil {
			b.Fatal(err)
		}
		if want := fmt.Sprintf("attempt=2 resume_step=%d ", ckpt); !strings.Contains(string(out), want) {
			b.Errorf("injection %d: attempt 2 did not resume from attempt 1's checkpoint at step %d (%q):\n%s", i, ckpt, want, out)
		}
		// Lost work: what attempt 1 reported after its last checkpoint,
		// as last seen before the fault (the job ran on for the moments
		// until its cancel; those steps are lost too and counted by goodput).
		if lost := before.GetRun().GetProgress().GetStep() - ckpt; lost > benchCheckpointEvery {
			b.Errorf("injection %d: %d steps lost after the checkpoint at %d, more than one interval (%d)", i, lost, ckpt, benchCheckpointEvery)
		}
		total = append(total, resumed.Sub(injected))
		ours = append(ours, submitted.Sub(injected))
		slurms = append(slurms, resumed.Sub(submitted))
		b.Logf("injection %2d: fault → resumed %v (sopilot: fault → attempt 2 accepted %v; Slurm start and first line %v), first step seen %d, resumed after the checkpoint at %d",
			i+1, total[i].Round(time.Millisecond), ours[i].Round(time.Millisecond), slurms[i].Round(time.Millisecond), r.GetProgress().GetStep(), ckpt)
		if _, err := p.runs.CancelRun(ctx, &apipb.CancelRunRequest{RunId: id}); err != nil {
			b.Fatal(err)
		}
		waitTerminal(b, p.runs, id, time.Minute)
		inject(b, admin[faulty], "")
		nodes := apipb.NewNodeServiceClient(p.conn)
		waitNodes(b, nodes, "the faulty node healthy again", time.Minute, func(ns []*apipb.Node) bool {
			return byName(ns)[faulty].GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY
		})
		if _, err := nodes.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: faulty, SkipVerification: true}); err != nil {
			b.Fatalf("UndrainNode %s: %v", faulty, err)
		}
		waitNodes(b, nodes, "both nodes idle", time.Minute, func(ns []*apipb.Node) bool {
			m := byName(ns)
			return m["worker-0"].GetSlurmState() == "IDLE" && m["worker-1"].GetSlurmState() == "IDLE"
		})
	}
	q := func(d []time.Duration, f float64) time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(f*float64(len(s))))]
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(strings.Fields(string(b))) >= 3 {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	b.Logf("over %d injections (Slurm %s, load average %s): fault → resumed p50 %v p95 %v; sopilot's share p50 %v p95 %v; Slurm's p50 %v p95 %v",
		len(total), env.Version, load,
		q(total, 0.5).Round(time.Millisecond), q(total, 0.95).Round(time.Millisecond),
		q(ours, 0.5).Round(time.Millisecond), q(ours, 0.95).Round(time.Millisecond),
		q(slurms, 0.5).Round(time.Millisecond), q(slurms, 0.95).Round(time.Millisecond))
	b.ReportMetric(q(total, 0.5).Seconds(), "p50-s")
	b.ReportMetric(q(total, 0.95).Seconds(), "p95-s")
	b.ReportMetric(q(ours, 0.5).Seconds(), "sopilot-p50-s")
	b.ReportMetric(q(ours, 0.95).Seconds(), "sopilot-p95-s")
	b.ReportMetric(0, "ns/op")
}
