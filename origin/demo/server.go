package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Server is a demo origin listening on a TCP address: what tests, benchmarks
// and the standalone command run. Create it with Start; it is safe for
// concurrent use.
type Server struct {
	// Origin is the handler; use it to set faults and read hit counters.
	Origin *Origin

	ln       net.Listener
	srv      *fasthttp.Server
	done     chan struct{} // closed when Serve returned
	serveErr error

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves a new
// demo origin with opts.
func Start(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo origin: listening on %s: %w", addr, err)
	}
	return Serve(ln, New(opts)), nil
}

// Serve serves o on ln until Shutdown or Kill.
func Serve(ln net.Listener, o *Origin) *Server { return ServeHandler(ln, o, o.Handler) }

// ServeHandler is Serve with a handler that wraps o.Handler (to record or
// alter requests in tests).
func ServeHandler(ln net.Listener, o *Origin, h fasthttp.RequestHandler) *Server {
	s := &Server{Origin: o, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.srv = &fasthttp.Server{
		Handler: h,
		Name:    "edgebox-demo-origin",
		// An edge forwards its clients' headers (up to its own 16 KiB
		// default limit, plus what it adds): accept at least that much, so
		// a request the edge accepts is never refused here with 431.
		ReadBufferSize:               64 << 10,
		ReadTimeout:                  30 * time.Second,
		IdleTimeout:                  60 * time.Second,
		MaxRequestBodySize:           64 << 10,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{o.log},
		ConnState: func(c net.Conn, st fasthttp.ConnState) {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch st {
			case fasthttp.StateNew:
				s.conns[c] = struct{}{}
			case fasthttp.StateClosed, fasthttp.StateHijacked:
				delete(s.conns, c)
			}
		},
	}
	go func() {
		s.serveErr = s.srv.Serve(ln)
		close(s.done)
	}()
	return s
}

// Addr is the listening address ("127.0.0.1:PORT").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the origin ("http://127.0.0.1:PORT").
func (s *Server) URL() string { return "http://" + s.Addr() }

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.Kill()
	}
	<-s.done
	if err == nil && s.serveErr != nil && !errors.Is(s.serveErr, net.ErrClosed) {
		err = s.serveErr
	}
	return err
}

// Close shuts down with a grace period of 5 s.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Kill closes the listener and every connection at once, as a crashed
// origin would: requests in flight see their connection reset.
func (s *Server) Kill() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
}

// fasthttpLogger sends fasthttp's messages (mostly connections that ended
// badly, which fault tests cause on purpose) to slog at debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("demo origin: " + fmt.Sprintf(format, args...))
}
