// SPDX-License-Identifier: GPL-2.0-only
// HostapdWatcher: follows every hostapd BSS object on ubus (`hostapd.<ifname>`, present at start or
// appearing later through `ubus.object.add`), subscribes to its notifications, loads its current
// stations with `get_clients`, and follows netifd's `network.device` for WDS station netdevs
// (`<bss>.staN`: links to other nodes). It never calls `notify_response`: association never waits
// for us. Arrivals and departures go to the daemon through callbacks.
// One subscription per BSS, for good: the port's subscription follows its object across hostapd
// restarts (object removed and re-added) and ubusd restarts, so the watcher never subscribes to a
// BSS twice. While a BSS is gone it is out of `bsses` and the association table; when it delivers
// again its stations are re-read with `get_clients`. When ubusd comes back, `hostapd.*` is looked up
// again for BSSes that appeared meanwhile.
import { type AssociationTable, bssOfObject, isWdsNetdev } from '../core/association.js';
import type { Mac } from '../core/ip.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { UbusPort } from '../platform/ubus-port.js';

export interface HostapdWatcherOptions {
  ubus: UbusPort;
  table: AssociationTable;
  onArrive: (mac: Mac, bss: string) => void;
  /** A station left a BSS (disassoc, deauth, ...): the CN tells the MLR, which pages for it. */
  onLeave?: (mac: Mac, bss: string) => void;
  log: LogFn;
}

export class HostapdWatcher {
  /** BSSes we hold a subscription for: one each, never removed (it follows its object). */
  private readonly subscribed = new Set<string>();
  /** BSSes whose object is there and delivering now: what `status` reports. */
  private readonly live = new Set<string>();
  /** Per BSS, counts found/lost: a get_clients reply older than the newest change is dropped. */
  private readonly epoch = new Map<string, number>();

  constructor(private readonly opts: HostapdWatcherOptions) {}

  async start(): Promise<void> {
    const { ubus, log } = this.opts;
    await ubus.onEvent('ubus.object.add', (_type, data) => {
      const path = pathOf(data);
      const bss = path ? bssOfObject(path) : undefined;
      if (bss) void this.watch(bss);
    });
    await ubus.onEvent('ubus.object.remove', (_type, data) => {
      const path = pathOf(data);
      const bss = path ? bssOfObject(path) : undefined;
      if (bss) this.lost(bss, 'object removed');
    });
    try {
      // netifd's object comes back with ubusd: the moment to look for BSSes that appeared meanwhile.
      await ubus.subscribe(
        'network.device',
        (type, data) => this.netdev(type, data),
        undefined,
        () => void this.rescan(),
      );
    } catch (e) {
      log(
        LOG.detect,
        `network.device not available (${e instanceof Error ? e.message : String(e)}); WDS links known from get_clients only`,
      );
    }
    await this.rescan();
    log(
      LOG.info,
      `Using hostapd association events: ${this.live.size === 0 ? 'no BSS yet (watching for hostapd objects)' : [...this.live].map((b) => `hostapd.${b}`).join(', ')}`,
    );
  }

  /** The BSSes whose hostapd object is there now. */
  get bsses(): string[] {
    return [...this.live];
  }

  /** Subscribes to every `hostapd.*` object not subscribed yet. */
  private async rescan(): Promise<void> {
    let objects: { path: string }[];
    try {
      objects = await this.opts.ubus.lookup('hostapd.*');
    } catch (e) {
      this.opts.log(LOG.error, `cannot look up hostapd objects: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    for (const o of objects) {
      const bss = bssOfObject(o.path);
      if (bss) await this.watch(bss);
    }
  }

  private async watch(bss: string): Promise<void> {
    if (this.subscribed.has(bss)) return; // its subscription follows the object: found() runs when it is back
    const { ubus, log } = this.opts;
    this.subscribed.add(bss);
    try {
      await ubus.subscribe(
        `hostapd.${bss}`,
        (type, data) => this.notification(bss, type, data),
        () => this.lost(bss, 'hostapd or ubusd went away'),
        () => {
          void this.found(bss);
          void this.rescan();
        },
      );
    } catch (e) {
      this.subscribed.delete(bss); // not subscribed: the next ubus.object.add for it tries again
      log(LOG.error, `cannot watch hostapd.${bss}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    await this.found(bss);
  }

  /** The BSS delivers (again): take its stations from get_clients; each one present has arrived. */
  private async found(bss: string): Promise<void> {
    const { ubus, table, log } = this.opts;
    const epoch = this.bump(bss);
    this.live.add(bss);
    table.bssAdded(bss);
    const clients = await ubus.call(`hostapd.${bss}`, 'get_clients', {}, 3000).catch(() => undefined);
    if (this.epoch.get(bss) !== epoch) return; // it went, or came back again, meanwhile
    const present = clients === undefined ? [] : table.loadClients(bss, clients);
    log(LOG.info, `watching hostapd.${bss} (${present.length} station(s) associated)`);
    for (const mac of present) this.opts.onArrive(mac, bss);
  }

  /** The BSS stopped delivering (hostapd or ubusd went): forget its stations until it is back. */
  private lost(bss: string, why: string): void {
    if (!this.live.delete(bss)) return;
    this.bump(bss);
    this.opts.table.bssRemoved(bss);
    this.opts.log(LOG.info, `hostapd.${bss} is gone (${why}); its stations are forgotten until it is back`);
  }

  private bump(bss: string): number {
    const n = (this.epoch.get(bss) ?? 0) + 1;
    this.epoch.set(bss, n);
    return n;
  }

  private notification(bss: string, type: string, data: unknown): void {
    const e = this.opts.table.notify(bss, type, data);
    if (e.kind === 'arrive') {
      this.opts.onArrive(e.mac, bss); // first: the request to the MLR leaves before the log line is written
      this.opts.log(LOG.detect, `hostapd.${bss}: ${type} ${e.mac}`);
    } else if (e.kind === 'leave') {
      // The table now refuses the MAC's traffic here; where it went, paging or the next CN's arrival says.
      this.opts.log(LOG.detect, `hostapd.${bss}: ${type} ${e.mac}`);
      this.opts.onLeave?.(e.mac, bss);
    }
  }

  /** A WDS station netdev came or went: re-read its BSS's stations to learn which MAC is a link. */
  private netdev(type: string, data: unknown): void {
    const name = typeof data === 'object' && data !== null ? (data as { name?: unknown }).name : undefined;
    if (typeof name !== 'string' || !isWdsNetdev(name)) return;
    const bss = name.replace(/\.sta\d+$/, '');
    this.opts.log(LOG.detect, `WDS link ${name} ${type}`);
    if (!this.live.has(bss)) return;
    void this.opts.ubus
      .call(`hostapd.${bss}`, 'get_clients', {}, 3000)
      .then((clients) => this.opts.table.loadClients(bss, clients))
      .catch(() => undefined);
  }
}

function pathOf(data: unknown): string | undefined {
  const p = typeof data === 'object' && data !== null ? (data as { path?: unknown }).path : undefined;
  return typeof p === 'string' ? p : undefined;
}
