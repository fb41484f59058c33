package api

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// recordingOps is NodeOps that remembers who asked for each drain and
// undrain.
type recordingOps struct {
	mu   sync.Mutex
	whos []string
}

var _ NodeOps = (*recordingOps)(nil)

func (o *recordingOps) Drain(_ context.Context, node, reason, who string) (remediation.Decision, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.whos = append(o.whos, "drain "+node+" by "+who)
	return remediation.Decision{}, nil
}

func (o *recordingOps) Undrain(_ context.Context, node string, _ bool, who string) (remediation.Decision, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.whos = append(o.whos, "undrain "+node+" by "+who)
	return remediation.Decision{}, nil
}

func (o *recordingOps) Check(context.Context, string, string) (monitor.CheckResult, error) {
	return monitor.CheckResult{}, nil
}

func (o *recordingOps) Incidents(context.Context, store.IncidentQuery) ([]*store.Incident, string, error) {
	return nil, "", nil
}

func (o *recordingOps) recorded() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.whos...)
}

// noNodes is a fleet that knows no node.
type noNodes struct{}

func (noNodes) Index() []fleet.NodeView                { return nil }
func (noNodes) Snapshot(string) (fleet.NodeView, bool) { return fleet.NodeView{}, false }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// serveNodeOps serves NodeService over TLS with token authentication, as
// the controller does, and returns a client that sends token.
func serveNodeOps(t *testing.T, ops NodeOps, token string) apipb.NodeServiceClient {
	t.Helper()
	ca := tlstest.NewCA(t)
	pair := ca.Server(t)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte("operator-token-0123456789abcdefghijklmno,otto,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	tf, err := auth.NewTokenFile(tokens, auth.TokenFileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Tokens: tf, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tlsutil.ServerConfig(pair.CertFile, pair.KeyFile, "", false)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(sc)),
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(a.StreamServerInterceptor()))
	apipb.RegisterNodeServiceServer(srv, NewNodeServer(noNodes{}, ops, logger))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	tc := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return apipb.NewNodeServiceClient(conn)
}

// A manual drain or undrain is recorded as the authenticated caller's:
// the name goes into Slurm's reason and the incident record.
func TestManualDrainsAreRecordedAsTheCaller(t *testing.T) {
	ops := &recordingOps{}
	c := serveNodeOps(t, ops, "operator-token-0123456789abcdefghijklmno")
	ctx := testContext(t)
	if _, err := c.DrainNode(ctx, &apipb.DrainNodeRequest{Name: "worker-3", Reason: "bad fan"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: "worker-3"}); err != nil {
		t.Fatal(err)
	}
	got := ops.recorded()
	want := []string{"drain worker-3 by otto", "undrain worker-3 by otto"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("recorded %q, want %q", got, want)
	}
}

// Without an identity (a server built without the authorization
// interceptors) nobody can be named, so nothing is drained.
func TestDrainWithoutAnIdentityIsDenied(t *testing.T) {
	ops := &recordingOps{}
	s := NewNodeServer(noNodes{}, ops, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	if _, err := s.DrainNode(ctx, &apipb.DrainNodeRequest{Name: "worker-3", Reason: "bad fan"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("DrainNode without identity: %v, want Unauthenticated", err)
	}
	if _, err := s.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: "worker-3"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("UndrainNode without identity: %v, want Unauthenticated", err)
	}
	if got := ops.recorded(); len(got) != 0 {
		t.Errorf("recorded %q without an identity", got)
	}
	// The insecure identity is a name like any other.
	ctx = auth.NewContext(ctx, auth.Identity{Name: "insecure", Kind: auth.KindInsecure, Role: auth.RoleAdmin, Source: "insecure"})
	if _, err := s.DrainNode(ctx, &apipb.DrainNodeRequest{Name: "worker-3", Reason: "bad fan"}); err != nil {
		t.Fatal(err)
	}
	if got := ops.recorded(); len(got) != 1 || got[0] != "drain worker-3 by insecure" {
		t.Errorf("recorded %q, want the insecure identity's name", got)
	}
}
