// SPDX-License-Identifier: GPL-2.0-only
// Leadership: which of several tmip-mlr sharing one etcd store serves (`option store 'etcd://…'`).
//
// Each MLR holds an etcd lease of `ttlSeconds` and refreshes it every third of that. To lead, it
// creates the leader key (core/etcd-keys.ts) attached to its lease, in a transaction that succeeds only
// if the key does not exist (create revision 0); the key's create revision then names this term of
// leadership. A standby tries again every `pollMs`, saying once who leads. When a leader dies its lease
// lapses after at most `ttlSeconds`, etcd deletes the key, and a standby's next try makes it the leader.
//
// Every write of the registry (mlr/etcd-store.ts) is guarded by guard(): "the leader key still has the
// create revision of my term". A deposed MLR (its lease lapsed while it was cut off or paused, and
// another one took over) can therefore never write again: its transaction fails, and so does its
// durable(), so it acknowledges nothing more. The leader also deposes itself, calling onLost, when
// etcd says its lease is gone, or when no refresh succeeded for 3 TTLs (etcd unreachable that long:
// the lease has lapsed; shorter gaps, such as etcd electing a leader of its own, are waited out since
// the fence keeps them safe); tmip-mlr then exits and, restarted, stands by.
// close() revokes the lease, so a leader that stops on purpose hands over within one poll, not a TTL.
import { monotonicMs } from '../core/clock.js';
import { decodeLeader, encodeLeader, type LeaderInfo } from '../core/etcd-keys.js';
import type { EtcdApi, EtcdCompare } from '../platform/etcd-client.js';
import { LOG, type LogFn } from '../platform/log.js';

/** TTLs without a successful refresh after which a leader gives up (etcd unreachable). */
const UNREACHABLE_TTLS = 3;

export interface LeadershipOptions {
  key: string;
  self: LeaderInfo;
  /** The lease's TTL (etcd grants at least its minimum, about 2 s). */
  ttlSeconds: number;
  /** How often a standby tries to take over. */
  pollMs: number;
  log: LogFn;
  /** This MLR led and does not any more (lease gone or not refreshed for a TTL). Called once. */
  onLost: (why: string) => void;
}

export class Leadership {
  private lease: string | undefined;
  private revision = 0;
  private keepTimer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private closed = false;
  private lost = false;
  private refreshing = false;

  constructor(
    private readonly etcd: EtcdApi,
    private readonly opts: LeadershipOptions,
  ) {}

  get leading(): boolean {
    return this.revision > 0 && !this.lost;
  }

  /** The compare every registry write carries: the leader key is still the one of this term. */
  guard(): EtcdCompare {
    return { key: this.opts.key, target: 'CREATE', createRevision: this.revision };
  }

  /**
   * Stand by until this MLR leads; resolves then with the term's revision. Rejects only when close()
   * is called meanwhile. An unreachable etcd is waited for (logged at most once a minute).
   */
  async acquire(): Promise<number> {
    const { log } = this.opts;
    let said = '';
    let lastEtcdError = -Infinity;
    while (!this.closed) {
      try {
        if (this.lease === undefined) await this.grant();
        const won = await this.tryLead();
        if (won) return this.revision;
        const holder = await this.etcd.range(this.opts.key);
        const kv = holder.kvs[0];
        if (kv && kv.lease === this.lease) {
          // our own earlier try took effect though its answer was lost
          this.revision = kv.createRevision;
          return this.revision;
        }
        const who = kv ? describeLeader(kv.value) : 'nobody (the key just lapsed)';
        if (who !== said) {
          log(LOG.info, `standby: ${who} leads; taking over when its lease lapses`);
          said = who;
        }
      } catch (e) {
        if (monotonicMs() - lastEtcdError > 60_000) {
          log(LOG.error, `standby: ${e instanceof Error ? e.message : String(e)}; retrying`);
          lastEtcdError = monotonicMs();
        }
        // etcd answered with an error (e.g. our lease is gone): start over with a new lease
        if ((e as { unreachable?: boolean }).unreachable === false) this.lease = undefined;
      }
      await sleep(this.opts.pollMs);
    }
    throw new Error('closed while standing by');
  }

  /** Give the lease back (the leader key goes with it: a standby takes over at its next try). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.keepTimer) clearInterval(this.keepTimer);
    const lease = this.lease;
    this.lease = undefined;
    if (lease !== undefined) await this.etcd.leaseRevoke(lease).catch(() => undefined);
  }

  private async grant(): Promise<void> {
    const g = await this.etcd.leaseGrant(this.opts.ttlSeconds);
    this.lease = g.id;
    this.lastRefresh = monotonicMs();
    if (this.keepTimer) clearInterval(this.keepTimer);
    this.keepTimer = setInterval(() => void this.refresh(), Math.max(200, (g.ttl * 1000) / 3));
    this.keepTimer.unref();
  }

  private async tryLead(): Promise<boolean> {
    const lease = this.lease!;
    const r = await this.etcd.txn(
      [{ key: this.opts.key, target: 'CREATE', createRevision: 0 }],
      [{ put: this.opts.key, value: encodeLeader(this.opts.self), lease }],
    );
    if (r.succeeded) this.revision = r.revision;
    return r.succeeded;
  }

  private async refresh(): Promise<void> {
    if (this.refreshing || this.closed || this.lost || this.lease === undefined) return;
    this.refreshing = true;
    // While etcd elects a leader of its own, refreshes fail but no lease lapses (etcd's new leader
    // extends them all): wait that out. Past UNREACHABLE_TTLS TTLs, the lease has surely lapsed.
    const limitMs = this.opts.ttlSeconds * 1000 * UNREACHABLE_TTLS;
    try {
      const ttl = await this.etcd.leaseKeepAlive(this.lease);
      if (ttl > 0) this.lastRefresh = monotonicMs();
      else if (this.revision > 0) this.depose('etcd says our lease is gone');
      else this.lease = undefined; // standing by: acquire() grants a new one
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      // an answer that is an error (e.g. the lease is not found) is etcd's word: it is gone
      if (this.revision > 0 && (e as { unreachable?: boolean }).unreachable === false) this.depose(why);
      else if (this.revision > 0 && monotonicMs() - this.lastRefresh >= limitMs) this.depose(`no lease refresh for ${limitMs} ms (${why})`);
    } finally {
      this.refreshing = false;
    }
  }

  private depose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    if (this.keepTimer) clearInterval(this.keepTimer);
    this.opts.onLost(`lost the leadership: ${why}`);
  }
}

function describeLeader(value: string): string {
  const l = decodeLeader(value);
  return l.ok ? `${l.value.id} (serving on ${l.value.serves})` : 'an unknown MLR';
}

/** Not unref'd: a standby has nothing else that keeps the process alive. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
