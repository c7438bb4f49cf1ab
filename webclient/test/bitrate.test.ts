// The declared stream bitrate (x_caps.bitrate_bps, PROTOCOL.md): the hls.js
// loader declares the level it loads, the client announces a change at
// once but paced (not per segment), fetch() takes one too, and another
// swarm starts without one.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { FakePeerConnection, FakeTracker, FakeWebSocket, installFakes, tick, until } from "./fakes";
import { Client } from "../src/client";
import { HlsLoaderContext, parseVariants } from "../src/hls";

installFakes();

/** A tracker that notes when each message arrived. */
class TimedTracker extends FakeTracker {
  readonly times: number[] = [];
  receive(ws: FakeWebSocket, text: string): void {
    this.times.push(Date.now());
    super.receive(ws, text);
  }
}

let tracker: TimedTracker;
let clients: Client[] = [];
const problems: string[] = [];
const onProblem = (e: unknown) => problems.push(String(e));
process.on("uncaughtException", onProblem);
process.on("unhandledRejection", onProblem);

beforeEach(() => {
  FakePeerConnection.reset();
  tracker = new TimedTracker();
  FakeWebSocket.tracker = tracker;
  problems.length = 0;
});

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients = [];
  await tick(150);
  assert.deepEqual(problems, [], "nothing thrown out of the client");
});

const base = "http://edge.test/vod/sample/";
const master = [
  "#EXTM3U",
  "#EXT-X-VERSION:7",
  '#EXT-X-STREAM-INF:BANDWIDTH=437800,RESOLUTION=640x360,CODECS="avc1.4d401f,mp4a.40.2"',
  "360p/index.m3u8",
  "",
  '#EXT-X-STREAM-INF:BANDWIDTH=184800,RESOLUTION=320x180,CODECS="avc1.4d401f,mp4a.40.2"',
  "180p/index.m3u8",
  "",
].join("\n");

/** A client whose loads the edge answers at once (the loads are not under test here). */
function newClient(): Client {
  const c = new Client({ edge: "http://edge.test", announceURL: "ws://edge.test/pa/v1/announce", logLevel: "silent" });
  clients.push(c);
  (c as unknown as { load: Client["load"] }).load = async (u: URL) => ({
    data: new TextEncoder().encode(u.pathname.endsWith("master.m3u8") ? master : "#EXTM3U"),
    contentType: null,
    peerBytes: 0,
    edgeBytes: 1,
    chunks: 1,
  });
  return c;
}

const peerIdOf = (c: Client) => (c as unknown as { engine?: { peerId: string } }).engine?.peerId;

/** The announces c sent (not answers), with when they arrived. */
function announces(c: Client): { at: number; bitrate: number | undefined; infoHash: string }[] {
  const id = peerIdOf(c);
  const out: { at: number; bitrate: number | undefined; infoHash: string }[] = [];
  tracker.received.forEach((r, i) => {
    if (r.msg.peer_id === id && r.msg.action === "announce" && !r.msg.answer && r.msg.event !== "stopped")
      out.push({ at: tracker.times[i], bitrate: r.msg.x_caps?.bitrate_bps, infoHash: r.msg.info_hash });
  });
  return out;
}

/** Loads ctx through the client's hls.js loader; resolves when it succeeded. */
function hlsLoad(c: Client, ctx: HlsLoaderContext): Promise<void> {
  const Loader = c.hlsConfig().loader;
  return new Promise((resolve, reject) => {
    new Loader().load(ctx, {}, {
      onSuccess: () => resolve(),
      onError: (e) => reject(new Error(e.text)),
      onTimeout: () => reject(new Error("timeout")),
    });
  });
}

const levelCtx = (rendition: string, level: number, bitrate?: number): HlsLoaderContext => ({
  url: base + rendition + "/index.m3u8",
  responseType: "text",
  type: "level",
  level,
  levelOrTrack: bitrate === undefined ? null : { bitrate },
});

const fragCtx = (rendition: string, level: number, sn: number, type = "main"): HlsLoaderContext => ({
  url: `${base}${rendition}/seg_${sn}.m4s`,
  responseType: "arraybuffer",
  type: "media-fragment",
  frag: { start: sn * 4, duration: 4, type, level, baseurl: base + rendition + "/index.m3u8" },
});

const gapMs = 2000; // p2p.ts bitrateAnnounceGapMs
const slackMs = 400; // timers on a loaded machine

test("hls.js loader: the level loaded is declared; a switch is announced at once, paced, not per segment", async () => {
  const c = newClient();
  await hlsLoad(c, { url: base + "master.m3u8", responseType: "text", type: "manifest" });
  await until(() => announces(c).length === 1, "the first announce");
  assert.equal(announces(c)[0].bitrate, undefined, "no bitrate before a level loads");

  // hls.js loads the 360p level playlist (hls.levels[1], sorted by bitrate).
  await hlsLoad(c, levelCtx("360p", 1, 437800));
  assert.equal(c.stats().bitrateBps, 437800);
  await until(() => announces(c).length === 2, "an announce of the bitrate", gapMs + slackMs);
  let a = announces(c);
  assert.equal(a[1].bitrate, 437800, "x_caps.bitrate_bps");
  assert.ok(a[1].at - a[0].at >= gapMs - 50, `announced ${a[1].at - a[0].at} ms after the previous one, want >= ${gapMs} (paced)`);

  // Its segments say nothing new.
  for (let sn = 0; sn < 5; sn++) await hlsLoad(c, fragCtx("360p", 1, sn));
  // Alternate audio is not the variant: ignored.
  await hlsLoad(c, fragCtx("audio", 0, 0, "audio"));
  await tick(300);
  assert.equal(announces(c).length, 2, "no announce for segments of the same level");

  // ABR switches down, back up and down again within the gap: one
  // announce, when the gap since the last one has passed, with the level
  // loaded last. The 180p segments' level was never loaded through this
  // loader: its bitrate comes from the master playlist by URL.
  const before = a[1].at;
  await hlsLoad(c, fragCtx("180p", 0, 5));
  assert.equal(c.stats().bitrateBps, 184800);
  await hlsLoad(c, fragCtx("360p", 1, 6));
  await hlsLoad(c, fragCtx("180p", 0, 7));
  await until(() => announces(c).length === 3, "an announce of the switch", gapMs + slackMs);
  await tick(300);
  a = announces(c);
  assert.equal(a.length, 3, "one announce for three switches within the gap");
  assert.equal(a[2].bitrate, 184800, "the level loaded last");
  assert.ok(a[2].at - before >= gapMs - 50, `switch announced ${a[2].at - before} ms after the previous announce, want >= ${gapMs}`);

  // A switch after a quiet gap goes at once.
  await tick(gapMs - 300);
  const t0 = Date.now();
  await hlsLoad(c, fragCtx("360p", 1, 8));
  await until(() => announces(c).length === 4, "an announce of the switch back", slackMs);
  assert.equal(announces(c)[3].bitrate, 437800);
  assert.ok(announces(c)[3].at - t0 < slackMs, "at once after a quiet gap");
});

test("fetch(url, { bitrateBps }) declares the stream's bitrate; bad values are ignored; another swarm starts without", async () => {
  const c = newClient();
  const url = base + "360p/seg_1.m4s";
  await c.fetch(url, { bitrateBps: 3_000_000 });
  await until(() => announces(c).length === 1, "the first announce");
  assert.equal(announces(c)[0].bitrate, 3_000_000, "declared in the first announce");
  for (const bad of [NaN, -5, 0, Infinity, "1e6" as unknown as number, undefined]) {
    await c.fetch(url, { bitrateBps: bad });
    assert.equal(c.stats().bitrateBps, 3_000_000, `after bitrateBps ${String(bad)}`);
  }
  await c.fetch(url, { bitrateBps: 2_500_000.4 });
  assert.equal(c.stats().bitrateBps, 2_500_000, "rounded to bits/s");
  await until(() => announces(c).length === 2, "an announce of the change", gapMs + slackMs);
  assert.equal(announces(c)[1].bitrate, 2_500_000);

  // Another swarm: the bitrate was that of the first one's stream.
  const first = announces(c)[0].infoHash;
  c.join("http://edge.test/vod/other/master.m3u8");
  assert.equal(c.stats().bitrateBps, 0);
  await until(() => announces(c).some((x) => x.infoHash !== first), "an announce in the new swarm");
  assert.equal(announces(c).find((x) => x.infoHash !== first)!.bitrate, undefined, "no bitrate in the new swarm");
});

test("parseVariants reads BANDWIDTH and the variant's URL; bad lines are skipped", () => {
  const cases: [string, string, { url: string; bitrateBps: number }[]][] = [
    ["sample", master, [
      { url: base + "360p/index.m3u8", bitrateBps: 437800 },
      { url: base + "180p/index.m3u8", bitrateBps: 184800 },
    ]],
    ["CRLF, AVERAGE-BANDWIDTH only, absolute URL, quoted commas",
      '#EXTM3U\r\n#EXT-X-STREAM-INF:CODECS="a,BANDWIDTH=5",AVERAGE-BANDWIDTH=1000\r\nhttp://cdn.test/a.m3u8#x\r\n',
      [{ url: "http://cdn.test/a.m3u8", bitrateBps: 1000 }]],
    ["no BANDWIDTH: skipped", "#EXT-X-STREAM-INF:RESOLUTION=1x1\nlow.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=7\nhi.m3u8", [{ url: base + "hi.m3u8", bitrateBps: 7 }]],
    ["a media playlist", "#EXTM3U\n#EXTINF:4,\nseg_0.m4s\n", []],
    ["BANDWIDTH not a number", "#EXT-X-STREAM-INF:BANDWIDTH=-1\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1e9\nb.m3u8", []],
    ["no URI line", "#EXT-X-STREAM-INF:BANDWIDTH=5\n#EXT-X-ENDLIST\n", []],
    ["empty", "", []],
  ];
  for (const [name, text, want] of cases) assert.deepEqual(parseVariants(text, base + "master.m3u8"), want, name);
  // Random input never throws.
  let seed = 11;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const pieces = ["#EXT-X-STREAM-INF:", "BANDWIDTH=", "AVERAGE-BANDWIDTH=", "1", "99999999999999999999", ",", '"', "\n", "\r\n", "a.m3u8", "http://[", "//x", "#", " ", "=", "CODECS="];
  for (let n = 0; n < 20000; n++) {
    let s = "";
    for (let k = rnd(20); k > 0; k--) s += pieces[rnd(pieces.length)];
    for (const v of parseVariants(s, base)) assert.ok(Number.isSafeInteger(v.bitrateBps) && v.bitrateBps > 0, JSON.stringify(s));
  }
});

test("fetch(url, { range }) rejects a range that is not [start, end) of whole byte offsets", async () => {
  const c = newClient();
  const url = base + "360p/seg_1.m4s";
  for (const bad of ["bytes=100-199", [100], [200, 100], [-1, 10], [0.5, 10], [0, Infinity], null]) {
    await assert.rejects(
      c.fetch(url, { range: bad as unknown as [number, number] }),
      (err: unknown) => err instanceof TypeError && /range must be/.test(String(err)),
      `range ${JSON.stringify(bad)}`,
    );
  }
});
