// SPDX-License-Identifier: GPL-2.0-only
// One ubusd (the project's ubusd-compatible test server) per CN, each with a stand-in hostapd
// (test/support/fake-hostapd.ts) whose association events the test sends: what lab tests and
// bench/roam need to run the CNs "with hostapd". The CNs are pointed at them with cnExtra().
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UbusClient } from '../../src/platform/ubus-client.js';
import { FakeHostapd } from '../support/fake-hostapd.js';
import { FakeUbusd } from '../support/ubusd-fake.js';
import type { CnName } from './tmip-lab.js';

const CNS = ['cn1', 'cn2'] as const;

export class HostapdStandIns {
  readonly hostapd = {} as Record<CnName, FakeHostapd>;
  private readonly clients: UbusClient[] = [];

  private constructor(
    readonly dir: string,
    readonly ubusd: Record<CnName, FakeUbusd>,
  ) {}

  /** Start both ubusds and connect a hostapd stand-in to each; `publish` names those published at once. */
  static async start(publish: readonly CnName[] = CNS): Promise<HostapdStandIns> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-ubus-'));
    const s = new HostapdStandIns(dir, {
      cn1: new FakeUbusd(path.join(dir, 'cn1.sock')),
      cn2: new FakeUbusd(path.join(dir, 'cn2.sock')),
    });
    try {
      for (const name of CNS) {
        await s.ubusd[name].start();
        const c = new UbusClient({ socketPath: s.ubusd[name].path, reconnect: false });
        await c.connect();
        s.clients.push(c);
        s.hostapd[name] = new FakeHostapd(c);
        if (publish.includes(name)) await s.hostapd[name].publish();
      }
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  /** The UCI lines that point each CN at its ubusd (TmipLabOptions.cnExtra). */
  cnExtra(): Record<CnName, string[]> {
    return { cn1: [`\toption ubus_socket '${this.ubusd.cn1.path}'`], cn2: [`\toption ubus_socket '${this.ubusd.cn2.path}'`] };
  }

  /** A ubus client on `name`'s ubusd (for `ubus call tmip ...`). */
  client(name: CnName): UbusClient {
    return this.clients[CNS.indexOf(name)]!;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const d of Object.values(this.ubusd)) await d.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
