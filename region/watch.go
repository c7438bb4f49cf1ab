package region

import (
	"context"
	"slices"
	"time"
)

// Watch polls the modification time and size of the current table's
// source files every region.watch_interval and reloads the table when one
// changed. It returns when ctx is done. With watch_interval 0 it only
// waits for a reload that sets an interval.
//
// A change is acted on once the file has stayed the same for one more
// interval, so a file still being written is not read half-way (replacing
// files with an atomic rename is still the safe way to update them). A
// reload that fails keeps the previous table and is not retried until a
// file changes again.
func (l *Locator) Watch(ctx context.Context) {
	var pending, failed []fileStamp
	for {
		swapped := l.swapSignal()
		t := l.table.Load()
		interval := t.cfg.WatchInterval.D()
		if interval <= 0 || len(t.files) == 0 {
			pending, failed = nil, nil
			select {
			case <-ctx.Done():
				return
			case <-swapped:
				continue
			}
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-swapped:
			// A reload (SIGHUP) replaced the table: start over with its
			// files and interval.
			timer.Stop()
			pending, failed = nil, nil
			continue
		case <-timer.C:
		}
		cur := make([]fileStamp, len(t.files))
		for i, f := range t.files {
			cur[i] = statFile(f.path)
		}
		loaded := make([]fileStamp, len(t.files))
		for i, f := range t.files {
			loaded[i] = f.stamp
		}
		switch {
		case slices.Equal(cur, loaded):
			pending, failed = nil, nil
		case slices.Equal(cur, failed):
			// Still the version that failed; the error was logged.
		case !slices.Equal(cur, pending):
			pending = cur // changed: wait one interval for it to settle
		default:
			pending = nil
			if err := l.reload(t.cfg, "file change"); err != nil {
				failed = cur
			}
		}
	}
}
