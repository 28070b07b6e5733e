// SPDX-License-Identifier: GPL-2.0-only
// Authenticated MLRP (proto/auth.ts through RpcPeer's guard) and the MLR's authorization rules
// (mlr/service.ts), over in-process channels: every forged, altered, replayed, stale or
// impersonating message is refused with one log line naming the check, and leaves the registry as it
// was; the CN checks the MLR the same way. Also the canonical bytes, the bounded replay cache and log,
// the RPC limits (concurrent handler calls, pending requests) and the per-CN binding limit.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  SCHEMA_VERSION,
  decodeEnvelope,
  encodeEnvelope,
  encodeRequestBody,
  type Envelope,
  type RequestBody,
  type RequestType,
} from '../../src/core/messages.js';
import { Registry } from '../../src/core/registry.js';
import { MlrLink } from '../../src/cn/mlr-link.js';
import { MlrService } from '../../src/mlr/service.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import {
  AUTH_WINDOW_MS,
  Authenticator,
  MLR_ID,
  RateLimitedLog,
  ReplayCache,
  canonicalBytes,
  cnGuards,
  hmac,
  type Role,
} from '../../src/proto/auth.js';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { AUTH_FAILED, MAX_INBOUND, RpcPeer, type MessageChannel, type RpcError } from '../../src/proto/rpc.js';
import { ip, until } from '../support/helpers.js';

const K1 = 'a1'.repeat(32);
const K2 = 'b2'.repeat(32);
const KEYS = new Map([
  ['cn1', K1],
  ['cn2', K2],
]);
const MS = '02:00:00:00:00:01';

function bindBody(name: string, addr: string, pool: string | null, network = 'campus'): RequestBody<'bind'> {
  return {
    network,
    cn: { name, addr: ip(addr) },
    tunnels: ['vxlan'],
    pools: pool
      ? [{ network: ip(`${pool}.0`), prefix: 24, first: ip(`${pool}.0`), last: ip(`${pool}.255`), exclude: [ip(`${pool}.1`)] }]
      : [],
  };
}

/** An envelope signed by hand: `key` and `from` as given, role 'cn' unless said otherwise. */
function sealed(env: Envelope, key: string, from: string, opts: { ts?: number; nonce?: string; role?: Role } = {}): Envelope {
  const e: Envelope = { ...env, from, ts: opts.ts ?? Date.now(), nonce: opts.nonce ?? randomBytes(16).toString('hex') };
  const bytes = canonicalBytes(e, opts.role ?? 'cn');
  assert.ok(bytes);
  return { ...e, auth: hmac(Buffer.from(key, 'hex'), bytes) };
}

function request<T extends RequestType>(type: T, id: number, body: RequestBody<T>): Envelope {
  return { v: SCHEMA_VERSION, type, id, body: encodeRequestBody(type, body) };
}

/** The MLR's service with authentication on (unless `auth` is false), and ways to reach it. */
function setup(opts: { auth?: boolean; now?: () => number; maxBindingsPerCn?: number } = {}) {
  const registry = new Registry(['ipip', 'gre', 'vxlan']);
  const logs: string[] = [];
  const log = (_l: number, m: string) => logs.push(m);
  const service = new MlrService(registry, {
    networkName: 'campus',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    log,
    ...(opts.maxBindingsPerCn ? { maxBindingsPerCn: opts.maxBindingsPerCn } : {}),
  });
  const auth =
    opts.auth === false
      ? undefined
      : new Authenticator({
          self: MLR_ID,
          role: 'mlr',
          keyOf: (cn) => KEYS.get(cn),
          log: (m) => logs.push(`auth: ${m}`),
          ...(opts.now ? { now: opts.now } : {}),
        });
  let n = 0;
  /** A connection to the MLR; returns the CN's end of the channel. */
  const open = (): MessageChannel => {
    const [cnEnd, mlrEnd] = memoryChannelPair(`cn#${++n}`, 'mlr');
    service.attach(new RpcPeer(mlrEnd, auth ? { guard: auth.session(`10.200.0.${n}:4000`) } : {}), `10.200.0.${n}`);
    return cnEnd;
  };
  /** A CN's RpcPeer on a fresh connection, signing with `key` as `self` (no key: unsigned). */
  const cn = (self: string, key?: string): RpcPeer => {
    const peer = new RpcPeer(open(), key ? { guard: cnGuards(self, key, (m) => logs.push(`cn auth: ${m}`))('MLR') } : {});
    peer.handle('prepare', () => ({}));
    peer.handle('commit', () => ({}));
    peer.handle('abort', () => ({}));
    peer.handle('remove', () => ({}));
    return peer;
  };
  /** A raw connection: send hand-made envelopes, read the decoded replies. */
  const raw = () => {
    const ch = open();
    const replies: Envelope[] = [];
    ch.onMessage((p) => {
      const e = decodeEnvelope(p);
      if (e.ok) replies.push(e.value);
    });
    const send = async (env: Envelope): Promise<Envelope> => {
      const before = replies.length;
      ch.send(encodeEnvelope(env));
      await until('a reply', () => replies.length > before);
      return replies[before]!;
    };
    return { ch, replies, send };
  };
  /** Registry and sessions in one comparable value. */
  const state = () => JSON.stringify({ s: registry.snapshot(), on: ['cn1', 'cn2', 'cn9'].map((c) => service.isOnline(c)) });
  return { registry, service, logs, open, cn, raw, state };
}

function errorCode(reply: Envelope): string {
  assert.equal(reply.type, 'error', JSON.stringify(reply));
  return (reply.body as { code: string }).code;
}

/** Exactly one new log line matching `re` since `from`. */
function oneLine(logs: string[], from: number, re: RegExp): void {
  const hits = logs.slice(from).filter((l) => re.test(l));
  assert.equal(hits.length, 1, `one log line matching ${re}; got:\n${logs.slice(from).join('\n')}`);
}

// ---------------------------------------------------------------------------------------------
// The building blocks

test('canonical bytes: key order does not matter, every field does, deep nesting is refused', () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x', { d: 2, c: 3 }] }), '{"a":[true,null,"x",{"c":3,"d":2}],"b":1}');
  const env: Envelope = { v: 1, type: 'ping', id: 7, from: 'cn1', ts: 1000, nonce: '00'.repeat(16), body: { a: 1, b: 2 } };
  const same = canonicalBytes({ ...env, body: { b: 2, a: 1 } }, 'cn');
  assert.deepEqual(canonicalBytes(env, 'cn'), same);
  for (const changed of [
    { v: 2 },
    { type: 'peers' },
    { id: 8 },
    { re: 7 },
    { from: 'cn2' },
    { ts: 1001 },
    { nonce: '01'.repeat(16) },
    { body: { a: 1, b: 3 } },
  ]) {
    assert.notDeepEqual(canonicalBytes({ ...env, ...changed }, 'cn'), same, JSON.stringify(changed));
  }
  assert.notDeepEqual(canonicalBytes(env, 'mlr'), same, 'the role is covered: a message cannot be reflected');
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.equal(canonicalJson(deep), undefined);
  let veryDeep = '1';
  for (let i = 0; i < 100_000; i++) veryDeep = `[${veryDeep}]`;
  const e = decodeEnvelope(
    Buffer.from(
      `{"v":1,"type":"ping","id":1,"from":"cn1","ts":1,"nonce":"${'0'.repeat(32)}","auth":"${'0'.repeat(64)}","body":${veryDeep}}`,
    ),
  );
  if (e.ok) assert.equal(canonicalBytes(e.value, 'cn'), undefined, 'no stack overflow on hostile nesting');
});

test('replay cache: a nonce is refused while it lives; when full, new nonces are refused, not old ones forgotten', () => {
  const c = new ReplayCache(3);
  assert.equal(c.add('a', 100, 0), 'ok');
  assert.equal(c.add('a', 100, 50), 'replay');
  assert.equal(c.add('b', 100, 0), 'ok');
  assert.equal(c.add('c', 200, 0), 'ok');
  assert.equal(c.add('d', 200, 50), 'full', 'no unexpired nonce is evicted');
  assert.equal(c.add('a', 100, 60), 'replay', 'still remembered');
  assert.equal(c.add('d', 300, 150), 'ok', 'expired entries make room');
  assert.equal(c.size, 2);
  assert.equal(c.add('e', 300, 160), 'ok');
  assert.equal(c.add('f', 300, 170), 'full', 'nothing has expired yet');
  assert.equal(c.add('f', 300, 201), 'ok', "c's expiry makes room");
  assert.equal(c.add('c', 300, 202), 'full', 'c was forgotten only after its expiry; the cache is full again');
});

test('rejection log: a burst, then one line counting what was held back', () => {
  const lines: string[] = [];
  let t = 0;
  const l = new RateLimitedLog(
    (m) => lines.push(m),
    () => t,
    3,
    1000,
  );
  for (let i = 0; i < 100; i++) l.log(`x${i}`);
  assert.deepEqual(lines, ['x0', 'x1', 'x2']);
  t = 1000;
  l.log('y');
  assert.deepEqual(lines.slice(3), ['97 more similar message(s) suppressed in the last 1 s', 'y']);
});

// ---------------------------------------------------------------------------------------------
// The MLR refuses, and nothing changes

test('positive control: a CN with its key binds, leases and is served', async () => {
  const { cn, registry, service } = setup();
  const cn1 = cn('cn1', K1);
  const reply = await cn1.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  assert.deepEqual(reply.bindings, []);
  assert.ok(service.isOnline('cn1'));
  await cn1.request('discover', { mac: MS });
  const ack = await cn1.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
  assert.equal(ack.outcome, 'ack');
  assert.equal(registry.binding(MS)?.current, 'cn1');
  cn1.close();
});

test('forged, unknown, altered, unsigned and malformed binds are refused with one log line each; no state changes', async () => {
  const { raw, state, logs } = setup();
  const before = state();
  const r = raw();
  const bind = request('bind', 1, bindBody('cn1', '10.200.0.11', '10.1.0'));
  const cases: Array<[string, Envelope, RegExp]> = [
    ['bad HMAC (wrong key)', sealed(bind, K2, 'cn1'), /bad HMAC/],
    ['unknown CN', sealed(request('bind', 2, bindBody('cn9', '10.200.0.19', '10.9.0')), K1, 'cn9'), /unknown sender 'cn9'/],
    ['unsigned', bind, /not authenticated/],
    ['a sender name that would forge log lines', sealed(bind, K1, 'cn1\nfake: accepted'), /unknown sender "cn1\\nfake: accepted"/],
    ['malformed MAC', { ...sealed(bind, K1, 'cn1'), auth: 'zz' }, /malformed nonce or auth/],
    ['short nonce', sealed(bind, K1, 'cn1', { nonce: 'abcd' }), /malformed nonce or auth/],
    ['signed with the MLR role', sealed(bind, K1, 'cn1', { role: 'mlr' }), /bad HMAC/],
  ];
  // the body altered after signing: another address, another pool
  const good = sealed(bind, K1, 'cn1');
  cases.push([
    'body altered after signing',
    { ...good, body: encodeRequestBody('bind', bindBody('cn1', '10.200.0.66', '10.1.0')) },
    /bad HMAC/,
  ]);
  cases.push(['type altered after signing', { ...good, type: 'peers' }, /bad HMAC/]);
  for (const [what, env, re] of cases) {
    const at = logs.length;
    const reply = await r.send(env);
    assert.equal(errorCode(reply), AUTH_FAILED, what);
    assert.equal(reply.auth, undefined, `${what}: the refusal goes out unsigned`);
    oneLine(logs, at, re);
    assert.match(logs.at(-1)!, /^auth: rejected '\w+' from 10\.200\.0\.1:4000/, 'names where it came from');
    assert.equal(state(), before, `${what}: no state changed`);
  }
  assert.ok(!logs.some((l) => l.includes('\n')), 'no log line is split by peer-supplied text');
});

test('wrong network name: authenticated but refused; no state changes', async () => {
  const { cn, state } = setup();
  const before = state();
  await assert.rejects(cn('cn1', K1).request('bind', bindBody('cn1', '10.200.0.11', '10.1.0', 'other')), (e: RpcError) => {
    assert.equal(e.code, 'bind-refused');
    assert.match(e.message, /network name 'other' does not match/);
    return true;
  });
  assert.equal(state(), before);
});

test('replay within the window (same or another connection) and after it are refused; no state changes', async () => {
  let now = 1_000_000;
  const { raw, state, logs } = setup({ now: () => now });
  const r = raw();
  const bind = sealed(request('bind', 1, bindBody('cn1', '10.200.0.11', '10.1.0')), K1, 'cn1', { ts: now });
  assert.equal((await r.send(bind)).type, 'reply', 'the original is accepted');
  const disc = sealed(request('discover', 2, { mac: MS }), K1, 'cn1', { ts: now });
  assert.equal((await r.send(disc)).type, 'reply');
  const rel = sealed(request('release', 3, { mac: MS, ip: ip('10.1.0.5') }), K1, 'cn1', { ts: now });
  const before = state();
  for (const [what, conn] of [
    ['same connection', r],
    ['another connection', raw()],
  ] as const) {
    for (const env of [bind, disc]) {
      const at = logs.length;
      assert.equal(errorCode(await conn.send(env)), AUTH_FAILED, what);
      oneLine(logs, at, /replayed nonce/);
      assert.equal(state(), before, `${what}: no state changed`);
    }
  }
  // after the window: the same (never used) release, now too old; and a fresh one with an old ts
  now += AUTH_WINDOW_MS + 1;
  for (const env of [rel, sealed(request('release', 4, { mac: MS, ip: ip('10.1.0.5') }), K1, 'cn1', { ts: now - AUTH_WINDOW_MS - 1 })]) {
    const at = logs.length;
    assert.equal(errorCode(await r.send(env)), AUTH_FAILED);
    oneLine(logs, at, /timestamp -7\.0 s off our clock/);
  }
  const future = sealed(request('ping', 5, {}), K1, 'cn1', { ts: now + AUTH_WINDOW_MS + 1 });
  assert.equal(errorCode(await r.send(future)), AUTH_FAILED);
  assert.match(logs.at(-1)!, /timestamp 7\.0 s off/);
  assert.equal(state(), before);
});

test("a CN cannot claim another CN's name, pool or station, nor change identity mid-session", async () => {
  const { cn, raw, state, logs, registry } = setup();
  const cn1 = cn('cn1', K1);
  const cn2 = cn('cn2', K2);
  await cn1.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await cn1.request('discover', { mac: MS });
  await cn1.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
  const before = state();
  // bind as cn1 with cn2's key: the body says cn1, the session is cn2
  await assert.rejects(cn2.request('bind', bindBody('cn1', '10.200.0.12', '10.2.0')), /authenticated as 'cn2' and cannot bind as "cn1"/);
  assert.equal(state(), before, 'cn1 keeps its session');
  // cn2's pool overlaps cn1's
  await assert.rejects(cn2.request('bind', bindBody('cn2', '10.200.0.12', '10.1.0')), /overlaps/);
  assert.equal(state(), before);
  await cn2.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0'));
  const bound = state();
  // release/decline of cn1's station through cn2
  for (const decline of [false, true]) {
    const at = logs.length;
    await assert.rejects(
      cn2.request('release', { mac: MS, ip: ip('10.1.0.5'), ...(decline ? { decline: 'yes' as const } : {}) }),
      (e: RpcError) => e.code === 'forbidden',
    );
    oneLine(logs, at, /refused (release|decline) of 02:00:00:00:00:01 from CN 'cn2'/);
    assert.equal(state(), bound);
  }
  // a seen with an address the station does not hold
  const seen = await cn2.request('seen', { mac: MS, ip: ip('10.1.0.9'), via: 'ip' });
  assert.equal(seen.outcome, 'refused');
  assert.match(seen.reason ?? '', /holds 10\.1\.0\.5, not 10\.1\.0\.9/);
  assert.equal(state(), bound);
  assert.equal(registry.binding(MS)?.current, 'cn1');
  // an authenticated session sending as another CN (with that CN's key) is refused
  const r = raw();
  assert.equal((await r.send(sealed(request('ping', 1, {}), K2, 'cn2'))).type, 'reply');
  const at = logs.length;
  assert.equal(errorCode(await r.send(sealed(request('release', 2, { mac: MS, ip: ip('10.1.0.5') }), K1, 'cn1'))), AUTH_FAILED);
  oneLine(logs, at, /sender 'cn1' is not 'cn2', who this session belongs to/);
  assert.equal(state(), bound);
  // the owner may release
  await cn1.request('release', { mac: MS, ip: ip('10.1.0.5') });
  assert.equal(registry.binding(MS), undefined, 'positive control: the serving CN releases');
  cn1.close();
  cn2.close();
});

test('a CN cannot send the MLR-only requests (prepare, commit, abort, remove, probe)', async () => {
  const { cn, state, registry } = setup();
  const cn1 = cn('cn1', K1);
  await cn1.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await cn1.request('discover', { mac: MS });
  await cn1.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
  const before = state();
  const binding = (await cn1.request('status', {})).bindings[0]!;
  const other = { ...binding, cell: ip('10.1.0.8'), current: { name: 'cn2', addr: ip('10.200.0.12') } };
  const tries: Array<Promise<unknown>> = [
    cn1.request('prepare', { tx: 1, binding: other, previous: null }),
    cn1.request('commit', { tx: 1, binding: other, previous: null }),
    cn1.request('abort', { tx: 1 }),
    cn1.request('remove', { binding }),
    cn1.request('probe', { mac: MS, ip: ip('10.1.0.5') }),
  ];
  for (const t of tries) await assert.rejects(t, (e: RpcError) => e.code === 'unsupported');
  assert.equal(state(), before);
  assert.equal(registry.binding(MS)?.cell, ip('10.1.0.4'));
  cn1.close();
});

test('a second connection displaces a bound CN only with its key; the takeover is logged', async () => {
  const { cn, raw, service, logs } = setup();
  const first = cn('cn1', K1);
  await first.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  // without the key: refused, the first keeps its session
  const r = raw();
  assert.equal(errorCode(await r.send(sealed(request('bind', 1, bindBody('cn1', '10.200.0.11', '10.1.0')), K2, 'cn1'))), AUTH_FAILED);
  assert.equal(errorCode(await r.send(request('bind', 2, bindBody('cn1', '10.200.0.11', '10.1.0')))), AUTH_FAILED);
  assert.equal(first.isClosed, false);
  assert.ok(service.isOnline('cn1'));
  // with the key (a restarted CN): it takes over, and the log says so
  const second = cn('cn1', K1);
  const at = logs.length;
  await second.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  oneLine(logs, at, /CN 'cn1' bound again from .* \(authenticated with its key\); closing its previous connection/);
  await until('the first connection closed', () => first.isClosed);
  second.close();
});

test('authentication off: unsigned CNs work, a session keeps its first name, takeovers are logged, names are checked', async () => {
  const { cn, logs, service, state } = setup({ auth: false });
  const a = cn('cn1');
  await a.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  const before = state();
  await assert.rejects(a.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0')), /bound as 'cn1' and cannot bind as "cn2"/);
  assert.equal(state(), before);
  const bad = cn('x');
  for (const name of ['a/b', ' lead', 'tab\there', '']) {
    await assert.rejects(bad.request('bind', bindBody(name, '10.200.0.13', '10.3.0')), /is not a valid CN name/);
  }
  assert.equal(state(), before);
  const b = cn('cn1');
  const at = logs.length;
  await b.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  oneLine(logs, at, /CN 'cn1' bound again from .* WITHOUT authentication/);
  await until('the first connection closed', () => a.isClosed);
  assert.ok(service.isOnline('cn1'));
  b.close();
});

test('a CN without a key gets a clear refusal from an MLR that demands authentication', async () => {
  const { open, state, logs } = setup();
  const before = state();
  const cnLogs: string[] = [];
  const link = new MlrLink({
    describe: 'mlr:6554',
    connect: () => Promise.resolve(open()),
    bindBody: () => bindBody('cn1', '10.200.0.11', '10.1.0'),
    serve: () => {},
    onBound: () => Promise.resolve(),
    log: (_l, m) => cnLogs.push(m),
    name: 'cn1',
  });
  await assert.rejects(link.start(), (e: RpcError) => {
    assert.equal(e.code, 'bind-refused');
    assert.match(e.message, /the MLR requires authenticated messages but this CN has no key/);
    assert.match(e.message, /run 'tmip-mlr keygen cn1' on the MLR/);
    return true;
  });
  link.stop();
  assert.ok(cnLogs.some((l) => /Binding CN to the mobile network: refused: the MLR requires authenticated messages/.test(l)));
  assert.ok(logs.some((l) => /not authenticated/.test(l)));
  assert.equal(state(), before);
});

test('a CN with a wrong key is told why and keeps retrying (a clock may still be wrong at boot)', async () => {
  const { open, state } = setup();
  const before = state();
  const cnLogs: string[] = [];
  let attempts = 0;
  const link = new MlrLink({
    describe: 'mlr:6554',
    connect: () => {
      attempts++;
      return Promise.resolve(open());
    },
    bindBody: () => bindBody('cn1', '10.200.0.11', '10.1.0'),
    serve: () => {},
    onBound: () => Promise.resolve(),
    log: (_l, m) => cnLogs.push(m),
    guard: cnGuards('cn1', K2, () => {}),
    minBackoffMs: 5,
    maxBackoffMs: 5,
  });
  void link.start().catch(() => {});
  await until('two attempts', () => attempts >= 2);
  link.stop();
  assert.ok(
    cnLogs.some((l) => /failed: the MLR rejected our authentication \(authentication failed: bad HMAC/.test(l)),
    cnLogs.join('\n'),
  );
  assert.equal(state(), before);
});

// ---------------------------------------------------------------------------------------------
// The CN checks the MLR

test('the CN refuses MLR messages that are forged, unsigned, replayed, reflected or from another CN', async () => {
  const [mlrEnd, cnEnd] = memoryChannelPair('mlr', 'cn1');
  const cnLogs: string[] = [];
  const cn = new RpcPeer(cnEnd, { guard: cnGuards('cn1', K1, (m) => cnLogs.push(m))('MLR test') });
  const commits: number[] = [];
  cn.handle('commit', (b) => {
    commits.push(b.tx);
    return {};
  });
  const replies: Envelope[] = [];
  mlrEnd.onMessage((p) => {
    const e = decodeEnvelope(p);
    if (e.ok) replies.push(e.value);
  });
  const send = async (env: Envelope) => {
    const n = replies.length;
    mlrEnd.send(encodeEnvelope(env));
    await until('the CN answers', () => replies.length > n);
    return replies[n]!;
  };
  const binding = {
    mac: MS,
    cell: '10.1.0.4',
    mask: '255.255.255.252',
    parent: { name: 'cn1', addr: '10.200.0.11' },
    current: { name: 'cn1', addr: '10.200.0.11' },
    state: 'bound',
    expires: 0,
  };
  const commit = (tx: number): Envelope => ({ v: SCHEMA_VERSION, type: 'commit', id: tx, body: { tx, binding, previous: null } });
  // positive control: signed by the MLR with cn1's key
  const good = sealed(commit(1), K1, MLR_ID, { role: 'mlr' });
  const ok = await send(good);
  if (ok.type !== 'reply') assert.fail(`the control commit was refused: ${JSON.stringify(ok.body)}`);
  assert.deepEqual(commits, [1]);
  assert.ok(ok.auth, "the CN's reply is signed");
  const forged: Array<[string, Envelope, RegExp]> = [
    ['wrong key', sealed(commit(2), K2, MLR_ID, { role: 'mlr' }), /bad HMAC/],
    ['unsigned', commit(3), /not authenticated/],
    ['replayed', good, /replayed nonce/],
    ['reflected (signed as a CN)', sealed(commit(4), K1, MLR_ID, { role: 'cn' }), /bad HMAC/],
    ["the CN's own name", sealed(commit(5), K1, 'cn1', { role: 'cn' }), /unknown sender 'cn1' \(expected 'mlr'\)/],
    ['stale', sealed(commit(6), K1, MLR_ID, { role: 'mlr', ts: Date.now() - AUTH_WINDOW_MS - 1000 }), /timestamp/],
  ];
  for (const [what, env, re] of forged) {
    const at = cnLogs.length;
    assert.equal(errorCode(await send(env)), AUTH_FAILED, what);
    oneLine(cnLogs, at, re);
  }
  assert.deepEqual(commits, [1], 'no forged commit reached the handler');
  cn.close();
});

// ---------------------------------------------------------------------------------------------
// Limits

test('at most MAX_INBOUND handler calls run at once; the rest are answered busy', async () => {
  const [a, b] = memoryChannelPair('a', 'b');
  const server = new RpcPeer(a);
  const client = new RpcPeer(b, { timeoutMs: 5000 });
  let running = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  server.handle('ping', async () => {
    running++;
    await gate;
    return { time: 1 };
  });
  const calls = Array.from({ length: MAX_INBOUND + 10 }, () =>
    client.request('ping', {}).then(
      () => 'ok',
      (e: RpcError) => e.code,
    ),
  );
  await until('the handlers to fill up', () => running === MAX_INBOUND);
  release();
  const results = await Promise.all(calls);
  assert.equal(results.filter((r) => r === 'ok').length, MAX_INBOUND);
  assert.equal(results.filter((r) => r === 'busy').length, 10);
  assert.equal(running, MAX_INBOUND, 'no handler ran beyond the limit');
  // afterwards the peer serves again
  assert.deepEqual(await client.request('ping', {}), { time: 1 });
  client.close();
});

test('at most maxPending own requests wait for replies; more are refused at once', async () => {
  const [a] = memoryChannelPair('a', 'b');
  const peer = new RpcPeer(a, { maxPending: 5, timeoutMs: 5000 });
  const waiting = Array.from({ length: 5 }, () => peer.request('ping', {}).catch((e: RpcError) => e.code));
  await assert.rejects(peer.request('ping', {}), (e: RpcError) => e.code === 'busy');
  peer.close();
  assert.deepEqual(await Promise.all(waiting), ['closed', 'closed', 'closed', 'closed', 'closed']);
});

test('a CN creates at most maxBindingsPerCn bindings; then it is refused with limit', async () => {
  const { cn, registry } = setup({ maxBindingsPerCn: 8 });
  const cn1 = cn('cn1', K1);
  const big = bindBody('cn1', '10.200.0.11', null);
  big.pools = [{ network: ip('10.1.0.0'), prefix: 16, first: ip('10.1.0.0'), last: ip('10.1.255.255'), exclude: [] }];
  await cn1.request('bind', big);
  const mac = (i: number) => `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;
  for (let i = 0; i < 8; i++) await cn1.request('discover', { mac: mac(i) });
  const count = registry.allBindings().length;
  assert.equal(count, 8);
  await assert.rejects(cn1.request('discover', { mac: mac(8) }), (e: RpcError) => e.code === 'limit');
  await assert.rejects(
    cn1.request('request', { mac: mac(9), ip: ip('10.1.9.1'), leaseTime: 600, state: 'init-reboot' }),
    (e: RpcError) => e.code === 'limit',
  );
  await assert.rejects(cn1.request('seen', { mac: mac(10), ip: ip('10.1.9.5'), via: 'arp' }), (e: RpcError) => e.code === 'limit');
  assert.equal(registry.allBindings().length, 8, 'no binding beyond the limit');
  // an existing offer is still served
  assert.equal((await cn1.request('discover', { mac: mac(0) })).binding.mac, mac(0));
  cn1.close();
});
