package main

// The controller binary with TLS, bearer tokens and agent certificates:
// what a real installation runs.

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

func TestSecureControllerTokensRolesAndAgentBinding(t *testing.T) {
	env := slurmtest.Require(t)
	ca := tlstest.NewCA(t)
	srv := ca.Server(t, "localhost", "127.0.0.1")
	dir := t.TempDir()
	const (
		viewer   = "viewer-token-0123456789abcdef0123456789"
		operator = "operator-token-0123456789abcdef01234567"
	)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# test tokens\n"+viewer+",vera,viewer\n"+operator+",otto,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// startController adds --insecure; a secure controller is started here.
	p := launch(t, env, "--db", filepath.Join(dir, "c.db"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--default-workdir", dir, "--remediation", "dry-run",
		"--tls-cert-file", srv.CertFile, "--tls-key-file", srv.KeyFile, "--tls-client-ca-file", ca.CertFile, "--token-file", tokens)
	addr, stderr := p.addr, p.stderr
	dial := func(token string) apipb.NodeServiceClient {
		tc := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
		}
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return apipb.NewNodeServiceClient(conn)
	}
	ctx := context.Background()
	if _, err := dial("").ListNodes(ctx, &apipb.ListNodesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	if _, err := dial("not-a-known-token-0123456789abcdef0123").ListNodes(ctx, &apipb.ListNodesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unknown token: %v, want Unauthenticated", err)
	}
	if _, err := dial(viewer).ListNodes(ctx, &apipb.ListNodesRequest{}); err != nil {
		t.Errorf("viewer ListNodes: %v", err)
	}
	_, err := dial(viewer).DrainNode(ctx, &apipb.DrainNodeRequest{Name: "worker-0", Reason: "test"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "operator") {
		t.Errorf("viewer DrainNode: %v, want PermissionDenied naming the operator role", err)
	}
	if strings.Contains(stderr.String(), viewer) || strings.Contains(stderr.String(), operator) {
		t.Error("a token appears in the controller's log")
	}

	// Agents: a certificate for worker-0 reports as worker-0; the same
	// certificate claiming worker-1 is refused; no certificate, no stream.
	// On Slurm with instance ids an agent names its machine, not the
	// Slurm node (env.Machine).
	m0, m1 := env.Machine("worker-0"), env.Machine("worker-1")
	agent := ca.Agent(t, m0)
	run := func(node string, extra ...string) (*exec.Cmd, *lockedBuffer) {
		args := append([]string{"--controller", addr, "--controller-server-name", "localhost", "--node-name", node,
			"--nvml", "sim", "--ib", "sim", "--nccl", "sim", "--admin-addr", "", "--state-dir", t.TempDir()}, extra...)
		c := exec.Command(agentBinary(t), args...)
		out := &lockedBuffer{}
		c.Stderr = out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c, out
	}
	run(m0, "--tls-cert-file", agent.CertFile, "--tls-key-file", agent.KeyFile, "--tls-ca-file", ca.CertFile)
	_, imposter := run(m1, "--tls-cert-file", agent.CertFile, "--tls-key-file", agent.KeyFile, "--tls-ca-file", ca.CertFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := dial(viewer).ListNodes(ctx, &apipb.ListNodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		connected := map[string]bool{}
		for _, n := range resp.GetNodes() {
			connected[n.GetName()] = n.GetAgentConnected()
		}
		if connected["worker-0"] && strings.Contains(imposter.String(), `not for node \"`+m1+`\"`) {
			if connected["worker-1"] {
				t.Error("an agent with worker-0's certificate reported for worker-1")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker-0 connected=%v; imposter's log:\n%s", connected["worker-0"], imposter.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
