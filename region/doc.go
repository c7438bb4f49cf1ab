// Package region answers "where is this IP?" for the rest of the edge: which
// region (POP) and ISP an address belongs to, and its access-network subnet.
// The coordinator only lets peers of one region meet and prefers peers of the
// same ISP and subnet (see Compare).
//
// # Sources
//
// A Locator builds one longest-prefix-match table (github.com/gaissmai/bart)
// from the region section of the edge config. Three kinds of source combine:
//
//  1. Config prefixes: regions -> ISPs -> prefixes, what an ISP knows about
//     its own network.
//  2. iptoasn.com TSV files (ip2asn-v4.tsv, ip2asn-v6.tsv,
//     ip2asn-combined.tsv, ip2asn-v4-u32.tsv; plain or gzip), one range per
//     line: range_start, range_end, AS_number, country_code, AS_description
//     separated by tabs. Each range is split into the CIDR prefixes that
//     cover it exactly. AS_number 0 ("Not routed") lines are skipped: they
//     say nothing. Blank lines and lines starting with '#' are ignored;
//     "AS13335" is accepted for 13335.
//  3. MaxMind DB files in the GeoLite2-ASN format (.mmdb with the fields
//     autonomous_system_number and autonomous_system_organization), read
//     with github.com/oschwald/maxminddb-golang/v2.
//
// A TSV line:
//
//	1.0.0.0	1.0.0.255	13335	US	CLOUDFLARENET
//
// Databases only say which AS an address belongs to. The asns list of a
// region assigns an AS's ranges to that region, optionally only inside some
// prefixes:
//
//	region:
//	  name: paris                           # the region this box serves
//	  sources:
//	    - path: ip2asn-combined.tsv.gz      # relative to the config file
//	    - path: GeoLite2-ASN.mmdb           # format from the extension
//	  regions:
//	    - name: paris
//	      isps:                             # config prefixes
//	        - name: Orange
//	          asn: 3215
//	          prefixes: ["90.0.0.0/16", "2a01:c000::/19"]
//	      asns:
//	        - asn: 12322                    # all of Free's ranges
//	        - asn: 3215                     # Orange, only inside these
//	          within: ["90.0.0.0/13"]
//	    - name: lyon
//	      asns:
//	        - {asn: 3215, within: ["90.8.0.0/13"]}
//
// # Precedence
//
// Sources are layers, in this order: the databases of region.sources in
// list order, then the config prefixes. An address is answered by the
// highest layer that covers it; within one layer the most specific prefix
// wins (and of two equal prefixes, the later line of the file). So a later
// database replaces an earlier one wherever it has data and the earlier one
// only fills gaps, and an ISP's configured prefix overrides every database
// for all the addresses in it, including more specific database ranges. A
// prefix may be configured only once (config validation names both places).
//
// An address whose answering range is AS n is in the region of the most
// specific within prefix among n's assignments that contains the range, else
// in n's assignment without within, else in no region (known = false, its
// ASN and AS name are still reported). A within prefix smaller than the
// range of n that holds it applies to its part of that range; it never
// claims addresses that a more specific range gives to another AS. The ISP
// name is the assignment's name, else the name of the region's ISP with that
// ASN, else the database's AS name.
//
// # Localities
//
// Locate returns the region, ISP name and ASN, the matching prefix, the
// access-network subnet (the address masked to subnet_bits_v4 = 24 or
// subnet_bits_v6 = 56 unless configured, also per ISP or ASN) and whether
// the address is known. IPv4-mapped IPv6 addresses are looked up as IPv4.
// Unknown addresses form no swarm with anyone. Locate does not allocate.
// The prefix table is a bart.Fast whose values are 4 bytes: the prefix
// length and the index of an answer (ISP, ASN, region, source, subnet
// sizes) shared by every prefix that gives it, such as the ranges of one
// AS in one file. A table of 16384 IPv4 prefixes or more (any full
// database) also has a direct index of its IPv4 prefixes by /24 block,
// derived from bart after the table is built (the DIR-24-8 idea as a flat
// cache of bart's answers, not a second trie): one memory load answers an
// IPv4 lookup unless a prefix longer than /24 lies in the address's block.
// bart answers those, IPv6, and every lookup in a smaller table, whose trie
// stays mostly in the CPU caches. The index takes 64 MiB on transparent huge pages
// and about 70 ms to build. BenchmarkLocate and BenchmarkLocateVsBart
// measure Locate on a full-size table, BenchmarkIndex4Threshold and
// BenchmarkIndex4HugePages the index's choices, BenchmarkTableLayout the
// layout of bart's values against others.
//
// # Client address
//
// ClientAddr returns the socket address, or, when the TCP peer is one of
// region.trusted_proxies, the client named by the header those proxies set
// (region.client_ip_header: X-Forwarded-For by default, or Forwarded per RFC
// 7239), walking the chain from right to left and skipping trusted proxies.
// A malformed chain falls back to the socket address. ServeWhoami answers
// GET /pa/v1/whoami with the caller's Answer as JSON.
//
// # Reload
//
// The table is immutable and swapped atomically: Reload (on SIGHUP) and
// Watch (polling the source files every region.watch_interval) build a new
// table aside, so a full-size table's memory (about 110 MB with its index)
// is held twice from the build until the garbage collector frees the old
// one. A missing, unreadable or malformed file keeps the previous
// table; the reason is logged and returned. A malformed line is reported as
// file:line with what is wrong (*ParseError), a file without any routed
// range as ErrNoRanges.
//
// # Command line
//
// RunCLI implements `edge region --config FILE IP...`, printing one Answer
// per line: {"ip", "known", "region", "isp", "asn", "prefix", "subnet",
// "source", "served"}.
//
// # Metrics
//
// region.lookups{region.lookup.result=known|unknown},
// region.table.prefixes{network.type=ipv4|ipv6},
// region.reloads{region.reload.outcome=success|failure} and
// region.table.load.duration (seconds), through the global OpenTelemetry
// meter; a span "region.reload" per load.
package region
