// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { UbusClient, UbusError } from '../../src/platform/ubus-client.js';
import { encodeUbusMessage, UBUS_MSG } from '../../src/proto/ubus.js';
import { FakeUbusd } from '../support/ubusd-fake.js';
import { Harness, nextEvent, scenarios, tempSocketDir, waitFor, type UbusServerEnv } from '../support/ubus-scenarios.js';

async function withFake(fn: (h: Harness, fake: FakeUbusd) => Promise<void>): Promise<void> {
  const tmp = tempSocketDir();
  const fake = new FakeUbusd(tmp.socketPath);
  await fake.start();
  const env: UbusServerEnv = { socketPath: tmp.socketPath, start: () => fake.start(), stop: () => fake.stop() };
  const h = new Harness(env);
  try {
    await fn(h, fake);
  } finally {
    h.close();
    await fake.stop();
    tmp.cleanup();
  }
}

for (const [name, scenario] of Object.entries(scenarios)) {
  test(`fake ubusd: ${name}`, { timeout: 20_000 }, () => withFake((h) => scenario(h)));
}

test('garbage from the server does not crash the client: it drops the connection and reconnects', { timeout: 15_000 }, () =>
  withFake(async (h, fake) => {
    const a = await h.client();
    const b = await h.client();
    await a.addObject('tmip.test', { hi: { handler: () => ({ hi: true }) } });
    // a listener that throws must not take the process down either
    a.on('disconnected', () => {
      throw new Error('listener bug');
    });
    const garbage = [
      Buffer.from('this is not ubus at all'),
      Buffer.from('0000000000000000ff000000', 'hex'), // container length beyond 1 MiB
      Buffer.from('00020001000000000000000c0300000700000000', 'hex'), // OBJID of three bytes
      Buffer.from('000200010000000000000010070000108300000a0001610062000000', 'hex'), // DATA whose string lacks its NUL
    ];
    for (const bytes of garbage) {
      const down = nextEvent(a, 'disconnected', 3000);
      const up = nextEvent(a, 'reconnected', 5000);
      fake.sendRaw(bytes, a.clientId);
      const [reason] = await down;
      assert.match(String(reason), /protocol error/);
      await up;
      assert.deepEqual(await b.call('tmip.test', 'hi'), { hi: true });
    }
  }),
);

test('a client dropped by ubusd comes back; its subscribers follow it', { timeout: 15_000 }, () =>
  withFake(async (h, fake) => {
    const hostapd = await h.client();
    const tmip = await h.client();
    const wl0 = await hostapd.addObject('hostapd.wl0', {});
    let gone = 0;
    const got: string[] = [];
    const sub = await tmip.subscribe(
      'hostapd.wl0',
      (t) => void got.push(t),
      () => gone++,
    );
    const up = nextEvent(hostapd, 'reconnected', 5000);
    fake.dropClients(hostapd.clientId);
    await waitFor(() => gone === 1, 2000, 'onGone');
    await up;
    await waitFor(() => sub.active, 3000, 'resubscription');
    assert.equal(sub.targetId, wl0.id);
    await wl0.notify('deauth', { address: '02:00:00:00:00:01' });
    await waitFor(() => got.length === 1, 2000, 'a notification');
    assert.equal(
      fake.log.some((e) => e.method === 'notify_response'),
      false,
    );
  }),
);

test('a server that never says HELLO, or says something else first, is refused', { timeout: 10_000 }, async () => {
  const tmp = tempSocketDir();
  const silent = tmp.socketPath + '.silent';
  const wrong = tmp.socketPath + '.wrong';
  const sockets: net.Socket[] = [];
  let silentAccepted = 0;
  const s1 = net.createServer((s) => {
    silentAccepted++;
    sockets.push(s);
  });
  const s2 = net.createServer((s) => {
    sockets.push(s);
    s.write(encodeUbusMessage({ type: UBUS_MSG.STATUS, seq: 0, peer: 1234, attrs: { status: 0 } }));
  });
  await new Promise<void>((r) => s1.listen(silent, r));
  await new Promise<void>((r) => s2.listen(wrong, r));
  try {
    const c1 = new UbusClient({ socketPath: silent, connectTimeoutMs: 100, reconnect: false });
    await assert.rejects(c1.connect(), (e: unknown) => e instanceof UbusError && /no HELLO within 100 ms/.test(e.message));
    const c2 = new UbusClient({ socketPath: wrong, reconnect: false });
    await assert.rejects(c2.connect(), (e: unknown) => e instanceof UbusError && /expected HELLO/.test(e.message));
    c1.close();
    c2.close();
    // close() during a connection attempt ends it at once, not at the HELLO timeout
    const c3 = new UbusClient({ socketPath: silent, connectTimeoutMs: 5000 });
    const started = Date.now();
    const accepted = silentAccepted;
    const attempt = c3.connect();
    await waitFor(() => silentAccepted > accepted, 2000, 'the silent server to accept the connection (c3 now waits for HELLO)');
    c3.close();
    await assert.rejects(attempt, (e: unknown) => e instanceof UbusError && e.statusName === 'CONNECTION_FAILED');
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.equal(c3.connected, false);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => s1.close(r));
    await new Promise((r) => s2.close(r));
    tmp.cleanup();
  }
});

test(
  'a subscription hears onGone and onActive once per outage of its object or of ubusd, and stays one SUBSCRIBE',
  { timeout: 15_000 },
  () =>
    withFake(async (h, fake) => {
      const hostapd = await h.client();
      const tmip = await h.client();
      await hostapd.addObject('hostapd.wl0', {});
      let gone = 0;
      let active = 0;
      const got: string[] = [];
      const sub = await tmip.subscribe(
        'hostapd.wl0',
        (t) => void got.push(t),
        () => gone++,
        { onActive: () => active++ },
      );
      assert.equal(active, 0, 'not for the first SUBSCRIBE: the caller knows');
      for (let i = 1; i <= 2; i++) {
        await hostapd.removeObject('hostapd.wl0');
        await waitFor(() => gone === 2 * i - 1, 2000, `onGone after removal ${i}`);
        const obj = await hostapd.addObject('hostapd.wl0', {});
        await waitFor(() => active === 2 * i - 1, 2000, `onActive after re-add ${i}`);
        await fake.stop();
        await waitFor(() => gone === 2 * i, 2000, `onGone when ubusd went ${i}`);
        await fake.start();
        await waitFor(() => active === 2 * i && sub.active, 5000, `onActive when ubusd is back ${i}`);
        assert.equal(gone, 2 * i, 'once per outage');
        assert.equal(fake.subscribers('hostapd.wl0').length, 1);
        await waitFor(() => obj.id !== 0 && sub.targetId === obj.id, 2000, 'the re-published object');
        await obj.notify('assoc', {});
        await waitFor(() => got.length === i, 2000, 'the notification');
      }
      assert.deepEqual(got, ['assoc', 'assoc']);
    }),
);
