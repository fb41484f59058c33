package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

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
			Name: "sopilot_node_checks_total", Help: "Active node checks (NCCL) by result: passed, failed, error, postponed (the node could not be held free of Slurm jobs).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Nodes, m.Opened, m.OpenIncidents, m.Events, m.Decisions, m.Checks)
	}
	return m
}
