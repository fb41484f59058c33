package rendertest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
)

func TestSchemaAcceptsDefaultsAndVariants(t *testing.T) {
	for _, v := range variants {
		if err := ValidateValues(chartDir, v.values(t)); err != nil {
			t.Errorf("%s: %v", v.name(), err)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	tests := []struct {
		name   string
		values string
		want   string // in the error: the field's path
	}{
		{"remediation mode", "controller: {remediation: {mode: maybe}}", "/controller/remediation/mode"},
		{"unquoted on is a YAML boolean", "controller: {remediation: {mode: on}}", "/controller/remediation/mode"},
		{"scheduler backend", "slurm: {backend: sbatch}", "/slurm/backend"},
		{"unknown top-level key", "replicaCount: 2", "replicaCount"},
		{"unknown nested key", "controller: {persistance: {enabled: true}}", "persistance"},
		{"two controllers", "controller: {replicas: 2}", "/controller/replicas"},
		{"limits missing", "controller: {resources: {requests: {cpu: 1, memory: 1Gi}, limits: null}}", "/controller/resources"},
		{"memory limit removed", "agent: {resources: {limits: {memory: null}}}", "/agent/resources/limits"},
		{"bad quantity", "agent: {resources: {requests: {cpu: lots, memory: 1Mi}, limits: {cpu: 1, memory: 1Mi}}}", "/agent/resources/requests/cpu"},
		{"bad duration", "controller: {pollInterval: 5 seconds}", "/controller/pollInterval"},
		{"drain share above 1", "controller: {remediation: {maxDrainShare: 1.5}}", "/controller/remediation/maxDrainShare"},
		{"platform", "controller: {platform: a100}", "/controller/platform"},
		{"slurmrestd API version", "slurm: {rest: {apiVersion: v0.0.37}}", "/slurm/rest/apiVersion"},
		{"slurmrestd URL", "slurm: {rest: {url: slurm:6820}}", "/slurm/rest/url"},
		{"relative run directory", "jail: {runDirs: [opt/runs]}", "/jail/runDirs/0"},
		{"agent certificate host path relative", "tls: {agentCerts: {hostPath: agent-tls}}", "/tls/agentCerts/hostPath"},
		{"agent authentication", "tls: {agentAuth: mutualTLS}", "/tls/agentAuth"},
		{"agent token shorter than the API server allows", "tls: {agentToken: {expirationSeconds: 300}}", "/tls/agentToken/expirationSeconds"},
		{"token review audience list", "auth: {tokenReview: {audience: 'sopilot,vault'}}", "/auth/tokenReview/audience"},
		{"toolkit wait timeout", "agent: {waitForToolkit: {timeout: 10 minutes}}", "/agent/waitForToolkit/timeout"},
		{"toolkit wait timeout removed", "agent: {waitForToolkit: {timeout: null}}", "timeout"},
		{"ib mode", "agent: {ib: sim}", "/agent/ib"},
		{"port range", "controller: {grpcPort: 70000}", "/controller/grpcPort"},
		{"log level", "agent: {logLevel: verbose}", "/agent/logLevel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(tt.values))
			if err != nil {
				t.Fatal(err)
			}
			err = ValidateValues(chartDir, vals)
			if err == nil {
				t.Fatalf("values %s accepted", tt.values)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not name %s:\n%v", tt.want, err)
			}
			// helm install/template validate the same way.
			if _, err := Render(chartDir, vals, rel); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render: %v, want a schema error naming %s", err, tt.want)
			}
		})
	}
}

// Keys that chart 0.2.0 removed are refused by the schema, naming the key
// (helm prints the path and the message), saying why it went and what to
// do, and pointing to the values migration in deploy/README.md: a values
// file written for 0.1 must not install with a setting silently ignored.
func TestSchemaRejectsRemovedKeys(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const migration = "Upgrading from chart 0.1"
	if !strings.Contains(string(readme), "## "+migration) {
		t.Fatalf("deploy/README.md has no section %q, which the schema's messages point to", migration)
	}
	tests := []struct {
		name, values, path string
		want               []string
	}{
		{"node name map", "agent: {nodeName: {source: map, map: {gpu-node-a1: worker-0}}}", "/agent/nodeName",
			[]string{"agent.nodeName was removed in chart 0.2.0", "instance_id", "delete agent.nodeName"}},
		{"node name source alone", "agent: {nodeName: {source: kubernetesNode}}", "/agent/nodeName",
			[]string{"agent.nodeName was removed"}},
		{"per-node certificates", "tls: {agentCerts: {source: certManagerPerNode}}", "/tls/agentCerts/source",
			[]string{"tls.agentCerts.source was removed in chart 0.2.0", "tls.agentCerts.hostPath", "tls.agentAuth=serviceAccountToken", "delete the key"}},
		{"certificates from the host, said explicitly", "tls: {agentCerts: {source: hostPath}}", "/tls/agentCerts/source",
			[]string{"tls.agentCerts.source was removed"}},
		{"shell image of the toolkit wait", "agent: {waitForToolkit: {image: 'busybox:1.37'}}", "/agent/waitForToolkit/image",
			[]string{"agent.waitForToolkit.image was removed in chart 0.2.0", "node-agent wait-file", "delete the key"}},
		{"pull policy of the toolkit wait", "agent: {waitForToolkit: {pullPolicy: Always}}", "/agent/waitForToolkit/pullPolicy",
			[]string{"agent.waitForToolkit.pullPolicy was removed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(tt.values))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Render(chartDir, vals, rel)
			if err == nil {
				t.Fatalf("values %s accepted", tt.values)
			}
			for _, want := range append([]string{"at '" + tt.path + "'", "deploy/README.md: " + migration}, tt.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

// Settings the schema cannot express are refused by the templates with a
// message saying what to set.
func TestTemplateGuards(t *testing.T) {
	tests := []struct{ values, want string }{
		{"tls: {enabled: true}", "tls.enabled needs tls.certManager.enabled=true or tls.existingSecret.controller"},
		{"tls: {certManager: {enabled: true}}", "tls.certManager.enabled needs tls.enabled=true"},
		{"tls: {enabled: true, certManager: {enabled: true}, existingSecret: {controller: x}}", "not both"},
		{"{tls: {enabled: true, certManager: {enabled: true}}, serviceAccount: {create: false}}", `any pod running as "default" could speak for its node`},
		{"{tls: {enabled: true, certManager: {enabled: true}}, serviceAccount: {create: false, agentName: sopilot, controllerName: sopilot}}", "different service accounts for the agents and the controller"},
		{"soperator: {version: '1.19.3'}", "sopilot supports Soperator 1.20 and later"},
		{"soperator: {version: '6.0'}", "unknown Slurm release"},
		{"slurm: {backend: cli}", "Debian packages none of them"}, // Soperator 1.20: Slurm 24.05
		{"{soperator: {version: '2.0.1'}, slurm: {backend: cli, cli: {configSource: jail}}, jail: {enabled: false}}", "slurm.cli.configSource=jail needs jail.enabled"},
		{"jail: {claimName: ''}", "jail.enabled needs jail.claimName or jail.hostPath"},
	}
	for _, tt := range tests {
		vals, err := chartutil.ReadValues([]byte(tt.values))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Render(chartDir, vals, rel)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.values, err, tt.want)
		}
	}
}

// flagNames returns the flags a command's files define.
func flagNames(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	re := regexp.MustCompile(`fs\.(?:\w+Var|Var)\([^"]*?"([a-z0-9-]+)"`)
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d flags in %s: has the flag definition style changed?", len(out), files)
	}
	return out
}

// pendingFlags are the TLS and authentication flags the chart is designed
// for, which the binaries may not define yet (see tls in values.yaml). The
// test says which of them have landed, so the list can shrink.
var pendingFlags = map[string]map[string]bool{
	"controller": {},
	"node-agent": {},
}

// Every flag and SOPILOT_ variable the chart passes exists in the binary
// it is passed to.
func TestFlagsExistInBinaries(t *testing.T) {
	defined := map[string]map[string]bool{
		"controller": flagNames(t, "../../../cmd/controller/run.go", "../../../cmd/controller/security.go"),
		"node-agent": flagNames(t, "../../../cmd/node-agent/run.go"),
	}
	for bin, pending := range pendingFlags {
		for f := range pending {
			if defined[bin][f] {
				t.Logf("%s defines --%s now: it can leave pendingFlags", bin, f)
			}
		}
	}
	flagRE := regexp.MustCompile(`^--([a-z0-9-]+)(=|$)`)
	// The wait-file subcommand's flags, defined beside it.
	waitFileFlags := map[string]bool{}
	src, err := os.ReadFile("../../../cmd/node-agent/waitfile.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`fs\.(?:\w+Var|Var)\([^"]*?"([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
		waitFileFlags[m[1]] = true
	}
	if !waitFileFlags["timeout"] {
		t.Fatalf("cmd/node-agent/waitfile.go defines no --timeout (flags found: %v)", waitFileFlags)
	}
	for _, v := range variants {
		r := render(t, v)
		pods := []*corev1.PodSpec{&r.controller(t).Spec.Template.Spec}
		for _, d := range r.agents(t) {
			pods = append(pods, &d.Spec.Template.Spec)
		}
		for _, spec := range pods {
			for _, c := range spec.InitContainers {
				if c.Name != "wait-for-toolkit" {
					continue // the cli backend's slurm-config: a shell script
				}
				if len(c.Command) > 0 || len(c.Args) == 0 || c.Args[0] != "wait-file" {
					t.Errorf("%s: %s runs %q %q, want the agent image's node-agent wait-file", v.name(), c.Name, c.Command, c.Args)
					continue
				}
				for _, a := range c.Args[1:] {
					if m := flagRE.FindStringSubmatch(a); m != nil && !waitFileFlags[m[1]] {
						t.Errorf("%s: node-agent wait-file has no flag --%s", v.name(), m[1])
					}
				}
			}
			for _, c := range spec.Containers {
				bin := map[string]string{"controller": "controller", "agent": "node-agent"}[c.Name]
				if bin == "" {
					continue // munged
				}
				if len(c.Command) > 0 {
					t.Errorf("%s: %s container %s replaces the image's entrypoint: %q", v.name(), bin, c.Name, c.Command)
				}
				for _, a := range c.Args {
					m := flagRE.FindStringSubmatch(a)
					if m == nil {
						t.Errorf("%s: %s argument %q is not a --flag=value", v.name(), bin, a)
						continue
					}
					if !defined[bin][m[1]] && !pendingFlags[bin][m[1]] {
						t.Errorf("%s: %s has no flag --%s", v.name(), bin, m[1])
					}
				}
				for _, e := range c.Env {
					name, ok := strings.CutPrefix(e.Name, "SOPILOT_")
					if !ok {
						continue
					}
					f := strings.ReplaceAll(strings.ToLower(name), "_", "-")
					if !defined[bin][f] && !pendingFlags[bin][f] {
						t.Errorf("%s: %s has no flag --%s for variable %s", v.name(), bin, f, e.Name)
					}
				}
			}
		}
	}
}

func TestNotes(t *testing.T) {
	plain, err := Notes(chartDir, map[string]any{}, rel)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl -n soperator port-forward service/sopilot-controller 50051:50051 9477:9477",
		"grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check",
		"sopilot --controller 127.0.0.1:50051 nodes",
		"sopilot --controller 127.0.0.1:50051 run list",
		"kubectl -n soperator rollout status deployment/sopilot-controller",
		"Remediation is in dry-run",
		"Soperator cluster soperator (Soperator 1.20.1, Slurm 24.05).",
		"Slurm backend: rest (http://soperator-rest-svc:6820, JWT key Secret soperator-rest-jwt-key)",
		"accounting and REST",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("NOTES lack %q:\n%s", want, plain)
		}
	}
	vals, err := LoadValuesFile(filepath.Join(chartDir, "ci", "certmanager-tls-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tlsNotes, err := Notes(chartDir, vals, rel)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"get secret sopilot-controller-tls -o jsonpath='{.data.ca\\.crt}'",
		"grpcurl -cacert ca.crt -authority sopilot-controller.soperator.svc.cluster.local",
	} {
		if !strings.Contains(tlsNotes, want) {
			t.Errorf("TLS NOTES lack %q:\n%s", want, tlsNotes)
		}
	}
	if strings.Contains(tlsNotes, "-plaintext") {
		t.Errorf("TLS NOTES suggest -plaintext")
	}
}

// Decode refuses what the chart must never render.
func TestDecodeStrict(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n", "unknown field"},
		{"misplaced field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: a, image: b, readOnlyRootFilesystem: true}]}}}\n", "unknown field"},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n", "already set"},
		{"unknown kind", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n", "not known"},
		{"CRD unknown field", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: s, issuerRef: {name: i}, dnsName: [a]}\n", "unknown field"},
		{"no name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "without metadata.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("test.yaml", tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	objs, err := Decode("test.yaml", "# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ns}\ndata: {a: b}\n")
	if err != nil || len(objs) != 1 || objs[0].Name != "x" || objs[0].Namespace != "ns" {
		t.Fatalf("Decode = %+v, %v", objs, err)
	}
	if cm := objs[0].Obj.(*corev1.ConfigMap); cm.Data["a"] != "b" {
		t.Errorf("ConfigMap data %v", cm.Data)
	}
}

// The controller alone, on an existing claim, without service accounts of
// the chart's making.
func TestControllerOnly(t *testing.T) {
	vals, err := chartutil.ReadValues([]byte(`
agent: {enabled: false}
controller: {persistence: {existingClaim: sopilot-history-restored}}
serviceAccount: {create: false, controllerName: sopilot-sa}
`))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Render(chartDir, vals, rel)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{objs: objs}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.Kind+"/"+o.Name)
	}
	want := []string{"Deployment/sopilot-controller", "Service/sopilot-controller"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("rendered %v, want %v", kinds, want)
	}
	checkWorkloads(t, r)
	spec := r.controller(t).Spec.Template.Spec
	if spec.ServiceAccountName != "sopilot-sa" {
		t.Errorf("serviceAccountName %q, want sopilot-sa", spec.ServiceAccountName)
	}
	if v, _ := volume(spec, "history"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "sopilot-history-restored" {
		t.Errorf("history volume %+v, want the existing claim", v.VolumeSource)
	}
}
