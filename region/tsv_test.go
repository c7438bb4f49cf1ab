package region

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"go4.org/netipx"
)

func TestParseTSVLine(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		line     string
		want     dbRange
		wantDesc string
		wantErr  string // substring; "" means success
	}{
		{line: "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET", want: dbRange{From: a("1.0.0.0"), To: a("1.0.0.255"), ASN: 13335}, wantDesc: "CLOUDFLARENET"},
		{line: "1.0.1.0\t1.0.3.255\t0\tNone\tNot routed", want: dbRange{From: a("1.0.1.0"), To: a("1.0.3.255")}, wantDesc: "Not routed"},
		{line: "2001:200::\t2001:200:5ff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE-BB WIDE Project", want: dbRange{From: a("2001:200::"), To: a("2001:200:5ff:ffff:ffff:ffff:ffff:ffff"), ASN: 2500}, wantDesc: "WIDE-BB WIDE Project"},
		{line: "16777216\t16777471\t13335\tUS\tCLOUDFLARENET", want: dbRange{From: a("1.0.0.0"), To: a("1.0.0.255"), ASN: 13335}, wantDesc: "CLOUDFLARENET"},
		{line: "1.0.0.0\t1.0.0.255\tAS13335\tUS\tCLOUDFLARENET\r", want: dbRange{From: a("1.0.0.0"), To: a("1.0.0.255"), ASN: 13335}, wantDesc: "CLOUDFLARENET"},
		{line: "1.0.0.0\t1.0.0.255\t13335", want: dbRange{From: a("1.0.0.0"), To: a("1.0.0.255"), ASN: 13335}},
		{line: "1.0.0.0\t1.0.0.255\t13335\tUS\tdesc\twith tab", want: dbRange{From: a("1.0.0.0"), To: a("1.0.0.255"), ASN: 13335}, wantDesc: "desc\twith tab"},
		{line: "::ffff:1.0.0.0\t::ffff:1.0.0.255\t13335\tUS\tX", want: dbRange{From: a("1.0.0.0"), To: a("1.0.0.255"), ASN: 13335}, wantDesc: "X"},
		{line: "", want: dbRange{}},
		{line: "   \r", want: dbRange{}},
		{line: "# comment\twith\ttabs", want: dbRange{}},
		{line: "1.0.0.0 1.0.0.255 13335 US X", wantErr: "got 1 field"},
		{line: "1.0.0.0\t1.0.0.255", wantErr: "got 2 field"},
		{line: "1.0.0.x\t1.0.0.255\t1\tUS\tX", wantErr: `range_start: "1.0.0.x" is not an IP address`},
		{line: "1.0.0.0\t\t1\tUS\tX", wantErr: "range_end: empty address"},
		{line: "4294967296\t1.0.0.255\t1\tUS\tX", wantErr: "32-bit integer"},
		{line: "1.0.0.0\t::1\t1\tUS\tX", wantErr: "mixes IPv4 and IPv6"},
		{line: "1.0.0.255\t1.0.0.0\t1\tUS\tX", wantErr: "range_end 1.0.0.0 is before range_start 1.0.0.255"},
		{line: "1.0.0.0\t1.0.0.255\tx13\tUS\tX", wantErr: `AS_number "x13" is not a number`},
		{line: "1.0.0.0\t1.0.0.255\t-1\tUS\tX", wantErr: "is not a number"},
		{line: "1.0.0.0\t1.0.0.255\t4294967296\tUS\tX", wantErr: "out of range"},
		{line: "1.0.0.0\t1.0.0.255\tAS\tUS\tX", wantErr: "is not a number"},
		{line: "fe80::1%eth0\tfe80::2\t1\tUS\tX", wantErr: "zones are not allowed"},
	}
	for _, tt := range tests {
		got, desc, err := parseTSVLine([]byte(tt.line))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseTSVLine(%q) error = %v, want containing %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseTSVLine(%q) error = %v", tt.line, err)
			continue
		}
		if got != tt.want || string(desc) != tt.wantDesc {
			t.Errorf("parseTSVLine(%q) = %+v, %q; want %+v, %q", tt.line, got, desc, tt.want, tt.wantDesc)
		}
	}
}

func collectTSV(t *testing.T, data []byte) ([]dbRange, []string, error) {
	t.Helper()
	var got []dbRange
	var names []string
	err := readTSV(bytes.NewReader(data), "test.tsv", func(r dbRange, desc []byte) {
		got = append(got, r)
		names = append(names, string(desc))
	})
	return got, names, err
}

func TestReadTSV(t *testing.T) {
	const good = "# iptoasn\n1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n\n2001:200::\t2001:200:5ff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE\n"
	t.Run("plain", func(t *testing.T) {
		got, names, err := collectTSV(t, []byte(good))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || names[0] != "CLOUDFLARENET" || got[1].ASN != 2500 || names[1] != "WIDE" {
			t.Errorf("readTSV = %+v %q, want the Cloudflare and WIDE ranges", got, names)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(good))
		zw.Close()
		got, _, err := collectTSV(t, buf.Bytes())
		if err != nil || len(got) != 2 {
			t.Errorf("readTSV(gzip) = %d ranges, %v; want 2, nil", len(got), err)
		}
	})
	t.Run("truncated gzip", func(t *testing.T) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(strings.Repeat(good, 100)))
		zw.Close()
		_, _, err := collectTSV(t, buf.Bytes()[:buf.Len()/2])
		if err == nil || !strings.Contains(err.Error(), "test.tsv: reading after line") {
			t.Errorf("readTSV(truncated gzip) error = %v, want a read error naming the file", err)
		}
		// Cut inside a long stream, the last line read is a line cut
		// short: it is not reported as malformed.
		buf.Reset()
		zw = gzip.NewWriter(&buf)
		for i := range 20000 {
			fmt.Fprintf(zw, "%d\t%d\t%d\tZZ\tAS%d example networks\n", 1<<24+i*256, 1<<24+i*256+255, 1+i%7000, i)
		}
		zw.Close()
		var ranges int
		err = readTSV(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), "test.tsv", func(dbRange, []byte) { ranges++ })
		var pe *ParseError
		if err == nil || errors.As(err, &pe) || ranges == 0 {
			t.Errorf("readTSV(gzip cut mid-stream) = %d ranges, error %v; want some ranges and only the read error", ranges, err)
		}
	})
	t.Run("errors name file and line", func(t *testing.T) {
		data := "1.0.0.0\t1.0.0.255\t13335\tUS\tX\n1.0.0.0\t1.0.0.255\n1.0.0.9\t1.0.0.1\t1\tUS\tX\n"
		_, _, err := collectTSV(t, []byte(data))
		for _, want := range []string{"test.tsv:2: want tab-separated", "test.tsv:3: range_end 1.0.0.1 is before range_start 1.0.0.9"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error = %v, want containing %q", err, want)
			}
		}
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 2 {
			t.Errorf("errors.As(*ParseError) = %+v, want line 2", pe)
		}
	})
	t.Run("gives up after many errors", func(t *testing.T) {
		_, _, err := collectTSV(t, []byte(strings.Repeat("garbage\n", 1000)))
		if err == nil || !strings.Contains(err.Error(), "giving up after 10 malformed lines") || strings.Contains(err.Error(), "test.tsv:11:") {
			t.Errorf("error = %v, want 10 line errors then giving up", err)
		}
	})
	t.Run("line too long", func(t *testing.T) {
		data := "1.0.0.0\t1.0.0.255\t1\tUS\tX\n1.0.1.0\t1.0.1.255\t1\tUS\t" + strings.Repeat("x", maxLineBytes) + "\n"
		_, _, err := collectTSV(t, []byte(data))
		if err == nil || !strings.Contains(err.Error(), "test.tsv:2: line longer than") {
			t.Errorf("error = %v, want test.tsv:2: line longer than ...", err)
		}
	})
	for _, empty := range []string{"", "# only a comment\n", "1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n"} {
		_, _, err := collectTSV(t, []byte(empty))
		if !errors.Is(err, ErrNoRanges) {
			t.Errorf("readTSV(%q) error = %v, want ErrNoRanges", empty, err)
		}
	}
	t.Run("binary", func(t *testing.T) {
		_, _, err := collectTSV(t, []byte("\x00\x01\x02\xff\xfe\n\x89PNG\r\n"))
		if err == nil || !strings.Contains(err.Error(), "test.tsv:1:") {
			t.Errorf("error = %v, want test.tsv:1: ...", err)
		}
	})
}

func TestRangePrefixes(t *testing.T) {
	tests := []struct {
		from, to string
		want     string
	}{
		{"1.0.0.0", "1.0.0.255", "1.0.0.0/24"},
		{"1.0.0.0", "1.0.3.255", "1.0.0.0/22"},
		{"1.0.1.0", "1.0.3.255", "1.0.1.0/24 1.0.2.0/23"},
		{"10.0.0.1", "10.0.0.6", "10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"5.5.5.5", "5.5.5.5", "5.5.5.5/32"},
		{"2001:200::", "2001:200:5ff:ffff:ffff:ffff:ffff:ffff", "2001:200::/38 2001:200:400::/39"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range rangePrefixes(nil, netip.MustParseAddr(tt.from), netip.MustParseAddr(tt.to)) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("rangePrefixes(%s, %s) = %v, want %s", tt.from, tt.to, got, tt.want)
		}
	}
}

// TestRangePrefixesCover checks on random ranges that the prefixes are
// canonical and tile the range exactly: contiguous, in order, no overlap.
func TestRangePrefixesCover(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		var from, to netip.Addr
		if i%2 == 0 {
			x, y := rng.Uint32(), rng.Uint32()
			if x > y {
				x, y = y, x
			}
			from, to = u32Addr(x), u32Addr(y)
		} else {
			var a, b [16]byte
			hi := rng.Uint64()
			for j := 0; j < 8; j++ {
				a[j], b[j] = byte(hi>>(56-8*j)), byte(hi>>(56-8*j))
			}
			x, y := rng.Uint64(), rng.Uint64()
			if x > y {
				x, y = y, x
			}
			for j := 0; j < 8; j++ {
				a[8+j], b[8+j] = byte(x>>(56-8*j)), byte(y>>(56-8*j))
			}
			from, to = netip.AddrFrom16(a), netip.AddrFrom16(b)
		}
		ps := rangePrefixes(nil, from, to)
		next := from
		for k, p := range ps {
			if p != p.Masked() || p.Addr() != next {
				t.Fatalf("range %s-%s: prefix %d = %s, want one starting at %s", from, to, k, p, next)
			}
			last := netipx.PrefixLastIP(p)
			if to.Less(last) {
				t.Fatalf("range %s-%s: prefix %s ends after the range", from, to, p)
			}
			next = last.Next()
		}
		if len(ps) == 0 || netipx.PrefixLastIP(ps[len(ps)-1]) != to {
			t.Fatalf("range %s-%s: prefixes %v do not end at %s", from, to, ps, to)
		}
	}
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func TestParseIPv4MatchesNetip(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"1..3.4", ".1.2.3", "1.2.3.", "1.2.3.4 ", "a.b.c.d", "", "1.2.3.0004", "10.0.0.00", "::1", "1.2.3.4%x"} {
		checkParseIPv4(t, []byte(s))
	}
}

func checkParseIPv4(t *testing.T, b []byte) {
	t.Helper()
	got, ok := parseIPv4(b)
	want, err := netip.ParseAddr(string(b))
	wantOK := err == nil && want.Is4()
	if ok != wantOK || (ok && got != want) {
		t.Errorf("parseIPv4(%q) = %v, %v; netip says %v, %v", b, got, ok, want, wantOK)
	}
}

// FuzzParseIPv4 checks the allocation-free IPv4 parser against netip.
func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "01.2.3.4", "255.255.255.256", "1.2.3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParseIPv4)
}
