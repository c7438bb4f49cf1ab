//go:build unix

package policy

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time (user and system) the process has used:
// with GOMAXPROCS=1 what one core spent, the garbage collector included,
// whatever else runs on the machine.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
