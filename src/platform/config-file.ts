// SPDX-License-Identifier: GPL-2.0-only
// Reads a UCI config file from disk and hands it to the parser; errors name the file.
import fs from 'node:fs';
import { err, type Result } from '../core/result.js';
import { parseUci, type UciPackage } from '../proto/uci.js';

export const DEFAULT_CONFIG_FILE = '/etc/config/tmip';

export function readUciFile(file: string): Result<UciPackage> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return err(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  const pkg = parseUci(text);
  return pkg.ok ? pkg : err(`${file}: ${pkg.error}`);
}
