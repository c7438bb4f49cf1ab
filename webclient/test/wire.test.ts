// Golden vectors of the peer data protocol (peerassist/wire/testdata),
// shared with the Go codec: every valid frame decodes to its meaning and
// encodes back to exactly its bytes; every invalid one fails with its code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as w from "../src/wire";
import { fromHex, toHex } from "../src/util";

interface Vectors {
  version: number;
  max_frame_bytes: number;
  valid: { name: string; hex: string; frame: Record<string, string | number> }[];
  invalid: { name: string; hex: string; error: string }[];
}

const path = process.env.PA_WIRE_VECTORS!;
const v: Vectors = JSON.parse(readFileSync(path, "utf8"));

function expected(f: Record<string, string | number>): w.Frame {
  const type = w.typeNames.indexOf(String(f.type));
  assert.ok(type > 0, `unknown type ${f.type}`);
  const fr = {
    type,
    maxVersion: Number(f.max_version ?? 0),
    flags: Number(f.flags ?? 0),
    maxRequests: Number(f.max_requests ?? 0),
    object: String(f.object ?? "0000000000000000"),
    chunk: Number(f.chunk ?? f.first ?? 0),
    offset: Number(f.offset ?? 0),
    count: Number(f.count ?? 0),
    bits: fromHex(String(f.bits ?? ""))!,
    payload: fromHex(String(f.payload ?? ""))!,
    reason: f.reason === undefined ? 0 : w.reasonNames.indexOf(String(f.reason)),
  };
  return fr as w.Frame;
}

test("constants match the vectors", () => {
  assert.equal(w.Version, v.version);
  assert.equal(w.MaxFrameBytes, v.max_frame_bytes);
});

test("valid frames decode and re-encode", () => {
  assert.ok(v.valid.length > 10);
  for (const c of v.valid) {
    const bytes = fromHex(c.hex)!;
    const got = w.decode(bytes);
    const want = expected(c.frame);
    for (const k of Object.keys(want) as (keyof w.Frame)[]) {
      const g = got[k], e = want[k];
      if (g instanceof Uint8Array) assert.equal(toHex(g), toHex(e as Uint8Array), `${c.name}: ${k}`);
      else assert.equal(g, e, `${c.name}: ${k}`);
    }
    assert.equal(toHex(w.encode(want)), c.hex, `${c.name}: encode`);
  }
});

test("invalid frames fail with their code", () => {
  assert.ok(v.invalid.length > 10);
  for (const c of v.invalid) {
    assert.throws(() => w.decode(fromHex(c.hex)!), (e: unknown) => e instanceof w.WireError && e.code === c.error, `${c.name}: want ${c.error}`);
  }
});

test("decode never throws anything but WireError", () => {
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
  for (let n = 0; n < 20000; n++) {
    const len = rnd() % 40;
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = rnd();
    if (len > 0 && rnd() % 2) b[0] = 1;
    if (len > 1 && rnd() % 2) b[1] = 1 + (rnd() % 7);
    try {
      const f = w.decode(b);
      assert.equal(toHex(w.encode(f)), toHex(b), "decoded frames re-encode to the same bytes");
    } catch (e) {
      assert.ok(e instanceof w.WireError, String(e));
    }
  }
});
