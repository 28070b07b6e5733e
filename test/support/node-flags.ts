// SPDX-License-Identifier: GPL-2.0-only
// The Node.js flags a shipped daemon runs with: read from its command, files/usr/sbin/<prog> (`exec
// /usr/bin/node FLAGS /usr/lib/tmip/<prog>.js "$@"`), so that the lab and the benches run the daemons
// as a router does and a change to the command cannot leave them behind.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export function shippedNodeFlags(prog: 'tmip-cn' | 'tmip-mlr'): string[] {
  const file = path.join(REPO, 'files/usr/sbin', prog);
  const line = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('exec '));
  const words = line?.trim().split(/\s+/) ?? [];
  const script = words.indexOf(`/usr/lib/tmip/${prog}.js`);
  if (words[1] !== '/usr/bin/node' || script < 2) throw new Error(`${file}: no 'exec /usr/bin/node ... /usr/lib/tmip/${prog}.js' line`);
  return words.slice(2, script);
}
