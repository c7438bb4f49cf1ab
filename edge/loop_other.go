//go:build !linux

package edge

import (
	"context"
	"errors"
	"net"
)

// Event loops are Linux-only (loop_linux.go): elsewhere fasthttp serves
// every connection.
const loopsSupported = false

type loopSet struct{}

type lconn struct{}

func newLoopSet(*Server, int) (*loopSet, error) {
	return nil, errors.New("edge: event loops are Linux-only")
}
func (*loopSet) add(net.Conn, *connEntry) bool { return false }
func (*loopSet) stop(context.Context) error    { return nil }
func (*lconn) expire(connPhase)                {}
func (*lconn) shutdownSocket()                 {}
