// SPDX-License-Identifier: GPL-2.0-only
// MLRP over TLS on loopback, with certificates made by the openssl CLI at test time: a CN binds to
// the MLR (server certificate checked by IP SAN and by DNS name); a server certificate from another
// CA or for another address is refused; with tls_ca on the MLR a client certificate is required;
// garbage, silent and excess connections are closed without disturbing a bound CN; bad files give
// errors that name the option.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TlsFiles } from '../../src/core/config.js';
import type { RequestBody } from '../../src/core/messages.js';
import { startMlr } from '../../src/mlr/mlr.js';
import { connectMlr } from '../../src/platform/mlr-transport.js';
import { connectTls, serveTls, type ServeTlsOptions, type TlsServerFiles } from '../../src/platform/tls-channel.js';
import { RpcPeer, type MessageChannel } from '../../src/proto/rpc.js';
import { ip, until, within } from '../support/helpers.js';
import { makeTlsFixtures, type TlsFixtures } from '../support/tls-fixtures.js';

const bind: RequestBody<'bind'> = {
  network: 'lab',
  cn: { name: 'cn1', addr: ip('10.200.0.11') },
  tunnels: ['vxlan'],
  pools: [{ network: ip('10.1.0.0'), prefix: 24, first: ip('10.1.0.0'), last: ip('10.1.0.255'), exclude: [ip('10.1.0.1')] }],
};

let dir = '';
let fx: TlsFixtures;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-tls-'));
  fx = makeTlsFixtures(dir);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The MLR as tmip-mlr assembles it with a TLS listener on an ephemeral loopback port. */
async function server(files: TlsServerFiles, opts: ServeTlsOptions = {}) {
  let port = 0;
  let accepted = 0;
  const logs: string[] = [];
  const mlr = await startMlr(
    { networkName: 'lab', offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['vxlan'] },
    {
      listen: async (onChannel) => {
        const l = await serveTls(
          '127.0.0.1',
          0,
          files,
          (ch, addr) => {
            accepted++;
            onChannel(ch, addr);
          },
          { log: (m) => logs.push(m), ...opts },
        );
        port = l.port;
        return l;
      },
      log: (_l, m) => logs.push(m),
    },
  );
  return { port, logs, accepted: () => accepted, service: mlr.service, close: () => mlr.close() };
}

function client(ch: MessageChannel): RpcPeer {
  const peer = new RpcPeer(ch);
  peer.handle('prepare', () => ({}));
  peer.handle('commit', () => ({}));
  return peer;
}

/** How a client that must not get through ends: its connect error, or why its channel closed. */
async function refusal(host: string, port: number, files: TlsFiles): Promise<string> {
  let ch: MessageChannel;
  try {
    ch = await connectTls(host, port, files, 3000);
  } catch (e) {
    return (e as Error).message;
  }
  // TLS 1.3: the client has finished its handshake before the server checks its certificate, so
  // the refusal arrives as an alert right after; the channel must close without carrying a message.
  const closed = new Promise<string>((resolve) => ch.onClose(resolve));
  const peer = new RpcPeer(ch);
  await assert.rejects(peer.request('ping', {}, 3000));
  return within(closed, 3000, 'the refused channel to close');
}

/** A raw TCP socket to the listener and a bounded wait for its close. */
async function rawSocket(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  sock.resume();
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  return { sock, closed: (ms: number, what: string) => within(closed, ms, what) };
}

test('a CN binds to the MLR over TLS; the certificate is checked by IP SAN and by DNS name', async () => {
  const s = await server(fx.server);
  try {
    const cfg = { cnName: 'cn1', networkName: 'lab', tls: { ca: fx.ca }, mqttUsername: 'cn1' };
    const c = client(await connectMlr({ scheme: 'tls', host: '127.0.0.1', port: s.port }, cfg));
    const reply = await c.request('bind', bind);
    assert.deepEqual(reply.bindings, []);
    assert.ok(s.service.isOnline('cn1'));
    const byName = client(await connectTls('localhost', s.port, { ca: fx.ca }));
    assert.ok((await byName.request('ping', {})).time > 0, 'DNS name in the SAN (sent as SNI)');
    byName.close();
    c.close();
  } finally {
    await s.close();
  }
});

test('a server certificate from another CA, or for another address, is refused by the CN', async () => {
  const other = await server(fx.otherServer);
  try {
    await assert.rejects(
      connectTls('127.0.0.1', other.port, { ca: fx.ca }, 3000),
      /^Error: connecting to tls:\/\/127\.0\.0\.1:\d+: .*certificate/,
    );
    // without tls_ca the system store is used, which knows neither test CA. (The MLR cannot tell:
    // Node's client checks the certificate after its side of the handshake and just closes.)
    await assert.rejects(connectTls('127.0.0.1', other.port, {}, 3000), /certificate/);
  } finally {
    await other.close();
  }
  const wrongDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-tls-'));
  try {
    const elsewhere = makeTlsFixtures(wrongDir, { serverIps: ['192.0.2.1'], serverDns: ['mlr.example'] });
    const s = await server(elsewhere.server);
    try {
      await assert.rejects(connectTls('127.0.0.1', s.port, { ca: elsewhere.ca }, 3000), /IP: 127\.0\.0\.1 is not in the cert's list/);
      await assert.rejects(connectTls('localhost', s.port, { ca: elsewhere.ca }, 3000), /Host: localhost\. is not in the cert's altnames/);
    } finally {
      await s.close();
    }
  } finally {
    fs.rmSync(wrongDir, { recursive: true, force: true });
  }
});

test('with tls_ca the MLR requires a client certificate signed by it', async () => {
  const s = await server({ ...fx.server, ca: fx.ca }, { failureLogIntervalMs: 0 });
  try {
    assert.match(await refusal('127.0.0.1', s.port, { ca: fx.ca }), /certificate|closed by peer/, 'no client certificate');
    assert.match(
      await refusal('127.0.0.1', s.port, { ca: fx.ca, ...fx.otherClient }),
      /certificate|closed by peer/,
      'a client certificate from another CA',
    );
    assert.equal(s.accepted(), 0, 'neither became a channel');
    await until('both refusals in the log', () => s.logs.filter((l) => /TLS handshake/.test(l)).length === 2);
    const lines = s.logs.filter((l) => /TLS handshake/.test(l));
    assert.match(lines[0]!, /^TLS handshake with 127\.0\.0\.1:\d+ failed: no client certificate$/);
    assert.match(lines[1]!, /^TLS handshake with 127\.0\.0\.1:\d+ failed: client certificate refused \([A-Z_]+\)$/);
    assert.equal(s.service.isOnline('cn1'), false);
    const good = client(await connectTls('127.0.0.1', s.port, { ca: fx.ca, ...fx.client }));
    await good.request('bind', bind);
    assert.ok(s.service.isOnline('cn1'), 'positive control: the right client certificate binds');
    assert.equal(s.accepted(), 1);
    good.close();
  } finally {
    await s.close();
  }
});

test('garbage instead of a handshake, a silent client and excess connections close only themselves', async () => {
  const s = await server(fx.server, { handshakeTimeoutMs: 300, maxPerSource: 4 });
  try {
    const good = client(await connectTls('127.0.0.1', s.port, { ca: fx.ca }));
    await good.request('bind', bind);
    const garbage = await rawSocket(s.port);
    const silent = await rawSocket(s.port);
    const t0 = Date.now();
    garbage.sock.write('GET / HTTP/1.0\r\n\r\n');
    await garbage.closed(2000, 'the garbage connection to close');
    await silent.closed(3000, 'the silent connection to close after the handshake time-out');
    assert.ok(Date.now() - t0 >= 250, 'the silent one not before the time-out');
    // 4 per source: the bound CN and three more; the fifth is closed at once
    const held = await Promise.all([rawSocket(s.port), rawSocket(s.port), rawSocket(s.port)]);
    const excess = await rawSocket(s.port);
    await excess.closed(1000, 'the connection over the per-source limit to close');
    for (const h of held) h.sock.destroy();
    assert.ok((await good.request('ping', {})).time > 0, 'the bound CN is still served');
    assert.ok(s.service.isOnline('cn1'));
    const failures = s.logs.filter((l) => /^TLS handshake with 127\.0\.0\.1:\d+ failed/.test(l));
    assert.equal(failures.length, 1, `one line for two failures within the minute: ${failures.join(' | ')}`);
    assert.match(failures[0]!, /http request|wrong version number/);
    assert.ok(s.logs.some((l) => /refused a connection from 127\.0\.0\.1/.test(l)));
    good.close();
  } finally {
    await s.close();
  }
});

test('bad certificate files give errors that name the option', async () => {
  const missing = path.join(dir, 'missing.crt');
  await assert.rejects(
    serveTls('127.0.0.1', 0, { cert: missing, key: fx.server.key }, () => {}),
    {
      message: `tls_cert '${missing}': ENOENT: no such file or directory`,
    },
  );
  await assert.rejects(
    serveTls('127.0.0.1', 0, { ...fx.server, ca: missing }, () => {}),
    /^Error: tls_ca '.*missing\.crt': ENOENT/,
  );
  await assert.rejects(
    serveTls('127.0.0.1', 0, { cert: fx.server.key, key: fx.server.key }, () => {}),
    /^Error: tls_cert '.*server\.key': not a PEM certificate/,
  );
  await assert.rejects(
    serveTls('127.0.0.1', 0, { cert: fx.server.cert, key: fx.server.cert }, () => {}),
    /^Error: tls_key '.*server\.crt': not a PEM private key/,
  );
  await assert.rejects(
    serveTls('127.0.0.1', 0, { cert: fx.server.cert, key: fx.otherServer.key }, () => {}),
    /^Error: tls_key '.*other-server\.key': not the private key of tls_cert '.*server\.crt'/,
  );
  await assert.rejects(connectTls('127.0.0.1', 1, { ca: missing }), /^Error: tls_ca '.*missing\.crt': ENOENT/);
  await assert.rejects(
    connectTls('127.0.0.1', 1, { ca: fx.ca, cert: fx.client.cert, key: missing }),
    /^Error: tls_key '.*missing\.crt': ENOENT/,
  );
});
