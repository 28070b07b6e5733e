// SPDX-License-Identifier: GPL-2.0-only
// Two CN daemons and an MLR in one process, on fakes (FakeNetOps kernels, FakeLinkIO captures,
// in-memory channels): DHCP gives a /30, ARP/IP activity in the other cell moves the binding, the
// kernels of both CNs follow, a renew at the new CN is ACKed, and hostile frames change nothing.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { CnConfig } from '../../src/core/config.js';
import { formatIPv4, macToBytes, parseIPv4, type Mac } from '../../src/core/ip.js';
import { Registry } from '../../src/core/registry.js';
import { CnDaemon } from '../../src/cn/daemon.js';
import type { CnHandover } from '../../src/cn/handover.js';
import { desiredDataplane, emptyDataplane, planDataplane, type DataplaneOp } from '../../src/core/dataplane.js';
import { MlrService, type MlrServiceOptions } from '../../src/mlr/service.js';
import { FakeLinkIO } from '../../src/platform/fake-linkio.js';
import { FakeNetOps } from '../../src/platform/fake-netops.js';
import { FakeUbus } from '../../src/platform/fake-ubus.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { DHCP_MESSAGE, decodeDhcp } from '../../src/proto/dhcp.js';
import { DHCP_IN_FLIGHT } from '../../src/cn/dhcp-server.js';
import { ARP_OP, buildArp, buildUdpFrame, classifyFrame, encodeEthernet, encodeIPv4Udp } from '../../src/proto/packet.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import { until, value } from '../support/helpers.js';

const ip = (s: string) => (parseIPv4(s) as { value: number }).value;
const MS: Mac = '02:aa:00:00:00:01';

function cnConfig(name: string): CnConfig {
  return {
    networkName: 'lab',
    cnName: name,
    mlr: { scheme: 'tcp', host: 'mlr', port: 6554 },
    tls: {},
    mqttUsername: name,
    cnIf: 'bb0',
    mobileIf: 'wl0',
    pools: [{ source: { kind: 'interface', ifname: 'wl0' }, first: null, last: null, text: 'wl0 * *' }],
    dnsServers: [ip('10.200.0.10')],
    domain: 'lab',
    leaseTime: 600,
    tunnelPrefix: 'tm',
    tunnelTypes: ['ipip', 'gre', 'vxlan'],
    mssClamp: true,
    debugLevel: 0,
    hostapd: false,
    requireAssociation: true,
    newStationRate: 20,
    enabled: true,
    warnings: [],
  };
}

/** CN `n`'s backbone interface bb0 (10.200.0.1n/24). */
const backboneIf = (n: number) => ({
  ifname: 'bb0',
  mac: `02:bb:00:00:00:0${n}`,
  mtu: 1500,
  up: true,
  addresses: [{ ip: ip(`10.200.0.1${n}`), prefix: 24, label: 'bb0' }],
});
/** CN `n`'s mobile interface wl0 (10.n.0.1/24, its pool). */
const mobileIf = (n: number) => ({
  ifname: 'wl0',
  mac: `02:cc:00:00:00:0${n}`,
  mtu: 1500,
  up: true,
  addresses: [{ ip: ip(`10.${n}.0.1`), prefix: 24, label: 'wl0' }],
});

/** A DHCP client message as a client would send it, wrapped in a broadcast Ethernet/IPv4/UDP frame. */
function clientDhcp(
  type: number,
  opts: { ciaddr?: string; requested?: string; serverId?: string; xid?: number; mac?: Mac; src?: Mac } = {},
): Buffer {
  const mac = opts.mac ?? MS;
  const b = Buffer.alloc(300);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1;
  b[2] = 6;
  b.writeUInt32BE(opts.xid ?? 0x1234, 4);
  if (opts.ciaddr) b.writeUInt32BE(ip(opts.ciaddr), 12);
  Buffer.from(macToBytes(mac)).copy(b, 28);
  b.writeUInt32BE(0x63825363, 236);
  let o = 240;
  const opt = (code: number, data: number[]) => {
    b[o++] = code;
    b[o++] = data.length;
    for (const d of data) b[o++] = d;
  };
  const ipBytes = (s: string) => s.split('.').map(Number);
  opt(53, [type]);
  if (opts.requested) opt(50, ipBytes(opts.requested));
  if (opts.serverId) opt(54, ipBytes(opts.serverId));
  b[o++] = 255;
  return buildUdpFrame({
    srcMac: opts.src ?? mac,
    dstMac: 'ff:ff:ff:ff:ff:ff',
    srcIp: opts.ciaddr ? ip(opts.ciaddr) : 0,
    dstIp: 0xffffffff,
    srcPort: 68,
    dstPort: 67,
    payload: b,
  });
}

/** The CN's handover counters, as `ubus call tmip status` shows them. */
function handoverStats(d: CnDaemon): CnHandover['stats'] {
  return d.status()['handover'] as CnHandover['stats'];
}

/**
 * What a fake kernel holds, read back as a data-plane state, and the plan that would still be needed
 * to make it match what the MLR's registry says involves `cn`: empty when the CN has converged.
 */
function remainingPlan(service: MlrService, cn: string, n: number, net: FakeNetOps): DataplaneOp[] {
  const have = emptyDataplane();
  for (const a of net.interfaces.get('wl0')!.addresses) if (a.label === 'wl0:tm' && a.prefix === 30) have.gateways.add(a.ip);
  for (const [name, t] of net.tunnels)
    have.tunnels.set(name, { name, type: t.type, local: t.local, remote: t.remote, key: t.key, mtu: t.mtu });
  for (const [host, dev] of net.routes) have.routes.set(host, dev);
  for (const h of net.clamps.get('tmip_tm')?.hosts ?? []) have.clamped.add(h);
  const views = service.registry.involving(cn).map((b) => value(service.registry.view(b)));
  const want = desiredDataplane(views, { self: cn, selfAddr: ip(`10.200.0.1${n}`), tunnelPrefix: 'tm', underlayMtu: 1500 });
  return planDataplane(have, want);
}

/**
 * A DISCOVER from `mac` as a marker through the CN's one ordered MLR channel, sent again every ~200 ms
 * as a client would (a DISCOVER may be shed under load, and DHCP is not retried for it). Once its
 * OFFER is out, whatever the frames before it caused has happened.
 */
async function markerOffer(link: FakeLinkIO, mac: Mac): Promise<void> {
  const discover = clientDhcp(DHCP_MESSAGE.DISCOVER, { mac });
  let polls = 0;
  await until(
    'the marker OFFER',
    () => {
      if (polls++ % 40 === 0) link.deliver(discover);
      return replies(link).some((r) => r.dhcp?.chaddr === mac);
    },
    5000,
  );
}

function replies(link: FakeLinkIO) {
  return link.takeSent().map((f) => {
    const c = classifyFrame(f);
    assert.ok(c.ok);
    if (c.value.kind !== 'ipv4' && c.value.kind !== 'dhcp') return { kind: c.value.kind, dhcp: undefined };
    const d = decodeDhcp(c.value.ip.payload.subarray(8));
    return { kind: 'dhcp-reply', dhcp: d.ok ? d.value : undefined };
  });
}

interface WorldOptions {
  service?: Partial<MlrServiceOptions>;
  cfg?: Partial<CnConfig>;
  /** A clock shared by the MLR and both CNs' guards. */
  clock?: { t: number };
  /** Every CN log line, per CN. */
  logs?: Record<'cn1' | 'cn2', string[]>;
  /** How often the CNs check their mobile interface's index (default: never). */
  mobileCheckMs?: number;
}

async function world(ubus: Partial<Record<'cn1' | 'cn2', FakeUbus>> = {}, o: WorldOptions = {}) {
  const clock = o.clock;
  const service = new MlrService(new Registry(['ipip', 'gre', 'vxlan']), {
    networkName: 'lab',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    log: () => {},
    // The MLR and both CNs share this process's event loop, which the tests' floods make late: that is
    // no MLR overload (mlr-backpressure.test.ts tests the lag bound).
    maxLagMs: Infinity,
    ...(clock ? { now: () => clock.t } : {}),
    ...o.service,
  });
  const make = async (name: 'cn1' | 'cn2', n: number) => {
    const net = new FakeNetOps();
    net.supported = ['vxlan'];
    net.addInterface(backboneIf(n));
    net.addInterface(mobileIf(n));
    const link = new FakeLinkIO('wl0', `02:cc:00:00:00:0${n}`);
    /** Every capture opened: `link` first, then one per re-open, on the MAC the CN asked for. */
    const links: FakeLinkIO[] = [];
    const port = ubus[name];
    const daemon = new CnDaemon(
      { ...cnConfig(name), hostapd: port !== undefined, ...o.cfg },
      {
        net,
        ...(port ? { openUbus: async () => port } : {}),
        openLink: (ifname, _program, mac) => {
          const opened = links.length === 0 ? link : new FakeLinkIO(ifname, mac);
          links.push(opened);
          return { ok: true, value: opened };
        },
        mobileCheckMs: o.mobileCheckMs ?? 0,
        connect: async () => {
          const [cnEnd, mlrEnd] = memoryChannelPair(name, 'mlr');
          service.attach(new RpcPeer(mlrEnd), `10.200.0.1${n}`);
          return cnEnd;
        },
        log: (l, m) => {
          o.logs?.[name].push(m);
          if (process.env.TMIP_TEST_LOG) console.error(`${name} [${l}] ${m}`);
        },
        ...(clock ? { now: () => clock.t } : {}),
      },
    );
    await daemon.start();
    return { net, link, links, daemon };
  };
  const cn1 = await make('cn1', 1);
  const cn2 = await make('cn2', 2);
  return { service, cn1, cn2, stop: () => [cn1, cn2].forEach((c) => c.daemon.stop()) };
}

test('DHCP in cell 1, a roam to cell 2 detected from IP activity, renew at the new CN', async () => {
  const w = await world({}, { cfg: { tunnelLinger: 0 } }); // tunnels go as soon as no client needs them
  try {
    const { cn1, cn2 } = w;
    assert.equal(cn1.net.sysctls.get('net.ipv4.ip_forward'), '1');

    cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DISCOVER));
    await until('an OFFER', () => cn1.link.sent.length > 0);
    const [offer] = replies(cn1.link);
    assert.equal(offer?.dhcp?.messageType, DHCP_MESSAGE.OFFER);
    assert.equal(formatIPv4(offer.dhcp.yiaddr), '10.1.0.5');
    assert.equal(formatIPv4(offer.dhcp.serverId!), '10.1.0.6');

    cn1.link.deliver(clientDhcp(DHCP_MESSAGE.REQUEST, { requested: '10.1.0.5', serverId: '10.1.0.6' }));
    await until('an ACK', () => cn1.link.sent.some((f) => f.length > 300));
    const ack = replies(cn1.link).find((r) => r.dhcp);
    assert.equal(ack?.dhcp?.messageType, DHCP_MESSAGE.ACK);
    assert.ok(
      cn1.net.interfaces.get('wl0')!.addresses.some((a) => formatIPv4(a.ip) === '10.1.0.6' && a.prefix === 30 && a.label === 'wl0:tm'),
    );

    // The MS, now in cell 2, still sends to CN1's MAC: CN2's capture sees it.
    cn2.link.deliver(trafficToOldGateway());
    await until('CN2 to take the gateway', () => cn2.net.interfaces.get('wl0')!.addresses.some((a) => formatIPv4(a.ip) === '10.1.0.6'));
    await until('CN1 to withdraw', () => !cn1.net.interfaces.get('wl0')!.addresses.some((a) => formatIPv4(a.ip) === '10.1.0.6'));
    assert.equal(cn1.net.routes.get(ip('10.1.0.5')), 'tm1', 'parent routes the host into the tunnel');
    assert.equal(cn1.net.tunnels.get('tm1')?.type, 'vxlan');
    assert.equal(formatIPv4(cn2.net.tunnels.get('tm1')!.remote), '10.200.0.11');
    const announced = replies(cn2.link).filter((r) => r.kind === 'arp');
    assert.ok(announced.length >= 2, 'gratuitous ARP and a unicast ARP reply for the gateway');

    cn2.link.deliver(clientDhcp(DHCP_MESSAGE.REQUEST, { ciaddr: '10.1.0.5' }));
    await until('a renew ACK', () => cn2.link.sent.some((f) => f.length > 300));
    const renew = replies(cn2.link).find((r) => r.dhcp);
    assert.equal(renew?.dhcp?.messageType, DHCP_MESSAGE.ACK);
    assert.equal(formatIPv4(renew.dhcp.yiaddr), '10.1.0.5');

    // Home again, via ARP this time: the tunnel goes on both sides.
    cn1.link.deliver(msArpRequest('10.1.0.5', '10.1.0.6'));
    await until('tunnels to go', () => cn1.net.tunnels.size === 0 && cn2.net.tunnels.size === 0);
    assert.equal(cn1.net.routes.size, 0);
  } finally {
    w.stop();
  }
});

test('a commit that fails on the parent after the registry write converges: both kernels match the registry', async () => {
  const w = await world();
  try {
    const { cn1, cn2 } = w;
    await leaseAtCn1(w);
    // The parent's kernel refuses the tunnel twice (created ahead at prepare, then at commit): its
    // commit fails after the MLR stored the move.
    cn1.net.failNext('ensureTunnel', 'RTNETLINK answers: No buffer space available');
    cn1.net.failNext('ensureTunnel', 'RTNETLINK answers: No buffer space available');
    cn2.link.deliver(trafficToOldGateway());
    await until('the registry to hold the move', () => w.service.registry.binding(MS)?.current === 'cn2');
    await until('the failed ensureTunnels', () => cn1.net.callsOf('ensureTunnel').length >= 2);
    await until('the MLR to reconcile CN1', () => w.service.handovers.stats.reconciled >= 1, 5000);
    assert.deepEqual(remainingPlan(w.service, 'cn1', 1, cn1.net), [], 'CN1 (parent) holds what the registry says');
    assert.deepEqual(remainingPlan(w.service, 'cn2', 2, cn2.net), [], 'CN2 (current) holds what the registry says');
    assert.equal(cn1.net.routes.get(ip('10.1.0.5')), 'tm1', 'the host is routed into the tunnel after all');
  } finally {
    w.stop();
  }
});

test('hostile frames on the mobile interface change nothing and crash nothing', async () => {
  const w = await world();
  try {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const good = clientDhcp(DHCP_MESSAGE.DISCOVER);
    for (let i = 0; i < 2000; i++) {
      const f = Buffer.from(good.subarray(0, rnd() * 2));
      for (let j = 0; j < 4; j++) if (f.length) f[rnd() % f.length] = rnd();
      w.cn1.link.deliver(f);
    }
    w.cn1.link.deliver(Buffer.alloc(0));
    // A well-formed DISCOVER from another MAC, answered only after every earlier MLR request (one
    // ordered channel): once its OFFER is out, whatever the hostile frames caused has happened.
    w.cn1.link.takeSent();
    await markerOffer(w.cn1.link, '02:aa:00:00:00:99');
    assert.equal(w.service.registry.allBindings().filter((b) => b.state === 'bound').length, 0);
    assert.equal(w.cn1.net.interfaces.get('wl0')!.addresses.length, 1);
  } finally {
    w.stop();
  }
});

test('with hostapd: an association moves the station before it sends anything; an unassociated MAC is ignored', async () => {
  const ubus1 = new FakeUbus();
  const ubus2 = new FakeUbus();
  const clients: Record<string, unknown> = {};
  ubus1.publish('hostapd.wl0', { get_clients: () => ({ freq: 2412, clients: { [MS]: { authorized: true } } }) });
  ubus2.publish('hostapd.wl0', { get_clients: () => ({ freq: 2412, clients }) });
  ubus2.publish('network.device');
  const w = await world({ cn1: ubus1, cn2: ubus2 });
  try {
    const { cn2 } = w;
    await leaseAtCn1(w);

    // Not associated at CN2: its ARP and DHCP there move nothing.
    const before = cn2.link.sent.length;
    cn2.link.deliver(msArpRequest('10.1.0.5', '10.1.0.6'));
    cn2.link.deliver(clientDhcp(DHCP_MESSAGE.REQUEST, { ciaddr: '10.1.0.5' }));
    await until('CN2 to refuse both frames', () => handoverStats(cn2.daemon).refused >= 2);
    assert.equal(handoverStats(cn2.daemon).reports, 0, 'nothing was reported to the MLR');
    assert.equal(w.service.registry.binding(MS)?.current, 'cn1', 'a MAC that never associated here is not moved');
    assert.equal(cn2.link.sent.length, before, 'and gets no DHCP answer');

    // hostapd announces the association: the move happens with no frame from the station.
    assert.equal(ubus2.notify('hostapd.wl0', 'assoc', { address: MS, freq: 2412, signal: -40 }), 1, 'the CN subscribed to hostapd.wl0');
    await until('the move to CN2', () => w.service.registry.binding(MS)?.current === 'cn2');
    await until('CN2 gateway', () => cn2.net.interfaces.get('wl0')!.addresses.some((a) => formatIPv4(a.ip) === '10.1.0.6'));

    // WDS stations are links, never moved; a BSS that appears later is watched too.
    ubus2.publish('hostapd.wl1', { get_clients: () => ({ clients: { '02:00:00:00:99:01': { wds: true } } }) });
    await until('hostapd.wl1 watched', () => ubus2.notify('hostapd.wl1', 'probe', {}) === 1);
    await until('the WDS station to be known as a link', () => cn2.daemon.associations.isWds('02:00:00:00:99:01'));
    const reports = handoverStats(cn2.daemon).reports;
    // FakeUbus delivers notifications synchronously: the watcher has decided when notify() returns.
    assert.equal(ubus2.notify('hostapd.wl1', 'assoc', { address: '02:00:00:00:99:01' }), 1);
    assert.equal(handoverStats(cn2.daemon).reports, reports, 'its association reported nothing');
    assert.equal(w.service.registry.binding('02:00:00:00:99:01'), undefined);

    const status = (await ubus2.call('tmip', 'status', {})) as { hostapd: { bss: string[] }; mlr: { connected: boolean } };
    assert.deepEqual(status.hostapd.bss.sort(), ['wl0', 'wl1']);
    assert.equal(status.mlr.connected, true);
    const list = (await ubus2.call('tmip', 'clients', {})) as { clients: { mac: string; here: boolean; ip: string }[] };
    assert.deepEqual(
      list.clients.map((c) => [c.mac, c.ip, c.here]),
      [[MS, '10.1.0.5', true]],
    );
    const tunnels = (await ubus1.call('tmip', 'tunnels', {})) as { tunnels: { type: string; peer: string }[] };
    assert.deepEqual(
      tunnels.tunnels.map((t) => [t.type, t.peer]),
      [['vxlan', '10.200.0.12']],
    );
    assert.deepEqual(
      ((await ubus1.call('tmip', 'peers', {})) as { peers: { name: string }[] }).peers.map((p) => p.name),
      ['cn2'],
    );
  } finally {
    w.stop();
  }
});

/** The CN's guard counters, as `ubus call tmip status` shows them. */
function guardStats(d: CnDaemon): Record<string, number> {
  return d.status()['guard'] as Record<string, number>;
}

test("forged DHCPRELEASE and DHCPDECLINE change nothing; the station's own RELEASE in its cell works", async () => {
  const logs = { cn1: [] as string[], cn2: [] as string[] };
  const w = await world({}, { logs });
  try {
    const { cn1, cn2 } = w;
    await leaseAtCn1(w);
    const attacker: Mac = '02:ee:00:00:00:01';
    const gateway = () => cn1.net.interfaces.get('wl0')!.addresses.some((a) => formatIPv4(a.ip) === '10.1.0.6');
    // The attacker's own source MAC, chaddr the victim's: in the victim's cell.
    cn1.link.deliver(clientDhcp(DHCP_MESSAGE.RELEASE, { ciaddr: '10.1.0.5', serverId: '10.1.0.6', src: attacker }));
    for (let i = 0; i < 1000; i++) cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DECLINE, { requested: '10.1.0.5', src: attacker, xid: i }));
    // The victim's MAC spoofed from the other cell, where it is not served.
    cn2.link.deliver(clientDhcp(DHCP_MESSAGE.RELEASE, { ciaddr: '10.1.0.5', serverId: '10.1.0.6' }));
    cn2.link.deliver(clientDhcp(DHCP_MESSAGE.DECLINE, { requested: '10.1.0.5' }));
    assert.deepEqual({ r1: guardStats(cn1.daemon).release_ignored, d1: guardStats(cn1.daemon).decline_ignored }, { r1: 1, d1: 1000 });
    assert.deepEqual({ r2: guardStats(cn2.daemon).release_ignored, d2: guardStats(cn2.daemon).decline_ignored }, { r2: 1, d2: 1 });
    // A marker through the same MLR channel: whatever the frames caused has happened once it is answered.
    await markerOffer(cn1.link, '02:aa:00:00:00:98');
    assert.equal(w.service.registry.binding(MS)?.state, 'bound');
    assert.equal(w.service.registry.binding(MS)?.current, 'cn1');
    assert.ok(gateway(), 'the victim keeps its gateway');
    assert.equal(w.service.registry.quarantinedCount(Date.now()), 0, 'no forged decline quarantined anything');
    const ignoredLines = logs.cn1.filter((l) => /^ignoring DHCP(RELEASE|DECLINE)/.test(l)).length;
    assert.ok(ignoredLines <= 6, `at most 3 lines per kind in the interval (${ignoredLines})`);
    // The station itself, in its cell: the release takes effect.
    cn1.link.deliver(clientDhcp(DHCP_MESSAGE.RELEASE, { ciaddr: '10.1.0.5', serverId: '10.1.0.6' }));
    await until('the binding to go', () => w.service.registry.binding(MS) === undefined);
    await until('the gateway to go', () => !gateway());
  } finally {
    w.stop();
  }
});

test('with hostapd: a RELEASE from a station that left this AP is ignored, even from its own MAC', async () => {
  const ubus1 = new FakeUbus();
  ubus1.publish('hostapd.wl0', { get_clients: () => ({ freq: 2412, clients: { [MS]: { authorized: true } } }) });
  const w = await world({ cn1: ubus1 });
  try {
    await leaseAtCn1(w);
    assert.equal(ubus1.notify('hostapd.wl0', 'disassoc', { address: MS }), 1);
    w.cn1.link.deliver(clientDhcp(DHCP_MESSAGE.RELEASE, { ciaddr: '10.1.0.5', serverId: '10.1.0.6' }));
    w.cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DECLINE, { requested: '10.1.0.5' }));
    assert.equal(guardStats(w.cn1.daemon).release_ignored, 1);
    assert.equal(guardStats(w.cn1.daemon).decline_ignored, 1);
    // A DISCOVER from a MAC that never associated here is not answered: no cell is offered to it.
    w.cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DISCOVER, { mac: '02:aa:00:00:00:55' }));
    assert.equal(guardStats(w.cn1.daemon).unassociated, 1);
    // It associates again: now its own RELEASE works.
    ubus1.notify('hostapd.wl0', 'assoc', { address: MS });
    w.cn1.link.deliver(clientDhcp(DHCP_MESSAGE.RELEASE, { ciaddr: '10.1.0.5', serverId: '10.1.0.6' }));
    await until('the binding to go', () => w.service.registry.binding(MS) === undefined);
    assert.equal(w.service.registry.binding('02:aa:00:00:00:55'), undefined);
  } finally {
    w.stop();
  }
});

test('a DISCOVER flood from random MACs is capped by new_station_rate and max_offers; a new client gets a lease after it', async () => {
  const clock = { t: 1_000_000 };
  const logs = { cn1: [] as string[], cn2: [] as string[] };
  const w = await world({}, { clock, logs, cfg: { newStationRate: 20 }, service: { maxOffersPerCn: 8 } });
  try {
    const { cn1 } = w;
    const dhcp = () => cn1.daemon.status()['dhcp'] as { offer: number; refused: number; shed: number };
    const macOf = (i: number) =>
      `02:f0:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const rss = process.memoryUsage().rss;
    const startLines = logs.cn1.length;
    for (let i = 0; i < 10_000; i++) cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DISCOVER, { mac: macOf(i), xid: i }));
    // The burst (twice the rate) is admitted; of those, DHCP_IN_FLIGHT.discover go to the MLR at once
    // (the rest are shed: their clients retransmit), max_offers get an offer, the MLR refuses the rest.
    const asked = DHCP_IN_FLIGHT.discover;
    assert.equal(guardStats(cn1.daemon).new_station_dropped, 10_000 - 40);
    assert.equal(dhcp().shed, 40 - asked);
    await until(`the ${asked} asked to be answered`, () => dhcp().offer + dhcp().refused === asked);
    assert.equal(dhcp().offer, 8);
    assert.equal(dhcp().refused, asked - 8);
    assert.equal(w.service.offersVia('cn1'), 8);
    assert.equal(guardStats(cn1.daemon).mlr_refused, asked - 8);
    assert.ok(process.memoryUsage().rss - rss < 64 * 1024 * 1024, 'memory stays bounded');
    // 3 lines of drops, one per offer (state changes), 3 of the MLR's refusals; the rest are summaries to come.
    const lines = logs.cn1.slice(startLines);
    assert.equal(lines.length, 3 + 8 + 3, `the flood is logged in a few lines, not 10 000:\n${lines.join('\n')}`);
    assert.equal(logs.cn1.filter((l) => l.startsWith('dropping DHCP from new station')).length, 3);

    // The legitimate client during the flood: the bucket is empty, and then the offers are all held.
    cn1.link.takeSent();
    cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DISCOVER));
    assert.equal(guardStats(cn1.daemon).new_station_dropped, 10_000 - 40 + 1);
    clock.t += 1000;
    cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DISCOVER));
    await until('the MLR to refuse it (offer budget)', () => dhcp().refused === asked - 8 + 1);
    // The offers lapse after offer_hold: the client (retrying, as clients do) gets its lease.
    clock.t += 60_001;
    assert.equal(await w.service.expire(), 8);
    await leaseAtCn1(w);
    assert.equal(w.service.registry.binding(MS)?.state, 'bound');
  } finally {
    w.stop();
  }
});

/** MS takes 10.1.0.5 at CN1 (DISCOVER, OFFER, REQUEST) and is bound there. */
async function leaseAtCn1(w: Awaited<ReturnType<typeof world>>): Promise<void> {
  w.cn1.link.deliver(clientDhcp(DHCP_MESSAGE.DISCOVER));
  await until('an OFFER', () => w.cn1.link.sent.length > 0);
  w.cn1.link.deliver(clientDhcp(DHCP_MESSAGE.REQUEST, { requested: '10.1.0.5', serverId: '10.1.0.6' }));
  await until('the binding at CN1', () => w.service.registry.binding(MS)?.current === 'cn1');
}

/** An IPv4 packet from MS, now in cell 2, still addressed to its old gateway's MAC (CN1's). */
function trafficToOldGateway(): Buffer {
  return encodeEthernet({
    dst: '02:cc:00:00:00:01',
    src: MS,
    etherType: 0x0800,
    payload: encodeIPv4Udp({ srcIp: ip('10.1.0.5'), dstIp: ip('10.200.0.10'), srcPort: 5000, dstPort: 5001, payload: Buffer.from('hi') }),
  });
}

/** The broadcast ARP request MS sends: who has `target`? tell `sender`. */
function msArpRequest(sender: string, target: string): Buffer {
  return buildArp(ARP_OP.REQUEST, { srcMac: MS, srcIp: ip(sender), dstMac: 'ff:ff:ff:ff:ff:ff', dstIp: ip(target) });
}

test('the mobile interface deleted and created again: the capture is reopened, its settings and gateways put back', async () => {
  const logs = { cn1: [] as string[], cn2: [] as string[] };
  const w = await world({}, { logs, mobileCheckMs: 5 });
  try {
    const { cn1 } = w;
    await leaseAtCn1(w);
    const gateway = () => cn1.net.interfaces.get('wl0')?.addresses.some((a) => formatIPv4(a.ip) === '10.1.0.6' && a.label === 'wl0:tm');
    await until('the gateway on wl0', () => gateway() === true);
    const neighKey = 'net.ipv4.neigh.wl0.base_reachable_time_ms';
    assert.equal(cn1.net.sysctls.get(neighKey), '400');

    // Gone for a while: said once, however many checks see it.
    cn1.net.removeInterface('wl0');
    await until('the CN to notice', () => logs.cn1.some((l) => l.includes('mobile interface wl0 is gone')));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(logs.cn1.filter((l) => l.includes('is gone')).length, 1);
    assert.equal(cn1.links.length, 1, 'nothing to open while it is gone');
    assert.equal((cn1.daemon.status()['capture'] as { interface_gone?: boolean }).interface_gone, true, 'status says so');

    // Back, as the network configuration brings it: another index, a new MAC, no gateway, default settings.
    cn1.net.addInterface({ ifname: 'wl0', mac: '02:cc:00:00:00:a1', addresses: [{ ip: ip('10.1.0.1'), prefix: 24, label: 'wl0' }] });
    cn1.net.sysctls.delete(neighKey);
    await until('the gateway back on wl0', () => gateway() === true);
    assert.equal(cn1.links.length, 2, 'the capture opened again');
    const [old, fresh] = cn1.links as [FakeLinkIO, FakeLinkIO];
    assert.equal(old.closed, true, 'the old capture closed');
    assert.equal(fresh.mac, '02:cc:00:00:00:a1', "opened with the new device's MAC");
    assert.equal(cn1.net.sysctls.get(neighKey), '400', 'neighbour tuning set again');
    // The station is told where its gateway is now: an ARP from the new MAC for 10.1.0.6.
    await until('the gateway announced on the new capture', () =>
      fresh.sent.some(
        (f) =>
          f.readUInt16BE(12) === 0x0806 &&
          f.subarray(6, 12).equals(macToBytes('02:cc:00:00:00:a1')) &&
          f.readUInt32BE(28) === ip('10.1.0.6'),
      ),
    );
    // DHCP is served through the new capture (a renewal of the lease held).
    fresh.deliver(clientDhcp(DHCP_MESSAGE.REQUEST, { ciaddr: '10.1.0.5', xid: 77 }));
    await until('an ACK on the new capture', () => replies(fresh).some((r) => r.dhcp?.messageType === DHCP_MESSAGE.ACK));
    const capture = cn1.daemon.status()['capture'] as { reopened: number; interface_gone?: boolean };
    assert.equal(capture.reopened, 1);
    assert.equal(capture.interface_gone, undefined);
    assert.ok(logs.cn1.some((l) => /mobile interface wl0 was created again \(index \d+ -> \d+, MAC 02:cc:00:00:00:a1\)/.test(l)));

    // Created again while the CN was not looking (no gap seen): the new index alone tells.
    cn1.net.recreateInterface('wl0');
    assert.equal(gateway(), false);
    await until('the gateway back once more', () => gateway() === true);
    assert.equal(cn1.links.length, 3);

    // The same device, but the capture gave up polling its socket (too many errors in a row): reopened.
    cn1.links[2]!.stopped = true;
    await until('a fourth capture', () => cn1.links.length === 4);
    assert.equal(cn1.links[2]!.closed, true);
    assert.ok(logs.cn1.some((l) => l.includes('the capture had stopped after repeated socket errors; reopened')));
    const counters = cn1.daemon.status()['capture'] as { reopened: number; received: number; stopped?: boolean };
    assert.equal(counters.reopened, 3);
    assert.equal(counters.stopped, undefined, 'the new capture runs');
    assert.ok(counters.received >= 1, 'frames received by earlier captures still counted');

    // Gone, then back under its old index (moved to another namespace and back): reopened too.
    const index = cn1.net.ifindexes.get('wl0')!;
    logs.cn1.length = 0;
    cn1.net.removeInterface('wl0');
    await until('the CN to notice again', () => logs.cn1.some((l) => l.includes('mobile interface wl0 is gone')));
    cn1.net.addInterface({ ifname: 'wl0', mac: '02:cc:00:00:00:a1', addresses: [{ ip: ip('10.1.0.1'), prefix: 24, label: 'wl0' }] });
    cn1.net.ifindexes.set('wl0', index);
    await until('a fifth capture', () => cn1.links.length === 5);
    await until('the gateway back under the old index', () => gateway() === true);
    assert.ok(
      logs.cn1.some((l) => /mobile interface wl0 is back \(index (\d+) -> \1,/.test(l)),
      logs.cn1.join('\n'),
    );
    assert.equal((cn1.daemon.status()['capture'] as { interface_gone?: boolean }).interface_gone, undefined);
  } finally {
    w.stop();
  }
});

test('a check of the mobile interface under way when the CN stops changes nothing after the stop', async () => {
  const w = await world({}, { mobileCheckMs: 5 });
  const { cn1 } = w;
  try {
    await leaseAtCn1(w);
    await until('the gateway on wl0', () => cn1.net.interfaces.get('wl0')!.addresses.some((a) => a.label === 'wl0:tm'));
    // interfaceInfo answers slowly: the check is waiting on it when the CN stops.
    const info = cn1.net.interfaceInfo.bind(cn1.net);
    let asked = false;
    cn1.net.interfaceInfo = async (ifname: string) => {
      asked = true;
      await new Promise((r) => setTimeout(r, 50));
      return info(ifname);
    };
    cn1.net.recreateInterface('wl0');
    await until('the check to ask', () => asked);
  } finally {
    w.stop();
  }
  const calls = cn1.net.calls.length;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(cn1.links.length, 1, 'no capture opened after stop');
  // (The slow read itself completes and is recorded; nothing follows it.)
  assert.deepEqual(
    cn1.net.calls.slice(calls).filter((c) => !c.startsWith('interfaceInfo')),
    [],
    'no kernel change after stop',
  );
});

test("a second CN on the same ubus publishes 'tmip.<cn_name>' instead of failing", async () => {
  const shared = new FakeUbus();
  const w = await world({ cn1: shared, cn2: shared });
  try {
    assert.ok(shared.published.has('tmip'));
    assert.ok(shared.published.has('tmip.cn2'));
    const s = (await shared.call('tmip.cn2', 'status', {})) as { cn_name: string };
    assert.equal(s.cn_name, 'cn2');
  } finally {
    w.stop();
  }
});

/** CN1 alone with an MLR, on a fake kernel that has no interfaces yet; start-up retries every few ms. */
function bareCn() {
  const logs: string[] = [];
  const service = new MlrService(new Registry(['vxlan']), {
    networkName: 'lab',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    log: () => {},
    maxLagMs: Infinity,
  });
  const net = new FakeNetOps();
  net.supported = ['vxlan'];
  const link = new FakeLinkIO('wl0', '02:cc:00:00:00:01');
  const daemon = new CnDaemon(cnConfig('cn1'), {
    net,
    openLink: () => ({ ok: true, value: link }),
    mobileCheckMs: 0,
    startRetryMs: 5,
    connect: async () => {
      const [cnEnd, mlrEnd] = memoryChannelPair('cn1', 'mlr');
      service.attach(new RpcPeer(mlrEnd), '10.200.0.11');
      return cnEnd;
    },
    log: (_l, m) => logs.push(m),
  });
  return { logs, net, link, daemon };
}

test('a CN started before its devices exist waits for them, says so once each, and serves once they come', async () => {
  const { logs, net, link, daemon } = bareCn();
  let settled = false;
  const started = daemon.start().finally(() => (settled = true));
  try {
    await until('the wait for cn_if', () => logs.some((l) => /^cn_if 'bb0': no such device yet; waiting for it/.test(l)));
    await new Promise((r) => setTimeout(r, 60)); // several retries
    assert.equal(settled, false, 'still waiting, not failed');
    net.addInterface(backboneIf(1));
    await until('the wait for mobile_if', () => logs.some((l) => /^mobile_if 'wl0': no such device yet; waiting for it/.test(l)));
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(settled, false);
    assert.deepEqual(net.calls, [], 'nothing changed in the kernel while waiting');
    net.addInterface(mobileIf(1));
    await started;
    assert.equal(logs.filter((l) => /no such device yet/.test(l)).length, 2, 'said once per device');
    assert.ok(logs.includes("cn_if 'bb0' exists now") && logs.includes("mobile_if 'wl0' exists now"));
    assert.ok(logs.some((l) => /is now up and running/.test(l)));
    // it serves: a DISCOVER is answered with an OFFER from its pool
    await markerOffer(link, MS);
  } finally {
    daemon.stop();
    await started.catch(() => {});
  }
});

test('stop() while start-up waits for a device ends the wait: start() resolves without touching the kernel', async () => {
  const logs: string[] = [];
  const net = new FakeNetOps();
  const daemon = new CnDaemon(cnConfig('cn1'), {
    net,
    openLink: () => assert.fail('no capture opened'),
    connect: () => assert.fail('no MLR connection'),
    startRetryMs: 60_000, // only stop() ends this wait in time
    log: (_l, m) => logs.push(m),
  });
  const started = daemon.start();
  await until('the wait', () => logs.some((l) => /no such device yet/.test(l)));
  const t0 = Date.now();
  daemon.stop();
  await started;
  assert.ok(Date.now() - t0 < 1000, 'ended at once');
  assert.deepEqual(net.calls, []);
  assert.ok(!logs.some((l) => /up and running/.test(l)));
});

test('stop() while the CN waits for its first bind with an unreachable MLR: start() resolves, nothing reconnects', async () => {
  const logs: string[] = [];
  const net = new FakeNetOps();
  net.supported = ['vxlan'];
  net.addInterface(backboneIf(1));
  net.addInterface(mobileIf(1));
  let attempts = 0;
  const daemon = new CnDaemon(cnConfig('cn1'), {
    net,
    openLink: () => ({ ok: true, value: new FakeLinkIO('wl0', '02:cc:00:00:00:01') }),
    mobileCheckMs: 0,
    connect: async () => {
      attempts++;
      throw new Error('connection refused');
    },
    log: (_l, m) => logs.push(m),
  });
  let settled = false;
  const started = daemon.start().then(() => (settled = true));
  await until('a connection attempt', () => attempts > 0);
  assert.equal(settled, false, 'start() waits for the first bind');
  daemon.stop();
  await started;
  const after = attempts;
  await new Promise((r) => setTimeout(r, 1200)); // past the first reconnect back-off
  assert.equal(attempts, after, 'no reconnect after stop');
  assert.ok(!logs.some((l) => /up and running/.test(l)));
});

test('start-up waits again for a device that vanishes while it waits for an address, and for the pool interface subnet', async () => {
  const { logs, net, link, daemon } = bareCn();
  const saw = (re: RegExp) => logs.some((l) => re.test(l));
  net.addInterface({ ...backboneIf(1), addresses: [] });
  net.addInterface(mobileIf(1));
  const started = daemon.start();
  try {
    await until('the wait for an address', () => saw(/^cn_if 'bb0' has no IPv4 address yet/));
    net.removeInterface('wl0'); // gone again while the CN waits for the address
    net.addInterface(backboneIf(1));
    await until('the wait for wl0', () => saw(/^mobile_if 'wl0': no such device yet/));
    net.addInterface({ ...mobileIf(1), addresses: [] }); // back, without its address yet: the pool 'wl0 * *' has no subnet
    await until('the wait for the pool', () => saw(/^addr_pool 'wl0 \* \*': interface 'wl0' has no IPv4 subnet of \/29 or larger yet/));
    assert.deepEqual(
      net.calls.filter((c) => !c.startsWith('interfaceInfo')),
      [],
      'nothing changed in the kernel while waiting',
    );
    net.addInterface(mobileIf(1));
    await started;
    assert.ok(saw(/^cn_if 'bb0' has its IPv4 address now: 10\.200\.0\.11\/24$/));
    assert.ok(saw(/^addr_pool 'wl0 \* \*': interface 'wl0' has its subnet now$/));
    assert.ok(saw(/is now up and running/));
    assert.equal(logs.filter((l) => /waiting for/.test(l)).length, 3, 'each wait said once');
    await markerOffer(link, MS);
  } finally {
    daemon.stop();
    await started.catch(() => {});
  }
});

test('stop() while start-up reads the backbone: nothing is written to the kernel', async () => {
  const net = new FakeNetOps();
  net.supported = ['vxlan'];
  net.addInterface(backboneIf(1));
  net.addInterface(mobileIf(1));
  const daemon = new CnDaemon(cnConfig('cn1'), {
    net,
    openLink: () => assert.fail('no capture opened'),
    connect: () => assert.fail('no MLR connection'),
    log: () => {},
  });
  const info = net.interfaceInfo.bind(net);
  net.interfaceInfo = async (ifname: string) => {
    daemon.stop(); // arrives while the read is under way
    return info(ifname);
  };
  await daemon.start();
  assert.deepEqual(
    net.calls.filter((c) => !c.startsWith('interfaceInfo')),
    [],
  );
});
