// SPDX-License-Identifier: GPL-2.0-only
// What the MLR benches share: their command-line numbers (checked, with a message naming the option),
// a percentile, and the synthetic registers they fill: fillRegistry (station n: MAC 02:00:<n as 4
// bytes>, cell 10.0.0.0 + 4n in cn1's /8 pool, bound at cn1; cn2 without a pool, paired with cn1) and
// fillNetwork (bench/mlr: many CNs, each with a /17 of 10/8, stations spread over them round-robin,
// and the bench's per-CN keys).
import fs from 'node:fs';
import { createHash } from 'node:crypto';
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

/** Station n's MAC: 02, `tag` (bench/dhcp: server and step; else 0) and n as four bytes. */
export function stationMac(n: number, tag = 0): string {
  return [2, tag, n >>> 24, n >>> 16, n >>> 8, n].map((b) => (b & 0xff).toString(16).padStart(2, '0')).join(':');
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

/** CN i of a network of many (bench/mlr): its name. */
export function cnName(i: number): string {
  return `cn${i}`;
}

/** Cells each CN's pool holds in fillNetwork() (a /17 of 10/8: 8192 cells). */
const CELLS_PER_CN = 8192;

/** CN i's pool in fillNetwork(): the i-th /17 of 10/8. */
export function cnPool(i: number): { network: number; prefix: number; first: number; last: number; exclude: number[] } {
  const network = (NET + i * CELLS_PER_CN * 4) >>> 0;
  return { network, prefix: 17, first: network, last: (network + CELLS_PER_CN * 4 - 1) >>> 0, exclude: [] };
}

/** CN i's backbone address in fillNetwork(): 172.16.0.0 + i + 1. */
export function cnAddr(i: number): number {
  return ((172 << 24) + (16 << 16) + i + 1) >>> 0;
}

/** In fillNetwork(): station n's home CN (parent and, at first, current) and its cell there. */
export function homeOf(n: number, cns: number): { cn: number; cell: number } {
  const cn = n % cns;
  return { cn, cell: (cnPool(cn).first + 4 * Math.floor(n / cns)) >>> 0 };
}

/**
 * A network of `cns` CNs (cnName(i), each with its own /17 pool and every tunnel type) and `bindings`
 * stations spread over them round-robin, each bound at its home CN until `expires`.
 */
export function fillNetwork(r: Registry, bindings: number, cns: number, expires: number): void {
  if (bindings > cns * CELLS_PER_CN) throw new Error(`${bindings} bindings do not fit into ${cns} pools of ${CELLS_PER_CN} cells`);
  if (cns * CELLS_PER_CN * 4 > 0x1000000) throw new Error(`${cns} CNs' pools do not fit into 10/8`);
  for (let i = 0; i < cns; i++) {
    const reg = r.registerCn({ name: cnName(i), addr: cnAddr(i), tunnels: ['vxlan'], pools: [cnPool(i)] });
    if (!reg.ok) throw new Error(reg.error);
  }
  for (let n = 0; n < bindings; n++) {
    const h = homeOf(n, cns);
    const p = r.put({ mac: stationMac(n), cell: h.cell, parent: cnName(h.cn), current: cnName(h.cn), state: 'bound', expires });
    if (!p.ok) throw new Error(p.error);
  }
}

/** The bench's key for CN i (64 hex digits; a fixed function of the name, good for a bench only). */
export function benchSecret(i: number): string {
  return createHash('sha256')
    .update(`tmip-bench-${cnName(i)}`)
    .digest('hex');
}

/**
 * VmRSS, VmHWM (peak RSS) and RssAnon of a process, in MB (/proc/PID/status). RssAnon is the private
 * part (heap, stacks, buffers); the rest of VmRSS is mostly the pages of the node binary and its
 * libraries, shared with every other Node process and dropped by the kernel under memory pressure.
 */
export function processMemory(pid: number): { rss: number; hwm: number; anon: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024 };
}
