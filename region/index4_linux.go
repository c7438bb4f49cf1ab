package region

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePageBytes is the size of a transparent huge page with 4 KiB base
// pages (x86-64, most arm64 kernels); with larger base pages the advice
// covers less of the index, which stays correct.
const hugePageBytes = 2 << 20

// adviseHugePages asks the kernel to back the 2 MiB-aligned interior of
// the n bytes at p with transparent huge pages, before they are first
// written. Random lookups in a 64 MiB index otherwise miss the TLB almost
// every time (16384 pages of 4 KiB); with 32 huge pages the page walk goes
// away (BenchmarkIndex4HugePages). Go does not ask for huge pages for its
// heap, and with the common THP mode "madvise" the kernel gives them only
// to memory that asks. A kernel without THP refuses the advice; the index
// then works as well, a little slower, so the error is dropped.
func adviseHugePages(p unsafe.Pointer, n uintptr) {
	lo := (uintptr(p) + hugePageBytes - 1) &^ (hugePageBytes - 1)
	hi := (uintptr(p) + n) &^ (hugePageBytes - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, lo-uintptr(p))), hi-lo), unix.MADV_HUGEPAGE)
}
