package signal

import (
	"strconv"
)

// Kind tells which of the coordinator's messages a Response is.
type Kind uint8

const (
	KindNone Kind = iota
	// KindFailure: a request was refused ("failure reason").
	KindFailure
	// KindAnnounce: the reply to an announce (interval, complete,
	// incomplete, x_session).
	KindAnnounce
	// KindOffer: another peer's offer, relayed.
	KindOffer
	// KindAnswer: the answer to one of our offers, relayed.
	KindAnswer
	// KindScrape: the reply to a scrape.
	KindScrape
	// KindPolicy: an x_policy push.
	KindPolicy
)

func (k Kind) String() string {
	switch k {
	case KindFailure:
		return "failure"
	case KindAnnounce:
		return "announce"
	case KindOffer:
		return "offer"
	case KindAnswer:
		return "answer"
	case KindScrape:
		return "scrape"
	case KindPolicy:
		return "policy"
	}
	return "none"
}

// ScrapeFile is one swarm's counts in a scrape reply.
type ScrapeFile struct {
	InfoHash                         ID
	Complete, Incomplete, Downloaded int64
}

// Response is a message from the coordinator to a client. Which fields
// matter depends on Kind. ParseResponse reuses a Response and makes SDP alias
// the parsed buffer. It is not safe for concurrent use.
type Response struct {
	Kind Kind

	// Action is "announce" or "scrape"; a failure reply to a message whose
	// action was not understood has none.
	Action Action
	// Failure is the "failure reason" of KindFailure.
	Failure string
	// Warning is an optional "warning message".
	Warning string

	// InfoHash names the swarm. A failure reply may have none
	// (HasInfoHash false); every other kind has one.
	InfoHash    ID
	HasInfoHash bool

	// Announce reply.
	Interval             int // seconds until the next announce
	Complete, Incomplete int64
	// Session is x_session, the session ID issued to this connection.
	Session string

	// Offer or answer relay: the sending peer, the offer_id and the raw
	// offer or answer object.
	PeerID  ID
	OfferID ID
	SDP     []byte

	// Scrape reply.
	Files              []ScrapeFile
	MinRequestInterval int

	// Policy is x_policy, nil when absent. KindPolicy always has one; an
	// announce reply may carry one too.
	Policy *Policy

	policy Policy
	lex    lexer
}

// AppendJSON appends the response as one JSON message.
func (r *Response) AppendJSON(b []byte) []byte {
	switch r.Kind {
	case KindFailure:
		b = append(b, '{')
		if r.Action != ActionNone {
			b = append(b, `"action":`...)
			b = appendString(b, r.Action.String())
			b = append(b, ',')
		}
		b = append(b, `"failure reason":`...)
		b = appendString(b, r.Failure)
		if r.HasInfoHash {
			b = append(b, `,"info_hash":`...)
			b = r.InfoHash.AppendJSON(b)
		}
		return append(b, '}')
	case KindAnnounce:
		b = append(b, `{"action":"announce","interval":`...)
		b = strconv.AppendInt(b, int64(r.Interval), 10)
		b = append(b, `,"info_hash":`...)
		b = r.InfoHash.AppendJSON(b)
		b = append(b, `,"complete":`...)
		b = strconv.AppendInt(b, r.Complete, 10)
		b = append(b, `,"incomplete":`...)
		b = strconv.AppendInt(b, r.Incomplete, 10)
		if r.Session != "" {
			b = append(b, `,"x_session":`...)
			b = appendString(b, r.Session)
		}
	case KindOffer, KindAnswer:
		if r.Kind == KindOffer {
			b = append(b, `{"action":"announce","offer":`...)
		} else {
			b = append(b, `{"action":"announce","answer":`...)
		}
		b = append(b, r.SDP...)
		b = append(b, `,"offer_id":`...)
		b = r.OfferID.AppendJSON(b)
		b = append(b, `,"peer_id":`...)
		b = r.PeerID.AppendJSON(b)
		b = append(b, `,"info_hash":`...)
		b = r.InfoHash.AppendJSON(b)
	case KindScrape:
		b = append(b, `{"action":"scrape","files":{`...)
		for i, f := range r.Files {
			if i > 0 {
				b = append(b, ',')
			}
			b = f.InfoHash.AppendJSON(b)
			b = append(b, `:{"complete":`...)
			b = strconv.AppendInt(b, f.Complete, 10)
			b = append(b, `,"incomplete":`...)
			b = strconv.AppendInt(b, f.Incomplete, 10)
			b = append(b, `,"downloaded":`...)
			b = strconv.AppendInt(b, f.Downloaded, 10)
			b = append(b, '}')
		}
		b = append(b, `},"flags":{"min_request_interval":`...)
		b = strconv.AppendInt(b, int64(r.MinRequestInterval), 10)
		return append(b, "}}"...)
	case KindPolicy:
		b = append(b, `{"action":"announce","info_hash":`...)
		b = r.InfoHash.AppendJSON(b)
	default:
		return append(b, "{}"...)
	}
	if r.Warning != "" {
		b = append(b, `,"warning message":`...)
		b = appendString(b, r.Warning)
	}
	if r.Policy != nil {
		b = append(b, `,"x_policy":`...)
		b = r.Policy.AppendJSON(b)
	}
	return append(b, '}')
}

const (
	rAction = 1 << iota
	rFailure
	rWarning
	rInfoHash
	rInterval
	rComplete
	rIncomplete
	rSession
	rPeerID
	rOfferID
	rOffer
	rAnswer
	rFiles
	rFlags
	rPolicy
)

// responseKey returns the member bit of a response key, 0 for an unknown
// one (see requestKey).
func responseKey(key []byte) uint32 {
	switch string(key) {
	case "action":
		return rAction
	case "failure reason":
		return rFailure
	case "warning message":
		return rWarning
	case "info_hash":
		return rInfoHash
	case "interval":
		return rInterval
	case "complete":
		return rComplete
	case "incomplete":
		return rIncomplete
	case "x_session":
		return rSession
	case "peer_id":
		return rPeerID
	case "offer_id":
		return rOfferID
	case "offer":
		return rOffer
	case "answer":
		return rAnswer
	case "files":
		return rFiles
	case "flags":
		return rFlags
	case "x_policy":
		return rPolicy
	}
	return 0
}

// ParseResponse decodes one coordinator message into r, strictly (as
// ParseRequest does) and classifies it into a Kind.
func ParseResponse(data []byte, r *Response) error {
	*r = Response{Files: r.Files[:0], lex: lexer{scratch: r.lex.scratch}}
	l := &r.lex
	l.data = data
	var seen uint32
	err := l.object("", func(key []byte) error {
		bit := responseKey(key)
		if bit == 0 {
			_, err := l.skip(string(key))
			return err
		}
		if seen&bit != 0 {
			return errorf(string(key), "duplicate member")
		}
		seen |= bit
		var err error
		switch bit {
		case rAction:
			var s []byte
			if s, err = l.readString("action"); err != nil {
				return err
			}
			switch string(s) {
			case "announce":
				r.Action = ActionAnnounce
			case "scrape":
				r.Action = ActionScrape
			default:
				return errorf("action", strconv.Quote(string(s))+" is not announce or scrape")
			}
		case rFailure:
			r.Failure, err = l.readText("failure reason")
		case rWarning:
			r.Warning, err = l.readText("warning message")
		case rInfoHash:
			r.InfoHash, err = l.readID("info_hash")
			r.HasInfoHash = true
		case rInterval:
			var n int64
			n, err = l.readCount("interval")
			r.Interval = int(min(n, 1<<31))
		case rComplete:
			r.Complete, err = l.readCount("complete")
		case rIncomplete:
			r.Incomplete, err = l.readCount("incomplete")
		case rSession:
			r.Session, err = l.readShort("x_session")
		case rPeerID:
			r.PeerID, err = l.readID("peer_id")
		case rOfferID:
			r.OfferID, err = l.readID("offer_id")
		case rOffer, rAnswer:
			if seen&rOffer != 0 && seen&rAnswer != 0 {
				return errorf("", "both offer and answer")
			}
			if l.peek() != '{' {
				return errorf(string(key), "want an object")
			}
			r.SDP, err = l.skip(string(key))
		case rFiles:
			err = l.object("files", func(k []byte) error {
				var f ScrapeFile
				id, err := IDFromString(string(k))
				if err != nil {
					return errorf("files", "key is not a 20-character binary string")
				}
				f.InfoHash = id
				err = l.object("files[]", func(k []byte) error {
					var err error
					switch string(k) {
					case "complete":
						f.Complete, err = l.readCount("files[].complete")
					case "incomplete":
						f.Incomplete, err = l.readCount("files[].incomplete")
					case "downloaded":
						f.Downloaded, err = l.readCount("files[].downloaded")
					default:
						_, err = l.skip("files[]")
					}
					return err
				})
				r.Files = append(r.Files, f)
				return err
			})
		case rFlags:
			err = l.object("flags", func(k []byte) error {
				if string(k) == "min_request_interval" {
					n, err := l.readCount("flags.min_request_interval")
					r.MinRequestInterval = int(min(n, 1<<31))
					return err
				}
				_, err := l.skip("flags")
				return err
			})
		case rPolicy:
			r.Policy = &r.policy
			err = r.policy.parse(l)
		}
		return err
	})
	if err == nil {
		err = l.end()
	}
	if err != nil {
		return err
	}
	switch {
	case seen&rFailure != 0:
		r.Kind = KindFailure
		return nil
	case r.Action == ActionScrape:
		r.Kind = KindScrape
		return nil
	case r.Action != ActionAnnounce:
		return errorf("action", "missing")
	case seen&rInfoHash == 0:
		return errorf("info_hash", "missing")
	case seen&(rOffer|rAnswer) != 0:
		r.Kind = KindOffer
		if seen&rAnswer != 0 {
			r.Kind = KindAnswer
		}
		if seen&rPeerID == 0 || seen&rOfferID == 0 {
			return errorf("", "offer or answer without peer_id and offer_id")
		}
	case seen&(rComplete|rIncomplete|rInterval) != 0:
		r.Kind = KindAnnounce
	case seen&rPolicy != 0:
		r.Kind = KindPolicy
	default:
		return errorf("", "announce message with no reply, offer, answer or policy")
	}
	return nil
}

// readText reads a string of any length (failure and warning texts).
func (l *lexer) readText(field string) (string, error) {
	s, err := l.readString(field)
	return string(s), err
}

// AppendRelay appends an offer (answer false) or answer relay, like
// Response.AppendJSON with KindOffer or KindAnswer, from values already in
// JSON: sdp is the offer or answer object, and offerID, peerID and infoHash
// are binary strings as ID.AppendJSON writes them (or as a client wrote them,
// once validated). It spares the relay hot path re-encoding IDs it already
// holds encoded.
func AppendRelay(b []byte, answer bool, sdp, offerID, peerID, infoHash []byte) []byte {
	if answer {
		b = append(b, `{"action":"announce","answer":`...)
	} else {
		b = append(b, `{"action":"announce","offer":`...)
	}
	b = append(b, sdp...)
	b = append(b, `,"offer_id":`...)
	b = append(b, offerID...)
	b = append(b, `,"peer_id":`...)
	b = append(b, peerID...)
	b = append(b, `,"info_hash":`...)
	b = append(b, infoHash...)
	return append(b, '}')
}
