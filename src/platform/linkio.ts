// SPDX-License-Identifier: GPL-2.0-only
// LinkIO: whole Ethernet frames taken from and sent on one interface (the CN's mobile-facing one).
// The real implementation (packet-linkio.ts) uses an AF_PACKET socket through our addon tmip-packet;
// tests use FakeLinkIO.
import type { Mac } from '../core/ip.js';

/** A capture's counters since it was opened. */
export interface LinkStats {
  /** Frames delivered to the receiver. */
  received: number;
  /** Frames the filter accepted that the kernel dropped: the socket's receive buffer was full. */
  dropped: number;
  /** Frames longer than the snap length (dropped). */
  truncated: number;
  /**
   * Errors on the socket: its interface went down (the capture goes on once it is up again) or was
   * deleted (the capture is deaf from then on: the link must be opened again; cn/mobile-link.ts).
   */
  errors: number;
  /** The capture hears nothing more on this socket (too many errors in a row): open the link again. */
  stopped?: boolean;
}

export interface LinkIO {
  readonly ifname: string;
  /** The interface's own MAC address. */
  readonly mac: Mac;
  /** Inject one frame; returns an error message instead of throwing. */
  send(frame: Uint8Array): string | undefined;
  /** Register the receiver of every captured frame (one receiver; a later call replaces it). */
  onFrame(receiver: (frame: Buffer) => void): void;
  /** The capture's counters, where the implementation has them. */
  stats?(): LinkStats;
  close(): void;
}
