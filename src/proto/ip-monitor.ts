// SPDX-License-Identifier: GPL-2.0-only
// Lines of `ip -o -4 monitor neigh` (iproute2), decoded: which IPv4 neighbour on which device is now
// in which NUD state. The CN follows its mobile interface's neighbour table this way to notice that a
// station it serves stopped answering while traffic flowed to it (state FAILED), without spawning a
// process per question and without a netlink addon. Examples of what iproute2 prints:
//   10.9.0.1 dev wlan0 lladdr 02:c7:b7:d6:33:f4 REACHABLE
//   10.9.0.1 dev wlan0 FAILED
//   Deleted 10.9.0.1 dev wlan0 lladdr 02:c7:b7:d6:33:f4 STALE
//   miss 10.9.0.1 dev wlan0 INCOMPLETE
// Anything else (IPv6, proxy entries, a line cut short, garbage) is an error, never an exception.
import { parseIPv4, type IPv4 } from '../core/ip.js';
import { err, ok, type Result } from '../core/result.js';

export type NeighbourState = 'INCOMPLETE' | 'REACHABLE' | 'STALE' | 'DELAY' | 'PROBE' | 'FAILED' | 'NOARP' | 'PERMANENT' | 'NONE';

const STATES: ReadonlySet<string> = new Set(['INCOMPLETE', 'REACHABLE', 'STALE', 'DELAY', 'PROBE', 'FAILED', 'NOARP', 'PERMANENT', 'NONE']);

export interface NeighbourEvent {
  ip: IPv4;
  dev: string;
  /** The entry's states as printed (usually one; a few entries carry two, e.g. "PERMANENT NOARP"). */
  states: NeighbourState[];
  /** The entry was removed ("Deleted ..."). */
  deleted: boolean;
}

/** The longest line worth looking at (iproute2's neighbour lines are well under 200 characters). */
const MAX_LINE = 512;

/** Decode one line of `ip -o -4 monitor neigh` (with or without a leading timestamp). */
export function parseNeighbourLine(line: string): Result<NeighbourEvent> {
  if (line.length > MAX_LINE) return err(`line of ${line.length} characters is too long`);
  let words = line.trim().split(/\s+/);
  if (words[0]?.startsWith('[') === true) words = words.slice(1); // -ts / -t prefix
  let deleted = false;
  if (words[0] === 'Deleted') {
    deleted = true;
    words = words.slice(1);
  } else if (words[0] === 'miss') {
    words = words.slice(1);
  }
  const ip = parseIPv4(words[0] ?? '');
  if (!ip.ok) return err(`not an IPv4 neighbour line: ${JSON.stringify(line.slice(0, 80))}`);
  const devAt = words.indexOf('dev');
  const dev = devAt > 0 ? words[devAt + 1] : undefined;
  if (dev === undefined || dev.length === 0 || dev.length > 15) return err(`no device in ${JSON.stringify(line.slice(0, 80))}`);
  const states = words.filter((w): w is NeighbourState => STATES.has(w));
  if (states.length === 0) return err(`no state in ${JSON.stringify(line.slice(0, 80))}`);
  return ok({ ip: ip.value, dev, states, deleted });
}
