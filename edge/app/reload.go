package app

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/policy"
)

// Reload applies a new configuration to the running box (the edge binary
// calls it on SIGHUP) without dropping connections or signaling sockets.
//
// Everything is validated before anything changes: an invalid next (every
// problem with its path) leaves the running configuration wholly in force.
// Then the components are reloaded, the one that reads files first: region
// tables, origins, the edge's sites, limits, cache policy and access log,
// the coordinator's peer_assist settings, sites and region name (see
// coordinator.Reload), and the policy loop's parameters, from its next tick
// (see enforce.Loop.Reload). Should a component still fail (a region file
// that cannot be read), those already reloaded are reloaded again with the
// running configuration and the error is returned.
//
// A few settings change only on restart: the listen addresses, the cache's
// sizes and directory (memory_bytes, disk_path, disk_bytes), the telemetry
// exporters and log setup (service_name, otlp_endpoint, log_level,
// log_format) and peer_assist.enabled (whether the box runs a coordinator
// and a policy loop at all). A changed one is logged by name as a warning
// and keeps its running value; the rest is applied. One info line lists
// the settings that changed and were applied.
func (a *App) Reload(next *config.Config) error {
	if next == nil {
		return errors.New("edge: reload: nil config")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.cfg
	if err := next.Validate(); err != nil {
		return fmt.Errorf("edge: reload: %w", err)
	}
	if a.Policy != nil {
		// What enforce.Loop.Reload will check beyond the policy section.
		if _, err := policy.ParamsFromConfig(next.Policy, next.Sites); err != nil {
			return fmt.Errorf("edge: reload: %w", err)
		}
	}
	restart := restartOnly(cur, next)
	if a.Coordinator != nil {
		// The coordinator names peer_assist.enabled itself.
		restart = deleteString(restart, "peer_assist.enabled")
	}
	for _, name := range restart {
		a.log.Warn("edge: a setting changes only on restart; keeping the running value", "setting", name)
	}

	// Apply, reverting what was applied if a later step fails.
	var undo []func()
	fail := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return err
	}
	if err := a.Locator.Reload(next.Region); err != nil {
		return fmt.Errorf("edge: reload: %w", err)
	}
	undo = append(undo, func() { a.revert("region", a.Locator.Reload(cur.Region)) })
	if err := a.Pool.Update(next.Origin, next.Sites); err != nil {
		return fail(fmt.Errorf("edge: reload: %w", err))
	}
	undo = append(undo, func() { a.revert("origins", a.Pool.Update(cur.Origin, cur.Sites)) })
	if err := a.Server.Reload(next); err != nil {
		return fail(fmt.Errorf("edge: reload: %w", err))
	}
	undo = append(undo, func() { a.revert("sites", a.Server.Reload(cur)) })
	if a.Coordinator != nil {
		if err := a.Coordinator.Reload(next.PeerAssist, next.Sites, next.Region.Name); err != nil {
			return fail(fmt.Errorf("edge: reload: %w", err))
		}
		undo = append(undo, func() {
			a.revert("peer_assist", a.Coordinator.Reload(cur.PeerAssist, cur.Sites, cur.Region.Name))
		})
	}
	if a.Policy != nil {
		if err := a.Policy.Reload(next.Policy, next.Sites); err != nil {
			return fail(fmt.Errorf("edge: reload: %w", err))
		}
	}
	a.cfg = next
	applied := changedSettings(cur, next)
	for _, name := range restartOnly(cur, next) {
		applied = deleteString(applied, name)
	}
	changed := strings.Join(applied, " ")
	if changed == "" {
		// The region tables were read again all the same (the locator
		// logs what it loaded).
		changed = "no setting; region tables re-read"
	}
	a.log.Info("edge: reload complete", "file", next.File, "changed", changed)
	return nil
}

// revert logs a failure to put a component back on the running
// configuration after a failed reload.
func (a *App) revert(what string, err error) {
	if err != nil {
		a.log.Error("edge: reload failed and reverting "+what+" failed too", "err", err)
	}
}

// restartOnly names the settings that differ between cur and next and
// change only on restart.
func restartOnly(cur, next *config.Config) []string {
	var out []string
	check := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	check("listen", cur.Listen != next.Listen)
	check("admin_listen", cur.AdminListen != next.AdminListen)
	check("event_loops", cur.EventLoops != next.EventLoops)
	check("cache.memory_bytes", cur.Cache.MemoryBytes != next.Cache.MemoryBytes)
	check("cache.disk_path", cur.Cache.DiskPath != next.Cache.DiskPath)
	check("cache.disk_bytes", cur.Cache.DiskBytes != next.Cache.DiskBytes)
	check("telemetry.service_name", cur.Telemetry.ServiceName != next.Telemetry.ServiceName)
	check("telemetry.otlp_endpoint", cur.Telemetry.OTLPEndpoint != next.Telemetry.OTLPEndpoint)
	check("telemetry.log_level", cur.Telemetry.LogLevel != next.Telemetry.LogLevel)
	check("telemetry.log_format", cur.Telemetry.LogFormat != next.Telemetry.LogFormat)
	check("peer_assist.enabled", cur.PeerAssist.Enabled != next.PeerAssist.Enabled)
	return out
}

func deleteString(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// changedSettings lists the settings that differ between a and b by their
// YAML paths: the leaves of the section structs ("policy.ebu_cap"), lists
// as a whole ("sites", "peer_assist.allowed_origins").
func changedSettings(a, b *config.Config) []string {
	var out []string
	diffValues(reflect.ValueOf(*a), reflect.ValueOf(*b), "", &out)
	return out
}

func diffValues(a, b reflect.Value, path string, out *[]string) {
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		p := tag
		if path != "" {
			p = path + "." + tag
		}
		diffValues(a.Field(i), b.Field(i), p, out)
	}
}
