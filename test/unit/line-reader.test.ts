// SPDX-License-Identifier: GPL-2.0-only
// readLines (src/platform/line-reader.ts): lines split across chunks, UTF-8 split inside a character,
// long lines cut, a last line without '\n' held back.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { readLines } from '../../src/platform/line-reader.js';

async function linesOf(chunks: Buffer[], maxLine?: number): Promise<string[]> {
  const input = new PassThrough();
  const out: string[] = [];
  readLines(input, (l) => out.push(l), maxLine);
  for (const c of chunks) input.write(c);
  input.end();
  await new Promise((r) => input.on('end', r));
  return out;
}

test('readLines joins a line written in several chunks and splits several lines in one chunk', async () => {
  const out = await linesOf([Buffer.from('1: eth0 10.0.0'), Buffer.from('.2 FAILED\nsecond\n'), Buffer.from('\nthird\nrest')]);
  assert.deepEqual(out, ['1: eth0 10.0.0.2 FAILED', 'second', '', 'third']);
});

test('readLines decodes a UTF-8 character cut between two chunks', async () => {
  const bytes = Buffer.from('caf\u00e9 ok\n');
  const out = await linesOf([bytes.subarray(0, 4), bytes.subarray(4)]);
  assert.deepEqual(out, ['caf\u00e9 ok']);
});

test('readLines cuts a line longer than the bound, also one that never ends in a chunk', async () => {
  const out = await linesOf([Buffer.from('x'.repeat(50)), Buffer.from('x'.repeat(50) + '\nshort\n' + 'y'.repeat(30) + '\n')], 20);
  assert.deepEqual(out, ['x'.repeat(20), 'short', 'y'.repeat(20)]);
});
