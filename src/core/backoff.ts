// SPDX-License-Identifier: GPL-2.0-only
// Exponential reconnect back-off, as a pure calculator: the caller owns the timer.

/** Delays that start at `minMs`, double after each failure up to `maxMs`, and start over on `reset()`. */
export class Backoff {
  private delay: number;

  constructor(
    private readonly minMs = 500,
    private readonly maxMs = 10_000,
  ) {
    this.delay = minMs;
  }

  /** The delay before the next attempt; the one after it is twice as long (at most `maxMs`). */
  next(): number {
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, this.maxMs);
    return d;
  }

  /** After a success: the next failure waits `minMs` again. */
  reset(): void {
    this.delay = this.minMs;
  }
}
