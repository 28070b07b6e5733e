// SPDX-License-Identifier: GPL-2.0-only
// libubox "blob" and "blobmsg" encodings, the binary containers ubus carries: a blob attribute is a
// 4-byte big-endian header (bit 31 extended flag, 7-bit id, 24-bit length including the header)
// followed by its payload and zero padding to a multiple of 4; blobmsg elements are extended blob
// attributes whose id is the value type and whose payload starts with a u16 name length, the name,
// a NUL and padding. This module owns both codecs and nothing else (no I/O; the ubus message layer
// is proto/ubus.ts). Decoders are total: every length is checked against the bytes that remain,
// nesting depth and element count are bounded, and hostile input yields err(), never an exception.
// Where libubox's own iterator would silently stop at a malformed attribute, these decoders report
// an error instead (the guards are the same: fewer than 4 bytes left, a length below 4, or a padded
// length running past the end). Encoders throw RangeError/TypeError only for values the caller
// built wrongly (a string too long for a 24-bit length, an int8 of 300, a function, ...).
import { err, ok, type Result } from '../core/result.js';
import { u16, u32, u64 } from './bytes.js';

// ---------------------------------------------------------------------------------------------
// Constants

export const BLOB_HEADER_BYTES = 4;
export const BLOB_ALIGN = 4;
/** The largest raw length (header included) a 24-bit length field can hold. */
export const BLOB_MAX_RAW_LEN = 0xffffff;
const BLOB_EXTENDED = 0x80000000;
const BLOB_ID_MASK = 0x7f000000;
const BLOB_ID_SHIFT = 24;
const BLOB_LEN_MASK = 0x00ffffff;

/** blobmsg value types; the id of an extended blob attribute. */
export const BLOBMSG_TYPE = {
  UNSPEC: 0,
  ARRAY: 1,
  TABLE: 2,
  STRING: 3,
  INT64: 4,
  INT32: 5,
  INT16: 6,
  INT8: 7,
  BOOL: 7,
  DOUBLE: 8,
} as const;
const BLOBMSG_TYPE_LAST = 8;

export const BLOBMSG_DEFAULT_MAX_DEPTH = 32;
export const BLOBMSG_DEFAULT_MAX_ELEMENTS = 65536;

// ---------------------------------------------------------------------------------------------
// Types

/** One blob attribute found inside a container. `payload` and `raw` are views into the input. */
export interface BlobAttr {
  id: number;
  extended: boolean;
  /** Offset of the header inside the buffer that was iterated. */
  offset: number;
  /** Header + payload (the length field's worth of bytes, padding excluded). */
  raw: Uint8Array;
  payload: Uint8Array;
}

/** What a blobmsg decoder produces. INT8 decodes to a boolean unless `int8: 'number'` is asked for. */
export type BlobmsgValue = string | number | boolean | bigint | null | BlobmsgValue[] | { [key: string]: BlobmsgValue };
export type BlobmsgTable = { [key: string]: BlobmsgValue };

export type BlobmsgScalarType = 'unspec' | 'string' | 'int64' | 'int32' | 'int16' | 'int8' | 'bool' | 'double';

/** An explicitly typed scalar for the encoder, e.g. `{ __blobmsg: 'int16', value: 80 }`. */
export interface BlobmsgTyped {
  __blobmsg: BlobmsgScalarType;
  value: string | number | bigint | boolean | null;
}

/** What the encoder accepts: plain values (typed by the rules of encodeBlobmsgValue) or typed ones. */
export type BlobmsgInput = BlobmsgValue | BlobmsgTyped | BlobmsgInput[] | { [key: string]: BlobmsgInput | undefined };
export type BlobmsgTableInput = { [key: string]: BlobmsgInput | undefined };

export interface BlobmsgDecodeOptions {
  /** Containers nested deeper than this are rejected (default 32). */
  maxDepth?: number;
  /** More elements than this in one decode call are rejected (default 65536). */
  maxElements?: number;
  /** INT8 as a boolean (default, as the `ubus` CLI prints it) or as a signed number. */
  int8?: 'bool' | 'number';
}

/** Shorthand for an explicitly typed encoder value. */
export function blobmsgTyped(type: BlobmsgScalarType, value: BlobmsgTyped['value']): BlobmsgTyped {
  return { __blobmsg: type, value };
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

export function blobPadLen(len: number): number {
  return (len + BLOB_ALIGN - 1) & ~(BLOB_ALIGN - 1);
}

const utf8 = new TextDecoder('utf-8');

/** C-string view of bytes: stops at the first NUL (what a libubox reader would see). */
function cString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return utf8.decode(nul >= 0 ? b.subarray(0, nul) : b);
}

// ---------------------------------------------------------------------------------------------
// Blob attributes: reading

/**
 * Reads the attribute whose header starts at `offset`, requiring its padded length to fit in
 * `limit` bytes from there (the libubox iterator guard). `limit` defaults to the rest of `buf`.
 */
export function readBlobAttr(buf: Uint8Array, offset = 0, limit = buf.length - offset): Result<BlobAttr> {
  if (offset < 0 || limit < BLOB_HEADER_BYTES || offset + BLOB_HEADER_BYTES > buf.length) {
    return err(
      `blob attribute at offset ${offset}: ${Math.max(0, Math.min(limit, buf.length - offset))} bytes left, need at least ${BLOB_HEADER_BYTES}`,
    );
  }
  const word = u32(buf, offset);
  const rawLen = word & BLOB_LEN_MASK;
  if (rawLen < BLOB_HEADER_BYTES)
    return err(`blob attribute at offset ${offset}: length ${rawLen} is shorter than its ${BLOB_HEADER_BYTES}-byte header`);
  const avail = Math.min(limit, buf.length - offset);
  if (blobPadLen(rawLen) > avail) return err(`blob attribute at offset ${offset}: length ${rawLen} runs past the ${avail} bytes left`);
  return ok({
    id: (word & BLOB_ID_MASK) >>> BLOB_ID_SHIFT,
    extended: (word & BLOB_EXTENDED) !== 0,
    offset,
    raw: buf.subarray(offset, offset + rawLen),
    payload: buf.subarray(offset + BLOB_HEADER_BYTES, offset + rawLen),
  });
}

/**
 * The attributes of a container payload, in order. Every byte must belong to a well-formed,
 * padded attribute: leftover or overrunning bytes are an error rather than silently ignored.
 */
export function blobAttrs(payload: Uint8Array, maxCount = Number.MAX_SAFE_INTEGER): Result<BlobAttr[]> {
  const out: BlobAttr[] = [];
  let off = 0;
  while (off < payload.length) {
    if (out.length >= maxCount) return err(`more than ${maxCount} blob attributes`);
    const a = readBlobAttr(payload, off);
    if (!a.ok) return a;
    out.push(a.value);
    off += blobPadLen(a.value.raw.length);
  }
  return ok(out);
}

/** STRING: at least one byte and NUL-terminated; the value stops at the first NUL. */
export function readBlobString(a: BlobAttr): Result<string> {
  const p = a.payload;
  if (p.length < 1) return err(`string attribute ${a.id} is empty (no NUL terminator)`);
  if (p[p.length - 1] !== 0) return err(`string attribute ${a.id} is not NUL-terminated`);
  return ok(cString(p));
}

function fixed(a: BlobAttr, n: number, what: string): Result<Uint8Array> {
  return a.payload.length === n ? ok(a.payload) : err(`${what} attribute ${a.id} has ${a.payload.length} payload bytes, expected ${n}`);
}

/** INT8 as an unsigned byte. */
export function readBlobU8(a: BlobAttr): Result<number> {
  const p = fixed(a, 1, 'int8');
  return p.ok ? ok(p.value[0] ?? 0) : p;
}

/** INT16, big-endian, unsigned. */
export function readBlobU16(a: BlobAttr): Result<number> {
  const p = fixed(a, 2, 'int16');
  return p.ok ? ok(u16(p.value, 0)) : p;
}

/** INT32, big-endian, unsigned (ubus ids and status codes are unsigned on the wire). */
export function readBlobU32(a: BlobAttr): Result<number> {
  const p = fixed(a, 4, 'int32');
  return p.ok ? ok(u32(p.value, 0)) : p;
}

/** INT64, big-endian, unsigned. */
export function readBlobU64(a: BlobAttr): Result<bigint> {
  const p = fixed(a, 8, 'int64');
  return p.ok ? ok(u64(p.value, 0)) : p;
}

/** NESTED: the attributes inside. */
export function readBlobNested(a: BlobAttr): Result<BlobAttr[]> {
  return blobAttrs(a.payload);
}

// ---------------------------------------------------------------------------------------------
// Blob attributes: writing. Every writer returns the attribute padded to 4 bytes, ready to concatenate.

function header(id: number, rawLen: number, extended: boolean): number {
  if (!Number.isInteger(id) || id < 0 || id > 0x7f) throw new RangeError(`blob attribute id ${id} is outside 0..127`);
  if (rawLen > BLOB_MAX_RAW_LEN) throw new RangeError(`blob attribute of ${rawLen} bytes exceeds the 24-bit length field`);
  return ((extended ? BLOB_EXTENDED : 0) | (id << BLOB_ID_SHIFT) | rawLen) >>> 0;
}

/** An attribute with the given payload (copied), zero-padded. */
export function putBlobAttr(id: number, payload: Uint8Array, extended = false): Buffer {
  const rawLen = BLOB_HEADER_BYTES + payload.length;
  const out = Buffer.alloc(blobPadLen(rawLen));
  out.writeUInt32BE(header(id, rawLen, extended), 0);
  out.set(payload, BLOB_HEADER_BYTES);
  return out;
}

/** A container attribute whose payload is the given (already padded) attributes. */
export function putBlobNested(id: number, children: readonly Uint8Array[], extended = false): Buffer {
  return putBlobAttr(id, Buffer.concat(children), extended);
}

export function putBlobString(id: number, s: string): Buffer {
  return putBlobAttr(id, Buffer.from(s + '\0', 'utf8'));
}

export function putBlobU8(id: number, v: number): Buffer {
  return putBlobAttr(id, Uint8Array.of(v & 0xff));
}

export function putBlobU16(id: number, v: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(v & 0xffff, 0);
  return putBlobAttr(id, p);
}

export function putBlobU32(id: number, v: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(v >>> 0, 0);
  return putBlobAttr(id, p);
}

export function putBlobU64(id: number, v: bigint): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(BigInt.asUintN(64, v), 0);
  return putBlobAttr(id, p);
}

// ---------------------------------------------------------------------------------------------
// blobmsg: encoding

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

function isTyped(v: unknown): v is BlobmsgTyped {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { __blobmsg?: unknown }).__blobmsg === 'string';
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkDepth(depth: number): void {
  if (depth > BLOBMSG_DEFAULT_MAX_DEPTH) throw new RangeError(`blobmsg value nested deeper than ${BLOBMSG_DEFAULT_MAX_DEPTH}`);
}

function intInRange(v: number | bigint | boolean | string | null, lo: number, hi: number, type: string): number {
  const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  if (typeof n === 'bigint') {
    if (n < BigInt(lo) || n > BigInt(hi)) throw new RangeError(`${type} value ${n} is outside ${lo}..${hi}`);
    return Number(n);
  }
  if (typeof n !== 'number' || !Number.isInteger(n) || n < lo || n > hi)
    throw new RangeError(`${type} value ${String(n)} is not an integer in ${lo}..${hi}`);
  return n;
}

function int64Bytes(v: number | bigint): Buffer {
  const b = typeof v === 'bigint' ? v : BigInt(v);
  if (b < INT64_MIN || b > UINT64_MAX) throw new RangeError(`int64 value ${b} does not fit in 64 bits`);
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(BigInt.asUintN(64, b), 0);
  return p;
}

function doubleBytes(v: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeDoubleBE(v, 0);
  return p;
}

/** The blobmsg type and value bytes for one value; containers recurse. */
function valueBytes(value: BlobmsgInput, depth: number): { type: number; bytes: Uint8Array } {
  if (value === null) return { type: BLOBMSG_TYPE.UNSPEC, bytes: new Uint8Array(0) };
  switch (typeof value) {
    case 'string':
      return { type: BLOBMSG_TYPE.STRING, bytes: Buffer.from(value + '\0', 'utf8') };
    case 'boolean':
      return { type: BLOBMSG_TYPE.INT8, bytes: Uint8Array.of(value ? 1 : 0) };
    case 'bigint':
      return { type: BLOBMSG_TYPE.INT64, bytes: int64Bytes(value) };
    case 'number':
      if (Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) {
        const p = Buffer.alloc(4);
        p.writeInt32BE(value, 0);
        return { type: BLOBMSG_TYPE.INT32, bytes: p };
      }
      if (Number.isInteger(value) && value >= -(2 ** 63) && value < 2 ** 63) return { type: BLOBMSG_TYPE.INT64, bytes: int64Bytes(value) };
      return { type: BLOBMSG_TYPE.DOUBLE, bytes: doubleBytes(value) };
    case 'object':
      if (Array.isArray(value)) return { type: BLOBMSG_TYPE.ARRAY, bytes: encodeBlobmsgArray(value, depth + 1) };
      if (isTyped(value)) return typedBytes(value);
      if (!isPlainObject(value)) throw new TypeError('cannot encode a class instance as a blobmsg table (use a plain object)');
      return { type: BLOBMSG_TYPE.TABLE, bytes: encodeBlobmsgTable(value, depth + 1) };
    default:
      throw new TypeError(`cannot encode a ${typeof value} as blobmsg`);
  }
}

function typedBytes(t: BlobmsgTyped): { type: number; bytes: Uint8Array } {
  const v = t.value;
  switch (t.__blobmsg) {
    case 'unspec':
      return { type: BLOBMSG_TYPE.UNSPEC, bytes: new Uint8Array(0) };
    case 'string':
      if (typeof v !== 'string') throw new TypeError(`blobmsg string needs a string, got ${typeof v}`);
      return { type: BLOBMSG_TYPE.STRING, bytes: Buffer.from(v + '\0', 'utf8') };
    case 'bool':
    case 'int8':
      return { type: BLOBMSG_TYPE.INT8, bytes: Uint8Array.of(intInRange(v, -0x80, 0xff, t.__blobmsg) & 0xff) };
    case 'int16': {
      const p = Buffer.alloc(2);
      p.writeUInt16BE(intInRange(v, -0x8000, 0xffff, 'int16') & 0xffff, 0);
      return { type: BLOBMSG_TYPE.INT16, bytes: p };
    }
    case 'int32': {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(intInRange(v, INT32_MIN, 0xffffffff, 'int32') >>> 0, 0);
      return { type: BLOBMSG_TYPE.INT32, bytes: p };
    }
    case 'int64':
      if (typeof v !== 'bigint' && (typeof v !== 'number' || !Number.isInteger(v)))
        throw new RangeError(`int64 value ${String(v)} is not an integer`);
      return { type: BLOBMSG_TYPE.INT64, bytes: int64Bytes(v) };
    case 'double':
      if (typeof v !== 'number') throw new TypeError(`blobmsg double needs a number, got ${typeof v}`);
      return { type: BLOBMSG_TYPE.DOUBLE, bytes: doubleBytes(v) };
    default:
      throw new TypeError(`unknown blobmsg type ${String((t as { __blobmsg: unknown }).__blobmsg)}`);
  }
}

/** One blobmsg element (extended blob attribute) with its name, padded to 4 bytes. */
export function encodeBlobmsgElement(name: string, value: BlobmsgInput, depth = 0): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > 0xffff) throw new RangeError(`blobmsg name of ${nameBytes.length} bytes exceeds 65535`);
  const { type, bytes } = valueBytes(value, depth);
  const hdrLen = blobPadLen(2 + nameBytes.length + 1);
  const payload = Buffer.alloc(hdrLen + bytes.length);
  payload.writeUInt16BE(nameBytes.length, 0);
  payload.set(nameBytes, 2);
  payload.set(bytes, hdrLen);
  return putBlobAttr(type, payload, true);
}

/** The payload of a table: one named element per own key (undefined values are skipped). */
export function encodeBlobmsgTable(obj: BlobmsgTableInput, depth = 0): Buffer {
  checkDepth(depth);
  const parts: Buffer[] = [];
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (v === undefined) continue;
    parts.push(encodeBlobmsgElement(key, v, depth));
  }
  return Buffer.concat(parts);
}

/** The payload of an array: unnamed elements (undefined encodes as null/UNSPEC). */
export function encodeBlobmsgArray(arr: readonly (BlobmsgInput | undefined)[], depth = 0): Buffer {
  checkDepth(depth);
  return Buffer.concat(arr.map((v) => encodeBlobmsgElement('', v === undefined ? null : v, depth)));
}

// ---------------------------------------------------------------------------------------------
// blobmsg: decoding

interface DecodeState {
  maxDepth: number;
  maxElements: number;
  int8AsBool: boolean;
  elements: number;
}

function state(opts: BlobmsgDecodeOptions): DecodeState {
  return {
    maxDepth: opts.maxDepth ?? BLOBMSG_DEFAULT_MAX_DEPTH,
    maxElements: opts.maxElements ?? BLOBMSG_DEFAULT_MAX_ELEMENTS,
    int8AsBool: (opts.int8 ?? 'bool') === 'bool',
    elements: 0,
  };
}

/** A decoded blobmsg element: its name, type and value. */
export interface BlobmsgElement {
  name: string;
  type: number;
  value: BlobmsgValue;
}

/** Name and value bytes of one element, with libubox's checks (extended, NUL after the name, type known). */
function splitElement(a: BlobAttr): Result<{ name: string; type: number; data: Uint8Array }> {
  if (!a.extended) return err(`blobmsg element at offset ${a.offset} lacks the extended flag`);
  if (a.id > BLOBMSG_TYPE_LAST) return err(`blobmsg element at offset ${a.offset} has unknown type ${a.id}`);
  const p = a.payload;
  if (p.length < 2) return err(`blobmsg element at offset ${a.offset} is too short for its name length`);
  const nameLen = u16(p, 0);
  const hdrLen = blobPadLen(2 + nameLen + 1);
  if (hdrLen > p.length) return err(`blobmsg element at offset ${a.offset}: name length ${nameLen} runs past its ${p.length}-byte payload`);
  if (p[2 + nameLen] !== 0) return err(`blobmsg element at offset ${a.offset}: name is not NUL-terminated`);
  return ok({ name: cString(p.subarray(2, 2 + nameLen)), type: a.id, data: p.subarray(hdrLen) });
}

function decodeValue(type: number, data: Uint8Array, depth: number, st: DecodeState): Result<BlobmsgValue> {
  switch (type) {
    case BLOBMSG_TYPE.UNSPEC:
      return ok(null);
    case BLOBMSG_TYPE.ARRAY:
      return decodeList(data, false, depth + 1, st);
    case BLOBMSG_TYPE.TABLE:
      return decodeList(data, true, depth + 1, st);
    case BLOBMSG_TYPE.STRING:
      if (data.length < 1 || data[data.length - 1] !== 0) return err('blobmsg string is not NUL-terminated');
      return ok(cString(data));
    case BLOBMSG_TYPE.INT64: {
      if (data.length !== 8) return err(`blobmsg int64 has ${data.length} bytes, expected 8`);
      const v = BigInt.asIntN(64, u64(data, 0));
      return ok(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
    }
    case BLOBMSG_TYPE.INT32:
      if (data.length !== 4) return err(`blobmsg int32 has ${data.length} bytes, expected 4`);
      return ok(u32(data, 0) | 0);
    case BLOBMSG_TYPE.INT16:
      if (data.length !== 2) return err(`blobmsg int16 has ${data.length} bytes, expected 2`);
      return ok((u16(data, 0) << 16) >> 16);
    case BLOBMSG_TYPE.INT8: {
      if (data.length !== 1) return err(`blobmsg int8 has ${data.length} bytes, expected 1`);
      const b = data[0] ?? 0;
      return ok(st.int8AsBool ? b !== 0 : (b << 24) >> 24);
    }
    case BLOBMSG_TYPE.DOUBLE:
      // libubox only requires at least 8 bytes here.
      if (data.length < 8) return err(`blobmsg double has ${data.length} bytes, expected 8`);
      return ok(new DataView(data.buffer, data.byteOffset, 8).getFloat64(0, false));
    default:
      return err(`unknown blobmsg type ${type}`);
  }
}

function decodeList(payload: Uint8Array, table: boolean, depth: number, st: DecodeState): Result<BlobmsgValue> {
  if (depth > st.maxDepth) return err(`blobmsg nested deeper than ${st.maxDepth}`);
  const out: BlobmsgTable = {};
  const arr: BlobmsgValue[] = [];
  let off = 0;
  while (off < payload.length) {
    if (++st.elements > st.maxElements) return err(`blobmsg has more than ${st.maxElements} elements`);
    const a = readBlobAttr(payload, off);
    if (!a.ok) return a;
    off += blobPadLen(a.value.raw.length);
    const el = splitElement(a.value);
    if (!el.ok) return el;
    const v = decodeValue(el.value.type, el.value.data, depth, st);
    if (!v.ok) return err(el.value.name ? `${el.value.name}: ${v.error}` : v.error);
    if (table) setOwn(out, el.value.name, v.value);
    else arr.push(v.value);
  }
  return ok(table ? out : arr);
}

/** Defines a plain data property (so a key such as "__proto__" cannot touch the prototype). */
function setOwn(obj: BlobmsgTable, key: string, value: BlobmsgValue): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Decodes a table payload (named elements; duplicate names: the last wins). */
export function decodeBlobmsgTable(payload: Uint8Array, opts: BlobmsgDecodeOptions = {}): Result<BlobmsgTable> {
  return decodeList(payload, true, 0, state(opts)) as Result<BlobmsgTable>;
}

/** Decodes an array payload (element names are ignored). */
export function decodeBlobmsgArray(payload: Uint8Array, opts: BlobmsgDecodeOptions = {}): Result<BlobmsgValue[]> {
  return decodeList(payload, false, 0, state(opts)) as Result<BlobmsgValue[]>;
}

/** Decodes one blobmsg element attribute (e.g. a value found by blobAttrs). */
export function decodeBlobmsgElement(a: BlobAttr, opts: BlobmsgDecodeOptions = {}): Result<BlobmsgElement> {
  const el = splitElement(a);
  if (!el.ok) return el;
  const st = state(opts);
  st.elements = 1;
  const v = decodeValue(el.value.type, el.value.data, 0, st);
  return v.ok ? ok({ name: el.value.name, type: el.value.type, value: v.value }) : v;
}

/**
 * Validates one element the way ubusd validates a method signature entry
 * (blobmsg_check_attr with names required): extended, named, known type, well-formed value.
 */
export function checkBlobmsgNamedElement(a: BlobAttr): Result<string> {
  const el = decodeBlobmsgElement(a);
  if (!el.ok) return el;
  return el.value.name === '' ? err(`blobmsg element at offset ${a.offset} has an empty name`) : ok(el.value.name);
}
