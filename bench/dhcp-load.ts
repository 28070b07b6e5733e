// SPDX-License-Identifier: GPL-2.0-only
// bench/dhcp's pure parts: the client side of DORA as the load generator speaks it (DISCOVER and
// REQUEST frames, broadcast, from a client's own MAC), the reading of a server's reply frame, the
// per-client state machine that turns replies into latencies, the send schedule of a fixed offered
// rate, and the summary of a step. No I/O: bench/dhcp-gen.ts sends and captures, bench/dhcp.ts runs
// the servers. Framing and the reply decoder are the project's own (src/proto/packet.ts, dhcp.ts);
// the project has no client-message encoder (the CN only answers), so the BOOTREQUEST is laid out
// here, with the offsets of RFC 2131 figure 1.
import { BROADCAST_MAC, formatIPv4, macToBytes, type IPv4, type Mac } from '../src/core/ip.js';
import { put16, put32 } from '../src/proto/bytes.js';
import {
  BOOTP_FIXED_LEN,
  BOOTP_MIN_REPLY_LEN,
  BOOTP_OP,
  DHCP_FLAG_BROADCAST,
  DHCP_MAGIC_COOKIE,
  DHCP_MESSAGE,
  DHCP_MIN_LEN,
  DHCP_OPTION,
  ETHERNET_HLEN,
  decodeDhcp,
  type DhcpMessage,
} from '../src/proto/dhcp.js';
import { buildUdpFrame, decodeEthernet, decodeIPv4, decodeUdp, DHCP_SERVER_PORT, ETHERTYPE, IP_PROTOCOL } from '../src/proto/packet.js';
import { percentile, stationMac } from './synthetic.js';

const CLIENT_PORT = 68;
/** Parameter request list a typical client sends: mask, router, DNS, domain, lease time. */
const PARAMS = [DHCP_OPTION.SUBNET_MASK, DHCP_OPTION.ROUTER, DHCP_OPTION.DNS_SERVERS, DHCP_OPTION.DOMAIN_NAME, DHCP_OPTION.LEASE_TIME];

/** Client n of a step: a locally administered unicast MAC 02:<tag>:<n as 4 bytes> (tag: server and step). */
export function clientMac(tag: number, n: number): Mac {
  return stationMac(n, tag);
}

export interface ClientMessage {
  type: typeof DHCP_MESSAGE.DISCOVER | typeof DHCP_MESSAGE.REQUEST;
  xid: number;
  chaddr: Mac;
  /** REQUEST in SELECTING state: the offer's yiaddr (option 50) and the server's id (option 54). */
  requestedIp?: IPv4;
  serverId?: IPv4;
}

/** The BOOTREQUEST of a client without an address: broadcast flag set, ciaddr 0, padded to 300 bytes. */
export function encodeClientMessage(m: ClientMessage): Buffer {
  const opts: number[] = [DHCP_OPTION.MESSAGE_TYPE, 1, m.type];
  const ip = (code: number, v: IPv4) => opts.push(code, 4, (v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  if (m.requestedIp !== undefined) ip(DHCP_OPTION.REQUESTED_IP, m.requestedIp);
  if (m.serverId !== undefined) ip(DHCP_OPTION.SERVER_ID, m.serverId);
  opts.push(DHCP_OPTION.PARAM_REQUEST_LIST, PARAMS.length, ...PARAMS, DHCP_OPTION.END);
  const out = Buffer.alloc(Math.max(BOOTP_MIN_REPLY_LEN, DHCP_MIN_LEN + opts.length));
  out[0] = BOOTP_OP.REQUEST;
  out[1] = 1; // Ethernet
  out[2] = ETHERNET_HLEN;
  put32(out, 4, m.xid);
  put16(out, 10, DHCP_FLAG_BROADCAST);
  out.set(macToBytes(m.chaddr), 28);
  put32(out, BOOTP_FIXED_LEN, DHCP_MAGIC_COOKIE);
  out.set(opts, DHCP_MIN_LEN);
  return out;
}

/** The whole frame: Ethernet from the client's MAC to broadcast, 0.0.0.0:68 -> 255.255.255.255:67. */
export function clientFrame(m: ClientMessage): Buffer {
  return buildUdpFrame({
    srcMac: m.chaddr,
    dstMac: BROADCAST_MAC,
    srcIp: 0,
    dstIp: 0xffffffff,
    srcPort: CLIENT_PORT,
    dstPort: DHCP_SERVER_PORT,
    payload: encodeClientMessage(m),
  });
}

/**
 * A server's reply in a captured frame (UDP 67 -> 68), or undefined for anything else. The UDP
 * checksum is not checked (it is cleared in `frame` before decoding): a server that sends through
 * an ordinary UDP socket (dnsmasq) leaves it to the veth's checksum offload, so the capture sees
 * it unfilled.
 */
export function decodeReply(frame: Uint8Array): DhcpMessage | undefined {
  const e = decodeEthernet(frame);
  if (!e.ok || e.value.etherType !== ETHERTYPE.IPV4) return undefined;
  const i = decodeIPv4(e.value.payload);
  if (!i.ok || i.value.protocol !== IP_PROTOCOL.UDP || i.value.payload.length < 8) return undefined;
  put16(i.value.payload, 6, 0);
  const u = decodeUdp(i.value);
  if (!u.ok || u.value.srcPort !== DHCP_SERVER_PORT || u.value.dstPort !== CLIENT_PORT) return undefined;
  const d = decodeDhcp(u.value.payload);
  if (!d.ok || d.value.op !== BOOTP_OP.REPLY) return undefined;
  return d.value;
}

/** Where a client of the step is. */
type ClientState = 'discovering' | 'requesting' | 'bound' | 'nak';

interface Client {
  state: ClientState;
  /** performance.now() when its DISCOVER went out, and when the ACK came (NaN before). */
  sentAt: number;
  ackAt: number;
  ip: IPv4;
}

/** What the generator must do next for a reply. */
export type ReplyAction = { kind: 'request'; frame: Buffer } | { kind: 'none' };

/**
 * The clients of one step, indexed by xid - xidBase (one xid per client, kept for its REQUEST as
 * RFC 2131 asks). A DISCOVER is sent once (or once more, see unanswered()), a REQUEST once per
 * client: the first OFFER is taken, later OFFERs and duplicate ACKs are counted and ignored.
 * Latency runs from the client's first DISCOVER.
 */
export class DoraTable {
  private readonly clients: Client[] = [];
  /** Replies that matched no client of ours, or came in a state that does not expect them. */
  stray = 0;
  duplicates = 0;

  constructor(
    private readonly tag: number,
    private readonly xidBase: number,
  ) {}

  get size(): number {
    return this.clients.length;
  }

  /** Client n's DISCOVER frame (built ahead of the step, so that sending costs only the send). */
  discoverFrame(n: number): Buffer {
    return clientFrame({ type: DHCP_MESSAGE.DISCOVER, xid: (this.xidBase + n) >>> 0, chaddr: clientMac(this.tag, n) });
  }

  /**
   * The clients whose DISCOVER went out at least `afterMs` before `now` and who still have no OFFER,
   * from client `from` on (clients are sent in order); returns them and the first client not yet
   * that old, for the next call. The generator sends each of them its DISCOVER once more.
   */
  unanswered(from: number, now: number, afterMs: number): { due: number[]; next: number } {
    const due: number[] = [];
    let n = from;
    for (; n < this.clients.length; n++) {
      const c = this.clients[n]!;
      if (c.sentAt + afterMs > now) break;
      if (c.state === 'discovering') due.push(n);
    }
    return { due, next: n };
  }

  /** Mark the next client's DISCOVER sent at `now`; returns its number. */
  sent(now: number): number {
    this.clients.push({ state: 'discovering', sentAt: now, ackAt: NaN, ip: 0 });
    return this.clients.length - 1;
  }

  /** Take one reply received at `now`. */
  reply(msg: DhcpMessage, now: number): ReplyAction {
    const n = (msg.xid - this.xidBase) >>> 0;
    const c = this.clients[n];
    if (!c || msg.chaddr !== clientMac(this.tag, n)) {
      this.stray++;
      return { kind: 'none' };
    }
    if (msg.messageType === DHCP_MESSAGE.OFFER) {
      if (c.state !== 'discovering' || msg.serverId === undefined) {
        this.duplicates++;
        return { kind: 'none' };
      }
      c.state = 'requesting';
      const frame = clientFrame({
        type: DHCP_MESSAGE.REQUEST,
        xid: msg.xid,
        chaddr: msg.chaddr,
        requestedIp: msg.yiaddr,
        serverId: msg.serverId,
      });
      return { kind: 'request', frame };
    }
    if (msg.messageType === DHCP_MESSAGE.ACK && c.state === 'requesting') {
      c.state = 'bound';
      c.ackAt = now;
      c.ip = msg.yiaddr;
      return { kind: 'none' };
    }
    if (msg.messageType === DHCP_MESSAGE.NAK && c.state === 'requesting') {
      c.state = 'nak';
      return { kind: 'none' };
    }
    this.duplicates++;
    return { kind: 'none' };
  }

  /** The step's figures: a client counts as completed when its ACK came within timeoutMs of its DISCOVER. */
  summary(seconds: number, timeoutMs: number): StepResult {
    const lat: number[] = [];
    let late = 0;
    let naks = 0;
    let offered = 0;
    const ips = new Set<IPv4>();
    for (const c of this.clients) {
      if (c.state !== 'discovering') offered++;
      if (c.state === 'nak') naks++;
      if (c.state !== 'bound') continue;
      const l = c.ackAt - c.sentAt;
      if (l > timeoutMs) late++;
      else {
        lat.push(l);
        ips.add(c.ip);
      }
    }
    const n = this.clients.length;
    return {
      clients: n,
      completed: lat.length,
      completedPerSecond: lat.length / seconds,
      dropPercent: n === 0 ? 0 : (100 * (n - lat.length)) / n,
      offers: offered,
      naks,
      late,
      stray: this.stray,
      duplicates: this.duplicates,
      distinctIps: ips.size,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: percentile(lat, 100), // NaN when empty; Math.max(...lat) would overflow the stack at 200k clients
    };
  }

  /** The address client n was given ('' when it has none), for messages. */
  addressOf(n: number): string {
    const c = this.clients[n];
    return c && c.state === 'bound' ? formatIPv4(c.ip) : '';
  }
}

export interface StepResult {
  clients: number;
  /** ACKs within the timeout. */
  completed: number;
  completedPerSecond: number;
  /** Clients without an ACK within the timeout, in % of the clients sent. */
  dropPercent: number;
  /** Clients that got an OFFER. */
  offers: number;
  naks: number;
  /** ACKs that came after the timeout (counted as dropped). */
  late: number;
  stray: number;
  duplicates: number;
  /** Distinct addresses among the completed clients (a check: each client its own). */
  distinctIps: number;
  p50: number;
  p99: number;
  max: number;
}

/** Clients of one step at most: the generator builds each DISCOVER ahead (about 350 bytes) and keeps a record per client. */
export const MAX_STEP_CLIENTS = 1_000_000;

/** How many DISCOVERs are due `elapsedMs` into a step at `rate` per second (capped at `total`). */
export function dueCount(elapsedMs: number, rate: number, total: number): number {
  if (elapsedMs < 0) return 0;
  return Math.min(total, Math.floor((elapsedMs * rate) / 1000) + 1);
}

/** The send time client n was scheduled for, in ms after the step's start. */
export function scheduledAt(n: number, rate: number): number {
  return (n * 1000) / rate;
}

/** `--rates 100,300`: positive integers; anything else is an error message. */
export function parseRates(text: string): number[] | string {
  const parts = text.split(',').map((s) => s.trim());
  const out: number[] = [];
  for (const p of parts) {
    const v = Number(p);
    if (!/^\d+$/.test(p) || !Number.isInteger(v) || v < 1 || v > 100_000)
      return `--rates wants integers 1..100000 separated by commas, got ${JSON.stringify(p)}`;
    out.push(v);
  }
  return out.length ? out : '--rates is empty';
}

/** The highest rate whose drops stayed under `maxDropPercent` with every lower rate also under it. */
export function highestSustained(steps: readonly { rate: number; dropPercent: number }[], maxDropPercent = 0.1): number | undefined {
  let best: number | undefined;
  for (const s of [...steps].sort((a, b) => a.rate - b.rate)) {
    if (s.dropPercent >= maxDropPercent) break;
    best = s.rate;
  }
  return best;
}
