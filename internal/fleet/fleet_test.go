package fleet_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/fleet/fleettest"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/internal/testwait"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// events records every health event made durable, by node; each test batch
// carries one event whose code is the batch's sequence number, so the
// recorded codes show gaps and duplicates directly.
type events struct {
	mu    sync.Mutex
	codes map[string][]int64
}

func (e *events) RecordEvents(_ context.Context, node string, evs []telemetry.HealthEvent, _ map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range evs {
		e.codes[node] = append(e.codes[node], ev.Code)
	}
	return nil
}

func (e *events) get(node string) []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int64(nil), e.codes[node]...)
}

type progressSink struct {
	mu   sync.Mutex
	last map[string]run.Progress
}

func (p *progressSink) ApplyProgress(_ context.Context, ups map[string]run.Progress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range ups {
		p.last[k] = v
	}
	return nil
}

type staticAssignments []fleet.Assignment

func (s staticAssignments) Assignments(context.Context) ([]fleet.Assignment, error) { return s, nil }

// controller is a fleet served over real loopback TCP with a real bbolt file.
type controller struct {
	addr   string
	fleet  *fleet.Fleet
	events *events
	prog   *progressSink
	m      *fleet.Metrics
	srv    *fleettest.Server
	close  func() // the store, once the fleet stopped
}

// startController serves a fleet on addr over the store at dbPath; its
// events go to ev, or to a new recorder when ev is nil (c.events either way).
func startController(t *testing.T, dbPath, addr string, ev *events, opts fleet.Options, as fleet.AssignmentSource) *controller {
	t.Helper()
	if ev == nil {
		ev = &events{codes: map[string][]int64{}}
	}
	st, err := store.Open(dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := fleet.NewMetrics(nil)
	prog := &progressSink{last: map[string]run.Progress{}}
	opts.Assignments, opts.Progress, opts.Events = as, prog, ev
	f, err := fleet.New(st, slog.New(slog.DiscardHandler), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := fleettest.Serve(t, f, fleettest.Options{Addr: addr, ServerOptions: append(insecureAuth(), grpc.MaxRecvMsgSize(64<<10))})
	c := &controller{addr: srv.Addr, fleet: f, events: ev, prog: prog, m: m, srv: srv}
	var once sync.Once
	c.close = func() {
		once.Do(func() {
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(c.stop)
	return c
}

// insecureAuth is the authorization of an insecure controller: every
// caller gets the insecure identity, which may act as any node's agent.
func insecureAuth() []grpc.ServerOption {
	return auth.NewInsecure(slog.New(slog.DiscardHandler)).ServerOptions()
}

// stop stops the controller and closes its store, for a successor to open.
func (c *controller) stop() { c.srv.Stop(); c.close() }

type nopHandler struct {
	mu sync.Mutex
	as *agentpb.RunAssignments
}

func (*nopHandler) Config(*agentpb.AgentConfig) {}
func (h *nopHandler) Assignments(a *agentpb.RunAssignments) {
	h.mu.Lock()
	h.as = a
	h.mu.Unlock()
}
func (*nopHandler) Command(_ context.Context, c *agentpb.Command) *agentpb.CommandResult {
	return &agentpb.CommandResult{CommandId: c.GetCommandId(), Success: true, Output: "ran " + c.GetKind()}
}

type agent struct {
	buf    *uplink.Buffer
	client *uplink.Client
	cancel context.CancelFunc
	done   chan error
	h      *nopHandler
	seq    int64
}

func startAgent(t *testing.T, addr, node string, bopts uplink.BufferOptions) *agent {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithKeepaliveParams(uplink.Keepalive))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	a := &agent{buf: uplink.NewBuffer(bopts), done: make(chan error, 1), h: &nopHandler{}}
	hello := func() *agentpb.Hello {
		return &agentpb.Hello{NodeName: node, BootId: "boot-" + node, AgentVersion: "test",
			Inventory: &agentpb.Inventory{Simulated: true, Gpus: []*agentpb.GpuInfo{{Index: 0, Uuid: "GPU-0"}, {Index: 1, Uuid: "GPU-1"}}}}
	}
	a.client = uplink.NewClient(conn, hello, a.buf, a.h, slog.New(slog.DiscardHandler), uplink.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- a.client.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-a.done })
	return a
}

// add queues a batch with one GPU sample and one health event whose code
// is the batch number (1, 2, ...).
func (a *agent) add(util float64, job string) {
	a.seq++
	b := &agentpb.Batch{
		CreateTime:   timestamppb.Now(),
		HealthEvents: []*agentpb.HealthEvent{{Component: "gpu0", Kind: "test", Code: a.seq}},
		GpuSamples: []*agentpb.GpuSample{{Index: 0, Uuid: "GPU-0", SmUtilizationPercent: &util, EnergyMillijoules: ptr(uint64(a.seq) * 1000),
			Processes: []*agentpb.GpuProcess{{Pid: 42, SlurmJobId: job}}}},
	}
	a.buf.Add(b)
}

func ptr[T any](v T) *T { return &v }

func seqs(n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func TestStreamDeliversInOrderAndAcks(t *testing.T) {
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{}, nil)
	a := startAgent(t, c.addr, "worker-0", uplink.BufferOptions{})
	for range 50 {
		a.add(50, "")
	}
	testwait.For(t, "50 batches acked", func() bool { return a.buf.Acked() == 50 })
	if got := c.events.get("worker-0"); !slices.Equal(got, seqs(50)) {
		t.Fatalf("durable events = %v, want 1..50 once each", got)
	}
	v, ok := c.fleet.Snapshot("worker-0")
	if !ok || !v.Connected || v.Sequence != 50 || v.Durable != 50 || len(v.GPUs) != 1 || v.Verdict.Verdict != "HEALTHY" || !v.Inventory.Simulated {
		t.Errorf("snapshot = %+v", v)
	}
	if st := a.buf.Stats(); st.Buffered != 0 || st.DroppedSamples != 0 {
		t.Errorf("agent buffer after acks = %+v", st)
	}
	if got := value(c.m.Batches.WithLabelValues("accepted")); got != 50 {
		t.Errorf("accepted batches = %v, want 50", got)
	}
}

// A controller restart mid-stream: the agent keeps producing, reconnects,
// resends; the controller ends up with every sequence exactly once.
func TestControllerRestartNoGapNoDuplicate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	c := startController(t, db, "127.0.0.1:0", nil, fleet.Options{}, nil)
	addr := c.addr
	agents := []*agent{startAgent(t, addr, "worker-0", uplink.BufferOptions{}), startAgent(t, addr, "worker-1", uplink.BufferOptions{})}
	produce := func(n int) {
		for range n {
			for _, a := range agents {
				a.add(90, "")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	produce(30)
	c.stop()
	produce(40) // while the controller is down
	c2 := startController(t, db, addr, c.events, fleet.Options{}, nil)
	produce(30)
	for _, a := range agents {
		testwait.For(t, "all 100 batches acked", func() bool { return a.buf.Acked() == 100 })
	}
	for _, node := range []string{"worker-0", "worker-1"} {
		if got := c.events.get(node); !slices.Equal(got, seqs(100)) {
			t.Errorf("%s: durable sequences = %v, want 1..100 exactly once", node, got)
		}
		v, _ := c2.fleet.Snapshot(node)
		if v.Durable != 100 {
			t.Errorf("%s: durable = %d after restart", node, v.Durable)
		}
	}
	if gaps := value(c2.m.SequenceGaps); gaps != 0 {
		t.Errorf("sequence gaps = %v", gaps)
	}
}

// A partition longer than the buffer: the oldest telemetry is dropped and
// counted, every health event arrives, the sequence has no hole.
func TestPartitionLongerThanBuffer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	c := startController(t, db, "127.0.0.1:0", nil, fleet.Options{}, nil)
	addr := c.addr
	a := startAgent(t, addr, "worker-0", uplink.BufferOptions{MaxTelemetryBatches: 10})
	a.add(10, "")
	testwait.For(t, "first ack", func() bool { return a.buf.Acked() == 1 })
	c.stop()
	// Until the client notices, it keeps writing into the dead stream.
	testwait.For(t, "the agent to see the controller gone", func() bool { return !a.client.Connected() })
	for range 60 {
		a.add(10, "")
	}
	st := a.buf.Stats()
	if st.DroppedSamples != 50 || st.DroppedHealthEvents != 0 || st.BufferedEvents != 60 {
		t.Fatalf("buffer during partition = %+v, want 50 samples dropped, 60 events kept", st)
	}
	c2 := startController(t, db, addr, c.events, fleet.Options{}, nil)
	testwait.For(t, "all 61 acked", func() bool { return a.buf.Acked() == 61 })
	if got := c.events.get("worker-0"); !slices.Equal(got, seqs(61)) {
		t.Errorf("health events = %v, want 1..61", got)
	}
	if got := value(c2.m.AgentDropped); got != 50 {
		t.Errorf("controller saw %v dropped samples, want 50", got)
	}
	if gaps := value(c2.m.SequenceGaps); gaps != 0 {
		t.Errorf("sequence gaps = %v", gaps)
	}
}

// raw opens a stream by hand, to send what a real agent never would.
func raw(t *testing.T, addr string) agentpb.AgentService_ConnectClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s, err := agentpb.NewAgentServiceClient(conn).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func recvErr(s agentpb.AgentService_ConnectClient) error {
	for {
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
}

func hello(node string) *agentpb.ConnectRequest {
	return &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Hello{Hello: &agentpb.Hello{NodeName: node, BootId: "b"}}}
}

func TestBadMessagesEndOnlyThatStream(t *testing.T) {
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{MaxGPUs: 8}, nil)
	good := startAgent(t, c.addr, "worker-0", uplink.BufferOptions{})
	good.add(1, "")
	testwait.For(t, "good agent acked", func() bool { return good.buf.Acked() == 1 })

	tooMany := make([]*agentpb.GpuSample, 9)
	for i := range tooMany {
		tooMany[i] = &agentpb.GpuSample{Index: int32(i)}
	}
	huge := make([]*agentpb.HealthEvent, 1)
	huge[0] = &agentpb.HealthEvent{Message: string(make([]byte, 100<<10))}
	cases := []struct {
		name  string
		first *agentpb.ConnectRequest
		then  *agentpb.ConnectRequest
		code  codes.Code
		msg   string
	}{
		{"batch before hello", &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: &agentpb.Batch{Sequence: 1}}}, nil, codes.InvalidArgument, "first message must be a hello"},
		{"bad node name", hello("bad name;rm"), nil, codes.InvalidArgument, "hello.node_name"},
		{"missing boot id", &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Hello{Hello: &agentpb.Hello{NodeName: "worker-9"}}}, nil, codes.InvalidArgument, "hello.boot_id"},
		{"too many gpus", hello("worker-8"), &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: &agentpb.Batch{Sequence: 1, GpuSamples: tooMany}}}, codes.InvalidArgument, "batch.gpu_samples: 9, at most 8"},
		{"sequence zero", hello("worker-7"), &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: &agentpb.Batch{}}}, codes.InvalidArgument, "batch.sequence"},
		{"second hello", hello("worker-6"), hello("worker-6"), codes.InvalidArgument, "hello: sent twice"},
		{"oversized message", hello("worker-5"), &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: &agentpb.Batch{Sequence: 1, HealthEvents: huge}}}, codes.ResourceExhausted, "larger than max"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := raw(t, c.addr)
			if err := s.Send(tc.first); err != nil {
				t.Fatal(err)
			}
			if tc.then != nil {
				if _, err := s.Recv(); err != nil { // the handshake ack
					t.Fatal(err)
				}
				if err := s.Send(tc.then); err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
			}
			err := recvErr(s)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Errorf("stream ended with %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	// The good agent never noticed.
	good.add(1, "")
	testwait.For(t, "good agent still acked", func() bool { return good.buf.Acked() == 2 })
	if good.client.Sessions() != 1 {
		t.Errorf("good agent reconnected %d times", good.client.Sessions()-1)
	}
}

// A stream with no caller identity reached the fleet around the
// authorization layer (a wiring bug: the insecure mode has an identity
// too). Nobody can be checked against the node it claims, so it is
// refused, and the node stays unknown.
func TestConnectWithoutAnIdentityIsRefused(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// No authorization interceptors: a wiring bug.
	srv := fleettest.Serve(t, f, fleettest.Options{ServerOptions: []grpc.ServerOption{}})
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := agentpb.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(hello("worker-2")); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(s); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream ended with %v, want Unauthenticated", err)
	}
	if _, ok := f.Snapshot("worker-2"); ok {
		t.Error("the fleet knows worker-2 from a stream it refused")
	}
}

// Resending a batch already applied is dropped and re-acked.
func TestDuplicateBatchDropped(t *testing.T) {
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{}, nil)
	s := raw(t, c.addr)
	if err := s.Send(hello("worker-0")); err != nil {
		t.Fatal(err)
	}
	first, err := s.Recv()
	if err != nil || first.GetAck() == nil || first.GetAck().GetSequence() != 0 {
		t.Fatalf("handshake = %v, %v", first, err)
	}
	batch := func(seq uint64) *agentpb.ConnectRequest {
		return &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: &agentpb.Batch{Sequence: seq,
			HealthEvents: []*agentpb.HealthEvent{{Component: "gpu0", Code: int64(seq)}}}}}
	}
	for _, seq := range []uint64{1, 2, 2, 1, 3} {
		if err := s.Send(batch(seq)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, "ack 3", func() bool {
		m, err := s.Recv()
		return err == nil && m.GetAck().GetSequence() == 3
	})
	if got := c.events.get("worker-0"); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("durable = %v, want [1 2 3]", got)
	}
	if got := value(c.m.Batches.WithLabelValues("duplicate")); got != 2 {
		t.Errorf("duplicates = %v, want 2", got)
	}
}

func TestSilentNodeIsUnknownNotUnhealthy(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{Silence: 30 * time.Second, Now: clock}, nil)
	a := startAgent(t, c.addr, "worker-0", uplink.BufferOptions{})
	a.add(5, "")
	testwait.For(t, "ack", func() bool { return a.buf.Acked() == 1 })
	c.fleet.SetVerdict("worker-0", fleet.Verdict{Verdict: "UNHEALTHY", Reasons: []string{"xid 79"}})
	if v, _ := c.fleet.Snapshot("worker-0"); v.Verdict.Verdict != "UNHEALTHY" {
		t.Fatalf("verdict = %v", v.Verdict)
	}
	c.fleet.SetVerdict("worker-0", fleet.Verdict{Verdict: "HEALTHY"})
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	v, _ := c.fleet.Snapshot("worker-0")
	if v.Verdict.Verdict != "UNKNOWN" || len(v.Verdict.Reasons) != 1 || !strings.Contains(v.Verdict.Reasons[0], "no report for more than 30s") {
		t.Errorf("silent node verdict = %+v, want UNKNOWN with the reason", v.Verdict)
	}
}

func TestUsageProgressAndAssignments(t *testing.T) {
	as := staticAssignments{{RunID: "r-1", JobID: "77", Nodes: []string{"worker-0", "worker-1"}, ProgressPath: "/out/r-1.progress.jsonl", GPUsPerNode: 8}}
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{AssignmentInterval: 20 * time.Millisecond}, as)
	a := startAgent(t, c.addr, "worker-0", uplink.BufferOptions{})
	b := startAgent(t, c.addr, "worker-1", uplink.BufferOptions{})
	testwait.For(t, "assignments", func() bool {
		a.h.mu.Lock()
		defer a.h.mu.Unlock()
		return a.h.as != nil && len(a.h.as.GetRuns()) == 1
	})
	a.h.mu.Lock()
	ra := a.h.as.GetRuns()[0]
	a.h.mu.Unlock()
	if ra.GetRunId() != "r-1" || ra.GetProgressPath() != "/out/r-1.progress.jsonl" || ra.GetGpusPerNode() != 8 {
		t.Errorf("worker-0 assignment = %v", ra)
	}
	testwait.For(t, "worker-1 assignment", func() bool {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		return b.h.as != nil && len(b.h.as.GetRuns()) == 1
	})
	b.h.mu.Lock()
	if p := b.h.as.GetRuns()[0].GetProgressPath(); p != "" {
		t.Errorf("worker-1 (not rank 0) got progress path %q", p)
	}
	b.h.mu.Unlock()
	// 100 samples at 1..100 % on the job's GPU; energy rises 1 J a batch.
	for i := 1; i <= 100; i++ {
		a.add(float64(i), "77")
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for i, step := range []int64{10, 20} {
		a.buf.Add(&agentpb.Batch{Progress: []*agentpb.ProgressUpdate{
			{RunId: "r-1", Step: step, TotalSteps: 100, Loss: 0.5, UpdateTime: timestamppb.New(t0.Add(time.Duration(i) * 10 * time.Second))},
			{RunId: "r-other", Step: 1},
		}})
	}
	testwait.For(t, "acks", func() bool { return a.buf.Acked() == 102 })
	u := c.fleet.RunUsage("r-1", false)
	if u == nil || u.GPUCount != 1 || u.Samples != 100 || u.UtilizationMean != 50.5 || u.UtilizationP95 != 95 || u.EnergyJoules != 99 || !u.Simulated {
		t.Errorf("usage = %+v, want 1 GPU, 100 samples, mean 50.5, p95 95, 99 J, simulated", u)
	}
	c.prog.mu.Lock()
	p, ok := c.prog.last["r-1"]
	_, other := c.prog.last["r-other"]
	c.prog.mu.Unlock()
	// 10 steps in 10 s: 80 steps left take 80 s.
	if !ok || p.Step != 20 || p.ETA != 80*time.Second {
		t.Errorf("progress = %+v, want step 20, ETA 80s", p)
	}
	if other {
		t.Error("progress for a run not assigned to the node was stored")
	}
	if got := value(c.m.ProgressIgnored); got != 2 {
		t.Errorf("ignored progress = %v, want 2", got)
	}
	v, _ := c.fleet.Snapshot("worker-0")
	sort.Strings(v.RunIDs)
	if len(v.RunIDs) != 1 || v.RunIDs[0] != "r-1" {
		t.Errorf("run ids on worker-0 = %v", v.RunIDs)
	}
	// Summaries agree with Snapshot on what they carry.
	for _, sv := range c.fleet.Summaries() {
		full, _ := c.fleet.Snapshot(sv.Name)
		if sv.Connected != full.Connected || sv.Silent != full.Silent || sv.Sequence != full.Sequence || len(sv.RunIDs) != len(full.RunIDs) || sv.GPUs != nil {
			t.Errorf("summary of %s = %+v, snapshot %+v", sv.Name, sv, full)
		}
	}
	// Commands reach the agent and come back.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.fleet.RunCommand(ctx, "worker-1", "nccl_check", nil)
	if err != nil || !res.GetSuccess() || res.GetOutput() != "ran nccl_check" {
		t.Errorf("RunCommand = %v, %v", res, err)
	}
	if _, err := c.fleet.RunCommand(ctx, "worker-9", "x", nil); !errors.Is(err, fleet.ErrUnknownNode) {
		t.Errorf("RunCommand on unknown node: %v", err)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// addTelemetry queues a batch with a GPU sample only: acked once applied.
func (a *agent) addTelemetry() {
	a.seq++
	u := 50.0
	a.buf.Add(&agentpb.Batch{CreateTime: timestamppb.Now(),
		GpuSamples: []*agentpb.GpuSample{{Index: 0, Uuid: "GPU-0", SmUtilizationPercent: &u}}})
}

// Telemetry is acked when applied, before its node record is durable; a
// controller restart then takes the agent's own acked count as the
// baseline, so nothing is counted as lost and nothing is applied twice.
func TestTelemetryAckedWhenAppliedSurvivesRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	c := startController(t, db, "127.0.0.1:0", nil, fleet.Options{PersistEvery: time.Hour}, nil)
	addr := c.addr
	a := startAgent(t, addr, "worker-0", uplink.BufferOptions{})
	for range 40 {
		a.addTelemetry()
	}
	testwait.For(t, "40 acked", func() bool { return a.buf.Acked() == 40 })
	c.stop()
	c2 := startController(t, db, addr, c.events, fleet.Options{PersistEvery: time.Hour}, nil)
	for range 10 {
		a.addTelemetry()
	}
	testwait.For(t, "50 acked", func() bool { return a.buf.Acked() == 50 })
	v, _ := c2.fleet.Snapshot("worker-0")
	if v.Sequence != 50 {
		t.Errorf("sequence after restart = %d, want 50", v.Sequence)
	}
	if gaps := value(c2.m.SequenceGaps); gaps != 0 {
		t.Errorf("sequence gaps = %v after a restart, want 0", gaps)
	}
	if dup := value(c2.m.Batches.WithLabelValues("duplicate")); dup != 0 {
		t.Errorf("duplicates = %v, want 0", dup)
	}
	if acc := value(c2.m.Batches.WithLabelValues("accepted")); acc != 10 {
		t.Errorf("accepted by the new controller = %v, want 10", acc)
	}
	// A health event after telemetry still waits for its commit, and the
	// cumulative ack never passes it before it is durable.
	a.add(1, "")
	testwait.For(t, "event acked", func() bool { return a.buf.Acked() == 51 })
	if got := c.events.get("worker-0"); len(got) != 1 || got[0] != 51 {
		t.Errorf("durable events = %v, want [51]", got)
	}
}
