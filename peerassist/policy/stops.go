package policy

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// The EBU stops of a tick over 1M sessions: choosing the k fastest of up
// to 1M candidates, finding the sessions a held stop names, and writing a
// reason for each stop, each in time linear in the sessions and without
// an allocation per session.

// rankedStop is a stop candidate: a session and a key that orders as its
// download rate (rateKey).
type rankedStop struct {
	key uint64
	idx int32 // index of the session in the observation
}

// rateKey maps a rate to an unsigned integer in the same order (the IEEE
// 754 bits, with negative numbers flipped), +0 and -0 to the same key.
// Rates here are sums of non-negative counters times a positive factor,
// so never NaN.
func rateKey(v float64) uint64 {
	if v == 0 {
		return 1 << 63
	}
	b := math.Float64bits(v)
	if b>>63 != 0 {
		return ^b
	}
	return b | 1<<63
}

// selectTop reorders c so that its first k are the candidates with the
// highest rates, ties broken by the lower session ID (then the lower
// index), the same choice as SelectStops, and returns them (in no
// particular order). It is a radix select on the keys, 16 bits at a time
// from the top: each round counts the candidates still in play by their
// next 16 bits, takes every one above the bucket where the k-th falls,
// and keeps playing only that bucket; candidates left after 64 bits have
// equal rates and are sorted by ID. O(n), where sorting all n candidates
// as SelectStops does is O(n log n) with a closure call per comparison.
// hist is scratch of 1<<16 counters.
func selectTop(c []rankedStop, k int, idOf func(int32) string, hist []int32) []rankedStop {
	k = min(max(k, 0), len(c))
	if k == 0 || k == len(c) {
		return c[:k]
	}
	sel, hi := 0, len(c) // c[:sel] are chosen, c[sel:hi] still in play
	need := k            // how many of those in play to choose
	for shift := 48; shift >= 0 && need > 0; shift -= 16 {
		play := c[sel:hi]
		clear(hist)
		for _, x := range play {
			hist[(x.key>>shift)&0xffff]++
		}
		above, d := 0, 0xffff
		for ; int(hist[d]) < need-above; d-- {
			above += int(hist[d])
		}
		// Three-way partition of play: digits above d, then d, then below.
		dd := uint64(d)
		lt, i, gt := 0, 0, len(play)
		for i < gt {
			switch v := (play[i].key >> shift) & 0xffff; {
			case v > dd:
				play[lt], play[i] = play[i], play[lt]
				lt++
				i++
			case v < dd:
				gt--
				play[i], play[gt] = play[gt], play[i]
			default:
				i++
			}
		}
		sel += above
		need -= above
		hi = sel + int(hist[d])
		if need == int(hist[d]) {
			sel, need = hi, 0
		}
	}
	if need > 0 {
		tie := c[sel:hi]
		// Equal rates: the lower IDs first, as SelectStops.
		sortByID(tie, idOf)
		sel += need
	}
	return c[:k]
}

func sortByID(c []rankedStop, idOf func(int32) string) {
	slices.SortFunc(c, func(a, b rankedStop) int {
		return cmp.Or(strings.Compare(idOf(a.idx), idOf(b.idx)), cmp.Compare(a.idx, b.idx))
	})
}

// heldFilter is a Bloom filter of the session IDs held stopped: it
// rejects most sessions without a lookup in the stops map (two bits per ID
// out of about 16, so about 1.5% of the others pass). The hash is xxHash:
// fast, and the same from run to run.
type heldFilter struct {
	bits []uint64
	mask uint64
}

func (f *heldFilter) reset(n int) {
	words := 1 << bits.Len(uint(max(n*16/64, 16)-1))
	if cap(f.bits) < words {
		f.bits = make([]uint64, words)
	}
	f.bits = f.bits[:words]
	clear(f.bits)
	f.mask = uint64(words*64 - 1)
}

func (f *heldFilter) add(id string) {
	h := xxhash.Sum64String(id)
	a, b := h&f.mask, (h>>32)&f.mask
	f.bits[a/64] |= 1 << (a % 64)
	f.bits[b/64] |= 1 << (b % 64)
}

func (f *heldFilter) mayHold(id string) bool {
	h := xxhash.Sum64String(id)
	a, b := h&f.mask, (h>>32)&f.mask
	return f.bits[a/64]&(1<<(a%64)) != 0 && f.bits[b/64]&(1<<(b%64)) != 0
}

// stopDetails writes the reasons of the sessions stopped in a tick. Each
// reason is a substring of a chunk of about 64 KB: a tick with 100,000
// stops makes a few hundred strings instead of 100,000, and a reason kept
// after the tick keeps at most its chunk alive. The sentence is the one
// fmt.Sprintf would make (strconv.AppendFloat with 'f' and precision 0 is
// what %.0f prints).
type stopDetails struct {
	prefix, middle string
	buf            []byte
	pending        []pendingDetail
}

type pendingDetail struct {
	session    int
	start, end int
}

const (
	detailChunkBytes = 64 << 10
	detailSuffix     = " bit/s kept)"
)

func (w *stopDetails) start(out *Decision, p *Params) {
	w.prefix = fmt.Sprintf("EBU %.3f over cap %.2f: download rate ", out.EBU, p.EBUCap)
	w.middle = fmt.Sprintf(" bit/s is among the %d highest of %d sessions drawing non-urgent edge egress; non-urgent edge fetches stop for %s (floor ",
		out.StopK, out.StopN, p.StopHold)
	w.buf, w.pending = w.buf[:0], w.pending[:0]
}

// add writes the reason of session i, stopped with the given download
// rate and floor; it lands in out.Sessions[i] at the next flush.
func (w *stopDetails) add(out *Decision, i int, rateBps, floorBps float64) {
	if len(w.buf) > detailChunkBytes {
		w.flush(out)
	}
	start := len(w.buf)
	w.buf = append(w.buf, w.prefix...)
	w.buf = strconv.AppendFloat(w.buf, rateBps, 'f', 0, 64)
	w.buf = append(w.buf, w.middle...)
	w.buf = strconv.AppendFloat(w.buf, floorBps, 'f', 0, 64)
	w.buf = append(w.buf, detailSuffix...)
	w.pending = append(w.pending, pendingDetail{session: i, start: start, end: len(w.buf)})
}

// flush turns the chunk into a string and hands out its pieces.
func (w *stopDetails) flush(out *Decision) {
	if len(w.pending) == 0 {
		return
	}
	chunk := string(w.buf)
	for _, p := range w.pending {
		out.Sessions[p.session].Reason.Detail = chunk[p.start:p.end]
	}
	w.buf, w.pending = w.buf[:0], w.pending[:0]
}
