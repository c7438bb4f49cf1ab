package region

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gaissmai/bart"
	"golang.org/x/sys/unix"

	"github.com/peerassist/edgebox/config"
)

// Full-size table: about as many ranges as iptoasn's combined file.
const (
	benchRangesV4 = 400_000
	benchRangesV6 = 100_000
)

// writeFullTSV writes a synthetic iptoasn file shaped like the real one:
// sorted, disjoint ranges that are mostly runs of 1-3 aligned blocks (/24
// the most common in IPv4, /32-/48 in IPv6), some ending mid-block, ~70k
// ASNs, 10% "Not routed". oddTenths is how many tenths of the IPv4 ranges
// end mid-block. It returns the number of lines written.
func writeFullTSV(tb testing.TB, path string, oddTenths int) int {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(7, 11))
	line := func(from, to netip.Addr) {
		asn := 1 + rng.Uint32N(70_000)
		if rng.IntN(10) == 0 {
			fmt.Fprintf(w, "%s\t%s\t0\tNone\tNot routed\n", from, to)
			return
		}
		fmt.Fprintf(w, "%s\t%s\t%d\tZZ\tAS%d-EXAMPLE Example Networks %d\n", from, to, asn, asn, asn%997)
	}
	n := 0
	// IPv4 from 1.0.0.0 up to 223.255.255.255.
	cursor := uint64(1 << 24)
	v4bits := []int{8, 8, 8, 8, 8, 8, 9, 9, 10, 10, 11, 12, 14}
	for n < benchRangesV4 {
		k := v4bits[rng.IntN(len(v4bits))]
		block := uint64(1) << k
		cursor = (cursor + block - 1) &^ (block - 1)
		size := block * uint64(1+rng.IntN(3))
		if rng.IntN(10) < oddTenths {
			size -= block / 2 // ends mid-block: several prefixes
			if k > 9 && rng.IntN(2) == 0 {
				size -= block / 8
			}
		}
		if cursor+size > 224<<24 {
			tb.Fatalf("synthetic IPv4 space exhausted after %d ranges", n)
		}
		line(u32Addr(uint32(cursor)), u32Addr(uint32(cursor+size-1)))
		n++
		cursor += size + block*uint64(rng.IntN(3))
	}
	// IPv6 in 2000::/3, working on the upper 64 bits.
	hi := uint64(0x2001) << 48
	v6len := []int{29, 32, 32, 32, 36, 40, 44, 48, 48, 48, 48}
	addr6 := func(h uint64, ones bool) netip.Addr {
		var b [16]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(h >> (56 - 8*i))
			if ones {
				b[8+i] = 0xff
			}
		}
		return netip.AddrFrom16(b)
	}
	for i := 0; i < benchRangesV6; i++ {
		block := uint64(1) << (64 - v6len[rng.IntN(len(v6len))])
		hi = (hi + block - 1) &^ (block - 1)
		size := block * uint64(1+rng.IntN(2))
		line(addr6(hi, false), addr6(hi+size-1, true))
		n++
		hi += size + block*uint64(rng.IntN(3))
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// fullConfig assigns 2000 ASNs to 10 regions (half of them restricted to
// within prefixes) and adds a few config prefixes.
func fullConfig() config.Region {
	cfg := config.DefaultRegion()
	cfg.Name = "region-0"
	cfg.Sources = []config.RegionSource{{Path: "full.tsv"}}
	for r := 0; r < 10; r++ {
		rd := config.RegionDef{Name: "region-" + strconv.Itoa(r)}
		rd.ISPs = []config.ISPDef{{Name: "isp-" + strconv.Itoa(r), ASN: uint32(80_000 + r),
			Prefixes: []string{fmt.Sprintf("%d.0.0.0/16", 100+r), fmt.Sprintf("2a0%d::/24", r)}}}
		for a := 0; a < 200; a++ {
			asn := uint32(1 + r*7000 + a*31)
			def := config.ASNDef{ASN: asn}
			if a%2 == 1 {
				def.Within = []string{fmt.Sprintf("%d.0.0.0/8", 1+(a+r)%200), "2000::/3"}
			}
			rd.ASNs = append(rd.ASNs, def)
		}
		cfg.Regions = append(cfg.Regions, rd)
	}
	return cfg
}

// fullLocator builds the full-size table once per benchmark.
func fullLocator(b *testing.B) (*Locator, []netip.Addr) {
	b.Helper()
	dir := b.TempDir()
	writeFullTSV(b, filepath.Join(dir, "full.tsv"), 1)
	l, err := New(fullConfig(), Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	// Probe addresses spread over the populated space, v4 and v6.
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := make([]netip.Addr, 1<<16)
	known := 0
	for i := range addrs {
		if i%4 == 3 {
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			h := rng.Uint64()
			for j := 2; j < 8; j++ {
				a[j] = byte(h >> (8 * j))
			}
			a[2] &= 0x1f // stay near the generated ranges
			a[15] = byte(i)
			addrs[i] = netip.AddrFrom16(a)
		} else {
			addrs[i] = u32Addr(1<<24 + rng.Uint32N(180<<24))
		}
		if l.Locate(addrs[i]).ASN != 0 {
			known++
		}
	}
	asnHitRatio = float64(known) / float64(len(addrs))
	return l, addrs
}

// asnHitRatio is the share of probe addresses inside some database range.
var asnHitRatio float64

// BenchmarkLocate: one lookup in the full-size table (goal < 100 ns,
// 0 allocs). BenchmarkLocateVsBart compares it with the bare prefix table.
// Besides wall time it reports the thread's CPU time per lookup (cpu-ns),
// which excludes the time the thread waited for a CPU on a shared machine.
func BenchmarkLocate(b *testing.B) {
	l, addrs := fullLocator(b)
	runtime.LockOSThread() // thread CPU clocks need one thread
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	cpu0 := threadCPU()
	for b.Loop() {
		l.Locate(addrs[i&(len(addrs)-1)])
		i++
	}
	b.ReportMetric(float64((threadCPU()-cpu0).Nanoseconds())/float64(i), "cpu-ns")
	b.ReportMetric(asnHitRatio, "asn-hit-ratio")
}

func BenchmarkLocateParallel(b *testing.B) {
	l, addrs := fullLocator(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(addrs))
		for pb.Next() {
			l.Locate(addrs[i&(len(addrs)-1)])
			i++
		}
	})
}

// BenchmarkLoadFullTable: building the full-size table from its TSV (goal
// < 2 s and < 200 MB), for the typical shape (10% of the IPv4 ranges end
// mid-block) and a fragmented one (80%). Reports wall and CPU time, the
// heap the finished table retains and the process's peak RSS growth during
// the load (run with -benchtime=1x for a clean peak).
func BenchmarkLoadFullTable(b *testing.B) {
	b.Run("shape=typical", func(b *testing.B) { benchmarkLoad(b, 1) })
	b.Run("shape=fragmented", func(b *testing.B) { benchmarkLoad(b, 8) })
}

func benchmarkLoad(b *testing.B, oddTenths int) {
	dir := b.TempDir()
	lines := writeFullTSV(b, filepath.Join(dir, "full.tsv"), oddTenths)
	cfg := fullConfig()
	var before, after runtime.MemStats
	runtime.GC()
	debug.FreeOSMemory()
	runtime.ReadMemStats(&before)
	resetPeakRSS()
	rssBefore := readRSS("VmRSS")
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	loads := 0
	var l *Locator
	for b.Loop() {
		loads++
		if l != nil {
			l.Close()
		}
		var err error
		l, err = New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	peak := readRSS("VmHWM")
	runtime.GC()
	runtime.ReadMemStats(&after)
	v4, v6 := l.TableSize()
	b.ReportMetric(cpu.Seconds()/float64(loads), "cpu-s/op")
	b.ReportMetric(float64(lines), "ranges")
	b.ReportMetric(float64(v4+v6), "prefixes")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "table-heap-MB")
	if peak > 0 {
		b.ReportMetric(float64(peak-rssBefore)/(1<<20), "load-peak-rss-MB")
	}
	l.Close()
}

// resetPeakRSS resets the kernel's VmHWM of this process (Linux 4.0+).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// readRSS returns a /proc/self/status memory field in bytes, 0 if unknown.
func readRSS(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// BenchmarkLocateVsBart interleaves batches of Locate and of the bare
// prefix-table lookup (to the answer's ASN), each batch on its own probes
// from the same set, so that a noisy machine slows both alike: locate/bart
// is the cost Locate adds on top of the prefix table. Besides
// wall time it reports the thread's CPU time per lookup (cpu-ns), which
// excludes the time the thread waited for a CPU on a shared machine.
//
// probes=random spreads 64k probes over the whole address space (every
// lookup misses the CPU caches); probes=regional uses 1024 addresses of
// the served region's own prefixes, the working set of an ISP's edge box.
func BenchmarkLocateVsBart(b *testing.B) {
	l, addrs := fullLocator(b)
	b.Run("probes=random", func(b *testing.B) { benchmarkLocateVsBart(b, l, addrs) })
	regional := make([]netip.Addr, 1024)
	for i := range regional {
		regional[i] = u32Addr(100<<24 | uint32(i*61)) // inside region-0's 100.0.0.0/16
	}
	if loc := l.Locate(regional[7]); loc.Region != "region-0" {
		b.Fatalf("regional probe %s = %+v, want region-0", regional[7], loc)
	}
	b.Run("probes=regional", func(b *testing.B) { benchmarkLocateVsBart(b, l, regional) })
}

func benchmarkLocateVsBart(b *testing.B, l *Locator, addrs []netip.Addr) {
	t := l.table.Load()
	runtime.LockOSThread() // thread CPU clocks need one thread
	defer runtime.UnlockOSThread()
	const batch = 4096
	var locateWall, bartWall, locateCPU, bartCPU time.Duration
	var sink int
	n := 0
	measure := func(fn func(netip.Addr) bool, from int, wall, cpu *time.Duration) {
		c0, w0 := threadCPU(), time.Now()
		for i := 0; i < batch; i++ {
			if fn(addrs[(from+i)&(len(addrs)-1)]) {
				sink++
			}
		}
		*wall += time.Since(w0)
		*cpu += threadCPU() - c0
	}
	locate := func(a netip.Addr) bool { return l.Locate(a).Known }
	bare := func(a netip.Addr) bool { r, ok := t.prefixes.Lookup(a); return ok && t.answers[r.answer()].asn != 0 }
	b.ReportAllocs()
	b.ResetTimer()
	round := 0
	for b.Loop() {
		// Each pass takes its own probes: a second pass over a batch would
		// find its trie nodes in cache. Which goes first alternates.
		other := n + len(addrs)/2
		if round%2 == 0 {
			measure(locate, n, &locateWall, &locateCPU)
			measure(bare, other, &bartWall, &bartCPU)
		} else {
			measure(bare, other, &bartWall, &bartCPU)
			measure(locate, n, &locateWall, &locateCPU)
		}
		round++
		n += batch
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	b.ReportMetric(per(locateWall), "locate-ns")
	b.ReportMetric(per(locateCPU), "locate-cpu-ns")
	b.ReportMetric(per(bartWall), "bart-ns")
	b.ReportMetric(per(bartCPU), "bart-cpu-ns")
	b.ReportMetric(float64(locateCPU)/float64(bartCPU), "locate/bart-cpu")
	if sink < 0 {
		b.Log(sink)
	}
}

// BenchmarkTableLayout compares the layout Locate uses, a bart.Fast whose
// values are 4-byte refs to shared answers, with two others holding the
// same full-size prefixes: a bart.Table of the same refs, and a bart.Table
// holding each prefix's whole answer (the layout before: 32-byte values
// with a string, no answer lookup). All three are built the same way, the
// current one last, and measured interleaved on random probes; each
// lookup reads the answer's ASN. Reports thread CPU ns per lookup.
func BenchmarkTableLayout(b *testing.B) {
	l, addrs := fullLocator(b)
	t := l.table.Load()
	type wholeAnswer struct {
		answer
		bits uint8
	}
	var whole bart.Table[wholeAnswer]
	var refs bart.Table[ref]
	var fast bart.Fast[ref]
	for p, r := range t.prefixes.All() {
		whole.Insert(p, wholeAnswer{t.answers[r.answer()], uint8(r.bits())})
	}
	for p, r := range t.prefixes.All() {
		refs.Insert(p, r)
	}
	for p, r := range t.prefixes.All() {
		fast.Insert(p, r)
	}
	runtime.GC()
	layouts := []struct {
		name   string
		lookup func(netip.Addr) bool
	}{
		{"fast-ref", func(a netip.Addr) bool { r, ok := fast.Lookup(a); return ok && t.answers[r.answer()].asn != 0 }},
		{"table-ref", func(a netip.Addr) bool { r, ok := refs.Lookup(a); return ok && t.answers[r.answer()].asn != 0 }},
		{"table-whole", func(a netip.Addr) bool { v, ok := whole.Lookup(a); return ok && v.asn != 0 }},
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const batch = 1024
	cpu := make([]time.Duration, len(layouts))
	var sink, n int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		// Rotate which layout goes first and give each its own probes
		// so that none finds the trie nodes another just loaded.
		for k := range layouts {
			j := (k + n/batch) % len(layouts)
			off := n + k*5*batch
			c0 := threadCPU()
			for i := 0; i < batch; i++ {
				if layouts[j].lookup(addrs[(off+i)&(len(addrs)-1)]) {
					sink++
				}
			}
			cpu[j] += threadCPU() - c0
		}
		n += batch
	}
	for i, lay := range layouts {
		b.ReportMetric(float64(cpu[i].Nanoseconds())/float64(n), lay.name+"-cpu-ns")
	}
	if sink < 0 {
		b.Log(sink)
	}
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// processCPU is the user+system CPU time of the process, GC included.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
