package controlplane

import (
	"net"
	"runtime"

	"google.golang.org/grpc/credentials"
)

// handshakeLimited lets at most n TLS server handshakes run at once; the
// others wait their turn before starting. A handshake is CPU-bound (about
// 1 ms of CPU for an agent's mTLS handshake with the hybrid post-quantum
// key exchange): when thousands of agents connect at once (a controller
// restart, a fleet coming up), running them all in parallel makes every
// one of them as slow as the whole backlog, so they all pass the agents'
// timeouts, the agents retry, and none completes. Taken in turns, they
// complete at the rate the CPU allows, and the agents wait in the
// listen queue instead of starting over. A turn also covers the round
// trips to the agent (two flights each way), so the turns are many more
// than the cores: waiting on slow agents must not idle the CPU.
type handshakeLimited struct {
	credentials.TransportCredentials
	turns chan struct{}
}

var _ credentials.TransportCredentials = handshakeLimited{}

// limitHandshakes wraps c; n ≤ 0 means 64 per GOMAXPROCS: at ~1 ms of
// CPU each, a full set of turns is ~64 ms of one core's work, far inside
// any agent's timeout.
func limitHandshakes(c credentials.TransportCredentials, n int) credentials.TransportCredentials {
	if n <= 0 {
		n = 64 * runtime.GOMAXPROCS(0)
	}
	return handshakeLimited{TransportCredentials: c, turns: make(chan struct{}, n)}
}

func (h handshakeLimited) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	h.turns <- struct{}{}
	defer func() { <-h.turns }()
	return h.TransportCredentials.ServerHandshake(c)
}

func (h handshakeLimited) Clone() credentials.TransportCredentials {
	return handshakeLimited{TransportCredentials: h.TransportCredentials.Clone(), turns: h.turns}
}
