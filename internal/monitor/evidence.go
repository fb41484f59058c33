package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
)

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
	ib           map[ibKey]*ibHistory
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

type ibKey struct {
	device string
	port   int32
}

func (m *Monitor) node(name string) *evidence {
	e := m.nodes[name]
	if e == nil {
		e = &evidence{gpus: map[int32]*gpuHistory{}, ib: map[ibKey]*ibHistory{}}
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
		h.observe(g, gpuTime, compactGPU, now, m.cfg.SampleEvery)
	}
	for _, p := range b.IBSamples {
		k := ibKey{p.Device, int32(p.Port)}
		h := e.ib[k]
		if h == nil {
			h = &ibHistory{}
			e.ib[k] = h
		}
		h.observe(p, ibTime, compactIB, now, m.cfg.SampleEvery)
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

// RecordEvents keeps health events as evidence, evaluates the node at once
// and makes the resulting incidents durable before the events are acked
// (fleet.EventSink). However many events arrive, the node keeps the newest
// Config.MaxEventsPerNode, without their messages (the rules do not read
// them), and a storm changes only the node's incidents of its components
// and rules: their counts grow.
func (m *Monitor) RecordEvents(ctx context.Context, node string, evs []telemetry.HealthEvent, jobs map[string]string) error {
	now := m.cfg.Now()
	m.mu.Lock()
	e := m.node(node)
	byKind := map[string]int{}
	var changed []*store.Incident
	// In chunks the node can keep, so that every event is counted on the
	// incident its finding belongs to.
	for len(evs) > 0 {
		if err := ctx.Err(); err != nil {
			// Stopping: what is not judged was not acked either.
			m.mu.Unlock()
			return fmt.Errorf("record events of %s: %w", node, err)
		}
		chunk := evs[:min(len(evs), m.cfg.MaxEventsPerNode)]
		evs = evs[len(chunk):]
		counts := map[evKey]int64{}
		for _, ev := range chunk {
			counts[evKey{ev.Component, ev.Kind, ev.Code}]++
			byKind[kindLabel(ev.Kind)]++
		}
		if drop := len(e.events) + len(chunk) - m.cfg.MaxEventsPerNode; drop > 0 {
			e.events = append(e.events[:0], e.events[drop:]...)
		}
		for _, ev := range chunk {
			ev.Message = ""
			ev.Kind = internKind(ev.Kind)
			e.events = append(e.events, health.Event{HealthEvent: ev, JobID: jobs[ev.Component]})
		}
		changed = append(changed, m.evaluateLocked(now, node, e, counts)...)
	}
	for k, c := range byKind {
		m.metrics.Events.WithLabelValues(k).Add(float64(c))
	}
	m.mu.Unlock()
	if err := m.persist(ctx, changed); err != nil {
		return err
	}
	m.poke()
	return nil
}

// knownKinds are the event kinds the rules know; any other kind is judged
// as an unknown event and counted under "other".
var knownKinds = map[string]string{
	telemetry.KindXID: telemetry.KindXID, telemetry.KindGPULost: telemetry.KindGPULost, telemetry.KindECCUncorrected: telemetry.KindECCUncorrected,
}

// kindLabel is an event kind as a metric label: bounded whatever agents
// send.
func kindLabel(kind string) string {
	if k, ok := knownKinds[kind]; ok {
		return k
	}
	return "other"
}

// internKind shares the string of a known kind, so kept events do not
// each hold a copy.
func internKind(kind string) string {
	if k, ok := knownKinds[kind]; ok {
		return k
	}
	return kind
}

func (m *Monitor) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}
