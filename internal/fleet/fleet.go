package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/internal/identity"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Options tune a Fleet. The zero value is usable.
type Options struct {
	// Silence: a node whose agent sent nothing for this long is UNKNOWN
	// (default 60 s). Silence alone never makes a node unhealthy.
	Silence time.Duration
	// CommitInterval is the longest a batch with health events or progress
	// waits to be made durable and acked (default 100 ms). One bbolt
	// transaction covers every such batch that arrived in the interval,
	// from every agent. Telemetry-only batches are acked once applied.
	CommitInterval time.Duration
	// PersistEvery is how often a node's record (boot id, sequence, last
	// seen) is written when nothing else of it needs to be (default 10 s).
	PersistEvery time.Duration
	// AssignmentInterval is how often run assignments are recomputed and
	// pushed to agents whose set changed (default 2 s).
	AssignmentInterval time.Duration
	// Limits on one batch; a batch beyond them ends that agent's stream.
	MaxGPUs, MaxIBPorts, MaxEventsPerBatch, MaxProgressPerBatch int
	// MaxQueuedEventsPerNode and MaxQueuedBatchesPerNode bound one node's
	// share of the commit queue (defaults 20,000 health events, 64
	// batches): an agent whose batches with events or progress are not
	// yet durable beyond them waits before its next one is read, so a
	// storm slows its own stream and no other. A single batch always
	// fits in an empty queue.
	MaxQueuedEventsPerNode, MaxQueuedBatchesPerNode int
	// MaxSequenceJump is how far past the node's last sequence a batch
	// may be numbered (default 1,048,576, far beyond an agent's send
	// window and buffer); a batch beyond it ends its stream and changes
	// nothing. A handshake whose agent was acked less than the
	// controller holds by more than this starts the sequence space again.
	MaxSequenceJump uint64
	// MaxBatchRate and MaxBatchBurst bound how fast one agent's stream
	// is read, in batches per second (defaults 20/s, burst 200). A real
	// agent sends one batch per sample interval, one per burst of health
	// events, and after a reconnect resends at most its send window at
	// once; an agent past the limit is not read until its bucket refills,
	// so HTTP/2 flow control slows that agent alone and the others are
	// read as before (sopilot_agent_batches_rate_limited_total counts
	// the batches that waited).
	MaxBatchRate  float64
	MaxBatchBurst int
	// OverloadSchedLatency is the goroutine scheduling latency p99 (over
	// a second) above which the controller counts as short of CPU and
	// asks agents to slow down (overload.go; default 100 ms; negative:
	// never).
	OverloadSchedLatency time.Duration
	// FinalCommitTimeout bounds the commit of what is queued when Run's
	// context ends (default 2 s); what does not fit is not acked, and the
	// agents resend it to the next controller.
	FinalCommitTimeout time.Duration
	// AgentConfig is pushed to every agent after its handshake (optional).
	AgentConfig *agentpb.AgentConfig
	Now         func() time.Time

	// Where what the agents report goes; each may be nil (nowhere).
	// Assignments lists the runs whose jobs run now; Progress stores their
	// progress; Events records health events; Observer sees every batch;
	// Usage accumulates runs' GPU usage (nil: a ledger of the fleet's own).
	Assignments AssignmentSource
	Progress    ProgressSink
	Events      EventSink
	Observer    Observer
	Usage       *Usage
	// Replacements hears of Slurm nodes that moved to another machine
	// (nil: nobody); see SetSlurmNodes.
	Replacements ReplacementSink
}

func (o Options) withDefaults() Options {
	if o.Silence <= 0 {
		o.Silence = 60 * time.Second
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	if o.PersistEvery <= 0 {
		o.PersistEvery = 10 * time.Second
	}
	if o.AssignmentInterval <= 0 {
		o.AssignmentInterval = 2 * time.Second
	}
	if o.MaxGPUs <= 0 {
		o.MaxGPUs = 64
	}
	if o.MaxIBPorts <= 0 {
		o.MaxIBPorts = 64
	}
	if o.MaxEventsPerBatch <= 0 {
		o.MaxEventsPerBatch = 10_000
	}
	if o.MaxProgressPerBatch <= 0 {
		o.MaxProgressPerBatch = 256
	}
	if o.MaxQueuedEventsPerNode <= 0 {
		o.MaxQueuedEventsPerNode = 20_000
	}
	if o.MaxQueuedBatchesPerNode <= 0 {
		o.MaxQueuedBatchesPerNode = 64
	}
	if o.MaxSequenceJump == 0 {
		o.MaxSequenceJump = 1 << 20
	}
	if o.MaxBatchRate <= 0 {
		o.MaxBatchRate = 20
	}
	if o.MaxBatchBurst <= 0 {
		o.MaxBatchBurst = 200
	}
	if o.OverloadSchedLatency == 0 {
		o.OverloadSchedLatency = DefaultOverloadSchedLatency
	}
	if o.FinalCommitTimeout <= 0 {
		o.FinalCommitTimeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Usage == nil {
		o.Usage = NewUsage()
	}
	return o
}

// Assignment is a run with a job on some nodes, as the controller sees it.
type Assignment struct {
	RunID        string
	JobID        string
	Nodes        []string
	ProgressPath string // given to the first node (where rank 0 runs)
	GPUsPerNode  int
}

// AssignmentSource lists the runs whose jobs run now.
type AssignmentSource interface {
	Assignments(ctx context.Context) ([]Assignment, error)
}

// ProgressSink stores runs' latest progress; it must be durable on return.
type ProgressSink interface {
	ApplyProgress(ctx context.Context, updates map[string]run.Progress) error
}

// EventSink records nodes' health events; it must be durable on return.
// jobs maps a GPU component ("gpu3") to the Slurm job using it when the
// event arrived.
type EventSink interface {
	RecordEvents(ctx context.Context, node string, events []telemetry.HealthEvent, jobs map[string]string) error
}

// Observer sees every accepted batch, after it was applied (not yet
// durable). It must return quickly; it is called on the agent's stream.
// expectedGPUs is the node's inventory. b is reused for the stream's next
// batch: copy what is kept (the values, not the slices).
type Observer interface {
	ObserveBatch(node string, expectedGPUs int, b *telemetry.Batch, runIDs []string)
}

// ReplacementSink hears of Slurm nodes that now run on another machine
// (Soperator replaced their Kubernetes node): what was judged of the old
// machine does not apply to the new one. It is called from the node poll.
type ReplacementSink interface {
	NodeReplaced(ctx context.Context, r identity.Replacement)
}

// Fleet is the controller's view of the node agents: the AgentService
// stream handler, the latest telemetry per node, and per-run GPU usage.
type Fleet struct {
	opts    Options
	store   *store.Store
	log     *slog.Logger
	metrics *Metrics

	mu       sync.RWMutex
	nodes    map[string]*node
	sessions uint64
	slurm    map[string]scheduler.NodeStatus
	ids      *identity.Map // nil until Slurm's nodes were first read
	// instances is the last instance id seen for each Slurm node, loaded
	// from the store at start and kept there (saved: what the store has),
	// so that a node replaced while the controller was down is recognised
	// at the first listing.
	instances, saved map[string]string
	verdicts         map[string]Verdict
	commands         map[string]chan *agentpb.CommandResult

	// queue holds the batches (and hellos) waiting for the next commit;
	// each node's share of it is bounded (node.reserve).
	qmu     sync.Mutex
	queue   []item
	qwake   chan struct{}
	stopped chan struct{} // closed when Run stops committing

	overload *overload
}

// MaxSequence is the largest batch sequence the controller accepts: far
// beyond any agent's lifetime (2^62 batches), and far enough from 2^64
// that no agent's numbering can wrap.
const MaxSequence = 1 << 62

// Verdict is the health verdict another component computed for a node.
type Verdict struct {
	Verdict string // HEALTHY, DEGRADED, UNHEALTHY (UNKNOWN is the fleet's own)
	Reasons []string
}

// New loads the node records from the store. Call Run to start committing.
func New(st *store.Store, logger *slog.Logger, m *Metrics, opts Options) (*Fleet, error) {
	opts = opts.withDefaults()
	f := &Fleet{
		opts:     opts,
		store:    st,
		log:      logger.With("component", "fleet"),
		metrics:  m,
		nodes:    map[string]*node{},
		slurm:    map[string]scheduler.NodeStatus{},
		verdicts: map[string]Verdict{},
		commands: map[string]chan *agentpb.CommandResult{},
		qwake:    make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		overload: newOverload(opts.OverloadSchedLatency, sampleInterval(opts.AgentConfig)),
	}
	if f.metrics == nil {
		f.metrics = NewMetrics(nil)
	}
	var err error
	if f.instances, err = st.SlurmInstances(context.Background()); err != nil {
		return nil, fmt.Errorf("load slurm nodes' instance ids: %w", err)
	}
	f.saved = maps.Clone(f.instances)
	recs, err := st.Nodes(context.Background())
	if err != nil {
		return nil, fmt.Errorf("load nodes: %w", err)
	}
	for _, r := range recs {
		n := newNode(r.Name)
		n.bootID, n.lastSeen, n.agentVersion = r.BootID, r.LastSeen, r.AgentVersion
		if r.Sequence <= MaxSequence {
			// Larger ones (written before MaxSequence existed) are
			// dropped: the agent's handshake sets the sequence again.
			n.seq, n.durable = r.Sequence, r.Sequence
		}
		if len(r.Inventory) > 0 {
			inv := &agentpb.Inventory{}
			if err := proto.Unmarshal(r.Inventory, inv); err == nil {
				n.inventory, n.inventoryBytes = telemetry.InventoryFromProto(inv), r.Inventory
			}
		}
		f.nodes[r.Name] = n
	}
	return f, nil
}

// node is one agent's state. Fields after mu are guarded by it.
type node struct {
	// lastObserved is when the health monitor last saw a batch of this
	// node (overload coarsening); n.mu.
	lastObserved time.Time

	name string

	mu     sync.Mutex
	bootID string
	// epoch changes whenever the sequence space starts again (a new boot,
	// a handshake reset); a commit of batches from an older one does not
	// move the node's sequences.
	epoch   uint64
	seq     uint64 // highest sequence applied
	durable uint64 // highest sequence whose node record is durable
	// pending are the sequences (ascending) whose health events or
	// progress are not durable yet; acks stop below the first of them.
	pending []uint64
	// persistQueued is when this node's record was last queued for a
	// commit without anything else to make durable.
	persistQueued  time.Time
	lastSeen       time.Time
	lastBatch      time.Time
	agentVersion   string
	inventory      telemetry.Inventory
	inventoryBytes []byte // the wire form, as stored
	inventoryDirty bool   // not yet persisted
	inventoryGen   uint64 // bumped whenever the inventory changes
	session        *session
	gpus           map[int]telemetry.GPUSample
	ib             map[ibPort]telemetry.IBPortSample
	lastEnergy     map[int]uint64
	assigned       []Assignment // runs on this node now
	// slurmNodes are the Slurm nodes on this machine (identity.Map), as of
	// the last assignment pass; jobNode maps each assigned job to the one
	// of them it runs on.
	slurmNodes []string
	jobNode    map[string]string
	// recent holds when runs were last assigned to the node; their final
	// progress is taken while run.AcceptsProgress.
	recent      map[string]time.Time
	assignedKey string
	version     uint64 // bumped on every change a watcher should see
	// queuedBatches and queuedEvents are this node's share of the commit
	// queue; room is closed (and replaced) whenever some is given back.
	queuedBatches, queuedEvents int
	room                        chan struct{}
}

// resetSequence starts the node's sequence space again at seq. n.mu is
// held.
func (n *node) resetSequence(seq uint64) {
	n.seq, n.durable, n.pending = seq, seq, nil
	n.epoch++
}

func newNode(name string) *node {
	return &node{name: name, room: make(chan struct{}), gpus: map[int]telemetry.GPUSample{}, ib: map[ibPort]telemetry.IBPortSample{}, lastEnergy: map[int]uint64{}, recent: map[string]time.Time{}}
}

// ibPort identifies a port of a node.
type ibPort struct {
	device string
	port   int
}

// item is one batch (or a hello) waiting to be made durable.
type item struct {
	n        *node
	epoch    uint64
	seq      uint64
	events   []telemetry.HealthEvent
	jobs     map[string]string
	progress []progressItem
	received time.Time
	// durable: the batch carries health events or progress, so its ack
	// waits for the commit.
	durable bool
	// reserved: the batch holds room in its node's queue (len(events)
	// health events), given back once committed or dropped.
	reserved bool
}

// enqueue queues it for the next commit.
func (f *Fleet) enqueue(it item) {
	f.qmu.Lock()
	f.queue = append(f.queue, it)
	f.qmu.Unlock()
	select {
	case f.qwake <- struct{}{}:
	default:
	}
}

// take empties the queue into buf.
func (f *Fleet) take(buf []item) []item {
	f.qmu.Lock()
	buf = append(buf[:0], f.queue...)
	clear(f.queue)
	f.queue = f.queue[:0]
	f.qmu.Unlock()
	return buf
}

// ValidNodeName reports whether s is a node name the fleet accepts: the
// Slurm node names the scheduler backends accept.
func ValidNodeName(s string) bool { return scheduler.CheckNodeName(s) == nil }

func (f *Fleet) node(name string) *node {
	f.mu.RLock()
	n := f.nodes[name]
	f.mu.RUnlock()
	if n != nil {
		return n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n = f.nodes[name]; n == nil {
		n = newNode(name)
		f.nodes[name] = n
	}
	return n
}

// Run commits batches, pushes assignments and watches for silent agents
// until ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.pushAssignments(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.watchOverload(ctx)
	}()
	err := f.commitLoop(ctx)
	wg.Wait()
	return err
}

func (f *Fleet) commitLoop(ctx context.Context) error {
	var items []item
	for {
		select {
		case <-ctx.Done():
			// Agents' streams end now (they reconnect to the next
			// controller); nothing they send from here on is acked.
			close(f.stopped)
			// Make what was applied durable before going away, so acked
			// and applied agree after a restart, within a bound: what does
			// not fit was never acked, and the agents resend it.
			items = f.take(items)
			if len(items) > 0 {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.FinalCommitTimeout)
				err := f.commit(fctx, items)
				cancel()
				if err != nil {
					f.log.Warn("final commit of agent batches incomplete; the agents resend what was not acked", "batches", len(items), "err", err)
				}
			}
			return nil
		case <-f.qwake:
		}
		t := time.NewTimer(f.opts.CommitInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		items = f.take(items)
		if len(items) == 0 {
			continue
		}
		// A stop cuts this commit short between its transactions (each
		// completes or rolls back): what it did not get to is not acked.
		if err := f.commit(ctx, items); err != nil {
			if ctx.Err() != nil {
				f.log.Info("commit of agent batches cut short by the stop; the agents resend what was not acked", "batches", len(items))
				continue
			}
			// Nothing is acked; the agents resend after their next reconnect
			// or when the next commit of the same node succeeds.
			f.log.Error("commit agent batches", "batches", len(items), "err", err)
			f.metrics.CommitErrors.Inc()
		}
	}
}

// commit makes items durable and acks them. Each node's health events go
// to the sink in one call, however many batches carried them: a storm
// costs one evaluation per commit, not one per batch. Whatever happens,
// the items' queue room is given back.
func (f *Fleet) commit(ctx context.Context, items []item) error {
	defer func() {
		rel := map[*node][2]int{}
		for _, it := range items {
			if it.reserved {
				r := rel[it.n]
				rel[it.n] = [2]int{r[0] + 1, r[1] + len(it.events)}
			}
		}
		for n, r := range rel {
			n.mu.Lock()
			n.release(r[0], r[1])
			n.mu.Unlock()
		}
	}()
	start := time.Now()
	type nodeMax struct {
		epoch uint64
		seq   uint64
	}
	maxSeq := map[*node]nodeMax{}
	progress := map[string]run.Progress{}
	type nodeEvents struct {
		events []telemetry.HealthEvent
		jobs   map[string]string
	}
	var order []*node
	evs := map[*node]*nodeEvents{}
	for _, it := range items {
		switch m, ok := maxSeq[it.n]; {
		case !ok || it.epoch > m.epoch:
			maxSeq[it.n] = nodeMax{it.epoch, it.seq}
		case it.epoch == m.epoch && it.seq > m.seq:
			maxSeq[it.n] = nodeMax{m.epoch, it.seq}
		}
		for _, p := range it.progress {
			cur, ok := progress[p.runID]
			if ok && p.p.Step < cur.Step {
				// Older progress, but its checkpoint may be the newest.
				if newerCheckpoint(p.p.Checkpoint, cur.Checkpoint) {
					cur.Checkpoint = p.p.Checkpoint
					progress[p.runID] = cur
				}
				continue
			}
			if ok && newerCheckpoint(cur.Checkpoint, p.p.Checkpoint) {
				p.p.Checkpoint = cur.Checkpoint
			}
			progress[p.runID] = p.p
		}
		if len(it.events) > 0 {
			ne := evs[it.n]
			if ne == nil {
				ne = &nodeEvents{jobs: map[string]string{}}
				evs[it.n] = ne
				order = append(order, it.n)
			}
			ne.events = append(ne.events, it.events...)
			maps.Copy(ne.jobs, it.jobs)
		}
	}
	if len(progress) > 0 && f.opts.Progress != nil {
		if err := f.opts.Progress.ApplyProgress(ctx, progress); err != nil {
			return fmt.Errorf("store progress: %w", err)
		}
	}
	if f.opts.Events != nil {
		for _, n := range order {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("record events: %w", err)
			}
			ne := evs[n]
			for _, name := range f.viewNames(n.name) {
				if err := f.opts.Events.RecordEvents(ctx, name, ne.events, ne.jobs); err != nil {
					return fmt.Errorf("record %d events of %s (machine %s): %w", len(ne.events), name, n.name, err)
				}
			}
		}
	}
	recs := make([]store.NodeRecord, 0, len(maxSeq))
	invGen := map[*node]uint64{}
	for n, m := range maxSeq {
		n.mu.Lock()
		if n.epoch == m.epoch {
			rec := store.NodeRecord{
				Name: n.name, BootID: n.bootID, Sequence: max(m.seq, n.durable), LastSeen: n.lastSeen.UTC(),
				AgentVersion: n.agentVersion,
			}
			if n.inventoryDirty {
				rec.Inventory = n.inventoryBytes
				invGen[n] = n.inventoryGen
			}
			recs = append(recs, rec)
		}
		n.mu.Unlock()
	}
	if err := f.store.PutNodes(ctx, recs); err != nil {
		return fmt.Errorf("store %d node records: %w", len(recs), err)
	}
	f.metrics.CommitDuration.Observe(time.Since(start).Seconds())
	now := time.Now()
	for n, gen := range invGen {
		n.mu.Lock()
		if n.inventoryGen == gen {
			n.inventoryDirty = false
		}
		n.mu.Unlock()
	}
	done := map[*node][]uint64{}
	for _, it := range items {
		if it.durable && it.epoch == maxSeq[it.n].epoch {
			done[it.n] = append(done[it.n], it.seq)
		}
	}
	for n, m := range maxSeq {
		n.mu.Lock()
		if n.epoch == m.epoch {
			if m.seq > n.durable {
				n.durable = m.seq
			}
			n.pending = removeSeqs(n.pending, done[n])
		}
		s, ack := n.session, n.ackable()
		n.mu.Unlock()
		if s != nil {
			s.ack(ack)
		}
	}
	for _, it := range items {
		if it.durable {
			f.metrics.AckLatency.Observe(now.Sub(it.received).Seconds())
		}
	}
	return nil
}

// ackable is the highest sequence that may be acked: everything applied,
// except from the first batch whose health events or progress are not yet
// durable (acks are cumulative). n.mu is held.
func (n *node) ackable() uint64 {
	if len(n.pending) > 0 {
		return n.pending[0] - 1
	}
	return n.seq
}

// removeSeqs removes done from pending (both ascending).
func removeSeqs(pending, done []uint64) []uint64 {
	if len(done) == 0 {
		return pending
	}
	drop := make(map[uint64]bool, len(done))
	for _, s := range done {
		drop[s] = true
	}
	kept := pending[:0]
	for _, s := range pending {
		if !drop[s] {
			kept = append(kept, s)
		}
	}
	return kept
}

type progressItem struct {
	runID string
	p     run.Progress
}

func toProgress(p telemetry.Progress) run.Progress {
	pr := run.Progress{
		Step:             p.Step,
		TotalSteps:       p.TotalSteps,
		Loss:             p.Loss,
		SamplesPerSecond: p.SamplesPerSecond,
		UpdateTime:       p.Time.UTC(),
	}
	if len(p.Metrics) > 0 {
		pr.Metrics = maps.Clone(p.Metrics)
	}
	if c := p.Checkpoint; c != nil {
		pr.Checkpoint = &run.Checkpoint{Step: c.Step, Path: c.Path, Time: c.Time.UTC()}
	}
	return pr
}

// newerCheckpoint reports whether a is a later checkpoint than b (b may be
// nil): more steps, or as many and written later.
func newerCheckpoint(a, b *run.Checkpoint) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	case a.Step != b.Step:
		return a.Step > b.Step
	default:
		return a.Time.After(b.Time)
	}
}

// pushAssignments tells every connected agent which runs have jobs on it.
func (f *Fleet) pushAssignments(ctx context.Context) {
	t := time.NewTicker(f.opts.AssignmentInterval)
	defer t.Stop()
	for {
		if f.opts.Assignments != nil {
			as, err := f.opts.Assignments.Assignments(ctx)
			if err != nil {
				f.log.Warn("list run assignments", "err", err)
			} else {
				f.applyAssignments(as)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *Fleet) applyAssignments(as []Assignment) {
	per := map[string][]Assignment{}
	for _, a := range as {
		for _, name := range a.Nodes {
			per[name] = append(per[name], a)
		}
	}
	f.mu.RLock()
	nodes := make([]*node, 0, len(f.nodes))
	for _, n := range f.nodes {
		nodes = append(nodes, n)
	}
	ids := f.ids
	f.mu.RUnlock()
	for _, n := range nodes {
		// A machine gets the runs of each Slurm node on it, once.
		slurmNodes := ids.SlurmNodes(n.name)
		var mine []Assignment
		jobNode := map[string]string{}
		for _, sn := range slurmNodes {
			for _, a := range per[sn] {
				if _, dup := jobNode[a.JobID]; !dup {
					jobNode[a.JobID] = sn
					mine = append(mine, a)
				}
			}
		}
		sort.Slice(mine, func(i, j int) bool { return mine[i].RunID < mine[j].RunID })
		key := assignmentKey(slurmNodes, mine)
		n.mu.Lock()
		n.slurmNodes, n.jobNode = slurmNodes, jobNode
		changed := key != n.assignedKey
		now := time.Now()
		for _, a := range n.assigned {
			n.recent[a.RunID] = now
		}
		for id, t := range n.recent {
			if !run.AcceptsProgress(t, now) {
				delete(n.recent, id)
			}
		}
		n.assigned, n.assignedKey = mine, key
		if changed {
			n.version++
		}
		s := n.session
		n.mu.Unlock()
		if changed && s != nil {
			s.send(&agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Assignments{Assignments: assignmentsFor(slurmNodes, mine)}})
		}
	}
}

func assignmentKey(slurmNodes []string, as []Assignment) string {
	k := ""
	for _, a := range as {
		k += a.RunID + "/" + a.JobID + "/" + progressPathFor(slurmNodes, a) + ";"
	}
	return k
}

// progressPathFor is the run's progress path for the machine running its
// first Slurm node (where rank 0 runs), "" for the others.
func progressPathFor(slurmNodes []string, a Assignment) string {
	if len(a.Nodes) > 0 && slices.Contains(slurmNodes, a.Nodes[0]) {
		return a.ProgressPath
	}
	return ""
}

func assignmentsFor(slurmNodes []string, as []Assignment) *agentpb.RunAssignments {
	out := &agentpb.RunAssignments{}
	for _, a := range as {
		out.Runs = append(out.Runs, &agentpb.RunAssignment{
			RunId: a.RunID, SlurmJobId: a.JobID, ProgressPath: progressPathFor(slurmNodes, a), GpusPerNode: int32(a.GPUsPerNode),
		})
	}
	return out
}

// SetSlurmNodes records Slurm's view of the nodes (from a periodic query)
// and remaps machines to Slurm nodes by the listing's instance ids
// (internal/identity). A Slurm node now on another machine than the last
// one seen for it (in an earlier listing, or before a restart: the last
// ids are kept in the store) starts fresh: its verdict is dropped and
// Options.Replacements hears of it, while its history (incidents, drain
// records, runs) stays under its name.
func (f *Fleet) SetSlurmNodes(ctx context.Context, ns []scheduler.NodeStatus) {
	ids := identity.New(ns)
	f.mu.Lock()
	f.slurm = make(map[string]scheduler.NodeStatus, len(ns))
	for _, s := range ns {
		f.slurm[s.Name] = s
	}
	replaced := identity.ReplacedSince(f.instances, ids)
	f.ids = ids
	for _, r := range replaced {
		delete(f.verdicts, r.Node)
	}
	changed := map[string]string{}
	for node, id := range ids.Instances() {
		f.instances[node] = id
		if f.saved[node] != id {
			changed[node] = id
		}
	}
	f.mu.Unlock()
	for _, r := range replaced {
		f.log.Warn("slurm node moved to another machine; its health state starts fresh", "node", r.Node, "old_machine", r.Old, "new_machine", r.New)
		f.metrics.Replacements.Inc()
		if f.opts.Replacements != nil {
			f.opts.Replacements.NodeReplaced(ctx, r)
		}
	}
	// Saved after the replacements were acted on: a crash in between
	// repeats their fresh start at the next start, rather than losing it.
	if len(changed) > 0 {
		if err := f.store.PutSlurmInstances(ctx, changed); err != nil {
			// Retried with the next listing: saved still lacks them.
			f.log.Error("store slurm nodes' instance ids", "nodes", len(changed), "err", err)
		} else {
			f.mu.Lock()
			maps.Copy(f.saved, changed)
			f.mu.Unlock()
		}
	}
}

// viewNames are the names a machine's evidence is kept under: its Slurm
// nodes, or the machine's own name while it is unmapped.
func (f *Fleet) viewNames(machine string) []string {
	f.mu.RLock()
	names := f.ids.SlurmNodes(machine)
	f.mu.RUnlock()
	if len(names) == 0 {
		return []string{machine}
	}
	return names
}

// SetVerdict records a node's health verdict.
func (f *Fleet) SetVerdict(name string, v Verdict) {
	f.mu.Lock()
	f.verdicts[name] = v
	f.mu.Unlock()
}

// ErrNotConnected: the node's agent has no stream open.
var ErrNotConnected = errors.New("node agent not connected")

// ErrUnknownNode: no agent ever reported for the node and Slurm does not
// know it.
var ErrUnknownNode = errors.New("unknown node")

// sampleInterval is the agents' sample interval: the one the controller
// pushes, or the agent's default of 1 s.
func sampleInterval(c *agentpb.AgentConfig) time.Duration {
	if d := c.GetSampleInterval().AsDuration(); d > 0 {
		return d
	}
	return time.Second
}
