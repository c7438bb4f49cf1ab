package edge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/peerassist/edgebox/config"
	edgetelemetry "github.com/peerassist/edgebox/edge/telemetry"
)

// BenchmarkHit measures the handler's hit path: a request for a stored
// object, answered and written (headers and body) to a discarding writer,
// with the OpenTelemetry SDK installed as the edge binary does.
func BenchmarkHit(b *testing.B) {
	installTelemetry(b)
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			e := newEnv(b, nil)
			path := fmt.Sprintf("/bytes/%d", size)
			if r := e.get(path); r.status != 200 {
				b.Fatalf("fill: %d", r.status)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
			ctx.Request.SetRequestURI(path)
			ctx.Request.Header.SetHost("bench.example")
			w := bufio.NewWriterSize(io.Discard, 64<<10)
			h := e.srv.Handler()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				ctx.Response.Reset()
				h(&ctx)
				if err := ctx.Response.Write(w); err != nil {
					b.Fatal(err)
				}
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
		})
	}
}

// TestProfileServe serves a demo edge on EDGE_PROFILE_ADDR for
// EDGE_PROFILE_SECONDS, for profiling under an external load generator:
//
//	EDGE_PROFILE_ADDR=127.0.0.1:18090 EDGE_PROFILE_SECONDS=30 \
//	  go test -run TestProfileServe -cpuprofile cpu.out ./edge/ &
//	wrk -c64 -d20s http://127.0.0.1:18090/bytes/1048576
//
// With EDGE_PROFILE_DISK=1 the edge has a disk tier (large hits are then
// sent with sendfile), as in edge/bench/run.sh. It is skipped unless
// EDGE_PROFILE_ADDR is set.
func TestProfileServe(t *testing.T) {
	addr := os.Getenv("EDGE_PROFILE_ADDR")
	if addr == "" {
		t.Skip("EDGE_PROFILE_ADDR not set")
	}
	secs, _ := strconv.Atoi(os.Getenv("EDGE_PROFILE_SECONDS"))
	installTelemetry(t)
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Cache.ChunkBytes = 256 << 10
		c.Cache.MemoryBytes = 1 << 30
		if os.Getenv("EDGE_PROFILE_DISK") == "1" {
			c.Cache.DiskPath = t.TempDir()
			c.Cache.DiskBytes = 4 << 30
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.Serve(ln)
	t.Logf("serving on %s for %ds", addr, secs)
	time.Sleep(time.Duration(secs) * time.Second)
}

// installTelemetry installs the OpenTelemetry SDK as the edge binary does
// (edge/telemetry), so that measurements include spans and metrics, and
// restores no-op providers afterwards.
func installTelemetry(tb testing.TB) {
	tel, err := edgetelemetry.Setup(context.Background(), config.DefaultTelemetry(), edgetelemetry.Options{LogOutput: io.Discard})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		tel.Shutdown(context.Background())
		otel.SetTracerProvider(nooptrace.NewTracerProvider())
		otel.SetMeterProvider(noopmetric.NewMeterProvider())
	})
}
