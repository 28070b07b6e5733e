// SPDX-License-Identifier: GPL-2.0-only
// How a pool is described (`ubus call tmip status` pools, the LuCI status page): the addresses handed
// out, first cell to last cell, not the whole subnet.
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseIPv4 } from '../../src/core/ip.js';
import { describePool, resolvePool } from '../../src/core/pool.js';

const ip = (s: string): number => {
  const r = parseIPv4(s);
  if (!r.ok) assert.fail(r.error);
  return r.value;
};

test('describePool shows the range handed out, not the subnet edges', () => {
  const whole = resolvePool({ subnet: { network: ip('10.13.150.0'), prefix: 24 }, exclude: [ip('10.13.150.1')] }, null, null);
  assert.ok(whole.ok);
  assert.equal(describePool(whole.value), '10.13.150.0/24 [10.13.150.4 - 10.13.150.251]');
  const narrowed = resolvePool({ subnet: { network: ip('10.20.0.0'), prefix: 16 }, exclude: [] }, ip('10.20.1.1'), ip('10.20.1.255'));
  assert.ok(narrowed.ok);
  assert.equal(describePool(narrowed.value), '10.20.0.0/16 [10.20.1.4 - 10.20.1.255]', 'whole cells inside first..last');
  const none = resolvePool({ subnet: { network: ip('10.30.0.0'), prefix: 30 }, exclude: [] }, null, null);
  assert.ok(!none.ok);
  assert.match(none.error, /no whole \/30 cell fits in 10\.30\.0\.0\/30 \[no cell in 10\.30\.0\.0 - 10\.30\.0\.3\]/);
});
