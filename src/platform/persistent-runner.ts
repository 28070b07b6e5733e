// SPDX-License-Identifier: GPL-2.0-only
// PersistentRunner: a CommandRunner (exec.ts) that takes the CN's hot-path kernel changes off process
// spawning, which cost 2.5–3.5 ms per command and most of a roam (issue 11):
// - `ip` changes (link/addr/route/neigh add, set, del, replace, change; not `link del`) go to one long-lived
//   `ip -o -force -batch -` process per network namespace, fed a line per command. After each
//   command it also sends `link show dev lo`, whose one-line answer marks where that command's
//   output ends; stderr is merged into stdout (`2>&1`, one pipe, so the order holds), and an error
//   shows as iproute2's own message plus "Command failed -:N". Commands are pipelined: output comes
//   back in the order they were sent; those issued in the same tick go out in one write. A process
//   that some error makes exit (`ip neigh del` of a missing entry does) is replaced at once, so the
//   next change (a roam's) does not wait for a spawn. iproute2 keeps the index of every device name
//   it resolved for the life of the process, so after a `link del` through this runner (a tunnel
//   re-created under its name, say) later commands go to a new process, once the old one has
//   answered what it was sent (so their order holds). A command that fails because its device is
//   unknown (someone else re-created it: a Wi-Fi reload) is asked once more in a new process; it then
//   runs after the commands sent behind it (it changed nothing the first time).
// - `sysctl -w key=value` outside a test namespace is a write to /proc/sys.
// - Everything else (queries with -j, nft, anything in doubt) runs as before, spawned by `run`.
// Why not netlink: no maintained npm rtnetlink library, and an addon of our own is a second native
// module to cross-build; `ip -batch` is in every ip-full (which the package depends on). Where the
// batch process cannot run (BusyBox ip has no -batch) the first command finds out and every later
// one is spawned as before (logged once).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { DEFAULT_TIMEOUT_MS, run, type CommandRunner, type RunOptions, type RunResult } from './exec.js';
import { readLines } from './line-reader.js';
import { LOG, type LogFn } from './log.js';

/** fs.writeFile as a promise; not fs.promises, which loads 0.6 MB of modules the CN has no other use for. */
const writeFileAsync = promisify(fs.writeFile);

// `link del` is left out: deleting a vxlan device takes 15–45 ms in the kernel, and in the batch it
// would hold up every command behind it; spawned, it runs beside the batch (which it does not slow).
const MUTATIONS: Readonly<Record<string, ReadonlySet<string>>> = {
  link: new Set(['add', 'set', 'change']),
  addr: new Set(['add', 'del', 'delete', 'change', 'replace']),
  address: new Set(['add', 'del', 'delete', 'change', 'replace']),
  route: new Set(['add', 'del', 'delete', 'change', 'replace']),
  neigh: new Set(['add', 'del', 'delete', 'change', 'replace']),
};
/** The answer to the marker command: `link show dev lo` in one-line mode. */
const MARKER_LINE = /^\d+: lo: </;
/**
 * A batched command failed because the device it names is unknown to the kernel under the index
 * this `ip` process resolved for it: kernel extack "Error: ipv4: Device not found." (addr), ENODEV
 * "RTNETLINK answers: No such device" (route, neigh, link set).
 */
const STALE_DEVICE = /Device not found|No such device/;
/** The answer to a command the runner can no longer run (closed). */
const CLOSED: RunResult = { code: 1, stdout: '', stderr: 'ip -batch: the runner is closed' };
/** Output kept per command (an error message is a line or two). */
const MAX_JOB_OUTPUT = 64 * 1024;

/** Whether `ip ARGS` is a change that the batch process may run (plain words only, no options). */
export function isBatchable(args: readonly string[]): boolean {
  const [object, verb] = args;
  if (object === undefined || verb === undefined) return false;
  if (!MUTATIONS[object]?.has(verb)) return false;
  // One command per line: every word must be a plain token (the callers validate them; this is a backstop).
  return args.every((a) => /^[A-Za-z0-9_.:/@+=,-]+$/.test(a));
}

/** The /proc/sys path of a dotted sysctl key ('/' in a component stands for '.', as in VLAN names). */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key
    .split('.')
    .map((c) => c.replace(/\//g, '.'))
    .join('/')}`;
}

interface Job {
  out: string[];
  size: number;
  resolve: (r: RunResult) => void;
  timer: NodeJS.Timeout;
  /** Retried by spawning when the batch process turns out not to work. */
  fallback: () => void;
}

/**
 * Start `argv` with its stderr merged into stdout (through `sh -c 'exec "$@" 2>&1'`: one pipe, so an
 * error's text and the marker's answer arrive in order) and hand its output to `onLine` a line at a
 * time. A failed spawn or a write to a dead process surfaces as 'close', which goes to `onClose`.
 * Shared by the `ip -batch` process here and `nft -i` (nft-shell.ts).
 */
export function spawnLineProcess(
  argv: readonly string[],
  onLine: (line: string) => void,
  onClose: () => void,
): ChildProcessWithoutNullStreams {
  const child = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
  readLines(child.stdout, onLine);
  child.stdin.on('error', () => undefined); // a dead process: its 'close' handles the rest
  child.on('error', () => undefined);
  child.on('close', onClose);
  return child;
}

/** One `ip -batch` process (for one namespace, or none). */
class IpBatchProcess {
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly jobs: Job[] = [];
  /** Set when a batch process ended before it answered its probe: spawn from now on. */
  unsupported = false;
  /** Whether the current process has answered its probe (a bare marker sent first). */
  private answered = false;
  /** Whether any process has answered its probe: -batch works here. */
  private worked = false;
  /** close() was called: no process is started again by itself. */
  private stopped = false;
  /** renew() was called: the current process takes no new command; it is ended once it has answered all. */
  private renewing = false;
  /** Commands that arrived while renewing: sent to the new process once the old one is done. */
  private readonly held: (() => void)[] = [];
  /** Processes started so far (the current one's generation). */
  private spawned = 0;

  constructor(
    private readonly ipBin: string,
    private readonly netns: string | undefined,
    private readonly log: LogFn,
  ) {}

  run(args: readonly string[], timeoutMs: number, fallback: () => Promise<RunResult>): Promise<RunResult> {
    return this.runIn(args, timeoutMs, fallback).then((r) => r.result);
  }

  /** run(), also saying which process (its generation) ran the command; undefined when it was spawned. */
  runIn(
    args: readonly string[],
    timeoutMs: number,
    fallback: () => Promise<RunResult>,
  ): Promise<{ result: RunResult; generation?: number }> {
    return new Promise((resolve) => {
      const send = () => this.send(args, timeoutMs, fallback, resolve);
      if (this.renewing) this.held.push(send);
      else send();
    });
  }

  /**
   * iproute2 remembers the index of every device name it has resolved for as long as it runs, so a
   * device deleted and created again under the same name is unknown to this process ("Device not
   * found", "No such device"). Commands from now on go to a new process, after the current one has
   * answered what it was sent (their order holds).
   */
  renew(): boolean {
    if (!this.child || this.renewing) return false;
    this.renewing = true;
    this.retireIfDone();
    return true;
  }

  private retireIfDone(): void {
    if (!this.renewing || this.jobs.length > 0) return;
    const old = this.child;
    this.child = undefined; // its last words and its exit answer nobody (line(), closed())
    old?.stdin.end();
    const held = this.held.length;
    this.releaseHeld();
    if (held === 0) this.startAhead(); // nothing waited to start the new one
  }

  /**
   * Start the next process after this turn (once the callers have their answers), not when the
   * next change comes: that is likely a roam's, and a spawn costs milliseconds.
   */
  private startAhead(): void {
    setImmediate(() => {
      if (!this.stopped && !this.child && !this.unsupported) this.process();
    });
  }

  /** renew(), unless the process that ran a command (its generation) has been replaced already. */
  renewOf(generation: number): boolean {
    return generation === this.spawned ? this.renew() : false;
  }

  private releaseHeld(): void {
    this.renewing = false;
    for (const send of this.held.splice(0)) send();
  }

  private send(
    args: readonly string[],
    timeoutMs: number,
    fallback: () => Promise<RunResult>,
    resolve: (r: { result: RunResult; generation?: number }) => void,
  ): void {
    const spawned = () => void fallback().then((result) => resolve({ result }));
    if (this.stopped || this.unsupported) {
      spawned(); // closed, or found out not to work, while this command was held
      return;
    }
    const child = this.process();
    const generation = this.spawned;
    const job: Job = {
      out: [],
      size: 0,
      resolve: (result) => resolve({ result, generation }),
      timer: setTimeout(() => this.fail(`ip -batch: no answer within ${timeoutMs} ms`, true), timeoutMs),
      fallback: spawned,
    };
    job.timer.unref();
    this.jobs.push(job);
    this.write(child, `${args.join(' ')}\nlink show dev lo\n`);
  }

  /**
   * Commands issued together (a plan's operations, started in one go) reach `ip` in one write: the
   * pipe is corked until the current tick ends. A write per command cost a system call and a
   * wake-up of `ip` each.
   */
  private write(child: ChildProcessWithoutNullStreams, text: string): void {
    if (!child.stdin.writableCorked) {
      child.stdin.cork();
      process.nextTick(() => child.stdin.uncork());
    }
    child.stdin.write(text);
  }

  /** Stop: commands in the process fail at once, held ones are spawned, and no process is started again. */
  close(): void {
    this.stopped = true;
    this.child?.kill('SIGTERM');
    this.child = undefined;
    for (const job of this.jobs.splice(0)) {
      clearTimeout(job.timer);
      job.resolve(CLOSED);
    }
    this.releaseHeld();
  }

  private process(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const ns = this.netns !== undefined ? ['-n', this.netns] : [];
    const child = spawnLineProcess(
      [this.ipBin, ...ns, '-o', '-force', '-batch', '-'],
      (line) => {
        if (this.child === child) this.line(line); // a replaced process's last words answer nobody
      },
      () => this.closed(child),
    );
    this.child = child;
    this.spawned++;
    this.answered = false;
    // The probe: a marker alone. Its answer proves the batch works; an `ip` without -batch exits first.
    this.jobs.unshift({ out: [], size: 0, resolve: () => undefined, timer: setTimeout(() => undefined, 0), fallback: () => undefined });
    child.stdin.write('link show dev lo\n');
    return child;
  }

  private closed(child: ChildProcessWithoutNullStreams): void {
    if (this.child !== child) return;
    this.child = undefined;
    const jobs = this.jobs.splice(0);
    if (!this.answered) {
      // It ended before it answered its probe: this `ip` has no -batch. Unless an earlier process
      // worked: then this one failed to start (memory pressure, say) and the next change tries again.
      if (!this.worked) {
        this.unsupported = true;
        this.log(LOG.info, `${this.ipBin} -batch is not available here; kernel changes are made one process each`);
      }
      for (const job of jobs.slice(1)) {
        clearTimeout(job.timer);
        job.fallback();
      }
      this.releaseHeld();
      return;
    }
    // Some errors make ip exit even with -force (an unknown device in some commands): the command
    // at the head was the one; what it printed is its error. The others never ran: they are spawned.
    const [head, ...rest] = jobs;
    if (head) {
      clearTimeout(head.timer);
      head.resolve({ code: 1, stdout: '', stderr: head.out.join('\n').trim() || 'ip -batch exited' });
    }
    for (const job of rest) {
      clearTimeout(job.timer);
      job.fallback();
    }
    // A command made it exit (`ip neigh del` of an entry that is not there does): the next process
    // at once. At most once per such command; an exit with nothing asked waits for the next change.
    if (head) this.startAhead();
    this.releaseHeld();
  }

  private line(line: string): void {
    const job = this.jobs[0];
    if (!job) return; // output nobody waits for (after a time-out): dropped
    if (MARKER_LINE.test(line)) {
      this.answered = true; // the probe's answer comes first
      this.worked = true;
      this.jobs.shift();
      clearTimeout(job.timer);
      const output = job.out.join('\n');
      const failed = job.out.some((l) => /^Command failed /.test(l));
      job.resolve({ code: failed ? 1 : 0, stdout: '', stderr: output.replace(/^Command failed .*$/gm, '').trim() });
      this.retireIfDone();
    } else if (job.size < MAX_JOB_OUTPUT) {
      job.out.push(line);
      job.size += line.length + 1;
    }
  }

  /** Every waiting command fails with `why` (a time-out, or the process died); the next one starts a new process. */
  private fail(why: string, timedOut: boolean): void {
    const child = this.child;
    this.child = undefined;
    child?.kill('SIGKILL');
    for (const job of this.jobs.splice(0)) {
      clearTimeout(job.timer);
      job.resolve({ code: timedOut ? 124 : 1, stdout: '', stderr: why, ...(timedOut ? { timedOut: true } : {}) });
    }
    this.releaseHeld();
  }
}

export class PersistentRunner {
  private readonly batches = new Map<string, IpBatchProcess>();
  private closed = false;
  /** renewed: batch processes replaced because a device name they had resolved may have a new index. */
  readonly stats = { batched: 0, sysctlWrites: 0, spawned: 0, renewed: 0 };

  constructor(private readonly opts: { ip?: string; log?: LogFn; fallback?: CommandRunner } = {}) {}

  /** The CommandRunner to hand to IprouteNetOps. */
  readonly runner: CommandRunner = (cmd, args, runOpts) => this.run(cmd, args, runOpts);

  /** End the batch processes; commands from now on are spawned (a shutdown's clean-up still runs). */
  close(): void {
    this.closed = true;
    for (const b of this.batches.values()) b.close();
    this.batches.clear();
  }

  private run(cmd: string, args: readonly string[], runOpts: RunOptions): Promise<RunResult> {
    const spawnIt = (): Promise<RunResult> => {
      this.stats.spawned++;
      return (this.opts.fallback ?? run)(cmd, args, runOpts);
    };
    const ipBin = this.opts.ip ?? 'ip';
    if (cmd === ipBin && runOpts.input === undefined && isBatchable(args) && !this.closed) {
      const key = runOpts.netns ?? '';
      let batch = this.batches.get(key);
      if (!batch) {
        batch = new IpBatchProcess(ipBin, runOpts.netns, this.opts.log ?? (() => undefined));
        this.batches.set(key, batch);
      }
      if (!batch.unsupported) {
        this.stats.batched++;
        const timeoutMs = runOpts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
        const b = batch;
        return b.runIn(args, timeoutMs, spawnIt).then(({ result: r, generation }) => {
          if (r.code === 0 || r.timedOut || generation === undefined || !STALE_DEVICE.test(r.stderr)) return r;
          // Perhaps a device deleted and created again (by someone else) since this process resolved
          // its name: ask once more, in a process started after it (several such failures of one
          // process renew it once).
          if (b.renewOf(generation)) this.stats.renewed++;
          return b.run(args, timeoutMs, spawnIt);
        });
      }
    }
    if (cmd === ipBin && (args[0] === 'link' || args[0] === 'l') && (args[1] === 'del' || args[1] === 'delete')) {
      // A name the batch process may have resolved is gone: a device created under it later has
      // another index, so the batch's later commands go to a new process.
      return spawnIt().finally(() => {
        if (this.batches.get(runOpts.netns ?? '')?.renew()) this.stats.renewed++;
      });
    }
    if (cmd === 'sysctl' && runOpts.netns === undefined && args.length === 2 && args[0] === '-w') {
      const eq = args[1]!.indexOf('=');
      if (eq > 0) return this.writeSysctl(args[1]!.slice(0, eq), args[1]!.slice(eq + 1));
    }
    return spawnIt();
  }

  /** `sysctl -w key=value` as a file write, with procps's wording on failure (IprouteNetOps reads it). */
  private async writeSysctl(key: string, value: string): Promise<RunResult> {
    this.stats.sysctlWrites++;
    const file = sysctlPath(key);
    try {
      await writeFileAsync(file, `${value}\n`);
      this.opts.log?.(LOG.debug, `sysctl: wrote ${value} to ${file} (no process)`);
      return { code: 0, stdout: `${key} = ${value}\n`, stderr: '' };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why =
        err.code === 'ENOENT'
          ? `sysctl: cannot stat ${file}: No such file or directory`
          : err.code === 'EACCES' || err.code === 'EPERM'
            ? `sysctl: permission denied on key '${key}'`
            : `sysctl: error setting key '${key}': ${err.message}`;
      return { code: 1, stdout: '', stderr: why };
    }
  }
}
