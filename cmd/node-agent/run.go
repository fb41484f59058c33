package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/agent"
	"github.com/sopilot/sopilot/internal/agent/attrib"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/internal/agent/nvmlsim"
	"github.com/sopilot/sopilot/internal/agent/sim"
	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/config"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/nccl"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/version"
)

const summary = `
node-agent - sopilot's agent for one GPU worker.

Samples every GPU through NVML (utilisation, memory, temperatures, power,
energy, clocks and throttling, ECC, row remapping, PCIe and NVLink errors,
processes), receives XID events from NVML's event set, reads InfiniBand
ports from sysfs, tails the progress files of the runs whose rank 0 is here,
and streams it all to the controller, buffering while it is unreachable.
Prometheus metrics and, in simulated modes, fault injection are served on
--admin-addr (keep it on localhost).

Examples:
  # A GPU node in Kubernetes: TLS, and the pod's projected service account
  # token (the controller reviews it and binds the agent to its node):
  node-agent --controller sopilot-controller:50051 --node-name "$K8S_NODE_NAME" \
             --token-file /var/run/secrets/sopilot/token --tls-ca-file ca.crt
  # A host outside Kubernetes (mutual TLS with a client certificate):
  node-agent --controller sopilot-controller:50051 --node-name "$(hostname -s)" \
             --tls-cert-file agent.crt --tls-key-file agent.key --tls-ca-file ca.crt
  # A machine without GPUs (demo, CI): simulated GPUs and IB, labelled so:
  node-agent --insecure --nvml sim --ib sim --node-name worker-0 --admin-addr 127.0.0.1:9480
  # Inject an XID 79 on GPU 3 of that simulated node:
  curl -XPOST 127.0.0.1:9480/sim/gpu/faults -d '{"gpu":3,"kind":"xid","code":79}'
	if len(args) > 0 && args[0] == "wait-file" {
		return runWaitFile(ctx, args[1:], getenv, stderr)
	}
	if version.Requested(args) {
		_, err := fmt.Fprintln(stdout, version.Get().Line("node-agent"))
		return err
`

type usageError struct{ error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

type options struct {
	controller, nodeName, nvmlMode, ibMode string
	sysfsRoot, procRoot, stateDir          string
	gpuJobDir                              string
	adminAddr, bootIDFile, platform        string
	ncclPath, ncclMode, logLevel           string
	simGPUs                                int
	simModel                               string
	simFaults                              []string
	simNCCLPeak                            float64
	interval                               time.Duration
	maxTelemetryBatches                    int
	insecure                               bool
	tlsCert, tlsKey, tlsCA, serverName     string
	tokenFile                              string
}

type stringList struct{ v *[]string }

func (s stringList) String() string {
	if s.v == nil {
		return ""
	}
	return strings.Join(*s.v, ",")
}
func (s stringList) Set(v string) error { *s.v = append(*s.v, v); return nil }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	host, _ := os.Hostname()
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.controller, "controller", "127.0.0.1:50051", "controller gRPC address (host:port)")
	fs.StringVar(&o.nodeName, "node-name", host, "the machine this agent runs on: the Kubernetes node name (spec.nodeName) on Kubernetes, the host's Slurm node name on a plain Slurm host; the controller maps it to Slurm nodes through their instance_id")
	fs.StringVar(&o.nvmlMode, "nvml", "real", `"real" (libnvidia-ml) or "sim" (simulated GPUs, labelled simulated everywhere)`)
	fs.IntVar(&o.simGPUs, "sim-gpus", 8, "number of simulated GPUs (--nvml=sim)")
	fs.StringVar(&o.simModel, "sim-model", "", `simulated GPU model (default "NVIDIA H200 (simulated)")`)
	fs.Var(stringList{&o.simFaults}, "sim-fault", `fault to inject at start (--nvml=sim), repeatable: "xid:79@gpu3", "gpu_lost@gpu5", "ecc:2@gpu0", "thermal@gpu1", "row_remap_failure@gpu2", "power@gpu4"`)
	fs.StringVar(&o.ibMode, "ib", "sysfs", `"sysfs" (read --sysfs-root), "sim" (a simulated tree of 8 NDR ports under --state-dir) or "none"`)
	fs.StringVar(&o.sysfsRoot, "sysfs-root", "/sys", "sysfs root for InfiniBand (tests point it at a fixture tree)")
	fs.StringVar(&o.procRoot, "proc-root", "/proc", "procfs root, for attributing GPU processes to Slurm jobs")
	fs.StringVar(&o.gpuJobDir, "gpu-job-dir", "", "directory of Soperator's GPU→job files (one per GPU index, holding the job id; Soperator writes "+attrib.DefaultGPUJobDir+"): the first source of a GPU's job, before --proc-root; empty: off")
	fs.StringVar(&o.stateDir, "state-dir", "", "where simulated state lives (default: a temporary directory)")
	fs.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:9478", "HTTP address for /metrics, /healthz and the /sim/ fault endpoints; empty disables it")
	fs.StringVar(&o.bootIDFile, "boot-id-file", "/proc/sys/kernel/random/boot_id", "file holding this boot's id")
	fs.StringVar(&o.platform, "platform", "h100", "platform whose NCCL check message size is used when the controller does not say: h100 or h200")
	fs.StringVar(&o.ncclMode, "nccl", "real", `"real" (run --nccl-tests) or "sim" (simulated all_reduce_perf output)`)
	fs.StringVar(&o.ncclPath, "nccl-tests", nccl.DefaultPath, "path of nccl-tests' all_reduce_perf")
	fs.Float64Var(&o.simNCCLPeak, "sim-nccl-busbw", 480, "bus bandwidth (GB/s) of the simulated NCCL check")
	fs.DurationVar(&o.interval, "interval", time.Second, "sampling interval")
	fs.IntVar(&o.maxTelemetryBatches, "buffer-batches", 600, "unsent telemetry batches kept while the controller is unreachable (older ones lose their samples first; health events are kept)")
	fs.BoolVar(&o.insecure, "insecure", false, "connect without TLS and without a client certificate: local development only (the controller must run --insecure too)")
	fs.StringVar(&o.tokenFile, "token-file", "", "bearer token sent to the controller instead of a client certificate: the pod's projected service account token (audience the controller's --tokenreview-audience); re-read at every connect, so the kubelet's rotation needs no restart")
	fs.StringVar(&o.tlsCert, "tls-cert-file", "", "this agent's client certificate (PEM, URI SAN spiffe://sopilot/agent/<node>); reloaded when it changes")
	fs.StringVar(&o.tlsKey, "tls-key-file", "", "the client certificate's private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca-file", "", "CA that signs the controller's certificate (PEM)")
	fs.StringVar(&o.serverName, "controller-server-name", "", "name to verify in the controller's certificate (default: the host of --controller)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = config.Usage(fs, stderr, summary)
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	var problems []error
	if o.nvmlMode != "real" && o.nvmlMode != "sim" {
		problems = append(problems, fmt.Errorf(`--nvml must be "real" or "sim", got %q`, o.nvmlMode))
	}
	if o.ibMode != "sysfs" && o.ibMode != "sim" && o.ibMode != "none" {
		problems = append(problems, fmt.Errorf(`--ib must be "sysfs", "sim" or "none", got %q`, o.ibMode))
	}
	if o.ncclMode != "real" && o.ncclMode != "sim" {
		problems = append(problems, fmt.Errorf(`--nccl must be "real" or "sim", got %q`, o.ncclMode))
	}
	if o.nodeName == "" || strings.ContainsAny(o.nodeName, " \t/") {
		problems = append(problems, fmt.Errorf("--node-name: %q is not a node name", o.nodeName))
	}
	if o.simGPUs < 1 || o.simGPUs > 64 {
		problems = append(problems, fmt.Errorf("--sim-gpus must be 1..64, got %d", o.simGPUs))
	}
	if o.interval < 100*time.Millisecond {
		problems = append(problems, fmt.Errorf("--interval must be at least 100ms, got %s", o.interval))
	}
	if len(o.simFaults) > 0 && o.nvmlMode != "sim" {
		problems = append(problems, errors.New("--sim-fault needs --nvml=sim"))
	}
	tlsFlags := o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "" || o.tokenFile != ""
	certFlags := o.tlsCert != "" || o.tlsKey != ""
	switch {
	case o.insecure && tlsFlags:
		problems = append(problems, errors.New("--insecure turns TLS off: drop it or the --tls-*/--token-file flags"))
	case o.insecure:
	case o.tokenFile != "" && certFlags:
		problems = append(problems, errors.New("give --token-file or a client certificate (--tls-cert-file, --tls-key-file), not both"))
	case o.tokenFile != "" && o.tlsCA == "":
		problems = append(problems, errors.New("--token-file needs --tls-ca-file (the CA of the controller's certificate): the token is sent only over TLS"))
	case o.tokenFile == "" && (o.tlsCert == "" || o.tlsKey == "" || o.tlsCA == ""):
		problems = append(problems, errors.New("the agent connects with TLS: give --tls-ca-file and either --token-file (in Kubernetes, the pod's service account token) or --tls-cert-file and --tls-key-file (a client certificate), or --insecure for local development"))
	}
	if _, err := health.DefaultThresholds(o.platform); err != nil {
		problems = append(problems, fmt.Errorf("--platform: %w", err))
	}
	if len(problems) > 0 {
		return nil, usageError{errors.Join(problems...)}
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "wait-file" {
		return runWaitFile(ctx, args[1:], getenv, stderr)
	}
	if version.Requested(args) {
		_, err := fmt.Fprintln(stdout, version.Get().Line("node-agent"))
		return err
	}
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})).With("node", o.nodeName)

	bootID, err := os.ReadFile(o.bootIDFile)
	if err != nil {
		return fmt.Errorf("read --boot-id-file: %w", err)
	}
	th, _ := health.DefaultThresholds(o.platform)
	cfg := agent.Config{
		NodeName: o.nodeName, BootID: strings.TrimSpace(string(bootID)), Version: version.Get().Version,
		ProcRoot: o.procRoot, GPUJobDir: o.gpuJobDir, Interval: o.interval, Logger: logger,
		Buffer:           uplink.BufferOptions{MaxTelemetryBatches: o.maxTelemetryBatches},
		NCCL:             agent.NCCLTests{Runner: nccl.Runner{Path: o.ncclPath}},
		NCCLMessageBytes: th.NCCLMessageBytes,
	}
	var node simulation
	if o.ncclMode == "sim" {
		node.nccl = sim.NewNCCL(o.simNCCLPeak)
		cfg.NCCL = node.nccl
	}
	stateDir := o.stateDir
	if stateDir == "" && (o.ibMode == "sim") {
		if stateDir, err = os.MkdirTemp("", "sopilot-agent-"); err != nil {
			return err
		}
		defer os.RemoveAll(stateDir)
	}
	if o.nvmlMode == "sim" {
		gpus := nvmlsim.New(nvmlsim.Options{GPUs: o.simGPUs, Model: o.simModel, NodeName: o.nodeName})
		node.gpus = &sim.GPUs{Sim: gpus, ProcRoot: o.procRoot, Logger: logger}
		for _, s := range o.simFaults {
			f, err := nvmlsim.ParseFault(s)
			if err != nil {
				return usageError{fmt.Errorf("--sim-fault: %w", err)}
			}
			if f.GPU >= o.simGPUs {
				return usageError{fmt.Errorf("--sim-fault %q: gpu %d out of range (--sim-gpus %d)", s, f.GPU, o.simGPUs)}
			}
			node.gpus.StartFaults = append(node.gpus.StartFaults, f)
		}
		cfg.NVML, cfg.SimulatedGPUs, cfg.BeforeSample = gpus, true, node.gpus
		logger.Warn("GPU telemetry is SIMULATED (--nvml=sim): no real GPU is read")
	} else {
		cfg.NVML = nvml.New()
	}
	switch o.ibMode {
	case "sysfs":
		cfg.IBRoot = o.sysfsRoot
	case "sim":
		tree, err := ib.NewSimTree(filepath.Join(stateDir, "ib-sim"), 8)
		if err != nil {
			return fmt.Errorf("simulated infiniband tree: %w", err)
		}
		cfg.IBRoot, cfg.IB, cfg.SimulatedIB = tree.Root(), tree.Collector(), true
		node.ib = tree
		logger.Warn("InfiniBand telemetry is SIMULATED (--ib=sim)", "tree", tree.Root())
	case "none":
		cfg.NoIB = true
	}
	creds := insecure.NewCredentials()
	if o.insecure {
		logger.Warn("INSECURE: connecting to the controller without TLS or a client certificate (--insecure)", "controller", o.controller)
	} else {
		serverName := o.serverName
		if serverName == "" {
			if h, _, err := net.SplitHostPort(o.controller); err == nil {
				serverName = h
			}
		}
		tc, err := tlsutil.ClientConfig(o.tlsCert, o.tlsKey, o.tlsCA, serverName)
		if err != nil {
			return usageError{fmt.Errorf("TLS: %w", err)}
		}
		creds = credentials.NewTLS(tc)
	}
	dialOpts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, uplink.DialOptions()...)
	if o.tokenFile != "" {
		token, err := uplink.NewTokenFile(o.tokenFile)
		if err != nil {
			return usageError{fmt.Errorf("--token-file: %w", err)}
		}
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(token))
	}
	conn, err := grpc.NewClient(o.controller, dialOpts...)
	if err != nil {
		return usageError{fmt.Errorf("--controller: %w", err)}
	}
	defer conn.Close()
	cfg.Conn = conn

	a, err := agent.New(ctx, cfg)
	if errors.Is(err, nvml.ERROR_LIBRARY_NOT_FOUND) || errors.Is(err, nvml.ERROR_DRIVER_NOT_LOADED) {
		return fmt.Errorf("%w: no usable NVIDIA driver here (libnvidia-ml.so); run on a GPU node (with the NVIDIA container runtime in Kubernetes), or --nvml sim for simulated GPUs", err)
	}
	if err != nil {
		return err
	}
	defer a.Close()

	g, gctx := errgroup.WithContext(ctx)
	if o.adminAddr != "" {
		lis, err := net.Listen("tcp", o.adminAddr)
		if err != nil {
			return fmt.Errorf("listen on --admin-addr: %w", err)
		}
		srv := &http.Server{Handler: adminMux(a, node), ReadHeaderTimeout: 10 * time.Second}
		logger.Info("admin endpoint listening", "addr", lis.Addr().String())
		fmt.Fprintf(stdout, "node-agent %s admin on %s\n", o.nodeName, lis.Addr())
		g.Go(func() error { return server.ServeHTTP(gctx, srv, lis, 5*time.Second) })
	}
	g.Go(func() error { return a.Run(gctx) })
	if node.gpus != nil {
		g.Go(func() error { return node.gpus.Run(gctx) }) // the start faults
	}
	return g.Wait()
}

// simulation is what --nvml, --ib and --nccl sim put beside the agent:
// each part nil when that part of the node is real.
type simulation struct {
	gpus *sim.GPUs
	ib   *ib.SimTree
	nccl *sim.NCCL
}

func adminMux(a *agent.Agent, node simulation) *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), a.Metrics())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	if node.gpus != nil {
		mux.Handle("/sim/gpu/", http.StripPrefix("/sim/gpu", node.gpus.Sim.Handler()))
	}
	if node.ib != nil {
		mux.Handle("/sim/ib", http.StripPrefix("/sim", node.ib.Handler()))
		mux.Handle("/sim/ib/", http.StripPrefix("/sim", node.ib.Handler()))
	}
	if node.nccl != nil {
		mux.HandleFunc("/sim/nccl", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Sopilot-Simulated", "true")
			w.Header().Set("Content-Type", "application/json")
			if r.Method != http.MethodPost {
				w.WriteHeader(http.StatusMethodNotAllowed)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "POST /sim/nccl?busbw=<GB/s>"})
				return
			}
			v, err := strconv.ParseFloat(r.URL.Query().Get("busbw"), 64)
			if err != nil || v <= 0 || v > 10000 {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "busbw: a bandwidth in GB/s, 0 < busbw ≤ 10000"})
				return
			}
			node.nccl.SetPeak(v)
			_ = json.NewEncoder(w).Encode(map[string]float64{"busbw": v})
		})
	}
	return mux
}
