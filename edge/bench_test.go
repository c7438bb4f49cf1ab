package edge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHit measures the handler's hit path: a request for a stored
// object, answered and written (headers and body) to a discarding writer.
func BenchmarkHit(b *testing.B) {
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
