// SPDX-License-Identifier: GPL-2.0-only
// bench/journal — the cost of one registry change made durable, at 100,000 bindings: the MLR's
// journal (mlr/persistence.ts: one record appended and fdatasync'd, compaction amortised) beside the
// whole-file rewrite of builds before it (the registry encoded, written, fsync'd and renamed), both
// measured in the same run on the same file system, and the longest the event loop waits while a
// compaction writes its snapshot. Not a test.
//   node build/bench/journal.js [--bindings 100000] [--changes 1000] [--rewrites 20] [--dir /tmp]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_COMPACTION } from '../src/core/journal.js';
import { Registry, registrySnapshotCodec } from '../src/core/registry.js';
import { RegistryStore } from '../src/mlr/persistence.js';
import { FileStateFile } from '../src/platform/state-file.js';
import { fillRegistry, intArg, percentile, stationCell, stationMac, textArg } from './synthetic.js';

const BINDINGS = intArg('bindings', 100_000);
const CHANGES = intArg('changes', 1000);
const REWRITES = intArg('rewrites', 20);
const base = textArg('dir', os.tmpdir());

function filled(): Registry {
  const r = new Registry(['vxlan']);
  fillRegistry(r, BINDINGS);
  return r;
}

/** A roam of binding n to `to`. */
function roam(r: Registry, n: number, to: string): void {
  r.put({ mac: stationMac(n), cell: stationCell(n), parent: 'cn1', current: to, state: 'bound', expires: 1e12 + n });
}

const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

/** The state file as builds before the journal wrote it: whole, write + fsync + rename. */
function rewriteWhole(r: Registry, file: string): number {
  const text = JSON.stringify(registrySnapshotCodec.encode(r.snapshot()));
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return Buffer.byteLength(text);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(base, 'tmip-bench-journal-'));
  try {
    const t0 = performance.now();
    const registry = filled();
    process.stdout.write(
      `registry of ${registry.allBindings().length} bindings built in ${(performance.now() - t0).toFixed(0)} ms; files in ${dir}\n`,
    );

    // Whole-file rewrite per change (the old way, if each change were made durable before its ack).
    const oldFile = path.join(dir, 'old.state');
    const oldMs: number[] = [];
    let oldBytes = 0;
    for (let i = 0; i < REWRITES; i++) {
      const s = performance.now();
      roam(registry, i, i % 2 ? 'cn1' : 'cn2');
      oldBytes = rewriteWhole(registry, oldFile);
      oldMs.push(performance.now() - s);
    }

    // The journal: open() compacts once (the cost a compaction has at this size), while a timer
    // measures the longest the event loop (the MLR's answers) waits meanwhile.
    const file = new FileStateFile(path.join(dir, 'mlr.state'));
    const store = new RegistryStore(file, registry);
    let last = performance.now();
    let longestGap = 0;
    let watching = true;
    const watch = (): void => {
      const t = performance.now();
      longestGap = Math.max(longestGap, t - last);
      last = t;
      if (watching) setTimeout(watch, 0);
    };
    watch();
    const c0 = performance.now();
    await store.open();
    const compactMs = performance.now() - c0;
    watching = false;
    const snapshotBytes = fs.statSync(path.join(dir, 'mlr.state')).size;

    // One change at a time, each awaited until durable (no group commit helps).
    const journalMs: number[] = [];
    const size0 = fs.statSync(path.join(dir, 'mlr.state.journal')).size;
    for (let i = 0; i < CHANGES; i++) {
      const s = performance.now();
      roam(registry, i, i % 2 ? 'cn1' : 'cn2');
      await store.durable();
      journalMs.push(performance.now() - s);
    }
    const perChangeBytes = (fs.statSync(path.join(dir, 'mlr.state.journal')).size - size0) / CHANGES;

    // Group commit: 50 changes per turn of the event loop, as many CNs' requests arrive together.
    const appends0 = store.stats.appends;
    const g0 = performance.now();
    const waits: Promise<void>[] = [];
    for (let i = 0; i < CHANGES * 5; i++) {
      roam(registry, i, i % 2 ? 'cn2' : 'cn1');
      if (i % 50 === 49) {
        waits.push(store.durable());
        await new Promise((r) => setImmediate(r));
      }
    }
    await Promise.all(waits);
    const groupS = (performance.now() - g0) / 1000;
    const groupAppends = store.stats.appends - appends0;
    await store.close();

    const amortised = compactMs / (DEFAULT_COMPACTION.factor * registry.liveRecords());
    const journalMedian = percentile(journalMs, 50);
    const oldMedian = percentile(oldMs, 50);
    const rows: [string, string, string][] = [
      ['cost of one change made durable, median', fmt(oldMedian), fmt(journalMedian)],
      ['… p99 (old: max)', fmt(percentile(oldMs, 100)), fmt(percentile(journalMs, 99))],
      ['bytes written per change', `${(oldBytes / 1e6).toFixed(1)} MB`, `${perChangeBytes.toFixed(0)} B`],
      [
        'compaction (every ≥ 2 × live records), amortised per change',
        '—',
        `${fmt(compactMs)} per compaction (${(snapshotBytes / 1e6).toFixed(1)} MB) = ${fmt(amortised)} per change`,
      ],
      [
        'longest the event loop waits while a snapshot is written',
        `${fmt(percentile(oldMs, 100))} (the whole rewrite, one turn)`,
        `${fmt(longestGap)} (the compaction's text a chunk per turn)`,
      ],
      [
        'group commit: 50 changes per turn',
        '—',
        `${Math.round((CHANGES * 5) / groupS)} changes/s, ${groupAppends} fdatasyncs for ${CHANGES * 5} changes`,
      ],
    ];
    process.stdout.write(`\n| at ${BINDINGS} bindings | whole-file rewrite | journal |\n| --- | --- | --- |\n`);
    for (const [a, b, c] of rows) process.stdout.write(`| ${a} | ${b} | ${c} |\n`);
    process.stdout.write(
      `\nratio old / journal (median cost of a durable change): ${(oldMedian / (journalMedian + amortised)).toFixed(0)}\n`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
