package uplink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// ErrEmptyToken is returned when the token file holds no token.
var ErrEmptyToken = errors.New("token file is empty")

// TokenFile sends the bearer token held in a file with every call, as
// "authorization: Bearer <token>": in Kubernetes, the agent pod's
// projected service account token, which the kubelet replaces before it
// expires. The file is read again for every call, and the agent makes one
// call per connection (AgentService/Connect), so each reconnect sends the
// token the file holds then. It requires TLS: the token is a credential.
type TokenFile struct {
	path string
}

var _ credentials.PerRPCCredentials = (*TokenFile)(nil)

// NewTokenFile returns credentials reading path, which must hold a token
// now, so that a wrong path fails at start rather than at every connect.
func NewTokenFile(path string) (*TokenFile, error) {
	t := &TokenFile{path: path}
	if _, err := t.read(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *TokenFile) read() (string, error) {
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("read bearer token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("bearer token %s: %w", t.path, ErrEmptyToken)
	}
	return tok, nil
}

// GetRequestMetadata reads the token file and returns the authorization
// header.
func (t *TokenFile) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := t.read()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is true: the token never travels in plaintext.
func (*TokenFile) RequireTransportSecurity() bool { return true }
