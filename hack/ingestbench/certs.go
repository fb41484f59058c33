package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sopilot/sopilot/internal/tlsutil"
)

// The bench's test PKI, as production has it: a CA that signs the
// controller's serving certificate and one client certificate per agent
// with URI SAN spiffe://sopilot/agent/<node>. -role server writes the CA
// (certificate and key), its own pair and a token file into -tls-dir;
// -role agents reads the CA from there and issues each agent its
// certificate in memory before the agents start.

const (
	caCertFile, caKeyFile         = "ca.crt", "ca.key"
	serverCertFile, serverKeyFile = "server.crt", "server.key"
	tokenFile                     = "tokens.csv"
	serverName                    = "localhost"
)

var serial atomic.Int64

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := template("ingestbench CA")
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key}, nil
}

func template(cn string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"sopilot ingestbench"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

// issue signs tmpl with a new P-256 key.
func (ca *testCA) issue(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue %q: %w", tmpl.Subject.CommonName, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// agentCert is node's client certificate, as the agent CA issues it.
func (ca *testCA) agentCert(node string) (tls.Certificate, error) {
	tmpl := template(node)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.URIs = append(tmpl.URIs, tlsutil.AgentURI(node))
	return ca.issue(tmpl)
}

// writeServerPKI creates a CA in dir and the controller's certificate
// (for "localhost" and 127.0.0.1) and a token file there, unless dir has
// them already (a restarted controller keeps its agents' CA).
func writeServerPKI(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, tokenFile)); err == nil {
		return nil
	}
	ca, err := newTestCA()
	if err != nil {
		return err
	}
	tmpl := template(serverName)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.DNSNames = []string{serverName}
	tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{127, 0, 0, 1})
	srv, err := ca.issue(tmpl)
	if err != nil {
		return err
	}
	caKey, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return err
	}
	srvKey, err := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	if err != nil {
		return err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	files := map[string][]byte{
		caCertFile:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}),
		caKeyFile:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKey}),
		serverCertFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate[0]}),
		serverKeyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: srvKey}),
		// The controller needs a bearer-token authenticator; agents use
		// their certificates.
		tokenFile: fmt.Appendf(nil, "%s,ingestbench,admin\n", hex.EncodeToString(tok)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// readCA loads the CA writeServerPKI wrote into dir.
func readCA(dir string) (*testCA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New(dir + ": CA certificate or key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: CA key is %T, not ECDSA", dir, k)
	}
	return &testCA{cert: cert, key: key}, nil
}

// clientTLS is an agent's TLS configuration: its own certificate, the
// controller verified against the CA.
func (ca *testCA) clientTLS(cert tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: serverName}
}
