package auth_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// Tokens of the test token file, one per role.
var roleTokens = map[auth.Role]string{
	auth.RoleViewer:    "viewer-token-0123456789abcdefghijklmnop",
	auth.RoleSubmitter: "submitter-token-0123456789abcdefghijklmn",
	auth.RoleOperator:  "operator-token-0123456789abcdefghijklmno",
	auth.RoleAdmin:     "admin-token-0123456789abcdefghijklmnopqr",
}

func writeTokenFile(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("# test tokens\n")
	for _, r := range []auth.Role{auth.RoleViewer, auth.RoleSubmitter, auth.RoleOperator, auth.RoleAdmin} {
		b.WriteString(roleTokens[r] + "," + r.String() + "-user," + r.String() + "\n")
	}
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer = testbin.Buffer

func newLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// bindingAgent implements Connect far enough to apply the node binding to
// the first Hello.
type bindingAgent struct {
	agentpb.UnimplementedAgentServiceServer
}

func (bindingAgent) Connect(stream agentpb.AgentService_ConnectServer) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	return auth.CheckAgentNode(stream.Context(), req.GetHello().GetNodeName())
}

type stubs struct {
	agent agentpb.AgentServiceServer
	runs  apipb.RunServiceServer
}

// startServer serves every sopilot service as an Unimplemented stub, plus
// health and reflection, over TLS with the server certificate of ca and
// client certificates verified if given, with a's interceptors.
func startServer(t *testing.T, a *auth.Authorizer, ca *tlstest.CA, s stubs) string {
	t.Helper()
	srvPair := ca.Server(t)
	cfg, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, ca.CertFile, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamServerInterceptor()),
	)
	if s.runs == nil {
		s.runs = apipb.UnimplementedRunServiceServer{}
	}
	apipb.RegisterRunServiceServer(srv, s.runs)
	apipb.RegisterNodeServiceServer(srv, apipb.UnimplementedNodeServiceServer{})
	apipb.RegisterComparisonServiceServer(srv, apipb.UnimplementedComparisonServiceServer{})
	if s.agent == nil {
		s.agent = agentpb.UnimplementedAgentServiceServer{}
	}
	agentpb.RegisterAgentServiceServer(srv, s.agent)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// dial connects to addr trusting ca, presenting client (if non-nil).
// sendHello opens Connect on conn, sends a Hello for node and returns
// how the stream ended.
func sendHello(ctx context.Context, conn *grpc.ClientConn, node string) error {
	stream, err := agentpb.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Hello{Hello: &agentpb.Hello{NodeName: node}}}); err != nil {
		_, err = stream.Recv()
		return err
	}
	_, err = stream.Recv()
	return err
}

func dial(t *testing.T, addr string, ca *tlstest.CA, client *tlstest.Pair) *grpc.ClientConn {
	t.Helper()
	var certFile, keyFile string
	if client != nil {
		certFile, keyFile = client.CertFile, client.KeyFile
	}
	cfg, err := tlsutil.ClientConfig(certFile, keyFile, ca.CertFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func ctxWithCancel(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// tokenAuthorizer is an Authorizer over the test token file with cfg's
// other settings.
func tokenAuthorizer(t *testing.T, cfg auth.Config) *auth.Authorizer {
	t.Helper()
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tokens = tf
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
