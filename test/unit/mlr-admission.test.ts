// SPDX-License-Identifier: GPL-2.0-only
// The MLR's admission before decoding (issue 11): past its bound a request that starts work is answered
// `busy` from its envelope's head alone (proto/rpc.ts requestHead, RpcPeer.admission; mlr/service.ts),
// signed for the session's CN, never parsed further; the last quarter of the budget is kept for CNs
// below their share (counted as work: a `seen` answered early still holds its part). Also: sealJson writes what seal() seals, and a session's one time-out timer still
// fails each request at its own time after it has idled.
import test from 'node:test';
import assert from 'node:assert/strict';
import { FEATURES, SCHEMA_VERSION, encodeEnvelope, type Envelope } from '../../src/core/messages.js';
import { Registry } from '../../src/core/registry.js';
import { BUSY_RETRY_AFTER_MS, MlrService } from '../../src/mlr/service.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { Authenticator, MLR_ID, cnGuards } from '../../src/proto/auth.js';
import { RpcError, RpcPeer, requestHead, type MessageChannel } from '../../src/proto/rpc.js';
import { neverWithin, until } from '../support/helpers.js';
import { bindStationsAtCn1, cnBind } from '../support/mlr-world.js';

const mac = (n: number): string =>
  `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
const KEY = 'c3'.repeat(32);

test('requestHead finds the id of a request in the layout every sender writes, and nothing else', () => {
  const text = (s: string) => Buffer.from(s, 'utf8');
  assert.equal(requestHead(encodeEnvelope({ v: 1, type: 'seen', id: 42, body: { mac: mac(1), via: 'assoc' } })), 42);
  // sealJson's layout, and the bench generator's (id, then from).
  const guard = new Authenticator({ self: 'cn1', role: 'cn', keyOf: () => KEY, log: () => {} }).session('t', MLR_ID);
  assert.equal(requestHead(text(guard.sealJson({ v: 1, type: 'discover', id: 7, body: { mac: mac(2) } })!)), 7);
  assert.equal(requestHead(text('{"v":1,"type":"release","id":123456789012345,"from":"cn1","body":{}}')), 123456789012345);
  // Not requests, or not in that layout: left to the full decode.
  for (const s of [
    '{"v":1,"type":"reply","re":42,"body":{}}',
    '{"v":1,"type":"error","re":42,"body":{}}',
    '{"type":"seen","v":1,"id":4,"body":{}}',
    '{"v":1,"type":"seen","id":04,"body":{}}',
    '{"v":1,"type":"seen","id":1234567890123456,"body":{}}',
    '{"v":1,"type":"Seen","id":4,"body":{}}',
    '{"v":1,"type":"seen","id":-4,"body":{}}',
    '{"v":1,"type":"seen","id":4}',
    '{"v":2,"type":"seen","id":4,"body":{}}',
    '{"v":1,"type":"seen" ,"id":4,"body":{}}',
    '{"v":1,"type":"","id":4,"body":{}}',
    '{"v":1,"type":"seen","id":4',
    'garbage',
  ])
    assert.equal(requestHead(text(s)), undefined, s);
});

test('sealJson writes the envelope seal() seals (the body canonical), and the peer opens it', () => {
  const mlr = new Authenticator({ self: MLR_ID, role: 'mlr', keyOf: () => KEY, log: () => {} }).session('t', 'cn1');
  const cn = new Authenticator({ self: 'cn1', role: 'cn', keyOf: () => KEY, log: () => {} }).session('t', MLR_ID);
  const bodies: unknown[] = [{}, { via: 'assoc', mac: mac(3), leaseTime: 60 }, { z: [1, 'é\n"', null], a: { y: 2, b: true } }, null];
  for (const body of bodies) {
    for (const env of [
      { v: SCHEMA_VERSION, type: 'commit', id: 9, body },
      { v: SCHEMA_VERSION, type: 'reply', re: 9, body },
    ] as Envelope[]) {
      const text = mlr.sealJson(env)!;
      const parsed = JSON.parse(text) as Envelope;
      const reference = JSON.parse(JSON.stringify(mlr.seal(env))) as Envelope;
      assert.deepEqual(Object.keys(parsed), Object.keys(reference), 'the same fields in the same order');
      assert.deepEqual({ ...parsed, ts: 0, nonce: '', auth: '' }, { ...reference, ts: 0, nonce: '', auth: '' });
      assert.deepEqual(cn.open(parsed), { ok: true, value: MLR_ID });
      // Altered on the way: refused.
      const altered = JSON.parse(text.replace(`"type":"${env.type}"`, '"type":"abort"')) as Envelope;
      assert.equal(cn.open(altered).ok, false);
    }
  }
  // No key for the peer: nothing written (the caller sends it unsigned).
  const keyless = new Authenticator({ self: MLR_ID, role: 'mlr', keyOf: () => undefined, log: () => {} }).session('t', 'cn9');
  assert.equal(keyless.sealJson({ v: 1, type: 'ping', id: 1, body: {} }), undefined);
});

/**
 * An MLR (service, authentication on) with cn1 (the pool, stations bound there), cn2 and cn3; commits hang
 * until released. `inline`: the CNs announce FEATURES.inlineCommit (a `seen` is answered before its move ends).
 */
async function world(maxWork: number, stations: number, o: { headRefusal?: boolean; inline?: boolean } = {}) {
  const registry = new Registry(['vxlan']);
  const service = new MlrService(registry, { networkName: 'n', offerHoldMs: 60_000, leaseGraceMs: 60_000, log: () => undefined, maxWork });
  const auth = new Authenticator({ self: MLR_ID, role: 'mlr', keyOf: () => KEY, log: () => {} });
  const held: (() => void)[] = [];
  let hold = true;
  const raw: { send: (payload: Buffer) => void; replies: Envelope[] }[] = [];
  const connect = async (name: string, n: number) => {
    const [cnEnd, mlrEnd] = memoryChannelPair(name, 'mlr');
    const mlrPeer = new RpcPeer(mlrEnd, { guard: auth.session(name) });
    service.attach(mlrPeer, undefined);
    // Without the hook every request goes the long way (as one in another layout would): admit() decides.
    if (o.headRefusal === false) mlrPeer.admission = undefined;
    // What reaches the CN, as parsed JSON (besides going to its RpcPeer).
    const replies: Envelope[] = [];
    const tapped: MessageChannel = {
      peer: cnEnd.peer,
      send: (p, m) => cnEnd.send(p, m),
      onMessage: (r) =>
        cnEnd.onMessage((p) => {
          replies.push(JSON.parse(p.toString('utf8')) as Envelope);
          r(p);
        }),
      onClose: (r) => cnEnd.onClose(r),
      close: (r) => cnEnd.close(r),
    };
    raw.push({ send: (p) => cnEnd.send(p), replies });
    const peer = new RpcPeer(tapped, { guard: cnGuards(name, KEY, () => {})(name) });
    peer.handle('commit', () => (hold ? new Promise((resolve) => held.push(() => resolve({}))) : {}));
    await peer.request('bind', { ...cnBind(name, n), ...(o.inline ? { features: [FEATURES.inlineCommit] } : {}) });
    return peer;
  };
  const cn1 = await connect('cn1', 1);
  const cn2 = await connect('cn2', 2);
  const cn3 = await connect('cn3', 3);
  bindStationsAtCn1(registry, stations, mac);
  const release = (): void => {
    hold = false;
    for (const f of held.splice(0)) f();
  };
  return { service, auth, cn1, cn2, cn3, raw, held, release };
}

const outcome = (p: Promise<{ outcome: string }>): Promise<string> =>
  p.then(
    (r) => r.outcome,
    (e: unknown) => (e instanceof RpcError ? e.code : String(e)),
  );

test('past its bound the MLR answers busy from the head alone: signed, nothing parsed or verified; below it the same bytes are refused as they were', async () => {
  const w = await world(4, 10);
  const moves = [0, 1, 2, 3].map((i) => outcome(w.cn2.request('seen', { mac: mac(i), via: 'assoc' })));
  await until('four moves committing', () => w.service.outstandingWork === 4 && w.held.length >= 4);
  // A session that has not authenticated yet gets no answer from the head: its message is verified
  // (and dropped), not answered `busy`, and nothing is counted.
  {
    const [strangerEnd, mlrEnd] = memoryChannelPair('stranger', 'mlr');
    w.service.attach(new RpcPeer(mlrEnd, { guard: w.auth.session('stranger') }), undefined);
    const heard: Envelope[] = [];
    strangerEnd.onMessage((p) => heard.push(JSON.parse(p.toString('utf8')) as Envelope));
    const busy = w.service.handovers.stats.busy;
    strangerEnd.send(Buffer.from(JSON.stringify({ v: 1, type: 'seen', id: 998, body: { mac: mac(9), via: 'assoc' } }), 'utf8'));
    await neverWithin(
      'a busy answer to the unauthenticated session',
      () => heard.some((e) => e.type === 'error' && (e.body as { code?: string }).code === 'busy'),
      50,
    );
    assert.equal(w.service.handovers.stats.busy, busy, 'no refusal counted for it');
    strangerEnd.close();
  }
  // A request in the usual layout whose body is not even JSON, and unsigned: refused `busy` by its head.
  const junk = Buffer.from('{"v":1,"type":"seen","id":999,"body":{not json', 'utf8');
  const busyBefore = w.service.handovers.stats.busy;
  w.raw[1]!.send(junk);
  await until('the answer to the junk', () => w.raw[1]!.replies.some((e) => e.re === 999));
  const answer = w.raw[1]!.replies.find((e) => e.re === 999)!;
  assert.equal(answer.type, 'error');
  assert.deepEqual(
    { code: (answer.body as { code: string }).code, retryAfter: (answer.body as { retryAfter: number }).retryAfter },
    {
      code: 'busy',
      retryAfter: BUSY_RETRY_AFTER_MS,
    },
  );
  assert.equal(answer.from, MLR_ID, 'signed by the MLR');
  assert.match(answer.auth ?? '', /^[0-9a-f]{64}$/);
  assert.equal(w.service.handovers.stats.busy, busyBefore + 1, 'counted as a busy refusal');
  // Through the CN's RpcPeer (which checks the signature): a well-formed request gets the same `busy`.
  assert.equal(await outcome(w.cn2.request('seen', { mac: mac(5), via: 'assoc' })), 'busy');
  assert.equal(w.service.outstandingWork, 4, 'the refused requests hold nothing');
  // Positive control: once the work is done, the same junk is parsed (and dropped as bad JSON, no answer)
  // and a good request is served.
  w.release();
  assert.deepEqual(await Promise.all(moves), ['moved', 'moved', 'moved', 'moved']);
  const answered = w.raw[1]!.replies.length;
  w.raw[1]!.send(junk);
  assert.equal(await outcome(w.cn2.request('seen', { mac: mac(6), via: 'assoc' })), 'moved');
  assert.equal(w.raw[1]!.replies.filter((e) => e.re === 999).length, 1, 'junk below the bound is not answered busy');
  assert.ok(w.raw[1]!.replies.length > answered);
});

for (const headRefusal of [true, false])
  test(`one CN cannot take the whole budget: the last quarter is kept for CNs below their share (a sixteenth each)${headRefusal ? '' : ', also for requests the head check does not see'}`, async () => {
    const w = await world(64, 120, { headRefusal });
    // cn2 floods: it gets three quarters of the budget (48), not all of it (its session alone would let it have all 64: MAX_INBOUND is 160).
    const flood = Array.from({ length: 100 }, (_, i) => outcome(w.cn2.request('seen', { mac: mac(i), via: 'assoc' })));
    await until('cn2 holds its part', () => w.service.outstandingWork === 48);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(w.service.outstandingWork, 48, 'no more for cn2');
    // cn3, holding nothing, is still served from the rest, up to its share (4 of 64).
    const others = Array.from({ length: 10 }, (_, i) => outcome(w.cn3.request('seen', { mac: mac(100 + i), via: 'assoc' })));
    await until('cn3 admitted', () => w.service.outstandingWork === 52);
    w.release();
    const done = await Promise.all(flood);
    assert.equal(done.filter((o) => o === 'moved').length, 48);
    assert.equal(done.filter((o) => o === 'busy').length, 52);
    assert.deepEqual(await Promise.all(others), [...Array.from({ length: 4 }, () => 'moved'), ...Array.from({ length: 6 }, () => 'busy')]);
  });

for (const headRefusal of [true, false])
  test(`the share counts a CN's work, not only its open requests: seens answered early (inline commit) hold work after their replies${headRefusal ? '' : ', also in admit()'}`, async () => {
    const w = await world(64, 120, { inline: true, headRefusal });
    // cn2 roams stations in one at a time: each `seen` is answered at once (its commit rides in the reply)
    // while its move holds the budget until cn1's commit (hung here) is answered. cn2 has no request open
    // when it asks the next, yet it gets three quarters of the budget (48), not all of it.
    const got: string[] = [];
    for (let i = 0; i < 60; i++) got.push(await outcome(w.cn2.request('seen', { mac: mac(i), via: 'assoc' })));
    assert.equal(got.filter((o) => o === 'moved').length, 48, `cn2's seens: ${got.join(',')}`);
    assert.equal(got.filter((o) => o === 'busy').length, 12);
    assert.equal(w.service.outstandingWork, 48);
    // cn3, holding nothing, is still served from the rest, up to its share (4 of 64).
    const others: string[] = [];
    for (let i = 0; i < 6; i++) others.push(await outcome(w.cn3.request('seen', { mac: mac(100 + i), via: 'assoc' })));
    assert.deepEqual(others, ['moved', 'moved', 'moved', 'moved', 'busy', 'busy']);
    assert.equal(w.service.outstandingWork, 52);
    w.release();
    await until('the moves to end', () => w.service.outstandingWork === 0);
    // Its work done, cn2 is served again.
    assert.equal(await outcome(w.cn2.request('seen', { mac: mac(60), via: 'assoc' })), 'moved');
  });

test('after idling, the session time-out timer still fails each new request at its own time', async () => {
  const [a, b] = memoryChannelPair('a', 'b');
  const server = new RpcPeer(b);
  let answer = true;
  server.handle('ping', () => (answer ? { time: 1 } : new Promise<never>(() => {})));
  const client = new RpcPeer(a, { timeoutMs: 80 });
  for (let i = 0; i < 5; i++) assert.deepEqual(await client.request('ping', {}), { time: 1 });
  await new Promise((r) => setTimeout(r, 30));
  answer = false;
  const t0 = performance.now();
  await assert.rejects(client.request('ping', {}), (e: unknown) => e instanceof RpcError && e.code === 'timeout');
  const took = performance.now() - t0;
  assert.ok(took >= 79 && took < 400, `timed out after ${took.toFixed(0)} ms (its own 80 ms, not the idle timer's)`);
  const t1 = performance.now();
  await assert.rejects(client.request('ping', {}, 40), (e: unknown) => e instanceof RpcError && e.code === 'timeout');
  assert.ok(performance.now() - t1 >= 39);
  client.close();
  server.close();
});
