package rendertest

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The custom resources below mirror the fields of cert-manager.io/v1 and
// monitoring.coreos.com/v1 that the chart sets, under the same JSON names,
// so that strict decoding refuses a misspelt or misplaced field. They are
// deliberately partial: a field the chart starts using must be added here.

// Certificate is cert-manager.io/v1 Certificate.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              CertificateSpec `json:"spec"`
}

// CertificateSpec is the part of a Certificate's spec the chart sets.
type CertificateSpec struct {
	SecretName  string                 `json:"secretName"`
	CommonName  string                 `json:"commonName,omitempty"`
	DNSNames    []string               `json:"dnsNames,omitempty"`
	URIs        []string               `json:"uris,omitempty"`
	IsCA        bool                   `json:"isCA,omitempty"`
	Duration    string                 `json:"duration,omitempty"`
	RenewBefore string                 `json:"renewBefore,omitempty"`
	PrivateKey  *CertificatePrivateKey `json:"privateKey,omitempty"`
	Usages      []string               `json:"usages,omitempty"`
	IssuerRef   IssuerRef              `json:"issuerRef"`
}

// CertificatePrivateKey is a Certificate's spec.privateKey.
type CertificatePrivateKey struct {
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
	RotationPolicy string `json:"rotationPolicy,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
}

// IssuerRef names the Issuer or ClusterIssuer of a Certificate.
type IssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// Issuer is cert-manager.io/v1 Issuer.
type Issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              IssuerSpec `json:"spec"`
}

// IssuerSpec is the part of an Issuer's spec the chart sets: a self-signed
// or a CA issuer.
type IssuerSpec struct {
	SelfSigned *SelfSignedIssuer `json:"selfSigned,omitempty"`
	CA         *CAIssuer         `json:"ca,omitempty"`
}

// SelfSignedIssuer is an Issuer's spec.selfSigned.
type SelfSignedIssuer struct{}

// CAIssuer is an Issuer's spec.ca.
type CAIssuer struct {
	SecretName string `json:"secretName"`
}

// ServiceMonitor is monitoring.coreos.com/v1 ServiceMonitor.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ServiceMonitorSpec `json:"spec"`
}

// ServiceMonitorSpec is the part of a ServiceMonitor's spec the chart sets.
type ServiceMonitorSpec struct {
	Selector          metav1.LabelSelector `json:"selector"`
	NamespaceSelector *NamespaceSelector   `json:"namespaceSelector,omitempty"`
	Endpoints         []Endpoint           `json:"endpoints"`
}

// NamespaceSelector is a ServiceMonitor's spec.namespaceSelector.
type NamespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

// Endpoint is one scrape endpoint of a ServiceMonitor.
type Endpoint struct {
	Port        string          `json:"port"`
	Path        string          `json:"path,omitempty"`
	Interval    string          `json:"interval,omitempty"`
	Relabelings []RelabelConfig `json:"relabelings,omitempty"`
}

// RelabelConfig is one Prometheus relabelling rule.
type RelabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}
