// SPDX-License-Identifier: GPL-2.0-only
// Backpressure (issue 11): the MLR takes at most `maxWork` requests that start work at once, over all
// CNs; beyond that it answers `busy` at once with a retry hint, queues nothing, and takes work again
// once what it holds is done. The CN asks a move again after a jittered back-off a bounded number of
// times; DHCP requests are not asked again (the client retransmits). Real RpcPeers on memory channels.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../src/core/registry.js';
import { busyRetryDelay, BUSY_RETRIES, MlrLink } from '../../src/cn/mlr-link.js';
import { BUSY_RETRY_AFTER_MS, MlrService } from '../../src/mlr/service.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { RpcError, RpcPeer } from '../../src/proto/rpc.js';
import { ip, until } from '../support/helpers.js';
import { bindStationsAtCn1, cnBind } from '../support/mlr-world.js';

const mac = (n: number): string =>
  `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;

/** An MLR with cn1 (pool 10.1.0.0/16, `stations` clients bound there) and cn2, whose commits hang until released. */
async function world(maxWork: number, stations: number) {
  const registry = new Registry(['vxlan']);
  const service = new MlrService(registry, { networkName: 'n', offerHoldMs: 60_000, leaseGraceMs: 60_000, log: () => undefined, maxWork });
  const held: (() => void)[] = [];
  let hold = true;
  const committed: string[] = [];
  const connect = async (name: string, n: number) => {
    const [cnEnd, mlrEnd] = memoryChannelPair(name, 'mlr');
    service.attach(new RpcPeer(mlrEnd), undefined);
    const peer = new RpcPeer(cnEnd);
    // A move via `assoc` prepares nothing (mlr/handover.ts): its commits are what it waits for.
    peer.handle('commit', (body) => {
      committed.push(body.binding.mac);
      return hold ? new Promise((resolve) => held.push(() => resolve({}))) : {};
    });
    peer.handle('abort', () => ({}));
    await peer.request('bind', cnBind(name, n));
    return peer;
  };
  const cn1 = await connect('cn1', 1);
  const cn2 = await connect('cn2', 2);
  bindStationsAtCn1(registry, stations, mac);
  const release = (): void => {
    hold = false;
    for (const f of held.splice(0)) f();
  };
  return { registry, service, cn1, cn2, release, committed, held };
}

test('overload: past maxWork the MLR answers busy at once with a retry hint, holds no more, and recovers', async () => {
  const w = await world(4, 40);
  // Four moves take the MLR's whole budget (their commits hang); the rest are refused at once.
  const asked = Array.from({ length: 30 }, (_, i) =>
    w.cn2.request('seen', { mac: mac(i), via: 'assoc' }).then(
      (r) => r.outcome,
      (e: unknown) => e,
    ),
  );
  await until('four moves committing', () => w.held.length >= 4 * 2);
  const early = await Promise.all(asked.slice(4));
  for (const e of early) {
    assert.ok(e instanceof RpcError, 'refused');
    assert.equal(e.code, 'busy');
    assert.equal(e.retryAfterMs, BUSY_RETRY_AFTER_MS, 'the retry hint travels in the error body');
    assert.match(e.message, /busy .*retry after/);
  }
  assert.equal(w.service.outstandingWork, 4, 'no more work held than the bound');
  assert.ok(w.service.handovers.active.size <= 4 && w.service.handovers.lockedStations <= 4, 'nothing queued beyond it');
  assert.equal(w.service.handovers.stats.busy, 26);
  // Positive control: once the held moves finish, the same requests are taken and complete.
  w.release();
  assert.deepEqual(await Promise.all(asked.slice(0, 4)), ['moved', 'moved', 'moved', 'moved']);
  assert.equal(w.service.outstandingWork, 0);
  const again = await w.cn2.request('seen', { mac: mac(10), via: 'assoc' });
  assert.equal(again.outcome, 'moved', 'the MLR takes work again');
  assert.equal(w.registry.binding(mac(10))?.current, 'cn2');
});

test('a flood from many CNs at once stays bounded: work, locks and transactions never exceed maxWork', async () => {
  const w = await world(16, 400);
  const answers: Promise<unknown>[] = [];
  for (let i = 0; i < 400; i++) answers.push(w.cn2.request('seen', { mac: mac(i), via: 'assoc' }).catch((e: unknown) => e));
  // Several requests for one station take one unit of work each, too.
  for (let i = 0; i < 50; i++) answers.push(w.cn1.request('seen', { mac: mac(0), via: 'assoc' }).catch((e: unknown) => e));
  await until('the budget taken', () => w.service.outstandingWork === 16);
  let most = 0;
  for (let i = 0; i < 20; i++) {
    most = Math.max(most, w.service.outstandingWork, w.service.handovers.lockedStations, w.service.handovers.active.size);
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.ok(most <= 16, `at most 16 at once (saw ${most})`);
  w.release();
  const settled = await Promise.all(answers);
  const busy = settled.filter((e) => e instanceof RpcError && e.code === 'busy').length;
  assert.ok(busy >= 400 + 50 - 16 - 64, `most were refused as busy (${busy})`);
  await until('all work done', () => w.service.outstandingWork === 0 && w.service.handovers.lockedStations === 0);
});

test('while the event loop runs late with work outstanding, new work is refused busy for a while', async () => {
  const w = await world(64, 10);
  const first = w.cn2.request('seen', { mac: mac(0), via: 'assoc' });
  await until('a move committing', () => w.held.length >= 2);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await sleep(30); // the lag check (every 20 ms while work is outstanding) has run once
  const end = performance.now() + 300; // the loop stalls for 300 ms, past MAX_LAG_MS = 100
  while (performance.now() < end);
  await sleep(5); // the lag check, due during the stall, has run
  await assert.rejects(
    w.cn2.request('seen', { mac: mac(1), via: 'assoc' }),
    (e: unknown) => e instanceof RpcError && e.code === 'busy' && e.retryAfterMs === BUSY_RETRY_AFTER_MS,
  );
  assert.equal(w.service.outstandingWork, 1, 'the refused request holds nothing');
  // Positive control: the held move completes, and once LAG_HOLD_MS (250 ms) has passed work is taken again.
  w.release();
  assert.equal((await first).outcome, 'moved');
  await sleep(300);
  assert.equal((await w.cn2.request('seen', { mac: mac(1), via: 'assoc' })).outcome, 'moved');
});

test('busyRetryDelay: the hint (or 50 ms), doubled per attempt, with jitter between half and one and a half', () => {
  assert.equal(
    busyRetryDelay(0, 100, () => 0),
    50,
  );
  assert.equal(
    busyRetryDelay(0, 100, () => 0.999999),
    150,
  );
  assert.equal(
    busyRetryDelay(2, 100, () => 0.5),
    400,
  );
  assert.equal(
    busyRetryDelay(0, undefined, () => 0.5),
    50,
  );
  // A hint of an hour (the field allows it) is taken as 1 s: a move is not worth waiting longer for.
  assert.equal(
    busyRetryDelay(0, 3_600_000, () => 0.5),
    1000,
  );
  const seen = new Set(Array.from({ length: 50 }, () => busyRetryDelay(1, 40)));
  assert.ok(seen.size > 5, 'random jitter spreads the retries');
  for (const d of seen) assert.ok(d >= 40 && d <= 120);
});

/** A CN's MlrLink to a stub MLR that answers each `seen`/`discover` from `script` ('busy' or a reply). */
async function linked(script: ('busy' | 'ok')[]) {
  const calls: string[] = [];
  const link = new MlrLink({
    describe: 'stub',
    connect: () => {
      const [cnEnd, mlrEnd] = memoryChannelPair('cn1', 'mlr');
      const mlr = new RpcPeer(mlrEnd);
      mlr.handle('bind', () => ({ bindings: [], peers: [] }));
      const answer = (type: string) => {
        calls.push(type);
        if ((script.shift() ?? 'ok') === 'busy') throw new RpcError('busy', 'the MLR is busy', 5);
      };
      mlr.handle('seen', () => {
        answer('seen');
        return { outcome: 'unknown' };
      });
      mlr.handle('discover', (b) => {
        answer('discover');
        return {
          binding: {
            mac: b.mac,
            cell: ip('10.1.0.4'),
            parent: { name: 'cn1', addr: ip('10.200.0.1') },
            current: null,
            expires: 1,
            state: 'offered',
          },
        };
      });
      return Promise.resolve(cnEnd);
    },
    bindBody: () => ({ network: 'n', cn: { name: 'cn1', addr: ip('10.200.0.1') }, tunnels: ['vxlan'], pools: [] }),
    serve: () => undefined,
    onBound: () => Promise.resolve(),
    log: () => undefined,
    heartbeat: false,
  });
  await link.start();
  return { link, calls };
}

test('the CN asks a move again after busy, a bounded number of times; DHCP is not asked again', async () => {
  {
    const { link, calls } = await linked(['busy', 'busy']);
    const r = await link.request('seen', { mac: mac(1), via: 'assoc' }, 5000);
    assert.equal(r.outcome, 'unknown', 'answered on the third try');
    assert.deepEqual(calls, ['seen', 'seen', 'seen']);
    link.stop();
  }
  {
    const { link, calls } = await linked(Array.from({ length: 10 }, () => 'busy' as const));
    await assert.rejects(
      link.request('seen', { mac: mac(1), via: 'assoc' }, 5000),
      (e: unknown) => e instanceof RpcError && e.code === 'busy',
    );
    assert.equal(calls.length, BUSY_RETRIES + 1, 'given up after BUSY_RETRIES retries');
    link.stop();
  }
  {
    const { link, calls } = await linked(['busy']);
    await assert.rejects(link.request('discover', { mac: mac(1) }, 5000), (e: unknown) => e instanceof RpcError && e.code === 'busy');
    assert.deepEqual(calls, ['discover'], 'a DHCP request is dropped: the client retransmits');
    link.stop();
  }
  {
    // The request's time-out bounds the retries too.
    const { link, calls } = await linked(Array.from({ length: 10 }, () => 'busy' as const));
    await assert.rejects(
      link.request('seen', { mac: mac(1), via: 'assoc' }, 3),
      (e: unknown) => e instanceof RpcError && e.code === 'busy',
    );
    assert.equal(calls.length, 1, 'no retry past the time-out');
    link.stop();
  }
});
