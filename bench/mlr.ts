// SPDX-License-Identifier: GPL-2.0-only
// bench/mlr — handovers per second the MLR completes, and their latency, at stepped offered rates, with
// --bindings stations (default 100,000) over --cns simulated CNs (default 500), each on its own TCP
// connection from its own loopback address. Not a test.
//
// The MLR is the real one (bench/mlr-server.ts, forked: mlr/mlr.ts with MLRP over TCP, authentication
// on, the journal with fdatasync on a state file under --dir, default the OS temp dir; the filesystem
// is printed). This process is the 500 CNs: lean ones (they sign what they send with the CN's key as a
// CN does, but they do not check what the MLR signs, and they answer prepare/commit/abort/remove/
// probe/page/ping at once), so that the generator costs less per message than the MLR. They announce
// FEATURES.inlineCommit at bind, as a real CN does, so the new CN's commit rides in the `seen` reply
// (the MLR→CN requests per move printed count the rest). Each CN asks to move a station bound at
// another CN to itself with `seen` (via `assoc`, as a CN does on a hostapd association; --arp F makes
// that share of them `arp` detections, which the MLR checks with a presence `probe` at the previous
// CN). Open loop: requests go out at the offered rate whatever comes back; a
// station is not asked to move again while its move is in flight.
// Per step: completed moves per second, latency from the request sent to its reply (p50/p99/max of
// the completed ones), `busy` answers (the MLR's backpressure), other failures, the MLR's RSS (and its
// peak so far) and JS heap, its longest GC pause and event-loop delay, its CPU use, its journal
// appends (each one fdatasync) per move, and the generator's own CPU use (near 100 % means the
// generator, not the MLR, set the pace).
// References in the same run: the same connections and RPC layer (framing, JSON, authentication)
// answered by a handler that replies at once (the transport's ceiling here; closed loop), and, when
// mosquitto is installed, the QoS 1 publish round trip of as many MQTT clients through it (closed loop).
//   npm run compile && node build/bench/mlr.js [--bindings 100000] [--cns 500] [--rates 2000,5000,10000,15000,20000]
//        [--seconds 4] [--arp 0] [--dir /tmp] [--profile DIR (a CPU profile of the MLR during the steps)]
//   node build/bench/mlr.js --echo-only [--cns 500] [--profile DIR]: only the echo reference (quick; its profile)
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
import { encodeRequestBody, FEATURES, SCHEMA_VERSION, type Envelope, type RequestBody, type RequestType } from '../src/core/messages.js';
import { canonicalJson } from '../src/core/canonical-json.js';
import { MacKey } from '../src/proto/auth.js';
import { MAX_WORK } from '../src/mlr/service.js';
import { encodeFrame, FrameDecoder } from '../src/proto/mlrp.js';
import { benchSecret, cnAddr, cnName, cnPool, homeOf, intArg, percentile, processMemory, stationMac, textArg } from './synthetic.js';

const BINDINGS = intArg('bindings', 100_000, 1);
const CNS = intArg('cns', 500, 2, 2000);
const SECONDS = intArg('seconds', 4, 1, 600);
const RATES = textArg('rates', '2000,5000,10000,15000,20000')
  .split(',')
  .map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1 || v > 1_000_000) throw new Error('--rates wants integers 1..1000000, comma-separated');
    return v;
  });
const ARP_SHARE = Number(textArg('arp', '0'));
if (!(ARP_SHARE >= 0 && ARP_SHARE <= 1)) throw new Error('--arp wants a share 0..1');
const DIR = textArg('dir', os.tmpdir());
/** `--profile DIR`: the MLR process writes a CPU profile of the steps there (not of its start and the binds). */
const PROFILE = textArg('profile', '');
/** `--echo-only`: run only the echo reference (CPU per request of the RPC layer), with its profile under --profile. */
const ECHO_ONLY = process.argv.includes('--echo-only');
/** How long a step's requests still outstanding at its end are waited for. */
const DRAIN_MS = 5000;
/** Requests each connection keeps outstanding in the closed-loop references. */
const WINDOW = 4;
const REFERENCE_MS = 3000;

const here = path.dirname(fileURLToPath(import.meta.url));
const write = (s: string): void => void process.stdout.write(s);

interface ServerReady {
  ready: true;
  port: number;
  state: string;
  fs: string;
}
interface ServerStats {
  rssMb: number;
  heapMb: number;
  gcMaxMs: number;
  gcCount: number;
  gcTotalMs: number;
  loopMaxMs: number;
  loopP99Ms: number;
  cpuMs: number;
  done: number;
  busy: number;
  rolledBack: number;
  /** Journal appends (each one write and one fdatasync) since the last stats. */
  appends: number;
  /** The MLR's work budget in use (of MAX_WORK), mean over the step, and the share of the step it was all in use. */
  workMean: number;
  workFullShare: number;
}

/** Fork bench/mlr-server in `mode`; resolves once it listens. */
function startServer(mode: 'mlr' | 'echo'): Promise<{ child: ChildProcess; ready: ServerReady }> {
  const args = [
    '--mode',
    mode,
    '--bindings',
    String(BINDINGS),
    '--cns',
    String(CNS),
    '--dir',
    DIR,
    ...(PROFILE ? ['--profile', PROFILE] : []),
  ];
  const child = fork(path.join(here, 'mlr-server.js'), args, {
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  // The MLR's error lines (a flood of them under overload): counted, the first few kept for the report.
  let partial = '';
  child.stderr?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      mlrErrors.count++;
      if (mlrErrors.first.length < 3) mlrErrors.first.push(`${mode}: ${l}`);
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${mode} server did not start within 120 s`)), 120_000);
    child.once('exit', (code) => reject(new Error(`the ${mode} server exited with ${code}`)));
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve({ child, ready: m as ServerReady });
    });
  });
}

function serverStats(child: ChildProcess): Promise<ServerStats> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as ServerStats));
    child.send('stats');
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

/** Error lines the MLR processes wrote (stderr), in all. */
const mlrErrors = { count: 0, first: [] as string[] };

/** What a simulated CN's request is waiting for. */
interface Outstanding {
  station: number;
  to: number;
  sentAt: number;
  step: Step;
}

interface Step {
  rate: number;
  sent: number;
  moved: number;
  busy: number;
  failed: number;
  outstanding: number;
  latencies: number[];
  /** Requests of the MLR the CNs answered during the step. */
  served: number;
  failure?: string;
}

/**
 * The generator's own signer: the envelope and HMAC proto/auth.ts defines (the same canonical bytes,
 * checked by the MLR as any CN's), written straight to JSON text, with nonces from a random prefix
 * and a counter (unique within the run), so that signing costs the generator little.
 */
class Signer {
  private static readonly prefix = randomBytes(8).toString('hex');
  private static counter = 0;
  private readonly key: MacKey;

  constructor(
    private readonly name: string,
    secretHex: string,
  ) {
    this.key = new MacKey(Buffer.from(secretHex, 'hex'));
  }

  /** One framed, signed message; `body` is its JSON text, canonical (sorted keys, no white space). */
  frame(type: string, id: number | null, re: number | null, body: string): Buffer {
    const ts = Date.now();
    const nonce = Signer.prefix + (Signer.counter++).toString(16).padStart(16, '0');
    const head = JSON.stringify([SCHEMA_VERSION, type, id, re, this.name, ts, nonce]);
    const auth = this.key.macHex(`MLRP-HMAC-1\ncn\n${head}\n${body}`);
    const ref = id !== null ? `"id":${id}` : `"re":${re}`;
    const json = `{"v":${SCHEMA_VERSION},"type":"${type}",${ref},"from":"${this.name}","ts":${ts},"nonce":"${nonce}","auth":"${auth}","body":${body}}`;
    return encodeFrame(Buffer.from(json, 'utf8'));
  }
}

/** One simulated CN: one TCP connection, signs what it sends, answers the MLR's requests at once. */
class SimCn {
  /** Requests of the MLR answered, by all simulated CNs (prepare, commit, probe, ...). */
  static served = 0;
  private readonly decoder = new FrameDecoder();
  private readonly out: Buffer[] = [];
  private nextId = 1;
  readonly waiting = new Map<number, Outstanding>();
  private bindWait: { id: number; resolve: () => void; reject: (e: Error) => void } | undefined;
  private flushQueued = false;

  constructor(
    readonly index: number,
    private readonly socket: net.Socket,
    private readonly signer: Signer,
    private readonly onReply: (cn: SimCn, o: Outstanding, env: Envelope) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      const frames = this.decoder.push(chunk);
      if (!frames.ok) throw new Error(`cn${index}: ${frames.error}`);
      for (const f of frames.value) this.receive(JSON.parse(f.toString('utf8')) as Envelope);
      this.flush();
    });
    socket.on('error', () => undefined);
  }

  static connect(index: number, port: number, onReply: SimCn['onReply']): Promise<SimCn> {
    // Each CN from its own loopback address: the MLR's listener takes at most 8 connections per source.
    const localAddress = `127.${1 + Math.floor(index / 62_500)}.${Math.floor(index / 250) % 250}.${(index % 250) + 1}`;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new SimCn(index, socket, new Signer(cnName(index), benchSecret(index)), onReply));
      });
    });
  }

  bind(): Promise<void> {
    const id = this.request('bind', {
      network: 'bench',
      cn: { name: cnName(this.index), addr: cnAddr(this.index) },
      tunnels: ['vxlan'],
      pools: [cnPool(this.index)],
      // As a real CN (cn/daemon.ts): the MLR may then put this CN's commit in its `seen` reply.
      features: [FEATURES.inlineCommit],
    });
    this.flush();
    return new Promise((resolve, reject) => (this.bindWait = { id, resolve, reject }));
  }

  request<T extends RequestType>(type: T, body: RequestBody<T>): number {
    const id = this.nextId++;
    this.out.push(this.signer.frame(type, id, null, canonicalJson(encodeRequestBody(type, body))!));
    return id;
  }

  /** Send what is queued on the next turn (several requests of one tick share a write). */
  flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flush());
  }

  close(): void {
    this.socket.destroy();
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.out.length === 0) return;
    this.socket.write(this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out));
    this.out.length = 0;
  }

  private receive(env: Envelope): void {
    if (env.re !== undefined) {
      if (this.bindWait?.id === env.re) {
        const w = this.bindWait;
        this.bindWait = undefined;
        if (env.type === 'reply') w.resolve();
        else w.reject(new Error(`bind of cn${this.index} refused: ${JSON.stringify(env.body)}`));
        return;
      }
      const o = this.waiting.get(env.re);
      if (o) {
        this.waiting.delete(env.re);
        this.onReply(this, o, env);
      }
      return;
    }
    if (env.id === undefined) return;
    SimCn.served++;
    const body = env.type === 'probe' ? '{"present":"no"}' : env.type === 'ping' ? `{"time":${Date.now()}}` : '{}';
    this.out.push(this.signer.frame('reply', null, env.id, body));
  }
}

async function connectAll(port: number, onReply: SimCn['onReply']): Promise<SimCn[]> {
  const cns: SimCn[] = [];
  for (let i = 0; i < CNS; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, CNS - i) }, (_, k) => SimCn.connect(i + k, port, onReply)));
    cns.push(...batch);
  }
  for (let i = 0; i < cns.length; i += 50) await Promise.all(cns.slice(i, i + 50).map((c) => c.bind()));
  return cns;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface StepResult {
  step: Step;
  secs: number;
  stats: ServerStats;
  mem: { rss: number; hwm: number };
  genCpu: number;
}

/** The MLR under stepped offered rates. */
async function runMlr(): Promise<{ results: StepResult[]; ready: ServerReady }> {
  const t0 = performance.now();
  const { child, ready } = await startServer('mlr');
  const started = performance.now();
  const current = new Int32Array(BINDINGS);
  for (let n = 0; n < BINDINGS; n++) current[n] = homeOf(n, CNS).cn;
  const inFlight = new Uint8Array(BINDINGS);
  const onReply = (_cn: SimCn, o: Outstanding, env: Envelope): void => {
    inFlight[o.station] = 0;
    const s = o.step;
    s.outstanding--;
    if (env.type === 'reply' && (env.body as { outcome?: string }).outcome === 'moved') {
      s.moved++;
      s.latencies.push(performance.now() - o.sentAt);
      current[o.station] = o.to;
    } else if (env.type === 'error' && (env.body as { code?: string }).code === 'busy') {
      s.busy++;
    } else {
      s.failed++;
      s.failure ??= JSON.stringify(env.body).slice(0, 200);
    }
  };
  const cns = await connectAll(ready.port, onReply);
  write(
    `MLR up in ${((started - t0) / 1000).toFixed(1)} s (fill, snapshot, load of ${BINDINGS} bindings); ${CNS} CNs bound in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  await serverStats(child);
  const results: StepResult[] = [];
  let rnd = 12345;
  const random = (n: number): number => {
    rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
    return Math.floor((rnd / 2 ** 32) * n);
  };
  child.send('profile-start');
  try {
    for (const rate of RATES) {
      const step: Step = { rate, sent: 0, moved: 0, busy: 0, failed: 0, outstanding: 0, latencies: [], served: -SimCn.served };
      const genCpu0 = process.cpuUsage();
      const start = performance.now();
      const end = start + SECONDS * 1000;
      while (performance.now() < end) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        for (; step.sent < due; step.sent++) {
          let n = random(BINDINGS);
          for (let tries = 0; inFlight[n] === 1 && tries < 20; tries++) n = random(BINDINGS);
          if (inFlight[n] === 1) continue;
          let to = random(CNS - 1);
          if (to >= current[n]!) to++;
          const cn = cns[to]!;
          const arp = ARP_SHARE > 0 && random(1_000_000) < ARP_SHARE * 1_000_000;
          const id = cn.request('seen', {
            mac: stationMac(n),
            via: arp ? 'arp' : 'assoc',
            leaseTime: 3600,
            ...(arp ? { ip: homeOf(n, CNS).cell + 1 } : {}),
          });
          cn.waiting.set(id, { station: n, to, sentAt: performance.now(), step });
          inFlight[n] = 1;
          step.outstanding++;
          cn.flushSoon();
        }
        await sleep(1);
      }
      const secs = (performance.now() - start) / 1000;
      const drainEnd = performance.now() + DRAIN_MS;
      while (step.outstanding > 0 && performance.now() < drainEnd) await sleep(5);
      const used = process.cpuUsage(genCpu0);
      step.served += SimCn.served;
      const stats = await serverStats(child);
      const mem = processMemory(child.pid!);
      results.push({ step, secs, stats, mem, genCpu: (used.user + used.system) / 1000 / (performance.now() - start) });
      write(
        `  offered ${rate}/s: ${Math.round(step.moved / secs)} moved/s, p99 ${percentile(step.latencies, 99).toFixed(1)} ms, busy ${step.busy}, MLR RSS ${mem.rss.toFixed(0)} MB\n`,
      );
      // Outstanding ones still answer later: their stations stay marked in flight until then.
      await sleep(500);
    }
    if (PROFILE) {
      const done = new Promise<void>((resolve) => child.once('message', () => resolve()));
      child.send('profile-stop');
      await done;
    }
  } finally {
    for (const c of cns) c.close();
    await stopServer(child);
  }
  return { results, ready };
}

/** Closed loop: every connection keeps WINDOW requests outstanding for REFERENCE_MS; replies per second. */
async function runEcho(): Promise<{ perSecond: number; p50: number; p99: number; cpu: number; cpuPerRequestUs: number }> {
  const { child, ready } = await startServer('echo');
  let counting = false;
  let replies = 0;
  const lat: number[] = [];
  const step: Step = { rate: 0, sent: 0, moved: 0, busy: 0, failed: 0, outstanding: 0, latencies: [], served: 0 };
  const again = (cn: SimCn): void => {
    const id = cn.request('seen', { mac: stationMac(cn.index), via: 'assoc' });
    cn.waiting.set(id, { station: 0, to: 0, sentAt: performance.now(), step });
    cn.flushSoon();
  };
  const cns = await connectAll(ready.port, (cn, o) => {
    if (!counting) return;
    replies++;
    lat.push(performance.now() - o.sentAt);
    again(cn);
  });
  await serverStats(child);
  if (ECHO_ONLY) child.send('profile-start');
  counting = true;
  const t = performance.now();
  for (const c of cns) for (let w = 0; w < WINDOW; w++) again(c);
  await sleep(REFERENCE_MS);
  counting = false;
  const secs = (performance.now() - t) / 1000;
  const stats = await serverStats(child);
  if (ECHO_ONLY && PROFILE) {
    const done = new Promise<void>((resolve) => child.once('message', () => resolve()));
    child.send('profile-stop');
    await done;
  }
  for (const c of cns) c.close();
  await stopServer(child);
  return {
    perSecond: replies / secs,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    cpu: stats.cpuMs / 1000 / secs,
    cpuPerRequestUs: (stats.cpuMs * 1000) / Math.max(1, replies),
  };
}

/** mosquitto on a free loopback port; QoS 1 publish -> delivery back to the same client, closed loop. */
async function runMosquitto(): Promise<{ perSecond: number; p50: number; p99: number } | string> {
  const which = spawn('sh', ['-c', 'command -v mosquitto || ls /usr/sbin/mosquitto'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const bin = await new Promise<string>((resolve) => {
    let s = '';
    which.stdout.on('data', (d: Buffer) => (s += d.toString()));
    which.on('close', () => resolve(s.trim().split('\n')[0] ?? ''));
  });
  if (!bin) return 'mosquitto not installed (apt-get install mosquitto); skipped';
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-bench-mosq-'));
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 100000\n`,
  );
  const broker = spawn(bin, ['-c', conf], { stdio: 'ignore' });
  const clients: mqtt.MqttClient[] = [];
  try {
    await sleep(300);
    const lat: number[] = [];
    let counting = false;
    let count = 0;
    const sentAt: number[][] = [];
    for (let i = 0; i < CNS; i += 50) {
      const batch = await Promise.all(
        Array.from(
          { length: Math.min(50, CNS - i) },
          (_, k) =>
            new Promise<mqtt.MqttClient>((resolve, reject) => {
              const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: `bench${i + k}`, reconnectPeriod: 0, protocolVersion: 5 });
              c.once('connect', () => resolve(c));
              c.once('error', reject);
            }),
        ),
      );
      clients.push(...batch);
    }
    const publish = (i: number): void => {
      sentAt[i]!.push(performance.now());
      clients[i]!.publish(`bench/${i}`, 'x'.repeat(200), { qos: 1 });
    };
    await Promise.all(
      clients.map(
        (c, i) =>
          new Promise<void>((resolve, reject) => {
            sentAt[i] = [];
            c.on('message', () => {
              const s = sentAt[i]!.shift();
              if (!counting) return;
              count++;
              if (s !== undefined) lat.push(performance.now() - s);
              publish(i);
            });
            c.subscribe(`bench/${i}`, { qos: 1 }, (e) => (e ? reject(e) : resolve()));
          }),
      ),
    );
    counting = true;
    const t = performance.now();
    for (let i = 0; i < clients.length; i++) for (let w = 0; w < WINDOW; w++) publish(i);
    await sleep(REFERENCE_MS);
    counting = false;
    const secs = (performance.now() - t) / 1000;
    return { perSecond: count / secs, p50: percentile(lat, 50), p99: percentile(lat, 99) };
  } finally {
    for (const c of clients) c.end(true);
    broker.kill('SIGTERM');
    await new Promise((r) => broker.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  if (ECHO_ONLY) {
    const echo = await runEcho();
    write(
      `echo (${CNS} connections, ${WINDOW} outstanding each): ${Math.round(echo.perSecond)} requests/s, p50 ${echo.p50.toFixed(1)} ms, ` +
        `p99 ${echo.p99.toFixed(1)} ms, server CPU ${Math.round(echo.cpu * 100)} %, ${Math.round(echo.cpuPerRequestUs)} µs per request\n`,
    );
    return;
  }
  write(
    `bench/mlr: node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}; ${BINDINGS} bindings, ${CNS} CNs, ` +
      `${SECONDS} s per step, ${Math.round(ARP_SHARE * 100)} % arp-detected (probed) moves\n`,
  );
  const { results, ready } = await runMlr();
  const echo = await runEcho();
  const mosq = await runMosquitto();
  write(`\nMLR state: ${ready.state ? `${ready.state}/mlr.state` : '?'} on ${ready.fs} (journal with fdatasync; removed after the run)\n`);
  write(
    '| offered/s | moved/s | p50 | p99 | max | busy | failed | late | MLR→CN requests per move | fdatasyncs per move | MLR RSS (peak) | JS heap | GC max | loop delay max | work budget in use (mean; full) | MLR CPU | MLR CPU per move | generator CPU |\n' +
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n',
  );
  let best = 0;
  for (const { step, secs, stats, mem, genCpu } of results) {
    const moved = step.moved / secs;
    if (moved > best) best = moved;
    const l = step.latencies;
    write(
      `| ${step.rate} | ${Math.round(moved)} | ${percentile(l, 50).toFixed(1)} ms | ${percentile(l, 99).toFixed(1)} ms | ${percentile(l, 100).toFixed(1)} ms | ` +
        `${step.busy} | ${step.failed} | ${step.outstanding} | ${(step.served / Math.max(1, step.moved)).toFixed(1)} | ${(stats.appends / Math.max(1, step.moved)).toFixed(2)} | ${mem.rss.toFixed(0)} (${mem.hwm.toFixed(0)}) MB | ${stats.heapMb.toFixed(0)} MB | ` +
        `${stats.gcMaxMs.toFixed(1)} ms | ${stats.loopMaxMs.toFixed(1)} ms | ${Math.round(stats.workMean)} of ${MAX_WORK}; ${Math.round(stats.workFullShare * 100)} % | ${Math.round((stats.cpuMs / 1000 / (secs + 0.5)) * 100)} % | ${Math.round((stats.cpuMs * 1000) / Math.max(1, step.moved + step.busy / 5))} µs | ${Math.round(genCpu * 100)} % |\n`,
    );
  }
  for (const { step } of results) if (step.failure) write(`offered ${step.rate}/s: first failure: ${step.failure}\n`);
  write(
    `\nreference, same ${CNS} connections, RPC framing and authentication, a handler that answers at once (closed loop, ${WINDOW} outstanding each): ` +
      `${Math.round(echo.perSecond)} requests/s, p50 ${echo.p50.toFixed(1)} ms, p99 ${echo.p99.toFixed(1)} ms (server CPU ${Math.round(echo.cpu * 100)} %)\n`,
  );
  write(`ratio best moved/s / echo requests/s: ${(best / echo.perSecond).toFixed(3)}\n`);
  write(
    `echo server CPU per request: ${Math.round(echo.cpuPerRequestUs)} µs (MLR CPU per move counts a busy answer as 1/5 of a move; ` +
      `CPU time, so less sensitive than rates to other load on the machine)\n`,
  );
  if (typeof mosq === 'string') write(`mosquitto: ${mosq}\n`);
  else {
    write(
      `reference, mosquitto on 127.0.0.1, ${CNS} MQTT 5 clients, QoS 1 publish round trip (closed loop, ${WINDOW} outstanding each): ` +
        `${Math.round(mosq.perSecond)} messages/s, p50 ${mosq.p50.toFixed(1)} ms, p99 ${mosq.p99.toFixed(1)} ms\n`,
    );
    write(`ratio best moved/s / mosquitto round trips/s: ${(best / mosq.perSecond).toFixed(3)}\n`);
  }
  write(`MLR error log lines: ${mlrErrors.count}${mlrErrors.first.length ? `; the first:\n  ${mlrErrors.first.join('\n  ')}` : ''}\n`);
  write(`(run took ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
