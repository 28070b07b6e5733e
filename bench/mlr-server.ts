// SPDX-License-Identifier: GPL-2.0-only
// bench/mlr-server: the MLR process of bench/mlr (forked by it with an IPC channel; not run by hand),
// so that the MLR has a core to itself while bench/mlr drives the simulated CNs from the other.
//   --mode mlr: the real MLR (mlr/mlr.ts startMlr: MLRP over TCP on 127.0.0.1, authentication on with
//     one key per CN, the journal store with fdatasync) on a state file under --dir, pre-filled with
//     --bindings stations over --cns CNs (synthetic.ts fillNetwork).
//   --mode echo: the same listener, RPC layer and authentication, with a handler that answers every
//     `seen` at once (`unknown`): the ceiling of the transport and the RPC layer on this machine.
// It sends {ready, port, state, fs} once it listens, and answers 'stats' with its memory, CPU, GC
// pauses (PerformanceObserver 'gc', the longest since the last 'stats'), event-loop delay and
// handover counters.
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Registry } from '../src/core/registry.js';
import { startMlr, type Mlr } from '../src/mlr/mlr.js';
import { MAX_WORK } from '../src/mlr/service.js';
import { RegistryStore } from '../src/mlr/persistence.js';
import { createLogger, LOG } from '../src/platform/log.js';
import { FileStateFile } from '../src/platform/state-file.js';
import { listenTcp } from '../src/platform/tcp-channel.js';
import { Authenticator, MLR_ID } from '../src/proto/auth.js';
import { DEFAULT_HEARTBEAT, RpcPeer } from '../src/proto/rpc.js';
import { benchSecret, cnName, fillNetwork, intArg, textArg } from './synthetic.js';

const mode = textArg('mode', 'mlr');
const BINDINGS = intArg('bindings', 100_000, 0);
const CNS = intArg('cns', 500, 2, 2000);
const dir = textArg('dir', os.tmpdir());
/** `--profile DIR`: a CPU profile of the steps (between 'profile-start' and 'profile-stop') is written there. */
const profileDir = textArg('profile', '');

const send = (m: unknown): void => void process.send?.(m);

let gcMax = 0;
let gcCount = 0;
let gcTotal = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcCount++;
    gcTotal += e.duration;
    if (e.duration > gcMax) gcMax = e.duration;
  }
}).observe({ entryTypes: ['gc'] });
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let cpu = process.cpuUsage();

/** The filesystem type of `p`'s mount (longest mount point that is a prefix), from /proc/mounts. */
function fsType(p: string): string {
  let best = { at: '', type: '?' };
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, at, type] = line.split(' ');
    if (at !== undefined && type !== undefined && (p === at || p.startsWith(at === '/' ? '/' : `${at}/`)) && at.length >= best.at.length)
      best = { at, type };
  }
  return best.type;
}

/**
 * The MLR's work budget in use (MlrService.outstandingWork against MAX_WORK), sampled every
 * WORK_SAMPLE_MS: its mean and the share of samples at the limit, since the last stats message. A
 * budget at its limit with the event loop idle means moves wait on something else (the CNs' commit
 * replies, the disk), not on the MLR's CPU. A sample is taken when the event loop is free, so a
 * budget held through a long task is under-counted; 100 wake-ups a second add little to the MLR's CPU.
 */
const WORK_SAMPLE_MS = 10;
let workSamples = 0;
let workSum = 0;
let workFull = 0;

/** Journal appends (each one write and one fdatasync) since the last stats message. */
let appends = 0;

/** `file`, counting its journal appends in `appends`. */
function countAppends(file: FileStateFile): FileStateFile {
  const append = file.append.bind(file);
  file.append = (text: string): Promise<void> => {
    appends++;
    return append(text);
  };
  return file;
}

async function main(): Promise<void> {
  const secrets = new Map<string, string>();
  for (let i = 0; i < CNS; i++) secrets.set(cnName(i), benchSecret(i));
  const logger = createLogger(LOG.error, `bench-${mode}`);
  let mlr: Mlr | undefined;
  let workDir: string | undefined;
  let port = 0;
  if (mode === 'echo') {
    const auth = new Authenticator({ self: MLR_ID, role: 'mlr', keyOf: (cn) => secrets.get(cn), log: (m) => logger.log(LOG.error, m) });
    const server = await listenTcp('127.0.0.1', 0, (ch) => {
      const peer = new RpcPeer(ch, { heartbeat: DEFAULT_HEARTBEAT, guard: auth.session(ch.peer) });
      peer.handle('bind', () => ({ bindings: [], peers: [] }));
      peer.handle('seen', () => ({ outcome: 'unknown' }));
    });
    port = (server.address() as { port: number }).port;
    process.on('disconnect', () => server.close());
  } else {
    workDir = fs.mkdtempSync(path.join(dir, 'tmip-bench-mlr-'));
    const stateFile = path.join(workDir, 'mlr.state');
    const t = performance.now();
    {
      const r = new Registry(['vxlan']);
      fillNetwork(r, BINDINGS, CNS, Date.now() + 86_400_000);
      const store = new RegistryStore(new FileStateFile(stateFile), r);
      await store.open();
      await store.close();
    }
    const fillMs = performance.now() - t;
    let resolvePort: (p: number) => void = () => {};
    const portKnown = new Promise<number>((resolve) => (resolvePort = resolve));
    mlr = await startMlr(
      {
        networkName: 'bench',
        offerHoldSeconds: 60,
        leaseGraceSeconds: 60,
        tunnelTypes: ['vxlan'],
        keys: [...secrets].map(([cn, secret]) => ({ cn, secret })),
        logLevel: LOG.error,
      },
      {
        listen: async (onChannel) => {
          const server = await listenTcp('127.0.0.1', 0, (ch) => onChannel(ch, ch.remoteAddress));
          resolvePort((server.address() as { port: number }).port);
          return { describe: 'bench', close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
        },
        state: countAppends(new FileStateFile(stateFile)),
        log: logger.log,
        onStateFailure: (m) => {
          process.stderr.write(`state failed: ${m}\n`);
          process.exit(1);
        },
      },
    );
    port = await portKnown;
    const service = mlr.service;
    setInterval(() => {
      const w = service.outstandingWork;
      workSamples++;
      workSum += w;
      if (w >= MAX_WORK) workFull++;
    }, WORK_SAMPLE_MS).unref();
    process.stdout.write(`MLR: fill and first snapshot of ${BINDINGS} bindings: ${Math.round(fillMs)} ms\n`);
  }
  let profiler: Session | undefined;
  process.on('message', (m) => {
    if (m === 'profile-start' && profileDir) {
      profiler = new Session();
      profiler.connect();
      void profiler.post('Profiler.enable').then(() => profiler?.post('Profiler.start'));
      return;
    }
    if (m === 'profile-stop' && profiler) {
      const p = profiler;
      profiler = undefined;
      void p.post('Profiler.stop').then(({ profile }) => {
        fs.mkdirSync(profileDir, { recursive: true });
        const file = path.join(profileDir, `mlr-${mode}-${process.pid}.cpuprofile`);
        fs.writeFileSync(file, JSON.stringify(profile));
        p.disconnect();
        send({ profile: file });
      });
      return;
    }
    if (m !== 'stats') return;
    const mem = process.memoryUsage();
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const h = mlr?.service.handovers;
    send({
      rssMb: mem.rss / 2 ** 20,
      heapMb: mem.heapUsed / 2 ** 20,
      gcMaxMs: gcMax,
      gcCount,
      gcTotalMs: gcTotal,
      loopMaxMs: loopDelay.max / 1e6,
      loopP99Ms: loopDelay.percentile(99) / 1e6,
      cpuMs: (used.user + used.system) / 1000,
      done: h?.stats.done ?? 0,
      busy: h?.stats.busy ?? 0,
      rolledBack: h?.stats.rolledBack ?? 0,
      appends,
      workMean: workSamples > 0 ? workSum / workSamples : 0,
      workFullShare: workSamples > 0 ? workFull / workSamples : 0,
    });
    appends = 0;
    workSamples = 0;
    workSum = 0;
    workFull = 0;
    gcMax = 0;
    gcCount = 0;
    gcTotal = 0;
    loopDelay.reset();
  });
  process.on('disconnect', () => {
    void (async () => {
      await mlr?.close();
      if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
      process.exit(0);
    })();
  });
  send({ ready: true, port, state: workDir ?? '', fs: workDir ? fsType(workDir) : '' });
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
