// SPDX-License-Identifier: GPL-2.0-only
// The Node.js flags a shipped daemon runs with: read from its command, files/usr/sbin/<prog> (`exec
// /usr/bin/node FLAGS /usr/lib/tmip/<prog>.cjs "$@"`), so that the lab and the benches run the daemons
// as a router does and a change to the command cannot leave them behind. To measure other flags,
// TMIP_CN_NODE_FLAGS (or TMIP_MLR_NODE_FLAGS) replaces them, e.g. for bench/dhcp --memory; the
// openwrt-files unit test fails while it is set, as the lab then runs other flags than the router.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The environment variable that replaces the CN's flags (measurements only). */
export const NODE_FLAGS_ENV = 'TMIP_CN_NODE_FLAGS';

export function shippedNodeFlags(prog: 'tmip-cn' | 'tmip-mlr'): string[] {
  const override = process.env[prog === 'tmip-cn' ? NODE_FLAGS_ENV : 'TMIP_MLR_NODE_FLAGS'];
  if (override !== undefined) return override.split(/\s+/).filter(Boolean);
  const file = path.join(REPO, 'files/usr/sbin', prog);
  const line = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('exec '));
  const words = line?.trim().split(/\s+/) ?? [];
  const script = words.indexOf(`/usr/lib/tmip/${prog}.cjs`);
  if (words[1] !== '/usr/bin/node' || script < 2) throw new Error(`${file}: no 'exec /usr/bin/node ... /usr/lib/tmip/${prog}.cjs' line`);
  return words.slice(2, script);
}
