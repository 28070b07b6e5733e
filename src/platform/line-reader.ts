// SPDX-License-Identifier: GPL-2.0-only
// readLines: a stream (a child process's output) handed on a line at a time. Written here rather than
// taken from node:readline, which loads three modules (readline, readline/promises and its keypress
// decoder: about 0.6 MB of a CN's RSS; openwrt/README.md, "Memory") for what is a split on '\n'.
import type { Readable } from 'node:stream';

/** The longest line passed on (a longer one is cut to this): the processes we read print short lines. */
export const MAX_LINE = 64 * 1024;

/**
 * Decode `input` as UTF-8 and call `onLine` for every line ended by '\n' (without it), each at most
 * `maxLine` characters. A last line without '\n' when the stream ends is not passed on.
 */
export function readLines(input: Readable, onLine: (line: string) => void, maxLine = MAX_LINE): void {
  let partial = '';
  input.setEncoding('utf8');
  input.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = (lines.pop() ?? '').slice(0, maxLine);
    for (const line of lines) onLine(line.length > maxLine ? line.slice(0, maxLine) : line);
  });
}
