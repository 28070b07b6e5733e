// SPDX-License-Identifier: GPL-2.0-only
// FakeNetOps: an in-memory kernel for unit tests of the CN logic. It keeps interfaces (seeded with
// addInterface), tunnels, addresses, /32 routes, neighbours, sysctls and MSS-clamp tables with the
// same success/failure semantics as IprouteNetOps (idempotent adds and deletes, the same validation
// and messages for bad input, rejection of unknown devices); test/support/netops-contract.ts runs the
// same checks against both. It logs every call in `calls` and can be told to fail the next call of a
// method (failNext).
import { formatIPv4, type IPv4, type Mac } from '../core/ip.js';
import { TUNNEL_TYPES, type TunnelSpec, type TunnelType } from '../core/tunnel.js';
import {
  checkIfname,
  checkIPv4,
  checkMssClamp,
  checkNftTable,
  checkPrefix,
  checkSysctl,
  checkTunnelSpec,
  vxlanMacFor,
} from './iproute-netops.js';
import type { InterfaceAddress, InterfaceInfo, NetOps, TunnelRoute } from './netops.js';

/** Interfaces every namespace has a sysctl directory for, besides the real ones. */
const CONF_PSEUDO_INTERFACES = new Set(['all', 'default', 'lo']);

export interface FakeTunnel extends TunnelSpec {
  /** Changes whenever the device is (re-)created, like a kernel ifindex. */
  ifindex: number;
}

export interface FakeClamp {
  mobileIf: string;
  mss: number;
  hosts: IPv4[];
}

export type NetOpsMethod = keyof NetOps;

export class FakeNetOps implements NetOps {
  /** Tunnel types probeTunnelTypes reports (and ensureTunnel accepts). */
  supported: TunnelType[] = [...TUNNEL_TYPES];
  /** One line per call, e.g. "ensureTunnel tmip01 vxlan 10.0.0.1->10.0.0.2 key 1 mtu 1450". */
  readonly calls: string[] = [];
  readonly interfaces = new Map<string, InterfaceInfo>();
  readonly tunnels = new Map<string, FakeTunnel>();
  /** Host /32 routes of the main table: host → device. */
  readonly routes = new Map<IPv4, string>();
  /** Permanent neighbours: `${dev} ${dotted ip}` → MAC. */
  readonly neighbours = new Map<string, Mac>();
  readonly sysctls = new Map<string, string>();
  readonly clamps = new Map<string, FakeClamp>();
  private readonly failures = new Map<NetOpsMethod, string[]>();
  private nextIfindex = 100;

  /** Interface indexes of seeded interfaces (tunnels keep theirs in `tunnels`). */
  readonly ifindexes = new Map<string, number>();

  /** Seed an interface (a copy is kept; missing fields get defaults); it gets a new index. */
  addInterface(info: Partial<InterfaceInfo> & { ifname: string }): void {
    this.ifindexes.set(info.ifname, this.nextIfindex++);
    this.interfaces.set(info.ifname, {
      ifname: info.ifname,
      mac: info.mac ?? '02:00:00:00:00:01',
      mtu: info.mtu ?? 1500,
      up: info.up ?? true,
      addresses: (info.addresses ?? []).map((a) => ({ ...a })),
    });
  }

  /** Make the next call of `method` reject with `message` (queued: several calls fail in turn). */
  failNext(method: NetOpsMethod, message: string): void {
    const list = this.failures.get(method) ?? [];
    list.push(message);
    this.failures.set(method, list);
  }

  /** Calls whose line starts with `method`. */
  callsOf(method: NetOpsMethod): string[] {
    return this.calls.filter((c) => c === method || c.startsWith(`${method} `));
  }

  private enter(method: NetOpsMethod, line: string): void {
    this.calls.push(line ? `${method} ${line}` : method);
    const queued = this.failures.get(method);
    const message = queued?.shift();
    if (queued && queued.length === 0) this.failures.delete(method);
    if (message !== undefined) throw new Error(message);
  }

  /** An existing interface (the kernel's words when it is missing). */
  private iface(name: string): InterfaceInfo {
    const info = this.interfaces.get(name);
    if (!info) throw new Error(`Cannot find device "${name}"`);
    return info;
  }

  async interfaceInfo(ifname: string): Promise<InterfaceInfo> {
    this.enter('interfaceInfo', ifname);
    checkIfname(ifname);
    const info = this.interfaces.get(ifname);
    if (!info) throw new Error(`interface '${ifname}' does not exist`);
    return { ...info, addresses: info.addresses.map((a) => ({ ...a })) };
  }

  /**
   * The kernel deletes interface `ifname` (with every address on it) and something creates it again
   * with a new index: by default with the addresses labelled `ifname` itself (those the network
   * configuration puts back), not the labelled ones others added, and the same MAC unless given.
   */
  recreateInterface(ifname: string, info: Partial<InterfaceInfo> = {}): void {
    const old = this.iface(ifname);
    this.addInterface({ ...old, addresses: old.addresses.filter((a) => a.label === ifname), ...info, ifname });
  }

  /** Delete interface `ifname` (interfaceIndex then says undefined, interfaceInfo rejects). */
  removeInterface(ifname: string): void {
    this.interfaces.delete(ifname);
    this.ifindexes.delete(ifname);
  }

  /** Not recorded in `calls` (the CN polls it every second). */
  async interfaceIndex(ifname: string): Promise<number | undefined> {
    checkIfname(ifname);
    if (!this.interfaces.has(ifname)) return undefined;
    return this.tunnels.get(ifname)?.ifindex ?? this.ifindexes.get(ifname);
  }

  async probeTunnelTypes(prefix: string): Promise<TunnelType[]> {
    this.enter('probeTunnelTypes', prefix);
    // Like the real probe: one scratch device per type; a leftover tunnel of an interrupted probe is
    // removed, any other link of that name stops the probe.
    for (const n of TUNNEL_TYPES.keys()) {
      const name = checkIfname(`${prefix}p${n}`, 'probe device name');
      if (this.interfaces.has(name) && !this.tunnels.has(name)) {
        throw new Error(`cannot probe tunnel types: link ${name} exists and is not a tunnel`);
      }
      this.removeLink(name);
    }
    return TUNNEL_TYPES.filter((t) => this.supported.includes(t));
  }

  async listTunnels(prefix: string): Promise<string[]> {
    this.enter('listTunnels', prefix);
    return [...this.tunnels.keys()].filter((n) => n.startsWith(prefix));
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    this.enter(
      'ensureTunnel',
      `${spec.name} ${spec.type} ${formatIPv4(spec.local)}->${formatIPv4(spec.remote)} key ${spec.key} mtu ${spec.mtu}`,
    );
    checkTunnelSpec(spec);
    if (this.interfaces.has(spec.name) && !this.tunnels.has(spec.name)) {
      throw new Error(`link ${spec.name} exists and is not a tunnel; not touching it`);
    }
    const old = this.tunnels.get(spec.name);
    const same =
      old &&
      old.type === spec.type &&
      old.local === spec.local &&
      old.remote === spec.remote &&
      (spec.type === 'ipip' || old.key === spec.key);
    if (!same && !this.supported.includes(spec.type)) {
      // The real adapter deletes the mismatching device before `ip link add` fails.
      this.removeLink(spec.name);
      throw new Error(`Error: Unknown device type.`);
    }
    if (old && same) {
      old.mtu = spec.mtu;
      const info = this.interfaces.get(spec.name);
      if (info) {
        info.mtu = spec.mtu;
        info.up = true;
      }
    } else {
      if (old) this.removeLink(spec.name);
      this.tunnels.set(spec.name, { ...spec, ifindex: this.nextIfindex++ });
      this.interfaces.set(spec.name, {
        ifname: spec.name,
        mac: spec.type === 'vxlan' ? vxlanMacFor(spec.local) : '00:00:00:00:00:00',
        mtu: spec.mtu,
        up: true,
        addresses: [],
      });
    }
    this.sysctls.set(`net.ipv4.conf.${spec.name.replace(/\./g, '/')}.rp_filter`, '0');
  }

  /** Delete a link as the kernel does: with its routes, neighbours and per-interface sysctls. */
  private removeLink(name: string): void {
    this.tunnels.delete(name);
    this.interfaces.delete(name);
    for (const [host, dev] of this.routes) if (dev === name) this.routes.delete(host);
    for (const key of this.neighbours.keys()) if (key.startsWith(`${name} `)) this.neighbours.delete(key);
    for (const key of this.sysctls.keys()) if (sysctlInterface(key) === name) this.sysctls.delete(key);
  }

  async deleteLink(name: string): Promise<void> {
    this.enter('deleteLink', name);
    checkIfname(name);
    this.removeLink(name);
  }

  async addAddress(ifname: string, ip: IPv4, prefix: number, label: string): Promise<void> {
    this.enter('addAddress', `${ifname} ${formatIPv4(ip)}/${prefix} ${label}`);
    checkIfname(ifname);
    checkIfname(label, 'address label');
    checkIPv4(ip);
    checkPrefix(prefix);
    const info = this.iface(ifname);
    if (info.addresses.some((a) => a.ip === ip && a.prefix === prefix)) return;
    const entry: InterfaceAddress = { ip, prefix, label };
    info.addresses.push(entry);
  }

  async deleteAddress(ifname: string, ip: IPv4, prefix: number): Promise<void> {
    this.enter('deleteAddress', `${ifname} ${formatIPv4(ip)}/${prefix}`);
    checkIfname(ifname);
    checkIPv4(ip);
    checkPrefix(prefix);
    const info = this.interfaces.get(ifname);
    if (!info) return;
    info.addresses = info.addresses.filter((a) => !(a.ip === ip && a.prefix === prefix));
  }

  async routeHostIntoTunnel(ip: IPv4, tunnel: TunnelSpec): Promise<void> {
    this.enter('routeHostIntoTunnel', `${formatIPv4(ip)} ${tunnel.name}`);
    checkIPv4(ip, 'host address');
    checkIfname(tunnel.name, 'tunnel name');
    if (tunnel.type === 'vxlan') checkIPv4(tunnel.remote, 'tunnel remote address');
    // Like `ip route replace ... dev X`: any existing device will do, but it must be up.
    const info = this.iface(tunnel.name);
    if (!info.up) throw new Error('Error: Device for nexthop is not up.');
    if (tunnel.type === 'vxlan') this.neighbours.set(`${tunnel.name} ${formatIPv4(ip)}`, vxlanMacFor(tunnel.remote));
    this.routes.set(ip, tunnel.name);
  }

  async deleteHostRoute(ip: IPv4, dev: string): Promise<void> {
    this.enter('deleteHostRoute', `${formatIPv4(ip)} ${dev}`);
    checkIPv4(ip, 'host address');
    checkIfname(dev);
    if (this.routes.get(ip) === dev) this.routes.delete(ip);
    this.neighbours.delete(`${dev} ${formatIPv4(ip)}`);
  }

  async listTunnelRoutes(prefix: string): Promise<TunnelRoute[]> {
    this.enter('listTunnelRoutes', prefix);
    return [...this.routes].filter(([, dev]) => dev.startsWith(prefix)).map(([ip, dev]) => ({ ip, dev }));
  }

  async setSysctl(key: string, value: string): Promise<void> {
    this.enter('setSysctl', `${key}=${value}`);
    checkSysctl(key, value);
    const dev = sysctlInterface(key);
    if (dev !== undefined && !this.interfaces.has(dev) && !CONF_PSEUDO_INTERFACES.has(dev)) {
      // What procps sysctl says for a per-interface key of a missing interface.
      const path = `/proc/sys/${key.replace(/\./g, '/')}`;
      throw new Error(`cannot set sysctl ${key}=${value}: sysctl: cannot stat ${path}: No such file or directory`);
    }
    this.sysctls.set(key, value);
  }

  async setMssClamp(table: string, mobileIf: string, mss: number, hosts: IPv4[]): Promise<void> {
    const unique = [...new Set(hosts)].sort((a, b) => a - b);
    this.enter('setMssClamp', `${table} ${mobileIf} ${mss} [${unique.map(formatIPv4).join(', ')}]`);
    checkMssClamp(table, mobileIf, mss, hosts);
    this.clamps.set(table, { mobileIf, mss, hosts: unique });
  }

  async updateMssClamp(table: string, add: readonly IPv4[], del: readonly IPv4[]): Promise<void> {
    this.enter('updateMssClamp', `${table} +[${add.map(formatIPv4).join(', ')}] -[${del.map(formatIPv4).join(', ')}]`);
    checkNftTable(table);
    for (const h of [...add, ...del]) checkIPv4(h, 'host address');
    const c = this.clamps.get(table);
    if (!c) {
      if (add.length === 0) return; // removing from a table that is gone: gone already
      // What nft says for an element added to a table that does not exist.
      throw new Error(`\`add element ip ${table} roamed { ${formatIPv4(add[0]!)} }\` failed: Error: No such file or directory`);
    }
    const hosts = new Set(c.hosts);
    for (const h of add) hosts.add(h);
    for (const h of del) hosts.delete(h);
    c.hosts = [...hosts].sort((a, b) => a - b);
  }

  async deleteMssClamp(table: string): Promise<void> {
    this.enter('deleteMssClamp', table);
    checkNftTable(table);
    this.clamps.delete(table);
  }
}

/** The interface a per-interface IPv4/IPv6 sysctl key belongs to (net.ipv4.conf.eth0/1.x → eth0.1). */
function sysctlInterface(key: string): string | undefined {
  const m = /^net\.ipv[46]\.(?:conf|neigh)\.([^.]+)\.[^.]+$/.exec(key);
  return m?.[1]?.replace(/\//g, '.');
}
