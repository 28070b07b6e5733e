// SPDX-License-Identifier: GPL-2.0-only
// The network-namespace lab: a backbone switch (namespace `bb`, bridge br0) joining the MLR, two
// CNs and the correspondent server, and an "air" namespace whose bridges cell1/cell2 are the two
// Wi-Fi cells. Mobile stations are namespaces whose eth0 is a veth whose peer sits in a cell bridge;
// a roam re-enslaves that peer to the other cell bridge (carrier stays up, like a roam inside one ESS).
//
//            srv 10.200.0.10 (routes 10.1/16 -> cn1, 10.2/16 -> cn2)
//              |
//   mlr ---- [bb: br0] ---- cn1 10.200.0.11 (bb0)       cn2 10.200.0.12 (bb0)
//   .2                       | wl0 10.1.0.1/24            | wl0 10.2.0.1/24
//                         [air: cell1]                 [air: cell2]
//                            |  p-<ms>  <-- moveMs -->    |
//                           ms (eth0)
//
// Safety: nothing here touches the root namespace. Every link is created inside a lab namespace
// (`ip -n NS link add ... peer ... netns OTHER`), every sysctl is written inside a lab namespace, and
// every lab removes all it made on destroy(), on process exit and on SIGINT/SIGTERM. Namespaces are
// named `<runid>-<role>` with runid `tl<pid % 10000>[a-z]?`; /run/tmip-lab/<runid>.json records the
// owning pid so destroyStaleLabs() can clean up after a crashed run.
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/** Every address and name of the lab topology. */
export const LAB = {
  backboneNet: '10.200.0.0/24',
  backbonePrefix: 24,
  mlrIp: '10.200.0.2',
  srvIp: '10.200.0.10',
  cn1Ip: '10.200.0.11',
  cn2Ip: '10.200.0.12',
  /** Pools routed by srv to each CN. */
  cn1Pool: '10.1.0.0/16',
  cn2Pool: '10.2.0.0/16',
  /** Each CN's own address on its mobile interface (wl0). */
  cn1WlIp: '10.1.0.1',
  cn2WlIp: '10.2.0.1',
  wlPrefix: 24,
  /** Interface names: the backbone interface of mlr/srv/cn1/cn2, the CNs' mobile interface, the MS interface. */
  backboneIf: 'bb0',
  mobileIf: 'wl0',
  msIf: 'eth0',
  /** Bridges: in namespace bb, and the two cells in namespace air. */
  backboneBridge: 'br0',
  cellBridges: { 1: 'cell1', 2: 'cell2' } as const,
  /** Per cell: the CN serving it, its backbone address, its wl0 address and the pool it owns. */
  cells: {
    1: { cn: 'cn1', cnIp: '10.200.0.11', wlIp: '10.1.0.1', pool: '10.1.0.0/16' },
    2: { cn: 'cn2', cnIp: '10.200.0.12', wlIp: '10.2.0.1', pool: '10.2.0.0/16' },
  } as const,
} as const;

export type Cell = 1 | 2;
export type FixedRole = 'mlr' | 'cn1' | 'cn2' | 'srv' | 'air' | 'bb';
/** A fixed role or the name of a mobile station added with addMs(). */
export type Role = FixedRole | (string & {});

const FIXED_ROLES: readonly FixedRole[] = ['bb', 'air', 'mlr', 'srv', 'cn1', 'cn2'];
const HOST_IPS: Record<'mlr' | 'srv' | 'cn1' | 'cn2', string> = { mlr: LAB.mlrIp, srv: LAB.srvIp, cn1: LAB.cn1Ip, cn2: LAB.cn2Ip };

/** Where lab ownership records live (tmpfs, so a reboot forgets them together with the namespaces). */
export const LAB_REGISTRY_DIR = '/run/tmip-lab';
/** The namespace names a lab makes: `<runid>-<role>`, runid `tl<digits>[a-z]?`. */
export const LAB_NS_PATTERN = /^(tl\d{1,4}[a-z]?)-[a-z][a-z0-9]*$/;

export interface ExecResult {
  /** Exit code; -1 when killed (timeout) or not started. */
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface SpawnOptions {
  /** Append every output line (prefixed with time and stream) to this file. */
  logFile?: string;
  /** Extra environment variables (merged over process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
  /** performance.now() of this process when the line was read. */
  at: number;
}

export interface WaitLineOptions {
  /** Only consider lines with index >= since (see mark()); default 0, i.e. lines already seen count. */
  since?: number;
  /** Which stream to search; default stdout. */
  stream?: 'stdout' | 'stderr' | 'both';
}

/** A long-running process inside a lab namespace, tracked by the lab and killed by destroy(). */
export interface LabProcess {
  role: Role;
  ns: string;
  cmd: string;
  args: string[];
  child: ChildProcess;
  pid: number;
  /** Every output line so far, both streams, in arrival order. */
  lines: OutputLine[];
  /** Texts of the stdout lines so far. */
  stdout(): string[];
  /** Index to pass as `since` so that only later lines are considered. */
  mark(): number;
  /** Resolves with the first matching line; rejects on timeout or when the process exits first. */
  waitForLine(re: RegExp, timeoutMs: number, opts?: WaitLineOptions): Promise<string>;
  /** Subscribe to lines as they arrive; returns an unsubscribe function. */
  onLine(cb: (line: OutputLine) => void): () => void;
  /** Set once the process has exited. */
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Send a signal to the process group; false when it is gone. */
  signal(sig: NodeJS.Signals): boolean;
  /** SIGTERM, then SIGKILL after graceMs (default 2000); resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface MsHandle {
  name: string;
  /** Full namespace name. */
  ns: string;
  /** Interface inside the MS namespace (eth0). */
  iface: string;
  /** The veth peer in namespace air that is enslaved to a cell bridge. */
  peer: string;
  mac: string;
  /** The cell the MS is attached to now. */
  cell: Cell;
}

export interface AddMsOptions {
  /** Fixed MAC for eth0; default a random locally administered unicast one. */
  mac?: string;
}

export interface LabCreateOptions {
  /** A label recorded with the run (shown by lab-cli, used in the temp dir name). */
  name?: string;
  /** Progress messages while building and tearing down; default silent. */
  log?: (message: string) => void;
}

interface RegistryRecord {
  runId: string;
  pid: number;
  /** Start time of the owning process (field 22 of /proc/PID/stat), to tell a reused pid apart. */
  pidStart: string;
  keep: boolean;
  created: string;
  name?: string;
  /** The lab's scratch directory, removed with the lab. */
  tmpDir?: string;
}

const liveLabs = new Set<Lab>();
let hooksInstalled = false;
let signalling = false;

function onExitHook(): void {
  for (const lab of [...liveLabs]) lab.destroySync();
}

function onSignalHook(sig: NodeJS.Signals): void {
  const code = 128 + (os.constants.signals[sig] ?? 15);
  if (signalling) {
    // A second signal while cleaning up: do the synchronous (SIGKILL) cleanup and leave now.
    onExitHook();
    process.exit(code);
  }
  signalling = true;
  process.stderr.write(`lab: ${sig}: tearing down ${liveLabs.size} lab(s)\n`);
  const all = Promise.allSettled([...liveLabs].map((l) => l.destroy()));
  const cap = new Promise((resolve) => setTimeout(resolve, 8000).unref());
  void Promise.race([all, cap]).finally(() => {
    onExitHook();
    process.exit(code);
  });
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExitHook);
  process.on('SIGINT', onSignalHook);
  process.on('SIGTERM', onSignalHook);
  process.on('SIGHUP', onSignalHook);
}

function removeHooksIfIdle(): void {
  if (!hooksInstalled || liveLabs.size > 0 || signalling) return;
  hooksInstalled = false;
  process.off('exit', onExitHook);
  process.off('SIGINT', onSignalHook);
  process.off('SIGTERM', onSignalHook);
  process.off('SIGHUP', onSignalHook);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A timer for Promise.race that does not keep the process alive. */
function after(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Run a command in the root namespace context (only ever `ip netns ...`/`ip -n ...`), never throwing. */
function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? 10_000,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        env: opts.env ?? process.env,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr, timedOut: false });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        const timedOut = Boolean(e.killed) || e.signal === 'SIGKILL';
        const code = typeof e.code === 'number' ? e.code : -1;
        resolve({
          code: timedOut ? -1 : code,
          stdout: stdout ?? '',
          stderr: (stderr ?? '') + (typeof e.code === 'string' ? `${e.code}: ${e.message}` : ''),
          timedOut,
        });
      },
    );
  });
}

async function runOk(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Start time (field 22 of /proc/PID/stat) and state of a process; null when it does not exist. */
function procStat(pid: number): { start: string; state: string } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which is in parentheses and may contain spaces).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '?', start: rest[19] ?? '' };
  } catch {
    return null;
  }
}

function pidStartTime(pid: number): string | null {
  return procStat(pid)?.start ?? null;
}

/** The owner still runs: same pid, same start time, and not a zombie. */
function ownerAlive(rec: RegistryRecord): boolean {
  const st = procStat(rec.pid);
  return st !== null && st.start === rec.pidStart && st.state !== 'Z' && st.state !== 'X';
}

function readRegistry(runId: string): RegistryRecord | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(LAB_REGISTRY_DIR, `${runId}.json`), 'utf8')) as RegistryRecord;
  } catch {
    return null;
  }
}

function writeRegistry(rec: RegistryRecord): void {
  fs.mkdirSync(LAB_REGISTRY_DIR, { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(LAB_REGISTRY_DIR, `${rec.runId}.json`), JSON.stringify(rec) + '\n');
}

function removeRegistry(runId: string): void {
  fs.rmSync(path.join(LAB_REGISTRY_DIR, `${runId}.json`), { force: true });
}

/** All network namespace names (`ip netns list`, first word of each line). */
export async function listNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { timeoutMs: 5000 });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

function listNamespacesSync(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

async function nsPids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns], { timeoutMs: 5000 });
  return r.stdout
    .split(/\s+/)
    .map((s) => Number(s))
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

function nsPidsSync(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 });
  return (r.stdout ?? '')
    .split(/\s+/)
    .map((s) => Number(s))
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

function killQuiet(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Kill every process in the namespaces (bounded retries), then delete them. */
async function wipeNamespaces(names: string[], log: (m: string) => void): Promise<void> {
  for (let round = 0; round < 5; round++) {
    let any = false;
    for (const ns of names) {
      for (const pid of await nsPids(ns)) {
        any = true;
        killQuiet(pid, 'SIGKILL');
      }
    }
    if (!any) break;
    await sleep(100); // poll step of this bounded loop: re-list (and re-kill) after the SIGKILLs land
  }
  for (const ns of names) {
    const r = await run('ip', ['netns', 'del', ns], { timeoutMs: 10_000 });
    if (r.code !== 0 && !/No such file|not found|Cannot remove/i.test(r.stderr)) log(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
}

function wipeNamespacesSync(names: string[]): void {
  for (let round = 0; round < 3; round++) {
    let any = false;
    for (const ns of names) {
      for (const pid of nsPidsSync(ns)) {
        any = true;
        killQuiet(pid, 'SIGKILL');
      }
    }
    if (!any) break;
    spawnSync('sleep', ['0.1']);
  }
  for (const ns of names) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
}

/** Order for deletion: mobile stations first, then hosts, then the switches. */
function deletionOrder(names: string[], runId: string): string[] {
  const rank = (n: string) => {
    const role = n.slice(runId.length + 1);
    const i = ['mlr', 'srv', 'cn1', 'cn2', 'air', 'bb'].indexOf(role);
    return i < 0 ? -1 : i;
  };
  return [...names].sort((a, b) => rank(a) - rank(b));
}

export interface LabInfo {
  runId: string;
  namespaces: string[];
  /** Owning pid from the registry record, if any. */
  pid: number | null;
  ownerAlive: boolean;
  keep: boolean;
  name?: string;
}

/** Labs present on this machine: from the registry and from namespace names matching LAB_NS_PATTERN. */
export async function listLabs(): Promise<LabInfo[]> {
  const byRun = new Map<string, string[]>();
  for (const ns of await listNamespaces()) {
    const m = LAB_NS_PATTERN.exec(ns);
    if (!m?.[1]) continue;
    const list = byRun.get(m[1]) ?? [];
    list.push(ns);
    byRun.set(m[1], list);
  }
  let files: string[] = [];
  try {
    files = fs.readdirSync(LAB_REGISTRY_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    /* none */
  }
  for (const f of files) {
    const id = f.slice(0, -5);
    if (!byRun.has(id)) byRun.set(id, []);
  }
  const out: LabInfo[] = [];
  for (const [runId, namespaces] of byRun) {
    const rec = readRegistry(runId);
    out.push({
      runId,
      namespaces: namespaces.sort(),
      pid: rec?.pid ?? null,
      ownerAlive: rec ? ownerAlive(rec) : false,
      keep: rec?.keep ?? false,
      ...(rec?.name ? { name: rec.name } : {}),
    });
  }
  return out.sort((a, b) => a.runId.localeCompare(b.runId));
}

/** Tear down one lab by run id regardless of its owner (kills its processes, deletes its namespaces). */
export async function destroyLabById(runId: string, log: (m: string) => void = () => {}): Promise<string[]> {
  if (!/^[a-z][a-z0-9]{0,11}$/.test(runId)) throw new Error(`bad run id ${JSON.stringify(runId)}`);
  const names = (await listNamespaces()).filter((n) => n.startsWith(`${runId}-`));
  await wipeNamespaces(deletionOrder(names, runId), log);
  const tmp = readRegistry(runId)?.tmpDir;
  if (tmp && path.basename(tmp).startsWith(`tmip-lab-${runId}-`)) fs.rmSync(tmp, { recursive: true, force: true });
  removeRegistry(runId);
  return names;
}

/**
 * Remove labs left behind by runs that are gone: namespaces matching LAB_NS_PATTERN whose registry
 * record names a dead process (or that have no record at all). Labs kept on purpose (lab-cli up) are
 * left alone unless includeKept. Returns the run ids removed.
 */
export async function destroyStaleLabs(opts: { includeKept?: boolean; log?: (m: string) => void } = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const lab of await listLabs()) {
    if (lab.ownerAlive && !lab.keep) continue;
    if (lab.keep && !opts.includeKept) continue;
    if (lab.ownerAlive && lab.pid === process.pid) continue;
    await destroyLabById(lab.runId, opts.log);
    removed.push(lab.runId);
  }
  return removed;
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] ?? 0) & 0xfc) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const NS_SYSCTLS = [
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
  'net.ipv6.conf.all.disable_ipv6=1',
  'net.ipv6.conf.default.disable_ipv6=1',
];

export class Lab {
  readonly runId: string;
  readonly prefix: string;
  readonly name: string | undefined;
  /** Per-lab scratch directory (scripts, lease files); removed by destroy(). */
  readonly tmpDir: string;
  private readonly log: (m: string) => void;
  private readonly namespaces = new Set<string>();
  private readonly procs = new Set<LabProcess>();
  private readonly msHosts = new Map<string, MsHandle>();
  private destroying: Promise<void> | null = null;
  private destroyed = false;

  private constructor(runId: string, name: string | undefined, log: (m: string) => void) {
    this.runId = runId;
    this.prefix = `${runId}-`;
    this.name = name;
    this.log = log;
    this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `tmip-lab-${runId}-`));
  }

  /** Build the whole fixed topology. On any failure what was made is torn down and the error rethrown. */
  static async create(opts: LabCreateOptions = {}): Promise<Lab> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new Error('the lab needs root (network namespaces)');
    const existing = new Set((await listNamespaces()).map((n) => LAB_NS_PATTERN.exec(n)?.[1]).filter((x): x is string => Boolean(x)));
    const base = `tl${process.pid % 10000}`;
    let runId: string | null = null;
    for (const suffix of ['', ...'abcdefghijklmnopqrstuvwxyz']) {
      const id = base + suffix;
      if (existing.has(id)) continue;
      const rec = readRegistry(id);
      if (rec && (ownerAlive(rec) || rec.keep)) continue;
      runId = id;
      break;
    }
    if (!runId) throw new Error(`no free lab run id with base ${base}`);
    const lab = new Lab(runId, opts.name, opts.log ?? (() => {}));
    writeRegistry({
      runId,
      pid: process.pid,
      pidStart: pidStartTime(process.pid) ?? '',
      keep: false,
      created: new Date().toISOString(),
      tmpDir: lab.tmpDir,
      ...(opts.name ? { name: opts.name } : {}),
    });
    liveLabs.add(lab);
    installHooks();
    try {
      await lab.build();
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /** Full namespace name of a role or MS name. */
  ns(role: Role): string {
    if ((FIXED_ROLES as readonly string[]).includes(role) || this.msHosts.has(role)) return this.prefix + role;
    throw new Error(`unknown lab role ${JSON.stringify(role)}`);
  }

  /** Every namespace this lab has made (and not yet deleted). */
  allNamespaces(): string[] {
    return [...this.namespaces];
  }

  ms(name: string): MsHandle {
    const h = this.msHosts.get(name);
    if (!h) throw new Error(`no MS named ${JSON.stringify(name)}`);
    return h;
  }

  /** Run a command inside a namespace (no shell): `ip netns exec NS cmd args...`. Never throws. */
  exec(role: Role, cmd: string, args: string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.ns(role), cmd, ...args], opts);
  }

  /** exec() that throws (with stderr) on a non-zero exit; resolves with stdout. */
  async execOk(role: Role, cmd: string, args: string[] = [], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(role, cmd, args, opts);
    if (r.code !== 0)
      throw new Error(`[${role}] ${cmd} ${args.join(' ')} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `ip -n NS args...`, throwing on failure. */
  ip(role: Role, args: string[]): Promise<string> {
    return runOk('ip', ['-n', this.ns(role), ...args]);
  }

  /** Start a long-running process inside a namespace; it is tracked and killed by destroy(). */
  spawn(role: Role, cmd: string, args: string[] = [], opts: SpawnOptions = {}): LabProcess {
    if (this.destroyed || this.destroying) throw new Error('lab is destroyed');
    const ns = this.ns(role);
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env ?? {}) },
      detached: true, // own process group: stop() reaches the command's children (DHCP scripts) too
    });
    const lines: OutputLine[] = [];
    const listeners = new Set<(l: OutputLine) => void>();
    const logStream = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: 'a' }) : null;
    const label = `${role}:${path.basename(cmd)}`;
    logStream?.write(`# ${new Date().toISOString()} ${ns}: ${cmd} ${args.join(' ')}\n`);
    const push = (stream: 'stdout' | 'stderr', text: string) => {
      const line: OutputLine = { stream, text, at: performance.now() };
      lines.push(line);
      logStream?.write(`${new Date().toISOString().slice(11, 23)} ${label} ${stream === 'stderr' ? 'E' : 'O'} ${text}\n`);
      for (const l of listeners) l(line);
    };
    for (const stream of ['stdout', 'stderr'] as const) {
      let partial = '';
      const src = child[stream];
      src?.setEncoding('utf8');
      src?.on('data', (chunk: string) => {
        partial += chunk;
        let i: number;
        while ((i = partial.indexOf('\n')) >= 0) {
          push(stream, partial.slice(0, i).replace(/\r$/, ''));
          partial = partial.slice(i + 1);
        }
      });
      src?.on('end', () => {
        if (partial) push(stream, partial);
        partial = '';
      });
    }
    let resolveExit!: (s: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (resolveExit = r));
    const proc: LabProcess = {
      role,
      ns,
      cmd,
      args,
      child,
      pid: child.pid ?? -1,
      lines,
      exitStatus: null,
      exited,
      stdout: () => lines.filter((l) => l.stream === 'stdout').map((l) => l.text),
      mark: () => lines.length,
      onLine(cb) {
        listeners.add(cb);
        return () => listeners.delete(cb);
      },
      waitForLine(re, timeoutMs, o = {}) {
        const since = o.since ?? 0;
        const want = o.stream ?? 'stdout';
        const matches = (l: OutputLine) => (want === 'both' || l.stream === want) && re.test(l.text);
        for (let i = since; i < lines.length; i++) {
          const l = lines[i];
          if (l && matches(l)) return Promise.resolve(l.text);
        }
        return new Promise<string>((resolve, reject) => {
          const tail = () =>
            lines
              .slice(-8)
              .map((l) => `  ${l.stream}: ${l.text}`)
              .join('\n');
          const done = () => {
            clearTimeout(timer);
            listeners.delete(onLine);
          };
          const onLine = (l: OutputLine) => {
            if (matches(l)) {
              done();
              resolve(l.text);
            }
          };
          const timer = setTimeout(() => {
            done();
            reject(new Error(`${label}: no line matching ${re} within ${timeoutMs} ms; last lines:\n${tail()}`));
          }, timeoutMs);
          listeners.add(onLine);
          void exited.then((s) => {
            // `exited` settles on the child's 'close', which comes after both pipes have ended: every
            // line the process printed has been pushed (and offered to onLine) by now.
            if (!listeners.has(onLine)) return;
            done();
            reject(new Error(`${label}: exited (code ${s.code}, signal ${s.signal}) before a line matching ${re}; last lines:\n${tail()}`));
          });
        });
      },
      signal(sig) {
        if (proc.exitStatus || proc.pid <= 0) return false;
        return killQuiet(-proc.pid, sig) || killQuiet(proc.pid, sig);
      },
      async stop(graceMs = 2000) {
        if (proc.exitStatus) return;
        proc.signal('SIGTERM');
        const t = await Promise.race([exited.then(() => true), after(graceMs).then(() => false)]);
        if (!t) {
          proc.signal('SIGKILL');
          await Promise.race([exited, after(2000)]);
        }
      },
    };
    child.on('error', (err) => push('stderr', `spawn error: ${err.message}`));
    child.on('close', (code, signal) => {
      proc.exitStatus = { code, signal };
      logStream?.write(`# exited code=${code} signal=${signal}\n`);
      logStream?.end();
      this.procs.delete(proc);
      resolveExit({ code, signal });
    });
    this.procs.add(proc);
    return proc;
  }

  /** Add a mobile station namespace with eth0 attached to a cell. */
  async addMs(name: string, cell: Cell, opts: AddMsOptions = {}): Promise<MsHandle> {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(name)) throw new Error(`MS name must match [a-z][a-z0-9]{0,11}: ${JSON.stringify(name)}`);
    if ((FIXED_ROLES as readonly string[]).includes(name) || this.msHosts.has(name)) throw new Error(`MS name ${name} is taken`);
    const mac = (opts.mac ?? randomMac()).toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) throw new Error(`bad MAC ${mac}`);
    const ns = this.prefix + name;
    const handle: MsHandle = { name, ns, iface: LAB.msIf, peer: `p-${name}`, mac, cell };
    this.msHosts.set(name, handle);
    await this.addNamespace(name);
    await this.ip('air', ['link', 'add', handle.peer, 'type', 'veth', 'peer', 'name', LAB.msIf, 'address', mac, 'netns', ns]);
    await this.ip('air', ['link', 'set', 'dev', handle.peer, 'master', LAB.cellBridges[cell], 'up']);
    await this.ip(name, ['link', 'set', 'dev', LAB.msIf, 'up']);
    await this.sysctl(name, [`net.ipv4.conf.${LAB.msIf}.rp_filter=0`]);
    this.log(`MS ${name} (${mac}) in cell${cell}`);
    return { ...handle };
  }

  /** Remove an MS namespace (its processes are killed). */
  async removeMs(name: string): Promise<void> {
    const h = this.ms(name);
    for (const p of [...this.procs]) if (p.ns === h.ns) await p.stop();
    await wipeNamespaces([h.ns], this.log);
    this.namespaces.delete(h.ns);
    this.msHosts.delete(name);
  }

  /**
   * Roam: re-enslave the MS's peer port to the other cell bridge in one `ip link set dev P master cellN`.
   * Returns performance.now() taken right after that command completed.
   */
  async moveMs(name: string, cell: Cell): Promise<number> {
    const h = this.ms(name);
    await this.ip('air', ['link', 'set', 'dev', h.peer, 'master', LAB.cellBridges[cell]]);
    const t = performance.now();
    h.cell = cell;
    this.log(`MS ${name} -> cell${cell}`);
    return t;
  }

  /** Carrier flap: set the AP-side peer down/up (the MS's eth0 then sees NO-CARRIER; its addresses stay). */
  async setMsLink(name: string, up: boolean): Promise<number> {
    const h = this.ms(name);
    await this.ip('air', ['link', 'set', 'dev', h.peer, up ? 'up' : 'down']);
    return performance.now();
  }

  /** The lab address of a fixed host, or the first IPv4 address on an MS's eth0 (null when it has none). */
  async addressOf(role: Role): Promise<string | null> {
    if (role in HOST_IPS) return HOST_IPS[role as keyof typeof HOST_IPS];
    const h = this.ms(role);
    const out = await this.ip(role, ['-4', '-o', 'addr', 'show', 'dev', h.iface]);
    const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out);
    return m?.[1] ?? null;
  }

  /** Write sysctls inside a namespace (`sysctl -q -e -w k=v ...`). */
  async sysctl(role: Role, settings: string[]): Promise<void> {
    await this.execOk(role, 'sysctl', ['-q', '-e', '-w', ...settings]);
  }

  /** Mark this lab to outlive the process (lab-cli up): exit hooks and destroyStaleLabs() leave it alone. */
  keep(): void {
    const rec = readRegistry(this.runId);
    if (rec) writeRegistry({ ...rec, keep: true });
    liveLabs.delete(this);
    removeHooksIfIdle();
  }

  /** Kill every tracked and remaining process, delete every namespace of this run. Idempotent. */
  destroy(): Promise<void> {
    if (this.destroying) return this.destroying;
    this.destroying = (async () => {
      const t0 = performance.now();
      await Promise.allSettled([...this.procs].map((p) => p.stop(2000)));
      const names = new Set(this.namespaces);
      for (const n of await listNamespaces()) if (n.startsWith(this.prefix)) names.add(n);
      await wipeNamespaces(deletionOrder([...names], this.runId), this.log);
      const left = (await listNamespaces()).filter((n) => n.startsWith(this.prefix));
      if (left.length) this.log(`namespaces left after destroy: ${left.join(' ')}`);
      this.namespaces.clear();
      this.msHosts.clear();
      fs.rmSync(this.tmpDir, { recursive: true, force: true });
      removeRegistry(this.runId);
      this.destroyed = true;
      liveLabs.delete(this);
      removeHooksIfIdle();
      this.log(`lab ${this.runId} destroyed in ${Math.round(performance.now() - t0)} ms`);
    })();
    return this.destroying;
  }

  /** Synchronous SIGKILL teardown for the process 'exit' hook. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.procs) if (!p.exitStatus && p.pid > 0 && !killQuiet(-p.pid, 'SIGKILL')) killQuiet(p.pid, 'SIGKILL');
    const names = new Set(this.namespaces);
    for (const n of listNamespacesSync()) if (n.startsWith(this.prefix)) names.add(n);
    wipeNamespacesSync(deletionOrder([...names], this.runId));
    try {
      fs.rmSync(this.tmpDir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
    removeRegistry(this.runId);
    this.destroyed = true;
    liveLabs.delete(this);
  }

  private async addNamespace(role: string): Promise<void> {
    const ns = this.prefix + role;
    this.namespaces.add(ns); // before creation, so a half-made one is still cleaned up
    await runOk('ip', ['netns', 'add', ns]);
    await runOk('ip', ['-n', ns, 'link', 'set', 'dev', 'lo', 'up']);
    await runOk('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-e', '-w', ...NS_SYSCTLS]);
  }

  private async build(): Promise<void> {
    const t0 = performance.now();
    for (const role of FIXED_ROLES) await this.addNamespace(role);
    for (const role of ['srv', 'cn1', 'cn2']) await this.sysctl(role, ['net.ipv4.ip_forward=1']);

    // Backbone: bridge br0 in bb, a veth per host (v-<role> in bb, bb0 in the host).
    await this.ip('bb', [
      'link',
      'add',
      LAB.backboneBridge,
      'type',
      'bridge',
      'stp_state',
      '0',
      'forward_delay',
      '0',
      'mcast_snooping',
      '0',
    ]);
    await this.ip('bb', ['link', 'set', 'dev', LAB.backboneBridge, 'up']);
    for (const role of ['mlr', 'srv', 'cn1', 'cn2'] as const) {
      const port = `v-${role}`;
      await this.ip('bb', ['link', 'add', port, 'type', 'veth', 'peer', 'name', LAB.backboneIf, 'netns', this.ns(role)]);
      await this.ip('bb', ['link', 'set', 'dev', port, 'master', LAB.backboneBridge, 'up']);
      await this.ip(role, ['addr', 'add', `${HOST_IPS[role]}/${LAB.backbonePrefix}`, 'dev', LAB.backboneIf]);
      await this.ip(role, ['link', 'set', 'dev', LAB.backboneIf, 'up']);
    }

    // Air: one bridge per cell; each CN's wl0 is a veth whose peer (w-<cn>) is a port of its cell.
    for (const cell of [1, 2] as const) {
      const br = LAB.cellBridges[cell];
      const { cn, wlIp } = LAB.cells[cell];
      await this.ip('air', ['link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
      await this.ip('air', ['link', 'set', 'dev', br, 'up']);
      await this.ip('air', ['link', 'add', `w-${cn}`, 'type', 'veth', 'peer', 'name', LAB.mobileIf, 'netns', this.ns(cn)]);
      await this.ip('air', ['link', 'set', 'dev', `w-${cn}`, 'master', br, 'up']);
      await this.ip(cn, ['addr', 'add', `${wlIp}/${LAB.wlPrefix}`, 'dev', LAB.mobileIf]);
      await this.ip(cn, ['link', 'set', 'dev', LAB.mobileIf, 'up']);
      await this.ip(cn, ['route', 'add', 'default', 'via', LAB.srvIp, 'dev', LAB.backboneIf]);
      await this.sysctl(cn, [`net.ipv4.conf.${LAB.backboneIf}.rp_filter=0`, `net.ipv4.conf.${LAB.mobileIf}.rp_filter=0`]);
    }
    await this.sysctl('mlr', [`net.ipv4.conf.${LAB.backboneIf}.rp_filter=0`]);
    await this.sysctl('srv', [`net.ipv4.conf.${LAB.backboneIf}.rp_filter=0`]);
    await this.ip('srv', ['route', 'add', LAB.cn1Pool, 'via', LAB.cn1Ip, 'dev', LAB.backboneIf]);
    await this.ip('srv', ['route', 'add', LAB.cn2Pool, 'via', LAB.cn2Ip, 'dev', LAB.backboneIf]);
    this.log(`lab ${this.runId} built in ${Math.round(performance.now() - t0)} ms`);
  }
}
