package auth_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// expectedRuns is what each method does to the runs its request names,
// written out independently of the policy table. "write" methods are
// followed by the least role that writes runs it does not own. Methods
// not listed touch no existing run.
var expectedRuns = map[string]string{
	"/sopilot.api.v1.RunService/CreateRun":               "read",
	"/sopilot.api.v1.RunService/GetRun":                  "read",
	"/sopilot.api.v1.RunService/ListRuns":                "read",
	"/sopilot.api.v1.RunService/CancelRun":               "write operator",
	"/sopilot.api.v1.RunService/WatchRun":                "read",
	"/sopilot.api.v1.RunService/GetRunLogs":              "read",
	"/sopilot.api.v1.RunService/ReportRunResults":        "write operator",
	"/sopilot.api.v1.NodeService/ListIncidents":          "read",
	"/sopilot.api.v1.ComparisonService/CompareRuns":      "read",
	"/sopilot.api.v1.ComparisonService/CompareRunGroups": "read",
	"/sopilot.agent.v1.AgentService/Connect":             "write-assigned",
}

func describeRuns(r auth.Rule) string {
	if r.Runs == auth.RunWrite {
		return "write " + r.AnyRun.String()
	}
	return r.Runs.String()
}

// methodDesc returns the protobuf descriptor of a gRPC full method name.
func methodDesc(t *testing.T, fullMethod string) protoreflect.MethodDescriptor {
	t.Helper()
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(fullMethod, "/"), "/", "."))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		t.Fatalf("descriptor of %s: %v", fullMethod, err)
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		t.Fatalf("%s is a %T, not a method", name, d)
	}
	return md
}

// namesRun reports whether message m, or any message inside it, has a
// field that holds run ids: run_id, <something>_run_id or run_ids. It
// returns the path of the first such field.
func namesRun(m protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) (string, bool) {
	if seen[m.FullName()] {
		return "", false
	}
	seen[m.FullName()] = true
	fields := m.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		name := string(f.Name())
		if f.Kind() == protoreflect.StringKind && (name == "run_id" || strings.HasSuffix(name, "_run_id") || name == "run_ids") {
			return name, true
		}
		if f.Message() != nil && !f.IsMap() {
			if path, ok := namesRun(f.Message(), seen); ok {
				return name + "." + path, true
			}
		}
	}
	return "", false
}

// readVerbs start the names of methods that only read.
var readVerbs = []string{"Get", "List", "Watch", "Compare"}

// TestEveryMethodNamingARunDeclaresWhatItDoes walks the generated request
// messages: a method whose request names a run must say in the table what
// it does to it; one that is not a read must be a run write with an
// ownership rule the interceptor can enforce. A new RPC such as
// UpdateRunLabels(run_id, labels) fails here until the table says who may
// call it on whose runs.
func TestEveryMethodNamingARunDeclaresWhatItDoes(t *testing.T) {
	for _, r := range allRPCs() {
		rule, ok := auth.RuleFor(r.method)
		if !ok {
			continue // TestEveryGeneratedMethodHasARule says so
		}
		if got, want := describeRuns(rule), expectedRuns[r.method]; got != want && !(want == "" && got == "none") {
			t.Errorf("%s: run access %q in the policy table, %q in this test's table", r.method, got, want)
		}
		md := methodDesc(t, r.method)
		field, names := namesRun(md.Input(), map[protoreflect.FullName]bool{})
		verb := string(md.Name())
		isRead := slices.ContainsFunc(readVerbs, func(v string) bool { return strings.HasPrefix(verb, v) })
		switch {
		case names && rule.Runs == auth.RunNone:
			t.Errorf("%s: its request names runs (%s) but its rule says nothing about runs: declare RunRead, or RunWrite with AnyRun", r.method, field)
		case names && !isRead && rule.Runs != auth.RunWrite && rule.Runs != auth.RunWriteAssigned:
			t.Errorf("%s: its request names runs (%s) and it is not a read (%v), so it must be a RunWrite with an ownership rule", r.method, field, readVerbs)
		}
		if rule.Runs != auth.RunWrite {
			continue
		}
		if rule.Public || rule.AgentOnly {
			t.Errorf("%s: a run write must be a user method with an ownership rule, not public or agent-only", r.method)
		}
		if rule.AnyRun <= rule.Role || rule.Role < auth.RoleSubmitter {
			t.Errorf("%s: run write with Role %s and AnyRun %s: AnyRun must be above Role, which must be at least submitter", r.method, rule.Role, rule.AnyRun)
		}
		// The interceptor reads the run from a top-level string run_id
		// through the generated getter.
		f := md.Input().Fields().ByName("run_id")
		if f == nil || f.Kind() != protoreflect.StringKind || f.Cardinality() == protoreflect.Repeated {
			t.Errorf("%s: a run write's request must have a string run_id field naming the run", r.method)
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			t.Fatalf("%s: %v", md.Input().FullName(), err)
		}
		if _, ok := mt.New().Interface().(interface{ GetRunId() string }); !ok {
			t.Errorf("%s: %T has no GetRunId method", r.method, mt.New().Interface())
		}
	}
}

// fakeOwners are the owners of the runs in the ownership tests.
type fakeOwners map[string]string

func (f fakeOwners) RunOwner(_ context.Context, runID string) (string, error) {
	owner, ok := f[runID]
	if !ok {
		return "", status.Errorf(codes.NotFound, "run %q not found", runID)
	}
	return owner, nil
}

// recordingRuns implements every RunService method that writes a run:
// each records the run ids of the messages it receives, so a test can
// check that a denied call never reached it.
type recordingRuns struct {
	apipb.UnimplementedRunServiceServer
	mu   sync.Mutex
	seen []string // "Method run-id"
}

func (s *recordingRuns) record(method, runID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, method+" "+runID)
}

func (s *recordingRuns) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.seen
	s.seen = nil
	return seen
}

func (s *recordingRuns) CancelRun(_ context.Context, req *apipb.CancelRunRequest) (*apipb.CancelRunResponse, error) {
	s.record("CancelRun", req.GetRunId())
	return &apipb.CancelRunResponse{Run: &apipb.Run{Id: req.GetRunId()}}, nil
}

func (s *recordingRuns) ReportRunResults(stream grpc.ClientStreamingServer[apipb.ReportRunResultsRequest, apipb.ReportRunResultsResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&apipb.ReportRunResultsResponse{})
		}
		if err != nil {
			return err
		}
		s.record("ReportRunResults", req.GetRunId())
	}
}

// writeRPCs are the table's RunWrite methods.
func writeRPCs() []rpc {
	var out []rpc
	for _, r := range allRPCs() {
		if rule, _ := auth.RuleFor(r.method); rule.Runs == auth.RunWrite {
			out = append(out, r)
		}
	}
	return out
}

// callWrite calls write method r with one request message per run id
// (a client stream sends them all), built from the method's descriptor.
func callWrite(t *testing.T, ctx context.Context, conn *grpc.ClientConn, r rpc, runIDs ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md := methodDesc(t, r.method)
	req := func(id string) *dynamicpb.Message {
		m := dynamicpb.NewMessage(md.Input())
		m.Set(md.Input().Fields().ByName("run_id"), protoreflect.ValueOfString(id))
		return m
	}
	resp := dynamicpb.NewMessage(md.Output())
	if r.stream == nil {
		return conn.Invoke(ctx, r.method, req(runIDs[0]), resp)
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: r.stream.ClientStreams, ServerStreams: r.stream.ServerStreams}, r.method)
	if err != nil {
		return err
	}
	for _, id := range runIDs {
		if err := cs.SendMsg(req(id)); err != nil {
			break // the status comes with RecvMsg
		}
	}
	_ = cs.CloseSend()
	return cs.RecvMsg(resp)
}

// TestRunOwnershipMatrix writes runs of different owners as every kind of
// caller, over TLS through the interceptors, and checks who gets through
// and that a denied write never reaches the handler.
func TestRunOwnershipMatrix(t *testing.T) {
	ca := tlstest.NewCA(t)
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	owners := fakeOwners{"r-mine": "submitter-user", "r-theirs": "bob", "r-nobodys": ""}
	a, err := auth.New(auth.Config{Tokens: tf, Runs: owners, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runs := &recordingRuns{}
	addr := startServer(t, a, ca, stubs{runs: runs})
	agentPair := ca.Agent(t, "worker-0")
	anon := dial(t, addr, ca, nil)
	agentConn := dial(t, addr, ca, &agentPair)

	writes := writeRPCs()
	if len(writes) < 2 {
		t.Fatalf("only %d run writes in the table", len(writes))
	}
	type caller struct {
		name  string
		conn  *grpc.ClientConn
		token string
	}
	callers := []caller{
		{"unauthenticated", anon, ""},
		{"agent", agentConn, ""},
		{"viewer", anon, roleTokens[auth.RoleViewer]},
		{"submitter", anon, roleTokens[auth.RoleSubmitter]},
		{"submitter on an agent connection", agentConn, roleTokens[auth.RoleSubmitter]},
		{"operator", anon, roleTokens[auth.RoleOperator]},
		{"admin", anon, roleTokens[auth.RoleAdmin]},
	}
	// want[caller][run] is the code every run write gets.
	ok, denied, unauth, missing := codes.OK, codes.PermissionDenied, codes.Unauthenticated, codes.NotFound
	want := map[string]map[string]codes.Code{
		"unauthenticated":                  {"r-mine": unauth, "r-theirs": unauth, "r-nobodys": unauth, "r-missing": unauth},
		"agent":                            {"r-mine": denied, "r-theirs": denied, "r-nobodys": denied, "r-missing": denied},
		"viewer":                           {"r-mine": denied, "r-theirs": denied, "r-nobodys": denied, "r-missing": denied},
		"submitter":                        {"r-mine": ok, "r-theirs": denied, "r-nobodys": denied, "r-missing": missing},
		"submitter on an agent connection": {"r-mine": ok, "r-theirs": denied, "r-nobodys": denied, "r-missing": missing},
		// The handler, not the interceptor, answers for a missing run
		// here; this stub accepts everything.
		"operator": {"r-mine": ok, "r-theirs": ok, "r-nobodys": ok, "r-missing": ok},
		"admin":    {"r-mine": ok, "r-theirs": ok, "r-nobodys": ok, "r-missing": ok},
	}
	for _, c := range callers {
		for _, r := range writes {
			verb := r.method[strings.LastIndex(r.method, "/")+1:]
			for _, id := range []string{"r-mine", "r-theirs", "r-nobodys", "r-missing"} {
				ctx := ctxWithCancel(t)
				if c.token != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
				}
				err := callWrite(t, ctx, c.conn, r, id)
				if got := status.Code(err); got != want[c.name][id] {
					t.Errorf("%s calling %s on %s: %v, want %v", c.name, verb, id, err, want[c.name][id])
				}
				var reached []string
				if status.Code(err) == codes.OK {
					reached = []string{verb + " " + id}
				}
				if got := runs.take(); !slices.Equal(got, reached) {
					t.Errorf("%s calling %s on %s: the handler received %q, want %q", c.name, verb, id, got, reached)
				}
			}
		}
	}

	submitter := metadata.AppendToOutgoingContext(ctxWithCancel(t), "authorization", "Bearer "+roleTokens[auth.RoleSubmitter])
	err = callWrite(t, submitter, anon, rpcNamed(t, apipb.RunService_CancelRun_FullMethodName), "r-theirs")
	wantStatus(t, err, codes.PermissionDenied, `run r-theirs belongs to "bob"; caller "submitter-user" (role submitter) may write only its own runs (role operator may write any)`)
	err = callWrite(t, submitter, anon, rpcNamed(t, apipb.RunService_CancelRun_FullMethodName), "r-nobodys")
	wantStatus(t, err, codes.PermissionDenied, "run r-nobodys was created with no owner; only role operator may write it")

	// A stream that starts on the caller's own run and then names another
	// is cut at that message: the handler never sees it. Chunks that leave
	// run_id empty continue the stream's run.
	report := rpcNamed(t, apipb.RunService_ReportRunResults_FullMethodName)
	err = callWrite(t, submitter, anon, report, "r-mine", "", "r-theirs", "r-mine")
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("stream switching to another's run: %v, want PermissionDenied", err)
	}
	if got, want := runs.take(), []string{"ReportRunResults r-mine", "ReportRunResults "}; !slices.Equal(got, want) {
		t.Errorf("the handler received %q, want %q", got, want)
	}
	if err := callWrite(t, submitter, anon, report, "r-mine", "", "r-mine"); err != nil {
		t.Errorf("stream on the caller's own run: %v", err)
	}
	if got := runs.take(); len(got) != 3 {
		t.Errorf("the handler received %q, want 3 messages", got)
	}

	for _, line := range []string{`msg="permission denied: not the run's owner"`, "run_id=r-theirs", "owner=bob", "caller=submitter-user"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs.String())
		}
	}
	for _, tok := range roleTokens {
		if containsToken(logs.String(), tok) {
			t.Errorf("log output contains a token:\n%s", logs.String())
		}
	}
}

func rpcNamed(t *testing.T, method string) rpc {
	t.Helper()
	for _, r := range allRPCs() {
		if r.method == method {
			return r
		}
	}
	t.Fatalf("no RPC %s", method)
	return rpc{}
}

// Without a way to look up owners only roles that write any run may
// write; the others are refused, not let through.
func TestRunWritesWithoutOwnersFailClosed(t *testing.T) {
	ca := tlstest.NewCA(t)
	a := tokenAuthorizer(t, auth.Config{Logger: discard()})
	runs := &recordingRuns{}
	addr := startServer(t, a, ca, stubs{runs: runs})
	conn := dial(t, addr, ca, nil)
	as := func(r auth.Role) context.Context {
		return metadata.AppendToOutgoingContext(ctxWithCancel(t), "authorization", "Bearer "+roleTokens[r])
	}
	for _, r := range writeRPCs() {
		err := callWrite(t, as(auth.RoleSubmitter), conn, r, "r-1")
		wantStatus(t, err, codes.PermissionDenied, "this server cannot look up run owners; only role operator may write runs")
		if err := callWrite(t, as(auth.RoleOperator), conn, r, "r-1"); err != nil {
			t.Errorf("operator calling %s: %v", r.method, err)
		}
	}
	if got := runs.take(); len(got) != len(writeRPCs()) {
		t.Errorf("the handlers received %q; want only the operator's %d calls", got, len(writeRPCs()))
	}
}

// An owner lookup that fails for a reason other than a missing run is an
// internal error, and the write does not go through.
func TestRunOwnerLookupFailureDenies(t *testing.T) {
	ca := tlstest.NewCA(t)
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	a, err := auth.New(auth.Config{Tokens: tf, Runs: brokenOwners{}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runs := &recordingRuns{}
	addr := startServer(t, a, ca, stubs{runs: runs})
	ctx := metadata.AppendToOutgoingContext(ctxWithCancel(t), "authorization", "Bearer "+roleTokens[auth.RoleSubmitter])
	err = callWrite(t, ctx, dial(t, addr, ca, nil), rpcNamed(t, apipb.RunService_CancelRun_FullMethodName), "r-1")
	wantStatus(t, err, codes.Internal, "cannot look up the owner of run r-1")
	if strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("the lookup's own error reached the caller: %v", err)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("the lookup's error is not logged:\n%s", logs.String())
	}
	if got := runs.take(); len(got) != 0 {
		t.Errorf("the handler received %q", got)
	}
}

type brokenOwners struct{}

func (brokenOwners) RunOwner(context.Context, string) (string, error) {
	return "", errors.New("disk on fire")
}
