// Package cpuload tells whether the machine's CPUs are saturated: busy all
// of the recent past, no CPU idle. The edge's event loops ask it before
// sleeping (edge/loop_linux.go): with no idle CPU, a loop that runs out of
// events yields its CPU once instead of sleeping, which saves a wakeup and
// the preemption of whoever runs when the next request comes; with an idle
// CPU, sleeping is better, since the wakeup lands there.
//
// It reads the aggregate "cpu" line of /proc/stat, at most once an
// interval and only when asked, so an idle process pays nothing. Where
// /proc/stat cannot be read (not Linux, a restricted container), the CPUs
// are never reported saturated.
package cpuload

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of New's arguments, as the event loops use them.
const (
	// DefaultInterval: /proc/stat counts in ticks of 10 ms, so a window
	// must span several of them on every CPU to measure a few percent.
	DefaultInterval = 100 * time.Millisecond
	// DefaultMaxIdle: below this fraction of idle time (idle and iowait
	// over all CPUs) the CPUs are saturated. Measured on two CPUs serving
	// 64 KiB hits to wrk: 2-6% idle from 8 connections up, 9-26% with 2.
	DefaultMaxIdle = 0.10
)

// maxWindows: a window longer than this many intervals (nobody asked for
// a while) is not a measure of now; it only starts a new one.
const maxWindows = 10

// statPath is read by the monitor; tests point it elsewhere.
var statPath = "/proc/stat"

// Monitor measures the CPUs' idle time. Create it with New; a nil
// *Monitor is never saturated. Safe for concurrent use.
type Monitor struct {
	interval time.Duration
	maxIdle  float64
	// start is the monotonic origin of due.
	start time.Time
	// due: nanoseconds after start when the current answer expires.
	due       atomic.Int64
	saturated atomic.Bool

	mu     sync.Mutex // one sampler at a time; guards the fields below
	prev   times
	prevAt time.Duration // since start; 0: no previous sample
	buf    []byte
}

// New returns a monitor for which the CPUs count as saturated after a
// window of at least interval in which less than maxIdle of their time was
// idle.
func New(interval time.Duration, maxIdle float64) *Monitor {
	return &Monitor{interval: interval, maxIdle: maxIdle, start: time.Now(), buf: make([]byte, 4096)}
}

// Saturated reports whether less than maxIdle of the CPUs' time was idle
// in the last window. The answer is refreshed from /proc/stat when it is
// older than the interval, by the caller that finds it so (the others get
// the previous answer meanwhile).
func (m *Monitor) Saturated() bool {
	if m == nil {
		return false
	}
	now := time.Since(m.start)
	if int64(now) >= m.due.Load() && m.mu.TryLock() {
		m.refreshLocked(now)
		m.mu.Unlock()
	}
	return m.saturated.Load()
}

func (m *Monitor) refreshLocked(now time.Duration) {
	m.due.Store(int64(now + m.interval))
	cur, err := sample(m.buf)
	if err != nil {
		m.saturated.Store(false)
		m.prevAt = 0
		return
	}
	fresh := m.prevAt > 0 && now-m.prevAt <= maxWindows*m.interval
	m.saturated.Store(fresh && saturated(m.prev, cur, m.maxIdle))
	m.prev, m.prevAt = cur, now
}

// times is the aggregate line of /proc/stat, in ticks.
type times struct{ idle, total uint64 }

// saturated: the window from a to b had some time and less than maxIdle
// of it idle.
func saturated(a, b times, maxIdle float64) bool {
	if b.total <= a.total || b.idle < a.idle {
		return false // no time passed, or the counters went back
	}
	idle := float64(b.idle-a.idle) / float64(b.total-a.total)
	return idle < maxIdle
}

// sample reads the times from statPath into buf (the first line fits: it
// holds at most ten numbers).
func sample(buf []byte) (times, error) {
	f, err := os.Open(statPath)
	if err != nil {
		return times{}, err
	}
	defer f.Close()
	n, err := f.Read(buf)
	if err != nil {
		return times{}, err
	}
	return parseStat(buf[:n])
}

var errNoCPULine = errors.New(`cpuload: no "cpu" line first in /proc/stat`)

// parseStat reads the first line of /proc/stat: "cpu" and the times user,
// nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice (at
// least four; guest time is already counted in user and nice).
func parseStat(b []byte) (times, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return times{}, errNoCPULine
	}
	var t times
	for i, f := range fields[1:] {
		if i >= 8 { // guest, guest_nice: part of user, nice
			break
		}
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return times{}, fmt.Errorf("cpuload: field %d of the cpu line of /proc/stat: %w", i+1, err)
		}
		t.total += v
		if i == 3 || i == 4 { // idle, iowait
			t.idle += v
		}
	}
	return t, nil
}
