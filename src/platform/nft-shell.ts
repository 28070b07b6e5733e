// SPDX-License-Identifier: GPL-2.0-only
// Runs nft commands (one per line, e.g. `add element ip T roamed { 10.1.0.5 }`) with each line's
// error mapped back to it, two ways:
// - NftShell: one long-lived `nft -i` per network namespace, stdin piped, stderr merged into stdout
//   (`2>&1`, one pipe, so the order holds). nft -i runs each line as its own transaction, prints
//   nothing for a change that worked and "Error: ...", the line and a caret line for one that failed,
//   and carries on. After each line it is sent the marker `describe ip version`, which needs no
//   kernel and answers with one fixed line: what came before that answer is the line's error. The
//   answer's text is learnt by a probe at start (the marker sent twice: two equal lines, not an
//   error). Where `nft -i` is missing (nftables built without its CLI, as OpenWrt does) or dies before
//   answering, every batch is spawned instead (logged once).
// - runNftScript: one `nft -f -` per batch (atomic: one failed line rolls back all). Its errors name
//   their line ("/dev/stdin:3:19-21: Error: ..."): failed lines are reported and the others sent
//   again, until all worked or failed.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { DEFAULT_TIMEOUT_MS, describeFailure, isTimeout, run, type CommandRunner, type RunOptions } from './exec.js';
import { LOG, type LogFn } from './log.js';
import { spawnLineProcess } from './persistent-runner.js';

/** What became of one line: `error` is nft's message (and the line echo) when it failed. */
export type NftLineResult = { ok: true } | { ok: false; error: string };

/** Runs nft command lines, one result per line. */
export interface NftLines {
  run(lines: readonly string[]): Promise<NftLineResult[]>;
}

/** The marker: a userspace-only command with a one-line, always-equal answer. */
export const NFT_MARKER = 'describe ip version';
/** A line we are willing to send: printable, no newline, no comment (the callers build and validate them). */
const LINE_OK = /^[A-Za-z0-9_.:/{} ,@-]+$/;
/** Where `nft -f` says an error is: "/dev/stdin:3:19-21: Error: ..." (or "-:3:..."). */
const LOCATION = /^(?:\/dev\/stdin|-|\/proc\/self\/fd\/0):(\d+):\d+(?:-\d+)?: /;

export function checkNftLine(line: string): void {
  if (!LINE_OK.test(line)) throw new Error(`refusing nft line '${line}'`);
}

/**
 * One `nft -f -` per round: run `lines`; on failure, the lines its errors name fail, and the others
 * (rolled back with them) run again. Errors that name no line fail every line left.
 */
export async function runNftScript(
  runner: CommandRunner,
  nftBin: string,
  runOpts: RunOptions,
  lines: readonly string[],
): Promise<NftLineResult[]> {
  for (const l of lines) checkNftLine(l);
  const results: (NftLineResult | undefined)[] = lines.map(() => undefined);
  let pending = lines.map((_, i) => i);
  while (pending.length > 0) {
    const script = pending.map((i) => lines[i]).join('\n') + '\n';
    const args = ['-f', '-'];
    const r = await runner(nftBin, args, { ...runOpts, input: script });
    if (r.code === 0) {
      for (const i of pending) results[i] = { ok: true };
      break;
    }
    const blocks = new Map<number, string[]>();
    let current: string[] | undefined;
    if (!isTimeout(r))
      for (const line of r.stderr.split('\n')) {
        const m = LOCATION.exec(line);
        if (m) {
          const n = Number(m[1]);
          current = blocks.get(n) ?? [];
          blocks.set(n, current);
          current.push(line.slice(m[0].length));
        } else if (current && line.trim() !== '' && !/^\s*\^+\s*$/.test(line)) {
          current.push(line.trim());
        }
      }
    const named = [...blocks.keys()].filter((n) => n >= 1 && n <= pending.length);
    if (named.length === 0) {
      const error = describeFailure(nftBin, args, runOpts, r);
      for (const i of pending) results[i] = { ok: false, error };
      break;
    }
    for (const n of named) results[pending[n - 1]!] = { ok: false, error: blocks.get(n)!.join('; ') };
    pending = pending.filter((i) => results[i] === undefined);
  }
  return results.map((r) => r ?? { ok: false, error: 'not run' });
}

interface Job {
  /** The line sent, or undefined for the probe. */
  line: string | undefined;
  out: string[];
  resolve: (r: NftLineResult) => void;
}

export interface NftShellOptions {
  nft?: string;
  /** Run inside this network namespace (`ip netns exec NS nft -i`); for tests. */
  netns?: string;
  log?: LogFn;
  timeoutMs?: number;
  /** Spawns `nft -f -` where `nft -i` does not work (default exec.ts's `run`). */
  runner?: CommandRunner;
  /** argv of the interactive process (default: nft -i, in `netns` when given); tests replace it. */
  command?: readonly string[];
}

/** One long-lived `nft -i`, with a fallback to `nft -f -` per batch. */
export class NftShell implements NftLines {
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly jobs: Job[] = [];
  /** The marker's answer, learnt by the probe; undefined until then. */
  private marker: string | undefined;
  private probeLines: string[] = [];
  /** start() callers waiting for the probe's outcome. */
  private probeWaiters: (() => void)[] = [];
  /** `nft -i` did not work here: spawn from now on. */
  unsupported = false;
  private timer: NodeJS.Timeout | undefined;
  readonly stats = { lines: 0, spawned: 0 };
  private readonly nftBin: string;
  private readonly log: LogFn;
  private readonly timeoutMs: number;
  private readonly runner: CommandRunner;

  constructor(private readonly opts: NftShellOptions = {}) {
    this.nftBin = opts.nft ?? 'nft';
    this.log = opts.log ?? (() => undefined);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.runner = opts.runner ?? run;
  }

  /** Start the process and wait for its probe: true when `nft -i` works (spawning is used otherwise). */
  async start(): Promise<boolean> {
    if (this.unsupported) return false;
    if (this.marker !== undefined) return true;
    const settled = new Promise<void>((resolve) => this.probeWaiters.push(resolve));
    this.process();
    await settled;
    return !this.unsupported;
  }

  run(lines: readonly string[]): Promise<NftLineResult[]> {
    for (const l of lines) checkNftLine(l);
    if (this.unsupported) return this.spawnScript(lines);
    const child = this.process();
    const done = lines.map(
      (line) =>
        new Promise<NftLineResult>((resolve) => {
          this.jobs.push({ line, out: [], resolve });
        }),
    );
    this.stats.lines += lines.length;
    child.stdin.write(lines.map((l) => `${l}\n${NFT_MARKER}\n`).join(''));
    this.arm();
    return Promise.all(done);
  }

  close(): void {
    const child = this.child;
    this.child = undefined;
    child?.kill('SIGTERM');
    if (this.timer) clearTimeout(this.timer);
    this.failAll('nft -i was closed');
    for (const w of this.probeWaiters.splice(0)) w(); // a start() under way: its probe will not be answered now
  }

  private spawnScript(lines: readonly string[]): Promise<NftLineResult[]> {
    this.stats.spawned++;
    return runNftScript(this.runner, this.nftBin, this.opts.netns !== undefined ? { netns: this.opts.netns } : {}, lines);
  }

  private process(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const argv = this.opts.command ?? [
      ...(this.opts.netns !== undefined ? ['ip', 'netns', 'exec', this.opts.netns] : []),
      this.nftBin,
      '-i',
    ];
    const child = spawnLineProcess(
      argv,
      (line) => {
        if (this.child === child) this.line(line); // a replaced or abandoned process answers nobody
      },
      () => {
        if (this.child !== child) return;
        this.child = undefined;
        if (this.marker === undefined) this.giveUp(`${this.nftBin} -i ended before answering`);
        else this.requeue('nft -i ended');
      },
    );
    this.child = child;
    if (this.marker === undefined) {
      this.probeLines = [];
      this.jobs.unshift({ line: undefined, out: [], resolve: () => undefined });
      child.stdin.write(`${NFT_MARKER}\n${NFT_MARKER}\n`);
      this.arm();
    }
    return child;
  }

  /** The probe failed: spawn from now on; every waiting line is spawned. */
  private giveUp(why: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.unsupported = true;
    const detail = this.probeLines.join('; ').trim();
    this.log(LOG.info, `${why}${detail ? ` (${detail})` : ''}; nft changes are made one process per batch`);
    const child = this.child;
    this.child = undefined;
    child?.kill('SIGKILL');
    this.requeue(undefined);
    for (const w of this.probeWaiters.splice(0)) w();
  }

  /** Lines sent and not answered (the process died): run them again by spawning (adds and deletes are idempotent for the callers). */
  private requeue(why: string | undefined): void {
    const jobs = this.jobs.splice(0).filter((j) => j.line !== undefined);
    if (why !== undefined) this.log(LOG.error, `${why}; ${jobs.length} line(s) sent again by spawning nft`);
    if (jobs.length === 0) return;
    void this.spawnScript(jobs.map((j) => j.line!)).then((results) => results.forEach((r, i) => jobs[i]!.resolve(r)));
  }

  private failAll(error: string): void {
    for (const j of this.jobs.splice(0)) j.resolve({ ok: false, error });
  }

  /** A time-out for whatever is waiting: the process is killed and the lines spawned. */
  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.jobs.length === 0) return;
      const child = this.child;
      this.child = undefined;
      child?.kill('SIGKILL');
      if (this.marker === undefined) this.giveUp(`${this.nftBin} -i: no answer within ${this.timeoutMs} ms`);
      else this.requeue(`nft -i: no answer within ${this.timeoutMs} ms`);
    }, this.timeoutMs);
    this.timer.unref();
  }

  private line(line: string): void {
    if (this.marker === undefined) {
      this.probeLines.push(line);
      if (this.probeLines.length < 2) return;
      const [a, b] = this.probeLines;
      if (a !== b || a === undefined || /error/i.test(a) || a.trim() === '') {
        this.giveUp(`${this.nftBin} -i answered its probe unexpectedly`);
        return;
      }
      this.marker = a;
      this.jobs.shift(); // the probe
      for (const w of this.probeWaiters.splice(0)) w();
      if (this.jobs.length === 0 && this.timer) clearTimeout(this.timer);
      return;
    }
    const job = this.jobs[0];
    if (!job) return; // output nobody waits for: dropped
    if (line === this.marker) {
      this.jobs.shift();
      const error = job.out
        .filter((l) => !/^\s*\^+\s*$/.test(l))
        .join('; ')
        .trim();
      job.resolve(error === '' ? { ok: true } : { ok: false, error });
      if (this.jobs.length === 0 && this.timer) clearTimeout(this.timer);
      else this.arm();
    } else if (job.out.length < 64) {
      job.out.push(line);
    }
  }
}

/** Whether a failed line's error says the element (or its set or table) is not there. */
export function nftSaysGone(error: string): boolean {
  return /No such file or directory/.test(error);
}
