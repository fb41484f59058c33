package tlsutil

import (
	"crypto/x509"
	"net/url"
	"strings"
)

// AgentTrustDomain is the SPIFFE trust domain of sopilot agent certificates.
const AgentTrustDomain = "sopilot"

// agentPathPrefix is the path of AgentURI before the node name.
const agentPathPrefix = "/agent/"

// AgentURI returns the URI SAN that marks a certificate as the node agent
// of node: spiffe://sopilot/agent/<node>.
func AgentURI(node string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: AgentTrustDomain, Path: agentPathPrefix + node}
}

// AgentNodeFromCert returns the node an agent certificate names, and false
// when cert is not an agent certificate: it has no URI SAN of the form
// spiffe://sopilot/agent/<node>, more than one, a node name that is empty
// or has characters other than letters, digits, '.', '-' and '_', or a
// Subject CN other than the node. The caller must
// only pass certificates that were verified against the agent CA.
func AgentNodeFromCert(cert *x509.Certificate) (string, bool) {
	if cert == nil {
		return "", false
	}
	node := ""
	for _, u := range cert.URIs {
		if u == nil || u.Scheme != "spiffe" || u.Host != AgentTrustDomain || !strings.HasPrefix(u.Path, agentPathPrefix) {
			continue
		}
		if node != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", false
		}
		node = strings.TrimPrefix(u.Path, agentPathPrefix)
		if !validNodeName(node) {
			return "", false
		}
	}
	if node == "" {
		return "", false
	}
	if cn := cert.Subject.CommonName; cn != "" && cn != node {
		return "", false
	}
	return node, true
}

// validNodeName accepts the host-name-like names Slurm nodes have.
func validNodeName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
