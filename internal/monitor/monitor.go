package monitor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/nccl"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
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
	Now           func() time.Time
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
	if c.Now == nil {
		c.Now = time.Now
	}
}

// RunIncidents records incidents against runs (the controller's runs).
type RunIncidents interface {
	AttachIncident(ctx context.Context, runIDs []string, incidentID string) error
}

// Monitor turns agent telemetry into verdicts, incidents and remediation.
type Monitor struct {
	cfg     Config
	fleet   *fleet.Fleet
	store   *store.Store
	engine  *remediation.Engine
	runs    RunIncidents
	log     *slog.Logger
	metrics *Metrics
	// RefreshSlurm, when set, is called after a drain or resume so the
	// fleet's copy of Slurm's node states catches up at once.
	RefreshSlurm func()

	mu        sync.Mutex
	nodes     map[string]*evidence
	open      map[incKey]*store.Incident
	progress  map[string]*runProgress
	lastCheck map[string]time.Time
	// restored: incidents open before a restart, whose events the monitor
	// no longer holds; hold: per node, when their evidence window ends.
	restored map[incKey]bool
	hold     map[string]time.Time

	wake  chan struct{}
	tasks *tasks
}

type incKey struct{ node, component, rule string }

// evKey groups events the way the health rules do.
type evKey struct {
	component, kind string
	code            int64
}

type runProgress struct {
	node       string
	step       int64
	changed    time.Time
	lastReport time.Time
}

// evidence is what the monitor remembers about one node.
type evidence struct {
	gpus         map[int32]*gpuHistory
	ib           map[ibKey][]telemetry.IBPortSample
	events       []health.Event
	lastReport   time.Time
	expected     int
	observed     int
	healthySince time.Time
	result       health.Result
	runIDs       []string
	dirty        bool
	lastEval     time.Time
}

// New builds a monitor. engine and runs may be nil (no remediation, no run
// marking).
func New(cfg Config, fl *fleet.Fleet, st *store.Store, engine *remediation.Engine, runs RunIncidents, logger *slog.Logger, m *Metrics) (*Monitor, error) {
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
		restored: map[incKey]bool{}, hold: map[string]time.Time{},
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
		k := incKey{inc.Node, inc.Component, inc.Rule}
		mo.open[k] = inc
		if !strings.HasPrefix(inc.Rule, "progress_") && inc.Rule != "nccl_busbw" {
			mo.restored[k] = true
			if end := inc.LastSeen.Add(cfg.EventWindow); end.After(mo.hold[inc.Node]) {
				mo.hold[inc.Node] = end
			}
		}
	}
	return mo, nil
}

// gpuHistory is one GPU's evidence: an hour of compact samples, one per
// SampleEvery, holding only what the rate rules read, and the newest
// sample as it arrived.
type gpuHistory struct {
	kept      []telemetry.GPUSample
	latest    telemetry.GPUSample
	hasLatest bool
}

type ibKey struct {
	device string
	port   int32
}

func (m *Monitor) node(name string) *evidence {
	e := m.nodes[name]
	if e == nil {
		e = &evidence{gpus: map[int32]*gpuHistory{}, ib: map[ibKey][]telemetry.IBPortSample{}}
		m.nodes[name] = e
	}
	return e
}

// ObserveBatch keeps the telemetry the rules need (fleet.Observer).
func (m *Monitor) ObserveBatch(node string, expectedGPUs int, b *telemetry.Batch, runIDs []string) {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.node(node)
	e.lastReport = now
	e.expected = expectedGPUs
	e.runIDs = runIDs
	if len(b.GPUSamples) > 0 {
		e.observed = 0
	}
	for _, g := range b.GPUSamples {
		if g.SMUtilizationPercent != nil || g.TemperatureCelsius != nil || g.MemoryUsedBytes != nil {
			e.observed++
		}
		h := e.gpus[int32(g.Index)]
		if h == nil {
			h = &gpuHistory{}
			e.gpus[int32(g.Index)] = h
		}
		if h.hasLatest {
			if t := h.latest.Time; len(h.kept) == 0 || t.Sub(h.kept[len(h.kept)-1].Time) >= m.cfg.SampleEvery {
				h.kept = append(h.kept, h.latest.Compact())
				i := 0
				for i < len(h.kept)-1 && now.Sub(h.kept[i].Time) > time.Hour {
					i++
				}
				if i > 0 {
					h.kept = append(h.kept[:0], h.kept[i:]...)
				}
			}
		}
		h.latest, h.hasLatest = g, true
	}
	for _, p := range b.IBSamples {
		k := ibKey{p.Device, int32(p.Port)}
		e.ib[k] = keep(e.ib[k], p, now, m.cfg.SampleEvery, func(x telemetry.IBPortSample) time.Time { return x.Time })
	}
	for _, p := range b.Progress {
		rp := m.progress[p.RunID]
		if rp == nil {
			rp = &runProgress{step: -1}
			m.progress[p.RunID] = rp
		}
		rp.node, rp.lastReport = node, now
		if p.Step != rp.step {
			rp.step, rp.changed = p.Step, now
		}
	}
	e.dirty = true
}

// keep appends s to an hour of samples thinned to one per every, always
// keeping the newest one (the last entry is replaced while it is younger
// than every).
func keep[S any](ss []S, s S, now time.Time, every time.Duration, at func(S) time.Time) []S {
	if n := len(ss); n >= 2 && at(s).Sub(at(ss[n-2])) < every {
		ss[n-1] = s
	} else {
		ss = append(ss, s)
	}
	i := 0
	for i < len(ss)-2 && now.Sub(at(ss[i])) > time.Hour {
		i++
	}
	if i > 0 {
		ss = append(ss[:0], ss[i:]...)
	}
	return ss
}

// RecordEvents keeps health events as evidence, evaluates the node at once
// and makes the resulting incidents durable before the events are acked
// (fleet.EventSink).
func (m *Monitor) RecordEvents(ctx context.Context, node string, evs []telemetry.HealthEvent, jobs map[string]string) error {
	now := m.cfg.Now()
	m.mu.Lock()
	e := m.node(node)
	counts := map[evKey]int64{}
	for _, ev := range evs {
		e.events = append(e.events, health.Event{HealthEvent: ev, JobID: jobs[ev.Component]})
		counts[evKey{ev.Component, ev.Kind, ev.Code}]++
		m.metrics.Events.WithLabelValues(ev.Kind).Inc()
	}
	// An XID storm must not grow memory: keep the newest 10,000.
	if n := len(e.events); n > 10_000 {
		e.events = append(e.events[:0], e.events[n-10_000:]...)
	}
	changed := m.evaluateLocked(now, node, e, counts)
	m.mu.Unlock()
	if err := m.persist(ctx, changed); err != nil {
		return err
	}
	m.poke()
	return nil
}

func (m *Monitor) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
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
	ev := health.Evidence{Node: name, LastReport: e.lastReport, ExpectedGPUs: e.expected, ObservedGPUs: e.observed, Events: e.events}
	for _, h := range e.gpus {
		ev.GPUSamples = append(ev.GPUSamples, h.kept...)
		if h.hasLatest {
			ev.GPUSamples = append(ev.GPUSamples, h.latest)
		}
	}
	for _, ss := range e.ib {
		ev.IBPorts = append(ev.IBPorts, ss...)
	}
	res := health.Evaluate(now, ev, m.cfg.Thresholds)
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
			inc = &store.Incident{
				ID: "inc-" + strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()), Node: name,
				Component: f.Component, Rule: f.Rule, FirstSeen: now, Count: 0, Action: "none",
				RunIDs: append([]string(nil), e.runIDs...),
			}
			m.open[k] = inc
			m.metrics.Opened.WithLabelValues(f.Rule).Inc()
			m.log.Warn("incident opened", "node", name, "component", f.Component, "rule", f.Rule, "reason", f.Reason, "id", inc.ID)
			m.attachLocked(inc)
		}
		before := *inc
		inc.Summary, inc.Evidence, inc.Severity, inc.LastSeen = f.Reason, f.Reason, f.Verdict.String(), now
		if c := counts[evKey{f.Component, f.Kind, f.Code}]; c > 0 && f.Kind != "" {
			inc.Count += c
		} else if inc.Count == 0 {
			inc.Count = 1
		}
		if before.Summary != inc.Summary || before.Count != inc.Count || before.Severity != inc.Severity || before.ID == "" {
			changed = append(changed, inc)
		} else if now.Sub(before.LastSeen) > time.Minute {
			changed = append(changed, inc) // keep last_seen roughly fresh on disk
		}
	}
	for k, inc := range m.open {
		if k.node != name || seen[k] || strings.HasPrefix(k.rule, "progress_") || k.rule == "nccl_busbw" {
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

// attachLocked marks the incident's runs with it, in the background: the
// caller holds m.mu and may be on an agent's stream.
func (m *Monitor) attachLocked(inc *store.Incident) {
	if m.runs == nil || len(inc.RunIDs) == 0 {
		return
	}
	ids, id := slices.Clone(inc.RunIDs), inc.ID
	m.tasks.Go(func(ctx context.Context) {
		if err := m.runs.AttachIncident(ctx, ids, id); err != nil {
			m.log.Warn("mark runs with incident", "incident", id, "err", err)
		}
	})
}

func (m *Monitor) persist(ctx context.Context, incs []*store.Incident) error {
	if len(incs) == 0 {
		return nil
	}
	m.mu.Lock()
	copies := make([]*store.Incident, len(incs))
	for i, inc := range incs {
		c := *inc
		c.RunIDs = append([]string(nil), inc.RunIDs...)
		copies[i] = &c
	}
	m.mu.Unlock()
	return m.store.PutIncidents(ctx, copies)
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

func (m *Monitor) tick(ctx context.Context) {
	now := m.cfg.Now()
	views := m.fleet.Summaries()
	m.mu.Lock()
	var changed []*store.Incident
	counts := map[string]int{}
	inputs := make([]remediation.NodeInput, 0, len(views))
	for _, v := range views {
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
	if m.engine != nil && len(inputs) > 0 {
		ds := m.engine.Step(ctx, inputs)
		m.record(ctx, ds)
	}
	m.scheduleChecks(views, now)
}

// worstIncidentLocked is the open incident behind the node's worst finding.
func (m *Monitor) worstIncidentLocked(node string, res health.Result) string {
	for _, f := range res.Findings {
		if inc := m.open[incKey{node, f.Component, f.Rule}]; inc != nil {
			return inc.ID
		}
	}
	return ""
}

// record writes remediation decisions into their incidents.
func (m *Monitor) record(ctx context.Context, ds []remediation.Decision) {
	if len(ds) == 0 {
		return
	}
	var changed []*store.Incident
	acted := false
	m.mu.Lock()
	for _, d := range ds {
		m.metrics.Decisions.WithLabelValues(string(d.Kind)).Inc()
		lvl := slog.LevelInfo
		if d.Err != nil || d.Kind == remediation.KindAlert {
			lvl = slog.LevelWarn
		}
		m.log.Log(ctx, lvl, "remediation", "node", d.Node, "kind", d.Kind, "action", d.Action, "reason", d.Reason, "err", d.Err)
		if d.Kind == remediation.KindDrain || d.Kind == remediation.KindResume {
			acted = acted || !d.DryRun
		}
		id := remediation.IncidentOf(d.Reason)
		for _, inc := range m.open {
			if inc.Node == d.Node && (id == "" || inc.ID == id) && inc.Action != d.Action {
				inc.Action = d.Action
				changed = append(changed, inc)
			}
		}
		if d.Kind == remediation.KindResume && id != "" {
			// The incident closed when its evidence cleared; note the resume.
			if inc, err := m.store.GetIncident(ctx, id); err == nil && !strings.Contains(inc.Action, "resumed") {
				inc.Action = strings.TrimSpace(inc.Action + "; " + d.Action)
				changed = append(changed, inc)
			}
		}
	}
	m.mu.Unlock()
	if err := m.persist(ctx, changed); err != nil {
		m.log.Error("store incident actions", "err", err)
	}
	if acted && m.RefreshSlurm != nil {
		m.RefreshSlurm()
	}
}

// stallsLocked flags runs whose step stopped moving while they run.
func (m *Monitor) stallsLocked(now time.Time, views []fleet.NodeView) []*store.Incident {
	if m.cfg.StallAfter < 0 {
		return nil
	}
	running := map[string]bool{}
	for _, v := range views {
		for _, r := range v.RunIDs {
			running[r] = true
		}
	}
	var changed []*store.Incident
	for id, rp := range m.progress {
		k := incKey{rp.node, "run:" + id, "progress_stalled"}
		inc := m.open[k]
		stalled := running[id] && now.Sub(rp.changed) > m.cfg.StallAfter
		switch {
		case stalled && inc == nil:
			inc = &store.Incident{
				ID: "inc-" + strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()), Node: rp.node,
				Component: k.component, Rule: k.rule, Severity: "DEGRADED", Count: 1, FirstSeen: now, LastSeen: now,
				Summary: fmt.Sprintf("suspected hang: run %s has been at step %d for %s while Slurm says it runs", id, rp.step, now.Sub(rp.changed).Round(time.Second)),
				Action:  "none", RunIDs: []string{id},
			}
			inc.Evidence = inc.Summary
			m.open[k] = inc
			changed = append(changed, inc)
			m.metrics.Opened.WithLabelValues(k.rule).Inc()
			m.log.Warn("run progress stalled", "run_id", id, "step", rp.step, "since", rp.changed)
			m.attachLocked(inc)
		case !stalled && inc != nil:
			inc.ResolveTime, inc.LastSeen = now, now
			inc.ResolvedBy = "progress resumed"
			if !running[id] {
				inc.ResolvedBy = "run no longer running"
			}
			delete(m.open, k)
			changed = append(changed, inc)
		}
		if !running[id] && now.Sub(rp.lastReport) > time.Hour {
			delete(m.progress, id)
		}
	}
	return changed
}

// CheckResult is the outcome of a node check.
type CheckResult struct {
	Passed    bool
	Summary   string
	BusBWGBps float64
}

// ErrUnknownCheck: a check name other than "nccl".
var ErrUnknownCheck = errors.New("unknown check")

// Check runs an active check on the node through its agent and records a
// failure as an incident (resolved by the next pass).
func (m *Monitor) Check(ctx context.Context, node, check string) (CheckResult, error) {
	if check == "" {
		check = "nccl"
	}
	if check != "nccl" {
		return CheckResult{}, fmt.Errorf("%w %q (known: nccl)", ErrUnknownCheck, check)
	}
	m.mu.Lock()
	m.lastCheck[node] = m.cfg.Now()
	m.mu.Unlock()
	th := m.cfg.Thresholds
	res, err := m.fleet.RunCommand(ctx, node, "nccl_check", map[string]string{"message_bytes": strconv.FormatInt(th.NCCLMessageBytes, 10)})
	if err != nil {
		m.metrics.Checks.WithLabelValues("error").Inc()
		return CheckResult{}, err
	}
	// The agent reports what it measured; the floor is the controller's.
	v := nccl.Judge(nccl.Reading{Sound: res.GetSuccess(), BusBWGBps: res.GetBusBandwidthGbps(), Summary: res.GetOutput()}, th.NCCLMinBusBandwidthGBps)
	out := CheckResult{Passed: v.Passed, Summary: v.Summary, BusBWGBps: v.BusBWGBps}
	now := m.cfg.Now()
	k := incKey{node, "nccl", "nccl_busbw"}
	m.mu.Lock()
	inc := m.open[k]
	var changed []*store.Incident
	switch {
	case !out.Passed && inc == nil:
		inc = &store.Incident{
			ID: "inc-" + strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()), Node: node,
			Component: "nccl", Rule: "nccl_busbw", Severity: "DEGRADED", Count: 1, FirstSeen: now, LastSeen: now,
			Summary: "NCCL check failed: " + out.Summary, Evidence: out.Summary, Action: "none",
		}
		m.open[k] = inc
		changed = append(changed, inc)
		m.metrics.Opened.WithLabelValues(k.rule).Inc()
	case !out.Passed:
		inc.Count++
		inc.LastSeen, inc.Evidence = now, out.Summary
		changed = append(changed, inc)
	case inc != nil:
		inc.ResolveTime, inc.LastSeen, inc.ResolvedBy = now, now, "check passed: "+out.Summary
		delete(m.open, k)
		changed = append(changed, inc)
	}
	m.mu.Unlock()
	result := "passed"
	if !out.Passed {
		result = "failed"
	}
	m.metrics.Checks.WithLabelValues(result).Inc()
	return out, m.persist(ctx, changed)
}

// Verify is remediation's verification before an undrain: the NCCL check.
func (m *Monitor) Verify(ctx context.Context, node string) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	r, err := m.Check(ctx, node, "nccl")
	if err != nil {
		return false, "", err
	}
	return r.Passed, r.Summary, nil
}

func (m *Monitor) scheduleChecks(views []fleet.NodeView, now time.Time) {
	if m.cfg.CheckInterval <= 0 {
		return
	}
	for _, v := range views {
		if !v.Connected || v.Slurm == nil || v.Slurm.State != "IDLE" || len(v.Slurm.Flags) > 0 {
			continue
		}
		m.mu.Lock()
		last, seen := m.lastCheck[v.Name]
		if !seen {
			// A node's first check comes an interval after it was first
			// seen, not all at once when the controller starts.
			m.lastCheck[v.Name], last = now, now
		}
		due := now.Sub(last) >= m.cfg.CheckInterval
		if due {
			m.lastCheck[v.Name] = now
		}
		m.mu.Unlock()
		if due {
			name := v.Name
			m.tasks.Go(func(ctx context.Context) {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				defer cancel()
				if _, err := m.Check(ctx, name, "nccl"); err != nil {
					m.log.Warn("scheduled nccl check", "node", name, "err", err)
				}
			})
		}
	}
}

// Incidents lists incidents (newest first).
func (m *Monitor) Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.Incident, string, error) {
	return m.store.ListIncidents(ctx, q)
}

// Drain is an operator's drain.
func (m *Monitor) Drain(ctx context.Context, node, reason, who string) (remediation.Decision, error) {
	if m.engine == nil {
		return remediation.Decision{}, errors.New("remediation is disabled on this controller")
	}
	d, err := m.engine.Drain(ctx, node, reason, who)
	if err == nil && m.RefreshSlurm != nil {
		m.RefreshSlurm()
	}
	return d, err
}

// Undrain is an operator's undrain.
func (m *Monitor) Undrain(ctx context.Context, node string, skipVerification bool, who string) (remediation.Decision, error) {
	if m.engine == nil {
		return remediation.Decision{}, errors.New("remediation is disabled on this controller")
	}
	d, err := m.engine.Undrain(ctx, node, skipVerification, who)
	if err == nil && m.RefreshSlurm != nil {
		m.RefreshSlurm()
	}
	return d, err
}

// Metrics are the monitor's Prometheus metrics (no node labels).
type Metrics struct {
	Nodes         *prometheus.GaugeVec
	Opened        *prometheus.CounterVec
	OpenIncidents prometheus.Gauge
	Events        *prometheus.CounterVec
	Decisions     *prometheus.CounterVec
	Checks        *prometheus.CounterVec
}

// NewMetrics creates and registers (reg may be nil) the monitor's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sopilot_node_verdicts", Help: "Nodes by health verdict."}, []string{"verdict"}),
		Opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_incidents_opened_total", Help: "Incidents opened, by rule (xid_drain, gpu_lost, ib_link_down, nccl_busbw, progress_stalled, ...).",
		}, []string{"rule"}),
		OpenIncidents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sopilot_incidents_open", Help: "Incidents not resolved."}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_health_events_total", Help: "Health events received from agents, by kind.",
		}, []string{"kind"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_remediation_decisions_total", Help: "Remediation decisions by kind (drain, resume, skip, verify_failed, alert).",
		}, []string{"kind"}),
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_node_checks_total", Help: "Active node checks (NCCL) by result: passed, failed, error.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Nodes, m.Opened, m.OpenIncidents, m.Events, m.Decisions, m.Checks)
	}
	return m
}
