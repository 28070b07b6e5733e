// SPDX-License-Identifier: GPL-2.0-only
// The MLR over real TCP on loopback: a CN binds and gets answers; hostile bytes close only the
// offending connection; persisted state survives a restart. Security: authentication over TCP,
// slow/truncated/silent connections time out, connections per source address are capped.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startMlr } from '../../src/mlr/mlr.js';
import { FileStateFile } from '../../src/platform/state-file.js';
import { MAX_CONNECTIONS_PER_SOURCE, connectTcp, serveTcp, type ListenTcpOptions } from '../../src/platform/tcp-channel.js';
import { cnGuards } from '../../src/proto/auth.js';
import { encodeFrame } from '../../src/proto/mlrp.js';
import { AUTH_FAILED, RpcPeer, type RpcError } from '../../src/proto/rpc.js';
import type { RequestBody } from '../../src/core/messages.js';
import { ip, until, within } from '../support/helpers.js';

const bind: RequestBody<'bind'> = {
  network: 'lab',
  cn: { name: 'cn1', addr: ip('10.200.0.11') },
  tunnels: ['vxlan'],
  pools: [{ network: ip('10.1.0.0'), prefix: 24, first: ip('10.1.0.0'), last: ip('10.1.0.255'), exclude: [ip('10.1.0.1')] }],
};

/** The MLR as tmip-mlr assembles it, on an ephemeral loopback port. */
async function server(stateFile?: string) {
  let port = 0;
  const mlr = await startMlr(
    { networkName: 'lab', offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['ipip', 'vxlan'] },
    {
      listen: async (onChannel) => {
        const l = await serveTcp('127.0.0.1', 0, onChannel);
        port = l.port;
        return l;
      },
      ...(stateFile ? { state: new FileStateFile(stateFile) } : {}),
      log: () => {},
    },
  );
  return { port, close: () => mlr.close(), service: mlr.service };
}

async function client(port: number) {
  const peer = new RpcPeer(await connectTcp('127.0.0.1', port));
  peer.handle('prepare', () => ({}));
  peer.handle('commit', () => ({}));
  return peer;
}

test('garbage and oversized frames close that connection only', async () => {
  const s = await server();
  try {
    const good = await client(s.port);
    await good.request('bind', bind);
    for (const junk of [Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.from([0x54, 0x4d, 1, 1, 0xff, 0xff, 0xff, 0xff])]) {
      const sock = net.connect(s.port, '127.0.0.1');
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      sock.write(junk);
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('MLR kept a hostile connection open')), 2000);
        sock.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        sock.on('error', () => {});
      });
    }
    const pong = await good.request('ping', {});
    assert.ok(pong.time > 0, 'the well-behaved CN is still served');
    good.close();
  } finally {
    await s.close();
  }
});

test('bindings persist across an MLR restart through state_file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-mlr-'));
  const file = path.join(dir, 'state.json');
  try {
    let s = await server(file);
    let c = await client(s.port);
    await c.request('bind', bind);
    await c.request('discover', { mac: '02:00:00:00:00:01' });
    const ack = await c.request('request', { mac: '02:00:00:00:00:01', ip: ip('10.1.0.5'), leaseTime: 600, state: 'selecting' });
    assert.equal(ack.outcome, 'ack');
    c.close();
    await s.close();
    s = await server(file);
    c = await client(s.port);
    const again = await c.request('bind', bind);
    assert.equal(again.bindings.length, 1);
    assert.equal(again.bindings[0]?.cell, ip('10.1.0.4'));
    c.close();
    await s.close();
    fs.writeFileSync(file, '{"not":"state"}');
    await assert.rejects(server(file), /not a valid tmip MLR state: state.cns: expected an array/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Security: authentication over TCP, slow and truncated frames, connections per source address.

const KEY = 'c3'.repeat(32);

/** The MLR with authentication on (cn1's key) and short frame time-outs, as tests can afford. */
async function guarded(listen: ListenTcpOptions = {}) {
  let port = 0;
  const logs: string[] = [];
  const mlr = await startMlr(
    { networkName: 'lab', offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['vxlan'], keys: [{ cn: 'cn1', secret: KEY }] },
    {
      listen: async (onChannel) => {
        const l = await serveTcp('127.0.0.1', 0, onChannel, { frameTimeoutMs: 300, log: (m) => logs.push(m), ...listen });
        port = l.port;
        return l;
      },
      log: (_l, m) => logs.push(m),
    },
  );
  return { port, logs, service: mlr.service, close: () => mlr.close() };
}

/** A raw socket to the MLR and a promise of its close, failing after `ms`. */
async function rawSocket(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  sock.resume(); // read (and drop) what the MLR answers, so that its close is seen
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  return { sock, closed: (ms: number, what: string) => within(closed, ms, what) };
}

test('over TCP: a signed CN binds; a forged bind is refused and changes nothing', async () => {
  const s = await guarded();
  try {
    const forged = new RpcPeer(await connectTcp('127.0.0.1', s.port), { guard: cnGuards('cn1', 'd4'.repeat(32), () => {})('MLR') });
    await assert.rejects(forged.request('bind', bind), (e: RpcError) => e.code === AUTH_FAILED && /bad HMAC/.test(e.message));
    assert.equal(s.service.isOnline('cn1'), false);
    assert.deepEqual(s.service.status().cns, []);
    assert.ok(s.logs.some((l) => /auth: rejected 'bind' from 127\.0\.0\.1:\d+ \(claims 'cn1'\): bad HMAC/.test(l)));
    forged.close();
    const good = new RpcPeer(await connectTcp('127.0.0.1', s.port), { guard: cnGuards('cn1', KEY, () => {})('MLR') });
    await good.request('bind', bind);
    assert.ok(s.service.isOnline('cn1'), 'positive control: the right key binds');
    good.close();
  } finally {
    await s.close();
  }
});

test('slow, truncated and silent connections are closed after the frame time-out; a good CN is not', async () => {
  const s = await guarded();
  try {
    const good = new RpcPeer(await connectTcp('127.0.0.1', s.port), { guard: cnGuards('cn1', KEY, () => {})('MLR') });
    await good.request('bind', bind);
    const frame = encodeFrame(Buffer.from('{"v":1,"type":"ping","id":1,"body":{}}'));
    const slow = await rawSocket(s.port);
    const truncated = await rawSocket(s.port);
    const silent = await rawSocket(s.port);
    const halfAfterWhole = await rawSocket(s.port);
    const t0 = Date.now();
    truncated.sock.write(frame.subarray(0, frame.length - 3));
    // one whole frame (answered: unsigned, so refused), then half of the next
    halfAfterWhole.sock.write(Buffer.concat([frame, frame.subarray(0, 5)]));
    // the slow one dribbles a byte every 50 ms: it never completes the frame in time
    let i = 0;
    const drip = setInterval(() => {
      if (i < frame.length - 1) slow.sock.write(frame.subarray(i, ++i));
    }, 50);
    try {
      await Promise.all([
        slow.closed(3000, 'the slow connection to close'),
        truncated.closed(3000, 'the truncated connection to close'),
        silent.closed(3000, 'the silent connection to close'),
        halfAfterWhole.closed(3000, 'the connection that stopped half-way through its second frame to close'),
      ]);
    } finally {
      clearInterval(drip);
    }
    assert.ok(Date.now() - t0 >= 250, 'not before the time-out');
    assert.ok((await good.request('ping', {})).time > 0, 'the bound CN is still served');
    assert.ok(s.service.isOnline('cn1'));
    good.close();
  } finally {
    await s.close();
  }
});

test('at most MAX_CONNECTIONS_PER_SOURCE connections from one address; the next is closed at once', async () => {
  const s = await guarded({ frameTimeoutMs: 0, firstFrameTimeoutMs: 60_000 });
  const open: Array<Awaited<ReturnType<typeof rawSocket>>> = [];
  try {
    for (let i = 0; i < MAX_CONNECTIONS_PER_SOURCE; i++) open.push(await rawSocket(s.port));
    const extra = await rawSocket(s.port);
    await extra.closed(2000, 'the connection beyond the limit to close');
    assert.ok(
      s.logs.some((l) => /refused a connection from 127\.0\.0\.1: 8 open from that address \(at most 8\)/.test(l)),
      s.logs.join('\n'),
    );
    // those within the limit are still open and served
    const c = new RpcPeer(await connectTcp('127.0.0.1', s.port)).request('ping', {});
    await assert.rejects(c, /closed/, 'a ninth connection is refused even when it is well-behaved');
    open[0]!.sock.destroy();
    await open[0]!.closed(2000, 'our own close');
    const again = new RpcPeer(await connectTcp('127.0.0.1', s.port), { guard: cnGuards('cn1', KEY, () => {})('MLR') });
    await until('a slot is free again', async () => {
      try {
        return (await again.request('ping', {}, 500)).time > 0;
      } catch {
        return false;
      }
    });
    again.close();
  } finally {
    for (const o of open) o.sock.destroy();
    await s.close();
  }
});

test('a peer that sends requests but never reads the answers is closed', async () => {
  const s = await guarded({ maxWriteBuffer: 16 * 1024 });
  try {
    const sock = net.connect(s.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.pause();
    let closed = false;
    sock.once('close', () => (closed = true));
    // unsigned pings, 10000 at a time: each is answered with an auth-failed error this socket never
    // reads; once the kernel's buffers are full the answers queue up at the MLR, which then drops us
    const ping = encodeFrame(Buffer.from('{"v":1,"type":"ping","id":1,"body":{}}'));
    const chunk = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
    for (let i = 0; i < 100 && !closed; i++) {
      sock.write(chunk);
      await new Promise((r) => setTimeout(r, 20));
    }
    await until('the MLR to close the connection that does not read', () => closed, 5000);
    const good = new RpcPeer(await connectTcp('127.0.0.1', s.port), { guard: cnGuards('cn1', KEY, () => {})('MLR') });
    assert.ok((await good.request('ping', {})).time > 0, 'other connections are served');
    good.close();
  } finally {
    await s.close();
  }
});

test('authentication off is logged at start and again periodically; on, it is not', async () => {
  const logs: string[] = [];
  const mlr = await startMlr(
    { networkName: 'lab', offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['vxlan'], authOffReminderMs: 20 },
    { listen: (onChannel) => serveTcp('127.0.0.1', 0, onChannel), log: (_l, m) => logs.push(m) },
  );
  try {
    await until('two reminders after the first warning', () => logs.filter((l) => /authentication is OFF/.test(l)).length >= 3);
  } finally {
    await mlr.close();
  }
  const s = await guarded();
  await s.close();
  assert.ok(s.logs.some((l) => /authentication on: 1 CN key/.test(l)));
  assert.ok(!s.logs.some((l) => /authentication is OFF/.test(l)));
});
