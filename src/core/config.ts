// SPDX-License-Identifier: GPL-2.0-only
// The daemons' configuration model: builds a CnConfig (`config cn`) or MlrConfig (`config mlr`) from a
// parsed UCI package and validates every option, collecting all problems at once. Each message names
// the option as `uci show` would (tmip.@cn[0].lease_time), its line, what was found and what is
// expected. Pure: no I/O.
import { cidrContains, formatCidr, formatIPv4, parseCidr, parseIPv4, type Cidr, type IPv4 } from './ip.js';
import { err, ok, type Result } from './result.js';
import { isTunnelType, TUNNEL_TYPES, type TunnelType } from './tunnel.js';
import { parseStoreUrl } from './etcd-keys.js';
import type { UciPackage, UciSection } from '../proto/uci.js';

/** MLRs one CN may list (`list mlr`): the few MLRs that share one etcd store. */
export const MAX_MLRS = 8;
export const DEFAULT_MLR_PORT = 6554;
/** Default ports of the MLR transports: MLRP over TCP, MLRP over TLS, MQTT, MQTT over TLS. */
export const DEFAULT_PORTS = { tcp: DEFAULT_MLR_PORT, tls: 6555, mqtt: 1883, mqtts: 8883 } as const;
export type MlrScheme = keyof typeof DEFAULT_PORTS;
/** Default MQTT user name of the MLR (its ACL entry in the broker). */
export const DEFAULT_MLR_MQTT_USER = 'tmip-mlr';
export const DEFAULT_LEASE_TIME = 3600;
export const LEASE_TIME_MIN = 60;
export const LEASE_TIME_MAX = 31536000;
export const DEFAULT_TUNNEL_PREFIX = 'tmip0';
/**
 * Longest tunnel prefix: devices are named prefix + pair id, ids go up to 2^24-1 (8 digits), and a
 * Linux device name holds at most 15 bytes, so 7 + 8 = 15.
 */
export const TUNNEL_PREFIX_MAX = 7;
export const DEFAULT_DEBUG_LEVEL = 2;
export const DEFAULT_OFFER_HOLD = 60;
export const DEFAULT_LEASE_GRACE = 60;
/** New stations (MACs without a binding here) a CN admits per second; the burst is twice this. */
export const DEFAULT_NEW_STATION_RATE = 20;
/** Cells one CN may hold as offers (offered, not yet requested) at the MLR. */
export const DEFAULT_MAX_OFFERS = 256;
/** Seconds a cell declined by its client (DHCPDECLINE) is not handed out again. */
export const DEFAULT_DECLINE_QUARANTINE = 600;
export const DEFAULT_LISTEN = '0.0.0.0';
export const DEFAULT_TUNNEL_TYPES: readonly TunnelType[] = TUNNEL_TYPES;
/** Package name used in messages when the parsed text had no `package` line (as in /etc/config). */
export const DEFAULT_PACKAGE = 'tmip';

export interface MlrAddress {
  /** tcp (MLRP over TCP, the default), tls (MLRP over TLS), mqtt or mqtts (through a broker). */
  scheme: MlrScheme;
  /** An IPv4 literal (canonical dotted quad) or a DNS name. */
  host: string;
  port: number;
}

/** TLS files: the CA that signs the peer's certificate, and our own certificate and key (optional). */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** A CN's key as the MLR holds it (`config key`). */
export interface CnKey {
  cn: string;
  /** 32 bytes as 64 lower-case hex digits. */
  secret: string;
}

export type PoolSource = { kind: 'interface'; ifname: string } | { kind: 'cidr'; cidr: Cidr };

export interface PoolSpec {
  source: PoolSource;
  /** First address of the range; null ('*') = from the start of the source's subnet. */
  first: IPv4 | null;
  /** Last address of the range; null ('*') = to the end of the source's subnet. */
  last: IPv4 | null;
  /** The entry as written in the config. */
  text: string;
}

export interface CnConfig {
  networkName: string;
  cnName: string;
  mlr: MlrAddress;
  /** Every MLR of `list mlr` when it names more than one (mlr is the first): the CN binds to whichever serves. */
  mlrs?: MlrAddress[];
  /** Backbone device (`cn_if`); '' while it is to be found from `cnNetwork` (tmip-cn resolves it before start). */
  cnIf: string;
  /** Mobile device (`mobile_if`); '' while it is to be found from `mobileNetwork`. */
  mobileIf: string;
  /** `option cn_network`: the netifd logical interface (e.g. 'wan') whose device and address are the backbone's. */
  cnNetwork?: string;
  /** `option mobile_network`: the netifd logical interface (e.g. 'lan') the stations are on. */
  mobileNetwork?: string;
  pools: PoolSpec[];
  dnsServers: IPv4[];
  domain?: string;
  leaseTime: number;
  tunnelPrefix: string;
  tunnelTypes: TunnelType[];
  mssClamp: boolean;
  /** Seconds a tunnel no client needs is kept for a client roaming back (`tunnel_linger`, default 60; 0: deleted at once). */
  tunnelLinger?: number;
  debugLevel: number;
  statusFile?: string;
  /** Use hostapd's association events over ubus when ubus is there (`option hostapd`, default on). */
  hostapd: boolean;
  /** With hostapd present, move a MAC on ARP/IP/DHCP activity only if it is associated here. */
  requireAssociation: boolean;
  /** New stations (DHCP or ARP/IP from a MAC without a binding here) admitted per second; burst twice that. */
  newStationRate: number;
  /** ubusd socket; default /var/run/ubus/ubus.sock, then /var/run/ubus.sock. */
  ubusSocket?: string;
  /** Informational: `option enabled '0'` is for the init script to honour. */
  enabled: boolean;
  /** HMAC key shared with the MLR (64 hex digits); without it the CN speaks unauthenticated. */
  secret?: string;
  /** For tls:// and mqtts://: the CA to check the server with, and an optional client certificate. */
  tls: TlsFiles;
  /** For mqtt:// and mqtts://: the broker account (user name defaults to cn_name). */
  mqttUsername: string;
  mqttPassword?: string;
  warnings: string[];
}

export interface MlrConfig {
  networkName: string;
  port: number;
  /** IPv4 address to bind, canonical dotted quad. */
  listen: string;
  debugLevel: number;
  stateFile?: string;
  /** `option store 'etcd://…'`: the registry in etcd, shared by standby MLRs (mlr/etcd-store.ts); exclusive with stateFile. */
  store?: { url: string; endpoints: string[] };
  offerHold: number;
  leaseGrace: number;
  /** Cells one CN may hold as offers at a time (`option max_offers`). */
  maxOffers: number;
  /** Seconds a declined cell is quarantined (`option decline_quarantine`). */
  declineQuarantine: number;
  tunnelTypes: TunnelType[];
  enabled: boolean;
  /** Authenticate every message (on unless `option auth '0'`). */
  auth: boolean;
  /** One per CN allowed to bind, from the `config key` sections. */
  keys: CnKey[];
  /** Also serve CNs through this MQTT broker (`option mqtt 'mqtt://host:1883'`). */
  mqtt?: MlrAddress;
  mqttUsername: string;
  mqttPassword?: string;
  /** CA of the broker's certificate, for mqtts://. */
  mqttCa?: string;
  /** Also serve MLRP over TLS on this port (`option tls_port`), with this certificate and key. */
  tls?: { port: number; cert: string; key: string; ca?: string };
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Value checkers. Each returns the parsed value or a message "'<found>' <problem>; expected <what>".

/** ASCII control characters (C0 and DEL): no name, path or free-text option may hold one. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

/** A value quoted for a message: 'text', or JSON-escaped when it holds quotes or control characters. */
export function quote(v: string): string {
  const s = v.length > 80 ? `${v.slice(0, 77)}...` : v;
  return s.includes("'") || CONTROL_CHARS.test(s) ? JSON.stringify(s) : `'${s}'`;
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on', 'enabled']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off', 'disabled']);
const BOOL_EXPECTED = "expected '1'/'0', 'yes'/'no', 'true'/'false', 'on'/'off' or 'enabled'/'disabled'";

/** A UCI boolean as OpenWrt's config_get_bool reads it (case-sensitive); undefined if not one. */
export function parseBool(text: string): boolean | undefined {
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  return undefined;
}

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** A Linux network device name as the kernel's dev_valid_name() accepts it. */
export function checkIfname(text: string): Result<string> {
  const expected = "expected a Linux interface name of 1..15 bytes without '/', ':' or spaces, e.g. 'br-lan'";
  if (text === '' || text === '.' || text === '..') return err(`${quote(text)} is not an interface name; ${expected}`);
  if (byteLength(text) > 15) return err(`${quote(text)} is longer than 15 bytes; ${expected}`);
  if (/[\s/:]/.test(text) || CONTROL_CHARS.test(text))
    return err(`${quote(text)} contains a character not allowed in interface names; ${expected}`);
  return ok(text);
}

/** A DNS host or domain name: dot-separated labels of letters, digits and '-', at most 253 characters. */
export function isDnsName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

function checkIPv4(text: string, expected = 'expected an IPv4 address a.b.c.d'): Result<IPv4> {
  const r = parseIPv4(text);
  return r.ok ? r : err(`${quote(text)} is not an IPv4 address; ${expected}`);
}

const MLR_EXPECTED =
  "expected 'host' or 'host:port' (MLRP over TCP) or a URL tcp://, tls://, mqtt:// or mqtts://host[:port], where host is an IPv4 address or DNS name and port is 1..65535, e.g. '192.0.2.1:6554' or 'mqtts://broker.lan'";

/** The MLR address: 'host', 'host:port' (MLRP over TCP, port 6554), or scheme://host[:port]. */
export function parseMlrAddress(text: string): Result<MlrAddress> {
  let scheme: MlrScheme = 'tcp';
  let rest = text;
  const m = /^([a-z]+):\/\/(.*)$/.exec(text);
  if (m) {
    const s = m[1]!;
    if (!Object.prototype.hasOwnProperty.call(DEFAULT_PORTS, s)) {
      return err(`${quote(text)} has scheme ${quote(s)}; ${MLR_EXPECTED}`);
    }
    scheme = s as MlrScheme;
    rest = m[2]!.endsWith('/') ? m[2]!.slice(0, -1) : m[2]!;
  }
  const colon = rest.lastIndexOf(':');
  let hostText = rest;
  let port: number = DEFAULT_PORTS[scheme];
  if (colon >= 0) {
    hostText = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    if (hostText.includes(':')) return err(`${quote(text)} is not a host or host:port (IPv6 is not supported); ${MLR_EXPECTED}`);
    if (!/^\d{1,5}$/.test(portText)) return err(`${quote(text)} has port ${quote(portText)}, not a number; ${MLR_EXPECTED}`);
    port = Number(portText);
    if (port < 1 || port > 65535) return err(`${quote(text)} has port ${port}, out of range; ${MLR_EXPECTED}`);
  }
  if (hostText === '') return err(`${quote(text)} has no host; ${MLR_EXPECTED}`);
  if (/^[0-9.]+$/.test(hostText)) {
    const ip = parseIPv4(hostText);
    if (!ip.ok) return err(`${quote(text)}: ${quote(hostText)} is not an IPv4 address; ${MLR_EXPECTED}`);
    return ok({ scheme, host: formatIPv4(ip.value), port });
  }
  if (!isDnsName(hostText)) return err(`${quote(text)}: ${quote(hostText)} is neither an IPv4 address nor a DNS name; ${MLR_EXPECTED}`);
  return ok({ scheme, host: hostText, port });
}

/** How an MLR address is shown in logs and status: host:port for plain TCP, else the URL. */
export function formatMlrAddress(a: MlrAddress): string {
  return a.scheme === 'tcp' ? `${a.host}:${a.port}` : `${a.scheme}://${a.host}:${a.port}`;
}

/** The characters a CN name may hold: letters, digits, space and . _ - : (so 'Library 2nd floor' works). */
export const CN_NAME_RE = /^[A-Za-z0-9._:-](?:[A-Za-z0-9 ._:-]{0,62}[A-Za-z0-9._:-])?$/;
/** What CN_NAME_RE accepts, for messages: "... is not a valid CN name; ${CN_NAME_EXPECTED}". */
export const CN_NAME_EXPECTED = 'expected 1..64 letters, digits, spaces and . _ - : (not starting or ending with a space)';

/** A 32-byte HMAC key as 64 hex digits (any case; returned lower-case). */
export function parseSecret(text: string): Result<string> {
  if (!/^[0-9A-Fa-f]{64}$/.test(text)) {
    return err(
      `${text.length === 64 ? 'the value' : `a value of ${text.length} characters`} is not 64 hex digits; expected the 32-byte key that 'tmip-mlr keygen NAME' prints`,
    );
  }
  return ok(text.toLowerCase());
}

/** A netifd logical interface name (a section name of /etc/config/network; netifd allows 15 bytes). */
const NETWORK_RE = /^[A-Za-z0-9_]{1,15}$/;

const POOL_EXPECTED = "expected '<interface or CIDR> <first|*> <last|*>', e.g. 'br-lan * *' or '10.20.0.0/16 10.20.1.0 10.20.1.255'";

/**
 * One `addr_pool` entry: '<interface or CIDR> <first|*> <last|*>'. A CIDR source needs room for a /30
 * cell (prefix ≤ 30) and first/last inside it; first ≤ last. A CIDR written with host bits set
 * (192.168.1.1/24) is accepted as its network, with a warning.
 */
export function parsePoolSpec(text: string): Result<{ spec: PoolSpec; warning?: string }> {
  const words = text
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  if (words.length !== 3) return err(`${quote(text)} has ${words.length} word${words.length === 1 ? '' : 's'}; ${POOL_EXPECTED}`);
  const [srcText, firstText, lastText] = words as [string, string, string];
  let source: PoolSource;
  let warning: string | undefined;
  if (srcText.includes('/')) {
    const c = parseCidr(srcText);
    if (!c.ok) return err(`${quote(text)}: ${quote(srcText)} is not a CIDR prefix a.b.c.d/len; ${POOL_EXPECTED}`);
    if (c.value.prefix > 30) {
      return err(`${quote(text)}: ${quote(srcText)} is too small for a /30 station cell; expected a prefix length of 30 or less`);
    }
    const addr = parseIPv4(srcText.slice(0, srcText.indexOf('/')));
    if (addr.ok && addr.value !== c.value.network) warning = `${quote(srcText)} has host bits set; using ${formatCidr(c.value)}`;
    source = { kind: 'cidr', cidr: c.value };
  } else if (/^[0-9.]+$/.test(srcText)) {
    return err(`${quote(text)}: ${quote(srcText)} is an address, not a pool source; ${POOL_EXPECTED} (write a subnet as a.b.c.d/len)`);
  } else {
    const i = checkIfname(srcText);
    if (!i.ok) return err(`${quote(text)}: ${i.error}`);
    source = { kind: 'interface', ifname: srcText };
  }
  const bound = (t: string, which: string): Result<IPv4 | null> => {
    if (t === '*') return ok(null);
    const ip = parseIPv4(t);
    if (!ip.ok) return err(`${quote(text)}: ${which} address ${quote(t)} is not an IPv4 address or '*'; ${POOL_EXPECTED}`);
    if (source.kind === 'cidr' && !cidrContains(source.cidr, ip.value)) {
      return err(
        `${quote(text)}: ${which} address ${t} is outside ${formatCidr(source.cidr)}; expected an address inside the subnet or '*'`,
      );
    }
    return ok(ip.value);
  };
  const first = bound(firstText, 'first');
  if (!first.ok) return first;
  const last = bound(lastText, 'last');
  if (!last.ok) return last;
  if (first.value !== null && last.value !== null && first.value > last.value) {
    return err(`${quote(text)}: first address ${firstText} is after last address ${lastText}; expected first <= last`);
  }
  const spec: PoolSpec = { source, first: first.value, last: last.value, text };
  return ok(warning === undefined ? { spec } : { spec, warning });
}

// ---------------------------------------------------------------------------------------------
// Reading one section with error collection.

interface Item {
  text: string;
  line: number | undefined;
}

class SectionReader {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  private readonly used = new Set<string>();
  private readonly base: string;

  constructor(
    pkg: UciPackage,
    private readonly section: UciSection,
  ) {
    this.base = sectionPath(pkg, section);
  }

  /** 'tmip.@cn[0].opt (line 7)' */
  at(opt: string, line?: number): string {
    const l = line ?? this.section.lines.get(opt);
    return l === undefined ? `${this.base}.${opt}` : `${this.base}.${opt} (line ${l})`;
  }

  bad(opt: string, message: string, line?: number): undefined {
    this.errors.push(`${this.at(opt, line)}: ${message}`);
    return undefined;
  }

  missing(opt: string, expected: string): undefined {
    const where = this.section.line === undefined ? '' : ` (section begins on line ${this.section.line})`;
    this.errors.push(`${this.base}.${opt}: required option is missing${where}; ${expected}`);
    return undefined;
  }

  /** A single-valued option; a list is an error. */
  scalar(opt: string): Item | undefined {
    this.used.add(opt);
    const v = this.section.options.get(opt);
    if (v === undefined) return undefined;
    if (Array.isArray(v)) {
      const shown = v.map(quote).join(', ');
      return this.bad(opt, `${shown} given as a list; expected a single value: option ${opt} '...'`);
    }
    return { text: v, line: this.section.lines.get(opt) };
  }

  /** A list option's items, or a plain option's value (split on whitespace when `split`). */
  many(opt: string, split: boolean): Item[] {
    this.used.add(opt);
    const v = this.section.options.get(opt);
    if (v === undefined) return [];
    if (Array.isArray(v)) {
      const lines = this.section.itemLines?.get(opt);
      const first = this.section.lines.get(opt);
      return v.map((text, i) => ({ text, line: lines?.[i] ?? first }));
    }
    const line = this.section.lines.get(opt);
    if (!split) return [{ text: v, line }];
    return v
      .split(/\s+/)
      .filter((w) => w !== '')
      .map((text) => ({ text, line }));
  }

  hasOption(opt: string): boolean {
    return this.section.options.has(opt);
  }

  required(opt: string, expected: string): Item | undefined {
    const item = this.scalar(opt);
    if (item === undefined && !this.section.options.has(opt)) return this.missing(opt, expected);
    return item;
  }

  integer(opt: string, min: number, max: number, fallback: number, what?: string): number {
    const item = this.scalar(opt);
    if (item === undefined) return fallback;
    const expected = `expected an integer ${min}..${max}`;
    if (!/^\d+$/.test(item.text)) {
      this.bad(opt, `${quote(item.text)} is not ${what ?? 'a whole number'}; ${expected}`);
      return fallback;
    }
    const n = Number(item.text);
    if (n < min || n > max) {
      this.bad(opt, `${quote(item.text)} is out of range; ${expected}`);
      return fallback;
    }
    return n;
  }

  bool(opt: string, fallback: boolean): boolean {
    const item = this.scalar(opt);
    if (item === undefined) return fallback;
    const b = parseBool(item.text);
    if (b === undefined) {
      this.bad(opt, `${quote(item.text)} is not a boolean; ${BOOL_EXPECTED}`);
      return fallback;
    }
    return b;
  }

  networkName(): string | undefined {
    const expected = "expected 1..64 printable characters without spaces, the same on every CN and the MLR, e.g. 'campus'";
    const item = this.required('network_name', expected);
    if (item === undefined) return undefined;
    if (!/^[\x21-\x7e]{1,64}$/.test(item.text)) {
      const problem = item.text.length > 64 ? 'is longer than 64 characters' : 'contains spaces or non-printable characters';
      return this.bad('network_name', `${quote(item.text)} ${problem}; ${expected}`);
    }
    return item.text;
  }

  path(opt: string, example: string): string | undefined {
    const item = this.scalar(opt);
    if (item === undefined) return undefined;
    const expected = `expected an absolute path, e.g. '${example}'`;
    if (!item.text.startsWith('/')) return this.bad(opt, `${quote(item.text)} is not an absolute path; ${expected}`);
    if (CONTROL_CHARS.test(item.text)) return this.bad(opt, `${quote(item.text)} contains control characters; ${expected}`);
    if (byteLength(item.text) > 4095) return this.bad(opt, `${quote(item.text)} is longer than 4095 bytes; ${expected}`);
    return item.text;
  }

  tunnelTypes(): TunnelType[] {
    const items = this.many('tunnel_type', true);
    if (items.length === 0) return [...DEFAULT_TUNNEL_TYPES];
    const out: TunnelType[] = [];
    for (const item of items) {
      if (!isTunnelType(item.text)) {
        this.bad('tunnel_type', `${quote(item.text)} is not a tunnel type; expected one of ${TUNNEL_TYPES.join(', ')}`, item.line);
      } else if (out.includes(item.text)) {
        this.warnings.push(`${this.at('tunnel_type', item.line)}: '${item.text}' listed twice; the later one ignored`);
      } else {
        out.push(item.text);
      }
    }
    return out;
  }

  /** tls_ca, tls_cert and tls_key (absolute paths); a certificate needs its key and the other way round. */
  tlsFiles(prefix = 'tls'): TlsFiles {
    const ca = this.path(`${prefix}_ca`, '/etc/tmip/ca.pem');
    const cert = this.path(`${prefix}_cert`, '/etc/tmip/cert.pem');
    const key = this.path(`${prefix}_key`, '/etc/tmip/key.pem');
    if ((cert === undefined) !== (key === undefined)) {
      const [has, lacks] = cert === undefined ? [`${prefix}_key`, `${prefix}_cert`] : [`${prefix}_cert`, `${prefix}_key`];
      this.bad(lacks, `required with option ${has}; expected the absolute path of the PEM file`);
    }
    return { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) };
  }

  /** Warn about every option not read so far. */
  unknown(): void {
    for (const opt of this.section.options.keys()) {
      if (!this.used.has(opt)) this.warnings.push(`${this.at(opt)}: unknown option '${opt}' ignored`);
    }
  }
}

/** `uci show`-style path of a section, e.g. 'tmip.@cn[0]' or 'tmip.main'. */
function sectionPath(pkg: UciPackage, s: UciSection): string {
  let name = s.name;
  if (name === undefined) {
    const i = pkg.sections.filter((x) => x.type === s.type).indexOf(s);
    name = `@${s.type}[${Math.max(i, 0)}]`;
  }
  return `${pkg.name ?? DEFAULT_PACKAGE}.${name}`;
}

function findSection(pkg: UciPackage, type: string, sectionName: string | undefined, warnings: string[]): Result<UciSection> {
  const pkgName = pkg.name ?? DEFAULT_PACKAGE;
  if (sectionName !== undefined) {
    // a name, or a `uci show` reference @type[n] (n < 0 counts from the end, as uci does)
    const ref = /^@([^[\]]+)\[(-?\d+)\]$/.exec(sectionName);
    let s: UciSection | undefined;
    if (ref) {
      const ofType = pkg.sections.filter((x) => x.type === ref[1]);
      const n = Number(ref[2]);
      s = ofType[n < 0 ? ofType.length + n : n];
    } else {
      s = pkg.sections.find((x) => x.name === sectionName);
    }
    if (!s) {
      const names = pkg.sections.filter((x) => x.type === type).map((x) => x.name ?? '?');
      const found =
        names.length > 0 ? `; the 'config ${type}' sections are: ${names.join(', ')}` : `; there is no 'config ${type}' section`;
      return err(`${pkgName}.${sectionName}: no such section${found}`);
    }
    if (s.type !== type) return err(`${pkgName}.${sectionName}: is a 'config ${s.type}' section; expected 'config ${type}'`);
    return ok(s);
  }
  const all = pkg.sections.filter((x) => x.type === type);
  const first = all[0];
  if (!first) return err(`${pkgName}: no 'config ${type}' section found; expected one (see the /etc/config/tmip shipped with tmip)`);
  if (all.length > 1) {
    warnings.push(`${pkgName}: ${all.length} 'config ${type}' sections; using the first (${sectionPath(pkg, first)})`);
  }
  return ok(first);
}

function done<T extends { warnings: string[] }>(r: SectionReader, extra: string[], build: () => T): Result<T> {
  r.unknown();
  if (r.errors.length > 0) return err(r.errors.join('\n'));
  const value = build();
  value.warnings = [...extra, ...r.warnings];
  return ok(value);
}

// ---------------------------------------------------------------------------------------------

/** The CN daemon's config from the first `config cn` section, or the one named `sectionName`. */
export function parseCnConfig(pkg: UciPackage, sectionName?: string): Result<CnConfig> {
  const extra: string[] = [];
  const found = findSection(pkg, 'cn', sectionName, extra);
  if (!found.ok) return found;
  const section = found.value;
  const r = new SectionReader(pkg, section);

  const networkName = r.networkName();

  // `option mlr`, or `list mlr` naming MLRs that share one etcd store (at most MAX_MLRS): the CN binds
  // to the one serving.
  const mlrs: MlrAddress[] = [];
  const mlrItems = r.many('mlr', false);
  if (mlrItems.length === 0) r.missing('mlr', MLR_EXPECTED);
  for (const item of mlrItems) {
    const m = parseMlrAddress(item.text);
    if (m.ok) mlrs.push(m.value);
    else r.bad('mlr', m.error, item.line);
  }
  const mlr: MlrAddress | undefined = mlrs[0];
  // The CN connects to every listed MLR at once while it looks for the serving one: keep that small.
  if (mlrItems.length > MAX_MLRS)
    r.bad('mlr', `lists ${mlrItems.length} MLRs; expected at most ${MAX_MLRS} (the MLRs that share one store)`, mlrItems[MAX_MLRS]?.line);
  if (mlrs.some((m) => m.scheme !== mlr?.scheme))
    r.bad('mlr', `mixes ${[...new Set(mlrs.map((m) => m.scheme))].join(' and ')}; expected every MLR of the list reached the same way`);

  let cnName = section.anonymous || section.name === undefined ? 'cn' : section.name;
  const nameItem = r.scalar('cn_name');
  if (nameItem) {
    const expected = `${CN_NAME_EXPECTED}, e.g. 'Library 2nd floor'`;
    if ([...nameItem.text].length > 64) r.bad('cn_name', `${quote(nameItem.text)} is longer than 64 characters; ${expected}`);
    else if (!CN_NAME_RE.test(nameItem.text))
      r.bad('cn_name', `${quote(nameItem.text)} contains a character not allowed in a CN name; ${expected}`);
    else cnName = nameItem.text;
  } else if (!CN_NAME_RE.test(cnName)) {
    r.bad('cn_name', `the section name ${quote(cnName)} is not a valid CN name; set option cn_name (${CN_NAME_EXPECTED})`);
  }

  // Each side is a device (cn_if, mobile_if) or a netifd logical interface (cn_network, mobile_network).
  const side = (kind: 'cn' | 'mobile', device: string, network: string): { ifname?: string; network?: string } => {
    const devOpt = `${kind}_if`;
    const netOpt = `${kind}_network`;
    const devItem = r.scalar(devOpt);
    const netItem = r.scalar(netOpt);
    const expected = `expected option ${devOpt} with a Linux interface name, e.g. '${device}', or option ${netOpt} with a logical interface of /etc/config/network, e.g. '${network}'`;
    if (devItem && netItem) {
      r.bad(netOpt, `given together with option ${devOpt}; set one of them: ${expected}`);
      return {};
    }
    if (netItem) {
      if (NETWORK_RE.test(netItem.text)) return { network: netItem.text };
      r.bad(netOpt, `${quote(netItem.text)} is not a logical interface name (1-15 letters, digits and '_'); ${expected}`);
      return {};
    }
    if (!devItem) {
      if (!r.hasOption(devOpt) && !r.hasOption(netOpt)) r.missing(devOpt, expected);
      return {};
    }
    const c = checkIfname(devItem.text);
    if (c.ok) return { ifname: c.value };
    r.bad(devOpt, c.error);
    return {};
  };
  const cnSide = side('cn', 'eth0', 'wan');
  const mobileSide = side('mobile', 'br-lan', 'lan');

  const pools: PoolSpec[] = [];
  for (const item of r.many('addr_pool', false)) {
    const p = parsePoolSpec(item.text);
    if (!p.ok) {
      r.bad('addr_pool', p.error, item.line);
      continue;
    }
    pools.push(p.value.spec);
    if (p.value.warning) r.warnings.push(`${r.at('addr_pool', item.line)}: ${p.value.warning}`);
  }

  const dnsServers: IPv4[] = [];
  for (const item of r.many('dns_server', true)) {
    const ip = checkIPv4(item.text, "expected an IPv4 address a.b.c.d (one per 'list dns_server')");
    if (ip.ok) dnsServers.push(ip.value);
    else r.bad('dns_server', ip.error, item.line);
  }

  let domain: string | undefined;
  const domainItem = r.scalar('domain');
  if (domainItem) {
    if (isDnsName(domainItem.text)) domain = domainItem.text;
    else
      r.bad(
        'domain',
        `${quote(domainItem.text)} is not a DNS domain; expected labels of letters, digits and '-' separated by dots, e.g. 'campus.lan'`,
      );
  }

  const leaseTime = r.integer('lease_time', LEASE_TIME_MIN, LEASE_TIME_MAX, DEFAULT_LEASE_TIME, 'a number of seconds');

  let tunnelPrefix = DEFAULT_TUNNEL_PREFIX;
  const prefixItem = r.scalar('tunnel_prefix');
  if (prefixItem) {
    const re = new RegExp(`^[a-z][a-z0-9_]{0,${TUNNEL_PREFIX_MAX - 1}}$`);
    if (re.test(prefixItem.text)) tunnelPrefix = prefixItem.text;
    else {
      const expected = `expected 1..${TUNNEL_PREFIX_MAX} characters of a-z, 0-9 and '_' starting with a letter (devices are named prefix + pair id in at most 15 bytes), e.g. 'tmip0'`;
      const problem =
        prefixItem.text.length > TUNNEL_PREFIX_MAX ? `is longer than ${TUNNEL_PREFIX_MAX} characters` : 'is not a valid tunnel prefix';
      r.bad('tunnel_prefix', `${quote(prefixItem.text)} ${problem}; ${expected}`);
    }
  }

  const tunnelTypes = r.tunnelTypes();
  const mssClamp = r.bool('mss_clamp', true);
  const tunnelLinger = r.integer('tunnel_linger', 0, 3600, 60, 'a number of seconds');
  const enabled = r.bool('enabled', true);
  const debugLevel = r.integer('debug_level', 0, 7, DEFAULT_DEBUG_LEVEL);
  const statusFile = r.path('status_file', '/var/run/tmip/cn.status');
  const hostapd = r.bool('hostapd', true);
  const requireAssociation = r.bool('require_association', true);
  const newStationRate = r.integer('new_station_rate', 1, 10000, DEFAULT_NEW_STATION_RATE, 'a number of new stations per second');
  const ubusSocket = r.path('ubus_socket', '/var/run/ubus/ubus.sock');
  let secret: string | undefined;
  const secretItem = r.scalar('secret');
  if (secretItem) {
    const s = parseSecret(secretItem.text);
    if (s.ok) secret = s.value;
    else r.bad('secret', s.error);
  }
  const tls = r.tlsFiles();
  const mqttUserItem = r.scalar('mqtt_username');
  const mqttUsername = mqttUserItem?.text ?? cnName;
  const mqttPassword = r.scalar('mqtt_password')?.text;
  if (mlr && (mlr.scheme === 'tls' || mlr.scheme === 'mqtts') && tls.ca === undefined) {
    r.warnings.push(`${r.at('tls_ca')}: not set; the ${mlr.scheme} server's certificate is checked against the system's CA store`);
  }

  return done(r, extra, () => {
    const cfg: CnConfig = {
      tls,
      mqttUsername,
      hostapd,
      requireAssociation,
      newStationRate,
      networkName: networkName!,
      cnName,
      mlr: mlr!,
      cnIf: cnSide.ifname ?? '',
      mobileIf: mobileSide.ifname ?? '',
      pools,
      dnsServers,
      leaseTime,
      tunnelPrefix,
      tunnelTypes,
      mssClamp,
      tunnelLinger,
      debugLevel,
      enabled,
      warnings: [],
    };
    if (domain !== undefined) cfg.domain = domain;
    if (cnSide.network !== undefined) cfg.cnNetwork = cnSide.network;
    if (mobileSide.network !== undefined) cfg.mobileNetwork = mobileSide.network;
    if (statusFile !== undefined) cfg.statusFile = statusFile;
    if (ubusSocket !== undefined) cfg.ubusSocket = ubusSocket;
    if (secret !== undefined) cfg.secret = secret;
    if (mqttPassword !== undefined) cfg.mqttPassword = mqttPassword;
    if (mlrs.length > 1) cfg.mlrs = mlrs;
    return cfg;
  });
}

/** The MLR daemon's config from the first `config mlr` section, or the one named `sectionName`. */
export function parseMlrConfig(pkg: UciPackage, sectionName?: string): Result<MlrConfig> {
  const extra: string[] = [];
  const found = findSection(pkg, 'mlr', sectionName, extra);
  if (!found.ok) return found;
  const r = new SectionReader(pkg, found.value);

  const networkName = r.networkName();
  const port = r.integer('port', 1, 65535, DEFAULT_MLR_PORT, 'a port number');

  let listen = DEFAULT_LISTEN;
  const listenItem = r.scalar('listen');
  if (listenItem) {
    const ip = checkIPv4(listenItem.text, "expected the IPv4 address to listen on, or '0.0.0.0' for all");
    if (ip.ok) listen = formatIPv4(ip.value);
    else r.bad('listen', ip.error);
  }

  const debugLevel = r.integer('debug_level', 0, 7, DEFAULT_DEBUG_LEVEL);
  const stateFile = r.path('state_file', '/etc/tmip/mlr.state');
  let store: MlrConfig['store'];
  const storeItem = r.scalar('store');
  if (storeItem) {
    const st = parseStoreUrl(storeItem.text);
    if (!st.ok) r.bad('store', st.error);
    else if (stateFile !== undefined)
      r.bad('store', `given together with option state_file; keep the registry in one place: remove option state_file to keep it in etcd`);
    else store = { url: storeItem.text, endpoints: st.value };
  }
  const offerHold = r.integer('offer_hold', 1, 3600, DEFAULT_OFFER_HOLD, 'a number of seconds');
  const leaseGrace = r.integer('lease_grace', 0, 86400, DEFAULT_LEASE_GRACE, 'a number of seconds');
  const maxOffers = r.integer('max_offers', 1, 4096, DEFAULT_MAX_OFFERS, 'a number of cells');
  const declineQuarantine = r.integer('decline_quarantine', 0, 86400, DEFAULT_DECLINE_QUARANTINE, 'a number of seconds');
  const tunnelTypes = r.tunnelTypes();
  const enabled = r.bool('enabled', true);
  const auth = r.bool('auth', true);

  let mqtt: MlrAddress | undefined;
  const mqttItem = r.scalar('mqtt');
  if (mqttItem) {
    const a = parseMlrAddress(mqttItem.text);
    if (!a.ok) r.bad('mqtt', a.error);
    else if (a.value.scheme !== 'mqtt' && a.value.scheme !== 'mqtts') {
      r.bad('mqtt', `${quote(mqttItem.text)} is not an MQTT broker URL; expected 'mqtt://host[:port]' or 'mqtts://host[:port]'`);
    } else mqtt = a.value;
  }
  const mqttUsername = r.scalar('mqtt_username')?.text ?? DEFAULT_MLR_MQTT_USER;
  const mqttPassword = r.scalar('mqtt_password')?.text;
  const mqttCa = r.path('mqtt_ca', '/etc/tmip/broker-ca.pem');

  let tls: MlrConfig['tls'];
  const tlsPortItem = r.scalar('tls_port');
  const files = r.tlsFiles();
  if (tlsPortItem) {
    const port = r.integer('tls_port', 1, 65535, DEFAULT_PORTS.tls, 'a port number');
    if (files.cert === undefined || files.key === undefined) {
      r.bad('tls_port', 'needs option tls_cert and option tls_key (absolute paths of the PEM certificate and key)');
    } else tls = { port, cert: files.cert, key: files.key, ...(files.ca !== undefined ? { ca: files.ca } : {}) };
  }

  const base = sectionPath(pkg, found.value);
  const keys: CnKey[] = [];
  for (const s of pkg.sections.filter((x) => x.type === 'key')) {
    const kr = new SectionReader(pkg, s);
    const cnItem = kr.required('cn', "expected the name of the CN this key belongs to (its cn_name), e.g. 'ap-library'");
    const secretItem = kr.required('secret', "expected 64 hex digits, as 'tmip-mlr keygen NAME' prints");
    let cn: string | undefined;
    if (cnItem) {
      if (!CN_NAME_RE.test(cnItem.text)) kr.bad('cn', `${quote(cnItem.text)} is not a valid CN name; ${CN_NAME_EXPECTED}`);
      else if (keys.some((k) => k.cn === cnItem.text))
        kr.bad('cn', `${quote(cnItem.text)} has a key already; expected one 'config key' section per CN`);
      else cn = cnItem.text;
    }
    let secret: string | undefined;
    if (secretItem) {
      const p = parseSecret(secretItem.text);
      if (p.ok) secret = p.value;
      else kr.bad('secret', p.error);
    }
    kr.unknown();
    r.errors.push(...kr.errors);
    r.warnings.push(...kr.warnings);
    if (cn !== undefined && secret !== undefined) keys.push({ cn, secret });
  }
  if (auth && keys.length === 0) {
    r.errors.push(
      `${base}.auth: authentication is on but there is no 'config key' section; add one per CN ('tmip-mlr keygen NAME' prints it), or set option auth '0' for a closed lab`,
    );
  }

  return done(r, extra, () => {
    const cfg: MlrConfig = {
      auth,
      keys,
      mqttUsername,
      networkName: networkName!,
      port,
      listen,
      debugLevel,
      offerHold,
      leaseGrace,
      maxOffers,
      declineQuarantine,
      tunnelTypes,
      enabled,
      warnings: [],
    };
    if (stateFile !== undefined) cfg.stateFile = stateFile;
    if (store !== undefined) cfg.store = store;
    if (mqtt !== undefined) cfg.mqtt = mqtt;
    if (mqttPassword !== undefined) cfg.mqttPassword = mqttPassword;
    if (mqttCa !== undefined) cfg.mqttCa = mqttCa;
    if (tls !== undefined) cfg.tls = tls;
    return cfg;
  });
}
