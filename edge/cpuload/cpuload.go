// Package cpuload tells whether the machine's CPUs are saturated: busy all
// of the recent past, no CPU idle. The edge's event loops ask it before
// sleeping (edge/loop_linux.go): with no idle CPU, a loop that runs out of
// events yields its CPU once instead of sleeping, which saves a wakeup and
// the preemption of whoever runs when the next request comes; with an idle
// CPU, sleeping is better, since the wakeup lands there.
//
// It reads the aggregate "cpu" line of /proc/stat every interval. Where
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

// Defaults of Start's arguments, as the event loops use them.
const (
	// DefaultInterval: /proc/stat counts in ticks of 10 ms, so a window
	// must span several of them on every CPU to measure a few percent.
	DefaultInterval = 100 * time.Millisecond
	// DefaultMaxIdle: below this fraction of idle time (idle and iowait
	// over all CPUs) the CPUs are saturated. Measured on two CPUs serving
	// 64 KiB hits to wrk: 2-6% idle from 8 connections up, 16-26% with 2.
	DefaultMaxIdle = 0.10
)

// statPath is read by the monitor; tests point it elsewhere.
var statPath = "/proc/stat"

// Monitor samples the CPUs' idle time. Create it with Start.
type Monitor struct {
	saturated atomic.Bool
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
}

// Start samples /proc/stat every interval until Stop; the CPUs count as
// saturated after an interval in which less than maxIdle of their time
// was idle. A nil *Monitor is never saturated.
func Start(interval time.Duration, maxIdle float64) *Monitor {
	m := &Monitor{stop: make(chan struct{}), done: make(chan struct{})}
	go m.run(interval, maxIdle)
	return m
}

// Saturated reports whether no CPU was idle in the last interval (below
// maxIdle).
func (m *Monitor) Saturated() bool {
	return m != nil && m.saturated.Load()
}

// Stop ends the sampling and waits for it; Saturated is false after.
func (m *Monitor) Stop() {
	if m == nil {
		return
	}
	m.once.Do(func() { close(m.stop) })
	<-m.done
	m.saturated.Store(false)
}

func (m *Monitor) run(interval time.Duration, maxIdle float64) {
	defer close(m.done)
	buf := make([]byte, 0, 4096)
	prev, err := sample(&buf)
	if err != nil {
		return // no /proc/stat here: never saturated
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		cur, err := sample(&buf)
		if err != nil {
			// Not saturated as far as anyone knows; the next
			// sample starts a new window.
			m.saturated.Store(false)
			prev = times{}
			continue
		}
		m.saturated.Store(prev.total > 0 && saturated(prev, cur, maxIdle))
		prev = cur
	}
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

func sample(buf *[]byte) (times, error) {
	f, err := os.Open(statPath)
	if err != nil {
		return times{}, err
	}
	defer f.Close()
	b := (*buf)[:cap(*buf)]
	n, err := f.Read(b)
	if err != nil {
		return times{}, err
	}
	return parseStat(b[:n])
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
