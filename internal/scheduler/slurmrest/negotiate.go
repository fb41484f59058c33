package slurmrest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// The API versions this package speaks: v0.0.38 (Slurm 21.08 to 23.02)
// and the data_parser versions up to v0.0.45 (Slurm 26.05), whose job,
// node, submit and cancel shapes were checked against real slurmrestd
// 22.05, 24.11 and 26.05 (testdata/slurm-*).
const (
	oldestSupported = 38
	newestSupported = 45
)

func supportedVersionName(minor int) string { return "v0.0." + strconv.Itoa(minor) }

// APIVersion returns the API version requests use: the configured one or,
// with APIVersion "auto", the negotiated one ("" until negotiated).
func (b *Backend) APIVersion() string {
	if v := b.version.Load(); v != nil {
		return v.name
	}
	return ""
}

// Negotiate settles the API version now rather than at the first request
// and returns it; meant for startup, where a slurmrestd that cannot be
// reached or serves no version this package speaks should be reported at
// once. With a fixed Config.APIVersion it returns that version and sends
// nothing. A failed negotiation is not remembered: the next request tries
// again.
func (b *Backend) Negotiate(ctx context.Context) (string, error) {
	v, err := b.apiVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("slurmrest: %w", err)
	}
	return v.name, nil
}

// apiVersion returns the version to use, negotiating it once if needed.
func (b *Backend) apiVersion(ctx context.Context) (apiVersion, error) {
	if v := b.version.Load(); v != nil {
		return *v, nil
	}
	b.negotiate.Lock()
	defer b.negotiate.Unlock()
	if v := b.version.Load(); v != nil {
		return *v, nil
	}
	v, served, how, err := b.negotiateVersion(ctx)
	if err != nil {
		return apiVersion{}, fmt.Errorf("negotiate API version: %w", err)
	}
	b.version.Store(&v)
	b.logger.Info("slurmrest: negotiated API version", "api_version", v.name, "served", served, "read_from", how)
	return v, nil
}

// negotiateVersion reads the versions slurmrestd serves from the paths of
// its OpenAPI document (GET /openapi/v3; Slurm 24.11 and later want a
// token for it, which every request carries) and takes the newest one this
// package speaks. If the document cannot be had (a proxy hiding it, an
// odd answer), it probes GET /slurm/{version}/ping from the newest version
// down: slurmrestd answers 404 "Unable find requested URL" for a version
// it does not serve, anything else for one it does.
func (b *Backend) negotiateVersion(ctx context.Context) (v apiVersion, served []string, how string, err error) {
	resp, err := b.doPath(ctx, http.MethodGet, "/openapi/v3", nil)
	switch {
	case err == nil:
		minors := ServedVersions(resp.body)
		if len(minors) > 0 {
			v, err := pickVersion(minors)
			return v, versionNames(minors), "/openapi/v3", err
		}
		b.logger.Warn("slurmrest: /openapi/v3 lists no /slurm/ paths; probing versions")
	case errors.Is(err, scheduler.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apiVersion{}, nil, "", err
	default:
		b.logger.Warn("slurmrest: cannot read /openapi/v3; probing versions", "err", err)
	}
	for m := newestSupported; m >= oldestSupported; m-- {
		name := supportedVersionName(m)
		_, err := b.doPath(ctx, http.MethodGet, "/slurm/"+name+"/ping", nil)
		var apiErr *APIError
		switch {
		case err == nil:
		case errors.Is(err, ErrNotServed):
			continue
		case errors.Is(err, ErrUnauthorized), !errors.As(err, &apiErr):
			return apiVersion{}, nil, "", err
		}
		// Served: a ping that Slurm answered, even with an error (slurmctld
		// down), came from this version's plugin.
		return apiVersion{name: name, minor: m}, []string{name}, "probe", nil
	}
	return apiVersion{}, nil, "", fmt.Errorf("%w: no version from %s to %s answers",
		ErrNotServed, supportedVersionName(oldestSupported), supportedVersionName(newestSupported))
}

// pickVersion takes the newest supported version of minors (sorted).
func pickVersion(minors []int) (apiVersion, error) {
	for i := len(minors) - 1; i >= 0; i-- {
		if m := minors[i]; m >= oldestSupported && m <= newestSupported {
			return apiVersion{name: supportedVersionName(m), minor: m}, nil
		}
	}
	return apiVersion{}, fmt.Errorf("%w: slurmrestd serves %s; this package speaks %s to %s",
		ErrNotServed, strings.Join(versionNames(minors), ", "),
		supportedVersionName(oldestSupported), supportedVersionName(newestSupported))
}

func versionNames(minors []int) []string {
	out := make([]string, len(minors))
	for i, m := range minors {
		out[i] = supportedVersionName(m)
	}
	return out
}

var servedPathRE = regexp.MustCompile(`^/slurm/v0\.0\.([0-9]{1,4})/`)

// ServedVersions returns the minor numbers N of the "v0.0.N" API versions
// whose /slurm/v0.0.N/... paths an OpenAPI document (slurmrestd's GET
// /openapi/v3) lists, sorted and without repeats; nil for a document that
// is not a JSON object with "paths".
func ServedVersions(doc []byte) []int {
	var d struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return nil
	}
	var out []int
	for p := range d.Paths {
		m := servedPathRE.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || slices.Contains(out, n) {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
