// SPDX-License-Identifier: GPL-2.0-only
// Address pools: a CN's `addr_pool` resolved to a range of /30 cells. A pool is a subnet (from an
// interface's address or a literal CIDR) narrowed by optional first/last addresses; a cell is usable
// when it lies wholly inside [first, last] and holds neither the subnet's network or broadcast
// address nor an excluded address (the interface's own). E.g. 10.13.150.1/24 with '* *' offers
// 10.13.150.4 .. 10.13.150.248, as the original tmipd did.
import { cellOf, cidrBroadcast, cidrContains, formatIPv4, maskOf, type Cidr, type IPv4 } from './ip.js';
import { err, ok, type Result } from './result.js';

export interface PoolRange {
  network: IPv4;
  prefix: number;
  first: IPv4;
  last: IPv4;
  exclude: IPv4[];
}

export interface PoolSource {
  subnet: Cidr;
  /** Addresses never handed out (the interface's own address when the pool came from an interface). */
  exclude: IPv4[];
}

/** Narrow a subnet by the optional first/last of `addr_pool` ('*' = null = the subnet's edge). */
export function resolvePool(source: PoolSource, first: IPv4 | null, last: IPv4 | null): Result<PoolRange> {
  const { subnet } = source;
  const lo = first ?? subnet.network;
  const hi = last ?? cidrBroadcast(subnet);
  if (!cidrContains(subnet, lo)) return err(`first address ${formatIPv4(lo)} is outside ${formatIPv4(subnet.network)}/${subnet.prefix}`);
  if (!cidrContains(subnet, hi)) return err(`last address ${formatIPv4(hi)} is outside ${formatIPv4(subnet.network)}/${subnet.prefix}`);
  if (lo > hi) return err(`first address ${formatIPv4(lo)} is after last address ${formatIPv4(hi)}`);
  const range: PoolRange = { network: subnet.network, prefix: subnet.prefix, first: lo, last: hi, exclude: [...source.exclude] };
  if (firstCell(range) === undefined) return err(`no whole /30 cell fits in ${describePool(range)}`);
  return ok(range);
}

function cellUsable(pool: PoolRange, network: IPv4): boolean {
  const broadcast = network + 3;
  if (network < pool.first || broadcast > pool.last) return false;
  const subnetBroadcast = (pool.network | (~maskOf(pool.prefix) >>> 0)) >>> 0;
  const holds = (ip: IPv4) => ip >= network && ip <= broadcast;
  if (holds(pool.network) || holds(subnetBroadcast)) return false;
  return !pool.exclude.some(holds);
}

/** Is `network` (a /30 network address) a cell this pool may hand out? */
export function poolHasCell(pool: PoolRange, network: IPv4): boolean {
  return (network & 3) === 0 && cellUsable(pool, network);
}

/** The pool's usable cells in address order, from the first (or the first at or after `from`). */
export function* cellsOf(pool: PoolRange, from = 0): Generator<IPv4, void, undefined> {
  let n = ((Math.max(pool.first, from) + 3) & ~3) >>> 0;
  for (; n + 3 <= pool.last && n >= pool.first; n += 4) {
    if (cellUsable(pool, n)) yield n;
  }
}

export function firstCell(pool: PoolRange): IPv4 | undefined {
  const first = cellsOf(pool).next();
  return first.done ? undefined : first.value;
}

export function lastCell(pool: PoolRange): IPv4 | undefined {
  for (let n = ((pool.last - 3) & ~3) >>> 0; n >= pool.first && n + 3 <= pool.last; n -= 4) {
    if (cellUsable(pool, n)) return n;
    if (n < 4) break;
  }
  return undefined;
}

/**
 * How many cells cellsOf(pool) yields, without walking them (a /8 pool has four million; the CN logs the
 * count at start-up): the aligned /30s inside first..last, less each one that holds the subnet's
 * network or broadcast address or an excluded address.
 */
export function countCells(pool: PoolRange): number {
  const start = Math.ceil(pool.first / 4) * 4;
  const end = Math.floor((pool.last - 3) / 4) * 4;
  if (end < start) return 0;
  const subnetBroadcast = (pool.network | (~maskOf(pool.prefix) >>> 0)) >>> 0;
  const unusable = new Set<number>();
  for (const ip of [pool.network, subnetBroadcast, ...pool.exclude]) {
    const cell = (ip & ~3) >>> 0;
    if (cell >= start && cell <= end) unusable.add(cell);
  }
  return (end - start) / 4 + 1 - unusable.size;
}

/**
 * The subnet and the addresses handed out from it: first cell's network to last cell's broadcast
 * ('10.13.150.0/24 [10.13.150.4 - 10.13.150.251]' for 10.13.150.1/24 '* *'), not the subnet's edges;
 * the configured bounds when no cell fits.
 */
export function describePool(pool: PoolRange): string {
  const a = firstCell(pool);
  const b = lastCell(pool);
  const range =
    a === undefined || b === undefined
      ? `no cell in ${formatIPv4(pool.first)} - ${formatIPv4(pool.last)}`
      : `${formatIPv4(a)} - ${formatIPv4(b + 3)}`;
  return `${formatIPv4(pool.network)}/${pool.prefix} [${range}]`;
}

/** "Available [10.13.150.4 --> 10.13.150.248]", as the original start-up log put it. */
export function describeAvailable(pool: PoolRange): string {
  const a = firstCell(pool);
  const b = lastCell(pool);
  if (a === undefined || b === undefined) return 'Available [none]';
  return `Available [${formatIPv4(a)} --> ${formatIPv4(b)}] mask: 255.255.255.252 (${countCells(pool)} cells)`;
}

export function poolsOverlap(a: PoolRange, b: PoolRange): boolean {
  return a.first <= b.last && b.first <= a.last;
}

/** The pool (of several) that offers the cell holding `ip`, if any. */
export function poolForAddress<P extends PoolRange>(pools: readonly P[], ip: IPv4): P | undefined {
  const network = cellOf(ip).network;
  return pools.find((p) => poolHasCell(p, network));
}
