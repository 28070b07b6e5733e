// SPDX-License-Identifier: GPL-2.0-only
// IPv4 address arithmetic: parsing and formatting dotted quads, CIDR prefixes, MAC addresses, and the
// /30 "cell" every mobile station owns (network N, host N+1, gateway N+2, broadcast N+3).
// Addresses are unsigned 32-bit integers held in JS numbers (0 .. 2^32-1).
import { err, ok, type Result } from './result.js';

export type IPv4 = number;

export interface Cidr {
  network: IPv4;
  prefix: number;
}

/** The four addresses of one /30 cell. */
export interface Cell {
  network: IPv4;
  host: IPv4;
  gateway: IPv4;
  broadcast: IPv4;
}

export const CELL_MASK: IPv4 = 0xfffffffc;

export function parseIPv4(text: string): Result<IPv4> {
  const parts = text.split('.');
  if (parts.length !== 4) return err(`'${text}' is not an IPv4 address (expected a.b.c.d)`);
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return err(`'${text}' is not an IPv4 address (expected a.b.c.d)`);
    const octet = Number(part);
    if (octet > 255) return err(`'${text}' is not an IPv4 address (octet ${part} > 255)`);
    value = value * 256 + octet;
  }
  return ok(value);
}

export function formatIPv4(ip: IPv4): string {
  return `${(ip >>> 24) & 255}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

export function maskOf(prefix: number): IPv4 {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(text: string): Result<Cidr> {
  const slash = text.indexOf('/');
  if (slash < 0) return err(`'${text}' is not a CIDR prefix (expected a.b.c.d/len)`);
  const ip = parseIPv4(text.slice(0, slash));
  if (!ip.ok) return ip;
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) {
    return err(`'${text}' has a bad prefix length (expected 0..32)`);
  }
  const prefix = Number(lenText);
  return ok({ network: (ip.value & maskOf(prefix)) >>> 0, prefix });
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.network)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: IPv4): boolean {
  return (ip & maskOf(c.prefix)) >>> 0 === c.network;
}

export function cidrBroadcast(c: Cidr): IPv4 {
  return (c.network | (~maskOf(c.prefix) >>> 0)) >>> 0;
}

/** The /30 cell that contains `ip`. */
export function cellOf(ip: IPv4): Cell {
  const network = (ip & CELL_MASK) >>> 0;
  return { network, host: network + 1, gateway: network + 2, broadcast: network + 3 };
}

export type Mac = string; // canonical form: lower-case, colon separated, "aa:bb:cc:dd:ee:ff"

export function parseMac(text: string): Result<Mac> {
  const m = /^([0-9a-fA-F]{2})([:-]?)([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(text);
  if (!m) return err(`'${text}' is not a MAC address (expected aa:bb:cc:dd:ee:ff)`);
  return ok([m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase());
}

export function macToBytes(mac: Mac): Uint8Array {
  return Uint8Array.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** Two lowercase hex digits for every byte value (macFromBytes runs for every captured frame). */
const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, v) => v.toString(16).padStart(2, '0'));

export function macFromBytes(bytes: Uint8Array, offset = 0): Mac {
  const h = (i: number) => HEX_BYTE[bytes[offset + i] ?? 0]!;
  return `${h(0)}:${h(1)}:${h(2)}:${h(3)}:${h(4)}:${h(5)}`;
}

export const BROADCAST_MAC: Mac = 'ff:ff:ff:ff:ff:ff';
