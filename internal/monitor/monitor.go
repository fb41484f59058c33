package monitor

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Config tunes the monitor. Zero durations take the defaults.
type Config struct {
	Thresholds health.Thresholds
	// EventWindow is how long a health event counts as evidence (default
	// 15 min): an XID 79 keeps its node unhealthy that long after the last
	// one, then the drain → verify → undrain path may start.
	EventWindow time.Duration
	// SampleEvery thins the hour of samples kept per GPU and port for the
	// rate rules (default 1 min); the latest sample is always kept.
	SampleEvery time.Duration
	// StallAfter: a running run whose progress step has not moved for this
	// long is a suspected hang (default 10 min; 0 keeps the default,
	// negative disables).
	StallAfter time.Duration
	// CheckInterval: idle nodes get an NCCL check this often (0: never on
	// a schedule, only on demand and before an undrain).
	CheckInterval time.Duration
	// Interval is the monitor's tick (default 1 s): remediation steps,
	// silence and stalls are checked this often. Health events are
	// evaluated as soon as they are durable.
	Interval time.Duration
	// EvaluateEvery is how often a node's samples are re-judged (default
	// 5 s): the sample rules work on rates over minutes to an hour.
	EvaluateEvery time.Duration
	// MaxEventsPerNode is how many health events a node keeps as evidence
	// (default 10,000; the newest). Incidents count every event.
	MaxEventsPerNode int
	Now              func() time.Time
	// RefreshSlurm, when set, is called after a drain or resume so the
	// fleet's copy of Slurm's node states catches up at once.
	RefreshSlurm func()
}

func (c *Config) defaults() {
	if c.EventWindow <= 0 {
		c.EventWindow = 15 * time.Minute
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = time.Minute
	}
	if c.StallAfter == 0 {
		c.StallAfter = 10 * time.Minute
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.EvaluateEvery <= 0 {
		c.EvaluateEvery = 5 * time.Second
	}
	if c.MaxEventsPerNode <= 0 {
		c.MaxEventsPerNode = 10_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RefreshSlurm == nil {
		c.RefreshSlurm = func() {}
	}
}

// Fleet is what the monitor needs of the node agents' fleet.
type Fleet interface {
	Summaries() []fleet.NodeView
	SetVerdict(node string, v fleet.Verdict)
	RunCommand(ctx context.Context, node, kind string, args map[string]string) (*agentpb.CommandResult, error)
}

// IncidentStore keeps incidents durable.
type IncidentStore interface {
	ListIncidents(ctx context.Context, q store.IncidentQuery) ([]*store.Incident, string, error)
	GetIncident(ctx context.Context, id string) (*store.Incident, error)
	PutIncidents(ctx context.Context, incs []*store.Incident) error
}

// Remediator drains and resumes nodes in Slurm.
type Remediator interface {
	Step(ctx context.Context, nodes []remediation.NodeInput) []remediation.Decision
	Drain(ctx context.Context, node, reason, who string) (remediation.Decision, error)
	Undrain(ctx context.Context, node string, skipVerification bool, who string) (remediation.Decision, error)
	HoldForCheck(ctx context.Context, node string) (release func(context.Context) error, err error)
}

var (
	_ Fleet         = (*fleet.Fleet)(nil)
	_ IncidentStore = (*store.Store)(nil)
	_ Remediator    = (*remediation.Engine)(nil)
)

// RunIncidents records incidents against runs (the controller's runs).
type RunIncidents interface {
	AttachIncident(ctx context.Context, runIDs []string, incidentID string) error
}

// RunFaults is told of every node remediation took out of service for
// hardware-class evidence, so runs with a retry policy move away from it
// (the controller's NodeFault). The monitor finds it on its RunIncidents
// when that implements it.
type RunFaults interface {
	NodeFault(ctx context.Context, node, incidentID string) error
}

// Monitor turns agent telemetry into verdicts, incidents and remediation.
type Monitor struct {
	cfg     Config
	fleet   Fleet
	store   IncidentStore
	engine  Remediator
	runs    RunIncidents
	log     *slog.Logger
	metrics *Metrics

	mu        sync.Mutex
	nodes     map[string]*evidence
	open      map[incKey]*store.Incident
	progress  map[string]*runProgress
	lastCheck map[string]time.Time
	// restored: incidents open before a restart, whose events the monitor
	// no longer holds; hold: per node, when their evidence window ends.
	restored map[incKey]bool
	hold     map[string]time.Time
	// drainedFor: per node drained by remediation, the incident it was
	// drained for; looked up once per node after a restart (looked).
	drainedFor map[string]string
	looked     map[string]bool

	wake  chan struct{}
	tasks *tasks

	// scratch is the evidence handed to health.Evaluate, refilled for
	// every node under mu: a pass over 10,000 nodes allocates none.
	scratch evalScratch
}

type evalScratch struct {
	gpus []telemetry.GPUSample
	ib   []telemetry.IBPortSample
	idx  []int32
	keys []ibKey
}

// New builds a monitor. engine and runs may be nil (no remediation, no run
// marking).
func New(cfg Config, fl Fleet, st IncidentStore, engine Remediator, runs RunIncidents, logger *slog.Logger, m *Metrics) (*Monitor, error) {
	if e, ok := engine.(*remediation.Engine); ok && e == nil {
		engine = nil // remediation disabled: the caller's nil *Engine
	}
	cfg.defaults()
	if err := cfg.Thresholds.Validate(); err != nil {
		return nil, fmt.Errorf("monitor thresholds: %w", err)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	mo := &Monitor{
		cfg: cfg, fleet: fl, store: st, engine: engine, runs: runs, log: logger.With("component", "monitor"), metrics: m,
		nodes: map[string]*evidence{}, open: map[incKey]*store.Incident{}, progress: map[string]*runProgress{},
		lastCheck: map[string]time.Time{}, wake: make(chan struct{}, 1), tasks: newTasks(),
		restored: map[incKey]bool{}, hold: map[string]time.Time{}, drainedFor: map[string]string{}, looked: map[string]bool{},
	}
	// Incidents open before a restart stay open, and keep their ids.
	var incs []*store.Incident
	for after := ""; ; {
		page, next, err := st.ListIncidents(context.Background(), store.IncidentQuery{OpenOnly: true, PageSize: 1000, After: after})
		if err != nil {
			return nil, fmt.Errorf("load open incidents: %w", err)
		}
		incs = append(incs, page...)
		if next == "" {
			break
		}
		after = next
	}
	for _, inc := range incs {
		k := keyOf(inc)
		mo.open[k] = inc
		if k.closedByEvidence() {
			mo.restored[k] = true
			if end := inc.LastSeen.Add(cfg.EventWindow); end.After(mo.hold[inc.Node]) {
				mo.hold[inc.Node] = end
			}
		}
	}
	return mo, nil
}

// evaluateLocked judges one node and updates the open incidents. counts
// adds event counts to incidents by component. It returns the incidents to
// persist.
func (m *Monitor) evaluateLocked(now time.Time, name string, e *evidence, counts map[evKey]int64) []*store.Incident {
	// Drop old events.
	i := 0
	for i < len(e.events) && now.Sub(e.events[i].Time) > m.cfg.EventWindow {
		i++
	}
	if i > 0 {
		e.events = append(e.events[:0], e.events[i:]...)
	}
	// By GPU and port, each in time order, as health.Evaluate groups them
	// (it copies nothing then).
	sc := &m.scratch
	sc.idx = sc.idx[:0]
	for i := range e.gpus {
		sc.idx = append(sc.idx, i)
	}
	slices.Sort(sc.idx)
	sc.gpus = sc.gpus[:0]
	for _, i := range sc.idx {
		sc.gpus = appendGPU(sc.gpus, int(i), e.gpus[i])
	}
	sc.keys = sc.keys[:0]
	for k := range e.ib {
		sc.keys = append(sc.keys, k)
	}
	slices.SortFunc(sc.keys, func(a, b ibKey) int {
		return cmp.Or(strings.Compare(a.device, b.device), cmp.Compare(a.port, b.port))
	})
	sc.ib = sc.ib[:0]
	for _, k := range sc.keys {
		sc.ib = appendIB(sc.ib, k, e.ib[k])
	}
	ev := health.Evidence{Node: name, LastReport: e.lastReport, ExpectedGPUs: e.expected, ObservedGPUs: e.observed, Events: e.events,
		GPUSamples: sc.gpus, IBPorts: sc.ib}
	res := health.Evaluate(now, ev, m.cfg.Thresholds)
	clear(sc.gpus) // no pointers into old samples kept alive
	clear(sc.ib)
	e.result = res
	e.dirty = false
	e.lastEval = now
	if res.Verdict == health.Healthy {
		if e.healthySince.IsZero() {
			e.healthySince = now
		}
		if h := m.hold[name]; e.healthySince.Before(h) {
			e.healthySince = h
		}
	} else {
		e.healthySince = time.Time{}
	}
	var reasons []string
	for _, f := range res.Findings {
		if f.Verdict > health.Healthy || f.Action > health.ActionNone {
			reasons = append(reasons, f.Component+": "+f.Reason)
		}
	}
	m.fleet.SetVerdict(name, fleet.Verdict{Verdict: res.Verdict.String(), Reasons: reasons})

	var changed []*store.Incident
	listed := map[*store.Incident]bool{}
	seen := map[incKey]bool{}
	for _, f := range res.Findings {
		if f.Verdict == health.Unknown || (f.Verdict == health.Healthy && f.Action == health.ActionNone) {
			continue
		}
		k := incKey{name, f.Component, f.Rule}
		seen[k] = true
		delete(m.restored, k)
		inc := m.open[k]
		if inc == nil {
			inc = m.openLocked(k, now, e.runIDs)
			m.log.Warn("incident opened", "node", name, "component", f.Component, "rule", f.Rule, "reason", f.Reason, "id", inc.ID)
		}
		before := *inc
		inc.Summary, inc.Evidence, inc.Severity, inc.LastSeen = f.Reason, f.Reason, f.Verdict.String(), now
		if c := counts[evKey{f.Component, f.Kind, f.Code}]; c > 0 && f.Kind != "" {
			inc.Count += c
		} else if inc.Count == 0 {
			inc.Count = 1
		}
		if listed[inc] {
			continue // one incident, many findings (distinct codes of one rule)
		}
		if before.Summary != inc.Summary || before.Count != inc.Count || before.Severity != inc.Severity || before.ID == "" ||
			now.Sub(before.LastSeen) > time.Minute { // keep last_seen roughly fresh on disk
			listed[inc] = true
			changed = append(changed, inc)
		}
	}
	for k, inc := range m.open {
		if k.node != name || seen[k] || !k.closedByEvidence() {
			continue
		}
		if res.Verdict == health.Unknown {
			continue // no evidence either way while the agent is silent
		}
		if m.restored[k] && now.Before(inc.LastSeen.Add(m.cfg.EventWindow)) {
			continue // its events were lost with the restart, not cleared
		}
		delete(m.restored, k)
		inc.ResolveTime, inc.ResolvedBy = now, "evidence cleared"
		delete(m.open, k)
		changed = append(changed, inc)
		m.log.Info("incident resolved", "node", name, "component", inc.Component, "rule", inc.Rule, "id", inc.ID)
	}
	return changed
}

// Run evaluates every node each Interval (and at once after health events),
// runs remediation, flags stalled runs and schedules idle NCCL checks. On
// its way out it cancels the background work and waits for it; a monitor
// is run once.
func (m *Monitor) Run(ctx context.Context) error {
	defer m.tasks.stop()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.wake:
		}
	}
}

// tickChunk is how many nodes a pass judges before it lets others take
// the monitor's lock.
const tickChunk = 256

func (m *Monitor) tick(ctx context.Context) {
	now := m.cfg.Now()
	views := m.fleet.Summaries()
	m.mu.Lock()
	var changed []*store.Incident
	counts := map[string]int{}
	inputs := make([]remediation.NodeInput, 0, len(views))
	var unknown []int // inputs of drained nodes whose drain's incident is to be looked up
	for i, v := range views {
		if i > 0 && i%tickChunk == 0 {
			// Let the agents' batches in (ObserveBatch takes this lock):
			// at 10,000 nodes a whole pass holds it for tens of
			// milliseconds of CPU, and far longer in wall time on a busy
			// core, while every stream waits on it.
			m.mu.Unlock()
			runtime.Gosched()
			m.mu.Lock()
		}
		e := m.node(v.Name)
		wasSilent := e.lastReport.IsZero()
		switch {
		case v.Silent:
			e.lastReport = time.Time{} // judged UNKNOWN, whatever it said last
		case e.lastReport.IsZero():
			// Talking (a Hello, or a restart of this controller) but no
			// batch observed yet: alive, not "never reported".
			e.lastReport = v.LastSeen
		}
		if v.Silent != wasSilent || e.dirty && now.Sub(e.lastEval) >= m.cfg.EvaluateEvery || len(e.events) > 0 && now.Sub(e.lastEval) >= m.cfg.EvaluateEvery {
			changed = append(changed, m.evaluateLocked(now, v.Name, e, nil)...)
		}
		// Silence wins over anything the fleet was told.
		verdict := e.result.Verdict
		if v.Silent {
			verdict = health.Unknown
		}
		counts[verdict.String()]++
		if v.Slurm != nil {
			in := remediation.NodeInput{Name: v.Name, Result: e.result, Slurm: *v.Slurm, HealthySince: e.healthySince}
			if v.Silent {
				in.Result, in.HealthySince = health.Result{Verdict: health.Unknown}, time.Time{}
			}
			in.IncidentID = m.worstIncidentLocked(v.Name, e.result)
			if in.IncidentID == "" && in.Slurm.Drained() {
				in.IncidentID = m.drainIncidentLocked(v.Name)
				if in.IncidentID == "" && !m.looked[v.Name] {
					unknown = append(unknown, len(inputs))
				}
			}
			inputs = append(inputs, in)
		}
	}
	changed = append(changed, m.stallsLocked(now, views)...)
	for _, vd := range []string{"HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN"} {
		m.metrics.Nodes.WithLabelValues(vd).Set(float64(counts[vd]))
	}
	m.metrics.OpenIncidents.Set(float64(len(m.open)))
	m.mu.Unlock()
	if err := m.persist(ctx, changed); err != nil {
		m.log.Error("store incidents", "err", err)
	}
	if len(unknown) > 0 && m.engine != nil {
		names := make([]string, len(unknown))
		for i, k := range unknown {
			names[i] = inputs[k].Name
		}
		found := m.learnDrains(ctx, names)
		m.mu.Lock()
		for _, k := range unknown {
			name := inputs[k].Name
			m.looked[name] = true
			if id := found[name]; id != "" && m.drainedFor[name] == "" {
				m.drainedFor[name] = id
			}
			inputs[k].IncidentID = m.drainedFor[name]
		}
		m.mu.Unlock()
	}
	if m.engine != nil && len(inputs) > 0 {
		ds := m.engine.Step(ctx, inputs)
		m.record(ctx, ds)
	}
	m.scheduleChecks(views, now)
}

// Incidents lists incidents (newest first).
func (m *Monitor) Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.Incident, string, error) {
	return m.store.ListIncidents(ctx, q)
}
