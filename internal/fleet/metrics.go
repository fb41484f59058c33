package fleet

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's ingest metrics. No label carries a node or
// run name, so cardinality does not grow with the cluster.
type Metrics struct {
	Streams         prometheus.Gauge
	Batches         *prometheus.CounterVec // accepted, duplicate
	Rejected        *prometheus.CounterVec // bad_hello, bad_batch, bad_message, wrong_node, sequence_jump
	SequenceGaps    prometheus.Counter
	SequenceResets  prometheus.Counter
	Throttled       prometheus.Counter
	RateLimited     prometheus.Counter
	OverloadFactor  prometheus.Gauge
	Coarsened       prometheus.Counter
	AgentDropped    prometheus.Counter
	ProgressIgnored prometheus.Counter
	CommitDuration  prometheus.Histogram
	CommitErrors    prometheus.Counter
	AckLatency      prometheus.Histogram
	Replacements    prometheus.Counter
	Nodes           *prometheus.GaugeVec // by verdict
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sopilot_agent_streams", Help: "Agent streams open now.",
		}),
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_agent_batches_total", Help: "Agent batches received, by result: accepted, or duplicate (a resend of a batch already applied).",
		}, []string{"result"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_agent_streams_rejected_total", Help: "Agent streams ended because of a bad message, by reason.",
		}, []string{"reason"}),
		SequenceGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_sequence_gaps_total", Help: "Batch sequence numbers skipped by agents (batches lost before they reached the controller).",
		}),
		SequenceResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_sequence_resets_total", Help: "Handshakes that started a node's sequence space again: the controller held a sequence far past what the agent was acked.",
		}),
		Throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_batches_throttled_total", Help: "Agent batches that waited for room in their node's share of the commit queue (a health-event storm slowing its own stream).",
		}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_batches_rate_limited_total", Help: "Agent batches read late because their agent sent faster than the per-agent limit (its stream alone slowed by flow control).",
		}),
		OverloadFactor: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sopilot_agent_overload_factor", Help: "How many times their own sample interval agents are asked to slow to because the controller is short of CPU (goroutine scheduling latency p99 over its threshold, 100 ms by default); 1: not overloaded.",
		}),
		Coarsened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_telemetry_coarsened_total", Help: "Telemetry-only agent batches applied but not shown to the health monitor while the controller was short of CPU (batches with health events or progress always are).",
		}),
		AgentDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_dropped_samples_total", Help: "Telemetry samples agents dropped from full buffers while the controller was unreachable, as they reported.",
		}),
		ProgressIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_progress_ignored_total", Help: "Progress updates for runs not assigned to the reporting node.",
		}),
		CommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sopilot_agent_commit_duration_seconds", Help: "Time to make one group of agent batches durable.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		CommitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_commit_errors_total", Help: "Failed commits of agent batches (nothing acked; agents resend).",
		}),
		AckLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sopilot_agent_ack_latency_seconds", Help: "From receiving an agent batch to queueing its ack.",
			Buckets: []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5},
		}),
		Replacements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_slurm_node_replacements_total", Help: "Slurm nodes seen on another machine (instance id) than in the previous node listing; each starts with fresh health state.",
		}),
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sopilot_nodes", Help: "Nodes by health verdict.",
		}, []string{"verdict"}),
	}
	m.OverloadFactor.Set(1)
	for _, r := range []string{"accepted", "duplicate"} {
		m.Batches.WithLabelValues(r)
	}
	for _, r := range []string{"bad_hello", "bad_batch", "bad_message", "wrong_node", "sequence_jump"} {
		m.Rejected.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Streams, m.Batches, m.Rejected, m.SequenceGaps, m.SequenceResets, m.Throttled, m.RateLimited, m.OverloadFactor, m.Coarsened, m.AgentDropped, m.ProgressIgnored,
			m.CommitDuration, m.CommitErrors, m.AckLatency, m.Replacements, m.Nodes)
	}
	return m
}

// nodeInfoDesc joins the agents' per-machine series with Slurm's node
// names: one series per machine an agent reported from, value 1.
var nodeInfoDesc = prometheus.NewDesc("sopilot_node_info",
	"1 for each machine a node agent reported from, labelled with the Slurm node(s) on it as of the last node listing "+
		"(comma-separated and sorted when several share the machine; absent while the machine is unmapped). "+
		"Join: ... * on(machine) group_left(slurm_node) sopilot_node_info.",
	[]string{"machine", "slurm_node"}, nil)

// NodeInfo is the collector of sopilot_node_info. The mapping is read at
// scrape time, so the series follow a Slurm node that moves to another
// machine at the next listing; there is one series per machine (the agents'
// count), which keeps a PromQL group_left join valid even when one machine
// carries several Slurm nodes.
func (f *Fleet) NodeInfo() prometheus.Collector { return nodeInfoCollector{f} }

type nodeInfoCollector struct{ f *Fleet }

var _ prometheus.Collector = nodeInfoCollector{}

func (c nodeInfoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- nodeInfoDesc }

func (c nodeInfoCollector) Collect(ch chan<- prometheus.Metric) {
	c.f.mu.RLock()
	machines := make([]string, 0, len(c.f.nodes))
	for name := range c.f.nodes {
		machines = append(machines, name)
	}
	ids := c.f.ids
	c.f.mu.RUnlock()
	for _, m := range machines {
		if nodes := ids.SlurmNodes(m); len(nodes) > 0 {
			ch <- prometheus.MustNewConstMetric(nodeInfoDesc, prometheus.GaugeValue, 1, m, strings.Join(nodes, ","))
		}
	}
}
