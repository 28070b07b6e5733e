// SPDX-License-Identifier: GPL-2.0-only
// The hostapd watcher over the live ubus port against the ubusd stand-in: the stand-in hostapd and
// then ubusd restart three times each, and every notification still reaches the watcher exactly
// once (one subscription per hostapd object); while a BSS or ubusd is away `bsses` does not report
// it, and when it returns its stations are re-read with get_clients. No root needed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { HostapdWatcher } from '../../src/cn/hostapd-watcher.js';
import { AssociationTable } from '../../src/core/association.js';
import { UbusClient } from '../../src/platform/ubus-client.js';
import { openUbusPort } from '../../src/platform/ubus-port-live.js';
import type { UbusPort } from '../../src/platform/ubus-port.js';
import { FakeHostapd } from '../support/fake-hostapd.js';
import { RECONNECT_DELAY_MS, tempSocketDir, waitFor } from '../support/ubus-scenarios.js';
import { FakeUbusd } from '../support/ubusd-fake.js';

const mac = (n: number): string => `02:00:00:00:0a:${n.toString(16).padStart(2, '0')}`;

/** The port, with every notification the watcher receives written down as "<path> <type> <address>". */
function counting(port: UbusPort, seen: string[]): UbusPort {
  return {
    ...port,
    subscribe: (path, onNotify, onGone, onBack) =>
      port.subscribe(
        path,
        (type, data) => {
          const address = (data as { address?: unknown }).address;
          seen.push(`${path} ${type} ${typeof address === 'string' ? address : '-'}`);
          onNotify(type, data);
        },
        onGone,
        onBack,
      ),
  };
}

test('one subscription per hostapd object across three hostapd and three ubusd restarts', { timeout: 60_000 }, async () => {
  const tmp = tempSocketDir();
  const ubusd = new FakeUbusd(tmp.socketPath);
  await ubusd.start();
  const clients: UbusClient[] = [];
  let port: UbusPort | undefined;
  /** A hostapd process: its own ubus connection (reconnecting, as hostapd does), `hostapd.<bss>` published. */
  const startHostapd = async (bss: string, stations: string[]): Promise<FakeHostapd> => {
    const c = new UbusClient({ socketPath: tmp.socketPath, reconnectDelayMs: RECONNECT_DELAY_MS, reconnectMaxDelayMs: 200 });
    clients.push(c);
    await c.connect();
    const h = new FakeHostapd(c, bss);
    for (const m of stations) h.stations.set(m, { auth: true, assoc: true, authorized: true, wds: false });
    await h.publish();
    return h;
  };
  try {
    let hostapd = await startHostapd('wl0', [mac(1)]);
    port = await openUbusPort(tmp.socketPath);
    assert.ok(port, 'the socket exists');
    const live = port;
    const seen: string[] = [];
    const arrivals: string[] = [];
    const leaves: string[] = [];
    const table = new AssociationTable();
    const watcher = new HostapdWatcher({
      ubus: counting(live, seen),
      table,
      onArrive: (m) => void arrivals.push(m),
      onLeave: (m) => void leaves.push(m),
      log: () => {},
    });
    await watcher.start();
    assert.deepEqual(watcher.bsses, ['wl0']);
    assert.deepEqual(arrivals, [mac(1)], 'a station associated before the start arrives from get_clients');

    const stations = (): string[] =>
      table
        .all()
        .map(([m, s]) => `${s.bss} ${m}`)
        .sort();
    let marker = 0;
    /** hostapd announces an association and a departure: each must be delivered exactly once. */
    const exactlyOnce = async (h: FakeHostapd, m: string, round: string): Promise<void> => {
      const from = seen.length;
      const path = `hostapd.${h.bss}`;
      await h.assoc(m);
      await h.disassoc(m);
      const mark = `marker-${++marker}`;
      await h.client.notify(path, mark, {});
      await waitFor(() => seen.includes(`${path} ${mark} -`), 3000, `${round}: the marker behind the notifications`);
      // A round trip on the watcher's own connection: whatever ubusd fanned out before is in by now.
      await live.lookup(path);
      assert.deepEqual(
        seen.slice(from),
        [`${path} assoc ${m}`, `${path} disassoc ${m}`, `${path} ${mark} -`],
        `${round}: each notification once`,
      );
      assert.equal(ubusd.subscribers(path).length, 1, `${round}: one subscriber of ${path} at ubusd`);
      assert.equal(arrivals.filter((a) => a === m).length, 1, `${round}: one arrival`);
      assert.equal(leaves.filter((a) => a === m).length, 1, `${round}: one departure`);
    };
    await exactlyOnce(hostapd, mac(0x10), 'before any restart');

    for (let i = 1; i <= 3; i++) {
      const round = `hostapd restart ${i}`;
      hostapd.client.close(); // hostapd exits: ubusd removes its object
      await waitFor(() => watcher.bsses.length === 0, 3000, `${round}: wl0 no longer reported`);
      assert.equal(table.present, false, `${round}: no BSS in the association table`);
      hostapd = await startHostapd('wl0', [mac(0x20 + i)]); // a new hostapd, with another station list
      await waitFor(() => watcher.bsses.length === 1 && table.station(mac(0x20 + i)) !== undefined, 3000, `${round}: wl0 back, re-read`);
      assert.deepEqual(stations(), [`wl0 ${mac(0x20 + i)}`], `${round}: exactly what get_clients says now`);
      await exactlyOnce(hostapd, mac(0x30 + i), round);
    }

    let wl1: FakeHostapd | undefined;
    for (let i = 1; i <= 3; i++) {
      const round = `ubusd restart ${i}`;
      await ubusd.stop();
      await waitFor(() => watcher.bsses.length === 0, 3000, `${round}: the old BSS list is not reported`);
      assert.equal(table.present, false, `${round}: no BSS in the association table`);
      hostapd.stations.clear(); // stations come and go while ubusd is away
      hostapd.stations.set(mac(0x40 + i), { auth: true, assoc: true, authorized: true, wds: false });
      wl1?.stations.clear();
      if (wl1) wl1.stations.set(mac(0x50 + i), { auth: true, assoc: true, authorized: true, wds: false });
      await ubusd.start();
      // A BSS that appears while ubusd is back but (maybe) before the watcher is: found by looking up again.
      if (i === 1) wl1 = await startHostapd('wl1', []);
      await waitFor(
        () => watcher.bsses.length === 2 && table.station(mac(0x40 + i)) !== undefined,
        8000,
        `${round}: wl0 and wl1 reported again, wl0 re-read`,
      );
      assert.deepEqual(watcher.bsses.sort(), ['wl0', 'wl1']);
      const expected = [`wl0 ${mac(0x40 + i)}`, ...(i > 1 ? [`wl1 ${mac(0x50 + i)}`] : [])];
      await waitFor(() => stations().join() === expected.join(), 3000, `${round}: both BSSes re-read`);
      await exactlyOnce(hostapd, mac(0x60 + i), round);
      await exactlyOnce(wl1!, mac(0x70 + i), `${round} (wl1)`);
    }
    assert.equal(arrivals.filter((a) => a === mac(0x43)).length, 1, 'a station present when ubusd returns arrives once');
  } finally {
    port?.close();
    for (const c of clients) c.close();
    await ubusd.stop();
    tmp.cleanup();
  }
});
