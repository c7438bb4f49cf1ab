package peer

import (
	"testing"

	"go.uber.org/goleak"
)

// leakOptions ignore fasthttp's own background goroutines (the edge's
// server and origin pool): the process-wide clock for Date headers, and
// cleaners that exit on their next tick after their server or client
// stopped.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
}

// leakCheck verifies, after every other cleanup of the test ran (servers
// closed, peers closed), that no goroutine is left behind.
func leakCheck(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, leakOptions...) })
}
