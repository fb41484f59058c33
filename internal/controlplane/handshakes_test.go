package controlplane

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// slowCreds counts the server handshakes running at once.
type slowCreds struct {
	credentials.TransportCredentials
	running, most atomic.Int32
}

func (s *slowCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	n := s.running.Add(1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	s.running.Add(-1)
	return c, nil, nil
}

func (s *slowCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	panic("not used")
}
func (s *slowCreds) Info() credentials.ProtocolInfo          { return credentials.ProtocolInfo{} }
func (s *slowCreds) Clone() credentials.TransportCredentials { return s }
func (s *slowCreds) OverrideServerName(string) error         { return nil }

func TestHandshakesTakeTurns(t *testing.T) {
	inner := &slowCreds{}
	limited := limitHandshakes(inner, 3).Clone() // a clone shares the turns
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := net.Pipe()
			defer c.Close()
			if _, _, err := limited.ServerHandshake(c); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := inner.most.Load(); m != 3 {
		t.Errorf("at most %d handshakes ran at once; want 3 (30 waiting, 3 turns)", m)
	}
}
