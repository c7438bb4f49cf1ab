package cache

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// maxSendfileBytes bounds one sendfile(2) call (Linux sends at most about
// 2 GiB per call anyway).
const maxSendfileBytes = 1 << 30

// SendTo sends the rest of the range to the socket behind dst with
// sendfile(2): the kernel moves the bytes from the page cache to the
// socket, never through this process. When the socket's buffer is full it
// waits through the runtime's poller, so dst's write deadline applies. It
// returns the bytes sent; on an error the range was sent only in part (the
// caller must close the connection). A data file found shorter than its
// verified length drops the version (ErrCorrupt).
func (f *File) SendTo(dst syscall.RawConn) (int64, error) {
	var (
		sent    int64
		sendErr error
	)
	src := f.df.fd
	err := dst.Write(func(fd uintptr) bool {
		for f.pos < f.end {
			off := f.pos
			m, err := syscall.Sendfile(int(fd), src, &off, int(min(f.end-f.pos, maxSendfileBytes)))
			if m > 0 {
				f.pos += int64(m)
				sent += int64(m)
			}
			switch {
			case err == syscall.EAGAIN:
				return false // wait until the socket is writable
			case err == syscall.EINTR:
			case err != nil:
				sendErr = os.NewSyscallError("sendfile", err)
				return true
			case m == 0:
				sendErr = f.s.corrupt(f.v, int(f.pos/int64(f.v.chunkBytes)), io.ErrUnexpectedEOF)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return sent, fmt.Errorf("cache: sending %q: %w", f.v.key, err)
	}
	return sent, nil
}
