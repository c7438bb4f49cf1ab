//go:build !linux

package coordinator

import "errors"

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

func shutdownWrite(int) {}
func shutdownBoth(int)  {}
func closeFD(int)       {}
