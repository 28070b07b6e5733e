// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import { cellOf, formatIPv4, parseCidr, parseIPv4 } from '../../src/core/ip.js';
import {
  cellsOf,
  countCells,
  describeAvailable,
  firstCell,
  lastCell,
  poolHasCell,
  poolsOverlap,
  resolvePool,
} from '../../src/core/pool.js';
import { ip } from '../support/helpers.js';

const cidr = (s: string) => {
  const r = parseCidr(s);
  assert.ok(r.ok, s);
  return r.value;
};

test('IPv4 parsing rejects junk and formats back', () => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-4', '01.2.3.4x', 'a.b.c.d', '1..2.3'])
    assert.equal(parseIPv4(bad).ok, false, bad);
  assert.equal(formatIPv4(ip('10.13.150.4')), '10.13.150.4');
  assert.equal(formatIPv4(ip('255.255.255.255')), '255.255.255.255');
  assert.equal(parseCidr('10.1.2.3/33').ok, false);
  assert.equal(formatIPv4(cidr('10.1.2.3/16').network), '10.1.0.0');
});

test('a cell is N, N+1 host, N+2 gateway, N+3 broadcast', () => {
  const c = cellOf(ip('10.13.102.6'));
  assert.deepEqual([c.network, c.host, c.gateway, c.broadcast].map(formatIPv4), [
    '10.13.102.4',
    '10.13.102.5',
    '10.13.102.6',
    '10.13.102.7',
  ]);
});

test("an interface pool '* *' offers what the original offered: .4 to .248 of a /24", () => {
  const r = resolvePool({ subnet: cidr('10.13.150.0/24'), exclude: [ip('10.13.150.1')] }, null, null);
  assert.ok(r.ok);
  assert.equal(formatIPv4(firstCell(r.value)!), '10.13.150.4');
  assert.equal(formatIPv4(lastCell(r.value)!), '10.13.150.248');
  assert.equal(countCells(r.value), 62);
  assert.match(describeAvailable(r.value), /Available \[10\.13\.150\.4 --> 10\.13\.150\.248\] mask: 255\.255\.255\.252/);
});

test('first/last narrow the pool to whole cells and exclusions are honoured', () => {
  const r = resolvePool({ subnet: cidr('10.1.0.0/24'), exclude: [ip('10.1.0.9')] }, ip('10.1.0.5'), ip('10.1.0.22'));
  assert.ok(r.ok);
  assert.deepEqual([...cellsOf(r.value)].map(formatIPv4), ['10.1.0.12', '10.1.0.16']);
  assert.equal(poolHasCell(r.value, ip('10.1.0.8')), false, 'holds the excluded address');
  assert.equal(poolHasCell(r.value, ip('10.1.0.20')), false, 'runs past last');
  assert.equal(poolHasCell(r.value, ip('10.1.0.13')), false, 'not a cell network address');
});

test('bad ranges are refused with a reason', () => {
  const s = { subnet: cidr('10.1.0.0/24'), exclude: [] };
  assert.match((resolvePool(s, ip('10.2.0.1'), null) as { error: string }).error, /outside/);
  assert.match((resolvePool(s, ip('10.1.0.100'), ip('10.1.0.50')) as { error: string }).error, /after/);
  assert.match((resolvePool({ subnet: cidr('10.1.0.0/30'), exclude: [] }, null, null) as { error: string }).error, /no whole \/30/);
});

test('pool overlap', () => {
  const a = resolvePool({ subnet: cidr('10.1.0.0/24'), exclude: [] }, null, null);
  const b = resolvePool({ subnet: cidr('10.1.0.128/25'), exclude: [] }, null, null);
  const c = resolvePool({ subnet: cidr('10.2.0.0/24'), exclude: [] }, null, null);
  assert.ok(a.ok && b.ok && c.ok);
  assert.equal(poolsOverlap(a.value, b.value), true);
  assert.equal(poolsOverlap(a.value, c.value), false);
});

test('countCells counts what cellsOf yields without walking the pool', () => {
  const walked = (p: Parameters<typeof countCells>[0]) => {
    let n = 0;
    for (const _ of cellsOf(p)) n++;
    return n;
  };
  let seed = 7;
  const rand = (k: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % k;
  };
  for (let i = 0; i < 400; i++) {
    const prefix = 22 + rand(9); // /22 .. /30
    const size = 2 ** (32 - prefix);
    const network = (ip('10.20.0.0') + rand(64) * 1024) >>> 0;
    const first = network + rand(size);
    const last = Math.min(network + size - 1, first + rand(size));
    const exclude = Array.from({ length: rand(4) }, () => network + rand(size));
    const pool = { network, prefix, first, last, exclude };
    assert.equal(countCells(pool), walked(pool), JSON.stringify(pool));
  }
  // the subnet's edges and the top of the address space
  for (const [c, f, l] of [
    ['10.0.0.0/8', '10.0.0.0', '10.255.255.255'],
    ['255.255.255.0/24', '255.255.255.0', '255.255.255.255'],
    ['255.255.255.252/30', '255.255.255.252', '255.255.255.255'],
    ['0.0.0.0/29', '0.0.0.0', '0.0.0.7'],
  ] as const) {
    const n = cidr(c);
    const pool = { network: n.network, prefix: n.prefix, first: ip(f), last: ip(l), exclude: [] };
    assert.equal(countCells(pool), walked(pool), c);
  }
});
