// Package tlstest mints certificate authorities and certificates for tests
// of TLS and mutual-TLS code: a CA, server certificates, node agent
// certificates following the naming scheme of package tlsutil, plain
// client certificates and expired certificates, written as PEM files into
// the test's temporary directory.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/tlsutil"
)

var serial atomic.Int64

// CA is a test certificate authority.
type CA struct {
	// Cert is the CA certificate and Key its private key.
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertFile is the PEM file holding Cert.
	CertFile string
	// Pool holds Cert alone.
	Pool *x509.CertPool
}

// Pair is an issued certificate with its key, both also written as PEM
// files.
type Pair struct {
	Cert     *x509.Certificate
	CertFile string
	KeyFile  string
	// CertPEM and KeyPEM are the contents of CertFile and KeyFile.
	CertPEM, KeyPEM []byte
}

// NewCA returns a new self-signed ECDSA P-256 CA valid from an hour ago for
// a day, with its certificate written into t.TempDir().
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: "sopilot test CA", Organization: []string{"sopilot"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	ca := &CA{Cert: cert, Key: key, Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	ca.CertFile = filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, ca.CertFile, pemCert(der))
	return ca
}

// Server issues a server certificate for hosts (DNS names or IP
// addresses; "localhost" and 127.0.0.1 when none are given).
func (ca *CA) Server(t testing.TB, hosts ...string) Pair {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	tmpl := ca.template(hosts[0], time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour))
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.Issue(t, tmpl)
}

// Agent issues the client certificate of the node agent of node: CN and
// DNS SAN node, URI SAN tlsutil.AgentURI(node).
func (ca *CA) Agent(t testing.TB, node string) Pair {
	t.Helper()
	return ca.Issue(t, ca.AgentTemplate(node, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour)))
}

// Expired issues an agent certificate for node that expired an hour ago.
func (ca *CA) Expired(t testing.TB, node string) Pair {
	t.Helper()
	return ca.Issue(t, ca.AgentTemplate(node, time.Now().Add(-3*time.Hour), time.Now().Add(-time.Hour)))
}

// Client issues a client certificate with Subject CN cn and no agent URI
// SAN: a verified certificate that is not an agent's.
func (ca *CA) Client(t testing.TB, cn string) Pair {
	t.Helper()
	tmpl := ca.template(cn, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour))
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.Issue(t, tmpl)
}

// AgentTemplate returns the certificate template of an agent certificate
// for node valid from notBefore to notAfter, for tests that alter it
// before calling Issue.
func (ca *CA) AgentTemplate(node string, notBefore, notAfter time.Time) *x509.Certificate {
	tmpl := ca.template(node, notBefore, notAfter)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.DNSNames = []string{node}
	tmpl.URIs = append(tmpl.URIs, tlsutil.AgentURI(node))
	return tmpl
}

func (ca *CA) template(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"sopilot"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

// Issue signs tmpl with a new ECDSA P-256 key and writes the certificate
// and key as PEM files into t.TempDir().
func (ca *CA) Issue(t testing.TB, tmpl *x509.Certificate) Pair {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	dir := t.TempDir()
	p := Pair{
		Cert:     cert,
		CertFile: filepath.Join(dir, "tls.crt"),
		KeyFile:  filepath.Join(dir, "tls.key"),
		CertPEM:  pemCert(der),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	writeFile(t, p.CertFile, p.CertPEM)
	writeFile(t, p.KeyFile, p.KeyPEM)
	return p
}

// CopyTo replaces certFile and keyFile with p's certificate and key, each
// by an atomic rename, as a certificate rotation would.
func (p Pair) CopyTo(t testing.TB, certFile, keyFile string) {
	t.Helper()
	writeFile(t, keyFile, p.KeyPEM)
	writeFile(t, certFile, p.CertPEM)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("rename %s: %v", tmp, err)
	}
}
