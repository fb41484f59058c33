package cli

// run_progress.go: what run watch shows of a run's training progress (a
// progress bar on a terminal), of its nodes' GPUs (their mean utilization,
// polled from NodeService) and, at the end, of its usage.

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// barWidth is the number of cells of run watch's progress bar.
const barWidth = 30

// nodePollInterval is how often run watch reads the run's nodes.
const nodePollInterval = 2 * time.Second

// progressBar is "[=========>          ]  33%" for step of total, or "" when
// the total is unknown.
func progressBar(step, total int64) string {
	if total <= 0 {
		return ""
	}
	frac := math.Min(math.Max(float64(step)/float64(total), 0), 1)
	filled := int(frac * barWidth)
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(strings.Repeat("=", filled))
	if filled < barWidth {
		b.WriteByte('>')
		b.WriteString(strings.Repeat(" ", barWidth-filled-1))
	}
	fmt.Fprintf(&b, "] %3d%%", int(frac*100))
	return b.String()
}

// utilText is "gpu util 87%" for a known utilization, else "".
func utilText(util float64, ok bool) string {
	if !ok {
		return ""
	}
	return fmt.Sprintf("gpu util %.0f%%", util)
}

// watchLines is what run watch shows of r. On a terminal (tty) that is a
// block redrawn in place: the status line, and under it, when the run
// reports progress, the progress bar with step/total, loss, samples/s, ETA
// and the mean GPU utilization of the run's nodes. Otherwise it is one
// line: the status line (with the progress) and the utilization.
func watchLines(r *apipb.Run, util float64, utilOK bool, now time.Time, tty bool) []string {
	join := func(parts ...string) string {
		var kept []string
		for _, p := range parts {
			if p != "" {
				kept = append(kept, p)
			}
		}
		return strings.Join(kept, "  ")
	}
	if !tty {
		return []string{join(statusLine(r, now), utilText(util, utilOK))}
	}
	head := statusHead(r, now)
	p := r.GetProgress()
	if p == nil {
		return []string{join(head, utilText(util, utilOK))}
	}
	return []string{head, join(progressBar(p.GetStep(), p.GetTotalSteps()), progressText(p), utilText(util, utilOK))}
}

// usageText is the usage summary printed when a watched run ends, or ""
// when the run has none.
func usageText(u *apipb.RunUsage) string {
	if u == nil {
		return ""
	}
	parts := []string{
		fmt.Sprintf("%d GPU(s)", u.GetGpuCount()),
		fmt.Sprintf("%.2f GPU-hours", u.GetGpuHours()),
		fmt.Sprintf("utilization mean %.0f%% p95 %.0f%%", u.GetGpuUtilizationMeanPercent(), u.GetGpuUtilizationP95Percent()),
	}
	if u.GetGpuMemoryPeakBytes() > 0 {
		parts = append(parts, fmt.Sprintf("memory peak %.1f GiB", float64(u.GetGpuMemoryPeakBytes())/gib))
	}
	if u.GetEnergyJoules() > 0 {
		parts = append(parts, fmt.Sprintf("energy %.2f kWh", u.GetEnergyJoules()/3.6e6))
	}
	if len(u.GetXids()) > 0 {
		xids := make([]string, len(u.GetXids()))
		for i, x := range u.GetXids() {
			xids[i] = strconv.Itoa(int(x))
		}
		parts = append(parts, "XIDs "+strings.Join(xids, ","))
	}
	s := "usage: " + strings.Join(parts, ", ")
	if u.GetSimulated() {
		s += " (simulated)"
	}
	return s
}

// runUtilization is the mean utilization of the GPUs that run the Slurm
// job jobID on the named nodes; when no GPU is attributed to the job (the
// agent could not tell), of every present GPU of those nodes. ok is false
// when no GPU of those nodes reported.
func runUtilization(nodes []*apipb.Node, names []string, jobID string) (util float64, ok bool) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var jobSum, allSum float64
	var jobN, allN int
	for _, n := range nodes {
		if !want[n.GetName()] {
			continue
		}
		for _, g := range n.GetGpus() {
			if !g.GetPresent() {
				continue
			}
			allSum += g.GetUtilizationPercent()
			allN++
			if jobID != "" && g.GetSlurmJobId() == jobID {
				jobSum += g.GetUtilizationPercent()
				jobN++
			}
		}
	}
	switch {
	case jobN > 0:
		return jobSum / float64(jobN), true
	case allN > 0:
		return allSum / float64(allN), true
	}
	return 0, false
}

// pollResult is one round of nodePoller: the mean GPU utilization of the
// run's nodes (utilOK false when unknown), and the run's progress as
// GetRun returned it (nil when not read).
type pollResult struct {
	util     float64
	utilOK   bool
	progress *apipb.RunProgress
}

// nodePoller reads the watched run's nodes every nodePollInterval and
// sends their mean GPU utilization, and, while the run runs, its progress
// from GetRun (WatchRun may send only state changes). It stops reading
// nodes for good when the controller has no NodeService; other errors skip
// a round.
type nodePoller struct {
	c       apipb.NodeServiceClient
	runs    apipb.RunServiceClient
	runID   string
	timeout time.Duration
	out     chan pollResult
	// kick asks for a read now (the run got its nodes).
	kick chan struct{}

	mu      sync.Mutex
	names   []string
	jobID   string
	running bool
}

func newNodePoller(c apipb.NodeServiceClient, runs apipb.RunServiceClient, runID string, timeout time.Duration) *nodePoller {
	return &nodePoller{c: c, runs: runs, runID: runID, timeout: timeout, out: make(chan pollResult), kick: make(chan struct{}, 1)}
}

// target points the poller at r's nodes and job.
func (p *nodePoller) target(r *apipb.Run) {
	p.mu.Lock()
	first := len(p.names) == 0 && len(r.GetNodes()) > 0
	p.names, p.jobID = r.GetNodes(), r.GetSlurmJobId()
	p.running = r.GetState() == apipb.RunState_RUN_STATE_RUNNING
	p.mu.Unlock()
	if first {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *nodePoller) run(ctx context.Context) {
	t := time.NewTicker(nodePollInterval)
	defer t.Stop()
	nodesOK := true
	for {
		p.mu.Lock()
		names, jobID, running := p.names, p.jobID, p.running
		p.mu.Unlock()
		var res pollResult
		if nodesOK && len(names) > 0 {
			cctx, cancel := context.WithTimeout(ctx, p.timeout)
			nodes, err := runNodes(cctx, p.c, names)
			cancel()
			if status.Code(err) == codes.Unimplemented {
				nodesOK = false
			}
			if err == nil {
				res.util, res.utilOK = runUtilization(nodes, names, jobID)
			}
		}
		if running && p.runs != nil {
			cctx, cancel := context.WithTimeout(ctx, p.timeout)
			resp, err := p.runs.GetRun(cctx, &apipb.GetRunRequest{RunId: p.runID})
			cancel()
			if err == nil {
				res.progress = resp.GetRun().GetProgress()
			}
		}
		if res.utilOK || res.progress != nil {
			select {
			case p.out <- res:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-t.C:
		case <-p.kick:
		case <-ctx.Done():
			return
		}
	}
}

// runNodes lists the run's nodes with their GPUs, page by page.
func runNodes(ctx context.Context, c apipb.NodeServiceClient, names []string) ([]*apipb.Node, error) {
	req := &apipb.ListNodesRequest{Filter: "name=" + strings.Join(names, ","), View: apipb.NodeView_NODE_VIEW_FULL, PageSize: maxNodesPage}
	var out []*apipb.Node
	for {
		resp, err := c.ListNodes(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetNodes()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return out, nil
		}
	}
}

// withProgress is r with progress p.
func withProgress(r *apipb.Run, p *apipb.RunProgress) *apipb.Run {
	c := proto.Clone(r).(*apipb.Run)
	c.Progress = p
	return c
}

// newerProgress reports whether polled is further on than cur.
func newerProgress(cur, polled *apipb.RunProgress) bool {
	switch {
	case polled == nil:
		return false
	case cur == nil:
		return true
	case polled.GetStep() != cur.GetStep():
		return polled.GetStep() > cur.GetStep()
	}
	return polled.GetUpdateTime().AsTime().After(cur.GetUpdateTime().AsTime())
}
