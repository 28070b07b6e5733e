// SPDX-License-Identifier: GPL-2.0-only
// bench/mlr-store — the durable write of a handover with the register in memory only, in the journal
// (mlr/persistence.ts on a local file) and in etcd (mlr/etcd-store.ts, a 3-member cluster on
// 127.0.0.1 that the bench starts and kills), in the same run. What is timed is what the MLR awaits
// between `stored` and `committing` of a move: the binding put into the registry and durable()
// resolving. Several handovers are in flight at once (--concurrency), as when many clients roam, so
// group commit shares a flush or a transaction among them. Not the CNs' round trips; not a test.
// Memory: the process's RSS and the JS heap after each store's run (with --expose-gc, after a full GC;
// the stores run one after the other in one process, each registry dropped before the next).
//   npm run compile && node --expose-gc build/bench/mlr-store.js [--bindings 10000] [--handovers 3000] [--concurrency 32] [--dir /tmp]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from '../src/core/registry.js';
import { leadThenLoad, type SharedStore } from '../src/mlr/etcd-store.js';
import { RegistryStore } from '../src/mlr/persistence.js';
import { EtcdClient } from '../src/platform/etcd-client.js';
import { FileStateFile } from '../src/platform/state-file.js';
import { haveEtcd, startLocalEtcd } from '../test/support/etcd.js';
import { fillRegistry, intArg, percentile, stationCell, stationMac, textArg } from './synthetic.js';

const BINDINGS = intArg('bindings', 10_000);
const HANDOVERS = intArg('handovers', 3000);
const CONCURRENCY = intArg('concurrency', 32, 1, 10_000);
const base = textArg('dir', os.tmpdir());

interface Result {
  store: string;
  perSecond: number;
  p50: number;
  p99: number;
  setupMs: number;
  rssMb: number;
  heapMb: number;
}

/** RSS and heap in MB now, after a full GC when node runs with --expose-gc. */
function memory(): { rssMb: number; heapMb: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rssMb: m.rss / 2 ** 20, heapMb: m.heapUsed / 2 ** 20 };
}

/** HANDOVERS moves, CONCURRENCY at a time, each awaited until durable. */
async function run(store: string, r: Registry, durable: () => Promise<void>, setupMs: number): Promise<Result> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < HANDOVERS) {
        const i = next++;
        const n = (i * 7919) % BINDINGS;
        const s = performance.now();
        r.put({
          mac: stationMac(n),
          cell: stationCell(n),
          parent: 'cn1',
          current: i % 2 === 0 ? 'cn2' : 'cn1',
          state: 'bound',
          expires: 1e12 + i,
        });
        await durable();
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  return { store, perSecond: HANDOVERS / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), setupMs, ...memory() };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(base, 'tmip-bench-store-'));
  const results: Result[] = [];
  let stopEtcd: (() => Promise<void>) | undefined;
  try {
    {
      const r = new Registry(['vxlan']);
      fillRegistry(r, BINDINGS);
      results.push(await run('memory (no durability)', r, () => Promise.resolve(), 0));
    }
    {
      const r = new Registry(['vxlan']);
      const t = performance.now();
      fillRegistry(r, BINDINGS);
      const store = new RegistryStore(new FileStateFile(path.join(dir, 'mlr.state')), r);
      await store.open();
      results.push(await run('journal (fdatasync, local file)', r, () => store.durable(), performance.now() - t));
      await store.close();
    }
    if (haveEtcd()) {
      const etcd = await startLocalEtcd(dir, 3);
      stopEtcd = () => etcd.stop();
      const r = new Registry(['vxlan']);
      const t = performance.now();
      const shared: SharedStore = await leadThenLoad(new EtcdClient(etcd.endpoints), r, {
        networkName: `bench-${process.pid}`,
        self: { id: 'bench', serves: 'bench' },
        ttlSeconds: 5,
        pollMs: 100,
        log: () => undefined,
        onFailure: (m) => {
          throw new Error(m);
        },
      });
      fillRegistry(r, BINDINGS); // written to etcd as changes, 100 keys a transaction
      await shared.durable();
      results.push(await run('etcd (3 members, 127.0.0.1)', r, () => shared.durable(), performance.now() - t));
      await shared.close();
    } else {
      process.stdout.write('etcd: not installed (Debian package etcd-server); skipped\n');
    }
  } finally {
    await stopEtcd?.();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(
    `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${BINDINGS} bindings, ${HANDOVERS} handovers, ${CONCURRENCY} in flight, ${base}\n`,
  );
  const gc = (globalThis as { gc?: unknown }).gc !== undefined ? 'after a full GC' : 'no --expose-gc: without a GC first';
  process.stdout.write(
    `| store | handovers/s | p50 | p99 | set-up (fill + first write) | RSS / JS heap after the run (${gc}) |\n| --- | --- | --- | --- | --- | --- |\n`,
  );
  for (const x of results) {
    process.stdout.write(
      `| ${x.store} | ${Math.round(x.perSecond)} | ${x.p50.toFixed(2)} ms | ${x.p99.toFixed(2)} ms | ${(x.setupMs / 1000).toFixed(1)} s | ${x.rssMb.toFixed(0)} / ${x.heapMb.toFixed(0)} MB |\n`,
    );
  }
  const memoryOnly = results[0];
  if (memoryOnly) {
    for (const x of results.slice(1)) {
      process.stdout.write(
        `ratio ${x.store} / ${memoryOnly.store}: handovers/s ${(x.perSecond / memoryOnly.perSecond).toFixed(3)}, p99 ${(x.p99 / memoryOnly.p99).toFixed(1)}\n`,
      );
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
