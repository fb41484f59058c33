package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// CheckInterval is the least time between two checks of the files behind a
// configuration for changes.
const CheckInterval = time.Second

// now is the clock of the reloaders; tests replace it.
var now = time.Now

// fileStamp identifies one version of a file on disk.
type fileStamp struct {
	info os.FileInfo
}

func (s fileStamp) same(info os.FileInfo) bool {
	if s.info == nil || info == nil {
		return false
	}
	return s.info.ModTime().Equal(info.ModTime()) && s.info.Size() == info.Size() && os.SameFile(s.info, info)
}

// watched loads a value from a set of files and reloads it when any of the
// files changes, checking at most once per CheckInterval.
type watched[T any] struct {
	files []string
	load  func() (T, error)

	mu        sync.Mutex
	value     T
	stamps    []fileStamp
	lastCheck time.Time
}

func newWatched[T any](load func() (T, error), files ...string) (*watched[T], error) {
	w := &watched[T]{files: files, load: load}
	stamps, err := w.stat()
	if err != nil {
		return nil, err
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.value, w.stamps, w.lastCheck = v, stamps, now()
	return w, nil
}

func (w *watched[T]) stat() ([]fileStamp, error) {
	out := make([]fileStamp, len(w.files))
	for i, f := range w.files {
		info, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		out[i] = fileStamp{info: info}
	}
	return out, nil
}

// get returns the current value, reloading it first when a file changed.
// A reload that fails keeps the previous value and is retried at the
// next check.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := now()
	if t.Sub(w.lastCheck) < CheckInterval {
		return w.value
	}
	w.lastCheck = t
	stamps, err := w.stat()
	if err != nil {
		return w.value
	}
	changed := false
	for i := range stamps {
		if !w.stamps[i].same(stamps[i].info) {
			changed = true
		}
	}
	if !changed {
		return w.value
	}
	v, err := w.load()
	if err != nil {
		return w.value
	}
	w.value, w.stamps = v, stamps
	return w.value
}

func loadKeyPair(certFile, keyFile string) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load certificate %s and key %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}
}

func loadPool(file string) func() (*x509.CertPool, error) {
	return func() (*x509.CertPool, error) {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates", file)
		}
		return pool, nil
	}
}

// ServerConfig returns the TLS configuration of a gRPC server (TLS 1.3,
// ALPN h2) that presents the certificate in certFile/keyFile and, when
// clientCAFile is set, verifies client certificates against the CAs in it.
// With requireClientCert false a client may connect without a certificate
// (tls.VerifyClientCertIfGiven), but a certificate it does present must
// verify; with requireClientCert true a verified certificate is required.
// requireClientCert without clientCAFile is an error.
//
// Certificate, key and CA file are re-read when they change on disk,
// checked at most once per CheckInterval, for new handshakes.
func ServerConfig(certFile, keyFile, clientCAFile string, requireClientCert bool) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: certFile and keyFile are required")
	}
	if requireClientCert && clientCAFile == "" {
		return nil, errors.New("tls: clientCAFile is required to require client certificates")
	}
	cert, err := newWatched(loadKeyPair(certFile, keyFile), certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	var pool *watched[*x509.CertPool]
	if clientCAFile != "" {
		if pool, err = newWatched(loadPool(clientCAFile), clientCAFile); err != nil {
			return nil, fmt.Errorf("tls: client %w", err)
		}
	}
	clientAuth := tls.NoClientCert
	switch {
	case requireClientCert:
		clientAuth = tls.RequireAndVerifyClientCert
	case pool != nil:
		clientAuth = tls.VerifyClientCertIfGiven
	}
	perHandshake := func() *tls.Config {
		c := &tls.Config{
			MinVersion:   tls.VersionTLS13,
			NextProtos:   []string{"h2"},
			Certificates: []tls.Certificate{*cert.get()},
			ClientAuth:   clientAuth,
		}
		if pool != nil {
			c.ClientCAs = pool.get()
		}
		return c
	}
	base := perHandshake()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return perHandshake(), nil
	}
	return base, nil
}

// ClientConfig returns the TLS configuration of a gRPC client (TLS 1.3,
// ALPN h2). It presents the certificate in certFile/keyFile when both are
// set (an agent), and verifies the server against the CAs in caFile, or
// the system roots when caFile is empty. serverName is the name the
// server's certificate must carry; when empty, the host name of the dial
// target is used, which must then not be an IP address.
//
// Certificate, key and CA file are re-read when they change on disk,
// checked at most once per CheckInterval, for new handshakes.
func ClientConfig(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls: certFile and keyFile must be set together")
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		ServerName: serverName,
	}
	if certFile != "" {
		cert, err := newWatched(loadKeyPair(certFile, keyFile), certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert.get(), nil
		}
	}
	if caFile == "" {
		return c, nil
	}
	pool, err := newWatched(loadPool(caFile), caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: server %w", err)
	}
	// The standard verification uses a fixed RootCAs pool; to pick up a
	// rotated CA file, verification is done here, with the same checks
	// (chain to a root in the pool, server auth usage, host name).
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyServer(cs, pool.get(), serverName)
	}
	return c, nil
}

func verifyServer(cs tls.ConnectionState, roots *x509.CertPool, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server presented no certificate")
	}
	name := serverName
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		return errors.New("tls: no server name to verify the server certificate against; set serverName")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       name,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tls: verify server certificate: %w", err)
	}
	return nil
}
