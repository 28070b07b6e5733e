// SPDX-License-Identifier: GPL-2.0-only
// The MLR's handover transaction (src/mlr/handover.ts), one test per failure rule, with stand-in
// CNs on in-memory channels: a participant refuses at prepare; a participant never answers (the
// deadline frees the station's lock while other stations' moves go on); a participant fails its
// commit after the registry was written (reconciled by retries, or by closing its session); the
// presence probe before a traffic-detected move (present: refused; absent, failing, hung or offline:
// the move proceeds; assoc/dhcp moves are never probed); only probed moves prepare; a bound
// binding's move commits before its write is durable but is answered after, a new lease commits
// only once durable; one station's commits keep transaction order; paging (who may report a station
// lost, the rounds of pages to the other CNs, the move that finds it).
import test from 'node:test';
import assert from 'node:assert/strict';
import type { BindingView } from '../../src/core/binding.js';
import { bindingCodec } from '../../src/core/binding.js';
import { encodeRequestBody, FEATURES, type RequestBody } from '../../src/core/messages.js';
import { object } from '../../src/core/schema.js';
import { Registry } from '../../src/core/registry.js';
import { MlrService, type MlrServiceOptions } from '../../src/mlr/service.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { RpcError, RpcPeer } from '../../src/proto/rpc.js';
import { ip, neverWithin, unsettledWithin, until, value } from '../support/helpers.js';

/** How a stand-in CN answers one request type: 'ok', an error, or never. */
type Behaviour = 'ok' | 'refuse' | 'hang';

interface StandIn {
  peer: RpcPeer;
  /** `${type} ${mac}` per request received, in order. */
  seen: string[];
  commits: BindingView[];
  /** The `tx` of every remove received. */
  removes: (number | undefined)[];
  behave: Partial<Record<'prepare' | 'commit' | 'remove', Behaviour[]>>;
  /** How the stand-in answers `probe`: the station there ('yes'), not ('no', the default), or as a Behaviour. */
  probe: ('yes' | 'no' | 'refuse' | 'hang')[];
  closed: boolean;
}

function world(handover: MlrServiceOptions['handover'] = {}, pageRoundsMs?: readonly number[], durable?: () => Promise<void>) {
  const registry = new Registry(['vxlan']);
  const logs: string[] = [];
  const service = new MlrService(registry, {
    networkName: 'n',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    log: (_l, m) => logs.push(m),
    handover,
    ...(pageRoundsMs ? { pageRoundsMs } : {}),
    ...(durable ? { durable } : {}),
  });
  const hung: (() => void)[] = [];
  /** `features`: what the stand-in announces at bind (none: an old CN). */
  const connect = async (name: string, n: number, pool: boolean, features?: string[]): Promise<StandIn> => {
    const [cnEnd, mlrEnd] = memoryChannelPair(name, 'mlr');
    service.attach(new RpcPeer(mlrEnd), undefined);
    const cn: StandIn = { peer: new RpcPeer(cnEnd), seen: [], commits: [], removes: [], behave: {}, probe: [], closed: false };
    cnEnd.onClose(() => (cn.closed = true));
    const answer = (type: 'prepare' | 'commit' | 'remove', mac: string): Promise<Record<string, never>> | Record<string, never> => {
      cn.seen.push(`${type} ${mac}`);
      const b = cn.behave[type]?.shift() ?? 'ok';
      if (b === 'refuse') throw new RpcError('refused', `${name} says no`);
      if (b === 'hang') return new Promise((resolve) => hung.push(() => resolve({})));
      return {};
    };
    cn.peer.handle('prepare', (body) => answer('prepare', body.binding.mac));
    cn.peer.handle('commit', (body) => {
      cn.commits.push(body.binding);
      return answer('commit', body.binding.mac);
    });
    cn.peer.handle('remove', (body) => {
      cn.removes.push(body.tx);
      return answer('remove', body.binding.mac);
    });
    cn.peer.handle('probe', (body) => {
      cn.seen.push(`probe ${body.mac} ${body.ip}`);
      const p = cn.probe.shift() ?? 'no';
      if (p === 'refuse') throw new RpcError('not-served', `${name} does not serve ${body.mac}`);
      if (p === 'hang') return new Promise((resolve) => hung.push(() => resolve({ present: 'no' })));
      return { present: p };
    });
    cn.peer.handle('page', (body) => {
      cn.seen.push(`page ${body.mac} ${body.ip}`);
      return {};
    });
    cn.peer.handle('abort', () => {
      cn.seen.push('abort');
      return {};
    });
    const body: RequestBody<'bind'> = {
      network: 'n',
      cn: { name, addr: ip(`10.200.0.${n}`) },
      tunnels: ['vxlan'],
      pools: pool
        ? [{ network: ip(`10.${n}.0.0`), prefix: 24, first: ip(`10.${n}.0.0`), last: ip(`10.${n}.0.255`), exclude: [ip(`10.${n}.0.1`)] }]
        : [],
      ...(features ? { features } : {}),
    };
    await cn.peer.request('bind', body);
    return cn;
  };
  /** `mac` takes its first cell from `cn`'s pool and is bound there. */
  const lease = async (cn: StandIn, mac: string) => {
    const offer = await cn.peer.request('discover', { mac });
    const r = await cn.peer.request('request', { mac, ip: offer.binding.cell + 1, leaseTime: 600, state: 'selecting' });
    assert.equal(r.outcome, 'ack');
    return offer.binding.cell + 1;
  };
  const release = () => hung.splice(0).forEach((f) => f());
  return { registry, service, connect, lease, logs, release };
}

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

test('a participant refuses at prepare: every asked CN gets abort, the registry is unchanged, the lock is free', async () => {
  const w = world();
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const host = await w.lease(cn1, A);
  const before = { ...w.registry.binding(A)! };
  cn1.behave.prepare = ['refuse'];
  cn1.seen.length = cn2.seen.length = 0;
  const r = await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' });
  assert.equal(r.outcome, 'refused');
  assert.match(r.reason ?? '', /cn1 says no/);
  assert.deepEqual(w.registry.binding(A), before, 'the registry was not written');
  await until('both participants to be told abort', () => cn1.seen.includes('abort') && cn2.seen.includes('abort'));
  assert.ok(!cn1.seen.some((e) => e.startsWith('commit')) && !cn2.seen.some((e) => e.startsWith('commit')), 'nobody committed');
  assert.equal(w.service.handovers.stats.rolledBack, 1);
  assert.equal(w.service.handovers.active.size, 0);
  // The station's lock was released: the same move goes through once cn1 agrees.
  const again = await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' });
  assert.equal(again.outcome, 'moved');
  assert.equal(w.registry.binding(A)?.current, 'cn2');
});

test('a participant that never answers: the deadline frees the lock, and other stations move meanwhile', async () => {
  const w = world({ prepareTimeoutMs: 5000, deadlineMs: 400 });
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const cn3 = await w.connect('cn3', 3, true);
    const hostA = await w.lease(cn1, A);
    const hostB = await w.lease(cn2, B);
    cn1.behave.prepare = ['hang'];
    const started = Date.now();
    const stuck = cn2.peer.request('seen', { mac: A, ip: hostA, via: 'ip' }, 10_000).then((r) => ({ r, at: Date.now() - started }));
    await until('the stuck transaction to be preparing', () =>
      [...w.service.handovers.active.values()].some((t) => t.mac === A && t.phase === 'preparing'),
    );
    // B's move (cn2 -> cn3) does not involve cn1 and does not wait for A's lock.
    const other = await cn3.peer.request('seen', { mac: B, ip: hostB, via: 'ip' });
    const otherAt = Date.now() - started;
    assert.equal(other.outcome, 'moved');
    const { r, at } = await stuck;
    assert.ok(otherAt < at, `B moved (${otherAt} ms) before A's transaction ended (${at} ms)`);
    assert.equal(r.outcome, 'refused');
    assert.match(r.reason ?? '', /cn1: no reply to prepare/);
    assert.ok(at >= 350 && at < 2000, `the lock was held about the deadline (${at} ms), not the 5 s prepare time-out`);
    assert.equal(w.registry.binding(A)?.current, 'cn1');
    // A's lock is free: with cn1 answering again, the move succeeds.
    const again = await cn2.peer.request('seen', { mac: A, ip: hostA, via: 'ip' });
    assert.equal(again.outcome, 'moved');
  } finally {
    w.release();
  }
});

test('a commit that fails after the registry write: the registry keeps the move and the CN is reconciled', async () => {
  const w = world({ reconcileDelaysMs: [10, 10, 10] });
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const host = await w.lease(cn1, A);
  cn1.behave.commit = ['refuse', 'refuse'];
  cn1.commits.length = 0;
  const r = await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' });
  assert.equal(r.outcome, 'moved', 'the move is done: the registry holds it');
  assert.equal(w.registry.binding(A)?.current, 'cn2');
  // Two failed commits, then the third (a reconcile retry) is accepted, carrying the registry's binding.
  await until('cn1 to be reconciled', () => w.service.handovers.stats.reconciled === 1);
  assert.equal(cn1.commits.length, 3);
  assert.equal(cn1.commits[2]?.current?.name, 'cn2');
  assert.equal(cn1.commits[2]?.tunnel?.type, 'vxlan');
  assert.equal(cn1.closed, false);
});

test('a CN that keeps failing its commit is disconnected so that it re-binds', async () => {
  const w = world({ reconcileDelaysMs: [5, 5], commitTimeoutMs: 200 });
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const host = await w.lease(cn1, A);
    cn1.behave.commit = ['hang', 'refuse', 'refuse'];
    const r = await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' });
    assert.equal(r.outcome, 'moved');
    await until('cn1 to be disconnected', () => cn1.closed, 3000);
    assert.equal(w.service.handovers.stats.reconcileFailed, 1);
    assert.ok(w.logs.some((l) => /closing its session so it re-binds/.test(l)));
    assert.equal(w.service.isOnline('cn1'), false);
  } finally {
    w.release();
  }
});

test('a reconcile sends what the registry holds then, not what failed', async () => {
  const w = world({ reconcileDelaysMs: [50] });
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const cn3 = await w.connect('cn3', 3, true);
  const host = await w.lease(cn1, A);
  cn2.behave.commit = ['refuse'];
  assert.equal((await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' })).outcome, 'moved');
  // Before cn2's reconcile runs, the station moves on to cn3 (cn2 takes part as the previous CN).
  assert.equal((await cn3.peer.request('seen', { mac: A, ip: host, via: 'ip' })).outcome, 'moved');
  await until('the reconcile', () => w.service.handovers.stats.reconciled === 1);
  const last = cn2.commits.at(-1);
  assert.equal(last?.current?.name, 'cn3', 'cn2 is told the station is at cn3 now');
});

test('presence check: the station still answers at its previous CN, so a traffic-detected move is refused as a duplicate MAC', async () => {
  const w = world();
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const host = await w.lease(cn1, A);
  const before = { ...w.registry.binding(A)! };
  cn1.seen.length = cn2.seen.length = 0;
  for (const via of ['ip', 'arp'] as const) {
    cn1.probe.push('yes');
    const r = await cn2.peer.request('seen', { mac: A, ip: host, via });
    assert.equal(r.outcome, 'refused');
    assert.equal(r.reason, `duplicate MAC: ${A} still answers at cn1`);
  }
  // The probe runs beside `prepare`: whoever was asked to prepare is told to abort.
  await until('the aborts', () => cn1.seen.filter((e) => e === 'abort').length === 2 && cn2.seen.filter((e) => e === 'abort').length === 2);
  assert.deepEqual(
    cn1.seen.filter((e) => e.startsWith('probe')),
    [`probe ${A} ${host}`, `probe ${A} ${host}`],
    'the previous CN was probed for the station at N+1',
  );
  for (const cn of [cn1, cn2]) {
    assert.deepEqual(
      cn.seen.filter((e) => !e.startsWith('probe')).sort(),
      ['abort', 'abort', `prepare ${A}`, `prepare ${A}`],
      'prepared beside the probe, then aborted; never committed',
    );
  }
  assert.deepEqual(w.registry.binding(A), before, 'the registry was not written');
  assert.equal(w.service.handovers.stats.duplicates, 2);
  assert.equal(w.logs.filter((l) => l.includes('duplicate MAC')).length, 2);
  // the log is rate-limited: the third refusal within the interval writes nothing
  cn1.probe.push('yes');
  assert.equal((await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' })).outcome, 'refused');
  assert.equal(w.logs.filter((l) => l.includes('duplicate MAC')).length, 2);
  // positive control: once the station is gone from cn1, the same report moves it
  const moved = await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' });
  assert.equal(moved.outcome, 'moved');
  assert.equal(w.registry.binding(A)?.current, 'cn2');
  assert.ok(cn1.seen.some((e) => e.startsWith('prepare')) && cn1.seen.some((e) => e.startsWith('commit')));
});

test('presence check fails open: no answer, a refused or hung probe, an offline previous CN all let the move proceed', async () => {
  const w = world({ probeTimeoutMs: 100 });
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const host = await w.lease(cn1, A);
    // absent (the default answer), then back; refused, then back; hung past the probe time-out
    for (const answer of ['no', 'refuse', 'hang'] as const) {
      cn1.probe.push(answer);
      const started = Date.now();
      const r = await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' });
      const took = Date.now() - started;
      assert.equal(r.outcome, 'moved', `probe answered ${answer}`);
      assert.equal(w.registry.binding(A)?.current, 'cn2');
      assert.ok(cn1.seen.includes(`probe ${A} ${host}`), `cn1 was probed (${answer})`);
      if (answer === 'hang') assert.ok(took >= 90 && took < 2000, `a hung probe costs its time-out (${took} ms)`);
      cn1.seen.length = 0;
      // back to cn1 (cn2 is probed on that move; it says no)
      assert.equal((await cn1.peer.request('seen', { mac: A, ip: host, via: 'arp' })).outcome, 'moved');
      assert.ok(cn2.seen.includes(`probe ${A} ${host}`));
      cn2.seen.length = 0;
    }
    // the previous CN offline: nobody to probe, the move proceeds
    cn1.peer.close();
    await until('cn1 to be offline', () => !w.service.isOnline('cn1'));
    cn2.seen.length = 0;
    assert.equal((await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' })).outcome, 'moved');
    assert.equal(w.registry.binding(A)?.current, 'cn2');
    assert.equal(w.service.handovers.stats.probed, 6, 'one probe per move while the previous CN was online');
    assert.equal(w.service.handovers.stats.duplicates, 0);
  } finally {
    w.release();
  }
});

test('presence check: moves detected by association or DHCP are never probed', async () => {
  const w = world();
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const host = await w.lease(cn1, A);
  cn1.probe.push('yes', 'yes', 'yes');
  cn1.seen.length = 0;
  assert.equal((await cn2.peer.request('seen', { mac: A, via: 'assoc' })).outcome, 'moved');
  assert.equal(w.registry.binding(A)?.current, 'cn2');
  cn2.probe.push('yes');
  const r = await cn1.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'init-reboot' });
  assert.equal(r.outcome, 'ack');
  assert.equal(w.registry.binding(A)?.current, 'cn1');
  assert.ok(!cn1.seen.some((e) => e.startsWith('probe')) && !cn2.seen.some((e) => e.startsWith('probe')), 'nobody was probed');
  assert.equal(w.service.handovers.stats.probed, 0);
});

/** A durable() whose writes reach the disk only when `flush()` is called (a slow disk), or fail (`fail`). */
function slowDisk() {
  let open = true;
  let failure: Error | undefined;
  const waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  return {
    durable: (): Promise<void> => {
      if (failure) return Promise.reject(failure);
      if (open) return Promise.resolve();
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    hold: () => (open = false),
    flush: () => {
      open = true;
      for (const w of waiting.splice(0)) w.resolve();
    },
    fail: (why: string) => {
      failure = new Error(why);
      for (const w of waiting.splice(0)) w.reject(failure);
    },
  };
}

/** `p` has not settled within `ms`. */
const unsettled = (p: Promise<unknown>, what: string, ms = 50) => unsettledWithin(p, what, ms);

test('a move that is not probed sends no prepare: association, DHCP, an offline previous CN, a static host', async () => {
  const w = world();
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const cn3 = await w.connect('cn3', 3, true);
  const host = await w.lease(cn1, A);
  cn1.seen.length = cn2.seen.length = cn3.seen.length = 0;
  // assoc: cn1 (parent, previous) and cn2 (new) are committed, nobody prepared
  assert.equal((await cn2.peer.request('seen', { mac: A, via: 'assoc' })).outcome, 'moved');
  assert.deepEqual([cn1.seen, cn2.seen, cn3.seen], [[`commit ${A}`], [`commit ${A}`], []]);
  // dhcp (a bound client's REQUEST at another CN): cn1 (parent), cn2 (previous), cn3 (new)
  assert.equal((await cn3.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'init-reboot' })).outcome, 'ack');
  assert.deepEqual([cn1.seen, cn2.seen, cn3.seen], [[`commit ${A}`, `commit ${A}`], [`commit ${A}`, `commit ${A}`], [`commit ${A}`]]);
  assert.equal(w.registry.binding(A)?.current, 'cn3');
  // traffic-detected, but the previous CN (cn3) is offline: nothing to probe, nothing to prepare
  cn3.peer.close();
  await until('cn3 to be offline', () => !w.service.isOnline('cn3'));
  cn1.seen.length = cn2.seen.length = 0;
  assert.equal((await cn2.peer.request('seen', { mac: A, ip: host, via: 'ip' })).outcome, 'moved');
  assert.deepEqual([cn1.seen, cn2.seen], [[`commit ${A}`], [`commit ${A}`]]);
  // a statically addressed host adopted by its ARP (a new binding: no previous CN)
  const hostB = ip('10.1.0.101');
  cn1.seen.length = cn2.seen.length = 0;
  assert.equal((await cn2.peer.request('seen', { mac: B, ip: hostB, via: 'arp', leaseTime: 600 })).outcome, 'moved');
  assert.deepEqual([cn1.seen, cn2.seen], [[`commit ${B}`], [`commit ${B}`]]);
  // positive control: a probed move (cn2 -> cn1 by traffic, cn2 online) still prepares beside its probe
  cn1.seen.length = cn2.seen.length = 0;
  assert.equal((await cn1.peer.request('seen', { mac: A, ip: host, via: 'arp' })).outcome, 'moved');
  assert.deepEqual(cn1.seen, [`prepare ${A}`, `commit ${A}`]);
  assert.deepEqual(cn2.seen, [`probe ${A} ${host}`, `prepare ${A}`, `commit ${A}`]);
  assert.equal(w.service.handovers.stats.probed, 1);
});

test('a probed move still refuses a duplicate MAC, and aborts the prepares it sent beside the probe', async () => {
  const w = world();
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const host = await w.lease(cn1, A);
  assert.equal((await cn2.peer.request('seen', { mac: A, via: 'assoc' })).outcome, 'moved');
  const before = { ...w.registry.binding(A)! };
  cn2.probe.push('yes');
  cn1.seen.length = cn2.seen.length = 0;
  const r = await cn1.peer.request('seen', { mac: A, ip: host, via: 'arp' });
  assert.equal(r.outcome, 'refused');
  assert.equal(r.reason, `duplicate MAC: ${A} still answers at cn2`);
  await until('the aborts', () => cn1.seen.includes('abort') && cn2.seen.includes('abort'));
  assert.deepEqual(w.registry.binding(A), before, 'the registry was not written');
  assert.ok(![...cn1.seen, ...cn2.seen].some((e) => e.startsWith('commit')), 'nobody committed');
});

test('a bound binding moves with its commits sent before the write is durable; it is answered only once durable', async () => {
  const disk = slowDisk();
  const w = world({}, undefined, disk.durable);
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const host = await w.lease(cn1, A);
  cn1.seen.length = cn2.seen.length = 0;
  disk.hold();
  const seen = cn2.peer.request('seen', { mac: A, via: 'assoc' });
  await until('both commits, before the write is durable', () => cn1.seen.includes(`commit ${A}`) && cn2.seen.includes(`commit ${A}`));
  await unsettled(seen, 'the `seen` reply before the write is durable');
  assert.equal(w.service.handovers.lockedStations, 1, 'the station stays locked until the write is durable');
  disk.flush();
  assert.equal((await seen).outcome, 'moved');
  assert.equal(w.service.handovers.lockedStations, 0);
  // A probed move of a bound binding: the same, after its probe and prepares.
  disk.hold();
  const back = cn1.peer.request('seen', { mac: A, ip: host, via: 'arp' });
  await until('the commits of the probed move', () => cn1.seen.filter((e) => e === `commit ${A}`).length === 2);
  await unsettled(back, "the probed move's reply before the write is durable");
  disk.flush();
  assert.equal((await back).outcome, 'moved');
  // A DHCP REQUEST of a bound client at another CN: committed at once, the ACK waits for the disk.
  disk.hold();
  const renew = cn2.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'init-reboot' });
  await until('the commits of the DHCP move', () => cn2.seen.filter((e) => e === `commit ${A}`).length === 3);
  await unsettled(renew, 'the DHCPACK before the write is durable');
  disk.flush();
  assert.equal((await renew).outcome, 'ack');
});

test('a new lease (and an adopted static host) is committed only once durable', async () => {
  const disk = slowDisk();
  const w = world({}, undefined, disk.durable);
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  const offer = await cn2.peer.request('discover', { mac: A });
  cn1.seen.length = cn2.seen.length = 0;
  disk.hold();
  const ack = cn2.peer.request('request', { mac: A, ip: offer.binding.cell + 1, leaseTime: 600, state: 'selecting' });
  await until('the lease to be written to the registry', () => w.registry.binding(A)?.state === 'bound');
  await neverWithin('a commit before the lease is durable', () => cn1.seen.length + cn2.seen.length > 0, 50);
  await unsettled(ack, 'the DHCPACK before the lease is durable');
  disk.flush();
  assert.equal((await ack).outcome, 'ack');
  assert.deepEqual(cn2.seen, [`commit ${A}`]);
  // A static host at cn2 in cn1's pool: a new binding, two participants, nothing before the disk.
  disk.hold();
  const adopted = cn2.peer.request('seen', { mac: B, ip: ip('10.1.0.101'), via: 'arp', leaseTime: 600 });
  await until('the adoption to be written to the registry', () => w.registry.binding(B)?.state === 'bound');
  await neverWithin('a commit before the adoption is durable', () => [...cn1.seen, ...cn2.seen].includes(`commit ${B}`), 50);
  disk.flush();
  assert.equal((await adopted).outcome, 'moved');
  assert.ok(cn1.seen.includes(`commit ${B}`) && cn2.seen.includes(`commit ${B}`));
});

test('a move whose write never becomes durable is not acknowledged, though its commits went out', async () => {
  const disk = slowDisk();
  const w = world({}, undefined, disk.durable);
  const cn1 = await w.connect('cn1', 1, true);
  const cn2 = await w.connect('cn2', 2, true);
  await w.lease(cn1, A);
  disk.hold();
  const seen = cn2.peer.request('seen', { mac: A, via: 'assoc' });
  await until('the commits', () => cn2.seen.includes(`commit ${A}`));
  disk.fail('disk on fire');
  await assert.rejects(seen, /disk on fire/);
  assert.equal(w.service.handovers.stats.done, 1, 'only the lease counted as done');
  assert.equal(w.service.handovers.lockedStations, 0);
});

test("commits for one station reach each CN in transaction order (a move waits for the previous one's commits)", async () => {
  const w = world();
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const cn3 = await w.connect('cn3', 3, true);
    await w.lease(cn1, A);
    cn1.commits.length = cn2.commits.length = cn3.commits.length = 0;
    cn1.behave.commit = ['hang'];
    const first = cn2.peer.request('seen', { mac: A, via: 'assoc' });
    await until("the first move's commits", () => cn1.commits.length === 1 && cn2.commits.length === 1);
    const second = cn3.peer.request('seen', { mac: A, via: 'assoc' });
    await neverWithin("the second move's commits while the first's are unanswered", () => cn3.commits.length > 0, 50);
    w.release();
    assert.equal((await first).outcome, 'moved');
    assert.equal((await second).outcome, 'moved');
    assert.deepEqual(
      [cn1, cn2].map((cn) => cn.commits.map((c) => c.current?.name)),
      [
        ['cn2', 'cn3'],
        ['cn2', 'cn3'],
      ],
    );
    assert.equal(w.registry.binding(A)?.current, 'cn3');
  } finally {
    w.release();
  }
});

test("a move that is not probed: a failed commit (also the new CN's) leaves the registry as written and is reconciled", async () => {
  const w = world({ reconcileDelaysMs: [10, 10, 10], commitTimeoutMs: 300, deadlineMs: 300 });
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    await w.lease(cn1, A);
    cn1.commits.length = cn2.commits.length = 0;
    cn1.behave.commit = ['hang'];
    cn2.behave.commit = ['refuse'];
    const started = Date.now();
    const r = await cn2.peer.request('seen', { mac: A, via: 'assoc' });
    assert.equal(r.outcome, 'moved', 'the registry holds the move');
    assert.ok(Date.now() - started < 2000, 'a hung commit holds the lock at most its time-out');
    assert.equal(w.registry.binding(A)?.current, 'cn2');
    await until('both reconciled', () => w.service.handovers.stats.reconciled === 2);
    for (const cn of [cn1, cn2]) {
      assert.equal(cn.commits.length, 2);
      assert.equal(cn.commits[1]?.current?.name, 'cn2', "the reconcile carries the registry's binding");
    }
    assert.equal(w.service.handovers.stats.rolledBack, 0);
  } finally {
    w.release();
  }
});

const pages = (cn: StandIn) => cn.seen.filter((e) => e.startsWith('page'));

test('paging: a station lost at its CN is paged at every other CN until one reports it; that move skips the probe', async () => {
  const w = world({}, [0, 150, 5000]);
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const cn3 = await w.connect('cn3', 3, true);
    const host = await w.lease(cn1, A);
    cn1.probe.push('yes'); // were cn1 probed, it would (wrongly) say the station is still there
    const r = await cn1.peer.request('lost', { mac: A, ip: host, why: 'disassoc' });
    assert.deepEqual(r, { paging: 'yes' });
    await until('the first round at cn2 and cn3', () => pages(cn2).length === 1 && pages(cn3).length === 1);
    assert.deepEqual(pages(cn2), [`page ${A} ${host}`]);
    assert.equal(pages(cn1).length, 0, 'the CN that lost it is not paged');
    assert.deepEqual(await cn1.peer.request('lost', { mac: A, ip: host, why: 'unreachable' }), {
      paging: 'no',
      reason: 'already paging for it',
    });
    await until('the second round', () => pages(cn2).length === 2 && pages(cn3).length === 2);
    // The station answers cn3's page: cn3 reports it by its ARP, and the move skips the probe at cn1.
    const moved = await cn3.peer.request('seen', { mac: A, ip: host, via: 'arp' });
    assert.equal(moved.outcome, 'moved');
    assert.ok(!cn1.seen.some((e) => e.startsWith('probe')), 'cn1 said it lost the station: not probed');
    assert.equal(w.service.pager.stats.found, 1);
    assert.equal(w.service.pager.paging, 0, 'paging stopped');
    assert.ok(
      w.logs.some((l) => new RegExp(`${A} found at cn3 \\d+ ms after it was lost at cn1`).test(l)),
      w.logs.join('\n'),
    );
  } finally {
    w.service.stop();
  }
});

test('paging: refused for a station the reporter does not serve, at another address, or unknown; nothing is paged', async () => {
  const w = world({}, [0]);
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const host = await w.lease(cn1, A);
    const refusals = [
      await cn2.peer.request('lost', { mac: A, ip: host, why: 'disassoc' }),
      await cn1.peer.request('lost', { mac: A, ip: host + 4, why: 'disassoc' }),
      await cn1.peer.request('lost', { mac: B, ip: host, why: 'unreachable' }),
    ];
    assert.deepEqual(
      refusals.map((x) => x.paging),
      ['no', 'no', 'no'],
    );
    assert.match(refusals[0]?.reason ?? '', /not served by cn2/);
    assert.match(refusals[1]?.reason ?? '', /holds/);
    assert.match(refusals[2]?.reason ?? '', /no binding/);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(pages(cn1).length + pages(cn2).length, 0);
    assert.equal(w.service.pager.stats.refused, 3);
    // A refused report does not spare the reporter the presence check either.
    cn1.probe.push('no');
    await cn2.peer.request('seen', { mac: A, ip: host, via: 'arp' });
    assert.ok(cn1.seen.includes(`probe ${A} ${host}`));
  } finally {
    w.service.stop();
  }
});

test('paging: the rounds end after the last one when nobody finds the station; the next paging waits', async () => {
  const w = world({}, [0, 20, 40]);
  try {
    const cn1 = await w.connect('cn1', 1, true);
    const cn2 = await w.connect('cn2', 2, true);
    const host = await w.lease(cn1, A);
    await cn1.peer.request('lost', { mac: A, ip: host, why: 'unreachable' });
    await until('three rounds', () => pages(cn2).length === 3 && w.service.pager.paging === 0);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(pages(cn2).length, 3, 'no round after the last');
    assert.equal(w.registry.binding(A)?.current, 'cn1');
    // The next neighbour failure waits (5 s after one fruitless paging); a reported departure does not.
    const held = await cn1.peer.request('lost', { mac: A, ip: host, why: 'unreachable' });
    assert.equal(held.paging, 'no');
    assert.match(held.reason ?? '', /paged 1 time\(s\) without an answer; next paging in 5 s/);
    assert.deepEqual(await cn1.peer.request('lost', { mac: A, ip: host, why: 'disassoc' }), { paging: 'yes' });
    await until('three more rounds', () => pages(cn2).length === 6 && w.service.pager.paging === 0);
    // Found (it moves) and lost again: paging at once.
    await cn2.peer.request('seen', { mac: A, ip: host, via: 'assoc' });
    await cn1.peer.request('seen', { mac: A, ip: host, via: 'assoc' });
    assert.deepEqual(await cn1.peer.request('lost', { mac: A, ip: host, why: 'unreachable' }), { paging: 'yes' });
  } finally {
    w.service.stop();
  }
});

test('inline commit: a CN that announced it gets no commit for a move it alone takes part in, nor for its seen; the reply carries tx and binding', async () => {
  const w = world();
  const cn1 = await w.connect('cn1', 1, true, [FEATURES.inlineCommit, 'some-future-feature']);
  const cn2 = await w.connect('cn2', 2, true, [FEATURES.inlineCommit]);
  // A new client at its home CN: cn1 is the only participant.
  const offer = await cn1.peer.request('discover', { mac: A });
  const host = offer.binding.cell + 1;
  const ack = await cn1.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'selecting' });
  assert.equal(ack.outcome, 'ack');
  assert.ok(ack.tx !== undefined && ack.tx > 0, 'the reply carries the transaction');
  assert.deepEqual(ack.binding, value(w.registry.view(w.registry.binding(A)!)), 'and the binding as committed');
  assert.equal(ack.binding?.current?.name, 'cn1');
  assert.deepEqual([cn1.seen, cn2.seen], [[], []], 'no commit was sent');
  // A renewal at the same CN re-states the binding with a later transaction; no commit either.
  const renew = await cn1.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'renewing' });
  assert.ok(renew.tx !== undefined && renew.tx > ack.tx);
  assert.deepEqual([cn1.seen, cn2.seen], [[], []]);
  // A roam to cn2 by its `seen` has two participants: cn1 gets a commit, cn2's rides in the reply.
  const moved = await cn2.peer.request('seen', { mac: A, via: 'assoc' });
  assert.equal(moved.outcome, 'moved');
  assert.ok(moved.tx !== undefined && moved.tx > renew.tx);
  assert.equal(moved.binding?.current?.name, 'cn2');
  assert.deepEqual([cn1.seen, cn2.seen], [[`commit ${A}`], []]);
  await until('the move to end once its commit to cn1 is answered', () => w.service.handovers.stats.done === 2);
  // Home again while cn2 is offline: cn1 alone is told, in the reply (cn2 learns it when it binds).
  cn2.peer.close();
  await until('cn2 to be offline', () => !w.service.isOnline('cn2'));
  cn1.seen.length = 0;
  const home = await cn1.peer.request('seen', { mac: A, via: 'assoc' });
  assert.equal(home.outcome, 'moved');
  assert.equal(home.binding?.current?.name, 'cn1');
  assert.ok(home.tx !== undefined && home.tx > moved.tx);
  assert.deepEqual(cn1.seen, []);
  // A static host adopted at its home CN: the same.
  const adopted = await cn1.peer.request('seen', { mac: B, ip: ip('10.1.0.101'), via: 'arp', leaseTime: 600 });
  assert.equal(adopted.outcome, 'moved');
  assert.ok(adopted.tx !== undefined && adopted.tx > home.tx);
  assert.deepEqual(cn1.seen, []);
  // A release removes with a transaction later than every reply before.
  await cn1.peer.request('release', { mac: A, ip: host });
  assert.equal(cn1.removes.length, 1);
  assert.ok(cn1.removes[0]! > adopted.tx, 'the remove is ordered after the replies');
});

test("inline commit: a roam's seen reply goes out beside the other commits, before they are answered and before the disk; the lock waits for both", async () => {
  const disk = slowDisk();
  const w = world({}, undefined, disk.durable);
  try {
    const cn1 = await w.connect('cn1', 1, true, [FEATURES.inlineCommit]);
    const cn2 = await w.connect('cn2', 2, true, [FEATURES.inlineCommit]);
    const cn3 = await w.connect('cn3', 3, true, [FEATURES.inlineCommit]);
    const host = await w.lease(cn1, A);
    cn1.seen.length = 0;
    cn1.behave.commit = ['hang'];
    disk.hold();
    // cn2's seen: the reply (its commit) comes while cn1's commit hangs and the disk holds the write.
    const r = await cn2.peer.request('seen', { mac: A, via: 'assoc' });
    assert.equal(r.outcome, 'moved');
    assert.ok(r.tx !== undefined);
    assert.deepEqual(r.binding, value(w.registry.view(w.registry.binding(A)!)));
    assert.equal(r.binding?.current?.name, 'cn2');
    assert.deepEqual([cn1.seen, cn2.seen], [[`commit ${A}`], []], 'cn1 got its commit, cn2 none');
    assert.equal(w.service.handovers.lockedStations, 1, 'the station stays locked');
    assert.equal(w.service.outstandingWork, 1, 'and the move counts against the budget');
    // The next move of the station waits for that commit's answer and for the disk.
    const next = cn3.peer.request('seen', { mac: A, via: 'assoc' });
    await unsettled(next, 'the next move while the first commit hangs');
    w.release();
    await neverWithin('the first move to end before the disk', () => w.service.handovers.stats.done > 1, 30);
    await unsettled(next, 'the next move while the first is not durable');
    assert.deepEqual(cn3.seen, [], 'nothing of the next move went out');
    disk.flush();
    const r2 = await next;
    assert.equal(r2.outcome, 'moved');
    assert.ok(r2.tx !== undefined && r2.tx > r.tx, 'the next move is a later transaction');
    assert.deepEqual([cn1.seen, cn2.seen, cn3.seen], [[`commit ${A}`, `commit ${A}`], [`commit ${A}`], []]);
    await until('the lock to be free', () => w.service.handovers.lockedStations === 0);
    // A DHCP REQUEST at another CN (it may extend the lease) keeps its commit and waits for the disk.
    disk.hold();
    cn1.seen.length = cn2.seen.length = cn3.seen.length = 0;
    const ack = cn2.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'init-reboot' });
    await until("the DHCP move's commits", () => cn2.seen.includes(`commit ${A}`) && cn3.seen.includes(`commit ${A}`));
    await unsettled(ack, 'the DHCPACK before the disk');
    disk.flush();
    const acked = await ack;
    assert.equal(acked.outcome, 'ack');
    assert.equal(acked.tx, undefined, 'no commit in a DHCP reply when others are told');
    // The store fails after an early reply: the reply stands, the failure is logged, the lock is freed.
    disk.hold();
    const r3 = await cn1.peer.request('seen', { mac: A, via: 'assoc' });
    assert.equal(r3.outcome, 'moved');
    disk.fail('disk on fire');
    await until('the lock to be free', () => w.service.handovers.lockedStations === 0);
    assert.ok(w.logs.some((l) => l.includes('failed after its reply was sent: disk on fire')));
    assert.equal(w.service.outstandingWork, 0);
  } finally {
    w.service.stop();
  }
});

test('inline commit: a CN that did not announce it (an old CN) gets its commits and replies without tx, as before', async () => {
  const w = world();
  const old = await w.connect('cn1', 1, true);
  const offer = await old.peer.request('discover', { mac: A });
  const ack = await old.peer.request('request', { mac: A, ip: offer.binding.cell + 1, leaseTime: 600, state: 'selecting' });
  assert.equal(ack.outcome, 'ack');
  assert.equal(ack.tx, undefined);
  assert.deepEqual(old.seen, [`commit ${A}`]);
  const renew = await old.peer.request('request', { mac: A, ip: offer.binding.cell + 1, leaseTime: 600, state: 'renewing' });
  assert.equal(renew.tx, undefined);
  // Its removes carry a tx it does not know of; its codec drops the field, as every unknown field.
  await old.peer.request('release', { mac: A, ip: offer.binding.cell + 1 });
  assert.equal(old.removes.length, 1);
  const oldRemove = object({ binding: bindingCodec });
  const decoded = value(oldRemove.decode(encodeRequestBody('remove', { binding: old.commits[0]!, tx: 7 }), 'r'));
  assert.deepEqual(Object.keys(decoded), ['binding']);
});

test('inline commit: a CN that binds again on a new session while its REQUEST runs gets a commit on the new one', async () => {
  const disk = slowDisk();
  const w = world({}, undefined, disk.durable);
  const cn1 = await w.connect('cn1', 1, true, [FEATURES.inlineCommit]);
  const offer = await cn1.peer.request('discover', { mac: A });
  disk.hold();
  const ack = cn1.peer.request('request', { mac: A, ip: offer.binding.cell + 1, leaseTime: 600, state: 'selecting' });
  ack.catch(() => undefined);
  await until('the lease to wait for the disk', () => w.service.handovers.lockedStations === 1);
  cn1.peer.close(); // its reply cannot arrive on this session any more
  await until('cn1 to be offline', () => !w.service.isOnline('cn1'));
  const binding = w.connect('cn1', 1, true, [FEATURES.inlineCommit]);
  await until('cn1 to be bound again', () => w.service.isOnline('cn1'));
  disk.flush();
  const again = await binding;
  await until('a commit on the new session', () => again.seen.includes(`commit ${A}`));
  await assert.rejects(ack);
});
