//go:build !linux

package edge

import "syscall"

// setCork does nothing on this system (see cork_linux.go).
func setCork(rc syscall.RawConn, on bool) bool { return false }
