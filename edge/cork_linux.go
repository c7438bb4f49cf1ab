package edge

import "syscall"

// setCork sets or clears TCP_CORK on a socket and reports whether it
// succeeded (not a TCP socket: nothing to do). While it is set, the kernel
// sends only full segments, so a response header written on its own
// (before a body sent with sendfile) leaves in the same segment as the
// start of the body instead of alone: one transmission instead of two.
// Clearing it sends what is queued at once.
func setCork(rc syscall.RawConn, on bool) bool {
	v := 0
	if on {
		v = 1
	}
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	}); cerr != nil {
		return false
	}
	return err == nil
}
