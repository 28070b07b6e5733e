// SPDX-License-Identifier: GPL-2.0-only
// The data-plane driver against FakeNetOps: what it applies and the model it keeps of it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { formatIPv4, parseIPv4 } from '../../src/core/ip.js';
import type { BindingView } from '../../src/core/binding.js';
import { DataplaneDriver, gatewayLabel, type DataplaneDriverOptions } from '../../src/cn/dataplane-driver.js';
import { FakeNetOps } from '../../src/platform/fake-netops.js';
import { until } from '../support/helpers.js';

const ip = (s: string) => (parseIPv4(s) as { value: number }).value;
const cn1 = { name: 'cn1', addr: ip('10.200.0.11') };
const cn2 = { name: 'cn2', addr: ip('10.200.0.12') };
const cn3 = { name: 'cn3', addr: ip('10.200.0.13') };
const at = (mac: string, cell: string, current: typeof cn2, key: number): BindingView => ({
  mac,
  cell: ip(cell),
  parent: cn1,
  current,
  tunnel: { type: 'vxlan', key },
  expires: 1,
  state: 'bound',
});

/** cn1's driver options, on mobile interface wl0. */
const cn1Options = {
  self: 'cn1',
  selfAddr: ip('10.200.0.11'),
  tunnelPrefix: 'tm',
  underlayMtu: 1500,
  mobileIf: 'wl0',
  mssClamp: true,
  log: () => {},
};

async function parentDriver() {
  const net = new FakeNetOps();
  net.supported = ['vxlan'];
  net.addInterface({
    ifname: 'wl0',
    mac: '02:cc:00:00:00:01',
    mtu: 1500,
    up: true,
    addresses: [{ ip: ip('10.1.0.1'), prefix: 24, label: 'wl0' }],
  });
  const added: string[] = [];
  const d = new DataplaneDriver(net, { ...cn1Options, onGatewayAdded: (g) => added.push(formatIPv4(g)) });
  await d.load();
  return { net, d, added };
}

test('a host whose route moves from one shared tunnel to another stays routed, in the kernel and in the model', async () => {
  const { net, d } = await parentDriver();
  const a = at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1);
  const b = at('02:00:00:00:00:0b', '10.1.0.8', cn2, 1);
  await d.apply([a, b]);
  assert.equal(net.routes.get(ip('10.1.0.5')), 'tm1');
  await d.apply([{ ...a, current: cn3, tunnel: { type: 'vxlan', key: 2 } }, b]); // a moves on to cn3; b keeps tunnel tm1 alive
  assert.equal(net.routes.get(ip('10.1.0.5')), 'tm2');
  assert.equal(net.routes.get(ip('10.1.0.9')), 'tm1');
  assert.equal(d.state.routes.get(ip('10.1.0.5')), 'tm2', 'the model agrees with the kernel');
  const calls = net.calls.length;
  await d.apply([{ ...a, current: cn3, tunnel: { type: 'vxlan', key: 2 } }, b]);
  assert.equal(net.calls.length, calls, 'nothing left to do on a second apply');
});

test('gateways are reported as they are added; a restarted driver keeps what is still wanted', async () => {
  const { net, d, added } = await parentDriver();
  const home: BindingView = { mac: '02:00:00:00:00:0a', cell: ip('10.1.0.4'), parent: cn1, current: cn1, expires: 1, state: 'bound' };
  await d.apply([home]);
  assert.deepEqual(added, ['10.1.0.6']);
  assert.ok(net.interfaces.get('wl0')!.addresses.some((x) => x.label === gatewayLabel('wl0', 'tm') && formatIPv4(x.ip) === '10.1.0.6'));
  const again = new DataplaneDriver(net, cn1Options);
  await again.load();
  assert.deepEqual([...again.state.gateways].map(formatIPv4), ['10.1.0.6']);
  assert.deepEqual(await again.apply([home]), [], 'the gateway is kept, not re-added');
  assert.deepEqual(await again.apply([]), []);
  assert.ok(!net.interfaces.get('wl0')!.addresses.some((x) => formatIPv4(x.ip) === '10.1.0.6'), 'and removed when no binding wants it');
});

test('labels fit in 15 bytes', () => {
  assert.equal(gatewayLabel('wl0', 'tmip0'), 'wl0:tmip0');
  assert.ok(gatewayLabel('phy0-ap0-long', 'tmip0').length <= 15);
});

/** FakeNetOps whose calls can be held: every call is logged as it starts and as it ends. */
class GatedNetOps extends FakeNetOps {
  readonly events: string[] = [];
  private gate: Promise<void> | undefined;
  /** Hold every call from now on at its start; the function returned lets them (and later calls) go. */
  hold(): () => void {
    let open!: () => void;
    this.gate = new Promise((r) => (open = r));
    return () => {
      open();
      this.gate = undefined;
    };
  }
  private async step<T>(what: string, f: () => Promise<T>): Promise<T> {
    this.events.push(`start ${what}`);
    if (this.gate) await this.gate;
    try {
      return await f();
    } finally {
      this.events.push(`end ${what}`);
    }
  }
  override ensureTunnel(spec: Parameters<FakeNetOps['ensureTunnel']>[0]) {
    return this.step(`tunnel ${spec.name}`, () => super.ensureTunnel(spec));
  }
  override addAddress(ifname: string, a: number, prefix: number, label: string) {
    return this.step(`gateway ${formatIPv4(a)}`, () => super.addAddress(ifname, a, prefix, label));
  }
  override routeHostIntoTunnel(h: number, t: Parameters<FakeNetOps['routeHostIntoTunnel']>[1]) {
    return this.step(`route ${formatIPv4(h)}`, () => super.routeHostIntoTunnel(h, t));
  }
  override deleteAddress(ifname: string, a: number, prefix: number) {
    return this.step(`del-gateway ${formatIPv4(a)}`, () => super.deleteAddress(ifname, a, prefix));
  }
  override deleteHostRoute(h: number, dev: string) {
    return this.step(`unroute ${formatIPv4(h)} ${dev}`, () => super.deleteHostRoute(h, dev));
  }
}

async function gatedDriver(options: Partial<DataplaneDriverOptions> = {}) {
  const net = new GatedNetOps();
  net.addInterface({ ifname: 'wl0', mac: '02:cc:00:00:00:01', addresses: [{ ip: ip('10.1.0.1'), prefix: 24, label: 'wl0' }] });
  const added: string[] = [];
  const d = new DataplaneDriver(net, { ...cn1Options, ...options, onGatewayAdded: (g) => added.push(formatIPv4(g)) });
  await d.load();
  return { net, d, added };
}

const homeAt = (mac: string, cell: string): BindingView => ({ mac, cell: ip(cell), parent: cn1, current: cn1, expires: 1, state: 'bound' });

test('every operation is issued at once, build before teardown; a route waits for its tunnel', async () => {
  const { net, d } = await gatedDriver();
  await d.update('02:00:00:00:00:0c', homeAt('02:00:00:00:00:0c', '10.1.0.12'));
  net.events.length = 0;
  const open = net.hold();
  const p1 = d.update('02:00:00:00:00:0a', at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1));
  const p2 = d.update('02:00:00:00:00:0b', homeAt('02:00:00:00:00:0b', '10.1.0.8'));
  const p3 = d.update('02:00:00:00:00:0c', undefined);
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    net.events,
    ['start tunnel tm1', 'start gateway 10.1.0.10', 'start del-gateway 10.1.0.14'],
    'tunnel, gateway and an unrelated teardown issued together, in that order; the route not yet',
  );
  open();
  await Promise.all([p1, p2, p3]);
  const at_ = (e: string) => net.events.indexOf(e);
  assert.ok(at_('start route 10.1.0.5') > at_('end tunnel tm1'), 'the route after its tunnel');
  assert.equal(d.stats.plans, 2, 'the three changes made one plan (after the first)');
});

test("a teardown of a host waits for that host's route when the route waits for a new tunnel", async () => {
  const { net, d } = await gatedDriver();
  const a = at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1);
  await d.update(a.mac, a); // routed into tm1
  await d.update('02:00:00:00:00:0c', homeAt('02:00:00:00:00:0c', '10.1.0.12'));
  net.events.length = 0;
  const open = net.hold();
  // a moves on to cn3 (a new tunnel tm2); the station of 10.1.0.12 leaves home for cn2 (tm1, in place).
  const p1 = d.update(a.mac, { ...a, current: cn3, tunnel: { type: 'vxlan', key: 2 } });
  const p2 = d.update('02:00:00:00:00:0c', at('02:00:00:00:00:0c', '10.1.0.12', cn2, 1));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    net.events,
    ['start tunnel tm2', 'start route 10.1.0.13', 'start del-gateway 10.1.0.14'],
    'the route into a tunnel in place and the gateway it replaces go at once; the old route of 10.1.0.5 waits',
  );
  open();
  await Promise.all([p1, p2]);
  const at_ = (e: string) => net.events.indexOf(e);
  assert.ok(at_('start route 10.1.0.5') > at_('end tunnel tm2'), 'the route after its tunnel');
  assert.ok(at_('start unroute 10.1.0.5 tm1') > at_('end route 10.1.0.5'), 'the old route goes after the new one is in place');
  assert.equal(net.routes.get(ip('10.1.0.5')), 'tm2');
  assert.equal(d.state.routes.get(ip('10.1.0.5')), 'tm2');
});

test('changes arriving while a plan runs are merged into the next plan; each caller gets its result', async () => {
  const { net, d, added } = await gatedDriver();
  const open = net.hold();
  const first = d.update('02:00:00:00:00:01', homeAt('02:00:00:00:00:01', '10.1.0.4'));
  await new Promise((r) => setTimeout(r, 5)); // the first plan is running, held at its gateway
  const later = [2, 3, 4, 5].map((n) => d.update(`02:00:00:00:00:0${n}`, homeAt(`02:00:00:00:00:0${n}`, `10.1.0.${4 * n}`)));
  const plansBefore = d.stats.plans;
  open();
  assert.deepEqual((await first).map(formatIPv4), ['10.1.0.6']);
  const results = await Promise.all(later);
  assert.equal(d.stats.plans, plansBefore + 1, 'one more plan for the four changes');
  for (const r of results) assert.deepEqual(r.map(formatIPv4).sort(), ['10.1.0.10', '10.1.0.14', '10.1.0.18', '10.1.0.22']);
  assert.deepEqual(
    added.sort(),
    ['10.1.0.10', '10.1.0.14', '10.1.0.18', '10.1.0.22', '10.1.0.6'],
    'onGatewayAdded for each, as it is added',
  );
});

test('a failed operation fails only the changes that touched it, is logged per op, and is retried by the next plan', async () => {
  const logs: string[] = [];
  const { net, d } = await gatedDriver({ log: (_l, m) => void logs.push(m) });
  net.failNext('ensureTunnel', 'RTNETLINK answers: No buffer space available');
  const bad = d.update('02:00:00:00:00:0a', at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1));
  const good = d.update('02:00:00:00:00:0b', homeAt('02:00:00:00:00:0b', '10.1.0.8'));
  await assert.rejects(bad, /tunnel tm1 .*failed: .*No buffer space/);
  assert.deepEqual((await good).map(formatIPv4), ['10.1.0.10']);
  assert.ok(logs.some((l) => /dataplane: tunnel tm1 .* failed/.test(l)));
  assert.equal(d.state.tunnels.size, 0, 'the model holds no tunnel that failed');
  await d.update('02:00:00:00:00:0c', homeAt('02:00:00:00:00:0c', '10.1.0.12')); // any later plan retries it
  assert.equal(net.tunnels.get('tm1')?.type, 'vxlan');
  assert.equal(net.routes.get(ip('10.1.0.5')), 'tm1');
});

test('apply() replaces every binding, and a restarted driver re-ensures and keeps a lingering tunnel it finds', async () => {
  const { net, d } = await gatedDriver({ lingerMs: 40 });
  const a = at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1);
  await d.apply([a]);
  await d.apply([]); // tm1 lingers
  d.close(); // this driver is gone (a restart): its linger timer with it
  assert.ok(net.tunnels.has('tm1'));
  assert.equal(net.routes.size, 0);
  const again = new DataplaneDriver(net, { ...cn1Options, lingerMs: 40 });
  await again.load();
  await again.apply([a]);
  assert.deepEqual(again.state.tunnels.get('tm1'), again.desired.tunnels.get('tm1'), 're-ensured: the model knows its parameters');
  assert.equal(net.routes.get(ip('10.1.0.5')), 'tm1');
  await again.apply([]);
  await until('the linger to end', () => net.tunnels.size === 0);
  assert.equal(again.state.tunnels.size, 0);
});

test('the clamp set follows the roamed hosts without holding up the plan; mss_clamp 0 leaves nft alone', async () => {
  const net = new FakeNetOps();
  net.addInterface({ ifname: 'wl0', addresses: [] });
  const cn2Options = { ...cn1Options, self: 'cn2', selfAddr: ip('10.200.0.12') };
  const d = new DataplaneDriver(net, cn2Options);
  await d.load();
  assert.deepEqual(net.clamps.get('tmip_tm'), { mobileIf: 'wl0', mss: 1410, hosts: [] }, 'created at load, empty');
  await d.update('02:00:00:00:00:0a', at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1));
  await d.update('02:00:00:00:00:0b', at('02:00:00:00:00:0b', '10.1.0.8', cn2, 1));
  await d.update('02:00:00:00:00:0a', undefined);
  await d.idle();
  assert.deepEqual(net.clamps.get('tmip_tm')?.hosts.map(formatIPv4), ['10.1.0.9']);
  assert.deepEqual(net.callsOf('updateMssClamp'), [
    'updateMssClamp tmip_tm +[10.1.0.5] -[]',
    'updateMssClamp tmip_tm +[10.1.0.9] -[]',
    'updateMssClamp tmip_tm +[] -[10.1.0.5]',
  ]);
  const off = new FakeNetOps();
  off.addInterface({ ifname: 'wl0', addresses: [] });
  const d2 = new DataplaneDriver(off, { ...cn2Options, mssClamp: false });
  await d2.load();
  await d2.update('02:00:00:00:00:0a', at('02:00:00:00:00:0a', '10.1.0.4', cn2, 1));
  await d2.idle();
  assert.equal(off.clamps.size, 0);
  assert.deepEqual(off.callsOf('updateMssClamp'), []);
});

test('a tunnel found at start-up that the first plan does not want is deleted at once, not left to linger', async () => {
  const net = new FakeNetOps();
  net.addInterface({ ifname: 'wl0', addresses: [] });
  await net.ensureTunnel({ name: 'tm9', type: 'vxlan', local: ip('10.200.0.11'), remote: ip('10.200.0.99'), key: 9, mtu: 1450 });
  const d = new DataplaneDriver(net, cn1Options); // the default linger: a minute
  await d.load();
  assert.ok(d.state.tunnels.has('tm9'));
  await d.apply([homeAt('02:00:00:00:00:0a', '10.1.0.4')]);
  await until('the stale tunnel to go', () => net.tunnels.size === 0);
  assert.equal(d.state.tunnels.size, 0);
  d.close();
});

test('a commit among thousands of bindings plans and runs only what its binding touched', async () => {
  const net = new FakeNetOps();
  net.addInterface({ ifname: 'wl0', addresses: [] });
  const d = new DataplaneDriver(net, { ...cn1Options, lingerMs: 60_000 });
  await d.load();
  const cell = (n: number) => formatIPv4(ip('10.64.0.0') + 4 * n);
  const burst = Array.from({ length: 3000 }, (_, n) =>
    d.update(`02:00:00:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`, homeAt('x', cell(n))),
  );
  await Promise.all(burst);
  assert.equal(d.state.gateways.size, 3000);
  assert.ok(d.stats.plans <= 3, `the burst made ${d.stats.plans} plans`);
  const calls = net.calls.length;
  const ops = d.stats.ops;
  await d.update('02:00:00:00:00:00', at('02:00:00:00:00:00', cell(0), cn2, 1)); // the first station roams away
  assert.deepEqual(
    net.calls.slice(calls).map((c) => c.split(' ')[0]),
    ['ensureTunnel', 'routeHostIntoTunnel', 'deleteAddress'],
  );
  assert.equal(d.stats.ops - ops, 3);
  d.close();
});

test("an operation's line is logged after the change that waited for it has its answer", async () => {
  const logs: string[] = [];
  const { d } = await gatedDriver({ log: (_l, m) => logs.push(m) });
  const done = await d.update('02:00:00:00:00:0a', homeAt('02:00:00:00:00:0a', '10.1.0.4'));
  assert.deepEqual(done.map(formatIPv4), ['10.1.0.6']);
  assert.ok(!logs.some((l) => l.startsWith('dataplane: gateway 10.1.0.6/30')), 'not yet when the caller resumes');
  await until('the line is written on the next turn', () =>
    logs.some((l) => /^dataplane: gateway 10\.1\.0\.6\/30 .*\(\d+\.\d ms\)$/.test(l)),
  );
});
