// SPDX-License-Identifier: GPL-2.0-only
// The RPC layer's heartbeat (issue 9) over in-process channels: a live peer stays open on an idle
// link with about one ping per interval, any message counts as alive, a peer that falls silent (hung,
// powered off, link cut: no FIN) is closed after `missMs` with a reason that says so, and what was
// waiting for it fails at once instead of at its own time-out.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { TcpChannel } from '../../src/platform/tcp-channel.js';
import { DEFAULT_HEARTBEAT, RpcError, RpcPeer } from '../../src/proto/rpc.js';
import { cuttablePair } from '../support/cuttable-channel.js';
import { until } from '../support/helpers.js';

const HB = { intervalMs: 40, missMs: 120 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The heartbeat's timers do not hold the process open (a daemon's sockets do): this does, meanwhile.
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));

function closedReason(peer: RpcPeer): Promise<string> {
  return new Promise((resolve) => peer.channel.onClose(resolve));
}

test('the defaults notice a dead peer within a few seconds and ping at least twice before giving up', () => {
  assert.ok(DEFAULT_HEARTBEAT.missMs <= 5000);
  assert.ok(DEFAULT_HEARTBEAT.missMs >= 2 * DEFAULT_HEARTBEAT.intervalMs);
});

test('two live peers with heartbeats stay open on an idle link, with about one ping and one reply per interval', async () => {
  const { a, b, sent } = cuttablePair();
  const pa = new RpcPeer(a, { heartbeat: HB });
  const pb = new RpcPeer(b, { heartbeat: HB });
  await sleep(HB.missMs * 4);
  assert.equal(pa.isClosed, false);
  assert.equal(pb.isClosed, false);
  // A ping goes out after 75-100 % of the interval of silence; both ends pinging every time would
  // be twice this bound.
  const rounds = (HB.missMs * 4) / ((HB.intervalMs * 3) / 4);
  assert.ok(sent.a + sent.b >= (HB.missMs * 4) / HB.intervalMs, `pings flow: ${sent.a}+${sent.b}`);
  assert.ok(sent.a + sent.b <= 2 * rounds + 4, `about a ping and a reply per interval: ${sent.a}+${sent.b}`);
  pa.close();
  pb.close();
});

test('a peer without a heartbeat of its own (an older build) keeps the link alive by answering the pings', async () => {
  const [x, y] = memoryChannelPair();
  const pa = new RpcPeer(x, { heartbeat: HB });
  const pb = new RpcPeer(y); // no ping handler: it answers 'unsupported', which is a message all the same
  await sleep(HB.missMs * 3);
  assert.equal(pa.isClosed, false);
  pa.close();
  assert.equal(pb.isClosed, true);
});

test('a peer that falls silent is closed after missMs, with a reason naming the heartbeat', async () => {
  const { a, b, cut } = cuttablePair();
  const pa = new RpcPeer(a, { heartbeat: HB });
  const pb = new RpcPeer(b, { heartbeat: HB });
  await sleep(HB.intervalMs * 2);
  const reasonA = closedReason(pa);
  const reasonB = closedReason(pb);
  const t0 = performance.now();
  cut();
  const [ra, rb] = await Promise.all([reasonA, reasonB]);
  const took = performance.now() - t0;
  assert.match(ra, /^heartbeat: nothing from b for \d+ ms \(limit 120 ms\)$/);
  assert.match(rb, /^heartbeat: nothing from a for \d+ ms/);
  assert.ok(took <= HB.missMs + 60, `closed ${Math.round(took)} ms after the cut`);
  const silence = Number(/for (\d+) ms/.exec(ra)?.[1]);
  assert.ok(silence >= HB.missMs, `not before the silence reached missMs (${silence} ms)`);
});

test('a request waiting on a peer that falls silent fails at the heartbeat, not at its own time-out', async () => {
  const [x, y] = memoryChannelPair('cn', 'mlr');
  const mlr = new RpcPeer(x, { heartbeat: HB });
  y.onMessage(() => undefined); // a hung CN: the socket takes everything, nothing comes back
  const t0 = performance.now();
  const r = await mlr.request('prepare', { tx: 1, binding: undefined as never, previous: null }, 10_000).then(
    () => 'answered',
    (e: unknown) => e,
  );
  assert.ok(r instanceof RpcError);
  assert.equal(r.code, 'closed');
  assert.match(r.message, /heartbeat/);
  assert.ok(performance.now() - t0 < HB.missMs + 60);
});

test('any message counts as alive: a peer that only sends (even what cannot be decoded) is not closed', async () => {
  const [x, y] = memoryChannelPair();
  const pa = new RpcPeer(x, { heartbeat: HB });
  let errors = 0;
  pa.onProtocolError = () => errors++;
  const chatter = setInterval(() => y.send(Buffer.from('not json')), HB.intervalMs / 2);
  try {
    await sleep(HB.missMs * 3);
    assert.equal(pa.isClosed, false);
    assert.ok(errors > 0);
  } finally {
    clearInterval(chatter);
  }
  await until('silence to close it', () => pa.isClosed, HB.missMs * 3);
});

test('no heartbeat, no timer: a silent peer stays open (the transport decides)', async () => {
  const [x, y] = memoryChannelPair();
  const pa = new RpcPeer(x);
  y.onMessage(() => undefined);
  await sleep(HB.missMs * 2);
  assert.equal(pa.isClosed, false);
  pa.close();
});

test('nonsense heartbeat options are refused', () => {
  const [x] = memoryChannelPair();
  assert.throws(() => new RpcPeer(x, { heartbeat: { intervalMs: 100, missMs: 100 } }), RangeError);
  assert.throws(() => new RpcPeer(x, { heartbeat: { intervalMs: 0, missMs: 100 } }), RangeError);
});

test('a stall of this process longer than missMs does not close a peer whose messages wait to be read', async () => {
  // The peer is another process that sends a (meaningless) frame every 20 ms over TCP; this process
  // then blocks its event loop for 3 x missMs. When it wakes, the heartbeat's timer is due before the
  // socket is read: the silence it sees is ours, not the peer's.
  const mlrp = fileURLToPath(new URL('../../src/proto/mlrp.js', import.meta.url));
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const child = spawn(process.execPath, [
    '--input-type=module',
    '-e',
    `import net from 'node:net'; import { encodeFrame } from ${JSON.stringify(mlrp)};
     const s = net.connect(${port}, '127.0.0.1');
     s.on('error', () => process.exit(0));
     setInterval(() => s.write(encodeFrame(Buffer.from('{}'))), 20);`,
  ]);
  try {
    // Generous limits: the other process must not look silent when the machine is merely busy.
    const hb = { intervalMs: 100, missMs: 400 };
    const peer = new RpcPeer(new TcpChannel(await accepted), { heartbeat: hb });
    peer.onProtocolError = () => undefined;
    await sleep(hb.missMs);
    assert.equal(peer.isClosed, false, 'frames keep it alive');
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        const until = performance.now() + hb.missMs * 3;
        while (performance.now() < until) {
          // a stalled event loop: a long synchronous job, a paused VM
        }
        resolve();
      }, 1),
    );
    await sleep(hb.intervalMs);
    assert.equal(peer.isClosed, false, 'not closed by our own stall');
    child.kill('SIGKILL');
    await until('the silent peer to be closed', () => peer.isClosed, hb.missMs * 4);
  } finally {
    child.kill('SIGKILL');
    server.close();
  }
});
