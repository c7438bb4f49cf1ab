/**
 * The P2P engine of a Client: signaling, neighbor connections, what the
 * fetcher asks of the swarm (SwarmView), upload pacing at the edge's
 * budget, and reports (x_report) to the coordinator.
 *
 * @internal Single-threaded; one per Client.
 */
import type { Client, P2PEngine, Stats } from "./client";
import type { PeerSource } from "./fetcher";
import { UploadMeter } from "./meter";
import { Pacer } from "./pacer";
import { Peer, PeerHooks } from "./peer";
import { Caps, idHex, Incoming, infoHashOf, Policy, randomID, Report, Tracker } from "./signal";
import { errorText, sleep } from "./util";

/** How long an offer waits for an answer. */
const offerTTLms = 50_000;
/** How long a connection may take to open its channel before it is given up. */
const connectTimeoutMs = 20_000;
/** How long ICE gathering may take before an SDP is sent anyway. */
const iceGatherMs = 3000;
/** Re-announce this often while short of neighbors. */
const hungryAnnounceMs = 8000;
/** Default upload capacity assumed when none is declared: 10 Mbit/s. */
const defaultUploadBps = 10_000_000;
const peerIdPrefix = "-PA0100-";
/** A new neighbor's bitfields arrive within this; chunks wait for them. */
const warmupMs = 400;
/** How long after joining a client waits for its first neighbor before going edge-only until one connects. */
const maxWarmMs = 15_000;
/** How often the measured upload capacity is looked at; a change of more than capsChange is announced. */
const capsCheckMs = 5000;
const capsChange = 0.25;
/**
 * A new stream bitrate is announced at once, but no sooner than this after
 * the previous announce: a player switching levels back and forth costs
 * the edge one announce per gap, not one per segment.
 */
const bitrateAnnounceGapMs = 2000;

export class P2P implements P2PEngine, PeerHooks {
  private readonly tracker: Tracker;
  private readonly peerId = randomID(peerIdPrefix);
  private infoHash: string | undefined;
  private swarmName: string;
  /** Neighbors whose channel is open, one per binary peer_id. */
  private readonly peers = new Map<string, Peer>();
  /** Connections whose channel is not open yet (answered offers, answers to ours). */
  private readonly connecting = new Set<Peer>();
  private readonly offers = new Map<string, { pc: RTCPeerConnection; dc: RTCDataChannel; timer: ReturnType<typeof setTimeout> }>();
  private readonly banned = new Set<string>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly badChunks: { peer_id: string; object: string; chunk: number }[] = [];
  private readonly pacer: Pacer;
  private readonly meter = new UploadMeter();
  private readonly capsTimer: ReturnType<typeof setInterval>;
  private announcedCapacityBps = 0;
  private policy: Policy | undefined;
  private swarmPeers = 1;
  private intervalMs = 120_000;
  private announceTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the pending announce is due (Date.now() clock); Infinity when none is. */
  private announceDue = Infinity;
  private reportTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the last announce was sent (Date.now() clock). */
  private lastAnnounceAt = -Infinity;
  /** Announces being prepared (offers gathering): they send the caps current when they go. */
  private preparing = 0;
  private destroyed = false;
  private started = false;
  private lastOpen = 0;
  private readonly startedAt = Date.now();

  constructor(private readonly client: Client, swarm: string) {
    this.swarmName = swarm;
    this.pacer = new Pacer(this.budgetBps());
    this.capsTimer = setInterval(() => this.checkCapacity(), capsCheckMs);
    this.client.fetcher.store.onEvict = () => {};
    this.tracker = new Tracker(client.opts.announceURL, client.log);
    this.tracker.onOpen = () => {
      this.started = false;
      this.announce("started");
    };
    this.tracker.onMessage = (m) => this.onSignal(m);
    infoHashOf(swarm)
      .then((h) => {
        this.infoHash = h;
        if (this.tracker.open) this.announce("started");
      })
      .catch((err) => client.log.warn("swarm id:", errorText(err)));
  }

  /**
   * The upload capacity we report (x_caps.upload_bps): the declared one,
   * or the measured one when the network showed less (or nothing was
   * declared); 0 when neither is known.
   */
  private capacityBps(): number {
    const declared = this.client.opts.uploadCapacityBps;
    const measured = this.meter.estimateBps();
    return measured > 0 && (declared === 0 || measured < declared) ? measured : declared;
  }

  /** The upload budget: 0 when uploads are off, else the edge's, else our share of the capacity. */
  private budgetBps(): number {
    if (!this.client.uploadAllowed()) return 0;
    if (this.policy && this.policy.uploadBudgetBps >= 0) return this.policy.uploadBudgetBps;
    return (this.capacityBps() || defaultUploadBps) * this.client.opts.uploadFraction;
  }

  /** Tells the edge when the measured capacity moved by more than capsChange since last announced. */
  private checkCapacity(): void {
    const c = this.capacityBps();
    const was = this.announcedCapacityBps;
    if (c === was || (was > 0 && c > 0 && Math.abs(c - was) <= capsChange * was)) return;
    this.client.log.info(`upload capacity ${c ? Math.round(c / 1000) + " kbit/s" : "unknown"} (was ${was ? Math.round(was / 1000) + " kbit/s" : "unknown"})`);
    this.pacer.setBudget(this.budgetBps());
    this.scheduleAnnounceSoon();
  }

  /** Upload was turned off or on (navigator.connection changed): pace, and tell the edge. */
  uploadChanged(allowed: boolean): void {
    this.pacer.setBudget(this.budgetBps());
    this.client.log.info(`upload ${allowed ? "on" : "off"}`);
    // Neighbors that connected while upload was off were told we serve
    // nothing (HELLO) and ask elsewhere; new neighbors are told we serve.
    this.scheduleAnnounceSoon();
  }

  /** The declared stream bitrate changed: tell the edge at once, paced (bitrateAnnounceGapMs). */
  bitrateChanged(): void {
    if (this.destroyed || this.preparing > 0) return;
    this.scheduleAnnounce(Math.max(0, this.lastAnnounceAt + bitrateAnnounceGapMs - Date.now()));
  }

  setSwarm(name: string): void {
    if (name === this.swarmName) return;
    this.swarmName = name;
    if (this.infoHash) this.announce("stopped");
    for (const p of this.allPeers()) p.close("swarm changed");
    this.infoHash = undefined;
    infoHashOf(name).then((h) => {
      if (this.swarmName !== name) return;
      this.infoHash = h;
      this.started = false;
      this.announce("started");
    });
  }

  // ---- signaling

  private caps(): Caps {
    this.announcedCapacityBps = this.capacityBps();
    const c: Caps = { upload_bps: this.announcedCapacityBps, upload: this.client.uploadAllowed(), device: "desktop" };
    if (this.client.bitrateBps > 0) c.bitrate_bps = this.client.bitrateBps;
    return c;
  }

  private report(): Report {
    const c = this.client.counters;
    const r: Report = { from_peers_bytes: c.bytesFromPeers, from_edge_bytes: c.bytesFromEdge, uploaded_bytes: c.bytesUploaded };
    if (this.badChunks.length) r.bad_chunks = this.badChunks.splice(0, 32);
    return r;
  }

  private async announce(event: "started" | "update" | "stopped"): Promise<void> {
    if (this.destroyed && event !== "stopped") return;
    const infoHash = this.infoHash;
    if (!infoHash || !this.tracker.open) return;
    if (event === "started") {
      if (this.started) event = "update";
      this.started = true;
    }
    this.cancelAnnounce();
    const want = event === "stopped" ? 0 : Math.max(0, Math.min(this.client.opts.maxPeers - this.remotes() - this.offers.size, 5));
    let offers: Awaited<ReturnType<P2P["makeOffers"]>> = [];
    if (want > 0) {
      this.preparing++;
      try {
        offers = await this.makeOffers(want);
      } finally {
        this.preparing--;
      }
    }
    if (this.infoHash !== infoHash && event !== "stopped") return;
    const msg: Record<string, unknown> = {
      action: "announce",
      info_hash: infoHash,
      peer_id: this.peerId,
      event: event === "update" ? undefined : event,
      numwant: want,
      uploaded: this.client.counters.bytesUploaded,
      downloaded: this.client.counters.bytesFromPeers + this.client.counters.bytesFromEdge,
      offers,
      x_caps: this.caps(),
      x_report: this.report(),
    };
    if (this.client.sessionId) msg.x_session = this.client.sessionId;
    if (this.tracker.send(msg)) this.lastAnnounceAt = Date.now();
    if (event !== "stopped") this.scheduleAnnounce();
  }

  /**
   * Schedules the next announce after delayMs (default: soon while short
   * of neighbors, else the tracker's interval). A sooner one already
   * pending stays: an announce reply must not postpone the announce that
   * tells the edge of a change.
   */
  private scheduleAnnounce(delayMs?: number): void {
    if (this.destroyed) return;
    const hungry = this.peers.size < Math.min(2, this.swarmPeers - 1);
    const d = delayMs ?? (hungry ? hungryAnnounceMs : this.intervalMs);
    const due = Date.now() + d;
    if (this.announceTimer !== undefined && this.announceDue <= due) return;
    clearTimeout(this.announceTimer);
    this.announceDue = due;
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined;
      this.announceDue = Infinity;
      void this.announce("update");
    }, d);
  }

  private cancelAnnounce(): void {
    clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    this.announceDue = Infinity;
  }

  private newPC(): RTCPeerConnection {
    return new RTCPeerConnection({ iceServers: this.client.opts.iceServers });
  }

  private async makeOffers(n: number): Promise<{ offer_id: string; offer: { type: string; sdp: string } }[]> {
    const out: { offer_id: string; offer: { type: string; sdp: string } }[] = [];
    await Promise.all(
      Array.from({ length: n }, async () => {
        let pc: RTCPeerConnection | undefined;
        try {
          pc = this.newPC();
          const dc = pc.createDataChannel("peerassist", { ordered: true });
          await pc.setLocalDescription(await pc.createOffer());
          await gathered(pc);
          const offerId = randomID();
          const thePC = pc;
          const timer = setTimeout(() => {
            if (this.offers.get(offerId)?.pc === thePC) {
              this.offers.delete(offerId);
              thePC.close();
            }
          }, offerTTLms);
          this.offers.set(offerId, { pc, dc, timer });
          out.push({ offer_id: offerId, offer: { type: "offer", sdp: pc.localDescription!.sdp } });
        } catch (err) {
          pc?.close();
          this.client.log.info("creating an offer:", errorText(err));
        }
      }),
    );
    return out;
  }

  private onSignal(m: Incoming): void {
    if (m.kind === "failure") {
      this.client.log.warn("signaling refused:", m.reason);
      return;
    }
    if (m.kind === "ignored" || m.infoHash !== this.infoHash) return;
    switch (m.kind) {
      case "announce":
        if (m.session) this.client.sessionId = m.session;
        this.intervalMs = Math.max(10_000, Math.min(m.interval * 1000, 600_000));
        this.swarmPeers = Math.max(1, m.complete + m.incomplete);
        if (m.policy) this.applyPolicy(m.policy);
        this.scheduleAnnounce();
        return;
      case "policy":
        return this.applyPolicy(m.policy);
      case "offer":
        this.answerOffer(m.peerId, m.offerId, m.offer.sdp).catch((err) => this.client.log.info("answering an offer:", errorText(err)));
        return;
      case "answer": {
        const o = this.offers.get(m.offerId);
        if (!o) return;
        this.offers.delete(m.offerId);
        clearTimeout(o.timer);
        // An answer from a neighbor we already have, or a second one from
        // a peer we are connecting to through our own offer, is not needed.
        // One from a peer whose offer we answered is a crossing: both
        // connections go ahead and accept() keeps one when they open.
        if (this.banned.has(m.peerId) || this.peers.has(m.peerId) || m.peerId === this.peerId || this.isConnecting(m.peerId, true)) {
          o.pc.close();
          return;
        }
        const peer = this.addPeer(m.peerId, o.pc, true);
        peer.attach(o.dc);
        o.pc.setRemoteDescription({ type: "answer", sdp: m.answer.sdp }).catch((err) => peer.drop("bad answer: " + errorText(err)));
        return;
      }
    }
  }

  private applyPolicy(p: Policy): void {
    this.policy = p;
    this.pacer.setBudget(this.budgetBps());
    this.client.edgeHTTP.setEdgeAllowance(p.edgeAllowanceBps);
  }

  private async answerOffer(peerId: string, offerId: string, sdp: string): Promise<void> {
    // Offers from a neighbor we already have, or a second one from a peer
    // whose offer we are answering, are ignored. An offer from a peer that
    // answered ours is a crossing: answered too (see accept).
    if (this.banned.has(peerId) || this.peers.has(peerId) || peerId === this.peerId || this.isConnecting(peerId, false)) return;
    if (!this.isConnecting(peerId, true) && this.remotes() >= this.client.opts.maxPeers) return;
    const infoHash = this.infoHash;
    const pc = this.newPC();
    const peer = this.addPeer(peerId, pc, false);
    pc.ondatachannel = (e) => peer.attach(e.channel);
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
    } catch (err) {
      peer.drop("bad offer: " + errorText(err));
      return;
    }
    if (peer.closed || infoHash !== this.infoHash) return;
    this.tracker.send({
      action: "announce",
      info_hash: infoHash,
      peer_id: this.peerId,
      to_peer_id: peerId,
      offer_id: offerId,
      answer: { type: "answer", sdp: pc.localDescription!.sdp },
    });
  }

  private addPeer(peerId: string, pc: RTCPeerConnection, offered: boolean): Peer {
    const p = new Peer(peerId, idHex(peerId), pc, offered, this.client.fetcher.store, this.pacer, this, this.client.log, this.meter);
    this.connecting.add(p);
    // A connection that never opens (ICE fails, hidden addresses that do
    // not resolve) is given up; the edge serves meanwhile.
    p.giveUpUnlessOpenWithin(connectTimeoutMs);
    return p;
  }

  /** Whether a connection to peerId through our offer (offered) or its offer is under way. */
  private isConnecting(peerId: string, offered: boolean): boolean {
    for (const p of this.connecting) if (p.peerId === peerId && p.offered === offered) return true;
    return false;
  }

  /** Distinct peers we are connected or connecting to. */
  private remotes(): number {
    const ids = new Set(this.peers.keys());
    for (const p of this.connecting) ids.add(p.peerId);
    return ids.size;
  }

  private allPeers(): Peer[] {
    return [...this.peers.values(), ...this.connecting];
  }

  // ---- PeerHooks

  accept(p: Peer): string | undefined {
    this.connecting.delete(p);
    if (this.destroyed) return "client destroyed";
    if (this.banned.has(p.peerId)) return "banned";
    const old = this.peers.get(p.peerId);
    if (old && old !== p) {
      // Offers crossed and both connections opened: keep the one whose
      // offerer has the smaller peer_id, as the other side does.
      if (!keepNewConnection(this.peerId, p.peerId, old.offered, p.offered)) return "offers crossed: the other connection to this peer is kept";
      old.close("replaced by the connection of a crossing offer");
    }
    this.peers.set(p.peerId, p);
    return undefined;
  }

  have(_p: Peer, objectId: string, index: number): void {
    const k = objectId + "/" + index;
    const ws = this.waiters.get(k);
    if (!ws) return;
    this.waiters.delete(k);
    for (const f of ws) f();
  }

  uploaded(p: Peer, n: number): void {
    this.client.uploaded(p.id, n);
  }

  opened(p: Peer): void {
    this.lastOpen = Date.now();
    this.client.counters.peersConnected = this.connected();
    // Waiting chunks look again once the neighbor's announcements are in.
    setTimeout(() => this.wakeAll(), warmupMs);
    this.client.counters.p2p = "on";
    this.client.peerEvent({ peerId: p.id, state: "connected" });
  }

  closed(p: Peer, reason: string): void {
    this.connecting.delete(p);
    const neighbor = this.peers.get(p.peerId) === p;
    if (neighbor) this.peers.delete(p.peerId);
    this.client.counters.peersConnected = this.connected();
    const dropped = reason.startsWith("dropped");
    // A connection that never became a neighbor is not news unless it was dropped.
    if (neighbor || dropped) this.client.peerEvent({ peerId: p.id, state: dropped ? "dropped" : "disconnected", reason });
    if (!this.destroyed && neighbor) this.scheduleAnnounceSoon();
  }

  serving(): boolean {
    return this.client.uploadAllowed() && this.pacer.budgetBps > 0;
  }

  private scheduleAnnounceSoon(): void {
    this.scheduleAnnounce(1000);
  }

  private connected(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.open) n++;
    return n;
  }

  private wakeAll(): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const f of set) f();
  }

  // ---- SwarmView

  warming(): boolean {
    if (Date.now() - this.lastOpen < warmupMs) return true;
    return this.connected() === 0 && this.swarmPeers > 1 && Date.now() - this.startedAt < maxWarmMs;
  }

  holders(objectId: string, index: number): PeerSource[] {
    const out: Peer[] = [];
    for (const p of this.peers.values()) if (p.available && p.has(objectId, index)) out.push(p);
    return out.sort((a, b) => a.inflight - b.inflight || b.rateBytesPerSec - a.rateBytesPerSec);
  }

  neighbors(): number {
    return this.connected();
  }

  size(): number {
    return this.swarmPeers;
  }

  waitHave(objectId: string, index: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const k = objectId + "/" + index;
      let set = this.waiters.get(k);
      if (!set) this.waiters.set(k, (set = new Set()));
      const s = set;
      const done = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        s.delete(done);
        if (s.size === 0 && this.waiters.get(k) === s) this.waiters.delete(k);
        reject(signal.reason ?? new Error("aborted"));
      };
      s.add(done);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  badChunk(src: PeerSource, objectId: string, index: number): void {
    for (const [pid, p] of [...this.peers]) {
      if (p !== src) continue;
      this.banned.add(pid);
      this.badChunks.push({ peer_id: pid, object: objectId, chunk: index });
      p.drop(`chunk ${objectId}/${index} failed verification`);
    }
    // Report soon, but not once per chunk.
    if (!this.reportTimer)
      this.reportTimer = setTimeout(() => {
        this.reportTimer = undefined;
        this.announce("update");
      }, 500);
  }

  stored(objectId: string, index: number): void {
    for (const p of this.peers.values()) p.announce(objectId, index);
  }

  // ---- lifecycle

  stats(s: Stats): void {
    s.peersConnected = this.connected();
    s.swarmSize = this.swarmPeers;
    s.uploadBudgetBps = this.serving() ? this.pacer.budgetBps : 0;
    s.measuredUploadBps = this.meter.estimateBps();
    s.p2p = s.peersConnected > 0 ? "on" : "connecting";
    if (this.policy?.reason) s.p2pOffReason = undefined;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.cancelAnnounce();
    this.client.edgeHTTP.setEdgeAllowance(-1);
    clearTimeout(this.reportTimer);
    clearInterval(this.capsTimer);
    this.announce("stopped").finally(() => sleep(100).then(() => this.tracker.close()));
    for (const o of this.offers.values()) {
      clearTimeout(o.timer);
      o.pc.close();
    }
    this.offers.clear();
    for (const p of this.allPeers()) p.close("client destroyed");
  }
}

/** Resolves when ICE gathering completes, or after iceGatherMs (non-trickle signaling). */
function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, iceGatherMs);
    function done() {
      clearTimeout(t);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Decides between two connections to one remote peer when offers crossed
 * (PROTOCOL.md, "The channel"): keep the one whose offerer has the smaller
 * peer_id, bytewise, so that both sides keep the same one. offered tells
 * whether we (self) were the offerer of the old and of the new connection.
 * Returns whether the new connection replaces the old one; on a tie (both
 * offered by the same side) the old one stays.
 */
export function keepNewConnection(self: string, remote: string, oldOffered: boolean, newOffered: boolean): boolean {
  const oldOfferer = oldOffered ? self : remote;
  const newOfferer = newOffered ? self : remote;
  // Binary strings of code points 0..255 compare bytewise with <.
  return newOfferer < oldOfferer;
}
