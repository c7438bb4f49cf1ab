package region

import (
	"bufio"
	"encoding/binary"
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
	"unsafe"

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
	return writeTSV(tb, path, oddTenths, benchRangesV4, benchRangesV6)
}

// writeTSV is writeFullTSV with rangesV4 IPv4 and rangesV6 IPv6 lines.
func writeTSV(tb testing.TB, path string, oddTenths, rangesV4, rangesV6 int) int {
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
	for n < rangesV4 {
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
	for i := 0; i < rangesV6; i++ {
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
// mid-block) and a fragmented one (80%), by New and by a Reload while the
// previous table is in use. Reports wall and CPU time, the heap the
// finished table retains and the process's peak RSS growth during the load
// (over the RSS with the previous table, for a reload; run with
// -benchtime=1x for a clean peak).
func BenchmarkLoadFullTable(b *testing.B) {
	b.Run("shape=typical", func(b *testing.B) { benchmarkLoad(b, 1, false) })
	b.Run("shape=fragmented", func(b *testing.B) { benchmarkLoad(b, 8, false) })
	b.Run("reload/shape=typical", func(b *testing.B) { benchmarkLoad(b, 1, true) })
}

func benchmarkLoad(b *testing.B, oddTenths int, reload bool) {
	dir := b.TempDir()
	lines := writeFullTSV(b, filepath.Join(dir, "full.tsv"), oddTenths)
	cfg := fullConfig()
	var l *Locator
	if reload {
		var err error
		if l, err = New(cfg, Options{BaseDir: dir, Logger: quietLogger()}); err != nil {
			b.Fatal(err)
		}
	}
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
	for b.Loop() {
		loads++
		if reload {
			if err := l.Reload(cfg); err != nil {
				b.Fatal(err)
			}
			continue
		}
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
	if !reload {
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "table-heap-MB")
	}
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

// BenchmarkLocateVsBart interleaves batches of four lookups, each batch on
// its own probes from the same set, so that a noisy machine slows all
// alike:
//
//   - locate: Locate as it runs, with the table's IPv4 index;
//   - locate-bart: Locate with the index bypassed (bart answers all);
//   - bart: the bare prefix-table lookup, to the answer's ASN;
//   - index: the bare lookup Locate makes (the index for IPv4 where it
//     answers, bart otherwise), to the answer's ASN.
//
// locate/bart is the cost of Locate against the bare prefix table,
// index/bart what the index saves on the lookup itself. Besides wall time
// it reports the thread's CPU time per lookup (cpu-ns), which excludes the
// time the thread waited for a CPU on a shared machine.
//
// probes=random spreads 64k probes over the whole populated address space
// (3/4 IPv4; every lookup misses the CPU caches), random-ipv4 and
// random-ipv6 are its addresses of one family; probes=regional uses 1024
// addresses of the served region's own prefixes, the working set of an
// ISP's edge box.
func BenchmarkLocateVsBart(b *testing.B) {
	l, addrs := fullLocator(b)
	if l.table.Load().idx4 == nil {
		b.Fatal("the full-size table has no IPv4 index")
	}
	b.Run("probes=random", func(b *testing.B) { benchmarkLocateVsBart(b, l, addrs) })
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	// Power-of-two lengths for the probe index mask.
	b.Run("probes=random-ipv4", func(b *testing.B) { benchmarkLocateVsBart(b, l, v4[:1<<15]) })
	b.Run("probes=random-ipv6", func(b *testing.B) { benchmarkLocateVsBart(b, l, v6[:1<<14]) })
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
	idx := t.idx4
	defer func() { t.idx4 = idx }()
	runtime.LockOSThread() // thread CPU clocks need one thread
	defer runtime.UnlockOSThread()
	const batch = 4096
	type pass struct {
		name      string
		lookup    func(netip.Addr) bool
		wall, cpu time.Duration
	}
	passes := []*pass{
		{name: "locate", lookup: func(a netip.Addr) bool { return l.Locate(a).Known }},
		{name: "locate-bart", lookup: func(a netip.Addr) bool { return l.Locate(a).Known }},
		{name: "bart", lookup: func(a netip.Addr) bool {
			r, ok := t.prefixes.Lookup(a)
			return ok && t.answers[r.answer()].asn != 0
		}},
		{name: "index", lookup: func(a netip.Addr) bool {
			var r ref
			var ok bool
			if a.Is4() {
				b := a.As4()
				r, ok = t.lookup4(a, binary.BigEndian.Uint32(b[:]))
			} else {
				r, ok = t.prefixes.Lookup(a)
			}
			return ok && t.answers[r.answer()].asn != 0
		}},
	}
	var sink, n int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		// Each pass takes its own probes: a second pass over a batch would
		// find its trie nodes in cache. Which goes first rotates.
		for k := range passes {
			p := passes[(k+n/batch)%len(passes)]
			t.idx4 = idx
			if p.name == "locate-bart" {
				t.idx4 = nil // single-threaded: no lookup runs meanwhile
			}
			from := n + k*len(addrs)/len(passes)
			c0, w0 := threadCPU(), time.Now()
			for i := 0; i < batch; i++ {
				if p.lookup(addrs[(from+i)&(len(addrs)-1)]) {
					sink++
				}
			}
			p.wall += time.Since(w0)
			p.cpu += threadCPU() - c0
		}
		n += batch
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	for _, p := range passes {
		b.ReportMetric(per(p.wall), p.name+"-ns")
		b.ReportMetric(per(p.cpu), p.name+"-cpu-ns")
	}
	ratio := func(x, y int) float64 { return float64(passes[x].cpu) / float64(passes[y].cpu) }
	b.ReportMetric(ratio(0, 2), "locate/bart-cpu")
	b.ReportMetric(ratio(3, 2), "index/bart-cpu")
	b.ReportMetric(ratio(0, 1), "locate/locate-bart-cpu")
	if sink < 0 {
		b.Log(sink)
	}
}

// BenchmarkIndex4Threshold measures whether an IPv4 index pays for small
// tables (index4MinPrefixes): for tables of n synthetic IPv4 ranges it
// interleaves Locate with the index and with the index bypassed on random
// probes over the table's span (most inside some prefix), and reports the
// thread CPU ns of each and their ratio.
func BenchmarkIndex4Threshold(b *testing.B) {
	defer func(n int) { index4MinPrefixes = n }(index4MinPrefixes)
	index4MinPrefixes = 0
	for _, n := range []int{1000, 4000, 16_000, 64_000} {
		b.Run(fmt.Sprintf("ranges=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			writeTSV(b, filepath.Join(dir, "t.tsv"), 1, n, 0)
			cfg := fullConfig()
			cfg.Sources = []config.RegionSource{{Path: "t.tsv"}}
			l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			t := l.table.Load()
			// The TSV's ranges start at 1.0.0.0 and rise; the config
			// prefixes sit at 100.0.0.0/16 and up.
			var last netip.Prefix
			for p := range t.prefixes.AllSorted4() {
				if p.Addr().As4()[0] >= 100 {
					break
				}
				last = p
			}
			span := binary.BigEndian.Uint32(last.Addr().AsSlice()) - 1<<24
			rng := rand.New(rand.NewPCG(8, 9))
			addrs := make([]netip.Addr, 1<<14)
			for i := range addrs {
				addrs[i] = u32Addr(1<<24 + rng.Uint32N(span))
			}
			idx := t.idx4
			defer func() { t.idx4 = idx }()
			cpu := alternateLocate(b, l, addrs, func(useBart bool) {
				t.idx4 = idx
				if useBart {
					t.idx4 = nil
				}
			})
			b.ReportMetric(float64(t.prefixes.Size4()), "ipv4-prefixes")
			b.ReportMetric(cpu[0], "index-cpu-ns")
			b.ReportMetric(cpu[1], "bart-cpu-ns")
			b.ReportMetric(cpu[0]/cpu[1], "index/bart-cpu")
		})
	}
}

// BenchmarkIndex4HugePages compares the table's IPv4 index, advised onto
// transparent huge pages, with a copy on the default pages: Locate on
// random IPv4 probes, interleaved, thread CPU ns each. It reports how much
// of each index the kernel backs with huge pages (from /proc/self/smaps):
// the comparison means something only when that is 64 and 0 MiB.
func BenchmarkIndex4HugePages(b *testing.B) {
	l, addrs := fullLocator(b)
	t := l.table.Load()
	huge := t.idx4
	plain := new(index4)
	plain.fill(&t.prefixes)
	if *plain != *huge {
		b.Fatal("the index copy differs")
	}
	defer func() { t.idx4 = huge }()
	var v4 []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		}
	}
	v4 = v4[:1<<15]
	cpu := alternateLocate(b, l, v4, func(plainPages bool) {
		t.idx4 = huge
		if plainPages {
			t.idx4 = plain
		}
	})
	b.ReportMetric(cpu[0], "huge-cpu-ns")
	b.ReportMetric(cpu[1], "plain-cpu-ns")
	b.ReportMetric(cpu[0]/cpu[1], "huge/plain-cpu")
	b.ReportMetric(float64(anonHugeBytes(unsafe.Pointer(huge), unsafe.Sizeof(*huge)))/(1<<20), "huge-index-thp-MiB")
	b.ReportMetric(float64(anonHugeBytes(unsafe.Pointer(plain), unsafe.Sizeof(*plain)))/(1<<20), "plain-index-thp-MiB")
	runtime.KeepAlive(plain)
}

// alternateLocate times Locate on probes (a power-of-two count) in two
// setups, set(false) and set(true), in batches whose order alternates so
// that neither always runs first on a warm cache: thread CPU ns per
// lookup of each.
func alternateLocate(b *testing.B, l *Locator, probes []netip.Addr, set func(second bool)) (cpuNs [2]float64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const batch = 4096
	var cpu [2]time.Duration
	var sink, i int
	b.ResetTimer()
	for b.Loop() {
		for k := 0; k < 2; k++ {
			j := (k + i/batch) % 2
			set(j == 1)
			from := i + k*len(probes)/2
			c0 := threadCPU()
			for q := 0; q < batch; q++ {
				if l.Locate(probes[(from+q)&(len(probes)-1)]).Known {
					sink++
				}
			}
			cpu[j] += threadCPU() - c0
		}
		i += batch
	}
	b.StopTimer()
	if sink < 0 {
		b.Log(sink)
	}
	for j := range cpu {
		cpuNs[j] = float64(cpu[j].Nanoseconds()) / float64(i)
	}
	return cpuNs
}

// BenchmarkIndex4Build: building the IPv4 index of the full-size table
// (part of BenchmarkLoadFullTable), with a fresh allocation each time as
// a table load makes.
func BenchmarkIndex4Build(b *testing.B) {
	l, _ := fullLocator(b)
	t := l.table.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if newIndex4(&t.prefixes) == nil {
			b.Fatal("no index")
		}
	}
}

// anonHugeBytes estimates how many of the n bytes at p sit on transparent
// huge pages: the AnonHugePages of the mappings they overlap, each capped
// at the overlap (a mapping may hold more than the range).
func anonHugeBytes(p unsafe.Pointer, n uintptr) int64 {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return -1
	}
	lo, hi := uint64(uintptr(p)), uint64(uintptr(p)+n)
	var total int64
	overlap := int64(0)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			from, to, ok := strings.Cut(f[0], "-")
			a, err1 := strconv.ParseUint(from, 16, 64)
			z, err2 := strconv.ParseUint(to, 16, 64)
			overlap = 0
			if ok && err1 == nil && err2 == nil && a < hi && z > lo {
				overlap = int64(min(z, hi) - max(a, lo))
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "AnonHugePages:"); ok && overlap > 0 {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				total += min(kb<<10, overlap)
			}
		}
	}
	return total
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
