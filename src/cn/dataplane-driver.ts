// SPDX-License-Identifier: GPL-2.0-only
// DataplaneDriver: makes the kernel match core/dataplane.ts's desired state through NetOps. It reads
// what a previous run left (tunnels named with tunnel_prefix, gateway addresses carrying our label,
// routes into our tunnels) and creates the MSS-clamp table with its empty set once, at load. Then:
// - update(mac, binding) changes the desired state for one binding (IncrementalDataplane) and plans
//   only what that touched; apply(bindings) replaces every binding (a re-bind) and checks everything.
// - Changes that arrive while a plan runs are merged into the next plan (one plan, one batch).
// - Within a plan, every operation is issued at once in plan order, build before teardown (the
//   `ip -batch` runner sends them in one write and the kernel applies them in that order; where
//   each command is spawned instead they may overlap for a command's time); only a
//   route waits for its tunnel's creation, and a teardown of that route's host for the route. Each
//   operation is logged once done, after the turn of the event loop in which its commit answers
//   (logLater); errors are logged at once, per operation, and reported to the callers whose change
//   touched that item.
// - Clamp-set changes (nft) run after the plan, on a chain of their own that no commit waits for
//   (clampLater).
// - A tunnel no binding needs any more lingers (`tunnel_linger`, default TUNNEL_LINGER_MS), then is
//   deleted off the plan queue; prepare(binding) creates ahead the tunnel a coming commit will need.
// It keeps a model (`state`) of what it applied.
import { monotonicMs } from '../core/clock.js';
import {
  contributionOf,
  describeOp,
  emptyDataplane,
  emptyTouched,
  IncrementalDataplane,
  mergeTouched,
  planTouched,
  sameTunnel,
  touchedAll,
  touchedIsEmpty,
  type DataplaneContext,
  type DataplaneOp,
  type DataplaneState,
  type Touched,
} from '../core/dataplane.js';
import type { IPv4 } from '../core/ip.js';
import type { BindingView } from '../core/binding.js';
import { TUNNEL_OVERHEAD, TUNNEL_TYPES, type TunnelSpec, type TunnelType } from '../core/tunnel.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { NetOps } from '../platform/netops.js';

/** How long a tunnel no binding needs is kept, for a station that roams back. */
export const TUNNEL_LINGER_MS = 60_000;

export interface DataplaneDriverOptions extends DataplaneContext {
  mobileIf: string;
  mssClamp: boolean;
  log: LogFn;
  /** Called as soon as a gateway address is in place (before the rest of the plan runs). */
  onGatewayAdded?: (ip: IPv4) => void;
  /** How long an unused tunnel is kept (default TUNNEL_LINGER_MS). */
  lingerMs?: number;
  /** Tunnel types this CN may build: the clamp's MSS allows for the largest overhead among them (default all). */
  tunnelTypes?: readonly TunnelType[];
}

/** The label our gateway addresses carry: "<mobile_if>:<prefix>", shortened to fit 15 bytes. */
export function gatewayLabel(mobileIf: string, prefix: string): string {
  const room = 15 - mobileIf.length - 1;
  if (room >= prefix.length) return `${mobileIf}:${prefix}`;
  let h = 0;
  for (const ch of prefix) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `${mobileIf}:${h.toString(36).slice(0, Math.max(1, room))}`;
}

/** The nftables table of the MSS clamp (tmip-cn deletes it on stop). */
export function clampTableName(tunnelPrefix: string): string {
  return `tmip_${tunnelPrefix}`;
}

/** The MSS SYNs of clamped hosts are lowered to: the underlay MTU less the largest tunnel overhead and 40 bytes of IPv4+TCP. */
export function clampMss(underlayMtu: number, types: readonly TunnelType[]): number {
  const overhead = Math.max(0, ...types.map((t) => TUNNEL_OVERHEAD[t]));
  return underlayMtu - overhead - 40;
}

/** The operations a plan runs itself (clamp-set changes go to clampLater). */
type KernelOp = Exclude<DataplaneOp, { op: 'clamp' }>;

interface Waiter {
  touched: Touched;
  resolve: (added: IPv4[]) => void;
  reject: (e: Error) => void;
}

/** The items an operation changes, as `t:name`, `g:ip`, `h:ip` (errors go to the changes that touched them). */
function itemsOf(o: DataplaneOp): string[] {
  switch (o.op) {
    case 'ensure-tunnel':
      return [`t:${o.spec.name}`];
    case 'del-tunnel':
      return [`t:${o.name}`];
    case 'add-gateway':
    case 'del-gateway':
      return [`g:${o.ip}`];
    case 'route':
    case 'unroute':
      return [`h:${o.ip}`];
    case 'clamp':
      return [...o.add, ...o.del].map((h) => `h:${h}`);
  }
}

function touches(t: Touched, item: string): boolean {
  const v = item.slice(2);
  if (item.startsWith('t:')) return t.tunnels.has(v);
  if (item.startsWith('g:')) return t.gateways.has(Number(v));
  return t.hosts.has(Number(v));
}

export class DataplaneDriver {
  private have: DataplaneState = emptyDataplane();
  private readonly model: IncrementalDataplane;
  /** Touched by changes not yet planned, and the callers waiting for them. */
  private pending = emptyTouched();
  private waiters: Waiter[] = [];
  /** Items whose operation failed: looked at again by the next plan. */
  private retry = emptyTouched();
  /** Tunnels to create ahead of a commit (prepare), by name. */
  private readonly prepared = new Map<string, TunnelSpec>();
  private running = false;
  /** The next plan reads the gateways on the mobile interface first (mobileRecreated). */
  private rereadGateways = false;
  /** The clamp set's changes, in order (clampLater). */
  private clamping: Promise<void> = Promise.resolve();
  /** Linger timers of tunnels no binding needs. */
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  /** Tunnel deletions under way (off the plan queue); an ensure of that name waits for it. */
  private readonly deleting = new Map<string, Promise<void>>();
  /** Tunnels load() found whose use is not known yet: deleted at once when the first plan does not want them. */
  private readonly stale = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  /** Lines logLater holds until the next turn of the event loop. */
  private readonly laterLines: [number, string][] = [];
  readonly stats = { plans: 0, changes: 0, ops: 0, precreated: 0, expired: 0 };
  readonly label: string;
  readonly clampTable: string;
  readonly mss: number;

  constructor(
    private readonly net: NetOps,
    private readonly opts: DataplaneDriverOptions,
  ) {
    this.label = gatewayLabel(opts.mobileIf, opts.tunnelPrefix);
    this.clampTable = clampTableName(opts.tunnelPrefix);
    this.mss = clampMss(opts.underlayMtu, opts.tunnelTypes ?? TUNNEL_TYPES);
    this.model = new IncrementalDataplane(opts);
  }

  /**
   * Learn what a previous run left in the kernel, so the first apply keeps what is still wanted, and
   * create the MSS-clamp table afresh (empty set; spawns nft, which start-up may).
   */
  async load(): Promise<void> {
    await this.idle();
    const have = emptyDataplane();
    for (const name of await this.net.listTunnels(this.opts.tunnelPrefix)) {
      // Parameters unknown: the first plan that wants it re-ensures it (kept by NetOps when they match).
      have.tunnels.set(name, { name, type: 'vxlan', local: 0, remote: 0, key: -1, mtu: 0 });
    }
    have.gateways = await this.gatewaysOnMobile();
    for (const r of await this.net.listTunnelRoutes(this.opts.tunnelPrefix)) have.routes.set(r.ip, r.dev);
    await this.net.deleteMssClamp(this.clampTable);
    if (this.opts.mssClamp) await this.net.setMssClamp(this.clampTable, this.opts.mobileIf, this.mss, []);
    this.have = have;
    // Whatever is loaded is looked at by the next plan; a tunnel found that it does not want is
    // deleted then (no linger: nothing says a station will need it).
    mergeTouched(this.retry, touchedAll(have, this.model.want));
    for (const name of have.tunnels.keys()) this.stale.add(name);
    this.opts.log(
      LOG.info,
      `found ${have.tunnels.size} tunnel(s), ${have.gateways.size} gateway address(es), ${have.routes.size} tunnel route(s) from an earlier run`,
    );
  }

  /**
   * The mobile interface was deleted and created again (a new index): the kernel dropped its gateway
   * addresses with the old device. The next plan first reads which are on the interface now, then
   * puts back every gateway wanted (each announced through onGatewayAdded). Resolves with those added.
   */
  mobileRecreated(): Promise<IPv4[]> {
    this.rereadGateways = true;
    const touched = emptyTouched();
    for (const g of this.have.gateways) touched.gateways.add(g);
    for (const g of this.model.want.gateways) touched.gateways.add(g);
    return this.enqueue(touched);
  }

  /** Apply the desired state for exactly these bindings (a re-bind); resolves with the gateways newly added. */
  apply(bindings: Iterable<BindingView>): Promise<IPv4[]> {
    const touched = emptyTouched();
    const seen = new Set<string>();
    for (const b of bindings) {
      seen.add(b.mac);
      this.model.set(b.mac, b, touched);
    }
    for (const key of [...this.model.keys()]) if (!seen.has(key)) this.model.set(key, undefined, touched);
    mergeTouched(touched, touchedAll(this.have, this.model.want));
    return this.enqueue(touched);
  }

  /** One binding changed (undefined: it no longer involves us); resolves with the gateways the plan added. */
  update(mac: string, binding: BindingView | undefined): Promise<IPv4[]> {
    const touched = emptyTouched();
    this.model.set(mac, binding, touched);
    return this.enqueue(touched);
  }

  /** A move of `binding` is being prepared: create the tunnel its commit will need, now. */
  prepare(binding: BindingView): void {
    const spec = contributionOf(binding, this.opts).tunnel;
    if (!spec) return;
    const h = this.have.tunnels.get(spec.name);
    if (h && sameTunnel(h, spec) && !this.deleting.has(spec.name)) {
      this.cancelLinger(spec.name); // it will be needed: keep it (linger restarts if the move is aborted)
      this.startLinger(spec.name);
      return;
    }
    this.prepared.set(spec.name, spec);
    this.kick();
  }

  get state(): DataplaneState {
    return this.have;
  }

  /** The desired state the bindings given so far call for. */
  get desired(): DataplaneState {
    return this.model.want;
  }

  /** Resolves when no plan is running or pending and the clamp set's changes are done (tests; load). */
  async idle(): Promise<void> {
    if (this.running) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.clamping;
  }

  /** Stop the linger timers (the tunnels stay, as on any stop). */
  close(): void {
    for (const t of this.lingering.values()) clearTimeout(t);
    this.lingering.clear();
  }

  private enqueue(touched: Touched): Promise<IPv4[]> {
    this.stats.changes++;
    return new Promise<IPv4[]>((resolve, reject) => {
      mergeTouched(this.pending, touched);
      this.waiters.push({ touched, resolve, reject });
      this.kick();
    });
  }

  /** Start the plan loop unless it runs; changes made in the same tick join the same plan. */
  private kick(): void {
    if (this.running) return;
    this.running = true;
    queueMicrotask(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.waiters.length > 0 || this.prepared.size > 0) {
        const touched = this.pending;
        const waiters = this.waiters;
        const prepared = [...this.prepared.values()];
        this.pending = emptyTouched();
        this.waiters = [];
        this.prepared.clear();
        if (this.rereadGateways) {
          this.rereadGateways = false;
          await this.readGateways();
        }
        if (waiters.length > 0 && !touchedIsEmpty(this.retry)) {
          mergeTouched(touched, this.retry);
          this.retry = emptyTouched();
        }
        await this.plan(touched, waiters, prepared);
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Our gateways (our label, /30) on the mobile interface now. */
  private async gatewaysOnMobile(): Promise<Set<IPv4>> {
    const info = await this.net.interfaceInfo(this.opts.mobileIf);
    return new Set(info.addresses.filter((a) => a.label === this.label && a.prefix === 30).map((a) => a.ip));
  }

  /** After mobileRecreated: which gateways are there now (none when unreadable: all are added again). */
  private async readGateways(): Promise<void> {
    this.have.gateways = await this.gatewaysOnMobile().catch((e: unknown) => {
      this.opts.log(
        LOG.error,
        `dataplane: cannot read the gateways on ${this.opts.mobileIf}: ${e instanceof Error ? e.message : String(e)}`,
      );
      return new Set<IPv4>();
    });
  }

  private async plan(touched: Touched, waiters: Waiter[], prepared: TunnelSpec[]): Promise<void> {
    const want = this.model.want;
    const ops = planTouched(this.have, want, touched);
    for (const spec of prepared) {
      const h = this.have.tunnels.get(spec.name);
      if (want.tunnels.has(spec.name) || (h && sameTunnel(h, spec))) continue;
      ops.unshift({ op: 'ensure-tunnel', spec });
      this.stats.precreated++;
    }
    this.stats.plans++;
    this.stats.ops += ops.length;
    const started = monotonicMs();
    const { added, failed } = await this.execute(ops);
    if (ops.length > 0)
      this.logLater(
        LOG.debug,
        `dataplane: plan of ${ops.length} op(s) for ${waiters.length} change(s)${prepared.length ? ', prepared' : ''} took ${(monotonicMs() - started).toFixed(1)} ms`,
      );
    // Tunnels nobody needs now linger; those needed again are kept.
    const looked = new Set([...touched.tunnels, ...prepared.map((s) => s.name)]);
    for (const o of ops) if (o.op === 'ensure-tunnel') looked.add(o.spec.name);
    for (const name of looked) {
      if (!this.have.tunnels.has(name)) continue;
      if (want.tunnels.has(name)) {
        this.cancelLinger(name);
        if (sameTunnel(this.have.tunnels.get(name)!, want.tunnels.get(name)!)) this.stale.delete(name);
      } else if (this.stale.delete(name)) this.expire(name, 'found at start-up, not wanted');
      else this.startLinger(name);
    }
    for (const [item] of failed) {
      const v = item.slice(2);
      if (item.startsWith('t:')) this.retry.tunnels.add(v);
      else if (item.startsWith('g:')) this.retry.gateways.add(Number(v));
      else this.retry.hosts.add(Number(v));
    }
    for (const w of waiters) {
      const mine = [...failed].filter(([item]) => touches(w.touched, item)).map(([, msg]) => msg);
      if (mine.length > 0) w.reject(new Error([...new Set(mine)].join('; ')));
      else w.resolve(added);
    }
  }

  /**
   * Run a plan: every operation is issued at once, in plan order (build, then teardown), so the
   * `ip -batch` runner gets them in one write and the kernel applies them in that order: nothing is
   * torn down before what replaces it is built, and a commit costs one round trip. Only these wait:
   * a route for its tunnel's creation, and a teardown of the same host (its old route, or the
   * gateway of its cell) for that route. The clamp set's changes go last, after the plan (clampLater).
   */
  private async execute(ops: DataplaneOp[]): Promise<{ added: IPv4[]; failed: Map<string, string> }> {
    const added: IPv4[] = [];
    const failed = new Map<string, string>();
    const runOp = async (o: KernelOp): Promise<void> => {
      const started = monotonicMs();
      try {
        await this.perform(o, added);
        this.logLater(LOG.handover, `dataplane: ${describeOp(o)} (${(monotonicMs() - started).toFixed(1)} ms)`);
      } catch (e) {
        const msg = `dataplane: ${describeOp(o)} failed: ${e instanceof Error ? e.message : String(e)}`;
        this.opts.log(LOG.error, msg);
        for (const item of itemsOf(o)) failed.set(item, msg);
      }
    };
    const tunnels = new Map<string, Promise<void>>();
    /** Routes issued only after their tunnel, by host: a teardown of that host waits for them. */
    const deferred = new Map<IPv4, Promise<void>>();
    const after = (dep: Promise<void> | undefined, o: KernelOp) => (dep ? dep.then(() => runOp(o)) : runOp(o));
    const all: Promise<void>[] = [];
    const clamps: Extract<DataplaneOp, { op: 'clamp' }>[] = [];
    for (const o of ops) {
      switch (o.op) {
        case 'ensure-tunnel': {
          const p = runOp(o);
          tunnels.set(o.spec.name, p);
          all.push(p);
          break;
        }
        case 'route': {
          const dep = tunnels.get(o.tunnel.name);
          const p = after(dep, o);
          if (dep) deferred.set(o.ip, p);
          all.push(p);
          break;
        }
        case 'clamp':
          clamps.push(o);
          break;
        case 'unroute':
          all.push(after(deferred.get(o.ip), o));
          break;
        case 'del-gateway':
          all.push(after(deferred.get(o.ip - 1), o)); // the cell's host N+1 moving into a tunnel
          break;
        default:
          all.push(runOp(o));
      }
    }
    await Promise.all(all);
    for (const o of clamps) this.clampLater(o);
    return { added, failed };
  }

  private async perform(o: KernelOp, added: IPv4[]): Promise<void> {
    switch (o.op) {
      case 'ensure-tunnel': {
        const deleting = this.deleting.get(o.spec.name);
        if (deleting) await deleting;
        await this.net.ensureTunnel(o.spec);
        this.have.tunnels.set(o.spec.name, o.spec);
        break;
      }
      case 'add-gateway':
        await this.net.addAddress(this.opts.mobileIf, o.ip, 30, this.label);
        this.have.gateways.add(o.ip);
        added.push(o.ip);
        this.opts.onGatewayAdded?.(o.ip);
        break;
      case 'route':
        await this.net.routeHostIntoTunnel(o.ip, o.tunnel);
        this.have.routes.set(o.ip, o.tunnel.name);
        break;
      case 'unroute':
        await this.net.deleteHostRoute(o.ip, o.dev);
        // A 'route' op of this plan may already have moved the host to another tunnel.
        if (this.have.routes.get(o.ip) === o.dev) this.have.routes.delete(o.ip);
        break;
      case 'del-gateway':
        await this.net.deleteAddress(this.opts.mobileIf, o.ip, 30);
        this.have.gateways.delete(o.ip);
        break;
      case 'del-tunnel':
        await this.net.deleteLink(o.name);
        this.have.tunnels.delete(o.name);
        for (const [host, dev] of this.have.routes) if (dev === o.name) this.have.routes.delete(host);
        break;
    }
  }

  /**
   * The clamp set changes through nft, the slowest tool, and matter only for connections opened after
   * the move: they run in order on their own chain, which no commit waits for, and start only after
   * the current turn of the event loop (the commit that planned them answers and logs first). The
   * model takes them as done when issued (later plans see them, and nft gets them in that order); a
   * failure is logged, undone in the model and looked at again by the next plan.
   */
  private clampLater(o: Extract<DataplaneOp, { op: 'clamp' }>): void {
    for (const h of o.add) this.have.clamped.add(h);
    for (const h of o.del) this.have.clamped.delete(h);
    this.clamping = this.clamping
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(async () => {
        const started = monotonicMs();
        try {
          if (this.opts.mssClamp) await this.net.updateMssClamp(this.clampTable, o.add, o.del);
          this.opts.log(LOG.handover, `dataplane: ${describeOp(o)} (${(monotonicMs() - started).toFixed(1)} ms)`);
        } catch (e) {
          this.opts.log(LOG.error, `dataplane: ${describeOp(o)} failed: ${e instanceof Error ? e.message : String(e)}`);
          for (const h of o.add) this.have.clamped.delete(h);
          for (const h of o.del) this.have.clamped.add(h);
          for (const h of [...o.add, ...o.del]) this.retry.hosts.add(h);
        }
      });
  }

  /**
   * A line about work done, written after the current turn of the event loop: the commit that waits
   * for the work answers and logs first, and the batch's write is never behind a log line. Errors
   * are logged at once.
   */
  private logLater(level: number, message: string): void {
    if (this.laterLines.length === 0)
      setImmediate(() => {
        for (const [l, m] of this.laterLines.splice(0)) this.opts.log(l, m);
      });
    this.laterLines.push([level, message]);
  }

  private startLinger(name: string): void {
    if (this.lingering.has(name)) return;
    const t = setTimeout(
      () => this.expire(name, `unused for ${((this.opts.lingerMs ?? TUNNEL_LINGER_MS) / 1000).toFixed(0)} s`),
      this.opts.lingerMs ?? TUNNEL_LINGER_MS,
    );
    t.unref();
    this.lingering.set(name, t);
  }

  private cancelLinger(name: string): void {
    const t = this.lingering.get(name);
    if (t === undefined) return;
    clearTimeout(t);
    this.lingering.delete(name);
  }

  /** A tunnel's linger time is up (or it is stale): delete it unless something needs it again (off the plan queue). */
  private expire(name: string, why: string): void {
    this.lingering.delete(name);
    const spec = this.have.tunnels.get(name);
    if (!spec || this.model.want.tunnels.has(name) || this.prepared.has(name) || this.deleting.has(name)) return;
    this.stats.expired++;
    this.have.tunnels.delete(name);
    for (const [host, dev] of this.have.routes) if (dev === name) this.have.routes.delete(host);
    const o: DataplaneOp = { op: 'del-tunnel', name };
    this.opts.log(LOG.handover, `dataplane: ${describeOp(o)} (${why})`);
    const started = monotonicMs();
    const p = this.net.deleteLink(name).then(
      () => this.opts.log(LOG.debug, `dataplane: del-tunnel took ${(monotonicMs() - started).toFixed(1)} ms`),
      (e: unknown) => {
        this.opts.log(LOG.error, `dataplane: ${describeOp(o)} failed: ${e instanceof Error ? e.message : String(e)}`);
        // Still there as far as we know: keep it in the model, to be deleted after another linger.
        if (!this.have.tunnels.has(name)) {
          this.have.tunnels.set(name, spec);
          this.startLinger(name);
        }
      },
    );
    const done = p.finally(() => {
      if (this.deleting.get(name) === done) this.deleting.delete(name);
    });
    this.deleting.set(name, done);
  }
}
