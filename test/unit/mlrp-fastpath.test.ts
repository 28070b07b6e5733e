// SPDX-License-Identifier: GPL-2.0-only
// The fast paths of the MLRP stack give exactly what the plain ones gave: canonical JSON byte for byte
// (the HMAC covers it), the envelope decode field for field, the replay cache's verdicts (while it
// now forgets expired nonces as it goes), and TCP frames coalesced per turn still arrive whole, in
// order, also when split or joined across reads, when the channel is closed right after sending, and over
// several channels written in the same turn (one write each).
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { decodeEnvelope, encodeEnvelope, envelopeShape } from '../../src/core/messages.js';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { Authenticator, MacKey, ReplayCache, canonicalBytes, type Role } from '../../src/proto/auth.js';
import type { Envelope } from '../../src/core/messages.js';
import { MLRP_MAX_PAYLOAD, encodeFrame } from '../../src/proto/mlrp.js';
import { connectTcp, listenTcp, type TcpChannel } from '../../src/platform/tcp-channel.js';
import { until } from '../support/helpers.js';

/** The canonical JSON as first written: sort every object's keys, JSON.stringify the rest. */
function reference(value: unknown, depth = 0): string | undefined {
  if (depth > 32) return undefined;
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    const parts: string[] = [];
    for (const item of value as unknown[]) {
      const c = reference(item, depth + 1);
      if (c === undefined) return undefined;
      parts.push(c);
    }
    return `[${parts.join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort()) {
    if (obj[key] === undefined) continue;
    const c = reference(obj[key], depth + 1);
    if (c === undefined) return undefined;
    parts.push(`${JSON.stringify(key)}:${c}`);
  }
  return `{${parts.join(',')}}`;
}

/** A deterministic pseudo-random JSON-ish value (keys in any order, odd strings and numbers). */
function randomValue(seed: { s: number }, depth: number): unknown {
  const r = () => (seed.s = (seed.s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const strings = ['', 'a', 'B', 'é', '"q"', 'line\nbreak', '\u2028', '\ud800', 'z', '10', '9', 'aa', 'Ab'];
  const pick = r();
  if (depth > 4 || pick < 0.35) {
    const k = Math.floor(r() * 9);
    return [null, true, false, 0, -0, 1.5e300, -17, strings[Math.floor(r() * strings.length)], NaN][k];
  }
  if (pick < 0.55) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(seed, depth + 1));
  const obj: Record<string, unknown> = {};
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) obj[strings[Math.floor(r() * strings.length)]!] = r() < 0.1 ? undefined : randomValue(seed, depth + 1);
  return obj;
}

test('canonicalJson is byte for byte the sort-and-stringify form, sorted input or not', () => {
  const seed = { s: 42 };
  for (let i = 0; i < 3000; i++) {
    const v = randomValue(seed, 0);
    assert.equal(canonicalJson(v), reference(v), JSON.stringify(v));
    const parsed: unknown = JSON.parse(JSON.stringify(v) ?? 'null');
    assert.equal(canonicalJson(parsed), reference(parsed));
  }
  assert.equal(canonicalJson({ b: [undefined, Infinity], a: { d: 1, c: undefined } }), '{"a":{"d":1},"b":[null,null]}');
  // Objects of up to 40 keys in every order (sorted two ways: by insertion when few, by sort() when many).
  for (let n = 2; n <= 40; n++) {
    const names = Array.from({ length: n }, (_, i) => [`k${(i * 7919) % 97}`, String(i * 13), `é${i}`, `K${i}`][i % 4]!);
    const obj: Record<string, number> = {};
    for (const name of names.reverse()) obj[name] = n;
    assert.equal(canonicalJson(obj), reference(obj), `${n} keys`);
  }
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = i % 2 ? [deep] : { x: deep };
  assert.equal(canonicalJson(deep), undefined);
  assert.equal(reference(deep), undefined);
});

test('the signed bytes and the sealed envelope are what the first implementation made of them', () => {
  const envs: Envelope[] = [
    { v: 1, type: 'seen', id: 7, body: { via: 'assoc', mac: 'aa:bb:cc:dd:ee:01' } },
    { v: 1, type: 'reply', re: 9, from: 'cn-é\n"x"', ts: 1764630000000, nonce: 'ab'.repeat(16), body: {} },
    { v: 1, type: 'error', re: 0, body: { message: '\u2028', code: 'busy', retryAfter: 50 } },
    { v: 1, type: 'ping', body: null },
  ];
  for (const env of envs) {
    for (const role of ['cn', 'mlr'] as Role[]) {
      const head = JSON.stringify([env.v, env.type, env.id ?? null, env.re ?? null, env.from ?? null, env.ts ?? null, env.nonce ?? null]);
      const want = Buffer.from(`MLRP-HMAC-1\n${role}\n${head}\n${reference(env.body)}`, 'utf8');
      assert.deepEqual(canonicalBytes(env, role), want);
    }
  }
  const auth = new Authenticator({ self: 'mlr', role: 'mlr', keyOf: () => 'ab'.repeat(32), log: () => {} });
  const guard = auth.session('test', 'cn1');
  for (const env of [envs[0]!, { v: 1, type: 'reply', re: 4, body: { a: 1 } }]) {
    const sealed = guard.seal(env);
    assert.deepEqual(
      Object.keys(sealed),
      [...Object.keys(env), 'from', 'ts', 'nonce', 'auth'],
      'wire order as `{ ...env, from, ts, nonce, auth }`',
    );
    const peer = new Authenticator({ self: 'cn1', role: 'cn', keyOf: () => 'ab'.repeat(32), log: () => {} }).session('test', 'mlr');
    assert.deepEqual(peer.open(JSON.parse(JSON.stringify(sealed)) as Envelope), { ok: true, value: 'mlr' });
  }
});

test("MacKey's digests are createHmac's, for any text and key length; verifyHex accepts them and nothing else", () => {
  const seed = { s: 7 };
  const r = () => (seed.s = (seed.s * 1103515245 + 12345) % 2147483648) / 2147483648;
  // Printable ASCII, two- and three-byte characters, astral pairs and lone surrogates (UTF-8 as Buffer.from writes it).
  const pieces = ['a', 'Z', '"', '\\', '\n', 'é', '\u2028', '\ud83d\ude00', '\ud800', '\udc00x', '{"k":1}'];
  for (const keyLength of [1, 32, 64, 65, 200]) {
    const raw = randomBytes(keyLength);
    const key = new MacKey(raw);
    // Lengths across the 64-byte block boundaries, and past the one-shot limit (the createHmac path).
    for (const n of [0, 1, 40, 55, 56, 63, 64, 65, 119, 120, 300, 5000, 17000]) {
      let text = '';
      while (text.length < n) text += pieces[Math.floor(r() * pieces.length)];
      const want = createHmac('sha256', raw).update(text, 'utf8').digest('hex');
      assert.equal(key.macHex(text), want, `key ${keyLength} bytes, text ${n} chars`);
      assert.equal(key.verifyHex(text, want), true);
      const flipped = want.slice(0, 63) + (want[63] === '0' ? '1' : '0');
      assert.equal(key.verifyHex(text, flipped), false, 'one digit off');
      assert.equal(key.verifyHex(text, want.slice(0, 62)), false, 'too short');
      assert.equal(key.verifyHex(`${text} `, want), false, 'another text');
    }
  }
  // A sealed envelope carries createHmac over the canonical bytes: other builds check it as before.
  const secret = 'cd'.repeat(32);
  const guard = new Authenticator({ self: 'cn-é', role: 'cn', keyOf: () => secret, log: () => {} }).session('test', 'mlr');
  const sealed = guard.seal({ v: 1, type: 'seen', id: 3, body: { via: 'assoc', mac: 'aa:bb:cc:dd:ee:01', note: '\u2028é' } });
  assert.equal(sealed.auth, createHmac('sha256', Buffer.from(secret, 'hex')).update(canonicalBytes(sealed, 'cn')!).digest('hex'));
});

test('decodeEnvelope gives what the generic codec gives, for good and bad envelopes alike', () => {
  const good = { v: 1, type: 'seen', id: 7, from: 'cn1', ts: 1764630000000, nonce: 'ab'.repeat(16), auth: 'cd'.repeat(32), body: { a: 1 } };
  const cases: unknown[] = [
    good,
    { ...good, id: null, re: 3, from: null },
    { ...good, body: undefined },
    { ...good, v: 2 },
    { ...good, v: 256 },
    { ...good, v: '1' },
    { ...good, id: -1 },
    { ...good, id: 1.5 },
    { ...good, re: Number.MAX_SAFE_INTEGER + 2 },
    { ...good, ts: '5' },
    { ...good, type: 'x'.repeat(33) },
    { ...good, type: 5 },
    { ...good, from: 'f'.repeat(65) },
    { ...good, nonce: 5 },
    { ...good, auth: 'a'.repeat(257) },
    { ...good, extra: 'dropped' },
    [good],
    'text',
    null,
  ];
  for (const c of cases) {
    const got = decodeEnvelope(Buffer.from(JSON.stringify(c)));
    const shape = envelopeShape.decode(JSON.parse(JSON.stringify(c)), 'message');
    if (!shape.ok) {
      assert.deepEqual(got, shape, JSON.stringify(c));
      continue;
    }
    if (shape.value.v !== 1) {
      assert.equal(got.ok, false);
      continue;
    }
    const body = (c as { body?: unknown }).body;
    assert.deepEqual(got, { ok: true, value: { ...shape.value, body } }, JSON.stringify(c));
    if (got.ok) assert.deepEqual(Object.keys(got.value), [...Object.keys(shape.value), 'body'], 'same fields, same order');
  }
  const round = decodeEnvelope(encodeEnvelope({ v: 1, type: 'ping', id: 3, body: {} }));
  assert.deepEqual(round, { ok: true, value: { v: 1, type: 'ping', id: 3, body: {} } });
});

test('the replay cache forgets expired nonces as new ones arrive, and still catches every replay', () => {
  const c = new ReplayCache(100);
  // 1000 messages, one per ms, each valid for 20 ms: never more than about 20 held, never full.
  for (let t = 0; t < 1000; t++) {
    assert.equal(c.add(`n${t}`, t + 20, t), 'ok');
    if (t >= 5) assert.equal(c.add(`n${t - 5}`, t + 20, t), 'replay', 'an unexpired nonce is still known');
    assert.ok(c.size <= 22, `size ${c.size} at ${t}`);
  }
  // Out of order expiries: a long-lived entry at the front holds back those behind it, but nothing
  // unexpired is forgotten and a full cache still prunes what has expired.
  const d = new ReplayCache(10);
  assert.equal(d.add('long', 1000, 0), 'ok');
  for (let i = 0; i < 9; i++) assert.equal(d.add(`s${i}`, 10, 0), 'ok');
  assert.equal(d.add('x', 50, 5), 'full', 'all ten are unexpired');
  assert.equal(d.add('long', 1000, 20), 'replay');
  assert.equal(d.add('x', 50, 20), 'ok', 'the expired ones made room');
  assert.equal(d.size, 2);
  assert.equal(d.add('x', 60, 40), 'replay');
  assert.equal(d.add('x', 90, 51), 'ok', 'an expired nonce may come again (its timestamp check rejects it in practice)');
  assert.equal(d.add('x', 90, 60), 'replay', 'and is known again afterwards');
});

async function pair(): Promise<{ server: net.Server; a: TcpChannel; b: TcpChannel }> {
  let accepted: TcpChannel | undefined;
  const server = await listenTcp('127.0.0.1', 0, (ch) => (accepted = ch));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const a = await connectTcp('127.0.0.1', port);
  await until('the accepted connection', () => accepted !== undefined);
  return { server, a, b: accepted! };
}

test('frames sent in one turn arrive whole and in order; so do frames split and joined across reads', async () => {
  const { server, a, b } = await pair();
  try {
    const got: string[] = [];
    b.onMessage((p) => got.push(p.toString()));
    const sent: string[] = [];
    for (let i = 0; i < 500; i++) {
      const s = `${i}:${'x'.repeat(i * 7)}`;
      sent.push(s);
      a.send(Buffer.from(s));
    }
    await until('500 frames', () => got.length === sent.length, 5000);
    assert.deepEqual(got, sent);
    assert.throws(() => a.send(Buffer.alloc(MLRP_MAX_PAYLOAD + 1)), RangeError);

    // Raw bytes: three frames cut at every odd place, through the decoder's slow path.
    const raw = Buffer.concat(['one', 'two', 'three'].map((s) => encodeFrame(Buffer.from(s))));
    const back: string[] = [];
    a.onMessage((p) => back.push(p.toString()));
    const sock = (b as unknown as { socket: net.Socket }).socket;
    for (let i = 0; i < raw.length; i += 5) {
      sock.write(raw.subarray(i, i + 5));
      await new Promise((r) => setTimeout(r, 2));
    }
    await until('three split frames', () => back.length === 3, 5000);
    assert.deepEqual(back, ['one', 'two', 'three']);
  } finally {
    a.close();
    b.close();
    server.close();
  }
});

test('what was sent just before a local close still goes out', async () => {
  const { server, a, b } = await pair();
  try {
    const got: string[] = [];
    b.onMessage((p) => got.push(p.toString()));
    a.send(Buffer.from('last words'));
    a.close('done');
    await until('the frame sent before close', () => got.length === 1, 5000);
    assert.deepEqual(got, ['last words']);
  } finally {
    b.close();
    server.close();
  }
});

test('frames to several channels in one turn: each channel gets its own, in order, in one write; a channel closed in the turn too', async () => {
  const one = await pair();
  const two = await pair();
  const three = await pair();
  try {
    const got: string[][] = [[], [], []];
    one.b.onMessage((p) => got[0]!.push(p.toString()));
    two.b.onMessage((p) => got[1]!.push(p.toString()));
    three.b.onMessage((p) => got[2]!.push(p.toString()));
    const writes = [one.a, two.a, three.a].map((ch) => {
      const sock = (ch as unknown as { socket: net.Socket }).socket;
      const counter = { n: 0 };
      const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
      (sock as unknown as { write: (...args: unknown[]) => boolean }).write = (...args) => {
        counter.n++;
        return write(...args);
      };
      return counter;
    });
    for (let i = 0; i < 5; i++) for (const [k, ch] of [one.a, two.a, three.a].entries()) ch.send(Buffer.from(`${k}.${i}`));
    two.a.close('closed in the turn');
    await until('all frames', () => got.every((g) => g.length === 5), 5000);
    assert.deepEqual(
      got,
      [0, 1, 2].map((k) => [0, 1, 2, 3, 4].map((i) => `${k}.${i}`)),
    );
    assert.deepEqual(
      writes.map((w) => w.n),
      [1, 1, 1],
      'one socket write per channel for the turn',
    );
    // The next turn's frames go out as well (nothing left marked as waiting).
    one.a.send(Buffer.from('again'));
    three.a.send(Buffer.from('again'));
    await until('the next turn', () => got[0]!.length === 6 && got[2]!.length === 6, 5000);
    assert.deepEqual(
      writes.map((w) => w.n),
      [2, 1, 2],
    );
  } finally {
    for (const p of [one, two, three]) {
      p.a.close();
      p.b.close();
      p.server.close();
    }
  }
});
