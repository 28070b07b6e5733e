// SPDX-License-Identifier: GPL-2.0-only
// An in-process MessageChannel pair (a fake transport for tests and for running MLR and CN logic in
// one process). Delivery is asynchronous, as on a socket.
import type { MessageChannel } from '../proto/rpc.js';

class MemoryEnd implements MessageChannel {
  other!: MemoryEnd;
  private receiver: (payload: Buffer) => void = () => {};
  private closeReceivers: ((reason: string) => void)[] = [];
  closed: string | undefined;

  constructor(readonly peer: string) {}

  send(payload: Buffer): void {
    if (this.closed) return;
    const copy = Buffer.from(payload);
    setImmediate(() => {
      if (!this.other.closed) this.other.receiver(copy);
    });
  }

  onMessage(receiver: (payload: Buffer) => void): void {
    this.receiver = receiver;
  }

  onClose(receiver: (reason: string) => void): void {
    if (this.closed) receiver(this.closed);
    else this.closeReceivers.push(receiver);
  }

  close(reason = 'closed'): void {
    this.finish(reason);
    this.other.finish('closed by peer');
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = reason;
    for (const r of this.closeReceivers) r(reason);
  }
}

export function memoryChannelPair(a = 'a', b = 'b'): [MessageChannel, MessageChannel] {
  const x = new MemoryEnd(b);
  const y = new MemoryEnd(a);
  x.other = y;
  y.other = x;
  return [x, y];
}
