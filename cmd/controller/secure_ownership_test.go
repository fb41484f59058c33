package main

// Run ownership through the controller binary with TLS, bearer tokens and
// agent certificates, against the real local Slurm cluster.

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/tlsutil"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// TestSecureRunOwnership: a submitter cannot replace another submitter's
// results (the comparison of the two runs stays what it was) nor cancel
// their run; a viewer and a node agent write no run; an operator cancels
// anyone's. An agent's progress counts only for a run on its own node.
func TestSecureRunOwnership(t *testing.T) {
	env := slurmtest.Require(t)
	ca := tlstest.NewCA(t)
	srv := ca.Server(t, "localhost", "127.0.0.1")
	dir := t.TempDir()
	tokens := map[string]string{
		"ann":  "ann-submitter-token-0123456789abcdefghij",
		"bob":  "bob-submitter-token-0123456789abcdefghij",
		"vera": "vera-viewer-token-0123456789abcdefghijk",
		"olga": "olga-operator-token-0123456789abcdefghi",
	}
	roles := map[string]string{"ann": "submitter", "bob": "submitter", "vera": "viewer", "olga": "operator"}
	var lines strings.Builder
	for user, tok := range tokens {
		fmt.Fprintf(&lines, "%s,%s,%s\n", tok, user, roles[user])
	}
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, env, "--db", filepath.Join(dir, "c.db"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--poll-interval", "1s", "--default-workdir", dir, "--remediation", "dry-run",
		"--tls-cert-file", srv.CertFile, "--tls-key-file", srv.KeyFile, "--tls-client-ca-file", ca.CertFile, "--token-file", tokenFile)

	dial := func(opts ...grpc.DialOption) *grpc.ClientConn {
		conn, err := grpc.NewClient(p.addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	serverTLS := credentials.NewTLS(&tls.Config{RootCAs: ca.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	runsAs := map[string]apipb.RunServiceClient{}
	var compareAs apipb.ComparisonServiceClient
	for user, tok := range tokens {
		conn := dial(grpc.WithTransportCredentials(serverTLS), grpc.WithPerRPCCredentials(tokenCreds(tok)))
		runsAs[user] = apipb.NewRunServiceClient(conn)
		if user == "vera" {
			compareAs = apipb.NewComparisonServiceClient(conn)
		}
	}
	agentConn := func(node string) *grpc.ClientConn {
		pair := ca.Agent(t, node)
		tc, err := tlsutil.ClientConfig(pair.CertFile, pair.KeyFile, ca.CertFile, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		return dial(grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	}
	runsAs["agent"] = apipb.NewRunServiceClient(agentConn("worker-0"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	create := func(user, name string) string {
		resp, err := runsAs[user].CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
			JobName: name, Nodes: 1, TimeLimit: durationpb.New(5 * time.Minute), Argv: []string{"sleep", "300"},
		}})
		if err != nil {
			t.Fatalf("%s creates a run: %v", user, err)
		}
		if resp.GetRun().GetOwner() != user {
			t.Fatalf("owner = %q, want %q", resp.GetRun().GetOwner(), user)
		}
		return resp.GetRun().GetId()
	}
	annRun, bobRun := create("ann", "own-ann"), create("bob", "own-bob")
	// report streams 50 samples; correct is 1 for the first `right` of them.
	report := func(user, runID string, right int) error {
		stream, err := runsAs[user].ReportRunResults(ctx)
		if err != nil {
			return err
		}
		req := &apipb.ReportRunResultsRequest{RunId: runID}
		for i := range 50 {
			v := 0.0
			if i < right {
				v = 1
			}
			req.Records = append(req.Records, &apipb.ResultRecord{SampleId: fmt.Sprintf("q-%02d", i), Values: map[string]float64{"correct": v}})
		}
		if err := stream.Send(req); err != nil {
			_, err = stream.CloseAndRecv()
			return err
		}
		_, err = stream.CloseAndRecv()
		return err
	}
	if err := report("ann", annRun, 30); err != nil {
		t.Fatalf("ann reports her results: %v", err)
	}
	if err := report("bob", bobRun, 31); err != nil {
		t.Fatalf("bob reports his results: %v", err)
	}
	compare := func() *apipb.CompareRunsResponse {
		resp, err := compareAs.CompareRuns(ctx, &apipb.CompareRunsRequest{BaselineRunId: annRun, CandidateRunId: bobRun, Seed: 1,
			Metrics: []*apipb.MetricSpec{{Name: "correct", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}}})
		if err != nil {
			t.Fatalf("CompareRuns: %v", err)
		}
		return resp
	}
	before := compare()
	if before.GetVerdict() != apipb.Verdict_VERDICT_NO_SIGNIFICANT_CHANGE {
		t.Fatalf("verdict before = %v, want no significant change", before.GetVerdict())
	}
	annRunning := watchUntilRunning(t, runsAs["vera"], annRun)

	// Refused writes, each of which would change ann's run.
	getRun := func(id string) *apipb.Run {
		resp, err := runsAs["vera"].GetRun(ctx, &apipb.GetRunRequest{RunId: id})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRun()
	}
	for _, user := range []string{"bob", "vera", "agent"} {
		// Would make ann's baseline all wrong: the verdict would become IMPROVED.
		err := report(user, annRun, 0)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s reports into ann's run: %v, want PermissionDenied", user, err)
		}
		_, err = runsAs[user].CancelRun(ctx, &apipb.CancelRunRequest{RunId: annRun})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s cancels ann's run: %v, want PermissionDenied", user, err)
		}
	}
	if _, err := runsAs["bob"].CancelRun(ctx, &apipb.CancelRunRequest{RunId: annRun}); err == nil ||
		!strings.Contains(err.Error(), `belongs to "ann"; caller "bob" (role submitter) may write only its own runs`) {
		t.Errorf("bob cancels ann's run: %v; want the owner named", err)
	}
	// The metric comparison, not the efficiencies: a running run's wall
	// time grows.
	if after := compare(); after.GetVerdict() != before.GetVerdict() || len(after.GetMetrics()) != 1 || !proto.Equal(after.GetMetrics()[0], before.GetMetrics()[0]) {
		t.Errorf("refused reports changed the comparison:\nbefore %v %v\nafter  %v %v", before.GetVerdict(), before.GetMetrics(), after.GetVerdict(), after.GetMetrics())
	}
	if got := getRun(annRun); got.GetState() != apipb.RunState_RUN_STATE_RUNNING || got.GetSlurmState() != annRunning.GetSlurmState() {
		t.Errorf("refused cancels changed ann's run: state %v (Slurm %q), was %v (Slurm %q)", got.GetState(), got.GetSlurmState(), annRunning.GetState(), annRunning.GetSlurmState())
	}

	// Progress: an agent of another node reporting ann's run is ignored;
	// the agent of her run's node is heard.
	node := annRunning.GetNodes()[0]
	other := "worker-0"
	if node == other {
		other = "worker-1"
	}
	// Agents name their machine: the Slurm node's instance id where the
	// cluster has them (24.11+), else the node's own name.
	otherMachine, nodeMachine := env.Machine(other), env.Machine(node)
	sendProgress(t, agentConn(otherMachine), otherMachine, "", annRun, 7)
	if got := getRun(annRun); got.GetProgress() != nil {
		t.Errorf("progress from %s for a run on %s was stored: %v", other, node, got.GetProgress())
	}
	sendProgress(t, agentConn(nodeMachine), nodeMachine, annRun, annRun, 9)
	if got := getRun(annRun).GetProgress(); got.GetStep() != 9 {
		t.Errorf("progress from the run's own node %s = %v, want step 9", node, got)
	}

	// Owners and operators do write.
	if _, err := runsAs["olga"].CancelRun(ctx, &apipb.CancelRunRequest{RunId: bobRun}); err != nil {
		t.Errorf("operator cancels bob's run: %v", err)
	}
	if _, err := runsAs["ann"].CancelRun(ctx, &apipb.CancelRunRequest{RunId: annRun}); err != nil {
		t.Errorf("ann cancels her run: %v", err)
	}
	for _, id := range []string{annRun, bobRun} {
		if final := waitTerminal(t, runsAs["vera"], id, time.Minute); final.GetState() != apipb.RunState_RUN_STATE_CANCELLED {
			t.Errorf("run %s ended %v, want CANCELLED", id, final.GetState())
		}
	}
	if err := report("olga", annRun, 0); err != nil {
		t.Errorf("operator reports into ann's run: %v", err)
	}
	if after := compare(); after.GetVerdict() != apipb.Verdict_VERDICT_IMPROVED {
		t.Errorf("after the operator replaced the baseline, verdict = %v, want IMPROVED", after.GetVerdict())
	}
	for _, tok := range tokens {
		if strings.Contains(p.stderr.String(), tok) {
			t.Error("a token appears in the controller's log")
		}
	}
}

// watchUntilRunning watches run id until it runs, and returns it then.
func watchUntilRunning(t *testing.T, c apipb.RunServiceClient, id string) *apipb.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := c.WatchRun(ctx, &apipb.WatchRunRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("run %s did not start: %v", id, err)
		}
		if r := resp.GetRun(); r.GetState() == apipb.RunState_RUN_STATE_RUNNING && len(r.GetNodes()) > 0 {
			return r
		}
	}
}

// sendProgress connects as node's agent over conn, waits until the run
// assignment `assigned` reaches it (when not empty), sends one batch with
// progress step for runID, and waits for its ack: the batch is durable, so
// progress the controller accepted is stored by then.
func sendProgress(t *testing.T, conn *grpc.ClientConn, node, assigned, runID string, step int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := agentpb.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hello := &agentpb.Hello{NodeName: node, BootId: fmt.Sprintf("ownership-%s-%d", node, time.Now().UnixNano()), AgentVersion: "test"}
	if err := stream.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	var base uint64
	sawAssignment := assigned == ""
	gotHandshake := false
	for !gotHandshake || !sawAssignment {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("agent %s: %v", node, err)
		}
		switch m := resp.GetMessage().(type) {
		case *agentpb.ConnectResponse_Ack:
			if !gotHandshake {
				base, gotHandshake = m.Ack.GetSequence(), true
			}
		case *agentpb.ConnectResponse_Assignments:
			for _, a := range m.Assignments.GetRuns() {
				if a.GetRunId() == assigned {
					sawAssignment = true
				}
			}
		}
	}
	seq := base + 1
	batch := &agentpb.Batch{Sequence: seq, CreateTime: timestamppb.Now(), Progress: []*agentpb.ProgressUpdate{
		{RunId: runID, UpdateTime: timestamppb.Now(), Step: step, TotalSteps: 100, Loss: 0.5},
	}}
	if err := stream.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: batch}}); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("agent %s waiting for the ack of batch %d: %v", node, seq, err)
		}
		if a := resp.GetAck(); a != nil && a.GetSequence() >= seq {
			break
		}
	}
	_ = stream.CloseSend()
}
