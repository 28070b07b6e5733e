// SPDX-License-Identifier: GPL-2.0-only
// The MLR's registry: every CN (name, backbone address, tunnel types, pools), every MS binding
// (MAC -> /30 cell, parent CN whose pool it came from, current CN, expiry), and the tunnel agreed for
// each CN pair. Pure state and rules: allocation, conflicts, expiry, snapshots. The transactions
// that change CNs' kernels live in mlr/handover.ts. Cells a client declined (DHCPDECLINE) are
// quarantined for a while: allocate() skips them and isCellAvailable() says no (at most
// MAX_QUARANTINED cells; the oldest quarantine goes first).
// Every change of what a snapshot holds (a CN's record, a binding put or removed, a pair's tunnel, a
// quarantine) is also told, in order, to the one watcher (watch(): the MLR's journal, mlr/persistence.ts)
// as a RegistryChange; apply() replays such a change when the journal is loaded. No I/O here.
import { involves, MAX_TUNNEL_KEY, type BindingState, type BindingView, type CnRef } from './binding.js';
import { cellOf, formatIPv4, type IPv4, type Mac } from './ip.js';
import { array, int, ipv4, literal, mac, nullable, object, optional, refine, str, tunnelType, type Codec } from './schema.js';
import { poolForAddress, poolHasCell, poolsOverlap, cellsOf, describePool, type PoolRange } from './pool.js';
import { err, ok, type Result } from './result.js';
import { agreeTunnelType, type TunnelType } from './tunnel.js';

export interface CnRecord {
  name: string;
  addr: IPv4;
  tunnels: TunnelType[];
  pools: PoolRange[];
  online: boolean;
}

export interface Binding {
  mac: Mac;
  /** Network address N of the /30 cell. */
  cell: IPv4;
  parent: string;
  current: string | null;
  state: BindingState;
  /** Epoch milliseconds after which the binding is dropped. */
  expires: number;
}

export interface PairTunnel {
  key: number;
  type: TunnelType;
}

export interface RegistrySnapshot {
  cns: Omit<CnRecord, 'online'>[];
  bindings: Binding[];
  pairs: { a: string; b: string; key: number; type: TunnelType }[];
  nextKey: number;
  /** Quarantined cells (absent in state written before quarantines were kept). */
  quarantined?: { cell: IPv4; until: number; by: Mac }[];
}

/**
 * One change of what the registry keeps on disk, as it happened: a record of the MLR's journal. Each
 * carries the whole new value of what it names, so replaying the changes in order rebuilds the state.
 * (Whether a CN is online is not kept: a restored CN is offline until it binds.)
 */
export type RegistryChange =
  | { kind: 'cn'; cn: Omit<CnRecord, 'online'> }
  | { kind: 'put'; binding: Binding }
  | { kind: 'remove'; mac: Mac }
  | { kind: 'pair'; a: string; b: string; key: number; type: TunnelType }
  | { kind: 'quarantine'; cell: IPv4; until: number; by: Mac };

/** Quarantined cells remembered at most (each needs a DECLINE of a cell its sender was given). */
const MAX_QUARANTINED = 65_536;

export interface Quarantine {
  /** Epoch milliseconds the quarantine ends. */
  until: number;
  /** The MAC whose DECLINE put the cell here. */
  by: Mac;
}

function pairId(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

export class Registry {
  private readonly cns = new Map<string, CnRecord>();
  private readonly bindings = new Map<Mac, Binding>();
  private readonly byCell = new Map<IPv4, Mac>();
  private readonly pairs = new Map<string, PairTunnel>();
  private readonly quarantined = new Map<IPv4, Quarantine>();
  /** The MACs of the bindings each CN takes part in (parent or current), and how many it serves: no scan per bind or per new client. */
  private readonly byCn = new Map<string, Set<Mac>>();
  private readonly served = new Map<string, number>();
  /** cnRef()'s objects, by CN name (dropped when the CN's record changes). */
  private readonly refs = new Map<string, CnRef>();
  private nextKey = 1;
  private watcher: ((change: RegistryChange) => void) | undefined;
  /**
   * Per pool, where allocate() starts looking: no cell below it was available when it last looked,
   * except those freed since (a remove or a move lowers it) or quarantined then. So an allocation
   * costs O(1) amortised, not a scan from the pool's first cell past every bound one.
   */
  private readonly freeFrom = new WeakMap<PoolRange, IPv4>();
  /** Every CN's pools by first address (pools never overlap), for the pool of a freed cell; rebuilt when a CN changes. */
  private poolIndex: PoolRange[] | undefined;

  constructor(readonly tunnelPreference: readonly TunnelType[]) {}

  /** Tell `fn` every change from now on, in order (one watcher; undefined stops telling). */
  watch(fn: ((change: RegistryChange) => void) | undefined): void {
    this.watcher = fn;
  }

  /** How many records a snapshot holds (CNs, bindings, pairs, quarantines): the journal's yardstick. */
  liveRecords(): number {
    return this.cns.size + this.bindings.size + this.pairs.size + this.quarantined.size;
  }

  // ---- CNs ----

  /** Add or update a CN. Its pools must not overlap another CN's. */
  registerCn(rec: Omit<CnRecord, 'online'>): Result<CnRecord> {
    for (const other of this.cns.values()) {
      if (other.name === rec.name) continue;
      for (const p of rec.pools) {
        const clash = other.pools.find((q) => poolsOverlap(p, q));
        if (clash) return err(`pool ${describePool(p)} overlaps ${describePool(clash)} of CN '${other.name}'`);
      }
      if (other.addr === rec.addr) return err(`address ${formatIPv4(rec.addr)} is already registered by CN '${other.name}'`);
    }
    const old = this.cns.get(rec.name);
    const record: CnRecord = { ...rec, online: true };
    this.cns.set(rec.name, record);
    this.refs.delete(rec.name);
    this.poolIndex = undefined;
    if (!old || !sameCn(old, rec))
      this.watcher?.({ kind: 'cn', cn: { name: rec.name, addr: rec.addr, tunnels: rec.tunnels, pools: rec.pools } });
    return ok(record);
  }

  cn(name: string): CnRecord | undefined {
    return this.cns.get(name);
  }

  allCns(): CnRecord[] {
    return [...this.cns.values()];
  }

  setOnline(name: string, online: boolean): void {
    const c = this.cns.get(name);
    if (c) c.online = online;
  }

  /** A CN's name and address (one object per CN record, made once: not to be changed by callers). */
  cnRef(name: string): CnRef | null {
    let r = this.refs.get(name);
    if (r === undefined) {
      const c = this.cns.get(name);
      if (!c) return null;
      r = { name: c.name, addr: c.addr };
      this.refs.set(name, r);
    }
    return r;
  }

  // ---- cells ----

  /** The CN whose pool offers this cell. */
  ownerOfCell(cell: IPv4): CnRecord | undefined {
    for (const c of this.cns.values()) if (c.pools.some((p) => poolHasCell(p, cell))) return c;
    return undefined;
  }

  /** The CN whose pool holds `ip` as a host address N+1, with the cell. */
  ownerOfHost(ip: IPv4): { owner: CnRecord; cell: IPv4 } | undefined {
    const cell = cellOf(ip);
    if (cell.host !== ip) return undefined;
    for (const c of this.cns.values()) if (poolForAddress(c.pools, ip)) return { owner: c, cell: cell.network };
    return undefined;
  }

  isCellFree(cell: IPv4): boolean {
    return !this.byCell.has(cell);
  }

  /** Free and not quarantined at `now`: may be handed to a station. */
  isCellAvailable(cell: IPv4, now: number): boolean {
    return !this.byCell.has(cell) && this.quarantineOf(cell, now) === undefined;
  }

  /** Keep `cell` from being handed out until `until` (a client declined it). */
  quarantine(cell: IPv4, until: number, by: Mac): void {
    this.quarantined.delete(cell);
    if (this.quarantined.size >= MAX_QUARANTINED) {
      const oldest = this.quarantined.keys().next();
      if (!oldest.done) this.quarantined.delete(oldest.value);
    }
    this.quarantined.set(cell, { until, by });
    this.watcher?.({ kind: 'quarantine', cell, until, by });
  }

  /** The cell's quarantine while it lasts (an ended one is forgotten). */
  quarantineOf(cell: IPv4, now: number): Quarantine | undefined {
    const q = this.quarantined.get(cell);
    if (q && q.until <= now) {
      this.quarantined.delete(cell);
      return undefined;
    }
    return q;
  }

  quarantinedCount(now: number): number {
    for (const [c, q] of this.quarantined) if (q.until <= now) this.quarantined.delete(c);
    return this.quarantined.size;
  }

  /**
   * Lowest available cell: from the asking CN's own pools, else borrowed from another CN's (online
   * first). Cells quarantined at `now` are skipped.
   */
  allocate(forCn: string, now = 0): { cell: IPv4; parent: string } | undefined {
    const self = this.cns.get(forCn);
    const others = [...this.cns.values()].filter((c) => c.name !== forCn).sort((a, b) => Number(b.online) - Number(a.online));
    for (const c of self ? [self, ...others] : others) {
      for (const pool of c.pools) {
        let quarantinedFirst: IPv4 | undefined;
        for (const cell of cellsOf(pool, this.freeFrom.get(pool))) {
          if (this.byCell.has(cell)) continue;
          if (this.quarantineOf(cell, now) !== undefined) {
            quarantinedFirst ??= cell; // free once its quarantine ends: the next look starts no later
            continue;
          }
          this.freeFrom.set(pool, quarantinedFirst ?? cell);
          return { cell, parent: c.name };
        }
        this.freeFrom.set(pool, quarantinedFirst ?? pool.last + 1);
      }
    }
    return undefined;
  }

  /** `cell` may be free now: allocate() must look at it again. */
  private mayBeFree(cell: IPv4): void {
    this.poolIndex ??= [...this.cns.values()].flatMap((c) => c.pools).sort((a, b) => a.first - b.first);
    const pools = this.poolIndex;
    let lo = 0;
    let hi = pools.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pools[mid]!.first <= cell) lo = mid + 1;
      else hi = mid;
    }
    const pool = pools[lo - 1];
    if (!pool || cell > pool.last) return;
    const from = this.freeFrom.get(pool);
    if (from !== undefined && cell < from) this.freeFrom.set(pool, cell);
  }

  // ---- bindings ----

  binding(mac: Mac): Binding | undefined {
    return this.bindings.get(mac);
  }

  bindingAtCell(cell: IPv4): Binding | undefined {
    const mac = this.byCell.get(cell);
    return mac === undefined ? undefined : this.bindings.get(mac);
  }

  allBindings(): Binding[] {
    return [...this.bindings.values()];
  }

  /** Store a binding; a cell held by another MAC is a conflict. */
  put(b: Binding): Result<Binding> {
    const holder = this.byCell.get(b.cell);
    if (holder !== undefined && holder !== b.mac) return err(`cell ${formatIPv4(b.cell)}/30 is bound to ${holder}`);
    const old = this.bindings.get(b.mac);
    if (old && old.cell !== b.cell) {
      this.byCell.delete(old.cell);
      this.mayBeFree(old.cell);
    }
    // The stored copy is never changed afterwards (a later put stores a new one): the watcher gets it too.
    const copy: Binding = { mac: b.mac, cell: b.cell, parent: b.parent, current: b.current, state: b.state, expires: b.expires };
    if (old) this.reindex(old, copy);
    else this.index(copy, true);
    this.bindings.set(b.mac, copy);
    if (holder === undefined) this.byCell.set(b.cell, b.mac);
    this.watcher?.({ kind: 'put', binding: copy });
    return ok(copy);
  }

  remove(mac: Mac): Binding | undefined {
    const b = this.bindings.get(mac);
    if (!b) return undefined;
    this.bindings.delete(mac);
    this.index(b, false);
    if (this.byCell.get(b.cell) === mac) {
      this.byCell.delete(b.cell);
      this.mayBeFree(b.cell);
    }
    this.watcher?.({ kind: 'remove', mac });
    return b;
  }

  /** Bindings a CN takes part in (as parent or current), which it must reflect in its kernel. */
  involving(cn: string): Binding[] {
    const out: Binding[] = [];
    for (const mac of this.byCn.get(cn) ?? []) {
      const b = this.bindings.get(mac);
      if (b && involves(b, cn)) out.push(b);
    }
    return out;
  }

  /** How many bindings `cn` serves (is their current CN). */
  servedBy(cn: string): number {
    return this.served.get(cn) ?? 0;
  }

  private index(b: Binding, add: boolean): void {
    this.indexOne(b.parent, b.mac, add);
    if (b.current !== null && b.current !== b.parent) this.indexOne(b.current, b.mac, add);
    if (b.current !== null) {
      const n = (this.served.get(b.current) ?? 0) + (add ? 1 : -1);
      if (n > 0) this.served.set(b.current, n);
      else this.served.delete(b.current);
    }
  }

  /**
   * index(old, false) then index(b, true), touching only what differs (a move changes the current CN
   * only: the parent's entry stays, and a renewal changes nothing).
   */
  private reindex(old: Binding, b: Binding): void {
    if (old.parent !== b.parent || old.current !== b.current) {
      const mac = b.mac;
      if (old.parent !== b.parent && old.parent !== b.current) this.indexOne(old.parent, mac, false);
      const oc = old.current;
      if (oc !== null && oc !== old.parent && oc !== b.parent && oc !== b.current) this.indexOne(oc, mac, false);
      if (b.parent !== old.parent && b.parent !== oc) this.indexOne(b.parent, mac, true);
      const nc = b.current;
      if (nc !== null && nc !== b.parent && nc !== old.parent && nc !== oc) this.indexOne(nc, mac, true);
    }
    if (old.current !== b.current) {
      if (old.current !== null) {
        const n = (this.served.get(old.current) ?? 0) - 1;
        if (n > 0) this.served.set(old.current, n);
        else this.served.delete(old.current);
      }
      if (b.current !== null) this.served.set(b.current, (this.served.get(b.current) ?? 0) + 1);
    }
  }

  private indexOne(cn: string, mac: Mac, add: boolean): void {
    let set = this.byCn.get(cn);
    if (add) {
      if (!set) this.byCn.set(cn, (set = new Set()));
      set.add(mac);
    } else if (set) {
      set.delete(mac);
      if (set.size === 0) this.byCn.delete(cn);
    }
  }

  /** Remove and return every binding whose expiry has passed. */
  expire(now: number): Binding[] {
    const gone: Binding[] = [];
    for (const b of this.allBindings()) {
      if (b.expires <= now) {
        this.remove(b.mac);
        gone.push(b);
      }
    }
    return gone;
  }

  // ---- tunnels between CN pairs ----

  /** The tunnel the pair uses: key stable for the pair, type re-agreed if either end lost it. */
  pairTunnel(a: string, b: string): Result<PairTunnel> {
    const ca = this.cns.get(a);
    const cb = this.cns.get(b);
    if (!ca || !cb) return err(`unknown CN '${!ca ? a : b}'`);
    const id = pairId(a, b);
    const existing = this.pairs.get(id);
    // The common case: the pair's tunnel type is still one both ends have (nothing to agree again).
    if (existing && ca.tunnels.includes(existing.type) && cb.tunnels.includes(existing.type)) return ok(existing);
    const type = agreeTunnelType(this.tunnelPreference, ca.tunnels, cb.tunnels);
    if (!type) {
      return err(`CNs '${a}' (${ca.tunnels.join(',') || 'none'}) and '${b}' (${cb.tunnels.join(',') || 'none'}) share no tunnel type`);
    }
    if (existing) {
      // One end lost the pair's type (the common case returned above): the key stays, the type is re-agreed.
      existing.type = type;
      this.watcher?.({ kind: 'pair', a, b, key: existing.key, type });
      return ok(existing);
    }
    if (this.nextKey > MAX_TUNNEL_KEY) return err('tunnel keys exhausted');
    const pair = { key: this.nextKey++, type };
    this.pairs.set(id, pair);
    this.watcher?.({ kind: 'pair', a, b, key: pair.key, type });
    return ok(pair);
  }

  /** The wire view of a binding, with its tunnel when parent and current differ. */
  view(b: Binding): Result<BindingView> {
    const parent = this.cnRef(b.parent);
    if (!parent) return err(`binding ${b.mac} has unknown parent '${b.parent}'`);
    const current = b.current === null ? null : this.cnRef(b.current);
    if (b.current !== null && !current) return err(`binding ${b.mac} has unknown current CN '${b.current}'`);
    const view: BindingView = { mac: b.mac, cell: b.cell, parent, current, expires: b.expires, state: b.state };
    if (b.current !== null && b.current !== b.parent) {
      const t = this.pairTunnel(b.parent, b.current);
      if (!t.ok) return t;
      view.tunnel = { type: t.value.type, key: t.value.key };
    }
    return ok(view);
  }

  // ---- persistence ----

  snapshot(): RegistrySnapshot {
    return {
      cns: this.allCns().map(({ online: _online, ...rest }) => rest),
      bindings: this.allBindings(),
      pairs: [...this.pairs.entries()].map(([id, p]) => {
        const [a = '', b = ''] = id.split('\u0000');
        return { a, b, ...p };
      }),
      nextKey: this.nextKey,
      quarantined: [...this.quarantined.entries()].map(([cell, q]) => ({ cell, ...q })),
    };
  }

  /**
   * Load a decoded snapshot into an empty registry, checking what the codec cannot: unique CN names
   * and addresses, bindings that name known CNs and do not share a cell, tunnel keys below nextKey.
   * The first inconsistency is reported by its position; nothing is loaded then.
   */
  restore(s: RegistrySnapshot): Result<void> {
    if (this.cns.size > 0 || this.bindings.size > 0) return err('restore needs an empty registry');
    const loaded = new Registry(this.tunnelPreference);
    for (const [i, c] of s.cns.entries()) {
      if (loaded.cns.has(c.name)) return err(`cns[${i}]: CN '${c.name}' appears twice`);
      const r = loaded.registerCn(c);
      if (!r.ok) return err(`cns[${i}]: ${r.error}`);
      r.value.online = false;
    }
    for (const [i, b] of s.bindings.entries()) {
      if (!loaded.cns.has(b.parent)) return err(`bindings[${i}]: parent '${b.parent}' is not a CN of this state`);
      if (b.current !== null && !loaded.cns.has(b.current)) return err(`bindings[${i}]: current '${b.current}' is not a CN of this state`);
      if (loaded.bindings.has(b.mac)) return err(`bindings[${i}]: ${b.mac} appears twice`);
      const r = loaded.put(b);
      if (!r.ok) return err(`bindings[${i}]: ${r.error}`);
    }
    for (const [i, p] of s.pairs.entries()) {
      if (p.key >= s.nextKey) return err(`pairs[${i}]: key ${p.key} is not below nextKey ${s.nextKey}`);
      loaded.pairs.set(pairId(p.a, p.b), { key: p.key, type: p.type });
    }
    for (const q of s.quarantined ?? []) loaded.quarantine(q.cell, q.until, q.by);
    for (const [k, v] of loaded.cns) this.cns.set(k, v);
    this.refs.clear();
    this.poolIndex = undefined;
    for (const [k, v] of loaded.bindings) this.bindings.set(k, v); // checked by loaded.put() above
    for (const [k, v] of loaded.byCell) this.byCell.set(k, v);
    for (const [k, v] of loaded.byCn) this.byCn.set(k, v);
    for (const [k, v] of loaded.served) this.served.set(k, v);
    for (const [k, v] of loaded.pairs) this.pairs.set(k, v);
    for (const [k, v] of loaded.quarantined) this.quarantined.set(k, v);
    this.nextKey = Math.max(this.nextKey, s.nextKey);
    return ok(undefined);
  }

  /**
   * Replay one journal record (loading the MLR's state), checking what the record codec cannot: a CN
   * whose pools or address clash, a binding naming an unknown CN or a cell another MAC holds, a remove
   * of a MAC that is not bound, a pair of unknown CNs. Not told to the watcher. The caller names the
   * record's position in the error.
   */
  apply(c: RegistryChange): Result<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    try {
      return this.applyUnwatched(c);
    } finally {
      this.watcher = watcher;
    }
  }

  private applyUnwatched(c: RegistryChange): Result<void> {
    switch (c.kind) {
      case 'cn': {
        const was = this.cns.get(c.cn.name);
        const r = this.registerCn(c.cn);
        if (!r.ok) return r;
        r.value.online = was?.online ?? false;
        return ok(undefined);
      }
      case 'put': {
        const b = c.binding;
        if (!this.cns.has(b.parent)) return err(`parent '${b.parent}' of ${b.mac} is not a CN of this state`);
        if (b.current !== null && !this.cns.has(b.current)) return err(`current '${b.current}' of ${b.mac} is not a CN of this state`);
        const r = this.put(b);
        return r.ok ? ok(undefined) : r;
      }
      case 'remove':
        return this.remove(c.mac) ? ok(undefined) : err(`${c.mac} is removed but is not bound`);
      case 'pair': {
        for (const n of [c.a, c.b]) if (!this.cns.has(n)) return err(`pair names '${n}', which is not a CN of this state`);
        const id = pairId(c.a, c.b);
        const existing = this.pairs.get(id);
        if (existing && existing.key !== c.key) return err(`pair '${c.a}'/'${c.b}' had key ${existing.key}, now ${c.key}`);
        this.pairs.set(id, { key: c.key, type: c.type });
        this.nextKey = Math.max(this.nextKey, c.key + 1);
        return ok(undefined);
      }
      case 'quarantine':
        this.quarantine(c.cell, c.until, c.by);
        return ok(undefined);
    }
  }
}

function sameCn(a: Omit<CnRecord, 'online'>, b: Omit<CnRecord, 'online'>): boolean {
  return (
    a.addr === b.addr &&
    a.tunnels.length === b.tunnels.length &&
    a.tunnels.every((t, i) => b.tunnels[i] === t) &&
    JSON.stringify(a.pools) === JSON.stringify(b.pools)
  );
}

/** A state file's address: dotted text (written since 0.1.0's codec) or the 32-bit number older files held. */
const storedIPv4: Codec<IPv4> = {
  decode: (v, p) => (typeof v === 'number' ? int(0, 0xffffffff).decode(v, p) : ipv4.decode(v, p)),
  encode: (v) => ipv4.encode(v),
};

const storedPool: Codec<PoolRange> = object({
  network: storedIPv4,
  prefix: int(0, 30),
  first: storedIPv4,
  last: storedIPv4,
  exclude: array(storedIPv4, 64),
});

/** A CN as kept on disk (snapshot and journal). */
export const storedCnCodec: Codec<Omit<CnRecord, 'online'>> = object({
  name: str(64),
  addr: storedIPv4,
  tunnels: array(tunnelType, 8),
  pools: array(storedPool, 64),
});

/** A binding as kept on disk (snapshot and journal). */
export const storedBindingCodec: Codec<Binding> = object({
  mac,
  cell: refine(storedIPv4, (c) => ((c & 3) !== 0 ? 'not the network address of a /30' : undefined)),
  parent: str(64),
  current: nullable(str(64)),
  state: literal('offered', 'bound'),
  expires: int(0, Number.MAX_SAFE_INTEGER),
});

/** A CN pair's tunnel as kept on disk. */
export const storedPairCodec = object({ a: str(64), b: str(64), key: int(1, MAX_TUNNEL_KEY), type: tunnelType });

/** A quarantined cell as kept on disk. */
export const storedQuarantineCodec = object({
  cell: storedIPv4,
  until: int(0, Number.MAX_SAFE_INTEGER),
  by: mac,
});

/** The registry as the MLR keeps it on disk: checked field by field when loaded. */
export const registrySnapshotCodec: Codec<RegistrySnapshot> = object({
  cns: array(storedCnCodec, 100_000),
  bindings: array(storedBindingCodec, 10_000_000),
  pairs: array(storedPairCodec, 10_000_000),
  nextKey: int(1, MAX_TUNNEL_KEY + 1),
  quarantined: optional(array(storedQuarantineCodec, MAX_QUARANTINED)),
});
