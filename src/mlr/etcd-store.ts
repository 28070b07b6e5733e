// SPDX-License-Identifier: GPL-2.0-only
// EtcdRegistryStore: keeps the MLR's registry in etcd (`option store 'etcd://…'`) instead of the
// local snapshot and journal (mlr/persistence.ts), with the same contract towards the MLR:
//
// - load(): the registry is read from the keys of core/etcd-keys.ts, page by page at one revision,
//   each value decoded with the journal's record codec, checked against its key and replayed through
//   Registry.apply() (CNs, pairs, bindings, quarantines). The first bad key stops start-up with its
//   name and the fix. Quarantines that have ended are not loaded, and their keys are deleted.
// - open(): every change the registry tells (Registry.watch) is queued. Group commit: the changes
//   queued in one turn of the event loop, and those queued while a write is on its way, go out
//   together, collapsed to the last change per key, as etcd transactions of at most MAX_TXN_OPS
//   writes. durable() resolves once etcd has committed every change made before the call (a majority
//   of the cluster has it on disk); MlrService and Handovers await it before they acknowledge.
// - Fencing: every transaction carries leadership's guard (mlr/leadership.ts: the leader key still
//   has this term's create revision). If another MLR has taken over, the compare fails, nothing is
//   written, and the store fails: durable() rejects from then on and onFailure is told (tmip-mlr
//   exits; restarted, it stands by). So two MLRs can never both commit a move.
// - A write etcd does not take (no endpoint answers, retried for RETRY_MS) fails the store the same
//   way: the MLR acknowledges nothing it cannot prove durable.
// leadThenLoad() puts it together for startMlr (mlr/mlr.ts): stand by, lead, load, keep.
import { monotonicMs } from '../core/clock.js';
import {
  LOAD_ORDER,
  chunk,
  coalesce,
  decodeRecord,
  etcdPrefix,
  leaderKey,
  prefixEnd,
  recordsPrefix,
  type LeaderInfo,
} from '../core/etcd-keys.js';
import type { Registry, RegistryChange } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';
import type { EtcdApi, EtcdCompare } from '../platform/etcd-client.js';
import { LOG, type LogFn } from '../platform/log.js';
import { Leadership } from './leadership.js';
import type { LoadReport } from './persistence.js';
import { GroupCommit } from './group-commit.js';

export interface EtcdStoreOptions {
  /** The network's key prefix (etcdPrefix(network_name)). */
  prefix: string;
  /** The compare that proves this MLR still leads (Leadership.guard). */
  guard: () => EtcdCompare;
  /** A write failed or was refused: nothing more will be acknowledged. */
  onFailure?: (message: string) => void;
  /** Keys per page when loading. */
  pageSize?: number;
  /** How long a write is retried while no endpoint answers (default RETRY_MS). */
  retryMs?: number;
  now?: () => number;
}

/** How long a write is retried while no etcd endpoint answers (etcd electing a leader of its own: ~1 s). */
const RETRY_MS = 5000;

export class EtcdRegistryStore {
  /** Changes waiting for their transaction, written in groups. */
  private readonly queue: GroupCommit<RegistryChange>;
  readonly stats = { txns: 0, records: 0 };

  constructor(
    private readonly etcd: EtcdApi,
    private readonly registry: Registry,
    private readonly opts: EtcdStoreOptions,
  ) {
    this.queue = new GroupCommit((batch) => this.writeBatch(batch), opts.onFailure);
  }

  /** Fill the (empty) registry from etcd. */
  async load(): Promise<Result<LoadReport>> {
    const base = recordsPrefix(this.opts.prefix);
    const now = (this.opts.now ?? Date.now)();
    const limit = this.opts.pageSize ?? 1000;
    const report: LoadReport = { found: false, replayed: 0, notes: [] };
    const ended: string[] = [];
    let revision: number | undefined;
    for (const family of LOAD_ORDER) {
      const start = base + family;
      const end = prefixEnd(start);
      let from = start;
      for (;;) {
        const page = await this.etcd.range(from, { rangeEnd: end, limit, ...(revision !== undefined ? { revision } : {}) });
        revision ??= page.revision;
        for (const kv of page.kvs) {
          const fix = `(remove it with 'etcdctl --endpoints=${this.endpointsForFix()} del "${kv.key}"', which forgets what it held, or put a valid record there)`;
          const c = decodeRecord(this.opts.prefix, kv.key, kv.value);
          if (!c.ok) return err(`${this.etcd.describe}: key '${kv.key}' is not a valid tmip record: ${c.error} ${fix}`);
          if (c.value.kind === 'quarantine' && c.value.until <= now) {
            ended.push(kv.key);
            continue;
          }
          const r = this.registry.apply(c.value);
          if (!r.ok) return err(`${this.etcd.describe}: key '${kv.key}': ${r.error} ${fix}`);
          report.replayed++;
        }
        const last = page.kvs.at(-1);
        if (!page.more || last === undefined) break;
        from = last.key + '\0';
      }
    }
    report.found = report.replayed > 0;
    if (ended.length > 0) {
      for (const part of chunk(ended)) await this.write(part.map((del) => ({ del })));
      report.notes.push(`${this.etcd.describe}: ${ended.length} ended quarantine(s) removed`);
    }
    return ok(report);
  }

  /** Start keeping every change the registry tells. */
  open(): void {
    this.registry.watch((c) => this.queue.push(c));
  }

  /** Resolves once etcd has committed every change made so far; rejects once a write has failed. */
  durable(): Promise<void> {
    return this.queue.durable();
  }

  /** Write what is queued and stop listening. */
  async close(): Promise<void> {
    await this.queue.idle();
    this.registry.watch(undefined);
  }

  /** Fail from outside (leadership lost): nothing more is acknowledged. */
  fail(message: string): void {
    this.queue.fail(message);
  }

  /** One group of changes: the last change of each key, in guarded transactions of at most 100 operations. */
  private async writeBatch(batch: RegistryChange[]): Promise<void> {
    for (const part of chunk(coalesce(this.opts.prefix, batch))) {
      await this.write(part.map((op) => (op.value === undefined ? { del: op.key } : { put: op.key, value: op.value })));
    }
    this.stats.records += batch.length;
  }

  /**
   * One guarded transaction; refused = another MLR leads now. When no endpoint answers (etcd electing
   * a new leader of its own, a member restarting) it is tried again every 100 ms for up to
   * RETRY_MS: the writes carry whole values under the same guard, so doing one twice changes nothing.
   */
  private async write(ops: Parameters<EtcdApi['txn']>[1]): Promise<void> {
    const started = monotonicMs();
    let r: Awaited<ReturnType<EtcdApi['txn']>>;
    for (;;) {
      try {
        r = await this.etcd.txn([this.opts.guard()], ops);
        break;
      } catch (e) {
        const transient = (e as { unreachable?: boolean }).unreachable === true;
        if (!transient || monotonicMs() - started >= (this.opts.retryMs ?? RETRY_MS) || this.queue.failed !== undefined) throw e;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    this.stats.txns++;
    if (!r.succeeded) throw new Error(`deposed: the leader key in ${this.etcd.describe} is no longer this MLR's, another MLR leads now`);
  }

  private endpointsForFix(): string {
    return this.etcd.describe.replace(/^etcd /, '');
  }
}

export interface EtcdHaOptions {
  networkName: string;
  /** Who this MLR is and where it serves, written into the leader key for the standbys' log. */
  self: LeaderInfo;
  ttlSeconds: number;
  pollMs: number;
  log: LogFn;
  /** Leadership lost, or a write failed or was refused: nothing more is acknowledged (tmip-mlr exits). */
  onFailure: (message: string) => void;
}

/** What startMlr needs of a shared store: the gate of every acknowledgement, and a way out. */
export interface SharedStore {
  durable(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Stand by until this MLR leads (mlr/leadership.ts), then load the registry from etcd and keep every
 * change there. Resolves once the registry is loaded and kept: the MLR serves from then on.
 */
export async function leadThenLoad(etcd: EtcdApi, registry: Registry, o: EtcdHaOptions): Promise<SharedStore> {
  const prefix = etcdPrefix(o.networkName);
  const store = new EtcdRegistryStore(etcd, registry, {
    prefix,
    guard: () => leadership.guard(),
    onFailure: (m) => {
      o.log(LOG.error, m);
      o.onFailure(m);
    },
  });
  const leadership = new Leadership(etcd, {
    key: leaderKey(prefix),
    self: o.self,
    ttlSeconds: o.ttlSeconds,
    pollMs: o.pollMs,
    log: o.log,
    onLost: (why) => store.fail(why),
  });
  o.log(LOG.info, `store: ${etcd.describe}; standing by until this MLR leads network [${o.networkName}]`);
  const term = await leadership.acquire();
  o.log(LOG.info, `leading network [${o.networkName}] (term ${term}); loading the registry from ${etcd.describe}`);
  const loaded = await store.load().catch((e: unknown) => err<LoadReport>(e instanceof Error ? e.message : String(e)));
  if (!loaded.ok) {
    await leadership.close();
    throw new Error(loaded.error);
  }
  for (const note of loaded.value.notes) o.log(LOG.info, note);
  o.log(
    LOG.info,
    `restored ${registry.allBindings().length} binding(s) and ${registry.allCns().length} CN(s) from ${etcd.describe} (${loaded.value.replayed} key(s))`,
  );
  store.open();
  return {
    durable: () => store.durable(),
    async close() {
      await store.close();
      await leadership.close();
    },
  };
}
