// SPDX-License-Identifier: GPL-2.0-only
// MemoryStateFile: a StateFile held in memory for tests. It keeps the snapshot's and the journal's
// text (so what is saved goes through the same encoding as on disk), counts appends and
// replacements, and can be told to fail, or to hold appends back (a slow disk) until resume().
import { ok, type Result } from '../core/result.js';
import type { StateFile, StateText } from './state-file.js';

export class MemoryStateFile implements StateFile {
  readonly describe = 'memory';
  readonly describeJournal = 'memory journal';
  /** The snapshot's text; set it directly to simulate a file left by someone else. */
  snapshot: string | undefined;
  /** The journal's text. */
  journal: string | undefined;
  appends = 0;
  replaces = 0;
  /** When set, append() and replace() fail with this message. */
  failWrite: string | undefined;
  /** While set, appends wait (not yet on disk) until resume(). */
  paused = false;
  private held: (() => void)[] = [];

  /** Let the held appends reach the "disk". */
  resume(): void {
    this.paused = false;
    for (const f of this.held.splice(0)) f();
  }

  read(): Result<StateText> {
    return ok({ snapshot: this.snapshot, journal: this.journal });
  }

  append(text: string): Promise<void> {
    if (this.failWrite !== undefined) return Promise.reject(new Error(this.failWrite));
    if (this.journal === undefined) return Promise.reject(new Error('the journal is not open'));
    const write = () => {
      this.journal += text;
      this.appends++;
    };
    if (!this.paused) {
      write();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.held.push(() => resolve(write())));
  }

  replace(snapshot: string, journal: string): Promise<void> {
    if (this.failWrite !== undefined) return Promise.reject(new Error(this.failWrite));
    this.snapshot = snapshot;
    this.journal = journal;
    this.replaces++;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
