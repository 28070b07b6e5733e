// SPDX-License-Identifier: GPL-2.0-only
// An in-process MessageChannel pair whose wire can be cut, for liveness tests (issue 9): after cut()
// nothing more is delivered either way and neither end hears of it — a hung or powered-off peer, a
// cable pulled, no FIN. Closing one end after the cut closes only that end. Counts what each end sent.
import type { MessageChannel } from '../../src/proto/rpc.js';

export interface CuttablePair {
  a: MessageChannel;
  b: MessageChannel;
  cut: () => void;
  readonly sent: { a: number; b: number };
}

export function cuttablePair(aName = 'a', bName = 'b'): CuttablePair {
  let isCut = false;
  const sent = { a: 0, b: 0 };
  const ends = (['a', 'b'] as const).map((side) => {
    let receiver: (p: Buffer) => void = () => undefined;
    const closers: ((r: string) => void)[] = [];
    let closed: string | undefined;
    const finish = (reason: string) => {
      if (closed !== undefined) return;
      closed = reason;
      for (const c of closers) c(reason);
    };
    const channel: MessageChannel = {
      peer: side === 'a' ? bName : aName,
      send: (payload) => {
        if (isCut || closed !== undefined) return;
        sent[side]++;
        const copy = Buffer.from(payload);
        setImmediate(() => {
          if (!isCut) other(side).deliver(copy);
        });
      },
      onMessage: (r) => (receiver = r),
      onClose: (r) => (closed !== undefined ? r(closed) : void closers.push(r)),
      close: (reason = 'closed') => {
        finish(reason);
        if (!isCut) other(side).finish('closed by peer');
      },
    };
    return {
      finish,
      deliver: (p: Buffer) => {
        if (closed === undefined) receiver(p);
      },
      channel,
    };
  });
  const other = (side: 'a' | 'b') => ends[side === 'a' ? 1 : 0]!;
  return { a: ends[0]!.channel, b: ends[1]!.channel, cut: () => (isCut = true), sent };
}
