// Package config is the edge box's one configuration tree: every field with
// its default (Default), strict YAML loading (unknown keys are errors) and
// validation that names the path and file:line of every bad field.
//
// Each section lives in its own file (edge.go, region.go, peerassist.go,
// policy.go) and validates itself; this file holds the loader and the error
// types they share.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Config is the whole configuration of one edge box.
type Config struct {
	// Listen is the address of the public HTTP listener. Default ":8080".
	Listen string `yaml:"listen"`
	// AdminListen is the address of the admin listener (purge, health,
	// stats, /metrics). Default "127.0.0.1:9090": loopback only.
	AdminListen string `yaml:"admin_listen"`
	// EventLoops is how many epoll loops serve client connections on
	// Linux: 0 runs one per CPU the Go runtime uses (GOMAXPROCS); -1
	// serves each connection on a goroutine of its own (fasthttp), as on
	// other platforms. Requests a loop cannot answer at once (misses,
	// revalidations, passes, objects on disk) run on goroutines either
	// way. Each loop holds a thread while it waits: more loops than CPUs
	// only cost. At most 256; not reloadable. Default 0.
	EventLoops int `yaml:"event_loops"`
	// Limits protect the listener from slow and oversized clients.
	Limits Limits `yaml:"limits"`
	// Cache sizes the chunk store.
	Cache Cache `yaml:"cache"`
	// Origin tunes the connections to upstream origins.
	Origin Origin `yaml:"origin"`
	// Sites map client requests to origins. At least one is required.
	Sites []Site `yaml:"sites"`
	// Region maps viewer addresses to regions and ISPs.
	Region Region `yaml:"region"`
	// PeerAssist configures the coordinator (signaling, swarms, sessions).
	PeerAssist PeerAssist `yaml:"peer_assist"`
	// Policy holds the upload-fraction, EBU-cap and allocation parameters.
	Policy Policy `yaml:"policy"`
	// Telemetry configures traces, metrics and logs.
	Telemetry Telemetry `yaml:"telemetry"`

	// File is the path the configuration was loaded from ("" when built in
	// code). It is not read from YAML.
	File string `yaml:"-"`
	// lines maps a field path ("sites[1].origins[0].url") to its line.
	lines map[string]int
}

// maxEventLoops bounds event_loops.
const maxEventLoops = 256

// Default returns a configuration with every default filled in and no sites.
func Default() Config {
	return Config{
		Listen:      ":8080",
		AdminListen: "127.0.0.1:9090",
		Limits:      DefaultLimits(),
		Cache:       DefaultCache(),
		Origin:      DefaultOrigin(),
		Region:      DefaultRegion(),
		PeerAssist:  DefaultPeerAssist(),
		Policy:      DefaultPolicy(),
		Telemetry:   DefaultTelemetry(),
	}
}

// Load reads, decodes and validates the YAML file at path. Fields the file
// does not set keep their defaults. Every problem (unknown keys, values
// that do not fit their field, values out of range) is returned at once as
// Errors, each naming file:line and the field path; a YAML syntax error
// alone stops the reading.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for bytes already read; path is used only in messages.
func Parse(path string, data []byte) (*Config, error) {
	cfg, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Check is Load for `edge check`: with problems, it also returns the
// configuration as far as it could be read (a field with a problem keeps
// its default), so that checks beyond the file (region sources) can run
// too. The configuration is nil only when the file could not be read or
// parsed at all.
func Check(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return parse(path, data)
}

// parse decodes and validates data. Keys that are unknown or whose values
// do not fit are reported and left out, and the rest is decoded and
// validated, so that one run reports every problem (a validation problem
// of a key left out is not reported twice).
func parse(path string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.File = path
	schemaErrs, repaired := schemaCheck(path, data)
	body := data
	if repaired != nil {
		body = repaired
	}
	// An empty or comment-only file means all defaults (the decoder would
	// zero the struct instead).
	if hasContent(body) {
		if err := unmarshalStrict(body, &cfg); err != nil {
			if len(schemaErrs) > 0 {
				return nil, schemaErrs
			}
			return nil, decodeError(path, data, err)
		}
	}
	// Sites are decoded into zero values; fill their defaults here so that a
	// site only has to name what differs.
	for i := range cfg.Sites {
		cfg.Sites[i].applyDefaults()
	}
	cfg.lines = fieldLines(data)
	all := schemaErrs
	if err := cfg.Validate(); err != nil {
		var verrs Errors
		if !errors.As(err, &verrs) {
			return nil, err
		}
		for _, e := range verrs {
			if !underAny(e.Path, schemaErrs) {
				all = append(all, e)
			}
		}
	}
	if len(all) > 0 {
		return &cfg, all
	}
	return &cfg, nil
}

// underAny reports whether path is one of the errors' paths or under one.
func underAny(path string, errs Errors) bool {
	for _, e := range errs {
		if path == e.Path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(path, e.Path+"[") {
			return true
		}
	}
	return false
}

// hasContent reports whether data holds a YAML document with a body.
func hasContent(data []byte) bool {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return true // let the decoder report the syntax error
	}
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			return true
		}
	}
	return false
}

// LineOf returns the line in the loaded file of the field at path (or of
// its nearest ancestor the file sets), or 0.
func (c *Config) LineOf(path string) int { return lineOf(c.lines, path) }

// unmarshalStrict decodes data into cfg, turning a panic of the YAML
// decoder into an error: goccy/go-yaml v1.19.2 dereferences nil on some
// malformed input (a tag before a sequence, found by region's
// FuzzRegionConfig: "hosts:\n  ! 0000").
func unmarshalStrict(data []byte, cfg *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML (the decoder failed: %v)", r)
		}
	}()
	return yaml.UnmarshalWithOptions(data, cfg, yaml.Strict())
}

// Validate checks every section and returns all problems as Errors, or nil.
func (c *Config) Validate() error {
	var p Problems
	if c.Listen == "" {
		p.Add("listen", "must not be empty")
	} else {
		p.CheckHostPort("listen", c.Listen)
	}
	if c.EventLoops < -1 || c.EventLoops > maxEventLoops {
		p.Addf("event_loops", "must be -1 (off), 0 (one per CPU) or up to %d (got %d)", maxEventLoops, c.EventLoops)
	}
	if c.AdminListen != "" {
		p.CheckHostPort("admin_listen", c.AdminListen)
	}
	c.Limits.validate(p.Sub("limits"))
	c.Cache.validate(p.Sub("cache"))
	c.Origin.validate(p.Sub("origin"))
	if len(c.Sites) == 0 {
		p.Add("sites", "at least one site is required")
	}
	names := map[string]int{}
	routes := map[string]int{} // host (or "*") + path prefix -> site index
	for i := range c.Sites {
		sp := p.Sub(fmt.Sprintf("sites[%d]", i))
		c.Sites[i].validate(sp)
		if j, dup := names[c.Sites[i].Name]; dup && c.Sites[i].Name != "" {
			sp.Add("name", fmt.Sprintf("duplicate site name %q (also sites[%d])", c.Sites[i].Name, j))
		}
		names[c.Sites[i].Name] = i
		hosts := c.Sites[i].Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		seen := map[string]bool{}
		for k, h := range hosts {
			key := strings.ToLower(h) + " " + c.Sites[i].PathPrefix
			if j, dup := routes[key]; dup && j != i {
				sp.Addf("hosts", "host %q with path_prefix %q is also sites[%d]'s: this site would never be reached", h, c.Sites[i].PathPrefix, j)
			} else if seen[key] {
				sp.Addf(fmt.Sprintf("hosts[%d]", k), "host %q is listed twice", h)
			}
			seen[key] = true
			routes[key] = i
		}
	}
	c.Region.validate(p.Sub("region"))
	c.PeerAssist.validate(p.Sub("peer_assist"))
	c.Policy.validate(p.Sub("policy"))
	c.Telemetry.validate(p.Sub("telemetry"))
	return p.Err(c.File, c.lines)
}

// Error is one configuration problem.
type Error struct {
	File string // config file, "" when built in code
	Line int    // 1-based line of the field, 0 when unknown
	Path string // field path, e.g. "sites[1].origins[0].url"
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration, in file order.
type Errors []Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Problems collects validation errors under a path prefix. Sections call
// Sub to descend and Add to report. The zero value is ready to use; it is not
// safe for concurrent use.
type Problems struct {
	prefix string
	list   *[]Error
}

// Sub returns a collector for the field or element name below this one.
func (p *Problems) Sub(name string) *Problems {
	if p.list == nil {
		p.list = new([]Error)
	}
	return &Problems{prefix: joinPath(p.prefix, name), list: p.list}
}

// Add reports that field (relative to this collector; "" for the collector's
// own path) is wrong, with a message saying why.
func (p *Problems) Add(field, msg string) {
	if p.list == nil {
		p.list = new([]Error)
	}
	*p.list = append(*p.list, Error{Path: joinPath(p.prefix, field), Msg: msg})
}

// Addf is Add with a format.
func (p *Problems) Addf(field, format string, args ...any) {
	p.Add(field, fmt.Sprintf(format, args...))
}

// Len reports how many problems were collected so far.
func (p *Problems) Len() int {
	if p.list == nil {
		return 0
	}
	return len(*p.list)
}

// Err returns the collected problems with file and line filled in, or nil.
func (p *Problems) Err(file string, lines map[string]int) error {
	if p.Len() == 0 {
		return nil
	}
	out := make(Errors, len(*p.list))
	for i, e := range *p.list {
		e.File = file
		e.Line = lineOf(lines, e.Path)
		out[i] = e
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

func joinPath(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	case strings.HasPrefix(name, "["):
		return prefix + name
	default:
		return prefix + "." + name
	}
}

// lineOf finds the line of path, or of its nearest ancestor that the file
// sets (a defaulted field has no line of its own).
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// fieldLines walks the YAML document and records the line of every mapping
// key and sequence element by its path.
func fieldLines(data []byte) map[string]int {
	lines := map[string]int{}
	f, err := parser.ParseBytes(data, 0)
	if err != nil || len(f.Docs) == 0 {
		return lines
	}
	var walk func(path string, n ast.Node)
	walk = func(path string, n ast.Node) {
		switch v := n.(type) {
		case *ast.DocumentNode:
			walk(path, v.Body)
		case *ast.MappingNode:
			for _, kv := range v.Values {
				walk(path, kv)
			}
		case *ast.MappingValueNode:
			key := v.Key.String()
			p := joinPath(path, key)
			lines[p] = v.Key.GetToken().Position.Line
			walk(p, v.Value)
		case *ast.SequenceNode:
			for i, e := range v.Values {
				p := fmt.Sprintf("%s[%d]", path, i)
				if e != nil && e.GetToken() != nil {
					lines[p] = e.GetToken().Position.Line
				}
				walk(p, e)
			}
		case *ast.TagNode:
			walk(path, v.Value)
		case *ast.AnchorNode:
			walk(path, v.Value)
		}
	}
	walk("", f.Docs[0])
	return lines
}

// decodeError turns a YAML decoding error into Errors with file:line.
func decodeError(path string, data []byte, err error) error {
	var ve *valueError
	if errors.As(err, &ve) {
		e := Error{File: path, Msg: ve.msg}
		e.Path, e.Line = findScalar(data, ve.value)
		return Errors{e}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		line := 0
		if tok := ye.GetToken(); tok != nil && tok.Position != nil {
			line = tok.Position.Line
		}
		return Errors{{File: path, Line: line, Msg: ye.GetMessage()}}
	}
	return Errors{{File: path, Msg: err.Error()}}
}

// findScalar returns the path and line of the first scalar whose text is v.
func findScalar(data []byte, v string) (string, int) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil || len(f.Docs) == 0 {
		return "", 0
	}
	var path string
	var line int
	var walk func(p string, n ast.Node) bool
	walk = func(p string, n ast.Node) bool {
		switch x := n.(type) {
		case *ast.DocumentNode:
			return walk(p, x.Body)
		case *ast.MappingNode:
			for _, kv := range x.Values {
				if walk(p, kv) {
					return true
				}
			}
		case *ast.MappingValueNode:
			return walk(joinPath(p, x.Key.String()), x.Value)
		case *ast.SequenceNode:
			for i, e := range x.Values {
				if walk(fmt.Sprintf("%s[%d]", p, i), e) {
					return true
				}
			}
		case *ast.TagNode:
			return walk(p, x.Value)
		case *ast.AnchorNode:
			return walk(p, x.Value)
		case ast.ScalarNode:
			if tok := n.GetToken(); tok != nil && tok.Value == v {
				path, line = p, tok.Position.Line
				return true
			}
		}
		return false
	}
	walk("", f.Docs[0])
	return path, line
}
