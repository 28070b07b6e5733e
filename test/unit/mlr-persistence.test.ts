// SPDX-License-Identifier: GPL-2.0-only
// The MLR's state through the StateFile port (MemoryStateFile): a round trip, state of older builds,
// every kind of bad snapshot refused at load with the first bad record named by its position, and a
// store whose writes fail acknowledging nothing more. The journal on real files: mlr-journal.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../src/core/registry.js';
import { COMMIT_INTERVAL_MS, GroupCommit } from '../../src/mlr/group-commit.js';
import { RegistryStore } from '../../src/mlr/persistence.js';
import { MemoryStateFile } from '../../src/platform/fake-state-file.js';
import { errorOf, ip, value } from '../support/helpers.js';

const pool = { network: ip('10.1.0.0'), prefix: 24, first: ip('10.1.0.0'), last: ip('10.1.0.255'), exclude: [ip('10.1.0.1')] };

function filled(): Registry {
  const r = new Registry(['vxlan']);
  value(r.registerCn({ name: 'cn1', addr: ip('10.200.0.11'), tunnels: ['vxlan'], pools: [pool] }));
  value(r.registerCn({ name: 'cn2', addr: ip('10.200.0.12'), tunnels: ['vxlan'], pools: [] }));
  value(r.put({ mac: '02:00:00:00:00:01', cell: ip('10.1.0.4'), parent: 'cn1', current: 'cn2', state: 'bound', expires: 5_000_000 }));
  value(r.pairTunnel('cn1', 'cn2'));
  r.quarantine(ip('10.1.0.8'), 9_000_000, '02:00:00:00:00:09');
  return r;
}

function load(snapshot: string) {
  const file = new MemoryStateFile();
  file.snapshot = snapshot;
  const registry = new Registry(['vxlan']);
  return { result: new RegistryStore(file, registry).load(), registry };
}

/** The snapshot the store writes of filled() when it opens. */
async function savedText(): Promise<string> {
  const file = new MemoryStateFile();
  await new RegistryStore(file, filled()).open();
  return file.snapshot!;
}

test('the registry survives a save and a load, addresses written as text', async () => {
  const file = new MemoryStateFile();
  await new RegistryStore(file, filled()).open();
  assert.equal(file.replaces, 1, 'open() writes a snapshot and a fresh journal');
  assert.match(file.snapshot ?? '', /"addr":"10.200.0.11"/);
  assert.equal(file.journal, '{"t":"journal","gen":1}\n');
  const registry = new Registry(['vxlan']);
  const report = value(new RegistryStore(file, registry).load());
  assert.deepEqual(report, { found: true, replayed: 0, notes: [] });
  assert.deepEqual(registry.snapshot(), filled().snapshot());
  assert.equal(registry.cn('cn1')?.online, false, 'restored CNs are offline until they bind');
  assert.equal(registry.isCellAvailable(ip('10.1.0.8'), 1000), false, 'the quarantine survives');
});

test('no state yet: load finds nothing, the registry stays empty', () => {
  const registry = new Registry(['vxlan']);
  assert.deepEqual(value(new RegistryStore(new MemoryStateFile(), registry).load()), { found: false, replayed: 0, notes: [] });
  assert.equal(registry.allCns().length, 0);
});

test('a state file of older builds (addresses as numbers, no generation, no quarantines) still loads', () => {
  const old = filled().snapshot();
  delete old.quarantined;
  const { result, registry } = load(JSON.stringify(old));
  assert.equal(value(result).found, true);
  assert.equal(registry.binding('02:00:00:00:00:01')?.cell, ip('10.1.0.4'));
});

test('bad state is refused at load, naming the first bad record by its position', async () => {
  const good = JSON.parse(await savedText()) as Record<string, unknown[]>;
  const cases: [string, (s: Record<string, unknown[]>) => void, RegExp][] = [
    ['a binding without a cell', (s) => delete (s['bindings']![0] as Record<string, unknown>)['cell'], /state\.bindings\[0\]\.cell/],
    [
      'a cell that is not a /30',
      (s) => ((s['bindings']![0] as Record<string, unknown>)['cell'] = '10.1.0.5'),
      /bindings\[0\]\.cell: not the network address/,
    ],
    [
      'a binding naming an unknown CN',
      (s) => ((s['bindings']![0] as Record<string, unknown>)['parent'] = 'ghost'),
      /bindings\[0\]: parent 'ghost'/,
    ],
    [
      'two bindings on one cell',
      (s) => s['bindings']!.push({ ...(s['bindings']![0] as object), mac: '02:00:00:00:00:02' }),
      /bindings\[1\]: cell 10.1.0.4\/30 is bound/,
    ],
    ['a CN entry that is not an object', (s) => (s['cns']![1] = 7), /state\.cns\[1\]: expected an object/],
    [
      'overlapping pools',
      (s) => ((s['cns']![1] as Record<string, unknown>)['pools'] = (s['cns']![0] as Record<string, unknown>)['pools']),
      /cns\[1\]: pool .* overlaps/,
    ],
    ['a tunnel key at or past nextKey', (s) => ((s as Record<string, unknown>)['nextKey'] = 1), /pairs\[0\]: key 1 is not below nextKey 1/],
    ['a quarantine by no MAC', (s) => delete (s['quarantined']![0] as Record<string, unknown>)['by'], /state\.quarantined\[0\]\.by/],
    ['a generation that is not a number', (s) => ((s as Record<string, unknown>)['gen'] = 'x'), /state\.gen: expected an integer/],
  ];
  for (const [what, spoil, expected] of cases) {
    const s = structuredClone(good);
    spoil(s);
    const { result, registry } = load(JSON.stringify(s));
    const error = errorOf(result);
    assert.match(error, expected, what);
    assert.match(error, /move memory and memory journal away to start empty/, `${what}: the fix is in the message`);
    assert.equal(registry.allBindings().length + registry.allCns().length, 0, `${what}: nothing loaded`);
  }
  assert.match(errorOf(load('{"cns": [').result), /not valid JSON/);
});

test('a journal without its snapshot is refused, saying what to do', () => {
  const file = new MemoryStateFile();
  file.journal = '{"t":"journal","gen":1}\n';
  assert.match(
    errorOf(new RegistryStore(file, new Registry(['vxlan'])).load()),
    /exists but its snapshot memory does not \(put memory back/,
  );
});

test('a failed write: durable() rejects, the failure is told once, and nothing more is acknowledged', async () => {
  const file = new MemoryStateFile();
  const registry = filled();
  const failures: string[] = [];
  const store = new RegistryStore(file, registry, { onFailure: (m) => failures.push(m) });
  await store.open();
  registry.remove('02:00:00:00:00:01');
  await store.durable();
  assert.equal(file.appends, 1);
  file.failWrite = 'disk full';
  value(registry.put({ mac: '02:00:00:00:00:02', cell: ip('10.1.0.12'), parent: 'cn1', current: 'cn1', state: 'bound', expires: 1 }));
  await assert.rejects(store.durable(), /disk full; the MLR acknowledges no change until it is restarted/);
  await assert.rejects(store.durable(), /disk full/, 'still failed');
  file.failWrite = undefined;
  registry.remove('02:00:00:00:00:02');
  await assert.rejects(store.durable(), /disk full/, 'a later change is not acknowledged either');
  assert.equal(failures.length, 1);
  assert.equal(file.appends, 1, 'nothing written after the failure');
});

test('group commit: under a steady stream of changes at most one flush starts per interval; an idle queue flushes at once', async () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const run = async (interval: number) => {
    const starts: number[] = [];
    const q = new GroupCommit<number>(
      async (batch) => {
        starts.push(performance.now());
        assert.ok(batch.length > 0);
        await sleep(0); // a fast disk: done within the millisecond
      },
      undefined,
      interval,
    );
    // Idle: the first change is flushed without waiting for the interval.
    const t0 = performance.now();
    q.push(0);
    await q.durable();
    const first = performance.now() - t0;
    // A change every ~0.3 ms for 60 ms, each made durable by itself (as a move's fdatasync was).
    const waits: Promise<void>[] = [];
    const end = performance.now() + 60;
    let n = 1;
    while (performance.now() < end) {
      q.push(n++);
      waits.push(q.durable());
      await new Promise((r) => setImmediate(r));
      const until = performance.now() + 0.3;
      while (performance.now() < until);
    }
    await Promise.all(waits);
    await q.idle();
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    return { flushes: starts.length, changes: n, first, minGap: Math.min(...gaps.slice(1)) };
  };
  const paced = await run(20);
  assert.ok(paced.first < 15, `an idle queue waits for no interval (${paced.first.toFixed(1)} ms)`);
  assert.ok(paced.flushes <= 6, `${paced.flushes} flushes of ${paced.changes} changes in 60 ms at one per 20 ms`);
  assert.ok(paced.minGap >= 18.5, `flush starts at least the interval apart (${paced.minGap.toFixed(1)} ms)`);
  // Positive control: without an interval nearly every change gets a flush of its own.
  const eager = await run(0);
  assert.ok(eager.flushes > 4 * paced.flushes, `${eager.flushes} flushes without an interval`);
  assert.ok(COMMIT_INTERVAL_MS > 0 && COMMIT_INTERVAL_MS <= 5, 'the default keeps durability within a few ms');
});
