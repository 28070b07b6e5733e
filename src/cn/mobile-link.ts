// SPDX-License-Identifier: GPL-2.0-only
// MobileLink: the CN's one LinkIO on its mobile interface, kept across captures opened anew. When the
// interface is deleted and created again (a Wi-Fi reload that recreates the device, a bridge rebuilt)
// the old capture socket is bound to a device that no longer exists and hears nothing; the daemon
// opens a new capture and hands it to replace(). The DHCP server and the handover keep this object:
// the receiver, the MAC (the new device's, which may differ) and the counters (summed over every
// capture opened) carry over.
import type { Mac } from '../core/ip.js';
import type { LinkIO, LinkStats } from '../platform/linkio.js';

/** The capture's counters as the CN reports them: all captures together, and how often it was opened again. */
export interface MobileLinkStats extends LinkStats {
  reopened: number;
}

const ZERO: LinkStats = { received: 0, dropped: 0, truncated: 0, errors: 0 };

function add(a: LinkStats, b: LinkStats): LinkStats {
  return {
    received: a.received + b.received,
    dropped: a.dropped + b.dropped,
    truncated: a.truncated + b.truncated,
    errors: a.errors + b.errors,
  };
}

export class MobileLink implements LinkIO {
  private receiver: ((frame: Buffer) => void) | undefined;
  /** The counters of the captures replaced so far. */
  private earlier: LinkStats = ZERO;
  private reopened = 0;
  private closed = false;

  constructor(private current: LinkIO) {}

  get ifname(): string {
    return this.current.ifname;
  }

  get mac(): Mac {
    return this.current.mac;
  }

  send(frame: Uint8Array): string | undefined {
    return this.current.send(frame);
  }

  onFrame(receiver: (frame: Buffer) => void): void {
    this.receiver = receiver;
    this.current.onFrame(receiver);
  }

  /** Use `next` from now on; the capture it replaces is closed (and `next` too, if this link is). */
  replace(next: LinkIO): void {
    if (this.closed) {
      next.close();
      return;
    }
    const old = this.current;
    this.earlier = add(this.earlier, old.stats?.() ?? ZERO);
    old.close();
    this.current = next;
    this.reopened++;
    if (this.receiver) next.onFrame(this.receiver);
  }

  stats(): MobileLinkStats {
    const now = this.current.stats?.() ?? ZERO;
    return { ...add(this.earlier, now), ...(now.stopped ? { stopped: true } : {}), reopened: this.reopened };
  }

  close(): void {
    this.closed = true;
    this.current.close();
  }
}
