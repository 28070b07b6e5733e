// SPDX-License-Identifier: GPL-2.0-only
// AssociationTable: what hostapd has told this CN about Wi-Fi stations on its BSSes. An `assoc` or
// `sta-authorized` notification is an arrival (the CN may move the station here before it sends a
// packet); `disassoc`/`deauth` and friends a departure. 4-address (WDS) stations are links to other
// nodes, never mobile stations. When hostapd is present and association is required, ARP/IP
// activity from a MAC that is not associated here is not enough to migrate it (a spoofer's frames).
import { parseMac, type Mac } from './ip.js';

export interface Station {
  bss: string;
  wds: boolean;
  authorized: boolean;
  since: number;
}

export type AssociationEvent = { kind: 'arrive'; mac: Mac; bss: string } | { kind: 'leave'; mac: Mac; bss: string } | { kind: 'none' };

const ARRIVALS = new Set(['assoc', 'sta-authorized']);
const DEPARTURES = new Set(['disassoc', 'deauth', 'local-deauth', 'inactive-deauth', 'key-mismatch']);

function field(data: unknown, key: string): unknown {
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>)[key] : undefined;
}

export class AssociationTable {
  private readonly stations = new Map<Mac, Station>();
  private readonly bsses = new Set<string>();

  constructor(private readonly now: () => number = Date.now) {}

  /** hostapd is present when at least one BSS object is being watched. */
  get present(): boolean {
    return this.bsses.size > 0;
  }

  bssAdded(bss: string): void {
    this.bsses.add(bss);
  }

  bssRemoved(bss: string): void {
    this.bsses.delete(bss);
    for (const [mac, s] of this.stations) if (s.bss === bss) this.stations.delete(mac);
  }

  /** Apply one hostapd notification; returns what it means for migration. */
  notify(bss: string, type: string, data: unknown): AssociationEvent {
    const address = field(data, 'address');
    if (typeof address !== 'string') return { kind: 'none' };
    const parsed = parseMac(address);
    if (!parsed.ok) return { kind: 'none' };
    const mac = parsed.value;
    if (ARRIVALS.has(type)) {
      const prev = this.stations.get(mac);
      const wds = prev?.wds === true || field(data, 'wds') === true;
      this.stations.set(mac, {
        bss,
        wds,
        authorized: type === 'sta-authorized' || prev?.authorized === true,
        since: prev?.since ?? this.now(),
      });
      return wds || prev?.bss === bss ? { kind: 'none' } : { kind: 'arrive', mac, bss };
    }
    if (DEPARTURES.has(type)) {
      const prev = this.stations.get(mac);
      if (!prev || prev.bss !== bss) return { kind: 'none' };
      this.stations.delete(mac);
      return prev.wds ? { kind: 'none' } : { kind: 'leave', mac, bss };
    }
    return { kind: 'none' };
  }

  /** Replace a BSS's stations from hostapd's `get_clients` reply ({clients: {mac: {wds, authorized, ...}}}). */
  loadClients(bss: string, reply: unknown): Mac[] {
    this.bsses.add(bss);
    for (const [mac, s] of this.stations) if (s.bss === bss) this.stations.delete(mac);
    const clients = field(reply, 'clients');
    const present: Mac[] = [];
    if (typeof clients !== 'object' || clients === null) return present;
    for (const [address, info] of Object.entries(clients as Record<string, unknown>)) {
      const parsed = parseMac(address);
      if (!parsed.ok) continue;
      const wds = field(info, 'wds') === true;
      this.stations.set(parsed.value, { bss, wds, authorized: field(info, 'authorized') === true, since: this.now() });
      if (!wds) present.push(parsed.value);
    }
    return present;
  }

  /** A 4-address station (a link to another node) became known by its netdev, e.g. wlan0.sta1. */
  markWds(mac: Mac): void {
    const s = this.stations.get(mac);
    if (s) s.wds = true;
  }

  station(mac: Mac): Station | undefined {
    return this.stations.get(mac);
  }

  isWds(mac: Mac): boolean {
    return this.stations.get(mac)?.wds === true;
  }

  /** May ARP/IP activity (or DHCP) from `mac` move it into this cell? */
  mayMigrate(mac: Mac, requireAssociation: boolean): boolean {
    const s = this.stations.get(mac);
    if (s?.wds) return false;
    if (!this.present || !requireAssociation) return true;
    return s !== undefined;
  }

  all(): [Mac, Station][] {
    return [...this.stations.entries()];
  }
}

/** hostapd's per-BSS object names: `hostapd.<ifname>` (not the daemon object `hostapd`). */
export function bssOfObject(path: string): string | undefined {
  const m = /^hostapd\.(.+)$/.exec(path);
  return m?.[1];
}

/** A WDS station netdev as hostapd names it: `<bss>.sta<AID>`. */
export function isWdsNetdev(name: string): boolean {
  return /^.+\.sta\d+$/.test(name);
}
