package uplink_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// projectedToken writes a token the way the kubelet updates a projected
// volume (k8s.io/kubernetes pkg/volume/util AtomicWriter): the files live
// in a timestamped directory, "..data" links to it, and "token" links to
// "..data/token"; an update writes a new directory and swaps "..data" with
// a rename, so a reader never sees a partial file.
type projectedToken struct {
	dir string
	gen int
}

func newProjectedToken(t *testing.T, token string) *projectedToken {
	p := &projectedToken{dir: t.TempDir()}
	p.write(t, token)
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(p.dir, "token")); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *projectedToken) path() string { return filepath.Join(p.dir, "token") }

func (p *projectedToken) write(t *testing.T, token string) {
	t.Helper()
	p.gen++
	ts := fmt.Sprintf("..2026_01_02_15_04_05.%d", p.gen)
	if err := os.Mkdir(filepath.Join(p.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, ts, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(p.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// tokenRecorder is a controller that records the bearer token of every
// Connect, acks the Hello and ends the stream, so the agent reconnects.
type tokenRecorder struct {
	agentpb.UnimplementedAgentServiceServer
	mu     sync.Mutex
	tokens []string
	seen   chan struct{}
}

func (s *tokenRecorder) Connect(stream agentpb.AgentService_ConnectServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	s.mu.Lock()
	s.tokens = append(s.tokens, md.Get("authorization")...)
	s.mu.Unlock()
	select {
	case s.seen <- struct{}{}:
	default:
	}
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Ack{Ack: &agentpb.Ack{}}}); err != nil {
		return err
	}
	return status.Error(codes.Unavailable, "ending the stream so the agent reconnects")
}

func (s *tokenRecorder) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) == 0 {
		return ""
	}
	return s.tokens[len(s.tokens)-1]
}

type nopHandler struct{}

func (nopHandler) Config(*agentpb.AgentConfig)         {}
func (nopHandler) Assignments(*agentpb.RunAssignments) {}
func (nopHandler) Command(context.Context, *agentpb.Command) *agentpb.CommandResult {
	return &agentpb.CommandResult{}
}

// TestTokenFileRotation: the kubelet replaces the projected token; the
// agent's next connection sends the new one.
func TestTokenFileRotation(t *testing.T) {
	ca := tlstest.NewCA(t)
	srvPair := ca.Server(t)
	scfg, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, "", false)
	if err != nil {
		t.Fatal(err)
	}
	rec := &tokenRecorder{seen: make(chan struct{}, 1)}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(scfg)))
	agentpb.RegisterAgentServiceServer(srv, rec)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })

	tok := newProjectedToken(t, "token-generation-1\n")
	creds, err := uplink.NewTokenFile(tok.path())
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := tlsutil.ClientConfig("", "", ca.CertFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ccfg)), grpc.WithPerRPCCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	client := uplink.NewClient(conn, func() *agentpb.Hello { return &agentpb.Hello{NodeName: "gpu-node-a1"} },
		uplink.NewBuffer(uplink.BufferOptions{}), nopHandler{}, slog.New(slog.DiscardHandler),
		uplink.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- client.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})

	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for rec.last() != want {
			select {
			case <-rec.seen:
			case <-deadline:
				t.Fatalf("controller saw %q; want %q", rec.last(), want)
			}
		}
	}
	waitFor("Bearer token-generation-1")
	tok.write(t, "token-generation-2")
	waitFor("Bearer token-generation-2")
}

func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := uplink.NewTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v; want ErrNotExist", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := uplink.NewTokenFile(empty); !errors.Is(err, uplink.ErrEmptyToken) {
		t.Errorf("empty file: %v; want ErrEmptyToken", err)
	}
	ok := filepath.Join(dir, "token")
	if err := os.WriteFile(ok, []byte("t1"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := uplink.NewTokenFile(ok)
	if err != nil {
		t.Fatal(err)
	}
	if !creds.RequireTransportSecurity() {
		t.Error("a bearer token may travel without TLS")
	}
	if err := os.Remove(ok); err != nil {
		t.Fatal(err)
	}
	if _, err := creds.GetRequestMetadata(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file gone: %v", err)
	}
}
