// SPDX-License-Identifier: GPL-2.0-only
// readLines (src/platform/line-reader.ts): lines split across chunks, UTF-8 split inside a character,
// long lines cut, a last line without '\n' held back, and what an unending line can make it hold.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { LineSplitter, readLines } from '../../src/platform/line-reader.js';

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

test('a line that never ends holds at most the bound in memory, however much of it comes', () => {
  const splitter = new LineSplitter(1000);
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(splitter.push('z'.repeat(4096)), []);
    assert.ok(splitter.held <= 1000, `held ${splitter.held} characters`);
  }
  assert.deepEqual(splitter.push('\nnext\n'), ['z'.repeat(1000), 'next']);
});
