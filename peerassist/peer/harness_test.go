package peer

import (
	"testing"
	"time"

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

// verifyNoLeaks fails the test if goroutines are left behind. pion closes
// a PeerConnection's goroutines asynchronously, which under the race
// detector on a loaded machine can take longer than goleak's own retries
// (about half a second): wait up to 10 s for them before reporting.
func verifyNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for goleak.Find(leakOptions...) != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := goleak.Find(leakOptions...); err != nil {
		t.Error(err)
	}
}

// leakCheck verifies, after every other cleanup of the test ran (servers
// closed, peers closed), that no goroutine is left behind.
func leakCheck(t *testing.T) {
	t.Cleanup(func() { verifyNoLeaks(t) })
}
