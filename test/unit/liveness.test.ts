// SPDX-License-Identifier: GPL-2.0-only
// Liveness both ways and expiry everywhere (issue 9), on the assembled MLR (mlr/mlr.ts) and the CN's
// MlrLink over in-process channels whose wire can be cut without a FIN:
// - a CN that falls silent is marked offline within the heartbeat's missMs, and a roam away from it
//   (it is the station's parent and previous CN) completes without it, also when the transaction
//   had already asked it to prepare;
// - the offline-parent rule: its clients keep their cells and are moved and renewed without it; new
//   cells are not borrowed from its pools while an online CN has one free; it learns every binding
//   of its pools when it binds again;
// - the CN leaves a silent MLR within missMs and binds again;
// - expiry: the binding goes, its parent and current CN are both told to remove it, a CN offline at
//   that moment learns it from its next bind reply, and the cell is handed out again.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { BindingView } from '../../src/core/binding.js';
import type { RequestBody } from '../../src/core/messages.js';
import { Registry } from '../../src/core/registry.js';
import { MlrLink } from '../../src/cn/mlr-link.js';
import { startMlr, type Mlr } from '../../src/mlr/mlr.js';
import { MlrService } from '../../src/mlr/service.js';
import { RpcPeer, type MessageChannel } from '../../src/proto/rpc.js';
import { cuttablePair, type CuttablePair } from '../support/cuttable-channel.js';
import { ip, until } from '../support/helpers.js';

const HB = { intervalMs: 40, missMs: 120 };
const MS = '02:00:00:00:00:01';
const MS2 = '02:00:00:00:00:02';
// The heartbeat's timers do not hold the process open (a daemon's sockets do): this does, meanwhile.
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));

function bindBody(name: string, addr: string, pool: string | null): RequestBody<'bind'> {
  return {
    network: 'campus',
    cn: { name, addr: ip(addr) },
    tunnels: ['vxlan'],
    pools: pool
      ? [{ network: ip(`${pool}.0`), prefix: 24, first: ip(`${pool}.0`), last: ip(`${pool}.255`), exclude: [ip(`${pool}.1`)] }]
      : [],
  };
}

interface FakeCn {
  peer: RpcPeer;
  wire: CuttablePair;
  events: string[];
}

/** A CN's end of a session: heartbeat on, every MLR request recorded and agreed to. */
function fakeCn(wire: CuttablePair): FakeCn {
  const cn: FakeCn = { peer: new RpcPeer(wire.a, { heartbeat: HB }), wire, events: [] };
  const note = (what: string, b: BindingView) => cn.events.push(`${what} ${b.mac} current=${b.current?.name ?? '-'}`);
  cn.peer.handle('prepare', (b) => (note('prepare', b.binding), {}));
  cn.peer.handle('commit', (b) => (note('commit', b.binding), {}));
  cn.peer.handle('remove', (b) => (note('remove', b.binding), {}));
  cn.peer.handle('abort', () => (cn.events.push('abort'), {}));
  cn.peer.handle('probe', () => ({ present: 'no' as const }));
  return cn;
}

/** The assembled MLR on in-process channels; connect() hands it a fresh cuttable wire. */
async function mlrOnWires(handover: Parameters<typeof startMlr>[0]['handover'] = {}) {
  let accept: ((ch: MessageChannel, remote: string | undefined) => void) | undefined;
  const logs: string[] = [];
  const mlr: Mlr = await startMlr(
    { networkName: 'campus', offerHoldSeconds: 60, leaseGraceSeconds: 0, tunnelTypes: ['vxlan'], heartbeat: HB, handover },
    {
      listen: (onChannel) => {
        accept = onChannel;
        return Promise.resolve({ describe: 'memory', close: () => Promise.resolve() });
      },
      log: (_l, m) => logs.push(m),
    },
  );
  const connect = (name: string): CuttablePair => {
    const wire = cuttablePair(name, 'mlr');
    accept!(wire.b, `10.200.0.${name.slice(2)}`);
    return wire;
  };
  const bindCn = async (name: string, pool: string | null): Promise<FakeCn> => {
    const cn = fakeCn(connect(name));
    await cn.peer.request('bind', bindBody(name, `10.200.0.1${name.slice(2)}`, pool));
    return cn;
  };
  return { mlr, logs, connect, bindCn };
}

test('a CN that falls silent goes offline within missMs; a roam away from it (parent and previous CN) completes without it', async () => {
  // prepare would time out after 3 s: the roam must not wait for that. The probe gives up quickly, so
  // the transaction has asked the silent CN to prepare before the heartbeat finds it gone.
  const { mlr, logs, bindCn } = await mlrOnWires({ prepareTimeoutMs: 3000, probeTimeoutMs: 20, deadlineMs: 5000 });
  try {
    const cn1 = await bindCn('cn1', '10.1.0');
    const cn2 = await bindCn('cn2', '10.2.0');
    await cn1.peer.request('discover', { mac: MS });
    await cn1.peer.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
    assert.equal(mlr.service.isOnline('cn1'), true);

    cn1.wire.cut(); // powered off: no FIN, nothing more either way
    const t0 = performance.now();
    const r = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'ip' }, 5000);
    const took = performance.now() - t0;
    assert.equal(r.outcome, 'moved', JSON.stringify(r));
    assert.equal(r.binding?.current?.name, 'cn2');
    assert.equal(r.binding?.parent.name, 'cn1', 'the client keeps its cell (and its parent)');
    assert.ok(took < 1500, `done ${Math.round(took)} ms after the cut, not at the 3 s prepare time-out`);
    assert.ok(
      logs.some((l) => /cn1 went offline while preparing: skipped/.test(l)),
      'the move had asked cn1 to prepare before the heartbeat found it gone',
    );
    assert.equal(mlr.service.isOnline('cn1'), false);
    assert.ok(logs.some((l) => /CN 'cn1' disconnected \(heartbeat: nothing from cn1 for \d+ ms/.test(l)));
    assert.deepEqual(
      mlr.service.status().cns.map((c) => [c.name, c.online]),
      [
        ['cn1', 'no'],
        ['cn2', 'yes'],
      ],
    );
    assert.deepEqual(cn2.events.slice(-2), [`prepare ${MS} current=cn2`, `commit ${MS} current=cn2`]);
  } finally {
    await mlr.close();
  }
});

test('offline parent: its clients are moved and renewed without it, new cells come from online pools, it re-learns on bind', async () => {
  const { mlr, bindCn, connect } = await mlrOnWires();
  try {
    const cn1 = await bindCn('cn1', '10.1.0');
    const cn2 = await bindCn('cn2', '10.2.0');
    const cn3 = await bindCn('cn3', null); // no pool: borrows
    await cn1.peer.request('discover', { mac: MS });
    await cn1.peer.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
    cn1.wire.cut();
    await until('cn1 offline', () => !mlr.service.isOnline('cn1'), HB.missMs * 3);

    const moved = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'assoc' });
    assert.equal(moved.outcome, 'moved');
    const renewed = await cn2.peer.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'renewing' });
    assert.equal(renewed.outcome, 'ack', 'its renewal is acknowledged: it keeps its address');

    const offer = await cn3.peer.request('discover', { mac: MS2 });
    assert.equal(offer.binding.parent.name, 'cn2', 'a borrowed cell comes from an online CN, not from the offline parent');

    // cn1 powers up again: a new connection, a bind whose reply is the whole truth about its pools.
    const again = fakeCn(connect('cn1'));
    const bound = await again.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
    const mine = bound.bindings.filter((b) => b.state === 'bound');
    assert.deepEqual(
      mine.map((b) => [b.mac, b.parent.name, b.current?.name, b.tunnel?.type]),
      [[MS, 'cn1', 'cn2', 'vxlan']],
    );
    assert.equal(mlr.service.isOnline('cn1'), true);
  } finally {
    await mlr.close();
  }
});

test('the CN leaves an MLR that falls silent within missMs and binds again', async () => {
  const { mlr, connect } = await mlrOnWires();
  const wires: CuttablePair[] = [];
  const cnLogs: string[] = [];
  let bound = 0;
  const link = new MlrLink({
    describe: 'mlr:6554',
    connect: () => {
      const w = connect('cn1');
      wires.push(w);
      return Promise.resolve(w.a);
    },
    bindBody: () => bindBody('cn1', '10.200.0.11', '10.1.0'),
    serve: () => {},
    onBound: () => (bound++, Promise.resolve()),
    log: (_l, m) => cnLogs.push(m),
    minBackoffMs: 5,
    maxBackoffMs: 5,
    heartbeat: HB,
  });
  try {
    await link.start();
    assert.equal(bound, 1);
    await new Promise((r) => setTimeout(r, HB.missMs * 2));
    assert.equal(wires.length, 1, 'an idle but live MLR is kept');
    wires[0]!.cut(); // the MLR hangs, or the path to it is cut: no FIN
    await until('a second bind within a few heartbeat limits', () => bound === 2, HB.missMs * 8);
    assert.ok(
      cnLogs.some((l) => /^lost the MLR \(heartbeat: nothing from mlr for \d+ ms \(limit 120 ms\)\); reconnecting$/.test(l)),
      cnLogs.join('\n'),
    );
    assert.equal(link.connected, true);
  } finally {
    link.stop();
    await mlr.close();
  }
});

test('expiry: the binding goes, parent and current CN remove it, an offline CN learns at bind, the cell is handed out again', async () => {
  const now = { t: 1_000_000 };
  const registry = new Registry(['vxlan']);
  const service = new MlrService(registry, {
    networkName: 'campus',
    offerHoldMs: 60_000,
    leaseGraceMs: 0,
    log: () => {},
    now: () => now.t,
  });
  const attach = (): FakeCn => {
    const wire = cuttablePair('cn', 'mlr');
    service.attach(new RpcPeer(wire.b, { heartbeat: HB }), undefined);
    return fakeCn(wire);
  };
  const cn1 = attach();
  const cn2 = attach();
  await cn1.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await cn2.peer.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0'));
  try {
    // MS and MS2 lease at cn1 (cells 10.1.0.4 and .8) and roam to cn2: cn1 routes into a tunnel, cn2 is their gateway.
    for (const [mac, host] of [
      [MS, '10.1.0.5'],
      [MS2, '10.1.0.9'],
    ] as const) {
      await cn1.peer.request('discover', { mac });
      await cn1.peer.request('request', { mac, ip: ip(host), leaseTime: 60, state: 'selecting' });
      assert.equal((await cn2.peer.request('seen', { mac, ip: ip(host), via: 'assoc' })).outcome, 'moved');
    }
    // MS2 renews; MS does not.
    now.t += 30_000;
    assert.equal((await cn2.peer.request('request', { mac: MS2, ip: ip('10.1.0.9'), leaseTime: 60, state: 'renewing' })).outcome, 'ack');
    now.t += 30_000;
    cn1.events.length = 0;
    cn2.events.length = 0;
    assert.equal(await service.expire(), 1);
    assert.equal(registry.binding(MS), undefined);
    assert.ok(registry.binding(MS2), 'the renewed one stays');
    await until('both removes', () => cn1.events.length > 0 && cn2.events.length > 0);
    assert.deepEqual(cn1.events, [`remove ${MS} current=cn2`], 'the parent drops its route and tunnel');
    assert.deepEqual(cn2.events, [`remove ${MS} current=cn2`], 'the current CN drops the gateway');

    // cn2 falls silent; MS2's lease ends while it is offline.
    cn2.wire.cut();
    await until('cn2 offline', () => !service.isOnline('cn2'), HB.missMs * 3);
    now.t += 60_001;
    cn1.events.length = 0;
    assert.equal(await service.expire(), 1);
    assert.equal(registry.binding(MS2), undefined);
    await until('the parent is told', () => cn1.events.length > 0);
    assert.deepEqual(cn1.events, [`remove ${MS2} current=cn2`]);
    const back = attach();
    const rebound = await back.peer.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0'));
    assert.deepEqual(rebound.bindings, [], 'cn2 learns from its bind reply that it serves neither any more');

    // The expired cells are free: the next clients get them.
    const offer = await cn1.peer.request('discover', { mac: '02:00:00:00:00:03' });
    assert.equal(offer.binding.cell, ip('10.1.0.4'));
    const adopted = await cn1.peer.request('request', {
      mac: '02:00:00:00:00:04',
      ip: ip('10.1.0.9'),
      leaseTime: 60,
      state: 'init-reboot',
    });
    assert.equal(adopted.outcome, 'ack');
    back.peer.close();
  } finally {
    service.stop();
    cn1.peer.close();
    cn2.peer.close();
  }
});
