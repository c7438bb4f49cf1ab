package origin

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
)

// startProbes starts an active health check for every upstream of snap
// that old did not already run, when health checks are configured.
func (p *Pool) startProbes(snap, old *snapshot) {
	if snap.cfg.HealthCheck.Path == "" {
		return
	}
	for url, u := range snap.upstreams {
		if old != nil && old.upstreams[url] == u {
			continue
		}
		u.stopProbe = make(chan struct{})
		u.probeDone = make(chan struct{})
		go p.probeLoop(u)
	}
}

// stopProbing stops u's health check and waits for a probe in flight (at
// most HealthCheck.Timeout).
func (u *upstream) stopProbing() {
	if u.stopProbe == nil {
		return
	}
	u.probeOnce.Do(func() {
		close(u.stopProbe)
		<-u.probeDone
	})
}

func (p *Pool) probeLoop(u *upstream) {
	defer close(u.probeDone)
	// The first probe goes out at once, so that a dead origin is known
	// before it costs a user request.
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-u.stopProbe:
			return
		case <-t.C:
		}
		p.probe(u)
		t.Reset(u.cfg.HealthCheck.Interval.D())
	}
}

// probe sends one HEAD of the health-check path: a 2xx or 3xx answer within
// HealthCheck.Timeout marks the origin up, anything else counts as a
// failure.
func (p *Pool) probe(u *upstream) {
	hc := u.cfg.HealthCheck
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodHead)
	req.SetRequestURI(u.scheme + "://" + u.hostHeader + u.pathPrefix + hc.Path)
	req.Header.Set("User-Agent", "edgebox-health-check")
	err := u.client.DoTimeout(req, resp, hc.Timeout.D())
	status := 0
	if err == nil {
		status = resp.StatusCode()
		_ = resp.CloseBodyStream()
	}
	now := time.Now()
	st := u.state
	if err == nil && status >= 200 && status < 400 {
		if st.success(now) {
			p.log.Info("origin up", "origin", u.base, "after", "health check")
		}
		return
	}
	reason := fmt.Sprintf("health check %s: status %d", hc.Path, status)
	if err != nil {
		reason = fmt.Sprintf("health check %s: %v", hc.Path, err)
	}
	if st.failure(now, u.cfg.FailThreshold, reason) {
		p.log.Warn("origin down", "origin", u.base, "reason", reason)
	}
}
