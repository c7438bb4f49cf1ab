package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxAddrs bounds how many addresses one -addrs flag may expand to.
const maxAddrs = 4096

// parseAddrs expands a comma-separated list of IPv4 addresses and ranges:
//
//	127.0.10.7                 one address
//	127.0.10.1-127.0.10.20     an inclusive range
//	127.0.10.1-20              the same, last octet only
//	127.0.12.0/29              every host of a prefix (network and
//	                           broadcast addresses excluded for /30 and wider)
//
// Every address must be a loopback address: the swarm command never sends
// traffic elsewhere.
func parseAddrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		got, err := parseAddrItem(item)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", item, err)
		}
		for _, a := range got {
			if !a.IsLoopback() {
				return nil, fmt.Errorf("address %v (in %q) is not a loopback address", a, item)
			}
		}
		if len(out)+len(got) > maxAddrs {
			return nil, fmt.Errorf("more than %d addresses", maxAddrs)
		}
		out = append(out, got...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address in %q", s)
	}
	return out, nil
}

func parseAddrItem(item string) ([]netip.Addr, error) {
	if strings.Contains(item, "/") {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, err
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("want an IPv4 prefix")
		}
		p = p.Masked()
		if p.Bits() < 32-12 {
			return nil, fmt.Errorf("prefix larger than /20 (%d addresses)", maxAddrs)
		}
		var out []netip.Addr
		first, last := p.Addr(), lastAddr(p)
		if p.Bits() <= 30 { // skip network and broadcast addresses
			first, last = first.Next(), last.Prev()
		}
		for a := first; ; a = a.Next() {
			out = append(out, a)
			if a == last {
				break
			}
		}
		return out, nil
	}
	lo, hi, isRange := strings.Cut(item, "-")
	start, err := netip.ParseAddr(lo)
	if err != nil {
		return nil, err
	}
	if !start.Is4() {
		return nil, fmt.Errorf("want IPv4")
	}
	if !isRange {
		return []netip.Addr{start}, nil
	}
	var end netip.Addr
	if n, err := strconv.Atoi(hi); err == nil {
		if n < 0 || n > 255 {
			return nil, fmt.Errorf("last octet %d out of range", n)
		}
		b := start.As4()
		b[3] = byte(n)
		end = netip.AddrFrom4(b)
	} else if end, err = netip.ParseAddr(hi); err != nil || !end.Is4() {
		return nil, fmt.Errorf("range end %q: want an IPv4 address or a last octet", hi)
	}
	if end.Less(start) {
		return nil, fmt.Errorf("range end %v before its start %v", end, start)
	}
	var out []netip.Addr
	for a := start; ; a = a.Next() {
		out = append(out, a)
		if len(out) > maxAddrs {
			return nil, fmt.Errorf("more than %d addresses", maxAddrs)
		}
		if a == end {
			break
		}
	}
	return out, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// parseBps parses a rate in bits per second with an optional k, M or G
// suffix (powers of 1000) and an optional "bps": "10M", "2.5Mbps", "800k".
func parseBps(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "bps")
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:n-1]
		case 'M':
			mult, t = 1e6, t[:n-1]
		case 'G':
			mult, t = 1e9, t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*mult > 1e15 || v != v {
		return 0, fmt.Errorf("rate %q: want bits/s such as 800k, 10M or 1.5G", s)
	}
	return int64(v * mult), nil
}
