//go:build !linux

package edge

// alwaysYield: no event loops here (loopModes skips the mode).
func alwaysYield(*loopSet) func() int64 { return func() int64 { return 0 } }
