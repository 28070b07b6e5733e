// CnDaemon: one correspondent node. Start-up follows the original's checklist — interfaces, kernel
// settings, pools, tunnel types, state left by an earlier run, packet capture, MLR bind, then
// re-establishment of the bindings the MLR says involve us. Afterwards it feeds captured frames to
// the DHCP server and the activity detector, and applies the MLR's transactions to the data plane
// (announcing itself as the gateway with gratuitous ARP when an MS arrives).
import { AssociationTable } from '../core/association.js';
import type { CnConfig } from '../core/config.js';
import { cellOf, formatIPv4, maskOf, parseIPv4, type IPv4, type Mac } from '../core/ip.js';
import type { BindingView, DetectedVia, RequestBody } from '../core/messages.js';
import { describeAvailable, describePool, resolvePool, type PoolRange } from '../core/pool.js';
import { poolToWire } from '../core/registry.js';
import { err, type Result } from '../core/result.js';
import type { TunnelType } from '../core/tunnel.js';
import type { LinkIO } from '../platform/linkio.js';
import { LOG, type LogFn } from '../platform/log.js';
import { ipv4ConfKey, type InterfaceInfo, type NetOps } from '../platform/netops.js';
import { decodeDhcp } from '../proto/dhcp.js';
import { buildArpReply, buildGratuitousArp, classifyFrame } from '../proto/packet.js';
import { RpcError, type MessageChannel, type RpcPeer } from '../proto/rpc.js';
import { DataplaneDriver } from './dataplane-driver.js';
import { ActivityDetector } from './detector.js';
import { DhcpServer } from './dhcp-server.js';
import { HostapdWatcher } from './hostapd-watcher.js';
import { MlrLink } from './mlr-link.js';
import type { UbusMethod, UbusPort } from './ubus-port.js';

export const SOFTWARE = 'tmip-cn 0.1.0';

export interface CnDeps {
  net: NetOps;
  openLink: (ifname: string, filter: string) => Result<LinkIO>;
  connect: (host: string, port: number) => Promise<MessageChannel>;
  /** Connect to ubusd; resolves undefined when there is none (not on OpenWrt). */
  openUbus?: () => Promise<UbusPort | undefined>;
  log: LogFn;
}

/** Only what might concern us: ARP, DHCP to servers, and IPv4 sent to some other gateway's MAC. */
export function captureFilter(ownMac: Mac): string {
  return `arp or (udp dst port 67) or (ip and not ether dst ${ownMac} and not ether multicast)`;
}

export class CnDaemon {
  private readonly bindings = new Map<Mac, BindingView>();
  private served = new Set<Mac>();
  private readonly detectedAt = new Map<Mac, { t: number; via: DetectedVia }>();
  /** When each refused (unassociated) MAC was last logged, to keep the log quiet. */
  private readonly refusedAt = new Map<Mac, number>();
  private selfAddr = 0;
  private pools: PoolRange[] = [];
  private tunnels: TunnelType[] = [];
  private link: LinkIO | undefined;
  private mlr: MlrLink | undefined;
  private dataplane: DataplaneDriver | undefined;
  private dhcp: DhcpServer | undefined;
  private detector: ActivityDetector | undefined;
  private mobile: InterfaceInfo | undefined;
  private peers: { name: string; addr: string }[] = [];
  private ubus: UbusPort | undefined;
  private watcher: HostapdWatcher | undefined;
  readonly associations = new AssociationTable();

  constructor(
    private readonly cfg: CnConfig,
    private readonly deps: CnDeps,
  ) {}

  async start(): Promise<void> {
    const { cfg, deps } = this;
    const log = deps.log;
    log(LOG.info, `Starting TMip Correspondent Node [${SOFTWARE}] '${cfg.cnName}' for network [${cfg.networkName}]`);
    for (const w of cfg.warnings) log(LOG.info, `config: ${w}`);

    const backbone = await this.interface(cfg.cnIf, 'cn_if');
    const first = backbone.addresses[0];
    if (!first) throw new Error(`cn_if '${cfg.cnIf}' has no IPv4 address; give it one or set cn_if to the backbone-facing interface`);
    this.selfAddr = first.ip;
    this.mobile = await this.interface(cfg.mobileIf, 'mobile_if');
    log(LOG.info, `Using CN interface ${cfg.cnIf}: IP ${formatIPv4(first.ip)}/${first.prefix}, MAC ${backbone.mac}, MTU ${backbone.mtu}`);
    log(LOG.info, `Using mobile facing interface ${cfg.mobileIf}: MAC ${this.mobile.mac}, ${this.mobile.addresses.map((a) => `${formatIPv4(a.ip)}/${a.prefix}`).join(', ') || 'no address'}`);

    for (const [key, value] of [
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.conf.all.rp_filter', '0'],
      [ipv4ConfKey(cfg.cnIf, 'rp_filter'), '0'],
      [ipv4ConfKey(cfg.mobileIf, 'rp_filter'), '0'],
    ] as const) {
      await deps.net.setSysctl(key, value);
    }

    this.pools = [];
    for (const spec of cfg.pools) {
      const pool = await this.resolvePool(spec);
      if (!pool.ok) throw new Error(`addr_pool '${spec.text}': ${pool.error}`);
      this.pools.push(pool.value);
      log(LOG.info, `Established local address allocation pool '${spec.text}': ${describeAvailable(pool.value)}`);
    }
    if (this.pools.length === 0) log(LOG.info, 'No local address pool: clients get cells from other CNs (central or neighbour pools)');

    const probed = await deps.net.probeTunnelTypes(cfg.tunnelPrefix);
    this.tunnels = cfg.tunnelTypes.filter((t) => probed.includes(t));
    log(LOG.info, `Supported tunnels (in order of preference): ${this.tunnels.join(', ') || 'none'} (kernel has ${probed.join(', ') || 'none'})`);
    if (this.tunnels.length === 0) log(LOG.error, 'no usable tunnel type: clients can roam in here only from this CN\'s own pools');

    this.dataplane = new DataplaneDriver(deps.net, {
      self: cfg.cnName,
      selfAddr: this.selfAddr,
      tunnelPrefix: cfg.tunnelPrefix,
      underlayMtu: backbone.mtu,
      mobileIf: cfg.mobileIf,
      mssClamp: cfg.mssClamp,
      log,
      onGatewayAdded: (gateway) => {
        for (const b of this.bindings.values()) if (b.current?.name === cfg.cnName && cellOf(ipOf(b.cell)).gateway === gateway) this.announce(b);
      },
    });
    await this.dataplane.load();

    const link = deps.openLink(cfg.mobileIf, captureFilter(this.mobile.mac));
    if (!link.ok) throw new Error(`cannot capture on mobile_if '${cfg.mobileIf}': ${link.error}`);
    this.link = link.value;
    log(LOG.info, 'Using DHCP and IP/ARP activity for migration detection');

    this.mlr = new MlrLink({
      describe: `${cfg.mlr.host}:${cfg.mlr.port}`,
      connect: () => deps.connect(cfg.mlr.host, cfg.mlr.port),
      bindBody: () => this.bindBody(),
      serve: (peer) => this.serve(peer),
      onBound: (reply) => {
        this.peers = reply.peers;
        return this.reestablish(reply.bindings);
      },
      log,
    });
    this.dhcp = new DhcpServer(this.link, this.mlr, { leaseTime: cfg.leaseTime, dnsServers: cfg.dnsServers, ...(cfg.domain ? { domain: cfg.domain } : {}), log });
    this.detector = new ActivityDetector({
      ownMac: this.mobile.mac,
      isServed: (mac) => this.served.has(mac),
      mayMigrate: (mac, via) => this.mayMigrate(mac, via.toUpperCase()),
      report: (mac, ip, via) => this.report(mac, ip, via),
    });
    this.link.onFrame((frame) => this.frame(frame));
    // ubus first: `ubus call tmip status` must answer (mlr.connected: false) while the MLR is unreachable.
    await this.startUbus();
    await this.mlr.start();
    log(LOG.info, `Correspondent node [${formatIPv4(this.selfAddr)}] (${cfg.cnName}) is now up and running`);
  }

  stop(): void {
    this.mlr?.stop();
    this.link?.close();
    this.ubus?.close();
  }

  /** Publish the `tmip` object and, if enabled, follow hostapd's association events. */
  private async startUbus(): Promise<void> {
    const { cfg, deps } = this;
    if (!deps.openUbus) return;
    let ubus: UbusPort | undefined;
    try {
      ubus = await deps.openUbus();
    } catch (e) {
      deps.log(LOG.error, `ubus: ${e instanceof Error ? e.message : String(e)}; running without ubus`);
      return;
    }
    if (!ubus) {
      deps.log(LOG.info, 'No ubus: running without hostapd association events and without the tmip ubus object');
      return;
    }
    this.ubus = ubus;
    const methods: Record<string, UbusMethod> = {
      status: { args: {}, handler: () => this.ubusStatus() },
      clients: { args: {}, handler: () => ({ clients: this.ubusClients() }) },
      tunnels: { args: {}, handler: () => ({ tunnels: this.ubusTunnels() }) },
      peers: {
        args: {},
        handler: async () => {
          try {
            return { peers: (await this.mlr!.request('peers', {})).peers };
          } catch {
            return { peers: this.peers.map((p) => ({ ...p, online: 'unknown' })) };
          }
        },
      },
      reload: {
        args: {},
        handler: () => {
          this.resync('ubus reload');
          return { ok: true };
        },
      },
    };
    // The first CN on a router is `tmip` (what LuCI reads); a second instance takes `tmip.<cn_name>`.
    for (const name of ['tmip', `tmip.${cfg.cnName.replace(/[^A-Za-z0-9_-]/g, '_')}`]) {
      try {
        await ubus.addObject(name, methods);
        deps.log(LOG.info, `Published ubus object '${name}' (status, clients, tunnels, peers, reload)`);
        break;
      } catch (e) {
        deps.log(LOG.error, `cannot publish ubus object '${name}': ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (!cfg.hostapd) return;
    this.watcher = new HostapdWatcher({
      ubus,
      table: this.associations,
      onArrive: (mac) => {
        if (!this.served.has(mac)) this.detector?.trigger(mac, undefined, 'assoc');
      },
      log: deps.log,
    });
    await this.watcher.start();
  }

  /** Re-bind to the MLR and re-apply every binding (SIGHUP, ubus `reload`). */
  resync(why: string): void {
    this.deps.log(LOG.info, `${why}: re-synchronising with the MLR`);
    this.mlr?.reconnect(why);
  }

  /** Everything `ubus call tmip status/clients/tunnels` shows, in one object (SIGUSR1 writes it to status_file). */
  statusReport(): Record<string, unknown> {
    return { ...this.ubusStatus(), clients: this.ubusClients(), tunnels: this.ubusTunnels(), peers: this.peers };
  }

  private ubusStatus(): Record<string, unknown> {
    return {
      cn_name: this.cfg.cnName,
      network_name: this.cfg.networkName,
      software: SOFTWARE,
      address: formatIPv4(this.selfAddr),
      cn_if: this.cfg.cnIf,
      mobile_if: this.cfg.mobileIf,
      mlr: { address: `${this.cfg.mlr.host}:${this.cfg.mlr.port}`, connected: this.mlr?.connected ?? false },
      pools: this.pools.map(describePool),
      tunnel_types: this.tunnels,
      hostapd: { enabled: this.cfg.hostapd, present: this.associations.present, bss: this.watcher?.bsses ?? [], require_association: this.cfg.requireAssociation },
      clients_here: this.served.size,
      dhcp: this.dhcp ? { ...this.dhcp.stats } : {},
    };
  }

  private ubusClients(): Record<string, unknown>[] {
    const now = Date.now();
    return [...this.bindings.values()].map((b) => ({
      mac: b.mac,
      ip: formatIPv4(cellOf(ipOf(b.cell)).host),
      parent: b.parent.name,
      current: b.current?.name ?? '',
      here: b.current?.name === this.cfg.cnName,
      associated: this.associations.station(b.mac) !== undefined,
      expires: Math.max(0, Math.round((b.expires - now) / 1000)),
    }));
  }

  private ubusTunnels(): Record<string, unknown>[] {
    return [...(this.dataplane?.state.tunnels.values() ?? [])].map((t) => ({ name: t.name, type: t.type, peer: formatIPv4(t.remote), key: t.key, mtu: t.mtu }));
  }

  /** Bindings this CN takes part in, for status output. */
  snapshot(): { bindings: BindingView[]; tunnels: string[]; connected: boolean } {
    return { bindings: [...this.bindings.values()], tunnels: [...(this.dataplane?.state.tunnels.keys() ?? [])], connected: this.mlr?.connected ?? false };
  }

  /** Start a move of `mac` to this cell from outside the capture (e.g. a hostapd association). */
  arrived(mac: Mac): void {
    this.detector?.trigger(mac, undefined, 'assoc');
  }

  // ---- start-up helpers ----

  private async interface(ifname: string, option: string): Promise<InterfaceInfo> {
    try {
      return await this.deps.net.interfaceInfo(ifname);
    } catch (e) {
      throw new Error(`${option} '${ifname}': ${e instanceof Error ? e.message : String(e)} (check the interface name in /etc/config/tmip)`);
    }
  }

  private async resolvePool(spec: CnConfig['pools'][number]): Promise<Result<PoolRange>> {
    if (spec.source.kind === 'cidr') return resolvePool({ subnet: spec.source.cidr, exclude: [] }, spec.first, spec.last);
    const ifname = spec.source.ifname;
    let info: InterfaceInfo;
    try {
      info = await this.deps.net.interfaceInfo(ifname);
    } catch (e) {
      return err(`interface '${ifname}': ${e instanceof Error ? e.message : String(e)}`);
    }
    const a = info.addresses.find((x) => x.prefix <= 29 && x.label === ifname) ?? info.addresses.find((x) => x.prefix <= 29);
    if (!a) return err(`interface '${ifname}' has no IPv4 subnet of /29 or larger to hand out`);
    const network = (a.ip & maskOf(a.prefix)) >>> 0;
    return resolvePool({ subnet: { network, prefix: a.prefix }, exclude: [a.ip] }, spec.first, spec.last);
  }

  private bindBody(): RequestBody<'bind'> {
    return {
      network: this.cfg.networkName,
      cn: { name: this.cfg.cnName, addr: formatIPv4(this.selfAddr) },
      tunnels: this.tunnels,
      pools: this.pools.map(poolToWire),
      software: SOFTWARE,
    };
  }

  // ---- MLR-driven changes ----

  private serve(peer: RpcPeer): void {
    peer.handle('ping', () => ({ time: Date.now() }));
    peer.handle('prepare', (body) => {
      const b = body.binding;
      if (b.current?.name !== this.cfg.cnName && b.parent.name !== this.cfg.cnName && body.previous?.name !== this.cfg.cnName) {
        throw new RpcError('not-involved', `${this.cfg.cnName} takes no part in moving ${b.mac}`);
      }
      if (b.tunnel && (b.current?.name === this.cfg.cnName || b.parent.name === this.cfg.cnName) && !this.tunnels.includes(b.tunnel.type)) {
        throw new RpcError('no-tunnel', `${this.cfg.cnName} cannot build ${b.tunnel.type} tunnels`);
      }
      return {};
    });
    peer.handle('commit', async (body) => {
      await this.commit(body.binding);
      return {};
    });
    peer.handle('abort', () => ({}));
    peer.handle('remove', async (body) => {
      this.bindings.delete(body.binding.mac);
      await this.applyDataplane();
      this.deps.log(LOG.handover, `host ${body.binding.mac} ${formatIPv4(cellOf(ipOf(body.binding.cell)).host)}: binding removed by the MLR`);
      return {};
    });
  }

  private involves(b: BindingView): boolean {
    return b.state === 'bound' && (b.parent.name === this.cfg.cnName || b.current?.name === this.cfg.cnName);
  }

  private async commit(b: BindingView): Promise<void> {
    if (this.involves(b)) this.bindings.set(b.mac, b);
    else this.bindings.delete(b.mac);
    const added = await this.applyDataplane();
    const host = formatIPv4(cellOf(ipOf(b.cell)).host);
    if (b.current?.name === this.cfg.cnName) {
      // A gateway added by this plan was announced the moment it was in place; one kept is re-announced.
      if (!added.includes(cellOf(ipOf(b.cell)).gateway)) this.announce(b);
      const d = this.detectedAt.get(b.mac);
      this.detectedAt.delete(b.mac);
      const since = d ? ` ${Date.now() - d.t} ms after detection via ${d.via}` : '';
      this.deps.log(LOG.handover, `host ${b.mac} ${host} has arrived in this cell (parent ${b.parent.name}${b.tunnel ? `, ${b.tunnel.type} tunnel` : ', at home'})${since}`);
    } else if (b.parent.name === this.cfg.cnName) {
      this.deps.log(LOG.handover, `host ${b.mac} ${host} is away at ${b.current?.name ?? '?'}; tunnelling its traffic`);
    } else {
      this.deps.log(LOG.handover, `host ${b.mac} ${host} has left this cell for ${b.current?.name ?? '?'}`);
    }
  }

  private async reestablish(list: BindingView[]): Promise<void> {
    this.bindings.clear();
    for (const b of list) if (this.involves(b)) this.bindings.set(b.mac, b);
    const added = await this.applyDataplane();
    for (const b of this.bindings.values()) if (b.current?.name === this.cfg.cnName && !added.includes(cellOf(ipOf(b.cell)).gateway)) this.announce(b);
    this.deps.log(LOG.info, `Attempting network re-establish - Querying MLR: ${list.length === 0 ? 'None listed' : `${list.length} host(s) restored`}`);
    // Stations hostapd says are associated here but the MLR places elsewhere (they arrived while the
    // MLR was out of reach): move them now.
    this.detector?.reset();
    for (const [mac, station] of this.associations.all()) if (!station.wds && !this.served.has(mac)) this.detector?.trigger(mac, undefined, 'assoc');
  }

  private async applyDataplane(): Promise<IPv4[]> {
    this.served = new Set([...this.bindings.values()].filter((b) => b.current?.name === this.cfg.cnName).map((b) => b.mac));
    return this.dataplane!.apply(this.bindings.values());
  }

  /** Tell the MS that its gateway N+2 now lives here: a gratuitous ARP and a unicast ARP reply, repeated. */
  private announce(b: BindingView): void {
    const link = this.link;
    if (!link) return;
    const cell = cellOf(ipOf(b.cell));
    const send = () => {
      link.send(buildGratuitousArp(link.mac, cell.gateway));
      link.send(buildArpReply({ srcMac: link.mac, srcIp: cell.gateway, dstMac: b.mac, dstIp: cell.host }));
    };
    send();
    for (const delay of [50, 300, 1000]) setTimeout(send, delay).unref();
  }

  // ---- frames ----

  private frame(frame: Buffer): void {
    const c = classifyFrame(frame);
    if (!c.ok) return;
    const f = c.value;
    if (f.kind === 'dhcp') {
      const msg = decodeDhcp(f.udp.payload);
      if (!msg.ok) {
        this.deps.log(LOG.detect, `ignored malformed DHCP from ${f.eth.src}: ${msg.error}`);
        return;
      }
      const mac = msg.value.chaddr;
      if (!this.served.has(mac) && !this.mayMigrate(mac, 'DHCP')) return;
      if (!this.served.has(mac)) this.detectedAt.set(mac, { t: Date.now(), via: 'dhcp' });
      void this.dhcp?.handle(msg.value);
    } else if (f.kind === 'arp') {
      this.detector?.observe(f.eth.src, f.arp.senderIp, 'arp');
    } else if (f.kind === 'ipv4') {
      this.detector?.observe(f.eth.src, f.ip.src, 'ip');
    }
  }

  /** With hostapd present, only stations associated here may be moved by their traffic. */
  private mayMigrate(mac: Mac, what: string): boolean {
    if (this.associations.mayMigrate(mac, this.cfg.requireAssociation)) return true;
    const last = this.refusedAt.get(mac) ?? 0;
    if (Date.now() - last > 5000) {
      this.refusedAt.set(mac, Date.now());
      if (this.refusedAt.size > 4096) this.refusedAt.clear();
      this.deps.log(LOG.detect, `ignoring ${what} from ${mac}: ${this.associations.isWds(mac) ? 'a WDS link, not a mobile station' : 'not associated with this AP'}`);
    }
    return false;
  }

  private async report(mac: Mac, ip: IPv4 | undefined, via: DetectedVia): Promise<void> {
    const log = this.deps.log;
    log(LOG.handover, `detected ${mac}${ip !== undefined ? ` (${formatIPv4(ip)})` : ''} in my cell via ${via}`);
    this.detectedAt.set(mac, { t: Date.now(), via });
    try {
      const r = await this.mlr!.request('seen', { mac, via, leaseTime: this.cfg.leaseTime, ...(ip !== undefined ? { ip: formatIPv4(ip) } : {}) }, 10_000);
      if (r.outcome === 'unknown' || r.outcome === 'refused') {
        this.detectedAt.delete(mac);
        log(LOG.detect, `${mac}: ${r.outcome}${r.reason ? ` (${r.reason})` : ''}`);
      }
    } catch (e) {
      this.detectedAt.delete(mac);
      log(LOG.error, `report of ${mac} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

function ipOf(text: string): IPv4 {
  const r = parseIPv4(text);
  return r.ok ? r.value : 0;
}

