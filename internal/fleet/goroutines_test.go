package fleet_test

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

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
	ev := &events{codes: map[string][]int64{}}
	c := startController(t, filepath.Join(t.TempDir(), "db"), "127.0.0.1:0", ev, fleet.Options{}, nil)
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
