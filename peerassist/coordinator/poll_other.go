//go:build !linux

package coordinator

import (
	"errors"
	"net"
)

var errNoEpoll = errors.New("coordinator: epoll unavailable")

// poller is the epoll loop on Linux; elsewhere every connection runs in
// goroutine mode and no poller exists.
type poller struct{}

func newPoller(*Coordinator, int) (*poller, error) { return nil, errNoEpoll }
func (p *poller) wake()                            {}
func (p *poller) run()                             {}
func (p *poller) add(*conn) error                  { return errNoEpoll }
func (p *poller) remove(*conn)                     {}
func (p *poller) watchWrite(*conn, bool)           {}

func dupFD(net.Conn) (int, error)           { return -1, errNoEpoll }
func sendNoSignal(int, []byte) (int, error) { return 0, errNoEpoll }
func isTemporary(error) bool                { return false }
func shutdownWrite(int)                     {}
func shutdownBoth(int)                      {}
func closeFD(int)                           {}

// sendScratch is the vectored sends' scratch space on Linux.
type sendScratch struct{}

func (*sendScratch) sendBuffers(int, [][]byte) (int, error) { return 0, errNoEpoll }
