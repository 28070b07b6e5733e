// SPDX-License-Identifier: GPL-2.0-only
// The MLR's journal on real files in a temporary directory (FileStateFile): every registry change is
// one record, replayed in order at load; group commit; durable() resolves only once the records are on
// disk; compaction bounds the journal and keeps the cost of a change flat; a torn last line is dropped,
// any other bad record refused by its line with the fix; state of older builds migrates; a crash cut
// into a compaction is safe; and a writer killed with SIGKILL loses no change it acknowledged.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRecords, journalRecordCodec, parseJournal, journalHeader } from '../../src/core/journal.js';
import { Registry, registrySnapshotCodec, type RegistryChange, type RegistrySnapshot } from '../../src/core/registry.js';
import { RegistryStore, SNAPSHOT_CHUNK, type RegistryStoreOptions } from '../../src/mlr/persistence.js';
import { FileStateFile } from '../../src/platform/state-file.js';
import { errorOf, ip, value, within } from '../support/helpers.js';

const pool = { network: ip('10.1.0.0'), prefix: 16, first: ip('10.1.0.0'), last: ip('10.1.255.255'), exclude: [] };
const mac = (n: number) => `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
const cell = (n: number) => ip('10.1.0.0') + 4 * n;

function tmpDir(t: test.TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-journal-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function withCns(r = new Registry(['vxlan'])): Registry {
  value(r.registerCn({ name: 'cn1', addr: ip('10.200.0.11'), tunnels: ['vxlan'], pools: [pool] }));
  value(r.registerCn({ name: 'cn2', addr: ip('10.200.0.12'), tunnels: ['vxlan', 'gre'], pools: [] }));
  return r;
}

function put(r: Registry, n: number, current = 'cn1', expires = 1_000_000 + n): void {
  value(r.put({ mac: mac(n), cell: cell(n), parent: 'cn1', current, state: 'bound', expires }));
}

async function opened(dir: string, registry = new Registry(['vxlan']), opts: RegistryStoreOptions = {}) {
  const file = new FileStateFile(path.join(dir, 'mlr.state'));
  const store = new RegistryStore(file, registry, opts);
  const loaded = value(store.load());
  await store.open();
  return { store, registry, loaded };
}

/** A fresh registry loaded from `dir`'s files (the store is not opened: the files stay as they are). */
function reload(dir: string) {
  const registry = new Registry(['vxlan']);
  const result = new RegistryStore(new FileStateFile(path.join(dir, 'mlr.state')), registry).load();
  return { registry, result };
}

const journalOf = (dir: string) => fs.readFileSync(path.join(dir, 'mlr.state.journal'), 'utf8');
const linesOf = (dir: string) =>
  journalOf(dir)
    .split('\n')
    .filter((l) => l !== '');
const comparable = (s: RegistrySnapshot) => JSON.parse(JSON.stringify(s)) as unknown;

test('every kind of change is one journal record, and replaying them rebuilds the registry', async (t) => {
  const dir = tmpDir(t);
  const { store, registry } = await opened(dir);
  withCns(registry);
  put(registry, 1, 'cn2');
  value(registry.pairTunnel('cn1', 'cn2'));
  put(registry, 2);
  registry.quarantine(cell(3), 5_000_000, mac(3));
  registry.remove(mac(2));
  put(registry, 1, 'cn1', 42); // a move home and a new expiry
  value(registry.registerCn({ name: 'cn2', addr: ip('10.200.0.12'), tunnels: ['gre'], pools: [] })); // cn2 lost vxlan
  assert.match(errorOf(registry.pairTunnel('cn1', 'cn2')), /share no tunnel type/, 'no type in common any more: no record');
  value(registry.registerCn({ name: 'cn2', addr: ip('10.200.0.12'), tunnels: ['gre'], pools: [] })); // unchanged: no record
  await store.durable();
  const kinds = linesOf(dir).map((l) => (JSON.parse(l) as { t: string }).t);
  assert.deepEqual(kinds, ['journal', 'cn', 'cn', 'put', 'pair', 'put', 'q', 'rm', 'put', 'cn']);
  assert.match(journalOf(dir), /"cell":"10.1.0.4"/, 'addresses as text');

  const { registry: back, result } = reload(dir);
  assert.deepEqual(value(result), { found: true, replayed: 9, notes: [] });
  assert.deepEqual(comparable(back.snapshot()), comparable(registry.snapshot()));
  assert.equal(back.binding(mac(1))?.expires, 42);
  assert.equal(back.isCellAvailable(cell(3), 1000), false, 'the quarantine is kept');
  assert.equal(back.cn('cn1')?.online, false);
  await store.close();
});

test('group commit: changes of one turn are written together, and durable() waits until they are on disk', async (t) => {
  const dir = tmpDir(t);
  const { store, registry } = await opened(dir, withCns());
  await store.durable();
  const before = store.stats.appends;
  for (let n = 0; n < 50; n++) put(registry, n);
  assert.equal(linesOf(dir).length, 1, 'nothing on disk yet (the header only): the 50 changes are not acknowledged');
  let done = false;
  const acked = store.durable().then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  await acked;
  assert.equal(done, true);
  assert.equal(linesOf(dir).length, 51, 'on disk once durable() resolved');
  assert.equal(store.stats.appends - before, 1, 'one write and one fdatasync for the whole turn');
  const quiet = Date.now();
  await store.durable();
  assert.ok(Date.now() - quiet < 50, 'with nothing pending durable() resolves at once');
  await store.close();
});

test('compaction bounds the journal, the state survives it, and a change costs the same at any size', async (t) => {
  const dir = tmpDir(t);
  const compaction = { minRecords: 20, factor: 2, minBytes: 1024 };
  const { store, registry } = await opened(dir, withCns(), { compaction });
  for (let n = 0; n < 10; n++) put(registry, n);
  await store.durable();
  for (let round = 0; round < 30; round++) {
    for (let n = 0; n < 10; n++) put(registry, n, round % 2 ? 'cn1' : 'cn2', 2_000_000 + round);
    await store.durable();
  }
  assert.ok(store.stats.compactions >= 5, `compacted ${store.stats.compactions} times`);
  assert.ok(store.journalRecords <= 2 * registry.liveRecords() + 10, `journal holds ${store.journalRecords} records`);
  assert.ok(linesOf(dir).length <= 2 * registry.liveRecords() + 11);
  const snap = JSON.parse(fs.readFileSync(path.join(dir, 'mlr.state'), 'utf8')) as { gen: number };
  assert.equal((JSON.parse(linesOf(dir)[0]!) as { gen: number }).gen, snap.gen, 'the journal continues the snapshot');
  const { registry: back, result } = reload(dir);
  value(result);
  assert.deepEqual(comparable(back.snapshot()), comparable(registry.snapshot()));

  // The bytes written for one change do not depend on how many bindings there are.
  const appended = async (r: Registry, s: RegistryStore): Promise<number> => {
    const size = fs.statSync(path.join(dir, 'mlr.state.journal')).size;
    const snapSize = fs.statSync(path.join(dir, 'mlr.state')).size;
    put(r, 5, 'cn2', 7);
    await s.durable();
    assert.equal(fs.statSync(path.join(dir, 'mlr.state')).size, snapSize, 'no snapshot rewritten for one change');
    return fs.statSync(path.join(dir, 'mlr.state.journal')).size - size;
  };
  const small = await appended(registry, store);
  for (let n = 10; n < 5000; n++) put(registry, n);
  await store.durable();
  await store.close();
  const big = await opened(dir, new Registry(['vxlan']), { compaction });
  assert.equal(big.registry.allBindings().length, 5000);
  assert.equal(await appended(big.registry, big.store), small, 'one record, the same size at 10 and 5000 bindings');
  await big.store.close();
});

test('a torn last line (a crash mid-write) is dropped with a note; the next start writes a clean journal', async (t) => {
  const dir = tmpDir(t);
  const { store, registry } = await opened(dir, withCns());
  put(registry, 1);
  await store.durable();
  await store.close();
  fs.appendFileSync(path.join(dir, 'mlr.state.journal'), '{"t":"put","mac":"02:00:00:00:00:02","cell":"10.1');
  const { registry: back, result } = reload(dir);
  const report = value(result);
  assert.equal(report.replayed, 1);
  assert.equal(report.notes.length, 1);
  assert.match(report.notes[0]!, /mlr\.state\.journal line 3: incomplete last record \(\d+ bytes\) dropped/);
  assert.equal(back.binding(mac(2)), undefined);
  assert.ok(back.binding(mac(1)));

  const again = await opened(dir);
  assert.equal(linesOf(dir).length, 1, 'open() started a fresh journal (the torn line is gone)');
  put(again.registry, 2);
  await again.store.durable();
  await again.store.close();
  const last = reload(dir);
  assert.deepEqual(value(last.result).notes, []);
  assert.ok(last.registry.binding(mac(2)));
});

test('a bad record is refused by file and line, with the fix; nothing is guessed', async (t) => {
  const dir = tmpDir(t);
  const { store, registry } = await opened(dir, withCns());
  for (let n = 1; n <= 3; n++) put(registry, n);
  await store.durable();
  await store.close();
  const file = path.join(dir, 'mlr.state.journal');
  const good = fs.readFileSync(file, 'utf8').split('\n');
  const spoilt = (line: number, text: string) => {
    const lines = [...good];
    lines[line - 1] = text;
    fs.writeFileSync(file, lines.join('\n'));
    return errorOf(reload(dir).result);
  };
  const at = (line: number) => new RegExp(`state journal ${file.replace(/[.]/g, '\\.')} line ${line}: `);

  let e = spoilt(4, good[3]!.replace('"cell":"10.1.0.12"', '"cell":"10.1.0.13"'));
  assert.match(e, at(4));
  assert.match(e, /\.cell: not the network address of a \/30/);
  assert.ok(e.includes(`head -n 3 ${file} > ${file}.new && mv ${file}.new ${file}`), e);
  assert.match(e, /or move .*mlr\.state and .*mlr\.state\.journal away to start empty/);

  e = spoilt(3, '{"t":"put",');
  assert.match(e, at(3));
  assert.match(e, /not a JSON record/);
  e = spoilt(2, '{"t":"bind","mac":"02:00:00:00:00:01"}');
  assert.match(e, /line 2: record\.t: expected one of cn, put, rm, pair, q/);
  e = spoilt(3, good[2]!.replace('"parent":"cn1"', '"parent":"ghost"'));
  assert.match(e, /line 3: parent 'ghost' of 02:00:00:00:00:02 is not a CN of this state/);
  e = spoilt(4, good[3]!.replace('"cell":"10.1.0.12"', '"cell":"10.1.0.4"'));
  assert.match(e, /line 4: cell 10.1.0.4\/30 is bound to 02:00:00:00:00:01/);
  fs.writeFileSync(file, good.join('\n') + '{"t":"rm","mac":"02:00:00:00:00:99"}\n');
  assert.match(errorOf(reload(dir).result), /line 5: 02:00:00:00:00:99 is removed but is not bound/);
  e = spoilt(1, '{"t":"put"}');
  assert.match(e, /line 1: not a tmip journal header/);
  e = spoilt(3, '');
  assert.match(e, /line 3: not a JSON record/, 'an empty line in the middle is not a torn tail');
});

test('state of older builds (one JSON file) loads and is migrated at the first compaction', async (t) => {
  const dir = tmpDir(t);
  const old = {
    cns: [{ name: 'cn1', addr: ip('10.200.0.11'), tunnels: ['vxlan'], pools: [{ ...pool, exclude: [] }] }],
    bindings: [{ mac: mac(1), cell: cell(1), parent: 'cn1', current: 'cn1', state: 'bound', expires: 99 }],
    pairs: [],
    nextKey: 1,
  };
  fs.writeFileSync(path.join(dir, 'mlr.state'), JSON.stringify(old));
  const { store, loaded, registry } = await opened(dir);
  assert.deepEqual(loaded, { found: true, replayed: 0, notes: [] });
  assert.equal(registry.binding(mac(1))?.expires, 99);
  const snap = JSON.parse(fs.readFileSync(path.join(dir, 'mlr.state'), 'utf8')) as { gen: number; cns: { addr: unknown }[] };
  assert.equal(snap.gen, 1);
  assert.equal(snap.cns[0]!.addr, '10.200.0.11', 'rewritten in the current format');
  assert.deepEqual(linesOf(dir), ['{"t":"journal","gen":1}']);
  await store.close();
  assert.equal(reload(dir).registry.binding(mac(1))?.expires, 99);
});

test('a crash cut into a compaction: a journal older than the snapshot is ignored, one newer refused', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'mlr.state.journal');
  const first = await opened(dir, withCns());
  put(first.registry, 1);
  await first.store.durable();
  await first.store.close();
  const gen1 = fs.readFileSync(file, 'utf8');
  const second = await opened(dir); // compacts: snapshot and journal of generation 2
  await second.store.close();
  fs.writeFileSync(file, gen1); // as if the crash came after the snapshot's rename, before the journal's
  const { registry, result } = reload(dir);
  const notes = value(result).notes;
  assert.match(notes[0] ?? '', /continues generation 1, the snapshot is generation 2: it is in the snapshot already .*ignored/);
  assert.ok(registry.binding(mac(1)), 'the change is in the snapshot');
  fs.writeFileSync(file, '{"t":"journal","gen":3}\n');
  assert.match(errorOf(reload(dir).result), /continues generation 3 but the snapshot .* is generation 2/);
});

test('a writer killed with SIGKILL mid-burst loses no change it acknowledged', async (t) => {
  const dir = tmpDir(t);
  const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), '../support/journal-writer.js');
  const child = spawn(process.execPath, [writer, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let acked = -1;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  await within(
    new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/acked (\d+)/g)) acked = Math.max(acked, Number(m[1]));
        if (acked >= 3000) resolve();
      });
    }),
    20_000,
    `3000 acknowledged changes (stderr: ${stderr})`,
  );
  child.kill('SIGKILL');
  await exited;
  const { registry, result } = reload(dir);
  const report = value(result);
  for (let n = 0; n <= acked; n++) {
    if (n % 7 === 6) continue; // change n removed the binding of change n - 3
    const b = registry.binding(mac(n));
    const removedBy = n + 3;
    if (removedBy % 7 !== 6) assert.equal(b?.expires, n, `change ${n} (acknowledged) is there`);
    else if (removedBy <= acked) assert.equal(b, undefined, `change ${removedBy} (acknowledged) removed ${mac(n)}`);
    else assert.ok(b === undefined || b.expires === n, `${mac(n)}: put, or removed by a change not yet acknowledged`);
  }
  process.stdout.write(
    `# ${acked + 1} changes acknowledged before SIGKILL; ${registry.allBindings().length} bindings loaded, ${report.replayed} journal records replayed${report.notes.length ? `; ${report.notes.join('; ')}` : ''}\n`,
  );
});

test("a put record written directly is byte for byte the codec's, and reads back as the same change", () => {
  const names = ['cn1', 'cn-é', 'a"b\\c', 'x\ny', '\u2028'];
  const changes: RegistryChange[] = [];
  for (let i = 0; i < 200; i++) {
    changes.push({
      kind: 'put',
      binding: {
        mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
        cell: (ip('10.0.0.0') + 4 * i * 65_537) >>> 0,
        parent: names[i % names.length]!,
        current: i % 3 === 0 ? null : names[(i * 7) % names.length]!,
        state: i % 2 ? 'bound' : 'offered',
        expires: i * 1_000_003_777,
      },
    });
  }
  changes.push({ kind: 'remove', mac: '02:00:00:00:00:01' });
  const text = encodeRecords(changes);
  const reference = changes.map((c) => JSON.stringify(journalRecordCodec.encode(c)) + '\n').join('');
  assert.equal(text, reference);
  const parsed = value(parseJournal(journalHeader(1) + text, 'journal'));
  assert.deepEqual(parsed.changes, changes);
});

test('a compaction writes the snapshot a chunk of bindings per turn: the MLR answers meanwhile, and changes made then are kept', async (t) => {
  const dir = tmpDir(t);
  const compaction = { minRecords: 20, factor: 2, minBytes: 1024 };
  const registry = withCns();
  const total = 3 * SNAPSHOT_CHUNK + 17;
  for (let n = 0; n < total; n++) put(registry, n);
  // Turns of the event loop, counted by other work; and how many ran between the registry's copy
  // (the compaction's start) and the file's replace (its text complete).
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (turns === 3) for (let n = 0; n < 5; n++) put(registry, n, 'cn2', 9_000_000 + n); // during the compaction's text
    if (running) setImmediate(tick);
  };
  let copiedAt = -1;
  const snapshot = registry.snapshot.bind(registry);
  registry.snapshot = () => ((copiedAt = turns), snapshot());
  const file = new FileStateFile(path.join(dir, 'mlr.state'));
  const during: number[] = [];
  const replace = file.replace.bind(file);
  file.replace = (text: string, journal: string) => (during.push(turns - copiedAt), replace(text, journal));
  const store = new RegistryStore(file, registry, { compaction });
  value(store.load());
  await store.open();
  assert.deepEqual(
    JSON.parse(fs.readFileSync(path.join(dir, 'mlr.state'), 'utf8')),
    JSON.parse(JSON.stringify({ gen: 1, ...(registrySnapshotCodec.encode(registry.snapshot()) as object) })),
    'the same snapshot as written in one piece',
  );
  for (let n = 0; n < 2 * total + 50; n++) put(registry, n % total, n % 2 ? 'cn1' : 'cn2', 3_000_000 + n);
  turns = 0;
  setImmediate(tick);
  await store.durable(); // the compaction
  await store.durable(); // the changes made during it
  running = false;
  assert.equal(store.stats.compactions, 2, 'the one at open, and one now');
  assert.ok(during[1]! >= 3, `other work ran while the snapshot's text was written (${during[1]} turns)`);
  await store.close();
  const { registry: back, result } = reload(dir);
  value(result);
  assert.deepEqual(comparable(back.snapshot()), comparable(registry.snapshot()), 'the snapshot and the journal after it hold every change');
  assert.equal(back.binding(mac(3))?.expires, 9_000_003);
});
