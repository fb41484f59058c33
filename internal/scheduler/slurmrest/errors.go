package slurmrest

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// ErrUnauthorized means slurmrestd or slurmctld refused the credentials
// (missing, malformed, expired or wrongly signed token, or a user name the
// token does not allow). Retrying with the same configuration will not help.
// It wraps scheduler.ErrMisconfigured.
var ErrUnauthorized = fmt.Errorf("slurm refused the credentials: %w", scheduler.ErrMisconfigured)

// ErrNotServed means slurmrestd answered HTTP 404 without a Slurm error
// number: it does not serve the API version (or path) asked for, as when a
// Backend configured for v0.0.38 talks to Slurm 24.11 ("Unable find
// requested URL"). It wraps scheduler.ErrMisconfigured; APIVersion "auto"
// avoids it.
var ErrNotServed = fmt.Errorf("slurmrestd does not serve this API version or path: %w", scheduler.ErrMisconfigured)

// Slurm error numbers (slurm/slurm_errno.h) this package acts on. They have
// been stable since at least Slurm 20.02.
const (
	errnoUnspecified        = -1   // SLURM_ERROR
	errnoEPERM              = 1    // a plain errno: Operation not permitted
	errnoCommConnection     = 1001 // SLURM_COMMUNICATIONS_CONNECTION_ERROR
	errnoCommShutdown       = 1004 // SLURM_COMMUNICATIONS_SHUTDOWN_ERROR
	errnoProtocolAuth       = 1007 // SLURM_PROTOCOL_AUTHENTICATION_ERROR
	errnoMissingSocket      = 1013 // SLURM_COMMUNICATIONS_MISSING_SOCKET_ERROR
	errnoCtldCommFirst      = 1800 // SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR
	errnoCtldCommLast       = 1804 // SLURMCTLD_COMMUNICATIONS_BACKOFF (23.11+)
	errnoDescToRecordCopy   = 2007 // ESLURM_ERROR_ON_DESC_TO_RECORD_COPY: "try again"
	errnoInvalidJobID       = 2017 // ESLURM_INVALID_JOB_ID
	errnoAlreadyDone        = 2021 // ESLURM_ALREADY_DONE
	errnoInStandbyMode      = 2027 // ESLURM_IN_STANDBY_MODE
	errnoInStandbyUseBackup = 2131 // ESLURM_IN_STANDBY_USE_BACKUP
	errnoSocketFirst        = 5000 // SLURM_PROTOCOL_SOCKET_IMPL_ZERO_RECV_LENGTH
	errnoZeroBytes          = 5005 // SLURM_PROTOCOL_SOCKET_ZERO_BYTES_SENT
	errnoSocketLast         = errnoZeroBytes
	errnoAuthFirst          = 6000 // ESLURM_AUTH_CRED_INVALID
	errnoAuthLast           = 6099 // the auth block (6000-6011 used so far)
	errnoDBConnection       = 7000 // ESLURM_DB_CONNECTION
	errnoRESTAuthFail       = 9003 // ESLURM_REST_AUTH_FAIL (newer Slurm)
)

// APIErrorEntry is one element of the "errors" array of a slurmrestd answer.
type APIErrorEntry = slurmjson.Error

// APIError is a request slurmrestd answered with an error. It unwraps to
// exactly one of scheduler.ErrRejected, scheduler.ErrUnavailable,
// ErrUnauthorized or ErrNotServed (the last two wrap
// scheduler.ErrMisconfigured).
type APIError struct {
	Method     string
	Path       string
	StatusCode int // HTTP status; 200 when Slurm reported errors in a 200 answer
	Errors     []APIErrorEntry
	// Body is the start of a non-JSON answer, for the message.
	Body string
	kind error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "slurmrestd %s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	for i, entry := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(entry.String())
	}
	if len(e.Errors) == 0 && e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	if e.Has(errnoUnspecified) || e.Has(errnoZeroBytes) {
		b.WriteString(" [slurmctld unreachable or dropping the request; Slurm 22.05 also answers an" +
			" invalid, expired or wrongly signed JWT, or a token for another user, this way:" +
			" Backend.Check tells which, slurmctld's log says why]")
	}
	fmt.Fprintf(&b, " (%v)", e.kind)
	return b.String()
}

// Unwrap returns the sentinel that classifies the error.
func (e *APIError) Unwrap() error { return e.kind }

// Has reports whether Slurm reported error number n.
func (e *APIError) Has(n int) bool {
	for _, entry := range e.Errors {
		if entry.Number == n {
			return true
		}
	}
	return false
}

// transientErrno reports Slurm error numbers that mean "slurmctld (or
// slurmdbd) could not be reached or is not in charge right now": a retry may
// succeed.
func transientErrno(n int) bool {
	switch {
	case n >= errnoCommConnection && n <= errnoCommShutdown,
		n == errnoMissingSocket,
		n >= errnoCtldCommFirst && n <= errnoCtldCommLast,
		n >= errnoSocketFirst && n <= errnoSocketLast,
		n == errnoDescToRecordCopy,
		n == errnoInStandbyMode, n == errnoInStandbyUseBackup,
		n == errnoDBConnection:
		return true
	}
	// Plain errno values slurmrestd passes through from failed RPCs:
	// EINTR, EAGAIN, ECONNRESET, ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH.
	switch n {
	case 4, 11, 104, 110, 111, 113:
		return true
	}
	return false
}

// authErrno reports Slurm error numbers that mean the credentials were
// refused.
func authErrno(n int) bool {
	return n == errnoProtocolAuth || n == errnoRESTAuthFail ||
		(n >= errnoAuthFirst && n <= errnoAuthLast)
}

// classify decides which sentinel an error answer to method wraps. Slurm's
// error numbers win over the HTTP status because slurmrestd 22.05 answers
// every failed RPC with 500, a bad partition as much as an unreachable
// slurmctld.
func classify(method string, status int, entries []APIErrorEntry) error {
	numbered := false
	for _, e := range entries {
		if authErrno(e.Number) {
			return ErrUnauthorized
		}
		if e.Number != 0 {
			numbered = true
		}
	}
	if method == http.MethodDelete && hasErrno(entries, errnoEPERM) {
		// slurm_kill_jobs() fails with plain EPERM ("Operation not
		// permitted") both when slurmctld cannot be reached and when the
		// user may not signal the job; slurmrestd 24.11 answers HTTP 500,
		// 26.05 HTTP 403 (captured: controller-down-cancel.json). Retrying
		// may help; it is never a success and never a verdict on the job.
		return scheduler.ErrUnavailable
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden ||
		status == http.StatusNetworkAuthenticationRequired {
		return ErrUnauthorized
	}
	if status == http.StatusNotFound && !numbered {
		// slurmrestd's own "Unable find requested URL": no Slurm verdict,
		// the API version or path is not served. (A 404 with a Slurm error
		// number, such as 2017 for an unknown job id, is Slurm's answer.)
		return ErrNotServed
	}
	for _, e := range entries {
		if transientErrno(e.Number) {
			return scheduler.ErrUnavailable
		}
	}
	if method == http.MethodGet && (numbered || status < 300) {
		// A listing Slurm could not produce: nothing was asked that Slurm
		// could refuse on its merits. slurmrestd 22.05 reports a failed
		// slurm_load_jobs() as SLURM_ERROR both when slurmctld is down and
		// when it refused the JWT (captured: controller-down-jobs.json and
		// auth-bad-token.json are the same body); Check tells the two
		// apart. A listing whose "errors" is not empty is never read as
		// the (empty) list next to it.
		return scheduler.ErrUnavailable
	}
	switch {
	case numbered:
		// Slurm gave a verdict: whatever the HTTP status, it is a refusal.
		return scheduler.ErrRejected
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable ||
		status == http.StatusGatewayTimeout || status == http.StatusTooManyRequests:
		return scheduler.ErrUnavailable
	case status >= 500:
		// No Slurm verdict: slurmrestd itself (or a proxy) failed.
		return scheduler.ErrUnavailable
	default:
		return scheduler.ErrRejected
	}
}

// hasErrno reports whether one of entries has Slurm error number n.
func hasErrno(entries []APIErrorEntry, n int) bool {
	for _, e := range entries {
		if e.Number == n {
			return true
		}
	}
	return false
}
