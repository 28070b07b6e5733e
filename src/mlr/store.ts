// StateStore: keeps the MLR registry on disk (state_file) so a restarted MLR loses no binding.
// Writes are coalesced (at most one every `delayMs`) and atomic (temp file + rename).
import fs from 'node:fs';
import path from 'node:path';
import type { RegistrySnapshot } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';

export class StateStore {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly snapshot: () => RegistrySnapshot,
    private readonly onError: (message: string) => void,
    private readonly delayMs = 100,
  ) {}

  load(): Result<RegistrySnapshot | undefined> {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined);
      return err(`cannot read state file ${this.file}: ${(e as Error).message}`);
    }
    try {
      const data = JSON.parse(text) as RegistrySnapshot;
      if (!Array.isArray(data.cns) || !Array.isArray(data.bindings) || !Array.isArray(data.pairs) || typeof data.nextKey !== 'number') {
        return err(`state file ${this.file} is not a tmip MLR state (move it away to start empty)`);
      }
      return ok(data);
    } catch {
      return err(`state file ${this.file} is not valid JSON (move it away to start empty)`);
    }
  }

  /** Ask for a write soon. */
  touch(): void {
    this.dirty = true;
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.dirty) return;
    this.dirty = false;
    const tmp = `${this.file}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      fs.writeFileSync(tmp, JSON.stringify(this.snapshot()));
      fs.renameSync(tmp, this.file);
    } catch (e) {
      this.onError(`cannot write state file ${this.file}: ${(e as Error).message}`);
    }
  }
}
