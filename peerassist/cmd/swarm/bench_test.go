package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/peerassist/edgebox/peerassist/peer/peertest"
)

// BenchmarkFlashCrowd: 20 Go peers on 20 loopback addresses fetch one
// 32 MiB object at once through the real edge and coordinator (in-process,
// 256 KiB chunks), uploads unconstrained. It reports the edge egress in
// copies of the object (goal <= 1.5), the offload ratio and completion
// times. Deadlines are 10 minutes so the figure measures how the swarm
// seeds and spreads, not how loaded the machine is. SWARM_PEERS and
// SWARM_BYTES override the size.
//
//	go test -run '^$' -bench FlashCrowd -benchtime 1x ./peerassist/cmd/swarm
func BenchmarkFlashCrowd(b *testing.B) {
	peers, size := 20, int64(32<<20)
	if v, err := strconv.Atoi(os.Getenv("SWARM_PEERS")); err == nil && v > 0 {
		peers = v
	}
	if v, err := strconv.ParseInt(os.Getenv("SWARM_BYTES"), 10, 64); err == nil && v > 0 {
		size = v
	}
	e := peertest.Start(b, 256<<10, nil)
	var last report
	var copies, offload, p50, maxT float64
	for i := 0; b.Loop(); i++ {
		args := []string{"-edge", e.URL, "-n", strconv.Itoa(peers),
			"-addrs", fmt.Sprintf("127.0.%d.1-127.0.%d.%d", 30+i, 30+i, peers),
			"-object", fmt.Sprintf("/bytes/%d", size+int64(i)), // a new object each round
			"-unlimited-upload", "-deadline", "10m", "-json"}
		var out, stderr bytes.Buffer
		if code := run(context.Background(), args, &out, &stderr); code != 0 {
			b.Fatalf("run = %d: %s", code, stderr.String())
		}
		if err := json.Unmarshal(out.Bytes(), &last); err != nil {
			b.Fatal(err)
		}
		copies += last.Totals.EdgeCopies
		offload += last.Totals.OffloadRatio
		p50 += last.Totals.CompletionP50Sec
		maxT += last.Totals.CompletionMaxSec
	}
	n := float64(b.N)
	b.ReportMetric(copies/n, "edge-copies")
	b.ReportMetric(100*offload/n, "offload-%")
	b.ReportMetric(p50/n, "p50-s")
	b.ReportMetric(maxT/n, "max-s")
}
