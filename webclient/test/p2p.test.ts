// The P2P engine against in-memory WebRTC and a scriptable tracker:
// crossing offers, malformed signaling, upload turned off and on by
// navigator.connection.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { FakePeerConnection, FakeTracker, FakeWebSocket, installFakes, tick, until } from "./fakes";
import { Client, PeerEvent } from "../src/client";
import { keepNewConnection } from "../src/p2p";

const { connection } = installFakes();

let clients: Client[] = [];
let tracker: FakeTracker;
const problems: string[] = [];
const onProblem = (e: unknown) => problems.push(String(e));
process.on("uncaughtException", onProblem);
process.on("unhandledRejection", onProblem);

beforeEach(() => {
  FakePeerConnection.reset();
  tracker = FakeWebSocket.tracker = new FakeTracker();
  connection.saveData = false;
  connection.type = "wifi";
  problems.length = 0;
});

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients = [];
  await tick(150);
  assert.deepEqual(problems, [], "nothing thrown out of the client");
});

interface Engine {
  peerId: string;
  peers: Map<string, { offered: boolean; available: boolean; open: boolean }>;
  serving(): boolean;
}

function newClient(logs?: string[]): { c: Client; engine: Engine; events: PeerEvent[] } {
  const sink = (...a: unknown[]) => logs?.push(a.join(" "));
  const c = new Client({
    edge: "http://edge.test",
    announceURL: "ws://edge.test/pa/v1/announce",
    swarm: "http://edge.test/vod/sample/master.m3u8",
    logger: { debug: sink, info: sink, warn: sink, error: sink },
    logLevel: logs ? "debug" : "silent",
  });
  clients.push(c);
  const events: PeerEvent[] = [];
  c.on("peer", (e) => events.push(e));
  return { c, engine: (c as unknown as { engine: Engine }).engine, events };
}

/** Waits until both clients announced with offers the tracker holds. */
async function announced(...es: Engine[]): Promise<void> {
  await until(() => es.every((e) => tracker.offers.some((o) => o.from === e.peerId)), "announces with offers");
}

test("keepNewConnection keeps the connection whose offerer has the smaller peer_id", () => {
  const lo = "\x00".repeat(19) + "\x01";
  const hi = "\x00".repeat(19) + "\xff";
  const cases: [string, string, string, boolean, boolean, boolean][] = [
    // self, remote, oldOffered, newOffered, want (new replaces old)
    ["we are smaller, old ours", lo, hi, true, false, false],
    ["we are smaller, new ours", lo, hi, false, true, true],
    ["we are larger, old ours", hi, lo, true, false, true],
    ["we are larger, new ours", hi, lo, false, true, false],
    ["both ours: keep the old", lo, hi, true, true, false],
    ["both theirs: keep the old", lo, hi, false, false, false],
  ];
  for (const [name, self, remote, oldOffered, newOffered, want] of cases) {
    assert.equal(keepNewConnection(self, remote, oldOffered, newOffered), want, name);
    // The other side, seeing the same two connections, decides alike.
    const other = keepNewConnection(remote, self, !oldOffered, !newOffered);
    if (oldOffered !== newOffered) assert.equal(other, want, name + " (other side)");
  }
  // Bytewise: a high first byte is larger whatever follows.
  assert.equal(keepNewConnection("\x80" + "\x00".repeat(19), "\x7f" + "\xff".repeat(19), true, false), true);
});

for (const order of ["answers relayed as they come", "answers relayed after both were made"]) {
  test(`crossing offers (${order}): both sides keep the same one connection`, async () => {
    tracker.autoAnswers = order.includes("as they come");
    const a = newClient();
    const b = newClient();
    await announced(a.engine, b.engine);
    // Each one's offer reaches the other at the same time.
    tracker.relayOffer(a.engine.peerId, b.engine.peerId);
    tracker.relayOffer(b.engine.peerId, a.engine.peerId);
    if (!tracker.autoAnswers) {
      await until(() => tracker.answers.length === 2, "both answers");
      tracker.relayAnswers();
    }
    await until(() => a.c.stats().peersConnected === 1 && b.c.stats().peersConnected === 1, "one neighbor each");
    await tick(100); // Closing the loser reaches the other side.
    assert.equal(a.c.stats().peersConnected, 1, "a: neighbors");
    assert.equal(b.c.stats().peersConnected, 1, "b: neighbors");
    assert.equal(FakePeerConnection.all.filter((pc) => pc.live).length, 2, "one live connection (two ends)");
    const pa = a.engine.peers.get(b.engine.peerId)!;
    const pb = b.engine.peers.get(a.engine.peerId)!;
    const aSmaller = a.engine.peerId < b.engine.peerId;
    assert.equal(pa.offered, aSmaller, "a keeps the connection offered by the smaller peer_id");
    assert.equal(pb.offered, !aSmaller, "b keeps the same connection");
    assert.ok(pa.available && pb.available, "HELLO went over the kept connection both ways");
    for (const [name, ev] of [["a", a.events], ["b", b.events]] as const) {
      const up = ev.filter((e) => e.state === "connected").length - ev.filter((e) => e.state !== "connected").length;
      assert.equal(up, 1, `${name}: connected minus disconnected events ${JSON.stringify(ev)}`);
    }
  });
}

test("an offer from a neighbor we already have is ignored; the connection stays", async () => {
  const a = newClient();
  const b = newClient();
  await announced(a.engine, b.engine);
  tracker.relayOffer(a.engine.peerId, b.engine.peerId);
  await until(() => a.c.stats().peersConnected === 1 && b.c.stats().peersConnected === 1, "connected");
  // The coordinator relays another offer between the same two.
  await until(() => tracker.offers.some((o) => o.from === b.engine.peerId), "another offer");
  tracker.relayOffer(b.engine.peerId, a.engine.peerId);
  await tick(100);
  assert.equal(a.c.stats().peersConnected, 1);
  assert.equal(b.c.stats().peersConnected, 1);
  assert.equal(FakePeerConnection.all.filter((pc) => pc.live).length, 2);
});

test("malformed signaling is logged and dropped; the client keeps working", async () => {
  const logs: string[] = [];
  const a = newClient(logs);
  const b = newClient();
  await announced(a.engine, b.engine);
  const ih = tracker.offers[0].infoHash;
  const from = "\x01".repeat(20);
  const ours = tracker.offers.find((o) => o.from === a.engine.peerId)!;
  const garbage: (string | ArrayBuffer)[] = [
    "{",
    "[]",
    "null",
    '"announce"',
    new Uint8Array([1, 2, 3]).buffer,
    JSON.stringify({ action: "announce", info_hash: ih, interval: "soon" }),
    JSON.stringify({ action: "announce", info_hash: "short", interval: 120 }),
    JSON.stringify({ action: "announce", info_hash: ih, x_policy: { upload_budget_bps: "a lot" } }),
    JSON.stringify({ action: "announce", info_hash: ih, offer: { type: "offer", sdp: "x".repeat(1 << 20) }, offer_id: from, peer_id: from }),
    // An offer whose SDP the browser cannot apply.
    JSON.stringify({ action: "announce", info_hash: ih, offer: { type: "offer", sdp: "v=0 junk" }, offer_id: from, peer_id: from }),
    // An answer to an offer we never made, and a broken one to one we made.
    JSON.stringify({ action: "announce", info_hash: ih, answer: { type: "answer", sdp: "v=0 junk" }, offer_id: from, peer_id: from }),
    JSON.stringify({ action: "announce", info_hash: ih, answer: { type: "answer", sdp: "v=0 junk" }, offer_id: ours.offerId, peer_id: from }),
    JSON.stringify({ "failure reason": "rate limit exceeded" }),
    JSON.stringify({ action: "scrape", files: 7 }),
  ];
  for (const g of garbage) tracker.byPeerPush(a.engine.peerId, g);
  await tick(100);
  assert.equal(a.c.stats().peersConnected, 0);
  assert.ok(logs.some((l) => l.includes("malformed JSON")), "malformed JSON logged");
  assert.ok(logs.some((l) => l.includes("signaling refused: rate limit exceeded")), "failure reason logged");
  assert.ok(logs.some((l) => l.includes("bad offer")), "unusable offer logged");
  // Still works: a real offer connects.
  tracker.relayOffer(b.engine.peerId, a.engine.peerId);
  await until(() => a.c.stats().peersConnected === 1 && b.c.stats().peersConnected === 1, "connected after the garbage");
});

test("connections that never form are given up without errors; no neighbor, no upload", async () => {
  FakePeerConnection.connectable = false;
  const a = newClient();
  const b = newClient();
  await announced(a.engine, b.engine);
  tracker.relayOffer(a.engine.peerId, b.engine.peerId);
  await until(() => tracker.answers.length === 0 && FakePeerConnection.all.some((pc) => pc.remoteDescription?.type === "answer"), "answer applied");
  await tick(50);
  assert.equal(a.c.stats().peersConnected, 0);
  assert.equal(b.c.stats().peersConnected, 0);
  assert.equal(a.c.stats().p2p, "connecting");
});

test("navigator.connection: data saver and cellular turn upload off, and back on", async () => {
  const a = newClient();
  await until(() => tracker.received.some((r) => r.msg.peer_id === a.engine.peerId), "first announce");
  assert.equal(a.c.stats().uploadAllowed, true);
  assert.ok(a.engine.serving());
  const lastCaps = () => [...tracker.received].reverse().find((r) => r.msg.x_caps)?.msg.x_caps;
  const steps: [string, { saveData?: boolean; type?: string }, boolean][] = [
    ["data saver on", { saveData: true }, false],
    ["data saver off", { saveData: false }, true],
    ["cellular", { type: "cellular" }, false],
    ["wifi", { type: "wifi" }, true],
  ];
  for (const [name, fields, want] of steps) {
    const before = tracker.received.length;
    connection.set(fields);
    assert.equal(a.c.stats().uploadAllowed, want, name + ": stats");
    assert.equal(a.engine.serving(), want, name + ": serving");
    assert.equal(a.c.stats().uploadBudgetBps > 0, want, name + ": budget");
    // The edge hears of it (x_caps.upload) within about a second.
    await until(() => tracker.received.length > before && lastCaps()?.upload === want, name + ": announce with x_caps.upload " + want, 3000);
  }
});

test("upload: false is not changed by navigator.connection", async () => {
  const c = new Client({ edge: "http://edge.test", announceURL: "ws://edge.test/a", swarm: "s", upload: false, logLevel: "silent" });
  clients.push(c);
  connection.set({ saveData: false });
  assert.equal(c.stats().uploadAllowed, false);
});
