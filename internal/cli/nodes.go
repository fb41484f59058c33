package cli

// nodes.go: the `nodes` command and the `node` group, on the controller's
// NodeService: what the node agents report (GPUs, InfiniBand ports), the
// controller's health verdicts, and the operator's drain, undrain, checks
// and incidents.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// ErrCheckFailed: a node check ran and failed.
var ErrCheckFailed = errors.New("node check failed")

const nodesLong = `List the cluster's nodes: Slurm's state, the controller's health verdict,
the node agent, and what its GPUs and InfiniBand ports report.

  sopilot nodes
  sopilot nodes --watch
  sopilot nodes -o yaml

Columns: NODE; SLURM (Slurm's state); HEALTH (the controller's verdict);
AGENT (connected or not, and the age of its last report); GPUS (busy/total,
busy = utilization of at least 10% or a Slurm job on it); UTIL (mean
utilization); TEMP (hottest GPU); POWER (sum of the GPUs' draw); IB (ports
ACTIVE/all); RUNS (sopilot runs with jobs on the node); TELEMETRY
("simulated" when the agent's GPU telemetry is not real NVML).`

const nodeLong = `Nodes as the controller sees them, and what operators do to them.

  sopilot node list                                   (same as 'sopilot nodes')
  sopilot node get worker-0                           per-GPU and IB detail, verdict reasons
  sopilot node drain worker-0 --reason "XID 79 on GPU 3"
  sopilot node undrain worker-0                       runs a verification check first
  sopilot node check worker-0 --check nccl            exit 1 when the check fails
  sopilot node incidents worker-0                     or --run RUN_ID

The controller is at --controller (SOPILOT_CONTROLLER, default ` + DefaultController + `).`

// newTable aligns tab-separated columns two spaces apart.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// busyUtilization is the GPU utilization from which a GPU counts as busy.
const busyUtilization = 10

func newNodesCommand(a *app) *cobra.Command {
	o := &clientOptions{}
	cmd := newNodeListCommand(a, o, "nodes")
	cmd.Long = nodesLong
	addClientFlags(cmd, o)
	return cmd
}

func newNodeCommand(a *app) *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Show, drain, undrain and check nodes; list health incidents",
		Long:  nodeLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	addClientFlags(cmd, o)
	list := newNodeListCommand(a, o, "list")
	list.Long = nodesLong
	cmd.AddCommand(
		list,
		newNodeGetCommand(a, o),
		newNodeDrainCommand(a, o),
		newNodeUndrainCommand(a, o),
		newNodeCheckCommand(a, o),
		newNodeIncidentsCommand(a, o),
	)
	return cmd
}

// nodesFirstScreen is how many nodes `sopilot nodes` lists without --all.
const nodesFirstScreen = 200

func newNodeListCommand(a *app, o *clientOptions, use string) *cobra.Command {
	var watch, all bool
	var filter string
	var limit int
	cmd := &cobra.Command{
		Use:   use,
		Short: "List nodes: Slurm state, health, agent, GPUs, InfiniBand, runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return fmt.Errorf("%w: --limit must be positive (--all lists every node)", ErrUsage)
			}
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			c := apipb.NewNodeServiceClient(conn)
			if watch {
				return watchNodes(cmd.Context(), a, o, c)
			}
			// The table needs no per-GPU rows; -o json/yaml shows them.
			req := &apipb.ListNodesRequest{Filter: filter, View: apipb.NodeView_NODE_VIEW_BASIC, PageSize: int32(min(limit, maxNodesPage))}
			if a.json() {
				req.View = apipb.NodeView_NODE_VIEW_FULL
			}
			if all {
				req.PageSize = maxNodesPage
			}
			resp, err := listNodes(cmd.Context(), o, c, req, all, limit)
			if err != nil {
				return err
			}
			if a.json() {
				return writeProto(a.env.Stdout, a.root.output, resp)
			}
			if line := remediationLine(resp.GetRemediation()); line != "" {
				fmt.Fprintln(a.env.Stdout, line)
			}
			printNodeList(a.env.Stdout, resp.GetNodes(), time.Now())
			if shown, total := len(resp.GetNodes()), int(resp.GetTotalSize()); resp.GetNextPageToken() != "" && total > shown {
				fmt.Fprintf(a.env.Stderr, "%d of %d nodes shown: --all lists every one, --filter narrows (e.g. --filter verdict=UNHEALTHY,DEGRADED)\n", shown, total)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep watching: redraw the table on a terminal, else print a row per change (-o json/yaml: one node per line/document)")
	cmd.Flags().BoolVar(&all, "all", false, "list every node, fetching them page by page (else the first --limit)")
	cmd.Flags().IntVar(&limit, "limit", nodesFirstScreen, "at most this many nodes, in name order, without --all")
	cmd.Flags().StringVar(&filter, "filter", "", "only these nodes: FIELD=VALUE[,VALUE] terms, space-separated, e.g. 'verdict=UNHEALTHY,DEGRADED slurm_state=DRAIN' (fields: verdict, slurm_state, machine, unmapped, name)")
	return cmd
}

// maxNodesPage is the controller's largest ListNodes page.
const maxNodesPage = 1000

// listNodes asks for pages of nodes until the last one (all) or limit
// nodes, and returns them as one response; NextPageToken stays set when
// nodes were left out.
func listNodes(ctx context.Context, o *clientOptions, c apipb.NodeServiceClient, req *apipb.ListNodesRequest, all bool, limit int) (*apipb.ListNodesResponse, error) {
	var out *apipb.ListNodesResponse
	for {
		cctx, cancel := o.call(ctx)
		resp, err := c.ListNodes(cctx, req)
		cancel()
		if err != nil {
			return nil, o.clientError("list nodes", err)
		}
		if out == nil {
			out = resp
		} else {
			out.Nodes = append(out.Nodes, resp.GetNodes()...)
			out.NextPageToken, out.TotalSize = resp.GetNextPageToken(), resp.GetTotalSize()
		}
		if !all && len(out.Nodes) >= limit {
			if len(out.Nodes) > limit {
				out.Nodes = out.Nodes[:limit]
				out.NextPageToken = "more" // the caller only tests it for ""
			}
			return out, nil
		}
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func sortNodes(ns []*apipb.Node) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].GetName() < ns[j].GetName() })
}

// healthName is HEALTH_VERDICT_HEALTHY without its prefix, "-" when unset.
func healthName(v apipb.HealthVerdict) string {
	if v == apipb.HealthVerdict_HEALTH_VERDICT_UNSPECIFIED {
		return "-"
	}
	return strings.TrimPrefix(v.String(), "HEALTH_VERDICT_")
}

// agentText is "up 3s" (connected; age of the last report), "down 5m02s"
// (disconnected, last report that long ago) or "none" (never reported).
func agentText(n *apipb.Node, now time.Time) string {
	state := "down"
	if n.GetAgentConnected() {
		state = "up"
	}
	if n.GetLastSeenTime() == nil {
		if n.GetAgentConnected() {
			return "up"
		}
		return "none"
	}
	return state + " " + fmtDuration(now.Sub(n.GetLastSeenTime().AsTime()))
}

// agentDetail is agentText in words, for node get.
func agentDetail(n *apipb.Node, now time.Time) string {
	state := "disconnected"
	if n.GetAgentConnected() {
		state = "connected"
	}
	if n.GetLastSeenTime() == nil {
		if n.GetAgentConnected() {
			return state
		}
		return "never reported"
	}
	return state + ", last report " + fmtDuration(now.Sub(n.GetLastSeenTime().AsTime())) + " ago"
}

// nodeSummary is what the table says about a node's GPUs and ports.
type nodeSummary struct {
	gpus, busy, present int
	utilSum, maxTemp    float64
	powerMW             int64
	ibUp, ibAll         int
}

func summarize(n *apipb.Node) nodeSummary {
	if sum := n.GetSummary(); sum != nil && len(n.GetGpus()) == 0 && len(n.GetIbPorts()) == 0 {
		// NODE_VIEW_BASIC: the controller counted.
		return nodeSummary{gpus: int(sum.GetGpuCount()), busy: int(sum.GetGpusBusy()), present: int(sum.GetGpusPresent()),
			utilSum: sum.GetMeanUtilizationPercent() * float64(sum.GetGpusPresent()), maxTemp: sum.GetMaxTemperatureCelsius(),
			powerMW: sum.GetPowerMilliwatts(), ibUp: int(sum.GetIbPortsActive()), ibAll: int(sum.GetIbPortCount())}
	}
	var s nodeSummary
	for _, g := range n.GetGpus() {
		s.gpus++
		if !g.GetPresent() {
			continue
		}
		s.present++
		if g.GetUtilizationPercent() >= busyUtilization || g.GetSlurmJobId() != "" {
			s.busy++
		}
		s.utilSum += g.GetUtilizationPercent()
		s.maxTemp = max(s.maxTemp, g.GetTemperatureCelsius())
		s.powerMW += g.GetPowerMilliwatts()
	}
	for _, p := range n.GetIbPorts() {
		s.ibAll++
		if ibUp(p) {
			s.ibUp++
		}
	}
	return s
}

// ibUp: the port is ACTIVE (Slurm and NCCL can use it).
func ibUp(p *apipb.IbPort) bool { return strings.EqualFold(p.GetState(), "ACTIVE") }

// nodeRow is one row of the nodes table.
func nodeRow(n *apipb.Node, now time.Time) []string {
	s := summarize(n)
	gpus, util, temp, power := "-", "-", "-", "-"
	if s.gpus > 0 {
		gpus = fmt.Sprintf("%d/%d", s.busy, s.gpus)
	}
	stale := n.GetTelemetryStale()
	if s.present > 0 && !stale {
		util = fmt.Sprintf("%.0f%%", s.utilSum/float64(s.present))
		temp = fmt.Sprintf("%.0fC", s.maxTemp)
		power = fmt.Sprintf("%.0fW", float64(s.powerMW)/1000)
	}
	if stale && s.gpus > 0 {
		// The last report is not what the GPUs do now: no busy count.
		gpus = fmt.Sprintf("-/%d", s.gpus)
	}
	ib := "-"
	if s.ibAll > 0 && !stale {
		ib = fmt.Sprintf("%d/%d up", s.ibUp, s.ibAll)
	}
	telemetry := "-"
	switch {
	case stale:
		telemetry = "stale"
		if n.GetLastSeenTime() != nil && !now.IsZero() {
			telemetry += " " + fmtDuration(now.Sub(n.GetLastSeenTime().AsTime()))
		}
	case n.GetSimulated():
		telemetry = "simulated"
	case s.gpus > 0:
		telemetry = "nvml"
	}
	slurm := orDash(n.GetSlurmState())
	if n.GetUnmapped() {
		slurm = "unmapped" // an agent on a machine with no Slurm node
	}
	return []string{n.GetName(), slurm, healthName(n.GetVerdict()), agentText(n, now),
		gpus, util, temp, power, ib, orDash(strings.Join(n.GetRunIds(), ",")), telemetry}
}

var nodeHeader = []string{"NODE", "SLURM", "HEALTH", "AGENT", "GPUS", "UTIL", "TEMP", "POWER", "IB", "RUNS", "TELEMETRY"}

// printNodeList is the nodes table.
func printNodeList(w io.Writer, nodes []*apipb.Node, now time.Time) {
	if len(nodes) == 0 {
		fmt.Fprintln(w, "No nodes: no agent has reported and Slurm lists none.")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, strings.Join(nodeHeader, "\t"))
	for _, n := range nodes {
		fmt.Fprintln(tw, strings.Join(nodeRow(n, now), "\t"))
	}
	tw.Flush()
}

// remediationLine is the line above the nodes table that says automatic
// drains are paused by the circuit breaker; "" when they are not.
func remediationLine(r *apipb.Remediation) string {
	if !r.GetAutomaticDrainsPaused() {
		return ""
	}
	why := ""
	if r.GetPausedReason() != "" {
		why = ": " + r.GetPausedReason()
	}
	return "AUTOMATIC DRAINS PAUSED by the circuit breaker" + why + "\n(operators' drains still work; see docs/operations.md)\n"
}

// nodeLineWidths are the column widths of the rows that `nodes --watch`
// prints one at a time (not on a terminal), so that they line up anyway.
var nodeLineWidths = []int{12, 12, 10, 10, 6, 5, 5, 7, 8, 28, 0}

// nodeLine is one node as a fixed-width row.
func nodeLine(cells []string) string {
	var b strings.Builder
	for i, c := range cells {
		b.WriteString(c)
		if i < len(cells)-1 {
			pad := max(nodeLineWidths[i]-len(c), 0) + 2
			b.WriteString(strings.Repeat(" ", pad))
		}
	}
	return strings.TrimRight(b.String(), " ")
}

type nodeEvent struct {
	node *apipb.Node
	err  error
}

// watchNodes streams WatchNodes until interrupted. On a terminal it redraws
// the whole table (at most every half second, and every second for the
// agents' ages); otherwise it prints a header and then a row whenever a
// node's row changes (ignoring the age of the agent's report); -o json/yaml
// prints each node as it arrives.
func watchNodes(ctx context.Context, a *app, o *clientOptions, c apipb.NodeServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	req := &apipb.WatchNodesRequest{View: apipb.NodeView_NODE_VIEW_BASIC}
	if a.json() {
		req.View = apipb.NodeView_NODE_VIEW_FULL
	}
	stream, err := c.WatchNodes(ctx, req)
	if err != nil {
		cancel()
		return o.clientError("watch nodes", err)
	}
	events := make(chan nodeEvent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			select {
			case events <- nodeEvent{resp.GetNode(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		<-done
	}()

	w := a.env.Stdout
	live := !a.json() && a.env.IsTerminal(w)
	var tick <-chan time.Time
	if live {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	nodes := map[string]*apipb.Node{}
	last := map[string]string{}
	headerDone := false
	draw := func() {
		list := make([]*apipb.Node, 0, len(nodes))
		for _, n := range nodes {
			list = append(list, n)
		}
		sortNodes(list)
		fmt.Fprint(w, "\033[H\033[2J")
		printNodeList(w, list, time.Now())
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			if len(nodes) > 0 {
				draw()
			}
		case ev := <-events:
			if errors.Is(ev.err, io.EOF) {
				return errors.New("watch nodes: the controller ended the stream; run 'sopilot nodes --watch' again")
			}
			if ev.err != nil {
				if ctx.Err() != nil { // interrupted: the stream ended because of that
					return ctx.Err()
				}
				return o.clientError("watch nodes", ev.err)
			}
			n := ev.node
			nodes[n.GetName()] = n
			switch {
			case a.json():
				if err := writeProtoLine(w, a.root.output, n); err != nil {
					return err
				}
			case live:
				// Drawn on the next tick, so that a burst of changes
				// redraws once.
			default:
				// The agent's age moves every report; compare without it.
				key := nodeLine(nodeRow(n, time.Time{}))
				if last[n.GetName()] == key {
					continue
				}
				last[n.GetName()] = key
				if !headerDone {
					fmt.Fprintln(w, nodeLine(nodeHeader))
					headerDone = true
				}
				fmt.Fprintln(w, nodeLine(nodeRow(n, time.Now())))
			}
		}
	}
}

func newNodeGetCommand(a *app, o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one node: Slurm state and reason, verdict reasons, each GPU, each IB port",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := getNode(cmd.Context(), o, args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return writeProto(a.env.Stdout, a.root.output, n)
			}
			printNode(a.env.Stdout, n, time.Now())
			return nil
		},
	}
}

func getNode(ctx context.Context, o *clientOptions, name string) (*apipb.Node, error) {
	conn, err := o.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cctx, cancel := o.call(ctx)
	defer cancel()
	resp, err := apipb.NewNodeServiceClient(conn).GetNode(cctx, &apipb.GetNodeRequest{Name: name})
	if err != nil {
		return nil, o.clientError("get node "+name, err)
	}
	return resp.GetNode(), nil
}

const gib = 1 << 30

// printNode is the detail view of node get, drain and undrain.
func printNode(w io.Writer, n *apipb.Node, now time.Time) {
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Name", n.GetName())
	row("Machine", n.GetMachine())
	if n.GetUnmapped() {
		row("Slurm", "unmapped: no Slurm node runs on this machine (never drained)")
	} else {
		row("Slurm", orDash(n.GetSlurmState()))
	}
	row("Slurm reason", n.GetSlurmReason())
	row("Health", healthName(n.GetVerdict()))
	for i, r := range n.GetVerdictReasons() {
		if i == 0 {
			row("Reasons", r)
		} else {
			fmt.Fprintf(tw, "\t%s\n", r)
		}
	}
	agent := agentDetail(n, now)
	if n.GetAgentVersion() != "" {
		agent += ", version " + n.GetAgentVersion()
	}
	row("Agent", agent)
	switch {
	case n.GetTelemetryStale():
		age := "an unknown time"
		if n.GetLastSeenTime() != nil {
			age = fmtDuration(now.Sub(n.GetLastSeenTime().AsTime()))
		}
		row("Telemetry", "STALE: the agent's last report, "+age+" old; the GPU and IB numbers below are from then")
	case n.GetSimulated():
		row("Telemetry", "simulated (not real NVML)")
	}
	var sw []string
	if n.GetDriverVersion() != "" {
		sw = append(sw, "driver "+n.GetDriverVersion())
	}
	if n.GetCudaVersion() != "" {
		sw = append(sw, "CUDA "+n.GetCudaVersion())
	}
	if n.GetNcclVersion() != "" {
		sw = append(sw, "NCCL "+n.GetNcclVersion())
	}
	row("Software", strings.Join(sw, ", "))
	row("Boot id", n.GetBootId())
	row("Runs", strings.Join(n.GetRunIds(), ", "))
	tw.Flush()

	if len(n.GetGpus()) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "GPU\tMODEL\tUTIL\tMEMORY\tTEMP\tPOWER\tJOB\tSTATUS")
		for _, g := range n.GetGpus() {
			if !g.GetPresent() {
				lost := "lost (no telemetry; off the bus?)"
				if x := g.GetOpenXids(); len(x) > 0 {
					lost = gpuStatus(&apipb.Gpu{OpenXids: x}) + ", " + lost
				}
				fmt.Fprintf(tw, "%d\t%s\t-\t-\t-\t-\t-\t%s\n", g.GetIndex(), orDash(g.GetModel()), lost)
				continue
			}
			mem := fmt.Sprintf("%.1f/%.1f GiB", float64(g.GetMemoryUsedBytes())/gib, float64(g.GetMemoryTotalBytes())/gib)
			power := fmt.Sprintf("%.0fW", float64(g.GetPowerMilliwatts())/1000)
			if g.GetPowerLimitMilliwatts() > 0 {
				power = fmt.Sprintf("%.0f/%.0fW", float64(g.GetPowerMilliwatts())/1000, float64(g.GetPowerLimitMilliwatts())/1000)
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f%%\t%s\t%.0fC\t%s\t%s\t%s\n", g.GetIndex(), orDash(g.GetModel()), g.GetUtilizationPercent(),
				mem, g.GetTemperatureCelsius(), power, orDash(g.GetSlurmJobId()), gpuStatus(g))
		}
		tw.Flush()
	}
	if len(n.GetIbPorts()) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "IB PORT\tSTATE\tPHYS\tRATE\tSYMBOL ERR\tLINK DOWNED\tRCV ERR")
		for _, p := range n.GetIbPorts() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d Gb/s\t%d\t%d\t%d\n", p.GetName(), orDash(p.GetState()), orDash(p.GetPhysState()),
				p.GetRateGbps(), p.GetSymbolErrors(), p.GetLinkDowned(), p.GetPortRcvErrors())
		}
		tw.Flush()
	}
}

// slowdowns are the NVML clock event reasons that slow a busy GPU down
// (idle, application clocks, sync boost and display clocks do not).
var slowdowns = []struct {
	bit  uint64
	name string
}{
	{0x4, "power cap"},
	{0x8, "hw slowdown"},
	{0x20, "sw thermal"},
	{0x40, "hw thermal"},
	{0x80, "power brake"},
}

// gpuStatus names what is wrong with a present GPU, or "ok": its open
// XID incidents first ("xid 79").
func gpuStatus(g *apipb.Gpu) string {
	var s []string
	for _, x := range g.GetOpenXids() {
		s = append(s, fmt.Sprintf("xid %d", x))
	}
	for _, sd := range slowdowns {
		if g.GetThrottleReasons()&sd.bit != 0 {
			s = append(s, "slowdown: "+sd.name)
		}
	}
	if g.GetEccVolatileUncorrected() != 0 {
		s = append(s, fmt.Sprintf("%d uncorrected ECC", g.GetEccVolatileUncorrected()))
	}
	if g.GetRowRemapFailure() {
		s = append(s, "row remap failure")
	}
	if len(s) == 0 {
		return "ok"
	}
	return strings.Join(s, ", ")
}

// opError is clientError for the node operations, which a controller may
// not implement yet: UNIMPLEMENTED says which feature is missing.
func (o *clientOptions) opError(what, feature string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		return fmt.Errorf("%s: this controller does not support %s yet (%s answered UNIMPLEMENTED: %s)", what, feature, o.controller, st.Message())
	}
	return o.clientError(what, err)
}

func nodeClient(o *clientOptions) (apipb.NodeServiceClient, func(), error) {
	conn, err := o.dial()
	if err != nil {
		return nil, nil, err
	}
	return apipb.NewNodeServiceClient(conn), func() { conn.Close() }, nil
}

func newNodeDrainCommand(a *app, o *clientOptions) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "drain NAME --reason TEXT",
		Short: "Drain a node in Slurm (running jobs finish, no new ones start)",
		Long: `Drain a node in Slurm with a reason: its running jobs finish, and Slurm starts
no new ones there. The reason is required; Slurm shows it after sopilot's
prefix. A drain that sopilot does not own is never overwritten.

  sopilot node drain worker-0 --reason "XID 79 on GPU 3"`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("%w: --reason is required: say why, e.g. --reason \"XID 79 on GPU 3\"", ErrUsage)
			}
			c, closer, err := nodeClient(o)
			if err != nil {
				return err
			}
			defer closer()
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := c.DrainNode(ctx, &apipb.DrainNodeRequest{Name: args[0], Reason: reason})
			if err != nil {
				return o.opError("drain node "+args[0], "node drains", err)
			}
			done := "drained " + args[0] + " (running jobs finish; no new ones start)"
			if !slurmDrained(resp.GetNode()) {
				done = "drain of " + args[0] + " recorded, but Slurm does not show it drained (a controller in --remediation dry-run records drains without making them)"
			}
			return printNodeResult(a, resp.GetNode(), done)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in Slurm (required)")
	return cmd
}

func newNodeUndrainCommand(a *app, o *clientOptions) *cobra.Command {
	var skip, force bool
	cmd := &cobra.Command{
		Use:   "undrain NAME",
		Short: "Resume a node that sopilot drained (after a verification check)",
		Long: `Resume a node that sopilot drained. The controller runs a verification check
first and refuses if it fails; --skip-verification resumes without it.
A node with open hardware incidents (an XID such as 79, a lost GPU, a
failed row remap, a down InfiniBand port) is refused: the fault may still
be there. --force resumes it anyway, with a warning naming the incidents.

  sopilot node undrain worker-0
  sopilot node undrain worker-0 --force     after the hardware was fixed`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closer, err := nodeClient(o)
			if err != nil {
				return err
			}
			defer closer()
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := c.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: args[0], SkipVerification: skip, Force: force})
			if status.Code(err) == codes.FailedPrecondition && !force && strings.Contains(status.Convert(err).Message(), "hardware incident") {
				return fmt.Errorf("undrain node %s: refused: %s\n  (--force resumes it anyway)", args[0], status.Convert(err).Message())
			}
			if err != nil {
				return o.opError("undrain node "+args[0], "node undrains", err)
			}
			for _, inc := range resp.GetOverriddenIncidents() {
				fmt.Fprintf(a.env.Stderr, "sopilot: warning: %s resumed with open hardware incident %s: %s (--force)\n", args[0], inc.GetId(), inc.GetSummary())
			}
			done := "resumed " + args[0]
			if slurmDrained(resp.GetNode()) {
				done = "undrain of " + args[0] + " recorded, but Slurm still shows it drained (a controller in --remediation dry-run records undrains without making them)"
			}
			return printNodeResult(a, resp.GetNode(), done)
		},
	}
	cmd.Flags().BoolVar(&skip, "skip-verification", false, "resume without the verification check")
	cmd.Flags().BoolVar(&force, "force", false, "resume even with open hardware incidents (an XID such as 79, a lost GPU): after the fault was fixed")
	return cmd
}

// printNodeResult prints what drain/undrain did: a line for people, with
// Slurm's state (the controller reads it again after the operation), the
// Node for scripts.
// slurmDrained reports whether Slurm's state of the node carries DRAIN
// (DRAIN, DRAINING, DRAINED or a +DRAIN flag).
func slurmDrained(n *apipb.Node) bool {
	return strings.Contains(strings.ToUpper(n.GetSlurmState()), "DRAIN")
}

func printNodeResult(a *app, n *apipb.Node, done string) error {
	if a.json() {
		return writeProto(a.env.Stdout, a.root.output, n)
	}
	if st := n.GetSlurmState(); st != "" {
		done += ", Slurm state " + st
	}
	_, err := fmt.Fprintln(a.env.Stdout, done)
	return err
}

func newNodeCheckCommand(a *app, o *clientOptions) *cobra.Command {
	var check string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check NAME",
		Short: "Run an active check (NCCL all_reduce_perf by default) on a node; exit 1 if it fails",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return fmt.Errorf("%w: --check-timeout must be positive, e.g. 5m", ErrUsage)
			}
			c, closer, err := nodeClient(o)
			if err != nil {
				return err
			}
			defer closer()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			resp, err := c.RunNodeCheck(ctx, &apipb.RunNodeCheckRequest{Name: args[0], Check: check})
			if err != nil {
				if status.Code(err) == codes.DeadlineExceeded {
					return fmt.Errorf("check node %s: no result within %s (--check-timeout)", args[0], timeout)
				}
				return o.opError("check node "+args[0], "node checks", err)
			}
			if a.json() {
				if err := writeProto(a.env.Stdout, a.root.output, resp); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(a.env.Stdout, checkText(args[0], check, resp))
			}
			if !resp.GetPassed() {
				return fmt.Errorf("%w: %s on %s", ErrCheckFailed, check, args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&check, "check", "nccl", "the check to run")
	cmd.Flags().DurationVar(&timeout, "check-timeout", 5*time.Minute, "limit for the check (instead of --timeout)")
	return cmd
}

// checkText is "PASSED nccl on worker-0: <summary> (bus bandwidth 182.3 GB/s)".
func checkText(node, check string, r *apipb.RunNodeCheckResponse) string {
	verdict := "FAILED"
	if r.GetPassed() {
		verdict = "PASSED"
	}
	s := fmt.Sprintf("%s %s on %s", verdict, check, node)
	if r.GetSummary() != "" {
		s += ": " + r.GetSummary()
	}
	if r.GetBusBandwidthGbps() > 0 {
		s += fmt.Sprintf(" (bus bandwidth %.1f GB/s)", r.GetBusBandwidthGbps())
	}
	return s
}

func newNodeIncidentsCommand(a *app, o *clientOptions) *cobra.Command {
	var runID string
	var limit int
	cmd := &cobra.Command{
		Use:   "incidents [NAME]",
		Short: "List health incidents: all, one node's, or one run's (--run)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%w: %s wants at most one NAME, got %d arguments", ErrUsage, cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("%w: --limit must be 0 (all) or positive", ErrUsage)
			}
			req := &apipb.ListIncidentsRequest{RunId: runID, PageSize: 1000}
			if len(args) == 1 {
				req.Node = args[0]
			}
			if limit > 0 && limit < 1000 {
				req.PageSize = int32(limit)
			}
			c, closer, err := nodeClient(o)
			if err != nil {
				return err
			}
			defer closer()
			all := &apipb.ListIncidentsResponse{}
			for {
				ctx, cancel := o.call(cmd.Context())
				resp, err := c.ListIncidents(ctx, req)
				cancel()
				if err != nil {
					return o.opError("list incidents", "incident listing", err)
				}
				all.Incidents = append(all.Incidents, resp.GetIncidents()...)
				if limit > 0 && len(all.Incidents) >= limit {
					all.Incidents = all.Incidents[:limit]
					break
				}
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if a.json() {
				return writeProto(a.env.Stdout, a.root.output, all)
			}
			printIncidents(a.env.Stdout, all.GetIncidents())
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run", "", "only incidents on this run's nodes while it ran")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many incidents (0: all, fetched page by page)")
	return cmd
}

// printIncidents is node incidents' table.
func printIncidents(w io.Writer, incs []*apipb.Incident) {
	if len(incs) == 0 {
		fmt.Fprintln(w, "No incidents.")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNODE\tCOMPONENT\tSEVERITY\tCOUNT\tFIRST SEEN\tLAST SEEN\tRESOLVED\tACTION\tSUMMARY")
	for _, in := range incs {
		resolved := "-"
		if in.GetResolveTime() != nil {
			resolved = fmtTime(in.GetResolveTime())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", in.GetId(), in.GetNode(), orDash(in.GetComponent()),
			healthName(in.GetSeverity()), in.GetCount(), fmtTime(in.GetFirstSeenTime()), fmtTime(in.GetLastSeenTime()),
			resolved, orDash(in.GetAction()), in.GetSummary())
	}
	tw.Flush()
}
