package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// BenchmarkExclusiveFaultToDrain measures the remediation latency:
// an XID 79 injected on a (simulated) agent until Slurm itself reports the
// node DRAIN, read with `scontrol -o show node` every 5 ms. Each round
// clears the fault, waits for the verdict to turn HEALTHY and undrains the
// node through the API before the next injection. 50 rounds by default
// (-benchtime=Nx sets the count). Run it with the cluster to itself:
//
//	SOPILOT_SLURM_EXCLUSIVE=1 go test -run '^$' -bench ExclusiveFaultToDrain -benchtime 50x ./cmd/controller
//
// Under ingest load: SOPILOT_DRAIN_LOAD_AGENTS=10000 also runs that many
// simulated agents at 1 Hz (hack/ingestbench -role agents, pinned to CPU 1
// when taskset is there) against the same controller, every agent over
// mTLS with its own client certificate as in production, from 30 s before
// the first injection to the end; run the test itself under taskset -c 0
// so that the controller has the other core:
//
//	SOPILOT_SLURM_EXCLUSIVE=1 SOPILOT_DRAIN_LOAD_AGENTS=10000 taskset -c 0 go test -run '^$' -bench ExclusiveFaultToDrain -benchtime 50x -timeout 30m ./cmd/controller
func BenchmarkExclusiveFaultToDrain(b *testing.B) {
	env := slurmtest.RequireExclusive(b)
	flags := []string{"--slurm-conf", env.SlurmConf,
		"--health-event-window", "1s", "--health-evaluate-every", "200ms", "--undrain-after", "1h",
		"--max-drain-share", "1", "--max-drains-per-window", "100000", "--drain-window", "1s", "--node-poll-interval", "1s", "--log-level", "info"}
	const node = "worker-0"
	var (
		nodes apipb.NodeServiceClient
		admin string
	)
	if n := os.Getenv("SOPILOT_DRAIN_LOAD_AGENTS"); n != "" {
		// Under load, as in production: mTLS, a client certificate per
		// agent, the two real agents included.
		sec := startSecureController(b, env, flags...)
		nodes = apipb.NewNodeServiceClient(sec.conn)
		admin = sec.agent(b, env.Machine(node))
		sec.agent(b, env.Machine("worker-1"))
		startIngestLoad(b, sec.addr, n, "-tls-dir", sec.pki)
	} else {
		p := startController(b, env, filepath.Join(b.TempDir(), "c.db"), flags...)
		nodes = apipb.NewNodeServiceClient(p.conn)
		admin = startAgent(b, p.addr, env.Machine(node))
		startAgent(b, p.addr, env.Machine("worker-1"))
	}
	ctx := context.Background()
	b.Cleanup(func() {
		cmd := exec.Command("scontrol", "update", "NodeName="+node, "State=RESUME")
		cmd.Env = env.Environ()
		_ = cmd.Run()
	})
	slurmDrained := func() bool {
		cmd := exec.Command("scontrol", "-o", "show", "node", node)
		cmd.Env = env.Environ()
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("scontrol show node: %v", err)
		}
		for _, f := range strings.Fields(string(out)) {
			if s, ok := strings.CutPrefix(f, "State="); ok {
				return strings.Contains(s, "DRAIN")
			}
		}
		return false
	}
	healthy := func() bool {
		r, err := nodes.GetNode(ctx, &apipb.GetNodeRequest{Name: node})
		return err == nil && r.GetNode().GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY && r.GetNode().GetAgentConnected()
	}
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		wait("a healthy, undrained node", func() bool { return healthy() && !slurmDrained() })
		b.StartTimer()
		start := time.Now()
		inject(b, admin, `{"gpu":`+string(rune('0'+i%8))+`,"kind":"xid","code":79}`)
		for !slurmDrained() {
			if time.Since(start) > 30*time.Second {
				b.Fatal("no drain within 30 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		inject(b, admin, "")
		wait("the evidence to clear", healthy)
		// The incident closes on a monitor pass after the verdict turns
		// healthy; until then UndrainNode refuses (FailedPrecondition).
		var undrainErr error
		wait("UndrainNode to succeed", func() bool {
			_, undrainErr = nodes.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: node, SkipVerification: true})
			return undrainErr == nil || status.Code(undrainErr) != codes.FailedPrecondition
		})
		if undrainErr != nil {
			b.Fatalf("UndrainNode: %v", undrainErr)
		}
	}
	b.StopTimer()
	if os.Getenv("SOPILOT_DRAIN_LOAD_AGENTS") != "" {
		b.Logf("agents connected at the end: %d", connectedAgents(b, nodes))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	b.Logf("fault → Slurm DRAIN over %d injections: p50 %v  p90 %v  p99 %v  max %v", len(lat),
		q(0.50).Round(time.Millisecond), q(0.90).Round(time.Millisecond), q(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// startIngestLoad runs n simulated agents at 1 Hz against addr from a
// separate process (hack/ingestbench -role agents, on CPU 1 when taskset
// is there) and returns once they have been connected for a while.
func startIngestLoad(b *testing.B, addr, n string, extra ...string) {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "ingestbench")
	build := exec.Command("go", "build", "-o", bin, "./hack/ingestbench")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./hack/ingestbench: %v\n%s", err, out)
	}
	const warmup = 30 * time.Second
	args := append([]string{bin, "-role", "agents", "-connect", addr, "-agents", n, "-ramp", "10s", "-warmup", warmup.String(), "-duration", "24h"}, extra...)
	if ts, err := exec.LookPath("taskset"); err == nil {
		args = append([]string{ts, "-c", "1"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr testbin.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the ingest load: %v", err)
	}
	ended := make(chan error, 1)
	go func() { ended <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-ended
		if b.Failed() {
			b.Logf("ingest load's stderr:\n%s", stderr.String())
		}
	})
	b.Logf("ingest load: %s agents at 1 Hz; waiting %v for them to connect", n, warmup)
	select {
	case err := <-ended:
		ended <- err
		b.Fatalf("the ingest load ended early (%v): %s", err, stderr.String())
	case <-time.After(warmup):
	}
}

// secureController is a controller serving mTLS, with the test CA that
// signed its certificate and issues its agents'.
type secureController struct {
	addr string
	conn *grpc.ClientConn // an admin's, over TLS with a bearer token
	ca   *tlstest.CA
	// pki holds ca.crt and ca.key, the form hack/ingestbench -tls-dir
	// issues its agents' certificates from.
	pki string
}

func startSecureController(b *testing.B, env slurmtest.Env, extra ...string) *secureController {
	b.Helper()
	ca := tlstest.NewCA(b)
	srv := ca.Server(b, "localhost", "127.0.0.1")
	pki := b.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		b.Fatal(err)
	}
	const token = "drain-bench-admin-token-0123456789abcdef"
	for name, data := range map[string][]byte{
		"ca.crt":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
		"ca.key":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"tokens.csv": []byte(token + ",bench,admin\n"),
	} {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	args := append([]string{"--db", filepath.Join(b.TempDir(), "c.db"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--poll-interval", "1s", "--default-workdir", b.TempDir(),
		"--tls-cert-file", srv.CertFile, "--tls-key-file", srv.KeyFile, "--tls-client-ca-file", ca.CertFile,
		"--token-file", filepath.Join(pki, "tokens.csv")}, extra...)
	p := launch(b, env, args...)
	tc := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(tokenCreds(token)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &secureController{addr: p.addr, conn: conn, ca: ca, pki: pki}
}

// agent runs a simulated agent for machine over mTLS with its own
// certificate and returns its admin address.
func (c *secureController) agent(b *testing.B, machine string) string {
	b.Helper()
	pair := c.ca.Agent(b, machine)
	args := []string{"--controller", c.addr, "--controller-server-name", "localhost", "--node-name", machine,
		"--tls-cert-file", pair.CertFile, "--tls-key-file", pair.KeyFile, "--tls-ca-file", c.ca.CertFile,
		"--nvml", "sim", "--ib", "sim", "--nccl", "sim", "--admin-addr", "127.0.0.1:0", "--state-dir", b.TempDir(), "--log-level", "info"}
	return testbin.Start(b, exec.Command(agentBinary(b), args...), &lockedBuffer{}, adminRE)[1]
}

// connectedAgents counts the nodes whose agent is connected, page by page.
func connectedAgents(b *testing.B, nodes apipb.NodeServiceClient) int {
	n := 0
	req := &apipb.ListNodesRequest{PageSize: 1000, View: apipb.NodeView_NODE_VIEW_BASIC}
	for {
		resp, err := nodes.ListNodes(context.Background(), req)
		if err != nil {
			b.Fatalf("ListNodes: %v", err)
		}
		for _, nd := range resp.GetNodes() {
			if nd.GetAgentConnected() {
				n++
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return n
		}
	}
}
