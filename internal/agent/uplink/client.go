package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Keepalive is the client side of the keepalive policy. The controller's
// enforcement policy permits pings every 10 s (internal/server), so pinging
// every 30 s can never trigger its too_many_pings GOAWAY.
var Keepalive = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}

// ConnectBackoff is how the agent's connection retries after a failed
// attempt (a handshake that timed out on a controller short of CPU, a
// controller not up yet): gRPC's default waits up to 120 s between
// attempts, which after a handshake storm left agents away for minutes;
// capped at 30 s, like the stream's own backoff (Options.MaxBackoff), with
// jitter so that they do not come back together.
var ConnectBackoff = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 30 * time.Second},
	MinConnectTimeout: 20 * time.Second,
}

// DialOptions are the agent's connection settings besides its credentials:
// Keepalive and ConnectBackoff.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithKeepaliveParams(Keepalive), grpc.WithConnectParams(ConnectBackoff)}
}

// Handler receives what the controller pushes. Methods are called from the
// receiving goroutine and must not block for long.
type Handler interface {
	Config(*agentpb.AgentConfig)
	Assignments(*agentpb.RunAssignments)
	// Command runs a command and returns its result; it is called on its own
	// goroutine, so it may take minutes.
	Command(context.Context, *agentpb.Command) *agentpb.CommandResult
}

// Options configure a Client.
type Options struct {
	// Window is how many batches may be unacked at once (default 32).
	Window int
	// MinBackoff and MaxBackoff bound the jittered exponential reconnect
	// delay (defaults 250 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout bounds the wait for the controller's first ack
	// (default 10 s).
	HandshakeTimeout time.Duration
	// ReconnectSpread, when set, is the window over which the first
	// reconnect after a stream that had been up for a while is spread
	// (uniformly from MinBackoff/2): when a controller restarts, its
	// agents come back over this window rather than all within
	// MinBackoff — 10,000 agents within 250 ms would be 40,000 TLS
	// handshakes a second. Zero: no spread, the first retry within
	// MinBackoff.
	ReconnectSpread time.Duration
}

// DefaultReconnectSpread is the node agent's ReconnectSpread.
const DefaultReconnectSpread = 10 * time.Second

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = 32
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	return o
}

// Client keeps one AgentService.Connect stream open, resending whatever the
// controller has not acked after every reconnect.
type Client struct {
	conn    grpc.ClientConnInterface
	hello   func() *agentpb.Hello
	buf     *Buffer
	handler Handler
	logger  *slog.Logger
	opts    Options

	// minSampleInterval is the controller's last min_sample_interval
	// (nanoseconds, 0: none).
	minSampleInterval atomic.Int64

	mu        sync.Mutex
	connected bool
	sessions  uint64
	lastErr   error
}

// NewClient returns a client that sends buf's batches over conn. hello is
// called before every connection attempt (inventory may change).
func NewClient(conn grpc.ClientConnInterface, hello func() *agentpb.Hello, buf *Buffer, h Handler, logger *slog.Logger, opts Options) *Client {
	return &Client{conn: conn, hello: hello, buf: buf, handler: h, logger: logger, opts: opts.withDefaults()}
}

// Connected reports whether a stream is established and handshaken.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// MinSampleInterval is how often, at most, the controller asks this agent
// to sample and send telemetry while it is short of CPU (the last ack's
// min_sample_interval), or 0 when it asks nothing. Health events are
// exempt: they go at once.
func (c *Client) MinSampleInterval() time.Duration {
	return time.Duration(c.minSampleInterval.Load())
}

func (c *Client) noteAck(a *agentpb.Ack) {
	var d time.Duration
	if m := a.GetMinSampleInterval(); m != nil {
		// Bounded: a controller's hint slows an agent, never silences it.
		d = min(max(m.AsDuration(), 0), MaxMinSampleInterval)
	}
	c.minSampleInterval.Store(int64(d))
}

// MaxMinSampleInterval is the most an ack's min_sample_interval is
// obeyed.
const MaxMinSampleInterval = time.Minute

// Sessions is how many streams completed a handshake so far.
func (c *Client) Sessions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// Run connects and reconnects until ctx ends. It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	delay := c.opts.MinBackoff
	for {
		start := time.Now()
		err := c.session(ctx)
		c.setConnected(false, err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		healthy := time.Since(start) > 10*c.opts.MinBackoff+time.Second
		if healthy {
			delay = c.opts.MinBackoff // the connection was healthy for a while
		}
		// Full jitter: spreads thousands of agents reconnecting after a
		// controller restart over the whole interval.
		sleep := time.Duration(rand.Int64N(int64(delay))) + c.opts.MinBackoff/2
		if healthy && c.opts.ReconnectSpread > 0 {
			sleep = time.Duration(rand.Int64N(int64(c.opts.ReconnectSpread))) + c.opts.MinBackoff/2
		}
		c.logger.Warn("controller stream ended; reconnecting", "err", err, "in", sleep.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sleep):
		}
		delay = min(2*delay, c.opts.MaxBackoff)
	}
}

func (c *Client) setConnected(v bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected = v
	if v {
		c.sessions++
	}
	if err != nil {
		c.lastErr = err
	}
}

func (c *Client) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentpb.NewAgentServiceClient(c.conn).Connect(sctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	hello := c.hello()
	hello.LastAckedSequence = c.buf.Acked()
	if err := stream.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Hello{Hello: hello}}); err != nil {
		return fmt.Errorf("send hello: %w", recvErr(stream, err))
	}
	first, err := recvWithTimeout(stream, c.opts.HandshakeTimeout)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	ack := first.GetAck()
	if ack == nil {
		return fmt.Errorf("handshake: controller sent %T before an ack", first.GetMessage())
	}
	c.buf.Handshake(ack.GetSequence())
	c.noteAck(ack)
	c.setConnected(true, nil)
	c.logger.Info("connected to controller", "acked", ack.GetSequence())

	results := make(chan *agentpb.CommandResult, 8)
	recvDone := make(chan error, 1)
	go func() { recvDone <- c.receive(sctx, stream, results) }()

	// Once the receiver runs, only it may call Recv: a failed Send learns
	// the stream's status from the receiver's result.
	sendErr := func(what string, err error) error {
		if errors.Is(err, io.EOF) {
			select {
			case rerr := <-recvDone:
				err = rerr
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	for {
		for _, b := range c.buf.Take(c.opts.Window) {
			if err := stream.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: b}}); err != nil {
				return sendErr(fmt.Sprintf("send batch %d", b.GetSequence()), err)
			}
		}
		select {
		case <-ctx.Done():
			_ = stream.CloseSend()
			return ctx.Err()
		case err := <-recvDone:
			return err
		case <-c.buf.Ready():
		case r := <-results:
			if err := stream.Send(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_CommandResult{CommandResult: r}}); err != nil {
				return sendErr("send command result", err)
			}
		}
	}
}

// recvErr: a failed Send only says io.EOF; the reason is in Recv's status.
// Only for use before the receiving goroutine starts.
func recvErr(stream agentpb.AgentService_ConnectClient, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		if _, rerr := stream.Recv(); rerr != nil {
			return rerr
		}
	}
}

func recvWithTimeout(stream agentpb.AgentService_ConnectClient, d time.Duration) (*agentpb.ConnectResponse, error) {
	type res struct {
		m   *agentpb.ConnectResponse
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := stream.Recv()
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(d):
		return nil, status.Error(codes.DeadlineExceeded, "no ack from controller")
	}
}

func (c *Client) receive(ctx context.Context, stream agentpb.AgentService_ConnectClient, results chan<- *agentpb.CommandResult) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch msg := m.GetMessage().(type) {
		case *agentpb.ConnectResponse_Ack:
			c.buf.Ack(msg.Ack.GetSequence())
			c.noteAck(msg.Ack)
		case *agentpb.ConnectResponse_Config:
			c.handler.Config(msg.Config)
		case *agentpb.ConnectResponse_Assignments:
			c.handler.Assignments(msg.Assignments)
		case *agentpb.ConnectResponse_Command:
			go func(cmd *agentpb.Command) {
				r := c.handler.Command(ctx, cmd)
				select {
				case results <- r:
				case <-ctx.Done():
				}
			}(msg.Command)
		}
	}
}
