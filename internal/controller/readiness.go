package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// Prober checks that the Slurm backend can be used right now: slurmctld
// answers and accepts the controller's credentials. It must not change
// anything in Slurm. An error wrapping scheduler.ErrUnavailable means
// slurmctld (or slurmrestd) could not be reached; any other error, except
// scheduler.ErrRejected (Slurm answered, so it is there), means the backend
// is misconfigured (wrong URL, API version, credentials, tools).
type Prober interface {
	Probe(ctx context.Context) error
}

// ProbeFunc adapts a function to Prober.
type ProbeFunc func(ctx context.Context) error

// Probe calls f.
func (f ProbeFunc) Probe(ctx context.Context) error { return f(ctx) }

// ProberFor returns the cheapest probe the backend offers: Ping (the CLI
// backend's scontrol ping), or Check (slurmrestd: a request slurmctld must
// answer with the controller's token), or else a listing of the
// controller's jobs.
func ProberFor(b scheduler.Backend) Prober {
	switch p := b.(type) {
	case interface{ Ping(context.Context) error }:
		return ProbeFunc(p.Ping)
	case interface{ Check(context.Context) error }:
		return ProbeFunc(p.Check)
	}
	return ProbeFunc(func(ctx context.Context) error {
		_, err := b.FindByComment(ctx, CommentPrefix)
		return err
	})
}

// BackendState is what the last probe said about the Slurm backend.
type BackendState int

// Backend states.
const (
	// BackendUnknown: not probed yet.
	BackendUnknown BackendState = iota
	// BackendReady: the last probe succeeded.
	BackendReady
	// BackendUnreachable: slurmctld or slurmrestd could not be reached
	// (scheduler.ErrUnavailable). Runs are still accepted: they are
	// recorded and submitted once Slurm answers again.
	BackendUnreachable
	// BackendMisconfigured: the probe failed in a way retrying will not
	// fix. CreateRun is refused, and nothing is recorded.
	BackendMisconfigured
)

func (s BackendState) String() string {
	switch s {
	case BackendReady:
		return "ready"
	case BackendUnreachable:
		return "unreachable"
	case BackendMisconfigured:
		return "misconfigured"
	}
	return "unknown"
}

// BackendStatus is the backend's readiness and why.
type BackendStatus struct {
	State BackendState
	// Reason says why the backend is not ready; empty when it is.
	Reason string
	// Since is when State began.
	Since time.Time
	// Backend says what the controller talks to once the backend answered:
	// "cli", or "rest v0.0.45" with the negotiated slurmrestd API version.
	Backend string
	// Versions names the Slurm releases on either side once the backend
	// answered ("Slurm tools 24.11.5, slurmctld 25.11.3", "slurmrestd Slurm
	// 26.05.5"); empty when the backend does not say.
	Versions string
}

// String is the status as /readyz and the logs show it.
func (s BackendStatus) String() string {
	switch {
	case s.Ready() && s.Backend != "" && s.Versions != "":
		return "slurm backend ready (" + s.Backend + "; " + s.Versions + ")"
	case s.Ready() && s.Backend != "":
		return "slurm backend ready (" + s.Backend + ")"
	case s.Ready():
		return "slurm backend ready"
	case s.Reason != "":
		return "slurm backend " + s.State.String() + ": " + s.Reason
	}
	return "slurm backend " + s.State.String()
}

// Ready reports whether the backend was usable at the last probe.
func (s BackendStatus) Ready() bool { return s.State == BackendReady }

// ErrBackendMisconfigured is returned by CreateRun while the last probe
// found the Slurm backend misconfigured; it comes wrapped together with
// ErrFailedPrecondition.
var ErrBackendMisconfigured = errors.New("slurm backend is misconfigured")

// ReadinessConfig tunes Readiness.
type ReadinessConfig struct {
	// Interval is how often the backend is probed; default 10 s.
	Interval time.Duration
	// Timeout bounds one probe; default 30 s (a CLI probe with slurmctld
	// down takes about 10 s to give up).
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Describe, when set, names the backend after a successful probe
	// (BackendStatus.Backend), e.g. with the negotiated API version.
	Describe func() string
	// Versions, when set, names the Slurm releases after a successful probe
	// (BackendStatus.Versions).
	Versions func() string
}

// Readiness knows whether the Slurm backend can be used. It probes at start
// and every Interval (Run), classifies each result (BackendState), tells
// OnChange subscribers about every change, logs it with the reason, and
// exports it as the gauge sopilot_slurm_backend_ready (1 ready, 0 not) and
// sopilot_slurm_backend_state{state} (1 for the current state).
//
// The tracker also asks it (Confirm) before it acts on Slurm's silence,
// marking a run LOST or submitting an unconfirmed run again, so that a
// listing taken while slurmctld was away is never read as "the job is gone".
type Readiness struct {
	prober Prober
	cfg    ReadinessConfig
	log    *slog.Logger

	ready    prometheus.Gauge
	state    *prometheus.GaugeVec
	info     *prometheus.GaugeVec
	failures *prometheus.CounterVec

	mu       sync.Mutex
	status   BackendStatus
	onChange []func(BackendStatus)
	// answered is when Slurm last answered a request made for other
	// reasons (Answered); see Run.
	answered time.Time
}

// NewReadiness builds a Readiness around prober. reg may be nil (no
// metrics); registering twice on one registry fails.
func NewReadiness(prober Prober, cfg ReadinessConfig, logger *slog.Logger, reg prometheus.Registerer) (*Readiness, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Readiness{
		prober: prober,
		cfg:    cfg,
		log:    logger.With("component", "slurm_readiness"),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sopilot_slurm_backend_ready",
			Help: "1 when the last probe of the Slurm backend succeeded, 0 otherwise (see sopilot_slurm_backend_state and the controller's log for why).",
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sopilot_slurm_backend_state",
			Help: "1 for the Slurm backend's current state: unknown (not probed yet), ready, unreachable (slurmctld or slurmrestd down; runs are deferred) or misconfigured (CreateRun refused).",
		}, []string{"state"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_slurm_backend_probe_failures_total",
			Help: "Failed probes of the Slurm backend, by state they indicate (unreachable, misconfigured).",
		}, []string{"state"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sopilot_slurm_backend_info",
			Help: "1, labelled with the Slurm backend the controller last reached: \"cli\", or \"rest v0.0.N\" with the slurmrestd API version in use (negotiated with --slurmrestd-api-version=auto).",
		}, []string{"backend"}),
		status: BackendStatus{State: BackendUnknown, Reason: "not probed yet", Since: cfg.Now()},
	}
	for st := BackendUnknown; st <= BackendMisconfigured; st++ {
		r.state.WithLabelValues(st.String())
	}
	r.failures.WithLabelValues(BackendUnreachable.String())
	r.failures.WithLabelValues(BackendMisconfigured.String())
	r.export(r.status)
	if reg != nil {
		for _, c := range []prometheus.Collector{r.ready, r.state, r.info, r.failures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register readiness metrics: %w", err)
			}
		}
	}
	return r, nil
}

// OnChange calls fn with the current status at once and then after every
// change of state or reason. fn runs with no lock held, from the goroutine
// that probed, so it must be quick.
func (r *Readiness) OnChange(fn func(BackendStatus)) {
	r.mu.Lock()
	r.onChange = append(r.onChange, fn)
	st := r.status
	r.mu.Unlock()
	fn(st)
}

// Status is the result of the last probe.
func (r *Readiness) Status() BackendStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run probes at once and then every Interval until ctx ends. A probe is
// skipped while Slurm has answered the tracker's own listing (Answered)
// within the last two Intervals (the tracker polls at the same period, so
// one would race it): a controller that polls Slurm anyway costs
// slurmctld no extra RPC for its readiness.
func (r *Readiness) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if !r.answeredWithin(2 * r.cfg.Interval) {
			r.Probe(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Answered records that Slurm just answered a request made for other
// reasons (a trusted job listing): it stands in for the next probe. It
// never turns a backend that is not ready into a ready one; only a probe
// does that.
func (r *Readiness) Answered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.Ready() {
		r.answered = r.cfg.Now()
	}
}

func (r *Readiness) answeredWithin(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status.Ready() && !r.answered.IsZero() && r.cfg.Now().Sub(r.answered) < d
}

// Probe probes the backend now, records the result and returns the new
// status. A probe cut short by ctx changes nothing.
func (r *Readiness) Probe(ctx context.Context) BackendStatus {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	err := r.prober.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return r.Status()
	}
	next := BackendStatus{State: BackendReady}
	switch {
	case err == nil, errors.Is(err, scheduler.ErrRejected):
		// Slurm gave a verdict, so it is there and takes our credentials.
		if r.cfg.Describe != nil {
			next.Backend = r.cfg.Describe()
		}
		if r.cfg.Versions != nil {
			next.Versions = r.cfg.Versions()
		}
	case errors.Is(err, scheduler.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// A probe that got no answer in time says nothing about the
		// settings: slurmctld (or slurmrestd) is busy or gone.
		next = BackendStatus{State: BackendUnreachable, Reason: "slurmctld unreachable: " + err.Error()}
	default:
		next = BackendStatus{State: BackendMisconfigured, Reason: "slurm backend misconfigured: " + err.Error()}
	}
	if next.State != BackendReady {
		r.failures.WithLabelValues(next.State.String()).Inc()
	}
	return r.set(next)
}

func (r *Readiness) set(next BackendStatus) BackendStatus {
	r.mu.Lock()
	prev := r.status
	if prev.State == next.State && prev.Reason == next.Reason && prev.Backend == next.Backend && prev.Versions == next.Versions {
		r.mu.Unlock()
		return prev
	}
	if prev.State == next.State {
		next.Since = prev.Since
	} else {
		next.Since = r.cfg.Now()
	}
	r.status = next
	subs := slices.Clone(r.onChange)
	r.mu.Unlock()

	if prev.State != next.State {
		r.export(next)
		if next.Ready() {
			r.log.Info("slurm backend ready", "was", prev.State.String(), "backend", next.Backend, "slurm_versions", next.Versions)
		} else {
			r.log.Warn("slurm backend not ready", "state", next.State.String(), "reason", next.Reason)
		}
	}
	for _, fn := range subs {
		fn(next)
	}
	return next
}

func (r *Readiness) export(st BackendStatus) {
	v := 0.0
	if st.Ready() {
		v = 1
	}
	r.ready.Set(v)
	if st.Backend != "" {
		r.info.Reset()
		r.info.WithLabelValues(st.Backend).Set(1)
	}
	for s := BackendUnknown; s <= BackendMisconfigured; s++ {
		on := 0.0
		if s == st.State {
			on = 1
		}
		r.state.WithLabelValues(s.String()).Set(on)
	}
}

// admit returns an error wrapping ErrFailedPrecondition and
// ErrBackendMisconfigured while the backend is misconfigured; CreateRun
// then records nothing.
func (r *Readiness) admit() error {
	st := r.Status()
	if st.State != BackendMisconfigured {
		return nil
	}
	return fmt.Errorf("%w: %w: %s; fix the controller's Slurm settings", ErrFailedPrecondition, ErrBackendMisconfigured, st.Reason)
}

// Confirm reports whether slurmctld has been answering throughout: the
// backend was ready continuously since before `since` (the start of the
// listing the caller wants to act on) and a fresh probe succeeds now. It
// returns why not otherwise.
func (r *Readiness) Confirm(ctx context.Context, since time.Time) error {
	before := r.Status()
	if !before.Ready() {
		return fmt.Errorf("slurm backend %s: %s", before.State, before.Reason)
	}
	if before.Since.After(since) {
		return fmt.Errorf("slurm backend only ready since %s, after the listing began", before.Since.Format(time.RFC3339))
	}
	now := r.Probe(ctx)
	if !now.Ready() {
		return fmt.Errorf("slurm backend %s: %s", now.State, now.Reason)
	}
	if now.Since != before.Since {
		return errors.New("slurm backend was not ready in between")
	}
	return nil
}
