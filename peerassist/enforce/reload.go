package enforce

import (
	"fmt"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/policy"
)

// Reload applies a new policy section and sites (a configuration reload:
// the edge calls it on SIGHUP). Invalid input changes nothing and is
// returned, each problem with its path. Otherwise, from the next tick on:
//
//   - the engine decides with the new parameters and keeps what it learned
//     where it still applies (policy.Engine.SetParams): the observed peak,
//     the swarms' response curves, the stops it holds;
//   - each session's floor (its site's bitrate, else its declared bitrate
//     within the new max_declared_bitrate_bps, else basic_rate_bps) and
//     upload budget (site, ISP and default fractions, default_upload_bps)
//     follow the new values, and its limiter with them; sessions that
//     appear before that tick get the new floors at once;
//   - a new tick period restarts the ticker (the next tick is one new
//     period after the reload), and the 429s' Retry-After while the
//     allowance is 0 and the default burst follow it.
//
// Every policy setting changes this way: none needs a restart. Reload is
// safe for concurrent use with Tick and the HTTP path; it waits for a tick
// in progress.
func (l *Loop) Reload(c config.Policy, sites []config.Site) error {
	params, err := policy.ParamsFromConfig(c, sites)
	if err != nil {
		return fmt.Errorf("enforce: reload: %w", err)
	}
	l.tickMu.Lock()
	defer l.tickMu.Unlock()
	if err := l.eng.SetParams(params); err != nil {
		return fmt.Errorf("enforce: reload: %w", err)
	}
	old := l.set.Load()
	next := l.newSettings(c, params)
	l.set.Store(next)
	l.tel.peakTracker.SetWindow(params.PeakWindow)
	if next.tick != old.tick {
		select {
		case l.retick <- struct{}{}:
		default: // one is pending: it reads the new period
		}
	}
	l.log.Info("policy: parameters reloaded; in force from the next tick",
		"tick", next.tick.String(), "ebu_cap", params.EBUCap, "edge_capacity_bps", int64(params.EdgeCapacityBps))
	return nil
}
