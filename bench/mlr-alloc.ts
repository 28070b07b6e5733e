// SPDX-License-Identifier: GPL-2.0-only
// bench/mlr-alloc: what one new cell costs the MLR (Registry.allocate + put) as a pool fills up, beside
// the plain scan from the pool's first cell that allocate() did before (the reference, run in the
// same process on the same register). Pure CPU, no I/O, no root.
// Usage: node build/bench/mlr-alloc.js [--bindings 100000]
import { cellsOf, type PoolRange } from '../src/core/pool.js';
import { Registry } from '../src/core/registry.js';
import { performance } from 'node:perf_hooks';
import { intArg, stationMac } from './synthetic.js';

const total = intArg('bindings', 100_000, 1, 500_000);
const pool: PoolRange = { network: 0x0a000000, prefix: 12, first: 0x0a000000, last: 0x0a0fffff, exclude: [] };
const r = new Registry(['vxlan']);
if (!r.registerCn({ name: 'cn1', addr: 0x0ac80001, tunnels: ['vxlan'], pools: [pool] }).ok) throw new Error('register');

/** The allocation before the per-pool start: the first free cell, scanned from the pool's first. */
function scan(): number | undefined {
  for (const cell of cellsOf(pool)) if (r.isCellAvailable(cell, 0)) return cell;
  return undefined;
}

let n = 0;
const SAMPLE = 1000;
console.log(`bindings  allocate+put_us  scan_us   ratio scan/allocate`);
for (const level of [1_000, 10_000, 50_000, total].filter((l, i, a) => l <= total && a.indexOf(l) === i)) {
  while (n < level - SAMPLE) {
    const a = r.allocate('cn1')!;
    r.put({ mac: stationMac(n++), cell: a.cell, parent: 'cn1', current: 'cn1', state: 'bound', expires: 1e15 });
  }
  // The reference on this register: SAMPLE scans (they allocate nothing).
  let t = performance.now();
  for (let i = 0; i < SAMPLE; i++) scan();
  const scanUs = ((performance.now() - t) * 1000) / SAMPLE;
  // The real thing: SAMPLE allocations, each put (the register grows by SAMPLE to `level`).
  t = performance.now();
  for (let i = 0; i < SAMPLE; i++) {
    const a = r.allocate('cn1')!;
    r.put({ mac: stationMac(n++), cell: a.cell, parent: 'cn1', current: 'cn1', state: 'bound', expires: 1e15 });
  }
  const allocUs = ((performance.now() - t) * 1000) / SAMPLE;
  console.log(
    `${String(level).padStart(8)}  ${allocUs.toFixed(2).padStart(15)}  ${scanUs.toFixed(1).padStart(8)}  ${(scanUs / allocUs).toFixed(1).padStart(6)}`,
  );
}
