// SPDX-License-Identifier: GPL-2.0-only
// DHCP wire format (RFC 2131 / RFC 2132) for tmip's server side: a total decoder for client
// messages, an encoder for OFFER/ACK/NAK replies, the RFC 2131 §4.1 reply-destination rules and the
// §4.3.2 DHCPREQUEST state classification. The decoder never throws; every option length is
// checked against the bytes left. Duplicate options are concatenated (RFC 3396), and long options
// are split into 255-byte pieces on encode. sname/file and option overload (52) are ignored.
// No I/O here: the server logic is cn/dhcp-server.ts, framing is proto/packet.ts.
import { macFromBytes, type IPv4, type Mac } from '../core/ip.js';
import { err, ok, type Result } from '../core/result.js';
import { put16, put32, u16, u32 } from './bytes.js';

// ---------------------------------------------------------------------------------------------
// Constants

export const DHCP_MESSAGE = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type DhcpMessageType = (typeof DHCP_MESSAGE)[keyof typeof DHCP_MESSAGE];

const MESSAGE_NAMES: Record<number, string> = {
  1: 'DHCPDISCOVER',
  2: 'DHCPOFFER',
  3: 'DHCPREQUEST',
  4: 'DHCPDECLINE',
  5: 'DHCPACK',
  6: 'DHCPNAK',
  7: 'DHCPRELEASE',
  8: 'DHCPINFORM',
};

/** "DHCPDISCOVER", ..., or "DHCP message type N" for anything else. */
export function dhcpMessageName(type: number): string {
  return MESSAGE_NAMES[type] ?? `DHCP message type ${type}`;
}

export const DHCP_OPTION = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS_SERVERS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  END: 255,
} as const;

export const BOOTP_OP = { REQUEST: 1, REPLY: 2 } as const;
export const DHCP_MAGIC_COOKIE = 0x63825363; // 99.130.83.99
export const DHCP_FLAG_BROADCAST = 0x8000;
export const ETHERNET_HLEN = 6;
const CHADDR_LEN = 16;

// Fixed BOOTP header layout (RFC 2131 figure 1).
const OFF_OP = 0;
const OFF_HTYPE = 1;
const OFF_HLEN = 2;
const OFF_HOPS = 3;
const OFF_XID = 4;
const OFF_SECS = 8;
const OFF_FLAGS = 10;
const OFF_CIADDR = 12;
const OFF_YIADDR = 16;
const OFF_SIADDR = 20;
const OFF_GIADDR = 24;
const OFF_CHADDR = 28;
const OFF_COOKIE = 236; // after chaddr(16), sname(64), file(128)
export const BOOTP_FIXED_LEN = 236;
export const DHCP_MIN_LEN = BOOTP_FIXED_LEN + 4; // fixed header + magic cookie
/** Replies are zero-padded to this (the BOOTP minimum); some clients drop shorter messages. */
export const BOOTP_MIN_REPLY_LEN = 300;
const MAX_OPTION_LEN = 255;

// ---------------------------------------------------------------------------------------------
// Types

export interface DhcpMessage {
  op: number; // BOOTP_OP.REQUEST (1) or BOOTP_OP.REPLY (2)
  htype: number;
  hlen: number; // always 6 in a decoded message
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  /** The broadcast bit of `flags`. */
  broadcast: boolean;
  ciaddr: IPv4;
  yiaddr: IPv4;
  siaddr: IPv4;
  giaddr: IPv4;
  /** Client hardware address: the first 6 bytes of the chaddr field. */
  chaddr: Mac;
  /** The whole 16-byte chaddr field as sent (copied into replies verbatim). */
  chaddrRaw: Uint8Array;
  /** Option 53; always 1..8 in a decoded message. */
  messageType: DhcpMessageType;
  requestedIp?: IPv4; // 50
  serverId?: IPv4; // 54
  leaseTime?: number; // 51, seconds
  clientId?: Uint8Array; // 61, raw (type byte included)
  hostname?: string; // 12 (UTF-8, invalid sequences replaced, trailing NULs dropped)
  paramRequestList?: number[]; // 55
  maxMessageSize?: number; // 57
  /** Every option that was present (including the typed ones above), duplicates concatenated. */
  options: Map<number, Uint8Array>;
}

export interface DhcpReplyParams {
  request: DhcpMessage;
  messageType: number;
  yiaddr: IPv4;
  serverId: IPv4;
  subnetMask?: IPv4;
  router?: IPv4;
  dnsServers?: IPv4[];
  domain?: string;
  leaseTime?: number;
  renewalTime?: number;
  rebindingTime?: number;
  message?: string;
}

export type DhcpDestination = { kind: 'relay'; ip: IPv4 } | { kind: 'unicast'; ip: IPv4; mac: Mac } | { kind: 'broadcast' };

export type RequestState = 'selecting' | 'init-reboot' | 'renewing-or-rebinding' | 'invalid';

// ---------------------------------------------------------------------------------------------
// Byte helpers

const utf8 = new TextDecoder('utf-8', { fatal: false });

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Walk the options area b[start..): pad (0) is skipped, end (255) stops; every other option is
 * code, length, value and the length must fit in what is left. A missing end option is tolerated
 * when the last option ends exactly at the end of the buffer. Repeated codes are concatenated in
 * order of appearance (RFC 3396).
 */
function parseOptions(b: Uint8Array, start: number): Result<Map<number, Uint8Array>> {
  const options = new Map<number, Uint8Array>();
  /** Codes seen more than once, with every piece (rare: only these are concatenated). */
  let repeated: Map<number, Uint8Array[]> | undefined;
  let i = start;
  while (i < b.length) {
    const code = b[i] ?? 0;
    if (code === DHCP_OPTION.PAD) {
      i++;
      continue;
    }
    if (code === DHCP_OPTION.END) break;
    if (i + 1 >= b.length) return err(`DHCP option ${code} at offset ${i} has no length byte`);
    const len = b[i + 1] ?? 0;
    const left = b.length - (i + 2);
    if (len > left) return err(`DHCP option ${code} at offset ${i} has length ${len} but only ${left} bytes remain`);
    const value = b.subarray(i + 2, i + 2 + len);
    const first = options.get(code);
    if (first === undefined) options.set(code, value);
    else {
      repeated ??= new Map();
      const list = repeated.get(code);
      if (list) list.push(value);
      else repeated.set(code, [first, value]);
    }
    i += 2 + len;
  }
  // Copies (new Uint8Array of a typed array is one memcpy): the message does not hold on to the frame.
  for (const [code, value] of options) options.set(code, new Uint8Array(value));
  if (repeated) for (const [code, list] of repeated) options.set(code, new Uint8Array(Buffer.concat(list)));
  return ok(options);
}

function optionOfLength(options: Map<number, Uint8Array>, code: number, name: string, len: number): Result<Uint8Array | undefined> {
  const v = options.get(code);
  if (v === undefined) return ok(undefined);
  if (v.length !== len) return err(`DHCP option ${code} (${name}) has length ${v.length}, expected ${len}`);
  return ok(v);
}

export function decodeDhcp(udpPayload: Uint8Array): Result<DhcpMessage> {
  const b = udpPayload;
  if (b.length < DHCP_MIN_LEN) return err(`DHCP message too short: ${b.length} bytes < ${DHCP_MIN_LEN} (BOOTP header + magic cookie)`);
  const op = b[OFF_OP] ?? 0;
  if (op !== BOOTP_OP.REQUEST && op !== BOOTP_OP.REPLY) return err(`BOOTP op ${op} is neither BOOTREQUEST (1) nor BOOTREPLY (2)`);
  const htype = b[OFF_HTYPE] ?? 0;
  const hlen = b[OFF_HLEN] ?? 0;
  if (hlen > CHADDR_LEN) return err(`BOOTP hlen ${hlen} exceeds the ${CHADDR_LEN}-byte chaddr field`);
  if (hlen !== ETHERNET_HLEN) return err(`BOOTP hlen ${hlen} is not 6 (only Ethernet hardware addresses are supported)`);
  const cookie = u32(b, OFF_COOKIE);
  if (cookie !== DHCP_MAGIC_COOKIE)
    return err(`DHCP magic cookie 0x${cookie.toString(16).padStart(8, '0')} is not 0x63825363 (99.130.83.99)`);

  const parsed = parseOptions(b, DHCP_MIN_LEN);
  if (!parsed.ok) return parsed;
  const options = parsed.value;

  const typeOpt = optionOfLength(options, DHCP_OPTION.MESSAGE_TYPE, 'message type', 1);
  if (!typeOpt.ok) return typeOpt;
  if (typeOpt.value === undefined) return err('DHCP message type option (53) is missing (plain BOOTP is not supported)');
  const messageType = typeOpt.value[0] ?? 0;
  if (messageType < DHCP_MESSAGE.DISCOVER || messageType > DHCP_MESSAGE.INFORM) return err(`DHCP message type ${messageType} is not 1..8`);

  const flags = u16(b, OFF_FLAGS);
  const msg: DhcpMessage = {
    op,
    htype,
    hlen,
    hops: b[OFF_HOPS] ?? 0,
    xid: u32(b, OFF_XID),
    secs: u16(b, OFF_SECS),
    flags,
    broadcast: (flags & DHCP_FLAG_BROADCAST) !== 0,
    ciaddr: u32(b, OFF_CIADDR),
    yiaddr: u32(b, OFF_YIADDR),
    siaddr: u32(b, OFF_SIADDR),
    giaddr: u32(b, OFF_GIADDR),
    chaddr: macFromBytes(b, OFF_CHADDR),
    chaddrRaw: new Uint8Array(b.subarray(OFF_CHADDR, OFF_CHADDR + CHADDR_LEN)),
    messageType: messageType as DhcpMessageType,
    options,
  };

  const requested = optionOfLength(options, DHCP_OPTION.REQUESTED_IP, 'requested IP address', 4);
  if (!requested.ok) return requested;
  if (requested.value) msg.requestedIp = u32(requested.value, 0);

  const serverId = optionOfLength(options, DHCP_OPTION.SERVER_ID, 'server identifier', 4);
  if (!serverId.ok) return serverId;
  if (serverId.value) msg.serverId = u32(serverId.value, 0);

  const lease = optionOfLength(options, DHCP_OPTION.LEASE_TIME, 'lease time', 4);
  if (!lease.ok) return lease;
  if (lease.value) msg.leaseTime = u32(lease.value, 0);

  const maxSize = optionOfLength(options, DHCP_OPTION.MAX_MESSAGE_SIZE, 'maximum message size', 2);
  if (!maxSize.ok) return maxSize;
  if (maxSize.value) msg.maxMessageSize = u16(maxSize.value, 0);

  // Variable-length options: an empty one (illegal per RFC 2132) is treated as absent here,
  // but stays visible in `options`.
  const clientId = options.get(DHCP_OPTION.CLIENT_ID);
  if (clientId && clientId.length > 0) msg.clientId = clientId;
  const hostname = options.get(DHCP_OPTION.HOSTNAME);
  if (hostname && hostname.length > 0) {
    const name = utf8.decode(hostname).replace(/\0+$/, '');
    if (name.length > 0) msg.hostname = name;
  }
  const prl = options.get(DHCP_OPTION.PARAM_REQUEST_LIST);
  if (prl && prl.length > 0) msg.paramRequestList = Array.from(prl);

  return ok(msg);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Options written straight into bytes (a reply's options are a few dozen bytes; it grows if need be). */
class OptionWriter {
  private buf = new Uint8Array(128);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** Code, length, value; values longer than 255 bytes are split into consecutive options (RFC 3396). */
  bytes(code: number, value: Uint8Array): void {
    if (value.length === 0) {
      this.room(2);
      this.buf[this.len++] = code;
      this.buf[this.len++] = 0;
      return;
    }
    for (let o = 0; o < value.length; o += MAX_OPTION_LEN) {
      const piece = value.subarray(o, Math.min(value.length, o + MAX_OPTION_LEN));
      this.room(2 + piece.length);
      this.buf[this.len++] = code;
      this.buf[this.len++] = piece.length;
      this.buf.set(piece, this.len);
      this.len += piece.length;
    }
  }

  u8(code: number, v: number): void {
    this.room(3);
    this.buf[this.len++] = code;
    this.buf[this.len++] = 1;
    this.buf[this.len++] = v & 0xff;
  }

  u32(code: number, v: number): void {
    this.room(6);
    this.buf[this.len++] = code;
    this.buf[this.len++] = 4;
    put32(this.buf, this.len, v);
    this.len += 4;
  }

  ips(code: number, ips: readonly IPv4[]): void {
    const b = new Uint8Array(4 * ips.length);
    ips.forEach((ip, k) => put32(b, 4 * k, ip));
    this.bytes(code, b);
  }

  text(code: number, s: string): void {
    this.bytes(code, Buffer.from(s, 'utf8'));
  }

  /** The options so far and the end option (a view of the writer's bytes). */
  end(): Uint8Array {
    this.room(1);
    this.buf[this.len++] = DHCP_OPTION.END;
    return this.buf.subarray(0, this.len);
  }
}

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} ${v} is not an unsigned 32-bit integer`);
}

/**
 * A BOOTREPLY answering `request` (RFC 2131 table 3). Options, when given, are written in the
 * order 53, 54, 51, 58, 59, 1, 3, 6, 15, 56; a NAK carries only 53, 54 and 56, and an ACK to
 * DHCPINFORM never carries lease times (51/58/59) even if given. ciaddr is copied from the request
 * in an ACK to a DHCPINFORM or a RENEWING/REBINDING DHCPREQUEST, and is zero otherwise; yiaddr is
 * forced to 0 in a NAK. A NAK through a relay gets the broadcast flag (RFC 2131 §4.3.2).
 * Padded with zeros to at least 300 bytes. Throws RangeError on out-of-range numbers (caller bug).
 */
export function encodeDhcpReply(p: DhcpReplyParams): Buffer {
  const req = p.request;
  const isNak = p.messageType === DHCP_MESSAGE.NAK;
  const isAck = p.messageType === DHCP_MESSAGE.ACK;
  const answersInform = req.messageType === DHCP_MESSAGE.INFORM;
  if (!Number.isInteger(p.messageType) || p.messageType < 1 || p.messageType > 255)
    throw new RangeError(`DHCP message type ${p.messageType} out of range`);
  checkU32(p.yiaddr, 'yiaddr');
  checkU32(p.serverId, 'server identifier');
  for (const [v, what] of [
    [p.subnetMask, 'subnet mask'],
    [p.router, 'router'],
    [p.leaseTime, 'lease time'],
    [p.renewalTime, 'renewal time'],
    [p.rebindingTime, 'rebinding time'],
  ] as const) {
    if (v !== undefined) checkU32(v, what);
  }
  for (const dns of p.dnsServers ?? []) checkU32(dns, 'DNS server');

  const w = new OptionWriter();
  w.u8(DHCP_OPTION.MESSAGE_TYPE, p.messageType);
  w.u32(DHCP_OPTION.SERVER_ID, p.serverId);
  if (!isNak) {
    if (!answersInform) {
      if (p.leaseTime !== undefined) w.u32(DHCP_OPTION.LEASE_TIME, p.leaseTime);
      if (p.renewalTime !== undefined) w.u32(DHCP_OPTION.RENEWAL_TIME, p.renewalTime);
      if (p.rebindingTime !== undefined) w.u32(DHCP_OPTION.REBINDING_TIME, p.rebindingTime);
    }
    if (p.subnetMask !== undefined) w.u32(DHCP_OPTION.SUBNET_MASK, p.subnetMask);
    if (p.router !== undefined) w.ips(DHCP_OPTION.ROUTER, [p.router]);
    if (p.dnsServers !== undefined && p.dnsServers.length > 0) w.ips(DHCP_OPTION.DNS_SERVERS, p.dnsServers);
    if (p.domain !== undefined && p.domain.length > 0) w.text(DHCP_OPTION.DOMAIN_NAME, p.domain);
  }
  if (p.message !== undefined && p.message.length > 0) w.text(DHCP_OPTION.MESSAGE, p.message);
  const options = w.end();

  const out = Buffer.alloc(Math.max(BOOTP_MIN_REPLY_LEN, DHCP_MIN_LEN + options.length));
  out[OFF_OP] = BOOTP_OP.REPLY;
  out[OFF_HTYPE] = req.htype;
  out[OFF_HLEN] = req.hlen;
  out[OFF_HOPS] = 0;
  put32(out, OFF_XID, req.xid);
  put16(out, OFF_SECS, 0);
  let flags = req.flags & 0xffff;
  if (isNak && req.giaddr !== 0) flags |= DHCP_FLAG_BROADCAST;
  put16(out, OFF_FLAGS, flags);
  const clientHasAddress = answersInform || classifyRequest(req) === 'renewing-or-rebinding';
  put32(out, OFF_CIADDR, isAck && clientHasAddress ? req.ciaddr : 0);
  put32(out, OFF_YIADDR, isNak ? 0 : p.yiaddr);
  put32(out, OFF_SIADDR, 0);
  put32(out, OFF_GIADDR, req.giaddr);
  out.set(req.chaddrRaw.subarray(0, CHADDR_LEN), OFF_CHADDR);
  put32(out, OFF_COOKIE, DHCP_MAGIC_COOKIE);
  out.set(options, DHCP_MIN_LEN);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Server decisions

/**
 * Where a reply goes (RFC 2131 §4.1): giaddr set → the relay (server port 67); else a NAK is
 * always broadcast; else ciaddr set → unicast to ciaddr at chaddr; else broadcast bit → broadcast;
 * else unicast to yiaddr at chaddr (broadcast if yiaddr is 0, since there is nowhere to unicast).
 */
export function dhcpReplyDestination(request: DhcpMessage, reply: { messageType: number; yiaddr: IPv4 }): DhcpDestination {
  if (request.giaddr !== 0) return { kind: 'relay', ip: request.giaddr };
  if (reply.messageType === DHCP_MESSAGE.NAK) return { kind: 'broadcast' };
  if (request.ciaddr !== 0) return { kind: 'unicast', ip: request.ciaddr, mac: request.chaddr };
  if (request.broadcast) return { kind: 'broadcast' };
  if (reply.yiaddr === 0) return { kind: 'broadcast' };
  return { kind: 'unicast', ip: reply.yiaddr, mac: request.chaddr };
}

/**
 * The client state behind a DHCPREQUEST (RFC 2131 §4.3.2): server identifier present → SELECTING;
 * otherwise ciaddr set → RENEWING or REBINDING; otherwise requested IP present → INIT-REBOOT;
 * otherwise (or when the message is not a DHCPREQUEST) invalid.
 */
export function classifyRequest(msg: DhcpMessage): RequestState {
  if (msg.messageType !== DHCP_MESSAGE.REQUEST) return 'invalid';
  if (msg.serverId !== undefined) return 'selecting';
  if (msg.ciaddr !== 0) return 'renewing-or-rebinding';
  if (msg.requestedIp !== undefined) return 'init-reboot';
  return 'invalid';
}
