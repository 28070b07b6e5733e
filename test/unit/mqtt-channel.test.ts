// SPDX-License-Identifier: GPL-2.0-only
// The MQTT transport against a real mosquitto on 127.0.0.1 (a free port, a temporary config that
// allows anonymous clients, killed in `after`): request and reply both ways with MQTT 5 response
// topic and correlation data, the last will closing the MLR's channel of a CN whose socket died,
// the MLR's close reaching the CN, oversized and malformed input dropped and logged (rate-limited)
// without harm, the retained presence telling a CN to re-bind when an MLR (re)starts, an MLR bind
// over MQTT, and a broker restart that both sides recover from. Skipped without mosquitto.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { MlrAddress } from '../../src/core/config.js';
import type { RequestBody } from '../../src/core/messages.js';
import { startMlr } from '../../src/mlr/mlr.js';
import { connectMqtt, serveMqtt, MQTT_MAX_PAYLOAD, MQTT_MAX_SESSIONS_PER_CN, type MqttCnChannel } from '../../src/platform/mqtt-channel.js';
import { RpcPeer, type MessageChannel } from '../../src/proto/rpc.js';
import { ip, until, within } from '../support/helpers.js';

const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => fs.existsSync(p));
const skip = MOSQUITTO ? false : 'mosquitto is not installed (make deps installs it)';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** mosquitto on 127.0.0.1:port with a throw-away config; start() again after kill() reuses the port. */
class Broker {
  proc: ChildProcess | undefined;
  readonly conf: string;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.conf = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(
      this.conf,
      `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n`,
    );
  }
  async start(): Promise<void> {
    const p = spawn(MOSQUITTO!, ['-c', this.conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    // Whatever happens to the test, the broker does not outlive this process.
    const reap = () => p.kill('SIGKILL');
    process.once('exit', reap);
    p.once('exit', () => process.off('exit', reap));
    let err = '';
    p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await until(`mosquitto on port ${this.port} (${err})`, async () => p.exitCode === null && (await canConnect(this.port)), 5000, 20);
  }
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await within(gone, 5000, 'mosquitto to exit');
  }
}

interface Seen {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

describe('MQTT transport (real mosquitto on loopback)', { skip, timeout: 60_000 }, () => {
  let broker: Broker;
  let dir: string;
  let address: MlrAddress;
  let sniffer: MqttClient;
  const seen: Seen[] = [];
  const logs: string[] = [];
  const log = (_level: number, m: string) => logs.push(m);
  const closers: (() => unknown)[] = [];
  // Each test has its own network (topics and the MLR's client id), so one test's leftovers never
  // meet the next one's.
  let NET = 'unit-net-0';
  let nets = 0;
  beforeEach(() => {
    NET = `unit-net-${++nets}`;
  });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-mqtt-'));
    broker = new Broker(dir, await freePort());
    await broker.start();
    address = { scheme: 'mqtt', host: '127.0.0.1', port: broker.port };
    sniffer = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
    sniffer.on('error', () => {});
    sniffer.on('message', (topic, payload, packet) => seen.push({ topic, payload, packet }));
    await sniffer.subscribeAsync('tmip/#', { qos: 1 });
  });

  after(async () => {
    for (const c of closers.reverse()) {
      try {
        await within(Promise.resolve(c()), 3000, 'a test connection to close');
      } catch {
        /* tearing down */
      }
    }
    sniffer?.end(true);
    await broker?.kill();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** An MLR listener that hands out its channels through a queue. */
  async function mlrSide(opts: { minBackoffMs?: number } = {}) {
    const channels: MessageChannel[] = [];
    const l = await serveMqtt(
      address,
      { networkName: NET, username: 'tmip-mlr', log, minBackoffMs: opts.minBackoffMs ?? 100, maxBackoffMs: 300 },
      (ch) => channels.push(ch),
    );
    closers.push(() => l.close());
    return { listener: l, channels };
  }

  async function cnSide(cnName: string): Promise<MqttCnChannel> {
    const ch = await connectMqtt(address, { networkName: NET, cnName, username: cnName, log, keepaliveSeconds: 5 });
    closers.push(() => ch.close('test over'));
    return ch;
  }

  function nextMessage(ch: MessageChannel, what: string): Promise<Buffer> {
    return within(new Promise<Buffer>((resolve) => ch.onMessage(resolve)), 3000, what);
  }

  function closed(ch: MessageChannel, what: string): Promise<string> {
    return within(new Promise<string>((resolve) => ch.onClose(resolve)), 5000, what);
  }

  it('refuses CN and network names that MQTT topics reserve', async () => {
    await assert.rejects(connectMqtt(address, { networkName: NET, cnName: 'a/b', username: 'x' }), /reserve/);
    await assert.rejects(connectMqtt(address, { networkName: NET, cnName: 'ap+', username: 'x' }), /reserve/);
    await assert.rejects(connectMqtt(address, { networkName: 'net#', cnName: 'ap', username: 'x' }), /reserve/);
  });

  it("a CN's connection loads no more of MQTT.js than it uses: no WebSocket transport, no number cache (memory)", () => {
    // In a process of its own: this test file's sniffer uses mqtt.connect() and would load both.
    const script = `
      import { createRequire } from 'node:module';
      import { connectMqtt } from ${JSON.stringify(path.resolve('build/src/platform/mqtt-channel.js'))};
      const ch = await connectMqtt(${JSON.stringify(address)}, { networkName: 'unit-mem', cnName: 'ap-mem', username: 'ap-mem' });
      ch.send(Buffer.from('{"hello":1}'), { id: 1 });
      await new Promise((r) => setTimeout(r, 200));
      const require = createRequire(import.meta.url);
      const loaded = Object.keys(require.cache);
      const numbers = require(require.resolve('mqtt-packet/numbers.js', { paths: [${JSON.stringify(path.resolve('node_modules/mqtt'))}] }));
      console.log(JSON.stringify({ ws: loaded.some((f) => /[\\/]node_modules[\\/]ws[\\/]/.test(f)), cached: Object.keys(numbers.cache).length }));
      ch.close('done');
      setTimeout(() => process.exit(0), 100);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ws: boolean; cached: number };
    assert.deepEqual(out, { ws: false, cached: 0 });
  });

  it('carries requests and replies both ways with response topic and correlation data', async () => {
    const m = await mlrSide();
    const cn = await cnSide('Library 2nd.floor:1');
    const at = seen.length;
    cn.send(Buffer.from('{"hello":1}'), { id: 7 });
    await until('the MLR to open a channel for the CN', () => m.channels.length === 1, 3000);
    const mch = m.channels[0]!;
    assert.equal(mch.peer, 'mqtt:Library 2nd.floor:1');
    // The first message reached the channel before this test could set onMessage: the sniffer saw it.
    const req = seen.slice(at).find((s) => s.topic === `tmip/${NET}/mlr/Library 2nd.floor:1`);
    assert.ok(req, 'the request went to the CN topic');
    assert.equal(req.packet.qos, 1);
    assert.equal(req.packet.retain, false);
    assert.equal(req.packet.properties?.responseTopic, `tmip/${NET}/cn/Library 2nd.floor:1`);
    assert.equal(req.packet.properties?.correlationData?.toString(), '7');

    // MLR -> CN reply, then MLR -> CN request and the CN's reply.
    const reply = nextMessage(cn, 'the reply at the CN');
    mch.send(Buffer.from('{"re":7}'), { re: 7 });
    assert.equal((await reply).toString(), '{"re":7}');
    const mreq = nextMessage(cn, 'the MLR request at the CN');
    mch.send(Buffer.from('{"id":3}'), { id: 3 });
    assert.equal((await mreq).toString(), '{"id":3}');
    const creply = nextMessage(mch, 'the CN reply at the MLR');
    cn.send(Buffer.from('{"re":3}'), { re: 3 });
    assert.equal((await creply).toString(), '{"re":3}');

    await until('the sniffer to see all four', () => seen.slice(at).filter((s) => s.packet.properties?.correlationData).length >= 4, 3000);
    const byCorr = (topic: string, corr: string) =>
      seen.slice(at).find((s) => s.topic === topic && s.packet.properties?.correlationData?.toString() === corr);
    const r7 = byCorr(`tmip/${NET}/cn/Library 2nd.floor:1`, '7');
    assert.ok(r7, 'the reply went to the response topic with the same correlation data');
    assert.equal(r7.packet.properties?.responseTopic, undefined, 'a reply asks for no reply');
    const q3 = byCorr(`tmip/${NET}/cn/Library 2nd.floor:1`, '3');
    assert.equal(q3?.packet.properties?.responseTopic, `tmip/${NET}/mlr/Library 2nd.floor:1`, "the MLR's request names its inbox");
    assert.ok(byCorr(`tmip/${NET}/mlr/Library 2nd.floor:1`, '3'), "the CN's reply went to the MLR's inbox");
    const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
    closers.push(() => late.end(true));
    const retained = new Promise<IPublishPacket>((resolve) => late.on('message', (_t, _p, packet) => resolve(packet)));
    await late.subscribeAsync(`tmip/${NET}/status/+`, { qos: 1 });
    const online = await within(retained, 3000, 'the retained presence');
    assert.equal(online.payload.toString(), 'online', 'presence online was published');
    assert.equal(online.retain, true, 'presence is retained');
    assert.equal(online.qos, 1);
    cn.close();
    await m.listener.close();
  });

  it("the last will closes the MLR's channel of a CN whose connection died", async () => {
    const m = await mlrSide();
    const cn = await cnSide('ap-will');
    cn.send(Buffer.from('{}'), { id: 1 });
    await until('the MLR channel', () => m.channels.length === 1, 3000);
    const mclosed = closed(m.channels[0]!, 'the MLR channel to close');
    const cnClosed = closed(cn, 'the CN channel to close');
    cn.client.stream.destroy(); // no DISCONNECT: the broker publishes the will
    assert.match(await mclosed, /offline/);
    assert.match(await cnClosed, /lost the MQTT broker/);
    await until(
      'the sniffer to see the will',
      () =>
        seen
          .filter((s) => s.topic === `tmip/${NET}/status/ap-will`)
          .at(-1)
          ?.payload.toString() === 'offline',
      3000,
    );
    await m.listener.close();
  });

  it("the MLR's close reaches the CN, and the CN's close reaches the MLR", async () => {
    const m = await mlrSide();
    const cn = await cnSide('ap-close');
    cn.send(Buffer.from('{}'), { id: 1 });
    await until('the MLR channel', () => m.channels.length === 1, 3000);
    const cnClosed = closed(cn, 'the CN channel to close');
    m.channels[0]!.close('reconcile failed');
    assert.equal(await cnClosed, 'closed by the MLR');

    const cn2 = await cnSide('ap-close');
    cn2.send(Buffer.from('{}'), { id: 1 });
    await until('a new MLR channel for the new session', () => m.channels.length === 2, 3000);
    const mclosed = closed(m.channels[1]!, 'the MLR channel to close');
    cn2.close('bye');
    assert.match(await mclosed, /offline/);
    await m.listener.close();
  });

  it('drops oversized and malformed input, logs it once per topic, and goes on serving', async () => {
    const m = await mlrSide();
    const cn = await cnSide('ap-junk');
    cn.send(Buffer.from('{}'), { id: 1 });
    await until('the MLR channel', () => m.channels.length === 1, 3000);
    const mch = m.channels[0]!;
    const received: Buffer[] = [];
    mch.onMessage((p) => received.push(p));
    const rogue = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
    closers.push(() => rogue.end(true));
    const props = { userProperties: { 'tmip-session': cn.session } };
    const before = logs.length;
    await rogue.publishAsync(`tmip/${NET}/mlr/ap-junk`, Buffer.alloc(MQTT_MAX_PAYLOAD + 1, 0x41), { qos: 1, properties: props });
    for (let i = 0; i < 5; i++) await rogue.publishAsync(`tmip/${NET}/mlr/ap-nosession`, 'x', { qos: 1 });
    await rogue.publishAsync(`tmip/${NET}/mlr/`, 'x', { qos: 1, properties: props });
    await rogue.publishAsync(`tmip/${NET}/status/ap-junk`, Buffer.from([0xff, 0xfe]), { qos: 1, properties: props });
    // A session id is a map key at the MLR: a huge one (or one with odd characters) opens nothing.
    await rogue.publishAsync(`tmip/${NET}/mlr/ap-longsession`, 'x', {
      qos: 1,
      properties: { userProperties: { 'tmip-session': 'a'.repeat(65) } },
    });
    await rogue.publishAsync(`tmip/${NET}/mlr/ap-longsession`, 'x', { qos: 1, properties: { userProperties: { 'tmip-session': 'a b' } } });
    // One CN's name with many sessions gets MQTT_MAX_SESSIONS_PER_CN channels, not one per session.
    for (let i = 0; i < MQTT_MAX_SESSIONS_PER_CN + 3; i++) {
      await rogue.publishAsync(`tmip/${NET}/mlr/ap-many`, 'x', { qos: 1, properties: { userProperties: { 'tmip-session': `s${i}` } } });
    }
    // A response topic other than the CN's own inbox is logged (and never used).
    await rogue.publishAsync(`tmip/${NET}/mlr/ap-steer`, 'steer', {
      qos: 1,
      properties: { ...props, responseTopic: `tmip/${NET}/cn/victim`, correlationData: Buffer.from('9') },
    });
    // Made-up topics each log once, but all together no more than the burst a minute.
    for (let i = 0; i < 40; i++) await rogue.publishAsync(`tmip/${NET}/mlr/flood-${i}`, 'x', { qos: 1 });
    await rogue.publishAsync(`tmip/${NET}/mlr/ap-junk`, 'not json at all', { qos: 1, properties: props });
    // To the CN too: an oversized message on its inbox.
    await rogue.publishAsync(`tmip/${NET}/cn/ap-junk`, Buffer.alloc(MQTT_MAX_PAYLOAD + 1, 0x42), { qos: 1, properties: props });
    await until(
      'the garbage JSON to arrive (it is the RPC layer that rejects it)',
      () => received.some((p) => p.toString() === 'not json at all'),
      3000,
    );
    await until(
      'the CN to log its drop',
      () => logs.slice(before).some((l) => /cn\/ap-junk: dropped a message of 262145 bytes/.test(l)),
      3000,
    );
    const mine = logs.slice(before);
    assert.equal(mine.filter((l) => /mlr\/ap-junk: dropped a message of 262145 bytes/.test(l)).length, 1, mine.join('\n'));
    assert.equal(
      mine.filter((l) => /ap-nosession: dropped a message without a valid tmip-session/.test(l)).length,
      1,
      'logged once, not five times',
    );
    assert.equal(mine.filter((l) => /ap-longsession: dropped a message without a valid tmip-session/.test(l)).length, 1, mine.join('\n'));
    assert.equal(mine.filter((l) => /ap-many: dropped a message: already \d+ channels of CN 'ap-many'/.test(l)).length, 1, mine.join('\n'));
    assert.ok(mine.some((l) => /mlr\/: dropped a message: the CN name is empty/.test(l)));
    assert.ok(
      mine.some((l) => /mlr\/ap-steer: ignored response topic ".*\/cn\/victim"/.test(l)),
      mine.join('\n'),
    );
    const flood = mine.filter((l) => /flood-/.test(l)).length;
    assert.ok(flood > 0 && flood < 32, `${flood} lines for 40 made-up topics`);
    assert.ok(mine.some((l) => /status\/ap-junk: ignored a malformed presence/.test(l)));
    assert.ok(!received.some((p) => p.length > MQTT_MAX_PAYLOAD));
    assert.equal(
      m.channels.filter((c) => c.peer !== 'mqtt:ap-many' && c.peer !== 'mqtt:ap-steer').length,
      1,
      'no channel for a nameless or session-less topic, or a bad session id',
    );
    assert.equal(m.channels.filter((c) => c.peer === 'mqtt:ap-many').length, MQTT_MAX_SESSIONS_PER_CN);
    assert.equal(mch.peer, 'mqtt:ap-junk');
    // A request on the CN's inbox that names another response topic: the CN still replies on its own.
    const steered = nextMessage(cn, 'the steering request at the CN');
    const at = seen.length;
    await rogue.publishAsync(`tmip/${NET}/cn/ap-junk`, '{"id":5}', {
      qos: 1,
      properties: { ...props, responseTopic: `tmip/${NET}/mlr/victim`, correlationData: Buffer.from('5') },
    });
    await steered;
    cn.send(Buffer.from('{"re":5}'), { re: 5 });
    await until('the sniffer to see the reply', () => seen.slice(at).some((x) => x.payload.toString() === '{"re":5}'), 3000);
    assert.deepEqual(
      seen
        .slice(at)
        .filter((x) => x.payload.toString() === '{"re":5}')
        .map((x) => x.topic),
      [`tmip/${NET}/mlr/ap-junk`],
    );
    // Still working both ways.
    const back = nextMessage(cn, 'a reply after the junk');
    mch.send(Buffer.from('{"ok":true}'), { re: 1 });
    assert.equal((await back).toString(), '{"ok":true}');
    await m.listener.close();
  });

  it("a probe (tmip-cn -E) beside the CN's connection disturbs neither it nor its presence", async () => {
    const m = await mlrSide();
    const cn = await cnSide('ap-probe');
    cn.send(Buffer.from('{}'), { id: 1 });
    await until('the MLR channel', () => m.channels.length === 1, 3000);
    const probe = await connectMqtt(address, { networkName: NET, cnName: 'ap-probe', username: 'ap-probe', probe: true });
    probe.send(Buffer.from('{}'), { id: 1 });
    await until('a second MLR channel for the probe', () => m.channels.length === 2, 3000);
    const toProbe = nextMessage(probe, 'the reply at the probe');
    const toCn: Buffer[] = [];
    cn.onMessage((p) => toCn.push(p));
    m.channels[1]!.send(Buffer.from('"for the probe"'), { re: 1 });
    assert.equal((await toProbe).toString(), '"for the probe"');
    const probeGone = closed(m.channels[1]!, "the probe's MLR channel to close");
    probe.close('done');
    assert.match(await probeGone, /offline/);
    m.channels[0]!.send(Buffer.from('"for the CN"'), { re: 1 });
    await until('the reply at the CN', () => toCn.length > 0, 3000);
    assert.deepEqual(toCn.map(String), ['"for the CN"'], "the CN never saw the probe's reply");
    assert.equal(cn.closed, false);
    const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
    closers.push(() => late.end(true));
    const retained = new Promise<Buffer>((resolve) => late.on('message', (_t, payload) => resolve(payload)));
    await late.subscribeAsync(`tmip/${NET}/status/ap-probe`, { qos: 1 });
    assert.equal((await within(retained, 3000, 'the retained presence')).toString(), 'online', 'the probe left the presence alone');
    await m.listener.close();
  });

  it('an MLR that starts while a CN is online tells it to re-bind (retained presence)', async () => {
    const cn = await cnSide('ap-early');
    const cnClosed = closed(cn, 'the CN channel to close');
    const m = await mlrSide();
    assert.equal(await cnClosed, 'closed by the MLR');
    await m.listener.close();
  });

  it('a CN binds to the MLR over MQTT (RpcPeer, MlrService)', async () => {
    const mlr = await startMlr(
      { networkName: NET, offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['vxlan'] },
      { listen: (onChannel) => serveMqtt(address, { networkName: NET, username: 'tmip-mlr', log }, onChannel), log },
    );
    closers.push(() => mlr.close());
    const peer = new RpcPeer(await cnSide('ap-bind'));
    const bind: RequestBody<'bind'> = {
      network: NET,
      cn: { name: 'ap-bind', addr: ip('10.200.0.11') },
      tunnels: ['vxlan'],
      pools: [{ network: ip('10.1.0.0'), prefix: 24, first: ip('10.1.0.0'), last: ip('10.1.0.255'), exclude: [ip('10.1.0.1')] }],
    };
    const reply = await peer.request('bind', bind);
    assert.ok(reply);
    const pong = await peer.request('ping', {});
    assert.ok(pong.time > 0);
    peer.close();
    await mlr.close();
  });

  it('an MLR whose broker is not up yet starts anyway and connects when it comes', async () => {
    const late = new Broker(fs.mkdtempSync(path.join(dir, 'late-')), await freePort());
    closers.push(() => late.kill());
    const lateAddress: MlrAddress = { scheme: 'mqtt', host: '127.0.0.1', port: late.port };
    const channels: MessageChannel[] = [];
    const mark = logs.length;
    const l = await serveMqtt(lateAddress, { networkName: NET, username: 'tmip-mlr', log, minBackoffMs: 100, maxBackoffMs: 200 }, (ch) =>
      channels.push(ch),
    );
    closers.push(() => l.close());
    assert.ok(
      logs.slice(mark).some((m) => /retrying/.test(m)),
      logs.slice(mark).join('\n'),
    );
    await late.start();
    await until('the MLR to connect', () => logs.slice(mark).some((m) => /connected to the MQTT broker/.test(m)), 5000, 20);
    const cn = await connectMqtt(lateAddress, { networkName: NET, cnName: 'ap-late', username: 'ap-late' });
    closers.push(() => cn.close());
    cn.send(Buffer.from('{}'), { id: 1 });
    await until('the MLR channel', () => channels.length === 1, 3000);
    await l.close();
    await late.kill();
  });

  it('both sides recover when the broker is killed and started again on the same port', async () => {
    const m = await mlrSide({ minBackoffMs: 100 });
    const cn = await cnSide('ap-restart');
    cn.send(Buffer.from('{}'), { id: 1 });
    await until('the MLR channel', () => m.channels.length === 1, 3000);
    const mclosed = closed(m.channels[0]!, 'the MLR channel to close');
    const cnClosed = closed(cn, 'the CN channel to close');
    const mark = logs.length;
    await broker.kill();
    assert.match(await cnClosed, /lost the MQTT broker/);
    assert.match(await mclosed, /lost the MQTT broker/);
    await assert.rejects(connectMqtt(address, { networkName: NET, cnName: 'ap-restart', username: 'ap-restart', connectTimeoutMs: 1000 }));
    await broker.start();
    await until('the MLR to reconnect', () => logs.slice(mark).some((l) => /connected to the MQTT broker/.test(l)), 5000, 50);
    // What MlrLink does: connect again (bounded retries) and send.
    let cn2: MqttCnChannel | undefined;
    await until(
      'the CN to reconnect',
      async () => {
        cn2 = await cnSide('ap-restart').catch(() => undefined);
        return cn2 !== undefined;
      },
      5000,
      100,
    );
    // The MLR may subscribe a moment after the CN is back: resend until it has a channel (bounded).
    await until(
      'the MLR to open a channel for the new session',
      () => {
        if (m.channels.length < 2) cn2!.send(Buffer.from('{}'), { id: 2 });
        return m.channels.length === 2;
      },
      5000,
      200,
    );
    const back = nextMessage(cn2!, 'a reply after the restart');
    m.channels[1]!.send(Buffer.from('{"re":2}'), { re: 2 });
    assert.equal((await back).toString(), '{"re":2}');
    await m.listener.close();
    sniffer.end(true);
  });
});

// The shipped broker config and ACL (files/etc/mosquitto), with only the listener (a free loopback
// port), the certificate paths and the password file swapped for test ones: mqtts:// with the CA
// check, user names and passwords, and the ACL confining a CN to its own topics.
const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => fs.existsSync(p));
const PASSWD = ['/usr/bin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd'].find((p) => fs.existsSync(p));
const shippedSkip = skip || (!OPENSSL ? 'openssl is not installed' : !PASSWD ? 'mosquitto_passwd is not installed' : false);
const FILES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../files/etc/mosquitto');

describe('the shipped mosquitto config and ACL (mqtts, passwords, per-CN topics)', { skip: shippedSkip, timeout: 60_000 }, () => {
  let dir: string;
  let broker: Broker;
  let address: MlrAddress;
  const logs: string[] = [];
  const log = (_level: number, m: string) => logs.push(m);
  const closers: (() => unknown)[] = [];
  const NET2 = 'campus';

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-mqtts-'));
    fs.chmodSync(dir, 0o755); // mosquitto started as root reads its files as user mosquitto
    const ssl = (args: string[]) => {
      const r = spawnSync(OPENSSL!, args, { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    ssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=tmip test CA',
    ]);
    ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'broker.key', '-out', 'broker.csr', '-subj', '/CN=127.0.0.1']);
    fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl([
      'x509',
      '-req',
      '-in',
      'broker.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'broker.pem',
      '-days',
      '2',
      '-extfile',
      'ext',
    ]);
    const pw = path.join(dir, 'passwd');
    fs.writeFileSync(pw, '');
    for (const [user, pass] of [
      ['tmip-mlr', 'mlr-secret'],
      ['Library 2nd', 'cn-secret'],
      ['ap2', 'ap2-secret'],
    ] as const) {
      const r = spawnSync(PASSWD!, ['-b', pw, user, pass], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
    for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
    const port = await freePort();
    broker = new Broker(dir, port);
    const conf = fs
      .readFileSync(path.join(FILES, 'tmip.conf'), 'utf8')
      .replace(/^listener 8883$/m, `listener ${port} 127.0.0.1`)
      .replaceAll('/etc/mosquitto/certs/', `${dir}/`)
      .replace(/^password_file .*$/m, `password_file ${pw}`)
      .replace(/^acl_file .*$/m, `acl_file ${path.join(FILES, 'tmip.acl')}`);
    assert.match(conf, new RegExp(`^listener ${port} 127\\.0\\.0\\.1$`, 'm'), 'the shipped listener line was found and moved to loopback');
    fs.writeFileSync(broker.conf, conf);
    await broker.start();
    address = { scheme: 'mqtts', host: '127.0.0.1', port };
  });

  after(async () => {
    for (const c of closers.reverse()) {
      try {
        await within(Promise.resolve(c()), 3000, 'a test connection to close');
      } catch {
        /* tearing down */
      }
    }
    await broker?.kill();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves a CN over mqtts with passwords; the ACL keeps a CN to its own topics', async () => {
    const ca = path.join(dir, 'ca.pem');
    const channels: MessageChannel[] = [];
    const l = await serveMqtt(address, { networkName: NET2, username: 'tmip-mlr', password: 'mlr-secret', ca, log }, (ch) =>
      channels.push(ch),
    );
    closers.push(() => l.close());
    await assert.rejects(
      connectMqtt(address, { networkName: NET2, cnName: 'Library 2nd', username: 'Library 2nd', password: 'wrong', tls: { ca } }),
      /MQTT broker mqtts:\/\/127\.0\.0\.1/,
      'a wrong password is refused',
    );
    await assert.rejects(
      serveMqtt(address, { networkName: 'other', username: 'tmip-mlr', password: 'wrong', ca, log }, () => {}),
      /Connection refused/,
      'the MLR does not start with an account the broker refuses',
    );
    await assert.rejects(
      connectMqtt(address, { networkName: NET2, cnName: 'Library 2nd', username: 'Library 2nd', password: 'cn-secret' }),
      'a broker certificate not signed by a CA we trust is refused',
    );
    const cn = await connectMqtt(address, {
      networkName: NET2,
      cnName: 'Library 2nd',
      username: 'Library 2nd',
      password: 'cn-secret',
      tls: { ca },
      log,
    });
    closers.push(() => cn.close());
    cn.send(Buffer.from('{"id":1}'), { id: 1 });
    await until('the MLR channel', () => channels.length === 1, 3000);
    const back = new Promise<Buffer>((resolve) => cn.onMessage(resolve));
    channels[0]!.send(Buffer.from('{"re":1}'), { re: 1 });
    assert.equal((await within(back, 3000, 'the reply')).toString(), '{"re":1}');

    // ap2 cannot speak for 'Library 2nd' nor read its inbox.
    const ap2 = await mqtt.connectAsync(`mqtts://127.0.0.1:${address.port}`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      username: 'ap2',
      password: 'ap2-secret',
      ca: fs.readFileSync(ca),
    });
    ap2.on('error', () => {});
    closers.push(() => ap2.end(true));
    await ap2
      .publishAsync(`tmip/${NET2}/mlr/Library 2nd`, 'forged', { qos: 1, properties: { userProperties: { 'tmip-session': cn.session } } })
      .catch(() => null);
    await ap2.publishAsync(`tmip/${NET2}/mlr/ap2`, '{"id":1}', { qos: 1, properties: { userProperties: { 'tmip-session': 'x' } } });
    await until("ap2's own message to reach the MLR", () => channels.length === 2, 3000);
    assert.equal(channels[1]!.peer, 'mqtt:ap2');
    assert.equal(channels.length, 2, 'the forged message opened nothing');
    // mosquitto grants any subscription and applies the ACL as it delivers: ap2 subscribed to both
    // inboxes gets its own message only (the MLR publishes in order, so the other would come first).
    const got: string[] = [];
    ap2.on('message', (topic) => got.push(topic));
    await ap2.subscribeAsync([`tmip/${NET2}/cn/Library 2nd`, `tmip/${NET2}/cn/ap2`], { qos: 1 });
    const cnGot = new Promise<Buffer>((resolve) => cn.onMessage(resolve));
    channels[0]!.send(Buffer.from('"for Library 2nd"'));
    channels[1]!.send(Buffer.from('"for ap2"'));
    await within(cnGot, 3000, "Library 2nd's message");
    await until('ap2 to get its own message', () => got.includes(`tmip/${NET2}/cn/ap2`), 3000);
    assert.deepEqual(got, [`tmip/${NET2}/cn/ap2`], "ap2 never read Library 2nd's inbox");
    await l.close();
  });
});
