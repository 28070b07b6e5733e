// SPDX-License-Identifier: GPL-2.0-only
// Tunnel vocabulary shared by the MLR (which agrees a type per CN pair) and the CN (which builds it):
// the known tunnel types in default preference order, their encapsulation overhead, and device naming.
import type { IPv4 } from './ip.js';

export const TUNNEL_TYPES = ['ipip', 'gre', 'vxlan'] as const;
export type TunnelType = (typeof TUNNEL_TYPES)[number];

export function isTunnelType(s: string): s is TunnelType {
  return (TUNNEL_TYPES as readonly string[]).includes(s);
}

/** Bytes of outer headers each type adds to an inner IPv4 packet. */
export const TUNNEL_OVERHEAD: Record<TunnelType, number> = {
  ipip: 20, // outer IPv4
  gre: 28, // outer IPv4 + GRE with key
  vxlan: 50, // outer IPv4 + UDP + VXLAN + inner Ethernet
};

/** One point-to-point tunnel between this CN and a peer CN, as the kernel should have it. */
export interface TunnelSpec {
  /** Device name: `${tunnel_prefix}${id}`; at most 15 bytes (IFNAMSIZ-1). */
  name: string;
  type: TunnelType;
  local: IPv4;
  remote: IPv4;
  /** Pair id agreed by the MLR: the GRE key or VXLAN VNI (1 .. 2^24-1). */
  key: number;
  mtu: number;
}

export function tunnelName(prefix: string, key: number): string {
  return `${prefix}${key}`;
}

/** Agree a tunnel type for a pair: the first of `preference` that both ends support. */
export function agreeTunnelType(
  preference: readonly TunnelType[],
  a: readonly TunnelType[],
  b: readonly TunnelType[],
): TunnelType | undefined {
  return preference.find((t) => a.includes(t) && b.includes(t));
}
