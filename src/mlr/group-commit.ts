// SPDX-License-Identifier: GPL-2.0-only
// GroupCommit: the queue in front of both durable stores of the MLR (the journal, mlr/persistence.ts;
// etcd, mlr/etcd-store.ts). What is pushed in one turn of the event loop, and what is pushed while a
// flush is on its way, is flushed together, so many changes share one fdatasync or one transaction.
// durable() resolves once everything pushed before the call is flushed. A flush that fails fails the
// queue for good: every waiter and every later durable() rejects, and onFailure is told once (the
// MLR then exits and is restarted from what is on disk).
//
// Commit interval (issue 11): a flush starts no sooner than `minIntervalMs` (COMMIT_INTERVAL_MS)
// after the previous one started (when less than a millisecond of it is left, the flush starts on the
// next turn instead); what is pushed meanwhile waits and joins the next batch. An idle
// queue flushes at once (the first change after a quiet spell waits for nothing); under load the
// fdatasyncs are at most one per interval, however many changes arrive. An fdatasync costs the
// process far more CPU than the append (on the development VM about 150-170 µs against 40 µs), and
// without the interval a change arriving every millisecond or so got an fdatasync of its own. The
// price: a change that arrives during a flush waits up to one interval longer to be durable.

import { monotonicMs } from '../core/clock.js';

/** The shortest time (ms) from one flush's start to the next's (see the header). */
export const COMMIT_INTERVAL_MS = 2;

interface Waiter {
  upto: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class GroupCommit<T> {
  private pending: T[] = [];
  /** Items pushed so far / known to be flushed (sequence numbers). */
  private queued = 0;
  private synced = 0;
  private readonly waiters: Waiter[] = [];
  private scheduled = false;
  private running: Promise<void> | undefined;
  private failure: string | undefined;
  /** monotonicMs() when the last flush started (-Infinity: none yet). */
  private lastStart = -Infinity;

  constructor(
    private readonly flush: (batch: T[]) => Promise<void>,
    private readonly onFailure?: (message: string) => void,
    /** The shortest time from one flush's start to the next's (default COMMIT_INTERVAL_MS; 0: none). */
    private readonly minIntervalMs = COMMIT_INTERVAL_MS,
  ) {}

  /** Why the queue failed, once it has. */
  get failed(): string | undefined {
    return this.failure;
  }

  push(item: T): void {
    if (this.failure !== undefined) return;
    this.pending.push(item);
    this.queued++;
    this.kick();
  }

  /** Resolves once every item pushed so far is flushed; rejects once a flush has failed. */
  durable(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(new Error(this.failure));
    if (this.synced >= this.queued) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ upto: this.queued, resolve, reject }));
  }

  /** Resolves when nothing is queued or being flushed any more (failed or not). */
  async idle(): Promise<void> {
    await this.durable().catch(() => undefined);
    await this.running;
  }

  /** Fail from outside (a store that lost its right to write): nothing more is acknowledged. */
  fail(message: string): void {
    if (this.failure !== undefined) return;
    this.failure = `${message}; the MLR acknowledges no change until it is restarted`;
    this.pending = [];
    for (const w of this.waiters.splice(0)) w.reject(new Error(this.failure));
    this.onFailure?.(this.failure);
  }

  private kick(): void {
    if (this.scheduled || this.running || this.failure !== undefined) return;
    this.scheduled = true;
    const start = (): void => {
      this.scheduled = false;
      this.lastStart = monotonicMs();
      this.running = this.drain().finally(() => {
        this.running = undefined;
        if (this.pending.length > 0) this.kick();
      });
    };
    // The rest of this turn's items join the batch, and under load those of the rest of the interval.
    const wait = this.lastStart + this.minIntervalMs - monotonicMs();
    if (wait >= 1) setTimeout(start, Math.ceil(wait));
    else setImmediate(start);
  }

  /** Flush what is pending as one batch. */
  private async drain(): Promise<void> {
    if (this.pending.length === 0 || this.failure !== undefined) return;
    const upto = this.queued;
    const batch = this.pending;
    this.pending = [];
    try {
      await this.flush(batch);
    } catch (e) {
      this.fail(e instanceof Error ? e.message : String(e));
      return;
    }
    this.synced = upto;
    while (this.waiters.length > 0 && this.waiters[0]!.upto <= this.synced) this.waiters.shift()!.resolve();
  }
}
