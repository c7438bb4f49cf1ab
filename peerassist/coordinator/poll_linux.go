//go:build linux

package coordinator

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/peerassist/edgebox/edge/rawsock"
	"golang.org/x/sys/unix"
)

var errNoEpoll = errors.New("coordinator: epoll unavailable")

// readBufBytes is the size of each loop's shared read buffer.
const readBufBytes = 64 << 10

// maxEvents is how many ready sockets one epoll_wait returns at most. Under
// load, a large batch lets many frames to one socket share one sendmsg.
const maxEvents = 1024

// poller is one epoll loop: it owns the reads of its connections and one
// read buffer shared by all of them, so an idle connection holds no buffer
// and no goroutine. Create it with newPoller; add, remove and watchWrite
// are safe from any goroutine, the rest belongs to the loop.
type poller struct {
	co   *Coordinator
	epfd int
	efd  int // eventfd that wakes the loop to stop

	mu    sync.RWMutex
	conns map[int32]*conn

	h   *handlerCtx
	buf []byte
}

func newPoller(co *Coordinator, idx int) (*poller, error) {
	epfd, efd, err := rawsock.NewEpoll()
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return nil, errNoEpoll
		}
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	h := co.newHandlerCtx(uint64(idx) + 1<<32)
	h.batched = true
	return &poller{co: co, epfd: epfd, efd: efd, conns: map[int32]*conn{}, h: h, buf: make([]byte, readBufBytes)}, nil
}

// wake makes run return.
func (p *poller) wake() { rawsock.Wake(p.efd) }

// add starts watching c. Once added, c belongs to the loop, which may
// release it at any moment: add reads nothing of c after registering it.
func (p *poller) add(c *conn) error {
	fd := c.fd
	p.mu.Lock()
	p.conns[int32(fd)] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, int32(fd))
		p.mu.Unlock()
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// remove stops watching c (called with c.wmu held, before its fd closes).
func (p *poller) remove(c *conn) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	p.mu.Lock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
	}
	p.mu.Unlock()
}

// watchWrite arms or disarms EPOLLOUT (called with c.wmu held).
func (p *poller) watchWrite(c *conn, on bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if on {
		ev.Events |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
}

func (p *poller) run() {
	defer func() {
		unix.Close(p.efd)
		unix.Close(p.epfd)
	}()
	events := make([]unix.EpollEvent, maxEvents)
	for {
		n, err := rawsock.Wait(p.epfd, events)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.co.log.Error("peerassist: epoll_wait failed; signaling loop stops", "error", err)
			return
		}
		for i := range n {
			ev := &events[i]
			if int(ev.Fd) == p.efd {
				return
			}
			p.mu.RLock()
			c := p.conns[ev.Fd]
			p.mu.RUnlock()
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.flush()
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				p.readable(c)
			}
		}
		// What the batch's messages produced, one system call per socket.
		p.h.flush()
		// Under load this goroutine never blocks and so never passes
		// through the scheduler: every 10 ms the runtime's sysmon would
		// preempt it with a signal, and each such intervention sets sysmon
		// back to waking every 20 µs, which costs more than the yield.
		// Yielding once per batch keeps the scheduler's tick moving.
		runtime.Gosched()
	}
}

// readable reads what c has: a few reads at most, so one busy socket does
// not starve the others (epoll is level-triggered and comes back).
func (p *poller) readable(c *conn) {
	for range 4 {
		n, err := rawsock.Read(c.fd, p.buf)
		switch {
		case n > 0:
			if !c.onBytes(p.h, p.buf[:n]) {
				c.release()
				return
			}
			if n < len(p.buf) {
				return
			}
		case n == 0 && err == nil:
			c.release() // EOF
			return
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
		default:
			c.release()
			return
		}
	}
}

func shutdownWrite(fd int) { _ = unix.Shutdown(fd, unix.SHUT_WR) }
func shutdownBoth(fd int)  { _ = unix.Shutdown(fd, unix.SHUT_RDWR) }
func closeFD(fd int)       { _ = unix.Close(fd) }
