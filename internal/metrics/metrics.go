// Package metrics owns the controller's Prometheus metrics: one registry per
// process (never the global default, so tests can build as many as they
// like), the collectors the run tracker and scheduler backends update, and
// the gRPC server metrics from go-grpc-middleware.
package metrics

import (
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Controller holds every metric the controller exports.
type Controller struct {
	Registry *prometheus.Registry
	GRPC     *grpcprom.ServerMetrics

	RunsCreated       *prometheus.CounterVec   // by result
	RunTransitions    *prometheus.CounterVec   // by state reached
	ActiveRuns        prometheus.Gauge         // non-terminal runs tracked
	SchedulerRequests *prometheus.CounterVec   // by backend, op, result
	SchedulerLatency  *prometheus.HistogramVec // by backend, op
	PollDuration      prometheus.Histogram
	LastPollSuccess   prometheus.Gauge // unix seconds
}

// NewController registers the controller's metrics, Go runtime and process
// metrics on a fresh registry.
func NewController() *Controller {
	reg := prometheus.NewRegistry()
	m := &Controller{
		Registry: reg,
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}),
		)),
		RunsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_runs_created_total",
			Help: "CreateRun calls by result: created, deduplicated (same request_id), rejected (by validation or Slurm), deferred (Slurm unavailable, submitted later).",
		}, []string{"result"}),
		RunTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_run_state_transitions_total",
			Help: "Run state changes observed, by the state reached.",
		}, []string{"state"}),
		ActiveRuns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sopilot_active_runs",
			Help: "Runs not yet in a terminal state, as of the last poll.",
		}),
		SchedulerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_scheduler_requests_total",
			Help: "Requests to Slurm by backend (cli, rest), operation and result (ok, unavailable, rejected, error).",
		}, []string{"backend", "op", "result"}),
		SchedulerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sopilot_scheduler_request_duration_seconds",
			Help:    "Latency of requests to Slurm by backend and operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"backend", "op"}),
		PollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sopilot_tracker_poll_duration_seconds",
			Help:    "Duration of one tracker poll: one batched Slurm query plus the store update.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		LastPollSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sopilot_tracker_last_success_timestamp_seconds",
			Help: "Unix time of the last poll that reached Slurm and stored its result.",
		}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.RunsCreated, m.RunTransitions, m.ActiveRuns,
		m.SchedulerRequests, m.SchedulerLatency, m.PollDuration, m.LastPollSuccess,
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Controller) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveScheduler records one request to Slurm.
func (m *Controller) ObserveScheduler(backend, op, result string, took time.Duration) {
	m.SchedulerRequests.WithLabelValues(backend, op, result).Inc()
	m.SchedulerLatency.WithLabelValues(backend, op).Observe(took.Seconds())
}
