// SPDX-License-Identifier: GPL-2.0-only
// Link-layer codecs the CN needs on its mobile-facing interface: Ethernet II (with at most one
// 802.1Q tag), ARP for Ethernet/IPv4, IPv4 (header checksum, options skipped, fragments flagged)
// and UDP (pseudo-header checksum). Decoders are total: they never throw, they return err(...).
// Encoders build whole frames for injection (gratuitous ARP, ARP replies, DHCP replies over UDP).
// Decoded payloads are views (subarrays) into the input buffer, not copies.
// No I/O here: capture and injection live in platform/linkio.ts.
import { BROADCAST_MAC, macFromBytes, parseMac, type IPv4, type Mac } from '../core/ip.js';
import { err, ok, type Result } from '../core/result.js';
import { put16, put32, u16, u32 } from './bytes.js';

// ---------------------------------------------------------------------------------------------
// Constants

export const ETHERTYPE = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, IPV6: 0x86dd } as const;
export const IP_PROTOCOL = { ICMP: 1, TCP: 6, UDP: 17 } as const;
export const ARP_OP = { REQUEST: 1, REPLY: 2 } as const;
export const DHCP_SERVER_PORT = 67;

export const ETH_HEADER_LEN = 14;
export const VLAN_TAG_LEN = 4;
/** Minimum Ethernet frame without the FCS; shorter frames are zero-padded by encodeEthernet. */
export const ETH_MIN_FRAME_LEN = 60;
const VLAN_ID_MASK = 0x0fff;

export const ARP_LEN = 28; // Ethernet/IPv4 ARP body
const ARP_HTYPE_ETHERNET = 1;
const ARP_HLEN_ETHERNET = 6;
const ARP_PLEN_IPV4 = 4;

export const IPV4_MIN_HEADER_LEN = 20;
const IPV4_VERSION = 4;
const IPV4_MIN_IHL = 5;
const IPV4_MAX_TOTAL_LEN = 0xffff;
export const IPV4_FLAG_MF = 0b001;
const IPV4_FRAG_OFFSET_MASK = 0x1fff;
const DEFAULT_TTL = 64;

export const UDP_HEADER_LEN = 8;
const UDP_NO_CHECKSUM = 0;

const ZERO_MAC: Mac = '00:00:00:00:00:00';

// ---------------------------------------------------------------------------------------------
// Types

export interface EthernetFrame {
  dst: Mac;
  src: Mac;
  /** The protocol EtherType (after the 802.1Q tag when there is one). */
  etherType: number;
  /** VLAN id (12 bits) of the 802.1Q tag, when the frame carried one. */
  vlan?: number;
  payload: Uint8Array;
}

export interface ArpPacket {
  op: number; // ARP_OP.REQUEST (1), ARP_OP.REPLY (2), or anything else the wire carried
  senderMac: Mac;
  senderIp: IPv4;
  targetMac: Mac;
  targetIp: IPv4;
}

export interface IPv4Packet {
  src: IPv4;
  dst: IPv4;
  protocol: number;
  ttl: number;
  id: number;
  /** The 3 flag bits: IPV4_FLAG_DF (2), IPV4_FLAG_MF (1). */
  flags: number;
  /** Fragment offset in 8-byte units, as on the wire. */
  fragmentOffset: number;
  /** True when this is a fragment (MF set or nonzero offset): the payload is not a whole datagram. */
  fragment: boolean;
  headerLength: number; // bytes, IHL*4
  totalLength: number; // bytes, header + payload
  /** Bytes headerLength..totalLength (link-layer padding is cut off). */
  payload: Uint8Array;
}

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  /** False when the sender sent checksum 0 ("no checksum"). */
  checksummed: boolean;
  payload: Uint8Array;
}

export type ClassifiedFrame =
  | { kind: 'arp'; eth: EthernetFrame; arp: ArpPacket }
  | { kind: 'dhcp'; eth: EthernetFrame; ip: IPv4Packet; udp: UdpDatagram }
  | { kind: 'ipv4'; eth: EthernetFrame; ip: IPv4Packet }
  | { kind: 'other'; eth: EthernetFrame };

// ---------------------------------------------------------------------------------------------
// Byte helpers

/** One's-complement sum of 16-bit big-endian words of b[start..end), folded to 16 bits. */
function onesSum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
  if (i < end) sum += (b[i] ?? 0) << 8; // odd trailing byte, padded with zero
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum (RFC 1071) of `bytes`: the complement of their one's-complement sum. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return ~onesSum(bytes, start, end) & 0xffff;
}

function pseudoHeaderSum(src: IPv4, dst: IPv4, protocol: number, length: number): number {
  let sum = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

const hex16 = (v: number) => `0x${v.toString(16).padStart(4, '0')}`;

// Encoder argument checks: encoders get values from our own code, so a bad one is a programming
// error and throws (decoders, which see the wire, never throw).

// Hot path (every frame we send): the canonical form `aa:bb:cc:dd:ee:ff` (our own MACs, decoded
// ones) is read digit by digit straight into the frame; any other spelling goes through parseMac.
function putMac(out: Uint8Array, offset: number, mac: Mac, what: string): void {
  if (mac.length === 17) {
    let i = 0;
    for (; i < 6; i++) {
      const hi = hexDigit(mac.charCodeAt(i * 3));
      const lo = hexDigit(mac.charCodeAt(i * 3 + 1));
      if (hi < 0 || lo < 0 || (i < 5 && mac.charCodeAt(i * 3 + 2) !== 0x3a)) break;
      out[offset + i] = (hi << 4) | lo;
    }
    if (i === 6) return;
  }
  const m = parseMac(mac);
  if (!m.ok) throw new TypeError(`${what}: ${m.error}`);
  for (let i = 0; i < 6; i++) out[offset + i] = parseInt(m.value.slice(i * 3, i * 3 + 2), 16);
}

/** The value of one hex digit's character code, -1 for any other character. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} ${v} is not an integer in 0..${max}`);
}

// ---------------------------------------------------------------------------------------------
// Ethernet

export function decodeEthernet(frame: Uint8Array): Result<EthernetFrame> {
  if (frame.length < ETH_HEADER_LEN) return err(`Ethernet frame too short: ${frame.length} bytes < ${ETH_HEADER_LEN}-byte header`);
  const dst = macFromBytes(frame, 0);
  const src = macFromBytes(frame, 6);
  let etherType = u16(frame, 12);
  let offset = ETH_HEADER_LEN;
  let vlan: number | undefined;
  if (etherType === ETHERTYPE.VLAN) {
    if (frame.length < ETH_HEADER_LEN + VLAN_TAG_LEN) {
      return err(`802.1Q frame too short: ${frame.length} bytes < ${ETH_HEADER_LEN + VLAN_TAG_LEN}-byte tagged header`);
    }
    vlan = u16(frame, 14) & VLAN_ID_MASK;
    etherType = u16(frame, 16);
    offset += VLAN_TAG_LEN;
  }
  const out: EthernetFrame = { dst, src, etherType, payload: frame.subarray(offset) };
  if (vlan !== undefined) out.vlan = vlan;
  return ok(out);
}

/** An Ethernet II frame, zero-padded to 60 bytes (the minimum without FCS). */
export function encodeEthernet(f: { dst: Mac; src: Mac; etherType: number; payload: Uint8Array; vlan?: number }): Buffer {
  checkUint(f.etherType, 0xffff, 'EtherType');
  const tagLen = f.vlan === undefined ? 0 : VLAN_TAG_LEN;
  if (f.vlan !== undefined) checkUint(f.vlan, VLAN_ID_MASK, 'VLAN id');
  const headerLen = ETH_HEADER_LEN + tagLen;
  const out = Buffer.alloc(Math.max(ETH_MIN_FRAME_LEN, headerLen + f.payload.length));
  putMac(out, 0, f.dst, 'destination MAC');
  putMac(out, 6, f.src, 'source MAC');
  if (f.vlan !== undefined) {
    put16(out, 12, ETHERTYPE.VLAN);
    put16(out, 14, f.vlan);
  }
  put16(out, 12 + tagLen, f.etherType);
  out.set(f.payload, headerLen);
  return out;
}

// ---------------------------------------------------------------------------------------------
// ARP (Ethernet hardware, IPv4 protocol only)

export function decodeArp(payload: Uint8Array): Result<ArpPacket> {
  if (payload.length < ARP_LEN) return err(`ARP packet too short: ${payload.length} bytes < ${ARP_LEN}`);
  const htype = u16(payload, 0);
  const ptype = u16(payload, 2);
  const hlen = payload[4] ?? 0;
  const plen = payload[5] ?? 0;
  if (htype !== ARP_HTYPE_ETHERNET) return err(`ARP hardware type ${htype} is not Ethernet (1)`);
  if (ptype !== ETHERTYPE.IPV4) return err(`ARP protocol type ${hex16(ptype)} is not IPv4 (0x0800)`);
  if (hlen !== ARP_HLEN_ETHERNET) return err(`ARP hardware address length ${hlen} is not 6`);
  if (plen !== ARP_PLEN_IPV4) return err(`ARP protocol address length ${plen} is not 4`);
  return ok({
    op: u16(payload, 6),
    senderMac: macFromBytes(payload, 8),
    senderIp: u32(payload, 14),
    targetMac: macFromBytes(payload, 18),
    targetIp: u32(payload, 24),
  });
}

/** The 28-byte ARP body (Ethernet/IPv4). */
export function encodeArp(a: ArpPacket): Buffer {
  checkUint(a.op, 0xffff, 'ARP op');
  checkUint(a.senderIp, 0xffffffff, 'ARP sender IP');
  checkUint(a.targetIp, 0xffffffff, 'ARP target IP');
  const out = Buffer.alloc(ARP_LEN);
  put16(out, 0, ARP_HTYPE_ETHERNET);
  put16(out, 2, ETHERTYPE.IPV4);
  out[4] = ARP_HLEN_ETHERNET;
  out[5] = ARP_PLEN_IPV4;
  put16(out, 6, a.op);
  putMac(out, 8, a.senderMac, 'ARP sender MAC');
  put32(out, 14, a.senderIp);
  putMac(out, 18, a.targetMac, 'ARP target MAC');
  put32(out, 24, a.targetIp);
  return out;
}

/** Broadcast ARP request announcing `ip` at `mac` (sender IP = target IP, target MAC zero). */
export function buildGratuitousArp(mac: Mac, ip: IPv4): Buffer {
  const arp = encodeArp({ op: ARP_OP.REQUEST, senderMac: mac, senderIp: ip, targetMac: ZERO_MAC, targetIp: ip });
  return encodeEthernet({ dst: BROADCAST_MAC, src: mac, etherType: ETHERTYPE.ARP, payload: arp });
}

/**
 * Unicast ARP packet from srcMac/srcIp to dstMac/dstIp. A REPLY says "srcIp is at srcMac"; a REQUEST
 * asks "who has dstIp? tell srcIp" of dstMac only (a presence probe, RFC 1122 2.3.2.1's unicast poll):
 * only the station with that MAC hears it, and it answers if it holds dstIp. A request's target MAC is
 * zero, as in any ARP request.
 */
export function buildArp(op: (typeof ARP_OP)[keyof typeof ARP_OP], r: { srcMac: Mac; srcIp: IPv4; dstMac: Mac; dstIp: IPv4 }): Buffer {
  const targetMac = op === ARP_OP.REPLY ? r.dstMac : ZERO_MAC;
  const arp = encodeArp({ op, senderMac: r.srcMac, senderIp: r.srcIp, targetMac, targetIp: r.dstIp });
  return encodeEthernet({ dst: r.dstMac, src: r.srcMac, etherType: ETHERTYPE.ARP, payload: arp });
}

/** Unicast ARP reply: "srcIp is at srcMac", sent to dstMac/dstIp. */
export function buildArpReply(r: { srcMac: Mac; srcIp: IPv4; dstMac: Mac; dstIp: IPv4 }): Buffer {
  return buildArp(ARP_OP.REPLY, r);
}

// ---------------------------------------------------------------------------------------------
// IPv4

export function decodeIPv4(payload: Uint8Array): Result<IPv4Packet> {
  if (payload.length < IPV4_MIN_HEADER_LEN)
    return err(`IPv4 packet too short: ${payload.length} bytes < ${IPV4_MIN_HEADER_LEN}-byte header`);
  const b0 = payload[0] ?? 0;
  const version = b0 >>> 4;
  if (version !== IPV4_VERSION) return err(`IP version ${version} is not 4`);
  const ihl = b0 & 0x0f;
  if (ihl < IPV4_MIN_IHL) return err(`IPv4 IHL ${ihl} < 5`);
  const headerLength = ihl * 4;
  if (headerLength > payload.length) return err(`IPv4 header length ${headerLength} exceeds the ${payload.length} bytes present`);
  const totalLength = u16(payload, 2);
  if (totalLength < headerLength) return err(`IPv4 total length ${totalLength} < header length ${headerLength}`);
  if (totalLength > payload.length) return err(`IPv4 total length ${totalLength} exceeds the ${payload.length} bytes present`);
  const sum = onesSum(payload, 0, headerLength);
  if (sum !== 0xffff) {
    const stated = u16(payload, 10);
    const expected = ~onesSum(payload, 0, headerLength, ~stated & 0xffff) & 0xffff; // checksum with the field taken as zero
    return err(`IPv4 header checksum mismatch: header says ${hex16(stated)}, computed ${hex16(expected)}`);
  }
  const flagsAndOffset = u16(payload, 6);
  const flags = flagsAndOffset >>> 13;
  const fragmentOffset = flagsAndOffset & IPV4_FRAG_OFFSET_MASK;
  return ok({
    src: u32(payload, 12),
    dst: u32(payload, 16),
    protocol: payload[9] ?? 0,
    ttl: payload[8] ?? 0,
    id: u16(payload, 4),
    flags,
    fragmentOffset,
    fragment: (flags & IPV4_FLAG_MF) !== 0 || fragmentOffset !== 0,
    headerLength,
    totalLength,
    payload: payload.subarray(headerLength, totalLength),
  });
}

// ---------------------------------------------------------------------------------------------
// UDP

export function decodeUdp(ip: IPv4Packet): Result<UdpDatagram> {
  if (ip.protocol !== IP_PROTOCOL.UDP) return err(`IPv4 protocol ${ip.protocol} is not UDP (17)`);
  if (ip.fragment) return err(`IPv4 packet is a fragment (offset ${ip.fragmentOffset * 8}); UDP needs reassembly, which tmip does not do`);
  const p = ip.payload;
  if (p.length < UDP_HEADER_LEN) return err(`UDP datagram too short: ${p.length} bytes < ${UDP_HEADER_LEN}-byte header`);
  const length = u16(p, 4);
  if (length < UDP_HEADER_LEN) return err(`UDP length ${length} < ${UDP_HEADER_LEN}`);
  if (length > p.length) return err(`UDP length ${length} exceeds the ${p.length} bytes in the IPv4 payload`);
  const checksum = u16(p, 6);
  if (checksum !== UDP_NO_CHECKSUM) {
    const sum = onesSum(p, 0, length, pseudoHeaderSum(ip.src, ip.dst, IP_PROTOCOL.UDP, length));
    if (sum !== 0xffff) return err(`UDP checksum mismatch (header says ${hex16(checksum)})`);
  }
  return ok({
    srcPort: u16(p, 0),
    dstPort: u16(p, 2),
    checksummed: checksum !== UDP_NO_CHECKSUM,
    payload: p.subarray(UDP_HEADER_LEN, length),
  });
}

/** An IPv4 header (no options, DF clear) followed by a UDP datagram, both checksums filled in. */
export function encodeIPv4Udp(u: UdpSpec): Buffer {
  const out = Buffer.alloc(ipv4UdpLength(u));
  writeIPv4Udp(out, 0, u);
  return out;
}

interface UdpSpec {
  srcIp: IPv4;
  dstIp: IPv4;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
}

/** The IPv4 packet's length for this datagram; throws RangeError when it does not fit in one. */
function ipv4UdpLength(u: UdpSpec): number {
  const totalLength = IPV4_MIN_HEADER_LEN + UDP_HEADER_LEN + u.payload.length;
  if (totalLength > IPV4_MAX_TOTAL_LEN) throw new RangeError(`UDP payload of ${u.payload.length} bytes does not fit in one IPv4 packet`);
  return totalLength;
}

/** Write the IPv4 packet (header, UDP header, payload) at `at` in `out` (zeroed, long enough). */
function writeIPv4Udp(out: Buffer, at: number, u: UdpSpec): void {
  const ttl = u.ttl ?? DEFAULT_TTL;
  const id = u.id ?? 0;
  checkUint(u.srcIp, 0xffffffff, 'source IP');
  checkUint(u.dstIp, 0xffffffff, 'destination IP');
  checkUint(u.srcPort, 0xffff, 'source port');
  checkUint(u.dstPort, 0xffff, 'destination port');
  checkUint(ttl, 0xff, 'TTL');
  checkUint(id, 0xffff, 'IPv4 id');
  const totalLength = ipv4UdpLength(u);
  const udpLength = totalLength - IPV4_MIN_HEADER_LEN;
  out[at] = (IPV4_VERSION << 4) | IPV4_MIN_IHL;
  out[at + 1] = 0; // DSCP/ECN
  put16(out, at + 2, totalLength);
  put16(out, at + 4, id);
  put16(out, at + 6, 0); // flags (DF clear, MF clear) and fragment offset 0
  out[at + 8] = ttl;
  out[at + 9] = IP_PROTOCOL.UDP;
  put32(out, at + 12, u.srcIp);
  put32(out, at + 16, u.dstIp);
  put16(out, at + 10, internetChecksum(out, at, at + IPV4_MIN_HEADER_LEN));

  const udp = at + IPV4_MIN_HEADER_LEN;
  put16(out, udp, u.srcPort);
  put16(out, udp + 2, u.dstPort);
  put16(out, udp + 4, udpLength);
  out.set(u.payload, udp + UDP_HEADER_LEN);
  const sum = onesSum(out, udp, at + totalLength, pseudoHeaderSum(u.srcIp, u.dstIp, IP_PROTOCOL.UDP, udpLength));
  const checksum = ~sum & 0xffff;
  put16(out, udp + 6, checksum === 0 ? 0xffff : checksum); // 0 means "none", so a computed 0 is sent as 0xffff
}

/** A whole Ethernet frame carrying IPv4/UDP (TTL 64, id 0 unless given). */
export function buildUdpFrame(f: {
  srcMac: Mac;
  dstMac: Mac;
  srcIp: IPv4;
  dstIp: IPv4;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
}): Buffer {
  // One buffer for the whole frame (every DHCP reply): the packet is written after the header.
  const u: UdpSpec = {
    srcIp: f.srcIp,
    dstIp: f.dstIp,
    srcPort: f.srcPort,
    dstPort: f.dstPort,
    payload: f.payload,
    ...(f.ttl !== undefined ? { ttl: f.ttl } : {}),
    ...(f.id !== undefined ? { id: f.id } : {}),
  };
  const out = Buffer.alloc(Math.max(ETH_MIN_FRAME_LEN, ETH_HEADER_LEN + ipv4UdpLength(u)));
  putMac(out, 0, f.dstMac, 'destination MAC');
  putMac(out, 6, f.srcMac, 'source MAC');
  put16(out, 12, ETHERTYPE.IPV4);
  writeIPv4Udp(out, ETH_HEADER_LEN, u);
  return out;
}

// ---------------------------------------------------------------------------------------------
// One-call classification of captured frames

/**
 * Decode a captured frame as far as the CN cares: ARP, DHCP-to-server (UDP dst port 67, checksum
 * verified), other IPv4, or other. Malformed ARP/IPv4 and DHCP-port UDP that fails to decode are
 * errors; UDP to other ports is not decoded (kind 'ipv4'), nor are IPv4 fragments.
 */
export function classifyFrame(frame: Uint8Array): Result<ClassifiedFrame> {
  const e = decodeEthernet(frame);
  if (!e.ok) return e;
  const eth = e.value;
  if (eth.etherType === ETHERTYPE.ARP) {
    const arp = decodeArp(eth.payload);
    if (!arp.ok) return arp;
    return ok({ kind: 'arp', eth, arp: arp.value });
  }
  if (eth.etherType !== ETHERTYPE.IPV4) return ok({ kind: 'other', eth });
  const i = decodeIPv4(eth.payload);
  if (!i.ok) return i;
  const ip = i.value;
  const toDhcpServer =
    ip.protocol === IP_PROTOCOL.UDP && !ip.fragment && ip.payload.length >= UDP_HEADER_LEN && u16(ip.payload, 2) === DHCP_SERVER_PORT;
  if (!toDhcpServer) return ok({ kind: 'ipv4', eth, ip });
  const udp = decodeUdp(ip);
  if (!udp.ok) return udp;
  return ok({ kind: 'dhcp', eth, ip, udp: udp.value });
}
