// SPDX-License-Identifier: GPL-2.0-only
// A stand-in hostapd for lab tests and benchmarks: publishes `hostapd.<bss>` on a ubusd with a
// `get_clients` method whose station list the caller controls, and sends `assoc`/`disassoc`
// notifications as hostapd does (no reply expected).
import type { BlobmsgTableInput } from '../../src/proto/blob.js';
import type { UbusClient } from '../../src/platform/ubus-client.js';

export class FakeHostapd {
  readonly stations = new Map<string, BlobmsgTableInput>();

  constructor(
    readonly client: UbusClient,
    readonly bss = 'wl0',
  ) {}

  async publish(): Promise<void> {
    await this.client.addObject(`hostapd.${this.bss}`, {
      get_clients: { handler: () => ({ freq: 2412, clients: Object.fromEntries(this.stations) }) },
    });
  }

  async assoc(mac: string): Promise<void> {
    this.stations.set(mac, { auth: true, assoc: true, authorized: true, wds: false });
    await this.client.notify(`hostapd.${this.bss}`, 'assoc', { address: mac, freq: 2412, signal: -42 });
  }

  async disassoc(mac: string): Promise<void> {
    this.stations.delete(mac);
    await this.client.notify(`hostapd.${this.bss}`, 'disassoc', { address: mac });
  }
}
