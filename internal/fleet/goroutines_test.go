package fleet_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/testwait"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// streamGoroutines counts the goroutines serving agents' streams: those
// with a frame of Fleet.Connect (or a function literal in it) or of a
// session in their stack.
func streamGoroutines(t *testing.T) int {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	total, group, counted := 0, 0, false
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if n, _, ok := strings.Cut(line, " @ "); ok {
			group, _ = strconv.Atoi(n)
			counted = false
			continue
		}
		if !counted && strings.HasPrefix(line, "#") && (strings.Contains(line, "/internal/fleet.(*Fleet).Connect") || strings.Contains(line, "/internal/fleet.(*session)")) {
			total += group
			counted = true
		}
	}
	return total
}

// Each connected agent costs the controller one goroutine of the fleet's
// (its stream's handler, which receives and sends): at 10,000 agents every
// further goroutine per stream is tens of MiB of stacks. Acks for durable
// batches, sent from the commit loop's side, use short-lived flushes that
// end once sent.
func TestOneGoroutinePerAgentStream(t *testing.T) {
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{}, nil)
	before := streamGoroutines(t)
	const agents = 20
	for i := range agents {
		s := raw(t, c.addr)
		if err := s.Send(hello(fmt.Sprintf("worker-%d", i))); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(); err != nil || m.GetAck() == nil {
			t.Fatalf("agent %d handshake = %v, %v", i, m, err)
		}
		// A health event: its ack comes after the commit, from the commit
		// loop's side.
		b := &agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: &agentpb.Batch{Sequence: 1,
			HealthEvents: []*agentpb.HealthEvent{{Component: "gpu0", Code: 79}}}}}
		if err := s.Send(b); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, fmt.Sprintf("agent %d's event acked", i), func() bool {
			m, err := s.Recv()
			return err == nil && m.GetAck().GetSequence() == 1
		})
	}
	got := streamGoroutines(t) - before
	for deadline := time.Now().Add(10 * time.Second); got != agents && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		got = streamGoroutines(t) - before
	}
	if got != agents {
		t.Errorf("%d agents hold %d goroutines serving their streams, want %d", agents, got, agents)
	}
}

// failingStream is an agent's stream whose hello arrives and whose every
// send fails, as when the agent goes away right after its hello.
type failingStream struct {
	grpc.ServerStream
	ctx  context.Context
	recv chan *agentpb.ConnectRequest
}

func (s *failingStream) Context() context.Context { return s.ctx }
func (s *failingStream) Send(*agentpb.ConnectResponse) error {
	return errors.New("connection reset")
}
func (s *failingStream) Recv() (*agentpb.ConnectRequest, error) {
	m, ok := <-s.recv
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}

// A stream whose handshake cannot be sent ends at once with the send's
// error (the handler held the session's flush until then, and must give
// it up before it waits for sends under way).
func TestConnectEndsWhenTheHandshakeCannotBeSent(t *testing.T) {
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", nil, fleet.Options{}, nil)
	s := &failingStream{ctx: auth.NewContext(context.Background(), auth.Identity{Kind: auth.KindInsecure}),
		recv: make(chan *agentpb.ConnectRequest, 1)}
	s.recv <- hello("worker-0")
	done := make(chan error, 1)
	go func() { done <- c.fleet.Connect(s) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("Connect = %v, want the handshake's send error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connect still running 10 s after its handshake failed")
	}
	close(s.recv)
}
