// SPDX-License-Identifier: GPL-2.0-only
// LinkIO: whole Ethernet frames taken from and sent on one interface (the CN's mobile-facing one).
// The real implementation (pcap-linkio.ts) uses libpcap through the `cap` addon; tests use FakeLinkIO.
import type { Mac } from '../core/ip.js';

export interface LinkIO {
  readonly ifname: string;
  /** The interface's own MAC address. */
  readonly mac: Mac;
  /** Inject one frame; returns an error message instead of throwing. */
  send(frame: Uint8Array): string | undefined;
  /** Register the receiver of every captured frame (one receiver; a later call replaces it). */
  onFrame(receiver: (frame: Buffer) => void): void;
  close(): void;
}
