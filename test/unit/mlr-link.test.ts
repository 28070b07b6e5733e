// SPDX-License-Identifier: GPL-2.0-only
// The CN's MLR session (src/cn/mlr-link.ts) and its reconnects: a reconnect asked for while the first
// connect is still under way starts no second one; a session that closes while its bind reply is
// still being applied is connected again once that is done.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { RequestBody } from '../../src/core/messages.js';
import { MlrLink } from '../../src/cn/mlr-link.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { RpcPeer, type MessageChannel } from '../../src/proto/rpc.js';
import { ip, until } from '../support/helpers.js';

const bindBody: RequestBody<'bind'> = { network: 'campus', cn: { name: 'cn1', addr: ip('10.200.0.11') }, tunnels: ['vxlan'], pools: [] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An MLR stand-in on one end of an in-memory channel: accepts every bind with an empty list. */
function mlrEnd(): { cnEnd: MessageChannel; mlrEnd: MessageChannel } {
  const [cnEnd, mlrSide] = memoryChannelPair('cn', 'mlr');
  const peer = new RpcPeer(mlrSide);
  peer.handle('bind', async () => ({ bindings: [], peers: [] }));
  return { cnEnd, mlrEnd: mlrSide };
}

/** An MlrLink with quick back-off and no heartbeat, connecting with `connect` and applying binds with `onBound`. */
function quickLink(connect: () => Promise<MessageChannel>, onBound: () => Promise<void> = async () => {}): MlrLink {
  return new MlrLink({
    describe: 'test',
    connect,
    bindBody: () => bindBody,
    serve: () => {},
    onBound,
    log: () => {},
    minBackoffMs: 1,
    maxBackoffMs: 2,
    heartbeat: false,
  });
}

test('a reconnect while the first connect is under way starts no second connect', async () => {
  let connects = 0;
  let release: ((c: MessageChannel) => void) | undefined;
  const link = quickLink(() => {
    connects++;
    return new Promise<MessageChannel>((resolve) => (release = resolve));
  });
  const started = link.start();
  link.reconnect('a timed-out request');
  await sleep(50);
  assert.equal(connects, 1, 'one connect at a time');
  release?.(mlrEnd().cnEnd);
  await started;
  assert.equal(link.connected, true);
  assert.equal(connects, 1);
  link.stop();
});

test('a session that closes while its bind is applied is connected again afterwards', async () => {
  let connects = 0;
  const ends: MessageChannel[] = [];
  let applied: (() => void) | undefined;
  let bound = 0;
  const link = quickLink(
    async () => {
      connects++;
      const { cnEnd, mlrEnd: m } = mlrEnd();
      ends.push(m);
      return cnEnd;
    },
    async () => {
      bound++;
      // The first bind's list takes a while to apply (a data plane with thousands of bindings).
      if (bound === 1) await new Promise<void>((resolve) => (applied = resolve));
    },
  );
  const started = link.start();
  await until('the first bind to be applied', () => applied !== undefined, 2000, 5);
  ends[0]!.close('the MLR restarts');
  await sleep(30); // the reconnect timer fires (back-off 1–2 ms) while the first bind is still applied
  applied?.();
  await started;
  await until('a second session', () => connects === 2 && link.connected, 2000, 5);
  assert.equal(bound, 2);
  link.stop();
});

test('a bind whose list cannot be applied is tried again once, not twice at once', async () => {
  let connects = 0;
  let bound = 0;
  const link = quickLink(
    async () => {
      connects++;
      return mlrEnd().cnEnd;
    },
    async () => {
      // The first list fails to apply (a kernel change refused): the session is closed and tried again.
      if (++bound === 1) throw new Error('dataplane: gateway 10.1.0.6/30 failed');
    },
  );
  void link.start();
  await until('bound again', () => bound === 2 && link.connected, 2000, 5);
  await sleep(100);
  assert.equal(connects, 2, 'one reconnect');
  link.stop();
});

test('a session that closes right behind the bind reply is connected again', async () => {
  let connects = 0;
  const link = quickLink(async () => {
    connects++;
    const end = mlrEnd().cnEnd;
    if (connects > 1) return end;
    // The first: the transport reports closed in the same turn as it delivers the reply (a close
    // read in the same chunk), before the bind's continuation runs.
    return {
      peer: end.peer,
      send: (payload, meta) => end.send(payload, meta),
      onMessage: (receive) =>
        end.onMessage((payload) => {
          receive(payload);
          end.close('EOF in the same chunk');
        }),
      onClose: (handler) => end.onClose(handler),
      close: (why) => end.close(why),
    };
  });
  await link.start();
  await until('a second session', () => connects === 2 && link.connected, 2000, 5);
  link.stop();
});

test('stop() while connecting or while the bind is in flight: no session is bound after it, nothing applied', async () => {
  for (const when of ['connecting', 'binding'] as const) {
    let bound = 0;
    let release: ((c: MessageChannel) => void) | undefined;
    let answer: (() => void) | undefined;
    let channel: MessageChannel | undefined;
    const link = quickLink(
      () =>
        new Promise<MessageChannel>((resolve) => {
          const [cnEnd, mlrSide] = memoryChannelPair('cn', 'mlr');
          // The MLR answers the bind only when the test lets it.
          new RpcPeer(mlrSide).handle('bind', () => new Promise((r) => (answer = () => r({ bindings: [], peers: [] }))));
          channel = cnEnd;
          release = () => resolve(cnEnd);
        }),
      async () => {
        bound++;
      },
    );
    let closed = false;
    const started = link.start();
    if (when === 'connecting') {
      await until('the connect', () => release !== undefined);
      link.stop();
      channel!.onClose(() => (closed = true));
      release!(channel!);
    } else {
      await until('the connect', () => release !== undefined);
      channel!.onClose(() => (closed = true));
      release!(channel!);
      await until('the bind request', () => answer !== undefined);
      link.stop();
      answer!();
    }
    await started;
    await sleep(20);
    assert.equal(bound, 0, `${when}: nothing applied after stop`);
    assert.equal(link.connected, false, `${when}: not connected`);
    assert.equal(closed, true, `${when}: the session's channel closed`);
  }
});
