package signal

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/bits"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) ID {
	t.Helper()
	id, err := ParseHexID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestIDMatchesJavaScript checks our binary-string encoding byte for byte
// against what JSON.stringify produced in node (testdata/ids.golden).
func TestIDMatchesJavaScript(t *testing.T) {
	f, err := os.ReadFile("testdata/ids.golden")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(f)), "\n")
	for i, line := range lines {
		var id ID
		for j := range id {
			id[j] = byte(i*20 + j)
		}
		if got := string(id.AppendJSON(nil)); got != line {
			t.Errorf("ID(%d..).AppendJSON = %s, want %s", i*20, got, line)
		}
		var back ID
		if err := back.UnmarshalJSON([]byte(line)); err != nil || back != id {
			t.Errorf("UnmarshalJSON(%s) = %x, %v; want %x", line, back, err, id)
		}
	}
	if len(lines) != 13 {
		t.Fatalf("golden has %d lines, want 13", len(lines))
	}
}

func TestIDFromString(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"-WW0208-abcdefghijkl", true},
		{"-WW0208-abcdefghijk\u00ff", true},
		{"-WW0208-abcdefghijk", false},
		{"-WW0208-abcdefghijklm", false},
		{"-WW0208-abcdefghijk\u0100", false},
	}
	for _, tt := range tests {
		_, err := IDFromString(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("IDFromString(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func goldenMessages(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/client_messages.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, msg, _ := strings.Cut(sc.Text(), " ")
		out[name] = []byte(msg)
	}
	return out
}

// TestParseClientMessages parses messages exactly as bittorrent-tracker's
// client serializes them (generated with node, see testdata).
func TestParseClientMessages(t *testing.T) {
	msgs := goldenMessages(t)
	ih := mustHex(t, "00ff7f80c3a9225c0a0d0901e2a0ff00ff00ff10")
	pid, _ := IDFromString("-WW0208-abcdef\"\\\u00e9\u00ff\u0001x")
	oid := mustHex(t, "0102030405060708090a0b0c0d0e0f1011121314")
	to := mustHex(t, "ffeeddccbbaa99887766554433221100ffeeddcc")

	var r Request
	if err := ParseRequest(msgs["announce_started"], &r); err != nil {
		t.Fatalf("announce_started: %v", err)
	}
	if r.Action != ActionAnnounce || r.InfoHash != ih || r.PeerID != pid || r.Event != EventStarted || r.NumWant != 5 ||
		r.Uploaded != 0 || r.Left != -1 || len(r.Offers) != 1 || r.Offers[0].ID != oid || r.Answer != nil {
		t.Errorf("announce_started = %+v", r)
	}
	var sdp map[string]string
	if err := json.Unmarshal(r.Offers[0].SDP, &sdp); err != nil || sdp["type"] != "offer" {
		t.Errorf("offer SDP = %s (%v)", r.Offers[0].SDP, err)
	}

	if err := ParseRequest(msgs["answer"], &r); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if r.ToPeerID != to || r.OfferID != oid || !bytes.HasPrefix(r.Answer, []byte(`{"type":"answer"`)) || r.Event != EventUpdate {
		t.Errorf("answer = %+v", r)
	}

	if err := ParseRequest(msgs["stopped"], &r); err != nil {
		t.Fatalf("stopped: %v", err)
	}
	if r.Event != EventStopped || r.Left != -1 || r.Downloaded != 20 {
		t.Errorf("stopped = %+v", r)
	}

	if err := ParseRequest(msgs["scrape_one"], &r); err != nil {
		t.Fatalf("scrape_one: %v", err)
	}
	if r.Action != ActionScrape || !reflect.DeepEqual(r.InfoHashes, []ID{ih}) {
		t.Errorf("scrape_one = %+v", r)
	}
	if err := ParseRequest(msgs["scrape_many"], &r); err != nil {
		t.Fatalf("scrape_many: %v", err)
	}
	if !reflect.DeepEqual(r.InfoHashes, []ID{ih, to}) {
		t.Errorf("scrape_many hashes = %x", r.InfoHashes)
	}
}

const (
	h20 = `"aaaaaaaaaaaaaaaaaaaa"`
	p20 = `"bbbbbbbbbbbbbbbbbbbb"`
)

func TestParseRequestErrors(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		field string // want Error.Field
		text  string // want substring of the error text
	}{
		{"not json", `hello`, "", "not a JSON object"},
		{"truncated", `{"action":"announce"`, "", "truncated"},
		{"array", `[1,2]`, "", "not a JSON object"},
		{"trailing", `{"action":"scrape","info_hash":` + h20 + `} x`, "", "trailing"},
		{"no action", `{"info_hash":` + h20 + `}`, "action", `"undefined"`},
		{"unknown action", `{"action":"connect"}`, "action", `"connect"`},
		{"action type", `{"action":1}`, "action", "want a string"},
		{"short info_hash", `{"action":"announce","info_hash":"abc","peer_id":` + p20 + `}`, "info_hash", "20-character"},
		{"long info_hash", `{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaaa","peer_id":` + p20 + `}`, "info_hash", "20-character"},
		{"wide info_hash", "{\"action\":\"announce\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaa\u0100\",\"peer_id\":" + p20 + "}", "info_hash", "20-character"},
		{"escaped wide", `{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaa\u0100","peer_id":` + p20 + `}`, "info_hash", "20-character"},
		{"info_hash number", `{"action":"announce","info_hash":12,"peer_id":` + p20 + `}`, "info_hash", "20-character"},
		{"missing info_hash", `{"action":"announce","peer_id":` + p20 + `}`, "info_hash", ""},
		{"array info_hash announce", `{"action":"announce","info_hash":[` + h20 + `],"peer_id":` + p20 + `}`, "info_hash", ""},
		{"missing peer_id", `{"action":"announce","info_hash":` + h20 + `}`, "peer_id", ""},
		{"bad event", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"event":"exploded"}`, "event", "exploded"},
		{"event type", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"event":3}`, "event", "want a string"},
		{"numwant type", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"numwant":"5"}`, "numwant", "number"},
		{"negative left", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"left":-1}`, "left", "non-negative"},
		{"offers type", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"offers":{}}`, "offers", "array"},
		{"offer no id", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"offers":[{"offer":{}}]}`, "offers[].offer_id", "required"},
		{"offer string", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"offers":[{"offer":"x","offer_id":` + h20 + `}]}`, "offers[].offer", "object"},
		{"answer no to", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"answer":{},"offer_id":` + h20 + `}`, "`to_peer_id`", "required"},
		{"answer no offer_id", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"answer":{},"to_peer_id":` + h20 + `}`, "`offer_id`", "required"},
		{"duplicate", `{"action":"announce","action":"scrape"}`, "action", "duplicate"},
		{"bad utf8", "{\"action\":\"announce\",\"x\":\"\xff\"}", "x", "UTF-8"},
		{"control char", "{\"action\":\"ann\nounce\"}", "action", "control"},
		{"bad escape", `{"action":"\q"}`, "action", "escape"},
		{"deep", `{"action":"scrape","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "x", "deeply"},
		{"scrape too many", `{"action":"scrape","info_hash":[` + strings.TrimSuffix(strings.Repeat(h20+",", 101), ",") + `]}`, "info_hash", "more than"},
		{"caps type", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"x_caps":{"upload_bps":"lots"}}`, "x_caps.upload_bps", "number"},
		{"bitrate type", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"x_caps":{"bitrate_bps":true}}`, "x_caps.bitrate_bps", "number"},
		{"caps device", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"x_caps":{"device":"toaster"}}`, "x_caps.device", "toaster"},
		{"report bad peer", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"x_report":{"bad_chunks":[{"peer_id":"x","chunk":1}]}}`, "x_report.bad_chunks[].peer_id", "20-character"},
		{"report no chunk", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"x_report":{"bad_chunks":[{"peer_id":` + p20 + `}]}}`, "x_report.bad_chunks[].chunk", "required"},
		{"long session", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"x_session":"` + strings.Repeat("s", 200) + `"}`, "x_session", "longer"},
		{"bad number", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"numwant":01}`, "", "malformed"},
		{"bad literal", `{"action":"scrape","x":nul}`, "", "expected a value"},
	}
	var r Request
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseRequest([]byte(tt.msg), &r)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseRequest(%s) = %v, want *Error", tt.msg, err)
			}
			if e.Field != tt.field {
				t.Errorf("ParseRequest(%s) field = %q, want %q (%v)", tt.msg, e.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("ParseRequest(%s) = %q, want it to contain %q", tt.msg, err, tt.text)
			}
		})
	}
}

func TestParseRequestAccepts(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		check func(r *Request) bool
	}{
		{"empty event", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"event":"empty"}`, func(r *Request) bool { return r.Event == EventUpdate }},
		{"null event", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"event":null}`, func(r *Request) bool { return r.Event == EventUpdate }},
		{"paused", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"event":"paused"}`, func(r *Request) bool { return r.Event == EventPaused }},
		{"left zero", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"left":0}`, func(r *Request) bool { return r.Left == 0 }},
		{"float counts", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"uploaded":1.5e3,"numwant":5.0}`, func(r *Request) bool { return r.Uploaded == 1500 && r.NumWant == 5 }},
		{"unknown members", `{"x":[1,{"y":null}],"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"trackerid":"t"}`, func(r *Request) bool { return r.Action == ActionAnnounce }},
		{"surrogates elsewhere", `{"action":"scrape","info_hash":` + h20 + `,"note":"\ud83d\ude00 \ud800"}`, func(r *Request) bool { return len(r.InfoHashes) == 1 }},
		{"extensions", `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 +
			`,"x_session":"abc","x_site":"video","x_have":12,"x_caps":{"upload_bps":2000000,"upload":false,"device":"tv","bitrate_bps":437800,"future":1},` +
			`"x_report":{"from_peers_bytes":10,"from_edge_bytes":20,"uploaded_bytes":30,"bad_chunks":[{"peer_id":` + p20 + `,"object":"00ff","chunk":3}]}}`,
			func(r *Request) bool {
				return r.Session == "abc" && r.Site == "video" && r.Have == 12 && r.Caps != nil && r.Caps.UploadBps == 2e6 &&
					r.Caps.NoUpload && r.Caps.Device == "tv" && r.Caps.BitrateBps == 437_800 && r.Report != nil && r.Report.FromEdgeBytes == 20 &&
					len(r.Report.BadChunks) == 1 && r.Report.BadChunks[0].Chunk == 3 && r.Report.BadChunks[0].Object == "00ff"
			}},
	}
	var r Request
	for _, tt := range tests {
		if err := ParseRequest([]byte(tt.msg), &r); err != nil {
			t.Errorf("%s: ParseRequest(%s) = %v", tt.name, tt.msg, err)
			continue
		}
		if !tt.check(&r) {
			t.Errorf("%s: ParseRequest(%s) = %+v", tt.name, tt.msg, r)
		}
	}
}

// TestRequestReuse checks that a reused Request does not keep fields of the
// previous message.
func TestRequestReuse(t *testing.T) {
	var r Request
	full := `{"action":"announce","info_hash":` + h20 + `,"peer_id":` + p20 + `,"numwant":3,"offers":[{"offer":{},"offer_id":` + h20 + `}],"x_caps":{"upload_bps":5},"x_report":{"bad_chunks":[{"peer_id":` + p20 + `,"chunk":1}]}}`
	if err := ParseRequest([]byte(full), &r); err != nil {
		t.Fatal(err)
	}
	if err := ParseRequest([]byte(`{"action":"announce","info_hash":`+h20+`,"peer_id":`+p20+`}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.NumWant != -1 || len(r.Offers) != 0 || r.Caps != nil || r.Report != nil {
		t.Errorf("reused request kept old fields: %+v", r)
	}
}

func sampleRequests(t testing.TB) []Request {
	ih := mustHex(t, "00ff7f80c3a9225c0a0d0901e2a0ff00ff00ff10")
	pid := mustHex(t, "2d5757303230382d6162636465662f5cffe90178")
	return []Request{
		{Action: ActionAnnounce, InfoHash: ih, PeerID: pid, Event: EventStarted, NumWant: 2, Left: 100, Uploaded: 0, Downloaded: 5, Have: -1,
			Offers: []Offer{{ID: ih, SDP: []byte(`{"type":"offer","sdp":"v=0\r\n"}`)}, {ID: pid, SDP: []byte(`{"type":"offer","sdp":"x"}`)}}},
		{Action: ActionAnnounce, InfoHash: ih, PeerID: pid, NumWant: -1, Left: -1, Uploaded: -1, Downloaded: -1, Have: -1,
			Answer: []byte(`{"type":"answer","sdp":"y"}`), ToPeerID: ih, OfferID: pid},
		{Action: ActionAnnounce, InfoHash: ih, PeerID: pid, Event: EventCompleted, NumWant: -1, Left: 0, Uploaded: -1, Downloaded: -1, Have: 7,
			Session: "sess\"1", Site: "vidéo", Caps: &Caps{UploadBps: 3e6, NoUpload: true, Device: DeviceSTB},
			Report: &Report{FromPeersBytes: 1, FromEdgeBytes: -1, UploadedBytes: 3, BadChunks: []BadChunk{{PeerID: pid, Object: "0011", Chunk: 9}}}},
		{Action: ActionScrape, InfoHashes: []ID{ih, pid}},
	}
}

func normalize(r Request) Request {
	r.lex, r.caps, r.report = lexer{}, Caps{}, Report{}
	r.RawOfferID = nil
	if r.Offers != nil {
		offers := make([]Offer, len(r.Offers))
		for i, o := range r.Offers {
			offers[i] = Offer{ID: o.ID, SDP: o.SDP}
		}
		r.Offers = offers
	}
	if len(r.Offers) == 0 {
		r.Offers = nil
	}
	if len(r.InfoHashes) == 0 {
		r.InfoHashes = nil
	}
	if r.Action == ActionScrape {
		r = Request{Action: ActionScrape, InfoHashes: r.InfoHashes}
	}
	if r.Answer == nil {
		// to_peer_id and offer_id mean nothing without an answer and are
		// not re-encoded.
		r.ToPeerID, r.OfferID = ID{}, ID{}
	}
	if r.Report != nil {
		rep := *r.Report
		if len(rep.BadChunks) == 0 {
			rep.BadChunks = nil
		}
		r.Report = &rep
	}
	if r.Caps != nil {
		c := *r.Caps
		r.Caps = &c
	}
	return r
}

func TestRequestRoundTrip(t *testing.T) {
	for i, want := range sampleRequests(t) {
		data := want.AppendJSON(nil)
		if !json.Valid(data) {
			t.Fatalf("request %d: AppendJSON wrote invalid JSON: %s", i, data)
		}
		var got Request
		if err := ParseRequest(data, &got); err != nil {
			t.Fatalf("request %d: ParseRequest(%s) = %v", i, data, err)
		}
		if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
			t.Errorf("request %d round trip:\n got %+v\nwant %+v\njson %s", i, g, w, data)
		}
	}
}

func sampleResponses(t testing.TB) []Response {
	ih := mustHex(t, "00ff7f80c3a9225c0a0d0901e2a0ff00ff00ff10")
	pid := mustHex(t, "2d5757303230382d6162636465662f5cffe90178")
	return []Response{
		{Kind: KindFailure, Failure: "invalid info_hash: \"x\""},
		{Kind: KindFailure, Action: ActionAnnounce, Failure: "rate limited", InfoHash: ih, HasInfoHash: true},
		{Kind: KindAnnounce, Action: ActionAnnounce, InfoHash: ih, HasInfoHash: true, Interval: 120, Complete: 3, Incomplete: 4, Session: "abc"},
		{Kind: KindAnnounce, Action: ActionAnnounce, InfoHash: ih, HasInfoHash: true, Interval: 120, Warning: "w",
			Policy: &Policy{UploadBudgetBps: 1e6, EdgeAllowanceBps: -1, UsePeers: true, Reason: "ebu-cap"}},
		{Kind: KindPolicy, Action: ActionAnnounce, InfoHash: ih, HasInfoHash: true,
			Policy: &Policy{UploadBudgetBps: 333_333, EdgeAllowanceBps: 120_000, UsePeers: false, Reason: "allocated", SlurpieProbability: 0.375}},
		{Kind: KindOffer, Action: ActionAnnounce, InfoHash: ih, HasInfoHash: true, PeerID: pid, OfferID: ih, SDP: []byte(`{"type":"offer","sdp":"v=0"}`)},
		{Kind: KindAnswer, Action: ActionAnnounce, InfoHash: ih, HasInfoHash: true, PeerID: pid, OfferID: ih, SDP: []byte(`{"type":"answer","sdp":"v=0"}`)},
		{Kind: KindScrape, Action: ActionScrape, Files: []ScrapeFile{{ih, 1, 2, 1}, {pid, 0, 0, 0}}, MinRequestInterval: 120},
		{Kind: KindPolicy, Action: ActionAnnounce, InfoHash: ih, HasInfoHash: true, Policy: &Policy{UploadBudgetBps: 0, EdgeAllowanceBps: 0}},
	}
}

func normalizeResp(r Response) Response {
	r.lex, r.policy = lexer{}, Policy{}
	if len(r.Files) == 0 {
		r.Files = nil
	}
	if r.Policy != nil {
		p := *r.Policy
		r.Policy = &p
	}
	return r
}

func TestResponseRoundTrip(t *testing.T) {
	for i, want := range sampleResponses(t) {
		data := want.AppendJSON(nil)
		if !json.Valid(data) {
			t.Fatalf("response %d: AppendJSON wrote invalid JSON: %s", i, data)
		}
		var got Response
		if err := ParseResponse(data, &got); err != nil {
			t.Fatalf("response %d: ParseResponse(%s) = %v", i, data, err)
		}
		if g, w := normalizeResp(got), normalizeResp(want); !reflect.DeepEqual(g, w) {
			t.Errorf("response %d round trip:\n got %+v\nwant %+v\njson %s", i, g, w, data)
		}
	}
}

// TestResponseShapes pins the exact bytes of the messages standard clients
// must understand (bittorrent-tracker's server writes the same members).
func TestResponseShapes(t *testing.T) {
	var ih, pid ID
	copy(ih[:], "aaaaaaaaaaaaaaaaaaaa")
	copy(pid[:], "bbbbbbbbbbbbbbbbbbbb")
	tests := []struct {
		r    Response
		want string
	}{
		{Response{Kind: KindAnnounce, InfoHash: ih, Interval: 120, Complete: 1, Incomplete: 2},
			`{"action":"announce","interval":120,"info_hash":` + h20 + `,"complete":1,"incomplete":2}`},
		{Response{Kind: KindOffer, InfoHash: ih, PeerID: pid, OfferID: pid, SDP: []byte(`{"type":"offer"}`)},
			`{"action":"announce","offer":{"type":"offer"},"offer_id":` + p20 + `,"peer_id":` + p20 + `,"info_hash":` + h20 + `}`},
		{Response{Kind: KindFailure, Failure: "invalid action"}, `{"failure reason":"invalid action"}`},
		{Response{Kind: KindScrape, Files: []ScrapeFile{{ih, 1, 2, 1}}, MinRequestInterval: 600},
			`{"action":"scrape","files":{` + h20 + `:{"complete":1,"incomplete":2,"downloaded":1}},"flags":{"min_request_interval":600}}`},
	}
	for _, tt := range tests {
		if got := string(tt.r.AppendJSON(nil)); got != tt.want {
			t.Errorf("AppendJSON(%v) = %s, want %s", tt.r.Kind, got, tt.want)
		}
	}
}

func TestHexID(t *testing.T) {
	id := mustHex(t, "00ff7f80c3a9225c0a0d0901e2a0ff00ff00ff10")
	if id.String() != "00ff7f80c3a9225c0a0d0901e2a0ff00ff00ff10" {
		t.Errorf("String() = %s", id)
	}
	for _, bad := range []string{"", "00", strings.Repeat("zz", 20)} {
		if _, err := ParseHexID(bad); err == nil {
			t.Errorf("ParseHexID(%q) succeeded", bad)
		}
	}
	_ = hex.EncodeToString
}

func FuzzParseRequest(f *testing.F) {
	for _, r := range sampleRequests(f) {
		f.Add(r.AppendJSON(nil))
	}
	f.Add([]byte(`{"action":"announce","info_hash":"\u0000\u0001","peer_id":1}`))
	f.Add([]byte(`{"action":"scrape","info_hash":["aaaaaaaaaaaaaaaaaaaa"],"x":[{"y":"\ud800\udc00"}]}`))
	f.Add([]byte(`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","left":0,"x_caps":{"upload_bps":1e7,"bitrate_bps":437800,"device":"stb"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		err := ParseRequest(data, &r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseRequest error %T is not *Error", err)
			}
			return
		}
		// Whatever parses must re-encode to valid JSON that parses to the
		// same request.
		out := r.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("re-encoded request is not valid JSON: %q", out)
		}
		var r2 Request
		if err := ParseRequest(out, &r2); err != nil {
			t.Fatalf("re-encoded request does not parse: %v\n%q", err, out)
		}
		a, b := normalize(r), normalize(r2)
		a.Event, b.Event = 0, 0 // answers carry no event
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", a, b)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, r := range sampleResponses(f) {
		f.Add(r.AppendJSON(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Response
		err := ParseResponse(data, &r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseResponse error %T is not *Error", err)
			}
			return
		}
		out := r.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("re-encoded response is not valid JSON: %q", out)
		}
		var r2 Response
		if err := ParseResponse(out, &r2); err != nil {
			t.Fatalf("re-encoded response does not parse: %v\n%q", err, out)
		}
		if r2.Kind != r.Kind {
			t.Fatalf("kind changed %v -> %v", r.Kind, r2.Kind)
		}
	})
}

// benchParseRequest times ParseRequest of data into one reused Request.
func benchParseRequest(b *testing.B, data []byte) {
	b.Helper()
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := ParseRequest(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseOfferAnnounce(b *testing.B) {
	msgs := goldenMessagesB(b)
	data := msgs["announce_started"]
	benchParseRequest(b, data)
}

func BenchmarkAppendOffer(b *testing.B) {
	resp := sampleResponses(b)[4]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = resp.AppendJSON(buf[:0])
	}
}

func goldenMessagesB(b *testing.B) map[string][]byte {
	data, err := os.ReadFile("testdata/client_messages.golden")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string][]byte{}
	for _, line := range strings.Split(string(data), "\n") {
		if name, msg, ok := strings.Cut(line, " "); ok {
			out[name] = []byte(msg)
		}
	}
	return out
}

func TestSpecial8(t *testing.T) {
	isSpecial := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	var b [8]byte
	for c := 0; c < 256; c++ {
		for pos := range 8 {
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			if got := special8(x) != 0; got != isSpecial(byte(c)) {
				t.Fatalf("special8 with %#x at %d = %v, want %v", c, pos, got, isSpecial(byte(c)))
			}
			if m := special8(x); m != 0 && bits.TrailingZeros64(m)>>3 != pos {
				t.Fatalf("special8 with %#x at %d flags byte %d first", c, pos, bits.TrailingZeros64(m)>>3)
			}
		}
	}
}

// BenchmarkParseRealisticAnnounce parses an announce as bittorrent-tracker's
// client sends it: five offers of about 500-byte SDP, random offer_ids.
func BenchmarkParseRealisticAnnounce(b *testing.B) {
	req := Request{Action: ActionAnnounce, Event: EventUpdate, NumWant: 5, Left: 1000, Uploaded: 0, Downloaded: 0, Have: -1}
	copy(req.InfoHash[:], "\x00\x01\x02 random info hash")
	copy(req.PeerID[:], "-WW0208-\xff\xfe\x80abcdefghi")
	sdp := `{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=candidate:1510613869 1 udp 2122063615 127.0.0.1 43020 typ host generation 0 network-id 3\r\na=ice-ufrag:Q7Ax\r\na=ice-pwd:9uW2nTz4qkBlZ0vnd3xXf1Vb\r\na=ice-options:trickle\r\na=fingerprint:sha-256 4F:2A:11:9C:DE:7B:40:55:0A:6E:9A:31:7C:88:19:24:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"}`
	for i := range 5 {
		var id ID
		for j := range id {
			id[j] = byte(i*31 + j*7)
		}
		req.Offers = append(req.Offers, Offer{ID: id, SDP: []byte(sdp)})
	}
	data := req.AppendJSON(nil)
	benchParseRequest(b, data)
}

func TestAppendRelayMatchesAppendJSON(t *testing.T) {
	for _, r := range sampleResponses(t) {
		if r.Kind != KindOffer && r.Kind != KindAnswer {
			continue
		}
		want := string(r.AppendJSON(nil))
		got := string(AppendRelay(nil, r.Kind == KindAnswer, r.SDP, r.OfferID.AppendJSON(nil), r.PeerID.AppendJSON(nil), r.InfoHash.AppendJSON(nil)))
		if got != want {
			t.Errorf("AppendRelay = %s, want %s", got, want)
		}
	}
	// Raw IDs from a parsed request relay as the same values.
	var req Request
	msg := `{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":[{"offer":{},"offer_id":"\u00e9\u0000cccccccccccccccccc"}]}`
	if err := ParseRequest([]byte(msg), &req); err != nil {
		t.Fatal(err)
	}
	out := AppendRelay(nil, false, req.Offers[0].SDP, req.Offers[0].RawID, req.PeerID.AppendJSON(nil), req.InfoHash.AppendJSON(nil))
	var resp Response
	if err := ParseResponse(out, &resp); err != nil || resp.OfferID != req.Offers[0].ID {
		t.Errorf("relay of a raw offer_id: %v, %x want %x", err, resp.OfferID, req.Offers[0].ID)
	}
}

// randomIDs returns n IDs of random bytes, as clients make offer_ids
// (bittorrent-tracker: randombytes(20) as a binary string): most bytes
// encode as two UTF-8 bytes or a \u00XX escape.
func randomIDs(n int) []ID {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]ID, n)
	for i := range ids {
		for j := range ids[i] {
			ids[i][j] = byte(rng.UintN(256))
		}
	}
	return ids
}

// BenchmarkParseRandomIDAnnounce parses the realistic announce with random
// offer_ids and peer_id.
func BenchmarkParseRandomIDAnnounce(b *testing.B) {
	ids := randomIDs(7)
	req := Request{Action: ActionAnnounce, Event: EventUpdate, NumWant: 5, Left: 1000, Uploaded: 0, Downloaded: 0, Have: -1,
		InfoHash: ids[0], PeerID: ids[1]}
	for _, id := range ids[2:] {
		req.Offers = append(req.Offers, Offer{ID: id, SDP: []byte(realisticSDP)})
	}
	data := req.AppendJSON(nil)
	benchParseRequest(b, data)
}

// BenchmarkParseAnswer parses an answer with random IDs.
func BenchmarkParseAnswer(b *testing.B) {
	ids := randomIDs(4)
	answer := strings.Replace(strings.Replace(realisticSDP, `"offer"`, `"answer"`, 1), "actpass", "active", 1)
	req := Request{Action: ActionAnnounce, NumWant: -1, Left: -1, Uploaded: -1, Downloaded: -1, Have: -1,
		InfoHash: ids[0], PeerID: ids[1], ToPeerID: ids[2], OfferID: ids[3], Answer: []byte(answer)}
	data := req.AppendJSON(nil)
	benchParseRequest(b, data)
}

const realisticSDP = `{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=candidate:1510613869 1 udp 2122063615 127.0.0.1 43020 typ host generation 0 network-id 3\r\na=ice-ufrag:Q7Ax\r\na=ice-pwd:9uW2nTz4qkBlZ0vnd3xXf1Vb\r\na=ice-options:trickle\r\na=fingerprint:sha-256 4F:2A:11:9C:DE:7B:40:55:0A:6E:9A:31:7C:88:19:24:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"}`

// FuzzReadID checks readID's fast loop against readIDSlow, the general
// decoder: same ID, same error, same position after it.
func FuzzReadID(f *testing.F) {
	for _, id := range randomIDs(8) {
		f.Add(id.AppendJSON(nil))
	}
	for _, s := range []string{`"aaaaaaaaaaaaaaaaaaaa"`, `"aaaaaaaaaaaaaaaaaaa"`, `"aaaaaaaaaaaaaaaaaaaaa"`,
		`"\u00e9\u00E9\b\f\n\r\t\"\\\/aaaaaaaaaa"`, `"\ud800aaaaaaaaaaaaaaaaaaa"`, `"\u0100aaaaaaaaaaaaaaaaaaa"`,
		"\"\xc3\xa9\xc2\x80aaaaaaaaaaaaaaaaaa\"", "\"\xc3aaaaaaaaaaaaaaaaaaaa\"", "\"\xe2\x82\xacaaaaaaaaaaaaaaaaaaa\"",
		`"\u00g0aaaaaaaaaaaaaaaaaaa"`, `"aaaaaaaaaaaaaaaaaaaa`, `"aaaaaaaaaaaaaaaaaaa\`, `"\x"`, `"`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, slow := lexer{data: data}, lexer{data: data}
		gotID, gotErr := fast.readID("id")
		slow.ws()
		wantID, wantErr := ID{}, error(nil)
		if slow.peek() != '"' {
			wantErr = badID("id")
		} else {
			wantID, wantErr = slow.readIDSlow("id")
		}
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("readID(%q) error %v, readIDSlow %v", data, gotErr, wantErr)
		}
		if gotErr == nil && (gotID != wantID || fast.pos != slow.pos) {
			t.Fatalf("readID(%q) = %x at %d, readIDSlow %x at %d", data, gotID, fast.pos, wantID, slow.pos)
		}
	})
}
