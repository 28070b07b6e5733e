// SPDX-License-Identifier: GPL-2.0-only
// The CN's way to the one serving MLR of several (`list mlr`, MLRs sharing an etcd store: only the
// leader listens, the standbys listen nowhere until they lead; mlr/leadership.ts). A connect tries
// every address at once, each in its own loop: an address that refuses (a standby) is tried again
// every `pollMs`, one that hangs (a server powered off: the TCP connect waits for its time-out) holds
// up only its own loop. The first connection made wins; one made later by another loop is closed.
// When none accepts (the leader has just died and no standby has taken over yet: up to the leader
// lease's TTL) the loops go on for `windowMs`, so the CN binds to the new leader within a poll of its
// take-over instead of after a grown reconnect back-off. Bounded: each loop makes at most
// windowMs / pollMs + 1 attempts.
import { monotonicMs } from '../core/clock.js';
import { formatMlrAddress, type MlrAddress } from '../core/config.js';
import type { MessageChannel } from '../proto/rpc.js';

export interface FailoverOptions {
  /** How long one connect keeps trying (default 4 s: more than the leader's 2 s lease). 0 = one try each. */
  windowMs?: number;
  /** Pause between two tries of one address (default 250 ms). */
  pollMs?: number;
  /** Told when a connection is made to another address than the last one (for the log). */
  onSwitch?: (to: MlrAddress) => void;
}

export function failoverConnector(
  addresses: readonly MlrAddress[],
  connectOne: (a: MlrAddress) => Promise<MessageChannel>,
  opts: FailoverOptions = {},
): () => Promise<MessageChannel> {
  if (addresses.length === 0) throw new Error('failoverConnector: no address');
  const windowMs = opts.windowMs ?? 4000;
  const pollMs = opts.pollMs ?? 250;
  let connected = -1;
  return () =>
    new Promise<MessageChannel>((resolve, reject) => {
      const started = monotonicMs();
      const problems = new Map<string, string>();
      let won = false;
      let running = addresses.length;
      const loop = async (i: number, a: MlrAddress): Promise<void> => {
        for (let round = 0; !won && (round === 0 || monotonicMs() - started < windowMs); round++) {
          if (round > 0) await new Promise((r) => setTimeout(r, pollMs));
          if (won) return;
          try {
            const channel = await connectOne(a);
            if (won) {
              channel.close(); // another address answered first
              return;
            }
            won = true;
            if (i !== connected) opts.onSwitch?.(a);
            connected = i;
            resolve(channel);
            return;
          } catch (e) {
            problems.set(formatMlrAddress(a), e instanceof Error ? e.message : String(e));
          }
        }
      };
      addresses.forEach((a, i) => {
        void loop(i, a).finally(() => {
          if (--running === 0 && !won) {
            reject(new Error(`no MLR of ${addresses.length} accepts: ${[...problems].map(([x, p]) => `${x}: ${p}`).join('; ')}`));
          }
        });
      });
    });
}
