// One neighbor (src/peer.ts) over an in-memory DataChannel: bad input
// drops it and fails what we asked of it; the protocol's rules on cancel,
// duplicate requests and the upload budget; the upload meter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeDataChannel, FakePeerConnection, tick, until } from "./fakes";
import { Peer, PeerHooks } from "../src/peer";
import { ChunkStore } from "../src/store";
import { Pacer } from "../src/pacer";
import { Log } from "../src/log";
import { MaxChunks } from "../src/manifest";
import { UploadMeter } from "../src/meter";
import * as w from "../src/wire";

const obj = "00000000000000aa";

function harness(o: { budgetBps?: number; burstBytes?: number; serving?: boolean } = {}) {
  const pc = new FakePeerConnection();
  const local = new FakeDataChannel("peerassist");
  const remote = new FakeDataChannel("peerassist");
  local.remote = remote;
  remote.remote = local;
  const store = new ChunkStore(1 << 20);
  const ev = { closed: [] as string[], have: [] as string[], uploaded: 0 };
  const hooks: PeerHooks = {
    have: (_p, o, i) => ev.have.push(o + "/" + i),
    uploaded: (_p, n) => (ev.uploaded += n),
    closed: (_p, r) => ev.closed.push(r),
    accept: () => undefined,
    opened: () => {},
    serving: () => o.serving ?? true,
  };
  const peer = new Peer("\x01".repeat(20), "01".repeat(20), pc as unknown as RTCPeerConnection, true, store, new Pacer(o.budgetBps ?? 8e9, o.burstBytes), hooks, new Log(undefined, "silent"));
  const got: w.Frame[] = [];
  remote.onmessage = (e) => got.push(w.decode(new Uint8Array(e.data)));
  peer.attach(local as unknown as RTCDataChannel);
  local.open();
  remote.open();
  const send = (m: w.Frame | Uint8Array | string) => remote.send(typeof m === "string" || m instanceof Uint8Array ? m : w.encode(m));
  return { peer, remote, got, ev, store, send };
}

const serves = w.hello(w.FlagServes, 8);

test("the neighbor's channel opens with our HELLO", async () => {
  const h = harness();
  await until(() => h.got.length > 0, "hello");
  assert.equal(h.got[0].type, w.T.Hello);
  assert.equal(h.got[0].flags & w.FlagServes, w.FlagServes);
});

test("bad input from a neighbor: logged, the neighbor dropped, its requests fail, nothing thrown", async () => {
  const oversized = new Uint8Array(w.MaxFrameBytes + 1);
  oversized.set([1, w.T.Data]);
  const cases: { name: string; hello: boolean; request?: number; bad: (w.Frame | Uint8Array | string)[]; want: string }[] = [
    { name: "text message", hello: true, bad: ["hello"], want: "text message" },
    { name: "oversized frame", hello: true, bad: [oversized], want: "frame of 16385 bytes" },
    { name: "unknown type", hello: true, bad: [new Uint8Array([1, 99])], want: "unknown frame type 99" },
    { name: "wrong version", hello: true, bad: [new Uint8Array([2, 1, 1, 0, 0, 0])], want: "version 2" },
    { name: "truncated", hello: true, bad: [new Uint8Array([1, w.T.Have, 0])], want: "want 14" },
    { name: "bitfield padding", hello: true, bad: [new Uint8Array([1, 3, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0, 0, 0, 0, 0, 0, 0, 1, 0xff])], want: "spare bits" },
    { name: "first frame not hello", hello: false, bad: [w.have(obj, 0)], want: "first frame is have" },
    { name: "second hello", hello: true, bad: [serves], want: "second hello" },
    { name: "data not requested", hello: true, bad: [w.data(obj, 3, 0, new Uint8Array(5))], want: "not requested" },
    { name: "data at a gap", hello: true, request: 10, bad: [w.data(obj, 0, 4, new Uint8Array(2))], want: "want offset 0" },
    { name: "data past the chunk", hello: true, request: 10, bad: [w.data(obj, 0, 0, new Uint8Array(11))], want: "of 10 bytes" },
  ];
  for (const c of cases) {
    const h = harness();
    if (c.hello) h.send(serves);
    await tick(5);
    const pending = c.request ? h.peer.request(obj, 0, c.request, new AbortController().signal) : undefined;
    const failed = pending?.then(
      () => "resolved",
      (e: Error) => e.message,
    );
    for (const b of c.bad) h.send(b);
    await until(() => h.peer.closed, c.name + ": dropped");
    assert.equal(h.ev.closed.length, 1, c.name);
    assert.match(h.ev.closed[0], /^dropped: /, c.name);
    assert.ok(h.ev.closed[0].includes(c.want), `${c.name}: reason ${JSON.stringify(h.ev.closed[0])}, want it to mention ${JSON.stringify(c.want)}`);
    if (failed) assert.match(await failed, /peer closed/, c.name + ": pending request");
    assert.equal(h.peer.available, false, c.name + ": not available");
    await assert.rejects(h.peer.request(obj, 1, 10, new AbortController().signal), /peer unavailable/, c.name + ": no new requests");
  }
});

test("announcements are bounded per neighbor and never an error", async () => {
  const h = harness();
  h.send(serves);
  for (let i = 0; i < 4200; i++) h.send(w.have(i.toString(16).padStart(16, "0"), 1));
  h.send(w.have(obj, MaxChunks + 5));
  const bits = new Uint8Array(w.MaxBitfieldCount / 8).fill(0xff);
  for (let k = 0; k < 40; k++) h.send(w.bitfield(obj, k * w.MaxBitfieldCount, w.MaxBitfieldCount, bits));
  await tick(100);
  assert.equal(h.peer.closed, false);
  assert.ok(h.peer.has("0000000000000001", 1), "early objects tracked");
  assert.ok(!h.peer.has((4150).toString(16).padStart(16, "0"), 1), "objects beyond the bound ignored");
  assert.ok(!h.peer.has(obj, MaxChunks + 5), "chunks beyond MaxChunks ignored");
});

test("cancel: late pieces of a cancelled chunk are dropped, not an error; then it can be asked again", async () => {
  const h = harness();
  h.send(serves);
  await tick(5);
  const ctl = new AbortController();
  const p = h.peer.request(obj, 0, 20000, ctl.signal);
  const outcome = p.catch((e: Error) => e.name);
  h.send(w.data(obj, 0, 0, new Uint8Array(16000)));
  await tick(5);
  ctl.abort();
  assert.equal(await outcome, "AbortError");
  await until(() => h.got.some((f) => f.type === w.T.Cancel), "CANCEL sent");
  await assert.rejects(h.peer.request(obj, 0, 20000, new AbortController().signal), /unavailable/, "not again until it ends");
  h.send(w.data(obj, 0, 16000, new Uint8Array(4000))); // the last piece, already on its way
  await tick(10);
  assert.equal(h.peer.closed, false);
  const again = h.peer.request(obj, 0, 20000, new AbortController().signal);
  h.send(w.data(obj, 0, 0, new Uint8Array(16000).fill(1)));
  h.send(w.data(obj, 0, 16000, new Uint8Array(4000).fill(2)));
  const data = await again;
  assert.equal(data.length, 20000);
  assert.equal(data[19999], 2);
});

test("serving: duplicate requests ignored, not held, over budget, cancel of what was sent", async () => {
  // 80 kbit/s = 10 kB/s: a 16 KiB chunk takes 1.6 s, two take more than 2 s.
  const h = harness({ budgetBps: 80_000, burstBytes: 1024 });
  for (let i = 0; i < 3; i++) h.store.put(obj, i, new Uint8Array(16 << 10).fill(i), "edge");
  h.send(serves);
  h.send(w.request(obj, 0));
  h.send(w.request(obj, 0)); // duplicate: ignored
  h.send(w.request(obj, 1)); // would wait more than 2 s: over budget
  h.send(w.request(obj, 9)); // not held
  h.send(w.cancel(obj, 7)); // nothing queued: no answer
  await until(() => h.got.filter((f) => f.type === w.T.Absent).length >= 2, "two ABSENTs");
  const absent = h.got.filter((f) => f.type === w.T.Absent).map((f) => `${f.chunk}:${w.reasonNames[f.reason]}`);
  assert.deepEqual(absent, ["1:over_budget", "9:not_held"]);
  await until(() => h.got.filter((f) => f.type === w.T.Data).reduce((n, f) => n + f.payload.length, 0) >= 16 << 10, "chunk 0 sent", 5000);
  const pieces = h.got.filter((f) => f.type === w.T.Data);
  assert.ok(pieces.every((f) => f.chunk === 0), "only chunk 0, once");
  assert.equal(pieces.reduce((n, f) => n + f.payload.length, 0), 16 << 10);
  assert.equal(h.ev.uploaded, 16 << 10);
  h.send(w.cancel(obj, 0)); // already sent: ignored
  await tick(20);
  assert.equal(h.got.filter((f) => f.type === w.T.Absent).length, 2);
});

test("serving off: HELLO says so and requests get over_budget", async () => {
  const h = harness({ serving: false });
  h.store.put(obj, 0, new Uint8Array(100), "edge");
  h.send(serves);
  h.send(w.request(obj, 0));
  await until(() => h.got.length >= 2, "hello and absent");
  assert.equal(h.got[0].flags & w.FlagServes, 0);
  assert.equal(h.got[0].maxRequests, 0);
  assert.equal(h.got[1].type, w.T.Absent);
  assert.equal(h.got[1].reason, w.Reason.OverBudget);
});

test("UploadMeter: network-limited drains only; concurrent channels add up; old samples expire", () => {
  let t = 0;
  const m = new UploadMeter(60_000, () => t);
  assert.equal(m.estimateBps(), 0, "nothing measured");
  const a = {}, b = {};
  m.sample(a, 1000, 0, 10); // too small to mean anything
  assert.equal(m.estimateBps(), 0);
  m.sample(a, 768 << 10, 0, 1000); // 768 KiB in 1 s
  assert.equal(m.estimateBps(), (768 << 10) * 8);
  m.sample(b, 512 << 10, 500, 1500); // overlaps: both drained at once
  assert.equal(m.estimateBps(), ((768 << 10) + (512 << 10)) * 8);
  m.sample(a, 256 << 10, 5000, 6000); // alone later, slower
  assert.equal(m.estimateBps(), ((768 << 10) + (512 << 10)) * 8, "the best recent total");
  t = 62_000;
  assert.equal(m.estimateBps(), (256 << 10) * 8, "older samples expired");
  t = 70_000;
  assert.equal(m.estimateBps(), 0);
});

test("Pacer: a second of budget per wake-up (hidden tabs wake at most once a second)", async () => {
  const p = new Pacer(16_000_000); // 2 MB/s
  assert.equal(p.burstBytes, 2_000_000);
  assert.equal(new Pacer(80_000).burstBytes, 64 << 10, "at least 64 KiB");
  // Spend the bucket, then stay away half a second as a throttled timer would.
  while (await Promise.race([p.take(64 << 10), tick(20).then(() => false)])) {}
  await tick(500);
  const t0 = Date.now();
  let sent = 0;
  while (sent < 900_000 && (await p.take(16 << 10))) sent += 16 << 10;
  assert.ok(Date.now() - t0 < 100, `${sent} bytes took ${Date.now() - t0} ms, want them at once after 500 ms away`);
  const off = new Pacer(0);
  assert.equal(await off.take(1), false, "budget 0 sends nothing");
});

test("random frames from a neighbor: handled or a protocol error, never an internal one", async () => {
  let seed = 11;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const objects = [obj, "00000000000000ab"];
  const frame = (): Uint8Array => {
    switch (rnd(9)) {
      case 0:
        return w.encode(w.have(objects[rnd(2)], rnd(8)));
      case 1:
        return w.encode(w.request(objects[rnd(2)], rnd(8)));
      case 2:
        return w.encode(w.cancel(objects[rnd(2)], rnd(8)));
      case 3:
        return w.encode(w.absent(objects[rnd(2)], rnd(8), 1 + rnd(4)));
      case 4:
        return w.encode(w.data(objects[rnd(2)], rnd(8), rnd(3) * 100, new Uint8Array(1 + rnd(200))));
      case 5:
        return w.encode(w.bitfield(objects[rnd(2)], rnd(8), 8, new Uint8Array([rnd(256)])));
      case 6:
        return w.encode(serves);
      default: {
        const b = new Uint8Array(rnd(40));
        for (let i = 0; i < b.length; i++) b[i] = rnd(256);
        if (b.length > 1) b[0] = 1;
        return b;
      }
    }
  };
  for (let run = 0; run < 200; run++) {
    const h = harness();
    for (let i = 0; i < 4; i++) h.store.put(objects[i % 2], i, new Uint8Array(300).fill(i), "edge");
    h.send(serves);
    const reqs = [0, 1, 2].map((i) => h.peer.request(objects[i % 2], i, 300, new AbortController().signal).catch((e: Error) => e.message));
    for (let i = 0; i < 30 && !h.peer.closed; i++) {
      h.send(frame());
      await tick(0);
    }
    await tick(5);
    for (const r of h.ev.closed) assert.doesNotMatch(r, /handling a frame/, `run ${run}: ${r}`);
    h.peer.close("end of run");
    for (const r of await Promise.all(reqs)) assert.ok(r instanceof Uint8Array || typeof r === "string");
  }
});
