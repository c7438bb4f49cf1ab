package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/signal"
)

func TestSessionsAndAttribution(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("attribution")
	a := e.mustDial("127.1.0.1")
	r := a.join(sw)
	if len(r.Session) != 22 {
		t.Fatalf("x_session %q, want 22 characters", r.Session)
	}
	// The session is stable across announces on the connection.
	a.announce(sw, signal.EventUpdate, 0, 0, nil)
	if r2 := a.mustRecv(signal.KindAnnounce); r2.Session != r.Session {
		t.Errorf("second announce: session %q, want %q", r2.Session, r.Session)
	}

	e.co.Served(r.Session, "video", "/seg1.ts", 1000)
	e.co.Served(r.Session, "video", "/seg2.ts", 500)
	e.co.Served("unknown-session", "video", "/seg3.ts", 700)
	info, ok := e.co.Session(r.Session)
	if !ok || info.EdgeServedBytes != 1500 || !info.Connected || info.Swarm.InfoHash != sw || info.Swarm.Region != "paris" {
		t.Errorf("Session = %+v, %v; want 1500 bytes served, connected, swarm paris/%x", info, ok, sw)
	}
	swarms := e.co.Swarms()
	if len(swarms) != 1 || swarms[0].EdgeServedBytes != 1500 {
		t.Errorf("Swarms = %+v, want one with 1500 edge bytes", swarms)
	}
	if got := e.co.unknownServed.Load(); got != 700 {
		t.Errorf("unknown sessions served %d, want 700", got)
	}

	// Admission: everything until a hook is installed; unknown sessions
	// always.
	if ok, _, _ := e.co.Admit(r.Session, false); !ok {
		t.Error("Admit without a hook refused")
	}
	e.co.SetAdmission(func(s SessionInfo, urgent bool) (bool, time.Duration, string) {
		if urgent || s.EdgeServedBytes < 1000 {
			return true, 0, ""
		}
		return false, 2 * time.Second, "ebu-cap"
	})
	if ok, retry, reason := e.co.Admit(r.Session, false); ok || retry != 2*time.Second || reason != "ebu-cap" {
		t.Errorf("Admit(non-urgent) = %v, %v, %q; want refused by the hook", ok, retry, reason)
	}
	if ok, _, _ := e.co.Admit(r.Session, true); !ok {
		t.Error("Admit(urgent) refused")
	}
	if ok, _, _ := e.co.Admit("unknown-session", false); !ok {
		t.Error("Admit(unknown) refused")
	}
	e.co.SetAdmission(nil)

	// Reports update the session and the swarm.
	a.announce(sw, signal.EventUpdate, 0, 0, func(r *signal.Request) {
		r.Report = &signal.Report{FromPeersBytes: 4000, FromEdgeBytes: 1500, UploadedBytes: 100}
	})
	a.mustRecv(signal.KindAnnounce)
	a.announce(sw, signal.EventUpdate, 0, 0, func(r *signal.Request) {
		r.Report = &signal.Report{FromPeersBytes: 5000, FromEdgeBytes: -1, UploadedBytes: 300}
	})
	a.mustRecv(signal.KindAnnounce)
	info, _ = e.co.Session(r.Session)
	if info.FromPeersBytes != 5000 || info.FromEdgeBytes != 1500 || info.UploadedBytes != 300 || info.LastReport.IsZero() {
		t.Errorf("after reports: %+v", info)
	}
	if s := e.co.Swarms()[0]; s.FromPeersBytes != 5000 || s.UploadedBytes != 300 {
		t.Errorf("swarm after reports: %+v", s)
	}
	// Counters must not go down.
	a.announce(sw, signal.EventUpdate, 0, 0, func(r *signal.Request) {
		r.Report = &signal.Report{FromPeersBytes: 10, FromEdgeBytes: -1, UploadedBytes: -1}
	})
	if f := a.mustRecv(signal.KindFailure); !strings.Contains(f.Failure, "must not decrease") {
		t.Errorf("decreasing report: %q", f.Failure)
	}
	a.mustRecv(signal.KindAnnounce) // the announce itself still counts

	// Policy push.
	pol := signal.Policy{UploadBudgetBps: 500_000, EdgeAllowanceBps: -1, UsePeers: true, Reason: "test"}
	if err := e.co.PushPolicy(r.Session, pol); err != nil {
		t.Fatal(err)
	}
	p := a.mustRecv(signal.KindPolicy)
	if p.InfoHash != sw || p.Policy == nil || *p.Policy != pol {
		t.Errorf("policy message = %+v / %+v", p, p.Policy)
	}
	if err := e.co.PushPolicy("nope", pol); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("PushPolicy(unknown) = %v", err)
	}

	// Reconnecting with x_session resumes the session; its peer_id, still
	// bound to the dead socket if the server has not seen it close yet,
	// may be taken over by the same session.
	a.ws.Close()
	waitFor(t, func() bool { i, _ := e.co.Session(r.Session); return !i.Connected })
	if err := e.co.PushPolicy(r.Session, pol); !errors.Is(err, ErrNotConnected) {
		t.Errorf("PushPolicy(detached) = %v, want ErrNotConnected", err)
	}
	a2 := e.mustDial("127.1.0.1")
	a2.id = a.id
	a2.announce(sw, signal.EventStarted, 0, 0, func(req *signal.Request) { req.Session = r.Session })
	if r3 := a2.mustRecv(signal.KindAnnounce); r3.Session != r.Session {
		t.Errorf("resumed session %q, want %q", r3.Session, r.Session)
	}
	info, _ = e.co.Session(r.Session)
	if info.EdgeServedBytes != 1500 || !info.Connected {
		t.Errorf("resumed session lost its counters: %+v", info)
	}
	// A live session cannot be claimed by another connection.
	b := e.mustDial("127.1.0.2")
	b.announce(sw, signal.EventStarted, 0, 0, func(req *signal.Request) { req.Session = r.Session })
	if r4 := b.mustRecv(signal.KindAnnounce); r4.Session == r.Session {
		t.Error("another connection took over a live session")
	}
	if n := len(e.co.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

func TestPeerIDTakeoverBySameSession(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("takeover")
	a := e.mustDial("127.1.0.1")
	r := a.join(sw)
	// A second connection of the same client (its first one looks alive to
	// the server) may take the peer_id over by presenting the session.
	a2 := e.mustDial("127.1.0.1")
	a2.id = a.id
	a2.announce(sw, signal.EventStarted, 0, 0, nil)
	if f := a2.mustRecv(signal.KindFailure); !strings.Contains(f.Failure, "in use") {
		t.Errorf("without the session: %q", f.Failure)
	}
	a2.announce(sw, signal.EventStarted, 0, 0, func(req *signal.Request) { req.Session = r.Session })
	if r2 := a2.mustRecv(signal.KindAnnounce); r2.Incomplete != 1 {
		t.Errorf("after takeover: incomplete %d, want 1", r2.Incomplete)
	}
}

func TestSessionsExpire(t *testing.T) {
	cfg := testConfig()
	cfg.AnnounceInterval.UnmarshalText([]byte("100ms"))
	cfg.PeerTimeout.UnmarshalText([]byte("300ms"))
	e := startEdge(t, cfg, nil)
	a := e.mustDial("127.1.0.1")
	r := a.join(ih("expire"))
	a.ws.Close()
	waitFor(t, func() bool { _, ok := e.co.Session(r.Session); return !ok })
}
