package region

import (
	"net/netip"
	"unsafe"

	"github.com/gaissmai/bart"
)

// index4 is a direct index of a table's IPv4 prefixes by /24 block: entry
// i answers for the addresses i<<8 to i<<8|255. It is the DIR-24-8 idea of
// Gupta, Lin and McKeown ("Routing Lookups in Hardware at Memory Access
// Speeds", 1998) used as a flat cache of bart's answers, not as a trie:
// bart stays the one longest-prefix match and the source of truth, and the
// index is derived from it once the table is complete. An entry holds
//
//   - the ref of the most specific prefix of length <= 24 that covers the
//     block, when no longer prefix lies inside the block;
//   - ref4Deeper when a prefix longer than /24 lies inside the block: the
//     answer depends on the last byte, so Locate asks bart;
//   - ref4None when no prefix covers any address of the block.
//
// Random lookups in a full-size table cost bart three or four dependent
// cache misses; the index answers most of them with one. It takes 64 MiB
// (2^24 four-byte entries) whatever the table's size, without pointers so
// the garbage collector never scans it, on transparent huge pages where
// the kernel grants them (adviseHugePages). So only a table of at least
// index4MinPrefixes IPv4 prefixes has one. A reload builds the new table
// beside the one in use, so for the time of the build and until the
// garbage collector frees the old table both indexes are alive: 128 MiB.
//
// An index4 is immutable once built and safe for concurrent reads.
type index4 [1 << 24]ref

// Sentinels of index4. The low byte of a real ref is a prefix length, at
// most 32 in IPv4, so neither can be the ref of a prefix.
const (
	ref4None   ref = 0xff // no prefix covers the block
	ref4Deeper ref = 0xfe // a prefix longer than /24 lies inside the block
)

// index4MinPrefixes is the number of IPv4 prefixes from which a table
// builds an index4. The index is faster at any size, but below this the
// trie mostly stays in the CPU caches and Locate without the index takes
// half the 100 ns goal or less (BenchmarkIndex4Threshold at load ~1:
// 40-48 ns for 1.3k-22k prefixes, 26-32 ns with the index; 68 ns against
// 41 ns at 86k), which does not pay for 64 MiB. Config prefixes alone
// (tests, the demo, an ISP that lists only its own networks) stay far
// below it; any full database (300k+) is far above. Tests change it to
// force or to bypass the index.
var index4MinPrefixes = 16384

// newIndex4 builds the index of the IPv4 prefixes of pfx.
func newIndex4(pfx *bart.Fast[ref]) *index4 {
	x := new(index4)
	// Before the first write: the kernel picks the page size at the fault.
	adviseHugePages(unsafe.Pointer(x), unsafe.Sizeof(*x))
	x.fill(pfx)
	return x
}

// fill writes every entry of x from the IPv4 prefixes of pfx in one pass
// over them in CIDR order (by address, a supernet before its subnets): a
// more specific prefix overwrites its part of a supernet's blocks, and the
// blocks between prefixes are written as they are passed. That is about
// 2^24 stores and no lookup per block (2^24 bart lookups would take a
// second).
func (x *index4) fill(pfx *bart.Fast[ref]) {
	next := uint32(0) // the first block not written yet
	for p, r := range pfx.AllSorted4() {
		a := p.Addr().As4()
		lo := uint32(a[0])<<16 | uint32(a[1])<<8 | uint32(a[2])
		if lo > next {
			fillRefs(x[next:lo], ref4None)
		}
		if p.Bits() > 24 {
			// No shorter prefix comes later inside this block: a prefix
			// that covered it would start at or before it.
			x[lo] = ref4Deeper
			next = max(next, lo+1)
			continue
		}
		hi := lo + 1<<(24-p.Bits())
		fillRefs(x[lo:hi], r)
		next = max(next, hi)
	}
	fillRefs(x[next:], ref4None)
}

// fillRefs sets every element of s to r, doubling with copy (a memmove)
// for the long runs of a short prefix.
func fillRefs(s []ref, r ref) {
	if len(s) == 0 {
		return
	}
	s[0] = r
	for n := 1; n < len(s); n *= 2 {
		copy(s[n:], s[:n])
	}
}

// lookup4 returns the ref of the most specific prefix that holds the IPv4
// address ip (u is ip as a number) and whether there is one: from the
// index when the table has one and the block has no prefix longer than
// /24, else from bart.
func (t *table) lookup4(ip netip.Addr, u uint32) (ref, bool) {
	if x := t.idx4; x != nil {
		switch r := x[u>>8]; r {
		case ref4None:
			return 0, false
		case ref4Deeper:
		default:
			return r, true
		}
	}
	return t.prefixes.Lookup(ip)
}
