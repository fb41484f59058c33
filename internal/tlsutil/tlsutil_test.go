package tlsutil_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
)

// serve starts a gRPC health server with cfg; a unary interceptor reports
// the agent node of each call's verified client certificate ("" if none).
func serve(t *testing.T, cfg *tls.Config) (string, chan string) {
	t.Helper()
	nodes := make(chan string, 16)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			node := ""
			if p, ok := peer.FromContext(ctx); ok {
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
					node, _ = tlsutil.AgentNodeFromCert(ti.State.VerifiedChains[0][0])
					if ti.State.Version != tls.VersionTLS13 {
						node = "not TLS 1.3"
					}
				}
			}
			nodes <- node
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), nodes
}

// check makes one health check on a new connection and returns the
// status code and the server certificate it saw.
func check(t *testing.T, addr string, cfg *tls.Config) (codes.Code, *x509.Certificate) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p peer.Peer
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	var cert *x509.Certificate
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		cert = ti.State.PeerCertificates[0]
	}
	return status.Code(err), cert
}

func clientCfg(t *testing.T, pair *tlstest.Pair, caFile, serverName string) *tls.Config {
	t.Helper()
	var c, k string
	if pair != nil {
		c, k = pair.CertFile, pair.KeyFile
	}
	cfg, err := tlsutil.ClientConfig(c, k, caFile, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	other := tlstest.NewCA(t)
	srvPair := ca.Server(t, "localhost", "127.0.0.1")
	cfg, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, ca.CertFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("MinVersion %x ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	addr, nodes := serve(t, cfg)
	nodeA := ca.Agent(t, "worker-0")
	nodeB := ca.Agent(t, "worker-1")

	for _, tc := range []struct {
		name       string
		client     *tlstest.Pair
		caFile     string
		serverName string
		want       codes.Code
		wantNode   string
	}{
		{"agent A", &nodeA, ca.CertFile, "localhost", codes.OK, "worker-0"},
		{"agent B by IP", &nodeB, ca.CertFile, "127.0.0.1", codes.OK, "worker-1"},
		{"no client certificate", nil, ca.CertFile, "localhost", codes.OK, ""},
		{"plain client certificate", ptr(ca.Client(t, "alice")), ca.CertFile, "localhost", codes.OK, ""},
		{"expired client certificate", ptr(ca.Expired(t, "worker-0")), ca.CertFile, "localhost", codes.Unavailable, "-"},
		{"client certificate from another CA", ptr(other.Agent(t, "worker-0")), ca.CertFile, "localhost", codes.Unavailable, "-"},
		{"server not trusted", &nodeA, other.CertFile, "localhost", codes.Unavailable, "-"},
		{"wrong server name", &nodeA, ca.CertFile, "controller.example", codes.Unavailable, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := check(t, addr, clientCfg(t, tc.client, tc.caFile, tc.serverName))
			if got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
			if tc.wantNode == "-" {
				return
			}
			if n := <-nodes; n != tc.wantNode {
				t.Fatalf("server saw agent node %q, want %q", n, tc.wantNode)
			}
		})
	}
	// serverName empty: the dial target's host name is verified.
	if got, _ := check(t, strings.Replace(addr, "127.0.0.1", "localhost", 1), clientCfg(t, &nodeA, ca.CertFile, "")); got != codes.OK {
		t.Fatalf("empty serverName with host name target: %v", got)
	}
	<-nodes

	// TLS 1.2 is refused.
	old := clientCfg(t, &nodeA, ca.CertFile, "localhost")
	old.MaxVersion = tls.VersionTLS12
	if got, _ := check(t, addr, old); got != codes.Unavailable {
		t.Fatalf("TLS 1.2 client: %v; want refused", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRequireClientCert(t *testing.T) {
	ca := tlstest.NewCA(t)
	srvPair := ca.Server(t)
	cfg, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, ca.CertFile, true)
	if err != nil {
		t.Fatal(err)
	}
	addr, nodes := serve(t, cfg)
	if got, _ := check(t, addr, clientCfg(t, nil, ca.CertFile, "localhost")); got != codes.Unavailable {
		t.Fatalf("no client certificate with requireClientCert: %v", got)
	}
	agent := ca.Agent(t, "worker-0")
	if got, _ := check(t, addr, clientCfg(t, &agent, ca.CertFile, "localhost")); got != codes.OK {
		t.Fatalf("agent: %v", got)
	}
	if n := <-nodes; n != "worker-0" {
		t.Fatalf("node %q", n)
	}
	if _, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, "", true); err == nil {
		t.Error("requireClientCert without a CA accepted")
	}
	noCA, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, "", false)
	if err != nil || noCA.ClientAuth != tls.NoClientCert {
		t.Errorf("no client CA: %v, %v", noCA.ClientAuth, err)
	}
}

func TestConfigErrors(t *testing.T) {
	ca := tlstest.NewCA(t)
	p := ca.Server(t)
	for name, fn := range map[string]func() error{
		"missing cert": func() error { _, err := tlsutil.ServerConfig(p.CertFile+".none", p.KeyFile, "", false); return err },
		"key mismatch": func() error {
			_, err := tlsutil.ServerConfig(p.CertFile, ca.Server(t).KeyFile, "", false)
			return err
		},
		"CA not PEM":         func() error { _, err := tlsutil.ServerConfig(p.CertFile, p.KeyFile, p.KeyFile, false); return err },
		"client half a pair": func() error { _, err := tlsutil.ClientConfig(p.CertFile, "", ca.CertFile, "x"); return err },
		"client missing CA":  func() error { _, err := tlsutil.ClientConfig("", "", p.CertFile+".none", "x"); return err },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRotation replaces the server's certificate and the client CA on disk:
// new handshakes use them without a restart.
func TestRotation(t *testing.T) {
	ca := tlstest.NewCA(t)
	first := ca.Server(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := dir+"/tls.crt", dir+"/tls.key", dir+"/ca.crt"
	first.CopyTo(t, certFile, keyFile)
	copyFile(t, ca.CertFile, caFile)
	cfg, err := tlsutil.ServerConfig(certFile, keyFile, caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	addr, nodes := serve(t, cfg)
	client := clientCfg(t, nil, ca.CertFile, "localhost")
	code, cert := check(t, addr, client)
	if code != codes.OK || cert == nil || cert.SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("first: %v, serial %v", code, cert)
	}
	<-nodes

	second := ca.Server(t)
	second.CopyTo(t, certFile, keyFile)
	// The files are checked at most once per CheckInterval.
	time.Sleep(tlsutil.CheckInterval + 100*time.Millisecond)
	code, cert = check(t, addr, client)
	if code != codes.OK || cert == nil || cert.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation: %v, serial %v; want %v", code, cert.SerialNumber, second.Cert.SerialNumber)
	}
	<-nodes

	// A half-written rotation (key replaced, certificate not yet) keeps
	// serving the last good pair.
	third := ca.Server(t)
	if err := os.WriteFile(keyFile, third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(tlsutil.CheckInterval + 100*time.Millisecond)
	if code, cert = check(t, addr, client); code != codes.OK || cert.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("during a half rotation: %v, serial %v", code, cert)
	}
	<-nodes

	// Client CA rotation: agents of the new CA get in, the old CA's not.
	newCA := tlstest.NewCA(t)
	oldAgent, newAgent := ca.Agent(t, "worker-0"), newCA.Agent(t, "worker-1")
	copyFile(t, newCA.CertFile, caFile)
	time.Sleep(tlsutil.CheckInterval + 100*time.Millisecond)
	if code, _ := check(t, addr, clientCfg(t, &newAgent, ca.CertFile, "localhost")); code != codes.OK {
		t.Fatalf("agent of the new client CA: %v", code)
	}
	if n := <-nodes; n != "worker-1" {
		t.Fatalf("node %q", n)
	}
	if code, _ := check(t, addr, clientCfg(t, &oldAgent, ca.CertFile, "localhost")); code != codes.Unavailable {
		t.Fatalf("agent of the old client CA: %v", code)
	}
}

// TestClientRotation: the client's certificate and its CA file reload too.
func TestClientRotation(t *testing.T) {
	ca := tlstest.NewCA(t)
	srvPair := ca.Server(t)
	cfg, err := tlsutil.ServerConfig(srvPair.CertFile, srvPair.KeyFile, ca.CertFile, false)
	if err != nil {
		t.Fatal(err)
	}
	addr, nodes := serve(t, cfg)
	dir := t.TempDir()
	certFile, keyFile, caFile := dir+"/tls.crt", dir+"/tls.key", dir+"/ca.crt"
	ca.Agent(t, "worker-0").CopyTo(t, certFile, keyFile)
	other := tlstest.NewCA(t)
	copyFile(t, other.CertFile, caFile) // wrong CA at first
	client := clientCfg(t, &tlstest.Pair{CertFile: certFile, KeyFile: keyFile}, caFile, "localhost")
	if code, _ := check(t, addr, client); code != codes.Unavailable {
		t.Fatalf("untrusted server: %v", code)
	}
	copyFile(t, ca.CertFile, caFile)
	ca.Agent(t, "worker-1").CopyTo(t, certFile, keyFile)
	time.Sleep(tlsutil.CheckInterval + 100*time.Millisecond)
	if code, _ := check(t, addr, client); code != codes.OK {
		t.Fatalf("after CA fix: %v", code)
	}
	if n := <-nodes; n != "worker-1" {
		t.Fatalf("server saw node %q, want the rotated worker-1", n)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}

func TestAgentNodeFromCert(t *testing.T) {
	ca := tlstest.NewCA(t)
	now := time.Now()
	mk := func(mod func(c *x509.Certificate)) *x509.Certificate {
		tmpl := ca.AgentTemplate("worker-0", now.Add(-time.Hour), now.Add(time.Hour))
		mod(tmpl)
		return ca.Issue(t, tmpl).Cert
	}
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"agent", ca.Agent(t, "worker-0").Cert, "worker-0"},
		{"no CN", mk(func(c *x509.Certificate) { c.Subject.CommonName = "" }), "worker-0"},
		{"CN names another node", mk(func(c *x509.Certificate) { c.Subject.CommonName = "worker-1" }), ""},
		{"no URI", mk(func(c *x509.Certificate) { c.URIs = nil }), ""},
		{"two agent URIs", mk(func(c *x509.Certificate) { c.URIs = append(c.URIs, tlsutil.AgentURI("worker-1")) }), ""},
		{"other trust domain", mk(func(c *x509.Certificate) { c.URIs = []*url.URL{u("spiffe://example.org/agent/worker-0")} }), ""},
		{"other SPIFFE path", mk(func(c *x509.Certificate) { c.URIs = []*url.URL{u("spiffe://sopilot/user/worker-0")} }), ""},
		{"nested path", mk(func(c *x509.Certificate) {
			c.Subject.CommonName = ""
			c.URIs = []*url.URL{u("spiffe://sopilot/agent/a/b")}
		}), ""},
		{"empty node", mk(func(c *x509.Certificate) {
			c.Subject.CommonName = ""
			c.URIs = []*url.URL{u("spiffe://sopilot/agent/")}
		}), ""},
		{"unrelated URI beside", mk(func(c *x509.Certificate) { c.URIs = append(c.URIs, u("https://example.org/x")) }), "worker-0"},
		{"control character in node", mk(func(c *x509.Certificate) {
			c.Subject.CommonName = ""
			c.URIs = []*url.URL{u("spiffe://sopilot/agent/worker%0A0")}
		}), ""},
		{"plain client", ca.Client(t, "alice").Cert, ""},
		{"nil", nil, ""},
	} {
		got, ok := tlsutil.AgentNodeFromCert(tc.cert)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: AgentNodeFromCert = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	if s := tlsutil.AgentURI("worker-0").String(); s != "spiffe://sopilot/agent/worker-0" {
		t.Errorf("AgentURI = %s", s)
	}
}

func FuzzAgentNodeFromCert(f *testing.F) {
	f.Add("spiffe://sopilot/agent/worker-0", "worker-0")
	f.Add("spiffe://sopilot/agent/a/b", "")
	f.Add("spiffe://sopilot/agent/%2F", "")
	f.Add("spiffe://user@sopilot/agent/x?y#z", "x")
	f.Fuzz(func(t *testing.T, uri, cn string) {
		u, err := url.Parse(uri)
		if err != nil {
			return
		}
		c := &x509.Certificate{URIs: []*url.URL{u}}
		c.Subject.CommonName = cn
		node, ok := tlsutil.AgentNodeFromCert(c)
		if !ok {
			if node != "" {
				t.Fatalf("node %q with ok false", node)
			}
			return
		}
		if node == "" || strings.ContainsAny(node, "/ \n%") || (cn != "" && cn != node) {
			t.Fatalf("AgentNodeFromCert(%q, CN %q) = %q", uri, cn, node)
		}
		if got := tlsutil.AgentURI(node); got.Path != u.Path || got.Host != u.Host {
			t.Fatalf("AgentURI(%q) = %v, from %v", node, got, u)
		}
	})
}
