// Package tlsutil builds the TLS configurations of sopilot's controller and
// node agents, and names the certificates that identify node agents.
//
// # Why two kinds of credentials
//
// People and CI systems authenticate to the controller with bearer tokens
// (see package auth): tokens are easy to hand out, to scope to a role and to
// revoke by editing one file or a Kubernetes RBAC binding. Node agents run
// unattended on every cluster node and hold a long bidirectional stream, so
// they authenticate with client certificates (mutual TLS): the certificate
// is issued per node by the cluster's CA, it binds the agent to exactly one
// node name, and it is rotated on disk without restarting anything.
//
// The controller therefore asks for client certificates but does not demand
// them at the TLS layer (tls.VerifyClientCertIfGiven): a CLI user connects
// with server-side TLS and a bearer token, an agent presents its
// certificate. A certificate that is presented must chain to the configured
// client CA, or the handshake fails. Package auth then requires a verified
// agent certificate for AgentService/Connect.
//
// # Agent certificate naming scheme
//
// An agent certificate for Slurm node "worker-0" carries
//
//   - the URI SAN spiffe://sopilot/agent/worker-0 (see AgentURI), which
//     marks the certificate as an agent's and names the node (letters,
//     digits, '.', '-', '_'); this is the only field the controller trusts
//     for the node name, and there must be exactly one such URI;
//   - Subject CN "worker-0" (optional; when present it must equal the node
//     in the URI, or the certificate is not accepted as an agent's);
//   - usually a DNS SAN with the node's host name, for the operator's
//     benefit; it is not interpreted.
//
// AgentNodeFromCert applies these rules.
//
// # Reloading
//
// ServerConfig and ClientConfig re-read certificate, key and CA files when
// their modification time, size or identity (an atomic rename) changes,
// checking at most once a second, so cert-manager or a cron job can rotate
// them in place: new handshakes use the new files, established connections
// keep the old ones. A file that fails to load during a rotation (for
// example a certificate written before its key) keeps the previous, valid
// material in use and is retried on the next check.
//
// Both configurations require TLS 1.3.
//
// Package tlstest mints CAs and certificates for tests.
package tlsutil
