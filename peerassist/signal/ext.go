package signal

import (
	"strconv"
)

// Device classes a client may declare in x_caps.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTV      = "tv"
	DeviceSTB     = "stb" // set-top box
	DeviceOther   = "other"
)

// Caps is x_caps: what a peer declares about itself.
type Caps struct {
	// UploadBps is the peer's upload capacity in bits/s (0: unknown, the
	// policy assumes its default).
	UploadBps int64
	// NoUpload is true when the client said "upload": false (metered or
	// battery-powered): the coordinator then routes it no offers.
	NoUpload bool
	// Device is one of the Device* classes, "" when not declared.
	Device string
	// BitrateBps is the bitrate in bits/s of the stream the client plays
	// in the announce's swarm (the rendition's, e.g. an HLS variant's
	// BANDWIDTH); 0 when not declared or not a stream. The edge keeps the
	// viewer's floor at it where the site's configuration gives none.
	BitrateBps int64
}

func (c *Caps) parse(l *lexer) error {
	if l.isNull() {
		return nil
	}
	return l.object("x_caps", func(key []byte) error {
		switch string(key) {
		case "upload_bps":
			n, err := l.readCount("x_caps.upload_bps")
			c.UploadBps = max(n, 0)
			return err
		case "bitrate_bps":
			n, err := l.readCount("x_caps.bitrate_bps")
			c.BitrateBps = max(n, 0)
			return err
		case "upload":
			ok, err := l.readBool("x_caps.upload")
			c.NoUpload = !ok
			return err
		case "device":
			s, err := l.readShort("x_caps.device")
			switch s {
			case "", DeviceDesktop, DeviceMobile, DeviceTV, DeviceSTB, DeviceOther:
			default:
				return errorf("x_caps.device", strconv.Quote(s)+" is not desktop, mobile, tv, stb or other")
			}
			c.Device = s
			return err
		}
		_, err := l.skip("x_caps")
		return err
	})
}

func (c *Caps) appendJSON(b []byte) []byte {
	b = append(b, `{"upload_bps":`...)
	b = strconv.AppendInt(b, c.UploadBps, 10)
	b = append(b, `,"upload":`...)
	b = strconv.AppendBool(b, !c.NoUpload)
	if c.Device != "" {
		b = append(b, `,"device":`...)
		b = appendString(b, c.Device)
	}
	if c.BitrateBps > 0 {
		b = append(b, `,"bitrate_bps":`...)
		b = strconv.AppendInt(b, c.BitrateBps, 10)
	}
	return append(b, '}')
}

// MaxBadChunks is the most bad_chunks entries one x_report may carry.
const MaxBadChunks = 32

// Report is x_report: what a peer measured since its session began. The
// byte counters are cumulative over the session (so a lost or repeated
// report does no harm); the coordinator refuses counters that go down.
type Report struct {
	// FromPeersBytes is how many verified bytes the peer received from
	// other peers; FromEdgeBytes from the edge over HTTP; UploadedBytes how
	// many it sent to other peers. -1 when absent.
	FromPeersBytes, FromEdgeBytes, UploadedBytes int64
	// BadChunks are chunks that failed verification since the last report.
	BadChunks []BadChunk
}

// BadChunk is one chunk whose SHA-256 did not match the manifest.
type BadChunk struct {
	// PeerID is the peer that sent the chunk, in the swarm of the announce
	// carrying the report.
	PeerID ID
	// Object is the manifest's object_id (16 hex digits).
	Object string
	// Chunk is the chunk index.
	Chunk int64
}

func (r *Report) parse(l *lexer) error {
	r.FromPeersBytes, r.FromEdgeBytes, r.UploadedBytes = -1, -1, -1
	if l.isNull() {
		return nil
	}
	return l.object("x_report", func(key []byte) error {
		var err error
		switch string(key) {
		case "from_peers_bytes":
			r.FromPeersBytes, err = l.readCount("x_report.from_peers_bytes")
		case "from_edge_bytes":
			r.FromEdgeBytes, err = l.readCount("x_report.from_edge_bytes")
		case "uploaded_bytes":
			r.UploadedBytes, err = l.readCount("x_report.uploaded_bytes")
		case "bad_chunks":
			if l.isNull() {
				return nil
			}
			err = l.array("x_report.bad_chunks", func(i int) error {
				if i >= MaxBadChunks {
					return errorf("x_report.bad_chunks", "more than "+strconv.Itoa(MaxBadChunks)+" entries")
				}
				return r.parseBadChunk(l)
			})
		default:
			_, err = l.skip("x_report")
		}
		return err
	})
}

func (r *Report) parseBadChunk(l *lexer) error {
	var bc BadChunk
	var hasPeer bool
	bc.Chunk = -1
	err := l.object("x_report.bad_chunks[]", func(key []byte) error {
		var err error
		switch string(key) {
		case "peer_id":
			bc.PeerID, err = l.readID("x_report.bad_chunks[].peer_id")
			hasPeer = true
		case "object":
			bc.Object, err = l.readShort("x_report.bad_chunks[].object")
		case "chunk":
			bc.Chunk, err = l.readCount("x_report.bad_chunks[].chunk")
		default:
			_, err = l.skip("x_report.bad_chunks[]")
		}
		return err
	})
	if err != nil {
		return err
	}
	if !hasPeer {
		return errorf("x_report.bad_chunks[].peer_id", "required")
	}
	if bc.Chunk < 0 {
		return errorf("x_report.bad_chunks[].chunk", "required")
	}
	r.BadChunks = append(r.BadChunks, bc)
	return nil
}

func (r *Report) appendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	for _, kv := range []struct {
		k string
		v int64
	}{{"from_peers_bytes", r.FromPeersBytes}, {"from_edge_bytes", r.FromEdgeBytes}, {"uploaded_bytes", r.UploadedBytes}} {
		if kv.v >= 0 {
			sep()
			b = appendString(b, kv.k)
			b = append(b, ':')
			b = strconv.AppendInt(b, kv.v, 10)
		}
	}
	if len(r.BadChunks) > 0 {
		sep()
		b = append(b, `"bad_chunks":[`...)
		for i, bc := range r.BadChunks {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"peer_id":`...)
			b = bc.PeerID.AppendJSON(b)
			b = append(b, `,"object":`...)
			b = appendString(b, bc.Object)
			b = append(b, `,"chunk":`...)
			b = strconv.AppendInt(b, bc.Chunk, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// Policy is x_policy: what the edge asks of one session, pushed whenever the
// policy loop changes it. Its values are decided by peerassist/policy; the
// coordinator only carries them. A client keeps the last policy it received.
type Policy struct {
	// UploadBudgetBps is the rate in bits/s the peer may upload to other
	// peers (its share of its capacity); 0 means do not upload.
	UploadBudgetBps int64
	// EdgeAllowanceBps is the rate in bits/s the session may draw from the
	// edge for non-urgent fetches; -1 means no limit, 0 means urgent
	// fetches only.
	EdgeAllowanceBps int64
	// UsePeers asks the client to fetch from peers before the edge.
	UsePeers bool
	// Reason says why, for logs and the demo page ("ebu-cap", "hungry").
	Reason string
	// SlurpieProbability is the probability, in (0, 1], with which the
	// peer fetches a chunk nobody in its swarm holds from the edge in one
	// round (Slurpie's k/n); 0 means not given (the client uses its own
	// k/n from the swarm size).
	SlurpieProbability float64
}

// AppendJSON appends the policy object.
func (p *Policy) AppendJSON(b []byte) []byte {
	b = append(b, `{"upload_budget_bps":`...)
	b = strconv.AppendInt(b, p.UploadBudgetBps, 10)
	b = append(b, `,"edge_allowance_bps":`...)
	b = strconv.AppendInt(b, p.EdgeAllowanceBps, 10)
	b = append(b, `,"use_peers":`...)
	b = strconv.AppendBool(b, p.UsePeers)
	if p.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, p.Reason)
	}
	if p.SlurpieProbability > 0 && p.SlurpieProbability <= 1 {
		b = append(b, `,"slurpie_probability":`...)
		b = strconv.AppendFloat(b, p.SlurpieProbability, 'g', -1, 64)
	}
	return append(b, '}')
}

func (p *Policy) parse(l *lexer) error {
	*p = Policy{EdgeAllowanceBps: -1}
	return l.object("x_policy", func(key []byte) error {
		var err error
		switch string(key) {
		case "upload_budget_bps":
			p.UploadBudgetBps, err = l.readCount("x_policy.upload_budget_bps")
			p.UploadBudgetBps = max(p.UploadBudgetBps, 0)
		case "edge_allowance_bps":
			var f float64
			if l.isNull() {
				return nil
			}
			f, err = l.readNumber("x_policy.edge_allowance_bps")
			if err == nil && (f < -1 || f > 1<<53) {
				err = errorf("x_policy.edge_allowance_bps", "want -1 or a non-negative integer")
			}
			p.EdgeAllowanceBps = int64(f)
		case "use_peers":
			p.UsePeers, err = l.readBool("x_policy.use_peers")
		case "reason":
			p.Reason, err = l.readShort("x_policy.reason")
		case "slurpie_probability":
			if l.isNull() {
				return nil
			}
			p.SlurpieProbability, err = l.readNumber("x_policy.slurpie_probability")
			if err == nil && !(p.SlurpieProbability >= 0 && p.SlurpieProbability <= 1) {
				err = errorf("x_policy.slurpie_probability", "want a probability in [0, 1]")
			}
		default:
			_, err = l.skip("x_policy")
		}
		return err
	})
}
