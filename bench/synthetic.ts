// SPDX-License-Identifier: GPL-2.0-only
// What the MLR benches share: their command-line numbers (checked, with a message naming the option),
// a percentile, and the synthetic register they fill (station n: MAC 02:00:<n as 4 bytes>, cell
// 10.0.0.0 + 4n in cn1's /8 pool, bound at cn1; cn2 without a pool, paired with cn1).
import type { Registry } from '../src/core/registry.js';

/** `--name N`: an integer in [min, max]; `dflt` when absent. Anything else stops the bench. */
export function intArg(name: string, dflt: number, min = 1, max = 10_000_000): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} wants an integer ${min}..${max}`);
  return v;
}

/** `--name TEXT`, or `dflt` when absent. */
export function textArg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (i >= 0 && (v === undefined || v.startsWith('--'))) throw new Error(`--${name} wants a value`);
  return v ?? dflt;
}

/** The nearest-rank percentile p (0..100) of xs. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Station n's MAC: 02:00 and n as four bytes. */
export function stationMac(n: number): string {
  return `02:00:${[24, 16, 8, 0].map((s) => ((n >>> s) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
}

const NET = (10 << 24) >>> 0;

/** Station n's cell: 10.0.0.0 + 4n. */
export function stationCell(n: number): number {
  return (NET + 4 * n) >>> 0;
}

/** cn1 with the 10/8 pool and `bindings` stations bound there; cn2 without a pool, paired with cn1. */
export function fillRegistry(r: Registry, bindings: number): void {
  const pool = { network: NET, prefix: 8, first: NET, last: (NET + 0xffffff) >>> 0, exclude: [] };
  r.registerCn({ name: 'cn1', addr: 0xc0a80001, tunnels: ['vxlan'], pools: [pool] });
  r.registerCn({ name: 'cn2', addr: 0xc0a80002, tunnels: ['vxlan'], pools: [] });
  for (let n = 0; n < bindings; n++)
    r.put({ mac: stationMac(n), cell: stationCell(n), parent: 'cn1', current: 'cn1', state: 'bound', expires: 1e12 });
  r.pairTunnel('cn1', 'cn2');
}
