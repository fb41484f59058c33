package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys of a TokenReview answer's status.user.extra that the Kubernetes API
// server sets for a service account token bound to a pod
// (k8s.io/apiserver/pkg/authentication/serviceaccount: PodNameKey,
// PodUIDKey, NodeNameKey, NodeUIDKey). The node keys come with the
// ServiceAccountTokenPodNodeInfo feature: beta and on by default from
// Kubernetes 1.30, GA from 1.32. The API server takes the node from the
// pod's spec.nodeName when it issues the token, never from the client.
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName = "authentication.kubernetes.io/node-name"
	ExtraNodeUID  = "authentication.kubernetes.io/node-uid"
)

// ErrBadServiceAccount is returned by ParseServiceAccount for anything but
// "<namespace>/<name>".
var ErrBadServiceAccount = errors.New("not a service account (want <namespace>/<name>)")

// ServiceAccount names a Kubernetes service account.
type ServiceAccount struct {
	Namespace, Name string
}

// dns1123Label is a namespace name; service account names are DNS-1123
// subdomains.
var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ParseServiceAccount parses "<namespace>/<name>", e.g. "soperator/sopilot-agent".
func ParseServiceAccount(s string) (ServiceAccount, error) {
	ns, name, ok := strings.Cut(strings.TrimSpace(s), "/")
	switch {
	case !ok:
		return ServiceAccount{}, fmt.Errorf("%q: %w", s, ErrBadServiceAccount)
	case !dns1123Label.MatchString(ns):
		return ServiceAccount{}, fmt.Errorf("%q: namespace %q is not a DNS-1123 label: %w", s, ns, ErrBadServiceAccount)
	case len(name) > 253 || !dns1123Subdomain.MatchString(name):
		return ServiceAccount{}, fmt.Errorf("%q: name %q is not a DNS-1123 subdomain: %w", s, name, ErrBadServiceAccount)
	}
	return ServiceAccount{Namespace: ns, Name: name}, nil
}

// String returns "<namespace>/<name>".
func (s ServiceAccount) String() string { return s.Namespace + "/" + s.Name }

// Username is the Kubernetes user name of the service account's tokens,
// "system:serviceaccount:<namespace>:<name>".
func (s ServiceAccount) Username() string {
	return "system:serviceaccount:" + s.Namespace + ":" + s.Name
}

// agentBinding returns the node and pod that a reviewed token of an agent
// service account is bound to, from the review's user.extra. A token that
// is not bound to a pod, or carries no node, is refused: only the
// projected token the kubelet gives an agent pod proves which node the
// caller runs on.
func agentBinding(extra map[string][]string) (node, pod string, err error) {
	one := func(key string) (string, error) {
		switch v := extra[key]; {
		case len(v) == 0 || v[0] == "":
			return "", nil
		case len(v) > 1:
			return "", fmt.Errorf("the review gives %d values for %s", len(v), key)
		default:
			return v[0], nil
		}
	}
	if node, err = one(ExtraNodeName); err != nil {
		return "", "", err
	}
	if pod, err = one(ExtraPodName); err != nil {
		return "", "", err
	}
	switch {
	case node == "" && pod == "":
		return "", "", fmt.Errorf("the token is bound to no pod and names no node (user.extra %s): mount a projected service account token into the agent pod", ExtraNodeName)
	case node == "":
		return "", "", fmt.Errorf("the token is bound to pod %q but names no node (user.extra %s): the API server needs Kubernetes 1.30+ with the ServiceAccountTokenPodNodeInfo feature on", pod, ExtraNodeName)
	case pod == "":
		return "", "", fmt.Errorf("the token names node %q but is bound to no pod: only the projected token of an agent pod is accepted", node)
	case strings.ContainsAny(node, " \t/"):
		return "", "", fmt.Errorf("the token names node %q, which is not a node name", node)
	}
	return node, pod, nil
}

// tokenExpiry returns the "exp" claim of a JWT without verifying it, so
// that a cached review never outlives the token it reviewed. The API
// server has already checked the signature; a token that is not a JWT, or
// has no exp, has no known expiry.
func tokenExpiry(token string) (time.Time, bool) {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return time.Time{}, false
	}
	return claims.ExpiresAt.Time, true
}
