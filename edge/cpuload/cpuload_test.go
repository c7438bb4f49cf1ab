package cpuload

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		idle, tot uint64
		err       bool
	}{
		{"full", "cpu  10 1 20 300 5 0 2 0 7 0\ncpu0 5 0 10 150 2 0 1 0 3 0\n", 305, 338, false},
		{"four times", "cpu 1 2 3 4\n", 4, 10, false},
		{"no newline", "cpu 1 2 3 4 5", 9, 15, false},
		{"not cpu first", "cpu0 1 2 3 4 5\n", 0, 0, true},
		{"too short", "cpu 1 2 3\n", 0, 0, true},
		{"not a number", "cpu 1 2 x 4 5\n", 0, 0, true},
		{"negative", "cpu 1 2 -3 4 5\n", 0, 0, true},
		{"empty", "", 0, 0, true},
	} {
		got, err := parseStat([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if !tc.err && (got.idle != tc.idle || got.total != tc.tot) {
			t.Errorf("%s: got idle %d total %d, want %d %d", tc.name, got.idle, got.total, tc.idle, tc.tot)
		}
	}
}

func TestSaturated(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b times
		want bool
	}{
		{"busy", times{100, 1000}, times{102, 1100}, true},
		{"idle", times{100, 1000}, times{150, 1100}, false},
		{"at the bound", times{100, 1000}, times{110, 1100}, false},
		{"no time passed", times{100, 1000}, times{100, 1000}, false},
		{"counters went back", times{100, 1000}, times{90, 1100}, false},
	} {
		if got := saturated(tc.a, tc.b, 0.10); got != tc.want {
			t.Errorf("%s: saturated = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMonitor asks a monitor over a file standing in for /proc/stat.
func TestMonitor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	write := func(idle, total int) {
		t.Helper()
		// user carries the busy time, idle the rest.
		line := fmt.Appendf(nil, "cpu %d 0 0 %d 0 0 0 0 0 0\n", total-idle, idle)
		if err := os.WriteFile(path, line, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := statPath
	statPath = path
	t.Cleanup(func() { statPath = old })

	const interval = 50 * time.Millisecond
	m := New(interval, 0.10)
	idle, total := 100, 1000
	// step adds a window with idlePerStep% idle time, waits past the
	// interval and asks.
	step := func(idlePerStep int) bool {
		t.Helper()
		idle += idlePerStep
		total += 100
		write(idle, total)
		time.Sleep(interval + 5*time.Millisecond)
		return m.Saturated()
	}
	write(idle, total)
	if m.Saturated() {
		t.Fatal("saturated after one sample")
	}
	for i, tc := range []struct {
		idlePercent int
		want        bool
	}{{1, true}, {1, true}, {50, false}, {9, true}, {10, false}, {0, true}} {
		if got := step(tc.idlePercent); got != tc.want {
			t.Errorf("step %d (%d%% idle): Saturated = %v, want %v", i, tc.idlePercent, got, tc.want)
		}
	}

	// Asked again within the interval: the same answer, no new sample.
	write(idle+100, total+100) // 100% idle, unseen
	if !m.Saturated() {
		t.Error("answer changed within the interval")
	}

	// A stat file that cannot be parsed: not saturated, and the next
	// good window starts afresh.
	time.Sleep(interval + 5*time.Millisecond)
	if err := os.WriteFile(path, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m.Saturated() {
		t.Error("saturated with an unreadable stat file")
	}
	idle, total = idle+100, total+100
	if step(1) {
		t.Error("saturated on the first sample after an unreadable one")
	}
	if !step(1) {
		t.Error("not saturated again after an unreadable sample")
	}

	// Nobody asked for a long time: that window only starts a new one.
	time.Sleep((maxWindows + 1) * interval)
	if step(1) {
		t.Error("a window of more than maxWindows intervals counted")
	}
	if !step(1) {
		t.Error("not saturated after a long pause and a busy window")
	}

	var nilMonitor *Monitor
	if nilMonitor.Saturated() {
		t.Error("a nil monitor is saturated")
	}
}

func TestMonitorWithoutStat(t *testing.T) {
	old := statPath
	statPath = filepath.Join(t.TempDir(), "missing")
	t.Cleanup(func() { statPath = old })
	m := New(time.Millisecond, 0.10)
	for range 3 {
		if m.Saturated() {
			t.Error("saturated without /proc/stat")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestMonitorConcurrent: loops ask at once (run with -race).
func TestMonitorConcurrent(t *testing.T) {
	m := New(time.Millisecond, 0.10)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				m.Saturated()
			}
		}()
	}
	wg.Wait()
}
