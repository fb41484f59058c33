package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

func ptr[T any](v T) *T { return &v }

// agentName is the node name of simulated agent i.
func agentName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// makeBatch is the n-th (from 1) batch of an 8-GPU, 8-port node: every GPU
// field set, one process per GPU attributed to a Slurm job, 21 counters per
// port. Values change from batch to batch like real ones.
func makeBatch(node string, n uint64, now time.Time) *agentpb.Batch {
	ts := timestamppb.New(now)
	b := &agentpb.Batch{CreateTime: ts, GpuSamples: make([]*agentpb.GpuSample, 8), IbSamples: make([]*agentpb.IbSample, 8)}
	for i := range 8 {
		u := float64((int(n)*7+i*13)%100) + 0.5
		b.GpuSamples[i] = &agentpb.GpuSample{
			SampleTime: ts, Index: int32(i), Uuid: fmt.Sprintf("GPU-%s-%d", node, i),
			SmUtilizationPercent: ptr(u), MemoryUtilizationPercent: ptr(u / 2), MemoryUsedBytes: ptr(int64(60+i) << 30),
			TemperatureCelsius: ptr(55 + u/10), MemoryTemperatureCelsius: ptr(60 + u/10),
			PowerMilliwatts: ptr(int64(400_000 + 1000*int(u))), PowerLimitMilliwatts: ptr(int64(700_000)),
			EnergyMillijoules: ptr(n * 450_000), SmClockMhz: ptr(int32(1980)), MemoryClockMhz: ptr(int32(2619)),
			ThrottleReasons: ptr(uint64(0)), EccVolatileCorrected: ptr(uint64(0)), EccVolatileUncorrected: ptr(uint64(0)),
			EccAggregateCorrected: ptr(uint64(3)), EccAggregateUncorrected: ptr(uint64(0)),
			RowRemapPending: ptr(false), RowRemapFailure: ptr(false), PcieReplayCount: ptr(uint64(0)), NvlinkErrorCount: ptr(uint64(0)),
			Processes: []*agentpb.GpuProcess{{Pid: int32(10_000 + i), MemoryUsedBytes: int64(58+i) << 30, SlurmJobId: "4242"}},
		}
	}
	for p := range 8 {
		// A healthy port: traffic counters grow, error counters stand
		// still (non-zero, so every field is on the wire).
		v := func(j uint64) uint64 { return n * j * 1_000_003 }
		c := &agentpb.IbCounters{SymbolError: 3, LinkErrorRecovery: 1, LinkDowned: 1, PortRcvErrors: 2,
			PortRcvRemotePhysicalErrors: 1, PortRcvSwitchRelayErrors: 1, PortXmitDiscards: 5, PortXmitConstraintErrors: 1,
			PortRcvConstraintErrors: 1, LocalLinkIntegrityErrors: 1, ExcessiveBufferOverrunErrors: 1, Vl15Dropped: 1,
			PortXmitWait: v(13), PortRcvData: v(14), PortXmitData: v(15), PortRcvPackets: v(16), PortXmitPackets: v(17),
			UnicastRcvPackets: v(18), UnicastXmitPackets: v(19), MulticastRcvPackets: v(20), MulticastXmitPackets: v(21)}
		b.IbSamples[p] = &agentpb.IbSample{SampleTime: ts, Device: fmt.Sprintf("mlx5_%d", p), Port: 1,
			State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400, Counters: c}
	}
	return b
}

// simAgent is one simulated node agent: a buffer, a client and the record
// of when each of its batches was added.
type simAgent struct {
	name   string
	buf    *uplink.Buffer
	client *uplink.Client

	mu      sync.Mutex
	added   map[uint64]time.Time // sequence → time added, learned when sent
	lastSeq uint64               // highest sequence sent
	rec     *recorder
}

// recorder collects the ack latencies of batches added inside the window.
type recorder struct {
	from, to atomic.Int64 // window in UnixNano; to == 0 while open
	mu       sync.Mutex
	lat      []time.Duration
	offered  atomic.Int64 // batches added inside the window
	skipped  atomic.Int64 // samples skipped inside the window: the controller asked for fewer
}

func (r *recorder) inWindow(t time.Time) bool {
	from, to := r.from.Load(), r.to.Load()
	ns := t.UnixNano()
	return from != 0 && ns >= from && (to == 0 || ns < to)
}

// sent notes a batch as it is written to the stream. Its create time is
// when it was added to the buffer.
func (a *simAgent) sent(seq uint64, added time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq > a.lastSeq {
		a.lastSeq = seq
		if a.rec.inWindow(added) {
			a.added[seq] = added
		}
	}
}

// acked records the latency of every noted batch up to seq.
func (a *simAgent) acked(seq uint64, now time.Time) {
	a.mu.Lock()
	var lat []time.Duration
	for s, t := range a.added {
		if s <= seq {
			lat = append(lat, now.Sub(t))
			delete(a.added, s)
		}
	}
	a.mu.Unlock()
	if len(lat) > 0 {
		a.rec.mu.Lock()
		a.rec.lat = append(a.rec.lat, lat...)
		a.rec.mu.Unlock()
	}
}

// unacked is how many noted batches wait for an ack.
func (a *simAgent) unacked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.added)
}

type agentKey struct{}

// tapStream watches an agent's Connect stream: batches going out, acks
// coming in.
type tapStream struct {
	grpc.ClientStream
	a *simAgent
}

func (t *tapStream) SendMsg(m any) error {
	if r, ok := m.(*agentpb.ConnectRequest); ok {
		if b := r.GetBatch(); b != nil {
			t.a.sent(b.GetSequence(), b.GetCreateTime().AsTime())
		}
	}
	return t.ClientStream.SendMsg(m)
}

func (t *tapStream) RecvMsg(m any) error {
	err := t.ClientStream.RecvMsg(m)
	if err == nil {
		if r, ok := m.(*agentpb.ConnectResponse); ok && r.GetAck() != nil {
			t.a.acked(r.GetAck().GetSequence(), time.Now())
		}
	}
	return err
}

func tap(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	if a, ok := ctx.Value(agentKey{}).(*simAgent); ok {
		return &tapStream{ClientStream: s, a: a}, nil
	}
	return s, nil
}

type nopHandler struct{}

func (nopHandler) Config(*agentpb.AgentConfig)         {}
func (nopHandler) Assignments(*agentpb.RunAssignments) {}
func (nopHandler) Command(context.Context, *agentpb.Command) *agentpb.CommandResult {
	return &agentpb.CommandResult{}
}

// result is one run's row.
type result struct {
	agents, conns      int
	window             time.Duration
	offered, acked     int
	skipped            int
	p50, p99, max      time.Duration
	unacked            int
	reconnects         uint64  // streams opened again in the window by agents that had had one
	late               int     // agents whose first stream opened in the window
	disconnected       int     // agents without a stream at the end of the window
	ctlCPU, ctlRSS     float64 // percent of one core, MiB; NaN when unknown
	agentCPU, agentRSS float64
	sameProcess        bool
	// After a controller restart (-restart): how long stopping and
	// starting it took, and when each agent had a stream again (sorted).
	restartStopped time.Duration
	restartBack    []time.Duration
}

func (r result) print(w io.Writer, header bool) {
	if header {
		fmt.Fprintln(w, "| agents | conns | offered b/s | acked b/s | ack p50 | ack p99 | ack max | unacked | reconnects | connected late | down at end | controller CPU % | controller RSS MiB | agents CPU % | agents RSS MiB | slowed b/s |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	}
	ctl := func(v float64, f string) string {
		if v != v {
			return "–"
		}
		return fmt.Sprintf(f, v)
	}
	agentCPU, agentRSS := ctl(r.agentCPU, "%.1f"), ctl(r.agentRSS, "%.0f")
	if r.sameProcess {
		agentCPU, agentRSS = "(same process)", "(same process)"
	}
	sec := r.window.Seconds()
	fmt.Fprintf(w, "| %d | %d | %.0f | %.0f | %s | %s | %s | %d | %d | %d | %d | %s | %s | %s | %s | %.0f |\n",
		r.agents, r.conns, float64(r.offered)/sec, float64(r.acked)/sec,
		fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.max), r.unacked, r.reconnects, r.late, r.disconnected,
		ctl(r.ctlCPU, "%.1f"), ctl(r.ctlRSS, "%.0f"), agentCPU, agentRSS, float64(r.skipped)/sec)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

// percentile of sorted values (nearest rank); 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// cpuTicks is a process's utime+stime in clock ticks (100 per second on
// Linux) and its resident set in KiB, from /proc.
func procStat(pid int) (ticks int64, rssKiB int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	ticks, err = parseStatTicks(string(b))
	if err != nil {
		return 0, 0, err
	}
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	rssKiB, err = parseStatusKiB(string(s), "VmRSS")
	return ticks, rssKiB, err
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runAgents starts o.agents agents against addr, measures the window and
// returns the row.
// runAgents runs the agents against addr and measures the window. With
// restart set, it then restarts the controller through it and measures
// how long the agents take to reconnect (result.restart).
func runAgents(ctx context.Context, o options, addr string, logger *slog.Logger, restart func() error) (result, error) {
	res := result{agents: o.agents, conns: o.conns, window: o.duration, sameProcess: o.role == "all"}
	var ca *testCA
	if o.tlsDir != "" {
		var err error
		if ca, err = readCA(o.tlsDir); err != nil {
			return res, fmt.Errorf("-tls-dir: %w", err)
		}
	}
	conns := make([]*grpc.ClientConn, o.conns)
	for i := range conns {
		creds := insecure.NewCredentials()
		if ca != nil {
			cert, err := ca.agentCert(agentName(i))
			if err != nil {
				return res, err
			}
			creds = credentials.NewTLS(ca.clientTLS(cert))
		}
		c, err := grpc.NewClient(addr, append(uplink.DialOptions(), grpc.WithTransportCredentials(creds), grpc.WithStreamInterceptor(tap))...)
		if err != nil {
			return res, err
		}
		defer c.Close()
		conns[i] = c
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	quiet := slog.New(slog.DiscardHandler)
	agents := make([]*simAgent, o.agents)
	for i := range agents {
		name := agentName(i)
		a := &simAgent{name: name, buf: uplink.NewBuffer(uplink.BufferOptions{}), added: map[uint64]time.Time{}, rec: rec}
		hello := func() *agentpb.Hello {
			inv := &agentpb.Inventory{Simulated: true}
			for g := range 8 {
				inv.Gpus = append(inv.Gpus, &agentpb.GpuInfo{Index: int32(g), Uuid: fmt.Sprintf("GPU-%s-%d", name, g), Model: "NVIDIA H200 (simulated)", MemoryTotalBytes: 141 << 30, PciBusId: fmt.Sprintf("00000000:%02X:00.0", 0x18+g)})
			}
			return &agentpb.Hello{NodeName: name, BootId: "boot-" + name, AgentVersion: "ingestbench", Inventory: inv}
		}
		a.client = uplink.NewClient(conns[i%len(conns)], hello, a.buf, nopHandler{}, quiet, uplink.Options{ReconnectSpread: uplink.DefaultReconnectSpread})
		agents[i] = a
	}
	start := time.Now()
	for i, a := range agents {
		startAt := start.Add(time.Duration(float64(o.ramp) * float64(i) / float64(len(agents))))
		phase := time.Duration(rand.Int64N(int64(o.interval)))
		// Client.Run is not waited for: after a Send that fails with
		// io.EOF it can block in Recv beyond its context (see "Node agent
		// and ingest" in docs/benchmarks.md).
		wg.Add(1)
		go func() {
			if !sleepUntil(ctx, startAt) {
				return
			}
			_ = a.client.Run(context.WithValue(ctx, agentKey{}, a))
		}()
		go func() {
			defer wg.Done()
			if !sleepUntil(ctx, startAt.Add(phase)) {
				return
			}
			t := time.NewTicker(o.interval)
			defer t.Stop()
			var last time.Time
			for n := uint64(1); ; {
				now := time.Now()
				// As the real agent does: sample no more often than a
				// controller short of CPU asks.
				if hint := a.client.MinSampleInterval(); hint > o.interval && now.Sub(last) < hint-o.interval/2 {
					if rec.inWindow(now) {
						rec.skipped.Add(1)
					}
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
					continue
				}
				last = now
				if rec.inWindow(now) {
					rec.offered.Add(1)
				}
				b := makeBatch(a.name, n, now)
				if !o.ibCounters {
					for _, p := range b.IbSamples {
						p.Counters = nil
					}
				}
				a.buf.Add(b)
				n++
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	if !sleepUntil(ctx, start.Add(o.warmup)) {
		return res, ctx.Err()
	}
	connected := 0
	for _, a := range agents {
		if a.client.Connected() {
			connected++
		}
	}
	if connected < len(agents) {
		logger.Warn("not every agent connected by the end of the warm-up", "connected", connected, "agents", len(agents))
	}
	sessions0 := uint64(0)
	before := make([]uint64, len(agents))
	for i, a := range agents {
		before[i] = a.client.Sessions()
		sessions0 += before[i]
	}

	var ctlTicks0 int64
	if o.serverPID != 0 {
		t, _, err := procStat(o.serverPID)
		if err != nil {
			return res, fmt.Errorf("-server-pid: %w", err)
		}
		ctlTicks0 = t
		_ = syscall.Kill(o.serverPID, syscall.SIGUSR1)
	}
	var prof *os.File
	if o.cpuprofile != "" && o.role == "all" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return res, err
		}
		prof = f
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
	}
	cpu0 := selfCPU()
	w0 := time.Now()
	rec.from.Store(w0.UnixNano())
	if !sleepUntil(ctx, w0.Add(o.duration)) {
		return res, ctx.Err()
	}
	w1 := time.Now()
	rec.to.Store(w1.UnixNano())
	cpu1 := selfCPU()
	wall := w1.Sub(w0)
	res.window = wall
	if prof != nil {
		pprof.StopCPUProfile()
		if err := prof.Close(); err != nil {
			return res, err
		}
	}
	res.ctlCPU, res.ctlRSS, res.agentCPU, res.agentRSS = nan(), nan(), nan(), nan()
	_, selfRSS, _ := procStat(os.Getpid())
	if o.serverPID != 0 {
		_ = syscall.Kill(o.serverPID, syscall.SIGUSR2)
		t, rss, err := procStat(o.serverPID)
		if err != nil {
			return res, fmt.Errorf("-server-pid: %w", err)
		}
		res.ctlCPU = 100 * float64(t-ctlTicks0) / 100 / wall.Seconds()
		res.ctlRSS = float64(rss) / 1024
	}
	own := 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	if o.role == "all" {
		res.ctlCPU, res.ctlRSS = own, float64(selfRSS)/1024
	} else {
		res.agentCPU, res.agentRSS = own, float64(selfRSS)/1024
	}
	sessions1 := uint64(0)
	for i, a := range agents {
		n := a.client.Sessions()
		sessions1 += n
		if before[i] == 0 && n > 0 {
			res.late++ // its first stream is not a reconnect
		}
	}
	res.reconnects = sessions1 - sessions0 - uint64(res.late)
	for _, a := range agents {
		if !a.client.Connected() {
			res.disconnected++
		}
	}

	// Acks of the window's last batches come within the grace period.
	deadline := w1.Add(o.grace)
	for time.Now().Before(deadline) {
		if !sleepUntil(ctx, time.Now().Add(100*time.Millisecond)) {
			return res, ctx.Err()
		}
		waiting := 0
		for _, a := range agents {
			waiting += a.unacked()
		}
		if waiting == 0 {
			break
		}
	}
	for _, a := range agents {
		res.unacked += a.unacked()
	}
	rec.mu.Lock()
	lat := slices.Clone(rec.lat)
	rec.mu.Unlock()
	slices.Sort(lat)
	res.offered, res.acked, res.skipped = int(rec.offered.Load()), len(lat), int(rec.skipped.Load())
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		res.max = lat[len(lat)-1]
	}
	if res.unacked > 0 {
		// An unacked batch waited at least until now: the max is a bound.
		res.max = max(res.max, time.Since(w1))
	}
	if restart != nil {
		if err := measureRestart(ctx, agents, restart, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// measureRestart restarts the controller and polls every 50 ms until every
// agent has a new stream (or a minute passed).
func measureRestart(ctx context.Context, agents []*simAgent, restart func() error, res *result) error {
	before := make([]uint64, len(agents))
	for i, a := range agents {
		before[i] = a.client.Sessions()
	}
	t0 := time.Now()
	if err := restart(); err != nil {
		return fmt.Errorf("restart the controller: %w", err)
	}
	res.restartStopped = time.Since(t0)
	back := make([]time.Duration, 0, len(agents))
	done := make([]bool, len(agents))
	for len(back) < len(agents) && time.Since(t0) < time.Minute {
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return ctx.Err()
		}
		for i, a := range agents {
			if !done[i] && a.client.Sessions() > before[i] && a.client.Connected() {
				done[i] = true
				back = append(back, time.Since(t0))
			}
		}
	}
	res.restartBack = back
	return nil
}

// printRestart describes the reconnection after a controller restart.
func (r result) printRestart(w io.Writer) {
	b := r.restartBack
	if len(b) == 0 {
		fmt.Fprintf(w, "restart: no agent reconnected within a minute (controller stopped and started in %v)\n", r.restartStopped.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(w, "restart: controller stopped and started again in %v; %d of %d agents reconnected within a minute: 50%% by %v, 99%% by %v, the last at %v\n",
		r.restartStopped.Round(time.Millisecond), len(b), r.agents,
		percentile(b, 50*float64(len(b))/float64(r.agents)).Round(time.Millisecond),
		percentile(b, 99*float64(len(b))/float64(r.agents)).Round(time.Millisecond), b[len(b)-1].Round(time.Millisecond))
}

func nan() float64 { z := 0.0; return z / z }

// sleepUntil waits until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
