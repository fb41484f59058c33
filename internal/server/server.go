// Package server is the one place that builds the controller's network
// servers: the gRPC server (reflection, grpc.health.v1, keepalive policy,
// recovery, logging and metrics interceptors from go-grpc-middleware) and the
// HTTP server for Prometheus /metrics, plus their graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/metrics"
)

// NewGRPC returns a gRPC server with sopilot's interceptors, keepalive
// policy, reflection and the standard health service; register the API
// services on it, then call m.GRPC.InitializeMetrics(srv).
func NewGRPC(logger *slog.Logger, m *metrics.Controller, opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	log := logger.With("component", "grpc")
	panicHandler := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error; the controller logged the details")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			switch c {
			case codes.OK, codes.NotFound, codes.Canceled, codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
				return logging.LevelInfo
			case codes.Unavailable, codes.DeadlineExceeded, codes.Unimplemented:
				return logging.LevelWarn
			}
			return logging.LevelError
		}),
	}
	base := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			m.GRPC.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(slogAdapter(log), logOpts...),
			recovery.UnaryServerInterceptor(panicHandler),
		),
		grpc.ChainStreamInterceptor(
			m.GRPC.StreamServerInterceptor(),
			logging.StreamServerInterceptor(slogAdapter(log), logOpts...),
			recovery.StreamServerInterceptor(panicHandler),
		),
		// Agents and watchers hold long streams: ping idle connections so
		// dead peers are noticed, and allow clients' own pings.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Memory per connection: thousands of agents each hold one. The
		// read buffer is sized for agents' batches (~2.5 KB) rather than
		// the 32 KiB default; larger messages are read in several calls.
		// The write buffer is taken from a pool shared by all connections
		// while a write is pending; 16 KiB (one TLS record) rather than
		// 32 KiB halves what that pool holds at 10,000 agents.
		grpc.ReadBufferSize(8 << 10),
		grpc.WriteBufferSize(16 << 10),
	}
	srv := grpc.NewServer(append(base, opts...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	if err := registerReflection(srv); err != nil {
		// Only a broken build gets here: serve reflection without comments.
		log.Error("serving reflection without proto comments", "err", err)
		reflection.Register(srv)
	}
	return srv, hs
}

func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// ReadyFunc says whether the controller can do its work now, and why.
type ReadyFunc func() (ready bool, why string)

// NewMetricsHTTP serves /metrics, a plain /healthz (the process is alive)
// and, when ready is not nil, /readyz: 200 with ready's text when it says
// ready, 503 otherwise.
func NewMetricsHTTP(m *metrics.Controller, ready ReadyFunc) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	if ready != nil {
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			ok, why := ready()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_, _ = w.Write([]byte(why + "\n"))
		})
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// ServeGRPC serves on lis until ctx ends, then stops gracefully, forcing
// the stop after grace (open WatchRun streams would otherwise hold it
// forever).
func ServeGRPC(ctx context.Context, srv *grpc.Server, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("grpc server: %w", err)
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		srv.Stop()
		<-done
	}
	<-errc
	return nil
}

// ServeHTTP serves on lis until ctx ends, then shuts down within grace.
func ServeHTTP(ctx context.Context, srv *http.Server, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Grace is over: cut the requests still running, as ServeGRPC does.
		_ = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return nil
}
