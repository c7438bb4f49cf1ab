/**
 * The peer data protocol (peerassist/PROTOCOL.md, "Peer data protocol"):
 * binary frames of at most 16 KiB exchanged over a DataChannel. This is the
 * browser twin of the Go package peerassist/wire; both are tested against
 * peerassist/wire/testdata/vectors.json.
 *
 *   byte 0  version (1)
 *   byte 1  type
 *   2..     body, integers big-endian; objects are the edge's 64-bit object
 *           IDs, carried here as 16 lowercase hex digits
 *
 * @internal
 */

export const Version = 1;
export const MaxFrameBytes = 16 << 10;

const helloBytes = 2 + 4;
const chunkRefBytes = 2 + 8 + 4;
const bitfieldBytes = 2 + 8 + 4 + 4;
const dataBytes = 2 + 8 + 4 + 4;
const absentBytes = chunkRefBytes + 1;

export const MaxPayloadBytes = MaxFrameBytes - dataBytes;
export const MaxBitfieldCount = (MaxFrameBytes - bitfieldBytes) * 8;

export const enum T {
  Hello = 1,
  Have = 2,
  Bitfield = 3,
  Request = 4,
  Data = 5,
  Absent = 6,
  Cancel = 7,
}

export const typeNames = ["", "hello", "have", "bitfield", "request", "data", "absent", "cancel"];

export const enum Reason {
  NotHeld = 1,
  OverBudget = 2,
  Busy = 3,
  Cancelled = 4,
}

export const reasonNames = ["", "not_held", "over_budget", "busy", "cancelled"];

/** HELLO flag: the sender answers requests (uploads). */
export const FlagServes = 1;

/** One frame; which fields matter depends on type (as in the Go package). */
export interface Frame {
  type: T;
  maxVersion: number;
  flags: number;
  maxRequests: number;
  object: string;
  chunk: number;
  offset: number;
  count: number;
  bits: Uint8Array;
  payload: Uint8Array;
  reason: number;
}

const empty = new Uint8Array(0);
const zeroObject = "0000000000000000";

function frame(p: Partial<Frame> & { type: T }): Frame {
  return { maxVersion: 0, flags: 0, maxRequests: 0, object: zeroObject, chunk: 0, offset: 0, count: 0, bits: empty, payload: empty, reason: 0, ...p };
}

export const hello = (flags: number, maxRequests: number) => frame({ type: T.Hello, maxVersion: Version, flags, maxRequests });
export const have = (object: string, chunk: number) => frame({ type: T.Have, object, chunk });
export const request = (object: string, chunk: number) => frame({ type: T.Request, object, chunk });
export const cancel = (object: string, chunk: number) => frame({ type: T.Cancel, object, chunk });
export const absent = (object: string, chunk: number, reason: Reason) => frame({ type: T.Absent, object, chunk, reason });
export const data = (object: string, chunk: number, offset: number, payload: Uint8Array) => frame({ type: T.Data, object, chunk, offset, payload });
export const bitfield = (object: string, first: number, count: number, bits: Uint8Array) => frame({ type: T.Bitfield, object, chunk: first, count, bits });

/** A malformed frame; code is one of the Go package's Code constants. */
export class WireError extends Error {
  constructor(readonly code: string, msg: string) {
    super("wire: " + msg);
    this.name = "WireError";
  }
}

const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
const two32 = 2 ** 32;

/** Whether a BITFIELD frame marks chunk as held. */
export function bitfieldHas(f: Frame, chunk: number): boolean {
  if (chunk < f.chunk || chunk - f.chunk >= f.count) return false;
  const i = chunk - f.chunk;
  return (f.bits[i >> 3] & (0x80 >> (i & 7))) !== 0;
}

function checkBitfield(first: number, count: number, bits: Uint8Array): void {
  if (count === 0) throw new WireError("bitfield_count", "bitfield: count 0");
  if (first + count > two32) throw new WireError("bitfield_count", `bitfield: first ${first} + count ${count} passes 2^32`);
  const want = Math.ceil(count / 8);
  if (bits.length !== want) throw new WireError("length", `bitfield: ${bits.length} bytes of bits for count ${count}, want ${want}`);
  const spare = count % 8;
  if (spare !== 0 && (bits[want - 1] & (0xff >> spare)) !== 0)
    throw new WireError("bitfield_padding", `bitfield: spare bits after chunk ${first + count - 1} are set`);
  if (count > MaxBitfieldCount) throw new WireError("too_large", `bitfield: count ${count}, at most ${MaxBitfieldCount} per frame`);
}

/** Checks f against the rules decode enforces. */
export function validate(f: Frame): void {
  switch (f.type) {
    case T.Hello:
      if (!(f.maxVersion >= 1 && f.maxVersion <= 255)) throw new WireError("hello_version", `hello: max_version ${f.maxVersion}`);
      return;
    case T.Have:
    case T.Request:
    case T.Cancel:
      return;
    case T.Absent:
      if (!(f.reason >= Reason.NotHeld && f.reason <= Reason.Cancelled)) throw new WireError("reason", `absent: unknown reason ${f.reason}`);
      return;
    case T.Data:
      if (f.payload.length === 0) throw new WireError("data_empty", "data: empty payload");
      if (f.payload.length > MaxPayloadBytes) throw new WireError("too_large", `data: ${f.payload.length} payload bytes, at most ${MaxPayloadBytes}`);
      if (f.offset + f.payload.length > two32) throw new WireError("data_range", `data: offset ${f.offset} + ${f.payload.length} bytes passes 2^32`);
      return;
    case T.Bitfield:
      checkBitfield(f.chunk, f.count, f.bits);
      return;
    default:
      throw new WireError("type", `unknown frame type ${f.type}`);
  }
}

function size(f: Frame): number {
  switch (f.type) {
    case T.Hello:
      return helloBytes;
    case T.Absent:
      return absentBytes;
    case T.Data:
      return dataBytes + f.payload.length;
    case T.Bitfield:
      return bitfieldBytes + f.bits.length;
    default:
      return chunkRefBytes;
  }
}

/** Encodes a frame; throws WireError for a frame a peer would reject. */
export function encode(f: Frame): Uint8Array {
  validate(f);
  if (f.type !== T.Hello && (!/^[0-9a-f]{16}$/.test(f.object) || !u32(f.chunk)))
    throw new WireError("length", `bad object ${f.object} or chunk ${f.chunk}`);
  const out = new Uint8Array(size(f));
  const v = new DataView(out.buffer);
  out[0] = Version;
  out[1] = f.type;
  if (f.type === T.Hello) {
    out[2] = f.maxVersion;
    out[3] = f.flags & 0xff;
    v.setUint16(4, f.maxRequests & 0xffff);
    return out;
  }
  v.setUint32(2, parseInt(f.object.slice(0, 8), 16));
  v.setUint32(6, parseInt(f.object.slice(8), 16));
  v.setUint32(10, f.chunk);
  switch (f.type) {
    case T.Absent:
      out[14] = f.reason;
      break;
    case T.Data:
      v.setUint32(14, f.offset);
      out.set(f.payload, dataBytes);
      break;
    case T.Bitfield:
      v.setUint32(14, f.count);
      out.set(f.bits, bitfieldBytes);
      break;
  }
  return out;
}

function hex8(v: DataView, at: number): string {
  return v.getUint32(at).toString(16).padStart(8, "0") + v.getUint32(at + 4).toString(16).padStart(8, "0");
}

/** Decodes one frame; throws WireError for any malformed input. Payload and bits alias b. */
export function decode(b: Uint8Array): Frame {
  if (b.length > MaxFrameBytes) throw new WireError("too_large", `frame of ${b.length} bytes, at most ${MaxFrameBytes}`);
  if (b.length < 2) throw new WireError("truncated", `frame of ${b.length} bytes, want at least 2`);
  if (b[0] !== Version) throw new WireError("version", `version ${b[0]}, this peer speaks ${Version}`);
  const type = b[1] as T;
  let fixed: number;
  switch (type) {
    case T.Hello:
      fixed = helloBytes;
      break;
    case T.Have:
    case T.Request:
    case T.Cancel:
      fixed = chunkRefBytes;
      break;
    case T.Absent:
      fixed = absentBytes;
      break;
    case T.Data:
      fixed = dataBytes;
      break;
    case T.Bitfield:
      fixed = bitfieldBytes;
      break;
    default:
      throw new WireError("type", `unknown frame type ${b[1]}`);
  }
  const name = typeNames[type];
  if (b.length < fixed) throw new WireError("truncated", `${name}: ${b.length} bytes, want ${fixed}`);
  const variable = type === T.Data || type === T.Bitfield;
  if (!variable && b.length !== fixed) throw new WireError("length", `${name}: ${b.length} bytes, want ${fixed}`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const f = frame({ type });
  if (type === T.Hello) {
    f.maxVersion = b[2];
    f.flags = b[3];
    f.maxRequests = v.getUint16(4);
  } else {
    f.object = hex8(v, 2);
    f.chunk = v.getUint32(10);
  }
  switch (type) {
    case T.Absent:
      f.reason = b[14];
      break;
    case T.Data:
      f.offset = v.getUint32(14);
      f.payload = b.subarray(dataBytes);
      break;
    case T.Bitfield:
      f.count = v.getUint32(14);
      f.bits = b.subarray(bitfieldBytes);
      break;
  }
  validate(f);
  return f;
}
