package main

// The real binary, simulated GPUs and IB, against a fleet served over
// loopback TCP.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/fleet/fleettest"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/internal/testwait"
)

// agentBinary builds the node agent once per test process.
func agentBinary(t *testing.T) string { return testbin.Build(t, "node-agent", raceBuild) }

type recorded struct {
	component, kind string
	code            int64
}

// eventLog is the fleet's EventSink.
type eventLog struct {
	mu  sync.Mutex
	evs []recorded
}

func (l *eventLog) RecordEvents(_ context.Context, _ string, evs []telemetry.HealthEvent, _ map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.evs = append(l.evs, recorded{e.Component, e.Kind, e.Code})
	}
	return nil
}

func (l *eventLog) has(r recorded) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e == r {
			return true
		}
	}
	return false
}

type lockedBuffer = testbin.Buffer

func TestBinarySimulatedAgainstFleet(t *testing.T) {
	bin := agentBinary(t)

	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	events := &eventLog{}
	fl, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{CommitInterval: 10 * time.Millisecond, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv := fleettest.Serve(t, fl, fleettest.Options{})

	boot := filepath.Join(dir, "boot_id")
	if err := os.WriteFile(boot, []byte("9d3a61f0-1c2b-4e5f-8a7b-6c5d4e3f2a10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--insecure", "--controller", srv.Addr, "--node-name", "worker-7",
		"--nvml", "sim", "--ib", "sim", "--nccl", "sim", "--sim-fault", "xid:48@gpu2",
		"--admin-addr", "127.0.0.1:0", "--boot-id-file", boot, "--state-dir", filepath.Join(dir, "state"),
		"--proc-root", filepath.Join(dir, "proc"), "--interval", "200ms", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "SOPILOT_PLATFORM=h200")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	})

	// "node-agent worker-7 admin on 127.0.0.1:PORT"
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var admin string
	select {
	case line := <-lines:
		m := regexp.MustCompile(`^node-agent worker-7 admin on (127\.0\.0\.1:\d+)$`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first stdout line = %q", line)
		}
		admin = "http://" + m[1]
	case <-time.After(60 * time.Second):
		t.Fatal("no admin address on stdout within 60 s")
	}

	get := func(path string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	post := func(path, body string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Post(admin+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}

	// The hello and the first batches reach the fleet.
	testwait.Within(t, 20*time.Second, "agent connected with 8 GPUs and 8 ports", func() bool {
		v, ok := fl.Snapshot("worker-7")
		return ok && v.Connected && len(v.GPUs) == 8 && len(v.IBPorts) == 8
	})
	v, _ := fl.Snapshot("worker-7")
	if inv := v.Inventory; !inv.Simulated || len(inv.GPUs) != 8 || len(inv.IBPorts) != 8 || v.BootID != "9d3a61f0-1c2b-4e5f-8a7b-6c5d4e3f2a10" || v.AgentVersion != "dev" {
		t.Errorf("view: boot %q version %q inventory %v", v.BootID, v.AgentVersion, inv)
	}

	code, _, metrics := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`sopilot_agent_simulated{source="nvml"} 1`,
		`sopilot_agent_simulated{source="ib"} 1`,
		`sopilot_gpu_utilization_percent{gpu="0"} 0`,
		`sopilot_ib_port_up{device="mlx5_7",port="1"} 1`,
		`sopilot_agent_connected 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !regexp.MustCompile(`sopilot_gpu_info\{gpu="3",model="NVIDIA H200 \(simulated\)",simulated="true",uuid="GPU-51m0[^"]*"\} 1`).MatchString(metrics) {
		t.Errorf("/metrics lacks a simulated sopilot_gpu_info for gpu 3")
	}

	// --sim-fault applies once the agent listens for events.
	testwait.Within(t, 10*time.Second, "--sim-fault xid 48 at the fleet", func() bool { return events.has(recorded{"gpu2", "xid", 48}) })
	// An XID 48 is a double-bit ECC error: NVML reports that too.
	testwait.Within(t, 5*time.Second, "the XID 48's ECC event", func() bool { return events.has(recorded{"gpu2", "ecc_uncorrected", 0}) })

	// Faults over HTTP.
	code, hdr, body := post("/sim/gpu/faults", `{"gpu":3,"kind":"xid","code":79}`)
	if code != http.StatusCreated || hdr.Get("X-Sopilot-Simulated") != "true" {
		t.Fatalf("POST /sim/gpu/faults = %d %q", code, body)
	}
	testwait.Within(t, 10*time.Second, "xid 79 at the fleet", func() bool { return events.has(recorded{"gpu3", "xid", 79}) })
	code, _, body = post("/sim/gpu/faults", `{"gpu":3,"kind":"meltdown"}`)
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); code != http.StatusBadRequest || err != nil || !strings.HasPrefix(e.Error, "invalid fault: kind: ") {
		t.Errorf("bad fault = %d %q", code, body)
	}
	if code, _, body := post("/sim/ib/faults", `{"device":"mlx5_4","port":1,"kind":"port_down"}`); code != http.StatusCreated {
		t.Fatalf("POST /sim/ib/faults = %d %q", code, body)
	}
	testwait.Within(t, 10*time.Second, "port down at the fleet", func() bool {
		v, _ := fl.Snapshot("worker-7")
		for _, p := range v.IBPorts {
			if p.Device == "mlx5_4" {
				return p.State == "DOWN"
			}
		}
		return false
	})

	// The NCCL check: the agent measures and reports; the controller judges.
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	res, err := fl.RunCommand(cctx, "worker-7", "nccl_check", nil)
	if err != nil || !res.GetSuccess() || !strings.HasPrefix(res.GetOutput(), "simulated: ") {
		t.Errorf("nccl_check = %v, %v", res, err)
	}
	if code, _, body := post("/sim/nccl?busbw=400", ""); code != 200 {
		t.Fatalf("POST /sim/nccl = %d %q", code, body)
	}
	res, err = fl.RunCommand(cctx, "worker-7", "nccl_check", nil)
	if err != nil || !res.GetSuccess() || res.GetBusBandwidthGbps() > 400 || res.GetBusBandwidthGbps() <= 0 ||
		res.GetOutput() != fmt.Sprintf("simulated: busbw %.1f GB/s at 16 GiB", res.GetBusBandwidthGbps()) {
		t.Errorf("nccl_check at 400 GB/s = %v, %v", res, err)
	}

	// SIGTERM: a prompt, clean exit.
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s to exit after SIGTERM", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15 s after SIGTERM")
	}
	if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic") {
		t.Errorf("stderr:\n%s", s)
	}
	testwait.Within(t, 5*time.Second, "disconnected", func() bool { v, _ := fl.Snapshot("worker-7"); return !v.Connected })
}
