// SPDX-License-Identifier: GPL-2.0-only
// StateFile: where the MLR keeps its registry between runs, as two files: a snapshot (`state_file`)
// and a journal beside it (`<state_file>.journal`) that the changes since the snapshot are appended
// to. The interface moves text; what it means and whether it is valid is decided in
// mlr/persistence.ts and core/journal.ts. The real adapter (FileStateFile) makes every append durable
// (write, then fdatasync) before its promise resolves, and replaces both files on compaction so that
// a crash at any point leaves a snapshot and a journal that fit together (see replace()).
// MemoryStateFile (fake-state-file.ts) serves the tests.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { err, ok, type Result } from '../core/result.js';

export interface StateText {
  /** The snapshot's text; undefined when there is none (first start). */
  snapshot: string | undefined;
  /** The journal's text; undefined when there is none. */
  journal: string | undefined;
}

export interface StateFile {
  /** Where the snapshot lives, for messages. */
  readonly describe: string;
  /** Where the journal lives, for messages. */
  readonly describeJournal: string;
  /** Both files' text (at start-up), or why they cannot be read. */
  read(): Result<StateText>;
  /** Append to the journal; resolves once the text is on disk (fdatasync), rejects if it cannot be. */
  append(text: string): Promise<void>;
  /**
   * Replace the snapshot with `snapshot` and the journal with `journal` (its header), each written and
   * fsync'd before it takes the old one's place; appends go to the new journal from then on.
   */
  replace(snapshot: string, journal: string): Promise<void>;
  close(): Promise<void>;
}

export class FileStateFile implements StateFile {
  private journalFd: fsp.FileHandle | undefined;
  private readonly journal: string;

  constructor(private readonly file: string) {
    this.journal = `${file}.journal`;
  }

  get describe(): string {
    return this.file;
  }

  get describeJournal(): string {
    return this.journal;
  }

  read(): Result<StateText> {
    const snapshot = readIfThere(this.file);
    if (!snapshot.ok) return snapshot;
    const journal = readIfThere(this.journal);
    if (!journal.ok) return journal;
    return ok({ snapshot: snapshot.value, journal: journal.value });
  }

  async append(text: string): Promise<void> {
    const fd = this.journalFd;
    if (!fd) throw new Error(`state journal ${this.journal} is not open`);
    try {
      await writeAll(fd, Buffer.from(text));
      await fd.datasync();
    } catch (e) {
      throw new Error(`cannot append to state journal ${this.journal}: ${(e as Error).message}`);
    }
  }

  /**
   * The order makes every crash safe: (1) the new journal is written and fsync'd under a temporary
   * name; (2) the snapshot likewise, then renamed over the old one (the commit point: the old journal
   * now names an older generation and is ignored at load); (3) the new journal is renamed into place.
   */
  async replace(snapshot: string, journal: string): Promise<void> {
    const dir = path.dirname(this.file);
    try {
      await fsp.mkdir(dir, { recursive: true });
      const journalTmp = `${this.journal}.tmp`;
      await writeSynced(journalTmp, journal);
      const snapshotTmp = `${this.file}.tmp`;
      await writeSynced(snapshotTmp, snapshot);
      await fsp.rename(snapshotTmp, this.file);
      await syncDir(dir);
      await this.journalFd?.close();
      this.journalFd = undefined;
      await fsp.rename(journalTmp, this.journal);
      await syncDir(dir);
      this.journalFd = await fsp.open(this.journal, 'a', 0o600);
    } catch (e) {
      throw new Error(`cannot write state file ${this.file}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    const fd = this.journalFd;
    this.journalFd = undefined;
    await fd?.close();
  }
}

function readIfThere(file: string): Result<string | undefined> {
  try {
    return ok(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined);
    return err(`cannot read state file ${file}: ${(e as Error).message}`);
  }
}

async function writeAll(fd: fsp.FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const { bytesWritten } = await fd.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    off += bytesWritten;
  }
}

async function writeSynced(file: string, text: string): Promise<void> {
  const fd = await fsp.open(file, 'w', 0o600);
  try {
    await writeAll(fd, Buffer.from(text));
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** Make a rename in `dir` durable. */
async function syncDir(dir: string): Promise<void> {
  const fd = await fsp.open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}
