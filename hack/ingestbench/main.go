package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/controlplane"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	role       string
	agents     int
	conns      int
	duration   time.Duration
	warmup     time.Duration
	ramp       time.Duration
	grace      time.Duration
	interval   time.Duration
	listen     string
	connect    string
	addrFile   string
	serverPID  int
	cpuprofile string
	memprofile string
	header     bool
	ibCounters bool
	monitor    bool
	tlsDir     string
	restart    bool
	overload   time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.role, "role", "all", `"all" (controller and agents here), "server", "agents" (against -connect) or "agent" (real node agents, for profiling)`)
	fs.IntVar(&o.agents, "agents", 1000, "number of agents")
	fs.IntVar(&o.conns, "conns", 0, "gRPC connections the agents share (default: one per agent)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measurement window")
	fs.DurationVar(&o.warmup, "warmup", 15*time.Second, "time before the window (agents connect during -ramp of it)")
	fs.DurationVar(&o.ramp, "ramp", 5*time.Second, "agents start spread over this long")
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "after the window, how long acks of its batches are still awaited")
	fs.DurationVar(&o.interval, "interval", time.Second, "each agent's batch interval")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "controller address (-role server and all)")
	fs.StringVar(&o.connect, "connect", "", "controller address (-role agents)")
	fs.StringVar(&o.addrFile, "addr-file", "", "-role server writes its address here once listening")
	fs.IntVar(&o.serverPID, "server-pid", 0, "-role agents: the controller's pid, for its CPU, memory and profile")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the window here (of the controller with -role server)")
	fs.StringVar(&o.memprofile, "memprofile", "", "-role server: write a heap profile here at the end of the window (after a GC, so it shows what is live)")
	fs.BoolVar(&o.header, "header", false, "print the table header before the row")
	fs.BoolVar(&o.monitor, "monitor", true, "run the health monitor, as the controller does (every batch's samples kept for the rules, nodes judged every 5 s; no Slurm, so no remediation); false measures what it costs")
	fs.StringVar(&o.tlsDir, "tls-dir", "", "mTLS as in production: -role server/all writes a test CA, its certificate and a token file here and requires TLS; -role agents/all issues each agent its own client certificate (spiffe://sopilot/agent/<node>) from that CA. Empty: plaintext, insecure mode")
	fs.DurationVar(&o.overload, "overload-latency", 0, "the controller's overload threshold (goroutine scheduling latency p99; 0: its default, negative: overload control off, to measure capacity)")
	fs.BoolVar(&o.restart, "restart", false, "after the window, restart the controller on the same address and report how long the agents take to reconnect (-role all; -role agents with -server-pid: the server restarts its controller on SIGHUP)")
	fs.BoolVar(&o.ibCounters, "ib-counters", true, "send the 21 counters of each InfiniBand port; false measures what they cost the controller")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []string
	switch o.role {
	case "all", "server", "agent":
	case "agents":
		if o.restart && o.serverPID == 0 {
			errs = append(errs, "-restart: with -role agents, needs -server-pid")
		}
		if o.connect == "" {
			errs = append(errs, "-connect: required with -role agents")
		}
	default:
		errs = append(errs, fmt.Sprintf("-role: %q is not all, server, agents or agent", o.role))
	}
	if o.memprofile != "" && o.role != "server" {
		errs = append(errs, "-memprofile: only with -role server")
	}
	if o.agents < 1 {
		errs = append(errs, fmt.Sprintf("-agents: %d, at least 1", o.agents))
	}
	if o.conns < 0 || o.conns > o.agents {
		errs = append(errs, fmt.Sprintf("-conns: %d, between 0 and -agents", o.conns))
	}
	if o.conns == 0 {
		o.conns = o.agents
	}
	if o.tlsDir != "" && o.conns != o.agents {
		errs = append(errs, "-conns: with -tls-dir each agent has its own connection (its certificate names its node)")
	}
	if o.duration <= 0 {
		errs = append(errs, "-duration: must be positive")
	}
	if o.warmup < 0 || o.ramp < 0 || o.grace < 0 {
		errs = append(errs, "-warmup, -ramp, -grace: must not be negative")
	}
	if o.interval <= 0 {
		errs = append(errs, "-interval: must be positive")
	}
	if len(errs) > 0 {
		return o, errors.New(strings.Join(errs, "; "))
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch o.role {
	case "server":
		return runServer(ctx, o, stdout, logger)
	case "agents":
		var restart func() error
		if o.restart {
			restart = func() error { return restartServer(ctx, o.serverPID, o.connect) }
		}
		res, err := runAgents(ctx, o, o.connect, logger, restart)
		if err != nil {
			return err
		}
		res.print(stdout, o.header)
		if o.restart {
			res.printRestart(stdout)
		}
		return nil
	case "agent":
		return runRealAgents(ctx, o, stdout, logger)
	}
	c, err := startController(o.listen, o.monitor, o.tlsDir, o.overload, logger)
	if err != nil {
		return err
	}
	defer func() { c.stop() }()
	var restart func() error
	if o.restart {
		restart = func() error {
			c.stop()
			nc, err := startController(c.addr, o.monitor, o.tlsDir, o.overload, logger)
			if err != nil {
				return err
			}
			c = nc
			return nil
		}
	}
	res, err := runAgents(ctx, o, c.addr, logger, restart)
	if err != nil {
		return err
	}
	res.print(stdout, o.header)
	if o.restart {
		res.printRestart(stdout)
	}
	return nil
}

// controller is the controller as it ships (internal/controlplane), in
// insecure mode over a bbolt file in a temporary directory, with no Slurm:
// agents' batches take the production path from the gRPC server through
// the fleet to the store and the monitor.
type controller struct {
	reg    *prometheus.Registry
	addr   string
	dir    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startController(listen string, withMonitor bool, tlsDir string, overload time.Duration, logger *slog.Logger) (*controller, error) {
	dir, err := os.MkdirTemp("", "ingestbench-")
	if err != nil {
		return nil, err
	}
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		return nil, err
	}
	sec := controlplane.Security{Insecure: true}
	if tlsDir != "" {
		if err := writeServerPKI(tlsDir); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("test PKI: %w", err)
		}
		sec = controlplane.Security{
			TLSCertFile: filepath.Join(tlsDir, serverCertFile), TLSKeyFile: filepath.Join(tlsDir, serverKeyFile),
			TLSClientCAFile: filepath.Join(tlsDir, caCertFile), TokenFile: filepath.Join(tlsDir, tokenFile),
		}
	}
	c, err := controlplane.New(controlplane.Config{
		GRPCAddr:  listen,
		DBPath:    filepath.Join(dir, "controller.db"),
		Backend:   controlplane.NoSlurm{},
		Monitor:   monitor.Config{Thresholds: th},
		NoMonitor: !withMonitor,
		Fleet:     fleet.Options{OverloadSchedLatency: overload},
		Security:  sec,
		Version:   version.Get(),
	}, logger)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	bc := &controller{reg: c.Registry(), addr: c.GRPCAddr().String(), dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { bc.done <- c.Run(ctx) }()
	return bc, nil
}

func (c *controller) stop() {
	c.once.Do(func() {
		c.cancel()
		<-c.done
		_ = os.RemoveAll(c.dir)
	})
}

// runServer serves until ctx ends. SIGUSR1 starts the CPU profile and
// SIGUSR2 stops it, so that -role agents can profile its window only.
func runServer(ctx context.Context, o options, stdout io.Writer, logger *slog.Logger) error {
	c, err := startController(o.listen, o.monitor, o.tlsDir, o.overload, logger)
	if err != nil {
		return err
	}
	defer func() { c.stop() }()
	fmt.Fprintf(stdout, "controller listening on %s (pid %d)\n", c.addr, os.Getpid())
	if o.addrFile != "" {
		tmp := o.addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(c.addr+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, o.addrFile); err != nil {
			return err
		}
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
	defer signal.Stop(sig)
	var prof *os.File
	var at0 fleetStats
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			_ = prof.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-sig:
			switch s {
			case syscall.SIGUSR1:
				at0 = c.stats()
			case syscall.SIGHUP: // -role agents -restart
				c.stop()
				nc, err := startController(c.addr, o.monitor, o.tlsDir, o.overload, logger)
				if err != nil {
					return fmt.Errorf("restart: %w", err)
				}
				c = nc
				continue
			case syscall.SIGUSR2:
				fmt.Fprintln(stdout, c.stats().since(at0))
				fmt.Fprintln(stdout, memoryLine())
				if err := writeHeapProfile(o.memprofile); err != nil {
					return err
				}
			}
			if o.cpuprofile == "" {
				continue
			}
			switch {
			case s == syscall.SIGUSR1 && prof == nil:
				if prof, err = os.Create(o.cpuprofile); err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(prof); err != nil {
					return err
				}
			case s == syscall.SIGUSR2 && prof != nil:
				pprof.StopCPUProfile()
				if err := prof.Close(); err != nil {
					return err
				}
				prof = nil
			}
		}
	}
}

// fleetStats are the fleet's commit and ack counters at one moment.
type fleetStats struct {
	at               time.Time
	commits          uint64
	commitSeconds    float64
	acks             uint64
	ackSeconds       float64
	batches          float64
	commitsOver100ms uint64 // commits that took more than the commit interval
}

func (c *controller) stats() fleetStats {
	s := fleetStats{at: time.Now()}
	mfs, err := c.reg.Gather()
	if err != nil {
		return s
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "sopilot_agent_commit_duration_seconds":
				h := m.GetHistogram()
				s.commits, s.commitSeconds = h.GetSampleCount(), h.GetSampleSum()
				for _, b := range h.GetBucket() {
					if b.GetUpperBound() == 0.1 {
						s.commitsOver100ms = h.GetSampleCount() - b.GetCumulativeCount()
					}
				}
			case "sopilot_agent_ack_latency_seconds":
				h := m.GetHistogram()
				s.acks, s.ackSeconds = h.GetSampleCount(), h.GetSampleSum()
			case "sopilot_agent_batches_total":
				s.batches += m.GetCounter().GetValue()
			}
		}
	}
	return s
}

// since describes the window from a to s.
func (s fleetStats) since(a fleetStats) string {
	commits := s.commits - a.commits
	if commits == 0 {
		return "fleet: no commits in the window"
	}
	sec := s.at.Sub(a.at).Seconds()
	return fmt.Sprintf("fleet: %.1f commits/s, %.0f batches/commit, commit mean %.1f ms (busy %.0f%% of the window, %d over 100 ms), server-side ack mean %.0f ms",
		float64(commits)/sec, (s.batches-a.batches)/float64(commits), 1000*(s.commitSeconds-a.commitSeconds)/float64(commits),
		100*(s.commitSeconds-a.commitSeconds)/sec, s.commitsOver100ms-a.commitsOver100ms,
		1000*(s.ackSeconds-a.ackSeconds)/float64(max(s.acks-a.acks, 1)))
}

// writeHeapProfile writes the live heap after a collection to path, then
// the goroutines, counted by where they wait (each agent's stream holds
// several, and their stacks are a large share of the memory), to path's
// .goroutines.txt; an empty path writes nothing.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	write := func(path string, p *pprof.Profile, debug int) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := p.WriteTo(f, debug); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	// The heap first: the agents leave a few seconds after the window.
	runtime.GC()
	runtime.GC() // a second cycle empties sync.Pools' victim caches
	if err := write(path, pprof.Lookup("heap"), 0); err != nil {
		return err
	}
	return write(strings.TrimSuffix(path, ".heap")+".goroutines.txt", pprof.Lookup("goroutine"), 1)
}

// memoryLine says where the process's memory is, from the runtime's view.
func memoryLine() string {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	const mib = 1 << 20
	return fmt.Sprintf("memory: heap in use %d MiB (target %d MiB), goroutine stacks %d MiB, %d goroutines, runtime total %d MiB, released to the OS %d MiB",
		m.HeapInuse/mib, m.NextGC/mib, m.StackInuse/mib, runtime.NumGoroutine(), m.Sys/mib, m.HeapReleased/mib)
}

// restartServer has the -role server process at pid restart its
// controller (SIGHUP) and returns once addr refused a connection (the old
// controller stopped) and then accepted one (the new one listens).
func restartServer(ctx context.Context, pid int, addr string) error {
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for stopped := false; ; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the controller at %s did not stop and start again within 30 s", addr)
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			if stopped {
				return nil
			}
		} else {
			stopped = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
