// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  blobAttrs,
  blobmsgTyped,
  decodeBlobmsgArray,
  decodeBlobmsgElement,
  decodeBlobmsgTable,
  encodeBlobmsgArray,
  encodeBlobmsgElement,
  encodeBlobmsgTable,
  putBlobAttr,
  putBlobNested,
  putBlobString,
  putBlobU16,
  putBlobU32,
  putBlobU64,
  putBlobU8,
  readBlobAttr,
  readBlobNested,
  readBlobString,
  readBlobU16,
  readBlobU32,
  readBlobU64,
  readBlobU8,
  BLOBMSG_TYPE,
  type BlobmsgInput,
  type BlobmsgValue,
} from '../../src/proto/blob.js';
import { assertResult, errorOf, hex, rng, value } from '../support/helpers.js';

// The DATA payload of the worked example in UBUS-NOTES.md, as libubox itself lays it out (built
// with blobmsg_add_string/u32/u8 and blobmsg_open_array against libubox 1aa36ee, 2026-02). The
// notes' hand-written byte list drops one padding byte after the names "ok" and "arr"; the
// lengths in its headers (0x0d, 0x18, DATA 0x48) agree with these bytes.
const WORKED_DATA = hex(`
  83 00 00 0e 00 04 6e 61 6d 65 00 00 78 00 00 00
  85 00 00 0c 00 01 6e 00 00 00 00 05
  87 00 00 0d 00 02 6f 6b 00 00 00 00 01 00 00 00
  81 00 00 18 00 03 61 72 72 00 00 00 | 83 00 00 0b 00 00 00 00 61 62 00 00`);

// Every scalar type, from the same libubox build: blobmsg_add_u8 "i8" 0xfe, add_u16 "i16" 0xfffe,
// add_u32 "i32" 0xfffffffe, add_u64 "i64" 0x123456789abcdef0, add_double "d" -2.5, an UNSPEC "nil",
// and a table "t" {k: "vé"}.
const ALL_TYPES = hex(`
  8700000d 00026938 00000000 fe000000
  8600000e 00036931 36000000 fffe0000
  85000010 00036933 32000000 fffffffe
  84000014 00036936 34000000 12345678 9abcdef0
  88000010 00016400 c0040000 00000000
  8000000c 00036e69 6c000000
  82000014 00017400 | 8300000c 00016b00 76c3a900`);

test('worked example: DATA {name, n, ok, arr} encodes to the bytes libubox builds and decodes back', () => {
  const encoded = encodeBlobmsgTable({ name: 'x', n: 5, ok: blobmsgTyped('int8', 1), arr: ['ab'] });
  assert.equal(encoded.toString('hex'), WORKED_DATA.toString('hex'));
  assert.equal(encodeBlobmsgTable({ name: 'x', n: 5, ok: true, arr: ['ab'] }).toString('hex'), WORKED_DATA.toString('hex'));
  assert.deepEqual(value(decodeBlobmsgTable(WORKED_DATA)), { name: 'x', n: 5, ok: true, arr: ['ab'] });
  assert.deepEqual(value(decodeBlobmsgTable(WORKED_DATA, { int8: 'number' })), { name: 'x', n: 5, ok: 1, arr: ['ab'] });
});

test('every blobmsg type matches libubox byte for byte, signed on decode', () => {
  const input = {
    i8: blobmsgTyped('int8', 0xfe),
    i16: blobmsgTyped('int16', 0xfffe),
    i32: blobmsgTyped('int32', 0xfffffffe),
    i64: blobmsgTyped('int64', 0x123456789abcdef0n),
    d: -2.5,
    nil: null,
    t: { k: 'vé' },
  };
  assert.equal(encodeBlobmsgTable(input).toString('hex'), ALL_TYPES.toString('hex'));
  assert.deepEqual(value(decodeBlobmsgTable(ALL_TYPES)), {
    i8: true,
    i16: -2,
    i32: -2,
    i64: 0x123456789abcdef0n,
    d: -2.5,
    nil: null,
    t: { k: 'vé' },
  });
  assert.equal(value(decodeBlobmsgTable(ALL_TYPES, { int8: 'number' }))['i8'], -2);
});

test('plain JS values pick INT32, INT64, DOUBLE, INT8, STRING, UNSPEC', () => {
  const typeOf = (v: BlobmsgInput) => value(decodeBlobmsgElement(value(readBlobAttr(encodeBlobmsgElement('v', v))))).type;
  assert.equal(typeOf(5), BLOBMSG_TYPE.INT32);
  assert.equal(typeOf(-(2 ** 31)), BLOBMSG_TYPE.INT32);
  assert.equal(typeOf(2 ** 31 - 1), BLOBMSG_TYPE.INT32);
  assert.equal(typeOf(2 ** 31), BLOBMSG_TYPE.INT64);
  assert.equal(typeOf(-(2 ** 31) - 1), BLOBMSG_TYPE.INT64);
  assert.equal(typeOf(Number.MAX_SAFE_INTEGER), BLOBMSG_TYPE.INT64);
  assert.equal(typeOf(10n), BLOBMSG_TYPE.INT64);
  assert.equal(typeOf(1.5), BLOBMSG_TYPE.DOUBLE);
  assert.equal(typeOf(2 ** 64), BLOBMSG_TYPE.DOUBLE);
  assert.equal(typeOf(Number.NaN), BLOBMSG_TYPE.DOUBLE);
  assert.equal(typeOf(true), BLOBMSG_TYPE.INT8);
  assert.equal(typeOf('s'), BLOBMSG_TYPE.STRING);
  assert.equal(typeOf(null), BLOBMSG_TYPE.UNSPEC);
  assert.equal(typeOf([]), BLOBMSG_TYPE.ARRAY);
  assert.equal(typeOf({}), BLOBMSG_TYPE.TABLE);
  assert.equal(typeOf(blobmsgTyped('int16', 80)), BLOBMSG_TYPE.INT16);
  assert.equal(typeOf(blobmsgTyped('bool', false)), BLOBMSG_TYPE.INT8);
  assert.equal(typeOf(blobmsgTyped('double', 3)), BLOBMSG_TYPE.DOUBLE);
  assert.equal(typeOf(blobmsgTyped('int64', 1)), BLOBMSG_TYPE.INT64);
});

test('round trips: nested tables and arrays, every int size, double, bool, string, null', () => {
  const v = {
    s: 'héllo wörld',
    empty: '',
    i8: blobmsgTyped('int8', -128),
    i16: blobmsgTyped('int16', -32768),
    i32: -2147483648,
    i64: -9007199254740991,
    big: -(2n ** 63n),
    ubig: blobmsgTyped('int64', 2n ** 64n - 1n),
    d: Math.PI,
    inf: Number.NEGATIVE_INFINITY,
    yes: true,
    no: false,
    nil: null,
    arr: [1, 'two', [3, [4, []]], { five: 5 }, null, false],
    tbl: { a: { b: { c: { d: 'deep' } } }, '': 'empty name', ключ: 'unicode key' },
    emptyTable: {},
    emptyArray: [],
  };
  const decoded = value(decodeBlobmsgTable(encodeBlobmsgTable(v), { int8: 'number' }));
  assert.deepEqual(decoded, {
    s: 'héllo wörld',
    empty: '',
    i8: -128,
    i16: -32768,
    i32: -2147483648,
    i64: -9007199254740991,
    big: -(2n ** 63n),
    ubig: -1,
    d: Math.PI,
    inf: Number.NEGATIVE_INFINITY,
    yes: 1,
    no: 0,
    nil: null,
    arr: [1, 'two', [3, [4, []]], { five: 5 }, null, 0],
    tbl: { a: { b: { c: { d: 'deep' } } }, '': 'empty name', ключ: 'unicode key' },
    emptyTable: {},
    emptyArray: [],
  });
  assert.ok(Number.isNaN(value(decodeBlobmsgTable(encodeBlobmsgTable({ n: Number.NaN })))['n']));
  assert.deepEqual(value(decodeBlobmsgArray(encodeBlobmsgArray([1, 'x', undefined, [true]]))), [1, 'x', null, [true]]);
  // Undefined table values are left out, as JSON.stringify does.
  assert.deepEqual(value(decodeBlobmsgTable(encodeBlobmsgTable({ a: 1, b: undefined }))), { a: 1 });
  // A name of the maximum length still round-trips.
  const long = 'n'.repeat(65535);
  assert.deepEqual(Object.keys(value(decodeBlobmsgTable(encodeBlobmsgTable({ [long]: 1 })))), [long]);
});

test('seeded random values round-trip', () => {
  const r = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const str = () => Array.from({ length: Math.floor(r() * 6) }, () => pick(['a', 'Z', '0', '.', 'é', '漢', ' ', '_'])).join('');
  function gen(depth: number): BlobmsgValue {
    const k = Math.floor(r() * (depth > 4 ? 6 : 8));
    switch (k) {
      case 0:
        return str();
      case 1:
        return Math.floor(r() * 2 ** 32) - 2 ** 31;
      case 2:
        return (Math.floor(r() * 2 ** 21) + 2 ** 31) * (r() < 0.5 ? -1 : 1) * 1024;
      case 3:
        return (r() - 0.5) * 1e6 + 0.25;
      case 4:
        return r() < 0.5;
      case 5:
        return r() < 0.5 ? null : 2n ** 60n + BigInt(Math.floor(r() * 1e9));
      case 6:
        return Array.from({ length: Math.floor(r() * 4) }, () => gen(depth + 1));
      default: {
        const t: Record<string, BlobmsgValue> = {};
        for (let i = Math.floor(r() * 4); i > 0; i--) t[str() + i] = gen(depth + 1);
        return t;
      }
    }
  }
  for (let i = 0; i < 500; i++) {
    const v = { root: gen(0) };
    assert.deepEqual(value(decodeBlobmsgTable(encodeBlobmsgTable(v))), v, `case ${i}`);
  }
});

test('a "__proto__" key decodes as an own property without touching the prototype', () => {
  const payload = encodeBlobmsgElement('__proto__', { polluted: true });
  const t = value(decodeBlobmsgTable(payload));
  assert.equal(Object.getPrototypeOf(t), Object.prototype);
  assert.ok(Object.prototype.hasOwnProperty.call(t, '__proto__'));
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('truncating an encoded table at every offset fails except at element boundaries', () => {
  const enc = encodeBlobmsgTable({ s: 'string value', n: 7, t: { a: [1, 2, { b: 'c' }] }, d: 0.5, z: null });
  const boundaries = new Set<number>([0]);
  for (const a of value(blobAttrs(enc))) boundaries.add(a.offset + ((a.raw.length + 3) & ~3));
  for (let cut = 0; cut <= enc.length; cut++) {
    const r = decodeBlobmsgTable(enc.subarray(0, cut));
    assertResult(r, `cut ${cut}`);
    assert.equal(r.ok, boundaries.has(cut), `cut ${cut}: ${r.ok ? 'ok' : r.error}`);
    assertResult(decodeBlobmsgArray(enc.subarray(0, cut)), `array cut ${cut}`);
    assertResult(blobAttrs(enc.subarray(0, cut)), `attrs cut ${cut}`);
  }
});

test('blob attribute guards: length below 4, past the end, stray bytes', () => {
  for (const len of [0, 1, 2, 3]) {
    assert.match(errorOf(blobAttrs(hex(`0300000${len} 00000000`))), /shorter than its 4-byte header/);
    assert.match(errorOf(decodeBlobmsgTable(hex(`8300000${len} 00000000`))), /shorter than its 4-byte header/);
  }
  assert.match(errorOf(blobAttrs(hex('03000009 61626300'))), /runs past/);
  assert.match(errorOf(blobAttrs(hex('03000006 6100'))), /runs past/); // raw length fits but padding does not
  assert.match(errorOf(blobAttrs(hex('03000006 61000000 0102'))), /need at least 4/);
  assert.match(errorOf(blobAttrs(hex('ffffffff'))), /runs past/);
  assert.deepEqual(value(blobAttrs(new Uint8Array(0))), []);
  assert.match(errorOf(readBlobAttr(hex('000000'))), /need at least 4/);
});

test('raw blob readers check sizes and the NUL terminator', () => {
  const attr = (b: Buffer) => value(readBlobAttr(b));
  assert.equal(value(readBlobString(attr(putBlobString(2, 'hostapd.wl0')))), 'hostapd.wl0');
  assert.match(errorOf(readBlobString(attr(hex('02000007 616263 00')))), /not NUL-terminated/);
  assert.match(errorOf(readBlobString(attr(hex('02000004')))), /empty/);
  assert.equal(value(readBlobString(attr(hex('02000008 61006300')))), 'a'); // a C reader stops at the first NUL
  assert.equal(value(readBlobU8(attr(putBlobU8(9, 1)))), 1);
  assert.equal(value(readBlobU16(attr(putBlobU16(9, 0xbeef)))), 0xbeef);
  assert.equal(value(readBlobU32(attr(putBlobU32(3, 0xdeadbeef)))), 0xdeadbeef);
  assert.equal(value(readBlobU64(attr(putBlobU64(3, 2n ** 64n - 2n)))), 2n ** 64n - 2n);
  assert.match(errorOf(readBlobU32(attr(hex('03000007 010203 00')))), /3 payload bytes, expected 4/);
  assert.match(errorOf(readBlobU8(attr(hex('09000006 0101 0000')))), /expected 1/);
  const nested = putBlobNested(11, [putBlobU32(0, 1), putBlobU32(0, 2)]);
  assert.deepEqual(
    value(readBlobNested(attr(nested))).map((a) => value(readBlobU32(a))),
    [1, 2],
  );
  assert.equal(putBlobAttr(1, new Uint8Array(5)).length, 12);
  assert.equal(putBlobAttr(1, new Uint8Array(5)).readUInt32BE(0), 0x01000009);
  assert.equal(putBlobAttr(1, new Uint8Array(0), true).readUInt32BE(0), 0x81000004);
});

test('hostile blobmsg: missing NUL, name length past the end, bad sizes, unknown type', () => {
  // STRING without its NUL
  assert.match(errorOf(decodeBlobmsgTable(hex('8300000b 00016b00 616263 00'))), /not NUL-terminated/);
  // STRING with an empty payload
  assert.match(errorOf(decodeBlobmsgTable(hex('83000008 00016b00'))), /not NUL-terminated/);
  // name length 0x40 in a 12-byte element
  assert.match(errorOf(decodeBlobmsgTable(hex('8500000c 00406b00 00000005'))), /name length 64 runs past/);
  // name length 0xffff
  assert.match(errorOf(decodeBlobmsgTable(hex('85000008 ffff0000'))), /runs past/);
  // element too short for the name length field
  assert.match(errorOf(decodeBlobmsgTable(hex('85000005 01000000'))), /too short for its name length/);
  // name not followed by NUL
  assert.match(errorOf(decodeBlobmsgTable(hex('8500000c 00016b6b 00000005'))), /name is not NUL-terminated/);
  // integer sizes
  assert.match(errorOf(decodeBlobmsgTable(hex('8500000b 00016b00 000005 00'))), /int32 has 3 bytes/);
  assert.match(errorOf(decodeBlobmsgTable(hex('8700000a 00016b00 0101 0000'))), /int8 has 2 bytes/);
  assert.match(errorOf(decodeBlobmsgTable(hex('86000009 00016b00 01 000000'))), /int16 has 1 bytes/);
  assert.match(errorOf(decodeBlobmsgTable(hex('8400000f 00016b00 00000000 000000 00'))), /int64 has 7 bytes/);
  assert.match(errorOf(decodeBlobmsgTable(hex('8800000f 00016b00 00000000 000000 00'))), /double has 7 bytes/);
  // unknown type 9, and a non-extended element
  assert.match(errorOf(decodeBlobmsgTable(hex('89000008 00016b00'))), /unknown type 9/);
  assert.match(errorOf(decodeBlobmsgTable(hex('05000008 00016b00'))), /lacks the extended flag/);
  // errors inside containers name the element
  assert.match(errorOf(decodeBlobmsgTable(encodeBlobmsgElement('outer', { inner: 1 }).fill(0x7f, 16, 17))), /outer/);
});

/** An array nested `levels` deep around an int32 (each level: 4-byte header + empty name). */
function depthBomb(levels: number): Buffer {
  const leaf = encodeBlobmsgElement('', 1);
  const out = Buffer.alloc(levels * 8 + leaf.length);
  for (let i = 0; i < levels; i++)
    out.writeUInt32BE((0x80000000 | (BLOBMSG_TYPE.ARRAY << 24) | ((levels - i) * 8 + leaf.length)) >>> 0, i * 8);
  leaf.copy(out, levels * 8);
  return out;
}

test('depth bombs are refused without deep recursion; 32 levels are fine', () => {
  assert.ok(decodeBlobmsgArray(depthBomb(31)).ok);
  assert.match(errorOf(decodeBlobmsgArray(depthBomb(33))), /deeper than 32/);
  assert.match(errorOf(decodeBlobmsgArray(depthBomb(100_000))), /deeper than 32/);
  assert.ok(decodeBlobmsgArray(depthBomb(40), { maxDepth: 64 }).ok);
  let deep: BlobmsgInput = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.throws(() => encodeBlobmsgTable({ deep }), RangeError);
});

test('element limit', () => {
  const many = encodeBlobmsgArray(Array.from({ length: 100 }, (_, i) => i));
  assert.match(errorOf(decodeBlobmsgArray(many, { maxElements: 99 })), /more than 99 elements/);
  assert.equal(value(decodeBlobmsgArray(many, { maxElements: 100 })).length, 100);
  const nested = encodeBlobmsgTable({ a: [1, 2, 3], b: { c: [4, 5] } }); // 8 elements in all
  assert.ok(!decodeBlobmsgTable(nested, { maxElements: 7 }).ok);
  assert.ok(decodeBlobmsgTable(nested, { maxElements: 8 }).ok);
});

test('the encoder refuses values it cannot represent', () => {
  assert.throws(() => encodeBlobmsgTable({ v: blobmsgTyped('int8', 300) }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: blobmsgTyped('int16', 70000) }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: blobmsgTyped('int32', 2 ** 32) }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: blobmsgTyped('int32', 1.5) }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: 2n ** 64n }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: -(2n ** 63n) - 1n }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: blobmsgTyped('string', 5) }), TypeError);
  assert.throws(() => encodeBlobmsgTable({ ['x'.repeat(65536)]: 1 }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: 'x'.repeat(0x1000000) }), RangeError);
  assert.throws(() => encodeBlobmsgTable({ v: (() => 1) as unknown as BlobmsgInput }), TypeError);
  assert.throws(() => encodeBlobmsgTable({ v: new Date() as unknown as BlobmsgInput }), TypeError);
  assert.throws(() => encodeBlobmsgTable({ v: Buffer.from('x') as unknown as BlobmsgInput }), TypeError);
});

test('seeded fuzz: random and mutated buffers never throw', () => {
  const r = rng(0xb10b);
  const seeds = [
    WORKED_DATA,
    ALL_TYPES,
    encodeBlobmsgTable({ a: [1, [2, [3, { b: 'c' }]]], s: 'x'.repeat(40), d: 1.25, n: null, big: 2n ** 62n }),
    depthBomb(40),
  ];
  let ok = 0;
  for (let i = 0; i < 6000; i++) {
    let buf: Uint8Array;
    if (i % 3 === 0) {
      buf = Uint8Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256));
      // sometimes plant a plausible header
      if (buf.length >= 4 && r() < 0.5) {
        buf[0] = 0x80 | Math.floor(r() * 10);
        buf[1] = 0;
        buf[2] = 0;
        buf[3] = Math.floor(r() * (buf.length + 8));
      }
    } else {
      const seed = seeds[i % seeds.length] as Buffer;
      const m = Buffer.from(seed);
      const flips = 1 + Math.floor(r() * 4);
      for (let f = 0; f < flips; f++) m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
      buf = r() < 0.3 ? m.subarray(0, Math.floor(r() * m.length)) : m;
    }
    const results = [decodeBlobmsgTable(buf), decodeBlobmsgArray(buf, { int8: 'number' }), blobAttrs(buf)];
    for (const res of results) assertResult(res, `case ${i}`);
    if (results[0]?.ok) ok++;
  }
  assert.ok(ok > 0, 'some mutated inputs should still decode');
});
