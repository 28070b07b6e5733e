// SPDX-License-Identifier: GPL-2.0-only
// The CN's side of a handover, for every station it hears of, with each station's state in one
// record (Station):
//
//   detection (ARP/IP to another gateway, a hostapd association, DHCP)
//     -> request: `seen` to the MLR (one at a time per station, then a cool-down)
//     -> prepare: check we can take part, reserve (the station's pending transaction)
//     -> commit: take the binding as the MLR's truth    | abort: give the reservation back
//     -> data plane: the kernel made to match every binding that involves us (core/dataplane.ts)
//     -> announcement: gratuitous ARP for the gateway N+2, the moment it is in place (repeated,
//        but for a station taking its address from our DHCP server right now)
//
// A commit that arrives without a prepare (the MLR reconciling us, or after our restart) is applied
// all the same: a commit always says what the binding is now. A reservation the MLR never confirms
// nor aborts (it died mid-transaction) lapses after `reservationMs`.
//
// Inline commits (core/messages.ts FEATURES.inlineCommit, announced in our bind): a `request` or `seen`
// reply that carries a `tx` is that move's commit for us (applyReply: applied as a commit, before the
// DHCP server sends its ACK; a renewal's that changes only the expiry is just noted). A later
// transaction's commit or remove can be applied before such a reply: the MLR frees the station's lock
// before a `request`'s reply is written (a `seen`'s goes out under the lock, mlr/handover.ts), and a
// commit is applied as it arrives while a reply reaches applyReply through the link a few turns later.
// So each record keeps the newest tx applied in this MLR session (`tx`), and a reply, commit or
// remove older than it is not applied. The record is kept while a reply that may carry a
// commit is awaited (`awaiting`: a DHCP REQUEST's, bounded by the DHCP server's in-flight bounds, or
// the station's one `seen` report), and every `tx` is reset when a bind is sent (a new session
// numbers afresh). A reply the data plane fails to apply is applied again after REAPPLY_DELAYS_MS,
// then the CN re-binds (`resync`), as the MLR reconciles a failed commit; stop() cancels the retries.
// A `seen` whose reply never comes (time-out) may have carried a commit the MLR counts as delivered:
// the CN re-binds then too. (A DHCP REQUEST's lost reply needs nothing: the client asks again, and
// the MLR's reply re-states the binding, which applyReply applies when the CN lacks it.)
//
// The cell's guards (what a frame from the air may make the CN do, issue 8):
// - A new station — a MAC with no binding involving this CN and not admitted in the last
//   ADMITTED_MS — is admitted (DHCP answered, ARP/IP reported to the MLR) only while a token bucket
//   holds a token: `newStationRate` per second, a burst of twice that. Beyond it the frame is dropped
//   and counted (guard.new_station_dropped). hostapd's own association events are not limited.
// - With hostapd present and association required, a MAC's DHCP/ARP/IP traffic moves or allocates
//   nothing unless it is associated here (core/association.ts); a DISCOVER from an unassociated MAC
//   is never answered, so no cell is offered to it.
// - DHCPRELEASE/DHCPDECLINE act only when the frame's Ethernet source is the chaddr, the station is
//   served in this cell, and (hostapd present, association required) associated here; else they are
//   ignored and counted (guard.release_ignored / decline_ignored).
// - Presence check (the MLR's `probe`, before it moves a station detected by traffic alone away from
//   this CN): a unicast ARP request for the station's N+1 from its gateway N+2 (source MAC: our
//   mobile interface) goes to the station's MAC, and again after PROBE_RESEND_MS; an ARP reply whose
//   Ethernet source and sender MAC are the station's and whose sender IP is its N+1, heard within
//   PROBE_TIMEOUT_MS, means it is still here (present: yes). Anything else — no reply, a reply from
//   another MAC or for another address — is no (the MLR then moves it). Only a station served here
//   is probed; for any other the probe is refused (not-served), which the MLR takes as no answer.
// Every refusal is logged through a RateLimitedLog per kind: a few lines per GUARD_LOG_INTERVAL_MS,
// then one "N more <event> in the last T s" line.
//
// Paging (finding a station that went silent, issue 8):
// - A station served here is lost when hostapd reports its departure (`left`: disassoc, deauth) or
//   when the kernel's neighbour entry for its N+1 on the mobile interface fails (`neighbourFailed`:
//   its unicast ARP probes went unanswered while traffic flowed to it; the daemon tunes the probing,
//   see NEIGHBOUR_TUNING in cn/daemon.ts). The CN then sends `lost` to the MLR (at most once per
//   LOST_REPORT_INTERVAL_MS per station), which pages the other CNs.
// - A `page` from the MLR: unicast ARP requests for the station's N+1 from its gateway N+2 (source
//   MAC: our mobile interface), at PAGE_REPEATS_MS. A station in this cell answers; its answer is an
//   ARP frame like any other and is detected as usual (observe -> seen). Because the request came
//   from N+2 with our MAC, the station's ARP cache already points its gateway at us. For PAGED_MS the
//   answer of a paged station takes no token of the new-station budget (the MLR asked for it); and
//   when hostapd is present but does not list the station (its association event was lost), the CN
//   re-reads hostapd's station lists once (`refreshAssociations`) before deciding: association still
//   decides, from hostapd's own answer.
import { monotonicMs } from '../core/clock.js';
import type { AssociationTable } from '../core/association.js';
import { involves, servedBy, type BindingView } from '../core/binding.js';
import { cellOf, formatIPv4, type IPv4, type Mac } from '../core/ip.js';
import { DEFAULT_NEW_STATION_RATE } from '../core/config.js';
import type { DetectedVia, RequestBody } from '../core/messages.js';
import type { TunnelType } from '../core/tunnel.js';
import type { LinkIO } from '../platform/linkio.js';
import { LOG, type LogFn } from '../platform/log.js';
import { ARP_OP, buildArp, buildArpReply, buildGratuitousArp, type ArpPacket } from '../proto/packet.js';
import { RateLimitedLog } from '../proto/auth.js';
import { RpcError, type RpcPeer } from '../proto/rpc.js';
import type { MlrApi } from './mlr-api.js';

/**
 * What this CN itself is doing for a station. A transaction the MLR prepared is not a phase of its
 * own: it is `reserved`, and lasts until commit, abort or lapse whatever the phase is meanwhile.
 */
export type StationPhase =
  /** nothing in flight */
  | 'idle'
  /** we told the MLR we see it here and wait for the answer */
  | 'requested'
  /** a commit is being applied to the kernel */
  | 'applying';

export interface Station {
  mac: Mac;
  phase: StationPhase;
  /** The binding as the MLR last committed it, while it involves this CN. */
  binding: BindingView | undefined;
  /** A move into this cell began: when, and what noticed it (reported in the arrival log line). */
  detected: { at: number; via: DetectedVia } | undefined;
  /** What `prepare` reserved, until commit, abort or `until`. */
  reserved: { tx: number; binding: BindingView; until: number } | undefined;
  /** No new report to the MLR before this time. */
  quietUntil: number;
  /** Admitted as a new station (took a token) until this time: its next frames take none. */
  admittedUntil: number;
  /** When we last told the MLR this station is lost here (`lost`), for LOST_REPORT_INTERVAL_MS. */
  lostReportedAt: number;
  /**
   * The newest MLR transaction applied for this station in this MLR session (commit, remove, or a
   * reply carrying a commit; 0: none): anything older that arrives later is not applied. Kept with
   * the record, reset when a bind is sent.
   */
  tx: number;
  /** Our requests to the MLR waiting for a reply that may carry this station's commit (keeps the record, and `tx`). */
  awaiting: number;
}

/** What the handover needs of the data plane (DataplaneDriver). */
export interface DataplanePort {
  /** Make the kernel match these bindings; resolves with the gateways newly added. */
  apply(bindings: Iterable<BindingView>): Promise<IPv4[]>;
  /** One station's binding changed (undefined: none involves us): like apply, at a cost independent of the others. */
  update?(mac: Mac, binding: BindingView | undefined): Promise<IPv4[]>;
  /** A move is being prepared: build ahead what its commit will need (the tunnel). */
  prepare?(binding: BindingView): void;
}

export interface CnHandoverOptions {
  self: string;
  mlr: MlrApi;
  dataplane: DataplanePort;
  link: LinkIO;
  associations: AssociationTable;
  requireAssociation: boolean;
  /** Tunnel types this CN can build. */
  tunnels: () => readonly TunnelType[];
  /** Sent with `seen`: how long an adopted static host holds its cell (the CN's lease_time). */
  leaseTime: number;
  log: LogFn;
  /** The clock of durations (budgets, cool-downs, reservations); default monotonicMs. */
  now?: () => number;
  cooldownMs?: number;
  reservationMs?: number;
  /** Records kept for stations that hold no binding here (cool-downs, refusals); the oldest go first. */
  maxIdleStations?: number;
  /** New stations admitted per second (burst twice that); default DEFAULT_NEW_STATION_RATE. */
  newStationRate?: number;
  /** Re-read hostapd's station lists (a paged station answered that hostapd has not announced). */
  refreshAssociations?: () => Promise<void>;
  /** Re-bind to the MLR, which re-applies every binding (after an inline commit could not be applied). */
  resync?: (why: string) => void;
  /** Delays of the retries of an inline commit the data plane failed to apply; then `resync` (default REAPPLY_DELAYS_MS). */
  reapplyDelaysMs?: readonly number[];
}

/**
 * An inline commit (a reply carrying the binding) that the data plane failed to apply is applied again
 * after these delays, as the MLR would re-send a failed commit; then the CN re-binds.
 */
const REAPPLY_DELAYS_MS = [200, 1000, 5000];

/** How long an admitted new station takes no further token (DISCOVER, then REQUEST and retries). */
const ADMITTED_MS = 60_000;
/** Guard log lines: at most GUARD_LOG_BURST per kind and interval, then one summary. */
const GUARD_LOG_BURST = 3;
export const GUARD_LOG_INTERVAL_MS = 10_000;

/** What the cell's guards refused, for `ubus call tmip status` (guard). */
export interface GuardStats {
  /** DHCP/ARP/IP from a new station beyond new_station_rate. */
  new_station_dropped: number;
  /** DHCP/ARP/IP from a MAC not associated here (hostapd present, association required). */
  unassociated: number;
  release_ignored: number;
  decline_ignored: number;
}

/**
 * An announcement is repeated after these delays, in case the station missed it (still associating,
 * a frame lost on the air) — but not for a station whose own DHCP REQUEST in SELECTING state is
 * waiting on the MLR here (dhcpSelecting): it is listening now, its ACK follows, and a station that
 * only now takes an address usually has no entry for its gateway to correct. One announcement
 * then, two frames instead of eight and no timers (a power cut's hundreds of new clients at once).
 */
const ANNOUNCE_REPEATS_MS = [50, 300, 1000];

/** A lost station is reported to the MLR at most once per this interval (the kernel repeats FAILED). */
export const LOST_REPORT_INTERVAL_MS = 2000;
/** A page's unicast ARP requests: at once, then again in case one was lost on the air. */
const PAGE_REPEATS_MS = [0, 20, 100];
/** How long a paged station's answer is expected (and exempt from the new-station budget). */
export const PAGED_MS = 1500;
/** Paged stations remembered at once (the MLR pages few stations at a time; hostile pages are bounded too). */
const MAX_PAGED = 1024;

interface PagedStation {
  ip: IPv4;
  until: number;
  /** hostapd's lists were re-read for this page already. */
  refreshed: boolean;
}
/**
 * How long a presence probe waits for the station's ARP reply. A present station answers a unicast
 * ARP request within a few milliseconds (in the lab the whole probe took 2–3 ms, as the MLR sees it).
 * The time-out is decided only after the event loop has read what already came in, so a reply that
 * arrived in time (behind up to about 500 other frames) is not lost to a CN busy for longer than
 * this. A legitimate roam always waits the whole time (the station has left), and the check may add
 * at most 20 ms to it at the median: this wait plus the MLR's round trip came to 13 ms at the median
 * in the lab (BENCHMARKS.md). A station
 * asleep in Wi-Fi power save may answer later than this: it is then taken as absent and the move
 * proceeds (fail open, as before the check).
 */
export const PROBE_TIMEOUT_MS = 10;
/** Turns of the event loop the probe's time-out waits for frames already queued (up to 64 read a turn). */
const PROBE_DECIDE_TURNS = 8;
/** The probe's second ARP request, in case the first was lost. */
const PROBE_RESEND_MS = 4;

interface ProbeWaiter {
  ip: IPv4;
  done: (present: boolean) => void;
}

export class CnHandover {
  private readonly stations = new Map<Mac, Station>();
  private readonly byTx = new Map<number, Mac>();
  /** How many records hold a binding (kept by setBinding, so that trim() need not count them). */
  private bound = 0;
  /** Presence probes waiting for the station's ARP reply, by the station's MAC. */
  private readonly probes = new Map<Mac, ProbeWaiter[]>();
  /** The station whose binding (involving us) has this host address N+1: for neighbour failures. */
  private readonly byHost = new Map<IPv4, Mac>();
  /** Stations the MLR asked us to page, until their answer is no longer expected. */
  private readonly paged = new Map<Mac, PagedStation>();
  /**
   * Stations whose DHCP REQUEST in SELECTING state waits on the MLR here, with how many such REQUESTs
   * (bounded by the DHCP server's in-flight limit): their gateway is announced once, not repeated.
   */
  private readonly selecting = new Map<Mac, number>();
  /**
   * While a (re-)bind is under way (beginResync() to reestablish()): the stations the MLR has committed
   * or removed since, whose state is newer than what the bind's pages may say.
   */
  private resync: Set<Mac> | undefined;
  /** Pending work (later): retries of failed inline commits, repeats of announcements and pages. */
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly now: () => number;
  readonly stats = {
    reports: 0,
    suppressed: 0,
    refused: 0,
    prepared: 0,
    aborted: 0,
    committed: 0,
    lapsed: 0,
    lost: 0,
    paged: 0,
    pageAnswers: 0,
  };
  readonly guard: GuardStats = { new_station_dropped: 0, unassociated: 0, release_ignored: 0, decline_ignored: 0 };
  private readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;
  /** One rate-limited log per kind of refusal. */
  readonly guardLogs: Record<'unassociated' | 'budget' | 'release' | 'decline', RateLimitedLog>;

  constructor(private readonly o: CnHandoverOptions) {
    this.now = o.now ?? monotonicMs; // durations only (core/clock.ts)
    this.rate = o.newStationRate ?? DEFAULT_NEW_STATION_RATE;
    this.burst = this.rate * 2;
    this.tokens = this.burst;
    this.refilledAt = this.now();
    const limited = (level: number, what: string) =>
      new RateLimitedLog((m) => o.log(level, m), this.now, GUARD_LOG_BURST, GUARD_LOG_INTERVAL_MS, what);
    this.guardLogs = {
      unassociated: limited(LOG.detect, 'frames from MACs not associated here ignored'),
      budget: limited(LOG.info, 'frames from new stations dropped (new_station_rate)'),
      release: limited(LOG.info, 'DHCPRELEASEs ignored'),
      decline: limited(LOG.info, 'DHCPDECLINEs ignored'),
    };
  }

  /** Write the guard logs' pending summaries (the daemon calls it every GUARD_LOG_INTERVAL_MS). */
  flushGuardLogs(): void {
    for (const l of Object.values(this.guardLogs)) l.flush();
  }

  // ---- what the rest of the CN asks ----

  station(mac: Mac): Readonly<Station> | undefined {
    return this.stations.get(mac);
  }

  /** Every binding that involves this CN (what the kernel reflects). */
  bindings(): BindingView[] {
    const out: BindingView[] = [];
    for (const s of this.stations.values()) if (s.binding) out.push(s.binding);
    return out;
  }

  isServed(mac: Mac): boolean {
    const b = this.stations.get(mac)?.binding;
    return b !== undefined && servedBy(b, this.o.self);
  }

  servedCount(): number {
    let n = 0;
    for (const s of this.stations.values()) if (s.binding && servedBy(s.binding, this.o.self)) n++;
    return n;
  }

  // ---- detection ----

  /** An ARP sender or IPv4 source `ip` was seen from `mac` in this cell. */
  observe(mac: Mac, ip: IPv4, via: 'arp' | 'ip'): void {
    if (mac === this.o.link.mac || ip === 0 || this.isServed(mac)) return;
    if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) return; // group addresses are never stations
    const paged = this.pagedAnswer(mac, ip);
    if (paged && !paged.refreshed && this.o.refreshAssociations && !this.o.associations.mayMigrate(mac, this.o.requireAssociation)) {
      // hostapd has not told us of this station, yet it answers our page: ask hostapd once more.
      paged.refreshed = true;
      void this.o
        .refreshAssociations()
        .catch((e: unknown) => this.o.log(LOG.error, `re-reading hostapd's stations failed: ${e instanceof Error ? e.message : String(e)}`))
        .then(() => this.observe(mac, ip, via));
      return;
    }
    if (!this.mayMigrate(mac, via.toUpperCase())) return;
    if (paged) this.stats.pageAnswers++;
    else if (!this.admit(mac, via.toUpperCase())) return;
    this.report(mac, ip, via);
  }

  /** The page of `mac` that a frame from it with source address `ip` answers, if one is still expected. */
  private pagedAnswer(mac: Mac, ip: IPv4): PagedStation | undefined {
    const p = this.paged.get(mac);
    if (!p) return undefined;
    if (p.until <= this.now()) {
      this.paged.delete(mac);
      return undefined;
    }
    return p.ip === ip ? p : undefined;
  }

  /** hostapd says `mac` left this AP: if we serve it, the MLR pages for it. */
  left(mac: Mac): void {
    const s = this.stations.get(mac);
    if (s?.binding && servedBy(s.binding, this.o.self)) this.reportLost(s, s.binding, 'disassoc');
  }

  /** The kernel's neighbour entry for `ip` on the mobile interface failed: is it a station we serve? */
  neighbourFailed(ip: IPv4): void {
    const mac = this.byHost.get(ip);
    const s = mac !== undefined ? this.stations.get(mac) : undefined;
    if (s?.binding && servedBy(s.binding, this.o.self)) this.reportLost(s, s.binding, 'unreachable');
  }

  /** Tell the MLR that a station served here can no longer be reached here (at most once per interval). */
  private reportLost(s: Station, b: BindingView, why: 'disassoc' | 'unreachable'): void {
    const t = this.now();
    if (s.lostReportedAt !== 0 && t - s.lostReportedAt < LOST_REPORT_INTERVAL_MS) return;
    s.lostReportedAt = t;
    this.stats.lost++;
    const host = cellOf(b.cell).host;
    const { log } = this.o;
    const what = why === 'disassoc' ? 'left the AP' : 'stopped answering ARP';
    log(LOG.handover, `${b.mac} ${formatIPv4(host)} ${what}; asking the MLR to page for it`);
    this.o.mlr.request('lost', { mac: b.mac, ip: host, why }, 5000).then(
      (r) => {
        if (r.paging === 'no') log(LOG.detect, `${b.mac}: the MLR does not page (${r.reason ?? 'no reason given'})`);
      },
      (e: unknown) => log(LOG.error, `report of lost ${b.mac} failed: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  /**
   * The MLR looks for `mac` (its N+1 is `ip`): ask for it in this cell by unicast ARP from its gateway
   * N+2, so that it answers us if it is here. Its answer is detected like any ARP frame.
   */
  page(mac: Mac, ip: IPv4): void {
    if (this.isServed(mac)) return; // we are where the MLR places it: nothing to find here
    const cell = cellOf(ip);
    if (cell.host !== ip) throw new RpcError('bad-page', `${formatIPv4(ip)} is not a cell's host address (N+1)`);
    const t = this.now();
    this.paged.delete(mac);
    if (this.paged.size >= MAX_PAGED) {
      for (const [m, p] of this.paged) if (p.until <= t || this.paged.size >= MAX_PAGED) this.paged.delete(m);
    }
    this.paged.set(mac, { ip, until: t + PAGED_MS, refreshed: false });
    this.stats.paged++;
    const link = this.o.link;
    const send = () => link.send(buildArp(ARP_OP.REQUEST, { srcMac: link.mac, srcIp: cell.gateway, dstMac: mac, dstIp: ip }));
    for (const delay of PAGE_REPEATS_MS) {
      if (delay === 0) send();
      else this.later(send, delay);
    }
  }

  /** hostapd says `mac` associated here: move it before it sends anything. */
  arrived(mac: Mac): void {
    if (!this.isServed(mac)) this.report(mac, undefined, 'assoc');
  }

  /** May a DHCP message from `mac` be answered here? Notes the start of a move for an unserved MAC. */
  acceptDhcp(mac: Mac): boolean {
    if (this.isServed(mac)) return true;
    if (!this.mayMigrate(mac, 'DHCP')) return false;
    if (!this.admit(mac, 'DHCP')) return false;
    this.record(mac).detected = { at: this.now(), via: 'dhcp' };
    return true;
  }

  /**
   * May a DHCPRELEASE or DHCPDECLINE (`kind`) sent from Ethernet source `src` for `chaddr` be passed
   * to the MLR? Only the station itself, served in this cell, and associated here when that is required.
   */
  mayRelease(kind: 'RELEASE' | 'DECLINE', src: Mac, chaddr: Mac): boolean {
    let why: string | undefined;
    if (src !== chaddr) why = `sent from ${src}, not from the client's own MAC`;
    else if (!this.isServed(chaddr)) why = 'not served in this cell';
    else if (!this.o.associations.mayMigrate(chaddr, this.o.requireAssociation)) why = 'not associated with this AP';
    if (why === undefined) return true;
    if (kind === 'RELEASE') this.guard.release_ignored++;
    else this.guard.decline_ignored++;
    this.guardLogs[kind === 'RELEASE' ? 'release' : 'decline'].log(`ignoring DHCP${kind} for ${chaddr}: ${why}`);
    return false;
  }

  /**
   * A MAC with no binding involving this CN and not admitted lately is a new station: it takes a
   * token of the new-station budget, or its frame is dropped. A station hostapd lists as associated
   * here takes none: association is hostapd's own admission (bounded by its max_num_sta), and a
   * power cut that brings hundreds of phones back at once must not wait seconds for addresses.
   */
  private admit(mac: Mac, what: string): boolean {
    const t = this.now();
    const known = this.stations.get(mac);
    if (known && (known.binding !== undefined || known.admittedUntil > t || busy(known))) return true;
    const associated = this.o.associations.present ? this.o.associations.station(mac) : undefined;
    if (associated && !associated.wds) return true;
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = t;
    if (this.tokens < 1) {
      this.guard.new_station_dropped++;
      this.guardLogs.budget.log(`dropping ${what} from new station ${mac}: more than ${this.rate} new stations per second`);
      return false;
    }
    this.tokens -= 1;
    this.record(mac).admittedUntil = t + ADMITTED_MS;
    return true;
  }

  /** Forget cool-downs (after the MLR link comes back, earlier refusals say nothing). */
  resetCooldowns(): void {
    for (const s of this.stations.values()) s.quietUntil = 0;
  }

  /** With hostapd present, only stations associated here may be moved by their traffic. */
  private mayMigrate(mac: Mac, what: string): boolean {
    if (this.o.associations.mayMigrate(mac, this.o.requireAssociation)) return true;
    this.stats.refused++;
    this.guard.unassociated++;
    const why = this.o.associations.isWds(mac) ? 'a WDS link, not a mobile station' : 'not associated with this AP';
    this.guardLogs.unassociated.log(`ignoring ${what} from ${mac}: ${why}`);
    return false;
  }

  /** Ask the MLR to move `mac` here: at most one request per station at a time, then a cool-down. */
  private report(mac: Mac, ip: IPv4 | undefined, via: DetectedVia): void {
    const s = this.record(mac);
    const t = this.now();
    this.lapse(s, t);
    if (busy(s) || s.quietUntil > t) {
      this.stats.suppressed++;
      return;
    }
    this.stats.reports++;
    s.phase = 'requested';
    // Its reply may carry a commit: keep the record (and `tx`) though a commit that overtakes it ends the phase.
    s.awaiting++;
    s.detected = { at: t, via };
    const log = this.o.log;
    const body: RequestBody<'seen'> = { mac, via, leaseTime: this.o.leaseTime, ...(ip !== undefined ? { ip } : {}) };
    const asked = this.o.mlr.request('seen', body, 10_000);
    // Logged once the request is on its way, not before: the roam waits for the MLR, not for the log.
    log(LOG.handover, `detected ${mac}${ip !== undefined ? ` (${formatIPv4(ip)})` : ''} in my cell via ${via}`);
    asked
      .then(
        (r) => {
          if (r.outcome === 'unknown' || r.outcome === 'refused') {
            s.detected = undefined;
            log(LOG.detect, `${mac}: ${r.outcome}${r.reason ? ` (${r.reason})` : ''}`);
          } else if (r.tx !== undefined && r.binding?.mac === mac) return this.applyReply(r.tx, r.binding);
          return undefined;
        },
        (e: unknown) => {
          s.detected = undefined;
          log(LOG.error, `report of ${mac} failed: ${e instanceof Error ? e.message : String(e)}`);
          // The MLR may have moved the station here and put the commit in the reply we gave up on
          // (an inline commit, which it counts as delivered): only a re-bind tells us for sure. On
          // 'closed'/'offline' the session is gone and the link re-binds anyway.
          if (e instanceof RpcError && e.code === 'timeout') this.o.resync?.(`no reply to the report of ${mac}`);
        },
      )
      .finally(() => {
        if (s.phase === 'requested') s.phase = 'idle';
        s.awaiting = Math.max(0, s.awaiting - 1);
        s.quietUntil = this.now() + (this.o.cooldownMs ?? 1000);
        this.forgetIfEmpty(s);
      });
  }

  // ---- the MLR's transaction ----

  /** Install the handlers for the MLR's requests on a fresh MLR session. */
  serve(peer: RpcPeer): void {
    peer.handle('prepare', (body) => this.prepare(body));
    peer.handle('commit', async (body) => {
      await this.commit(body.tx, body.binding);
      return {};
    });
    peer.handle('abort', (body) => this.abort(body.tx));
    peer.handle('remove', async (body) => {
      await this.remove(body.binding, body.tx);
      return {};
    });
    peer.handle('probe', async (body) => ({ present: (await this.probe(body.mac, body.ip)) ? 'yes' : 'no' }));
    peer.handle('page', (body) => {
      this.page(body.mac, body.ip);
      return {};
    });
  }

  // ---- the presence check ----

  /**
   * Does `mac`, served here at `ip`, still answer in this cell? A unicast ARP request from its
   * gateway, sent twice; resolves true on its reply, false after PROBE_TIMEOUT_MS.
   */
  probe(mac: Mac, ip: IPv4): Promise<boolean> {
    const b = this.stations.get(mac)?.binding;
    const cell = b ? cellOf(b.cell) : undefined;
    if (!b || !cell || !servedBy(b, this.o.self) || cell.host !== ip) {
      return Promise.reject(new RpcError('not-served', `${this.o.self} does not serve ${mac} at ${formatIPv4(ip)}`));
    }
    const link = this.o.link;
    const send = () => link.send(buildArp(ARP_OP.REQUEST, { srcMac: link.mac, srcIp: cell.gateway, dstMac: mac, dstIp: ip }));
    return new Promise<boolean>((resolve) => {
      const timers: NodeJS.Timeout[] = [];
      let settled = false;
      const waiter: ProbeWaiter = {
        ip,
        done: (present) => {
          if (settled) return;
          settled = true;
          for (const t of timers) clearTimeout(t);
          const list = this.probes.get(mac)?.filter((w) => w !== waiter) ?? [];
          if (list.length > 0) this.probes.set(mac, list);
          else this.probes.delete(mac);
          resolve(present);
        },
      };
      this.probes.set(mac, [...(this.probes.get(mac) ?? []), waiter]);
      timers.push(
        setTimeout(send, PROBE_RESEND_MS),
        // Frames that came in time but wait in the socket behind a busy event loop are read in the
        // loop's poll phase, which comes after its timers, at most 64 a turn (the capture addon's
        // batch): decide after PROBE_DECIDE_TURNS more turns of the loop (setImmediate each).
        setTimeout(() => {
          let turns = 0;
          const decide = (): void => {
            if (++turns < PROBE_DECIDE_TURNS) setImmediate(decide);
            else waiter.done(false);
          };
          setImmediate(decide);
        }, PROBE_TIMEOUT_MS),
      );
      send();
    });
  }

  /** An ARP packet heard in the cell from Ethernet source `src`: the answer to a probe, if one waits for it. */
  arpHeard(src: Mac, arp: ArpPacket): void {
    const waiting = this.probes.get(src);
    if (!waiting || arp.op !== ARP_OP.REPLY || arp.senderMac !== src) return;
    for (const w of [...waiting]) if (w.ip === arp.senderIp) w.done(true);
  }

  prepare(body: RequestBody<'prepare'>): Record<string, never> {
    const { self } = this.o;
    const b = body.binding;
    const takesPart = involves(b, self);
    if (!takesPart && body.previous?.name !== self) throw new RpcError('not-involved', `${self} takes no part in moving ${b.mac}`);
    if (b.tunnel && takesPart && !this.o.tunnels().includes(b.tunnel.type)) {
      throw new RpcError('no-tunnel', `${self} cannot build ${b.tunnel.type} tunnels`);
    }
    const s = this.record(b.mac);
    const t = this.now();
    this.lapse(s, t);
    if (s.reserved && s.reserved.tx !== body.tx) throw new RpcError('busy', `${b.mac} is already in transaction ${s.reserved.tx}`);
    s.reserved = { tx: body.tx, binding: b, until: t + (this.o.reservationMs ?? 15_000) };
    this.byTx.set(body.tx, b.mac);
    this.stats.prepared++;
    if (takesPart) this.o.dataplane.prepare?.(b); // the tunnel, so that commit only adds addresses and routes
    return {};
  }

  /** Give back what `prepare` reserved for transaction `tx`. */
  abort(tx: number): Record<string, never> {
    const mac = this.byTx.get(tx);
    const s = mac !== undefined ? this.stations.get(mac) : undefined;
    this.byTx.delete(tx);
    if (s?.reserved?.tx === tx) {
      s.reserved = undefined;
      s.detected = undefined;
      this.stats.aborted++;
      this.o.log(LOG.handover, `tx ${tx}: move of ${s.mac} aborted by the MLR`);
      this.forgetIfEmpty(s);
    }
    return {};
  }

  /**
   * Take `b` as the truth about its station and make the kernel follow, unless a newer transaction of
   * the station was applied already (then this one is stale: ignored).
   */
  async commit(tx: number, b: BindingView): Promise<void> {
    const { self, log } = this.o;
    const s = this.record(b.mac);
    if (tx < s.tx) {
      log(LOG.handover, `tx ${tx}: ${b.mac} ignored: transaction ${s.tx} was applied already`);
      this.byTx.delete(tx);
      if (s.reserved?.tx === tx) s.reserved = undefined;
      this.forgetIfEmpty(s);
      return;
    }
    s.tx = tx;
    if (s.reserved) this.byTx.delete(s.reserved.tx);
    this.byTx.delete(tx);
    s.reserved = undefined;
    this.setBinding(s, involves(b, self) ? b : undefined);
    this.resync?.add(b.mac);
    s.phase = 'applying';
    try {
      const dp = this.o.dataplane;
      const added = await (dp.update ? dp.update(b.mac, s.binding) : dp.apply(this.bindings()));
      this.stats.committed++;
      const cell = cellOf(b.cell);
      const host = formatIPv4(cell.host);
      if (servedBy(b, self)) {
        // A gateway added by this plan was announced the moment it was in place; one kept is re-announced.
        if (!added.includes(cell.gateway)) this.announce(b);
        const d = s.detected;
        const since = d ? ` ${(this.now() - d.at).toFixed(1)} ms after detection via ${d.via}` : '';
        log(
          LOG.handover,
          `host ${b.mac} ${host} has arrived in this cell (parent ${b.parent.name}${b.tunnel ? `, ${b.tunnel.type} tunnel` : ', at home'})${since}`,
        );
      } else if (b.parent.name === self && b.state === 'bound') {
        log(LOG.handover, `host ${b.mac} ${host} is away at ${b.current?.name ?? '?'}; tunnelling its traffic`);
      } else {
        log(LOG.handover, `host ${b.mac} ${host} has left this cell for ${b.current?.name ?? '?'}`);
      }
    } finally {
      s.detected = undefined;
      if (s.phase === 'applying') s.phase = 'idle';
      this.forgetIfEmpty(s);
    }
  }

  /** The MLR removed the binding. `tx` (MLRs that send inline commits): ignored if older than what was applied. */
  async remove(b: BindingView, tx?: number): Promise<void> {
    const s = this.stations.get(b.mac);
    if (s && tx !== undefined && tx < s.tx) {
      this.o.log(LOG.handover, `tx ${tx}: removal of ${b.mac} ignored: transaction ${s.tx} was applied already`);
      return;
    }
    if (s) {
      if (tx !== undefined) s.tx = tx;
      this.setBinding(s, undefined);
      this.forgetIfEmpty(s);
    }
    this.resync?.add(b.mac);
    const dp = this.o.dataplane;
    await (dp.update ? dp.update(b.mac, undefined) : dp.apply(this.bindings()));
    this.o.log(LOG.handover, `host ${b.mac} ${formatIPv4(cellOf(b.cell).host)}: binding removed by the MLR`);
  }

  /**
   * A bind is being sent: note the commits and removes that arrive before its list is applied. A new
   * MLR session numbers its transactions afresh: what was applied in the last one orders nothing now.
   */
  beginResync(): void {
    this.resync = new Set();
    for (const s of this.stations.values()) s.tx = 0;
  }

  // ---- inline commits (core/messages.ts FEATURES.inlineCommit) ----

  /**
   * A request whose reply may carry `mac`'s commit starts (true) or stops (false) waiting on the MLR:
   * meanwhile the station's record, and the newest transaction applied for it, are kept, so that a
   * commit or remove that overtakes the reply is not undone by it.
   */
  replyWaiting(mac: Mac, waiting: boolean): void {
    if (waiting) {
      this.record(mac).awaiting++;
      return;
    }
    const s = this.stations.get(mac);
    if (!s) return;
    s.awaiting = Math.max(0, s.awaiting - 1);
    this.forgetIfEmpty(s);
  }

  /**
   * The MLR's reply to our `request` or `seen` carries transaction `tx`'s commit for us: apply it as
   * that commit (the kernel first: the caller answers the client once this resolves). Not applied when
   * a newer transaction of the station was (its commit or remove overtook this reply). A renewal that
   * changes nothing but the expiry is only noted. If the data plane fails, the commit is applied again
   * after REAPPLY_DELAYS_MS and then the CN re-binds (as the MLR reconciles a failed commit); the
   * caller is not failed, as the MLR acknowledges a move whose commit failed.
   */
  async applyReply(tx: number, b: BindingView): Promise<void> {
    const s = this.record(b.mac);
    if (tx < s.tx) {
      this.o.log(LOG.handover, `tx ${tx}: reply for ${b.mac} not applied: transaction ${s.tx} was applied already`);
      this.forgetIfEmpty(s);
      return;
    }
    if (s.binding !== undefined && s.phase !== 'applying' && sameExceptExpiry(s.binding, b)) {
      s.tx = tx;
      this.setBinding(s, b);
      this.resync?.add(b.mac); // newer than what a re-bind's pages may say (reestablish)
      return;
    }
    try {
      await this.commit(tx, b);
    } catch (e) {
      this.o.log(LOG.error, `tx ${tx}: applying ${b.mac} failed (${e instanceof Error ? e.message : String(e)}); trying again`);
      this.reapply(b.mac, tx, 0);
    }
  }

  /** Retry `attempt` of an inline commit the data plane failed, while nothing newer came for the station. */
  private reapply(mac: Mac, tx: number, attempt: number): void {
    const delays = this.o.reapplyDelaysMs ?? REAPPLY_DELAYS_MS;
    this.later(() => {
      const s = this.stations.get(mac);
      if (s?.tx !== tx) return; // a newer commit or remove (or a re-bind) has taken over
      const dp = this.o.dataplane;
      (dp.update ? dp.update(mac, s.binding) : dp.apply(this.bindings())).then(
        () => this.o.log(LOG.info, `tx ${tx}: ${mac} applied on retry ${attempt + 1}`),
        (e: unknown) => {
          const why = e instanceof Error ? e.message : String(e);
          if (attempt + 1 < delays.length) this.reapply(mac, tx, attempt + 1);
          else {
            this.o.log(
              LOG.error,
              `tx ${tx}: applying ${mac} failed ${delays.length + 1} times (${why}); re-binding to re-apply everything`,
            );
            this.o.resync?.(`applying ${mac} failed`);
          }
        },
      );
    }, delays[attempt] ?? 0);
  }

  /** The CN stops: no retry of a failed inline commit, nor a repeated announcement or page, may follow. */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * After a (re-)bind: the MLR's list is the whole truth. Apply it, announce the gateways we serve, and
   * move stations hostapd says are associated here but the MLR places elsewhere (they arrived while
   * the MLR was out of reach). A list that came in pages may be older, for some station, than a commit
   * or remove the MLR sent while the pages were on their way: a station committed or removed since
   * beginResync() keeps what that commit or remove said.
   */
  async reestablish(list: BindingView[]): Promise<void> {
    const { self } = this.o;
    const newer = this.resync ?? new Set<Mac>();
    this.resync = undefined;
    for (const s of this.stations.values()) if (!newer.has(s.mac)) this.setBinding(s, undefined);
    for (const b of list) if (involves(b, self) && !newer.has(b.mac)) this.setBinding(this.record(b.mac), b);
    for (const s of [...this.stations.values()]) this.forgetIfEmpty(s);
    const added = await this.o.dataplane.apply(this.bindings());
    for (const b of this.bindings()) if (servedBy(b, self) && !added.includes(cellOf(b.cell).gateway)) this.announce(b);
    this.o.log(
      LOG.info,
      `Attempting network re-establish - Querying MLR: ${list.length === 0 ? 'None listed' : `${list.length} host(s) restored`}`,
    );
    this.resetCooldowns();
    for (const [mac, station] of this.o.associations.all()) if (!station.wds) this.arrived(mac);
  }

  // ---- announcement ----

  /**
   * The DHCP server's REQUEST in SELECTING state from `mac` starts (true) or stops (false) waiting on
   * the MLR: meanwhile its gateway is announced without repeats (ANNOUNCE_REPEATS_MS).
   */
  dhcpSelecting(mac: Mac, waiting: boolean): void {
    const n = (this.selecting.get(mac) ?? 0) + (waiting ? 1 : -1);
    if (n > 0) this.selecting.set(mac, n);
    else this.selecting.delete(mac);
  }

  /** The data plane put gateway `ip` in place: announce it to the station it serves. */
  gatewayAdded(ip: IPv4): void {
    // The cell's host N+1 is its gateway N+2 less one: one look-up, not a walk over every binding.
    const mac = this.byHost.get(ip - 1);
    const b = mac !== undefined ? this.stations.get(mac)?.binding : undefined;
    if (b && servedBy(b, this.o.self) && cellOf(b.cell).gateway === ip) this.announce(b);
  }

  /** Tell the station that its gateway N+2 now lives here: a gratuitous ARP and a unicast ARP reply, repeated. */
  private announce(b: BindingView): void {
    const link = this.o.link;
    const cell = cellOf(b.cell);
    const send = () => {
      link.send(buildGratuitousArp(link.mac, cell.gateway));
      link.send(buildArpReply({ srcMac: link.mac, srcIp: cell.gateway, dstMac: b.mac, dstIp: cell.host }));
    };
    send();
    if (this.selecting.has(b.mac)) return; // it is taking its address from us now: once is enough
    for (const delay of ANNOUNCE_REPEATS_MS) this.later(send, delay);
  }

  /** Run `fn` after `delay` ms, unless the CN has stopped by then (stop() clears them all). */
  private later(fn: () => void, delay: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delay).unref();
    this.timers.add(timer);
  }

  // ---- records ----

  private record(mac: Mac): Station {
    let s = this.stations.get(mac);
    if (!s) {
      this.trim();
      s = {
        mac,
        phase: 'idle',
        binding: undefined,
        detected: undefined,
        reserved: undefined,
        quietUntil: 0,
        admittedUntil: 0,
        lostReportedAt: 0,
        tx: 0,
        awaiting: 0,
      };
      this.stations.set(mac, s);
    }
    return s;
  }

  private setBinding(s: Station, b: BindingView | undefined): void {
    this.bound += (b ? 1 : 0) - (s.binding ? 1 : 0);
    if (s.binding && this.byHost.get(s.binding.cell + 1) === s.mac) this.byHost.delete(s.binding.cell + 1);
    if (b) this.byHost.set(b.cell + 1, s.mac);
    // A station that arrives (again) here may be reported lost again at once.
    if (b && servedBy(b, this.o.self) && !(s.binding && servedBy(s.binding, this.o.self))) s.lostReportedAt = 0;
    s.binding = b;
  }

  /** A reservation the MLR never confirmed nor aborted lapses. */
  private lapse(s: Station, t: number): void {
    if (s.reserved && s.reserved.until <= t) {
      this.byTx.delete(s.reserved.tx);
      s.reserved = undefined;
      this.stats.lapsed++;
    }
  }

  /** Drop a record that holds nothing but expired timers. */
  private forgetIfEmpty(s: Station): void {
    const t = this.now();
    if (s.binding || busy(s) || s.quietUntil > t || s.admittedUntil > t) return;
    this.stations.delete(s.mac);
  }

  /** Keep the records of stations without a binding here bounded (hostile MACs must not grow us). */
  private trim(): void {
    const max = this.o.maxIdleStations ?? 4096;
    let idle = this.stations.size - this.bound;
    if (idle < max) return;
    // Map order is insertion order: the oldest idle records go first.
    for (const s of this.stations.values()) {
      if (idle < max * 0.9) break;
      if (s.binding || busy(s)) continue;
      this.stations.delete(s.mac);
      idle--;
    }
  }
}

/** A request, a reservation or a commit is in flight for the station: its record must stay. */
function busy(s: Station): boolean {
  return s.phase !== 'idle' || s.reserved !== undefined || s.awaiting > 0;
}

/** The same binding but (perhaps) for its expiry: a renewal, which changes nothing in the kernel. */
function sameExceptExpiry(a: BindingView, b: BindingView): boolean {
  return (
    a.mac === b.mac &&
    a.cell === b.cell &&
    a.state === b.state &&
    a.parent.name === b.parent.name &&
    a.parent.addr === b.parent.addr &&
    a.current?.name === b.current?.name &&
    a.current?.addr === b.current?.addr &&
    a.tunnel?.type === b.tunnel?.type &&
    a.tunnel?.key === b.tunnel?.key
  );
}
