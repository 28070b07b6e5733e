// SPDX-License-Identifier: GPL-2.0-only
// DataplaneDriver: makes the kernel match core/dataplane.ts's desired state through NetOps. It reads
// what a previous run left (tunnels named with tunnel_prefix, gateway addresses carrying our label,
// routes into our tunnels), then applies plans one at a time, keeping a model of what it applied.
import {
  desiredDataplane,
  describeOp,
  emptyDataplane,
  planDataplane,
  type DataplaneContext,
  type DataplaneState,
} from '../core/dataplane.js';
import type { IPv4 } from '../core/ip.js';
import type { BindingView } from '../core/binding.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { NetOps } from '../platform/netops.js';

export interface DataplaneDriverOptions extends DataplaneContext {
  mobileIf: string;
  mssClamp: boolean;
  log: LogFn;
  /** Called as soon as a gateway address is in place (before the rest of the plan runs). */
  onGatewayAdded?: (ip: IPv4) => void;
}

/** The label our gateway addresses carry: "<mobile_if>:<prefix>", shortened to fit 15 bytes. */
export function gatewayLabel(mobileIf: string, prefix: string): string {
  const room = 15 - mobileIf.length - 1;
  if (room >= prefix.length) return `${mobileIf}:${prefix}`;
  let h = 0;
  for (const ch of prefix) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `${mobileIf}:${h.toString(36).slice(0, Math.max(1, room))}`;
}

export class DataplaneDriver {
  private have: DataplaneState = emptyDataplane();
  private queue: Promise<unknown> = Promise.resolve();
  readonly label: string;
  readonly clampTable: string;

  constructor(
    private readonly net: NetOps,
    private readonly opts: DataplaneDriverOptions,
  ) {
    this.label = gatewayLabel(opts.mobileIf, opts.tunnelPrefix);
    this.clampTable = `tmip_${opts.tunnelPrefix}`;
  }

  /** Learn what a previous run left in the kernel, so the first apply keeps what is still wanted. */
  async load(): Promise<void> {
    const have = emptyDataplane();
    for (const name of await this.net.listTunnels(this.opts.tunnelPrefix)) {
      // Parameters unknown: the first plan re-ensures it (kept by NetOps when they match).
      have.tunnels.set(name, { name, type: 'vxlan', local: 0, remote: 0, key: -1, mtu: 0 });
    }
    const info = await this.net.interfaceInfo(this.opts.mobileIf);
    for (const a of info.addresses) if (a.label === this.label && a.prefix === 30) have.gateways.add(a.ip);
    for (const r of await this.net.listTunnelRoutes(this.opts.tunnelPrefix)) have.routes.set(r.ip, r.dev);
    await this.net.deleteMssClamp(this.clampTable);
    this.have = have;
    this.opts.log(
      LOG.info,
      `found ${have.tunnels.size} tunnel(s), ${have.gateways.size} gateway address(es), ${have.routes.size} tunnel route(s) from an earlier run`,
    );
  }

  /** Apply the desired state for these bindings; resolves with the gateways newly added. */
  apply(bindings: Iterable<BindingView>): Promise<IPv4[]> {
    const list = [...bindings];
    const run = this.queue.then(() => this.applyNow(list));
    this.queue = run.catch(() => undefined);
    return run;
  }

  get state(): DataplaneState {
    return this.have;
  }

  private async applyNow(bindings: BindingView[]): Promise<IPv4[]> {
    const want = desiredDataplane(bindings, this.opts);
    const ops = planDataplane(this.have, want);
    const added: IPv4[] = [];
    const errors: string[] = [];
    for (const o of ops) {
      this.opts.log(LOG.handover, `dataplane: ${describeOp(o)}`);
      const started = performance.now();
      try {
        switch (o.op) {
          case 'ensure-tunnel':
            await this.net.ensureTunnel(o.spec);
            this.have.tunnels.set(o.spec.name, o.spec);
            break;
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
          case 'clamp': {
            if (!this.opts.mssClamp) break;
            const mtus = [...want.tunnels.values()].map((t) => t.mtu);
            const mss = Math.min(this.opts.underlayMtu, ...mtus) - 40;
            if (o.hosts.length === 0) await this.net.deleteMssClamp(this.clampTable);
            else await this.net.setMssClamp(this.clampTable, this.opts.mobileIf, mss, o.hosts);
            this.have.clamped = new Set(o.hosts);
            break;
          }
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
        this.opts.log(LOG.debug, `dataplane: ${o.op} took ${(performance.now() - started).toFixed(1)} ms`);
      } catch (e) {
        const msg = `dataplane: ${describeOp(o)} failed: ${e instanceof Error ? e.message : String(e)}`;
        this.opts.log(LOG.error, msg);
        errors.push(msg);
      }
    }
    if (errors.length) throw new Error(errors.join('; '));
    return added;
  }
}
