// Package fleettest serves a fleet.Fleet to agents over loopback TCP, the
// way an insecure controller does, for the tests of the fleet, the agent,
// the monitor and the node-agent binary.
package fleettest

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Options tune Serve; the zero value serves on any free port.
type Options struct {
	// Addr to listen on ("" = 127.0.0.1:0). A restarted controller gets
	// its predecessor's address: Serve retries while the port is in use.
	Addr string
	// ServerOptions replace the insecure controller's authorization.
	ServerOptions []grpc.ServerOption
	// Also are run beside the fleet (a monitor), until the server stops.
	Also []func(context.Context) error
}

// Server is a fleet being served.
type Server struct {
	Addr string
	stop func()
}

// Serve serves f's AgentService and runs f until Stop or the end of the
// test.
func Serve(t testing.TB, f *fleet.Fleet, o Options) *Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.ServerOptions == nil {
		o.ServerOptions = auth.NewInsecure(slog.New(slog.DiscardHandler)).ServerOptions()
	}
	lis, err := net.Listen("tcp", o.Addr)
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond) // the stopped predecessor's port
		lis, err = net.Listen("tcp", o.Addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(o.ServerOptions...)
	agentpb.RegisterAgentServiceServer(srv, AgentServer{Fleet: f})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	wg.Go(func() { _ = f.Run(ctx) })
	for _, run := range o.Also {
		wg.Go(func() { _ = run(ctx) })
	}
	var once sync.Once
	s := &Server{Addr: lis.Addr().String(), stop: func() {
		once.Do(func() {
			srv.Stop()
			cancel()
			wg.Wait()
		})
	}}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops serving and waits for the fleet's Run (and Also) to return.
func (s *Server) Stop() { s.stop() }

// AgentServer is the AgentService of a controller: each stream is the
// fleet's.
type AgentServer struct {
	agentpb.UnimplementedAgentServiceServer
	Fleet *fleet.Fleet
}

func (a AgentServer) Connect(s agentpb.AgentService_ConnectServer) error { return a.Fleet.Connect(s) }

// Assignments is a settable fleet.AssignmentSource; the zero value has none.
type Assignments struct {
	mu sync.Mutex
	as []fleet.Assignment
}

// Assignments returns a copy of what was set last.
func (a *Assignments) Assignments(context.Context) ([]fleet.Assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.as), nil
}

// Set replaces the assignments.
func (a *Assignments) Set(as ...fleet.Assignment) {
	a.mu.Lock()
	a.as = as
	a.mu.Unlock()
}
