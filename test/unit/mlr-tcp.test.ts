// The MLR over real TCP on loopback: a CN binds and gets answers; hostile bytes close only the
// offending connection; persisted state survives a restart.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startMlrServer } from '../../src/mlr/server.js';
import { connectTcp } from '../../src/platform/tcp-channel.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import type { RequestBody } from '../../src/core/messages.js';

const bind: RequestBody<'bind'> = {
  network: 'lab',
  cn: { name: 'cn1', addr: '10.200.0.11' },
  tunnels: ['vxlan'],
  pools: [{ network: '10.1.0.0', prefix: 24, first: '10.1.0.0', last: '10.1.0.255', exclude: ['10.1.0.1'] }],
};

async function server(stateFile?: string) {
  return startMlrServer({ networkName: 'lab', listen: '127.0.0.1', port: 0, offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['ipip', 'vxlan'], log: () => {}, ...(stateFile ? { stateFile } : {}) });
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
    const ack = await c.request('request', { mac: '02:00:00:00:00:01', ip: '10.1.0.5', leaseTime: 600, state: 'selecting' });
    assert.equal(ack.outcome, 'ack');
    c.close();
    await s.close();
    s = await server(file);
    c = await client(s.port);
    const again = await c.request('bind', bind);
    assert.equal(again.bindings.length, 1);
    assert.equal(again.bindings[0]?.cell, '10.1.0.4');
    c.close();
    await s.close();
    fs.writeFileSync(file, '{"not":"state"}');
    await assert.rejects(server(file), /not a tmip MLR state/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
