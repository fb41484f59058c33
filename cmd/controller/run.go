package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/sopilot/sopilot/internal/config"
	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/controlplane"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	runmodel "github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler/slurmcli"
	"github.com/sopilot/sopilot/internal/scheduler/slurmrest"
	"github.com/sopilot/sopilot/internal/version"
)

const summary = `
controller - sopilot's control plane for Slurm GPU clusters.

Submits runs to Slurm, tracks them to the end with one batched query per
poll, keeps their history in a bbolt file, and serves the gRPC API
(reflection on: try "grpcurl -plaintext 127.0.0.1:50051 list") and
Prometheus metrics.

The API is served over TLS; callers send "authorization: Bearer <token>"
(tokens from --token-file, or Kubernetes service-account tokens through
--tokenreview-audience), and every RPC requires a role (viewer, submitter,
operator, admin). Node agents in Kubernetes send their pod's service
account token (of an --agent-service-account), which binds them to the
Kubernetes node their pod runs on; agents elsewhere present client
certificates signed by --tls-client-ca-file, bound to the node the
certificate names. An agent may report only for its own node. --insecure
serves plaintext with no authentication, for local development only.

Examples:
  # Local development on the local cluster, Slurm command-line tools:
  controller --insecure --db /tmp/sopilot.db
  # Production in Kubernetes: TLS, user tokens, agents by service account token:
  controller --db /var/lib/sopilot/controller.db --tls-cert-file tls.crt --tls-key-file tls.key \
             --token-file tokens.csv --tokenreview-audience sopilot \
             --agent-service-account soperator/sopilot-agent
  # Agents with client certificates (hosts outside Kubernetes):
  controller ... --tls-client-ca-file agents-ca.crt
  # slurmrestd with a JWT key (mints its own tokens):
  controller ... --scheduler rest --slurmrestd-url http://127.0.0.1:6820 \
             --slurm-user root --slurm-jwt-key-file /etc/slurm/jwt_hs256.key
  # The version, commit and build date of this binary:
  controller --version
`

// usageError marks errors in the command line, which exit with status 2.
type usageError struct{ error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

type options struct {
	grpcAddr, metricsAddr, db                 string
	scheduler, slurmConf, slurmQuery          string
	sbatchPrestart                            bool
	restURL, restVersion, restUser, restToken string
	restKeyFile                               string
	pollInterval, minJobAge, shutdownGrace    time.Duration
	slurmTimeout                              time.Duration
	workDir, outputDir                        string
	maxNodes, maxGPUsPerNode                  int
	maxTimeLimit                              time.Duration
	logLevel, logFormat                       string
	agentSilence, nodePollInterval            time.Duration
	platform, thresholdsFile, remediationMode string
	remediationHandoff                        string
	maxDrainShare                             float64
	maxDrainsPerWindow                        int
	drainWindow, undrainAfter, eventWindow    time.Duration
	stallAfter, ncclCheckInterval             time.Duration
	evaluateEvery                             time.Duration
	maxQueuedEvents, maxEventsPerNode         int
	maxSequenceJump                           uint64
	security                                  securityOptions
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.grpcAddr, "grpc-addr", "127.0.0.1:50051", "address of the gRPC API (host:port)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9477", "address of the HTTP server for /metrics and /healthz; empty disables it")
	fs.StringVar(&o.db, "db", "/var/lib/sopilot/controller.db", "bbolt file holding run history (created if missing; its directory too)")
	fs.StringVar(&o.scheduler, "scheduler", "cli", `how to reach Slurm: "cli" (sbatch/squeue/scancel) or "rest" (slurmrestd)`)
	fs.StringVar(&o.slurmConf, "slurm-conf", "", "slurm.conf for the cli scheduler (sets SLURM_CONF for the Slurm tools); empty: Slurm's default")
	fs.StringVar(&o.slurmQuery, "slurm-query", "auto", `how the cli scheduler lists jobs: "json" (squeue --json: 1 slurmctld RPC per poll), "format" (squeue --Format: 2 RPCs, less CPU), or "auto" (json, falling back to format where squeue cannot print JSON)`)
	fs.BoolVar(&o.sbatchPrestart, "sbatch-prestart", true, "cli scheduler: keep one sbatch started ahead, waiting for the next job, so a submission skips sbatch's start-up (2-3 ms); it is replaced every 30 s and exits without a job when unused")
	fs.DurationVar(&o.slurmTimeout, "slurm-timeout", 30*time.Second, "time limit of one request to Slurm")
	fs.StringVar(&o.restURL, "slurmrestd-url", "", "slurmrestd address for --scheduler=rest: http://host:port or unix:///path")
	fs.StringVar(&o.restVersion, "slurmrestd-api-version", "auto", `slurmrestd OpenAPI version: "auto" (the newest that slurmrestd serves and sopilot speaks, read at start; shown in /readyz and sopilot_slurm_backend_info) or a fixed one from v0.0.38 (Slurm 22.05) to v0.0.45 (26.05)`)
	fs.StringVar(&o.restUser, "slurm-user", "", "Slurm user name for slurmrestd (X-SLURM-USER-NAME); default: the user running the controller")
	fs.StringVar(&o.restToken, "slurm-jwt", "", "a fixed slurmrestd token (from 'scontrol token'); prefer --slurm-jwt-key-file")
	fs.StringVar(&o.restKeyFile, "slurm-jwt-key-file", "", "Slurm's JWT HS256 key file; the controller mints short-lived tokens from it")
	fs.DurationVar(&o.pollInterval, "poll-interval", 5*time.Second, "how often all active runs are refreshed from Slurm (one query per poll)")
	fs.DurationVar(&o.minJobAge, "min-job-age", 300*time.Second, "Slurm's MinJobAge: how long Slurm lists finished jobs; poll-interval must be well below it")
	fs.StringVar(&o.workDir, "default-workdir", "/tmp", "working directory of runs whose spec sets none")
	fs.StringVar(&o.outputDir, "default-output-dir", "", "directory for runs' output files when the spec sets none (default: --default-workdir)")
	fs.IntVar(&o.maxNodes, "max-nodes", 1024, "largest nodes count a run may ask for")
	fs.IntVar(&o.maxGPUsPerNode, "max-gpus-per-node", 8, "largest GPUs-per-node a run may ask for")
	fs.DurationVar(&o.maxTimeLimit, "max-time-limit", 30*24*time.Hour, "longest time limit a run may ask for")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 10*time.Second, "how long shutdown waits for open calls before closing them")
	fs.DurationVar(&o.agentSilence, "agent-silence", 60*time.Second, "a node whose agent sent nothing for this long is UNKNOWN (never unhealthy for silence alone)")
	fs.DurationVar(&o.nodePollInterval, "node-poll-interval", 10*time.Second, "how often Slurm's node states are read (one query)")
	fs.StringVar(&o.platform, "platform", "h100", "default health thresholds: h100 or h200 (8-GPU nodes)")
	fs.StringVar(&o.thresholdsFile, "thresholds-file", "", "health thresholds as JSON (versioned; absent fields keep the platform's defaults); see docs/health.md")
	fs.StringVar(&o.remediationMode, "remediation", "on", `what to do about unhealthy nodes: "on" (drain in Slurm), "dry-run" (record what would be done) or "off"`)
	fs.StringVar(&o.remediationHandoff, "remediation-handoff", "none", `who takes nodes with hardware faults (XID 79, a lost GPU, a failed row remap, a down InfiniBand port): "none" (sopilot drains, verifies and resumes them itself: plain Slurm) or "soperator" (drained with Soperator's "[node_problem]" reason so that Soperator 1.22+ replaces the machine; sopilot then leaves the node alone until it is back): the right choice on Soperator with node replacement enabled`)
	fs.Float64Var(&o.maxDrainShare, "max-drain-share", 0.25, "circuit breaker: never let sopilot's drains exceed this share of the cluster's nodes")
	fs.IntVar(&o.maxDrainsPerWindow, "max-drains-per-window", 0, "circuit breaker: automatic drains allowed per --drain-window (0: 10% of the nodes, at least 1)")
	fs.DurationVar(&o.drainWindow, "drain-window", 10*time.Minute, "circuit breaker window")
	fs.DurationVar(&o.undrainAfter, "undrain-after", 2*time.Minute, "a node sopilot drained is verified and resumed once healthy this long")
	fs.DurationVar(&o.eventWindow, "health-event-window", 15*time.Minute, "how long a health event (an XID, a lost GPU) counts as evidence")
	fs.DurationVar(&o.evaluateEvery, "health-evaluate-every", 5*time.Second, "how often each node's samples are re-judged (health events are judged at once)")
	fs.DurationVar(&o.stallAfter, "stall-after", 10*time.Minute, "a running run whose progress step has not moved for this long is flagged as a suspected hang (negative disables)")
	fs.DurationVar(&o.ncclCheckInterval, "nccl-check-interval", 24*time.Hour, "run the NCCL check on nodes that are IDLE in Slurm this often (0: only on demand and before undrains)")
	fs.IntVar(&o.maxQueuedEvents, "max-queued-events-per-node", 20_000, "health events of one node waiting to be made durable; beyond it that node's agent waits (a storm slows only its own stream)")
	fs.IntVar(&o.maxEventsPerNode, "max-events-per-node", 10_000, "health events each node keeps as evidence (the newest); incidents count every event")
	fs.Uint64Var(&o.maxSequenceJump, "max-sequence-jump", 1<<20, "how far past a node's last batch sequence an agent may number one; further ends its stream")
	o.security.register(fs)
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.Usage = config.Usage(fs, stderr, summary)
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if o.outputDir == "" {
		o.outputDir = o.workDir
	}
	var problems []error
	if o.scheduler != "cli" && o.scheduler != "rest" {
		problems = append(problems, fmt.Errorf(`--scheduler must be "cli" or "rest", got %q`, o.scheduler))
	}
	if o.slurmQuery != "auto" && o.slurmQuery != "json" && o.slurmQuery != "format" {
		problems = append(problems, fmt.Errorf(`--slurm-query must be "auto", "json" or "format", got %q`, o.slurmQuery))
	}
	if o.scheduler == "rest" && o.restURL == "" {
		problems = append(problems, errors.New("--scheduler=rest needs --slurmrestd-url"))
	}
	if o.maxQueuedEvents < 1 || o.maxEventsPerNode < 1 || o.maxSequenceJump < 1 {
		problems = append(problems, fmt.Errorf("--max-queued-events-per-node (%d), --max-events-per-node (%d) and --max-sequence-jump (%d) must be at least 1",
			o.maxQueuedEvents, o.maxEventsPerNode, o.maxSequenceJump))
	}
	if o.pollInterval <= 0 || o.pollInterval > o.minJobAge/4 {
		problems = append(problems, fmt.Errorf("--poll-interval must be positive and at most a quarter of --min-job-age (%s), or finished jobs may be forgotten before they are seen; got %s", o.minJobAge, o.pollInterval))
	}
	for name, dir := range map[string]string{"--default-workdir": o.workDir, "--default-output-dir": o.outputDir} {
		if !filepath.IsAbs(dir) {
			problems = append(problems, fmt.Errorf("%s must be an absolute path, got %q", name, dir))
		}
	}
	if o.remediationMode != "on" && o.remediationMode != "dry-run" && o.remediationMode != "off" {
		problems = append(problems, fmt.Errorf(`--remediation must be "on", "dry-run" or "off", got %q`, o.remediationMode))
	}
	if _, err := remediation.ParseHandoff(o.remediationHandoff); err != nil {
		problems = append(problems, fmt.Errorf(`--remediation-handoff must be "none" or "soperator", got %q`, o.remediationHandoff))
	}
	if o.maxDrainShare <= 0 || o.maxDrainShare > 1 {
		problems = append(problems, fmt.Errorf("--max-drain-share must be in (0, 1], got %v", o.maxDrainShare))
	}
	if _, err := thresholds(o); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, o.security.validate()...)
	if len(problems) > 0 {
		return nil, usageError{errors.Join(problems...)}
	}
	return o, nil
}

// thresholds loads --thresholds-file over the --platform defaults.
func thresholds(o *options) (health.Thresholds, error) {
	if o.thresholdsFile == "" {
		t, err := health.DefaultThresholds(o.platform)
		if err != nil {
			return t, fmt.Errorf("--platform: %w", err)
		}
		return t, nil
	}
	data, err := os.ReadFile(o.thresholdsFile)
	if err != nil {
		return health.Thresholds{}, fmt.Errorf("--thresholds-file: %w", err)
	}
	t, err := health.ParseThresholds(data)
	if err != nil {
		return t, fmt.Errorf("--thresholds-file %s: %w", o.thresholdsFile, err)
	}
	return t, nil
}

func newLogger(o *options, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, usageError{fmt.Errorf(`--log-format must be "text" or "json", got %q`, o.logFormat)}
}

// assemblyConfig turns the parsed flags into the assembly's Config.
func assemblyConfig(o *options) (controlplane.Config, error) {
	th, err := thresholds(o)
	if err != nil {
		return controlplane.Config{}, usageError{err}
	}
	handoff, err := remediation.ParseHandoff(o.remediationHandoff)
	if err != nil {
		return controlplane.Config{}, usageError{err}
	}
	limits := runmodel.DefaultLimits()
	limits.MaxNodes, limits.MaxGPUsPerNode, limits.MaxTimeLimit = o.maxNodes, o.maxGPUsPerNode, o.maxTimeLimit
	restUser := o.restUser
	if o.scheduler == controlplane.SchedulerREST && restUser == "" {
		if u, err := user.Current(); err == nil {
			restUser = u.Username
		}
	}
	return controlplane.Config{
		GRPCAddr:    o.grpcAddr,
		MetricsAddr: o.metricsAddr,
		DBPath:      o.db,
		Scheduler:   o.scheduler,
		SlurmCLI:    slurmcli.Config{SlurmConf: o.slurmConf, Timeout: o.slurmTimeout, Query: o.slurmQuery, Prestart: o.sbatchPrestart},
		SlurmREST: slurmrest.Config{
			BaseURL:    o.restURL,
			APIVersion: o.restVersion,
			UserName:   restUser,
			Token:      o.restToken,
			JWTKeyFile: o.restKeyFile,
			Timeout:    o.slurmTimeout,
		},
		Runs: controller.Config{
			PollInterval:     o.pollInterval,
			MinJobAge:        o.minJobAge,
			DefaultWorkDir:   o.workDir,
			DefaultOutputDir: o.outputDir,
			Limits:           limits,
		},
		Fleet:            fleet.Options{Silence: o.agentSilence, MaxQueuedEventsPerNode: o.maxQueuedEvents, MaxSequenceJump: o.maxSequenceJump},
		NodePollInterval: o.nodePollInterval,
		Monitor: monitor.Config{
			Thresholds: th, EventWindow: o.eventWindow, StallAfter: o.stallAfter, CheckInterval: o.ncclCheckInterval, EvaluateEvery: o.evaluateEvery,
			MaxEventsPerNode: o.maxEventsPerNode,
		},
		RemediationOff: o.remediationMode == "off",
		Remediation: remediation.Config{
			DryRun: o.remediationMode == "dry-run", Handoff: handoff, MaxDrainShare: o.maxDrainShare, MaxDrainsPerWindow: o.maxDrainsPerWindow,
			Window: o.drainWindow, ClearFor: o.undrainAfter,
		},
		Security:      o.security.config(),
		ShutdownGrace: o.shutdownGrace,
		Version:       version.Get(),
	}, nil
}

// run is the whole controller; main only adds signals and the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if version.Requested(args) {
		_, err := fmt.Fprintln(stdout, version.Get().Line("controller"))
		return err
	}
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger, err := newLogger(o, stderr)
	if err != nil {
		return err
	}
	cfg, err := assemblyConfig(o)
	if err != nil {
		return err
	}
	cfg.Runs.Failpoint = failpoint(getenv(FailpointEnv), logger)
	c, err := controlplane.New(cfg, logger)
	var cerr *controlplane.ConfigError
	if errors.As(err, &cerr) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "controller listening on %s\n", c.GRPCAddr())
	return c.Run(ctx)
}

// FailpointEnv names a retry step (controller.FailpointRetrySubmitted) at
// which the controller kills itself with SIGKILL: the crash-safety tests
// of retries kill the real binary there. Unset in production; the name is
// deliberately not a flag, so no configuration file or chart can set it.
const FailpointEnv = "SOPILOT_TEST_FAILPOINT"

func failpoint(name string, logger *slog.Logger) func(string) {
	if name == "" {
		return nil
	}
	logger.Warn("test failpoint armed: the controller will kill itself at this step", "failpoint", name)
	return func(at string) {
		if at != name {
			return
		}
		logger.Warn("failpoint reached; killing the controller", "failpoint", at)
		p, err := os.FindProcess(os.Getpid())
		if err == nil {
			err = p.Signal(os.Kill)
		}
		if err != nil {
			logger.Error("failpoint: kill", "err", err)
			os.Exit(137)
		}
		select {} // the signal takes the process down
	}
}
