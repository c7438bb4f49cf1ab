package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/peerassist/peer/peertest"
)

var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
}

// verifyNoLeaks fails the test if goroutines are left behind, after
// waiting up to 10 s for pion's asynchronous closes (goleak's own retries
// last about half a second, short for the race detector on a busy machine).
func verifyNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for goleak.Find(leakOptions...) != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := goleak.Find(leakOptions...); err != nil {
		t.Error(err)
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParseAddrs(t *testing.T) {
	tests := []struct {
		in   string
		want []netip.Addr
		err  string
	}{
		{"127.0.10.7", addrs("127.0.10.7"), ""},
		{"127.0.10.1-3", addrs("127.0.10.1", "127.0.10.2", "127.0.10.3"), ""},
		{"127.0.10.255-127.0.11.1", addrs("127.0.10.255", "127.0.11.0", "127.0.11.1"), ""},
		{"127.0.12.0/30", addrs("127.0.12.1", "127.0.12.2"), ""},
		{"127.0.12.4/31", addrs("127.0.12.4", "127.0.12.5"), ""},
		{" 127.0.0.2 , 127.0.0.3-3 ", addrs("127.0.0.2", "127.0.0.3"), ""},
		{"10.0.0.1", nil, "not a loopback"},
		{"127.0.0.5-2", nil, "before its start"},
		{"127.0.0.1-300", nil, "out of range"},
		{"127.0.0.0/8", nil, "larger than /20"},
		{"::1", nil, "want IPv4"},
		{"127.0.0.1-x", nil, "range end"},
		{"", nil, "no address"},
		{"127.0.0.0/33", nil, "prefix length"},
	}
	for _, tt := range tests {
		got, err := parseAddrs(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseAddrs(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseAddrs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseBps(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"10M", 10_000_000, true}, {"2.5Mbps", 2_500_000, true}, {"800k", 800_000, true}, {"1G", 1e9, true},
		{"1200", 1200, true}, {"-1M", 0, false}, {"fast", 0, false}, {"", 0, false}, {"NaN", 0, false},
	}
	for _, tt := range tests {
		got, err := parseBps(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseBps(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestUnlimitedUploadDeclares: -unlimited-upload declares 1 Gbit/s unless
// -upload says otherwise, so the edge's budget (a share of the declared
// capacity) does not constrain the swarm.
func TestUnlimitedUploadDeclares(t *testing.T) {
	tests := []struct {
		args []string
		want int64
	}{
		{nil, 10_000_000},
		{[]string{"-unlimited-upload"}, 1_000_000_000},
		{[]string{"-unlimited-upload", "-upload", "5M"}, 5_000_000},
		{[]string{"-upload", "20M"}, 20_000_000},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, &bytes.Buffer{})
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tt.args, err)
		} else if o.uploadBps != tt.want {
			t.Errorf("parseFlags(%q): upload %d bit/s, want %d", tt.args, o.uploadBps, tt.want)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-object", "/a", "-vod", "/b"}, "choose one"},
		{[]string{"-object", "bytes/1"}, "absolute path"},
		{[]string{"-addrs", "10.1.1.1"}, "not a loopback"},
		{[]string{"-poison", "7", "-n", "3"}, "peers 0..2"},
		{[]string{"-poison", "127.0.9.9", "-addrs", "127.0.0.2"}, "no peer binds"},
		{[]string{"-upload", "lots"}, "-upload"},
		{[]string{"-speed", "0"}, "-speed"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := run(context.Background(), tt.args, &bytes.Buffer{}, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2", tt.args, code)
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) stderr %q, want %q", tt.args, stderr.String(), tt.want)
		}
	}
	o, err := parseFlags([]string{"-n", "4", "-addrs", "127.0.10.1-2", "-poison", "1,127.0.10.1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// Peers bind to the addresses in turn: 0 .1, 1 .2, 2 .1, 3 .2.
	if want := []int{1, 0, 2}; !reflect.DeepEqual(o.poison, want) {
		t.Errorf("poison = %v, want %v", o.poison, want)
	}
}

func TestEdgeUnreachable(t *testing.T) {
	var stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"-edge", "http://127.0.0.1:1", "-n", "2"}, &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "connection refused") {
		t.Errorf("run = %d, stderr %q; want 1 and the dial error", code, stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to report an unreachable edge", d)
	}
}

const master = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-STREAM-INF:BANDWIDTH=437800,RESOLUTION=640x360,CODECS="avc1.4d401f,mp4a.40.2"
360p/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=184800,CODECS="avc1.4d401f,mp4a.40.2",RESOLUTION=320x180
/abs/180p/index.m3u8?tok=1
`

const media = `#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-MAP:URI="init_0.mp4"
#EXTINF:4.000000,
seg_000.m4s
#EXTINF:3.5,title
http://edge.example/other/seg_001.m4s?x=y
#EXT-X-ENDLIST
`

func TestParsePlaylists(t *testing.T) {
	vs, err := parseMaster([]byte(master))
	if err != nil {
		t.Fatal(err)
	}
	want := []variant{{"360p/index.m3u8", 437800}, {"/abs/180p/index.m3u8?tok=1", 184800}}
	if !reflect.DeepEqual(vs, want) {
		t.Errorf("parseMaster = %v, want %v", vs, want)
	}
	segs, err := parseMedia([]byte(media), "/vod/sample/360p/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	wantSegs := []segment{
		{"/vod/sample/360p/init_0.mp4", 0},
		{"/vod/sample/360p/seg_000.m4s", 4 * time.Second},
		{"/other/seg_001.m4s?x=y", 3500 * time.Millisecond},
	}
	if !reflect.DeepEqual(segs, wantSegs) {
		t.Errorf("parseMedia = %v, want %v", segs, wantSegs)
	}
	bad := []struct{ master, media, want string }{
		{"", "", "empty"},
		{"#EXTM3U\n", "#EXTM3U\n", "no"},
		{"<html>", "<html>", "not an HLS playlist"},
		{"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=x\na.m3u8\n", "#EXTM3U\n#EXTINF:abc,\na.ts\n", "want a duration"},
		{"#EXTM3U\n", "#EXTM3U\nseg.ts\n", "without EXTINF"},
		{"#EXTM3U\n", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx\n", "master playlist"},
		{"#EXTM3U\n", "#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n", "without URI"},
		{"#EXTM3U\n", "#EXTM3U\n#EXTINF:1,\nftp://x/y\n", "scheme"},
	}
	for _, b := range bad {
		if _, err := parseMaster([]byte(b.master)); err == nil {
			t.Errorf("parseMaster(%q) succeeded", b.master)
		}
		if _, err := parseMedia([]byte(b.media), "/p/i.m3u8"); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("parseMedia(%q) = %v, want error with %q", b.media, err, b.want)
		}
	}
}

func FuzzParseAddrs(f *testing.F) {
	for _, s := range []string{"127.0.10.1-5", "127.0.0.0/30,127.0.0.9", "127.0.0.1-127.0.1.1", "1.2.3.4/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseAddrs(s)
		if err == nil && (len(got) == 0 || len(got) > maxAddrs) {
			t.Fatalf("parseAddrs(%q) = %d addresses without error", s, len(got))
		}
		for _, a := range got {
			if !a.IsLoopback() {
				t.Fatalf("parseAddrs(%q) returned %v", s, a)
			}
		}
	})
}

func FuzzParsePlaylist(f *testing.F) {
	f.Add([]byte(master))
	f.Add([]byte(media))
	f.Fuzz(func(t *testing.T, b []byte) {
		if vs, err := parseMaster(b); err == nil && len(vs) == 0 {
			t.Fatal("no variants without error")
		}
		segs, err := parseMedia(b, "/vod/x/index.m3u8")
		if err == nil && len(segs) == 0 {
			t.Fatal("no segments without error")
		}
		for _, s := range segs {
			if !strings.HasPrefix(s.Path, "/") || s.Duration < 0 {
				t.Fatalf("segment %+v", s)
			}
		}
	})
}

// TestSwarmCommand runs the command as a user would against a real edge
// (in-process): two ISPs, a poisoner, JSON output.
func TestSwarmCommand(t *testing.T) {
	t.Cleanup(func() { verifyNoLeaks(t) }) // after the edge's cleanups
	{
		e := peertest.Start(t, 64<<10, nil)
		size := "2097152"
		if raceEnabled {
			size = "524288"
		}
		args := []string{"-edge", e.URL, "-n", "6", "-addrs", "127.0.10.1-3,127.0.11.1-3", "-object", "/bytes/" + size,
			"-poison", "127.0.10.2", "-unlimited-upload", "-deadline", "40s", "-json"}
		var out, stderr bytes.Buffer
		code := run(context.Background(), args, &out, &stderr)
		if code != 0 {
			t.Fatalf("run = %d, stderr:\n%s\nout:\n%s", code, stderr.String(), out.String())
		}
		var r report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("JSON output: %v\n%s", err, out.String())
		}
		if !r.AllDone || !r.Consistent || len(r.Peers) != 6 {
			t.Errorf("all_done %v consistent %v peers %d", r.AllDone, r.Consistent, len(r.Peers))
		}
		if r.Totals.CrossISPBytes != 0 || r.Totals.CrossRegionBytes != 0 {
			t.Errorf("cross-ISP %d, cross-region %d bytes; the site forbids them", r.Totals.CrossISPBytes, r.Totals.CrossRegionBytes)
		}
		if len(r.Groups) != 2 || r.Groups[0].Locality != "r1/isp-a" || r.Groups[1].Locality != "r1/isp-b" {
			t.Errorf("groups %+v, want r1/isp-a and r1/isp-b", r.Groups)
		}
		if len(r.Poisoners) != 1 || r.Poisoners[0].UsedBytes != 0 || r.Poisoners[0].Index != 1 {
			t.Errorf("poisoners %+v, want #1 with no bytes used", r.Poisoners)
		}
		if p := r.Poisoners[0]; p.UploadedBytes > 0 && p.DetectedBy == 0 {
			t.Errorf("the poisoner uploaded %d bytes and nobody detected it", p.UploadedBytes)
		}
		if r.Totals.EdgeBytes+r.Totals.PeersBytes != 6*r.ObjectBytes {
			t.Errorf("edge %d + peers %d bytes, want 6 x %d", r.Totals.EdgeBytes, r.Totals.PeersBytes, r.ObjectBytes)
		}
		// The text form says the same.
		out.Reset()
		if err := r.writeText(&out); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"offload ratio", "across ISPs: 0 B", "poisoner #1", "r1/isp-a", "RESULT: every peer got every byte"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("text report lacks %q:\n%s", want, out.String())
			}
		}
	}
}

// TestSwarmCommandVOD plays the demo origin's sample stream at 8x speed.
func TestSwarmCommandVOD(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a stream")
	}
	t.Cleanup(func() { verifyNoLeaks(t) }) // after the edge's cleanups
	{
		e := peertest.Start(t, 256<<10, nil)
		args := []string{"-edge", e.URL, "-n", "3", "-addrs", "127.0.10.1-3", "-vod", "/vod/sample/master.m3u8",
			"-rendition", "1", "-speed", "8", "-stagger", "1s", "-unlimited-upload", "-json"}
		var out, stderr bytes.Buffer
		if code := run(context.Background(), args, &out, &stderr); code != 0 {
			t.Fatalf("run = %d, stderr:\n%s\nout:\n%s", code, stderr.String(), out.String())
		}
		var r report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if !r.AllDone || r.Mode != "vod" || r.ObjectBytes == 0 {
			t.Fatalf("report %+v", r.Totals)
		}
		for _, p := range r.Peers {
			if p.Segments < 5 || p.FromEdgeBytes+p.FromPeersBytes != r.ObjectBytes {
				t.Errorf("peer %d: %d segments, %d+%d bytes of %d", p.Index, p.Segments, p.FromEdgeBytes, p.FromPeersBytes, r.ObjectBytes)
			}
		}
		if r.Totals.PeersBytes == 0 {
			t.Error("later viewers took nothing from earlier ones")
		}
		t.Logf("offload %.0f%%, edge %.2f copies, late %d", 100*r.Totals.OffloadRatio, r.Totals.EdgeCopies, r.Totals.LateSegments)
	}
}
