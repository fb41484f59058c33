package slurmrest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultAPIVersion = "v0.0.38"
	// APIVersionAuto makes the Backend negotiate its API version.
	APIVersionAuto       = "auto"
	DefaultTimeout       = 30 * time.Second
	DefaultTokenLifetime = 15 * time.Minute
	// MinTokenLifetime keeps minted tokens long enough to outlive a slow
	// request.
	MinTokenLifetime = time.Minute
)

// Config says how to reach slurmrestd and how to authenticate.
type Config struct {
	// BaseURL is slurmrestd's address: "http://host:port" (a path prefix,
	// for a reverse proxy, is kept), "https://..." or "unix:///path/to/socket".
	BaseURL string
	// APIVersion is the OpenAPI plugin version, "v0.0.38" (default) to
	// "v0.0.45", or "auto": take the newest version both slurmrestd and
	// this package speak, read from slurmrestd's /openapi/v3 at the first
	// request (or Negotiate). It selects the URL prefix and the submit
	// request shape.
	APIVersion string
	// UserName is sent as X-SLURM-USER-NAME and, for minted tokens, is the
	// token's "sun" claim. Required with JWTKeyFile and for Slurm 22.05.
	UserName string
	// Token is a fixed JWT sent as X-SLURM-USER-TOKEN (from "scontrol token").
	// Exactly one of Token and JWTKeyFile must be set.
	Token string
	// JWTKeyFile is Slurm's HS256 key (AuthAltParameters=jwt_key=...). The
	// Backend mints its own short-lived tokens from it. The file is read at
	// New and again at every renewal, so a rotated key is picked up.
	JWTKeyFile string
	// TokenLifetime is the lifetime of minted tokens (default 15m, at least
	// 1m). A token is renewed once a third of its lifetime is left.
	TokenLifetime time.Duration
	// Timeout bounds each HTTP request (default 30s).
	Timeout time.Duration
	// HTTPClient is used for every request when set (tests, custom TLS).
	// With a unix:// BaseURL its transport, if it is an *http.Transport (or
	// nil), is cloned and pointed at the socket.
	HTTPClient *http.Client

	// now replaces time.Now in tests.
	now func() time.Time
}

var versionRE = regexp.MustCompile(`^v0\.0\.([0-9]+)$`)

// apiVersion is a parsed "v0.0.N".
type apiVersion struct {
	name  string
	minor int
}

// dataParser reports whether the version is one of the data_parser based
// ones (v0.0.39 and later) with their request shapes.
func (v apiVersion) dataParser() bool { return v.minor >= 39 }

func parseAPIVersion(s string) (apiVersion, error) {
	if s == "" {
		s = DefaultAPIVersion
	}
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return apiVersion{}, fmt.Errorf("api version %q: want v0.0.N", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return apiVersion{}, fmt.Errorf("api version %q: %w", s, err)
	}
	if n < 38 {
		return apiVersion{}, fmt.Errorf("api version %q: versions before v0.0.38 are not supported", s)
	}
	return apiVersion{name: s, minor: n}, nil
}

// endpoint is where requests go: the URL prefix, and the socket for unix://.
type endpoint struct {
	base   *url.URL // scheme, host and path prefix for requests
	socket string   // unix socket path, "" for TCP
}

func parseBaseURL(raw string) (endpoint, error) {
	if raw == "" {
		return endpoint{}, errors.New("base URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("base URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return endpoint{}, fmt.Errorf("base URL %q: no host", raw)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return endpoint{}, fmt.Errorf("base URL %q: query and fragment are not allowed", raw)
		}
		b := *u
		b.Path = strings.TrimRight(u.Path, "/")
		b.RawPath = ""
		return endpoint{base: &b}, nil
	case "unix":
		path := u.Path
		if u.Host != "" { // unix://relative/path is a mistake; say so
			return endpoint{}, fmt.Errorf("base URL %q: want unix:///absolute/path", raw)
		}
		if path == "" || !strings.HasPrefix(path, "/") {
			return endpoint{}, fmt.Errorf("base URL %q: want unix:///absolute/path", raw)
		}
		// The host name is only for the Host header; slurmrestd ignores it.
		return endpoint{base: &url.URL{Scheme: "http", Host: "localhost"}, socket: path}, nil
	default:
		return endpoint{}, fmt.Errorf("base URL %q: scheme must be http, https or unix", raw)
	}
}

// validate checks c and fills in defaults. auto is true for APIVersion
// "auto" (v is then zero).
func (c *Config) validate() (v apiVersion, auto bool, ep endpoint, err error) {
	if strings.EqualFold(strings.TrimSpace(c.APIVersion), APIVersionAuto) {
		auto = true
	} else if v, err = parseAPIVersion(c.APIVersion); err != nil {
		return apiVersion{}, false, endpoint{}, err
	}
	if ep, err = parseBaseURL(c.BaseURL); err != nil {
		return apiVersion{}, false, endpoint{}, err
	}
	if err := c.validateRest(); err != nil {
		return apiVersion{}, false, endpoint{}, err
	}
	return v, auto, ep, nil
}

func (c *Config) validateRest() error {
	switch {
	case c.Token != "" && c.JWTKeyFile != "":
		return errors.New("both a token and a JWT key file were given: use one (the key file is better: tokens are minted and renewed)")
	case c.Token == "" && c.JWTKeyFile == "":
		return errors.New("no credentials: give a token or a JWT key file")
	case c.JWTKeyFile != "" && c.UserName == "":
		return errors.New("a user name is required to mint tokens from a JWT key file")
	case strings.ContainsAny(c.Token, "\r\n") || strings.ContainsAny(c.UserName, "\r\n"):
		return errors.New("the token and user name must not contain line breaks")
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.TokenLifetime < MinTokenLifetime {
		return fmt.Errorf("token lifetime %v is shorter than %v", c.TokenLifetime, MinTokenLifetime)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %v is negative", c.Timeout)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.JWTKeyFile != "" {
		if _, err := readKey(c.JWTKeyFile); err != nil {
			return err
		}
	}
	return nil
}

// readKey reads Slurm's HS256 key. Slurm uses the file's bytes as they are
// (no trimming), so this does too.
func readKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT key: %w", err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("read JWT key %s: file is empty", path)
	}
	return key, nil
}
