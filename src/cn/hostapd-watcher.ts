// SPDX-License-Identifier: GPL-2.0-only
// HostapdWatcher: follows every hostapd BSS object on ubus (`hostapd.<ifname>`, present at start or
// appearing later through `ubus.object.add`), subscribes to its notifications, loads its current
// stations with `get_clients`, and follows netifd's `network.device` for WDS station netdevs
// (`<bss>.staN`: links to other nodes). It never calls `notify_response`: association never waits
// for us. Arrivals and departures go to the daemon through callbacks.
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
  private readonly watched = new Set<string>();

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
      if (bss) this.unwatch(bss, 'object removed');
    });
    try {
      await ubus.subscribe('network.device', (type, data) => this.netdev(type, data));
    } catch (e) {
      log(
        LOG.detect,
        `network.device not available (${e instanceof Error ? e.message : String(e)}); WDS links known from get_clients only`,
      );
    }
    for (const o of await ubus.lookup('hostapd.*')) {
      const bss = bssOfObject(o.path);
      if (bss) await this.watch(bss);
    }
    log(
      LOG.info,
      `Using hostapd association events: ${this.watched.size === 0 ? 'no BSS yet (watching for hostapd objects)' : [...this.watched].map((b) => `hostapd.${b}`).join(', ')}`,
    );
  }

  get bsses(): string[] {
    return [...this.watched];
  }

  private async watch(bss: string): Promise<void> {
    if (this.watched.has(bss)) return;
    const { ubus, table, log } = this.opts;
    this.watched.add(bss);
    table.bssAdded(bss);
    try {
      await ubus.subscribe(
        `hostapd.${bss}`,
        (type, data) => this.notification(bss, type, data),
        () => this.unwatch(bss, 'subscription ended'),
      );
      const clients = await ubus.call(`hostapd.${bss}`, 'get_clients', {}, 3000).catch(() => undefined);
      const present = clients === undefined ? [] : table.loadClients(bss, clients);
      log(LOG.info, `watching hostapd.${bss} (${present.length} station(s) associated)`);
      for (const mac of present) this.opts.onArrive(mac, bss);
    } catch (e) {
      log(LOG.error, `cannot watch hostapd.${bss}: ${e instanceof Error ? e.message : String(e)}`);
      this.unwatch(bss, 'subscribe failed');
    }
  }

  private unwatch(bss: string, why: string): void {
    if (!this.watched.delete(bss)) return;
    this.opts.table.bssRemoved(bss);
    this.opts.log(LOG.info, `stopped watching hostapd.${bss} (${why})`);
  }

  private notification(bss: string, type: string, data: unknown): void {
    const e = this.opts.table.notify(bss, type, data);
    if (e.kind === 'arrive') {
      this.opts.log(LOG.detect, `hostapd.${bss}: ${type} ${e.mac}`);
      this.opts.onArrive(e.mac, bss);
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
    if (!this.watched.has(bss)) return;
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
