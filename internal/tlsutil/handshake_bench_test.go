package tlsutil_test

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
)

// BenchmarkAgentHandshake is one agent's mTLS handshake with the
// controller's ServerConfig (TLS 1.3, client certificate verified against
// the agent CA), both ends in this goroutine pair over net.Pipe: ns/op is
// the CPU of client and server together. Cases: a full handshake with
// Go's default key exchange (X25519MLKEM768 hybrid first), one limited to
// X25519.
func BenchmarkAgentHandshake(b *testing.B) {
	ca := tlstest.NewCA(b)
	srv, agent := ca.Server(b), ca.Agent(b, "worker-0")
	server, err := tlsutil.ServerConfig(srv.CertFile, srv.KeyFile, ca.CertFile, false)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := tls.X509KeyPair(agent.CertPEM, agent.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	client := func() *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool,
			ServerName: "localhost", NextProtos: []string{"h2"}}
	}
	handshake := func(b *testing.B, cc *tls.Config) {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		done := make(chan error, 1)
		sc := tls.Server(s, server)
		go func() {
			if err := sc.Handshake(); err != nil {
				done <- err
				return
			}
			_, err := sc.Write([]byte{0})
			done <- err
		}()
		cl := tls.Client(c, cc)
		if err := cl.Handshake(); err != nil {
			b.Fatal(err)
		}
		// Reading past the session ticket, which follows the handshake.
		var one [1]byte
		if _, err := cl.Read(one[:]); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			handshake(b, client())
		}
	})
	b.Run("full-x25519", func(b *testing.B) {
		cc := client()
		cc.CurvePreferences = []tls.CurveID{tls.X25519}
		for b.Loop() {
			handshake(b, cc)
		}
	})
}
