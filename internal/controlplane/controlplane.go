// Package controlplane assembles the controller process: store, Slurm
// backend, run service, fleet, monitor, remediation, gRPC and metrics
// servers. cmd/controller turns flags into a Config and calls New and Run;
// hack/ingestbench and the end-to-end tests build the same Controller, so
// what they measure and check is what ships.
//
//	New(cfg, logger)
//	  Slurm backend (cli | rest | cfg.Backend)   store (bbolt at cfg.DBPath)
//	  run service ── jobs ──▶ backend            metrics registry
//	  fleet ◀── agents' Connect streams
//	  node poller ── Slurm node states ──▶ fleet (machine ↔ Slurm node map)
//	  monitor ◀── fleet's batches and events; incidents ──▶ run service
//	  remediation ── drain/resume ──▶ backend; verifies through the monitor
//	  gRPC server: auth ▸ Run · Node · Comparison · Agent services, health
//	  HTTP server: /metrics, /healthz
//	Run(ctx): one errgroup of run service, fleet, monitor, node poller and
//	both servers; the first to fail, or ctx, stops them all.
//
// Construction order. Every component gets what it needs in its
// constructor or options, in this order: readiness, the usage ledger
// (written by the fleet, read by the run service, so neither needs the
// other), the run service, the fleet (runs as its assignment source and
// progress sink), the node poller (which feeds the fleet), remediation,
// and the monitor (which reads the fleet, drives remediation and kicks the
// poller after a drain).
//
// One link points back: the fleet hands its health events and batches to
// the monitor, and remediation verifies a node through the monitor's NCCL
// check, while the monitor needs both of them. That cycle is in the design
// (evidence flows in, actions flow out), so it is closed honestly in one
// place: lateMonitor, given to the fleet and to remediation at their
// construction and bound to the monitor once it is built, in New, before
// anything runs. Nothing reaches it earlier: the fleet calls it only while
// serving agents and remediation only from the monitor's own Run.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sopilot/sopilot/internal/api"
	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmcli"
	"github.com/sopilot/sopilot/internal/scheduler/slurmrest"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/version"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// Config is everything the controller process is built from. It holds
// plain values; parsing and validating flags is cmd/controller's job.
type Config struct {
	// GRPCAddr is where the gRPC API listens (host:port; port 0 picks one,
	// see Controller.GRPCAddr).
	GRPCAddr string
	// MetricsAddr is where /metrics and /healthz are served; empty
	// disables the HTTP server.
	MetricsAddr string
	// DBPath is the bbolt file of the run history; it and its directory
	// are created if missing.
	DBPath string

	// Scheduler is how Slurm is reached: SchedulerCLI or SchedulerREST,
	// configured by SlurmCLI or SlurmREST. Backend, when set, is used
	// instead (benchmarks that run without Slurm).
	Scheduler string
	SlurmCLI  slurmcli.Config
	SlurmREST slurmrest.Config
	Backend   scheduler.Backend

	// Runs tunes the run service (poll interval, defaults, limits).
	Runs controller.Config
	// Fleet tunes agent ingest (silence, commit interval, limits).
	Fleet fleet.Options
	// NodePollInterval is how often Slurm's node states are read (default
	// 10 s); only backends that implement scheduler.NodeBackend are polled.
	NodePollInterval time.Duration
	// Monitor tunes health judgement (thresholds, windows, checks).
	Monitor monitor.Config
	// NoMonitor leaves the health monitor out: no verdicts, incidents or
	// remediation, and NodeService answers only reads. For measuring what
	// the monitor costs (hack/ingestbench -monitor=false); the controller
	// always runs one.
	NoMonitor bool
	// RemediationOff builds no remediation engine: nothing is drained,
	// automatically or by an operator. Otherwise Remediation is the
	// engine's policy (DryRun included); its Metrics are set here.
	RemediationOff bool
	Remediation    remediation.Config

	// Security is the API's transport and authentication.
	Security Security
	// ShutdownGrace is how long Run's shutdown waits for open calls before
	// closing them (default 10 s).
	ShutdownGrace time.Duration
	// Version is this build: logged at start, exported as
	// sopilot_build_info and shown by /healthz and /readyz.
	Version version.Info
}

// Scheduler kinds.
const (
	SchedulerCLI  = "cli"
	SchedulerREST = "rest"
)

// ConfigError is a setting New cannot use (a bad slurmrestd URL, a
// remediation policy out of range, a TLS file that does not load). The
// command reports it as a usage error.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configError(format string, a ...any) error {
	return &ConfigError{Err: fmt.Errorf(format, a...)}
}

// Controller is one assembled controller process. Build it with New, then
// call Run once; Close releases a Controller that is never run.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	backend scheduler.Backend
	store   *store.Store
	metrics *metrics.Controller
	runs    *controller.Service
	ready   *controller.Readiness
	fleet   *fleet.Fleet
	monitor *monitor.Monitor // nil with NoMonitor
	poller  *nodePoller      // nil when the backend cannot read nodes
	grpc    *grpc.Server
	health  *health.Server
	grpcLis net.Listener
	httpLis net.Listener // nil without MetricsAddr

	closeOnce sync.Once
	closeErr  error
}

// New builds every part of the controller and binds its listeners; nothing
// runs until Run.
func New(cfg Config, logger *slog.Logger) (_ *Controller, err error) {
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.NodePollInterval <= 0 {
		cfg.NodePollInterval = 10 * time.Second
	}
	c := &Controller{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if c.backend, err = newBackend(cfg, logger); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DBPath), 0o750); err != nil {
		return nil, fmt.Errorf("create directory for the run history: %w", err)
	}
	if c.store, err = store.Open(cfg.DBPath, store.Options{Timeout: 5 * time.Second}); err != nil {
		return nil, fmt.Errorf("open run history %s: %w", cfg.DBPath, err)
	}
	// The authorizer before the rest: in insecure mode it says so loudly,
	// before anything else is logged. It reads runs' owners from the
	// history for the ownership rule of methods that write runs.
	secOpts, err := cfg.Security.serverOptions(logger, api.RunOwners(c.store, logger))
	if err != nil {
		return nil, err
	}

	c.metrics = metrics.NewController()
	reg := c.metrics.Registry
	if err := registerBuildInfo(reg, cfg.Version); err != nil {
		return nil, err
	}
	if c.ready, err = controller.NewReadiness(controller.ProberFor(c.backend), controller.ReadinessConfig{
		Interval: cfg.Runs.PollInterval, Timeout: slurmTimeout(cfg), Describe: describeBackend(c.backend), Versions: slurmVersions(c.backend),
	}, logger, reg); err != nil {
		return nil, err
	}
	usage := fleet.NewUsage()
	runsCfg := cfg.Runs
	runsCfg.Usage = usage
	c.runs = controller.New(runsCfg, c.store, c.backend, logger, c.metrics)
	c.runs.SetReadiness(c.ready)

	// late is the monitor as the fleet and remediation reach it: both are
	// built before it (see the package doc).
	late := &lateMonitor{}
	fopts := cfg.Fleet
	if fopts.FinalCommitTimeout <= 0 {
		// Half the grace: the rest is for the servers and the store.
		fopts.FinalCommitTimeout = cfg.ShutdownGrace / 2
	}
	fopts.Assignments, fopts.Progress, fopts.Usage = c.runs, c.runs, usage
	if !cfg.NoMonitor {
		fopts.Events, fopts.Observer, fopts.Replacements = late, late, late
	}
	if c.fleet, err = fleet.New(c.store, logger, fleet.NewMetrics(reg), fopts); err != nil {
		return nil, err
	}
	if err = reg.Register(c.fleet.NodeInfo()); err != nil {
		return nil, fmt.Errorf("register sopilot_node_info: %w", err)
	}
	mcfg := cfg.Monitor
	nodes, canReadNodes := c.backend.(scheduler.NodeBackend)
	if canReadNodes {
		c.poller = newNodePoller(nodes, c.fleet, cfg.NodePollInterval, logger)
		mcfg.RefreshSlurm = c.poller.Kick
	}

	var engine *remediation.Engine
	if !cfg.NoMonitor && !cfg.RemediationOff && canReadNodes {
		rcfg := cfg.Remediation
		if rcfg.Metrics, err = remediation.NewMetrics(reg); err != nil {
			return nil, err
		}
		if engine, err = remediation.New(rcfg, nodes, late, time.Now); err != nil {
			return nil, configError("remediation settings: %w", err)
		}
	}
	if !cfg.NoMonitor {
		if c.monitor, err = monitor.New(mcfg, c.fleet, c.store, engine, c.runs, logger, monitor.NewMetrics(reg)); err != nil {
			return nil, err
		}
		late.Monitor = c.monitor
		c.runs.SetRetryGate(c.monitor)
	}

	c.grpc, c.health = server.NewGRPC(logger, c.metrics, secOpts...)
	c.register(engine != nil)
	c.metrics.GRPC.InitializeMetrics(c.grpc)

	if c.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen on the gRPC address: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if c.httpLis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("listen on the metrics address: %w", err)
		}
	}
	return c, nil
}

// lateMonitor is the controller's one late-bound link. The monitor reads
// the fleet and drives remediation, so it is built after both; the fleet's
// health events and batches, and remediation's verifications, reach it
// through this, bound in New before anything runs.
type lateMonitor struct{ *monitor.Monitor }

var (
	_ monitor.RunFaults     = (*controller.Service)(nil)
	_ controller.RetryGate  = (*monitor.Monitor)(nil)
	_ fleet.EventSink       = (*lateMonitor)(nil)
	_ fleet.Observer        = (*lateMonitor)(nil)
	_ fleet.ReplacementSink = (*lateMonitor)(nil)
	_ remediation.Verifier  = (*lateMonitor)(nil)
)

// register puts the API services on the gRPC server.
func (c *Controller) register(canDrain bool) {
	var ops api.NodeOps
	if c.monitor != nil {
		ops = c.monitor
		if !canDrain {
			ops = noDrains{c.monitor}
		}
	}
	apipb.RegisterRunServiceServer(c.grpc, api.NewRunServer(c.runs, c.log))
	nodes := api.NewNodeServer(c.fleet, ops, c.log)
	if c.poller != nil {
		nodes.RefreshSlurm = c.poller.Refresh
	}
	apipb.RegisterNodeServiceServer(c.grpc, nodes)
	apipb.RegisterComparisonServiceServer(c.grpc, api.NewComparisonServer(c.runs, c.log))
	agentpb.RegisterAgentServiceServer(c.grpc, api.NewAgentServer(c.fleet))
}

func newBackend(cfg Config, logger *slog.Logger) (scheduler.Backend, error) {
	if cfg.Backend != nil {
		return cfg.Backend, nil
	}
	switch cfg.Scheduler {
	case SchedulerCLI:
		return slurmcli.New(cfg.SlurmCLI, logger.With("component", "slurmcli")), nil
	case SchedulerREST:
		b, err := slurmrest.New(cfg.SlurmREST, logger.With("component", "slurmrest"))
		if err != nil {
			return nil, configError("slurmrestd settings: %w", err)
		}
		return b, nil
	}
	return nil, configError("scheduler %q: want %q or %q", cfg.Scheduler, SchedulerCLI, SchedulerREST)
}

// describeBackend names the backend for readiness: its kind and, for
// slurmrestd, the API version in use (negotiated once it has answered).
func describeBackend(b scheduler.Backend) func() string {
	return func() string {
		if v, ok := b.(interface{ APIVersion() string }); ok && v.APIVersion() != "" {
			return b.Name() + " " + v.APIVersion()
		}
		return b.Name()
	}
}

// slurmVersions names the Slurm releases the backend found at its last
// probe (the CLI backend also refuses tools that Slurm's compatibility
// window rules out).
func slurmVersions(b scheduler.Backend) func() string {
	return func() string {
		if v, ok := b.(interface{ SlurmVersions() string }); ok {
			return v.SlurmVersions()
		}
		return ""
	}
}

// slurmTimeout is the time limit of one request to Slurm, for probes.
func slurmTimeout(cfg Config) time.Duration {
	if cfg.Scheduler == SchedulerREST {
		return cfg.SlurmREST.Timeout
	}
	return cfg.SlurmCLI.Timeout
}

// ErrShutdownGrace: a part of the controller was still working when
// ShutdownGrace (and a second more) had passed since the stop began. Run
// returns without waiting for it and leaves the store open: the process
// is expected to exit, and bbolt's open transaction, if any, rolls back.
var ErrShutdownGrace = errors.New("shutdown took longer than the shutdown grace")

// shutdownSlack is what Run allows beyond ShutdownGrace before giving up
// on the parts still stopping.
const shutdownSlack = time.Second

// Run runs every long-lived part until ctx ends or one of them fails, then
// stops them all (open calls get ShutdownGrace) and releases the store and
// the listeners. Call it once. It returns within ShutdownGrace (and a
// second) of the stop, whatever the load: agent streams end at once, the
// last commit of agents' batches gets half the grace, and what is not
// committed by then was never acked (the agents resend it).
func (c *Controller) Run(ctx context.Context) (err error) {
	closeStore := true
	defer func() {
		if closeStore {
			if cerr := c.Close(); err == nil {
				err = cerr
			}
		} else {
			for _, l := range []net.Listener{c.grpcLis, c.httpLis} {
				if l != nil {
					_ = l.Close()
				}
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	if c.httpLis != nil {
		c.log.Info("metrics listening", "addr", c.httpLis.Addr().String())
		g.Go(func() error {
			srv := server.NewMetricsHTTP(c.metrics, c.readyz)
			srv.Handler = withVersionHealth(srv.Handler, c.cfg.Version)
			return server.ServeHTTP(gctx, srv, c.httpLis, c.cfg.ShutdownGrace)
		})
	}
	g.Go(func() error { return c.ready.Run(gctx) })
	g.Go(func() error { return c.runs.Run(gctx) })
	g.Go(func() error { return c.fleet.Run(gctx) })
	if c.monitor != nil {
		g.Go(func() error { return c.monitor.Run(gctx) })
	}
	if c.poller != nil {
		g.Go(func() error { return c.poller.Run(gctx) })
	}
	g.Go(func() error { return server.ServeGRPC(gctx, c.grpc, c.grpcLis, c.cfg.ShutdownGrace) })
	// The process (and the agents' stream) stays SERVING through a Slurm
	// outage, so that probes keep the controller up and agents connected;
	// the run service is SERVING only while Slurm is usable.
	c.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	c.ready.OnChange(func(st controller.BackendStatus) {
		serving := healthpb.HealthCheckResponse_NOT_SERVING
		if st.Ready() {
			serving = healthpb.HealthCheckResponse_SERVING
		}
		c.health.SetServingStatus(apipb.RunService_ServiceDesc.ServiceName, serving)
	})
	memLimit := "none"
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		memLimit = fmt.Sprintf("%d MiB", l>>20)
	}
	c.log.Info("controller ready", "version", c.cfg.Version.String(), "grpc_addr", c.GRPCAddr().String(), "scheduler", c.backend.Name(), "db", c.cfg.DBPath,
		"memory_limit", memLimit)
	waited := make(chan error, 1)
	go func() { waited <- g.Wait() }()
	select {
	case err = <-waited:
	case <-gctx.Done():
		stopping := time.Now()
		t := time.NewTimer(c.cfg.ShutdownGrace + shutdownSlack)
		defer t.Stop()
		select {
		case err = <-waited:
			c.log.Info("controller stopping", "took", time.Since(stopping).Round(time.Millisecond))
		case <-t.C:
			closeStore = false
			c.log.Error("controller parts still stopping after the shutdown grace; exiting without them", "grace", c.cfg.ShutdownGrace)
			return fmt.Errorf("%w (%s)", ErrShutdownGrace, c.cfg.ShutdownGrace)
		}
	}
	c.health.Shutdown()
	c.log.Info("controller stopped")
	return err
}

// Close releases the listeners and the store. Run does it when it
// returns; call Close only for a Controller that is never run.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for _, l := range []net.Listener{c.grpcLis, c.httpLis} {
			if l != nil {
				if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
		if c.store != nil {
			errs = append(errs, c.store.Close())
		}
		// The cli backend's prestarted sbatch, if one is waiting, exits
		// without a job.
		if cl, ok := c.backend.(io.Closer); ok && c.cfg.Backend == nil {
			errs = append(errs, cl.Close())
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// readyz answers /readyz: whether runs can be submitted to Slurm now.
func (c *Controller) readyz() (bool, string) {
	st := c.ready.Status()
	return st.Ready(), st.String() + "\n" + c.cfg.Version.Line("controller")
}

// registerBuildInfo exports the build as the constant gauge
// sopilot_build_info{version,commit} 1, the Prometheus convention for
// build information (join it to other series with group_left).
func registerBuildInfo(reg prometheus.Registerer, v version.Info) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sopilot_build_info",
		Help: "The controller's build: version and git commit (always 1).",
	}, []string{"version", "commit"})
	g.WithLabelValues(v.Version, v.Commit).Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register sopilot_build_info: %w", err)
	}
	return nil
}

// withVersionHealth answers /healthz with "ok" and the build, so that a
// look at the probe says which controller answers; everything else goes
// to next.
func withVersionHealth(next http.Handler, v version.Info) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "ok\n%s\n", v.Line("controller"))
	})
}

// GRPCAddr is the address the gRPC API listens on.
func (c *Controller) GRPCAddr() net.Addr { return c.grpcLis.Addr() }

// MetricsAddr is the address of the metrics server, nil when there is none.
func (c *Controller) MetricsAddr() net.Addr {
	if c.httpLis == nil {
		return nil
	}
	return c.httpLis.Addr()
}

// Registry holds every metric the controller exports.
func (c *Controller) Registry() *prometheus.Registry { return c.metrics.Registry }
