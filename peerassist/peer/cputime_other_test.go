//go:build !unix

package peer

import "time"

// processCPUTime is unknown here: BenchmarkDataPath reports no CPU figures.
func processCPUTime() time.Duration { return 0 }
