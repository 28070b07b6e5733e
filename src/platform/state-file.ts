// SPDX-License-Identifier: GPL-2.0-only
// StateFile: where the MLR keeps its registry between runs. The interface moves opaque JSON-able
// values; what they mean and whether they are valid is decided in mlr/persistence.ts. The real
// adapter writes atomically (temporary file, fsync, rename) so a crash leaves the old or the new
// state, never half of one; MemoryStateFile (fake-state-file.ts) serves the tests.
import fs from 'node:fs';
import path from 'node:path';
import { err, ok, type Result } from '../core/result.js';

export interface StateFile {
  /** Where the state lives, for messages. */
  readonly describe: string;
  /** The parsed JSON, undefined when nothing was saved yet, or why it cannot be read. */
  load(): Result<unknown>;
  save(data: unknown): Result<void>;
}

export class FileStateFile implements StateFile {
  constructor(private readonly file: string) {}

  get describe(): string {
    return this.file;
  }

  load(): Result<unknown> {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined);
      return err(`cannot read state file ${this.file}: ${(e as Error).message}`);
    }
    try {
      return ok(JSON.parse(text) as unknown);
    } catch {
      return err(`state file ${this.file} is not valid JSON (move it away to start empty)`);
    }
  }

  save(data: unknown): Result<void> {
    const tmp = `${this.file}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeSync(fd, JSON.stringify(data));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
      return ok(undefined);
    } catch (e) {
      return err(`cannot write state file ${this.file}: ${(e as Error).message}`);
    }
  }
}
