// Unit tests of the client's parsers and scheduler, run in Node (see
// TestTypeScript in webclient/assets_test.go). The scheduler runs against a
// real ChunkStore and Fetcher with an in-memory edge (fetch) and swarm.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { parseManifest, ManifestError } from "../src/manifest";
import { parseContentRange, parseRetryAfter, EdgeHTTP, EdgeHTTPError, EdgeRefusedError } from "../src/edge";
import { parseIncoming } from "../src/signal";
import { Fetcher, PeerSource, SwarmView } from "../src/fetcher";
import { ChunkStore } from "../src/store";
import { Log } from "../src/log";
import { now } from "../src/util";

const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

test("parseManifest accepts a valid manifest and refuses bad ones", () => {
  const good = { url: "/a", object_id: "0123456789abcdef", size: 5, chunk_size: 2, sha256: ["a".repeat(64), "b".repeat(64), "c".repeat(64)] };
  assert.equal(parseManifest(good).sha256.length, 3);
  const bad: [string, unknown][] = [
    ["not object", [1]],
    ["object id", { ...good, object_id: "xyz" }],
    ["negative size", { ...good, size: -1 }],
    ["fractional size", { ...good, size: 1.5 }],
    ["zero chunk", { ...good, chunk_size: 0 }],
    ["huge chunk", { ...good, chunk_size: 1 << 30 }],
    ["digest count", { ...good, sha256: ["a".repeat(64)] }],
    ["digest hex", { ...good, sha256: ["z".repeat(64), "b".repeat(64), "c".repeat(64)] }],
    ["digest type", { ...good, sha256: [1, 2, 3] }],
    ["too many chunks", { ...good, size: 2 ** 40, chunk_size: 1 }],
  ];
  for (const [name, doc] of bad) assert.throws(() => parseManifest(doc), ManifestError, name);
});

test("parseContentRange and parseRetryAfter", () => {
  assert.deepEqual(parseContentRange("bytes 0-9/100"), { start: 0, end: 10, total: 100 });
  assert.deepEqual(parseContentRange("bytes 5-5/*"), { start: 5, end: 6, total: undefined });
  for (const bad of [null, "", "bytes 9-0/100", "bytes 0-100/100", "items 0-1/2", "bytes 0-1/x"]) assert.equal(parseContentRange(bad), undefined, String(bad));
  assert.equal(parseRetryAfter("3", 7), 3000);
  assert.equal(parseRetryAfter(null, 7), 7);
  assert.equal(parseRetryAfter("soon", 7), 7);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 7, 4_000), 6000);
});

test("parseIncoming validates tracker messages", () => {
  const ih = "a".repeat(20);
  const cases: [string, string][] = [
    ["{", "ignored"],
    ["[]", "ignored"],
    [JSON.stringify({ "failure reason": "nope" }), "failure"],
    [JSON.stringify({ action: "announce", info_hash: "short", interval: 1 }), "ignored"],
    [JSON.stringify({ action: "announce", info_hash: ih, interval: 120, complete: 1, incomplete: 2, x_session: "s1" }), "announce"],
    [JSON.stringify({ action: "announce", info_hash: ih, offer: { type: "offer", sdp: "v=0" }, offer_id: ih, peer_id: ih }), "offer"],
    [JSON.stringify({ action: "announce", info_hash: ih, offer: { type: "answer", sdp: "v=0" }, offer_id: ih, peer_id: ih }), "ignored"],
    [JSON.stringify({ action: "announce", info_hash: ih, answer: { type: "answer", sdp: "v=0" }, offer_id: ih, peer_id: "\u0100".repeat(20) }), "ignored"],
    [JSON.stringify({ action: "announce", info_hash: ih, x_policy: { upload_budget_bps: 1000, use_peers: true } }), "policy"],
    [JSON.stringify({ action: "announce", info_hash: ih, x_policy: { upload_budget_bps: -5 } }), "ignored"],
    [JSON.stringify({ action: "scrape", files: {} }), "ignored"],
  ];
  for (const [msg, kind] of cases) assert.equal(parseIncoming(msg).kind, kind, msg);
  const a = parseIncoming(JSON.stringify({ action: "announce", info_hash: ih, interval: 120, complete: 1, incomplete: 2, x_session: "s1" }));
  assert.ok(a.kind === "announce" && a.session === "s1" && a.complete + a.incomplete === 3);
});

test("ChunkStore evicts least recently used chunks", () => {
  const s = new ChunkStore(10);
  const evicted: string[] = [];
  s.onEvict = (o, i) => evicted.push(o + "/" + i);
  s.put("o", 0, new Uint8Array(4), "edge");
  s.put("o", 1, new Uint8Array(4), "edge");
  s.get("o", 0);
  s.put("o", 2, new Uint8Array(4), "peer");
  assert.deepEqual(evicted, ["o/1"]);
  assert.deepEqual(s.indexes("o"), [0, 2]);
  assert.equal(s.put("o", 3, new Uint8Array(11), "edge"), false);
});

// ---- scheduler

const chunkBytes = 16;
const object = new Uint8Array(40).map((_, i) => i * 7);
const objectId = "00000000000000aa";
const manifest = {
  url: "/obj",
  object_id: objectId,
  size: object.length,
  chunk_size: chunkBytes,
  sha256: [0, 1, 2].map((i) => hex(object.subarray(i * chunkBytes, Math.min(object.length, (i + 1) * chunkBytes)))),
};

interface EdgeLog { urgent: boolean; range: string | null }

function edgeFetch(log: EdgeLog[], refuse = false): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    if (url.pathname === "/pa/v1/manifest") return new Response(JSON.stringify(manifest), { status: 200 });
    const h = new Headers(init?.headers);
    const urgent = h.get("X-PA-Urgent") === "1" || url.searchParams.get("pa_urgent") === "1";
    log.push({ urgent, range: h.get("Range") });
    if (refuse && !urgent) return new Response("busy", { status: 429, headers: { "Retry-After": "1", "X-PA-Use-Peers": "1" } });
    const m = /^bytes=(\d+)-(\d+)$/.exec(h.get("Range") ?? "");
    if (m) {
      const s = Number(m[1]), e = Math.min(Number(m[2]) + 1, object.length);
      return new Response(object.slice(s, e), { status: 206, headers: { "Content-Range": `bytes ${s}-${e - 1}/${object.length}` } });
    }
    return new Response(object.slice(), { status: 200 });
  }) as typeof fetch;
}

class FakePeer implements PeerSource {
  inflight = 0;
  rateBytesPerSec = 1e6;
  requests = 0;
  constructor(readonly id: string, private readonly mode: "good" | "corrupt" | "silent") {}
  async request(_o: string, index: number, _bytes: number, signal: AbortSignal): Promise<Uint8Array> {
    this.requests++;
    if (this.mode === "silent") {
      return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted"))));
    }
    const c = object.slice(index * chunkBytes, Math.min(object.length, (index + 1) * chunkBytes));
    if (this.mode === "corrupt") c[0] ^= 0xff;
    return c;
  }
}

class FakeSwarm implements SwarmView {
  bad: string[] = [];
  storedKeys: string[] = [];
  constructor(public peers: FakePeer[], public swarmSize = 3) {}
  holders() { return this.peers; }
  neighbors() { return this.peers.length; }
  warming() { return false; }
  size() { return this.swarmSize; }
  waitHave(_o: string, _i: number, signal: AbortSignal) {
    return new Promise<void>((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted"))));
  }
  badChunk(p: PeerSource) { this.bad.push(p.id); this.peers = this.peers.filter((x) => x !== p); }
  stored(o: string, i: number) { this.storedKeys.push(o + "/" + i); }
}

function setup(peers: FakePeer[], opts: { refuse?: boolean; random?: number; swarmSize?: number } = {}) {
  const log: EdgeLog[] = [];
  const f = edgeFetch(log, opts.refuse);
  const counts = { edge: 0, peer: 0, fails: 0, refused: 0 };
  const sink = {
    edgeBytes: (n: number) => (counts.edge += n),
    peerBytes: (_: string, n: number) => (counts.peer += n),
    verifyFailed: () => counts.fails++,
    edgeRefused: () => counts.refused++,
  };
  const edge = new EdgeHTTP("http://edge.test", () => "sess", new Log(undefined, "silent"), f);
  const fetcher = new Fetcher(edge, new ChunkStore(1 << 20), sink, { urgentWindowMs: 300, seedPeers: 3, chunkParallelism: 4, minPeerBytesPerSec: 1 << 20 }, new Log(undefined, "silent"), f, () => opts.random ?? 0.99);
  const swarm = new FakeSwarm(peers, opts.swarmSize ?? 3);
  fetcher.swarm = swarm;
  return { fetcher, swarm, log, counts, url: new URL("http://edge.test/obj") };
}

test("prefetch window: all chunks from a good peer, verified", async () => {
  const { fetcher, counts, log, url, swarm } = setup([new FakePeer("p1", "good")]);
  const r = await fetcher.load(url, { deadlineAt: now() + 5000 });
  assert.deepEqual([...r.data], [...object]);
  assert.equal(counts.peer, object.length);
  assert.equal(log.length, 0, "no edge request");
  assert.equal(swarm.storedKeys.length, 3);
});

test("urgent window: straight from the edge, marked urgent, shared after", async () => {
  const { fetcher, counts, log, url } = setup([new FakePeer("p1", "good")]);
  const r = await fetcher.load(url, { deadlineAt: now() + 100 });
  assert.deepEqual([...r.data], [...object]);
  assert.equal(counts.edge, object.length);
  assert.deepEqual(log, [{ urgent: true, range: null }]);
});

test("corrupt peer: detected, reported, dropped; bytes come from the edge", async () => {
  const { fetcher, counts, url, swarm } = setup([new FakePeer("bad", "corrupt")]);
  const r = await fetcher.load(url, { deadlineAt: now() + 2000 });
  assert.deepEqual([...r.data], [...object]);
  assert.ok(counts.fails >= 1, "verification failure counted");
  assert.deepEqual([...new Set(swarm.bad)], ["bad"]);
  assert.equal(counts.peer, 0);
});

test("silent peer: replaced by the edge before the deadline", async () => {
  const { fetcher, url, counts } = setup([new FakePeer("slow", "silent")]);
  const deadline = now() + 1200;
  const r = await fetcher.load(url, { deadlineAt: deadline });
  assert.ok(now() < deadline, `finished ${Math.round(now() - deadline)} ms after the deadline`);
  assert.deepEqual([...r.data], [...object]);
  assert.equal(counts.edge, object.length);
});

test("nobody holds it: Slurpie seeder fetches from the edge at once (non-urgent)", async () => {
  const { fetcher, url, log } = setup([new FakePeer("p", "good")], { random: 0.1 });
  (fetcher.swarm as FakeSwarm).holders = () => [];
  const t0 = now();
  await fetcher.load(url, { deadlineAt: now() + 5000 });
  assert.ok(now() - t0 < 1000, "did not wait");
  assert.ok(log.every((l) => !l.urgent && l.range !== null), JSON.stringify(log));
});

test("nobody holds it: a non-seeder waits, then the edge before the deadline", async () => {
  const { fetcher, url, log } = setup([new FakePeer("p", "good")], { random: 0.99, swarmSize: 100 });
  (fetcher.swarm as FakeSwarm).holders = () => [];
  const t0 = now();
  const deadline = t0 + 1000;
  await fetcher.load(url, { deadlineAt: deadline });
  const t = now();
  // It waited for peers (past half the time before the urgent window), then beat the deadline.
  assert.ok(t < deadline && t - t0 > 300, `edge fallback at ${Math.round(t - t0)} ms, deadline at 1000 ms`);
  assert.ok(log.every((l) => l.urgent), JSON.stringify(log));
});

test("refused by the edge (429): waits for the urgent window, then urgent", async () => {
  const { fetcher, url, log, counts } = setup([], { refuse: true });
  fetcher.swarm = undefined;
  const r = await fetcher.load(url, { deadlineAt: now() + 700 });
  assert.deepEqual([...r.data], [...object]);
  assert.equal(counts.refused, 1);
  assert.deepEqual(log.map((l) => l.urgent), [false, true]);
});

test("byte range across chunks", async () => {
  const { fetcher, url } = setup([new FakePeer("p1", "good")]);
  const r = await fetcher.load(url, { deadlineAt: now() + 5000, start: 10, end: 35 });
  assert.deepEqual([...r.data], [...object.subarray(10, 35)]);
});

test("parsers never throw on random input (parseIncoming never, parseManifest only ManifestError)", () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const pieces = ['{', '}', '[', ']', '"', ':', ',', 'null', '1e309', '-1', '"announce"', '"action"', '"info_hash"', '"offer"', '"answer"', '"x_policy"', '"sha256"', '"size"', '"chunk_size"', '"object_id"', '"aaaaaaaaaaaaaaaaaaaa"', "true", "0", "\\u0000"];
  for (let n = 0; n < 20000; n++) {
    let s = "";
    for (let k = rnd(30); k > 0; k--) s += pieces[rnd(pieces.length)];
    parseIncoming(s);
    let doc: unknown;
    try {
      doc = JSON.parse(s);
    } catch {
      continue;
    }
    try {
      parseManifest(doc);
    } catch (e) {
      assert.ok(e instanceof ManifestError, String(e));
    }
  }
});

/** An edge that refuses the first `times` requests of a kind (429, Retry-After 1 s), then serves. */
function refusingEdge(log: { urgent: boolean; at: number }[], refuse: { urgent: number; nonUrgent: number }): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    if (url.pathname === "/pa/v1/manifest") return new Response(JSON.stringify(manifest), { status: 200 });
    const urgent = new Headers(init?.headers).get("X-PA-Urgent") === "1" || url.searchParams.get("pa_urgent") === "1";
    log.push({ urgent, at: now() });
    const kind = urgent ? "urgent" : "nonUrgent";
    if (refuse[kind] > 0) {
      refuse[kind]--;
      return new Response("edge: floor spent", { status: 429, headers: { "Retry-After": "1", "X-PA-Use-Peers": "1", "X-PA-Reason": "stopped_ebu" } });
    }
    return new Response(object.slice(), { status: 200 });
  }) as typeof fetch;
}

test("refused urgent request (the viewer's floor spent): asked again after Retry-After, not in a loop", async () => {
  const log: { urgent: boolean; at: number }[] = [];
  const f = refusingEdge(log, { urgent: 2, nonUrgent: 0 });
  const edge = new EdgeHTTP("http://edge.test", () => "sess", new Log(undefined, "silent"), f);
  let refused = 0;
  const sink = { edgeBytes: () => {}, peerBytes: () => {}, verifyFailed: () => {}, edgeRefused: () => refused++ };
  const fe = new Fetcher(edge, new ChunkStore(1 << 20), sink, { urgentWindowMs: 300, seedPeers: 3, chunkParallelism: 4, minPeerBytesPerSec: 1 << 20 }, new Log(undefined, "silent"), f);
  const t0 = now();
  const r = await fe.load(new URL("http://edge.test/obj"), { deadlineAt: now(), urgent: true });
  assert.deepEqual([...r.data], [...object]);
  assert.equal(log.length, 3, `requests ${JSON.stringify(log)}, want 2 refused and 1 served`);
  for (let i = 1; i < log.length; i++) assert.ok(log[i].at - log[i - 1].at >= 950, `request ${i} ${Math.round(log[i].at - log[i - 1].at)} ms after the refusal, want Retry-After (1 s)`);
  assert.equal(refused, 2);
  assert.ok(now() - t0 < 4000);
});

test("a refusal holds back the session's other non-urgent requests until Retry-After; urgent ones still go", async () => {
  const log: { urgent: boolean; at: number }[] = [];
  const edge = new EdgeHTTP("http://edge.test", () => "sess", new Log(undefined, "silent"), refusingEdge(log, { urgent: 0, nonUrgent: 1 }));
  const u = new URL("http://edge.test/obj");
  await assert.rejects(edge.get(u, { urgent: false }), (e: unknown) => e instanceof EdgeRefusedError && e.asked && e.reason === "stopped_ebu" && e.retryAfterMs === 1000);
  // Within the second: not asked.
  await assert.rejects(edge.get(u, { urgent: false }), (e: unknown) => e instanceof EdgeRefusedError && !e.asked && e.retryAfterMs > 0 && e.retryAfterMs <= 1000);
  assert.equal(log.length, 1);
  // Urgent requests are not held by a non-urgent refusal.
  assert.equal((await edge.get(u, { urgent: true })).data.length, object.length);
  await new Promise((r) => setTimeout(r, 1050));
  assert.equal((await edge.get(u, { urgent: false })).data.length, object.length, "asked again after Retry-After");
  assert.deepEqual(log.map((l) => l.urgent), [false, true, false]);
});

test("x_policy edge_allowance_bps 0: no non-urgent request is sent until the allowance returns", async () => {
  const log: { urgent: boolean; at: number }[] = [];
  const edge = new EdgeHTTP("http://edge.test", () => "sess", new Log(undefined, "silent"), refusingEdge(log, { urgent: 0, nonUrgent: 0 }));
  const u = new URL("http://edge.test/obj");
  edge.setEdgeAllowance(0);
  await assert.rejects(edge.get(u, { urgent: false }), (e: unknown) => e instanceof EdgeRefusedError && !e.asked);
  await edge.get(u, { urgent: true });
  edge.setEdgeAllowance(-1); // unlimited again
  await edge.get(u, { urgent: false });
  edge.setEdgeAllowance(250_000);
  await edge.get(u, { urgent: false });
  assert.deepEqual(log.map((l) => l.urgent), [true, false, false]);
});

test("another server's 429 is an HTTP error, not a peer-assist refusal", async () => {
  const f = (async () => new Response("slow down", { status: 429, headers: { "Retry-After": "5" } })) as unknown as typeof fetch;
  const edge = new EdgeHTTP("http://edge.test", () => "sess", new Log(undefined, "silent"), f);
  await assert.rejects(edge.get(new URL("http://cdn.other.test/a"), { urgent: false }), (e: unknown) => e instanceof EdgeHTTPError && e.status === 429);
  // And it holds nothing back at the edge.
  await assert.rejects(edge.get(new URL("http://edge.test/a"), { urgent: false }), (e: unknown) => e instanceof EdgeRefusedError && e.asked);
});
