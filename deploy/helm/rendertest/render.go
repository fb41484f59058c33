package rendertest

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

// KubeVersion is the Kubernetes version the chart is rendered and linted
// for; the chart needs at least 1.27 (gRPC probes).
const KubeVersion = "v1.31.0"

// Object is one rendered Kubernetes object.
type Object struct {
	// Source is the chart template that rendered it, e.g.
	// "sopilot/templates/agent-daemonset.yaml".
	Source string
	// APIVersion and Kind are the object's type.
	APIVersion, Kind string
	// Name and Namespace are from its metadata.
	Name, Namespace string
	// Obj is the typed object: *appsv1.Deployment, *corev1.Service, …, or
	// *Certificate, *Issuer or *ServiceMonitor.
	Obj any
}

// Release names the release a chart is rendered as.
type Release struct {
	Name, Namespace string
}

var (
	scheme  = runtime.NewScheme()
	decoder *kjson.Serializer
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	decoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
}

// capabilities are those of a cluster at KubeVersion that serves the
// cert-manager and prometheus-operator APIs.
func capabilities() (*chartutil.Capabilities, error) {
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	caps.APIVersions = append(caps.APIVersions, "cert-manager.io/v1", "monitoring.coreos.com/v1")
	return caps, nil
}

// LoadValuesFile reads a values file such as one of the chart's ci/*.yaml.
func LoadValuesFile(path string) (map[string]any, error) {
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		return nil, err
	}
	return v.AsMap(), nil
}

// Render renders the chart in chartDir with values over its defaults, as
// rel, and decodes every object. Values that break the chart's schema, a
// template error (including a reference to an undefined value) and an
// object that does not decode strictly are errors. Objects are returned
// sorted by source, kind and name.
func Render(chartDir string, values map[string]any, rel Release) ([]Object, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	caps, err := capabilities()
	if err != nil {
		return nil, err
	}
	if values == nil {
		values = map[string]any{}
	}
	top, err := chartutil.ToRenderValues(ch, values,
		chartutil.ReleaseOptions{Name: rel.Name, Namespace: rel.Namespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	var objs []Object
	var errs []error
	for source, text := range files {
		if !strings.HasSuffix(source, ".yaml") {
			continue
		}
		got, err := Decode(source, text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, got...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return objs, nil
}

// Notes renders the chart's NOTES.txt for values, as Render would.
func Notes(chartDir string, values map[string]any, rel Release) (string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("load chart: %w", err)
	}
	caps, err := capabilities()
	if err != nil {
		return "", err
	}
	top, err := chartutil.ToRenderValues(ch, values,
		chartutil.ReleaseOptions{Name: rel.Name, Namespace: rel.Namespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return "", err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return "", fmt.Errorf("render: %w", err)
	}
	for name, text := range files {
		if strings.HasSuffix(name, "/NOTES.txt") {
			return text, nil
		}
	}
	return "", errors.New("chart has no NOTES.txt")
}

// Decode decodes the YAML documents of one rendered template, strictly.
// source names the template in errors.
func Decode(source, manifest string) ([]Object, error) {
	var objs []Object
	docs := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		doc := docs[k]
		if isBlank(doc) {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s: not a Kubernetes object: %w", source, err)
		}
		if tm.APIVersion == "" || tm.Kind == "" {
			return nil, fmt.Errorf("%s: object without apiVersion or kind:\n%s", source, doc)
		}
		obj, err := decodeTyped(tm, []byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", source, tm.APIVersion, tm.Kind, err)
		}
		meta, err := metaOf(obj)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", source, tm.Kind, err)
		}
		if meta.Name == "" {
			return nil, fmt.Errorf("%s: %s without metadata.name", source, tm.Kind)
		}
		objs = append(objs, Object{Source: source, APIVersion: tm.APIVersion, Kind: tm.Kind,
			Name: meta.Name, Namespace: meta.Namespace, Obj: obj})
	}
	return objs, nil
}

func isBlank(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

// crdKinds are the custom resources the chart renders, by apiVersion/kind.
var crdKinds = map[string]func() any{
	"cert-manager.io/v1/Certificate":          func() any { return &Certificate{} },
	"cert-manager.io/v1/Issuer":               func() any { return &Issuer{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &ServiceMonitor{} },
}

func decodeTyped(tm metav1.TypeMeta, doc []byte) (any, error) {
	if mk, ok := crdKinds[tm.APIVersion+"/"+tm.Kind]; ok {
		obj := mk()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, err
		}
		return obj, nil
	}
	gvk := tm.GroupVersionKind()
	if !scheme.Recognizes(gvk) {
		return nil, fmt.Errorf("kind not known to the tests: add it to the scheme or to crdKinds")
	}
	obj, _, err := decoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

func metaOf(obj any) (metav1.ObjectMeta, error) {
	if o, ok := obj.(metav1.Object); ok {
		return metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace()}, nil
	}
	return metav1.ObjectMeta{}, fmt.Errorf("no metadata in %T", obj)
}

// ValidateValues checks values, over the chart's defaults, against the
// chart's values.schema.json with Helm's own validator.
func ValidateValues(chartDir string, values map[string]any) error {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return fmt.Errorf("load chart: %w", err)
	}
	vals, err := chartutil.CoalesceValues(ch, values)
	if err != nil {
		return err
	}
	return chartutil.ValidateAgainstSchema(ch, vals)
}

// Lint runs Helm's chart linter (what helm lint runs) with values and
// returns its messages of warning severity or worse.
func Lint(chartDir string, values map[string]any, namespace string) []support.Message {
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return []support.Message{support.NewMessage(support.ErrorSev, chartDir, err)}
	}
	linter := lint.AllWithKubeVersion(chartDir, values, namespace, kv)
	var out []support.Message
	for _, m := range linter.Messages {
		if m.Severity >= support.WarningSev {
			out = append(out, m)
		}
	}
	return out
}

// FormatMessages joins lint messages, one a line.
func FormatMessages(ms []support.Message) string {
	var b bytes.Buffer
	for _, m := range ms {
		fmt.Fprintln(&b, m.Error())
	}
	return b.String()
}
