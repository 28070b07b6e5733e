// SPDX-License-Identifier: GPL-2.0-only
// Client scenarios run both against the fake ubusd (test/unit/ubus-client.test.ts) and, when a
// real ubusd binary is supplied, against it (test/unit/ubus-real.test.ts): publish and call,
// hostapd-style subscribe/notify, following an object that goes and comes back, events, lookup
// patterns, server restart with full re-establishment, close(), socket path fallback and oversized
// replies. Also the bounded-wait helpers every ubus test uses. Every wait here has a deadline, and
// no scenario sleeps before asserting that something did not happen: it waits for evidence that the
// input was handled (a reply queued behind it on the same path, a counter) and asserts only then.
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { UbusClient, UbusError, type UbusClientOptions, type UbusInvokeContext } from '../../src/platform/ubus-client.js';
import { neverWithin, nextEvent as nextEventOf, until, within as withinMs } from './helpers.js';
import type { BlobmsgTable } from '../../src/proto/blob.js';
import {
  encodeUbusMessage,
  UbusFrameReader,
  UBUS_MSG,
  UBUS_STATUS,
  type UbusAttrsInput,
  type UbusMessage,
  type UbusMessageInput,
} from '../../src/proto/ubus.js';

/** A ubusd (fake or real) listening on `socketPath` that can be stopped and started again. */
export interface UbusServerEnv {
  socketPath: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function tempSocketDir(): { dir: string; socketPath: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-ubus-'));
  return { dir, socketPath: path.join(dir, 'ubus.sock'), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** `p`, or a failure after `ms` naming `what` (helpers.within, in this file's argument order). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withinMs(p, ms, what);
}

/** Polls `cond` every 5 ms until it holds; fails after `ms` naming `what` (helpers.until). */
export function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  return until(what, cond, ms, 5);
}

/** The arguments of the next `name` event of `emitter`; fails after `ms`. */
export function nextEvent(emitter: EventEmitter, name: string, ms: number): Promise<unknown[]> {
  return nextEventOf(emitter, name, `event "${name}"`, ms);
}

/** The Harness clients' first reconnect delay (it doubles per failed attempt up to 200 ms). */
export const RECONNECT_DELAY_MS = 20;

/** Makes connected clients with fast reconnects, and closes them all at the end. */
export class Harness {
  readonly clients: UbusClient[] = [];

  constructor(readonly env: UbusServerEnv) {}

  async client(opts: UbusClientOptions = {}): Promise<UbusClient> {
    const c = new UbusClient({
      socketPath: this.env.socketPath,
      reconnectDelayMs: RECONNECT_DELAY_MS,
      reconnectMaxDelayMs: 200,
      connectTimeoutMs: 2000,
      requestTimeoutMs: 3000,
      ...opts,
    });
    this.clients.push(c);
    await within(c.connect(), 3000, 'connect');
    return c;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

/** A raw protocol connection (no UbusClient) for byte-level checks of the server. */
export async function rawConnection(
  socketPath: string,
): Promise<{ socket: net.Socket; next(): Promise<UbusMessage>; send(m: UbusMessageInput): void }> {
  const socket = net.connect({ path: socketPath });
  const reader = new UbusFrameReader();
  const queue: UbusMessage[] = [];
  let failure: string | undefined;
  socket.on('data', (chunk: Buffer) => {
    const r = reader.push(chunk);
    if (r.ok) queue.push(...r.value);
    else failure = r.error;
  });
  socket.on('error', () => {});
  await within(new Promise<void>((resolve) => socket.once('connect', () => resolve())), 2000, 'raw connect');
  return {
    socket,
    async next() {
      await waitFor(() => queue.length > 0 || failure !== undefined, 2000, 'a message');
      assert.equal(failure, undefined);
      return queue.shift() as UbusMessage;
    },
    send: (m) => socket.write(encodeUbusMessage(m)),
  };
}

function ubusStatus(name: keyof typeof UBUS_STATUS): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof UbusError, `expected a UbusError, got ${String(e)}`);
    assert.equal(e.statusName, name);
    assert.equal(e.status, UBUS_STATUS[name]);
    return true;
  };
}

const MAC = '02:00:00:00:00:01';

export type Scenario = (h: Harness) => Promise<void>;

export const scenarios: Record<string, Scenario> = {
  async 'publish an object and call it from a second client'(h) {
    const a = await h.client();
    const b = await h.client();
    assert.ok((a.clientId ?? 0) >= 1024 && (b.clientId ?? 0) >= 1024 && a.clientId !== b.clientId);
    await a.ping();
    const seen: UbusInvokeContext[] = [];
    let slowAnswered = false;
    const obj = await a.addObject('tmip.test', {
      echo: {
        args: { msg: 'string', n: 'int32' },
        handler: (d, ctx) => {
          seen.push(ctx);
          return { msg: d['msg'] ?? null, n: d['n'] ?? 0 };
        },
      },
      nothing: { handler: () => undefined },
      fails: {
        handler: () => {
          throw new Error('boom');
        },
      },
      refuses: {
        handler: () => {
          throw new UbusError(UBUS_STATUS.PERMISSION_DENIED);
        },
      },
      // Deliberately slower (300 ms) than the caller below is willing to wait (50 ms): a late reply.
      slow: {
        handler: () =>
          new Promise((r) =>
            setTimeout(() => {
              slowAnswered = true;
              r({ late: true });
            }, 300),
          ),
      },
    });
    assert.ok(obj.id >= 1024);
    assert.deepEqual(await b.call('tmip.test', 'echo', { msg: 'hi', n: 7 }), { msg: 'hi', n: 7 });
    assert.equal(seen[0]?.peer, b.clientId);
    assert.equal(seen[0]?.method, 'echo');
    assert.equal(seen[0]?.path, 'tmip.test');
    assert.equal(typeof seen[0]?.user, 'string');
    assert.deepEqual(await b.call(obj.id, 'echo', {}), { msg: null, n: 0 });
    assert.equal(await b.call('tmip.test', 'nothing'), undefined);
    await assert.rejects(b.call('tmip.test', 'nope'), ubusStatus('METHOD_NOT_FOUND'));
    await assert.rejects(b.call('tmip.test', 'echo', { msg: 5 }), ubusStatus('INVALID_ARGUMENT'));
    await assert.rejects(b.call('tmip.test', 'fails'), ubusStatus('UNKNOWN_ERROR'));
    await assert.rejects(b.call('tmip.test', 'refuses'), ubusStatus('PERMISSION_DENIED'));
    await assert.rejects(b.call('tmip.missing', 'x'), ubusStatus('NOT_FOUND'));
    await assert.rejects(b.call('tmip.test', 'slow', {}, 50), ubusStatus('TIMEOUT'));
    // The late reply: once the handler has returned, a has written it (reply() follows the handler
    // without another turn of the event loop), so a's answer to the next call travels a -> ubusd -> b
    // behind it. When b has that answer, it has also received the late reply and dropped it: had it
    // taken it for an answer, this call would return { late: true }.
    await waitFor(() => slowAnswered, 2000, 'the slow handler to answer after its caller gave up');
    assert.deepEqual(await b.call('tmip.test', 'echo', { msg: 'after' }), { msg: 'after', n: 0 });
    // a client can call its own object
    assert.deepEqual(await a.call('tmip.test', 'echo', { msg: 'self' }), { msg: 'self', n: 0 });
    await obj.remove();
    await assert.rejects(b.call('tmip.test', 'echo'), ubusStatus('NOT_FOUND'));
    await assert.rejects(obj.notify('gone', {}), ubusStatus('NOT_FOUND'));
  },

  async 'subscribe to hostapd.wl0 and receive assoc/disassoc; never notify_response'(h) {
    const hostapd = await h.client();
    const tmip = await h.client();
    const other = await h.client();
    let active = false;
    const called: string[] = [];
    const obj = await hostapd.addObject(
      'hostapd.wl0',
      {
        get_clients: { handler: () => ({ freq: 2412, clients: {} }) },
        del_client: { args: { addr: 'string', reason: 'int32', deauth: 'bool', ban_time: 'int32' }, handler: () => undefined },
        notify_response: {
          args: { notify_response: 'int32' },
          handler: () => {
            called.push('notify_response');
          },
        },
      },
      { onSubscribe: (a) => (active = a) },
    );
    const got: [string, BlobmsgTable][] = [];
    const sub = await tmip.subscribe('hostapd.wl0', (type, data) => {
      got.push([type, data]);
    });
    // a subscriber whose callback throws must not disturb anything
    let thrown = 0;
    await other.subscribe('hostapd.wl0', () => {
      thrown++;
      throw new Error('subscriber bug');
    });
    await waitFor(() => active && obj.hasSubscribers, 2000, 'hostapd to see a subscriber');
    assert.equal(sub.targetId, obj.id);
    assert.equal(sub.active, true);
    await hostapd.notify('hostapd.wl0', 'assoc', { address: MAC, freq: 2412, signal: -40 });
    await obj.notify('disassoc', { address: MAC });
    await waitFor(() => got.length === 2 && thrown === 2, 2000, 'two notifications');
    assert.deepEqual(got, [
      ['assoc', { address: MAC, freq: 2412, signal: -40 }],
      ['disassoc', { address: MAC }],
    ]);
    // notifications that want answers: ubusd lists the subscribers, each answers status 0
    const res = await within(
      hostapd.notify('hostapd.wl0', 'probe', { address: MAC }, { wait: true, timeoutMs: 2000 }),
      3000,
      'notify with replies',
    );
    assert.equal(res.subscribers?.length, 2);
    for (const id of res.subscribers ?? []) assert.equal(res.statuses[id], 0);
    await waitFor(() => got.length === 3, 2000, 'probe');
    assert.deepEqual(called, []);
    assert.deepEqual(await tmip.call('hostapd.wl0', 'get_clients'), { freq: 2412, clients: {} });
    await sub.unsubscribe();
    assert.equal(sub.active, false);
    await obj.notify('assoc', { address: MAC });
    await waitFor(() => thrown === 4, 2000, 'the other subscriber to still get notifications');
    assert.equal(got.length, 3);
    other.close();
    await waitFor(() => !active && !obj.hasSubscribers, 2000, 'hostapd to see no subscribers');
  },

  async 'a subscription follows its object when it goes away and comes back'(h) {
    const hostapd = await h.client();
    const tmip = await h.client();
    const methods = { get_clients: { handler: () => ({}) } };
    const obj = await hostapd.addObject('hostapd.wlan1', methods);
    await hostapd.addObject('hostapd.wlan2', methods);
    let gone = 0;
    let goneOnce = 0;
    const got: string[] = [];
    const sub = await tmip.subscribe(
      'hostapd.wlan1',
      (type) => void got.push(type),
      () => gone++,
    );
    const once = await tmip.subscribe(
      'hostapd.wlan2',
      (type) => void got.push('once:' + type),
      () => goneOnce++,
      { follow: false },
    );
    await obj.remove();
    await waitFor(() => gone === 1, 2000, 'onGone');
    assert.equal(sub.active, false);
    assert.equal(sub.targetId, 0);
    await hostapd.removeObject('hostapd.wlan2');
    await waitFor(() => goneOnce === 1, 2000, 'onGone without follow');
    const obj2 = await hostapd.addObject('hostapd.wlan1', methods);
    const obj3 = await hostapd.addObject('hostapd.wlan2', methods);
    await waitFor(() => sub.active, 2000, 'the subscription to come back');
    assert.equal(sub.targetId, obj2.id);
    await obj2.notify('assoc', { address: MAC });
    await obj3.notify('assoc', { address: MAC }); // nobody may hear this: `once` does not follow
    // A marker behind it on the same path (hostapd -> ubusd -> tmip): once tmip has the marker, it
    // has had everything ubusd forwarded of obj3's notification too.
    await obj2.notify('marker', {});
    await waitFor(() => got.includes('marker'), 2000, 'the marker notification from the new object');
    assert.deepEqual(got, ['assoc', 'marker']);
    assert.equal(once.active, false);
    await assert.rejects(
      tmip.subscribe('hostapd.nothing', () => {}),
      ubusStatus('NOT_FOUND'),
    );
  },

  async 'events: ubus.object.add/remove, custom events, patterns, no loop-back'(h) {
    const a = await h.client();
    const b = await h.client();
    const objEvents: [string, BlobmsgTable][] = [];
    await a.onEvent('ubus.object.*', (ev, data) => void objEvents.push([ev, data]));
    const obj = await b.addObject('hostapd.wlan9', {});
    await waitFor(() => objEvents.some(([ev, d]) => ev === 'ubus.object.add' && d['path'] === 'hostapd.wlan9'), 2000, 'ubus.object.add');
    const add = objEvents.find(([ev, d]) => ev === 'ubus.object.add' && d['path'] === 'hostapd.wlan9');
    assert.equal(Number(add?.[1]['id']) >>> 0, obj.id);
    const id = obj.id;
    await obj.remove();
    await waitFor(
      () => objEvents.some(([ev, d]) => ev === 'ubus.object.remove' && d['path'] === 'hostapd.wlan9'),
      2000,
      'ubus.object.remove',
    );
    const rm = objEvents.find(([ev, d]) => ev === 'ubus.object.remove' && d['path'] === 'hostapd.wlan9');
    assert.equal(Number(rm?.[1]['id']) >>> 0, id);

    const star: [string, BlobmsgTable][] = [];
    const exact: string[] = [];
    const own: string[] = [];
    const starReg = await a.onEvent('tmip.*', (ev, data) => void star.push([ev, data]));
    await a.onEvent('tmip.roam', (ev) => void exact.push(ev));
    await b.onEvent('tmip.*', (ev) => void own.push(ev));
    await b.sendEvent('tmip.roam', { mac: MAC, from: 'ap1' });
    await b.sendEvent('tmip.other', {});
    await waitFor(() => star.length === 2 && exact.length === 1, 2000, 'custom events');
    assert.deepEqual(star, [
      ['tmip.roam', { mac: MAC, from: 'ap1' }],
      ['tmip.other', {}],
    ]);
    await b.ping();
    assert.deepEqual(own, [], 'ubusd does not loop events back to the sender');
    await a.sendEvent('tmip.from-a', { x: 1 });
    await waitFor(() => own.length === 1, 2000, 'b to hear a');
    await assert.rejects(b.sendEvent('ubus.object.add', {}), ubusStatus('PERMISSION_DENIED'));
    await starReg.off();
    await b.sendEvent('tmip.roam', {});
    await waitFor(() => exact.length === 2, 2000, 'the exact listener');
    await a.ping();
    assert.equal(star.length, 2);
  },

  async 'lookup by path and by pattern'(h) {
    const p = await h.client();
    const q = await h.client();
    const sig = {
      get_clients: { handler: () => ({}) },
      del_client: { args: { addr: 'string' as const, reason: 'int32' as const }, handler: () => undefined },
    };
    const wl0 = await p.addObject('hostapd.wl0', sig);
    await p.addObject('hostapd.wl1', sig);
    await p.addObject('hostapd', { config_add: { args: { iface: 'string' }, handler: () => undefined } });
    await p.addObject('network.device', { status: { args: { name: 'string' }, handler: () => ({}) } });
    const paths = (l: { path: string }[]) => l.map((o) => o.path);
    assert.deepEqual(paths(await q.lookup('hostapd.*')), ['hostapd.wl0', 'hostapd.wl1']);
    assert.deepEqual(paths(await q.lookup('hostapd*')), ['hostapd', 'hostapd.wl0', 'hostapd.wl1']);
    const all = paths(await q.lookup());
    for (const x of ['hostapd', 'hostapd.wl0', 'hostapd.wl1', 'network.device']) assert.ok(all.includes(x), x);
    assert.deepEqual([...all].sort(), all, 'ubusd lists objects in path order');
    const [one, ...rest] = await q.lookup('hostapd.wl0');
    assert.equal(rest.length, 0);
    assert.equal(one?.id, wl0.id);
    assert.ok((one?.type ?? 0) !== 0);
    assert.deepEqual(one?.signature, { get_clients: {}, del_client: { addr: 3, reason: 5 } });
    assert.deepEqual(await q.lookup('nothing.*'), []);
    assert.deepEqual(await q.lookup('nothing'), []);
    assert.equal(await q.lookupId('hostapd.wl1'), (await q.lookup('hostapd.wl1'))[0]?.id);
    await assert.rejects(q.lookupId('hostapd.wl'), ubusStatus('NOT_FOUND'));
    // a second object with the same path is refused
    await assert.rejects(q.addObject('hostapd.wl0', {}), ubusStatus('INVALID_ARGUMENT'));
  },

  async 'after a ubusd restart the client reconnects and re-establishes everything'(h) {
    let failedReconnects = 0;
    const svc = await h.client({ log: (_level, message) => void (/^ubus: reconnect failed/.test(message) && failedReconnects++) });
    const hostapd = await h.client();
    await svc.addObject('tmip.svc', { hello: { handler: () => ({ ok: true }) } });
    const wl0 = await hostapd.addObject('hostapd.wl0', { get_clients: { handler: () => ({}) } });
    const notes: string[] = [];
    const sub = await svc.subscribe('hostapd.wl0', (t) => void notes.push(t));
    const evs: string[] = [];
    await svc.onEvent('tmip.*', (e) => void evs.push(e));
    const oldId = svc.clientId;
    const down = Promise.all([nextEvent(svc, 'disconnected', 3000), nextEvent(hostapd, 'disconnected', 3000)]);
    const up = Promise.all([nextEvent(svc, 'reconnected', 8000), nextEvent(hostapd, 'reconnected', 8000)]);
    await h.env.stop();
    await down;
    assert.equal(svc.connected, false);
    await assert.rejects(svc.call('tmip.svc', 'hello'), ubusStatus('CONNECTION_FAILED'));
    await waitFor(() => failedReconnects >= 2, 3000, 'two failed reconnect attempts while ubusd is away');
    await h.env.start();
    await up;
    assert.ok(svc.connected && hostapd.connected);
    assert.notEqual(svc.clientId, oldId);
    assert.ok(wl0.id >= 1024);
    await waitFor(() => sub.active, 3000, 'the subscription to be re-made');
    assert.equal(sub.targetId, wl0.id);
    const c = await h.client();
    assert.deepEqual(await c.call('tmip.svc', 'hello'), { ok: true });
    await wl0.notify('assoc', { address: MAC });
    await waitFor(() => notes.length === 1, 2000, 'a notification after the restart');
    await c.sendEvent('tmip.back', {});
    await waitFor(() => evs.length === 1, 2000, 'an event after the restart');
    assert.deepEqual(evs, ['tmip.back']);
  },

  async 'close(): pending requests fail and the client stays closed'(h) {
    const a = await h.client();
    const b = await h.client();
    let slowCalled = false;
    // Deliberately slow (500 ms): the call must still be pending when b closes.
    const slow = () => {
      slowCalled = true;
      return new Promise<Record<string, never>>((r) => setTimeout(() => r({}), 500));
    };
    await a.addObject('tmip.slow', { slow: { handler: slow } });
    let closed = 0;
    let reconnected = 0;
    b.on('closed', () => closed++);
    b.on('reconnected', () => reconnected++);
    const pending = b.call('tmip.slow', 'slow', {}, 5000);
    await waitFor(() => slowCalled, 2000, 'the call to reach the slow handler');
    b.close();
    await assert.rejects(pending, ubusStatus('CONNECTION_FAILED'));
    assert.equal(b.connected, false);
    assert.equal(b.clientId, undefined);
    // Nothing leaves a trace when a closed client (rightly) does not reconnect, so watch for it for
    // ten times the first reconnect delay: a reconnect that had been scheduled would show by then.
    await neverWithin('a reconnect after close()', () => b.connected || reconnected > 0, 10 * RECONNECT_DELAY_MS);
    assert.equal(b.connected, false);
    assert.equal(reconnected, 0);
    assert.equal(closed, 1);
    await assert.rejects(b.ping(), ubusStatus('CONNECTION_FAILED'));
    // connect() again works, and restores what was published before close()
    await b
      .addObject('tmip.b', { hi: { handler: () => ({ hi: 1 }) } })
      .then(() => assert.fail('addObject while closed should fail'), ubusStatus('CONNECTION_FAILED'));
    await within(b.connect(), 3000, 'connect after close');
    await b.addObject('tmip.b', { hi: { handler: () => ({ hi: 1 }) } });
    assert.deepEqual(await a.call('tmip.b', 'hi'), { hi: 1 });
  },

  async 'socket paths are tried in order'(h) {
    const missing = h.env.socketPath + '.missing';
    const c = new UbusClient({ socketPath: [missing, h.env.socketPath], connectTimeoutMs: 2000 });
    h.clients.push(c);
    await within(c.connect(), 3000, 'connect');
    assert.ok(c.connected);
    const d = new UbusClient({ socketPath: missing, reconnect: false });
    h.clients.push(d);
    await assert.rejects(d.connect(), ubusStatus('CONNECTION_FAILED'));
  },

  async 'an oversized reply becomes UNKNOWN_ERROR and the connection survives'(h) {
    const a = await h.client();
    const b = await h.client();
    let disconnects = 0;
    a.on('disconnected', () => disconnects++);
    await a.addObject('tmip.big', { big: { handler: () => ({ blob: 'x'.repeat(1024 * 1024) }) }, ok: { handler: () => ({ fine: true }) } });
    await assert.rejects(b.call('tmip.big', 'big'), ubusStatus('UNKNOWN_ERROR'));
    assert.deepEqual(await b.call('tmip.big', 'ok'), { fine: true });
    await assert.rejects(b.call('tmip.big', 'ok', { blob: 'y'.repeat(1024 * 1024) }), ubusStatus('INVALID_ARGUMENT'));
    assert.equal(disconnects, 0);
  },

  async 'protocol: HELLO bytes, PING echo, status codes for bad requests'(h) {
    const socket = net.connect({ path: h.env.socketPath });
    socket.on('error', () => {});
    const hello = await within(new Promise<Buffer>((resolve) => socket.once('data', (d: Buffer) => resolve(d))), 2000, 'HELLO');
    socket.destroy();
    assert.equal(hello.length, 12);
    assert.equal(hello.subarray(0, 4).toString('hex'), '00000000');
    assert.equal(hello.subarray(8).toString('hex'), '00000004');
    assert.ok(hello.readUInt32BE(4) >= 1024);

    const raw = await rawConnection(h.env.socketPath);
    try {
      assert.equal((await raw.next()).type, UBUS_MSG.HELLO);
      raw.send({ type: UBUS_MSG.PING, seq: 7, peer: 0, attrs: { data: { x: 1 } } });
      const pong = await raw.next();
      assert.deepEqual({ type: pong.type, seq: pong.seq, data: pong.attrs.data }, { type: UBUS_MSG.DATA, seq: 7, data: { x: 1 } });
      assert.deepEqual((await raw.next()).attrs, { status: 0 });
      for (const type of [UBUS_MSG.HELLO, UBUS_MSG.MONITOR, 42]) {
        raw.send({ type, seq: 8, peer: 5 });
        const st = await raw.next();
        assert.deepEqual(
          { type: st.type, seq: st.seq, peer: st.peer, attrs: st.attrs },
          { type: UBUS_MSG.STATUS, seq: 8, peer: 5, attrs: { status: UBUS_STATUS.INVALID_COMMAND } },
        );
      }
      const status = async (m: UbusMessageInput) => {
        raw.send(m);
        const st = await raw.next();
        assert.equal(st.type, UBUS_MSG.STATUS);
        return st.attrs.status;
      };
      // INVOKE without METHOD, on a missing object, on the event object (objid 1) with an unknown method;
      // register with an INT64 object id fails ubusd's blobmsg policy (INT32), so the field counts as missing
      const invokes: [string, UbusAttrsInput, number][] = [
        ['without METHOD', { objid: 1 }, UBUS_STATUS.INVALID_ARGUMENT],
        ['on a missing object', { objid: 77777, method: 'x', data: {} }, UBUS_STATUS.NOT_FOUND],
        ['an unknown method', { objid: 1, method: 'nope', data: {} }, UBUS_STATUS.INVALID_COMMAND],
        [
          'register, INT64 id',
          { objid: 1, method: 'register', data: { object: 5_000_000_000, pattern: 'x' } },
          UBUS_STATUS.INVALID_ARGUMENT,
        ],
        ['register', { objid: 1, method: 'register', data: { object: 1, pattern: 'x' } }, UBUS_STATUS.PERMISSION_DENIED],
        ['send without an id', { objid: 1, method: 'send', data: { id: 'x' } }, UBUS_STATUS.INVALID_ARGUMENT],
      ];
      for (const [i, [what, attrs, expected]] of invokes.entries()) {
        assert.equal(await status({ type: UBUS_MSG.INVOKE, seq: 9 + i, peer: 0, attrs }), expected, what);
      }
      // removing a system object, or one that does not exist; subscribing without a target
      assert.equal(await status({ type: UBUS_MSG.REMOVE_OBJECT, seq: 13, peer: 0, attrs: { objid: 1 } }), UBUS_STATUS.PERMISSION_DENIED);
      assert.equal(await status({ type: UBUS_MSG.REMOVE_OBJECT, seq: 14, peer: 0, attrs: { objid: 77777 } }), UBUS_STATUS.NOT_FOUND);
      assert.equal(await status({ type: UBUS_MSG.SUBSCRIBE, seq: 15, peer: 0, attrs: { objid: 77777 } }), UBUS_STATUS.INVALID_ARGUMENT);
      assert.equal(await status({ type: UBUS_MSG.LOOKUP, seq: 16, peer: 0, attrs: { objpath: '' } }), UBUS_STATUS.INVALID_ARGUMENT);
      assert.equal(
        await status({ type: UBUS_MSG.NOTIFY, seq: 17, peer: 0, attrs: { objid: 1, method: 'x' } }),
        UBUS_STATUS.PERMISSION_DENIED,
      );
    } finally {
      raw.socket.destroy();
    }
  },

  async 'protocol: ACTIVE to the owner on subscribe, NOTIFY with replies, UNSUBSCRIBE when the owner goes'(h) {
    const owner = await rawConnection(h.env.socketPath);
    const watcher = await rawConnection(h.env.socketPath);
    try {
      await owner.next();
      await watcher.next();
      owner.send({ type: UBUS_MSG.ADD_OBJECT, seq: 1, peer: 0, attrs: { objpath: 'hostapd.wl0', signature: { get_clients: {} } } });
      const added = await owner.next();
      const objid = added.attrs.objid ?? 0;
      assert.ok(added.attrs.objtype);
      assert.equal((await owner.next()).attrs.status, 0);
      watcher.send({ type: UBUS_MSG.ADD_OBJECT, seq: 1, peer: 0 });
      const subAdded = await watcher.next();
      const subObj = subAdded.attrs.objid ?? 0;
      assert.deepEqual(subAdded.attrs, { objid: subObj }, 'an unnamed object gets no OBJTYPE');
      assert.deepEqual((await watcher.next()).attrs, { status: 0 });
      // subscribing to one's own object is refused
      owner.send({ type: UBUS_MSG.ADD_OBJECT, seq: 2, peer: 0 });
      const ownSub = (await owner.next()).attrs.objid ?? 0;
      await owner.next();
      owner.send({ type: UBUS_MSG.SUBSCRIBE, seq: 3, peer: 0, attrs: { objid: ownSub, target: objid } });
      assert.equal((await owner.next()).attrs.status, UBUS_STATUS.INVALID_ARGUMENT);

      watcher.send({ type: UBUS_MSG.SUBSCRIBE, seq: 2, peer: 0, attrs: { objid: subObj, target: objid } });
      const active = await owner.next();
      assert.deepEqual(
        { type: active.type, seq: active.seq, peer: active.peer, attrs: active.attrs },
        { type: UBUS_MSG.NOTIFY, seq: 1, peer: 0, attrs: { objid, active: true } },
      );
      assert.deepEqual((await watcher.next()).attrs, { status: 0 });
      // without NO_REPLY: STATUS {OBJID, SUBSCRIBERS, STATUS} first, then the INVOKE, whose answer comes back with peer = subscriber
      owner.send({ type: UBUS_MSG.NOTIFY, seq: 5, peer: objid, attrs: { objid, method: 'assoc', data: { address: MAC } } });
      const listed = await owner.next();
      assert.deepEqual(
        { type: listed.type, seq: listed.seq, peer: listed.peer, attrs: listed.attrs },
        { type: UBUS_MSG.STATUS, seq: 5, peer: objid, attrs: { objid, subscribers: [subObj], status: 0 } },
      );
      const inv = await watcher.next();
      assert.deepEqual(
        {
          type: inv.type,
          seq: inv.seq,
          objid: inv.attrs.objid,
          method: inv.attrs.method,
          noReply: inv.attrs.noReply,
          data: inv.attrs.data,
        },
        { type: UBUS_MSG.INVOKE, seq: 5, objid: subObj, method: 'assoc', noReply: undefined, data: { address: MAC } },
      );
      assert.equal(typeof inv.attrs.user, 'string');
      watcher.send({ type: UBUS_MSG.STATUS, seq: 5, peer: inv.peer, attrs: { status: 0, objid: subObj } });
      const ack = await owner.next();
      assert.deepEqual(
        { type: ack.type, seq: ack.seq, peer: ack.peer, status: ack.attrs.status },
        { type: UBUS_MSG.STATUS, seq: 5, peer: subObj, status: 0 },
      );
      // with NO_REPLY: nothing back to the owner, NO_REPLY copied to the subscriber
      owner.send({
        type: UBUS_MSG.NOTIFY,
        seq: 6,
        peer: objid,
        attrs: { objid, method: 'disassoc', data: { address: MAC }, noReply: true },
      });
      const inv2 = await watcher.next();
      assert.deepEqual(
        { seq: inv2.seq, method: inv2.attrs.method, noReply: inv2.attrs.noReply },
        { seq: 6, method: 'disassoc', noReply: true },
      );
      // the owner disconnects: the subscriber is told
      owner.socket.destroy();
      const uns = await watcher.next();
      assert.deepEqual(
        { type: uns.type, peer: uns.peer, attrs: uns.attrs },
        { type: UBUS_MSG.UNSUBSCRIBE, peer: 0, attrs: { objid: subObj, target: objid } },
      );
    } finally {
      owner.socket.destroy();
      watcher.socket.destroy();
    }
  },

  async 'protocol: INVOKEs a published object gets without DATA, and with it'(h) {
    const a = await h.client();
    let drops = 0;
    a.on('disconnected', () => drops++);
    const obj = await a.addObject('tmip.x', { m: { handler: () => ({ ok: 1 }) } });
    const raw = await rawConnection(h.env.socketPath);
    try {
      await raw.next();
      // ubusd forwards an INVOKE without DATA; the client answers INVALID_ARGUMENT as libubus does
      raw.send({ type: UBUS_MSG.INVOKE, seq: 3, peer: obj.id, attrs: { objid: obj.id, method: 'm' } });
      const st = await raw.next();
      assert.deepEqual(
        { type: st.type, seq: st.seq, peer: st.peer, attrs: st.attrs },
        { type: UBUS_MSG.STATUS, seq: 3, peer: obj.id, attrs: { status: UBUS_STATUS.INVALID_ARGUMENT, objid: obj.id } },
      );
      raw.send({ type: UBUS_MSG.INVOKE, seq: 4, peer: obj.id, attrs: { objid: obj.id, method: 'm', data: {} } });
      const data = await raw.next();
      assert.deepEqual(
        { type: data.type, seq: data.seq, peer: data.peer, attrs: data.attrs },
        { type: UBUS_MSG.DATA, seq: 4, peer: obj.id, attrs: { objid: obj.id, data: { ok: 1 }, dataRaw: data.attrs.dataRaw } },
      );
      assert.deepEqual((await raw.next()).attrs, { status: 0, objid: obj.id });
    } finally {
      raw.socket.destroy();
    }
    // A ping from a travels behind a's answers: whatever ubusd sent a in return for them (or for the
    // raw peer's requests, which came before) arrives before the ping's reply.
    await within(a.ping(), 2000, 'a ping from a after the raw exchange');
    assert.equal(drops, 0, 'a was never disconnected');
    assert.ok(a.connected);
  },
};
