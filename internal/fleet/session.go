package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// session is one open Connect stream. The stream's handler goroutine is
// the only one that receives; sends come from whoever has something for the
// agent (the handler's own acks, the commit loop's acks, assignments,
// commands), queue under mu and go out through flush, one sender at a time.
type session struct {
	id     uint64
	node   *node
	ctx    context.Context
	cancel context.CancelCauseFunc
	stream sender
	load   *overload

	// limit bounds how fast the stream's batches are read
	// (Options.MaxBatchRate).
	limit *rate.Limiter

	mu       sync.Mutex
	queue    []*agentpb.ConnectResponse // waiting to be sent, in order
	acked    uint64                     // highest sequence to ack
	ackSent  uint64                     // highest sequence acked on the stream
	ackOwed  bool                       // acked changed (or the handshake's ack) and is not sent yet
	flushing bool                       // a flush is running: it sends what is queued before it returns
	closed   bool                       // the handler is returning or a send failed: send nothing more
	flushed  *sync.Cond                 // on mu: signalled when a flush ends
}

// sender is the sending half of the agent's stream.
type sender interface {
	Send(*agentpb.ConnectResponse) error
}

// maxQueued bounds what may wait for an agent that does not read its
// stream before the stream is ended.
const maxQueued = 64

// errReplaced ends a stream when the same node connects again.
var errReplaced = errors.New("replaced by a newer connection from the same node")

// ack queues seq as the sequence to ack and sends it from a goroutine of
// its own (the caller is the commit loop, which must not wait on a stream).
func (s *session) ack(seq uint64) {
	if s.setAck(seq) {
		go s.flush()
	}
}

// ackHere is ack for the stream's own handler: it sends on this goroutine.
func (s *session) ackHere(seq uint64) {
	if s.setAck(seq) {
		s.flush()
	}
}

// setAck records seq and says whether the caller must flush.
func (s *session) setAck(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.acked {
		s.acked = seq
	}
	if s.acked > s.ackSent {
		s.ackOwed = true
	}
	return s.ackOwed && s.claimFlush()
}

// send queues m for the agent and sends it from a goroutine of its own.
func (s *session) send(m *agentpb.ConnectResponse) {
	s.mu.Lock()
	if len(s.queue) >= maxQueued {
		s.mu.Unlock()
		// The agent is not reading; it will get a fresh state after it
		// reconnects.
		s.cancel(errNotReading)
		return
	}
	s.queue = append(s.queue, m)
	start := s.claimFlush()
	s.mu.Unlock()
	if start {
		go s.flush()
	}
}

var errNotReading = errors.New("agent is not reading its stream")

// claimFlush makes the caller the flusher if none is running. s.mu held.
func (s *session) claimFlush() bool {
	if s.flushing {
		return false
	}
	s.flushing = true
	return true
}

// flush sends everything queued, and the ack owed, until nothing is left.
// Only the goroutine that claimed the flush runs it, so sends never run
// concurrently. A send blocks only on HTTP/2 flow control, that is on an
// agent that stopped reading; its stream ends when it is found out (the
// queue fills up, the connection's keepalive fails, or its next batch
// arrives after the stream was cancelled).
func (s *session) flush() {
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		var ack *agentpb.Ack
		if s.ackOwed {
			ack = &agentpb.Ack{Sequence: s.acked, MinSampleInterval: s.load.hint()}
			s.ackSent, s.ackOwed = s.acked, false
		}
		if s.closed || len(q) == 0 && ack == nil {
			s.endFlush()
			return
		}
		s.mu.Unlock()
		err := s.sendAll(q, ack)
		if err != nil {
			s.cancel(err)
			s.mu.Lock()
			s.closed = true
			s.endFlush()
			return
		}
	}
}

// endFlush gives the flush up. s.mu held; it unlocks.
func (s *session) endFlush() {
	s.flushing = false
	s.flushed.Broadcast()
	s.mu.Unlock()
}

func (s *session) sendAll(q []*agentpb.ConnectResponse, ack *agentpb.Ack) error {
	for _, m := range q {
		if err := s.stream.Send(m); err != nil {
			return err
		}
	}
	if ack == nil {
		return nil
	}
	return s.stream.Send(&agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Ack{Ack: ack}})
}

// close stops all sending and waits for a send under way: gRPC's stream
// may not be used once the handler has returned.
func (s *session) close() {
	s.mu.Lock()
	s.closed = true
	for s.flushing {
		s.flushed.Wait()
	}
	s.mu.Unlock()
}

// newSession returns a session whose flush is claimed by the caller, who
// sends the handshake on stream first and then calls flush.
func newSession(ctx context.Context, cancel context.CancelCauseFunc, n *node, stream sender, load *overload, limit *rate.Limiter) *session {
	s := &session{node: n, ctx: ctx, cancel: cancel, stream: stream, load: load, limit: limit, flushing: true}
	s.flushed = sync.NewCond(&s.mu)
	return s
}

// HelloTimeout bounds the wait for an agent's first message.
const HelloTimeout = 10 * time.Second

// Connect serves AgentService.Connect for one agent.
func (f *Fleet) Connect(stream agentpb.AgentService_ConnectServer) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)

	hello, err := recvHello(ctx, stream)
	if err != nil {
		f.metrics.Rejected.WithLabelValues("bad_hello").Inc()
		return err
	}
	if err := f.validateHello(hello); err != nil {
		f.metrics.Rejected.WithLabelValues("bad_hello").Inc()
		return status.Error(codes.InvalidArgument, err.Error())
	}
	// Node binding: an agent reports only for the node its certificate
	// names. Every server attaches an identity (the insecure one an
	// identity that may speak for any node); a stream without one came
	// around the authorization layer and is refused.
	if err := auth.CheckAgentNode(ctx, hello.GetNodeName()); err != nil {
		f.metrics.Rejected.WithLabelValues("wrong_node").Inc()
		f.log.Warn("agent refused", "node", hello.GetNodeName(), "err", err)
		return err
	}
	n := f.node(hello.GetNodeName())
	s := newSession(ctx, cancel, n, stream, f.overload, rate.NewLimiter(rate.Limit(f.opts.MaxBatchRate), f.opts.MaxBatchBurst))
	defer s.close()
	invBytes, _ := proto.Marshal(hello.GetInventory())

	f.mu.Lock()
	f.sessions++
	s.id = f.sessions
	f.mu.Unlock()

	n.mu.Lock()
	if n.bootID != hello.GetBootId() {
		// A new boot numbers its batches from 1 again.
		if n.bootID != "" {
			f.log.Info("node rebooted", "node", n.name, "old_boot_id", n.bootID, "boot_id", hello.GetBootId())
		}
		n.bootID = hello.GetBootId()
		n.resetSequence(0)
		clear(n.lastEnergy)
	}
	last := hello.GetLastAckedSequence()
	// The handshake resets the sequence space when what the controller
	// holds for this boot is far past anything this agent was acked: an
	// agent restarted in the same boot (it has nothing numbered to resend)
	// or a sequence that should never have been taken. Acking it would
	// make the agent drop batches the controller never had.
	if held := n.ackable(); held > last && held-last > f.opts.MaxSequenceJump {
		f.log.Warn("agent's sequence far behind the controller's; starting its sequence space again",
			"node", n.name, "boot_id", n.bootID, "controller_sequence", held, "agent_acked", last)
		f.metrics.SequenceResets.Inc()
		n.resetSequence(last)
	}
	// Telemetry-only batches are acked once applied, before their node
	// record is durable: after a controller restart the agent's own count
	// of what was acked is the better baseline.
	if last > n.seq && len(n.pending) == 0 {
		n.seq = last
	}
	old := n.session
	n.session = s
	n.agentVersion = hello.GetAgentVersion()
	if !bytes.Equal(n.inventoryBytes, invBytes) || n.inventoryBytes == nil {
		n.inventoryBytes, n.inventoryDirty = invBytes, true
		n.inventoryGen++
		if n.inventoryBytes == nil {
			n.inventoryBytes = []byte{}
		}
	}
	n.inventory = telemetry.InventoryFromProto(hello.GetInventory())
	n.lastSeen = f.opts.Now()
	n.lastBatch = n.lastSeen
	n.version++
	durable, bootID, epoch := n.ackable(), n.bootID, n.epoch
	s.acked, s.ackSent = durable, durable
	assigned, slurmNodes := n.assigned, n.slurmNodes
	n.mu.Unlock()
	if old != nil {
		old.cancel(errReplaced)
	}
	f.metrics.Streams.Inc()
	defer f.metrics.Streams.Dec()
	defer func() {
		n.mu.Lock()
		if n.session == s {
			n.session = nil
			n.lastSeen = f.opts.Now()
			n.version++
		}
		n.mu.Unlock()
	}()
	f.log.Info("agent connected", "node", n.name, "boot_id", bootID, "durable_sequence", durable,
		"gpus", len(hello.GetInventory().GetGpus()), "simulated", hello.GetInventory().GetSimulated())

	// The handshake: the highest sequence durable for this boot. It goes
	// first, before anything queued for the stream (this goroutine holds
	// the session's flush until then), so the agent can renumber.
	if err := stream.Send(&agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Ack{Ack: &agentpb.Ack{Sequence: durable, MinSampleInterval: f.overload.hint()}}}); err != nil {
		s.mu.Lock()
		s.closed = true
		s.endFlush() // give up the flush this goroutine held, or close waits for it forever
		return err
	}
	// Persist the hello (new boot, inventory) with the next commit.
	f.enqueue(item{n: n, epoch: epoch, received: time.Now()})
	s.mu.Lock()
	if f.opts.AgentConfig != nil {
		s.queue = append(s.queue, &agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Config{Config: f.opts.AgentConfig}})
	}
	s.queue = append(s.queue, &agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Assignments{Assignments: assignmentsFor(slurmNodes, assigned)}})
	s.mu.Unlock()
	s.flush()
	// This goroutine receives and applies; it is the stream's only
	// goroutine of ours (sends run on it or on short-lived flushes), since
	// at 10,000 agents every goroutine per stream costs tens of MiB of
	// stacks. Recv cannot be interrupted, so a stream that was replaced,
	// found not reading, or outlived the fleet ends at its next message;
	// one whose agent went silent ends with its connection (keepalive),
	// and a stopping server ends the rest after its grace.
	for {
		m, err := stream.Recv()
		select {
		case <-f.stopped:
			return status.Error(codes.Unavailable, errStopping.Error())
		default:
		}
		if err == nil && ctx.Err() != nil {
			err = status.FromContextError(context.Cause(ctx)).Err()
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				if errors.Is(cause, errReplaced) {
					return status.Error(codes.Aborted, cause.Error())
				}
				return status.Error(codes.Unavailable, cause.Error())
			}
			return err
		}
		switch msg := m.GetMessage().(type) {
		case *agentpb.ConnectRequest_Batch:
			if !s.limit.Allow() {
				// Not reading the stream until a token is there: the
				// agent's sends block on flow control, nobody else's.
				f.metrics.RateLimited.Inc()
				if err := s.limit.Wait(ctx); err != nil {
					return status.FromContextError(context.Cause(ctx)).Err()
				}
			}
			if err := f.ingest(s, msg.Batch); err != nil {
				switch {
				case errors.Is(err, errStopping):
					return status.Error(codes.Unavailable, err.Error())
				case ctx.Err() != nil:
					return status.FromContextError(err).Err()
				case errors.Is(err, errSequenceJump):
					f.metrics.Rejected.WithLabelValues("sequence_jump").Inc()
				default:
					f.metrics.Rejected.WithLabelValues("bad_batch").Inc()
				}
				f.log.Warn("agent batch rejected; closing its stream", "node", n.name, "err", err)
				return status.Error(codes.InvalidArgument, err.Error())
			}
		case *agentpb.ConnectRequest_CommandResult:
			if err := telemetry.CheckCommandResult(msg.CommandResult); err != nil {
				f.metrics.Rejected.WithLabelValues("bad_message").Inc()
				return status.Error(codes.InvalidArgument, err.Error())
			}
			f.deliverCommandResult(msg.CommandResult)
		case *agentpb.ConnectRequest_Hello:
			f.metrics.Rejected.WithLabelValues("bad_message").Inc()
			return status.Error(codes.InvalidArgument, "hello: sent twice on one stream")
		default:
			f.metrics.Rejected.WithLabelValues("bad_message").Inc()
			return status.Error(codes.InvalidArgument, "message: empty or of an unknown type")
		}
	}
}

func recvHello(ctx context.Context, stream agentpb.AgentService_ConnectServer) (*agentpb.Hello, error) {
	type res struct {
		m   *agentpb.ConnectRequest
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := stream.Recv()
		ch <- res{m, err}
	}()
	t := time.NewTimer(HelloTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.m.GetHello()
		if h == nil {
			return nil, status.Errorf(codes.InvalidArgument, "message: the first message must be a hello, got %T", r.m.GetMessage())
		}
		return h, nil
	case <-t.C:
		return nil, status.Error(codes.DeadlineExceeded, "hello: none within "+HelloTimeout.String())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *Fleet) validateHello(h *agentpb.Hello) error {
	var errs []string
	if !ValidNodeName(h.GetNodeName()) {
		errs = append(errs, fmt.Sprintf("hello.node_name: %q is not a valid node name (letters, digits, '.', '_', '-', starting with a letter or digit; at most 253)", h.GetNodeName()))
	}
	if b := h.GetBootId(); b == "" || len(b) > 64 {
		errs = append(errs, "hello.boot_id: required, at most 64 characters")
	}
	if s := h.GetLastAckedSequence(); s > MaxSequence {
		errs = append(errs, fmt.Sprintf("hello.last_acked_sequence: %d is above the largest the controller accepts (%d)", s, uint64(MaxSequence)))
	}
	inv := h.GetInventory()
	if len(inv.GetGpus()) > f.opts.MaxGPUs {
		errs = append(errs, fmt.Sprintf("hello.inventory.gpus: %d GPUs, at most %d", len(inv.GetGpus()), f.opts.MaxGPUs))
	}
	if len(inv.GetIbPorts()) > f.opts.MaxIBPorts {
		errs = append(errs, fmt.Sprintf("hello.inventory.ib_ports: %d ports, at most %d", len(inv.GetIbPorts()), f.opts.MaxIBPorts))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (f *Fleet) validateBatch(b *agentpb.Batch) error {
	var errs []string
	if b.GetSequence() == 0 {
		errs = append(errs, "batch.sequence: must be at least 1")
	}
	if s := b.GetSequence(); s > MaxSequence {
		errs = append(errs, fmt.Sprintf("batch.sequence: %d is above the largest the controller accepts (%d)", s, uint64(MaxSequence)))
	}
	if len(b.GetGpuSamples()) > f.opts.MaxGPUs {
		errs = append(errs, fmt.Sprintf("batch.gpu_samples: %d, at most %d", len(b.GetGpuSamples()), f.opts.MaxGPUs))
	}
	if len(b.GetIbSamples()) > f.opts.MaxIBPorts {
		errs = append(errs, fmt.Sprintf("batch.ib_samples: %d, at most %d", len(b.GetIbSamples()), f.opts.MaxIBPorts))
	}
	if len(b.GetHealthEvents()) > f.opts.MaxEventsPerBatch {
		errs = append(errs, fmt.Sprintf("batch.health_events: %d, at most %d", len(b.GetHealthEvents()), f.opts.MaxEventsPerBatch))
	}
	if len(b.GetProgress()) > f.opts.MaxProgressPerBatch {
		errs = append(errs, fmt.Sprintf("batch.progress: %d, at most %d", len(b.GetProgress()), f.opts.MaxProgressPerBatch))
	}
	for i, g := range b.GetGpuSamples() {
		if g.GetIndex() < 0 || int(g.GetIndex()) >= f.opts.MaxGPUs {
			errs = append(errs, fmt.Sprintf("batch.gpu_samples[%d].index: %d out of range", i, g.GetIndex()))
			break
		}
	}
	errs = append(errs, telemetry.CheckValues(b)...)
	for i, p := range b.GetProgress() {
		if p.GetRunId() == "" || len(p.GetRunId()) > 64 {
			errs = append(errs, fmt.Sprintf("batch.progress[%d].run_id: required, at most 64 characters", i))
			break
		}
		if p.GetStep() < 0 {
			errs = append(errs, fmt.Sprintf("batch.progress[%d].step: %d is negative", i, p.GetStep()))
			break
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// checkComponents puts the batch's event components (already converted
// into tb) into their canonical form, refusing names outside the
// vocabulary (health.EventComponents): they are what incidents are keyed
// by. n.mu is held (the inventory).
func (f *Fleet) checkComponents(n *node, tb *telemetry.Batch) error {
	if len(tb.Events) == 0 {
		return nil
	}
	vocab := health.EventComponents{MaxGPUs: f.opts.MaxGPUs, IBPort: func(dev string, port int) bool {
		for _, p := range n.inventory.IBPorts {
			if p.Device == dev && p.Port == port {
				return true
			}
		}
		return false
	}}
	for i := range tb.Events {
		c, err := vocab.Canonical(tb.Events[i].Component)
		if err != nil {
			return fmt.Errorf("batch.health_events[%d].component: %w", i, err)
		}
		tb.Events[i].Component = c
	}
	return nil
}

// errSequenceJump: a batch numbered absurdly far past the node's last one.
var errSequenceJump = errors.New("sequence jump")

// batchPool holds the batches ingest converts into, refilled for every
// batch: one per stream being ingested at the moment rather than one per
// connected agent. Nothing keeps a reference into a batch after ingest.
var batchPool = sync.Pool{New: func() any { return new(telemetry.Batch) }}

// ingest applies one batch in memory and queues it for the next commit.
// A batch with health events or progress first waits for room in its
// node's share of the commit queue (Options.MaxQueuedEventsPerNode,
// MaxQueuedBatchesPerNode): a storm from one agent slows that agent's
// stream, never another node's.
func (f *Fleet) ingest(s *session, b *agentpb.Batch) error {
	if err := f.validateBatch(b); err != nil {
		return err
	}
	n := s.node
	now := f.opts.Now()
	tb := batchPool.Get().(*telemetry.Batch)
	defer batchPool.Put(tb)
	tb.SetFromProto(b, now)
	nEvents := len(tb.Events)
	reserved := nEvents > 0 || len(tb.Progress) > 0
	if reserved {
		if err := f.reserve(s.ctx, n, nEvents); err != nil {
			return err
		}
	}
	unreserve := func() {
		if reserved {
			n.mu.Lock()
			n.release(1, nEvents)
			n.mu.Unlock()
		}
	}
	n.mu.Lock()
	if n.session != s {
		n.mu.Unlock()
		unreserve()
		return nil // replaced; the newer stream resends
	}
	seq := b.GetSequence()
	if seq <= n.seq {
		ack := n.ackable()
		n.mu.Unlock()
		unreserve()
		f.metrics.Batches.WithLabelValues("duplicate").Inc()
		if seq <= ack {
			s.ackHere(ack)
		}
		return nil
	}
	// The agent numbers its batches consecutively; it skips numbers only
	// for batches the controller already has. A batch far past the last
	// one is refused before it changes anything: applied, it would make
	// the real agent's next handshake ack batches the controller never
	// had (or wrap its numbering).
	if last := max(n.seq, n.durable); seq > last && seq-last > f.opts.MaxSequenceJump {
		n.mu.Unlock()
		unreserve()
		return fmt.Errorf("%w: batch.sequence: %d is %d past the last applied (%d); at most %d", errSequenceJump, seq, seq-last, last, f.opts.MaxSequenceJump)
	}
	if err := f.checkComponents(n, tb); err != nil {
		n.mu.Unlock()
		unreserve()
		return err
	}
	if n.seq != 0 && seq > n.seq+1 {
		f.metrics.SequenceGaps.Add(float64(seq - n.seq - 1))
	}
	n.seq = seq
	n.lastSeen, n.lastBatch = now, now
	for _, g := range tb.GPUSamples {
		n.gpus[g.Index] = g
	}
	for _, p := range tb.IBSamples {
		n.ib[ibPort{p.Device, p.Port}] = p
	}
	n.version++
	var jobToRun map[string]string
	if len(n.assigned) > 0 {
		jobToRun = make(map[string]string, len(n.assigned))
		for _, a := range n.assigned {
			jobToRun[a.JobID] = a.RunID
		}
	}
	var allowed map[string]bool
	if len(tb.Progress) > 0 {
		allowed = map[string]bool{}
		for id := range n.recent {
			allowed[id] = true
		}
		for _, a := range n.assigned {
			allowed[a.RunID] = true
		}
	}
	// Marked pending before n.mu is let go: a commit running meanwhile
	// must not ack this sequence before what it carries is durable.
	needsDurable := nEvents > 0
	for _, p := range tb.Progress {
		needsDurable = needsDurable || allowed[p.RunID]
	}
	if needsDurable {
		n.pending = append(n.pending, seq)
	}
	var jobs map[string]string
	if nEvents > 0 {
		jobs = map[string]string{}
		for idx, g := range n.gpus {
			if g.SlurmJobID != "" {
				jobs[health.GPUComponent(idx)] = g.SlurmJobID
			}
		}
	}
	epoch := n.epoch
	energy := n.lastEnergy
	inv := n.inventory
	f.opts.Usage.accumulate(n.name, n.jobNode, inv.Simulated, tb, jobToRun, energy)
	// Short of CPU, the monitor sees a node's telemetry-only batches at
	// most once per overload factor seconds.
	observe := f.opts.Observer != nil
	if factor := f.overload.Factor(); observe && factor > 1 && nEvents == 0 && len(tb.Progress) == 0 && now.Sub(n.lastObserved) < time.Duration(factor)*time.Second {
		observe = false
		f.metrics.Coarsened.Inc()
	}
	if observe {
		n.lastObserved = now
	}
	var runIDs []string
	if observe {
		for _, a := range n.assigned {
			runIDs = append(runIDs, a.RunID)
		}
	}
	n.mu.Unlock()
	if observe {
		// The machine's evidence is judged once per Slurm node on it: a
		// verdict on the machine is a verdict on each of them.
		for _, name := range f.viewNames(n.name) {
			f.opts.Observer.ObserveBatch(name, len(inv.GPUs), tb, runIDs)
		}
	}

	var progress []progressItem
	for _, p := range tb.Progress {
		if allowed[p.RunID] {
			progress = append(progress, progressItem{p.RunID, f.opts.Usage.withETA(p.RunID, toProgress(p))})
		} else {
			f.metrics.ProgressIgnored.Inc()
		}
	}
	f.metrics.Batches.WithLabelValues("accepted").Inc()
	if d := b.GetDroppedSamples(); d > 0 {
		f.metrics.AgentDropped.Add(float64(d))
	}
	if !needsDurable {
		unreserve()
		reserved = false
	}
	n.mu.Lock()
	queue := needsDurable || now.Sub(n.persistQueued) >= f.opts.PersistEvery
	if queue {
		n.persistQueued = now
	}
	ack := n.ackable()
	n.mu.Unlock()
	if queue {
		it := item{n: n, epoch: epoch, seq: seq, jobs: jobs, progress: progress, received: time.Now(), durable: needsDurable}
		if reserved {
			it.events, it.reserved = slices.Clone(tb.Events), true
		}
		f.enqueue(it)
	}
	if !needsDurable {
		s.ackHere(ack) // applied is enough for telemetry
	}
	return nil
}

// errStopping ends agent streams waiting for room once the fleet stopped
// committing.
var errStopping = errors.New("controller shutting down")

// reserve waits until the node's queue has room for one more batch with
// events health events (a batch always fits in an empty queue).
func (f *Fleet) reserve(ctx context.Context, n *node, events int) error {
	waited := false
	for {
		n.mu.Lock()
		if n.queuedBatches == 0 || n.queuedBatches < f.opts.MaxQueuedBatchesPerNode && n.queuedEvents+events <= f.opts.MaxQueuedEventsPerNode {
			n.queuedBatches++
			n.queuedEvents += events
			n.mu.Unlock()
			return nil
		}
		room := n.room
		n.mu.Unlock()
		if !waited {
			waited = true
			f.metrics.Throttled.Inc()
		}
		select {
		case <-room:
		case <-f.stopped:
			return errStopping
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// release gives back queue room taken by reserve. n.mu is held.
func (n *node) release(batches, events int) {
	n.queuedBatches -= batches
	n.queuedEvents -= events
	close(n.room)
	n.room = make(chan struct{})
}
