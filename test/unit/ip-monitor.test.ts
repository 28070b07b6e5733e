// SPDX-License-Identifier: GPL-2.0-only
// `ip -o -4 monitor neigh` lines (src/proto/ip-monitor.ts): the lines iproute2 prints (captured in
// the lab on iproute2 6.1), and anything else is an error, never an exception.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { parseNeighbourLine } from '../../src/proto/ip-monitor.js';
import { ip } from '../support/helpers.js';

test('the neighbour lines iproute2 prints', () => {
  const cases: [string, { ip: number; dev: string; states: string[]; deleted: boolean }][] = [
    ['10.9.0.1 dev pga lladdr 02:c7:b7:d6:33:f4 REACHABLE ', { ip: ip('10.9.0.1'), dev: 'pga', states: ['REACHABLE'], deleted: false }],
    ['10.9.0.1 dev pga FAILED ', { ip: ip('10.9.0.1'), dev: 'pga', states: ['FAILED'], deleted: false }],
    ['[2026-12-01T18:33:57.597507] 10.9.0.1 dev wlan0 FAILED', { ip: ip('10.9.0.1'), dev: 'wlan0', states: ['FAILED'], deleted: false }],
    ['Deleted 10.9.0.1 dev br-lan lladdr 36:e7:9e:9d:72:6a STALE', { ip: ip('10.9.0.1'), dev: 'br-lan', states: ['STALE'], deleted: true }],
    ['miss 10.1.0.5 dev eth0.100 INCOMPLETE', { ip: ip('10.1.0.5'), dev: 'eth0.100', states: ['INCOMPLETE'], deleted: false }],
    [
      '10.0.0.1 dev lo lladdr 00:00:00:00:00:00 PERMANENT NOARP',
      { ip: ip('10.0.0.1'), dev: 'lo', states: ['PERMANENT', 'NOARP'], deleted: false },
    ],
  ];
  for (const [line, want] of cases) {
    const r = parseNeighbourLine(line);
    assert.ok(r.ok, `${line}: ${r.ok ? '' : r.error}`);
    assert.deepEqual(r.value, want, line);
  }
});

test('other lines are errors: IPv6, no device, no state, a long line, garbage', () => {
  for (const line of [
    'fe80::1 dev pga lladdr 02:c7:b7:d6:33:f4 REACHABLE',
    '10.9.0.1 lladdr 02:c7:b7:d6:33:f4 REACHABLE',
    '10.9.0.1 dev pga lladdr 02:c7:b7:d6:33:f4',
    '10.9.0.1 dev averyveryverylongname FAILED',
    '10.9.0.1 dev',
    '',
    'Deleted',
    `10.9.0.1 dev pga ${'x'.repeat(600)} FAILED`,
    '999.1.1.1 dev pga FAILED',
  ]) {
    assert.equal(parseNeighbourLine(line).ok, false, JSON.stringify(line.slice(0, 60)));
  }
  for (let i = 0; i < 5000; i++) {
    const junk = randomBytes(1 + (i % 200)).toString(i % 2 ? 'latin1' : 'utf8');
    assert.doesNotThrow(() => parseNeighbourLine(junk));
    assert.doesNotThrow(() => parseNeighbourLine(`10.0.0.${i % 256} dev ${junk}`));
  }
});
