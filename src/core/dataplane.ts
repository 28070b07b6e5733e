// SPDX-License-Identifier: GPL-2.0-only
// The CN's data plane as a pure function of the bindings it takes part in. `desiredDataplane` says
// what the kernel should hold (gateway addresses N+2/30 on the mobile interface for MSs served here,
// one tunnel per peer CN in use, /32 routes into tunnels for this CN's own MSs that are away, and the
// hosts whose TCP MSS is clamped); `planDataplane` turns the difference from what is applied into an
// ordered list of operations: build before tearing down, so a move never leaves a gap of our making.
// `IncrementalDataplane` keeps the same desired state up to date one binding at a time (refcounted
// gateways, tunnels, routes and clamped hosts), and `planTouched` plans only the items a set of
// changes touched, so a commit costs the same with 5 bindings or 5000. Tunnels no longer wanted are
// never removed by a plan: the driver keeps them for a linger time (a station roaming back finds its
// tunnel) and removes them itself.
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

/** What one binding asks of the kernel here: a gateway, a tunnel, and a route or a clamp (each optional). */
export interface Contribution {
  gateway?: IPv4;
  tunnel?: TunnelSpec;
  /** Host N+1 routed into `tunnel` (this CN is the parent of an MS that is away). */
  route?: IPv4;
  /** Host N+1 served here through `tunnel`: its TCP SYNs get a clamped MSS. */
  clamp?: IPv4;
}

/** The part of the data plane one binding needs (empty when it does not involve this CN). */
export function contributionOf(b: BindingView, ctx: DataplaneContext): Contribution {
  if (!involves(b, ctx.self) || !b.current) return {};
  const cell = cellOf(b.cell);
  const here = b.current.name === ctx.self;
  const parentHere = b.parent.name === ctx.self;
  const c: Contribution = here ? { gateway: cell.gateway } : {};
  if (here === parentHere || !b.tunnel) return c; // at home: no tunnel (the MLR always sends one otherwise)
  const peer = here ? b.parent : b.current;
  const name = tunnelName(ctx.tunnelPrefix, b.tunnel.key);
  c.tunnel = {
    name,
    type: b.tunnel.type,
    local: ctx.selfAddr,
    remote: peer.addr,
    key: b.tunnel.key,
    mtu: ctx.underlayMtu - TUNNEL_OVERHEAD[b.tunnel.type],
  };
  if (parentHere) c.route = cell.host;
  else c.clamp = cell.host;
  return c;
}

export function desiredDataplane(bindings: Iterable<BindingView>, ctx: DataplaneContext): DataplaneState {
  const want = emptyDataplane();
  for (const b of bindings) {
    const c = contributionOf(b, ctx);
    if (c.gateway !== undefined) want.gateways.add(c.gateway);
    if (!c.tunnel) continue;
    want.tunnels.set(c.tunnel.name, c.tunnel);
    if (c.route !== undefined) want.routes.set(c.route, c.tunnel.name);
    if (c.clamp !== undefined) want.clamped.add(c.clamp);
  }
  return want;
}

/** The items of a data plane that some change may have altered (what `planTouched` looks at). */
export interface Touched {
  gateways: Set<IPv4>;
  tunnels: Set<string>;
  /** Hosts whose route or clamp may have changed. */
  hosts: Set<IPv4>;
}

export function emptyTouched(): Touched {
  return { gateways: new Set(), tunnels: new Set(), hosts: new Set() };
}

export function mergeTouched(into: Touched, from: Touched): void {
  for (const g of from.gateways) into.gateways.add(g);
  for (const t of from.tunnels) into.tunnels.add(t);
  for (const h of from.hosts) into.hosts.add(h);
}

export function touchedIsEmpty(t: Touched): boolean {
  return t.gateways.size === 0 && t.tunnels.size === 0 && t.hosts.size === 0;
}

/** Every item either state holds. */
export function touchedAll(a: DataplaneState, b: DataplaneState): Touched {
  const t = emptyTouched();
  for (const s of [a, b]) {
    for (const g of s.gateways) t.gateways.add(g);
    for (const n of s.tunnels.keys()) t.tunnels.add(n);
    for (const h of s.routes.keys()) t.hosts.add(h);
    for (const h of s.clamped) t.hosts.add(h);
  }
  return t;
}

/** Count one more holder of `key`. */
function holdRef<K>(refs: Map<K, number>, key: K): void {
  refs.set(key, (refs.get(key) ?? 0) + 1);
}

/** Count one holder of `key` less; true when it was the last. */
function releaseRef<K>(refs: Map<K, number>, key: K): boolean {
  const n = (refs.get(key) ?? 1) - 1;
  if (n > 0) refs.set(key, n);
  else refs.delete(key);
  return n <= 0;
}

/**
 * The desired data plane, kept up to date binding by binding: `set(key, binding)` costs the same
 * whatever the number of bindings. `want` always equals `desiredDataplane` of the bindings set (when
 * bindings agree on each tunnel's parameters and each host's cell, which the MLR guarantees; on a
 * disagreement the latest binding set wins).
 */
export class IncrementalDataplane {
  readonly want: DataplaneState = emptyDataplane();
  private readonly byKey = new Map<string, Contribution>();
  /** How many bindings ask for each item. */
  private readonly gatewayRefs = new Map<IPv4, number>();
  private readonly tunnelRefs = new Map<string, number>();
  private readonly routeRefs = new Map<IPv4, number>();
  private readonly clampRefs = new Map<IPv4, number>();

  constructor(private readonly ctx: DataplaneContext) {}

  keys(): IterableIterator<string> {
    return this.byKey.keys();
  }

  /** Set (or with undefined, drop) the binding under `key` (its MAC); adds the items it changed to `touched`. */
  set(key: string, b: BindingView | undefined, touched: Touched): void {
    const next = b ? contributionOf(b, this.ctx) : {};
    const prev = this.byKey.get(key);
    if (prev) this.release(prev, touched);
    if (next.gateway !== undefined || next.tunnel) {
      this.byKey.set(key, next);
      this.hold(next, touched);
    } else {
      this.byKey.delete(key);
    }
  }

  private hold(c: Contribution, touched: Touched): void {
    if (c.gateway !== undefined) {
      holdRef(this.gatewayRefs, c.gateway);
      this.want.gateways.add(c.gateway);
      touched.gateways.add(c.gateway);
    }
    if (!c.tunnel) return;
    const name = c.tunnel.name;
    holdRef(this.tunnelRefs, name);
    this.want.tunnels.set(name, c.tunnel);
    touched.tunnels.add(name);
    if (c.route !== undefined) {
      holdRef(this.routeRefs, c.route);
      this.want.routes.set(c.route, name);
      touched.hosts.add(c.route);
    }
    if (c.clamp !== undefined) {
      holdRef(this.clampRefs, c.clamp);
      this.want.clamped.add(c.clamp);
      touched.hosts.add(c.clamp);
    }
  }

  private release(c: Contribution, touched: Touched): void {
    if (c.gateway !== undefined) {
      if (releaseRef(this.gatewayRefs, c.gateway)) this.want.gateways.delete(c.gateway);
      touched.gateways.add(c.gateway);
    }
    if (!c.tunnel) return;
    const name = c.tunnel.name;
    if (releaseRef(this.tunnelRefs, name)) this.want.tunnels.delete(name);
    touched.tunnels.add(name);
    if (c.route !== undefined) {
      if (releaseRef(this.routeRefs, c.route)) this.want.routes.delete(c.route);
      touched.hosts.add(c.route);
    }
    if (c.clamp !== undefined) {
      if (releaseRef(this.clampRefs, c.clamp)) this.want.clamped.delete(c.clamp);
      touched.hosts.add(c.clamp);
    }
  }
}

export type DataplaneOp =
  | { op: 'ensure-tunnel'; spec: TunnelSpec }
  | { op: 'add-gateway'; ip: IPv4 }
  | { op: 'route'; ip: IPv4; tunnel: TunnelSpec }
  /** Add hosts to and remove hosts from the MSS-clamped set. */
  | { op: 'clamp'; add: IPv4[]; del: IPv4[] }
  | { op: 'unroute'; ip: IPv4; dev: string }
  | { op: 'del-gateway'; ip: IPv4 }
  | { op: 'del-tunnel'; name: string };

export function sameTunnel(a: TunnelSpec, b: TunnelSpec): boolean {
  return a.type === b.type && a.local === b.local && a.remote === b.remote && a.key === b.key && a.mtu === b.mtu;
}

/**
 * The operations that make `have` match `want` for the items in `touched` (others are not looked
 * at), in order: tunnels, gateways, routes, the clamp set, then what goes (routes, gateways). A
 * tunnel no longer wanted is left in place (the driver removes it after its linger time); routes
 * into it are removed. A tunnel (re-)created loses its routes, so every wanted route into it is
 * planned again (the only part that looks beyond `touched`, and only for a tunnel whose parameters
 * changed).
 */
export function planTouched(have: DataplaneState, want: DataplaneState, touched: Touched): DataplaneOp[] {
  const ops: DataplaneOp[] = [];
  const rebuilt = new Set<string>();
  for (const name of touched.tunnels) {
    const spec = want.tunnels.get(name);
    if (!spec) continue;
    const h = have.tunnels.get(name);
    if (h && sameTunnel(h, spec)) continue;
    ops.push({ op: 'ensure-tunnel', spec });
    if (h) rebuilt.add(name);
  }
  for (const g of touched.gateways) if (want.gateways.has(g) && !have.gateways.has(g)) ops.push({ op: 'add-gateway', ip: g });
  const routed = new Set<IPv4>();
  const route = (host: IPv4, name: string) => {
    if (routed.has(host)) return;
    routed.add(host);
    ops.push({ op: 'route', ip: host, tunnel: want.tunnels.get(name)! });
  };
  for (const host of touched.hosts) {
    const name = want.routes.get(host);
    if (name === undefined) continue;
    const h = have.tunnels.get(name);
    if (have.routes.get(host) !== name || !h || !sameTunnel(h, want.tunnels.get(name)!)) route(host, name);
  }
  if (rebuilt.size > 0) for (const [host, name] of want.routes) if (rebuilt.has(name)) route(host, name);
  const add: IPv4[] = [];
  const del: IPv4[] = [];
  for (const host of touched.hosts) {
    const w = want.clamped.has(host);
    if (w !== have.clamped.has(host)) (w ? add : del).push(host);
  }
  if (add.length + del.length > 0) ops.push({ op: 'clamp', add: add.sort((a, b) => a - b), del: del.sort((a, b) => a - b) });
  for (const host of touched.hosts) {
    const dev = have.routes.get(host);
    if (dev !== undefined && want.routes.get(host) !== dev) ops.push({ op: 'unroute', ip: host, dev });
  }
  for (const g of touched.gateways) if (have.gateways.has(g) && !want.gateways.has(g)) ops.push({ op: 'del-gateway', ip: g });
  return ops;
}

/** The whole plan from `have` to `want` (every item either holds); tunnels no longer wanted are left in place. */
export function planDataplane(have: DataplaneState, want: DataplaneState): DataplaneOp[] {
  return planTouched(have, want, touchedAll(have, want));
}

/** Tunnels `have` holds that `want` does not (what the driver lets linger, then removes). */
export function idleTunnels(have: DataplaneState, want: DataplaneState, among: Iterable<string> = have.tunnels.keys()): string[] {
  const out: string[] = [];
  for (const name of among) if (have.tunnels.has(name) && !want.tunnels.has(name)) out.push(name);
  return out;
}

/** Hosts for a log line: the first few, then how many more (a re-bind may clamp thousands at once). */
function hostList(hosts: IPv4[], max = 8): string {
  if (hosts.length === 0) return 'none';
  const shown = hosts.slice(0, max).map(formatIPv4).join(' ');
  return hosts.length > max ? `${shown} (+${hosts.length - max} more)` : shown;
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
      return `MSS clamp: add ${hostList(o.add)}, remove ${hostList(o.del)}`;
    case 'unroute':
      return `remove route ${formatIPv4(o.ip)}/32 from ${o.dev}`;
    case 'del-gateway':
      return `remove gateway ${formatIPv4(o.ip)}/30`;
    case 'del-tunnel':
      return `remove tunnel ${o.name}`;
  }
}
