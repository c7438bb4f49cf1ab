package signal

import (
	"strconv"
)

// Action is the "action" of a message.
type Action uint8

const (
	ActionNone     Action = iota // absent (only in some failure replies)
	ActionAnnounce               // "announce"
	ActionScrape                 // "scrape"
)

func (a Action) String() string {
	switch a {
	case ActionAnnounce:
		return "announce"
	case ActionScrape:
		return "scrape"
	}
	return ""
}

// Event is the "event" of an announce.
type Event uint8

const (
	// EventUpdate is a periodic announce: "update", "empty", "" or absent.
	EventUpdate Event = iota
	EventStarted
	EventCompleted
	EventStopped
	// EventPaused is treated as an update, as bittorrent-tracker does.
	EventPaused
)

func (e Event) String() string {
	switch e {
	case EventStarted:
		return "started"
	case EventCompleted:
		return "completed"
	case EventStopped:
		return "stopped"
	case EventPaused:
		return "paused"
	}
	return "update"
}

func parseEvent(s []byte) (Event, bool) {
	switch string(s) {
	case "", "update", "empty":
		return EventUpdate, true
	case "started":
		return EventStarted, true
	case "completed":
		return EventCompleted, true
	case "stopped":
		return EventStopped, true
	case "paused":
		return EventPaused, true
	}
	return 0, false
}

// Offer is one WebRTC offer in an announce.
type Offer struct {
	// ID is the offer_id the answer will carry back.
	ID ID
	// RawID is offer_id exactly as the client wrote it (a JSON string,
	// validated), so a relay can copy it instead of re-encoding it. Set by
	// ParseRequest (aliasing the input); AppendJSON ignores it.
	RawID []byte
	// SDP is the raw JSON object ({"type":"offer","sdp":"..."}) relayed
	// verbatim to the chosen peer.
	SDP []byte
}

// Request is a message from a client: an announce (possibly carrying offers,
// or an answer to an offer it received) or a scrape.
//
// ParseRequest fills a Request whose byte-slice fields (Offers[i].SDP, Answer)
// alias the parsed buffer: copy them to keep them. A Request is reused by
// ParseRequest (it resets it); it is not safe for concurrent use.
type Request struct {
	Action Action

	// InfoHash names the swarm of an announce.
	InfoHash ID
	// InfoHashes are the swarms a scrape asks about; empty means all (which
	// the coordinator refuses).
	InfoHashes []ID

	// PeerID is the sender's peer_id (announce only).
	PeerID ID
	Event  Event
	// NumWant is how many peers the client wants offers sent to; -1 when
	// absent.
	NumWant int
	// Left, Uploaded and Downloaded are the BitTorrent byte counters; -1
	// when absent or null. Left 0 means the peer holds everything.
	Left, Uploaded, Downloaded int64

	// Offers to relay to other peers of the swarm.
	Offers []Offer

	// Answer is set when the message answers an offer: the raw JSON object
	// ({"type":"answer","sdp":"..."}), relayed to ToPeerID for OfferID.
	Answer   []byte
	ToPeerID ID
	OfferID  ID
	// RawOfferID is OfferID as the client wrote it (see Offer.RawID).
	RawOfferID []byte

	// Extensions (ignored by standard trackers).

	// Session is x_session: the session ID the coordinator issued, sent back
	// to resume that session on a new connection.
	Session string
	// Site is x_site: the configured site name this swarm belongs to.
	Site string
	// Have is x_have: how many chunks of this swarm the peer holds; -1 when
	// absent.
	Have int64
	// Caps is x_caps, nil when absent.
	Caps *Caps
	// Report is x_report, nil when absent.
	Report *Report

	caps   Caps // storage for Caps, reused
	report Report
	lex    lexer
}

// Limits of one request, beyond the message size limit the socket applies.
const (
	// MaxScrapeHashes is the most info_hashes one scrape may name.
	MaxScrapeHashes = 100
	// maxStringBytes bounds x_session, x_site and similar short strings.
	maxStringBytes = 128
)

// reset clears r for reuse, keeping its allocations.
func (r *Request) reset() {
	*r = Request{
		InfoHashes: r.InfoHashes[:0],
		Offers:     r.Offers[:0],
		NumWant:    -1, Left: -1, Uploaded: -1, Downloaded: -1, Have: -1,
		caps:   Caps{},
		report: Report{BadChunks: r.report.BadChunks[:0]},
		lex:    lexer{scratch: r.lex.scratch},
	}
}

// request member bits, to refuse duplicate keys.
const (
	fAction = 1 << iota
	fInfoHash
	fPeerID
	fEvent
	fNumWant
	fLeft
	fUploaded
	fDownloaded
	fOffers
	fAnswer
	fToPeerID
	fOfferID
	fSession
	fSite
	fHave
	fCaps
	fReport
)

// ParseRequest decodes one client message into r. It refuses anything that
// is not exactly a well-formed announce or scrape: malformed JSON, wrong
// types, binary strings that are not 20 characters of U+0000..U+00FF,
// unknown actions or events, an answer without to_peer_id or offer_id.
// Unknown members are skipped (clients add their own). The returned error
// is an *Error whose text is fit for a "failure reason" reply; r.Action and
// r.InfoHash are set whenever they were decoded before the problem.
func ParseRequest(data []byte, r *Request) error {
	r.reset()
	l := &r.lex
	l.data = data
	var seen uint32
	var action []byte
	var infoHashKind byte // 's' string, 'a' array
	err := l.object("", func(key []byte) error {
		bit := requestKey(key)
		if bit == 0 {
			_, err := l.skip(string(key))
			return err
		}
		if seen&bit != 0 {
			return errorf(string(key), "duplicate member")
		}
		seen |= bit
		switch bit {
		case fAction:
			s, err := l.readString("action")
			if err != nil {
				return err
			}
			switch string(s) {
			case "announce":
				r.Action = ActionAnnounce
			case "scrape":
				r.Action = ActionScrape
			default:
				action = append([]byte(nil), s...)
			}
		case fInfoHash:
			switch l.peek() {
			case '[':
				infoHashKind = 'a'
				return l.array("info_hash", func(i int) error {
					if i >= MaxScrapeHashes {
						return errorf("info_hash", "more than "+strconv.Itoa(MaxScrapeHashes)+" info_hashes")
					}
					id, err := l.readID("info_hash")
					r.InfoHashes = append(r.InfoHashes, id)
					return err
				})
			default:
				infoHashKind = 's'
				id, err := l.readID("info_hash")
				r.InfoHash = id
				return err
			}
		case fPeerID:
			id, err := l.readID("peer_id")
			r.PeerID = id
			return err
		case fEvent:
			if l.isNull() {
				return nil
			}
			s, err := l.readString("event")
			if err != nil {
				return err
			}
			ev, ok := parseEvent(s)
			if !ok {
				return errorf("event", strconv.Quote(string(s))+" is not started, completed, stopped, update or paused")
			}
			r.Event = ev
		case fNumWant:
			n, err := l.readCount("numwant")
			if n > 1<<20 {
				n = 1 << 20
			}
			r.NumWant = int(n)
			return err
		case fLeft:
			n, err := l.readCount("left")
			r.Left = n
			return err
		case fUploaded:
			n, err := l.readCount("uploaded")
			r.Uploaded = n
			return err
		case fDownloaded:
			n, err := l.readCount("downloaded")
			r.Downloaded = n
			return err
		case fOffers:
			if l.isNull() {
				return nil
			}
			return l.array("offers", func(int) error { return r.readOffer() })
		case fAnswer:
			if l.isNull() {
				return nil
			}
			if l.peek() != '{' {
				return errorf("answer", "want an object")
			}
			raw, err := l.skip("answer")
			r.Answer = raw
			return err
		case fToPeerID:
			id, err := l.readID("to_peer_id")
			r.ToPeerID = id
			return err
		case fOfferID:
			start := l.pos
			id, err := l.readID("offer_id")
			r.OfferID, r.RawOfferID = id, l.data[start:l.pos]
			return err
		case fSession:
			s, err := l.readShort("x_session")
			r.Session = s
			return err
		case fSite:
			s, err := l.readShort("x_site")
			r.Site = s
			return err
		case fHave:
			n, err := l.readCount("x_have")
			r.Have = n
			return err
		case fCaps:
			r.Caps = &r.caps
			return r.caps.parse(l)
		case fReport:
			r.Report = &r.report
			return r.report.parse(l)
		}
		return nil
	})
	if err == nil {
		err = l.end()
	}
	if err != nil {
		return err
	}
	switch r.Action {
	case ActionAnnounce:
		if seen&fInfoHash == 0 || infoHashKind != 's' {
			return errorf("info_hash", "want a 20-character binary string")
		}
		if seen&fPeerID == 0 {
			return errorf("peer_id", "want a 20-character binary string")
		}
		if r.Answer != nil {
			if seen&fToPeerID == 0 {
				return errorf("`to_peer_id`", "required with `answer`")
			}
			if seen&fOfferID == 0 {
				return errorf("`offer_id`", "required with `answer`")
			}
		}
	case ActionScrape:
		if infoHashKind == 's' {
			r.InfoHashes = append(r.InfoHashes, r.InfoHash)
		}
	default:
		what := "undefined"
		if seen&fAction != 0 {
			what = string(action)
		}
		return &Error{Field: "action", Msg: "unknown action in WS request: " + strconv.Quote(what)}
	}
	return nil
}

// requestKey returns the member bit of a request key, 0 for an unknown one
// (a switch: cheaper than a map lookup, once per member of every message).
func requestKey(key []byte) uint32 {
	switch string(key) {
	case "action":
		return fAction
	case "info_hash":
		return fInfoHash
	case "peer_id":
		return fPeerID
	case "event":
		return fEvent
	case "numwant":
		return fNumWant
	case "left":
		return fLeft
	case "uploaded":
		return fUploaded
	case "downloaded":
		return fDownloaded
	case "offers":
		return fOffers
	case "answer":
		return fAnswer
	case "to_peer_id":
		return fToPeerID
	case "offer_id":
		return fOfferID
	case "x_session":
		return fSession
	case "x_site":
		return fSite
	case "x_have":
		return fHave
	case "x_caps":
		return fCaps
	case "x_report":
		return fReport
	}
	return 0
}

func (r *Request) readOffer() error {
	var o Offer
	var hasID, hasOffer bool
	err := r.lex.object("offers[]", func(key []byte) error {
		switch string(key) {
		case "offer_id":
			if hasID {
				return errorf("offers[].offer_id", "duplicate member")
			}
			start := r.lex.pos
			id, err := r.lex.readID("offers[].offer_id")
			o.ID, o.RawID, hasID = id, r.lex.data[start:r.lex.pos], true
			return err
		case "offer":
			if hasOffer {
				return errorf("offers[].offer", "duplicate member")
			}
			if r.lex.peek() != '{' {
				return errorf("offers[].offer", "want an object")
			}
			raw, err := r.lex.skip("offers[].offer")
			o.SDP, hasOffer = raw, true
			return err
		}
		_, err := r.lex.skip("offers[]")
		return err
	})
	if err != nil {
		return err
	}
	if !hasID {
		return errorf("offers[].offer_id", "required")
	}
	if !hasOffer {
		return errorf("offers[].offer", "required")
	}
	r.Offers = append(r.Offers, o)
	return nil
}

// readShort reads a string of at most maxStringBytes bytes.
func (l *lexer) readShort(field string) (string, error) {
	if l.isNull() {
		return "", nil
	}
	s, err := l.readString(field)
	if err != nil {
		return "", err
	}
	if len(s) > maxStringBytes {
		return "", errorf(field, "longer than "+strconv.Itoa(maxStringBytes)+" bytes")
	}
	return string(s), nil
}

// AppendJSON appends the request as one JSON message, as a client sends it.
// Fields at their "absent" values (-1 counters, nil slices, empty strings)
// are left out.
func (r *Request) AppendJSON(b []byte) []byte {
	b = append(b, `{"action":`...)
	b = appendString(b, r.Action.String())
	if r.Action == ActionScrape {
		b = append(b, `,"info_hash":[`...)
		for i, h := range r.InfoHashes {
			if i > 0 {
				b = append(b, ',')
			}
			b = h.AppendJSON(b)
		}
		return append(b, "]}"...)
	}
	b = append(b, `,"info_hash":`...)
	b = r.InfoHash.AppendJSON(b)
	b = append(b, `,"peer_id":`...)
	b = r.PeerID.AppendJSON(b)
	if r.Answer != nil {
		b = append(b, `,"answer":`...)
		b = append(b, r.Answer...)
		b = append(b, `,"to_peer_id":`...)
		b = r.ToPeerID.AppendJSON(b)
		b = append(b, `,"offer_id":`...)
		b = r.OfferID.AppendJSON(b)
	} else {
		b = append(b, `,"event":`...)
		b = appendString(b, r.Event.String())
	}
	b = appendCount(b, "numwant", int64(r.NumWant))
	b = appendCount(b, "left", r.Left)
	b = appendCount(b, "uploaded", r.Uploaded)
	b = appendCount(b, "downloaded", r.Downloaded)
	if r.Offers != nil {
		b = append(b, `,"offers":[`...)
		for i, o := range r.Offers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"offer":`...)
			b = append(b, o.SDP...)
			b = append(b, `,"offer_id":`...)
			b = o.ID.AppendJSON(b)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.Session != "" {
		b = append(b, `,"x_session":`...)
		b = appendString(b, r.Session)
	}
	if r.Site != "" {
		b = append(b, `,"x_site":`...)
		b = appendString(b, r.Site)
	}
	b = appendCount(b, "x_have", r.Have)
	if r.Caps != nil {
		b = append(b, `,"x_caps":`...)
		b = r.Caps.appendJSON(b)
	}
	if r.Report != nil {
		b = append(b, `,"x_report":`...)
		b = r.Report.appendJSON(b)
	}
	return append(b, '}')
}

func appendCount(b []byte, key string, v int64) []byte {
	if v < 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}
