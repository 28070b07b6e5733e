// SPDX-License-Identifier: GPL-2.0-only
// The CN's data plane as a pure function of the bindings it takes part in. `desiredDataplane` says
// what the kernel should hold (gateway addresses N+2/30 on the mobile interface for MSs served here,
// one tunnel per peer CN in use, /32 routes into tunnels for this CN's own MSs that are away, and the
// hosts whose TCP MSS is clamped); `planDataplane` turns the difference from what is applied into an
// ordered list of operations: build before tearing down, so a move never leaves a gap of our making,
// and the MSS clamp last (it only concerns connections opened after the move).
import { involves, type BindingView } from './binding.js';
import { cellOf, formatIPv4, type IPv4 } from './ip.js';
import { TUNNEL_OVERHEAD, tunnelName, type TunnelSpec } from './tunnel.js';

export interface DataplaneContext {
  self: string;
  selfAddr: IPv4;
  tunnelPrefix: string;
  underlayMtu: number;
}

export interface DataplaneState {
  /** Gateway addresses (N+2) present on the mobile interface, as /30s. */
  gateways: Set<IPv4>;
  tunnels: Map<string, TunnelSpec>;
  /** Host (N+1) -> tunnel device name. */
  routes: Map<IPv4, string>;
  /** Hosts served here through a tunnel: their TCP SYNs get a clamped MSS. */
  clamped: Set<IPv4>;
}

export function emptyDataplane(): DataplaneState {
  return { gateways: new Set(), tunnels: new Map(), routes: new Map(), clamped: new Set() };
}

export function desiredDataplane(bindings: Iterable<BindingView>, ctx: DataplaneContext): DataplaneState {
  const want = emptyDataplane();
  for (const b of bindings) {
    if (!involves(b, ctx.self) || !b.current) continue;
    const cell = cellOf(b.cell);
    const here = b.current.name === ctx.self;
    const parentHere = b.parent.name === ctx.self;
    if (here) want.gateways.add(cell.gateway);
    if (here === parentHere) continue; // at home: no tunnel
    if (!b.tunnel) continue; // MLR always sends one when parent != current
    const peer = here ? b.parent : b.current;
    const name = tunnelName(ctx.tunnelPrefix, b.tunnel.key);
    want.tunnels.set(name, {
      name,
      type: b.tunnel.type,
      local: ctx.selfAddr,
      remote: peer.addr,
      key: b.tunnel.key,
      mtu: ctx.underlayMtu - TUNNEL_OVERHEAD[b.tunnel.type],
    });
    if (parentHere) want.routes.set(cell.host, name);
    else want.clamped.add(cell.host);
  }
  return want;
}

export type DataplaneOp =
  | { op: 'ensure-tunnel'; spec: TunnelSpec }
  | { op: 'add-gateway'; ip: IPv4 }
  | { op: 'route'; ip: IPv4; tunnel: TunnelSpec }
  | { op: 'clamp'; hosts: IPv4[] }
  | { op: 'unroute'; ip: IPv4; dev: string }
  | { op: 'del-gateway'; ip: IPv4 }
  | { op: 'del-tunnel'; name: string };

function sameTunnel(a: TunnelSpec, b: TunnelSpec): boolean {
  return a.type === b.type && a.local === b.local && a.remote === b.remote && a.key === b.key && a.mtu === b.mtu;
}

export function planDataplane(have: DataplaneState, want: DataplaneState): DataplaneOp[] {
  const ops: DataplaneOp[] = [];
  for (const [name, spec] of want.tunnels) {
    const h = have.tunnels.get(name);
    if (!h || !sameTunnel(h, spec)) ops.push({ op: 'ensure-tunnel', spec });
  }
  for (const g of want.gateways) if (!have.gateways.has(g)) ops.push({ op: 'add-gateway', ip: g });
  for (const [host, name] of want.routes) {
    const spec = want.tunnels.get(name)!;
    const h = have.tunnels.get(name);
    if (have.routes.get(host) !== name || !h || !sameTunnel(h, spec)) ops.push({ op: 'route', ip: host, tunnel: spec });
  }
  for (const [host, dev] of have.routes)
    if (want.routes.get(host) !== dev && want.tunnels.has(dev)) ops.push({ op: 'unroute', ip: host, dev });
  for (const g of have.gateways) if (!want.gateways.has(g)) ops.push({ op: 'del-gateway', ip: g });
  for (const name of have.tunnels.keys()) if (!want.tunnels.has(name)) ops.push({ op: 'del-tunnel', name });
  // Last: the clamp matters only for connections opened after the move, and nft is the slowest step.
  const clampChanged = want.clamped.size !== have.clamped.size || [...want.clamped].some((h) => !have.clamped.has(h));
  if (clampChanged) ops.push({ op: 'clamp', hosts: [...want.clamped].sort((a, b) => a - b) });
  return ops;
}

export function describeOp(o: DataplaneOp): string {
  switch (o.op) {
    case 'ensure-tunnel':
      return `tunnel ${o.spec.name} (${o.spec.type} key ${o.spec.key} to ${formatIPv4(o.spec.remote)}, mtu ${o.spec.mtu})`;
    case 'add-gateway':
      return `gateway ${formatIPv4(o.ip)}/30 on the mobile interface`;
    case 'route':
      return `route ${formatIPv4(o.ip)}/32 into ${o.tunnel.name}`;
    case 'clamp':
      return `MSS clamp for ${o.hosts.length} roamed host(s)`;
    case 'unroute':
      return `remove route ${formatIPv4(o.ip)}/32 from ${o.dev}`;
    case 'del-gateway':
      return `remove gateway ${formatIPv4(o.ip)}/30`;
    case 'del-tunnel':
      return `remove tunnel ${o.name}`;
  }
}
