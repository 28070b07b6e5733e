// MlrService: the mobile location register's behaviour over RPC sessions. It admits CNs (bind:
// network name, pools, tunnel types), answers DHCP-driven and activity-driven requests, and runs
// each move of an MS as one transaction over the CNs involved {new current, parent, old current}:
// prepare all online participants -> commit the binding -> tell each to commit. One MAC's
// transactions run one at a time. Offline participants are skipped; they re-learn their bindings
// when they bind again.
import { cellOf, formatIPv4, parseIPv4, type IPv4, type Mac } from '../core/ip.js';
import type { BindingView, CnRef, ReplyBody, RequestBody } from '../core/messages.js';
import { poolToWire } from '../core/registry.js';
import { poolFromWire, Registry, type Binding } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';
import { LOG, type LogFn } from '../platform/log.js';
import { RpcError, RpcPeer } from '../proto/rpc.js';

/** How long an adopted static host holds its cell when the CN does not say (seconds). */
const DEFAULT_STATIC_HOLD_S = 3600;

export interface MlrServiceOptions {
  networkName: string;
  offerHoldMs: number;
  leaseGraceMs: number;
  prepareTimeoutMs?: number;
  now?: () => number;
  log: LogFn;
  /** Called after every change of the registry (to persist it). */
  onChange?: () => void;
}

export class MlrService {
  private readonly sessions = new Map<string, RpcPeer>();
  private readonly locks = new Map<Mac, Promise<unknown>>();
  private nextTx = 1;
  private readonly now: () => number;

  constructor(
    readonly registry: Registry,
    private readonly opts: MlrServiceOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Serve one CN connection. Until it binds, only `bind` and `ping` are answered. */
  attach(peer: RpcPeer, remoteAddr: string | undefined): void {
    let name: string | undefined;
    const log = this.opts.log;
    const bound = <T>(fn: (cn: string) => T): T => {
      if (!name) throw new RpcError('not-bound', 'bind first');
      return fn(name);
    };
    peer.onProtocolError = (m) => log(LOG.error, `protocol error from ${peer.channel.peer}: ${m}`);
    peer.handle('ping', () => ({ time: this.now() }));
    peer.handle('bind', (body) => {
      const r = this.bind(peer, body, remoteAddr);
      if (!r.ok) throw new RpcError('bind-refused', r.error);
      name = body.cn.name;
      return r.value;
    });
    peer.handle('discover', (body) => bound((cn) => this.discover(cn, body)));
    peer.handle('request', (body) => bound((cn) => this.withLock(body.mac, () => this.request(cn, body))));
    peer.handle('seen', (body) => bound((cn) => this.withLock(body.mac, () => this.seen(cn, body))));
    peer.handle('release', (body) => bound((cn) => this.withLock(body.mac, () => this.release(cn, body))));
    peer.handle('status', () => this.status());
    // Answered before bind too: `tmip-cn -E` evaluates connectivity without taking over a CN's session.
    peer.handle('peers', () => ({
      peers: this.registry
        .allCns()
        .filter((c) => c.name !== name)
        .map((c) => ({ name: c.name, addr: formatIPv4(c.addr), online: this.sessions.has(c.name) ? ('yes' as const) : ('no' as const) })),
    }));
    peer.channel.onClose((reason) => {
      if (name && this.sessions.get(name) === peer) {
        this.sessions.delete(name);
        this.registry.setOnline(name, false);
        log(LOG.info, `CN '${name}' disconnected (${reason})`);
      }
    });
  }

  isOnline(cn: string): boolean {
    return this.sessions.has(cn);
  }

  // ---- bind ----

  private bind(peer: RpcPeer, body: RequestBody<'bind'>, remoteAddr: string | undefined): Result<ReplyBody<'bind'>> {
    if (body.network !== this.opts.networkName) {
      return err(`network name '${body.network}' does not match this MLR's '${this.opts.networkName}'`);
    }
    const addr = parseIPv4(body.cn.addr);
    if (!addr.ok) return addr;
    const pools = [];
    for (const p of body.pools) {
      const r = poolFromWire(p);
      if (!r.ok) return r;
      pools.push(r.value);
    }
    const rec = this.registry.registerCn({ name: body.cn.name, addr: addr.value, tunnels: body.tunnels, pools });
    if (!rec.ok) return rec;
    const old = this.sessions.get(body.cn.name);
    if (old && old !== peer) old.close('replaced by a new connection of the same CN');
    this.sessions.set(body.cn.name, peer);
    this.registry.setOnline(body.cn.name, true);
    this.opts.onChange?.();
    const bindings = this.views(this.registry.involving(body.cn.name));
    this.opts.log(
      LOG.info,
      `CN '${body.cn.name}' bound from ${remoteAddr ?? '?'} (addr ${body.cn.addr}, tunnels ${body.tunnels.join(',') || 'none'}, ${pools.length} pool(s), ${bindings.length} binding(s) to re-establish)`,
    );
    const peers = this.registry
      .allCns()
      .filter((c) => c.name !== body.cn.name)
      .map((c) => ({ name: c.name, addr: formatIPv4(c.addr) }));
    return ok({ bindings, peers });
  }

  // ---- DHCP ----

  private discover(cn: string, body: RequestBody<'discover'>): ReplyBody<'discover'> {
    const existing = this.registry.binding(body.mac);
    const now = this.now();
    if (existing) {
      if (existing.state === 'offered') existing.expires = now + this.opts.offerHoldMs;
      return { binding: this.mustView(existing) };
    }
    let cell: IPv4 | undefined;
    let parent: string | undefined;
    const wanted = body.requested ? parseIPv4(body.requested) : undefined;
    if (wanted?.ok) {
      const requested = this.registry.ownerOfHost(wanted.value);
      if (requested && this.registry.isCellFree(requested.cell)) {
        cell = requested.cell;
        parent = requested.owner.name;
      }
    }
    if (cell === undefined) {
      const a = this.registry.allocate(cn);
      if (!a) throw new RpcError('exhausted', 'no free cell in any pool of the network');
      cell = a.cell;
      parent = a.parent;
    }
    const b = this.registry.put({ mac: body.mac, cell, parent: parent!, current: null, state: 'offered', expires: now + this.opts.offerHoldMs });
    if (!b.ok) throw new RpcError('conflict', b.error);
    this.opts.log(LOG.handover, `offer ${formatIPv4(cell + 1)} (parent ${parent}) to ${body.mac} via ${cn}`);
    this.opts.onChange?.();
    return { binding: this.mustView(b.value) };
  }

  private async request(cn: string, body: RequestBody<'request'>): Promise<ReplyBody<'request'>> {
    const ip = parseIPv4(body.ip);
    if (!ip.ok) return { outcome: 'nak', reason: ip.error };
    const cell = cellOf(ip.value);
    if (cell.host !== ip.value) return { outcome: 'nak', reason: `${body.ip} is not a cell's host address` };
    const leaseEnd = this.now() + body.leaseTime * 1000 + this.opts.leaseGraceMs;
    const b = this.registry.binding(body.mac);
    if (b) {
      if (b.cell !== cell.network) {
        if (body.state === 'selecting') return { outcome: 'nak', reason: `${body.mac} was offered ${formatIPv4(b.cell + 1)}` };
        return { outcome: 'nak', reason: `${body.mac} is bound to ${formatIPv4(b.cell + 1)}` };
      }
      const moved = await this.move(b, cn, leaseEnd, 'dhcp');
      if (!moved.ok) throw new RpcError('handover-failed', moved.error);
      return { outcome: 'ack', binding: moved.value };
    }
    const owner = this.registry.ownerOfHost(ip.value);
    if (!owner) return { outcome: 'nak', reason: `${body.ip} is in no pool of this network` };
    const holder = this.registry.bindingAtCell(cell.network);
    if (holder) return { outcome: 'nak', reason: `${body.ip} is bound to ${holder.mac}` };
    const fresh: Binding = { mac: body.mac, cell: cell.network, parent: owner.owner.name, current: null, state: 'offered', expires: leaseEnd };
    const moved = await this.move(fresh, cn, leaseEnd, 'dhcp');
    if (!moved.ok) throw new RpcError('handover-failed', moved.error);
    return { outcome: 'ack', binding: moved.value };
  }

  private async release(cn: string, body: RequestBody<'release'>): Promise<ReplyBody<'release'>> {
    const b = this.registry.binding(body.mac);
    if (!b || formatIPv4(b.cell + 1) !== body.ip) return {};
    await this.drop(b, body.decline ? `declined via ${cn}` : `released via ${cn}`);
    return {};
  }

  // ---- activity ----

  private async seen(cn: string, body: RequestBody<'seen'>): Promise<ReplyBody<'seen'>> {
    const b = this.registry.binding(body.mac);
    if (b && b.state === 'bound') {
      if (b.current === cn) return { outcome: 'here', binding: this.mustView(b) };
      const moved = await this.move(b, cn, b.expires, body.via);
      if (!moved.ok) return { outcome: 'refused', reason: moved.error };
      return { outcome: 'moved', binding: moved.value };
    }
    // A statically addressed host: adopt it if its address is a free cell of the network. It holds the
    // cell for one lease time of the reporting CN; after that its next ARP/IP activity adopts it again.
    if (body.ip && body.via !== 'assoc') {
      const ip = parseIPv4(body.ip);
      const owner = ip.ok ? this.registry.ownerOfHost(ip.value) : undefined;
      if (owner && this.registry.isCellFree(owner.cell) && (!b || b.cell === owner.cell)) {
        const fresh: Binding = { mac: body.mac, cell: owner.cell, parent: owner.owner.name, current: null, state: 'offered', expires: 0 };
        const expires = this.now() + (body.leaseTime ?? DEFAULT_STATIC_HOLD_S) * 1000 + this.opts.leaseGraceMs;
        const moved = await this.move(fresh, cn, expires, body.via);
        if (!moved.ok) return { outcome: 'refused', reason: moved.error };
        return { outcome: 'moved', binding: moved.value };
      }
    }
    return { outcome: 'unknown' };
  }

  // ---- transactions ----

  /**
   * Make `to` the current CN of the binding: prepare every online participant, store, commit.
   * Returns the committed view.
   */
  async move(b: Binding, to: string, expires: number, via: string): Promise<Result<BindingView>> {
    const log = this.opts.log;
    const started = this.now();
    const proposed: Binding = { ...b, current: to, state: 'bound', expires };
    const view = this.registry.view(proposed);
    if (!view.ok) return view;
    const previousName = b.state === 'bound' ? b.current : null;
    const previous: CnRef | null = previousName && previousName !== to ? this.registry.cnRef(previousName) : null;
    if (previousName === to && b.state === 'bound') {
      const stored = this.registry.put(proposed);
      if (!stored.ok) return stored;
      this.opts.onChange?.();
      return ok(view.value);
    }
    const tx = this.nextTx++;
    const names = [...new Set([to, b.parent, ...(previous ? [previous.name] : [])])];
    const online = names.filter((n) => this.sessions.has(n));
    if (!online.includes(to)) return err(`CN '${to}' is not connected`);
    log(
      LOG.handover,
      `tx ${tx}: ${b.mac} ${formatIPv4(b.cell + 1)} -> ${to} (via ${via}; parent ${b.parent}, previous ${previousName ?? 'none'}, tunnel ${view.value.tunnel ? `${view.value.tunnel.type} key ${view.value.tunnel.key}` : 'none'}; offline: ${names.filter((n) => !online.includes(n)).join(',') || 'none'})`,
    );
    const body = { tx, binding: view.value, previous };
    const timeout = this.opts.prepareTimeoutMs ?? 3000;
    const prepared = await Promise.allSettled(online.map((n) => this.sessions.get(n)!.request('prepare', body, timeout)));
    const failed = prepared.map((r, i) => ({ r, n: online[i]! })).filter(({ r }) => r.status === 'rejected');
    if (failed.length > 0) {
      const why = failed.map(({ n, r }) => `${n}: ${(r as PromiseRejectedResult).reason instanceof Error ? ((r as PromiseRejectedResult).reason as Error).message : String((r as PromiseRejectedResult).reason)}`).join('; ');
      log(LOG.error, `tx ${tx}: aborted (${why})`);
      await Promise.allSettled(online.map((n) => this.sessions.get(n)?.request('abort', { tx }, timeout)));
      return err(`handover aborted: ${why}`);
    }
    const stored = this.registry.put(proposed);
    if (!stored.ok) return stored;
    this.opts.onChange?.();
    const committed = await Promise.allSettled(online.map((n) => this.sessions.get(n)?.request('commit', body, timeout)));
    committed.forEach((r, i) => {
      if (r.status === 'rejected') log(LOG.error, `tx ${tx}: ${online[i]} failed to commit: ${String(r.reason)}`);
    });
    log(LOG.handover, `tx ${tx}: committed ${b.mac} at ${to} in ${this.now() - started} ms`);
    return ok(view.value);
  }

  /** Remove a binding and tell its parent and current CN to withdraw. */
  async drop(b: Binding, why: string): Promise<void> {
    const view = this.registry.view(b);
    this.registry.remove(b.mac);
    this.opts.onChange?.();
    this.opts.log(LOG.handover, `binding ${b.mac} ${formatIPv4(b.cell + 1)} removed (${why})`);
    if (!view.ok || b.state !== 'bound') return;
    const names = [...new Set([b.parent, ...(b.current ? [b.current] : [])])];
    await Promise.allSettled(names.map((n) => this.sessions.get(n)?.request('remove', { binding: view.value })));
  }

  /** Drop every expired binding. Called periodically. */
  async expire(): Promise<number> {
    const now = this.now();
    const due = this.registry.allBindings().filter((b) => b.expires <= now);
    for (const b of due) await this.withLock(b.mac, () => (this.registry.binding(b.mac)?.expires ?? Infinity) <= now ? this.drop(b, 'expired') : Promise.resolve());
    return due.length;
  }

  status(): ReplyBody<'status'> {
    return {
      cns: this.registry.allCns().map((c) => ({ name: c.name, addr: formatIPv4(c.addr), online: this.sessions.has(c.name) ? 'yes' : 'no', pools: c.pools.map(poolToWire) })),
      bindings: this.views(this.registry.allBindings()),
    };
  }

  private views(bs: Binding[]): BindingView[] {
    const out: BindingView[] = [];
    for (const b of bs) {
      const v = this.registry.view(b);
      if (v.ok) out.push(v.value);
      else this.opts.log(LOG.error, v.error);
    }
    return out;
  }

  private mustView(b: Binding): BindingView {
    const v = this.registry.view(b);
    if (!v.ok) throw new RpcError('internal', v.error);
    return v.value;
  }

  private withLock<T>(mac: Mac, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(mac) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(mac, tail);
    void tail.then(() => {
      if (this.locks.get(mac) === tail) this.locks.delete(mac);
    });
    return next;
  }
}
