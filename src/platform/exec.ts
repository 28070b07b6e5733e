// SPDX-License-Identifier: GPL-2.0-only
// Running external commands (ip, nft, sysctl) without a shell: arguments are passed as an array, the
// output is collected, every run is bounded by a timeout, and a non-zero exit is a result, not an
// exception (run); runOk turns it into an Error naming the command line and its stderr. CommandRunner
// is the shape of `run`, so adapters can be given a scripted runner in tests.
import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Written to the command's stdin (then closed). */
  input?: string;
  /** Kill the command (SIGKILL) after this long; default 5000 ms. */
  timeoutMs?: number;
  /** Run inside this network namespace (`ip netns exec NS cmd ...`); for tests. */
  netns?: string;
}

export interface RunResult {
  /** Exit status; 127 when the command could not be started, 124 when it was killed by the timeout. */
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the timeout killed the command. */
  timedOut?: boolean;
}

/**
 * Something that runs one command and reports how it ended, like `run` (the default everywhere). It
 * resolves, never rejects, for a command that ran and failed; tests inject scripted ones.
 */
export type CommandRunner = (cmd: string, args: readonly string[], opts: RunOptions) => Promise<RunResult>;

/** Whether the result is a timeout (killed by `run`'s timer, or exit status 124 like timeout(1)). */
export function isTimeout(r: RunResult): boolean {
  return r.timedOut === true || r.code === 124;
}

export const DEFAULT_TIMEOUT_MS = 5000;
/** Output beyond this many bytes per stream is dropped (the command keeps running). */
const MAX_OUTPUT = 16 * 1024 * 1024;

/** The argument vector actually executed, including a `ip netns exec` prefix. */
export function commandLine(cmd: string, args: readonly string[], opts: RunOptions = {}): string[] {
  return opts.netns !== undefined ? ['ip', 'netns', 'exec', opts.netns, cmd, ...args] : [cmd, ...args];
}

/** A readable rendering of an argument vector (quoted where needed), for messages. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:@%+=,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Run a command; resolves with its exit status and output, never rejects. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const argv = commandLine(cmd, args, opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise<RunResult>((resolve) => {
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let settled = false;
    let timedOut = false;
    let spawnError: Error | undefined;
    const finish = (code: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      let stderr = Buffer.concat(errOut).toString('utf8');
      if (spawnError) stderr += `${stderr && !stderr.endsWith('\n') ? '\n' : ''}${spawnError.message}`;
      if (timedOut) stderr += `${stderr && !stderr.endsWith('\n') ? '\n' : ''}timed out after ${timeoutMs} ms`;
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr, ...(timedOut ? { timedOut: true } : {}) });
    };
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      // 'close' normally follows the kill; do not wait for it forever.
      setTimeout(() => finish(124), 1000).unref();
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (outLen < MAX_OUTPUT) out.push(d);
      outLen += d.length;
    });
    child.stderr.on('data', (d: Buffer) => {
      if (errLen < MAX_OUTPUT) errOut.push(d);
      errLen += d.length;
    });
    child.on('error', (e) => {
      spawnError = e;
      // A command that could not be started never emits 'close' with a status of its own.
      if (child.pid === undefined) finish(127);
    });
    child.on('close', (code, signal) => {
      if (timedOut) finish(124);
      else if (spawnError && code === null) finish(127);
      else finish(code ?? (signal ? 128 : 1));
    });
    child.stdin.on('error', () => undefined); // EPIPE when the command exits without reading its input
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Run a command; resolves with its output on exit status 0, rejects with the command line and stderr otherwise. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(describeFailure(cmd, args, opts, r));
  return r;
}

export function describeFailure(cmd: string, args: readonly string[], opts: RunOptions, r: RunResult): string {
  const detail = (r.stderr.trim() || r.stdout.trim()).replace(/\s*\n\s*/g, '; ');
  return `\`${formatCommand(commandLine(cmd, args, opts))}\` failed (exit ${r.code})${detail ? `: ${detail}` : ''}`;
}
