// SPDX-License-Identifier: GPL-2.0-only
// The MLR's side of a handover: one transaction per move of a mobile station, run under that
// station's lock, over the CNs that take part (new current, parent, old current).
//
//   locked ──> [probing] ──> preparing ──> stored ──> committing ──> done
//                  │              │            │
//                  └──────────────┴────────────┴──────> rolled-back
//
// Presence check, the `probing` phase: a move detected by the station's traffic alone
// (`via` 'arp' or 'ip': no association event, no DHCP from it) of a binding that is bound at another
// CN first asks that previous current CN, when it is online, to `probe` its cell: it sends a unicast
// ARP request for N+1 from N+2 and waits up to PROBE_TIMEOUT_MS (cn/handover.ts). The station
// answering there means the frames in the new cell carry a duplicate of its MAC (and IP): the move is
// rolled back before anybody is prepared, the registry is untouched, and the refusal is logged at
// error level as "duplicate MAC" (at most DUPLICATE_LOG_BURST lines per interval, then a
// summary). Every other outcome proceeds with the move, as before the check existed (fail open): no
// answer, the previous CN offline, an error, or no reply within PROBE_RPC_TIMEOUT_MS (clipped to the
// transaction's deadline). Moves via 'assoc', 'dhcp' or 'restore' are never probed: association (or
// the client's own DHCP exchange) decides, as before.
//
// Rules, one per failure:
// - The new current CN is offline: rolled back at once (nobody was asked anything).
// - The previous current CN says the station still answers in its cell (probe): rolled back at once
//   (nobody was prepared); a probe that fails or times out lets the move proceed.
// - Another participant is offline: skipped; it learns the binding when it binds again. So is one
//   whose session ends while it is asked to prepare (the heartbeat, proto/rpc.ts, closes a silent
//   CN's session within DEFAULT_HEARTBEAT.missMs): the move goes on without it.
// - A participant refuses `prepare`, or does not answer before its time-out: every participant that
//   was asked gets `abort` (not awaited: a CN also drops an unconfirmed reservation by itself), the
//   registry is untouched, the move is refused. The lock is free again at once.
// - The registry refuses the write (the cell was taken meanwhile): abort as above.
// - A participant fails `commit` after the registry was written (an error, a time-out): the registry
//   stays as written — it is the truth — and that CN is reconciled: the binding as the registry
//   holds it *then* is re-sent as a commit (or a remove, when it is gone) after 0.2 s, 1 s and 5 s;
//   if every retry fails its session is closed, so it re-binds and re-applies everything the MLR
//   says involves it. The move itself is reported as done.
// - Deadline: every phase's time-out is clipped to the transaction's deadline, so one dead CN holds
//   a station's lock for at most `deadlineMs`; other stations' moves never wait for it.
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
   * registry write and before anything acknowledges it: the commits, the removes, a renewal's reply.
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

function reason(r: PromiseSettledResult<unknown>): string {
  if (r.status === 'fulfilled') return 'ok';
  return r.reason instanceof Error ? r.reason.message : String(r.reason);
}

export class Handovers {
  private readonly locks = new Map<Mac, Promise<unknown>>();
  private nextTx = 1;
  readonly active = new Map<number, HandoverTx>();
  readonly stats = { done: 0, rolledBack: 0, reconciled: 0, reconcileFailed: 0, probed: 0, duplicates: 0 };
  private readonly duplicateLog: RateLimitedLog;
  private readonly reconciling = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly o: Required<Omit<HandoverOptions, 'reconcileDelaysMs' | 'reportedGone'>> &
    Pick<HandoverOptions, 'reportedGone'> & { reconcileDelaysMs: readonly number[] };

  constructor(opts: HandoverOptions) {
    this.o = { ...DEFAULTS, ...opts };
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
    const prev = this.locks.get(mac) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(mac, tail);
    void tail.then(() => {
      if (this.locks.get(mac) === tail) this.locks.delete(mac);
    });
    return next;
  }

  /** Stop reconcile timers (MLR shutting down). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * Make `to` the current CN of `b` (call with the station's lock held). Resolves with the committed
   * view, or an error saying why the move was rolled back.
   */
  async move(b: Binding, to: string, expires: number, via: string): Promise<Result<BindingView>> {
    const { registry, log } = this.o;
    const proposed: Binding = { ...b, current: to, state: 'bound', expires };
    const view = registry.view(proposed);
    if (!view.ok) return view;
    const previousName = b.state === 'bound' ? b.current : null;
    if (previousName === to) {
      // Already here: a renewal only extends the expiry; no CN changes anything.
      const stored = registry.put(proposed);
      if (!stored.ok) return stored;
      await this.o.durable();
      return ok(view.value);
    }
    const previous: CnRef | null = previousName !== null ? registry.cnRef(previousName) : null;
    const names = [...new Set([to, b.parent, ...(previous ? [previous.name] : [])])];
    const online = names.filter((n) => this.o.session(n) !== undefined);
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
    const t = view.value.tunnel;
    log(
      LOG.handover,
      `tx ${tx.id}: ${b.mac} ${formatIPv4(b.cell + 1)} -> ${to} (via ${via}; parent ${b.parent}, previous ${previousName ?? 'none'}, ` +
        `tunnel ${t ? `${t.type} key ${t.key}` : 'none'}; offline: ${names.filter((n) => !online.includes(n)).join(',') || 'none'})`,
    );
    if (!online.includes(to)) return this.rollBack(tx, [], `CN '${to}' is not connected`);
    this.active.set(tx.id, tx);
    try {
      const body = { tx: tx.id, binding: view.value, previous };

      if (previous && PROBED_VIA.has(via) && online.includes(previous.name) && !this.o.reportedGone?.(b.mac, previous.name)) {
        tx.phase = 'probing';
        const where = await this.probe(tx, previous.name, b.cell + 1);
        if (where !== undefined) return this.refuseDuplicate(tx, where);
      }

      tx.phase = 'preparing';
      const askedSessions = online.map((n) => this.o.session(n));
      const prepared = await Promise.allSettled(
        online.map((n) => this.ask(n, 'prepare', body, this.phaseTimeout(tx, this.o.prepareTimeoutMs))),
      );
      // A participant other than the new current CN whose session ended while it was asked (the
      // heartbeat found it silent: hung, powered off, cut off) is skipped as if it had been offline
      // from the start; it learns the binding when it binds again.
      const wentOffline = online.filter((n, i) => n !== to && prepared[i]!.status === 'rejected' && this.o.session(n) !== askedSessions[i]);
      const refusals = prepared.flatMap((r, i) =>
        r.status === 'rejected' && !wentOffline.includes(online[i]!) ? [`${online[i]}: ${reason(r)}`] : [],
      );
      if (refusals.length > 0) return this.rollBack(tx, online, `handover aborted: ${refusals.join('; ')}`);
      if (wentOffline.length > 0) log(LOG.handover, `tx ${tx.id}: ${wentOffline.join(',')} went offline while preparing: skipped`);

      const stored = registry.put(proposed);
      if (!stored.ok) return this.rollBack(tx, online, `handover aborted: ${stored.error}`);
      tx.phase = 'stored';
      await this.o.durable();

      tx.phase = 'committing';
      const commitMs = Math.max(MIN_COMMIT_MS, this.phaseTimeout(tx, this.o.commitTimeoutMs));
      // Committed: every participant connected now (one that went offline and bound again since gets
      // the commit on its new session; one still offline learns the move from its next bind reply).
      const committers = online.filter((n) => !wentOffline.includes(n) || this.o.session(n) !== undefined);
      tx.participants = committers;
      const committed = await Promise.allSettled(committers.map((n) => this.ask(n, 'commit', body, commitMs)));
      committed.forEach((r, i) => {
        if (r.status === 'fulfilled') return;
        const cn = committers[i]!;
        log(LOG.error, `tx ${tx.id}: ${cn} failed to commit (${reason(r)}); the registry keeps the move and ${cn} will be reconciled`);
        this.reconcile(cn, b.mac, view.value);
      });
      tx.phase = 'done';
      this.stats.done++;
      log(LOG.handover, `tx ${tx.id}: committed ${b.mac} at ${to} in ${this.o.now() - tx.startedAt} ms`);
      return ok(view.value);
    } finally {
      this.active.delete(tx.id);
    }
  }

  /** Remove a binding (call with the station's lock held) and tell its parent and current CN to withdraw. */
  async drop(b: Binding, why: string): Promise<void> {
    const { registry, log } = this.o;
    const view = registry.view(b);
    registry.remove(b.mac);
    await this.o.durable();
    log(LOG.handover, `binding ${b.mac} ${formatIPv4(b.cell + 1)} removed (${why})`);
    if (!view.ok || b.state !== 'bound') return;
    const names = [...new Set([b.parent, ...(b.current !== null ? [b.current] : [])])];
    const results = await Promise.allSettled(names.map((n) => this.ask(n, 'remove', { binding: view.value }, this.o.commitTimeoutMs)));
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
      this.o.log(
        LOG.handover,
        `tx ${tx.id}: probe at ${cn}: ${tx.mac} ${r.present === 'yes' ? 'answers' : 'does not answer'} (${this.o.now() - started} ms)`,
      );
      return r.present === 'yes' ? cn : undefined;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.o.log(LOG.handover, `tx ${tx.id}: probe at ${cn} failed (${why}); moving on without it`);
      return undefined;
    }
  }

  /** The station answered in its old cell: the frames that asked for the move carry a duplicate MAC. */
  private refuseDuplicate(tx: HandoverTx, at: string): Result<BindingView> {
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

  private rollBack(tx: HandoverTx, asked: string[], why: string): Result<BindingView> {
    tx.phase = 'rolled-back';
    this.stats.rolledBack++;
    this.o.log(LOG.error, `tx ${tx.id}: rolled back (${why})`);
    for (const n of asked) this.ask(n, 'abort', { tx: tx.id }, this.o.prepareTimeoutMs).catch(() => undefined);
    return err(why);
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
          else await session.request('remove', { binding: last }, this.o.commitTimeoutMs);
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
