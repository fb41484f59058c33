package rendertest

import (
	"strings"
	"testing"
)

// Decode never panics, and whatever it accepts is a named object of a kind
// it knows.
func FuzzDecode(f *testing.F) {
	f.Add("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
	f.Add("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n---\n# c\n")
	f.Add("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: s, issuerRef: {name: i}, uris: [spiffe://sopilot/agent/w]}\n")
	f.Add("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {}, endpoints: [{port: m}]}\n")
	f.Add("kind: [\n")
	f.Fuzz(func(t *testing.T, doc string) {
		objs, err := Decode("fuzz.yaml", doc)
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.Name == "" || o.Kind == "" || o.APIVersion == "" || o.Obj == nil {
				t.Fatalf("accepted an incomplete object %+v from %q", o, doc)
			}
			if _, crd := crdKinds[o.APIVersion+"/"+o.Kind]; !crd && !strings.Contains("v1 apps/v1 rbac.authorization.k8s.io/v1", o.APIVersion) {
				t.Fatalf("accepted %s %s", o.APIVersion, o.Kind)
			}
		}
	})
}
