// SPDX-License-Identifier: GPL-2.0-only
// IprouteNetOps: NetOps on a real kernel through iproute2 (`ip`, using its JSON output), `sysctl`
// and `nft`. Every name and number is validated and formatted here before it reaches a command
// line; commands run without a shell through one CommandRunner (exec.ts's `run`; tmip-cn passes
// persistent-runner.ts, which sends the changes to one long-lived `ip -batch`; tests inject
// a scripted one). With the `netns` option every command runs inside that network namespace
// (`ip netns exec NS ...`), which is how the lab tests use it. It also owns the knowledge of which
// error output of these tools means "already there" / "already gone" (the patterns below).
import fs from 'node:fs';
import { promisify } from 'node:util';
import { formatIPv4, macFromBytes, parseIPv4, parseMac, type IPv4, type Mac } from '../core/ip.js';
import { isTunnelType, TUNNEL_TYPES, type TunnelSpec, type TunnelType } from '../core/tunnel.js';
import { describeFailure, isTimeout, run, type CommandRunner, type RunOptions, type RunResult } from './exec.js';
import { LOG, type LogFn } from './log.js';
import { nftSaysGone, runNftScript, type NftLines } from './nft-shell.js';
import { ipv4ConfKey, type InterfaceAddress, type InterfaceInfo, type NetOps, type TunnelRoute } from './netops.js';

/** fs.readFile as a promise; not node:fs/promises, which loads 0.6 MB of modules the CN has no other use for. */
const readFileAsync = promisify(fs.readFile);

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
  /** Runs every command (default exec.ts's `run`); tests pass a scripted one. */
  runner?: CommandRunner;
  /** Runs updateMssClamp's nft lines (tmip-cn passes a long-lived NftShell); default: `nft -f -` per batch through `runner`. */
  nftLines?: NftLines;
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

// ---- validation (shared with FakeNetOps, so both reject the same input with the same words) ----

export function checkIfname(name: string, what = 'interface name'): string {
  if (!isValidIfname(name)) throw new Error(`invalid ${what} '${name}' (expected 1..15 characters of A-Z a-z 0-9 _ . : @ -)`);
  return name;
}

export function checkIPv4(ip: IPv4, what = 'address'): string {
  if (!Number.isInteger(ip) || ip < 0 || ip > 0xffffffff) throw new Error(`invalid IPv4 ${what} ${String(ip)}`);
  return formatIPv4(ip);
}

export function checkPrefix(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`invalid prefix length ${String(prefix)}`);
  return prefix;
}

export function checkTunnelSpec(spec: TunnelSpec): void {
  checkIfname(spec.name, 'tunnel name');
  if (!isTunnelType(spec.type)) throw new Error(`tunnel ${spec.name}: unknown tunnel type '${String(spec.type)}'`);
  checkIPv4(spec.local, 'tunnel local address');
  checkIPv4(spec.remote, 'tunnel remote address');
  if (spec.type !== 'ipip' && (!Number.isInteger(spec.key) || spec.key < 1 || spec.key > MAX_TUNNEL_KEY)) {
    throw new Error(`tunnel ${spec.name}: invalid key ${String(spec.key)} (expected 1..${MAX_TUNNEL_KEY})`);
  }
  if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535)
    throw new Error(`tunnel ${spec.name}: invalid MTU ${String(spec.mtu)}`);
}

export function checkSysctl(key: string, value: string): void {
  if (!isValidSysctlKey(key)) throw new Error(`invalid sysctl key '${key}'`);
  if (!/^[A-Za-z0-9_.:,/ -]{0,256}$/.test(value)) throw new Error(`invalid value for sysctl ${key}: '${value}'`);
}

export function checkNftTable(table: string): string {
  if (!isValidNftName(table)) throw new Error(`invalid nftables table name '${table}'`);
  return table;
}

export function checkMssClamp(table: string, mobileIf: string, mss: number, hosts: readonly IPv4[]): void {
  checkNftTable(table);
  checkIfname(mobileIf);
  if (!Number.isInteger(mss) || mss < 1 || mss > 65535) throw new Error(`invalid MSS ${String(mss)}`);
  for (const h of hosts) checkIPv4(h, 'host address');
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

// ---- error output that means "already there" / "already gone" ----
// Checked against iproute2 6.1, BusyBox 1.35 `ip`/`sysctl`, procps sysctl and nftables 1.0.6 on Linux
// 6.18, in a scratch network namespace, and against their sources; test/unit/iproute-netops.test.ts
// holds every variant as a table. The kernel's extended-ack messages reach stderr as "Error: <msg>."
// (iproute2 lib/libnetlink.c nl_dump_ext_ack); without one, iproute2 prints "RTNETLINK answers:
// <strerror>" (lib/libnetlink.c rtnl_talk_error) and BusyBox "ip: RTNETLINK answers: <strerror>"
// (networking/libiproute/libnetlink.c). Never consulted for a timeout.

/** The device named on the command line does not exist. */
const NO_DEVICE = new RegExp(
  [
    'Cannot find device "', // iproute2 lib/utils.c nodev() and ip/ipneigh.c: Cannot find device "x"
    'Device "[^"]*" does not exist', // iproute2 ip/ipaddress.c, ip/iplink.c (`ip [-j] addr|link show dev x`)
    "can't find device '", // BusyBox networking/libiproute/ll_map.c xll_name_to_index(): ip: can't find device 'x'
    'No such device', // ENODEV: "RTNETLINK answers: No such device"; BusyBox iplink.c "ip: SIOCGIFFLAGS: No such device"
  ].join('|'),
);

/** `ip addr add` of an address the interface already has. */
/** `ip link add` of a name in use: iproute2 and BusyBox ("ip: RTNETLINK answers: File exists"). */
const LINK_EXISTS = /RTNETLINK answers: File exists|Error: [^\n]*[Ff]ile exists/;

const ADDRESS_EXISTS = new RegExp(
  [
    'Error: ipv4: Address already assigned', // kernel net/ipv4/devinet.c __inet_insert_ifa() extack (iproute2)
    'RTNETLINK answers: File exists', // EEXIST without extack (older kernels); BusyBox prefixes "ip: "
  ].join('|'),
);

/** `ip addr del` of an address the interface does not have (or of an interface that is gone). */
const ADDRESS_GONE = new RegExp(
  [
    'Error: ipv4: Address not found', // kernel net/ipv4/devinet.c inet_rtm_deladdr() extack (iproute2)
    'RTNETLINK answers: Cannot assign requested address', // EADDRNOTAVAIL without extack; BusyBox "ip: RTNETLINK ..."
    NO_DEVICE.source,
  ].join('|'),
);

/** `ip route del` of a route that is not there. */
const ROUTE_GONE = new RegExp(
  [
    'RTNETLINK answers: No such process', // ESRCH from fib_table_delete(), iproute2 and BusyBox alike
    'Error: (ipv4: )?FIB table does not exist', // net/ipv4/fib_frontend.c: no route in the namespace yet
    NO_DEVICE.source,
  ].join('|'),
);

/** `ip neigh del` of a neighbour entry that is not there. */
const NEIGH_GONE = new RegExp(
  [
    'RTNETLINK answers: No such file or directory', // ENOENT from net/core/neighbour.c neigh_delete()
    // Kept from the first version of this adapter for layer-3 tunnels (no ARP); not reproducible on this
    // host (no ipip/gre module), and current neigh_delete() only returns ENODEV/ENOENT for a missing entry.
    'RTNETLINK answers: Operation not supported',
    NO_DEVICE.source,
  ].join('|'),
);

/** `nft delete table` of a table that does not exist (not `ip netns exec`'s "exec of "nft" failed: No such file ..."). */
const NFT_TABLE_GONE = new RegExp(
  [
    'Error: Could not process rule: No such file or directory', // nftables <= 1.0.6 src/mnl.c / libnftables.c
    'Error: No such file or directory; did you mean', // newer nftables src/cmd.c nft_cmd_enoent_*() hint
  ].join('|'),
);

/** Whether a failed command's stderr says what `pattern` describes; a timeout (whatever it printed first) never does. */
function failedWith(r: RunResult, pattern: RegExp): boolean {
  return r.code !== 0 && !isTimeout(r) && pattern.test(r.stderr);
}

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

/** Wait for both commands (neither left running unobserved); reject with the first one's error, else the second's. */
async function settleBoth(a: Promise<unknown> | undefined, b: Promise<unknown> | undefined): Promise<void> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
}

export class IprouteNetOps implements NetOps {
  private readonly ipBin: string;
  private readonly nftBin: string;
  private readonly sysctlBin: string;
  private readonly log: LogFn;
  private readonly runOpts: RunOptions;
  private readonly runner: CommandRunner;
  private readonly nftLines: NftLines | undefined;
  /**
   * The kind of each tunnel this NetOps created or listed. A host routed into an ipip or gre tunnel
   * has no neighbour entry, and `ip neigh del` of a missing entry ends `ip -batch` (exit 2): its
   * unroute deletes only the route. A tunnel of unknown kind gets both, as before.
   */
  private readonly tunnelKinds = new Map<string, TunnelType>();

  constructor(opts: IprouteNetOpsOptions = {}) {
    this.nftLines = opts.nftLines;
    this.ipBin = opts.ip ?? 'ip';
    this.nftBin = opts.nft ?? 'nft';
    this.sysctlBin = opts.sysctl ?? 'sysctl';
    this.log = opts.log ?? (() => undefined);
    this.runner = opts.runner ?? run;
    if (opts.netns !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(opts.netns))
      throw new Error(`invalid network namespace name '${opts.netns}'`);
    this.runOpts = {
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    };
  }

  // ---- command helpers ----

  private async exec(cmd: string, args: string[], input?: string): Promise<RunResult> {
    const r = await this.runner(cmd, args, input !== undefined ? { ...this.runOpts, input } : this.runOpts);
    this.log(LOG.debug, `exec: ${cmd} ${args.join(' ')} -> ${r.code}${r.code !== 0 && r.stderr.trim() ? ` (${r.stderr.trim()})` : ''}`);
    return r;
  }

  /** Run; succeed on exit 0 or when stderr matches `ignore`; otherwise reject with the command and its error. */
  private async must(cmd: string, args: string[], ignore?: RegExp, input?: string): Promise<RunResult> {
    const r = await this.exec(cmd, args, input);
    if (r.code === 0 || (ignore !== undefined && failedWith(r, ignore))) return r;
    throw new Error(describeFailure(cmd, args, this.runOpts, r));
  }

  private ip(args: string[], ignore?: RegExp): Promise<RunResult> {
    return this.must(this.ipBin, args, ignore);
  }

  /** The JSON array `ip -j ARGS` printed (empty output: none). */
  private parseJson<T>(args: string[], stdout: string): T[] {
    const text = stdout.trim();
    if (text === '') return [];
    try {
      const parsed: unknown = JSON.parse(text);
      if (!Array.isArray(parsed)) throw new Error('not a JSON array');
      return parsed as T[];
    } catch (e) {
      throw new Error(`cannot parse the output of \`${this.ipBin} ${args.join(' ')}\`: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async ipJson<T>(args: string[]): Promise<T[]> {
    const r = await this.ip(['-j', ...args]);
    return this.parseJson<T>(['-j', ...args], r.stdout);
  }

  /** `ip -j -d link show dev NAME`, or undefined when there is no such link. */
  private async linkDetails(name: string): Promise<IpLink | undefined> {
    const args = ['-j', '-d', 'link', 'show', 'dev', name];
    const r = await this.exec(this.ipBin, args);
    if (r.code !== 0) {
      if (failedWith(r, NO_DEVICE)) return undefined;
      throw new Error(describeFailure(this.ipBin, args, this.runOpts, r));
    }
    return this.parseJson<IpLink>(args, r.stdout).find((l) => l.ifname === name);
  }

  // ---- NetOps ----

  async interfaceInfo(ifname: string): Promise<InterfaceInfo> {
    checkIfname(ifname);
    const args = ['-j', 'addr', 'show', 'dev', ifname];
    const r = await this.exec(this.ipBin, args);
    if (r.code !== 0) {
      if (failedWith(r, NO_DEVICE)) throw new Error(`interface '${ifname}' does not exist`);
      throw new Error(describeFailure(this.ipBin, args, this.runOpts, r));
    }
    const link = this.parseJson<IpLink>(args, r.stdout).find((l) => l.ifname === ifname);
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

  async interfaceIndex(ifname: string): Promise<number | undefined> {
    checkIfname(ifname);
    const file = `/sys/class/net/${ifname}/ifindex`;
    let text: string;
    if (this.runOpts.netns === undefined) {
      try {
        text = await readFileAsync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new Error(`cannot read the index of interface '${ifname}': ${e instanceof Error ? e.message : String(e)}`);
      }
    } else {
      // Another namespace's sysfs is seen only from inside it (tests).
      const r = await this.exec('cat', [file]);
      if (r.code !== 0) {
        if (/No such file/i.test(r.stderr)) return undefined;
        throw new Error(describeFailure('cat', [file], this.runOpts, r));
      }
      text = r.stdout;
    }
    const index = Number(text.trim());
    if (!Number.isSafeInteger(index) || index <= 0)
      throw new Error(`interface '${ifname}' has no valid index ('${text.trim().slice(0, 20)}')`);
    return index;
  }

  async probeTunnelTypes(prefix: string): Promise<TunnelType[]> {
    const found: TunnelType[] = [];
    for (const [n, type] of TUNNEL_TYPES.entries()) {
      const name = checkIfname(`${prefix}p${n}`, 'probe device name');
      const leftover = await this.linkDetails(name);
      if (leftover) {
        const kind = leftover.linkinfo?.info_kind;
        if (kind === undefined || !isTunnelType(kind))
          throw new Error(`cannot probe tunnel types: link ${name} exists and is not a tunnel (kind ${kind ?? 'unknown'})`);
        await this.ip(['link', 'del', 'dev', name], NO_DEVICE); // a leftover of an interrupted probe
      }
      const args = ['link', 'add', name, ...tunnelArgs(type, PROBE_LOCAL, PROBE_REMOTE, MAX_TUNNEL_KEY, PROBE_VXLAN_PORT)];
      const r = await this.exec(this.ipBin, args);
      if (r.code === 0) {
        found.push(type);
        await this.ip(['link', 'del', 'dev', name], NO_DEVICE);
      } else if (isTimeout(r) || r.code === 127) {
        // A hung or missing `ip` says nothing about the kernel: do not report the type as unsupported.
        throw new Error(`cannot probe tunnel type ${type}: ${describeFailure(this.ipBin, args, this.runOpts, r)}`);
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
      this.tunnelKinds.set(name, kind);
      names.push(name);
    }
    return names;
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    checkTunnelSpec(spec);
    const mac = spec.type === 'vxlan' ? vxlanMacFor(spec.local) : undefined;
    // One command creates it with its MAC and MTU, already up: a roam waits for every command.
    const add = [
      'link',
      'add',
      spec.name,
      ...(mac ? ['address', mac] : []),
      'mtu',
      String(spec.mtu),
      'up',
      ...tunnelArgs(spec.type, spec.local, spec.remote, spec.key),
    ];
    // Most calls are for a tunnel that is not there yet: create it first and look only when a device
    // of that name exists (one command fewer on a roam than looking first).
    const created = await this.exec(this.ipBin, add);
    if (created.code !== 0) {
      if (!failedWith(created, LINK_EXISTS)) throw new Error(describeFailure(this.ipBin, add, this.runOpts, created));
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
          this.log(
            LOG.info,
            `tunnel ${spec.name}: re-creating (was ${kind} ${String(d['local'])} -> ${String(d['remote'])} key ${JSON.stringify(d['id'] ?? d['ikey'] ?? '-')})`,
          );
          await this.ip(['link', 'del', 'dev', spec.name], NO_DEVICE);
        }
      }
      if (create) {
        await this.ip(add);
      } else {
        if (mac && existing?.address?.toLowerCase() !== mac) await this.ip(['link', 'set', 'dev', spec.name, 'address', mac]);
        await this.ip(['link', 'set', 'dev', spec.name, 'mtu', String(spec.mtu), 'up']);
      }
    }
    this.tunnelKinds.set(spec.name, spec.type);
    await this.setSysctl(ipv4ConfKey(spec.name, 'rp_filter'), '0');
  }

  async deleteLink(name: string): Promise<void> {
    checkIfname(name);
    this.tunnelKinds.delete(name);
    await this.ip(['link', 'del', 'dev', name], NO_DEVICE);
  }

  async addAddress(ifname: string, ip: IPv4, prefix: number, label: string): Promise<void> {
    checkIfname(ifname);
    checkIfname(label, 'address label');
    const addr = `${checkIPv4(ip)}/${checkPrefix(prefix)}`;
    await this.ip(['addr', 'add', addr, ...(prefix <= 30 ? ['brd', '+'] : []), 'dev', ifname, 'label', label], ADDRESS_EXISTS);
  }

  async deleteAddress(ifname: string, ip: IPv4, prefix: number): Promise<void> {
    checkIfname(ifname);
    const addr = `${checkIPv4(ip)}/${checkPrefix(prefix)}`;
    await this.ip(['addr', 'del', addr, 'dev', ifname], ADDRESS_GONE);
  }

  async routeHostIntoTunnel(ip: IPv4, tunnel: TunnelSpec): Promise<void> {
    const host = checkIPv4(ip, 'host address');
    checkIfname(tunnel.name, 'tunnel name');
    // Both at once (one write to the `ip -batch` runner, applied in this order): a roam waits for them.
    if (tunnel.type === 'vxlan') checkIPv4(tunnel.remote, 'tunnel remote address');
    const neigh =
      tunnel.type === 'vxlan'
        ? this.ip(['neigh', 'replace', host, 'lladdr', vxlanMacFor(tunnel.remote), 'dev', tunnel.name, 'nud', 'permanent'])
        : undefined;
    await settleBoth(neigh, this.ip(['route', 'replace', `${host}/32`, 'dev', tunnel.name]));
  }

  async deleteHostRoute(ip: IPv4, dev: string): Promise<void> {
    const host = checkIPv4(ip, 'host address');
    checkIfname(dev);
    // Both at once (one write to the `ip -batch` runner, applied in this order); no neighbour entry to
    // delete in an ipip or gre tunnel (tunnelKinds).
    const kind = this.tunnelKinds.get(dev);
    await settleBoth(
      this.ip(['route', 'del', `${host}/32`, 'dev', dev], ROUTE_GONE),
      kind === undefined || kind === 'vxlan' ? this.ip(['neigh', 'del', host, 'dev', dev], NEIGH_GONE) : undefined,
    );
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
    checkSysctl(key, value);
    const args = ['-w', `${key}=${value}`];
    const r = await this.exec(this.sysctlBin, args);
    // procps exits non-zero on failure ("sysctl: cannot stat /proc/sys/...: No such file or directory",
    // "sysctl: permission denied on key 'x'"). BusyBox procps/sysctl.c prints "sysctl: error: 'x' is an
    // unknown key" / "sysctl: error setting key 'x': ..." and exits 1 since 1.14, but has printed errors
    // and still exited 0 on some paths (`-p` files; read errors before 1.30): any error text is a failure.
    if (r.code !== 0 || /cannot stat|No such file|Permission denied|unknown key|error/i.test(r.stderr)) {
      throw new Error(`cannot set sysctl ${key}=${value}: ${describeFailure(this.sysctlBin, args, this.runOpts, r)}`);
    }
  }

  async setMssClamp(table: string, mobileIf: string, mss: number, hosts: IPv4[]): Promise<void> {
    checkMssClamp(table, mobileIf, mss, hosts);
    const ruleset = mssClampRuleset(table, mobileIf, mss, hosts);
    await this.must(this.nftBin, ['-f', '-'], undefined, ruleset);
  }

  async updateMssClamp(table: string, add: readonly IPv4[], del: readonly IPv4[]): Promise<void> {
    checkNftTable(table);
    const lines = [
      ...add.map((h) => `add element ip ${table} ${CLAMP_SET} { ${checkIPv4(h, 'host address')} }`),
      ...del.map((h) => `delete element ip ${table} ${CLAMP_SET} { ${checkIPv4(h, 'host address')} }`),
    ];
    if (lines.length === 0) return;
    const results = this.nftLines ? await this.nftLines.run(lines) : await runNftScript(this.runner, this.nftBin, this.runOpts, lines);
    // Lines that worked are not logged: the driver logs the change as a whole (one line, however many hosts).
    const errors: string[] = [];
    let gone = 0;
    results.forEach((r, i) => {
      if (r.ok) return;
      // A host to remove that is not there (nor its set or table) is gone already.
      if (i >= add.length && nftSaysGone(r.error)) gone++;
      else errors.push(`\`${lines[i]!}\` failed: ${r.error}`);
    });
    if (gone > 0) this.log(LOG.debug, `nft: ${gone} host(s) to remove from ${table} were not there`);
    if (errors.length > 0) throw new Error(errors.join('; '));
  }

  async deleteMssClamp(table: string): Promise<void> {
    checkNftTable(table);
    await this.must(this.nftBin, ['delete', 'table', 'ip', table], NFT_TABLE_GONE);
  }
}

/** The named set of clamped hosts in the MSS-clamp table. */
export const CLAMP_SET = 'roamed';

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
    `  set ${CLAMP_SET} { type ipv4_addr;${elements} }`,
    `  chain forward {`,
    `    type filter hook forward priority mangle; policy accept;`,
    `    iifname "${mobileIf}" ip saddr @${CLAMP_SET} ${match}`,
    `    oifname "${mobileIf}" ip daddr @${CLAMP_SET} ${match}`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}
