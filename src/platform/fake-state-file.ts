// SPDX-License-Identifier: GPL-2.0-only
// MemoryStateFile: a StateFile held in memory for tests. It stores the JSON text (so what is saved
// goes through the same serialisation as on disk), counts saves, and can be told to fail.
import { err, ok, type Result } from '../core/result.js';
import type { StateFile } from './state-file.js';

export class MemoryStateFile implements StateFile {
  readonly describe = 'memory';
  /** The saved JSON text; set it directly to simulate a file left by someone else. */
  text: string | undefined;
  saves = 0;
  /** When set, save() fails with this message. */
  failSave: string | undefined;

  load(): Result<unknown> {
    if (this.text === undefined) return ok(undefined);
    try {
      return ok(JSON.parse(this.text) as unknown);
    } catch {
      return err('state is not valid JSON');
    }
  }

  save(data: unknown): Result<void> {
    if (this.failSave !== undefined) return err(this.failSave);
    this.text = JSON.stringify(data);
    this.saves++;
    return ok(undefined);
  }
}
