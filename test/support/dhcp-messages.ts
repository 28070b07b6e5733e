// SPDX-License-Identifier: GPL-2.0-only
// A decoded client DHCP message (as proto/dhcp.ts decodeDhcp gives it) for unit tests that hand
// messages to the CN's DHCP server without building frames.
import type { Mac } from '../../src/core/ip.js';
import type { DhcpMessage } from '../../src/proto/dhcp.js';

/** A broadcast BOOTREQUEST of `messageType` from `mac` with `xid`; `o` overrides any field. */
export function dhcpMessage(mac: Mac, messageType: DhcpMessage['messageType'], xid: number, o: Partial<DhcpMessage> = {}): DhcpMessage {
  const raw = new Uint8Array(16);
  mac.split(':').forEach((h, i) => (raw[i] = parseInt(h, 16)));
  return {
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid,
    secs: 0,
    flags: 0x8000,
    broadcast: true,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr: mac,
    chaddrRaw: raw,
    messageType,
    options: new Map(),
    ...o,
  };
}
