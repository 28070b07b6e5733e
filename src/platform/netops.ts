// SPDX-License-Identifier: GPL-2.0-only
// NetOps: the one interface through which the CN changes the kernel (addresses, tunnels, routes,
// neighbours, sysctls, the MSS-clamp table). The real implementation drives iproute2 and nft
// (iproute-netops.ts); tests use FakeNetOps (fake-netops.ts).
import type { IPv4, Mac } from '../core/ip.js';
import type { TunnelSpec, TunnelType } from '../core/tunnel.js';

export interface InterfaceAddress {
  ip: IPv4;
  prefix: number;
  /** The address label (`ip addr ... label`), or the interface name when none was given. */
  label: string;
}

export interface InterfaceInfo {
  ifname: string;
  mac: Mac;
  mtu: number;
  up: boolean;
  addresses: InterfaceAddress[];
}

export interface TunnelRoute {
  /** Host address routed (/32). */
  ip: IPv4;
  /** Tunnel device it is routed into. */
  dev: string;
}

export interface NetOps {
  /** Link-layer and IPv4 facts of one interface; rejects when it does not exist. */
  interfaceInfo(ifname: string): Promise<InterfaceInfo>;
  /**
   * The interface's index; undefined when no interface has that name. Cheap (no process): the CN
   * polls it to notice its mobile interface deleted and created again, which gets a new index.
   */
  interfaceIndex(ifname: string): Promise<number | undefined>;
  /** Which tunnel types this kernel can create (tries each, with a scratch device named from `prefix`). */
  probeTunnelTypes(prefix: string): Promise<TunnelType[]>;
  /** Names of links whose name starts with `prefix` and that are tunnels of ours. */
  listTunnels(prefix: string): Promise<string[]>;
  /** Create the tunnel, or re-create it when a device of that name exists with other parameters; set it up. */
  ensureTunnel(spec: TunnelSpec): Promise<void>;
  /** Delete a link; succeeds when it is already gone. */
  deleteLink(name: string): Promise<void>;
  /** Add an address with a label; succeeds when it is already there. */
  addAddress(ifname: string, ip: IPv4, prefix: number, label: string): Promise<void>;
  /** Remove an address; succeeds when it is already gone. */
  deleteAddress(ifname: string, ip: IPv4, prefix: number): Promise<void>;
  /** Route host `ip`/32 into the tunnel (for vxlan also a permanent neighbour for the peer's device MAC). */
  routeHostIntoTunnel(ip: IPv4, tunnel: TunnelSpec): Promise<void>;
  /** Remove a /32 route of ours (and its neighbour entry); succeeds when it is already gone. */
  deleteHostRoute(ip: IPv4, dev: string): Promise<void>;
  /** The /32 routes currently pointing into tunnels whose names start with `prefix`. */
  listTunnelRoutes(prefix: string): Promise<TunnelRoute[]>;
  /** Write a sysctl under /proc/sys (key in dotted form, e.g. net.ipv4.ip_forward). */
  setSysctl(key: string, value: string): Promise<void>;
  /**
   * Replace the nftables table `table` (family ip) so that TCP SYN and SYN/ACK segments forwarded from or
   * to any of `hosts` through `mobileIf` have their MSS lowered to `mss`. An empty `hosts` leaves an
   * empty table.
   */
  setMssClamp(table: string, mobileIf: string, mss: number, hosts: IPv4[]): Promise<void>;
  /**
   * Add `add` to and remove `del` from the clamped set of a table setMssClamp made (one nft line per
   * host; through a long-lived `nft -i` where there is one). Removing a host that is not there succeeds.
   */
  updateMssClamp(table: string, add: readonly IPv4[], del: readonly IPv4[]): Promise<void>;
  /** Delete the nftables table; succeeds when it is absent. */
  deleteMssClamp(table: string): Promise<void>;
}

/** The sysctl key of a per-interface IPv4 setting; dots in VLAN names (eth0.100) are written as '/'. */
export function ipv4ConfKey(ifname: string, setting: string): string {
  return `net.ipv4.conf.${ifname.replace(/\./g, '/')}.${setting}`;
}

/** The sysctl key of a per-interface IPv4 neighbour (ARP) setting, e.g. net.ipv4.neigh.wlan0.retrans_time_ms. */
export function ipv4NeighKey(ifname: string, setting: string): string {
  return `net.ipv4.neigh.${ifname.replace(/\./g, '/')}.${setting}`;
}
