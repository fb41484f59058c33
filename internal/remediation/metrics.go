package remediation

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the engine's metrics. No metric has a node label.
const (
	modeAuto   = "auto"
	modeManual = "manual"

	resultDrained        = "drained"
	resultHandedOff      = "handed_off"
	resultResumed        = "resumed"
	resultDryRun         = "dry_run"
	resultBreaker        = "breaker"
	resultSkippedForeign = "skipped_foreign"
	resultError          = "error"
	resultPassed         = "passed"
	resultFailed         = "failed"
)

// Metrics are the engine's Prometheus metrics:
//
//	sopilot_remediation_drains_total{mode="auto|manual",result="drained|handed_off|dry_run|breaker|skipped_foreign|error"}
//	sopilot_remediation_resumes_total{mode="auto|manual",result="resumed|dry_run|skipped_foreign|error"}
//	sopilot_remediation_verifications_total{result="passed|failed|error"}
//	sopilot_remediation_breaker_open          (gauge, 1 while open)
//	sopilot_remediation_breaker_trips_total   (alerts raised)
//
// A nil *Metrics records nothing.
type Metrics struct {
	drains        *prometheus.CounterVec
	resumes       *prometheus.CounterVec
	verifications *prometheus.CounterVec
	breakerOpen   prometheus.Gauge
	breakerTrips  prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg. Every label
// combination starts at zero so that it is exported before it first
// happens.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		drains: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_remediation_drains_total",
			Help: "Drain decisions by mode (auto or manual) and result.",
		}, []string{"mode", "result"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_remediation_resumes_total",
			Help: "Resume decisions by mode (auto or manual) and result.",
		}, []string{"mode", "result"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_remediation_verifications_total",
			Help: "Verification checks of drained nodes before resuming, by result.",
		}, []string{"result"}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sopilot_remediation_breaker_open",
			Help: "1 while the circuit breaker refuses automatic drains, else 0.",
		}),
		breakerTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_remediation_breaker_trips_total",
			Help: "Times the circuit breaker opened (each raised one alert).",
		}),
	}
	for _, mode := range []string{modeAuto, modeManual} {
		for _, r := range []string{resultDrained, resultHandedOff, resultDryRun, resultBreaker, resultSkippedForeign, resultError} {
			if mode == modeManual && (r == resultBreaker || r == resultHandedOff) {
				continue // manual drains bypass the breaker
			}
			m.drains.WithLabelValues(mode, r)
		}
		for _, r := range []string{resultResumed, resultDryRun, resultSkippedForeign, resultError} {
			m.resumes.WithLabelValues(mode, r)
		}
	}
	for _, r := range []string{resultPassed, resultFailed, resultError} {
		m.verifications.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.drains, m.resumes, m.verifications, m.breakerOpen, m.breakerTrips} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) drain(mode, result string) {
	if m != nil {
		m.drains.WithLabelValues(mode, result).Inc()
	}
}

func (m *Metrics) resume(mode, result string) {
	if m != nil {
		m.resumes.WithLabelValues(mode, result).Inc()
	}
}

func (m *Metrics) verification(result string) {
	if m != nil {
		m.verifications.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) breaker(open, tripped bool) {
	if m == nil {
		return
	}
	v := 0.0
	if open {
		v = 1
	}
	m.breakerOpen.Set(v)
	if tripped {
		m.breakerTrips.Inc()
	}
}
