// SPDX-License-Identifier: GPL-2.0-only
// The MLR's side of a handover: one transaction per move of a mobile station, run under that
// station's lock, over the CNs that take part (new current, parent, old current).
//
//   locked ──> [probing + preparing] ──> stored ──> committing ──> done
//                        │                   │
//                        └───────────────────┴──────> rolled-back
//
// Most moves prepare nothing: locked, stored, committing, done. A CN's `prepare` (cn/handover.ts)
// only reserves the station and creates the tunnel ahead, and it can refuse only for reasons the
// MLR has ruled out already ('not-involved': the MLR picks the participants; 'no-tunnel': it picks a
// tunnel type both ends announced at bind; 'busy': a stale reservation, while the MLR holds the
// station's lock); a commit that arrives without a prepare is applied all the same (the CN creates
// the tunnel then). So only a probed move (below) prepares: its prepares run beside the probe, which
// waits at least PROBE_TIMEOUT_MS at the previous CN anyway, and in that wait the new current CN and
// the parent build the tunnel the commit needs (when it is not there yet): the commit then only adds
// addresses and routes. A duplicate found by the probe aborts them.
//
// Durable before acknowledged, and what may go out before (issue 11):
// - A move of a binding that is bound already (a roam: `seen`, or a DHCP REQUEST from a bound client
//   at another CN) allocates and frees no cell, so its commits go out as soon as the registry is
//   written, beside the journal's fdatasync (`durable()`). A crash before the disk has it loses at
//   most the location: the binding, its cell and lease are durable from before; after the restart
//   the CNs re-bind to the registry's last durable state (a CN that applied the lost move drops it
//   then), and the station's next frame or association at its new CN moves it again.
// - What acknowledges something to a client waits for the disk: a DHCPACK (a `request`'s reply,
//   which may extend a lease) and a `seen` reply to a CN without FEATURES.inlineCommit come only
//   once the change is durable (the transaction awaits both the commits and `durable()`).
// - A `seen` reply to a CN with FEATURES.inlineCommit is a commit (below, "Inline commits") and is
//   sent as one: for a roam beside the other commits and the fdatasync, so it does NOT say the move
//   is durable; the crash argument above covers it as it covers the commits. The CN only applies the
//   binding it carries (cn/handover.ts); no client is told anything by it.
// - Whatever allocates or frees a cell (a new client's DHCP REQUEST, an adopted static host, a
//   release, a decline, an expiry: `drop`) is durable before any CN is told or any reply is sent
//   (RFC 2131: the lease on stable storage before the DHCPACK).
// - Commits for one station reach each CN in transaction order: a transaction holds the station's
//   lock until its commits are answered and the change is durable (an early reply goes out before
//   that, under the lock), and reconciles take it too.
//
// Inline commits (core/messages.ts FEATURES.inlineCommit, issue 11): when the new current CN
// announced the feature and is still on the session its request came on (`replyTo`), no commit is
// sent to it; the reply carries the transaction's id with the binding, and the CN applies that as
// the commit (before answering its client, for a DHCP REQUEST). Two cases:
// - a `seen` (the caller passes `replyNow`): always, and the reply goes out when the commits would
//   (beside the other participants' commits: a roam is `seen` + reply and one commit + reply per
//   other participant, not two); the transaction goes on under the lock until those commits are
//   answered and the change is durable, as above.
// - a DHCP `request`: only when the new current CN is the only participant online (a new client at
//   its home CN, a move whose other participants are offline); the reply waits for the disk. A
//   renewal at that CN gets an id too (its reply re-states the binding).
// Ids come from one counter per MLR process (`nextTx`), taken under the station's lock, and `remove`s
// carry one as well: within one CN session they order a station's commits, removes and such
// replies, which the CN needs because a reply may be written after the lock is released (a later
// transaction's commit can overtake it). A new session (a re-bind, a restarted or other MLR) starts
// the CN's ordering afresh.
//
// Presence check, the `probing` phase: a move detected by the station's traffic alone
// (`via` 'arp' or 'ip': no association event, no DHCP from it) of a binding that is bound at another
// CN also asks that previous current CN, when it is online, to `probe` its cell, at the same time as
// the participants are asked to `prepare`: it sends a unicast ARP request for N+1 from N+2 and waits
// up to PROBE_TIMEOUT_MS (cn/handover.ts). The station answering there means the frames in the new
// cell carry a duplicate of its MAC (and IP): the move is rolled back, every participant asked to
// prepare gets `abort` (once its prepare is answered), the registry is untouched, and the refusal is
// logged at error level as "duplicate MAC" (at most DUPLICATE_LOG_BURST lines per interval, then a
// summary). Every other outcome proceeds with the move, as before the check existed (fail open): no
// answer, the previous CN offline, an error, or no reply within PROBE_RPC_TIMEOUT_MS (clipped to the
// transaction's deadline). Moves via 'assoc', 'dhcp' or 'restore' are never probed: association (or
// the client's own DHCP exchange) decides, as before.
//
// Rules, one per failure:
// - The new current CN is offline: rolled back at once (nobody was asked anything).
// - The previous current CN says the station still answers in its cell (probe): rolled back at once
//   (the prepared participants get abort); a probe that fails or times out lets the move proceed.
// - Another participant is offline: skipped; it learns the binding when it binds again. So is one
//   whose session ends while it is asked to prepare (the heartbeat, proto/rpc.ts, closes a silent
//   CN's session within DEFAULT_HEARTBEAT.missMs): the move goes on without it. The commit goes to
//   every participant connected when the commits go out.
// - A probed move only: a participant refuses `prepare`, or does not answer before its time-out:
//   every participant that was asked gets `abort` (not awaited: a CN also drops an unconfirmed
//   reservation by itself), the registry is untouched, the move is refused. The lock is free again
//   at once. (A move that is not probed asks nothing before the registry write: a CN that is hung
//   or refuses is found at its commit, the rule below.)
// - The registry refuses the write (the cell was taken meanwhile): refused; a probed move aborts
//   its prepares as above.
// - A participant fails `commit` after the registry was written (an error, a time-out; also the
//   new current CN): the registry stays as written — it is the truth — and that CN is reconciled:
//   the binding as the registry holds it *then* is re-sent as a commit (or a remove, when it is
//   gone) after 0.2 s, 1 s and 5 s; if every retry fails its session is closed, so it re-binds and
//   re-applies everything the MLR says involves it. The move itself is reported as done.
// - The write does not become durable (`durable()` rejects: the store failed, and the MLR exits to
//   be restarted from the disk): the move is not acknowledged (its request fails), even when its
//   commits went out already; the restarted MLR has the station where the disk has it. A `seen`
//   answered early was answered already: as for its commits, the restart puts things right (a crash).
// - Inline commit: the CN fails to apply what the reply carries: the CN retries by itself and then
//   re-binds (cn/handover.ts), as a reconcile would. The reply is lost (the session closed, or the
//   CN gave up waiting for it, and then re-binds: cn/handover.ts): the registry has the binding, and
//   the CN's next bind reply carries it, once durable (a CN that re-bound during the transaction is
//   no longer on `replyTo`'s session and got a commit instead). A later
//   transaction's commit or remove arrives before the reply: the CN ignores the older reply (its tx).
// - Deadline: every phase's time-out is clipped to the transaction's deadline, so one dead CN holds
//   a station's lock for at most `deadlineMs` (a commit gets at least MIN_COMMIT_MS); other
//   stations' moves never wait for it.
// Allocation-light: per-move log lines are built only when the log level wants them (`logLevel`),
// participants are collected without intermediate sets, and one body object serves every prepare and
// commit of a move (proto/rpc.ts encodes it once).
import { involves, type BindingView, type CnRef } from '../core/binding.js';
import { formatIPv4, type Mac } from '../core/ip.js';
import type { ReplyBody, RequestBody, RequestType } from '../core/messages.js';
import type { Binding, Registry } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';
import { LOG, type LogFn } from '../platform/log.js';
import { RateLimitedLog } from '../proto/auth.js';

export type TxPhase = 'locked' | 'probing' | 'preparing' | 'stored' | 'committing' | 'done' | 'rolled-back';

/** What the handover needs of a connected CN (RpcPeer is one). */
export interface CnSession {
  request<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs?: number): Promise<ReplyBody<T>>;
  close(reason: string): void;
}

export interface HandoverOptions {
  registry: Registry;
  /** The session of a connected CN, or undefined when it is offline. */
  session: (cn: string) => CnSession | undefined;
  log: LogFn;
  now: () => number;
  /**
   * Resolves once every registry change made so far is on disk (mlr/persistence.ts). Awaited after the
   * registry write and before anything acknowledges it: a move's or renewal's reply, the removes, and
   * the commits of a move that allocates a cell (a roam's commits go out beside it: see the header).
   */
  durable?: () => Promise<void>;
  prepareTimeoutMs?: number;
  commitTimeoutMs?: number;
  /** How long the MLR waits for the previous CN's `probe` reply (its own wait plus the round trip). */
  probeTimeoutMs?: number;
  /** The longest a transaction holds its station's lock. */
  deadlineMs?: number;
  /** Delays of the reconcile retries after a failed commit; then the CN's session is closed. */
  reconcileDelaysMs?: readonly number[];
  /**
   * Did `cn` report lately that `mac` left its cell (`lost`, mlr/paging.ts)? Then the presence check
   * at that CN is skipped: it has just said the station is not there.
   */
  reportedGone?: (mac: Mac, cn: string) => boolean;
  /**
   * The log level in force (platform/log.ts): per-move lines (LOG.handover) are not even built below it.
   * Undefined: build them all and let `log` filter.
   */
  logLevel?: number;
}

/**
 * A move that was made: the binding as committed, and `tx` when the commit to the new current CN was
 * not sent because the caller's reply carries it (the inline commit, core/messages.ts FEATURES).
 */
export interface Moved {
  binding: BindingView;
  tx?: number;
}

/** One transaction, as it goes. Kept in `active` while it runs (status and tests). */
export interface HandoverTx {
  id: number;
  mac: Mac;
  to: string;
  via: string;
  phase: TxPhase;
  participants: string[];
  startedAt: number;
  deadline: number;
}

/**
 * The MLR's wait for a probe reply. The CN itself waits at most PROBE_TIMEOUT_MS (10 ms) for the
 * station; the rest is the backbone round trip and a busy CN. Past it the move proceeds (fail open).
 */
export const PROBE_RPC_TIMEOUT_MS = 500;
/** Duplicate-MAC refusals, for all stations together: this many log lines per interval, then one summary. */
const DUPLICATE_LOG_BURST = 2;
const DUPLICATE_LOG_INTERVAL_MS = 60_000;
/** The detections that carry no association information and so are checked by a probe. */
const PROBED_VIA: ReadonlySet<string> = new Set(['arp', 'ip']);

const DEFAULTS = {
  prepareTimeoutMs: 3000,
  commitTimeoutMs: 3000,
  probeTimeoutMs: PROBE_RPC_TIMEOUT_MS,
  deadlineMs: 8000,
  reconcileDelaysMs: [200, 1000, 5000],
  durable: (): Promise<void> => Promise.resolve(),
};
/** A commit is always given at least this long, even when the deadline is nearly spent. */
const MIN_COMMIT_MS = 250;
const NOBODY: readonly string[] = [];
const ignore = (): undefined => undefined;
/** A duration for the log: whole milliseconds, or tenths below 10 (the clock has sub-millisecond steps). */
const ms = (d: number): string => (d < 10 ? d.toFixed(1) : String(Math.round(d)));
const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

function reason(r: PromiseSettledResult<unknown>): string {
  if (r.status === 'fulfilled') return 'ok';
  return r.reason instanceof Error ? r.reason.message : String(r.reason);
}

export class Handovers {
  private readonly locks = new Map<Mac, Promise<unknown>>();
  private nextTx = 1;
  readonly active = new Map<number, HandoverTx>();
  /** `busy`: requests refused because the MLR had as much work as it takes (mlr/service.ts). */
  readonly stats = { done: 0, rolledBack: 0, reconciled: 0, reconcileFailed: 0, probed: 0, duplicates: 0, busy: 0 };
  /** Whether per-move log lines are wanted (built only then: the hot path allocates no text it drops). */
  private readonly verbose: boolean;
  private readonly duplicateLog: RateLimitedLog;
  private readonly reconciling = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly o: Required<Omit<HandoverOptions, 'reconcileDelaysMs' | 'reportedGone' | 'logLevel'>> &
    Pick<HandoverOptions, 'reportedGone'> & { reconcileDelaysMs: readonly number[] };

  constructor(opts: HandoverOptions) {
    this.o = { ...DEFAULTS, ...opts };
    this.verbose = opts.logLevel === undefined || opts.logLevel >= LOG.handover;
    this.duplicateLog = new RateLimitedLog(
      (m) => this.o.log(LOG.error, m),
      this.o.now,
      DUPLICATE_LOG_BURST,
      DUPLICATE_LOG_INTERVAL_MS,
      'moves refused as duplicate MAC',
    );
  }

  /** Run `fn` when every earlier transaction of `mac` has finished. */
  withLock<T>(mac: Mac, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(mac);
    let next: Promise<T>;
    if (prev !== undefined) next = prev.then(fn, fn);
    else {
      // Nobody holds the lock: start at once (no extra turn of the microtask queue).
      try {
        next = fn();
      } catch (e) {
        next = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    const release = (): void => {
      if (this.locks.get(mac) === tail) this.locks.delete(mac);
    };
    const tail: Promise<void> = next.then(release, release);
    this.locks.set(mac, tail);
    return next;
  }

  /** Stations with a transaction running or waiting (for tests and status). */
  get lockedStations(): number {
    return this.locks.size;
  }

  /** Stop reconcile timers (MLR shutting down). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * Make `to` the current CN of `b` (call with the station's lock held). Resolves with the committed
   * view, or an error saying why the move was rolled back. `replyTo`: the session of `to` the caller
   * answers on, when it announced FEATURES.inlineCommit: if `to` is then the only CN to be told (and
   * still on that session), no commit is sent and the result's `tx` goes into the reply instead; a
   * renewal at `to` gets a `tx` too, so that its reply re-states the binding. `replyNow` (a `seen`,
   * with `replyTo`): `to`'s commit goes in the reply whoever else is told, and `replyNow` gets it the
   * moment the commits go out; the promise still resolves (with the same) only when the transaction
   * ends, which is when the caller frees the station's lock.
   */
  async move(
    b: Binding,
    to: string,
    expires: number,
    via: string,
    replyTo?: CnSession,
    replyNow?: (moved: Moved) => void,
  ): Promise<Result<Moved>> {
    const { registry } = this.o;
    const proposed: Binding = { mac: b.mac, cell: b.cell, parent: b.parent, current: to, state: 'bound', expires };
    const view = registry.view(proposed);
    if (!view.ok) return view;
    const previousName = b.state === 'bound' ? b.current : null;
    if (previousName === to) {
      // Already here: a renewal only extends the expiry; no CN changes anything.
      const stored = registry.put(proposed);
      if (!stored.ok) return stored;
      await this.o.durable();
      if (replyTo !== undefined && this.o.session(to) === replyTo) return ok({ binding: view.value, tx: this.nextTx++ });
      return ok({ binding: view.value });
    }
    const previous: CnRef | null = previousName !== null ? registry.cnRef(previousName) : null;
    // The participants, each once: the new current CN, the parent, the previous current CN.
    const names = [to];
    if (b.parent !== to) names.push(b.parent);
    if (previous && previous.name !== to && previous.name !== b.parent) names.push(previous.name);
    const online: string[] = [];
    for (const n of names) if (this.o.session(n) !== undefined) online.push(n);
    const now = this.o.now();
    const tx: HandoverTx = {
      id: this.nextTx++,
      mac: b.mac,
      to,
      via,
      phase: 'locked',
      participants: online,
      startedAt: now,
      deadline: now + this.o.deadlineMs,
    };
    if (this.verbose) {
      const t = view.value.tunnel;
      this.o.log(
        LOG.handover,
        `tx ${tx.id}: ${b.mac} ${formatIPv4(b.cell + 1)} -> ${to} (via ${via}; parent ${b.parent}, previous ${previousName ?? 'none'}, ` +
          `tunnel ${t ? `${t.type} key ${t.key}` : 'none'}; offline: ${names.filter((n) => !online.includes(n)).join(',') || 'none'})`,
      );
    }
    if (online[0] !== to) return this.rollBack(tx, NOBODY, `CN '${to}' is not connected`);
    this.active.set(tx.id, tx);
    try {
      const body = { tx: tx.id, binding: view.value, previous };
      // The presence check (a traffic-detected move away from an online CN), with `prepare` beside it.
      const probed =
        previous !== null && PROBED_VIA.has(via) && online.includes(previous.name) && !this.o.reportedGone?.(b.mac, previous.name);
      if (probed) {
        const refused = await this.probeAndPrepare(tx, online, body, previous.name, b.cell + 1);
        if (refused !== undefined) return refused;
      }
      // Not probed: nothing to prepare (see the header); straight to the registry and the commits.

      const stored = registry.put(proposed);
      if (!stored.ok) return this.rollBack(tx, probed ? online : NOBODY, `handover aborted: ${stored.error}`);
      tx.phase = 'stored';
      const storedAt = this.verbose ? this.o.now() : 0;
      let durableAt = 0;
      const onDurable = this.verbose ? (): undefined => void (durableAt = this.o.now()) : ignore;
      // A bound binding's move allocates no cell: its commits go out beside the fdatasync (header).
      let durable: Promise<Error | undefined> | undefined;
      if (b.state === 'bound') durable = this.o.durable().then(onDurable, asError);
      else {
        await this.o.durable();
        onDurable();
      }

      tx.phase = 'committing';
      const commitMs = Math.max(MIN_COMMIT_MS, this.phaseTimeout(tx, this.o.commitTimeoutMs));
      // Every participant connected now (one that went offline while preparing and bound again since
      // gets the commit on its new session; one still offline learns the move from its next bind reply).
      let committers = names.filter((n) => this.o.session(n) !== undefined);
      // `to` on the session the reply goes out on: the reply carries its commit, when `to` is the only
      // CN to tell or the reply may go out now (`replyNow`, a `seen`: beside the other commits).
      const inline = replyTo !== undefined && (replyNow !== undefined || committers.length === 1) && this.o.session(to) === replyTo;
      if (inline) committers = committers.filter((n) => n !== to);
      tx.participants = committers;
      const commits = Promise.allSettled(committers.map((n) => this.ask(n, 'commit', body, commitMs)));
      // The early reply: it goes out now, beside the commits, before their answers and the disk (header).
      if (inline && replyNow !== undefined) replyNow({ binding: view.value, tx: tx.id });
      const committed = await commits;
      const answeredAt = this.verbose ? this.o.now() : 0;
      for (let i = 0; i < committed.length; i++) {
        const r = committed[i]!;
        if (r.status === 'fulfilled') continue;
        const cn = committers[i]!;
        this.o.log(
          LOG.error,
          `tx ${tx.id}: ${cn} failed to commit (${reason(r)}); the registry keeps the move and ${cn} will be reconciled`,
        );
        this.reconcile(cn, b.mac, view.value);
      }
      // Nothing acknowledges the move (the caller's reply) before it is on disk.
      const notDurable = durable && (await durable);
      if (notDurable) throw notDurable;
      tx.phase = 'done';
      this.stats.done++;
      if (this.verbose) {
        const t = this.o.now();
        this.o.log(
          LOG.handover,
          `tx ${tx.id}: committed ${b.mac} at ${to} in ${ms(t - tx.startedAt)} ms (stored at ${ms(storedAt - tx.startedAt)}, durable at ` +
            `${ms(durableAt - tx.startedAt)}${durable ? '' : ', before the commits'}, ` +
            `${inline ? (replyNow ? `commit in the reply, sent ${committers.length > 0 ? 'beside the others' : 'at once'}; ` : 'commit in the reply, ') : ''}` +
            `${committers.length > 0 ? `commits answered at ${ms(answeredAt - tx.startedAt)}` : 'no other commit'})`,
        );
      }
      return ok(inline ? { binding: view.value, tx: tx.id } : { binding: view.value });
    } finally {
      this.active.delete(tx.id);
    }
  }

  /**
   * A probed move's presence check at the previous CN `at`, beside `prepare` to every online
   * participant. Resolves with the move's refusal when it is rolled back (a duplicate, a refused or
   * unanswered prepare), undefined when it may go on.
   */
  private async probeAndPrepare(
    tx: HandoverTx,
    online: readonly string[],
    body: RequestBody<'prepare'>,
    at: string,
    host: number,
  ): Promise<Result<Moved> | undefined> {
    tx.phase = 'probing';
    const probing = this.probe(tx, at, host);
    const asked = this.prepareAll(tx, online, body);
    const duplicateAt = await probing;
    if (duplicateAt !== undefined) {
      // Abort whoever was asked to prepare once their answers are in (an abort before its prepare would miss it).
      void asked.then(() => this.abortAll(tx, online));
      return this.refuseDuplicate(tx, duplicateAt);
    }
    tx.phase = 'preparing';
    const prepared = await asked;
    if (typeof prepared === 'string') return this.rollBack(tx, online, `handover aborted: ${prepared}`);
    if (prepared && this.verbose) this.o.log(LOG.handover, `tx ${tx.id}: ${prepared.join(',')} went offline while preparing: skipped`);
    return undefined;
  }

  /**
   * `prepare` to every online participant. Resolves with the participants other than the new current
   * CN whose session ended while they were asked (the heartbeat found them silent: hung, powered off,
   * cut off; skipped as if they had been offline from the start, they learn the binding when they bind
   * again), undefined when there are none, or the refusals as one string.
   */
  private async prepareAll(
    tx: HandoverTx,
    online: readonly string[],
    body: RequestBody<'prepare'>,
  ): Promise<string[] | string | undefined> {
    const timeout = this.phaseTimeout(tx, this.o.prepareTimeoutMs);
    const askedSessions = online.map((n) => this.o.session(n));
    const prepared = await Promise.allSettled(online.map((n) => this.ask(n, 'prepare', body, timeout)));
    let wentOffline: string[] | undefined;
    let refusals: string | undefined;
    for (let i = 0; i < prepared.length; i++) {
      const r = prepared[i]!;
      if (r.status === 'fulfilled') continue;
      const n = online[i]!;
      if (n !== tx.to && this.o.session(n) !== askedSessions[i]) (wentOffline ??= []).push(n);
      else refusals = `${refusals === undefined ? '' : `${refusals}; `}${n}: ${reason(r)}`;
    }
    return refusals ?? wentOffline;
  }

  /** Remove a binding (call with the station's lock held) and tell its parent and current CN to withdraw. */
  async drop(b: Binding, why: string): Promise<void> {
    const { registry, log } = this.o;
    const view = registry.view(b);
    registry.remove(b.mac);
    await this.o.durable();
    if (this.verbose) log(LOG.handover, `binding ${b.mac} ${formatIPv4(b.cell + 1)} removed (${why})`);
    if (!view.ok || b.state !== 'bound') return;
    const names = b.current !== null && b.current !== b.parent ? [b.parent, b.current] : [b.parent];
    const body = { binding: view.value, tx: this.nextTx++ };
    const results = await Promise.allSettled(names.map((n) => this.ask(n, 'remove', body, this.o.commitTimeoutMs)));
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.reconcile(names[i]!, b.mac, view.value);
    });
  }

  /**
   * Ask `cn` whether the station still answers at `host` in its cell. Resolves with `cn` when it does,
   * undefined otherwise (no answer, an error, a time-out: the move proceeds).
   */
  private async probe(tx: HandoverTx, cn: string, host: number): Promise<string | undefined> {
    this.stats.probed++;
    const started = this.o.now();
    try {
      const r = await this.ask(cn, 'probe', { mac: tx.mac, ip: host }, this.phaseTimeout(tx, this.o.probeTimeoutMs));
      if (this.verbose)
        this.o.log(
          LOG.handover,
          `tx ${tx.id}: probe at ${cn}: ${tx.mac} ${r.present === 'yes' ? 'answers' : 'does not answer'} (${ms(this.o.now() - started)} ms)`,
        );
      return r.present === 'yes' ? cn : undefined;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.o.log(LOG.handover, `tx ${tx.id}: probe at ${cn} failed (${why}); moving on without it`);
      return undefined;
    }
  }

  /** The station answered in its old cell: the frames that asked for the move carry a duplicate MAC. */
  private refuseDuplicate(tx: HandoverTx, at: string): Result<Moved> {
    tx.phase = 'rolled-back';
    this.stats.rolledBack++;
    this.stats.duplicates++;
    const why = `duplicate MAC: ${tx.mac} still answers at ${at}`;
    this.duplicateLog.log(`tx ${tx.id}: rolled back (${why}; move to ${tx.to} via ${tx.via} refused)`);
    return err(why);
  }

  private phaseTimeout(tx: HandoverTx, phaseMs: number): number {
    return Math.max(1, Math.min(phaseMs, tx.deadline - this.o.now()));
  }

  private ask<T extends RequestType>(cn: string, type: T, body: RequestBody<T>, timeoutMs: number): Promise<ReplyBody<T>> {
    const s = this.o.session(cn);
    if (!s) return Promise.reject(new Error(`${cn} went offline`));
    return s.request(type, body, timeoutMs);
  }

  private rollBack(tx: HandoverTx, asked: readonly string[], why: string): Result<Moved> {
    tx.phase = 'rolled-back';
    this.stats.rolledBack++;
    this.o.log(LOG.error, `tx ${tx.id}: rolled back (${why})`);
    this.abortAll(tx, asked);
    return err(why);
  }

  /** `abort` to every CN asked to prepare `tx` (not awaited: a CN also drops an unconfirmed reservation by itself). */
  private abortAll(tx: HandoverTx, asked: readonly string[]): void {
    for (const n of asked) this.ask(n, 'abort', { tx: tx.id }, this.o.prepareTimeoutMs).catch(ignore);
  }

  /**
   * Bring `cn` back in line with the registry about `mac` after it failed a commit or a remove: re-send
   * what the registry holds then, with back-off; when every retry fails, close its session so it re-binds.
   */
  private reconcile(cn: string, mac: Mac, last: BindingView, attempt = 0): void {
    const key = `${cn}\u0000${mac}`;
    if (attempt === 0) {
      if (this.reconciling.has(key)) return;
      this.reconciling.add(key);
    }
    const delays = this.o.reconcileDelaysMs;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.withLock(mac, async () => {
        const session = this.o.session(cn);
        if (!session) {
          // Offline now: the bind that brings it back carries every binding that involves it.
          this.reconciling.delete(key);
          return;
        }
        const current = this.o.registry.binding(mac);
        const view = current ? this.o.registry.view(current) : undefined;
        try {
          if (view?.ok) await session.request('commit', { tx: this.nextTx++, binding: view.value, previous: null }, this.o.commitTimeoutMs);
          else await session.request('remove', { binding: last, tx: this.nextTx++ }, this.o.commitTimeoutMs);
          this.reconciling.delete(key);
          this.stats.reconciled++;
          const what = view?.ok ? (involves(view.value, cn) ? 'applied' : 'withdrawn') : 'removed';
          this.o.log(LOG.info, `reconcile: ${cn} now has ${mac} ${what} as the registry holds it`);
        } catch (e) {
          const why = e instanceof Error ? e.message : String(e);
          if (attempt + 1 < delays.length) {
            this.o.log(LOG.error, `reconcile: ${cn} still fails for ${mac} (${why}); retrying`);
            this.reconcile(cn, mac, last, attempt + 1);
          } else {
            this.reconciling.delete(key);
            this.stats.reconcileFailed++;
            this.o.log(LOG.error, `reconcile: ${cn} failed ${delays.length} times for ${mac} (${why}); closing its session so it re-binds`);
            session.close('reconcile failed: re-bind to re-apply every binding');
          }
        }
      });
    }, delays[attempt] ?? 0);
    timer.unref?.();
    this.timers.add(timer);
  }
}
