//go:build !linux

package rawsock

import (
	"errors"
	"net"
)

// Supported reports whether this platform has the event loops' calls.
const Supported = false

var errUnsupported = errors.New("rawsock: raw socket calls are Linux-only")

// Read is read(2) on a non-blocking socket (Linux only).
func Read(int, []byte) (int, error) { return -1, errUnsupported }

// Scratch is a vectored sender's scratch space (Linux only).
type Scratch struct{}

// SendBuffers is sendmsg(2) of several buffers (Linux only).
func (*Scratch) SendBuffers(int, [][]byte) (int, error) { return -1, errUnsupported }

// Send is send(2) without SIGPIPE (Linux only).
func Send(int, []byte) (int, error) { return -1, errUnsupported }

// IsTemporary reports whether err is EAGAIN.
func IsTemporary(error) bool { return false }

// Dup duplicates a TCP connection's socket (Linux only).
func Dup(net.Conn) (int, error) { return -1, errUnsupported }
