// The MLR's registry: every CN (name, backbone address, tunnel types, pools), every MS binding
// (MAC -> /30 cell, parent CN whose pool it came from, current CN, expiry), and the tunnel agreed for
// each CN pair. Pure state and rules: allocation, conflicts, expiry, snapshots. The transactions
// that change CNs' kernels live in mlr/service.ts.
import { cellOf, formatIPv4, parseIPv4, type IPv4, type Mac } from './ip.js';
import type { BindingView, CnRef, PoolWire } from './messages.js';
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
  state: 'offered' | 'bound';
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
}

const MAX_TUNNEL_KEY = 0xffffff;

function pairId(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

export class Registry {
  private readonly cns = new Map<string, CnRecord>();
  private readonly bindings = new Map<Mac, Binding>();
  private readonly byCell = new Map<IPv4, Mac>();
  private readonly pairs = new Map<string, PairTunnel>();
  private nextKey = 1;

  constructor(readonly tunnelPreference: readonly TunnelType[]) {}

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
    const record: CnRecord = { ...rec, online: true };
    this.cns.set(rec.name, record);
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

  cnRef(name: string): CnRef | null {
    const c = this.cns.get(name);
    return c ? { name: c.name, addr: formatIPv4(c.addr) } : null;
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

  /** Lowest free cell: from the asking CN's own pools, else borrowed from another CN's (online first). */
  allocate(forCn: string): { cell: IPv4; parent: string } | undefined {
    const self = this.cns.get(forCn);
    const others = [...this.cns.values()].filter((c) => c.name !== forCn).sort((a, b) => Number(b.online) - Number(a.online));
    for (const c of self ? [self, ...others] : others) {
      for (const pool of c.pools) {
        for (const cell of cellsOf(pool)) if (!this.byCell.has(cell)) return { cell, parent: c.name };
      }
    }
    return undefined;
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
    if (old && old.cell !== b.cell) this.byCell.delete(old.cell);
    const copy = { ...b };
    this.bindings.set(b.mac, copy);
    this.byCell.set(b.cell, b.mac);
    return ok(copy);
  }

  remove(mac: Mac): Binding | undefined {
    const b = this.bindings.get(mac);
    if (!b) return undefined;
    this.bindings.delete(mac);
    if (this.byCell.get(b.cell) === mac) this.byCell.delete(b.cell);
    return b;
  }

  /** Bindings a CN takes part in (as parent or current), which it must reflect in its kernel. */
  involving(cn: string): Binding[] {
    return this.allBindings().filter((b) => b.state === 'bound' && (b.parent === cn || b.current === cn));
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
    const type = agreeTunnelType(this.tunnelPreference, ca.tunnels, cb.tunnels);
    const id = pairId(a, b);
    const existing = this.pairs.get(id);
    if (!type) {
      return err(`CNs '${a}' (${ca.tunnels.join(',') || 'none'}) and '${b}' (${cb.tunnels.join(',') || 'none'}) share no tunnel type`);
    }
    if (existing) {
      if (!(ca.tunnels.includes(existing.type) && cb.tunnels.includes(existing.type))) existing.type = type;
      return ok(existing);
    }
    if (this.nextKey > MAX_TUNNEL_KEY) return err('tunnel keys exhausted');
    const pair = { key: this.nextKey++, type };
    this.pairs.set(id, pair);
    return ok(pair);
  }

  /** The wire view of a binding, with its tunnel when parent and current differ. */
  view(b: Binding): Result<BindingView> {
    const parent = this.cnRef(b.parent);
    if (!parent) return err(`binding ${b.mac} has unknown parent '${b.parent}'`);
    const current = b.current === null ? null : this.cnRef(b.current);
    if (b.current !== null && !current) return err(`binding ${b.mac} has unknown current CN '${b.current}'`);
    const view: BindingView = { mac: b.mac, cell: formatIPv4(b.cell), parent, current, expires: b.expires, state: b.state };
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
    };
  }

  restore(s: RegistrySnapshot): void {
    for (const c of s.cns) this.cns.set(c.name, { ...c, online: false });
    for (const b of s.bindings) this.put(b);
    for (const p of s.pairs) this.pairs.set(pairId(p.a, p.b), { key: p.key, type: p.type });
    this.nextKey = Math.max(this.nextKey, s.nextKey);
  }
}

export function poolFromWire(p: PoolWire): Result<PoolRange> {
  const network = parseIPv4(p.network);
  const first = parseIPv4(p.first);
  const last = parseIPv4(p.last);
  const exclude = p.exclude.map(parseIPv4);
  if (!network.ok) return network;
  if (!first.ok) return first;
  if (!last.ok) return last;
  const bad = exclude.find((e) => !e.ok);
  if (bad && !bad.ok) return bad;
  return ok({ network: network.value, prefix: p.prefix, first: first.value, last: last.value, exclude: exclude.map((e) => (e.ok ? e.value : 0)) });
}

export function poolToWire(p: PoolRange): PoolWire {
  return { network: formatIPv4(p.network), prefix: p.prefix, first: formatIPv4(p.first), last: formatIPv4(p.last), exclude: p.exclude.map(formatIPv4) };
}
