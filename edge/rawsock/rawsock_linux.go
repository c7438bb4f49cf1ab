//go:build linux

// Package rawsock holds the raw socket system calls of the event loops (the
// edge's client connections, the coordinator's signaling sockets): reads
// and sends on non-blocking sockets and a zero-timeout epoll_wait, made with
// syscall.RawSyscall.
//
// These calls return at once, so they skip the runtime's
// entersyscall/exitsyscall. Besides their own cost, those let sysmon take
// the P of a loop whose send happens to span two of its ticks (all Ps
// busy), hand it to another thread and keep waking every 20 µs: about a
// tenth of a busy loop's CPU. A call that may block (epoll_wait with a
// timeout) must still go through the runtime.
package rawsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether this platform has the event loops' calls.
const Supported = true

// Read is read(2) on a non-blocking socket: n >= 0 bytes, or -1 and the
// error (EAGAIN when nothing is there). n == 0 with a nil error is EOF.
func Read(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// EpollWaitNow is epoll_wait(2) with a zero timeout.
func EpollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Wait returns epfd's ready events. Under load sockets are always ready:
// it asks without blocking first, as a raw system call, and blocks in
// epoll_wait (through the runtime) only when nothing is.
func Wait(epfd int, events []unix.EpollEvent) (int, error) {
	n, err := EpollWaitNow(epfd, events)
	if n == 0 && err == nil {
		n, err = unix.EpollWait(epfd, events, -1)
	}
	return n, err
}

// Yield gives the CPU to another thread that is ready to run on it, if
// there is one (sched_yield(2)); otherwise it returns at once.
func Yield() {
	syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}

// Scratch holds the iovec array of one sender, so that a vectored send
// allocates nothing. Its zero value is ready; it is not safe for
// concurrent use.
type Scratch struct {
	iov []unix.Iovec
	msg unix.Msghdr
}

// maxIovecs bounds one sendmsg's buffers (Linux's IOV_MAX is 1024).
const maxIovecs = 1024

// SendBuffers sends bufs with one sendmsg(2) (the first 1024 non-empty ones
// at most), without SIGPIPE: the bytes sent, or -1 and the error.
func (s *Scratch) SendBuffers(fd int, bufs [][]byte) (int, error) {
	s.iov = s.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 && len(s.iov) < maxIovecs {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			s.iov = append(s.iov, v)
		}
	}
	if len(s.iov) == 0 {
		return 0, nil
	}
	s.msg = unix.Msghdr{Iov: &s.iov[0]}
	s.msg.SetIovlen(len(s.iov))
	for {
		r, _, e := syscall.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.msg)),
			unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		clear(s.iov) // drop the references to the buffers
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// Send sends b with one send(2), without SIGPIPE.
func Send(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		r, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// IsTemporary reports whether err is EAGAIN: try again when the socket is
// ready.
func IsTemporary(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
}

// Dup returns a non-blocking, close-on-exec duplicate of a TCP connection's
// socket, so that the connection can be closed (which removes it from the
// runtime's poller) while the socket lives on in an event loop. Wrappers
// that expose the connection under them with UnsafeConn (fasthttp's
// hijacked connections, the edge's replaying connection) are unwrapped.
func Dup(nc net.Conn) (int, error) {
	raw := nc
	for range 4 {
		u, ok := raw.(interface{ UnsafeConn() net.Conn })
		if !ok {
			break
		}
		raw = u.UnsafeConn()
	}
	tc, ok := raw.(*net.TCPConn)
	if !ok {
		return -1, fmt.Errorf("not a TCP connection (%T)", raw)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// NewEpoll returns a new epoll set (close-on-exec) with a non-blocking
// eventfd registered in it for reading, so that other goroutines can wake
// the loop that waits on the set (Wake). The caller closes both.
func NewEpoll() (epfd, efd int, err error) {
	epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, -1, os.NewSyscallError("epoll_create1", err)
	}
	efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return -1, -1, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return -1, -1, os.NewSyscallError("epoll_ctl", err)
	}
	return epfd, efd, nil
}

// Wake makes the eventfd efd readable (NewEpoll).
func Wake(efd int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(efd, one[:])
}
