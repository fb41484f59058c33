package slurmrest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// maxBody bounds what is read of one answer; a job listing of a busy
// cluster is a few MiB.
const maxBody = 256 << 20

// Backend is a scheduler.Backend that talks to slurmrestd. It is safe for
// concurrent use.
type Backend struct {
	// version is the API version requests use; nil until negotiated when
	// Config.APIVersion is "auto" (see negotiate.go).
	version atomic.Pointer[apiVersion]
	// release is slurmrestd's Slurm release from the meta of the last
	// Check's answer ("24.11.5"); nil before.
	release   atomic.Pointer[string]
	negotiate sync.Mutex // held while negotiating, so only one runs
	ep        endpoint
	user      string
	tokens    tokenSource
	client    *http.Client
	timeout   time.Duration
	logger    *slog.Logger
}

var _ scheduler.Backend = (*Backend)(nil)

// New checks cfg and returns a Backend. It does not contact slurmrestd. A
// nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Backend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v, auto, ep, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("slurmrest: %w", err)
	}
	client, err := httpClient(cfg.HTTPClient, ep)
	if err != nil {
		return nil, fmt.Errorf("slurmrest: %w", err)
	}
	b := &Backend{
		ep:      ep,
		user:    cfg.UserName,
		client:  client,
		timeout: cfg.Timeout,
		logger:  logger.With("backend", "rest"),
	}
	if !auto {
		b.version.Store(&v)
		b.logger = b.logger.With("api_version", v.name)
	}
	if cfg.JWTKeyFile != "" {
		b.tokens = &jwtMinter{
			keyFile:  cfg.JWTKeyFile,
			user:     cfg.UserName,
			lifetime: cfg.TokenLifetime,
			now:      cfg.now,
			logger:   b.logger,
		}
	} else {
		b.tokens = newStaticToken(cfg.Token, cfg.now)
	}
	if !auto && v.minor > newestSupported {
		b.logger.Warn("slurmrest: API version newer than the ones this package was written for; using the v0.0.45 request shape",
			"api_version", v.name, "newest_supported", supportedVersionName(newestSupported))
	}
	return b, nil
}

// httpClient returns the client to use: the injected one, or a default one;
// for a unix socket, a copy whose transport dials the socket.
func httpClient(c *http.Client, ep endpoint) (*http.Client, error) {
	if c == nil {
		c = &http.Client{}
	}
	if ep.socket == "" {
		return c, nil
	}
	var tr *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("unix socket base URL needs an *http.Transport, the injected client has %T", c.Transport)
	}
	socket := ep.socket
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	cc := *c
	cc.Transport = tr
	return &cc, nil
}

// Name implements scheduler.Backend.
func (b *Backend) Name() string { return "rest" }

// response is a completed HTTP exchange with a 2xx status and no errors.
type response struct {
	path   string // as shown in logs and errors: /slurm/{version}/...
	status int
	body   []byte
}

// do sends one request to /slurm/{version}/{path} and returns the answer,
// or an error classified as ErrUnavailable, ErrRejected, ErrUnauthorized or
// ErrNotServed. Errors listed in a 2xx answer are returned as *APIError
// too. With APIVersion "auto", the first request negotiates the version.
func (b *Backend) do(ctx context.Context, method, path string, body []byte) (*response, error) {
	v, err := b.apiVersion(ctx)
	if err != nil {
		return nil, err
	}
	return b.doPath(ctx, method, "/slurm/"+v.name+"/"+path, body)
}

// doPath sends one request to the absolute path (below the base URL's own
// prefix); see do.
func (b *Backend) doPath(ctx context.Context, method, display string, body []byte) (*response, error) {
	u := *b.ep.base
	path, query, _ := strings.Cut(display, "?")
	u.Path = u.Path + path
	u.RawQuery = query

	token, err := b.tokens.token()
	if err != nil {
		return nil, fmt.Errorf("slurmrestd %s %s: get token: %w", method, display, err)
	}

	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("slurmrestd %s %s: %w", method, display, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.user != "" {
		req.Header.Set("X-SLURM-USER-NAME", b.user)
	}
	req.Header.Set("X-SLURM-USER-TOKEN", token)
	req.Header.Set("User-Agent", "sopilot-slurmrest")

	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		b.logger.Debug("slurmrest: request failed", "method", method, "path", display,
			"duration", time.Since(start), "err", err)
		return nil, transportError(ctx, method, display, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, transportError(ctx, method, display, fmt.Errorf("read answer: %w", err))
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("slurmrestd %s %s: answer larger than %d bytes", method, display, maxBody)
	}
	b.logger.Debug("slurmrest: request", "method", method, "path", display,
		"status", resp.StatusCode, "duration", time.Since(start), "bytes", len(data))

	entries, isJSON := parseErrors(data)
	if isJSON {
		for _, w := range parseWarnings(data) {
			b.logger.Warn("slurmrest: slurmrestd warning", "method", method, "path", display, "warning", w)
		}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && len(entries) == 0 {
		if !isJSON {
			return nil, fmt.Errorf("slurmrestd %s %s: HTTP %d with a body that is not a JSON object: %q",
				method, display, resp.StatusCode, snippet(data))
		}
		return &response{path: display, status: resp.StatusCode, body: data}, nil
	}
	apiErr := &APIError{
		Method:     method,
		Path:       display,
		StatusCode: resp.StatusCode,
		Errors:     entries,
		kind:       classify(method, resp.StatusCode, entries),
	}
	if len(entries) == 0 {
		apiErr.Body = snippet(data)
	}
	return &response{path: display, status: resp.StatusCode, body: data}, apiErr
}

// transportError classifies a failed exchange: always ErrUnavailable, plus
// the caller's context error when it was the caller who gave up.
func transportError(ctx context.Context, method, path string, err error) error {
	if cerr := context.Cause(ctx); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("slurmrestd %s %s: %w: %w (%w)", method, path, scheduler.ErrUnavailable, err, cerr)
	}
	return fmt.Errorf("slurmrestd %s %s: %w: %w", method, path, scheduler.ErrUnavailable, err)
}

// snippet is the start of a body for an error message.
func snippet(data []byte) string {
	const n = 200
	s := strings.TrimSpace(string(data))
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	return s
}

// Submit implements scheduler.Backend.
func (b *Backend) Submit(ctx context.Context, job scheduler.JobSpec) (string, error) {
	v, err := b.apiVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("slurmrest: submit %q: %w", job.Name, err)
	}
	body, err := submitBody(v, job)
	if err != nil {
		return "", fmt.Errorf("slurmrest: submit %q: %w", job.Name, err)
	}
	if len(job.Exclude) > 0 && !v.dataParser() {
		b.logger.Warn("slurmrest: this slurmrestd's API cannot exclude nodes; submitting without the exclusion (the nodes' drains keep the job off them)",
			"name", job.Name, "exclude", job.Exclude)
	}
	resp, err := b.do(ctx, http.MethodPost, "job/submit", body)
	if err != nil {
		// A job Slurm created despite reporting an error (a non-fatal
		// job_submit return code: slurmrestd 23.11+ then answers 500 with
		// the job id) must not be submitted again: return its id.
		var apiErr *APIError
		if resp != nil && errors.As(err, &apiErr) {
			if id, ok := parseSubmit(resp.body); ok {
				b.logger.Warn("slurmrest: job submitted with errors", "job_id", id, "errors", apiErr.Errors)
				return id, nil
			}
		}
		return "", fmt.Errorf("slurmrest: submit %q: %w", job.Name, err)
	}
	id, ok := parseSubmit(resp.body)
	if !ok {
		return "", fmt.Errorf("slurmrest: submit %q: %w: %q", job.Name, errNoJobID, snippet(resp.body))
	}
	b.logger.Info("slurmrest: submitted job", "job_id", id, "name", job.Name, "comment", job.Comment)
	return id, nil
}

// list fetches every job slurmctld knows, in one request.
func (b *Backend) list(ctx context.Context) ([]scheduler.JobStatus, error) {
	resp, err := b.do(ctx, http.MethodGet, "jobs", nil)
	if err != nil {
		return nil, err
	}
	jobs, err := slurmjson.ParseJobs(resp.body)
	if err != nil {
		return nil, fmt.Errorf("slurmrestd GET jobs: %w", err)
	}
	return jobs, nil
}

// Jobs implements scheduler.Backend: one listing, filtered to ids. No ids,
// no request.
func (b *Backend) Jobs(ctx context.Context, ids []string) ([]scheduler.JobStatus, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[strings.TrimSpace(id)] = true
	}
	all, err := b.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("slurmrest: jobs: %w", err)
	}
	out := make([]scheduler.JobStatus, 0, len(ids))
	for _, j := range all {
		if want[j.JobID] {
			out = append(out, j)
		}
	}
	return out, nil
}

// FindByComment implements scheduler.Backend: one listing, filtered to
// comments starting with prefix.
func (b *Backend) FindByComment(ctx context.Context, prefix string) ([]scheduler.JobStatus, error) {
	all, err := b.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("slurmrest: find by comment %q: %w", prefix, err)
	}
	out := []scheduler.JobStatus{}
	for _, j := range all {
		if strings.HasPrefix(j.Comment, prefix) {
			out = append(out, j)
		}
	}
	return out, nil
}

var jobIDRE = regexp.MustCompile(`^[0-9]+$`)

// Cancel implements scheduler.Backend with DELETE /slurm/{ver}/job/{id}.
// slurmrestd sends SIGKILL to the whole job when no signal is given (what
// scancel does), in every version. A job that already ended
// (ESLURM_ALREADY_DONE) or that Slurm does not know (ESLURM_INVALID_JOB_ID:
// HTTP 500 in 22.05, HTTP 200 with the code in "status" in 24.11 and 26.05)
// is not an error; any other verdict in "status" is, classified by its
// Slurm error number like an entry of "errors".
func (b *Backend) Cancel(ctx context.Context, jobID string) error {
	jobID = strings.TrimSpace(jobID)
	if !jobIDRE.MatchString(jobID) {
		return fmt.Errorf("slurmrest: cancel job %q: %w: not a job id", jobID, scheduler.ErrRejected)
	}
	resp, err := b.do(ctx, http.MethodDelete, "job/"+url.PathEscape(jobID), nil)
	if err == nil {
		err = cancelStatusError(resp)
	}
	var apiErr *APIError
	if err != nil && errors.As(err, &apiErr) && onlyGone(apiErr) {
		b.logger.Debug("slurmrest: cancel of a finished or unknown job", "job_id", jobID, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("slurmrest: cancel job %s: %w", jobID, err)
	}
	b.logger.Info("slurmrest: cancelled job", "job_id", jobID)
	return nil
}

// cancelStatusError turns the per-job verdicts of a 2xx DELETE answer
// (parseCancelStatus) into an *APIError, or nil when there are none.
func cancelStatusError(resp *response) error {
	entries := parseCancelStatus(resp.body)
	if len(entries) == 0 {
		return nil
	}
	return &APIError{
		Method:     http.MethodDelete,
		Path:       resp.path,
		StatusCode: resp.status,
		Errors:     entries,
		kind:       classify(http.MethodDelete, resp.status, entries),
	}
}

// onlyGone reports whether every Slurm error of a cancel says the job is
// unknown (ESLURM_INVALID_JOB_ID) or already over (ESLURM_ALREADY_DONE).
func onlyGone(e *APIError) bool {
	if len(e.Errors) == 0 {
		return false
	}
	for _, entry := range e.Errors {
		if entry.Number != errnoInvalidJobID && entry.Number != errnoAlreadyDone {
			return false
		}
	}
	return true
}

// probeJobID is a job id that cannot exist (Slurm job ids stay below
// 0x03ff0000), for Check on v0.0.38/39: slurmrestd 22.05 passes it to
// slurmctld. (slurmrestd 24.11 and later refuse it themselves, without
// asking slurmctld, so Check uses a listing there.)
const probeJobID = "2147483647"

// Check tells whether slurmrestd is reachable and slurmctld accepts the
// credentials, without changing anything. It returns an error wrapping
// ErrUnauthorized when the credentials are refused, one wrapping
// ErrNotServed when the API version is not served, and one wrapping
// scheduler.ErrUnavailable when slurmrestd or slurmctld cannot be reached.
// Use it at startup: on Slurm 22.05 a refused token is otherwise
// indistinguishable from an unreachable slurmctld in job listings.
//
// On v0.0.38/39 it asks to cancel a job id that cannot exist, which makes
// slurmrestd contact slurmctld with the token: Slurm answers "Invalid job
// id" when all is well, and 22.05's slurmctld drops a request with a
// refused token (error 5005). On v0.0.40 and later it lists the jobs
// changed since now (GET jobs?update_time=now: one small
// REQUEST_JOB_INFO), and slurmctld's refusal is error 1007 (HTTP 511).
func (b *Backend) Check(ctx context.Context) error {
	v, err := b.apiVersion(ctx)
	if err != nil {
		return fmt.Errorf("slurmrest: check: %w", err)
	}
	if v.minor >= nodeUpdateMinMinor {
		// "now" in Slurm's time syntax: v0.0.40 and v0.0.41 refuse a Unix
		// time there (error 9202), v0.0.42+ take both.
		resp, err := b.do(ctx, http.MethodGet, "jobs?update_time=now", nil)
		if err != nil {
			return fmt.Errorf("slurmrest: check: %w", err)
		}
		b.noteRelease(resp.body)
		return nil
	}
	resp, err := b.do(ctx, http.MethodDelete, "job/"+probeJobID, nil)
	if resp != nil {
		b.noteRelease(resp.body) // also from the expected "invalid job id"
	}
	if err == nil {
		err = cancelStatusError(resp)
	}
	var apiErr *APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &apiErr) && apiErr.Has(errnoInvalidJobID):
		return nil
	case errors.As(err, &apiErr) && (apiErr.Has(errnoZeroBytes) || apiErr.Has(errnoUnspecified)):
		return fmt.Errorf("slurmrest: check: %w: slurmctld dropped a request carrying the token "+
			"(invalid, expired or wrongly signed JWT, or a token the user name does not match): %v", ErrUnauthorized, err)
	default:
		return fmt.Errorf("slurmrest: check: %w", err)
	}
}

// SlurmVersions names slurmrestd's Slurm release as the last successful
// Check read it from the answer's meta ("" before), for the controller's
// readiness message. On Soperator slurmrestd and slurmctld come from one
// release.
func (b *Backend) SlurmVersions() string {
	if r := b.release.Load(); r != nil {
		return "slurmrestd Slurm " + *r
	}
	return ""
}

// noteRelease remembers meta.slurm.release of an answer (v0.0.38 spells
// the key "Slurm"; encoding/json matches it all the same).
func (b *Backend) noteRelease(body []byte) {
	var m struct {
		Meta struct {
			Slurm struct {
				Release string `json:"release"`
			} `json:"slurm"`
		} `json:"meta"`
	}
	if json.Unmarshal(body, &m) != nil || m.Meta.Slurm.Release == "" || len(m.Meta.Slurm.Release) > 32 {
		return
	}
	r := m.Meta.Slurm.Release
	b.release.Store(&r)
}
