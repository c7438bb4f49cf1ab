package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath finds the browser: $CHROMIUM, else chromium on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium not found (apt-get install chromium, or set CHROMIUM)")
}

// RequireChromium returns the browser's path, or skips the test (fails it
// under CI=true) when there is none.
func RequireChromium(t testing.TB) string {
	t.Helper()
	p, err := ChromiumPath()
	if err != nil {
		skipOrFail(t, err.Error())
	}
	return p
}

// Browser is one Chromium process with its own fresh profile. Create it
// with NewBrowser; it closes itself when the test ends. Safe for
// concurrent use by the pages it opens.
type Browser struct {
	t      testing.TB
	ctx    context.Context // the browser's first tab; new tabs derive from it
	cancel func()
}

// HideLocalIPs, passed to NewBrowser, keeps Chromium's default of hiding
// host addresses behind random mDNS ".local" names in ICE candidates, as
// every real browser does; without it the tests' browsers publish
// 10.77.0.1.
const HideLocalIPs = "pa:hide-local-ips"

// NewBrowser starts headless Chromium with the flags WebRTC tests need:
// no mDNS hiding of host addresses (the peers see 10.77.0.1; pass
// HideLocalIPs to keep it), no QUIC, no background traffic, autoplay
// without a gesture. extraFlags are "name=value" or "name".
func NewBrowser(t testing.TB, extraFlags ...string) *Browser {
	t.Helper()
	path := RequireChromium(t)
	disabled := "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"
	if i := slices.Index(extraFlags, HideLocalIPs); i >= 0 {
		disabled = "Translate,MediaRouter,OptimizationHints"
		extraFlags = slices.Delete(slices.Clone(extraFlags), i, i+1)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-features", disabled),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
	)
	for _, f := range extraFlags {
		name, value, ok := strings.Cut(f, "=")
		if ok {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("starting chromium: %v", err)
	}
	b := &Browser{t: t, ctx: ctx, cancel: func() { cancel(); acancel() }}
	t.Cleanup(b.Close)
	return b
}

// Close ends the browser process (idempotent).
func (b *Browser) Close() { b.cancel() }

// Page is one tab. Its console output goes to the test log, prefixed with
// its name.
type Page struct {
	t      testing.TB
	name   string
	ctx    context.Context
	cancel func()

	mu      sync.Mutex
	console []string
}

// Open opens url in a new tab of b.
func (b *Browser) Open(name, url string) *Page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &Page{t: b.t, name: name, ctx: ctx, cancel: cancel}
	// Open the tab before any timeout: the first action on a context
	// creates its target and ties it to that action's context.
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: opening a tab: %v", name, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.logf("console %s", m.String())
		}
	}()
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: opening %s: %v", name, url, err)
	}
	b.t.Cleanup(cancel)
	return p
}

func (p *Page) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	p.console = append(p.console, line)
	p.mu.Unlock()
	p.t.Logf("[%s] %s", p.name, line)
}

// Console returns the console lines logged so far.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its JSON value into out (nil: discard).
func (p *Page) Eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, func(e *runtime.EvaluateParams) {
		e.AwaitPromise = ptr(true)
	}))
	if err != nil {
		return fmt.Errorf("%s: eval %.60q: %w", p.name, expr, err)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// MustEval is Eval that fails the test on error.
func (p *Page) MustEval(expr string, out any) {
	p.t.Helper()
	if err := p.Eval(expr, out); err != nil {
		p.t.Fatal(err)
	}
}

// WaitFor polls a boolean JavaScript expression until it is true, and fails
// the test after timeout.
func (p *Page) WaitFor(expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := p.Eval("!!("+expr+")", &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s not true within %v (last error %v)", p.name, expr, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// Close closes the tab.
func (p *Page) Close() { p.cancel() }
