// SPDX-License-Identifier: GPL-2.0-only
// The CN's integrated DHCP server. Every decision about addresses is the MLR's: DISCOVER asks it
// for (or allocates) the MAC's cell, REQUEST confirms the cell and moves the binding here (running
// the handover before the ACK is sent: the MLR's commit, or the commit its reply carries, applied
// through `applyReply`), RELEASE/DECLINE give it back, INFORM is answered locally.
// Which frames reach this server is decided by the daemon and the handover (cn/handover.ts: the
// new-station budget, association, the rules for RELEASE/DECLINE). Errors and the MLR's refusals
// (budgets, exhausted pools) are counted and logged at a bounded rate: a DISCOVER flood must not
// become a flood of log lines.
// Each MS gets its own /30: yiaddr N+1, router and server identifier N+2, mask 255.255.255.252.
// Replies are built as whole Ethernet frames and injected on the mobile interface.
//
// Under load (a power cut brings hundreds of phones back at once) the server degrades to a plateau,
// not a collapse: at most DHCP_IN_FLIGHT.discover DISCOVERs and DHCP_IN_FLIGHT.request REQUESTs wait
// on the MLR at a time. Past that a new DISCOVER is shed (the client retransmits in 2-4 s) while
// REQUESTs keep their own share, so clients that hold an offer finish first; a DISCOVER is shed too
// while the REQUESTs and DISCOVERs waiting fill the REQUESTs' share (roomForOffers: the REQUESTs
// those offers bring would find no room). A retransmission of an
// exchange already waiting on the MLR starts no new work: it is merged into the waiting one, and the
// answer goes to the newest frame (its xid). A DISCOVER whose answer takes longer than
// DISCOVER_TIMEOUT_MS is given up: the client has retransmitted by then.
import { monotonicMs } from '../core/clock.js';
import { BROADCAST_MAC, CELL_MASK, cellOf, formatIPv4, type IPv4, type Mac } from '../core/ip.js';
import { LOG, type LogFn } from '../platform/log.js';
import { RateLimitedLog } from '../proto/auth.js';
import type { LinkIO } from '../platform/linkio.js';
import { classifyRequest, dhcpReplyDestination, DHCP_MESSAGE, encodeDhcpReply, type DhcpMessage } from '../proto/dhcp.js';
import { buildUdpFrame } from '../proto/packet.js';
import { RpcError } from '../proto/rpc.js';
import type { MlrApi } from './mlr-api.js';
import type { BindingView } from '../core/binding.js';
import type { ReplyBody } from '../core/messages.js';

export interface DhcpServerOptions {
  leaseTime: number;
  dnsServers: IPv4[];
  domain?: string;
  log: LogFn;
  /** The clock of the rate-limited logs; default monotonicMs. */
  now?: () => number;
  /**
   * Told when a REQUEST in SELECTING state (a client taking the offer just made) starts (true) and
   * stops (false) waiting on the MLR; the handover then announces the client's gateway only once.
   */
  selecting?: (mac: Mac, waiting: boolean) => void;
  /**
   * Told when any REQUEST starts (true) and stops (false) waiting on the MLR, its reply's commit
   * applied or not (cn/handover.ts replyWaiting: a commit that overtakes the reply wins over it).
   */
  replyWaiting?: (mac: Mac, waiting: boolean) => void;
  /**
   * Apply the commit an ACK's reply carries (`tx`: the MLR sent no commit, core/messages.ts
   * FEATURES.inlineCommit); the DHCPACK goes out once it resolves. Without it such a reply is not
   * expected (the CN did not announce the feature).
   */
  applyReply?: (tx: number, binding: BindingView) => Promise<void>;
}

/** The MLR's answers that mean "not now" (a budget, the pools, its own load), not a fault. */
const REFUSALS = new Set(['limit', 'offer-limit', 'exhausted', 'busy']);

/**
 * DHCP exchanges that may wait on the MLR at once, by message type (see the header). Together below
 * the MLR's own bound per session (MAX_INBOUND in proto/rpc.ts, 160), leaving room for the CN's other
 * requests: past that bound the MLR answers `busy`, and a refused REQUEST wastes the offer made for it.
 * REQUESTs get the larger share: they finish clients, DISCOVERs start new ones. (16 and 40 until a
 * new client's REQUEST took one MLR round trip fewer, the commit in the reply; bench/dhcp, paired
 * runs: more clients completed at 1000 and 3000/s offered with these.)
 */
export const DHCP_IN_FLIGHT = { discover: 32, request: 96 } as const;
/** How long an OFFER is worth waiting for: clients retransmit a DISCOVER after 2-4 s. */
export const DISCOVER_TIMEOUT_MS = 2000;
/** A REQUEST may run a handover (three CNs, the MLR's disk); its client retransmits too. */
const REQUEST_TIMEOUT_MS = 10_000;

/** One exchange waiting on the MLR: the newest frame of it is the one answered. */
interface Waiting {
  latest: DhcpMessage;
}

export class DhcpServer {
  /** Counters for status output and tests. */
  readonly stats = {
    discover: 0,
    offer: 0,
    request: 0,
    ack: 0,
    nak: 0,
    release: 0,
    decline: 0,
    inform: 0,
    ignored: 0,
    errors: 0,
    /** DISCOVERs the MLR refused for a budget, an exhausted pool or its load. */
    refused: 0,
    /** Frames dropped because DHCP_IN_FLIGHT exchanges of their type were already waiting. */
    shed: 0,
    /** Retransmissions merged into an exchange already waiting on the MLR. */
    merged: 0,
  };
  /** Exchanges waiting on the MLR, by "<type>:<mac>" (REQUESTs also by the address asked for). */
  private readonly waiting = new Map<string, Waiting>();
  private readonly inFlight = { discover: 0, request: 0 };
  private readonly errorLog: RateLimitedLog;
  private readonly refusalLog: RateLimitedLog;
  /** NAKs answer whatever address a REQUEST names: one line each would be a line per frame. */
  private readonly nakLog: RateLimitedLog;

  constructor(
    private readonly link: LinkIO,
    private readonly mlr: MlrApi,
    private readonly opts: DhcpServerOptions,
  ) {
    const now = opts.now ?? monotonicMs;
    this.errorLog = new RateLimitedLog((m) => opts.log(LOG.error, m), now, 3, 10_000, 'DHCP errors');
    this.refusalLog = new RateLimitedLog((m) => opts.log(LOG.info, m), now, 3, 10_000, 'DHCP requests refused by the MLR');
    this.nakLog = new RateLimitedLog((m) => opts.log(LOG.handover, m), now, 3, 10_000, 'DHCPNAKs sent');
  }

  /** Write pending summaries of the rate-limited logs. */
  flushLogs(): void {
    for (const l of [this.errorLog, this.refusalLog, this.nakLog]) l.flush();
  }

  async handle(msg: DhcpMessage): Promise<void> {
    if (msg.op !== 1) return;
    try {
      switch (msg.messageType) {
        case DHCP_MESSAGE.DISCOVER:
          return await this.admit('discover', `d:${msg.chaddr}`, msg, (w) => this.discover(w));
        case DHCP_MESSAGE.REQUEST:
          return await this.admit('request', `r:${msg.chaddr}:${msg.requestedIp ?? msg.ciaddr}`, msg, (w) => this.request(w));
        case DHCP_MESSAGE.RELEASE:
          this.stats.release++;
          await this.mlr.request('release', { mac: msg.chaddr, ip: msg.ciaddr });
          return;
        case DHCP_MESSAGE.DECLINE:
          this.stats.decline++;
          if (msg.requestedIp !== undefined) await this.mlr.request('release', { mac: msg.chaddr, ip: msg.requestedIp, decline: 'yes' });
          return;
        case DHCP_MESSAGE.INFORM:
          return this.inform(msg);
        default:
          this.stats.ignored++;
      }
    } catch (e) {
      const line = `DHCP ${msg.chaddr}: ${e instanceof RpcError ? `${e.code}: ${e.message}` : String(e)}`;
      if (e instanceof RpcError && REFUSALS.has(e.code)) {
        this.stats.refused++;
        this.refusalLog.log(line);
      } else {
        this.stats.errors++;
        this.errorLog.log(line);
      }
    }
  }

  /**
   * Whether a new DISCOVER may be taken: the REQUESTs waiting leave room in their share for those the
   * DISCOVERs waiting could bring. Past that the MLR (or the data plane) does not keep pace with
   * the clients already offered; an OFFER made now would mostly end in a shed or late REQUEST, its
   * cell and the MLR's time wasted. So new clients wait (they retransmit) and those offered finish.
   */
  private roomForOffers(): boolean {
    return this.inFlight.request + this.inFlight.discover < DHCP_IN_FLIGHT.request;
  }

  /** Exchanges of each type waiting on the MLR now (status, tests). */
  get waitingCount(): { discover: number; request: number } {
    return { ...this.inFlight };
  }

  /**
   * Run `work` for this exchange unless the same exchange is already waiting (then the newest frame
   * replaces the one to answer) or DHCP_IN_FLIGHT exchanges of its type are (then it is shed).
   */
  private async admit(kind: 'discover' | 'request', key: string, msg: DhcpMessage, work: (w: Waiting) => Promise<void>): Promise<void> {
    const same = this.waiting.get(key);
    if (same) {
      same.latest = msg;
      this.stats.merged++;
      return;
    }
    if (this.inFlight[kind] >= DHCP_IN_FLIGHT[kind] || (kind === 'discover' && !this.roomForOffers())) {
      this.stats.shed++;
      return;
    }
    const w: Waiting = { latest: msg };
    this.waiting.set(key, w);
    this.inFlight[kind]++;
    try {
      await work(w);
    } finally {
      this.inFlight[kind]--;
      this.waiting.delete(key);
    }
  }

  private async discover(w: Waiting): Promise<void> {
    const msg = w.latest;
    this.stats.discover++;
    const reply = await this.mlr.request(
      'discover',
      { mac: msg.chaddr, ...(msg.requestedIp !== undefined ? { requested: msg.requestedIp } : {}) },
      DISCOVER_TIMEOUT_MS,
    );
    const cell = cellOf(reply.binding.cell);
    this.opts.log(LOG.handover, `DHCPOFFER ${formatIPv4(cell.host)} to ${msg.chaddr} (parent ${reply.binding.parent.name})`);
    this.send(w.latest, DHCP_MESSAGE.OFFER, cell.host, cell.gateway);
    this.stats.offer++;
  }

  private async request(w: Waiting): Promise<void> {
    const msg = w.latest;
    this.stats.request++;
    const kind = classifyRequest(msg);
    let ip: IPv4 | undefined;
    let state: 'selecting' | 'init-reboot' | 'renewing';
    if (kind === 'selecting') {
      ip = msg.requestedIp;
      state = 'selecting';
      // The client chose another server's offer: nothing to answer.
      if (ip === undefined || msg.serverId !== cellOf(ip).gateway) {
        this.stats.ignored++;
        return;
      }
    } else if (kind === 'init-reboot') {
      ip = msg.requestedIp;
      state = 'init-reboot';
    } else if (kind === 'renewing-or-rebinding') {
      ip = msg.ciaddr;
      state = 'renewing';
    } else {
      this.stats.ignored++;
      return;
    }
    if (ip === undefined) return;
    const mac = msg.chaddr;
    const selecting = state === 'selecting' ? this.opts.selecting : undefined;
    const waiting = this.opts.replyWaiting;
    selecting?.(mac, true);
    waiting?.(mac, true);
    let r: ReplyBody<'request'>;
    try {
      r = await this.mlr.request('request', { mac, ip, leaseTime: this.opts.leaseTime, state }, REQUEST_TIMEOUT_MS);
      // The reply is this move's commit for us: the kernel first, then the ACK (as after a commit).
      if (r.outcome === 'ack' && r.tx !== undefined && r.binding?.mac === mac && this.opts.applyReply) {
        await this.opts.applyReply(r.tx, r.binding);
      }
    } finally {
      selecting?.(mac, false);
      waiting?.(mac, false);
    }
    const cell = cellOf(ip);
    if (r.outcome === 'ack') {
      this.opts.log(LOG.handover, `DHCPACK ${formatIPv4(ip)} to ${msg.chaddr} (${state})`);
      this.send(w.latest, DHCP_MESSAGE.ACK, cell.host, cell.gateway);
      this.stats.ack++;
    } else if (r.outcome === 'nak') {
      this.nakLog.log(`DHCPNAK ${formatIPv4(ip)} to ${msg.chaddr} (${state}): ${r.reason ?? ''}`);
      this.send(w.latest, DHCP_MESSAGE.NAK, 0, cell.gateway);
      this.stats.nak++;
    } else {
      this.stats.ignored++;
    }
  }

  private inform(msg: DhcpMessage): void {
    this.stats.inform++;
    if (msg.ciaddr === 0) return;
    this.send(msg, DHCP_MESSAGE.ACK, 0, cellOf(msg.ciaddr).gateway, true);
  }

  private send(request: DhcpMessage, messageType: number, yiaddr: IPv4, serverId: IPv4, inform = false): void {
    const withLease = messageType !== DHCP_MESSAGE.NAK && !inform;
    const payload = encodeDhcpReply({
      request,
      messageType,
      yiaddr,
      serverId,
      ...(messageType === DHCP_MESSAGE.NAK
        ? { message: 'address not valid here' }
        : {
            subnetMask: CELL_MASK,
            router: serverId,
            dnsServers: this.opts.dnsServers,
            ...(this.opts.domain ? { domain: this.opts.domain } : {}),
          }),
      ...(withLease
        ? {
            leaseTime: this.opts.leaseTime,
            renewalTime: Math.floor(this.opts.leaseTime / 2),
            rebindingTime: Math.floor((this.opts.leaseTime * 7) / 8),
          }
        : {}),
    });
    const dest = dhcpReplyDestination(request, { messageType, yiaddr });
    let dstMac: Mac;
    let dstIp: IPv4;
    if (dest.kind === 'broadcast') {
      dstMac = BROADCAST_MAC;
      dstIp = 0xffffffff;
    } else if (dest.kind === 'unicast') {
      dstMac = dest.mac;
      dstIp = dest.ip;
    } else {
      // giaddr is whatever the frame says: a line per frame would let anyone in the cell flood the log.
      this.errorLog.log(
        `DHCP ${request.chaddr}: request came through relay ${formatIPv4(dest.ip)}; relayed DHCP is not supported on the mobile interface`,
      );
      return;
    }
    const frame = buildUdpFrame({ srcMac: this.link.mac, dstMac, srcIp: serverId, dstIp, srcPort: 67, dstPort: 68, payload });
    const e = this.link.send(frame);
    if (e) this.opts.log(LOG.error, `DHCP ${request.chaddr}: send failed: ${e}`);
  }
}
