// SPDX-License-Identifier: GPL-2.0-only
// Codec.text (core/schema.ts) writes the canonical JSON that MLRP signs straight from typed values;
// the receiver canonicalises what it parsed (proto/auth.ts), so the two must agree byte for byte or
// every HMAC fails. Checked for every request and reply body of the catalogue, from wire samples that
// the codecs decode (random bindings, absent and present optional fields, strings that need escaping).
import test from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { requests, replyBodyText, requestBodyText, type RequestType } from '../../src/core/messages.js';
import { array, int, ipv4, literal, nullable, object, optional, refine, str, textOf, type Codec } from '../../src/core/schema.js';

/** A small deterministic generator (the same samples on every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const rand = rng(11);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const byte = () => Math.floor(rand() * 256);
const addr = () => `10.${byte()}.${byte()}.${byte()}`;
const cell = () => `10.${byte()}.${byte()}.${byte() & 0xfc}`;
const macText = () => pick(['02:aa:00:00:00:01', '02-AB-CD-EF-00-09', `02:00:00:00:${byte().toString(16).padStart(2, '0')}:11`]);
/** Names and texts as a hostile or careless peer might send them: quotes, backslashes, control and non-ASCII characters. */
const name = () => pick(['cn1', 'ap-17.campus', 'a"b', 'back\\slash', 'tab\there', 'caf\u00e9', '\u2603', 'x'.repeat(64)]);
const cnRef = () => ({ name: name(), addr: addr() });
const binding = () => {
  const b: Record<string, unknown> = {
    mac: macText(),
    cell: cell(),
    parent: cnRef(),
    current: rand() < 0.2 ? null : cnRef(),
    expires: Math.floor(rand() * 2 ** 40),
    state: pick(['offered', 'bound']),
  };
  if (rand() < 0.6) b['tunnel'] = { type: pick(['ipip', 'gre', 'vxlan']), key: 1 + Math.floor(rand() * 1000) };
  return b;
};
const maybe = (o: Record<string, unknown>, key: string, v: () => unknown) => (rand() < 0.5 ? { ...o, [key]: v() } : o);
const pool = () => ({ network: '10.3.0.0', prefix: 16, first: '10.3.0.4', last: '10.3.255.252', exclude: ['10.3.0.1'] });

/** Wire samples of each type's body and reply: functions, called many times for fresh random values. */
const samples: Record<RequestType, { body: () => unknown; reply: () => unknown }> = {
  bind: {
    body: () =>
      maybe(maybe({ network: name(), cn: cnRef(), tunnels: ['vxlan', 'ipip'], pools: [pool()] }, 'software', name), 'features', () => [
        'inline-commit',
        name(),
      ]),
    reply: () => maybe(maybe({ bindings: [binding(), binding()], peers: [cnRef()] }, 'bindingsNext', macText), 'leaseGrace', () => 3600),
  },
  sync: {
    body: () => maybe({}, 'bindingsAfter', macText),
    reply: () => maybe({ bindings: [binding()], peers: [] }, 'peersNext', name),
  },
  ping: { body: () => ({}), reply: () => ({ time: Date.now() }) },
  discover: { body: () => maybe({ mac: macText() }, 'requested', addr), reply: () => ({ binding: binding() }) },
  request: {
    body: () => ({ mac: macText(), ip: addr(), leaseTime: 600, state: pick(['selecting', 'init-reboot', 'renewing']) }),
    reply: () => maybe(maybe({ outcome: pick(['ack', 'nak', 'ignore']) }, 'binding', binding), 'reason', name),
  },
  release: { body: () => maybe({ mac: macText(), ip: addr() }, 'decline', () => 'yes'), reply: () => ({}) },
  seen: {
    body: () => maybe({ mac: macText(), via: pick(['dhcp', 'arp', 'ip', 'assoc', 'restore']) }, 'ip', addr),
    reply: () => maybe(maybe({ outcome: pick(['moved', 'here', 'unknown', 'refused']) }, 'binding', binding), 'tx', () => 1 + byte()),
  },
  lost: {
    body: () => ({ mac: macText(), ip: addr(), why: pick(['disassoc', 'unreachable']) }),
    reply: () => maybe({ paging: pick(['yes', 'no']) }, 'reason', name),
  },
  peers: { body: () => ({}), reply: () => ({ peers: [{ name: name(), addr: addr(), online: pick(['yes', 'no']) }] }) },
  status: {
    body: () => maybe({}, 'cnsAfter', name),
    reply: () => ({ cns: [{ name: name(), addr: addr(), online: 'yes', pools: [pool()] }], bindings: [binding()] }),
  },
  probe: { body: () => ({ mac: macText(), ip: addr() }), reply: () => ({ present: pick(['yes', 'no']) }) },
  page: { body: () => ({ mac: macText(), ip: addr() }), reply: () => ({}) },
  prepare: { body: () => ({ tx: 1 + byte(), binding: binding(), previous: rand() < 0.3 ? null : cnRef() }), reply: () => ({}) },
  commit: { body: () => ({ tx: 1 + byte(), binding: binding(), previous: rand() < 0.3 ? null : cnRef() }), reply: () => ({}) },
  abort: { body: () => ({ tx: 1 + byte() }), reply: () => ({}) },
  remove: { body: () => maybe({ binding: binding() }, 'tx', () => 1 + byte()), reply: () => ({}) },
};

test('every request and reply body: the text written from the typed value is canonicalJson of its encoding', () => {
  assert.deepEqual(Object.keys(samples).sort(), Object.keys(requests).sort(), 'a sample for every message type');
  for (const type of Object.keys(requests) as RequestType[]) {
    const codecs = requests[type] as { body: Codec<unknown>; reply: Codec<unknown> };
    for (let i = 0; i < 200; i++) {
      for (const side of ['body', 'reply'] as const) {
        const wire = samples[type][side]();
        const decoded = codecs[side].decode(wire, `${type}.${side}`);
        assert.ok(decoded.ok, `${type}.${side} sample decodes: ${decoded.ok ? '' : decoded.error}`);
        const want = canonicalJson(codecs[side].encode(decoded.value));
        const got = side === 'body' ? requestBodyText(type, decoded.value as never) : replyBodyText(type, decoded.value as never);
        assert.equal(got, want, `${type}.${side} ${JSON.stringify(wire)}`);
      }
    }
  }
});

test('the combinators: nested, empty, absent and null values; many keys; a codec without text of its own', () => {
  // A codec made elsewhere without `text`: textOf derives it from encode.
  const upper: Codec<string> = { decode: (v) => ({ ok: true, value: String(v) }), encode: (v) => v.toUpperCase() };
  const wide = object({
    zeta: int(0, 10),
    alpha: optional(str()),
    Beta: nullable(ipv4),
    _u: upper,
    list: array(refine(object({ b: literal('x', 'y'), a: int(0, 9) }), () => undefined)),
    '\u00e9': optional(int(0, 9)),
  });
  const values = [
    { zeta: 1, Beta: null, _u: 'q', list: [] },
    {
      zeta: 10,
      alpha: 'a"\\\n',
      Beta: 0x0a000001,
      _u: 'caf\u00e9',
      list: [
        { a: 1, b: 'x' as const },
        { a: 2, b: 'y' as const },
      ],
      '\u00e9': 3,
    },
  ];
  for (const v of values) assert.equal(textOf(wide, v), canonicalJson(wide.encode(v)));
  assert.equal(textOf(optional(int(0, 1)), undefined), canonicalJson(undefined));
  // An array with a hole: what encode's map leaves there, null once canonical.
  const holed = array(object({ a: int(0, 9) }));
  // eslint-disable-next-line no-sparse-arrays
  const sparse = [{ a: 1 }, , { a: 3 }] as { a: number }[];
  assert.equal(textOf(holed, sparse), canonicalJson(holed.encode(sparse)));
});
