// SPDX-License-Identifier: GPL-2.0-only
// MLRP framing and RPC: frames split anywhere reassemble; hostile frames fail cleanly; request/reply
// matching, time-outs, validation of every body, and closure.
import test from 'node:test';
import { performance } from 'node:perf_hooks';
import assert from 'node:assert/strict';
import { decodeEnvelope, encodeEnvelope, decodeRequestBody } from '../../src/core/messages.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { FrameDecoder, MLRP_MAX_PAYLOAD, encodeFrame } from '../../src/proto/mlrp.js';
import { RpcError, RpcPeer } from '../../src/proto/rpc.js';

test('frames reassemble from any split, including one byte at a time', () => {
  const payloads = [Buffer.from('{"a":1}'), Buffer.alloc(0), Buffer.from('x'.repeat(5000))];
  const stream = Buffer.concat(payloads.map(encodeFrame));
  for (const step of [1, 3, 7, 8, 9, 100, stream.length]) {
    const d = new FrameDecoder();
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += step) {
      const r = d.push(stream.subarray(i, i + step));
      assert.ok(r.ok);
      out.push(...r.value);
    }
    assert.deepEqual(out, payloads, `step ${step}`);
    assert.equal(d.pending, 0);
  }
});

test('bad magic, version, kind and oversized lengths fail and stay failed', () => {
  const good = encodeFrame(Buffer.from('{}'));
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['magic', (b) => b.writeUInt16BE(0x4854, 0), /magic/],
    ['version', (b) => b.writeUInt8(9, 2), /version/],
    ['kind', (b) => b.writeUInt8(7, 3), /kind/],
    ['length', (b) => b.writeUInt32BE(MLRP_MAX_PAYLOAD + 1, 4), /exceeds/],
    ['huge length', (b) => b.writeUInt32BE(0xffffffff, 4), /exceeds/],
  ];
  for (const [name, mutate, re] of cases) {
    const b = Buffer.from(good);
    mutate(b);
    const d = new FrameDecoder();
    const r = d.push(b);
    assert.equal(r.ok, false, name);
    assert.match((r as { error: string }).error, re);
    assert.equal(d.push(good).ok, false, `${name}: decoder stays failed`);
  }
  // A truncated frame is not an error: it waits.
  const d = new FrameDecoder();
  const r = d.push(good.subarray(0, good.length - 1));
  assert.ok(r.ok);
  assert.equal(r.value.length, 0);
});

test('envelopes: junk, wrong version and wrong shapes are errors, never exceptions', () => {
  for (const junk of [
    '',
    'null',
    '[]',
    '{"v":1}',
    '{"v":2,"type":"ping","id":1,"body":{}}',
    '{"v":1,"type":5}',
    '\u0000\u00ff',
    '{"v":1,"type":"ping","id":-1}',
  ]) {
    const r = decodeEnvelope(Buffer.from(junk));
    assert.equal(r.ok, false, junk);
  }
  const ok = decodeEnvelope(encodeEnvelope({ v: 1, type: 'ping', id: 3, body: {} }));
  assert.ok(ok.ok);
  assert.equal(decodeRequestBody('seen', { mac: 'zz', via: 'ip' }).ok, false);
  assert.equal(decodeRequestBody('seen', { mac: '02:00:00:00:00:01', via: 'teleport' }).ok, false);
  assert.equal(decodeRequestBody('request', { mac: '02:00:00:00:00:01', ip: '10.1.0.5', leaseTime: 5, state: 'renewing' }).ok, false);
  assert.equal(
    decodeRequestBody('bind', { network: 'n', cn: { name: 'a', addr: '1.2.3.4' }, tunnels: ['carrier-pigeon'], pools: [] }).ok,
    false,
  );
  const canon = decodeRequestBody('seen', { mac: '02-00-00-00-00-0A', ip: '10.1.0.5', via: 'arp' });
  assert.ok(canon.ok);
  assert.equal(canon.value.mac, '02:00:00:00:00:0a');
});

test('RPC: replies match requests, bad bodies are refused, unknown types answered with an error', async () => {
  const [a, b] = memoryChannelPair();
  const client = new RpcPeer(a);
  const server = new RpcPeer(b);
  const problems: string[] = [];
  server.onProtocolError = (m) => problems.push(m);
  server.handle('ping', () => ({ time: 42 }));
  server.handle('seen', (body) => ({ outcome: body.via === 'arp' ? 'here' : 'unknown' }));
  const [p1, p2] = await Promise.all([client.request('ping', {}), client.request('seen', { mac: '02:00:00:00:00:01', via: 'arp' })]);
  assert.equal(p1.time, 42);
  assert.equal(p2.outcome, 'here');
  await assert.rejects(
    client.request('seen', { mac: 'not-a-mac', via: 'arp' } as never),
    (e: unknown) => e instanceof RpcError && e.code === 'bad-request',
  );
  await assert.rejects(client.request('status', {}), (e: unknown) => e instanceof RpcError && e.code === 'unsupported');
  assert.equal(problems.length, 1);
});

test('RPC: a handler failing with a very long message is answered with the error, its message cut', async () => {
  const [a, b] = memoryChannelPair();
  const client = new RpcPeer(a);
  const server = new RpcPeer(b);
  server.handle('ping', () => {
    throw new Error('x'.repeat(5000));
  });
  await assert.rejects(
    client.request('ping', {}, 2000),
    (e: unknown) => e instanceof RpcError && e.code === 'internal' && e.message.length <= 1000 && e.message.endsWith('...'),
  );
});

test('RPC: a reply that breaks the schema rejects the request instead of reaching the caller', async () => {
  const [a, b] = memoryChannelPair();
  const client = new RpcPeer(a);
  const server = new RpcPeer(b);
  server.handle('ping', () => ({ time: 'soon' }) as never);
  await assert.rejects(client.request('ping', {}), (e: unknown) => e instanceof RpcError && e.code === 'protocol');
});

test('RPC: each request times out at its own time, whatever was sent before it; answered ones never do', async () => {
  const [a, b] = memoryChannelPair();
  const client = new RpcPeer(a);
  const server = new RpcPeer(b);
  const held: (() => void)[] = [];
  server.handle('ping', () => new Promise((resolve) => held.push(() => resolve({ time: 1 }))));
  const t0 = performance.now();
  const failedAt = (p: Promise<unknown>) =>
    p.then(
      () => assert.fail('answered'),
      (e: unknown) => {
        assert.ok(e instanceof RpcError && e.code === 'timeout', String(e));
        return performance.now() - t0;
      },
    );
  const slow = failedAt(client.request('ping', {}, 400));
  const answered = client.request('ping', {}, 60);
  const fast = failedAt(client.request('ping', {}, 120));
  const faster = failedAt(client.request('ping', {}, 80));
  while (held.length < 4) await new Promise((r) => setTimeout(r, 1));
  held[1]!();
  assert.deepEqual(await answered, { time: 1 });
  const [tFaster, tFast, tSlow] = await Promise.all([faster, fast, slow]);
  assert.ok(tFaster >= 79 && tFaster < 300, `80 ms request failed after ${tFaster} ms`);
  assert.ok(tFast >= 119 && tFast < 350, `120 ms request failed after ${tFast} ms`);
  assert.ok(tSlow >= 399, `400 ms request failed after ${tSlow} ms`);
  assert.ok(tFaster <= tFast && tFast < tSlow);
  // After a quiet spell, the next request still gets its time-out.
  await assert.rejects(client.request('ping', {}, 30), (e: unknown) => e instanceof RpcError && e.code === 'timeout');
});

test('RPC: time-outs and closure reject pending requests', async () => {
  const [a, b] = memoryChannelPair();
  const client = new RpcPeer(a, 50);
  const server = new RpcPeer(b);
  server.handle('ping', () => new Promise(() => {}));
  await assert.rejects(client.request('ping', {}), (e: unknown) => e instanceof RpcError && e.code === 'timeout');
  const pending = client.request('ping', {}, 5000);
  b.close('gone');
  await assert.rejects(pending, (e: unknown) => e instanceof RpcError && e.code === 'closed');
  await assert.rejects(client.request('ping', {}), /closed/);
});

test('the decoder holds its own copy of an incomplete frame: the chunk it came in may be reused', () => {
  const d = new FrameDecoder();
  const split = encodeFrame(Buffer.from('{"a":1}'));
  const chunk = Buffer.concat([encodeFrame(Buffer.from('{}')), split.subarray(0, 10)]);
  const first = d.push(chunk);
  assert.deepEqual(first.ok && first.value.map(String), ['{}']);
  chunk.fill(0); // the caller's buffer, reused for the next read
  const rest = d.push(split.subarray(10));
  assert.deepEqual(rest.ok && rest.value.map(String), ['{"a":1}']);
  assert.equal(d.pending, 0);
});
