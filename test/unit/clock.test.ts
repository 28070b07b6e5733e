// SPDX-License-Identifier: GPL-2.0-only
// monotonicMs (src/core/clock.ts): goes forward with time and never back. (That durations do not
// follow a wall-clock step: cn-handover.test.ts, the new-station budget.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { monotonicMs } from '../../src/core/clock.js';

test('monotonicMs goes forward with time and never back', async () => {
  const a = monotonicMs();
  let last = a;
  for (let i = 0; i < 1000; i++) {
    const t = monotonicMs();
    assert.ok(t >= last, `${t} < ${last}`);
    last = t;
  }
  await new Promise((r) => setTimeout(r, 20));
  const waited = monotonicMs() - a;
  assert.ok(waited >= 19 && waited < 5000, `20 ms measured as ${waited}`);
});
