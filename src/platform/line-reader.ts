// SPDX-License-Identifier: GPL-2.0-only
// readLines: a stream (a child process's output) handed on a line at a time. Written here rather than
// taken from node:readline, which loads three modules (readline, readline/promises and its keypress
// decoder: about 0.6 MB of a CN's RSS; openwrt/README.md, "Memory") for what is a split on '\n'.
import type { Readable } from 'node:stream';

/** The longest line passed on (a longer one is cut to this): the processes we read print short lines. */
export const MAX_LINE = 64 * 1024;

/**
 * Splits text into lines ended by '\n', each cut to `maxLine` characters; what follows the last '\n'
 * is held (at most `maxLine` characters, however long the line runs without one) until more comes.
 */
export class LineSplitter {
  private partial = '';

  constructor(private readonly maxLine = MAX_LINE) {}

  /** The complete lines in what has come so far, `text` included. */
  push(text: string): string[] {
    const lines = (this.partial + text).split('\n');
    this.partial = (lines.pop() ?? '').slice(0, this.maxLine);
    for (let i = 0; i < lines.length; i++) if (lines[i]!.length > this.maxLine) lines[i] = lines[i]!.slice(0, this.maxLine);
    return lines;
  }

  /** Characters held of a line not yet ended. */
  get held(): number {
    return this.partial.length;
  }
}

/**
 * Decode `input` as UTF-8 and call `onLine` for every line ended by '\n' (without it), each at most
 * `maxLine` characters. A last line without '\n' when the stream ends is not passed on.
 */
export function readLines(input: Readable, onLine: (line: string) => void, maxLine = MAX_LINE): void {
  const splitter = new LineSplitter(maxLine);
  input.setEncoding('utf8');
  input.on('data', (text: string) => {
    for (const line of splitter.push(text)) onLine(line);
  });
}
