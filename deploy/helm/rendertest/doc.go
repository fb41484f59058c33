// Package rendertest renders sopilot's Helm chart (deploy/helm/sopilot) with
// Helm's own Go library and decodes every rendered object strictly into its
// typed Kubernetes struct, so that the chart's tests check objects rather
// than text.
//
// Render coalesces the chart's values with the given ones, validates them
// against values.schema.json (as helm install does), renders the templates
// with the engine in strict mode (a template that reads a value the chart
// does not define is an error) and decodes each YAML document:
//
//   - core, apps and RBAC kinds with Kubernetes' own deserializer in strict
//     mode, which refuses unknown and duplicate fields;
//   - the cert-manager (cert-manager.io/v1 Certificate, Issuer) and
//     prometheus-operator (monitoring.coreos.com/v1 ServiceMonitor) kinds
//     into this package's mirrors of the fields the chart uses, also
//     refusing unknown fields;
//   - any other kind is an error.
//
// Lint runs Helm's chart linter and ValidateValues the schema check alone.
// The tests in this package render the default values and every variant
// under the chart's ci/ directory and assert the security, probe, storage
// and TLS properties deploy/README.md promises.
package rendertest
