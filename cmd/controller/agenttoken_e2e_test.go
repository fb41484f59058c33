package main

// The controller and agent binaries with agents authenticated by their
// pod's service account token, reviewed by a Kubernetes API server (here
// an httptest one answering TokenReviews as the real one does), the way
// the chart installs them.

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
)

// fakeTokenReviews answers TokenReviews for the audience "sopilot": each
// token in podNodes is a pod-bound token of soperator/sopilot-agent whose
// pod runs on that Kubernetes node; any other token is refused.
func fakeTokenReviews(t *testing.T, controllerToken string, podNodes map[string]string) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || r.Header.Get("Authorization") != "Bearer "+controllerToken {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":403}`, http.StatusForbidden)
			return
		}
		var in struct {
			Spec struct {
				Token     string   `json:"token"`
				Audiences []string `json:"audiences"`
			} `json:"spec"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Spec.Audiences) != 1 || in.Spec.Audiences[0] != "sopilot" {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		st := `{"authenticated":false,"user":{},"error":"[invalid bearer token, service account token has been invalidated]"}`
		if node, ok := podNodes[in.Spec.Token]; ok {
			st = fmt.Sprintf(`{"authenticated":true,"user":{"username":"system:serviceaccount:soperator:sopilot-agent","uid":"5a1f9c2d",
			  "groups":["system:serviceaccounts","system:serviceaccounts:soperator","system:authenticated"],
			  "extra":{"authentication.kubernetes.io/node-name":[%q],"authentication.kubernetes.io/pod-name":["sopilot-agent-%s"],"authentication.kubernetes.io/pod-uid":["c7d2a1b3"]}},
			  "audiences":["sopilot"]}`, node, node)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":["sopilot"]},"status":%s}`, st)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAgentServiceAccountTokens(t *testing.T) {
	env := slurmtest.Require(t)
	ca := tlstest.NewCA(t)
	srv := ca.Server(t, "localhost", "127.0.0.1")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const controllerToken = "controller-sa-token"
	api := fakeTokenReviews(t, controllerToken, map[string]string{"pod-token-worker-0": "worker-0"})
	apiCA := write("api-ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})))
	p := launch(t, env, "--db", filepath.Join(dir, "c.db"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--default-workdir", dir, "--remediation", "dry-run", "--log-level", "debug",
		"--tls-cert-file", srv.CertFile, "--tls-key-file", srv.KeyFile,
		"--tokenreview-audience", "sopilot", "--tokenreview-url", api.URL,
		"--tokenreview-ca-file", apiCA, "--tokenreview-token-file", write("controller-token", controllerToken),
		"--agent-service-account", "soperator/sopilot-agent")

	run := func(node, token string) *lockedBuffer {
		c := exec.Command(agentBinary(t), "--controller", p.addr, "--controller-server-name", "localhost", "--node-name", node,
			"--nvml", "sim", "--ib", "sim", "--nccl", "sim", "--admin-addr", "", "--state-dir", t.TempDir(),
			"--tls-ca-file", ca.CertFile)
		c.Env = append(os.Environ(), "SOPILOT_TOKEN_FILE="+write("token-"+node, token))
		out := &lockedBuffer{}
		c.Stderr = out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return out
	}
	good := run("worker-0", "pod-token-worker-0")
	imposter := run("worker-1", "pod-token-worker-0")
	revoked := run("worker-2", "pod-token-of-a-deleted-pod")
	deadline := time.Now().Add(30 * time.Second)
	for !(strings.Contains(good.String(), "connected to controller") &&
		strings.Contains(imposter.String(), `bound to pod soperator/sopilot-agent-worker-0 on node \"worker-0\", not to node \"worker-1\"`) &&
		strings.Contains(revoked.String(), "has been invalidated")) {
		if time.Now().After(deadline) {
			t.Fatalf("agent of worker-0:\n%s\nworker-1 with worker-0's token:\n%s\nrevoked token:\n%s", good, imposter, revoked)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(imposter.String(), "connected to controller") || strings.Contains(revoked.String(), "connected to controller") {
		t.Error("an agent connected with another node's token or a revoked one")
	}
	if s := p.stderr.String(); strings.Contains(s, "pod-token-worker-0") || strings.Contains(s, controllerToken) {
		t.Error("a token appears in the controller's log")
	}
}
