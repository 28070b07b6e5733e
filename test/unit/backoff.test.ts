// SPDX-License-Identifier: GPL-2.0-only
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../src/core/backoff.js';

describe('Backoff', () => {
  it('doubles from the minimum up to the maximum, and starts over after reset', () => {
    const b = new Backoff(100, 700);
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 700, 700]);
    b.reset();
    assert.deepEqual([b.next(), b.next()], [100, 200]);
  });

  it('defaults to 0.5 s doubling up to 10 s', () => {
    const b = new Backoff();
    const delays = Array.from({ length: 7 }, () => b.next());
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});
