// IprouteNetOps: NetOps on a real kernel through iproute2 (`ip`, using its JSON output), `sysctl`
// and `nft`. Every name and number is validated and formatted here before it reaches a command
// line; commands run without a shell (exec.ts). With the `netns` option every command runs inside
// that network namespace (`ip netns exec NS ...`), which is how the lab tests use it.
import { formatIPv4, macFromBytes, parseIPv4, parseMac, type IPv4, type Mac } from '../core/ip.js';
import { isTunnelType, TUNNEL_TYPES, type TunnelSpec, type TunnelType } from '../core/tunnel.js';
import { describeFailure, run, type RunOptions, type RunResult } from './exec.js';
import { LOG, type LogFn } from './log.js';
import { ipv4ConfKey, type InterfaceAddress, type InterfaceInfo, type NetOps, type TunnelRoute } from './netops.js';

export interface IprouteNetOpsOptions {
  /** Path of the `ip` binary (default 'ip'). */
  ip?: string;
  /** Path of the `nft` binary (default 'nft'). */
  nft?: string;
  /** Path of the `sysctl` binary (default 'sysctl'). */
  sysctl?: string;
  log?: LogFn;
  /** Run every command inside this network namespace; for tests. */
  netns?: string;
  /** Per-command timeout (default exec.ts's 5 s). */
  timeoutMs?: number;
}

/** UDP port of every tunnel's VXLAN socket (IANA). */
export const VXLAN_PORT = 4789;
/** The probe's scratch VXLAN device uses another port so its VNI can never clash with a real tunnel's. */
const PROBE_VXLAN_PORT = 4790;
const PROBE_LOCAL = 0xc0000201; // 192.0.2.1 (TEST-NET-1; the probe device is never brought up)
const PROBE_REMOTE = 0xc0000202; // 192.0.2.2
const TUNNEL_TTL = 64;
export const MAX_TUNNEL_KEY = 0xffffff;

/** Devices the kernel creates itself in every namespace once the ipip/gre modules are loaded. */
const FALLBACK_DEVICES = new Set(['tunl0', 'gre0', 'gretap0', 'erspan0', 'ip_vti0', 'sit0', 'ip6tnl0', 'ip6gre0']);

/** The MAC address of our VXLAN device on the CN whose underlay address is `ip`: 02:74:a:b:c:d (locally administered). */
export function vxlanMacFor(ip: IPv4): Mac {
  return macFromBytes(Uint8Array.of(0x02, 0x74, (ip >>> 24) & 255, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255));
}

/** A usable Linux interface name (or address label): 1..15 bytes of [A-Za-z0-9_.:@-], not starting with '-'. */
export function isValidIfname(name: string): boolean {
  return /^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,14}$/.test(name) && name !== '.' && name !== '..';
}

/** An nftables table name we are willing to put in a ruleset. */
export function isValidNftName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name);
}

/** A sysctl key in dotted form; interface names containing dots are written with '/' (procps and busybox convention). */
export function isValidSysctlKey(key: string): boolean {
  return /^[A-Za-z0-9_]+(\.[A-Za-z0-9_/:@-]+)+$/.test(key) && !key.includes('..');
}

/** The sysctl key of a per-interface IPv4 setting, e.g. net.ipv4.conf.eth0/1.rp_filter for eth0.1. */
export { ipv4ConfKey } from './netops.js';

function checkIfname(name: string, what = 'interface name'): string {
  if (!isValidIfname(name)) throw new Error(`invalid ${what} '${name}' (expected 1..15 characters of A-Z a-z 0-9 _ . : @ -)`);
  return name;
}

function checkIPv4(ip: IPv4, what = 'address'): string {
  if (!Number.isInteger(ip) || ip < 0 || ip > 0xffffffff) throw new Error(`invalid IPv4 ${what} ${String(ip)}`);
  return formatIPv4(ip);
}

function checkPrefix(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`invalid prefix length ${String(prefix)}`);
  return prefix;
}

function checkTunnelSpec(spec: TunnelSpec): void {
  checkIfname(spec.name, 'tunnel name');
  if (!isTunnelType(spec.type)) throw new Error(`tunnel ${spec.name}: unknown tunnel type '${String(spec.type)}'`);
  checkIPv4(spec.local, 'tunnel local address');
  checkIPv4(spec.remote, 'tunnel remote address');
  if (spec.type !== 'ipip' && (!Number.isInteger(spec.key) || spec.key < 1 || spec.key > MAX_TUNNEL_KEY)) {
    throw new Error(`tunnel ${spec.name}: invalid key ${String(spec.key)} (expected 1..${MAX_TUNNEL_KEY})`);
  }
  if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535) throw new Error(`tunnel ${spec.name}: invalid MTU ${String(spec.mtu)}`);
}

/** How iproute2 prints a GRE key in JSON: the 32-bit key as a dotted quad. */
function greKeyText(key: number): string {
  return formatIPv4(key >>> 0);
}

/** The parts of `ip -j -d link show` we read. */
interface IpLink {
  ifindex?: number;
  ifname?: string;
  address?: string;
  mtu?: number;
  operstate?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number; label?: string }>;
}

interface IpRoute {
  dst?: string;
  dev?: string;
  type?: string;
}

const NOT_FOUND = /Cannot find device|does not exist|No such device/;

/** The `ip link add` arguments after the name for one tunnel (or probe) device. */
function tunnelArgs(type: TunnelType, local: IPv4, remote: IPv4, key: number, port = VXLAN_PORT): string[] {
  const ends = ['local', formatIPv4(local), 'remote', formatIPv4(remote)];
  switch (type) {
    case 'ipip':
      return ['type', 'ipip', ...ends, 'ttl', String(TUNNEL_TTL)];
    case 'gre':
      return ['type', 'gre', ...ends, 'key', String(key), 'ttl', String(TUNNEL_TTL)];
    case 'vxlan':
      return ['type', 'vxlan', 'id', String(key), ...ends, 'dstport', String(port), 'ttl', String(TUNNEL_TTL)];
  }
}

/** Whether an existing link (from `ip -j -d link show`) is the tunnel `spec` describes. */
export function linkMatchesTunnel(link: IpLink, spec: TunnelSpec): boolean {
  const kind = link.linkinfo?.info_kind;
  const data = link.linkinfo?.info_data ?? {};
  if (kind !== spec.type) return false;
  if (data['local'] !== formatIPv4(spec.local) || data['remote'] !== formatIPv4(spec.remote)) return false;
  switch (spec.type) {
    case 'ipip':
      return true;
    case 'gre':
      return data['ikey'] === greKeyText(spec.key) && data['okey'] === greKeyText(spec.key);
    case 'vxlan':
      return data['id'] === spec.key && (data['port'] === undefined || data['port'] === VXLAN_PORT);
  }
}

export class IprouteNetOps implements NetOps {
  private readonly ipBin: string;
  private readonly nftBin: string;
  private readonly sysctlBin: string;
  private readonly log: LogFn;
  private readonly runOpts: RunOptions;

  constructor(opts: IprouteNetOpsOptions = {}) {
    this.ipBin = opts.ip ?? 'ip';
    this.nftBin = opts.nft ?? 'nft';
    this.sysctlBin = opts.sysctl ?? 'sysctl';
    this.log = opts.log ?? (() => undefined);
    if (opts.netns !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(opts.netns)) throw new Error(`invalid network namespace name '${opts.netns}'`);
    this.runOpts = {
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    };
  }

  // ---- command helpers ----

  private async exec(cmd: string, args: string[], input?: string): Promise<RunResult> {
    const r = await run(cmd, args, input !== undefined ? { ...this.runOpts, input } : this.runOpts);
    this.log(LOG.debug, `exec: ${cmd} ${args.join(' ')} -> ${r.code}${r.code !== 0 && r.stderr.trim() ? ` (${r.stderr.trim()})` : ''}`);
    return r;
  }

  /** Run; succeed on exit 0 or when stderr matches `ignore`; otherwise reject with the command and its error. */
  private async must(cmd: string, args: string[], ignore?: RegExp, input?: string): Promise<RunResult> {
    const r = await this.exec(cmd, args, input);
    if (r.code === 0 || (ignore !== undefined && !r.timedOut && ignore.test(r.stderr))) return r;
    throw new Error(describeFailure(cmd, args, this.runOpts, r));
  }

  private ip(args: string[], ignore?: RegExp): Promise<RunResult> {
    return this.must(this.ipBin, args, ignore);
  }

  private async ipJson<T>(args: string[]): Promise<T[]> {
    const r = await this.ip(['-j', ...args]);
    const text = r.stdout.trim();
    if (text === '') return [];
    try {
      const parsed: unknown = JSON.parse(text);
      if (!Array.isArray(parsed)) throw new Error('not a JSON array');
      return parsed as T[];
    } catch (e) {
      throw new Error(`cannot parse the output of \`ip -j ${args.join(' ')}\`: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** `ip -j -d link show dev NAME`, or undefined when there is no such link. */
  private async linkDetails(name: string): Promise<IpLink | undefined> {
    const r = await this.exec(this.ipBin, ['-j', '-d', 'link', 'show', 'dev', name]);
    if (r.code !== 0) {
      if (NOT_FOUND.test(r.stderr)) return undefined;
      throw new Error(describeFailure(this.ipBin, ['-j', '-d', 'link', 'show', 'dev', name], this.runOpts, r));
    }
    const links = JSON.parse(r.stdout.trim() || '[]') as IpLink[];
    return links.find((l) => l.ifname === name);
  }

  // ---- NetOps ----

  async interfaceInfo(ifname: string): Promise<InterfaceInfo> {
    checkIfname(ifname);
    const r = await this.exec(this.ipBin, ['-j', 'addr', 'show', 'dev', ifname]);
    if (r.code !== 0) {
      if (NOT_FOUND.test(r.stderr)) throw new Error(`interface '${ifname}' does not exist`);
      throw new Error(describeFailure(this.ipBin, ['-j', 'addr', 'show', 'dev', ifname], this.runOpts, r));
    }
    let links: IpLink[];
    try {
      links = JSON.parse(r.stdout.trim() || '[]') as IpLink[];
    } catch (e) {
      throw new Error(`cannot parse \`ip -j addr show dev ${ifname}\`: ${e instanceof Error ? e.message : String(e)}`);
    }
    const link = links.find((l) => l.ifname === ifname);
    if (!link) throw new Error(`interface '${ifname}' does not exist`);
    const mac = parseMac(link.address ?? '');
    const addresses: InterfaceAddress[] = [];
    for (const a of link.addr_info ?? []) {
      if (a.family !== 'inet' || a.local === undefined || a.prefixlen === undefined) continue;
      const ip = parseIPv4(a.local);
      if (!ip.ok) continue;
      addresses.push({ ip: ip.value, prefix: a.prefixlen, label: a.label ?? ifname });
    }
    return {
      ifname,
      // Layer-3 tunnels (ipip, gre) have no MAC; iproute2 prints their local address instead.
      mac: mac.ok ? mac.value : '00:00:00:00:00:00',
      mtu: link.mtu ?? 0,
      up: link.operstate === 'UP' || (link.flags ?? []).includes('UP'),
      addresses,
    };
  }

  async probeTunnelTypes(prefix: string): Promise<TunnelType[]> {
    const found: TunnelType[] = [];
    for (const [n, type] of TUNNEL_TYPES.entries()) {
      const name = checkIfname(`${prefix}p${n}`, 'probe device name');
      const leftover = await this.linkDetails(name);
      if (leftover) {
        const kind = leftover.linkinfo?.info_kind;
        if (kind === undefined || !isTunnelType(kind)) throw new Error(`cannot probe tunnel types: link ${name} exists and is not a tunnel (kind ${kind ?? 'unknown'})`);
        await this.ip(['link', 'del', 'dev', name], NOT_FOUND); // a leftover of an interrupted probe
      }
      const r = await this.exec(this.ipBin, ['link', 'add', name, ...tunnelArgs(type, PROBE_LOCAL, PROBE_REMOTE, MAX_TUNNEL_KEY, PROBE_VXLAN_PORT)]);
      if (r.code === 0) {
        found.push(type);
        await this.ip(['link', 'del', 'dev', name], NOT_FOUND);
      } else {
        this.log(LOG.detect, `tunnel type ${type} unavailable: ${r.stderr.trim() || `exit ${r.code}`}`);
      }
    }
    return found;
  }

  async listTunnels(prefix: string): Promise<string[]> {
    const links = await this.ipJson<IpLink>(['-d', 'link', 'show']);
    const names: string[] = [];
    for (const l of links) {
      const name = l.ifname;
      const kind = l.linkinfo?.info_kind;
      if (!name || !name.startsWith(prefix) || FALLBACK_DEVICES.has(name)) continue;
      if (kind === undefined || !isTunnelType(kind)) continue;
      names.push(name);
    }
    return names;
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    checkTunnelSpec(spec);
    const existing = await this.linkDetails(spec.name);
    let create = true;
    if (existing) {
      const kind = existing.linkinfo?.info_kind;
      if (kind === undefined || !isTunnelType(kind)) {
        throw new Error(`link ${spec.name} exists and is not a tunnel (kind ${kind ?? 'unknown'}); not touching it`);
      }
      if (linkMatchesTunnel(existing, spec)) {
        create = false;
      } else {
        const d = existing.linkinfo?.info_data ?? {};
        this.log(LOG.info, `tunnel ${spec.name}: re-creating (was ${kind} ${String(d['local'])} -> ${String(d['remote'])} key ${String(d['id'] ?? d['ikey'] ?? '-')})`);
        await this.ip(['link', 'del', 'dev', spec.name], NOT_FOUND);
      }
    }
    const mac = spec.type === 'vxlan' ? vxlanMacFor(spec.local) : undefined;
    if (create) {
      // One command creates it with its MAC and MTU, already up: a roam waits for every spawn.
      await this.ip(['link', 'add', spec.name, ...(mac ? ['address', mac] : []), 'mtu', String(spec.mtu), 'up', ...tunnelArgs(spec.type, spec.local, spec.remote, spec.key)]);
    } else {
      if (mac && existing?.address?.toLowerCase() !== mac) await this.ip(['link', 'set', 'dev', spec.name, 'address', mac]);
      await this.ip(['link', 'set', 'dev', spec.name, 'mtu', String(spec.mtu), 'up']);
    }
    await this.setSysctl(ipv4ConfKey(spec.name, 'rp_filter'), '0');
  }

  async deleteLink(name: string): Promise<void> {
    checkIfname(name);
    await this.ip(['link', 'del', 'dev', name], NOT_FOUND);
  }

  async addAddress(ifname: string, ip: IPv4, prefix: number, label: string): Promise<void> {
    checkIfname(ifname);
    checkIfname(label, 'address label');
    const addr = `${checkIPv4(ip)}/${checkPrefix(prefix)}`;
    await this.ip(['addr', 'add', addr, ...(prefix <= 30 ? ['brd', '+'] : []), 'dev', ifname, 'label', label], /File exists|Address already assigned/);
  }

  async deleteAddress(ifname: string, ip: IPv4, prefix: number): Promise<void> {
    checkIfname(ifname);
    const addr = `${checkIPv4(ip)}/${checkPrefix(prefix)}`;
    await this.ip(['addr', 'del', addr, 'dev', ifname], /Cannot assign requested address|Address not found|Cannot find device|does not exist/);
  }

  async routeHostIntoTunnel(ip: IPv4, tunnel: TunnelSpec): Promise<void> {
    const host = checkIPv4(ip, 'host address');
    checkIfname(tunnel.name, 'tunnel name');
    if (tunnel.type === 'vxlan') {
      checkIPv4(tunnel.remote, 'tunnel remote address');
      const peerMac = vxlanMacFor(tunnel.remote);
      await this.ip(['neigh', 'replace', host, 'lladdr', peerMac, 'dev', tunnel.name, 'nud', 'permanent']);
    }
    await this.ip(['route', 'replace', `${host}/32`, 'dev', tunnel.name]);
  }

  async deleteHostRoute(ip: IPv4, dev: string): Promise<void> {
    const host = checkIPv4(ip, 'host address');
    checkIfname(dev);
    const gone = /No such process|No such file or directory|FIB table does not exist|Cannot find device|does not exist|Operation not supported/;
    await this.ip(['route', 'del', `${host}/32`, 'dev', dev], gone);
    await this.ip(['neigh', 'del', host, 'dev', dev], gone);
  }

  async listTunnelRoutes(prefix: string): Promise<TunnelRoute[]> {
    const routes = await this.ipJson<IpRoute>(['route', 'show', 'table', 'main']);
    const out: TunnelRoute[] = [];
    for (const r of routes) {
      if (!r.dst || !r.dev || !r.dev.startsWith(prefix)) continue;
      if (r.type !== undefined && r.type !== 'unicast') continue;
      const slash = r.dst.indexOf('/');
      if (slash >= 0 && r.dst.slice(slash) !== '/32') continue;
      const ip = parseIPv4(slash >= 0 ? r.dst.slice(0, slash) : r.dst);
      if (ip.ok) out.push({ ip: ip.value, dev: r.dev });
    }
    return out;
  }

  async setSysctl(key: string, value: string): Promise<void> {
    if (!isValidSysctlKey(key)) throw new Error(`invalid sysctl key '${key}'`);
    if (!/^[A-Za-z0-9_.:,\/ -]{0,256}$/.test(value) || value.includes('\n')) throw new Error(`invalid value for sysctl ${key}: '${value}'`);
    const args = ['-w', `${key}=${value}`];
    const r = await this.exec(this.sysctlBin, args);
    // procps exits non-zero on failure; some busybox builds print an error yet exit 0.
    if (r.code !== 0 || /cannot stat|No such file|Permission denied|unknown key|error/i.test(r.stderr)) {
      throw new Error(`cannot set sysctl ${key}=${value}: ${describeFailure(this.sysctlBin, args, this.runOpts, r)}`);
    }
  }

  async setMssClamp(table: string, mobileIf: string, mss: number, hosts: IPv4[]): Promise<void> {
    if (!isValidNftName(table)) throw new Error(`invalid nftables table name '${table}'`);
    checkIfname(mobileIf);
    if (!Number.isInteger(mss) || mss < 1 || mss > 65535) throw new Error(`invalid MSS ${String(mss)}`);
    const ruleset = mssClampRuleset(table, mobileIf, mss, hosts);
    await this.must(this.nftBin, ['-f', '-'], undefined, ruleset);
  }

  async deleteMssClamp(table: string): Promise<void> {
    if (!isValidNftName(table)) throw new Error(`invalid nftables table name '${table}'`);
    await this.must(this.nftBin, ['delete', 'table', 'ip', table], /No such file or directory/);
  }
}

/**
 * The nft script that atomically replaces table `table` (family ip) with the MSS clamp: SYN and
 * SYN/ACK segments (not RST) forwarded from or to a roamed host on `mobileIf` get their MSS option
 * lowered to `mss` when it is larger. `tcp flags & (syn | rst) == syn` (listed by nft as
 * `tcp flags syn / syn,rst`) matches SYN and SYN/ACK but not RST.
 */
export function mssClampRuleset(table: string, mobileIf: string, mss: number, hosts: IPv4[]): string {
  const unique = [...new Set(hosts.map((h) => h >>> 0))].sort((a, b) => a - b);
  const elements = unique.length ? ` elements = { ${unique.map((h) => checkIPv4(h, 'host address')).join(', ')} }` : '';
  const match = `tcp flags & (syn | rst) == syn tcp option maxseg size > ${mss} tcp option maxseg size set ${mss}`;
  return [
    `table ip ${table} {}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    `  set roamed { type ipv4_addr;${elements} }`,
    `  chain forward {`,
    `    type filter hook forward priority mangle; policy accept;`,
    `    iifname "${mobileIf}" ip saddr @roamed ${match}`,
    `    oifname "${mobileIf}" ip daddr @roamed ${match}`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}
