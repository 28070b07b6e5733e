// SPDX-License-Identifier: GPL-2.0-only
// CnDaemon: one correspondent node, assembled. Start-up follows the original's checklist —
// interfaces, kernel settings, pools, tunnel types, state left by an earlier run, packet capture,
// ubus, MLR bind — then it dispatches captured frames: DHCP to the DHCP server, ARP/IP activity to
// the handover (cn/handover.ts), which owns every station's move. The `tmip` ubus object is in
// cn/ubus-object.ts; the kernel is reached only through NetOps.
import { AssociationTable } from '../core/association.js';
import { Backoff } from '../core/backoff.js';
import type { CnRef } from '../core/binding.js';
import { formatMlrAddress, type CnConfig, type MlrAddress } from '../core/config.js';
import { cnGuards, RateLimitedLog } from '../proto/auth.js';
import { cnCaptureProgram, type BpfInsn } from '../proto/bpf.js';
import { cellOf, formatIPv4, maskOf, type Mac } from '../core/ip.js';
import { FEATURES, type RequestBody } from '../core/messages.js';
import { describeAvailable, describePool, resolvePool, type PoolRange } from '../core/pool.js';
import { err, type Result } from '../core/result.js';
import type { TunnelType } from '../core/tunnel.js';
import type { LinkIO } from '../platform/linkio.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { NeighbourWatch } from '../platform/neighbour-watch.js';
import { ipv4ConfKey, ipv4NeighKey, type InterfaceAddress, type InterfaceInfo, type NetOps } from '../platform/netops.js';
import type { UbusPort } from '../platform/ubus-port.js';
import { decodeDhcp, DHCP_MESSAGE } from '../proto/dhcp.js';
import { classifyFrame } from '../proto/packet.js';
import type { MessageChannel } from '../proto/rpc.js';
import { VERSION } from '../version.js';
import { DataplaneDriver } from './dataplane-driver.js';
import { DhcpServer } from './dhcp-server.js';
import { CnHandover, GUARD_LOG_INTERVAL_MS } from './handover.js';
import { HostapdWatcher } from './hostapd-watcher.js';
import { MlrLink } from './mlr-link.js';
import { MobileLink } from './mobile-link.js';
import { publishTmipObject, type CnReport } from './ubus-object.js';

export const SOFTWARE = `tmip-cn ${VERSION}`;

export interface CnDeps {
  net: NetOps;
  /** Open the capture on the mobile interface (MAC `mac`) with this BPF program (src/proto/bpf.ts). */
  openLink: (ifname: string, program: readonly BpfInsn[], mac: Mac) => Result<LinkIO>;
  /** Open a channel to the MLR at this address (TCP, TLS or MQTT, by its scheme). */
  connect: (mlr: MlrAddress) => Promise<MessageChannel>;
  /** Connect to ubusd; resolves undefined when there is none (not on OpenWrt). */
  openUbus?: () => Promise<UbusPort | undefined>;
  log: LogFn;
  /** The clock of the cell's guards (new-station budget, rate-limited logs); tests pass a fake one. */
  now?: () => number;
  /** Follows the mobile interface's neighbour table (stations that stop answering); none in unit tests. */
  neighbours?: NeighbourWatch;
  /** How often the mobile interface's index is checked, in ms (default MOBILE_CHECK_MS; 0 = never). */
  mobileCheckMs?: number;
  /** First delay of start-up's waits for a device or the backbone's address, in ms (default 500; doubles to 20×). */
  startRetryMs?: number;
}

/**
 * How often the CN checks that its mobile interface is still the device it opened the capture on
 * (one small sysfs read). A device deleted and created again — a Wi-Fi reload that recreates it, a
 * bridge rebuilt — gets a new index; the CN then opens the capture again, re-applies the interface's
 * kernel settings and puts back the gateway addresses the kernel dropped with the old device.
 */
export const MOBILE_CHECK_MS = 1000;

/**
 * ARP probing of stations on the mobile interface, tuned so that a station that left while traffic
 * flows to it is noticed within about a second (its entry FAILED, then paging): an entry is trusted
 * for 0.2–0.6 s after the station last answered (base_reachable_time_ms 400, randomised by the
 * kernel to between half and one and a half times that); the first packet after that sends a unicast
 * ARP probe at once (delay_first_probe_time 0), and 3 probes 120 ms apart unanswered make it FAILED
 * (worst case about 1 s from the station's last answer). The kernel probes only entries that traffic
 * uses, so an idle station causes no ARP at all; one that receives costs two to five small unicast
 * ARP requests a second. (Linux defaults: 30 s, 5 s, 1000 ms x 3: a lost receiver is noticed after
 * 8–50 s.)
 */
export const NEIGHBOUR_TUNING: readonly (readonly [string, string])[] = [
  ['base_reachable_time_ms', '400'],
  ['delay_first_probe_time', '0'],
  ['retrans_time_ms', '120'],
  ['ucast_solicit', '3'],
];

/** What start-up found and built; present once start() has run. */
interface Running {
  selfAddr: number;
  pools: PoolRange[];
  tunnels: TunnelType[];
  link: MobileLink;
  /** The index of the device the capture is open on (checkMobile). */
  mobileIndex: number | undefined;
  dataplane: DataplaneDriver;
  mlr: MlrLink;
  dhcp: DhcpServer;
  handover: CnHandover;
}

/** What start-up waited for: cn_if, its first address, and the subnet of each interface an addr_pool names. */
interface StartReady {
  backbone: InterfaceInfo;
  first: InterfaceAddress;
  poolSubnets: Map<CnConfig['pools'][number], InterfaceAddress>;
}

/** The subnet a pool on `ifname` hands out: its /29-or-larger address labelled as the device, else any such one. */
function poolSubnetOf(info: InterfaceInfo, ifname: string): InterfaceAddress | undefined {
  return info.addresses.find((x) => x.prefix <= 29 && x.label === ifname) ?? info.addresses.find((x) => x.prefix <= 29);
}

export class CnDaemon implements CnReport {
  private run: Running | undefined;
  private peerList: CnRef[] = [];
  /** The MLR's lease_grace: a binding's expiry is the client's lease end plus this (bind reply). */
  private leaseGraceMs = 0;
  private ubus: UbusPort | undefined;
  private watcher: HostapdWatcher | undefined;
  private guardFlush: NodeJS.Timeout | undefined;
  /** Malformed DHCP on the mobile interface, logged at a bounded rate. */
  private malformed: RateLimitedLog | undefined;
  private malformedCount = 0;
  private mobileWatch: NodeJS.Timeout | undefined;
  /** A check of the mobile interface is under way; and what the last one said, so that it is logged once. */
  private checkingMobile = false;
  private mobileTrouble: string | undefined;
  /** stop() was called: a check still under way changes nothing more. */
  private stopped = false;
  /** The mobile interface was missing at the last check (status: capture.interface_gone). */
  private mobileGone = false;
  /** Ends start-up's current wait (for a device or the backbone's address) when stop() is called. */
  private wakeStart: (() => void) | undefined;
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

    // At boot the devices may come later than we do (Wi-Fi is set up after the services start, a
    // DFS channel's radio even a minute later), and addresses later still: wait for them rather than
    // exit into procd's respawn limit, which gives up after five quick exits.
    const found = await this.startReady();
    if (!found) return;
    const { backbone, first } = found;
    const selfAddr = first.ip;
    // The index before the MAC (read next): a device created again meanwhile shows as a change.
    const mobileIndex = await deps.net.interfaceIndex(cfg.mobileIf);
    const mobile = await this.interface(cfg.mobileIf, 'mobile_if');
    if (this.stopped) return;
    log(LOG.info, `Using CN interface ${cfg.cnIf}: IP ${formatIPv4(first.ip)}/${first.prefix}, MAC ${backbone.mac}, MTU ${backbone.mtu}`);
    const mobileAddrs = mobile.addresses.map((a) => `${formatIPv4(a.ip)}/${a.prefix}`).join(', ') || 'no address';
    log(LOG.info, `Using mobile facing interface ${cfg.mobileIf}: MAC ${mobile.mac}, ${mobileAddrs}`);

    for (const [key, value] of [
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.conf.all.rp_filter', '0'],
      [ipv4ConfKey(cfg.cnIf, 'rp_filter'), '0'],
    ] as const) {
      await deps.net.setSysctl(key, value);
    }
    await this.tuneMobile();

    const pools: PoolRange[] = [];
    for (const spec of cfg.pools) {
      const pool = this.resolvePool(spec, found.poolSubnets.get(spec));
      if (!pool.ok) throw new Error(`addr_pool '${spec.text}': ${pool.error}`);
      pools.push(pool.value);
      log(LOG.info, `Established local address allocation pool '${spec.text}': ${describeAvailable(pool.value)}`);
    }
    if (pools.length === 0) log(LOG.info, 'No local address pool: clients get cells from other CNs (central or neighbour pools)');

    const probed = await deps.net.probeTunnelTypes(cfg.tunnelPrefix);
    const tunnels = cfg.tunnelTypes.filter((t) => probed.includes(t));
    log(
      LOG.info,
      `Supported tunnels (in order of preference): ${tunnels.join(', ') || 'none'} (kernel has ${probed.join(', ') || 'none'})`,
    );
    if (tunnels.length === 0) log(LOG.error, "no usable tunnel type: clients can roam in here only from this CN's own pools");

    // The driver and the MLR link call back into the handover, which is created below from them.
    const dataplane = new DataplaneDriver(deps.net, {
      self: cfg.cnName,
      selfAddr,
      tunnelPrefix: cfg.tunnelPrefix,
      underlayMtu: backbone.mtu,
      mobileIf: cfg.mobileIf,
      mssClamp: cfg.mssClamp,
      ...(cfg.tunnelLinger !== undefined ? { lingerMs: cfg.tunnelLinger * 1000 } : {}),
      tunnelTypes: tunnels,
      log,
      onGatewayAdded: (gateway) => handover.gatewayAdded(gateway),
    });
    await dataplane.load();
    // stop() during the kernel reads and writes above: open nothing more.
    if (this.stopped) return;

    const link = new MobileLink(this.openCapture(mobile.mac));
    log(LOG.info, 'Using DHCP and IP/ARP activity for migration detection');

    const mlr: MlrLink = new MlrLink({
      describe: formatMlrAddress(cfg.mlr),
      connect: () => deps.connect(cfg.mlr),
      bindBody: () => {
        handover.beginResync();
        return this.bindBody();
      },
      name: cfg.cnName,
      ...(cfg.secret !== undefined ? { guard: cnGuards(cfg.cnName, cfg.secret, (m) => log(LOG.error, `auth: ${m}`)) } : {}),
      serve: (peer) => handover.serve(peer),
      onBound: (reply) => {
        this.peerList = reply.peers;
        this.leaseGraceMs = (reply.leaseGrace ?? 0) * 1000;
        return handover.reestablish(reply.bindings);
      },
      log,
    });
    const handover = new CnHandover({
      self: cfg.cnName,
      mlr,
      dataplane,
      link,
      associations: this.associations,
      requireAssociation: cfg.requireAssociation,
      newStationRate: cfg.newStationRate,
      tunnels: () => tunnels,
      leaseTime: cfg.leaseTime,
      refreshAssociations: () => this.refreshAssociations(),
      resync: (why) => mlr.reconnect(why),
      log,
      ...(deps.now ? { now: deps.now } : {}),
    });
    const dhcp = new DhcpServer(link, mlr, {
      leaseTime: cfg.leaseTime,
      dnsServers: cfg.dnsServers,
      ...(cfg.domain ? { domain: cfg.domain } : {}),
      log,
      ...(deps.now ? { now: deps.now } : {}),
      selecting: (mac, waiting) => handover.dhcpSelecting(mac, waiting),
      replyWaiting: (mac, waiting) => handover.replyWaiting(mac, waiting),
      applyReply: (tx, binding) => handover.applyReply(tx, binding),
    });
    this.malformed = new RateLimitedLog((m) => log(LOG.detect, m), deps.now, 3, GUARD_LOG_INTERVAL_MS, 'malformed DHCP messages ignored');
    this.guardFlush = setInterval(() => {
      handover.flushGuardLogs();
      dhcp.flushLogs();
      this.malformed?.flush();
    }, 1000); // each log writes its summary once its own interval is over
    this.guardFlush.unref();
    this.run = { selfAddr, mobileIndex, pools, tunnels, link, dataplane, mlr, dhcp, handover };
    link.onFrame((frame) => this.frame(frame));
    deps.neighbours?.start(cfg.mobileIf, (ip) => handover.neighbourFailed(ip));
    // Watched from now on, also while the MLR is out of reach.
    const every = deps.mobileCheckMs ?? MOBILE_CHECK_MS;
    if (every > 0) {
      this.mobileWatch = setInterval(() => void this.checkMobile(), every);
      this.mobileWatch.unref();
    }
    // ubus first: `ubus call tmip status` must answer (mlr.connected: false) while the MLR is unreachable.
    await this.startUbus();
    if (this.stopped) {
      this.ubus?.close(); // opened after stop() closed what there was
      return;
    }
    await mlr.start();
    if (this.stopped) return;
    log(LOG.info, `Correspondent node [${formatIPv4(selfAddr)}] (${cfg.cnName}) is now up and running`);
  }

  /** The mobile interface's own kernel settings (reset when the device is created again). */
  private async tuneMobile(): Promise<void> {
    const ifname = this.cfg.mobileIf;
    await this.deps.net.setSysctl(ipv4ConfKey(ifname, 'rp_filter'), '0');
    for (const [k, v] of NEIGHBOUR_TUNING) await this.deps.net.setSysctl(ipv4NeighKey(ifname, k), v);
  }

  /** Open the capture on the mobile interface, whose MAC is `mac`: only what might concern us. */
  private openCapture(mac: Mac): LinkIO {
    const ifname = this.cfg.mobileIf;
    // ARP, DHCP to servers, and IPv4 sent to some other gateway's MAC.
    const program = cnCaptureProgram(mac);
    if (!program.ok) throw new Error(`cannot capture on mobile_if '${ifname}': ${program.error}`);
    const opened = this.deps.openLink(ifname, program.value, mac);
    if (!opened.ok) throw new Error(`cannot capture on mobile_if '${ifname}': ${opened.error}`);
    return opened.value;
  }

  /**
   * Is the mobile interface still the device the capture is open on (MOBILE_CHECK_MS)? Gone: say so
   * once and wait. Created again (another index): open the capture there, set its kernel settings
   * again and put back the gateways, which the kernel dropped with the old device.
   */
  private async checkMobile(): Promise<void> {
    const run = this.run;
    if (!run || this.checkingMobile) return;
    const { cfg, deps } = this;
    const ifname = cfg.mobileIf;
    this.checkingMobile = true;
    try {
      const index = await deps.net.interfaceIndex(ifname);
      if (this.stopped) return;
      if (index === undefined) {
        this.mobileGone = true;
        this.mobileProblem(`mobile interface ${ifname} is gone: its clients are unreachable until it is back`);
        return;
      }
      // Back after it was gone, even under its old index (moved to another namespace and back, which
      // also unbinds the capture), or created again, or the capture stopped: open it again.
      const stopped = run.link.stats().stopped === true;
      const back = this.mobileGone;
      if (index === run.mobileIndex && !stopped && !back) return;
      const info = await deps.net.interfaceInfo(ifname);
      if (this.stopped) return;
      await this.tuneMobile();
      if (this.stopped) return;
      run.link.replace(this.openCapture(info.mac));
      const was = run.mobileIndex;
      run.mobileIndex = index;
      this.mobileGone = false;
      if (was === index && !back) {
        // Same device: the addon gave up polling after too many socket errors in a row (said once
        // however often it happens again).
        this.mobileProblem(`mobile interface ${ifname}: the capture had stopped after repeated socket errors; reopened`);
        return;
      }
      this.mobileTrouble = undefined;
      deps.log(
        LOG.info,
        `mobile interface ${ifname} ${was === index ? 'is back' : 'was created again'} (index ${was ?? '?'} -> ${index}, MAC ${info.mac}): capture reopened, putting back the gateways`,
      );
      await run.dataplane.mobileRecreated().then(
        (added) => deps.log(LOG.info, `mobile interface ${ifname}: ${added.length} gateway address(es) put back`),
        // Each failed gateway is logged by the driver and tried again by its next plan.
        (e: unknown) =>
          deps.log(LOG.error, `mobile interface ${ifname}: not every gateway was put back: ${e instanceof Error ? e.message : String(e)}`),
      );
    } catch (e) {
      this.mobileProblem(`mobile interface ${ifname}: ${e instanceof Error ? e.message : String(e)}; trying again`);
    } finally {
      this.checkingMobile = false;
    }
  }

  /** Log a problem with the mobile interface once, not on every check while it lasts. */
  private mobileProblem(message: string): void {
    if (message === this.mobileTrouble) return;
    this.mobileTrouble = message;
    this.deps.log(LOG.error, message);
  }

  stop(): void {
    this.stopped = true;
    this.wakeStart?.();
    clearInterval(this.mobileWatch);
    clearInterval(this.guardFlush);
    this.deps.neighbours?.close();
    this.run?.handover.stop();
    this.run?.mlr.stop();
    this.run?.link.close();
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
    await publishTmipObject(ubus, cfg.cnName, this, deps.log);
    if (!cfg.hostapd) return;
    this.watcher = new HostapdWatcher({
      ubus,
      table: this.associations,
      onArrive: (mac) => this.run?.handover.arrived(mac),
      onLeave: (mac) => this.run?.handover.left(mac),
      log: deps.log,
    });
    await this.watcher.start();
  }

  /** Re-read every watched hostapd's station list (a paged station answered that hostapd never announced). */
  private async refreshAssociations(): Promise<void> {
    const ubus = this.ubus;
    if (!ubus || !this.watcher) return;
    for (const bss of this.watcher.bsses) {
      const clients = await ubus.call(`hostapd.${bss}`, 'get_clients', {}, 1000).catch(() => undefined);
      if (clients !== undefined) this.associations.loadClients(bss, clients);
    }
  }

  /** Re-bind to the MLR and re-apply every binding (SIGHUP, ubus `reload`). */
  reload(why: string): void {
    this.deps.log(LOG.info, `${why}: re-synchronising with the MLR`);
    this.run?.mlr.reconnect(why);
  }

  /** A station associated here (hostapd, or a caller outside the capture): move it now. */
  arrived(mac: Mac): void {
    this.run?.handover.arrived(mac);
  }

  // ---- report (ubus `tmip`, SIGUSR1) ----

  /** Everything `ubus call tmip status/clients/tunnels` shows, in one object (SIGUSR1 writes it to status_file). */
  statusReport(): Record<string, unknown> {
    return { ...this.status(), clients: this.clients(), tunnels: this.tunnels(), peers: this.peerList.map(peerText) };
  }

  status(): Record<string, unknown> {
    const { cfg, run } = this;
    return {
      cn_name: cfg.cnName,
      network_name: cfg.networkName,
      software: SOFTWARE,
      address: formatIPv4(run?.selfAddr ?? 0),
      cn_if: cfg.cnIf,
      mobile_if: cfg.mobileIf,
      mlr: { address: formatMlrAddress(cfg.mlr), connected: run?.mlr.connected ?? false },
      pools: (run?.pools ?? []).map(describePool),
      tunnel_types: run?.tunnels ?? [],
      hostapd: {
        enabled: cfg.hostapd,
        present: this.associations.present,
        bss: this.watcher?.bsses ?? [],
        require_association: cfg.requireAssociation,
      },
      clients_here: run?.handover.servedCount() ?? 0,
      dhcp: run ? { ...run.dhcp.stats } : {},
      // The mobile interface's capture: frames delivered, dropped by the kernel (receive buffer full), too long.
      capture: run ? { ...run.link.stats(), ...(this.mobileGone ? { interface_gone: true } : {}) } : {},
      handover: run ? { ...run.handover.stats } : {},
      // What the cell's guards refused (issue 8): frames dropped or ignored, counted since start.
      guard: run
        ? {
            ...run.handover.guard,
            malformed_dhcp: this.malformedCount,
            mlr_refused: run.dhcp.stats.refused,
            new_station_rate: this.cfg.newStationRate,
          }
        : {},
    };
  }

  clients(): Record<string, unknown>[] {
    const now = Date.now();
    return (this.run?.handover.bindings() ?? []).map((b) => ({
      mac: b.mac,
      ip: formatIPv4(cellOf(b.cell).host),
      parent: b.parent.name,
      current: b.current?.name ?? '',
      here: b.current?.name === this.cfg.cnName,
      associated: this.associations.station(b.mac) !== undefined,
      // The client's lease end: the MLR keeps a binding `lease_grace` longer than the lease.
      expires: Math.max(0, Math.round((b.expires - this.leaseGraceMs - now) / 1000)),
    }));
  }

  tunnels(): Record<string, unknown>[] {
    return [...(this.run?.dataplane.state.tunnels.values() ?? [])].map((t) => ({
      name: t.name,
      type: t.type,
      peer: formatIPv4(t.remote),
      key: t.key,
      mtu: t.mtu,
    }));
  }

  async peers(): Promise<Record<string, unknown>[]> {
    try {
      if (!this.run) throw new Error('not started');
      return (await this.run.mlr.request('peers', {})).peers.map((p) => ({ ...p, addr: formatIPv4(p.addr) }));
    } catch {
      return this.peerList.map((p) => ({ ...peerText(p), online: 'unknown' }));
    }
  }

  // ---- start-up helpers ----

  /**
   * Wait, with back-off (0.5 s doubling to 10 s), until what start-up reads exists: the cn_if and
   * mobile_if devices, an IPv4 address on cn_if, and a /29 or larger subnet on every interface an
   * addr_pool names. Each thing waited for is logged once, and once more when it came; a device
   * that vanishes again while the CN waits for something else is waited for again. A name that is
   * simply wrong waits too: the log line names the option to check. Resolves cn_if and its first
   * address, or undefined when stop() came first.
   */
  private async startReady(): Promise<StartReady | undefined> {
    const backoff = this.startBackoff();
    const said = new Set<string>();
    const reported = new Set<string>();
    for (;;) {
      if (this.stopped) return undefined;
      const check = await this.startCheck();
      if (this.stopped) return undefined;
      for (const p of check.passed) {
        if (said.has(p.key) && !reported.has(p.key)) {
          reported.add(p.key);
          this.deps.log(LOG.info, p.now);
        }
      }
      if (check.ready) return check.ready;
      const wait = check.wait!;
      if (!said.has(wait.key)) {
        said.add(wait.key);
        this.deps.log(wait.level, wait.text);
      }
      if (!(await this.startDelay(backoff.next()))) return undefined;
    }
  }

  /** One look at what startReady() waits for: what is there (in order), and the first thing missing or all of it. */
  private async startCheck(): Promise<{
    passed: { key: string; now: string }[];
    wait?: { key: string; level: number; text: string };
    ready?: StartReady;
  }> {
    const { cfg } = this;
    const passed: { key: string; now: string }[] = [];
    const device = (ifname: string, option: string) => ({
      key: `${option} device`,
      level: LOG.error,
      text: `${option} '${ifname}': no such device yet; waiting for it (retrying with back-off; if it never comes, check option ${option} in /etc/config/tmip: ip link lists the devices)`,
    });
    for (const [ifname, option] of [
      [cfg.cnIf, 'cn_if'],
      [cfg.mobileIf, 'mobile_if'],
    ] as const) {
      if ((await this.deps.net.interfaceIndex(ifname)) === undefined) return { passed, wait: device(ifname, option) };
      passed.push({ key: `${option} device`, now: `${option} '${ifname}' exists now` });
    }
    const backbone = await this.presentInterface(cfg.cnIf, 'cn_if');
    if (!backbone) return { passed, wait: device(cfg.cnIf, 'cn_if') };
    const first = backbone.addresses[0];
    if (!first) {
      const text = `cn_if '${cfg.cnIf}' has no IPv4 address yet; waiting for one (retrying with back-off)`;
      return { passed, wait: { key: 'cn_if address', level: LOG.info, text } };
    }
    passed.push({ key: 'cn_if address', now: `cn_if '${cfg.cnIf}' has its IPv4 address now: ${formatIPv4(first.ip)}/${first.prefix}` });
    const poolSubnets = new Map<CnConfig['pools'][number], InterfaceAddress>();
    for (const spec of cfg.pools) {
      if (spec.source.kind !== 'interface') continue;
      const ifname = spec.source.ifname;
      const key = `addr_pool ${spec.text}`;
      const info = await this.presentInterface(ifname, `addr_pool '${spec.text}'`);
      const subnet = info && poolSubnetOf(info, ifname);
      if (!subnet) {
        const text = `addr_pool '${spec.text}': interface '${ifname}' ${info ? 'has no IPv4 subnet of /29 or larger yet' : 'does not exist yet'}; waiting for it (retrying with back-off; if it never comes, check the interface's address or the addr_pool option in /etc/config/tmip)`;
        return { passed, wait: { key, level: LOG.error, text } };
      }
      poolSubnets.set(spec, subnet);
      passed.push({ key, now: `addr_pool '${spec.text}': interface '${ifname}' has its subnet now` });
    }
    return { passed, ready: { backbone, first, poolSubnets } };
  }

  /** interfaceInfo(ifname), or undefined when the device does not exist (any other failure throws, naming `option`). */
  private async presentInterface(ifname: string, option: string): Promise<InterfaceInfo | undefined> {
    try {
      return await this.deps.net.interfaceInfo(ifname);
    } catch (e) {
      if ((await this.deps.net.interfaceIndex(ifname)) === undefined) return undefined;
      throw new Error(
        `${option} '${ifname}': ${e instanceof Error ? e.message : String(e)} (check the interface name in /etc/config/tmip)`,
      );
    }
  }

  private startBackoff(): Backoff {
    const first = this.deps.startRetryMs ?? 500;
    return new Backoff(first, first * 20);
  }

  /** Sleep `ms` during start-up; stop() ends it early. True when start-up should go on. */
  private startDelay(ms: number): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeStart = undefined;
        resolve(!this.stopped);
      }, ms);
      this.wakeStart = () => {
        clearTimeout(timer);
        this.wakeStart = undefined;
        resolve(false);
      };
    });
  }

  private async interface(ifname: string, option: string): Promise<InterfaceInfo> {
    const info = await this.presentInterface(ifname, option);
    if (!info)
      throw new Error(`${option} '${ifname}': interface '${ifname}' does not exist (check the interface name in /etc/config/tmip)`);
    return info;
  }

  /** A pool's range: its CIDR, or the subnet start-up found on its interface (`subnet`, startCheck). */
  private resolvePool(spec: CnConfig['pools'][number], subnet: InterfaceAddress | undefined): Result<PoolRange> {
    if (spec.source.kind === 'cidr') return resolvePool({ subnet: spec.source.cidr, exclude: [] }, spec.first, spec.last);
    if (!subnet) return err(`interface '${spec.source.ifname}' has no IPv4 subnet of /29 or larger to hand out`);
    const network = (subnet.ip & maskOf(subnet.prefix)) >>> 0;
    return resolvePool({ subnet: { network, prefix: subnet.prefix }, exclude: [subnet.ip] }, spec.first, spec.last);
  }

  private bindBody(): RequestBody<'bind'> {
    const run = this.run!;
    return {
      network: this.cfg.networkName,
      cn: { name: this.cfg.cnName, addr: run.selfAddr },
      tunnels: run.tunnels,
      pools: run.pools,
      software: SOFTWARE,
      // Replies that carry a move's commit (core/messages.ts): applied by the handover before the DHCPACK.
      features: [FEATURES.inlineCommit],
    };
  }

  // ---- frames ----

  private frame(frame: Buffer): void {
    const run = this.run;
    if (!run) return;
    const c = classifyFrame(frame);
    if (!c.ok) return;
    const f = c.value;
    if (f.kind === 'dhcp') {
      const msg = decodeDhcp(f.udp.payload);
      if (!msg.ok) {
        this.malformedCount++;
        this.malformed?.log(`ignored malformed DHCP from ${f.eth.src}: ${msg.error}`);
        return;
      }
      const m = msg.value;
      const type = m.messageType;
      if (type === DHCP_MESSAGE.RELEASE || type === DHCP_MESSAGE.DECLINE) {
        if (run.handover.mayRelease(type === DHCP_MESSAGE.RELEASE ? 'RELEASE' : 'DECLINE', f.eth.src, m.chaddr)) void run.dhcp.handle(m);
      } else if (run.handover.acceptDhcp(m.chaddr)) void run.dhcp.handle(m);
    } else if (f.kind === 'arp') {
      run.handover.arpHeard(f.eth.src, f.arp);
      run.handover.observe(f.eth.src, f.arp.senderIp, 'arp');
    } else if (f.kind === 'ipv4') {
      run.handover.observe(f.eth.src, f.ip.src, 'ip');
    }
  }
}

function peerText(p: CnRef): Record<string, unknown> {
  return { name: p.name, addr: formatIPv4(p.addr) };
}
