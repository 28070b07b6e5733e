// SPDX-License-Identifier: GPL-2.0-only
// The MLR's behaviour end to end over in-process channels: binding, allocation, DHCP outcomes,
// handover transactions with their participants, offline participants, expiry.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { BindingView } from '../../src/core/binding.js';
import type { RequestBody } from '../../src/core/messages.js';
import { Registry } from '../../src/core/registry.js';
import { MlrService, type MlrServiceOptions } from '../../src/mlr/service.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { RpcError, RpcPeer, type MessageChannel } from '../../src/proto/rpc.js';
import { ip } from '../support/helpers.js';

interface FakeCn {
  peer: RpcPeer;
  events: string[];
  commits: BindingView[];
  failPrepare?: string;
}

function setup(now = { t: 1_000_000 }, extra: Partial<MlrServiceOptions> = {}) {
  const registry = new Registry(['ipip', 'gre', 'vxlan']);
  const logs: string[] = [];
  const service = new MlrService(registry, {
    networkName: 'campus',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    log: (_l, m) => logs.push(m),
    now: () => now.t,
    ...extra,
  });
  const connect = (name: string): FakeCn => {
    const [cnEnd, mlrEnd] = memoryChannelPair(name, 'mlr');
    service.attach(new RpcPeer(mlrEnd), '10.200.0.1');
    const cn: FakeCn = { peer: new RpcPeer(cnEnd), events: [], commits: [] };
    cn.peer.handle('prepare', (b) => {
      cn.events.push(`prepare ${b.binding.mac}`);
      if (cn.failPrepare) throw new RpcError('no', cn.failPrepare);
      return {};
    });
    cn.peer.handle('commit', (b) => {
      cn.events.push(`commit ${b.binding.mac} current=${b.binding.current?.name} tunnel=${b.binding.tunnel?.type ?? 'none'}`);
      cn.commits.push(b.binding);
      return {};
    });
    cn.peer.handle('abort', () => {
      cn.events.push('abort');
      return {};
    });
    cn.peer.handle('remove', (b) => {
      cn.events.push(`remove ${b.binding.mac}`);
      return {};
    });
    return cn;
  };
  return { registry, service, connect, logs, now };
}

function bindBody(
  name: string,
  addr: string,
  pool: string | null,
  tunnels: RequestBody<'bind'>['tunnels'] = ['vxlan'],
): RequestBody<'bind'> {
  return {
    network: 'campus',
    cn: { name, addr: ip(addr) },
    tunnels,
    pools: pool
      ? [{ network: ip(`${pool}.0`), prefix: 24, first: ip(`${pool}.0`), last: ip(`${pool}.255`), exclude: [ip(`${pool}.1`)] }]
      : [],
  };
}

const MS = '02:00:00:00:00:01';

/** cn1 (pool 10.1.0.0/24) and cn2 (pool 10.2.0.0/24), connected and bound in that order. */
async function twoCns(connect: (name: string) => FakeCn): Promise<{ cn1: FakeCn; cn2: FakeCn }> {
  const cn1 = connect('cn1');
  const cn2 = connect('cn2');
  await cn1.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await cn2.peer.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0'));
  return { cn1, cn2 };
}

/** MS takes 10.1.0.5 through `cn`: a DISCOVER, then a SELECTING REQUEST. */
async function lease(cn: FakeCn, leaseTime = 600): Promise<void> {
  await cn.peer.request('discover', { mac: MS });
  await cn.peer.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime, state: 'selecting' });
}

test('bind checks the network name and pool overlaps', async () => {
  const { connect } = setup();
  const a = connect('cn1');
  await assert.rejects(a.peer.request('bind', { ...bindBody('cn1', '10.200.0.11', '10.1.0'), network: 'other' }), /does not match/);
  await a.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  const b = connect('cn2');
  await assert.rejects(b.peer.request('bind', bindBody('cn2', '10.200.0.12', '10.1.0')), /overlaps/);
  await assert.rejects(b.peer.request('discover', { mac: MS }), /bind first/);
});

test('DHCP at home: offer from own pool, ACK commits locally without a tunnel', async () => {
  const { connect, registry } = setup();
  const cn1 = connect('cn1');
  await cn1.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  const offer = await cn1.peer.request('discover', { mac: MS });
  assert.equal(offer.binding.cell, ip('10.1.0.4'));
  assert.equal(offer.binding.state, 'offered');
  const again = await cn1.peer.request('discover', { mac: MS });
  assert.equal(again.binding.cell, ip('10.1.0.4'), 'a repeated DISCOVER gets the same cell');
  const ack = await cn1.peer.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
  assert.equal(ack.outcome, 'ack');
  assert.equal(ack.binding?.current?.name, 'cn1');
  assert.equal(ack.binding?.tunnel, undefined);
  // One participant (the parent serves its own new client, nobody withdraws): no prepare round trip.
  assert.deepEqual(cn1.events, [`commit ${MS} current=cn1 tunnel=none`]);
  assert.equal(registry.binding(MS)?.state, 'bound');
  const nak = await cn1.peer.request('request', { mac: MS, ip: ip('10.1.0.9'), leaseTime: 600, state: 'init-reboot' });
  assert.equal(nak.outcome, 'nak');
  const other = await cn1.peer.request('request', { mac: '02:00:00:00:00:02', ip: ip('10.1.0.5'), leaseTime: 600, state: 'init-reboot' });
  assert.equal(other.outcome, 'nak', 'a cell bound to another MAC is refused');
  const outside = await cn1.peer.request('request', {
    mac: '02:00:00:00:00:02',
    ip: ip('192.168.7.5'),
    leaseTime: 600,
    state: 'init-reboot',
  });
  assert.equal(outside.outcome, 'nak');
});

test('a roam moves the binding: parent tunnels, old CN withdraws, new CN serves; coming home drops the tunnel', async () => {
  const { connect } = setup();
  const cn1 = connect('cn1');
  const cn2 = connect('cn2');
  const cn3 = connect('cn3');
  await cn1.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await cn2.peer.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0'));
  await cn3.peer.request('bind', bindBody('cn3', '10.200.0.13', '10.3.0', ['gre', 'vxlan']));
  await lease(cn1);
  cn1.events.length = 0;

  const moved = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'ip' });
  assert.equal(moved.outcome, 'moved');
  assert.equal(moved.binding?.tunnel?.type, 'vxlan');
  assert.deepEqual(cn1.events, [`prepare ${MS}`, `commit ${MS} current=cn2 tunnel=vxlan`]);
  assert.deepEqual(cn2.events, [`prepare ${MS}`, `commit ${MS} current=cn2 tunnel=vxlan`]);
  const key = moved.binding?.tunnel?.key;

  const here = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'ip' });
  assert.equal(here.outcome, 'here');

  // cn2 -> cn3: cn1 (parent) reroutes, cn2 (previous) withdraws, cn3 serves; a new pair key.
  cn1.events.length = cn2.events.length = 0;
  const third = await cn3.peer.request('seen', { mac: MS, via: 'assoc' });
  assert.equal(third.outcome, 'moved');
  assert.ok(cn1.events.includes(`commit ${MS} current=cn3 tunnel=vxlan`));
  assert.ok(cn2.events.includes(`commit ${MS} current=cn3 tunnel=vxlan`));
  assert.notEqual(third.binding?.tunnel?.key, key);

  // Renewing at cn3 through DHCP is an ACK, not a NAK.
  const renew = await cn3.peer.request('request', { mac: MS, ip: ip('10.1.0.5'), leaseTime: 600, state: 'renewing' });
  assert.equal(renew.outcome, 'ack');

  const home = await cn1.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'arp' });
  assert.equal(home.outcome, 'moved');
  assert.equal(home.binding?.tunnel, undefined);
  assert.equal(home.binding?.current?.name, 'cn1');
});

test('a first appearance away from any own pool borrows a neighbour cell and tunnels it at once', async () => {
  const { connect } = setup();
  const core = connect('core');
  const ap = connect('ap');
  await core.peer.request('bind', bindBody('core', '10.200.0.2', '10.50.0'));
  await ap.peer.request('bind', bindBody('ap', '10.200.0.3', null));
  const offer = await ap.peer.request('discover', { mac: MS });
  assert.equal(offer.binding.parent.name, 'core');
  const ack = await ap.peer.request('request', { mac: MS, ip: ip('10.50.0.5'), leaseTime: 600, state: 'selecting' });
  assert.equal(ack.outcome, 'ack');
  assert.equal(ack.binding?.current?.name, 'ap');
  assert.equal(ack.binding?.tunnel?.type, 'vxlan');
  assert.ok(core.events.some((e) => e.startsWith('commit')));
});

test('a participant that fails to prepare aborts the move and nothing changes', async () => {
  const { connect, registry } = setup();
  const { cn1, cn2 } = await twoCns(connect);
  await lease(cn1);
  cn1.failPrepare = 'disk on fire';
  const r = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'ip' });
  assert.equal(r.outcome, 'refused');
  assert.match(r.reason ?? '', /disk on fire/);
  assert.equal(registry.binding(MS)?.current, 'cn1');
  assert.ok(cn2.events.includes('abort'));
});

test('an offline parent does not block the move; it re-learns the binding when it binds again', async () => {
  const { connect } = setup();
  const { cn1, cn2 } = await twoCns(connect);
  await lease(cn1);
  cn1.peer.close('crash');
  await new Promise((r) => setImmediate(r));
  const r = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.5'), via: 'ip' });
  assert.equal(r.outcome, 'moved');
  const again = connect('cn1');
  const bound = await again.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  assert.equal(bound.bindings.length, 1);
  assert.equal(bound.bindings[0]?.current?.name, 'cn2');
  assert.equal(bound.bindings[0]?.tunnel?.type, 'vxlan');
});

test('expired bindings are removed and their CNs told', async () => {
  const now = { t: 1_000_000 };
  const { connect, service, registry } = setup(now);
  const cn1 = connect('cn1');
  await cn1.peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await lease(cn1, 60);
  now.t += 60_000;
  assert.equal(await service.expire(), 0, 'still inside the grace period');
  now.t += 60_001;
  assert.equal(await service.expire(), 1);
  assert.equal(registry.binding(MS), undefined);
  assert.ok(cn1.events.includes(`remove ${MS}`));
});

test('a statically addressed host seen by ARP is adopted when its cell is free', async () => {
  const { connect, now } = setup();
  const { cn2 } = await twoCns(connect);
  const r = await cn2.peer.request('seen', { mac: MS, ip: ip('10.1.0.101'), via: 'arp', leaseTime: 600 });
  assert.equal(r.outcome, 'moved');
  assert.equal(r.binding?.expires, now.t + 600_000 + 60_000, 'held for the CN lease time plus grace');
  assert.equal(r.binding?.cell, ip('10.1.0.100'));
  assert.equal(r.binding?.parent.name, 'cn1');
  const unknown = await cn2.peer.request('seen', { mac: '02:00:00:00:00:09', ip: ip('172.16.0.9'), via: 'arp' });
  assert.equal(unknown.outcome, 'unknown');
});

test('a channel whose transport vouches for a CN (its MQTT topic) binds only as that CN', async () => {
  const { service, registry } = setup();
  const [cnEnd, mlrEnd] = memoryChannelPair('cn-x', 'mlr');
  const vouched: MessageChannel = {
    peer: 'mqtt:cn1',
    transportIdentity: 'cn1',
    send: (p, m) => mlrEnd.send(p, m),
    onMessage: (r) => mlrEnd.onMessage(r),
    onClose: (r) => mlrEnd.onClose(r),
    close: (r) => mlrEnd.close(r),
  };
  service.attach(new RpcPeer(vouched), undefined);
  const cn = new RpcPeer(cnEnd);
  await assert.rejects(cn.request('bind', bindBody('cn2', '10.200.0.12', '10.2.0')), /belongs to "cn1" and cannot bind as "cn2"/);
  assert.equal(registry.cn('cn2'), undefined, 'nothing registered');
  await cn.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  assert.ok(service.isOnline('cn1'));
});

const host = (b: { binding: BindingView }) => formatCell(b.binding.cell + 1);
function formatCell(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

test('DHCPDECLINE quarantines the cell; it never removes a bound binding; the decliner restarting gets another cell', async () => {
  const now = { t: 1_000_000 };
  const { connect, registry, service } = setup(now, { declineQuarantineMs: 600_000 });
  const { cn1, cn2 } = await twoCns(connect);
  await lease(cn1);
  assert.equal(registry.binding(MS)?.state, 'bound');
  // Only the serving CN may pass a decline on; a decline of another address changes nothing.
  await assert.rejects(cn2.peer.request('release', { mac: MS, ip: ip('10.1.0.5'), decline: 'yes' }), /not served by 'cn2'/);
  await cn1.peer.request('release', { mac: MS, ip: ip('10.1.0.9'), decline: 'yes' });
  assert.equal(registry.quarantinedCount(now.t), 0);
  // The serving CN passes it on: the cell is quarantined, the bound binding stays where it is.
  await cn1.peer.request('release', { mac: MS, ip: ip('10.1.0.5'), decline: 'yes' });
  assert.equal(registry.quarantinedCount(now.t), 1);
  assert.equal(registry.binding(MS)?.state, 'bound');
  assert.equal(registry.binding(MS)?.current, 'cn1');
  assert.ok(!cn1.events.includes(`remove ${MS}`), 'nobody is told to remove it');
  // The decliner restarts with a DISCOVER (RFC 2131 §3.1.5): its binding is replaced by another cell.
  const b = '02:00:00:00:00:0b';
  assert.equal(host(await cn1.peer.request('discover', { mac: b })), '10.1.0.9');
  assert.equal(host(await cn1.peer.request('discover', { mac: MS })), '10.1.0.13');
  assert.ok(cn1.events.includes(`remove ${MS}`), "the old binding is gone, at the decliner's own request");
  // Nobody gets the declined cell during the quarantine: not by DISCOVER, REQUEST, nor ARP adoption.
  const c = '02:00:00:00:00:0c';
  assert.equal(host(await cn1.peer.request('discover', { mac: c, requested: ip('10.1.0.5') })), '10.1.0.17');
  const d = '02:00:00:00:00:0d';
  const nak = await cn1.peer.request('request', { mac: d, ip: ip('10.1.0.5'), leaseTime: 600, state: 'init-reboot' });
  assert.equal(nak.outcome, 'nak');
  assert.match(nak.reason ?? '', /quarantined/);
  const seen = await cn1.peer.request('seen', { mac: d, ip: ip('10.1.0.5'), via: 'arp', leaseTime: 600 });
  assert.equal(seen.outcome, 'unknown');
  assert.equal(registry.bindingAtCell(ip('10.1.0.4')), undefined);
  // After the quarantine (and the offers' hold) the cell is handed out again.
  now.t += 600_001;
  await service.expire();
  assert.equal(registry.quarantinedCount(now.t), 0);
  assert.equal(host(await cn1.peer.request('discover', { mac: d })), '10.1.0.5');
});

test("a DHCPDECLINE of an offer drops the decliner's offer, from the CN it was offered through only", async () => {
  const now = { t: 1_000_000 };
  const { connect, registry } = setup(now);
  const { cn1, cn2 } = await twoCns(connect);
  assert.equal(host(await cn1.peer.request('discover', { mac: MS })), '10.1.0.5');
  await assert.rejects(cn2.peer.request('release', { mac: MS, ip: ip('10.1.0.5'), decline: 'yes' }), /not served by 'cn2'/);
  assert.equal(registry.binding(MS)?.state, 'offered');
  await assert.rejects(cn1.peer.request('release', { mac: MS, ip: ip('10.1.0.5') }), /not served by 'cn1'/, 'an offer is not released');
  await cn1.peer.request('release', { mac: MS, ip: ip('10.1.0.5'), decline: 'yes' });
  assert.equal(registry.binding(MS), undefined);
  assert.equal(host(await cn1.peer.request('discover', { mac: MS })), '10.1.0.9', 'the default quarantine (600 s) holds');
  now.t += 599_000;
  assert.equal(host(await cn1.peer.request('discover', { mac: '02:00:00:00:00:0e' })), '10.1.0.13');
  now.t += 1_001;
  assert.equal(host(await cn1.peer.request('discover', { mac: '02:00:00:00:00:0f' })), '10.1.0.5');
});

test('max_offers: a CN holds at most that many offers; they lapse after offer_hold; a REQUEST frees its offer', async () => {
  const now = { t: 1_000_000 };
  const { connect, registry, service } = setup(now, { maxOffersPerCn: 3 });
  const { cn1, cn2 } = await twoCns(connect);
  const mac = (i: number) => `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;
  for (let i = 0; i < 3; i++) await cn1.peer.request('discover', { mac: mac(i) });
  await assert.rejects(cn1.peer.request('discover', { mac: mac(3) }), /offer_hold 60 s/);
  assert.equal(registry.binding(mac(3)), undefined);
  assert.equal(service.offersVia('cn1'), 3);
  // An existing offer is renewed, not counted twice; another CN has its own budget.
  await cn1.peer.request('discover', { mac: mac(0) });
  await cn2.peer.request('discover', { mac: mac(10) });
  // A REQUEST turns an offer into a binding: the slot is free again.
  const r = await cn1.peer.request('request', { mac: mac(1), ip: ip('10.1.0.9'), leaseTime: 600, state: 'selecting' });
  assert.equal(r.outcome, 'ack');
  assert.equal(host(await cn1.peer.request('discover', { mac: mac(3) })), '10.1.0.17');
  await assert.rejects(cn1.peer.request('discover', { mac: mac(4) }), /max_offers 3/);
  now.t += 60_001;
  assert.equal(await service.expire(), 4, 'the standing offers (three of cn1, one of cn2) lapse');
  assert.equal(service.offersVia('cn1'), 0);
  await cn1.peer.request('discover', { mac: mac(4) });
  assert.equal(registry.binding(mac(1))?.state, 'bound');
});

test('the register keeps at most maxCns CNs: a new name beyond that is refused, a known one binds again', async () => {
  const { connect, registry, logs } = setup(undefined, { maxCns: 2 });
  await connect('cn1').peer.request('bind', bindBody('cn1', '10.200.0.11', '10.1.0'));
  await connect('cn2').peer.request('bind', bindBody('cn2', '10.200.0.12', null));
  await assert.rejects(connect('cn3').peer.request('bind', bindBody('cn3', '10.200.0.13', null)), /knows 2 CNs already/);
  assert.deepEqual(
    registry.allCns().map((c) => c.name),
    ['cn1', 'cn2'],
  );
  assert.ok(logs.some((l) => l.includes("refused bind as 'cn3'")));
  await connect('cn2').peer.request('bind', bindBody('cn2', '10.200.0.12', null));
});
