package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/agent"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/internal/agent/nvmlsim"
	agentsim "github.com/sopilot/sopilot/internal/agent/sim"
	"github.com/sopilot/sopilot/internal/agent/uplink"
)

// runRealAgents runs o.agents real node agents (simulated NVML with 8 GPUs,
// a simulated InfiniBand tree of 8 ports, the host's /proc) against an
// in-process controller, each over its own connection, as cmd/node-agent
// builds them. After the warm-up it measures the process's CPU over the
// window (with a CPU profile if -cpuprofile is set) and prints it per
// agent. Many agents in one process give the profile enough samples; the
// controller's share is in the profile under internal/fleet and grpc's
// server, and is small next to the agents at this scale.
func runRealAgents(ctx context.Context, o options, stdout io.Writer, logger *slog.Logger) error {
	c, err := startController(o.listen, o.monitor, "", 0, logger)
	if err != nil {
		return err
	}
	defer c.stop()
	dir, err := os.MkdirTemp("", "ingestbench-agents-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range o.agents {
		name := fmt.Sprintf("agent-%03d", i)
		conn, err := grpc.NewClient(c.addr, append(uplink.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			return err
		}
		defer conn.Close()
		gpus := nvmlsim.New(nvmlsim.Options{GPUs: 8, NodeName: name})
		tree, err := ib.NewSimTree(filepath.Join(dir, name, "ib-sim"), 8)
		if err != nil {
			return err
		}
		a, err := agent.New(ctx, agent.Config{NodeName: name, BootID: "boot-" + name, Version: "ingestbench",
			NVML: gpus, SimulatedGPUs: true, IBRoot: tree.Root(), IB: tree.Collector(), SimulatedIB: true, Interval: o.interval, Conn: conn,
			NCCL: agentsim.NewNCCL(0), BeforeSample: &agentsim.GPUs{Sim: gpus}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer a.Close()
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
		if !sleepUntil(ctx, time.Now().Add(o.interval/time.Duration(o.agents))) {
			return ctx.Err()
		}
	}
	if !sleepUntil(ctx, time.Now().Add(o.warmup)) {
		return ctx.Err()
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	cpu0, w0 := selfCPU(), time.Now()
	if !sleepUntil(ctx, w0.Add(o.duration)) {
		return ctx.Err()
	}
	cpu := 100 * (selfCPU() - cpu0).Seconds() / time.Since(w0).Seconds()
	_, rss, _ := procStat(os.Getpid())
	fmt.Fprintf(stdout, "%d real agents (8 simulated GPUs, 8 simulated IB ports, %s interval) and their controller in one process: %.2f%% of a core in all, %.3f%% per agent; RSS %.0f MiB\n",
		o.agents, o.interval, cpu, cpu/float64(o.agents), float64(rss)/1024)
	return nil
}
