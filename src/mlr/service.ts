// SPDX-License-Identifier: GPL-2.0-only
// MlrService: the mobile location register's decisions over RPC sessions. It admits CNs (bind:
// network name, pools, tunnel types), answers DHCP-driven requests (which cell, ACK or NAK) and
// activity-driven ones (move, adopt, refuse), and expires bindings. Every move of a station runs
// as one transaction in mlr/handover.ts, under that station's lock. A CN that announced
// FEATURES.inlineCommit at bind gets its commit in the reply (`tx`): for a DHCP move it alone is told
// of, and for every `seen` move, whose reply then goes out beside the other commits (admitEarly).
//
// Authorization (on top of proto/auth.ts, which says who sent a message): a session binds only as
// the CN it authenticated as (with authentication off, as the name of its first bind); the name must
// be a valid CN name; a pool another CN holds is refused (registry); release/decline only of a
// binding the sender currently serves (a decline also of an offer made through it); a `seen` whose
// ip is not the binding's host address moves nothing; `lost` only of a station the sender serves
// (mlr/paging.ts); the MLR serves no prepare/commit/abort/remove/probe/page
// (those are its own requests to CNs). Each CN creates at most MAX_BINDINGS_PER_CN bindings (offers
// and bindings it serves); the register keeps at most MAX_CNS CNs (a new name beyond that is refused).
//
// Backpressure (issue 11): requests that start work (discover, request, seen, release) are admitted
// up to MAX_WORK at once over all CNs, and none while the event loop runs late by more than MAX_LAG_MS
// (the MLR does not keep up with what arrives); beyond that they are answered `busy` at once with a
// retry hint (`retryAfter`, BUSY_RETRY_AFTER_MS): nothing waits without bound, memory stays bounded,
// and the CN asks a move again after a jittered back-off (cn/mlr-link.ts). The refusal is made from
// the request's head, before it is parsed or verified (RpcPeer.admission), so that it costs a fraction
// of a request served: past its capacity the MLR keeps completing moves (a plateau, not a collapse).
// The last quarter of MAX_WORK is kept for CNs that hold less than a sixteenth of it (one CN, or a
// few, cannot take the whole budget). What a CN holds is its admitted work (`sessionWork`) or its
// running requests, whichever is more: a `seen` answered early (admitEarly) holds work after its reply.
//
// Budgets and DHCPDECLINE (issue 8):
// - Offers: a CN holds at most `maxOffersPerCn` cells as offers (DISCOVER answered, no REQUEST yet;
//   `option max_offers`, default 256). Each offer lapses after offer_hold seconds (expire()), so a
//   DISCOVER flood through one CN holds at most that many cells; beyond it discover fails with
//   'offer-limit' and the CN sends no OFFER. Offers count against MAX_BINDINGS_PER_CN too.
// - DHCPDECLINE means the client found its address in use (RFC 2131 §3.1 step 5 and §4.4.1: it
//   probes the address after the ACK, declines it and restarts after at least 10 s; §4.3.3: the
//   server MUST mark the address as not available). A decline is accepted from the CN serving the
//   binding, or the CN an offer was made through, for the binding's own host address; then:
//   - the cell is quarantined for `declineQuarantineMs` (`option decline_quarantine`, default 600 s,
//     0 = none): nobody is offered, ACKed or adopted into it until then (core/registry.ts);
//   - an *offered* binding of the decliner is dropped (it holds nothing in any kernel);
//   - a *bound* binding is never removed by a DECLINE: whoever uses the cell keeps it. Only when the
//     same MAC then sends a DISCOVER (the restart RFC 2131 prescribes after a decline) is its binding
//     replaced by a fresh cell: the holder itself asks for another address.
//   The CN passes a DECLINE on only if the frame came from the client's own MAC, served in its cell
//   (and associated there, with hostapd): cn/handover.ts.
import { monotonicMs } from '../core/clock.js';
import type { BindingView } from '../core/binding.js';
import { CN_NAME_EXPECTED, CN_NAME_RE, DEFAULT_DECLINE_QUARANTINE, DEFAULT_MAX_OFFERS } from '../core/config.js';
import { cellOf, formatIPv4, type IPv4 } from '../core/ip.js';
import { FEATURES, PAGE, type ReplyBody, type RequestBody } from '../core/messages.js';
import type { Binding, Registry } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';
import { LOG, type LogFn } from '../platform/log.js';
import { RateLimitedLog } from '../proto/auth.js';
import { RpcError, type RpcPeer } from '../proto/rpc.js';
import { Handovers, type HandoverOptions, type Moved } from './handover.js';
import { Pager } from './paging.js';

/** How long an adopted static host holds its cell when the CN does not say (seconds). */
const DEFAULT_STATIC_HOLD_S = 3600;
/**
 * Bindings one CN may create and hold (offers made through it plus bindings it serves): far above
 * what one AP serves, low enough that a misbehaving CN cannot grow the MLR's memory without bound.
 */
export const MAX_BINDINGS_PER_CN = 16384;
/** CNs the registry keeps: bounds it when, with authentication off, anyone can bind under any name. */
const MAX_CNS = 4096;
/**
 * Backpressure: requests that start work (a transaction, an offer, a release) running or waiting for
 * their station's lock, over all CNs. At the rate one core completes moves (several thousand a
 * second) that is a few tens of milliseconds of work, so whatever is admitted is answered quickly and
 * memory stays bounded; beyond it the MLR says `busy`. (One CN's burst, e.g. 500 phones back at once,
 * is bounded by its session's MAX_INBOUND = 160 first.)
 */
export const MAX_WORK = 256;
/** The retry hint of a `busy` answer (ms): the CN waits about this long, with jitter, before it asks again. */
export const BUSY_RETRY_AFTER_MS = 50;
/**
 * Backpressure, second bound: when the event loop runs late by more than MAX_LAG_MS (the MLR cannot
 * keep up with what arrives: requests wait in the sockets, where MAX_WORK does not see them), new work
 * is refused as `busy` for LAG_HOLD_MS, so that the MLR answers what waits cheaply and catches up
 * instead of starting transactions whose requests have waited for seconds. Checked every LAG_CHECK_MS
 * while work is outstanding (an idle MLR is not woken).
 */
const LAG_CHECK_MS = 20;
const MAX_LAG_MS = 100;
const LAG_HOLD_MS = 250;
/** A `busy` refusal is logged once per this many. */
const BUSY_LOG_EVERY = 1000;
/** The requests that start work (admitted up to MAX_WORK; the rest answered `busy`). */
const WORK_TYPES: ReadonlySet<string> = new Set(['discover', 'request', 'seen', 'release']);

export interface MlrServiceOptions {
  networkName: string;
  offerHoldMs: number;
  leaseGraceMs: number;
  /**
   * Wall time, for binding expiry (stored, compared with the CNs'). Durations (moves' deadlines,
   * paging, log intervals) are on monotonicMs (core/clock.ts), or on this when a test gives it.
   */
  now?: () => number;
  log: LogFn;
  /** Bindings one CN may create and hold (default MAX_BINDINGS_PER_CN; tests lower it). */
  maxBindingsPerCn?: number;
  /** CNs the registry may hold (default MAX_CNS; tests lower it). */
  maxCns?: number;
  /** Cells one CN may hold as offers at a time (default DEFAULT_MAX_OFFERS). */
  maxOffersPerCn?: number;
  /** How long a declined cell is not handed out (default DEFAULT_DECLINE_QUARANTINE s; 0 = not at all). */
  declineQuarantineMs?: number;
  /** Resolves once every registry change so far is on disk (mlr/persistence.ts): awaited before a reply acknowledges one. */
  durable?: () => Promise<void>;
  /** When paging rounds go out after a `lost` report (default PAGE_ROUNDS_MS, mlr/paging.ts; tests shorten them). */
  pageRoundsMs?: readonly number[];
  /**
   * Requests that start work (discover, request, seen, release) the MLR runs or queues at once, over
   * all CNs (default MAX_WORK); more are answered `busy` at once with a retry hint (BUSY_RETRY_AFTER_MS).
   */
  maxWork?: number;
  /**
   * How late the event loop may run (ms) before new work is refused `busy` (default MAX_LAG_MS).
   * Infinity turns the check off: for tests that run an MLR and its CNs in one process, whose shared
   * event loop a test's own flood of frames makes late.
   */
  maxLagMs?: number;
  /** The log level in force: per-move lines are not built below LOG.handover (undefined: always built). */
  logLevel?: number;
  /** Transaction time-outs and retries (mlr/handover.ts); defaults suit a campus backbone. */
  handover?: Pick<HandoverOptions, 'prepareTimeoutMs' | 'commitTimeoutMs' | 'probeTimeoutMs' | 'deadlineMs' | 'reconcileDelaysMs'>;
}

/** How long status() keeps the register's sorted key order (pages asked within it share one sort). */
const STATUS_ORDER_MS = 5000;
/** A reply page's share of the 256 KiB frame, by estimated encoded size (CN records vary with their pools). */
const PAGE_BYTES = 160 * 1024;

/** Items after key `after` in key order, at most `max`; `next` is the last key sent when more follow. */
function pageOf<T>(items: T[], key: (t: T) => string, after: string | undefined, max: number): { items: T[]; next?: string } {
  const sorted = items
    .filter((t) => after === undefined || key(t) > after)
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  if (sorted.length <= max) return { items: sorted };
  const page = sorted.slice(0, max);
  return { items: page, next: key(page[page.length - 1]!) };
}

/**
 * The page after `after` of sorted `keys`, each looked up now (gone: skipped), at most `max` items and
 * about PAGE_BYTES by `size` (at least one item); `next` is the last key sent when more follow.
 */
function pageOfSorted<T>(
  keys: readonly string[],
  after: string | undefined,
  max: number,
  lookup: (key: string) => T | undefined,
  size: (t: T) => number,
): { items: T[]; next?: string } {
  let i = 0;
  if (after !== undefined) {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  const items: T[] = [];
  let bytes = 0;
  let last: string | undefined;
  for (; i < keys.length && items.length < max; i++) {
    const v = lookup(keys[i]!);
    if (v === undefined) continue;
    const n = size(v);
    if (items.length > 0 && bytes + n > PAGE_BYTES) break;
    items.push(v);
    bytes += n;
    last = keys[i];
  }
  return i < keys.length && last !== undefined ? { items, next: last } : { items };
}

export class MlrService {
  private readonly sessions = new Map<string, RpcPeer>();
  /** status(): the register's key order, sorted once per STATUS_ORDER_MS. */
  private statusOrder: { at: number; macs: string[]; cns: string[] } | undefined;
  private readonly now: () => number;
  /** Durations (MlrServiceOptions.clock). */
  private readonly clock: () => number;
  /** Which CN each still-offered binding was offered through (for MAX_BINDINGS_PER_CN). */
  private readonly offeredVia = new Map<string, string>();
  /** Protocol errors of all sessions, logged at a bounded rate. */
  private readonly protoLog: RateLimitedLog;
  readonly handovers: Handovers;
  /** Admitted requests that have not finished (MAX_WORK bounds it). */
  private work = 0;
  private readonly maxWork: number;
  /** monotonicMs() until which new work is refused because the event loop ran late (MAX_LAG_MS). */
  private behindUntil = 0;
  /** How late the event loop may run (ms) before new work is refused (MAX_LAG_MS; Infinity: never). */
  private readonly maxLag: number;
  /** The lag check (every LAG_CHECK_MS), running only while work is outstanding: an idle MLR is not woken. */
  private lagTimer: NodeJS.Timeout | undefined;
  /** The one `busy` refusal, thrown as it is (no stack trace built per refused request). */
  private readonly busy: RpcError;
  /** Finds stations their CN lost (`lost` -> `page` to the other CNs): mlr/paging.ts. */
  readonly pager: Pager;
  /**
   * Admitted work per session, until it ends: a `seen` answered early (admitEarly) is no longer one of its
   * session's running requests (RpcPeer.handling) but still holds its part of the budget.
   */
  private readonly sessionWork = new WeakMap<RpcPeer, number>();
  /** Sessions whose CN announced FEATURES.inlineCommit at bind: their replies may carry a move's commit. */
  private readonly inlineCommit = new WeakSet<RpcPeer>();

  constructor(
    readonly registry: Registry,
    private readonly opts: MlrServiceOptions,
  ) {
    this.now = opts.now ?? Date.now;
    const clock = (this.clock = opts.now ?? monotonicMs);
    this.maxWork = opts.maxWork ?? MAX_WORK;
    this.busy = new RpcError(
      'busy',
      `the MLR is busy (it takes at most ${this.maxWork} requests at once, and none while it runs behind); retry after ${BUSY_RETRY_AFTER_MS} ms`,
      BUSY_RETRY_AFTER_MS,
    );
    this.maxLag = opts.maxLagMs ?? MAX_LAG_MS;
    this.protoLog = new RateLimitedLog((m) => opts.log(LOG.error, m), clock);
    this.pager = new Pager({
      registry,
      sessions: () => this.sessions.entries(),
      log: opts.log,
      now: clock,
      ...(opts.pageRoundsMs ? { roundsMs: opts.pageRoundsMs } : {}),
    });
    this.handovers = new Handovers({
      registry,
      session: (cn) => this.sessions.get(cn),
      reportedGone: (mac, cn) => this.pager.reportedGone(mac, cn),
      log: opts.log,
      now: clock,
      ...(opts.durable ? { durable: opts.durable } : {}),
      ...(opts.logLevel !== undefined ? { logLevel: opts.logLevel } : {}),
      ...opts.handover,
    });
  }

  /** Stop timers (reconcile retries); sessions are closed by whoever owns the transport. */
  stop(): void {
    clearInterval(this.lagTimer);
    this.lagTimer = undefined;
    this.handovers.stop();
    this.pager.stop();
  }

  /** Serve one CN connection. Until it binds, only `bind` and `ping` are answered. */
  attach(peer: RpcPeer, remoteAddr: string | undefined): void {
    let name: string | undefined;
    const log = this.opts.log;
    const bound = <T>(fn: (cn: string) => T): T => {
      if (!name) throw new RpcError('not-bound', 'bind first');
      return fn(name);
    };
    peer.onProtocolError = (m) => this.protoLog.log(`protocol error from ${peer.channel.peer}: ${m}`);
    peer.admission = (type, inbound) => this.admission(peer, type, inbound);
    peer.handle('ping', () => ({ time: this.now() }));
    peer.handle('bind', (body) => {
      const claimed = body.cn.name;
      const shown = JSON.stringify(claimed);
      if (peer.authenticated && claimed !== peer.identity) {
        this.protoLog.log(`refused bind as ${shown} from ${peer.channel.peer}: the session authenticated as '${peer.identity ?? '?'}'`);
        throw new RpcError('bind-refused', `this session authenticated as '${peer.identity ?? '?'}' and cannot bind as ${shown}`);
      }
      const vouched = peer.channel.transportIdentity;
      if (vouched !== undefined && claimed !== vouched) {
        this.protoLog.log(`refused bind as ${shown} from ${peer.channel.peer}: its transport vouches for ${JSON.stringify(vouched)}`);
        throw new RpcError('bind-refused', `this channel belongs to ${JSON.stringify(vouched)} and cannot bind as ${shown}`);
      }
      if (name !== undefined && claimed !== name) {
        this.protoLog.log(`refused bind as ${shown} from ${peer.channel.peer}: the session is bound as '${name}'`);
        throw new RpcError('bind-refused', `this session is bound as '${name}' and cannot bind as ${shown}`);
      }
      if (!CN_NAME_RE.test(claimed)) {
        throw new RpcError('bind-refused', `${shown} is not a valid CN name; ${CN_NAME_EXPECTED}`);
      }
      const r = this.bind(peer, body, remoteAddr);
      if (!r.ok) throw new RpcError('bind-refused', r.error);
      name = body.cn.name;
      if (body.features?.includes(FEATURES.inlineCommit)) this.inlineCommit.add(peer);
      else this.inlineCommit.delete(peer);
      return (this.opts.durable?.() ?? Promise.resolve()).then(() => r.value);
    });
    peer.handle('discover', (body) => bound((cn) => this.admit(peer, body.mac, () => this.discover(cn, body))));
    peer.handle('request', (body) => bound((cn) => this.admit(peer, body.mac, () => this.request(cn, body, this.replyTo(peer)))));
    peer.handle('seen', (body) =>
      bound((cn) => {
        const replyTo = this.replyTo(peer);
        if (replyTo === undefined) return this.admit(peer, body.mac, () => this.seen(cn, body));
        return this.admitEarly(peer, body.mac, (answer) => this.seen(cn, body, replyTo, answer));
      }),
    );
    peer.handle('release', (body) => bound((cn) => this.admit(peer, body.mac, () => this.release(cn, body))));
    peer.handle('lost', (body) => bound((cn) => this.pager.lost(cn, body)));
    peer.handle('status', (body) => this.status(body));
    peer.handle('sync', (body) => bound((cn) => this.syncPage(cn, body)));
    // Answered before bind too: `tmip-cn -E` evaluates connectivity without taking over a CN's session.
    peer.handle('peers', () => ({
      peers: this.registry
        .allCns()
        .filter((c) => c.name !== name)
        .map((c) => ({ name: c.name, addr: c.addr, online: this.sessions.has(c.name) ? ('yes' as const) : ('no' as const) })),
    }));
    peer.channel.onClose((reason) => {
      if (name && this.sessions.get(name) === peer) {
        this.sessions.delete(name);
        this.registry.setOnline(name, false);
        log(LOG.info, `CN '${name}' disconnected (${reason})`);
      }
    });
  }

  /** `peer` when its replies may carry a move's commit (FEATURES.inlineCommit), else undefined. */
  private replyTo(peer: RpcPeer): RpcPeer | undefined {
    return this.inlineCommit.has(peer) ? peer : undefined;
  }

  /** Requests admitted and not yet finished (running or waiting for their station's lock). */
  get outstandingWork(): number {
    return this.work;
  }

  /**
   * The sessions' admission hook (RpcPeer.admission): a request that starts work, arriving while the MLR
   * takes no more (admit()'s rule) or from a CN past its share, is answered `busy` before it is parsed
   * or verified: a refusal costs a fraction of a request served, so past its capacity the MLR keeps
   * its time for the work it holds (and reads those moves' commit replies promptly) instead of
   * spending it on refusals. Share: the last quarter of the budget goes only to CNs that hold fewer
   * than a sixteenth of it (at MAX_WORK = 256: the last 64 to CNs with fewer than 16 running; held()),
   * so one CN (or a few) cannot take it all. (Not below a budget of 64: a share under 4 would refuse a
   * CN's ordinary pipelining.)
   */
  private admission(peer: RpcPeer, type: string, inbound: number): RpcError | undefined {
    return WORK_TYPES.has(type) && this.refused(this.held(peer, inbound)) ? this.refuse() : undefined;
  }

  /** What `peer` holds of the budget: its admitted work or its `inbound` running requests, whichever is more. */
  private held(peer: RpcPeer, inbound: number): number {
    return Math.max(inbound, this.sessionWork.get(peer) ?? 0);
  }

  /**
   * Whether new work from a session that holds `held` (held()) is refused now: the budget is taken,
   * the event loop runs late, or the session is past its share of the budget's last quarter.
   */
  private refused(held: number): boolean {
    const share = this.maxWork >> 4;
    if (share >= 4 && held >= share && this.work >= this.maxWork - (this.maxWork >> 2)) return true;
    return this.work >= this.maxWork || (this.behindUntil !== 0 && monotonicMs() < this.behindUntil);
  }

  /** Count (and now and then log) a `busy` refusal; the error to answer with. */
  private refuse(): RpcError {
    this.handovers.stats.busy++;
    if (this.handovers.stats.busy % BUSY_LOG_EVERY === 1)
      this.opts.log(LOG.error, `busy: ${this.work} requests in progress, refusing more (${this.handovers.stats.busy} refused so far)`);
    return this.busy;
  }

  /**
   * Run `fn` under `mac`'s lock if the MLR takes more work now; else refuse at once with `busy` and a
   * retry hint, so that nothing waits without bound however many CNs ask at once. (Most refusals are
   * made earlier, by the admission hook, from the same rule; this catches requests that did not pass
   * it, e.g. written in another layout.)
   */
  private admit<T>(peer: RpcPeer, mac: string, fn: () => Promise<T>): Promise<T> {
    if (this.refused(this.held(peer, peer.handling - 1))) throw this.refuse();
    this.work++;
    this.sessionWork.set(peer, (this.sessionWork.get(peer) ?? 0) + 1);
    if (this.lagTimer === undefined && this.maxLag !== Infinity) this.watchLag();
    return this.handovers.withLock(mac, fn).finally(() => {
      this.work--;
      this.sessionWork.set(peer, (this.sessionWork.get(peer) ?? 1) - 1);
    });
  }

  /**
   * As admit(), for work that may be answered before it ends (a roam's `seen`, mlr/handover.ts "Early
   * replies"): `fn` is given `answer`, and the request's reply is the first of what `answer` is given
   * and what `fn` resolves or rejects with; the station's lock and the budget (MAX_WORK) are held until
   * `fn` ends. A failure after the reply went out is logged (the MLR exits when its store fails).
   */
  private admitEarly<T>(peer: RpcPeer, mac: string, fn: (answer: (reply: T) => void) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const answer = (reply: T): void => {
        if (answered) return;
        answered = true;
        resolve(reply);
      };
      this.admit(peer, mac, () => fn(answer)).then(answer, (e: unknown) => {
        if (!answered) {
          answered = true;
          reject(e instanceof Error ? e : new Error(String(e)));
        } else {
          this.opts.log(LOG.error, `${mac}: failed after its reply was sent: ${e instanceof Error ? e.message : String(e)}`);
        }
      });
    });
  }

  /** Check the event loop's lag every LAG_CHECK_MS until no work is outstanding (then stop). */
  private watchLag(): void {
    let last = monotonicMs();
    this.lagTimer = setInterval(() => {
      const t = monotonicMs();
      // Only while work is in progress: a long synchronous task with nothing waiting is no overload.
      if (t - last - LAG_CHECK_MS > this.maxLag && this.work > 0) this.behindUntil = t + LAG_HOLD_MS;
      last = t;
      if (this.work === 0) {
        clearInterval(this.lagTimer);
        this.lagTimer = undefined;
      }
    }, LAG_CHECK_MS);
    this.lagTimer.unref();
  }

  isOnline(cn: string): boolean {
    return this.sessions.has(cn);
  }

  // ---- bind ----

  private bind(peer: RpcPeer, body: RequestBody<'bind'>, remoteAddr: string | undefined): Result<ReplyBody<'bind'>> {
    if (body.network !== this.opts.networkName) {
      return err(`network name '${body.network}' does not match this MLR's '${this.opts.networkName}'`);
    }
    const maxCns = this.opts.maxCns ?? MAX_CNS;
    if (!this.registry.cn(body.cn.name) && this.registry.allCns().length >= maxCns) {
      this.protoLog.log(`refused bind as '${body.cn.name}' from ${peer.channel.peer}: the register holds ${maxCns} CNs already`);
      return err(`this MLR knows ${maxCns} CNs already, the most it keeps`);
    }
    const pools = body.pools;
    const rec = this.registry.registerCn({ name: body.cn.name, addr: body.cn.addr, tunnels: body.tunnels, pools });
    if (!rec.ok) return rec;
    const old = this.sessions.get(body.cn.name);
    if (old && old !== peer) {
      this.opts.log(
        peer.authenticated ? LOG.info : LOG.error,
        `CN '${body.cn.name}' bound again from ${peer.channel.peer}${peer.authenticated ? ' (authenticated with its key)' : ' WITHOUT authentication'}; closing its previous connection ${old.channel.peer}`,
      );
      old.close('replaced by a new connection of the same CN');
    }
    this.sessions.set(body.cn.name, peer);
    this.registry.setOnline(body.cn.name, true);
    const first = this.syncPage(body.cn.name, {});
    this.opts.log(
      LOG.info,
      `CN '${body.cn.name}' bound from ${remoteAddr ?? '?'} (addr ${formatIPv4(body.cn.addr)}, tunnels ${body.tunnels.join(',') || 'none'}, ${pools.length} pool(s), ${this.registry.involving(body.cn.name).length} binding(s) to re-establish)`,
    );
    return ok({ ...first, leaseGrace: Math.round(this.opts.leaseGraceMs / 1000) });
  }

  // ---- DHCP ----

  private async discover(cn: string, body: RequestBody<'discover'>): Promise<ReplyBody<'discover'>> {
    let existing = this.registry.binding(body.mac);
    const now = this.now();
    if (existing && this.registry.quarantineOf(existing.cell, now)?.by === body.mac) {
      // The station declined this cell and starts over (RFC 2131 §3.1.5): it gets another.
      await this.handovers.drop(existing, `declined by ${body.mac}, which asks for a new address via ${cn}`);
      existing = undefined;
    }
    if (existing) {
      if (existing.state === 'offered') {
        const held = this.registry.put({ ...existing, expires: now + this.opts.offerHoldMs });
        if (held.ok) existing = held.value;
      }
      return { binding: this.mustView(existing) };
    }
    this.checkLimit(cn);
    this.checkOffers(cn);
    let cell: IPv4 | undefined;
    let parent: string | undefined;
    if (body.requested !== undefined) {
      const requested = this.registry.ownerOfHost(body.requested);
      if (requested && this.registry.isCellAvailable(requested.cell, now)) {
        cell = requested.cell;
        parent = requested.owner.name;
      }
    }
    if (cell === undefined) {
      const a = this.registry.allocate(cn, now);
      if (!a) throw new RpcError('exhausted', 'no free cell in any pool of the network');
      cell = a.cell;
      parent = a.parent;
    }
    const b = this.registry.put({
      mac: body.mac,
      cell,
      parent: parent!,
      current: null,
      state: 'offered',
      expires: now + this.opts.offerHoldMs,
    });
    if (!b.ok) throw new RpcError('conflict', b.error);
    this.offeredVia.set(body.mac, cn);
    this.opts.log(LOG.handover, `offer ${formatIPv4(cell + 1)} (parent ${parent}) to ${body.mac} via ${cn}`);
    // Not awaited: durable(). An offer promises nothing (RFC 2131 §4.3.1: the server need not even
    // reserve the address), and its journal record goes to disk with the next flush. A crash before
    // then loses the offer: the client's REQUEST gets the cell if it is still free (request() takes a
    // free cell for a MAC it has no binding for), else a NAK, and the client starts over. The DHCPACK
    // still waits for the disk.
    return { binding: this.mustView(b.value) };
  }

  private async request(cn: string, body: RequestBody<'request'>, replyTo?: RpcPeer): Promise<ReplyBody<'request'>> {
    const cell = cellOf(body.ip);
    if (cell.host !== body.ip) return { outcome: 'nak', reason: `${formatIPv4(body.ip)} is not a cell's host address` };
    const leaseEnd = this.now() + body.leaseTime * 1000 + this.opts.leaseGraceMs;
    const b = this.registry.binding(body.mac);
    if (b) {
      if (b.cell !== cell.network) {
        if (body.state === 'selecting') return { outcome: 'nak', reason: `${body.mac} was offered ${formatIPv4(b.cell + 1)}` };
        return { outcome: 'nak', reason: `${body.mac} is bound to ${formatIPv4(b.cell + 1)}` };
      }
      const moved = await this.handovers.move(b, cn, leaseEnd, 'dhcp', replyTo);
      if (!moved.ok) throw new RpcError('handover-failed', moved.error);
      this.pager.moved(body.mac, cn);
      return { outcome: 'ack', ...moved.value };
    }
    const owner = this.registry.ownerOfHost(body.ip);
    if (!owner) return { outcome: 'nak', reason: `${formatIPv4(body.ip)} is in no pool of this network` };
    const holder = this.registry.bindingAtCell(cell.network);
    if (holder) return { outcome: 'nak', reason: `${formatIPv4(body.ip)} is bound to ${holder.mac}` };
    if (this.registry.quarantineOf(cell.network, this.now())) {
      return { outcome: 'nak', reason: `${formatIPv4(body.ip)} was declined (in use by some host); it is quarantined` };
    }
    this.checkLimit(cn);
    const fresh: Binding = {
      mac: body.mac,
      cell: cell.network,
      parent: owner.owner.name,
      current: null,
      state: 'offered',
      expires: leaseEnd,
    };
    const moved = await this.handovers.move(fresh, cn, leaseEnd, 'dhcp', replyTo);
    if (!moved.ok) throw new RpcError('handover-failed', moved.error);
    return { outcome: 'ack', ...moved.value };
  }

  private async release(cn: string, body: RequestBody<'release'>): Promise<ReplyBody<'release'>> {
    const b = this.registry.binding(body.mac);
    if (!b || b.cell + 1 !== body.ip) return {};
    const decline = body.decline === 'yes';
    const offeredHere = decline && b.state === 'offered' && this.offeredVia.get(b.mac) === cn;
    if (b.current !== cn && !offeredHere) {
      this.protoLog.log(
        `refused ${decline ? 'decline' : 'release'} of ${body.mac} from CN '${cn}': it is served by ${b.current ?? 'no CN yet'}`,
      );
      throw new RpcError('forbidden', `${body.mac} is not served by '${cn}'`);
    }
    if (!decline) {
      await this.handovers.drop(b, `released via ${cn}`);
      return {};
    }
    const holdMs = this.opts.declineQuarantineMs ?? DEFAULT_DECLINE_QUARANTINE * 1000;
    if (holdMs > 0) this.registry.quarantine(b.cell, this.now() + holdMs, b.mac);
    this.protoLog.log(
      `${body.mac} declined ${formatIPv4(body.ip)} via ${cn} (the address is in use by some other host): cell quarantined for ${Math.round(holdMs / 1000)} s`,
    );
    if (b.state === 'offered') await this.handovers.drop(b, `declined via ${cn}`);
    await this.opts.durable?.();
    return {};
  }

  // ---- activity ----

  /**
   * `seen`: move the station to `cn` (or adopt a static host there). With `answer` (the session announced
   * FEATURES.inlineCommit), the reply carrying `cn`'s commit is given to it as soon as the commits go out.
   */
  private async seen(
    cn: string,
    body: RequestBody<'seen'>,
    replyTo?: RpcPeer,
    answer?: (reply: ReplyBody<'seen'>) => void,
  ): Promise<ReplyBody<'seen'>> {
    const early = answer && ((m: Moved): void => answer({ outcome: 'moved', ...m }));
    const b = this.registry.binding(body.mac);
    if (b && body.ip !== undefined && body.ip !== b.cell + 1) {
      return { outcome: 'refused', reason: `${body.mac} holds ${formatIPv4(b.cell + 1)}, not ${formatIPv4(body.ip)}` };
    }
    if (b && b.state === 'bound') {
      if (b.current === cn) return { outcome: 'here', binding: this.mustView(b) };
      const moved = await this.handovers.move(b, cn, b.expires, body.via, replyTo, early);
      if (!moved.ok) return { outcome: 'refused', reason: moved.error };
      this.pager.moved(body.mac, cn);
      return { outcome: 'moved', ...moved.value };
    }
    // A statically addressed host: adopt it if its address is a free cell of the network. It holds the
    // cell for one lease time of the reporting CN; after that its next ARP/IP activity adopts it again.
    if (body.ip !== undefined && body.via !== 'assoc') {
      const owner = this.registry.ownerOfHost(body.ip);
      if (owner && this.registry.isCellAvailable(owner.cell, this.now()) && (!b || b.cell === owner.cell)) {
        if (!b) this.checkLimit(cn);
        const fresh: Binding = { mac: body.mac, cell: owner.cell, parent: owner.owner.name, current: null, state: 'offered', expires: 0 };
        const expires = this.now() + (body.leaseTime ?? DEFAULT_STATIC_HOLD_S) * 1000 + this.opts.leaseGraceMs;
        const moved = await this.handovers.move(fresh, cn, expires, body.via, replyTo, early);
        if (!moved.ok) return { outcome: 'refused', reason: moved.error };
        return { outcome: 'moved', ...moved.value };
      }
    }
    return { outcome: 'unknown' };
  }

  /** Refuse a new binding through `cn` when it already has MAX_BINDINGS_PER_CN. */
  private checkLimit(cn: string): void {
    // Served here, plus offered through here (an offer has no current CN yet): no scan of the register.
    const count = this.registry.servedBy(cn) + this.offersVia(cn);
    const max = this.opts.maxBindingsPerCn ?? MAX_BINDINGS_PER_CN;
    if (count >= max) {
      this.protoLog.log(`CN '${cn}' holds ${count} bindings, the most one CN may; refusing another`);
      throw new RpcError('limit', `CN '${cn}' already holds ${count} bindings (at most ${max})`);
    }
  }

  /** Offers (offered, not yet requested) made through `cn` that still stand. */
  offersVia(cn: string): number {
    this.forgetStaleOffers();
    let n = 0;
    for (const via of this.offeredVia.values()) if (via === cn) n++;
    return n;
  }

  /** Forget where offers were made once they are no longer offers (requested, dropped, lapsed). */
  private forgetStaleOffers(): void {
    for (const mac of this.offeredVia.keys()) if (this.registry.binding(mac)?.state !== 'offered') this.offeredVia.delete(mac);
  }

  /** Refuse a new offer through `cn` when it already holds maxOffersPerCn of them. */
  private checkOffers(cn: string): void {
    const max = this.opts.maxOffersPerCn ?? DEFAULT_MAX_OFFERS;
    const n = this.offersVia(cn);
    if (n >= max) {
      this.protoLog.log(`CN '${cn}' holds ${n} offered cells, the most it may (max_offers); refusing another`);
      throw new RpcError(
        'offer-limit',
        `CN '${cn}' already holds ${n} offered cells not yet requested (max_offers ${max}); each lapses after offer_hold ${Math.round(this.opts.offerHoldMs / 1000)} s`,
      );
    }
  }

  /** Drop every expired binding. Called periodically. */
  async expire(): Promise<number> {
    const now = this.now();
    const due = this.registry.allBindings().filter((b) => b.expires <= now);
    for (const b of due) {
      await this.handovers.withLock(b.mac, async () => {
        const still = this.registry.binding(b.mac);
        if (still && still.expires <= now) await this.handovers.drop(still, 'expired');
      });
    }
    return due.length;
  }

  /**
   * One page of what involves `cn` (the bind reply is the first): bindings with a MAC after
   * `bindingsAfter` and peers with a name after `peersAfter`, each in that order. A list whose cursor
   * is absent while the other's is given is complete already: nothing of it is sent again.
   */
  syncPage(cn: string, body: RequestBody<'sync'>): ReplyBody<'sync'> {
    const resuming = body.bindingsAfter !== undefined || body.peersAfter !== undefined;
    const out: ReplyBody<'sync'> = { bindings: [], peers: [] };
    if (!resuming || body.bindingsAfter !== undefined) {
      const page = pageOf(this.registry.involving(cn), (b) => b.mac, body.bindingsAfter, PAGE.bindings);
      out.bindings = this.views(page.items);
      if (page.next !== undefined) out.bindingsNext = page.next;
    }
    if (!resuming || body.peersAfter !== undefined) {
      const others = this.registry.allCns().filter((c) => c.name !== cn);
      const page = pageOf(others, (c) => c.name, body.peersAfter, PAGE.peers);
      out.peers = page.items.map((c) => ({ name: c.name, addr: c.addr }));
      if (page.next !== undefined) out.peersNext = page.next;
    }
    return out;
  }

  /**
   * The register, one page of CNs and one of bindings (once paging, a list whose cursor is absent is
   * complete and not sent again). The MLR's whole key order is sorted once and
   * kept for STATUS_ORDER_MS, so that walking 100,000 bindings costs one sort, not one per page;
   * every page reads the values current when it is asked for (a binding gone meanwhile is skipped).
   */
  status(body: RequestBody<'status'> = {}): ReplyBody<'status'> {
    const now = this.clock();
    if (!this.statusOrder || now - this.statusOrder.at > STATUS_ORDER_MS) {
      this.statusOrder = {
        at: now,
        macs: this.registry
          .allBindings()
          .map((b) => b.mac)
          .sort(),
        cns: this.registry
          .allCns()
          .map((c) => c.name)
          .sort(),
      };
    }
    const order = this.statusOrder;
    // As in sync: once paging, a list whose cursor is absent is complete and is not sent again.
    const resuming = body.cnsAfter !== undefined || body.bindingsAfter !== undefined;
    const none: { items: never[]; next?: string } = { items: [] };
    const cnPage =
      resuming && body.cnsAfter === undefined
        ? none
        : pageOfSorted(
            order.cns,
            body.cnsAfter,
            PAGE.cns,
            (name) => this.registry.cn(name),
            (c) => c.pools.reduce((n, p) => n + 100 + p.exclude.length * 18, 150),
          );
    const bindingPage =
      resuming && body.bindingsAfter === undefined
        ? none
        : pageOfSorted(
            order.macs,
            body.bindingsAfter,
            PAGE.bindings,
            (mac) => this.registry.binding(mac),
            () => 300,
          );
    return {
      cns: cnPage.items.map((c) => ({ name: c.name, addr: c.addr, online: this.sessions.has(c.name) ? 'yes' : 'no', pools: c.pools })),
      bindings: this.views(bindingPage.items),
      ...(cnPage.next !== undefined ? { cnsNext: cnPage.next } : {}),
      ...(bindingPage.next !== undefined ? { bindingsNext: bindingPage.next } : {}),
    };
  }

  private views(bs: Binding[]): BindingView[] {
    const out: BindingView[] = [];
    for (const b of bs) {
      const v = this.registry.view(b);
      if (v.ok) out.push(v.value);
      else this.opts.log(LOG.error, v.error);
    }
    return out;
  }

  private mustView(b: Binding): BindingView {
    const v = this.registry.view(b);
    if (!v.ok) throw new RpcError('internal', v.error);
    return v.value;
  }
}
