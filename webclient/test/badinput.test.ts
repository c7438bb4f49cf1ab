// Bad input from the edge reaches the player as bytes from the edge, never
// as an exception: manifests that do not parse, name another object or no
// longer match the object; and the hls.js loader turns every failure into
// onError.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { EdgeHTTP, EdgeHTTPError } from "../src/edge";
import { Fetcher, PeerSource, SwarmView } from "../src/fetcher";
import { ChunkStore } from "../src/store";
import { Log } from "../src/log";
import { now } from "../src/util";
import { hlsLoaderClass, HlsLoaderCallbacks, HlsLoaderContext } from "../src/hls";
import type { Client } from "../src/client";

const chunkBytes = 16;
const objectId = "00000000000000bb";
const v1 = new Uint8Array(40).map((_, i) => i);
const v2 = new Uint8Array(40).map((_, i) => 200 - i); // the object after it changed
const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sums = (o: Uint8Array) => [0, 1, 2].map((i) => hex(o.subarray(i * chunkBytes, Math.min(o.length, (i + 1) * chunkBytes))));
const manifestOf = (o: Uint8Array, extra: object = {}) => ({ url: "/obj", object_id: objectId, size: o.length, chunk_size: chunkBytes, sha256: sums(o), ...extra });

/** An edge serving body, whose manifest endpoint answers manifest (an object as JSON, or raw text) with status. */
function edge(body: Uint8Array, manifest: unknown, status = 200) {
  const log: string[] = [];
  const f = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    if (url.pathname === "/pa/v1/manifest") {
      log.push("manifest");
      return new Response(typeof manifest === "string" ? manifest : JSON.stringify(manifest), { status });
    }
    const range = new Headers(init?.headers).get("Range");
    log.push(range ?? "whole");
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? "");
    if (m) {
      const s = Number(m[1]), e = Math.min(Number(m[2]) + 1, body.length);
      return new Response(body.slice(s, e), { status: 206, headers: { "Content-Range": `bytes ${s}-${e - 1}/${body.length}` } });
    }
    return new Response(body.slice(), { status: 200 });
  }) as typeof fetch;
  return { f, log };
}

class Holder implements PeerSource {
  inflight = 0;
  rateBytesPerSec = 1e6;
  constructor(readonly id: string, private readonly body: Uint8Array) {}
  async request(_o: string, i: number): Promise<Uint8Array> {
    return this.body.slice(i * chunkBytes, Math.min(this.body.length, (i + 1) * chunkBytes));
  }
}

function fetcher(body: Uint8Array, manifest: unknown, o: { status?: number; peers?: PeerSource[] } = {}) {
  const { f, log } = edge(body, manifest, o.status);
  const logs: string[] = [];
  const sink = (...a: unknown[]) => logs.push(a.join(" "));
  const l = new Log({ debug: sink, info: sink, warn: sink, error: sink }, "debug");
  const counts = { edge: 0, peer: 0, fails: 0 };
  const bad: string[] = [];
  const store = new ChunkStore(1 << 20);
  const fe = new Fetcher(
    new EdgeHTTP("http://edge.test", () => "s", l, f),
    store,
    { edgeBytes: (n) => (counts.edge += n), peerBytes: (_, n) => (counts.peer += n), verifyFailed: () => counts.fails++, edgeRefused: () => {} },
    { urgentWindowMs: 300, seedPeers: 3, chunkParallelism: 4, minPeerBytesPerSec: 1 << 20 },
    l,
    f,
    () => 0.99,
  );
  const peers = o.peers ?? [];
  const swarm: SwarmView = {
    holders: () => peers,
    neighbors: () => Math.max(1, peers.length),
    warming: () => false,
    size: () => 3,
    waitHave: (_o, _i, signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")))),
    badChunk: (p) => bad.push(p.id),
    stored: () => {},
  };
  fe.swarm = swarm;
  return { fe, log, logs, counts, bad, store, url: new URL("http://edge.test/obj") };
}

test("manifests that cannot be used: logged, the object comes from the edge", async () => {
  const cases: [string, unknown, number, string][] = [
    ["not JSON", "{", 200, "manifest"],
    ["not a manifest", { hello: 1 }, 200, "url: want a string"],
    ["digest count", { ...manifestOf(v1), sha256: ["a".repeat(64)] }, 200, "1 digests"],
    ["another object's", manifestOf(v1, { url: "/other" }), 200, "asked for"],
    ["edge error", "no", 500, "HTTP 500"],
  ];
  for (const [name, doc, status, want] of cases) {
    const h = fetcher(v1, doc, { status, peers: [new Holder("p", v1)] });
    const r = await h.fe.load(h.url, { deadlineAt: now() + 5000 });
    assert.deepEqual([...r.data], [...v1], name);
    assert.equal(h.counts.peer, 0, name + ": nothing from peers without a manifest");
    assert.ok(h.logs.some((l) => l.includes("no manifest, loading from the edge") && l.includes(want)), `${name}: logs ${JSON.stringify(h.logs)}, want one mentioning ${want}`);
  }
});

test("a manifest the object no longer matches: the edge's bytes, whole; nobody blamed", async () => {
  const cases: [string, unknown][] = [
    ["digests of the old version", manifestOf(v1)],
    ["another size", { ...manifestOf(v1), size: 36, sha256: sums(v1).slice(0, 3) }],
  ];
  for (const [name, doc] of cases) {
    // The peer holds the new version, as the edge does: its chunks fail
    // against the stale manifest, but so do the edge's.
    const h = fetcher(v2, doc, { peers: [new Holder("honest", v2)] });
    const r = await h.fe.load(h.url, { deadlineAt: now() + 5000 });
    assert.deepEqual([...r.data], [...v2], name + ": the edge's current bytes, not a mix");
    assert.deepEqual(h.bad, [], name + ": no peer blamed");
    assert.equal(h.counts.fails, 0, name + ": no verification failure counted");
    assert.deepEqual(h.store.indexes(objectId), [], name + ": nothing kept against the stale manifest");
    assert.ok(h.logs.some((l) => l.includes("does not match the manifest")), name + ": logged");
  }
});

test("a peer's bad chunk with a good manifest: the peer is blamed, the edge serves the chunk", async () => {
  const corrupt = v1.slice();
  corrupt[20] ^= 1;
  const h = fetcher(v1, manifestOf(v1), { peers: [new Holder("liar", corrupt)] });
  const r = await h.fe.load(h.url, { deadlineAt: now() + 5000 });
  assert.deepEqual([...r.data], [...v1]);
  assert.deepEqual(h.bad, ["liar"]);
  assert.equal(h.counts.fails, 1);
});

function loaderClient(load: () => Promise<{ data: Uint8Array; chunks: number }>): Client {
  const logs: string[] = [];
  return {
    edgeHTTP: new EdgeHTTP("http://edge.test", () => undefined, new Log(undefined, "silent")),
    load,
    join: () => {},
    deadlineFor: () => now() + 1000,
    log: new Log({ debug: () => {}, info: (...a: unknown[]) => logs.push(a.join(" ")), warn: (...a: unknown[]) => logs.push(a.join(" ")), error: () => {} }, "debug"),
  } as unknown as Client;
}

test("hls.js loader: failures become onError, callbacks that throw are contained", async () => {
  const ctx: HlsLoaderContext = { url: "http://edge.test/seg1.m4s", responseType: "arraybuffer", type: undefined, frag: { start: 10, duration: 4 } };
  const calls: string[] = [];
  const cb = (throwing: boolean): HlsLoaderCallbacks<HlsLoaderContext> => ({
    onSuccess: () => {
      calls.push("success");
      if (throwing) throw new Error("player bug");
    },
    onError: (e) => {
      calls.push(`error ${e.code} ${e.text}`);
      if (throwing) throw new Error("player bug");
    },
    onTimeout: () => calls.push("timeout"),
    onAbort: () => calls.push("abort"),
  });
  const failing = hlsLoaderClass(loaderClient(() => Promise.reject(new EdgeHTTPError(502, ctx.url, "bad gateway"))));
  new failing().load(ctx, {}, cb(true));
  const ok = hlsLoaderClass(loaderClient(() => Promise.resolve({ data: new Uint8Array(3), chunks: 1 })));
  new ok().load(ctx, {}, cb(true));
  const weird = hlsLoaderClass(loaderClient(() => Promise.reject("not even an Error")));
  new weird().load(ctx, {}, cb(false));
  const slow = hlsLoaderClass(loaderClient(() => new Promise(() => {})));
  new slow().load(ctx, { loadPolicy: { maxLoadTimeMs: 20 } }, cb(false));
  const aborted = new slow();
  aborted.load(ctx, {}, cb(false));
  aborted.abort();
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(calls.sort(), ["abort", "error 0 not even an Error", "error 502 edge: GET http://edge.test/seg1.m4s: HTTP 502: bad gateway", "success", "timeout"]);
});
