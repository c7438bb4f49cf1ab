package cpuload

import (
	"fmt"
	"os"
	"path/filepath"
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

// TestMonitor runs a monitor over a file standing in for /proc/stat.
func TestMonitor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	write := func(idle, total int) {
		t.Helper()
		// user carries the busy time, idle the rest.
		line := fmt.Appendf(nil, "cpu %d 0 0 %d 0 0 0 0 0 0\n", total-idle, idle)
		// Replaced whole, as a reader of /proc/stat sees it.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, line, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	old := statPath
	statPath = path
	t.Cleanup(func() { statPath = old })

	write(100, 1000)
	m := Start(5*time.Millisecond, 0.10)
	defer m.Stop()
	idle, total := 100, 1000
	waitFor := func(want bool, idlePerStep int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for m.Saturated() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Saturated never became %v", want)
			}
			total += 100
			idle += idlePerStep
			write(idle, total)
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitFor(true, 1)   // 1% idle
	waitFor(false, 50) // 50% idle
	if err := os.WriteFile(path, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(true, 1) // back after an unreadable sample
	m.Stop()
	if m.Saturated() {
		t.Error("Saturated after Stop")
	}
	var nilMonitor *Monitor
	if nilMonitor.Saturated() {
		t.Error("a nil monitor is saturated")
	}
	nilMonitor.Stop()
}

func TestMonitorWithoutStat(t *testing.T) {
	old := statPath
	statPath = filepath.Join(t.TempDir(), "missing")
	t.Cleanup(func() { statPath = old })
	m := Start(time.Millisecond, 0.10)
	time.Sleep(10 * time.Millisecond)
	if m.Saturated() {
		t.Error("saturated without /proc/stat")
	}
	m.Stop()
}
