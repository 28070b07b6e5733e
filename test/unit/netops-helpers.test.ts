// SPDX-License-Identifier: GPL-2.0-only
// Unit tests for the in-memory test doubles' extras (FakeNetOps' supported types, call log and
// failNext; FakeLinkIO) and the pure helpers of the real adapters (name validation, VXLAN MAC, nft
// ruleset text). No root, no commands run. IprouteNetOps' commands: iproute-netops.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { TunnelSpec } from '../../src/core/tunnel.js';
import { FakeLinkIO } from '../../src/platform/fake-linkio.js';
import { FakeNetOps } from '../../src/platform/fake-netops.js';
import { ipv4ConfKey, isValidIfname, linkMatchesTunnel, mssClampRuleset, vxlanMacFor } from '../../src/platform/iproute-netops.js';
import { ip } from '../support/helpers.js';

const spec = (over: Partial<TunnelSpec> = {}): TunnelSpec => ({
  name: 'tmip07',
  type: 'vxlan',
  local: ip('10.0.0.1'),
  remote: ip('10.0.0.2'),
  key: 7,
  mtu: 1450,
  ...over,
});

test('vxlanMacFor is 02:74 + the four address bytes', () => {
  assert.equal(vxlanMacFor(ip('10.251.0.1')), '02:74:0a:fb:00:01');
  assert.equal(vxlanMacFor(ip('255.1.2.254')), '02:74:ff:01:02:fe');
});

test('interface name validation', () => {
  for (const good of ['eth0', 'br-lan', 'wlan0-1', 'eth0.100', 'br-lan:tmip0', 'a', 'x'.repeat(15)]) assert.ok(isValidIfname(good), good);
  for (const bad of ['', 'x'.repeat(16), 'a b', '-x', 'a/b', 'eth0;rm', '.', '..', 'é']) assert.ok(!isValidIfname(bad), bad);
  assert.equal(ipv4ConfKey('eth0.100', 'rp_filter'), 'net.ipv4.conf.eth0/100.rp_filter');
});

test('mssClampRuleset replaces the table atomically and omits elements when empty', () => {
  const text = mssClampRuleset('tmip_t', 'br-lan', 1410, [ip('10.1.0.9'), ip('10.1.0.5'), ip('10.1.0.9')]);
  const lines = text.split('\n');
  assert.equal(lines[0], 'table ip tmip_t {}');
  assert.equal(lines[1], 'delete table ip tmip_t');
  assert.match(text, /elements = \{ 10\.1\.0\.5, 10\.1\.0\.9 \}/);
  assert.match(
    text,
    /iifname "br-lan" ip saddr @roamed tcp flags & \(syn \| rst\) == syn tcp option maxseg size > 1410 tcp option maxseg size set 1410/,
  );
  assert.match(text, /oifname "br-lan" ip daddr @roamed /);
  assert.doesNotMatch(mssClampRuleset('tmip_t', 'br-lan', 1410, []), /elements/);
});

test('linkMatchesTunnel reads iproute2 JSON for each type', () => {
  const s = spec();
  const vx = { linkinfo: { info_kind: 'vxlan', info_data: { id: 7, local: '10.0.0.1', remote: '10.0.0.2', port: 4789 } } };
  assert.ok(linkMatchesTunnel(vx, s));
  assert.ok(!linkMatchesTunnel({ linkinfo: { info_kind: 'vxlan', info_data: { ...vx.linkinfo.info_data, remote: '10.0.0.3' } } }, s));
  assert.ok(!linkMatchesTunnel({ linkinfo: { info_kind: 'vxlan', info_data: { ...vx.linkinfo.info_data, id: 8 } } }, s));
  const gre = { linkinfo: { info_kind: 'gre', info_data: { local: '10.0.0.1', remote: '10.0.0.2', ikey: '0.0.1.2', okey: '0.0.1.2' } } };
  assert.ok(linkMatchesTunnel(gre, spec({ type: 'gre', key: 258 })));
  assert.ok(!linkMatchesTunnel(gre, spec({ type: 'gre', key: 259 })));
  assert.ok(
    linkMatchesTunnel({ linkinfo: { info_kind: 'ipip', info_data: { local: '10.0.0.1', remote: '10.0.0.2' } } }, spec({ type: 'ipip' })),
  );
  assert.ok(!linkMatchesTunnel(vx, spec({ type: 'gre' })));
});

// FakeNetOps' kernel behaviour (idempotence, re-creation, routes, sysctls, clamps, validation) is checked
// against the real adapter's by the shared contract: test/unit/netops-contract.test.ts. Here: its extras.
test('FakeNetOps: `supported` limits the tunnel types, and every call is logged', async () => {
  const net = new FakeNetOps();
  net.addInterface({ ifname: 'br-lan', mac: '02:00:00:00:00:aa', addresses: [{ ip: ip('192.168.1.1'), prefix: 24, label: 'br-lan' }] });
  net.supported = ['vxlan'];
  assert.deepEqual(await net.probeTunnelTypes('tmip0'), ['vxlan']);
  await assert.rejects(net.ensureTunnel(spec({ type: 'gre' })), /Unknown device type/);
  assert.equal(net.tunnels.size, 0);

  await net.ensureTunnel(spec());
  await net.ensureTunnel(spec({ mtu: 1400 }));
  // Like the real adapter, a mismatching device is deleted before the unsupported create fails.
  await assert.rejects(net.ensureTunnel(spec({ type: 'ipip' })), /Unknown device type/);
  assert.equal(net.tunnels.size, 0);
  await net.addAddress('br-lan', ip('10.1.0.2'), 30, 'br-lan:tmip0');

  assert.equal(net.callsOf('ensureTunnel').length, 4);
  assert.equal(net.calls[0], 'probeTunnelTypes tmip0');
  assert.equal(net.calls[2], 'ensureTunnel tmip07 vxlan 10.0.0.1->10.0.0.2 key 7 mtu 1450');
  assert.ok(net.calls.includes('addAddress br-lan 10.1.0.2/30 br-lan:tmip0'));
});

test('FakeNetOps.failNext fails exactly the next call(s) of that method', async () => {
  const net = new FakeNetOps();
  net.failNext('setSysctl', 'Permission denied');
  net.failNext('setSysctl', 'second failure');
  await assert.rejects(net.setSysctl('net.ipv4.ip_forward', '1'), /Permission denied/);
  await assert.rejects(net.setSysctl('net.ipv4.ip_forward', '1'), /second failure/);
  await net.setSysctl('net.ipv4.ip_forward', '1');
  assert.equal(net.sysctls.get('net.ipv4.ip_forward'), '1');
  assert.equal(net.callsOf('setSysctl').length, 3, 'failed calls are logged too');
  await net.deleteMssClamp('t'); // other methods unaffected
  await assert.rejects(net.setSysctl('bad key', '1'), /invalid sysctl key/);
});

test('FakeLinkIO records sends and delivers frames', () => {
  const link = new FakeLinkIO('wlan0', '02:00:00:00:00:01');
  const got: Buffer[] = [];
  assert.equal(link.deliver(Buffer.alloc(60)), false, 'no receiver yet');
  link.onFrame((f) => got.push(f));
  assert.equal(link.deliver(Buffer.alloc(60, 1)), true);
  assert.equal(got.length, 1);
  const frame = new Uint8Array(42).fill(7);
  assert.equal(link.send(frame), undefined);
  frame.fill(0);
  assert.equal(link.sent[0]?.[0], 7, 'sent frames are copied');
  assert.match(link.send(new Uint8Array(10)) ?? '', /shorter/);
  link.failSend = 'ENETDOWN';
  assert.equal(link.send(Buffer.alloc(60)), 'ENETDOWN');
  assert.equal(link.takeSent().length, 1);
  link.close();
  assert.equal(link.deliver(Buffer.alloc(60)), false);
  assert.match(link.send(Buffer.alloc(60)) ?? '', /closed/);
});
