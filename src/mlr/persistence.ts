// SPDX-License-Identifier: GPL-2.0-only
// RegistryStore: keeps the MLR's registry durable in a StateFile (a snapshot and a journal, see
// platform/state-file.ts) so that a restarted or killed MLR loses no change it acknowledged.
//
// - Every change the registry tells (Registry.watch: a CN's record, a binding put or removed, a pair's
//   tunnel, a quarantine) is queued as one journal record (core/journal.ts). Group commit: the records
//   queued in one turn of the event loop, and those queued while a write is on its way or within
//   COMMIT_INTERVAL_MS of its start (mlr/group-commit.ts), are appended together and fdatasync'd
//   once. durable() resolves once every change made before the call is on disk; the MLR awaits it
//   before it acknowledges a change (mlr/service.ts, mlr/handover.ts).
// - Compaction: when the journal has grown past `factor` times the live size (records, or bytes
//   against the last snapshot), the registry is written as a new snapshot (generation + 1; write,
//   fsync, rename) and a fresh journal is started. Its cost is the live size, spread over at least as
//   many changes, so a change costs the same at 100 bindings or 100,000; the text is written a chunk
//   of bindings per turn of the event loop (compact()). open() compacts once at start,
//   which also turns a state file of older builds (a lone snapshot) into the current pair.
// - Loading: the snapshot (registrySnapshotCodec), then the journal's records in order, each decoded
//   with the schema and replayed through Registry.apply(). The first bad record is reported with its
//   file, line and the fix. A torn last line (a crash mid-write: never fsync'd, so never acknowledged)
//   is the one defect tolerated: dropped, with a note. A journal of an older generation than the
//   snapshot (a crash mid-compaction) is already in the snapshot and ignored.
// - A write that fails leaves the store failed: durable() rejects from then on, so nothing more is
//   acknowledged, and onFailure is told (tmip-mlr exits so that procd restarts it from the disk).
import { DEFAULT_COMPACTION, encodeRecords, journalHeader, parseJournal, shouldCompact, type CompactionPolicy } from '../core/journal.js';
import { registrySnapshotCodec, storedBindingCodec, type Registry, type RegistryChange, type RegistrySnapshot } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';
import { int, object, optional } from '../core/schema.js';
import type { StateFile } from '../platform/state-file.js';
import { GroupCommit } from './group-commit.js';

/** Bindings written into a snapshot's text per turn of the event loop (about 4 ms of work each). */
export const SNAPSHOT_CHUNK = 2000;

/**
 * The snapshot file's text: `{"gen":…, <the registry's fields>, "bindings":[…]}`. Everything but the
 * bindings is encoded in the first turn, before anything else can run (Registry.snapshot()'s CN records
 * share their tunnels and pools with the registry's); the bindings, SNAPSHOT_CHUNK at a time with a
 * turn of the event loop between: the array is a copy, its objects the stored ones, which the registry
 * never changes once stored (Registry.put). The same object as JSON.stringify({ gen,
 * ...registrySnapshotCodec.encode(snap) }), with `bindings` written last.
 */
async function snapshotText(gen: number, snap: RegistrySnapshot): Promise<string> {
  const others = registrySnapshotCodec.encode({ ...snap, bindings: [] }) as Record<string, unknown>;
  delete others['bindings'];
  const head = JSON.stringify({ gen, ...others });
  const parts: string[] = [];
  for (let at = 0; at < snap.bindings.length; at += SNAPSHOT_CHUNK) {
    if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const chunk = snap.bindings.slice(at, at + SNAPSHOT_CHUNK).map((b) => storedBindingCodec.encode(b));
    parts.push(JSON.stringify(chunk).slice(1, -1));
  }
  return `${head.slice(0, -1)},"bindings":[${parts.join(',')}]}`;
}

/** The store's own field of the snapshot: the generation the journal continues (0 for older files). */
const snapshotGenCodec = object({ gen: optional(int(0, Number.MAX_SAFE_INTEGER)) });

export interface LoadReport {
  /** False when there was no state yet. */
  found: boolean;
  /** Journal records replayed on top of the snapshot. */
  replayed: number;
  /** What was tolerated (a torn last line, a stale journal), one line each, for the log. */
  notes: string[];
}

export interface RegistryStoreOptions {
  /** A write failed: nothing more will be acknowledged. */
  onFailure?: (message: string) => void;
  compaction?: CompactionPolicy;
}

export class RegistryStore {
  private gen = 0;
  /** Changes waiting for their append (or a compaction), written in groups. */
  private readonly queue: GroupCommit<RegistryChange>;
  private journal = { records: 0, bytes: 0 };
  private snapshotBytes = 0;
  readonly stats = { appends: 0, records: 0, compactions: 0 };

  constructor(
    private readonly file: StateFile,
    private readonly registry: Registry,
    private readonly opts: RegistryStoreOptions = {},
  ) {
    this.queue = new GroupCommit((batch) => this.write(batch), opts.onFailure);
  }

  /** Fill the (empty) registry from the snapshot and the journal. */
  load(): Result<LoadReport> {
    const data = this.file.read();
    if (!data.ok) return data;
    const { snapshot, journal } = data.value;
    const snap = this.file.describe;
    const jour = this.file.describeJournal;
    if (snapshot === undefined) {
      if (journal === undefined) return ok({ found: false, replayed: 0, notes: [] });
      return err(`state journal ${jour} exists but its snapshot ${snap} does not (put ${snap} back, or move ${jour} away to start empty)`);
    }
    const fix = `(move ${snap} and ${jour} away to start empty)`;
    let json: unknown;
    try {
      json = JSON.parse(snapshot);
    } catch {
      return err(`state file ${snap} is not valid JSON ${fix}`);
    }
    const decoded = registrySnapshotCodec.decode(json, 'state');
    if (!decoded.ok) return err(`state file ${snap} is not a valid tmip MLR state: ${decoded.error} ${fix}`);
    const gen = snapshotGenCodec.decode(json, 'state');
    if (!gen.ok) return err(`state file ${snap} is not a valid tmip MLR state: ${gen.error} ${fix}`);
    const restored = this.registry.restore(decoded.value);
    if (!restored.ok) return err(`state file ${snap} is inconsistent: ${restored.error} ${fix}`);
    this.gen = gen.value.gen ?? 0;
    this.snapshotBytes = Buffer.byteLength(snapshot);
    const report: LoadReport = { found: true, replayed: 0, notes: [] };
    if (journal === undefined) return ok(report);

    const cut = (line: number) =>
      `(the records before line ${line} are sound: keep them with 'head -n ${line - 1} ${jour} > ${jour}.new && mv ${jour}.new ${jour}', ` +
      `which drops line ${line} and every change after it; or move ${snap} and ${jour} away to start empty)`;
    const parsed = parseJournal(journal, `state journal ${jour}`, cut);
    if (!parsed.ok) return parsed;
    const j = parsed.value;
    if (j.torn) {
      report.notes.push(
        `state journal ${jour} line ${j.torn.line}: incomplete last record (${j.torn.bytes} bytes) dropped; a crash cut its write short, so it was never acknowledged`,
      );
    }
    if (j.gen < this.gen) {
      if (j.gen >= 0 || j.changes.length > 0) {
        report.notes.push(
          `state journal ${jour} continues generation ${j.gen}, the snapshot is generation ${this.gen}: it is in the snapshot already (a compaction was cut short); ignored`,
        );
      }
      return ok(report);
    }
    if (j.gen > this.gen) {
      return err(
        `state journal ${jour} continues generation ${j.gen} but the snapshot ${snap} is generation ${this.gen}: that is not the snapshot the journal belongs to (put the matching snapshot back, or ${fix.slice(1, -1)})`,
      );
    }
    for (const [i, change] of j.changes.entries()) {
      const r = this.registry.apply(change);
      const line = j.lines[i] ?? 0;
      if (!r.ok) return err(`state journal ${jour} line ${line}: ${r.error} ${cut(line)}`);
    }
    report.replayed = j.changes.length;
    this.journal = { records: j.changes.length, bytes: Buffer.byteLength(journal) };
    return ok(report);
  }

  /**
   * Start keeping the registry: a fresh snapshot of what was loaded and a fresh journal (which also
   * migrates older state and drops a torn or stale journal), then every change the registry tells.
   * Nothing may change the registry until this resolves: changes are watched only from then on (the
   * MLR creates its service after it; mlr/mlr.ts).
   */
  async open(): Promise<void> {
    await this.compact();
    this.registry.watch((c) => this.queue.push(c));
  }

  /** Resolves once every change made so far is on disk; rejects once a write has failed. */
  durable(): Promise<void> {
    return this.queue.durable();
  }

  /** Write what is queued, stop listening and close the files. */
  async close(): Promise<void> {
    await this.queue.idle();
    this.registry.watch(undefined);
    await this.file.close();
  }

  /** Journal records since the last snapshot (for status and tests). */
  get journalRecords(): number {
    return this.journal.records;
  }

  /** One group of changes: appended to the journal, or, once it has grown enough, a compaction (which holds them). */
  private async write(batch: RegistryChange[]): Promise<void> {
    const live = { records: this.registry.liveRecords(), snapshotBytes: this.snapshotBytes };
    const grown = { records: this.journal.records + batch.length, bytes: this.journal.bytes };
    if (shouldCompact(grown, live, this.opts.compaction ?? DEFAULT_COMPACTION)) {
      await this.compact();
      return;
    }
    const text = encodeRecords(batch);
    await this.file.append(text);
    this.journal.records += batch.length;
    this.journal.bytes += Buffer.byteLength(text);
    this.stats.appends++;
    this.stats.records += batch.length;
  }

  /**
   * A new snapshot of the registry as it is now (it holds every queued change) and an empty journal.
   * The registry is taken at once (Registry.snapshot; all but the bindings encoded in that turn, the
   * bindings being objects never changed once stored: snapshotText); the text is then written
   * SNAPSHOT_CHUNK bindings a turn, so that the MLR goes on answering meanwhile (at 100,000 bindings
   * the whole text took 180-200 ms of one turn). Changes made meanwhile wait in the group commit, as
   * they wait for any write, and go to the new journal after it.
   */
  private async compact(): Promise<void> {
    const gen = this.gen + 1;
    const text = await snapshotText(gen, this.registry.snapshot());
    await this.file.replace(text, journalHeader(gen));
    this.gen = gen;
    this.snapshotBytes = Buffer.byteLength(text);
    this.journal = { records: 0, bytes: 0 };
    this.stats.compactions++;
  }
}
