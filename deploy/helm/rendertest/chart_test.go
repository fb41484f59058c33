package rendertest

import (
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
)

const chartDir = "../sopilot"

var rel = Release{Name: "sopilot", Namespace: "soperator"}

// Names the chart gives the objects of release "sopilot" in "soperator".
const (
	controllerName = "sopilot-controller"
	agentName      = "sopilot-agent"
	controllerDNS  = "sopilot-controller.soperator.svc.cluster.local"
	appVersion     = "0.1.0"
)

// variant is one documented way of installing the chart: a values file
// under ci/ (or the defaults) and what must hold for it in particular.
type variant struct {
	file  string // under ci/; "" for the defaults
	check func(t *testing.T, r rendered)
}

var variants = []variant{
	{"", checkDefaults},
	{"rest-backend-values.yaml", checkRESTBackend},
	{"cli-backend-values.yaml", checkCLIBackend},
	{"certmanager-tls-values.yaml", checkCertManagerTLS},
	{"existing-secret-tls-values.yaml", checkExistingSecretTLS},
	{"monitoring-values.yaml", checkMonitoring},
	{"tokenreview-values.yaml", checkTokenReview},
	{"agent-options-values.yaml", checkAgentOptions},
	{"simulated-agents-values.yaml", checkSimulatedAgents},
	{"k8s-e2e-values.yaml", checkK8sE2E},
}

func (v variant) name() string {
	if v.file == "" {
		return "defaults"
	}
	return strings.TrimSuffix(v.file, "-values.yaml")
}

func (v variant) values(t *testing.T) map[string]any {
	t.Helper()
	if v.file == "" {
		return map[string]any{}
	}
	vals, err := LoadValuesFile(filepath.Join(chartDir, "ci", v.file))
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

// rendered is one variant's objects, with lookups.
type rendered struct {
	objs []Object
	// readEnviron marks the documented exception: the agent runs as uid 0
	// with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.
	readEnviron bool
}

func (r rendered) all(kind string) []Object {
	var out []Object
	for _, o := range r.objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) get(t *testing.T, kind, name string) any {
	t.Helper()
	for _, o := range r.objs {
		if o.Kind == kind && o.Name == name {
			return o.Obj
		}
	}
	t.Fatalf("no %s %q among %s", kind, name, r.inventory())
	return nil
}

func (r rendered) has(kind, name string) bool {
	for _, o := range r.objs {
		if o.Kind == kind && o.Name == name {
			return true
		}
	}
	return false
}

func (r rendered) inventory() string {
	var s []string
	for _, o := range r.objs {
		s = append(s, o.Kind+"/"+o.Name)
	}
	return strings.Join(s, ", ")
}

func (r rendered) controller(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return r.get(t, "Deployment", controllerName).(*appsv1.Deployment)
}

func (r rendered) agents(t *testing.T) []*appsv1.DaemonSet {
	t.Helper()
	var out []*appsv1.DaemonSet
	for _, o := range r.all("DaemonSet") {
		out = append(out, o.Obj.(*appsv1.DaemonSet))
	}
	return out
}

func render(t *testing.T, v variant) rendered {
	t.Helper()
	vals := v.values(t)
	objs, err := Render(chartDir, vals, rel)
	if err != nil {
		t.Fatalf("render %s: %v", v.name(), err)
	}
	r := rendered{objs: objs}
	if a, ok := vals["agent"].(map[string]any); ok {
		if at, ok := a["attribution"].(map[string]any); ok {
			r.readEnviron, _ = at["readEnviron"].(bool)
		}
	}
	return r
}

func TestVariantsCoverCIFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var have, want []string
	for _, f := range files {
		have = append(have, filepath.Base(f))
	}
	for _, v := range variants {
		if v.file != "" {
			want = append(want, v.file)
		}
	}
	sort.Strings(want)
	if !slices.Equal(have, want) {
		t.Errorf("ci/ holds %v, the tests check %v: give every values file a variant", have, want)
	}
}

func TestRenderVariants(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name(), func(t *testing.T) {
			r := render(t, v)
			checkEveryObject(t, r)
			checkWorkloads(t, r)
			checkServices(t, r)
			checkController(t, r)
			checkAgents(t, r)
			v.check(t, r)
		})
	}
}

func TestLint(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name(), func(t *testing.T) {
			if ms := Lint(chartDir, v.values(t), rel.Namespace); len(ms) > 0 {
				t.Errorf("helm lint:\n%s", FormatMessages(ms))
			}
		})
	}
}

// --- checks common to every variant -------------------------------------

func checkEveryObject(t *testing.T, r rendered) {
	if len(r.objs) == 0 {
		t.Fatal("nothing rendered")
	}
	seen := map[string]bool{}
	for _, o := range r.objs {
		key := o.Kind + "/" + o.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		clusterScoped := o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding"
		if !clusterScoped && o.Namespace != rel.Namespace {
			t.Errorf("%s: namespace %q, want the release's %q", key, o.Namespace, rel.Namespace)
		}
		if !strings.HasPrefix(o.Name, "sopilot") {
			t.Errorf("%s: name does not start with the release's full name", key)
		}
	}
}

func podSpecs(t *testing.T, r rendered) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range r.all("Deployment") {
		out["Deployment/"+o.Name] = &o.Obj.(*appsv1.Deployment).Spec.Template
	}
	for _, o := range r.all("DaemonSet") {
		out["DaemonSet/"+o.Name] = &o.Obj.(*appsv1.DaemonSet).Spec.Template
	}
	if len(out) == 0 {
		t.Fatal("no workloads rendered")
	}
	return out
}

func checkWorkloads(t *testing.T, r rendered) {
	for name, tpl := range podSpecs(t, r) {
		spec := tpl.Spec
		isAgent := strings.HasPrefix(name, "DaemonSet/")
		// hostPID: the agent's only, so that NVML lists the jobs'
		// processes (agent.hostPID in values.yaml).
		if spec.HostNetwork || spec.HostIPC || (spec.HostPID && !isAgent) {
			t.Errorf("%s: hostNetwork %v hostIPC %v hostPID %v, want none", name, spec.HostNetwork, spec.HostIPC, spec.HostPID)
		}
		if psc := spec.SecurityContext; psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", name)
		}
		if isAgent && (spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken) {
			t.Errorf("%s: the agent must not mount a service account token", name)
		}
		volumes := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = v
		}
		used := map[string]bool{}
		all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
		for _, c := range all {
			where := name + " container " + c.Name
			checkResources(t, where, c.Resources)
			checkContainerSecurity(t, where, c.SecurityContext, spec.SecurityContext, isAgent && r.readEnviron && c.Name == "agent")
			if c.Name == "wait-for-toolkit" {
				checkToolkitWait(t, where, spec, c)
			}
			if !strings.HasSuffix(c.Image, ":"+appVersion) && !strings.Contains(c.Image, ":"+appVersion+"-slurm") {
				t.Errorf("%s: image %q is not tagged with the appVersion %s", where, c.Image, appVersion)
			}
			for _, m := range c.VolumeMounts {
				used[m.Name] = true
				v, ok := volumes[m.Name]
				if !ok {
					t.Errorf("%s: mount %s of missing volume %q", where, m.MountPath, m.Name)
					continue
				}
				if v.HostPath != nil && !m.ReadOnly {
					t.Errorf("%s: host path %s mounted read-write at %s", where, v.HostPath.Path, m.MountPath)
				}
				if (v.Secret != nil || v.ConfigMap != nil) && !m.ReadOnly {
					t.Errorf("%s: %s mounted read-write", where, m.Name)
				}
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" {
					if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
						t.Errorf("%s: %s probe names port %q, which the container does not declare", where, kind, p.HTTPGet.Port.StrVal)
					}
				}
			}
			for _, res := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				if _, ok := res["nvidia.com/gpu"]; ok {
					t.Errorf("%s: requests nvidia.com/gpu: monitoring must not take GPUs from jobs", where)
				}
			}
		}
		for v := range volumes {
			if !used[v] {
				t.Errorf("%s: volume %q is mounted nowhere", name, v)
			}
		}
	}
}

func checkResources(t *testing.T, where string, rr corev1.ResourceRequirements) {
	t.Helper()
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := rr.Requests[res]
		lim, okLim := rr.Limits[res]
		if !okReq || req.IsZero() {
			t.Errorf("%s: no %s request", where, res)
		}
		if !okLim || lim.IsZero() {
			t.Errorf("%s: no %s limit", where, res)
		}
		if okReq && okLim && req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", where, res, req.String(), lim.String())
		}
	}
}

func checkContainerSecurity(t *testing.T, where string, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext, rootException bool) {
	t.Helper()
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem is writable", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: capabilities do not drop ALL", where)
	}
	var added []string
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Add {
			added = append(added, string(c))
		}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && psc != nil {
		nonRoot = psc.RunAsNonRoot
	}
	if rootException {
		// Documented exception (agent.attribution.readEnviron): uid 0 with
		// exactly the two capabilities that reading other users'
		// /proc/<pid>/environ needs.
		sort.Strings(added)
		if want := []string{"DAC_READ_SEARCH", "SYS_PTRACE"}; !slices.Equal(added, want) {
			t.Errorf("%s: adds capabilities %v, want exactly %v", where, added, want)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			t.Errorf("%s: the readEnviron exception runs as uid 0, got %v", where, sc.RunAsUser)
		}
		return
	}
	if len(added) > 0 {
		t.Errorf("%s: adds capabilities %v", where, added)
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not set", where)
	}
	uid := sc.RunAsUser
	if uid == nil && psc != nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("%s: no non-zero runAsUser (images may not say which user they run as)", where)
	}
}

func checkServices(t *testing.T, r rendered) {
	pods := podSpecs(t, r)
	for _, o := range r.all("Service") {
		svc := o.Obj.(*corev1.Service)
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if sel.Empty() {
			t.Errorf("Service %s selects every pod", svc.Name)
			continue
		}
		matched := 0
		for name, tpl := range pods {
			if !sel.Matches(labels.Set(tpl.Labels)) {
				continue
			}
			matched++
			for _, sp := range svc.Spec.Ports {
				found := false
				for _, c := range tpl.Spec.Containers {
					for _, cp := range c.Ports {
						if cp.Name == sp.TargetPort.StrVal && cp.ContainerPort == sp.Port {
							found = true
						}
					}
				}
				if !found {
					t.Errorf("Service %s port %s (%d -> %q) matches no container port of %s", svc.Name, sp.Name, sp.Port, sp.TargetPort.StrVal, name)
				}
			}
		}
		if matched == 0 {
			t.Errorf("Service %s selects no rendered workload", svc.Name)
		}
	}
	// Selectors of workloads must not overlap: the controller's Service must
	// never reach an agent.
	ctl := r.get(t, "Service", controllerName).(*corev1.Service)
	for name, tpl := range pods {
		if strings.HasPrefix(name, "DaemonSet/") && labels.SelectorFromSet(ctl.Spec.Selector).Matches(labels.Set(tpl.Labels)) {
			t.Errorf("the controller Service selects the agents of %s", name)
		}
	}
}

func arg(args []string, flag string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

func wantArg(t *testing.T, where string, args []string, flag, want string) {
	t.Helper()
	got, ok := arg(args, flag)
	if !ok {
		t.Errorf("%s: no %s (args %v)", where, flag, args)
	} else if got != want {
		t.Errorf("%s: %s=%s, want %s", where, flag, got, want)
	}
}

func noArg(t *testing.T, where string, args []string, flag string) {
	t.Helper()
	if v, ok := arg(args, flag); ok {
		t.Errorf("%s: unexpected %s=%s", where, flag, v)
	}
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func mount(c corev1.Container, path string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func volume(spec corev1.PodSpec, name string) (corev1.Volume, bool) {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// tlsOn: the controller serves TLS, or an agent connects with TLS (with a
// client certificate or a service account token; both verify the
// controller with --tls-ca-file).
func tlsOn(c corev1.Container) bool {
	_, cert := arg(c.Args, "--tls-cert-file")
	_, ca := arg(c.Args, "--tls-ca-file")
	return cert || ca
}

func checkController(t *testing.T, r rendered) {
	d := r.controller(t)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("controller replicas %v, want 1 (one bbolt writer)", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("controller strategy %q, want Recreate", d.Spec.Strategy.Type)
	}
	spec := d.Spec.Template.Spec
	c := container(t, spec, "controller")
	wantArg(t, "controller", c.Args, "--grpc-addr", ":50051")
	wantArg(t, "controller", c.Args, "--metrics-addr", ":9477")
	wantArg(t, "controller", c.Args, "--db", "/var/lib/sopilot/controller.db")
	if m, ok := mount(c, "/var/lib/sopilot"); !ok || m.ReadOnly {
		t.Errorf("controller: history directory not mounted writable: %+v", m)
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			t.Errorf("controller: no %s probe", kind)
			continue
		}
		if tlsOn(c) {
			// The kubelet's gRPC probe speaks plaintext only.
			if p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != "metrics" {
				t.Errorf("controller with TLS: %s probe %+v, want GET /healthz on port metrics", kind, p.ProbeHandler)
			}
			continue
		}
		if p.GRPC == nil || p.GRPC.Port != 50051 {
			t.Errorf("controller: %s probe %+v, want gRPC health on 50051", kind, p.ProbeHandler)
		} else if p.GRPC.Service != nil && *p.GRPC.Service != "" {
			t.Errorf("controller: %s probe asks for service %q; the controller reports the server's health (\"\")", kind, *p.GRPC.Service)
		}
	}
	if e, ok := env(c, "SOPILOT_INSECURE"); tlsOn(c) == ok || (ok && e.Value != "true") {
		t.Errorf("controller: TLS %v but SOPILOT_INSECURE %+v (set exactly when TLS is off)", tlsOn(c), e)
	}
	svc := r.get(t, "Service", controllerName).(*corev1.Service)
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["grpc"] != 50051 || ports["metrics"] != 9477 {
		t.Errorf("controller Service ports %v, want grpc 50051 and metrics 9477", ports)
	}
	// The controller needs no Kubernetes API access unless TokenReview is on.
	hasReview := r.has("ClusterRole", controllerName+"-tokenreview")
	if mount := spec.AutomountServiceAccountToken; mount == nil || *mount != hasReview {
		t.Errorf("controller automountServiceAccountToken %v, want %v (TokenReview RBAC rendered: %v)", mount, hasReview, hasReview)
	}
	for _, kind := range []string{"Role", "RoleBinding"} {
		if n := len(r.all(kind)); n > 0 {
			t.Errorf("%d %s objects rendered; the chart needs none", n, kind)
		}
	}
}

func checkAgents(t *testing.T, r rendered) {
	if n := len(r.agents(t)); n > 1 {
		t.Errorf("%d agent DaemonSets, want one for every node: %s", n, r.inventory())
	}
	for _, o := range r.all("ConfigMap") {
		if strings.Contains(o.Name, "node-names") {
			t.Errorf("ConfigMap %s: a static node-name map is rendered", o.Name)
		}
	}
	for _, ds := range r.agents(t) {
		where := "DaemonSet " + ds.Name
		spec := ds.Spec.Template.Spec
		c := container(t, spec, "agent")
		for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != "admin" {
				t.Errorf("%s: %s probe %+v, want GET /healthz on port admin", where, kind, p)
			}
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != "admin" || c.Ports[0].ContainerPort != 9478 {
			t.Errorf("%s: ports %+v, want admin 9478", where, c.Ports)
		}
		wantArg(t, where, c.Args, "--admin-addr", ":9478")
		wantArg(t, where, c.Args, "--controller", controllerDNS+":50051")
		wantArg(t, where, c.Args, "--sysfs-root", "/host/sys")
		wantArg(t, where, c.Args, "--proc-root", "/host/proc")
		for path, host := range map[string]string{"/host/sys": "/sys", "/host/proc": "/proc"} {
			m, ok := mount(c, path)
			if !ok {
				t.Errorf("%s: %s not mounted", where, path)
				continue
			}
			if !m.ReadOnly {
				t.Errorf("%s: %s is writable", where, path)
			}
			v, _ := volume(spec, m.Name)
			if v.HostPath == nil || v.HostPath.Path != host {
				t.Errorf("%s: %s is not the host's %s: %+v", where, path, host, v.VolumeSource)
			}
		}
		if _, ok := mount(c, "/tmp"); !ok {
			t.Errorf("%s: no writable /tmp under a read-only root", where)
		}
		if e, ok := env(c, "NVIDIA_VISIBLE_DEVICES"); !ok || e.Value != "all" {
			t.Errorf("%s: NVIDIA_VISIBLE_DEVICES %+v, want all", where, e)
		}
		// Node identity: the agent always reports its Kubernetes node
		// name, and the controller maps it to Slurm nodes by instance_id.
		if e, ok := env(c, "K8S_NODE_NAME"); !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("%s: K8S_NODE_NAME %+v, want the downward API's spec.nodeName", where, e)
		}
		wantArg(t, where, c.Args, "--node-name", "$(K8S_NODE_NAME)")
		if len(c.Command) != 0 {
			t.Errorf("%s: command %q overrides the image's node-agent", where, c.Command)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: the agent pod mounts the default service account token (it never calls the Kubernetes API)", where)
		}
		_, tokenAuth := arg(c.Args, "--token-file")
		switch {
		case tokenAuth:
			checkAgentToken(t, where, spec, c)
		case tlsOn(c):
			wantArg(t, where, c.Args, "--tls-key-file", "/etc/sopilot/tls/tls.key")
			wantArg(t, where, c.Args, "--tls-ca-file", "/etc/sopilot/tls/ca.crt")
			if m, ok := mount(c, "/etc/sopilot/tls"); !ok || !m.ReadOnly {
				t.Errorf("%s: TLS material not mounted read-only", where)
			}
			if _, ok := volume(spec, "sopilot-token"); ok {
				t.Errorf("%s: a service account token volume beside a client certificate", where)
			}
		}
		if e, ok := env(c, "SOPILOT_INSECURE"); tlsOn(c) == ok || (ok && e.Value != "true") {
			t.Errorf("%s: TLS %v but SOPILOT_INSECURE %+v", where, tlsOn(c), e)
		}
	}
}

// checkAgentToken: an agent authenticating with its pod's service account
// token gets a projected token for the controller's audience and the CA of
// the controller's certificate, and nothing else: no client certificate,
// no key.
func checkAgentToken(t *testing.T, where string, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	wantArg(t, where, c.Args, "--token-file", "/var/run/secrets/sopilot/token")
	wantArg(t, where, c.Args, "--tls-ca-file", "/var/run/secrets/sopilot/ca.crt")
	wantArg(t, where, c.Args, "--controller-server-name", controllerDNS)
	noArg(t, where, c.Args, "--tls-cert-file")
	noArg(t, where, c.Args, "--tls-key-file")
	if spec.ServiceAccountName != agentName {
		t.Errorf("%s: service account %q, want the agents' own %s", where, spec.ServiceAccountName, agentName)
	}
	if m, ok := mount(c, "/var/run/secrets/sopilot"); !ok || !m.ReadOnly {
		t.Errorf("%s: token volume not mounted read-only at /var/run/secrets/sopilot", where)
	}
	if _, ok := volume(spec, "tls"); ok {
		t.Errorf("%s: a certificate volume beside the service account token", where)
	}
	v, _ := volume(spec, "sopilot-token")
	if v.Projected == nil || len(v.Projected.Sources) != 2 {
		t.Fatalf("%s: token volume %+v, want a projected token and the controller's CA", where, v.VolumeSource)
	}
	tok, ca := v.Projected.Sources[0].ServiceAccountToken, v.Projected.Sources[1].Secret
	if tok == nil || tok.Audience != "sopilot" || tok.Path != "token" || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != 3600 {
		t.Errorf("%s: projected token %+v, want audience sopilot, path token, 3600 s", where, tok)
	}
	if ca == nil || ca.Name != "sopilot-controller-tls" || len(ca.Items) != 1 || ca.Items[0].Key != "ca.crt" || ca.Items[0].Path != "ca.crt" {
		t.Errorf("%s: CA source %+v, want only ca.crt of the controller's certificate Secret", where, ca)
	}
}

// checkTokenReviewRBAC: the controller may create tokenreviews, nothing
// more, and mounts its own service account token to do so.
func checkTokenReviewRBAC(t *testing.T, r rendered) {
	t.Helper()
	cr := r.get(t, "ClusterRole", controllerName+"-tokenreview").(*rbacv1.ClusterRole)
	want := rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}
	if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].APIGroups, want.APIGroups) ||
		!slices.Equal(cr.Rules[0].Resources, want.Resources) || !slices.Equal(cr.Rules[0].Verbs, want.Verbs) ||
		len(cr.Rules[0].ResourceNames) > 0 || len(cr.Rules[0].NonResourceURLs) > 0 {
		t.Errorf("TokenReview ClusterRole rules %+v, want exactly %+v", cr.Rules, want)
	}
	crb := r.get(t, "ClusterRoleBinding", controllerName+"-tokenreview").(*rbacv1.ClusterRoleBinding)
	if crb.RoleRef.Name != cr.Name || crb.RoleRef.Kind != "ClusterRole" ||
		len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" ||
		crb.Subjects[0].Name != controllerName || crb.Subjects[0].Namespace != rel.Namespace {
		t.Errorf("TokenReview binding %+v %+v, want the controller's ServiceAccount only", crb.RoleRef, crb.Subjects)
	}
	spec := r.controller(t).Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Errorf("controller does not mount its service account token, which TokenReview needs")
	}
	wantArg(t, "controller", container(t, spec, "controller").Args, "--tokenreview-audience", "sopilot")
}

// noTokenReview: without TokenReview the controller has no Kubernetes
// permission and no token.
func noTokenReview(t *testing.T, r rendered) {
	t.Helper()
	if r.has("ClusterRole", controllerName+"-tokenreview") || r.has("ClusterRoleBinding", controllerName+"-tokenreview") {
		t.Errorf("TokenReview RBAC rendered although nothing reviews tokens")
	}
	spec := r.controller(t).Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("controller mounts a service account token it does not use")
	}
	c := container(t, spec, "controller")
	noArg(t, "controller", c.Args, "--tokenreview-audience")
	noArg(t, "controller", c.Args, "--agent-service-account")
}

// --- per variant ----------------------------------------------------------

func gpuSelector(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	// Soperator's Terraform labels every GPU node group so; the GPU
	// Operator's nvidia.com/gpu.present may be missing.
	if spec.NodeSelector["nebius.com/gpu"] != "true" || spec.NodeSelector["nvidia.com/gpu.present"] != "" {
		t.Errorf("DaemonSet %s nodeSelector %v does not select GPU nodes", ds.Name, spec.NodeSelector)
	}
	tolerated := false
	for _, tol := range spec.Tolerations {
		if tol.Key == "nvidia.com/gpu" && tol.Operator == corev1.TolerationOpExists {
			tolerated = true
		}
	}
	if !tolerated {
		t.Errorf("DaemonSet %s does not tolerate the nvidia.com/gpu taint: %+v", ds.Name, spec.Tolerations)
	}
}

func checkDefaults(t *testing.T, r rendered) {
	noTokenReview(t, r) // TLS is off by default: no agent tokens to review
	wantKinds := map[string]int{"ServiceAccount": 2, "PersistentVolumeClaim": 1, "Service": 2, "Deployment": 1, "DaemonSet": 1}
	got := map[string]int{}
	for _, o := range r.objs {
		got[o.Kind]++
	}
	for k, n := range wantKinds {
		if got[k] != n {
			t.Errorf("%d %s, want %d", got[k], k, n)
		}
	}
	if len(got) != len(wantKinds) {
		t.Errorf("kinds rendered: %v, want only %v (no RBAC, TLS or monitoring objects by default)", got, wantKinds)
	}
	for _, o := range r.all("ServiceAccount") {
		if sa := o.Obj.(*corev1.ServiceAccount); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s mounts its token by default", sa.Name)
		}
	}
	checkRESTDefaults(t, r, "http://soperator-rest-svc:6820", "soperator-rest-jwt-key")
	pvc := r.get(t, "PersistentVolumeClaim", controllerName+"-history").(*corev1.PersistentVolumeClaim)
	if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("history claim access modes %v, want ReadWriteOnce only", pvc.Spec.AccessModes)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("5Gi")) != 0 {
		t.Errorf("history claim asks for %s, want 5Gi", got.String())
	}
	if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("history claim is deleted with the release: annotations %v", pvc.Annotations)
	}
	spec := r.controller(t).Spec.Template.Spec
	if v, _ := volume(spec, "history"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("history volume %+v, want claim %s", v.VolumeSource, pvc.Name)
	}
	c := container(t, spec, "controller")
	wantArg(t, "controller", c.Args, "--remediation", "dry-run")
	wantArg(t, "controller", c.Args, "--default-workdir", "/opt/sopilot/runs")
	wantArg(t, "controller", c.Args, "--default-output-dir", "/opt/sopilot/runs")
	noArg(t, "controller", c.Args, "--thresholds-file")

	ds := r.agents(t)[0]
	gpuSelector(t, ds)
	checkSoperatorAgent(t, ds)
	as := ds.Spec.Template.Spec
	if as.RuntimeClassName == nil || *as.RuntimeClassName != "nvidia" {
		t.Errorf("agent runtimeClassName %v, want nvidia", as.RuntimeClassName)
	}
	a := container(t, as, "agent")
	wantArg(t, "agent", a.Args, "--node-name", "$(K8S_NODE_NAME)")
	wantArg(t, "agent", a.Args, "--nvml", "real")
	wantArg(t, "agent", a.Args, "--ib", "sysfs")
	// Progress files: the jail's run directory, read-only, at the path
	// jobs see.
	m, ok := mount(a, "/opt/sopilot/runs")
	if !ok || !m.ReadOnly || m.SubPath != "opt/sopilot/runs" {
		t.Errorf("agent: jail run directory mount %+v, want read-only subPath opt/sopilot/runs", m)
	}
	if v, _ := volume(as, m.Name); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "jail-pvc" || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("agent: jail volume %+v, want claim jail-pvc read-only", v.VolumeSource)
	}
}

func checkRESTDefaults(t *testing.T, r rendered, url, secret string) {
	t.Helper()
	spec := r.controller(t).Spec.Template.Spec
	c := container(t, spec, "controller")
	if !strings.HasPrefix(c.Image, "ghcr.io/sopilot/controller:") {
		t.Errorf("rest backend uses image %s, want the static controller image", c.Image)
	}
	wantArg(t, "controller", c.Args, "--scheduler", "rest")
	wantArg(t, "controller", c.Args, "--slurmrestd-url", url)
	wantArg(t, "controller", c.Args, "--slurm-jwt-key-file", "/etc/sopilot/slurm-jwt/jwt.key")
	noArg(t, "controller", c.Args, "--slurm-conf")
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Errorf("rest backend: %d containers and %d init containers, want the controller alone", len(spec.Containers), len(spec.InitContainers))
	}
	v, ok := volume(spec, "slurm-jwt")
	if !ok || v.Secret == nil || v.Secret.SecretName != secret {
		t.Fatalf("JWT key volume %+v, want Secret %s", v.VolumeSource, secret)
	}
	if len(v.Secret.Items) != 1 || v.Secret.Items[0].Path != "jwt.key" {
		t.Errorf("JWT key volume items %+v, want one item at jwt.key", v.Secret.Items)
	}
	if m, ok := mount(c, "/etc/sopilot/slurm-jwt"); !ok || !m.ReadOnly {
		t.Errorf("JWT key not mounted read-only at /etc/sopilot/slurm-jwt")
	}
}

func checkRESTBackend(t *testing.T, r rendered) {
	checkRESTDefaults(t, r, "http://slurm1-rest-svc.slurm1.svc:6820", "slurm1-rest-jwt-key")
	c := container(t, r.controller(t).Spec.Template.Spec, "controller")
	wantArg(t, "controller", c.Args, "--slurmrestd-api-version", "v0.0.40")
	wantArg(t, "controller", c.Args, "--slurm-user", "sopilot")
	pvc := r.get(t, "PersistentVolumeClaim", controllerName+"-history").(*corev1.PersistentVolumeClaim)
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "network-ssd" {
		t.Errorf("history storage class %v, want network-ssd", pvc.Spec.StorageClassName)
	}
	a := container(t, r.agents(t)[0].Spec.Template.Spec, "agent")
	for _, dir := range []string{"/opt/sopilot/runs", "/home"} {
		if m, ok := mount(a, dir); !ok || !m.ReadOnly || m.SubPath != strings.TrimPrefix(dir, "/") {
			t.Errorf("agent: jail directory %s mount %+v", dir, m)
		}
	}
}

func checkCLIBackend(t *testing.T, r rendered) {
	spec := r.controller(t).Spec.Template.Spec
	c := container(t, spec, "controller")
	if !strings.HasPrefix(c.Image, "ghcr.io/sopilot/controller-slurmcli:") {
		t.Errorf("cli backend uses image %s, want controller-slurmcli", c.Image)
	}
	wantArg(t, "controller", c.Args, "--scheduler", "cli")
	wantArg(t, "controller", c.Args, "--slurm-conf", "/etc/slurm/slurm.conf")
	wantArg(t, "controller", c.Args, "--remediation", "on")
	wantArg(t, "controller", c.Args, "--thresholds-file", "/etc/sopilot/thresholds/thresholds.json")
	noArg(t, "controller", c.Args, "--slurmrestd-url")
	noArg(t, "controller", c.Args, "--slurm-jwt-key-file")

	// Soperator 3.0 runs Slurm 25.11, which takes Debian trixie's 24.11
	// tools.
	if !strings.HasSuffix(c.Image, ":"+appVersion+"-slurm24.11") {
		t.Errorf("cli image %s, want tag %s-slurm24.11", c.Image, appVersion)
	}
	// The whole config set of the jail (/etc/slurm from Soperator 1.22 on),
	// linked into /etc/slurm without plugstack.conf.
	checkConfigSet(t, spec, c, func(src corev1.Volume, m corev1.VolumeMount) bool {
		return src.PersistentVolumeClaim != nil && src.PersistentVolumeClaim.ClaimName == "jail-pvc" && src.PersistentVolumeClaim.ReadOnly && m.SubPath == "etc/slurm"
	})
	key, _ := volume(spec, "munge-key-secret")
	if key.Secret == nil || key.Secret.SecretName != "slurm1-munge" || len(key.Secret.Items) != 1 || key.Secret.Items[0].Key != "munge.key" {
		t.Errorf("munge key volume %+v, want Secret slurm1-munge item munge.key", key.VolumeSource)
	}
	// munged: a sidecar sharing the socket directory; the key is copied by
	// an init container into directories munged accepts.
	if len(spec.InitContainers) != 2 || spec.InitContainers[0].Name != "slurm-config" || spec.InitContainers[1].Name != "munge-setup" {
		t.Fatalf("init containers %v, want slurm-config and munge-setup", spec.InitContainers)
	}
	m := container(t, spec, "munged")
	if m.Command[0] != "munged" || !slices.Contains(m.Command, "--foreground") || !slices.Contains(m.Command, "--socket=/run/munge/munge.socket.2") {
		t.Errorf("munged command %v", m.Command)
	}
	sock, ok := mount(c, "/run/munge")
	msock, ok2 := mount(m, "/run/munge")
	if !ok || !ok2 || sock.Name != msock.Name || sock.SubPath != "sock" || msock.SubPath != "sock" {
		t.Errorf("controller and munged do not share the socket directory: %+v %+v", sock, msock)
	}
	if v, _ := volume(spec, sock.Name); v.EmptyDir == nil {
		t.Errorf("munge socket volume %+v, want an emptyDir", v.VolumeSource)
	}
	cm := r.get(t, "ConfigMap", controllerName+"-thresholds").(*corev1.ConfigMap)
	var th map[string]any
	if err := json.Unmarshal([]byte(cm.Data["thresholds.json"]), &th); err != nil || th["version"] != 1.0 || th["platform"] != "h200" {
		t.Errorf("thresholds ConfigMap %q: %v", cm.Data["thresholds.json"], err)
	}
	if r.get(t, "Deployment", controllerName).(*appsv1.Deployment).Spec.Template.Annotations["checksum/thresholds"] == "" {
		t.Errorf("a thresholds change would not restart the controller: no checksum annotation")
	}
}

func certificates(r rendered) map[string]*Certificate {
	out := map[string]*Certificate{}
	for _, o := range r.all("Certificate") {
		out[o.Name] = o.Obj.(*Certificate)
	}
	return out
}

func checkCertificate(t *testing.T, c *Certificate, usage string) {
	t.Helper()
	if !slices.Contains(c.Spec.Usages, usage) {
		t.Errorf("Certificate %s usages %v lack %q", c.Name, c.Spec.Usages, usage)
	}
	for _, d := range []string{c.Spec.Duration, c.Spec.RenewBefore} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("Certificate %s: %v", c.Name, err)
		}
	}
	if c.Spec.PrivateKey == nil || c.Spec.PrivateKey.RotationPolicy != "Always" {
		t.Errorf("Certificate %s does not rotate its key", c.Name)
	}
}

func checkCertManagerTLS(t *testing.T, r rendered) {
	certs := certificates(r)
	ca, ok := certs["sopilot-ca"]
	if !ok || !ca.Spec.IsCA || ca.Spec.IssuerRef.Name != "sopilot-selfsigned" {
		t.Fatalf("no self-signed CA certificate: %+v", certs)
	}
	issuers := map[string]*Issuer{}
	for _, o := range r.all("Issuer") {
		issuers[o.Name] = o.Obj.(*Issuer)
	}
	if i := issuers["sopilot-selfsigned"]; i == nil || i.Spec.SelfSigned == nil {
		t.Errorf("no self-signed Issuer")
	}
	if i := issuers["sopilot-ca"]; i == nil || i.Spec.CA == nil || i.Spec.CA.SecretName != ca.Spec.SecretName {
		t.Errorf("CA Issuer does not use the CA certificate's Secret %s", ca.Spec.SecretName)
	}
	srv, ok := certs[controllerName]
	if !ok {
		t.Fatalf("no controller certificate among %v", certs)
	}
	checkCertificate(t, srv, "server auth")
	if !slices.Contains(srv.Spec.DNSNames, controllerDNS) || !slices.Contains(srv.Spec.DNSNames, controllerName) {
		t.Errorf("controller certificate DNS names %v lack the Service's names", srv.Spec.DNSNames)
	}
	if srv.Spec.IssuerRef.Name != "sopilot-ca" {
		t.Errorf("controller certificate issued by %+v, want the chart's CA", srv.Spec.IssuerRef)
	}
	spec := r.controller(t).Spec.Template.Spec
	c := container(t, spec, "controller")
	wantArg(t, "controller", c.Args, "--tls-cert-file", "/etc/sopilot/tls/tls.crt")
	wantArg(t, "controller", c.Args, "--tls-key-file", "/etc/sopilot/tls/tls.key")
	wantArg(t, "controller", c.Args, "--tls-client-ca-file", "/etc/sopilot/tls/ca.crt")
	if v, _ := volume(spec, "tls"); v.Secret == nil || v.Secret.SecretName != srv.Spec.SecretName {
		t.Errorf("controller TLS volume %+v, want Secret %s", v.VolumeSource, srv.Spec.SecretName)
	}
	// Agents authenticate with their pods' service account tokens (the
	// default tls.agentAuth), which the controller reviews and binds to
	// each pod's node.
	ds := r.agents(t)
	if len(ds) != 1 {
		t.Fatalf("%d agent DaemonSets, want 1", len(ds))
	}
	checkAgentToken(t, "agent", ds[0].Spec.Template.Spec, container(t, ds[0].Spec.Template.Spec, "agent"))
	checkTokenReviewRBAC(t, r)
	wantArg(t, "controller", c.Args, "--agent-service-account", rel.Namespace+"/"+agentName)
	if len(certs) != 2 {
		t.Errorf("certificates %v, want the CA and the controller's only", certs)
	}
}

func checkExistingSecretTLS(t *testing.T, r rendered) {
	if n := len(r.all("Certificate")) + len(r.all("Issuer")); n != 0 {
		t.Errorf("%d cert-manager objects rendered without cert-manager", n)
	}
	spec := r.controller(t).Spec.Template.Spec
	if v, _ := volume(spec, "tls"); v.Secret == nil || v.Secret.SecretName != "sopilot-controller-tls" {
		t.Errorf("controller TLS volume %+v, want Secret sopilot-controller-tls", v.VolumeSource)
	}
	ds := r.agents(t)
	if len(ds) != 1 {
		t.Fatalf("%d agent DaemonSets, want 1", len(ds))
	}
	as := ds[0].Spec.Template.Spec
	a := container(t, as, "agent")
	wantArg(t, "agent", a.Args, "--controller-server-name", "sopilot.example.internal")
	// Agent certificates come from the nodes (agentAuth=clientCertificate).
	checkAgentCertFromHost(t, as, a, "/etc/sopilot/agent-tls")
	noTokenReview(t, r)
}

// checkAgentCertFromHost: with tls.agentAuth=clientCertificate the agent
// presents the certificate its node provides in a host directory, and no
// service account token.
func checkAgentCertFromHost(t *testing.T, spec corev1.PodSpec, a corev1.Container, hostDir string) {
	t.Helper()
	wantArg(t, "agent", a.Args, "--tls-cert-file", "/etc/sopilot/tls/tls.crt")
	noArg(t, "agent", a.Args, "--token-file")
	v, _ := volume(spec, "tls")
	if v.HostPath == nil || v.HostPath.Path != hostDir || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory {
		t.Errorf("agent TLS volume %+v, want the host's directory %s", v.VolumeSource, hostDir)
	}
}

func checkMonitoring(t *testing.T, r rendered) {
	services := map[string]*corev1.Service{}
	for _, o := range r.all("Service") {
		services[o.Name] = o.Obj.(*corev1.Service)
	}
	sms := r.all("ServiceMonitor")
	if len(sms) != 2 {
		t.Fatalf("%d ServiceMonitors, want the controller's and the agents'", len(sms))
	}
	for _, o := range sms {
		sm := o.Obj.(*ServiceMonitor)
		if sm.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("ServiceMonitor %s lacks the labels Prometheus selects by: %v", sm.Name, sm.Labels)
		}
		sel := labels.SelectorFromSet(sm.Spec.Selector.MatchLabels)
		var hit []*corev1.Service
		for _, svc := range services {
			if sel.Matches(labels.Set(svc.Labels)) {
				hit = append(hit, svc)
			}
		}
		if len(hit) != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want 1", sm.Name, len(hit))
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			if ep.Interval != "15s" || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor %s endpoint %+v", sm.Name, ep)
			}
			found := false
			for _, p := range hit[0].Spec.Ports {
				found = found || p.Name == ep.Port
			}
			if !found {
				t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s lacks", sm.Name, ep.Port, hit[0].Name)
			}
		}
	}
	cm := r.get(t, "ConfigMap", "sopilot-dashboard").(*corev1.ConfigMap)
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", cm.Labels)
	}
	checkDashboard(t, cm.Data["sopilot.json"])
}

// dashboardMetrics are the series the dashboard must chart.
var dashboardMetrics = []string{
	"sopilot_gpu_utilization_percent", "sopilot_gpu_temperature_celsius", "sopilot_ib_port_up",
	"sopilot_node_verdicts", "sopilot_incidents_open", "sopilot_remediation_drains_total",
	"sopilot_agent_ack_latency_seconds", "sopilot_active_runs",
}

func checkDashboard(t *testing.T, text string) {
	t.Helper()
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(text), &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels")
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, m := range dashboardMetrics {
		if !strings.Contains(all, m) {
			t.Errorf("no panel charts %s", m)
		}
	}
	// Every series the dashboard queries must be one the code exports.
	src := sourceText(t)
	for _, m := range regexp.MustCompile(`sopilot_[a-z_]+`).FindAllString(all, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
		if !strings.Contains(src, `"`+base+`"`) {
			t.Errorf("dashboard queries %s, which no Go source under internal/ defines", m)
		}
	}
}

// sourceText is the text of the repository's Go sources under internal/.
func sourceText(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir("../../../internal", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func checkTokenReview(t *testing.T, r rendered) {
	checkTokenReviewRBAC(t, r)
	spec := r.controller(t).Spec.Template.Spec
	c := container(t, spec, "controller")
	// Users only: with TLS off there are no agent identities to review.
	noArg(t, "controller", c.Args, "--agent-service-account")
	wantArg(t, "controller", c.Args, "--token-file", "/etc/sopilot/auth/tokens")
	if v, _ := volume(spec, "auth-tokens"); v.Secret == nil || v.Secret.SecretName != "sopilot-api-tokens" {
		t.Errorf("token file volume %+v, want Secret sopilot-api-tokens", v.VolumeSource)
	}
}

func checkAgentOptions(t *testing.T, r rendered) {
	ds := r.agents(t)
	if len(ds) != 1 {
		t.Fatalf("%d agent DaemonSets, want 1: %s", len(ds), r.inventory())
	}
	spec := ds[0].Spec.Template.Spec
	gpuSelector(t, ds[0])
	if _, ok := spec.NodeSelector["kubernetes.io/hostname"]; ok {
		t.Errorf("agent pinned to a host: %v", spec.NodeSelector)
	}
	if spec.RuntimeClassName != nil {
		t.Errorf("runtimeClassName %q, want none", *spec.RuntimeClassName)
	}
	a := container(t, spec, "agent")
	checkAgentCertFromHost(t, spec, a, "/var/lib/sopilot/agent-tls")
	// cert-manager issues the controller's certificate only: agent
	// certificates are per node, from the node.
	certs := certificates(r)
	if len(certs) != 1 || certs[controllerName] == nil {
		t.Errorf("certificates %v, want the controller's only", certs)
	} else if certs[controllerName].Spec.IssuerRef != (IssuerRef{Name: "cluster-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"}) {
		t.Errorf("controller certificate issued by %+v", certs[controllerName].Spec.IssuerRef)
	}
	if n := len(r.all("Issuer")); n != 0 {
		t.Errorf("%d Issuers rendered although an issuerRef is given", n)
	}
	jail, _ := volume(spec, "jail")
	if jail.HostPath == nil || jail.HostPath.Path != "/mnt/jail" {
		t.Errorf("jail volume %+v, want host path /mnt/jail", jail.VolumeSource)
	}
	if len(spec.InitContainers) != 1 {
		t.Fatalf("init containers %v, want wait-for-toolkit", spec.InitContainers)
	}
	wantArg(t, "wait-for-toolkit", spec.InitContainers[0].Args, "--timeout", "0s")
}

func checkSimulatedAgents(t *testing.T, r rendered) {
	ds := r.agents(t)[0]
	spec := ds.Spec.Template.Spec
	if spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.NodeSelector) != 1 {
		t.Errorf("nodeSelector %v", spec.NodeSelector)
	}
	a := container(t, spec, "agent")
	for _, f := range []string{"--nvml", "--ib", "--nccl"} {
		wantArg(t, "agent", a.Args, f, "sim")
	}
	if _, ok := volume(spec, "jail"); ok {
		t.Errorf("jail mounted although jail.enabled=false")
	}
	if v, _ := volume(r.controller(t).Spec.Template.Spec, "history"); v.EmptyDir == nil {
		t.Errorf("history volume %+v, want an emptyDir without persistence", v.VolumeSource)
	}
	if r.has("PersistentVolumeClaim", controllerName+"-history") {
		t.Errorf("history claim rendered without persistence")
	}
}

// checkConfigSet checks the cli backend's Slurm configuration: the source
// (srcOK) mounted read-only at /etc/slurm-src in the controller and the
// init container, which links all of it but plugstack.conf into the
// emptyDir that the controller reads at /etc/slurm.
func checkConfigSet(t *testing.T, spec corev1.PodSpec, c corev1.Container, srcOK func(corev1.Volume, corev1.VolumeMount) bool) {
	t.Helper()
	conf, _ := volume(spec, "slurm-conf")
	if conf.EmptyDir == nil {
		t.Errorf("slurm-conf volume %+v, want an emptyDir of links", conf.VolumeSource)
	}
	src, _ := volume(spec, "slurm-conf-src")
	var init corev1.Container
	for _, ic := range spec.InitContainers {
		if ic.Name == "slurm-config" {
			init = ic
		}
	}
	for _, ct := range []corev1.Container{c, init} {
		m, ok := mount(ct, "/etc/slurm-src")
		if !ok || !m.ReadOnly || m.Name != "slurm-conf-src" || !srcOK(src, m) {
			t.Errorf("%s: config source mount %+v of %+v", ct.Name, m, src.VolumeSource)
		}
	}
	if m, ok := mount(c, "/etc/slurm"); !ok || !m.ReadOnly || m.Name != "slurm-conf" {
		t.Errorf("controller: /etc/slurm mount %+v", m)
	}
	if m, ok := mount(init, "/etc/slurm"); !ok || m.ReadOnly || m.Name != "slurm-conf" {
		t.Errorf("slurm-config: /etc/slurm mount %+v, want writable", m)
	}
	script := strings.Join(init.Command, " ")
	if !strings.Contains(script, `ln -s "$f" "/etc/slurm/$name"`) || !strings.Contains(script, `[ "$name" = plugstack.conf ] && continue`) {
		t.Errorf("slurm-config script does not link all but plugstack.conf: %s", script)
	}
}

// checkSoperatorAgent checks what the agent learns from Soperator's DCGM
// exporter: priority, the wait for the toolkit, the GPU→job files.
func checkSoperatorAgent(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("agent priorityClassName %q, want system-node-critical", spec.PriorityClassName)
	}
	if !spec.HostPID {
		t.Errorf("agent hostPID off: NVML leaves out processes outside its PID namespace")
	}
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Name != "wait-for-toolkit" {
		t.Fatalf("agent init containers %v, want wait-for-toolkit", spec.InitContainers)
	}
	wantArg(t, "wait-for-toolkit", spec.InitContainers[0].Args, "--timeout", "30m")
	a := container(t, spec, "agent")
	wantArg(t, "agent", a.Args, "--gpu-job-dir", "/var/run/nebius/slurm")
	m, ok := mount(a, "/var/run/nebius/slurm")
	v, _ := volume(spec, m.Name)
	if !ok || !m.ReadOnly || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer ||
		v.HostPath == nil || v.HostPath.Path != "/var/run/nebius/slurm" {
		t.Errorf("agent: GPU→job files mount %+v of %+v, want the host's /var/run/nebius/slurm read-only", m, v.VolumeSource)
	}
}

// checkToolkitWait checks the init container that waits for the NVIDIA
// container toolkit: the agent's own image and binary (node-agent
// wait-file), no third image.
func checkToolkitWait(t *testing.T, where string, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	agent := container(t, spec, "agent")
	if c.Image != agent.Image || c.ImagePullPolicy != agent.ImagePullPolicy {
		t.Errorf("%s: image %s (%s), want the agent's %s (%s)", where, c.Image, c.ImagePullPolicy, agent.Image, agent.ImagePullPolicy)
	}
	if len(c.Command) != 0 || len(c.Args) != 3 || c.Args[0] != "wait-file" || c.Args[2] != "/run/nvidia/validations/toolkit-ready" {
		t.Errorf("%s: command %q args %q, want the image's node-agent wait-file --timeout=... /run/nvidia/validations/toolkit-ready", where, c.Command, c.Args)
	}
	if _, ok := arg(c.Args, "--timeout"); !ok {
		t.Errorf("%s: args %q lack --timeout", where, c.Args)
	}
	// The agent image asks the nvidia runtime for every GPU, which fails
	// before the driver is ready: the wait must ask for none.
	if e, ok := env(c, "NVIDIA_VISIBLE_DEVICES"); !ok || e.Value != "void" {
		t.Errorf("%s: NVIDIA_VISIBLE_DEVICES %+v, want void (the nvidia runtime then injects nothing)", where, e)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("%s: terminationMessagePolicy %q: a timed-out wait would not say why in the pod's status", where, c.TerminationMessagePolicy)
	}
	if m, ok := mount(c, "/run/nvidia"); !ok || !m.ReadOnly || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
		t.Errorf("%s: /run/nvidia mount %+v", where, m)
	}
}

// One soperator.clusterName names every Soperator object, and
// soperator.version picks the cli image's Slurm and the jail's config
// directory; each name can still be set on its own.
func TestSoperatorNames(t *testing.T) {
	renderYAML := func(t *testing.T, values string) rendered {
		t.Helper()
		vals, err := chartutil.ReadValues([]byte(values))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Render(chartDir, vals, rel)
		if err != nil {
			t.Fatalf("render %s: %v", values, err)
		}
		return rendered{objs: objs}
	}
	t.Run("rest", func(t *testing.T) {
		r := renderYAML(t, "soperator: {clusterName: c1}")
		checkRESTDefaults(t, r, "http://c1-rest-svc:6820", "c1-rest-jwt-key")
		r = renderYAML(t, "{soperator: {clusterName: c1}, slurm: {rest: {jwtKey: {secretName: own-key}}}}")
		checkRESTDefaults(t, r, "http://c1-rest-svc:6820", "own-key")
	})
	for _, tc := range []struct{ version, image, jailDir string }{
		{"1.21.3", "24.11", "slurm"},
		{"1.22", "24.11", "etc/slurm"},
		{"2.0.1", "24.11", "etc/slurm"},
		{"4.1.7", "24.11", "etc/slurm"},
		{"5.0.0", "26.05", "etc/slurm"},
	} {
		t.Run("cli "+tc.version, func(t *testing.T) {
			r := renderYAML(t, "{soperator: {clusterName: c1, version: '"+tc.version+"'}, slurm: {backend: cli}}")
			spec := r.controller(t).Spec.Template.Spec
			c := container(t, spec, "controller")
			if want := "ghcr.io/sopilot/controller-slurmcli:" + appVersion + "-slurm" + tc.image; c.Image != want {
				t.Errorf("image %s, want %s", c.Image, want)
			}
			// All keys of the ConfigMap: no items.
			checkConfigSet(t, spec, c, func(src corev1.Volume, _ corev1.VolumeMount) bool {
				return src.ConfigMap != nil && src.ConfigMap.Name == "c1-slurm-configs" && len(src.ConfigMap.Items) == 0
			})
			if key, _ := volume(spec, "munge-key-secret"); key.Secret == nil || key.Secret.SecretName != "c1-munge" {
				t.Errorf("munge key volume %+v, want Secret c1-munge", key.VolumeSource)
			}
			r = renderYAML(t, "{soperator: {clusterName: c1, version: '"+tc.version+"'}, slurm: {backend: cli, cli: {configSource: jail, mungeKey: {secretName: m}}}}")
			spec = r.controller(t).Spec.Template.Spec
			checkConfigSet(t, spec, container(t, spec, "controller"), func(src corev1.Volume, m corev1.VolumeMount) bool {
				return src.PersistentVolumeClaim != nil && src.PersistentVolumeClaim.ClaimName == "jail-pvc" && m.SubPath == tc.jailDir
			})
			if key, _ := volume(spec, "munge-key-secret"); key.Secret == nil || key.Secret.SecretName != "m" {
				t.Errorf("munge key volume %+v, want Secret m", key.VolumeSource)
			}
		})
	}
}

// soperatorRefs returns every object the rendered workloads use but the
// chart does not create: the Secrets, ConfigMaps and claims their volumes
// and environment name, and the Service of --slurmrestd-url, as
// "Kind/name", each with the keys it is read by ("" for all of it).
func soperatorRefs(t *testing.T, r rendered) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(kind, name string, items []corev1.KeyToPath) {
		if name == "" || r.has(kind, name) {
			return
		}
		key := kind + "/" + name
		if len(items) == 0 {
			out[key] = append(out[key], "")
		}
		for _, it := range items {
			out[key] = append(out[key], it.Key)
		}
	}
	for where, tpl := range podSpecs(t, r) {
		for _, v := range tpl.Spec.Volumes {
			switch {
			case v.Secret != nil:
				add("Secret", v.Secret.SecretName, v.Secret.Items)
			case v.ConfigMap != nil:
				add("ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items)
			case v.PersistentVolumeClaim != nil:
				add("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName, nil)
			case v.Projected != nil:
				for _, src := range v.Projected.Sources {
					if src.Secret != nil {
						add("Secret", src.Secret.Name, src.Secret.Items)
					}
					if src.ConfigMap != nil {
						add("ConfigMap", src.ConfigMap.Name, src.ConfigMap.Items)
					}
				}
			}
		}
		for _, c := range append(append([]corev1.Container{}, tpl.Spec.InitContainers...), tpl.Spec.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					add("Secret", e.ValueFrom.SecretKeyRef.Name, []corev1.KeyToPath{{Key: e.ValueFrom.SecretKeyRef.Key}})
				}
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					add("ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name, []corev1.KeyToPath{{Key: e.ValueFrom.ConfigMapKeyRef.Key}})
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					add("Secret", e.SecretRef.Name, nil)
				}
				if e.ConfigMapRef != nil {
					add("ConfigMap", e.ConfigMapRef.Name, nil)
				}
			}
			if u, ok := arg(c.Args, "--slurmrestd-url"); ok {
				pu, err := url.Parse(u)
				if err != nil {
					t.Fatalf("%s: --slurmrestd-url %q: %v", where, u, err)
				}
				add("Service", pu.Hostname(), []corev1.KeyToPath{{Key: "port " + pu.Port()}})
			}
		}
	}
	for k := range out {
		slices.Sort(out[k])
		out[k] = slices.Compact(out[k])
	}
	return out
}

// renderValues renders the chart as rel with values given as YAML.
func renderValues(t *testing.T, values string) rendered {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Render(chartDir, vals, rel)
	if err != nil {
		t.Fatalf("render %s: %v", values, err)
	}
	return rendered{objs: objs}
}

// docs/operations.md installs the chart for the cluster Soperator's
// Terraform recipe creates (SlurmCluster "soperator" in namespace
// "soperator", Soperator 1.20.1) with no values but the namespace:
// "helm install sopilot deploy/helm/sopilot -n soperator". Everything the
// chart then uses but does not create must be what Soperator 1.20.1
// creates, by those exact names (Soperator's internal/naming,
// internal/values/slurm_rest.go, internal/consts/rest.go at the 1.20.1
// tag): nothing more, nothing renamed. The same with
// soperator.clusterName=foo, where every name but the jail claim's
// (which is not per cluster) follows.
func TestSoperatorObjectNames(t *testing.T) {
	tests := []struct {
		name, values string
		want         map[string][]string
	}{
		{"defaults", "{}", map[string][]string{
			"Service/soperator-rest-svc":     {"port 6820"},
			"Secret/soperator-rest-jwt-key":  {"rest_jwt.key"},
			"PersistentVolumeClaim/jail-pvc": {""},
		}},
		// Soperator 1.20's Slurm 24.05 has no Debian client package, so the
		// cli backend needs an image built with its tools: the names are
		// still Soperator's.
		{"defaults, cli backend", "{slurm: {backend: cli}, controller: {image: {slurmClient: '24.05'}}}", map[string][]string{
			"Secret/soperator-munge":            {"munge.key"},
			"ConfigMap/soperator-slurm-configs": {""},
			"PersistentVolumeClaim/jail-pvc":    {""},
		}},
		{"defaults, cli backend, config set from the jail", "{slurm: {backend: cli, cli: {configSource: jail}}, controller: {image: {slurmClient: '24.05'}}}", map[string][]string{
			"Secret/soperator-munge":         {"munge.key"},
			"PersistentVolumeClaim/jail-pvc": {""},
		}},
		{"cluster foo", "soperator: {clusterName: foo}", map[string][]string{
			"Service/foo-rest-svc":           {"port 6820"},
			"Secret/foo-rest-jwt-key":        {"rest_jwt.key"},
			"PersistentVolumeClaim/jail-pvc": {""},
		}},
		{"cluster foo, cli backend", "{soperator: {clusterName: foo}, slurm: {backend: cli}, controller: {image: {slurmClient: '24.05'}}}", map[string][]string{
			"Secret/foo-munge":               {"munge.key"},
			"ConfigMap/foo-slurm-configs":    {""},
			"PersistentVolumeClaim/jail-pvc": {""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderValues(t, tt.values)
			got := soperatorRefs(t, r)
			if !maps.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("objects used but not created:\n got %v\nwant %v", got, tt.want)
			}
			for _, o := range r.objs {
				if o.Namespace != "" && o.Namespace != "soperator" {
					t.Errorf("%s/%s in namespace %q, want the SlurmCluster's soperator", o.Kind, o.Name, o.Namespace)
				}
			}
		})
	}
	// The jail's config directory of Soperator 1.20 (sconfigcontroller's
	// --configs-path /mnt/jail/slurm).
	r := renderValues(t, "{slurm: {backend: cli, cli: {configSource: jail}}, controller: {image: {slurmClient: '24.05'}}}")
	spec := r.controller(t).Spec.Template.Spec
	checkConfigSet(t, spec, container(t, spec, "controller"), func(src corev1.Volume, m corev1.VolumeMount) bool {
		return src.PersistentVolumeClaim != nil && src.PersistentVolumeClaim.ClaimName == "jail-pvc" && m.SubPath == "slurm"
	})
}

// checkK8sE2E: the values hack/k8s/e2e.sh installs on the single-node
// Kubernetes: Soperator's REST Service and JWT Secret, simulated agents with
// no RuntimeClass, and a controller that tolerates the GPU workers' taint
// (there is only one node).
func checkK8sE2E(t *testing.T, r rendered) {
	checkRESTDefaults(t, r, "http://soperator-rest-svc:6820", "soperator-rest-jwt-key")
	spec := r.agents(t)[0].Spec.Template.Spec
	if spec.RuntimeClassName != nil {
		t.Errorf("agent runtimeClassName %q, want none", *spec.RuntimeClassName)
	}
	a := container(t, spec, "agent")
	for _, f := range []string{"--nvml", "--ib", "--nccl"} {
		wantArg(t, "agent", a.Args, f, "sim")
	}
	// TLS on: agents send their projected token, users a token of the file.
	wantArg(t, "agent", a.Args, "--token-file", "/var/run/secrets/sopilot/token")
	cspec := r.controller(t).Spec.Template.Spec
	c := container(t, cspec, "controller")
	wantArg(t, "controller", c.Args, "--tls-cert-file", "/etc/sopilot/tls/tls.crt")
	wantArg(t, "controller", c.Args, "--agent-service-account", rel.Namespace+"/"+agentName)
	wantArg(t, "controller", c.Args, "--token-file", "/etc/sopilot/auth/tokens")
	tolerated := false
	for _, tol := range cspec.Tolerations {
		tolerated = tolerated || (tol.Key == "nvidia.com/gpu" && tol.Operator == corev1.TolerationOpExists && tol.Effect == corev1.TaintEffectNoSchedule)
	}
	if !tolerated {
		t.Errorf("controller tolerations %+v, want nvidia.com/gpu Exists NoSchedule", cspec.Tolerations)
	}
	if !r.has("PersistentVolumeClaim", controllerName+"-history") {
		t.Errorf("no history claim: e2e.sh binds it to a static PV")
	}
}
