package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// badRequestViolations returns the field violations of the BadRequest
// detail of err's status, and whether there was one (at most one is
// allowed).
func badRequestViolations(t *testing.T, err error) ([]run.FieldViolation, bool) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not a gRPC status", err, err)
	}
	var out []run.FieldViolation
	found := false
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			t.Errorf("unexpected status detail %T: %v", d, d)
			continue
		}
		if found {
			t.Errorf("more than one BadRequest detail")
		}
		found = true
		for _, v := range br.GetFieldViolations() {
			out = append(out, run.FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
		}
	}
	return out, found
}

func TestToStatus(t *testing.T) {
	validation := &run.ValidationError{Violations: []run.FieldViolation{
		{Field: "spec.nodes", Description: "must be 1 to 1024, got 0"},
		{Field: `spec.environment["SLURM_JOB_ID"]`, Description: "reserved prefix SLURM_"},
	}}
	existing := status.New(codes.PermissionDenied, "not yours")
	existingWithDetails, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.QuotaFailure{
		Violations: []*errdetails.QuotaFailure_Violation{{Subject: "user:ann", Description: "10 runs a minute"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	existingErr := existing.Err()
	wrappedStatus := fmt.Errorf("create: %w", existingErr)
	existingDetailsErr := existingWithDetails.Err()

	type want struct {
		code codes.Code
		msg  string
		// violations is checked when badRequest is true: then the status
		// must carry exactly one BadRequest detail with these violations.
		badRequest bool
		violations []run.FieldViolation
	}
	tests := []struct {
		name string
		err  error
		want want
		// same: toStatus must return err itself, not a copy.
		same bool
	}{
		{
			name: "validation error keeps every violation",
			err:  validation,
			want: want{code: codes.InvalidArgument, msg: validation.Error(), badRequest: true, violations: validation.Violations},
		},
		{
			name: "wrapped validation error",
			err:  fmt.Errorf("create run: %w", validation),
			want: want{code: codes.InvalidArgument, msg: validation.Error(), badRequest: true, violations: validation.Violations},
		},
		{
			name: "validation error with one violation",
			err:  &run.ValidationError{Violations: []run.FieldViolation{{Field: "request_id", Description: "at most 64 characters"}}},
			want: want{
				code: codes.InvalidArgument, msg: "invalid argument: request_id: at most 64 characters", badRequest: true,
				violations: []run.FieldViolation{{Field: "request_id", Description: "at most 64 characters"}},
			},
		},
		{
			name: "validation error without violations",
			err:  &run.ValidationError{},
			want: want{code: codes.InvalidArgument, msg: "invalid argument", badRequest: true, violations: nil},
		},
		{
			name: "request id reused",
			err:  fmt.Errorf("request_id %q: %w", "train-1", controller.ErrRequestIDReused),
			want: want{
				code: codes.InvalidArgument, msg: `request_id "train-1": request_id was already used with a different spec`, badRequest: true,
				violations: []run.FieldViolation{{Field: "request_id", Description: "already used with a different spec; use a new request_id for a different run"}},
			},
		},
		{
			name: "invalid page token",
			err:  fmt.Errorf("%w: issued for a different filter", store.ErrInvalidPageToken),
			want: want{
				code: codes.InvalidArgument, msg: "invalid page token: issued for a different filter", badRequest: true,
				violations: []run.FieldViolation{{Field: "page_token", Description: "not a token from a previous ListRuns call with the same filter"}},
			},
		},
		{
			name: "controller not found",
			err:  controller.ErrNotFound,
			want: want{code: codes.NotFound, msg: "run not found"},
		},
		{
			name: "wrapped controller not found",
			err:  fmt.Errorf("run %q: %w", "r-1", controller.ErrNotFound),
			want: want{code: codes.NotFound, msg: `run "r-1": run not found`},
		},
		{
			name: "wrapped store not found",
			err:  fmt.Errorf("get r-2: %w", store.ErrNotFound),
			want: want{code: codes.NotFound, msg: "get r-2: run not found"},
		},
		{
			name: "busy",
			err:  fmt.Errorf("run r-3: %w; retry in a moment", controller.ErrBusy),
			want: want{code: codes.Aborted, msg: "run r-3: run is being submitted; retry in a moment"},
		},
		{
			name: "failed precondition",
			err:  fmt.Errorf("dependency r-4 failed: %w", controller.ErrFailedPrecondition),
			want: want{code: codes.FailedPrecondition, msg: "dependency r-4 failed: failed precondition"},
		},
		{
			name: "slurm rejected",
			err:  fmt.Errorf("sbatch: %w: invalid partition", scheduler.ErrRejected),
			want: want{code: codes.FailedPrecondition, msg: "sbatch: slurm rejected the request: invalid partition"},
		},
		{
			name: "slurm unavailable",
			err:  fmt.Errorf("squeue: %w: connection refused", scheduler.ErrUnavailable),
			want: want{code: codes.Unavailable, msg: "squeue: slurm unavailable: connection refused"},
		},
		{
			name: "deadline exceeded",
			err:  context.DeadlineExceeded,
			want: want{code: codes.DeadlineExceeded, msg: "context deadline exceeded"},
		},
		{
			name: "wrapped deadline exceeded",
			err:  fmt.Errorf("store: %w", context.DeadlineExceeded),
			want: want{code: codes.DeadlineExceeded, msg: "store: context deadline exceeded"},
		},
		{
			name: "canceled",
			err:  context.Canceled,
			want: want{code: codes.Canceled, msg: "context canceled"},
		},
		{
			name: "wrapped canceled",
			err:  fmt.Errorf("watch: %w", context.Canceled),
			want: want{code: codes.Canceled, msg: "watch: context canceled"},
		},
		{
			name: "slurm unavailable takes precedence over the context error it wraps",
			err:  fmt.Errorf("%w: %w", scheduler.ErrUnavailable, context.DeadlineExceeded),
			want: want{code: codes.Unavailable, msg: "slurm unavailable: context deadline exceeded"},
		},
		{
			name: "existing status passes through",
			err:  existingErr,
			want: want{code: codes.PermissionDenied, msg: "not yours"},
			same: true,
		},
		{
			name: "existing status with details passes through",
			err:  existingDetailsErr,
			want: want{code: codes.ResourceExhausted, msg: "slow down"},
			same: true,
		},
		{
			name: "wrapped status passes through",
			err:  wrappedStatus,
			// gRPC takes the message of the outermost error
			want: want{code: codes.PermissionDenied, msg: "create: rpc error: code = PermissionDenied desc = not yours"},
			same: true,
		},
		{
			name: "slurm rejecting a drain is a failed precondition, as for a run",
			err:  fmt.Errorf("drain worker-9: %w: Invalid node name specified", scheduler.ErrRejected),
			want: want{code: codes.FailedPrecondition, msg: "drain worker-9: slurm rejected the request: Invalid node name specified"},
		},
		{
			name: "unknown check names the field",
			err:  fmt.Errorf("%w %q", monitor.ErrUnknownCheck, "dcgm"),
			want: want{
				code: codes.InvalidArgument, msg: `unknown check "dcgm"`, badRequest: true,
				violations: []run.FieldViolation{{Field: "check", Description: `"nccl" (the default) is the only check`}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := toStatus(context.Background(), slog.New(slog.DiscardHandler), tt.err)
			if got == nil {
				t.Fatalf("toStatus(%v) = nil", tt.err)
			}
			if tt.same && got != tt.err {
				t.Errorf("toStatus returned %v (%T), want the error itself", got, got)
			}
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("toStatus(%v) = %v (%T), not a gRPC status", tt.err, got, got)
			}
			if st.Code() != tt.want.code {
				t.Errorf("code = %v, want %v", st.Code(), tt.want.code)
			}
			if st.Message() != tt.want.msg {
				t.Errorf("message = %q, want %q", st.Message(), tt.want.msg)
			}
			if tt.want.badRequest {
				vs, found := badRequestViolations(t, got)
				if !found {
					t.Fatalf("no BadRequest detail in %v", st.Proto())
				}
				if !reflect.DeepEqual(vs, tt.want.violations) {
					t.Errorf("violations = %q, want %q", vs, tt.want.violations)
				}
			} else if tt.same {
				if !reflect.DeepEqual(st.Proto().GetDetails(), status.Convert(tt.err).Proto().GetDetails()) {
					t.Errorf("details changed: %v", st.Details())
				}
			} else if len(st.Details()) != 0 {
				t.Errorf("unexpected details %v", st.Details())
			}
		})
	}
}

func TestToStatusNil(t *testing.T) {
	if err := toStatus(context.Background(), nil, nil); err != nil {
		t.Errorf("toStatus(nil) = %v, want nil", err)
	}
}

func TestBadRequest(t *testing.T) {
	tests := []struct {
		name       string
		msg        string
		violations []run.FieldViolation
	}{
		{name: "none", msg: "bad"},
		{name: "one", msg: "run_id is required", violations: []run.FieldViolation{{Field: "run_id", Description: "required"}}},
		{
			name: "several keep their order",
			msg:  "invalid ListRuns request",
			violations: []run.FieldViolation{
				{Field: "page_size", Description: "must be 0 (default 50) to 1000"},
				{Field: "states", Description: "unknown or unspecified state RUN_STATE_UNSPECIFIED"},
				{Field: "states", Description: "unknown or unspecified state 42"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := badRequest(tt.msg, tt.violations...)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || st.Message() != tt.msg {
				t.Errorf("status = %v %q, want InvalidArgument %q", st.Code(), st.Message(), tt.msg)
			}
			vs, found := badRequestViolations(t, err)
			if !found {
				t.Fatal("no BadRequest detail")
			}
			if !reflect.DeepEqual(vs, tt.violations) {
				t.Errorf("violations = %q, want %q", vs, tt.violations)
			}
		})
	}
}

// TestErrorClasses is the table of every domain sentinel the API can see
// and the one code it reaches callers as. A sentinel added to
// errorClasses without a row here fails the test.
func TestErrorClasses(t *testing.T) {
	want := map[error]codes.Code{
		controller.ErrRequestIDReused:     codes.InvalidArgument,
		store.ErrInvalidPageToken:         codes.InvalidArgument,
		monitor.ErrUnknownCheck:           codes.InvalidArgument,
		results.ErrInvalid:                codes.InvalidArgument,
		controller.ErrNotFound:            codes.NotFound,
		store.ErrNotFound:                 codes.NotFound,
		fleet.ErrUnknownNode:              codes.NotFound,
		remediation.ErrUnknownNode:        codes.NotFound,
		controller.ErrBusy:                codes.Aborted,
		remediation.ErrBusy:               codes.Aborted,
		controller.ErrFailedPrecondition:  codes.FailedPrecondition,
		controller.ErrNoOutput:            codes.FailedPrecondition,
		controller.ErrNoMetric:            codes.FailedPrecondition,
		scheduler.ErrRejected:             codes.FailedPrecondition,
		remediation.ErrForeign:            codes.FailedPrecondition,
		remediation.ErrNodeInUse:          codes.FailedPrecondition,
		remediation.ErrNotDrained:         codes.FailedPrecondition,
		remediation.ErrVerificationFailed: codes.FailedPrecondition,
		results.ErrTooLarge:               codes.ResourceExhausted,
		scheduler.ErrNodeUnsupported:      codes.Unimplemented,
		scheduler.ErrUnavailable:          codes.Unavailable,
		fleet.ErrNotConnected:             codes.Unavailable,
		controller.ErrShuttingDown:        codes.Unavailable,
		context.DeadlineExceeded:          codes.DeadlineExceeded,
		context.Canceled:                  codes.Canceled,
		// Sentinels that only a bug in the controller lets through: the
		// API validates first, or the store never returns them to a call.
		store.ErrInvalidArgument:    codes.Internal,
		store.ErrAlreadyExists:      codes.Internal,
		store.ErrAlreadySubmitted:   codes.Internal,
		store.ErrLocked:             codes.Internal,
		store.ErrUnsupportedVersion: codes.Internal,
		results.ErrCorrupt:          codes.Internal,
	}
	for _, c := range errorClasses {
		if _, ok := want[c.err]; !ok {
			t.Errorf("errorClasses maps %q, which this test does not list", c.err)
		}
	}
	ctx := context.Background()
	for sentinel, code := range want {
		t.Run(sentinel.Error(), func(t *testing.T) {
			wrapped := fmt.Errorf("doing something for the caller: %w", sentinel)
			st := status.Convert(toStatus(ctx, slog.New(slog.DiscardHandler), wrapped))
			if st.Code() != code {
				t.Errorf("code = %v, want %v", st.Code(), code)
			}
			if code != codes.Internal && st.Message() != wrapped.Error() {
				t.Errorf("message = %q, want the error's own %q", st.Message(), wrapped.Error())
			}
		})
	}
}

// TestInternalErrorsHideTheirDetail: the caller gets an id, the log gets
// the detail under the same id.
func TestInternalErrorsHideTheirDetail(t *testing.T) {
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	detail := fmt.Errorf("put run r-1: %w", errors.New("open /var/lib/sopilot/controller.db: input/output error"))
	st := status.Convert(toStatus(context.Background(), logger, detail))
	if st.Code() != codes.Internal {
		t.Fatalf("code = %v, want Internal", st.Code())
	}
	m := regexp.MustCompile(`^internal error \(id ([0-9a-f]{16})\); the controller's log has the details$`).FindStringSubmatch(st.Message())
	if m == nil {
		t.Fatalf("message = %q, want an error id and nothing of the detail", st.Message())
	}
	for _, leak := range []string{"/var/lib", "put run", "input/output"} {
		if bytes.Contains([]byte(st.Message()), []byte(leak)) {
			t.Errorf("message %q leaks %q", st.Message(), leak)
		}
	}
	if !bytes.Contains(log.Bytes(), []byte("error_id="+m[1])) || !bytes.Contains(log.Bytes(), []byte("input/output error")) {
		t.Errorf("log lacks the id %s and the detail:\n%s", m[1], log.String())
	}
	again := status.Convert(toStatus(context.Background(), logger, detail)).Message()
	if again == st.Message() {
		t.Errorf("two errors got the same id: %q", again)
	}
}
