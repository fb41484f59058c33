package api

// nodewatch.go: WatchNodes for many watchers at once. One loop (the hub)
// reads the fleet's index once a second for every watcher together and
// decides which nodes to publish: a change of verdict, Slurm state or
// agent at once, a change of telemetry alone at most every
// telemetryEvery per node (basicTelemetryEvery for NODE_VIEW_BASIC
// watchers). Each watcher has a queue that holds at most one
// update per node (a newer one replaces it in place), so a slow watcher
// costs memory bounded by the number of nodes, gets each node's latest
// state, and never holds up the hub or the other watchers.

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/pkg/apipb"
)

const (
	// nodeWatchTick is how often the hub reads the index.
	nodeWatchTick = time.Second
	// nodeTelemetryEvery is how often a node whose telemetry alone
	// changes is published again: at 10,000 nodes reporting every second,
	// once a second would be 10,000 messages a second per watcher.
	nodeTelemetryEvery = 10 * time.Second
	// nodeBasicTelemetryEvery is the same for NODE_VIEW_BASIC watchers:
	// their rows carry the telemetry only as the summary's counts, which
	// a refresh rarely changes, and a table of 10,000 rows is what such a
	// watcher shows. A sixth of the messages keeps 100 of them at 10,000
	// nodes within about a second of a state change (docs/benchmarks.md).
	nodeBasicTelemetryEvery = 60 * time.Second
)

// nodeUpdate is one node's state, published to every watcher that wants
// it; each view's message is built and encoded once for all of them.
type nodeUpdate struct {
	view fleet.NodeView
	// state: the verdict, Slurm state or agent changed (not only the
	// telemetry); sent before telemetry refreshes.
	state bool
	// forBasic: NODE_VIEW_BASIC watchers get it too (a state change, or
	// their coarser telemetry refresh is due).
	forBasic    bool
	full, basic encodedNode
}

// encodedNode is a node's WatchNodesResponse in one view, encoded once:
// 100 watchers of 10,000 nodes would otherwise marshal the same message
// 100 times. An encoded message can go on any stream that encodes alike;
// the controller registers no compressor, so every stream does (proto,
// uncompressed).
type encodedNode struct {
	once sync.Once
	msg  any // *grpc.PreparedMsg, or the *apipb.WatchNodesResponse if encoding failed
}

// message is what to pass to stream.SendMsg for a watcher in view.
func (u *nodeUpdate) message(stream grpc.ServerStream, view apipb.NodeView) any {
	e := &u.full
	if view == apipb.NodeView_NODE_VIEW_BASIC {
		e = &u.basic
	}
	e.once.Do(func() {
		resp := &apipb.WatchNodesResponse{Node: nodeProto(u.view, nil, view)}
		e.msg = resp
		var pm grpc.PreparedMsg
		if err := pm.Encode(stream, resp); err == nil {
			e.msg = &pm
		}
	})
	return e.msg
}

// queued is a node's update in a watcher's queue; state is true when a
// state change is among those it replaced.
type queued struct {
	u     *nodeUpdate
	state bool
}

// nodeWatcher is one WatchNodes stream's queue.
type nodeWatcher struct {
	names map[string]bool // nil: every node
	basic bool            // NODE_VIEW_BASIC
	wake  chan struct{}

	mu      sync.Mutex
	pending map[string]queued
	urgent  []string // names of state changes, oldest first
	order   []string // names of telemetry refreshes, oldest first
}

func newNodeWatcher(names []string, view apipb.NodeView) *nodeWatcher {
	w := &nodeWatcher{basic: view == apipb.NodeView_NODE_VIEW_BASIC, wake: make(chan struct{}, 1), pending: map[string]queued{}}
	if len(names) > 0 {
		w.names = map[string]bool{}
		for _, n := range names {
			w.names[n] = true
		}
	}
	return w
}

func (w *nodeWatcher) wants(name string) bool { return w.names == nil || w.names[name] }

// wantsUpdate says whether u is for this watcher.
func (w *nodeWatcher) wantsUpdate(u *nodeUpdate) bool {
	return w.wants(u.view.Name) && (u.forBasic || !w.basic)
}

// offer queues u, replacing an older update of the same node in its place.
func (w *nodeWatcher) offer(u *nodeUpdate) {
	name := u.view.Name
	w.mu.Lock()
	old, isQueued := w.pending[name]
	switch {
	case u.state && (!isQueued || !old.state):
		w.urgent = append(w.urgent, name)
	case !isQueued:
		w.order = append(w.order, name)
	}
	// A state change keeps its place among the state changes.
	w.pending[name] = queued{u: u, state: u.state || isQueued && old.state}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// drop forgets a queued update of the node (the caller sends a newer one).
func (w *nodeWatcher) drop(name string) {
	w.mu.Lock()
	delete(w.pending, name) // its name stays in order; next skips it
	w.mu.Unlock()
}

// next waits for the oldest queued update.
func (w *nodeWatcher) next(ctx context.Context) (*nodeUpdate, error) {
	for {
		w.mu.Lock()
		for _, q := range []*[]string{&w.urgent, &w.order} {
			for len(*q) > 0 {
				name := (*q)[0]
				*q = (*q)[1:]
				if q, ok := w.pending[name]; ok {
					delete(w.pending, name)
					w.mu.Unlock()
					return q.u, nil
				}
			}
			*q = nil // let the array go
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// nodeHub runs its loop while it has watchers: the first to join starts
// it, the last to leave stops it and waits for it.
type nodeHub struct {
	nodes               Nodes
	tick                time.Duration
	telemetryEvery      time.Duration
	basicTelemetryEvery time.Duration

	mu       sync.Mutex
	watchers map[*nodeWatcher]struct{}
	stop     context.CancelFunc
	done     chan struct{}
}

func newNodeHub(nodes Nodes) *nodeHub {
	return &nodeHub{nodes: nodes, tick: nodeWatchTick, telemetryEvery: nodeTelemetryEvery, basicTelemetryEvery: nodeBasicTelemetryEvery,
		watchers: map[*nodeWatcher]struct{}{}}
}

func (h *nodeHub) join(w *nodeWatcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watchers[w] = struct{}{}
	if h.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop, h.done = cancel, make(chan struct{})
		go h.loop(ctx, h.done)
	}
}

func (h *nodeHub) leave(w *nodeWatcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	var stop context.CancelFunc
	var done chan struct{}
	if len(h.watchers) == 0 {
		stop, done = h.stop, h.done
		h.stop, h.done = nil, nil
	}
	h.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// published is what the hub last published of a node (or saw, before the
// loop's first pass).
type published struct {
	state   string
	version uint64
	at      time.Time // published to every watcher
	basicAt time.Time // published to NODE_VIEW_BASIC watchers
	pass    uint64
}

func (h *nodeHub) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	last := map[string]published{}
	t := time.NewTicker(h.tick)
	defer t.Stop()
	for pass := uint64(1); ; pass++ {
		h.pass(ctx, last, pass)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass publishes the nodes that changed since the last pass. On the
// first, it only records them: each watcher lists every node itself
// when it starts.
func (h *nodeHub) pass(ctx context.Context, last map[string]published, pass uint64) {
	now := time.Now()
	type change struct {
		name            string
		state, forBasic bool
	}
	var changed []change
	for _, v := range h.nodes.Index() {
		st := stateKey(v)
		p, seen := last[v.Name]
		switch {
		case !seen && pass > 1, seen && p.state != st:
			changed = append(changed, change{v.Name, true, true})
			p = published{state: st, version: v.Version, at: now, basicAt: now}
		case seen && p.version != v.Version && now.Sub(p.at) >= h.telemetryEvery:
			c := change{name: v.Name, forBasic: now.Sub(p.basicAt) >= h.basicTelemetryEvery}
			changed = append(changed, c)
			p.version, p.at = v.Version, now
			if c.forBasic {
				p.basicAt = now
			}
		case !seen:
			// Spread the nodes' refreshes over their periods: from one
			// start they would all fall due in the same pass.
			p = published{state: st, version: v.Version,
				at: now.Add(-stagger(v.Name, h.telemetryEvery)), basicAt: now.Add(-stagger(v.Name, h.basicTelemetryEvery))}
		}
		p.pass = pass
		last[v.Name] = p
	}
	for name, p := range last {
		if p.pass != pass {
			delete(last, name) // gone from the fleet
		}
	}
	if len(changed) == 0 {
		return
	}
	h.mu.Lock()
	ws := make([]*nodeWatcher, 0, len(h.watchers))
	for w := range h.watchers {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	for _, c := range changed {
		if ctx.Err() != nil {
			return // the last watcher left
		}
		v, ok := h.nodes.Snapshot(c.name)
		if !ok {
			continue
		}
		u := &nodeUpdate{view: v, state: c.state, forBasic: c.forBasic}
		for _, w := range ws {
			if w.wantsUpdate(u) {
				w.offer(u)
			}
		}
	}
}

// stagger is a node's fixed offset within a refresh period.
func stagger(name string, every time.Duration) time.Duration {
	if every <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(every))
}

// stateKey is what of a node is published at once when it changes:
// everything but its telemetry.
func stateKey(v fleet.NodeView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%q|%t|%t|%t|%s|%s|%s|%s|", v.Verdict.Verdict, v.Verdict.Reasons, v.Connected, v.Silent, v.Unmapped,
		v.Machine, v.AgentVersion, v.BootID, strings.Join(v.RunIDs, ","))
	if v.Slurm != nil {
		b.WriteString(v.Slurm.StateString() + "|" + v.Slurm.Reason)
	}
	return b.String()
}
