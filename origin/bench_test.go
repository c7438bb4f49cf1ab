package origin

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/valyala/fasthttp"
)

// BenchmarkGet compares a GET through the pool with the same GET on a bare
// fasthttp HostClient (streamed body, read to the end), against the demo
// origin on loopback: the ratio is the pool's overhead.
func BenchmarkGet(b *testing.B) {
	o, err := demo.Start("127.0.0.1:0", demo.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	p, err := NewPool(config.DefaultOrigin(), []config.Site{config.NewSite("s", o.URL())}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	direct := &fasthttp.HostClient{Addr: o.Addr(), StreamResponseBody: true,
		Dial: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }}
	defer direct.CloseIdleConnections()

	for _, size := range []int{1 << 10, 1 << 20} {
		path := fmt.Sprintf("/bytes/%d", size)
		run := func(b *testing.B, do func(req *fasthttp.Request, resp *fasthttp.Response) error) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					req.SetRequestURI(path)
					req.Header.SetHost(o.Addr())
					if err := do(req, resp); err != nil {
						b.Error(err)
						return
					}
					if n, err := io.Copy(io.Discard, resp.BodyStream()); err != nil || n != int64(size) {
						b.Errorf("body: %d bytes, %v", n, err)
						return
					}
					_ = resp.CloseBodyStream()
				}
			})
		}
		b.Run(fmt.Sprintf("pool/%d", size), func(b *testing.B) {
			run(b, func(req *fasthttp.Request, resp *fasthttp.Response) error {
				_, err := p.Do(context.Background(), "s", req, resp)
				return err
			})
		})
		b.Run(fmt.Sprintf("direct/%d", size), func(b *testing.B) {
			run(b, direct.Do)
		})
	}
}
