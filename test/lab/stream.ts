// SPDX-License-Identifier: GPL-2.0-only
// Test-side helpers around stream-tool: a paced TCP stream from the server to an MS (the MS runs the
// sink and the server connects to the MS's address, so the connection is inbound to the MS), and bulk
// transfers with content verification. Times passed in and out are this process's performance.now();
// the tool reports epoch milliseconds, converted with performance.timeOrigin.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Lab, LabProcess, Role } from './lab.js';

/** The compiled tool, beside this module (build/test/lab/stream-tool.js). */
export const STREAM_TOOL = path.join(path.dirname(fileURLToPath(import.meta.url)), 'stream-tool.js');

export interface ToolEvent {
  event: string;
  /** Epoch ms at which the tool printed the event. */
  at: number;
  [key: string]: unknown;
}

export interface StreamGap {
  ms: number;
  atSeq: number;
  /** Epoch ms of the last arrival before and the first arrival after the gap. */
  from: number;
  to: number;
  conn: number;
}

export interface StreamSummary {
  records: number;
  connections: number;
  seq: number;
  maxGapMs: number;
  seqErrors: number;
  resets: number;
  lastAt: number;
  sinceLastMs: number | null;
  gaps: StreamGap[];
}

/** performance.now() of this process -> epoch ms (the tool's time base). */
export function toEpoch(tLocal: number): number {
  return performance.timeOrigin + tLocal;
}

/** Epoch ms -> performance.now() of this process. */
export function fromEpoch(tEpoch: number): number {
  return tEpoch - performance.timeOrigin;
}

function parseEvents(proc: LabProcess, into: ToolEvent[], onEvent?: (e: ToolEvent) => void): void {
  const take = (text: string) => {
    if (!text.startsWith('{')) return;
    try {
      const e = JSON.parse(text) as ToolEvent;
      into.push(e);
      onEvent?.(e);
    } catch {
      /* not ours */
    }
  };
  for (const l of proc.lines) if (l.stream === 'stdout') take(l.text);
  proc.onLine((l) => {
    if (l.stream === 'stdout') take(l.text);
  });
}

function toolArgs(mode: string, args: string[]): string[] {
  return [STREAM_TOOL, mode, ...args];
}

/** Start stream-tool in a namespace (node, the tool, mode and args). */
export function spawnTool(lab: Lab, role: Role, mode: string, args: string[], logFile?: string): LabProcess {
  return lab.spawn(role, process.execPath, toolArgs(mode, args), logFile ? { logFile } : {});
}

export interface StartStreamOptions {
  /** The MS (runs the sink). */
  ms: Role;
  /** Address the source connects to; default the MS's current eth0 address. */
  msIp?: string;
  /** Where the source runs; default 'srv'. */
  from?: Role;
  port?: number;
  intervalMs?: number;
  payload?: number;
  /** Stop sending after this long (the source then closes cleanly); default: until stop(). */
  durationS?: number;
  /** Sink reports every inter-arrival gap above this (ms); default 50. */
  gapMs?: number;
  /** Sink progress period (ms); default 200. */
  progressMs?: number;
  /** Log files for the two processes (appended). */
  sinkLog?: string;
  sourceLog?: string;
  /** For listening and connecting; default 10 s. */
  timeoutMs?: number;
}

export class StreamRun {
  readonly sinkEvents: ToolEvent[] = [];
  readonly sourceEvents: ToolEvent[] = [];
  private waiters = new Set<() => void>();

  constructor(
    readonly sink: LabProcess,
    readonly source: LabProcess,
    /** The sink's gap report threshold (ms). */
    readonly gapMs = 50,
  ) {
    parseEvents(sink, this.sinkEvents, () => this.poke());
    parseEvents(source, this.sourceEvents, () => this.poke());
    void sink.exited.then(() => this.poke());
    void source.exited.then(() => this.poke());
  }

  private poke(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Wait until cond() holds, re-checked on every event; rejects after timeoutMs. */
  private until<T>(cond: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const v = cond();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        let r: T | undefined;
        try {
          r = cond();
        } catch (err) {
          finish();
          return reject(err instanceof Error ? err : new Error(String(err)));
        }
        if (r !== undefined) {
          finish();
          resolve(r);
        }
      };
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(
            `stream: ${what} not within ${timeoutMs} ms; sink: ${this.describeTail(this.sinkEvents)}; source: ${this.describeTail(this.sourceEvents)}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private describeTail(ev: ToolEvent[]): string {
    return ev
      .slice(-3)
      .map((e) => JSON.stringify(e))
      .join(' ');
  }

  /** Reported gaps (> the sink's threshold), in order. */
  gaps(): StreamGap[] {
    return this.sinkEvents.filter((e) => e.event === 'gap') as unknown as StreamGap[];
  }

  /** Sink error/reset events (seq or payload errors, resets, socket errors) and source errors. */
  failures(): ToolEvent[] {
    return [
      ...this.sinkEvents.filter((e) => e.event === 'error' || e.event === 'reset'),
      ...this.sourceEvents.filter((e) => e.event === 'error'),
    ];
  }

  /** Epoch ms of the last record arrival known from the sink's events (0 when none yet). */
  lastArrival(): number {
    let last = 0;
    for (const e of this.sinkEvents) {
      if (e.event === 'progress' && typeof e.lastAt === 'number') last = Math.max(last, e.lastAt);
      if (e.event === 'gap' && typeof e.to === 'number') last = Math.max(last, e.to);
    }
    return last;
  }

  /** Records received so far (from the latest progress event). */
  records(): number {
    for (let i = this.sinkEvents.length - 1; i >= 0; i--) {
      const e = this.sinkEvents[i];
      if (e?.event === 'progress' && typeof e.records === 'number') return e.records;
    }
    return 0;
  }

  /** Largest reported gap overall (ms); 0 when none exceeded the threshold. */
  maxGapMs(): number {
    return Math.max(0, ...this.gaps().map((g) => g.ms));
  }

  /**
   * Largest inter-arrival gap (ms) overlapping [t - windowMs, t + windowMs], t being this process's
   * performance.now() (e.g. what lab.moveMs returned). A stall still going on (no arrival since) counts
   * up to now (as far as the sink's last progress report shows). 0 when no gap above the sink's
   * threshold (StartStreamOptions.gapMs) touched the window.
   */
  gapAround(t: number, windowMs: number): number {
    const lo = toEpoch(t) - windowMs;
    const hi = toEpoch(t) + windowMs;
    let max = 0;
    for (const g of this.gaps()) if (g.to >= lo && g.from <= hi) max = Math.max(max, g.ms);
    // A stall still in progress: the sink's latest progress says nothing arrived for a while, and no
    // gap has closed since. Count it up to now.
    const last = this.lastArrival();
    const prog = [...this.sinkEvents].reverse().find((e) => e.event === 'progress');
    if (
      !this.sink.exitStatus &&
      prog &&
      prog.lastAt === last &&
      typeof prog.sinceLastMs === 'number' &&
      prog.sinceLastMs > this.gapMs &&
      last <= hi
    ) {
      max = Math.max(max, toEpoch(performance.now()) - last);
    }
    return +max.toFixed(3);
  }

  /** Resolves when the sink has accepted the source's connection and both said so. */
  async waitConnected(timeoutMs = 10_000): Promise<void> {
    await this.until(
      () =>
        this.sinkEvents.some((e) => e.event === 'connected') && this.sourceEvents.some((e) => e.event === 'connected') ? true : undefined,
      timeoutMs,
      'connection',
    );
  }

  /** Resolves once at least n records have arrived. */
  async waitRecords(n: number, timeoutMs: number): Promise<number> {
    return this.until(() => (this.records() >= n ? this.records() : undefined), timeoutMs, `${n} records`);
  }

  /**
   * Resolves once a record has arrived after t (performance.now() of this process), with the gap (ms)
   * around t as gapAround(t, windowMs) then sees it. Rejects on a failure event or timeout.
   */
  async waitResumed(t: number, timeoutMs: number, windowMs = 1000): Promise<number> {
    const te = toEpoch(t);
    return this.until(
      () => {
        const f = this.failures();
        if (f.length) throw new Error(`stream failed: ${JSON.stringify(f[0])}`);
        return this.lastArrival() > te ? this.gapAround(t, windowMs) : undefined;
      },
      timeoutMs,
      'resumption',
    );
  }

  /** Ask the sink for its summary (SIGUSR2). */
  async summary(timeoutMs = 3000): Promise<StreamSummary> {
    const since = this.sinkEvents.length;
    this.sink.signal('SIGUSR2');
    return this.until(
      () => this.sinkEvents.slice(since).find((e) => e.event === 'summary') as unknown as StreamSummary | undefined,
      timeoutMs,
      'summary',
    );
  }

  /** Stop source, then sink; resolves with the sink's final summary (null if it printed none). */
  async stop(): Promise<StreamSummary | null> {
    await this.source.stop();
    const since = this.sinkEvents.length;
    await this.sink.stop();
    return (this.sinkEvents.slice(since).find((e) => e.event === 'summary') as unknown as StreamSummary | undefined) ?? null;
  }
}

/** Start the sink in the MS and the source in srv (or opts.from) connecting to the MS. */
export async function startStream(lab: Lab, opts: StartStreamOptions): Promise<StreamRun> {
  const port = opts.port ?? 5001;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const msIp = opts.msIp ?? (await lab.addressOf(opts.ms));
  if (!msIp) throw new Error(`MS ${opts.ms} has no IPv4 address on eth0`);
  const sink = spawnTool(
    lab,
    opts.ms,
    'sink',
    ['--port', String(port), '--gap-ms', String(opts.gapMs ?? 50), '--progress-ms', String(opts.progressMs ?? 200)],
    opts.sinkLog,
  );
  await sink.waitForLine(/"event":"listening"/, timeoutMs);
  const srcArgs = [
    '--connect',
    `${msIp}:${port}`,
    '--interval-ms',
    String(opts.intervalMs ?? 10),
    '--payload',
    String(opts.payload ?? 64),
    '--connect-timeout-ms',
    String(timeoutMs),
  ];
  if (opts.durationS !== undefined) srcArgs.push('--duration-s', String(opts.durationS));
  const source = spawnTool(lab, opts.from ?? 'srv', 'source', srcArgs, opts.sourceLog);
  const run = new StreamRun(sink, source, opts.gapMs ?? 50);
  try {
    await run.waitConnected(timeoutMs);
  } catch (err) {
    await run.stop();
    throw err;
  }
  return run;
}

export interface BulkOptions {
  /** Which side listens: 'to' (default: the sender connects to the receiver) or 'from'. */
  listener?: 'from' | 'to';
  /** Listener's address; default lab.addressOf(listener role). */
  address?: string;
  port?: number;
  seed?: string;
  timeoutMs?: number;
  logFile?: string;
}

export interface BulkResult {
  ok: boolean;
  bytes: number;
  ms: number;
  sha256?: string;
  error?: string;
}

/**
 * Send `bytes` deterministic pseudo-random bytes from `fromRole` to `toRole` over one TCP connection;
 * the receiver checks length and SHA-256. Never throws for a failed transfer: see ok/error.
 */
export async function bulkTransfer(lab: Lab, fromRole: Role, toRole: Role, bytes: number, opts: BulkOptions = {}): Promise<BulkResult> {
  const listener = opts.listener ?? 'to';
  const listenRole = listener === 'to' ? toRole : fromRole;
  const port = opts.port ?? 5002;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const address = opts.address ?? (await lab.addressOf(listenRole));
  if (!address) throw new Error(`${listenRole} has no address`);
  const common = ['--bytes', String(bytes), '--seed', opts.seed ?? '1'];
  const listenArgs = ['--port', String(port), ...common];
  const connectArgs = ['--connect', `${address}:${port}`, ...common];
  const fetchTimeout = ['--timeout-s', String(Math.ceil(timeoutMs / 1000))];
  const procs: LabProcess[] = [];
  try {
    let fetcher: LabProcess;
    if (listener === 'to') {
      fetcher = spawnTool(lab, toRole, 'bulk-fetch', [...listenArgs, ...fetchTimeout], opts.logFile);
      procs.push(fetcher);
      await fetcher.waitForLine(/"event":"listening"/, 10_000);
      procs.push(spawnTool(lab, fromRole, 'bulk-serve', connectArgs, opts.logFile));
    } else {
      const server = spawnTool(lab, fromRole, 'bulk-serve', listenArgs, opts.logFile);
      procs.push(server);
      await server.waitForLine(/"event":"listening"/, 10_000);
      fetcher = spawnTool(lab, toRole, 'bulk-fetch', [...connectArgs, ...fetchTimeout], opts.logFile);
      procs.push(fetcher);
    }
    const line = await fetcher.waitForLine(/"event":"(done|error)"/, timeoutMs + 5000);
    const e = JSON.parse(line) as ToolEvent;
    if (e.event === 'error') return { ok: false, bytes: 0, ms: 0, error: typeof e.message === 'string' ? e.message : line };
    return {
      ok: e.ok === true,
      bytes: Number(e.bytes),
      ms: Number(e.ms),
      sha256: String(e.sha256),
      ...(e.ok === true ? {} : { error: `received ${Number(e.bytes)} of ${Number(e.expectedBytes)} bytes or wrong content` }),
    };
  } catch (err) {
    return { ok: false, bytes: 0, ms: 0, error: (err as Error).message };
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop(1000)));
  }
}
