//go:build !linux

package cache

import (
	"errors"
	"syscall"
)

// SendTo is not implemented on this system: it sends nothing and returns
// errors.ErrUnsupported; read the File instead.
func (f *File) SendTo(dst syscall.RawConn) (int64, error) {
	return 0, errors.ErrUnsupported
}
