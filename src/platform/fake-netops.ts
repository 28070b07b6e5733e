// FakeNetOps: an in-memory kernel for unit tests of the CN logic. It keeps interfaces (seeded with
// addInterface), tunnels, addresses, /32 routes, neighbours, sysctls and MSS-clamp tables with the
// same success/failure semantics as IprouteNetOps (idempotent adds and deletes, rejection of bad
// names and of unknown devices), logs every call in `calls`, and can be told to fail the next call
// of a method (failNext).
import { formatIPv4, type IPv4, type Mac } from '../core/ip.js';
import { isTunnelType, TUNNEL_TYPES, type TunnelSpec, type TunnelType } from '../core/tunnel.js';
import { isValidIfname, isValidNftName, isValidSysctlKey, MAX_TUNNEL_KEY, vxlanMacFor } from './iproute-netops.js';
import type { InterfaceAddress, InterfaceInfo, NetOps, TunnelRoute } from './netops.js';

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

  /** Seed an interface (a copy is kept; missing fields get defaults). */
  addInterface(info: Partial<InterfaceInfo> & { ifname: string }): void {
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

  private iface(name: string): InterfaceInfo {
    if (!isValidIfname(name)) throw new Error(`invalid interface name '${name}'`);
    const info = this.interfaces.get(name);
    if (!info) throw new Error(`Cannot find device "${name}"`);
    return info;
  }

  async interfaceInfo(ifname: string): Promise<InterfaceInfo> {
    this.enter('interfaceInfo', ifname);
    if (!isValidIfname(ifname)) throw new Error(`invalid interface name '${ifname}'`);
    const info = this.interfaces.get(ifname);
    if (!info) throw new Error(`interface '${ifname}' does not exist`);
    return { ...info, addresses: info.addresses.map((a) => ({ ...a })) };
  }

  async probeTunnelTypes(prefix: string): Promise<TunnelType[]> {
    this.enter('probeTunnelTypes', prefix);
    return TUNNEL_TYPES.filter((t) => this.supported.includes(t));
  }

  async listTunnels(prefix: string): Promise<string[]> {
    this.enter('listTunnels', prefix);
    return [...this.tunnels.keys()].filter((n) => n.startsWith(prefix));
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    this.enter('ensureTunnel', `${spec.name} ${spec.type} ${formatIPv4(spec.local)}->${formatIPv4(spec.remote)} key ${spec.key} mtu ${spec.mtu}`);
    if (!isValidIfname(spec.name)) throw new Error(`invalid tunnel name '${spec.name}'`);
    if (!isTunnelType(spec.type) || !this.supported.includes(spec.type)) throw new Error(`Error: Unknown device type.`);
    if (spec.type !== 'ipip' && (!Number.isInteger(spec.key) || spec.key < 1 || spec.key > MAX_TUNNEL_KEY)) throw new Error(`tunnel ${spec.name}: invalid key ${spec.key}`);
    if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535) throw new Error(`tunnel ${spec.name}: invalid MTU ${spec.mtu}`);
    if (this.interfaces.has(spec.name) && !this.tunnels.has(spec.name)) {
      throw new Error(`link ${spec.name} exists and is not a tunnel; not touching it`);
    }
    const old = this.tunnels.get(spec.name);
    const same = old && old.type === spec.type && old.local === spec.local && old.remote === spec.remote && (spec.type === 'ipip' || old.key === spec.key);
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

  private removeLink(name: string): void {
    this.tunnels.delete(name);
    this.interfaces.delete(name);
    for (const [host, dev] of this.routes) if (dev === name) this.routes.delete(host);
    for (const key of this.neighbours.keys()) if (key.startsWith(`${name} `)) this.neighbours.delete(key);
  }

  async deleteLink(name: string): Promise<void> {
    this.enter('deleteLink', name);
    if (!isValidIfname(name)) throw new Error(`invalid interface name '${name}'`);
    this.removeLink(name);
  }

  async addAddress(ifname: string, ip: IPv4, prefix: number, label: string): Promise<void> {
    this.enter('addAddress', `${ifname} ${formatIPv4(ip)}/${prefix} ${label}`);
    if (!isValidIfname(label)) throw new Error(`invalid address label '${label}'`);
    const info = this.iface(ifname);
    if (info.addresses.some((a) => a.ip === ip && a.prefix === prefix)) return;
    const entry: InterfaceAddress = { ip, prefix, label };
    info.addresses.push(entry);
  }

  async deleteAddress(ifname: string, ip: IPv4, prefix: number): Promise<void> {
    this.enter('deleteAddress', `${ifname} ${formatIPv4(ip)}/${prefix}`);
    if (!isValidIfname(ifname)) throw new Error(`invalid interface name '${ifname}'`);
    const info = this.interfaces.get(ifname);
    if (!info) return;
    info.addresses = info.addresses.filter((a) => !(a.ip === ip && a.prefix === prefix));
  }

  async routeHostIntoTunnel(ip: IPv4, tunnel: TunnelSpec): Promise<void> {
    this.enter('routeHostIntoTunnel', `${formatIPv4(ip)} ${tunnel.name}`);
    if (!this.tunnels.has(tunnel.name)) throw new Error(`Cannot find device "${tunnel.name}"`);
    if (tunnel.type === 'vxlan') this.neighbours.set(`${tunnel.name} ${formatIPv4(ip)}`, vxlanMacFor(tunnel.remote));
    this.routes.set(ip, tunnel.name);
  }

  async deleteHostRoute(ip: IPv4, dev: string): Promise<void> {
    this.enter('deleteHostRoute', `${formatIPv4(ip)} ${dev}`);
    if (!isValidIfname(dev)) throw new Error(`invalid interface name '${dev}'`);
    if (this.routes.get(ip) === dev) this.routes.delete(ip);
    this.neighbours.delete(`${dev} ${formatIPv4(ip)}`);
  }

  async listTunnelRoutes(prefix: string): Promise<TunnelRoute[]> {
    this.enter('listTunnelRoutes', prefix);
    return [...this.routes].filter(([, dev]) => dev.startsWith(prefix)).map(([ip, dev]) => ({ ip, dev }));
  }

  async setSysctl(key: string, value: string): Promise<void> {
    this.enter('setSysctl', `${key}=${value}`);
    if (!isValidSysctlKey(key)) throw new Error(`invalid sysctl key '${key}'`);
    this.sysctls.set(key, value);
  }

  async setMssClamp(table: string, mobileIf: string, mss: number, hosts: IPv4[]): Promise<void> {
    const unique = [...new Set(hosts)].sort((a, b) => a - b);
    this.enter('setMssClamp', `${table} ${mobileIf} ${mss} [${unique.map(formatIPv4).join(', ')}]`);
    if (!isValidNftName(table)) throw new Error(`invalid nftables table name '${table}'`);
    if (!isValidIfname(mobileIf)) throw new Error(`invalid interface name '${mobileIf}'`);
    if (!Number.isInteger(mss) || mss < 1 || mss > 65535) throw new Error(`invalid MSS ${mss}`);
    this.clamps.set(table, { mobileIf, mss, hosts: unique });
  }

  async deleteMssClamp(table: string): Promise<void> {
    this.enter('deleteMssClamp', table);
    if (!isValidNftName(table)) throw new Error(`invalid nftables table name '${table}'`);
    this.clamps.delete(table);
  }
}
