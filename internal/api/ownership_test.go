package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// cancellingSlurm is resultsSlurm that remembers scancel: a cancelled job
// is then listed CANCELLED.
type cancellingSlurm struct {
	resultsSlurm
	mu        sync.Mutex
	cancelled []string
}

func (f *cancellingSlurm) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *cancellingSlurm) Jobs(ctx context.Context, ids []string) ([]scheduler.JobStatus, error) {
	jobs, err := f.resultsSlurm.Jobs(ctx, ids)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range jobs {
		if slices.Contains(f.cancelled, jobs[i].JobID) {
			jobs[i].State = "CANCELLED"
		}
	}
	return jobs, err
}

func (f *cancellingSlurm) scancels() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cancelled)
}

// Tokens of the ownership test, by user.
var ownershipTokens = map[string]string{
	"ann":  "ann-submitter-token-0123456789abcdefghij",
	"bob":  "bob-submitter-token-0123456789abcdefghij",
	"vera": "vera-viewer-token-0123456789abcdefghijk",
	"olga": "olga-operator-token-0123456789abcdefghi",
	"ada":  "ada-admin-token-0123456789abcdefghijklm",
}

// ownershipServer is the real controller on a real store behind the real
// gRPC server with TLS, bearer tokens, agent certificates and the
// authorizer reading owners from the store, as the controller binary is
// built.
type ownershipServer struct {
	svc   *controller.Service
	slurm *cancellingSlurm
	as    map[string]apipb.RunServiceClient // by user, plus "agent"
}

func serveOwnership(t *testing.T) ownershipServer {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "runs.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		_ = st.Close()
	})
	slurm := &cancellingSlurm{}
	svc := controller.New(controller.Config{DefaultWorkDir: "/work"}, st, slurm, logger, nil)

	tokenFile := filepath.Join(dir, "tokens")
	lines := "ann-submitter-token-0123456789abcdefghij,ann,submitter\n" +
		"bob-submitter-token-0123456789abcdefghij,bob,submitter\n" +
		"vera-viewer-token-0123456789abcdefghijk,vera,viewer\n" +
		"olga-operator-token-0123456789abcdefghi,olga,operator\n" +
		"ada-admin-token-0123456789abcdefghijklm,ada,admin\n"
	if err := os.WriteFile(tokenFile, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := auth.NewTokenFile(tokenFile, auth.TokenFileOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Tokens: tf, Runs: RunOwners(st, logger), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t)
	pair := ca.Server(t, "localhost")
	sc, err := tlsutil.ServerConfig(pair.CertFile, pair.KeyFile, ca.CertFile, false)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := server.NewGRPC(logger, metrics.NewController(), append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(sc))}, a.ServerOptions()...)...)
	apipb.RegisterRunServiceServer(srv, NewRunServer(svc, logger))
	addr, _ := startGRPC(t, srv, true)

	s := ownershipServer{svc: svc, slurm: slurm, as: map[string]apipb.RunServiceClient{}}
	connect := func(opts ...grpc.DialOption) apipb.RunServiceClient {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return apipb.NewRunServiceClient(conn)
	}
	tc := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	for user, tok := range ownershipTokens {
		s.as[user] = connect(grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(bearer(tok)))
	}
	agent := ca.Agent(t, "worker-0")
	ac, err := tlsutil.ClientConfig(agent.CertFile, agent.KeyFile, ca.CertFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	s.as["agent"] = connect(grpc.WithTransportCredentials(credentials.NewTLS(ac)))
	return s
}

func (s ownershipServer) create(t *testing.T, user, name string) string {
	t.Helper()
	resp, err := s.as[user].CreateRun(context.Background(), &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
		JobName: name, Nodes: 1, TimeLimit: durationpb.New(time.Hour), Argv: []string{"python3", "train.py"},
	}})
	if err != nil {
		t.Fatalf("%s creates %s: %v", user, name, err)
	}
	if got := resp.GetRun().GetOwner(); got != user {
		t.Fatalf("owner of %s = %q, want %q", name, got, user)
	}
	return resp.GetRun().GetId()
}

// report streams n samples of metric loss = value into runID as user.
func (s ownershipServer) report(user, runID string, n int, value float64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := s.as[user].ReportRunResults(ctx)
	if err != nil {
		return err
	}
	req := &apipb.ReportRunResultsRequest{RunId: runID}
	for i := range n {
		req.Records = append(req.Records, &apipb.ResultRecord{SampleId: fmt.Sprintf("sample-%03d", i), Values: map[string]float64{"loss": value}})
	}
	if err := stream.Send(req); err != nil {
		_, err = stream.CloseAndRecv()
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

func (s ownershipServer) cancel(user, runID string) error {
	_, err := s.as[user].CancelRun(context.Background(), &apipb.CancelRunRequest{RunId: runID})
	return err
}

// snapshot is everything a write could change about a run.
type snapshot struct {
	run     *apipb.Run
	results *results.Set
}

func (s ownershipServer) snapshot(t *testing.T, runID string) snapshot {
	t.Helper()
	r, err := s.svc.Get(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	set, err := s.svc.Results(context.Background(), runID)
	if err != nil && !errors.Is(err, store.ErrNoResults) {
		t.Fatal(err)
	}
	return snapshot{run: runToProto(r), results: set}
}

func (a snapshot) String() string {
	n := -1
	if a.results != nil {
		n = a.results.Len()
	}
	return fmt.Sprintf("%v; results: %d samples", a.run, n)
}

func (a snapshot) equal(b snapshot) bool {
	if !proto.Equal(a.run, b.run) || (a.results == nil) != (b.results == nil) {
		return false
	}
	if a.results == nil {
		return true
	}
	return a.results.Equal(b.results)
}

// TestRunWritesOwnership is the reported case through the public API with TLS
// and authentication on: a submitter cannot replace another's results nor
// cancel another's run; viewers and agents write no run; operators and
// admins write any, including runs with no owner; every denied write
// leaves the run and its results exactly as they were.
func TestRunWritesOwnership(t *testing.T) {
	s := serveOwnership(t)
	annRun := s.create(t, "ann", "ann-baseline")
	bobRun := s.create(t, "bob", "bob-candidate")
	// A run created in insecure mode has no owner.
	insecureCtx := auth.NewContext(context.Background(), auth.Identity{Name: "insecure", Kind: auth.KindInsecure, Role: auth.RoleAdmin})
	legacy, err := s.svc.Create(insecureCtx, run.Spec{JobName: "legacy", Nodes: 1, TimeLimit: time.Hour, Argv: []string{"true"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if legacy.Owner != "" {
		t.Fatalf("insecure run owner = %q, want none", legacy.Owner)
	}
	noOwner := legacy.ID

	// The owners report their results.
	if err := s.report("ann", annRun, 50, 1.0); err != nil {
		t.Fatalf("ann reports into her run: %v", err)
	}
	if err := s.report("bob", bobRun, 50, 2.0); err != nil {
		t.Fatalf("bob reports into his run: %v", err)
	}

	type write struct {
		name string
		do   func(user, runID string) error
	}
	writes := []write{
		{"ReportRunResults", func(user, id string) error { return s.report(user, id, 50, 9.0) }},
		{"CancelRun", s.cancel},
	}
	denied := []struct {
		user, run string
		code      codes.Code
	}{
		{"bob", annRun, codes.PermissionDenied},
		{"ann", bobRun, codes.PermissionDenied},
		{"ann", noOwner, codes.PermissionDenied},
		{"vera", annRun, codes.PermissionDenied},
		{"vera", noOwner, codes.PermissionDenied},
		{"agent", annRun, codes.PermissionDenied},
		{"agent", noOwner, codes.PermissionDenied},
		{"ann", "r-01jdx2k7a8m3q0c4n5p6r7s8t9", codes.NotFound},
	}
	for _, w := range writes {
		for _, d := range denied {
			var before snapshot
			if d.code != codes.NotFound {
				before = s.snapshot(t, d.run)
			}
			err := w.do(d.user, d.run)
			if status.Code(err) != d.code {
				t.Errorf("%s as %s on %s: %v, want %v", w.name, d.user, d.run, err, d.code)
			}
			if d.code == codes.NotFound {
				continue
			}
			if after := s.snapshot(t, d.run); !after.equal(before) {
				t.Errorf("%s as %s on %s was refused but changed the run:\nbefore %v\nafter  %v", w.name, d.user, d.run, before, after)
			}
		}
	}
	if got := s.slurm.scancels(); len(got) != 0 {
		t.Fatalf("scancel ran for refused cancels: %v", got)
	}
	set, err := s.svc.Results(context.Background(), annRun)
	if err != nil {
		t.Fatal(err)
	}
	if loss, _ := set.Column("loss"); set.Len() != 50 || slices.ContainsFunc(loss, func(v float64) bool { return v != 1.0 }) {
		t.Fatalf("ann's results after the refused reports: %d samples, loss %v; want her 50 samples of 1.0", set.Len(), loss)
	}

	// Operators and admins write anyone's runs, including one with no
	// owner; the owner writes her own.
	if err := s.report("olga", noOwner, 10, 3.0); err != nil {
		t.Errorf("operator reports into a run with no owner: %v", err)
	}
	if err := s.report("ada", bobRun, 10, 4.0); err != nil {
		t.Errorf("admin reports into bob's run: %v", err)
	}
	if set, err := s.svc.Results(context.Background(), bobRun); err != nil || set.Len() != 10 {
		t.Errorf("bob's run after the admin's report: %v; want 10 samples", err)
	}
	for _, c := range []struct{ user, run string }{{"ann", annRun}, {"olga", bobRun}, {"ada", noOwner}} {
		if err := s.cancel(c.user, c.run); err != nil {
			t.Errorf("%s cancels %s: %v", c.user, c.run, err)
		}
		if r, _ := s.svc.Get(context.Background(), c.run); r.State != run.StateCancelled {
			t.Errorf("%s cancelled %s, state %s", c.user, c.run, r.State)
		}
	}
	if got := s.slurm.scancels(); len(got) != 3 {
		t.Errorf("scancel calls: %v, want one for each of the 3 allowed cancels", got)
	}
}

func TestRunOwnersMapsErrors(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "runs.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	owners := RunOwners(st, slog.New(slog.DiscardHandler))
	if _, err := owners.RunOwner(context.Background(), "r-missing"); status.Code(err) != codes.NotFound {
		t.Errorf("missing run: %v, want NotFound", err)
	}
	if _, err := owners.RunOwner(context.Background(), ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty run id: %v, want InvalidArgument", err)
	}
	r, _, err := st.CreateRun(context.Background(), &run.Run{ID: "r-1", RequestID: "q-1", Owner: "ann", State: run.StatePending, CreateTime: time.Now(), UpdateTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if owner, err := owners.RunOwner(context.Background(), r.ID); err != nil || owner != "ann" {
		t.Errorf("RunOwner = %q, %v; want ann", owner, err)
	}
}

// Label values with control characters are refused at the public API with
// a field violation naming the label, and nothing is recorded.
func TestCreateRunRefusesControlCharactersInLabels(t *testing.T) {
	s := serveOwnership(t)
	for _, v := range []string{"a\x00b", "nlp\r\nX-Injected: 1", "a\nb", "a\tb", "\x1b[2J", "a\u2028b"} {
		_, err := s.as["ann"].CreateRun(context.Background(), &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
			JobName: "labelled", Nodes: 1, TimeLimit: durationpb.New(time.Hour), Argv: []string{"true"},
			Labels: map[string]string{"team": v},
		}})
		code, got := fieldViolations(err)
		if code != codes.InvalidArgument {
			t.Errorf("label %q: %v, want InvalidArgument", v, err)
			continue
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], `spec.labels["team"]: value must be one line of printable text`) {
			t.Errorf("label %q: field violations %q, want one for spec.labels[\"team\"]", v, got)
		}
	}
	if runs, _, err := s.svc.List(context.Background(), store.ListQuery{}); err != nil || len(runs) != 0 {
		t.Errorf("refused creates recorded %d runs (%v)", len(runs), err)
	}
}
