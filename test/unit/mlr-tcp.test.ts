// SPDX-License-Identifier: GPL-2.0-only
// The MLR over real TCP on loopback: a CN binds and gets answers; hostile bytes close only the
// offending connection; persisted state survives a restart.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startMlr } from '../../src/mlr/mlr.js';
import { FileStateFile } from '../../src/platform/state-file.js';
import { connectTcp, serveTcp } from '../../src/platform/tcp-channel.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import type { RequestBody } from '../../src/core/messages.js';
import { ip } from '../support/helpers.js';

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
