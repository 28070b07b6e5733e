// SPDX-License-Identifier: GPL-2.0-only
// The data-plane driver against FakeNetOps: what it applies and the model it keeps of it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { formatIPv4, parseIPv4 } from '../../src/core/ip.js';
import type { BindingView } from '../../src/core/binding.js';
import { DataplaneDriver, gatewayLabel } from '../../src/cn/dataplane-driver.js';
import { FakeNetOps } from '../../src/platform/fake-netops.js';

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
