package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/valyala/fasthttp"
)

// Kinds of failure, for errors.Is. Every error Do returns matches exactly
// one of them, and an edge answers 504 for ErrTimeout and 502 for the rest
// (see StatusCode).
var (
	// ErrUnknownSite: the site name is not configured.
	ErrUnknownSite = errors.New("origin: unknown site")
	// ErrNoHealthyOrigin: no origin of the site could take the request.
	// A site whose origins are all marked down still sends requests to one
	// of them (see site.failOpen), so this is not an answer to them being
	// down.
	ErrNoHealthyOrigin = errors.New("origin: no healthy origin")
	// ErrConnect: the origin could not be reached, refused or reset the
	// connection, or closed it before answering.
	ErrConnect = errors.New("origin: connection failed")
	// ErrTimeout: connecting, sending the request or waiting for the
	// response headers took too long (ConnectTimeout, ResponseTimeout or
	// the context's deadline).
	ErrTimeout = errors.New("origin: timeout")
	// ErrBadResponse: the origin answered something that is not valid HTTP.
	ErrBadResponse = errors.New("origin: bad response")
	// ErrOverloaded: every connection to the origin is busy
	// (MaxConnsPerOrigin) and none freed up within ConnectTimeout. It does
	// not count against the origin's health.
	ErrOverloaded = errors.New("origin: too many connections")
	// ErrCanceled: the caller's context was canceled.
	ErrCanceled = errors.New("origin: request canceled")
	// ErrInvalidRequest: the request cannot be sent (its URI is not a path).
	ErrInvalidRequest = errors.New("origin: invalid request")
	// ErrClosed: the pool was closed.
	ErrClosed = errors.New("origin: pool closed")
)

// Error is the error Do returns: which kind of failure (one of the
// sentinels above), on which origin, after how many attempts.
type Error struct {
	Kind     error  // one of the Err* sentinels
	Site     string // the site requested
	Origin   string // base URL of the origin of the last attempt; "" if none was tried
	Attempts int    // attempts made (0 if none could start)
	Err      error  // the underlying error, if any
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Site != "" {
		s += ": site " + e.Site
	}
	if e.Origin != "" {
		s += ", origin " + e.Origin
	}
	if e.Attempts > 1 {
		s += ", after " + itoa(e.Attempts) + " attempts"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is match the kind and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Timeout reports whether the failure was a timeout (net.Error style).
func (e *Error) Timeout() bool { return e.Kind == ErrTimeout }

// StatusCode is the status a gateway answers for err: 504 Gateway Timeout
// for timeouts, 502 Bad Gateway for every other origin failure, 499-like
// cancellations and unknown sites included (the edge normally routes only
// configured sites).
func StatusCode(err error) int {
	if errors.Is(err, ErrTimeout) {
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

// dialError marks a failure to open a connection, so that it can be told
// apart from a failure on an established one.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// classify maps a fasthttp client error to a kind.
func classify(err error) error {
	var de *dialError
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return ErrOverloaded
	case errors.Is(err, context.Canceled):
		return ErrCanceled
	case isTimeout(err):
		return ErrTimeout
	case errors.As(err, &de):
		return ErrConnect
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return ErrConnect
	}
	var op *net.OpError
	var cert *tls.CertificateVerificationError
	var alert tls.AlertError
	var rec tls.RecordHeaderError
	if errors.As(err, &op) || errors.As(err, &cert) || errors.As(err, &alert) || errors.As(err, &rec) {
		return ErrConnect // includes TLS handshakes that fail
	}
	return ErrBadResponse
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func itoa(n int) string { return strconv.Itoa(n) }
