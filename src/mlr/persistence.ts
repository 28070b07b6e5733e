// SPDX-License-Identifier: GPL-2.0-only
// RegistryStore: keeps the MLR's registry in a StateFile so a restarted MLR loses no binding. Loading
// decodes the file with the registry's codec and restores it, reporting the first bad record by its
// position; saving is coalesced (at most one write every `delayMs`) and done at shutdown.
import { registrySnapshotCodec, type Registry } from '../core/registry.js';
import { err, ok, type Result } from '../core/result.js';
import type { StateFile } from '../platform/state-file.js';

export class RegistryStore {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(
    private readonly file: StateFile,
    private readonly registry: Registry,
    private readonly onError: (message: string) => void,
    private readonly delayMs = 100,
  ) {}

  /** Fill the (empty) registry from the file; ok(false) when there was no file yet. */
  load(): Result<boolean> {
    const data = this.file.load();
    if (!data.ok) return data;
    if (data.value === undefined) return ok(false);
    const fix = `(move ${this.file.describe} away to start empty)`;
    const snapshot = registrySnapshotCodec.decode(data.value, 'state');
    if (!snapshot.ok) return err(`state file ${this.file.describe} is not a valid tmip MLR state: ${snapshot.error} ${fix}`);
    const restored = this.registry.restore(snapshot.value);
    if (!restored.ok) return err(`state file ${this.file.describe} is inconsistent: ${restored.error} ${fix}`);
    return ok(true);
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
    const r = this.file.save(registrySnapshotCodec.encode(this.registry.snapshot()));
    if (!r.ok) this.onError(r.error);
  }
}
