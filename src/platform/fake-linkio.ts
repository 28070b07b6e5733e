// SPDX-License-Identifier: GPL-2.0-only
// FakeLinkIO: a LinkIO for unit tests. Frames the code under test sends are kept in `sent`;
// deliver() hands a frame to the registered receiver as if it had been captured.
import type { Mac } from '../core/ip.js';
import type { LinkIO, LinkStats } from './linkio.js';

export class FakeLinkIO implements LinkIO {
  /** Every frame passed to send(), copied, in order. */
  readonly sent: Buffer[] = [];
  /** When set, send() fails with this message (and records nothing). */
  failSend: string | undefined;
  closed = false;
  /** Frames delivered so far; `stopped` as the real capture reports a socket it gave up polling. */
  received = 0;
  stopped = false;
  private receiver: ((frame: Buffer) => void) | undefined;

  constructor(
    readonly ifname = 'wlan0',
    readonly mac: Mac = '02:00:00:00:00:01',
  ) {}

  send(frame: Uint8Array): string | undefined {
    if (this.closed) return `${this.ifname}: link is closed`;
    if (this.failSend !== undefined) return this.failSend;
    if (frame.byteLength < 14) return `${this.ifname}: frame of ${frame.byteLength} bytes is shorter than an Ethernet header`;
    this.sent.push(Buffer.from(frame));
    return undefined;
  }

  onFrame(receiver: (frame: Buffer) => void): void {
    this.receiver = receiver;
  }

  /** Hand `frame` (copied) to the receiver; false when there is none or the link is closed. */
  deliver(frame: Uint8Array): boolean {
    if (this.closed || !this.receiver) return false;
    this.received++;
    this.receiver(Buffer.from(frame));
    return true;
  }

  stats(): LinkStats {
    return { received: this.received, dropped: 0, truncated: 0, errors: 0, ...(this.stopped ? { stopped: true } : {}) };
  }

  /** Remove and return everything sent so far. */
  takeSent(): Buffer[] {
    return this.sent.splice(0, this.sent.length);
  }

  close(): void {
    this.closed = true;
    this.receiver = undefined;
  }
}
