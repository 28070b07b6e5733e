// SPDX-License-Identifier: GPL-2.0-only
// option cn_network / mobile_network: netifd's interface status decoded (src/core/netifd.ts, total on
// hostile replies), and the wait for an interface that is down or has no address yet
// (src/platform/netifd.ts): one log line, retries with back-off, the devices taken from l3_device,
// and an interface netifd does not know ending the wait with a message naming the option.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../src/core/backoff.js';
import { formatIPv4 } from '../../src/core/ip.js';
import { parseInterfaceStatus } from '../../src/core/netifd.js';
import { FakeUbus } from '../../src/platform/fake-ubus.js';
import { resolveNetworks, waitForNetwork } from '../../src/platform/netifd.js';

test('netifd status: up, l3_device before device, IPv4 addresses; anything malformed is skipped, never thrown', () => {
  const r = parseInterfaceStatus({
    up: true,
    device: 'eth1',
    l3_device: 'pppoe-wan',
    'ipv4-address': [{ address: '192.0.2.7', mask: 24 }, { address: 'x', mask: 24 }, { address: '192.0.2.8', mask: 33 }, 'junk', null],
  });
  assert.ok(r.ok);
  assert.equal(r.value.up, true);
  assert.equal(r.value.device, 'pppoe-wan');
  assert.deepEqual(
    r.value.ipv4.map((a) => `${formatIPv4(a.ip)}/${a.prefix}`),
    ['192.0.2.7/24'],
  );
  assert.deepEqual(parseInterfaceStatus({ up: 1, device: 'eth1', 'ipv4-address': {} }), {
    ok: true,
    value: { up: false, device: 'eth1', ipv4: [] },
  });
  assert.deepEqual(parseInterfaceStatus({ up: true, l3_device: '' }), { ok: true, value: { up: true, ipv4: [] } });
  for (const hostile of [undefined, null, 'up', 7, [], [{ up: true }]]) assert.equal(parseInterfaceStatus(hostile).ok, false);
});

test('waiting for cn_network: down, then up without an address, then with one; logged once, back-off between tries', async () => {
  const ubus = new FakeUbus();
  const replies: unknown[] = [
    { up: false },
    { up: true, l3_device: 'eth1', 'ipv4-address': [] },
    { up: true, l3_device: 'eth1', 'ipv4-address': [] },
    { up: true, l3_device: 'eth1', 'ipv4-address': [{ address: '10.200.0.11', mask: 24 }] },
  ];
  ubus.publish('network.interface.wan', { status: () => replies.shift() });
  ubus.publish('network.interface.lan', { status: () => ({ up: true, l3_device: 'br-lan', 'ipv4-address': [] }) });
  const logs: string[] = [];
  const slept: number[] = [];
  const r = await resolveNetworks(
    { cnIf: '', mobileIf: '', cnNetwork: 'wan', mobileNetwork: 'lan', other: 1 },
    ubus,
    (_l, m) => void logs.push(m),
    {
      backoff: new Backoff(1000, 4000),
      sleep: async (ms) => void slept.push(ms),
    },
  );
  assert.ok(r.ok, r.ok ? '' : r.error);
  assert.deepEqual(
    r.value,
    { cnIf: 'eth1', mobileIf: 'br-lan', cnNetwork: 'wan', mobileNetwork: 'lan', other: 1 },
    'the mobile side needs no address',
  );
  assert.deepEqual(slept, [1000, 2000, 4000]);
  assert.deepEqual(logs, [
    "waiting for cn_network 'wan': it is down; retrying with back-off",
    "cn_network 'wan' is up: eth1 10.200.0.11/24",
  ]);
});

test('an interface netifd does not know ends the wait with a message naming the option and the fix', async () => {
  const ubus = new FakeUbus();
  const r = await waitForNetwork(ubus, 'wann', {
    needAddress: true,
    option: 'cn_network',
    log: () => {},
    sleep: async () => assert.fail('no waiting'),
  });
  assert.ok(!r.ok);
  assert.match(
    r.error,
    /^cn_network 'wann': netifd has no such interface; expected the name of an interface section of \/etc\/config\/network/,
  );
});
