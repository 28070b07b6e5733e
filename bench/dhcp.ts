// SPDX-License-Identifier: GPL-2.0-only
// bench/dhcp: new DHCP clients per second, tmip beside Kea and dnsmasq in the same run, with the
// same generator (bench/dhcp-gen.ts) on the same path: a client veth in its own namespace, a cell
// bridge, the server's veth. Per server and offered rate: full DORA from new MACs, broadcast (not
// relayed), for --seconds; completed/s, drops, DISCOVER->ACK latency, the servers' CPU (live helper
// processes included), what tmip refused or shed, and whether the generator kept to its schedule.
// Servers run one after the other, each in namespaces of its own:
//   tmip      the lab of test/lab/tmip-lab.ts (MLR + CN1 serving cell 1; CN2 idle), the CN's
//             per-cell budgets opened up so the bench measures service, not refusal (printed);
//   kea       kea-dhcp4, memfile leases with persist off, one /10 subnet;
//   dnsmasq   dnsmasq --no-daemon, DHCP only, the same /10 range, lease file on tmpfs (/dev/shm).
// A peer whose binary is missing is skipped with the command that installs it. A server's steps run
// one after the other and its leases accumulate (the note says how many it holds): tmip's CN then
// holds a gateway address per lease on one interface, which the kernel adds in time linear in the
// addresses already there (bench/gateways.ts measures it).
// With --memory: tmip only; the CN's VmRSS/VmHWM idle, after 250 and after 5,000 leases, beside
// the idle CN2 of the same lab at the same moments and a bare Node process as references, and the
// CN's own CPU per lease between the points (what Node's flags change; its `ip`/`nft` helpers apart).
// Each point is read --settle-ms (default 15 s) after the last lease: an access point's steady state,
// after V8's memory reducer, which starts 8 s after allocation slows, has given back what the burst of
// new clients took; the HWM column keeps the burst's peak.
// The CNs run with the Node flags of files/usr/sbin/tmip-cn, or TMIP_CN_NODE_FLAGS to measure others
// (test/support/node-flags.ts); the second line of output says which. `--transport mqtt` (or tls)
// has the CNs reach the MLR that way (the lab starts mosquitto): an MQTT CN also loads MQTT.js.
// Usage: node build/bench/dhcp.js [--rates 100,300,1000,3000,6000] [--seconds 3] [--servers tmip,kea,dnsmasq]
//        [--timeout-ms 2000] [--retransmit-ms 0]      (servers also: dnsmasq-noping = dnsmasq --no-ping)
//        [TMIP_CN_NODE_FLAGS='--max-semi-space-size=1 ...'] node build/bench/dhcp.js --memory [--memory-rate 100]
//        [--settle-ms 15000] [--transport tcp|tls|mqtt]
//        (root; needs `npm run compile && bash build.sh` first)
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, LAB } from '../test/lab/lab.js';
import { TmipLab, type CnName } from '../test/lab/tmip-lab.js';
import { highestSustained, MAX_STEP_CLIENTS, parseRates, type StepResult } from './dhcp-load.js';
import { intArg, processMemory, textArg } from './synthetic.js';
import { NODE_FLAGS_ENV, shippedNodeFlags } from '../test/support/node-flags.js';

const GEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dhcp-gen.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The subnet Kea and dnsmasq hand out, and the extra pool of tmip's CN1: room for any run's clients. */
const BIG_NET = '10.64.0.0/10';
const SERVER_IP = '10.64.0.1';
const POOL_FIRST = '10.64.0.10';
const POOL_LAST = '10.127.255.250';
const LEASE_SECONDS = 600;

/**
 * tmip's options that differ from the shipped defaults, and why. Without them the bench would
 * measure the refusal path: 20 new stations a second (burst 40) is the CN's default budget, and the
 * MLR holds at most 256 unrequested offers per CN.
 */
const TMIP_CN_OPTIONS = [
  ["new_station_rate '10000'", "default 20: new stations a CN answers per second (burst 2x); 10000 is the option's maximum"],
  [`addr_pool '${BIG_NET} * *'`, 'a second pool (the lab gives CN1 only its wl0 /24, 62 cells)'],
  ["hostapd '0'", 'default 1: no hostapd in the lab anyway, so require_association never applies'],
] as const;
const TMIP_MLR_OPTIONS = [["max_offers '4096'", 'default 256: offered cells a CN may hold unrequested; 4096 is the maximum']] as const;

type ServerName = 'tmip' | 'kea' | 'dnsmasq' | 'dnsmasq-noping';
const SERVER_TAG: Record<ServerName, number> = { tmip: 0x10, kea: 0x20, dnsmasq: 0x30, 'dnsmasq-noping': 0x50 };

interface GenResult extends StepResult {
  rate: number;
  seconds: number;
  sendErrors: number;
  retransmits: number;
  firstSendError: string;
  sendLagP50: number;
  sendLagP99: number;
  sendLagMax: number;
  sendSpan: number;
  cpuPercent: number;
}

interface Step {
  server: ServerName;
  rate: number;
  r: GenResult;
  /** CPU of the server's processes over the step (tmip: CN1, MLR), in % of one core. */
  cpu: number[];
  note: string;
}

/** One generator run in namespace `ms` of `lab`; resolves with its RESULT line. */
async function generate(
  lab: Lab,
  ms: string,
  o: { rate: number; seconds?: number; count?: number; tag: number; timeoutMs: number; retransmitMs?: number },
): Promise<GenResult> {
  const args = [GEN, '--if', LAB.msIf, '--rate', String(o.rate), '--timeout-ms', String(o.timeoutMs), '--tag', String(o.tag)];
  args.push('--xid-base', String(crypto.randomInt(0x10000000, 0x7f000000)));
  if (o.retransmitMs) args.push('--retransmit-ms', String(o.retransmitMs));
  if (o.count !== undefined) args.push('--count', String(o.count));
  else args.push('--seconds', String(o.seconds ?? 3));
  const p = lab.spawn(ms, process.execPath, args);
  const n = o.count ?? o.rate * (o.seconds ?? 3);
  const line = await p.waitForLine(/^RESULT /, (n / o.rate) * 1000 + o.timeoutMs + 30_000);
  await p.exited;
  return JSON.parse(line.slice('RESULT '.length)) as GenResult;
}

/** The CN's node process: the lab spawns `ip netns exec NS node ...`, which execs node in place. */
function cnPid(t: TmipLab, name: CnName): number {
  const pid = t.cn(name).pid;
  const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  if (comm !== 'node') throw new Error(`${name}: pid ${pid} is '${comm}', not node`);
  return pid;
}

function which(bin: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin']) {
    const p = path.join(dir, bin);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '—');

function printStepHeader(): void {
  console.log(
    'server    offered/s  clients  completed/s  drop%    p50_ms   p99_ms   max_ms  offers  naks  late  gen_lag_p99/max_ms  gen_span  gen_cpu%  server_cpu%  note',
  );
}

function printStep(s: Step): void {
  const r = s.r;
  console.log(
    `${s.server.padEnd(8)}  ${String(s.rate).padStart(9)}  ${String(r.clients).padStart(7)}  ${fmt(r.completedPerSecond).padStart(11)}  ${fmt(r.dropPercent, 2).padStart(6)}  ${fmt(r.p50).padStart(7)}  ${fmt(r.p99).padStart(7)}  ${fmt(r.max).padStart(7)}  ${String(r.offers).padStart(6)}  ${String(r.naks).padStart(4)}  ${String(r.late).padStart(4)}  ${`${fmt(r.sendLagP99)}/${fmt(r.sendLagMax)}`.padStart(18)}  ${r.sendSpan.toFixed(3).padStart(8)}  ${fmt(r.cpuPercent, 0).padStart(8)}  ${s.cpu
      .map((c) => fmt(c, 0))
      .join('+')
      .padStart(11)}  ${s.note}`,
  );
}

/** The generator fell behind when its sends ran late by more than 10 ms at p99 or the step took 5% longer. */
function behind(r: GenResult): string {
  const out: string[] = [];
  if (r.sendLagP99 > 10 || r.sendSpan > 1.05) out.push('GENERATOR BEHIND SCHEDULE');
  if (r.sendErrors) out.push(`${r.sendErrors} send errors (${r.firstSendError})`);
  if (r.distinctIps !== r.completed) out.push(`only ${r.distinctIps} distinct addresses`);
  return out.join('; ');
}

/** A server under test, running in its namespaces, with the generator's namespace beside it. */
interface Server {
  name: ServerName;
  lab: Lab;
  gen: string;
  /** Lines of this server's logs that say it refused or dropped clients since `mark()`. */
  refusals(): string;
  mark(): void;
  stop(): Promise<void>;
  /** The last lines the server printed, for a failure message. */
  tail(): string;
  /** Datagrams the kernel dropped for a full UDP receive buffer in the server's namespace so far (dnsmasq's socket). */
  udpRcvbufErrors?: () => Promise<number>;
  /** DHCP frames the CN shed so far because DHCP_IN_FLIGHT exchanges of their type waited on the MLR (tmip). */
  shed?: () => Promise<number>;
  /** The server's processes (tmip: CN1 and the MLR), whose CPU time a step reports. */
  pids(): number[];
  /** The tmip lab (server 'tmip' only). */
  tmip?: TmipLab;
}

/**
 * CPU seconds a process and its children have used so far: its own (/proc/PID/stat fields 14-15),
 * its waited-for children's (16-17), and its live children's, recursively (the CN's long-lived
 * `ip -batch` and `nft -i`, whose time is not in fields 16-17 until they exit); 0 when it is gone.
 */
function cpuSeconds(pid: number): number {
  try {
    const f = statFields(pid);
    let s = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLOCK_TICKS;
    for (const child of childrenOf(pid)) s += cpuSeconds(child);
    return s;
  } catch {
    return 0;
  }
}

/** The live children of a process, of all its threads (/proc/PID/task/TID/children); [] when it is gone. */
function childrenOf(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
  }
}
/** The fields of /proc/PID/stat after the command name (field 3 is [0]); throws when the process is gone. */
function statFields(pid: number): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' '); // the name, in parentheses, may hold spaces
}

/** USER_HZ: 100 on every Linux architecture tmip runs on. */
const CLOCK_TICKS = 100;

/** `--transport`: how the lab's CNs reach the MLR (MLRP over TCP by default). */
function transportArg(): 'tcp' | 'tls' | 'mqtt' {
  const t = textArg('transport', 'tcp');
  if (t !== 'tcp' && t !== 'tls' && t !== 'mqtt') throw new Error(`--transport ${t}: expected tcp, tls or mqtt`);
  return t;
}

async function startTmip(): Promise<Server> {
  // CN1 writes its status (with the DHCP server's counters) here on SIGUSR1; it measures nothing.
  const statusDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-dhcp-bench-status-'));
  const statusFile = path.join(statusDir, 'cn1.status');
  const t = await TmipLab.start({
    transport: transportArg(),
    debug: 2,
    leaseTime: LEASE_SECONDS,
    mlrExtra: TMIP_MLR_OPTIONS.map(([o]) => `\toption ${o}`),
    cnExtra: {
      cn1: [
        ...TMIP_CN_OPTIONS.map(([o]) => (o.startsWith('addr_pool') ? `\tlist ${o}` : `\toption ${o}`)),
        `\toption status_file '${statusFile}'`,
      ],
    },
  });
  try {
    await t.lab.addMs('gen', 1);
  } catch (e) {
    await t.destroy();
    fs.rmSync(statusDir, { recursive: true, force: true });
    throw e;
  }
  let cnMark = 0;
  let mlrMark = 0;
  const count = (lines: { text: string }[], re: RegExp) => lines.filter((l) => re.test(l.text)).length;
  return {
    name: 'tmip',
    tmip: t,
    lab: t.lab,
    gen: 'gen',
    mark() {
      cnMark = t.cn('cn1').mark();
      mlrMark = t.mlr.mark();
    },
    refusals() {
      const cn = t.cn('cn1').lines.slice(cnMark);
      const mlr = t.mlr.lines.slice(mlrMark);
      const budget = count(cn, /new_station_rate|new station/);
      // busy: the MLR's bound per CN session (64 at once) or over all CNs (256, or while it runs late)
      const busy = count(cn, /: busy: /);
      const offers = count(mlr, /max_offers/);
      const errors = count(cn, /error|fail/i);
      return [
        budget && `CN new-station budget: ${budget} log lines`,
        busy && `MLR busy: ${busy} CN log lines`,
        offers && `MLR max_offers: ${offers} log lines`,
        errors && `CN error lines: ${errors}`,
      ]
        .filter(Boolean)
        .join('; ');
    },
    tail: () => t.logs(),
    pids: () => [cnPid(t, 'cn1'), t.mlr.pid],
    async shed() {
      fs.rmSync(statusFile, { force: true });
      process.kill(cnPid(t, 'cn1'), 'SIGUSR1');
      for (let i = 0; i < 40; i++) {
        await sleep(50);
        try {
          const st = JSON.parse(fs.readFileSync(statusFile, 'utf8')) as { dhcp?: { shed?: number } };
          return st.dhcp?.shed ?? NaN;
        } catch {
          // not written yet, or half written
        }
      }
      return NaN;
    },
    stop: async () => {
      await t.destroy();
      fs.rmSync(statusDir, { recursive: true, force: true });
    },
  };
}

/** Kea and dnsmasq live in a lab of their own (no tmip daemons): server and generator on one cell bridge. */
async function startPeer(name: 'kea' | 'dnsmasq' | 'dnsmasq-noping', dir: string): Promise<Server> {
  const lab = await Lab.create({ name: `dhcp-${name}` });
  try {
    const srv = name === 'kea' ? 'kea' : 'dnsm';
    const gen = name === 'kea' ? 'kgen' : 'dgen';
    await lab.addMs(srv, 1);
    await lab.addMs(gen, 1);
    await lab.ip(srv, ['addr', 'add', `${SERVER_IP}/10`, 'dev', LAB.msIf]);
    let proc;
    if (name === 'kea') {
      const conf = path.join(dir, 'kea-dhcp4.conf');
      fs.writeFileSync(
        conf,
        JSON.stringify(
          {
            Dhcp4: {
              'interfaces-config': { interfaces: [LAB.msIf], 'dhcp-socket-type': 'raw' },
              'lease-database': { type: 'memfile', persist: false, 'lfc-interval': 0 },
              'valid-lifetime': LEASE_SECONDS,
              subnet4: [
                {
                  id: 1,
                  subnet: BIG_NET,
                  pools: [{ pool: `${POOL_FIRST} - ${POOL_LAST}` }],
                  'option-data': [{ name: 'routers', data: SERVER_IP }],
                },
              ],
              loggers: [{ name: 'kea-dhcp4', output_options: [{ output: 'stdout' }], severity: 'WARN' }],
            },
          },
          null,
          2,
        ),
      );
      proc = lab.spawn(srv, 'kea-dhcp4', ['-c', conf], {
        logFile: path.join(dir, 'kea.log'),
        env: { KEA_LOCKFILE_DIR: dir, KEA_PIDFILE_DIR: dir },
      });
    } else {
      proc = lab.spawn(
        srv,
        'dnsmasq',
        [
          '--no-daemon',
          '--conf-file=/dev/null',
          '--port=0',
          `--interface=${LAB.msIf}`,
          '--user=root',
          '--group=root',
          `--dhcp-range=${POOL_FIRST},${POOL_LAST},255.192.0.0,${LEASE_SECONDS}`,
          '--dhcp-lease-max=1000000',
          `--dhcp-leasefile=${path.join(dir, 'dnsmasq.leases')}`,
          `--pid-file=${path.join(dir, 'dnsmasq.pid')}`,
          '--log-facility=-',
          '--quiet-dhcp',
          ...(name === 'dnsmasq-noping' ? ['--no-ping'] : []),
        ],
        { logFile: path.join(dir, 'dnsmasq.log') },
      );
    }
    await sleep(500);
    if (proc.exitStatus) throw new Error(`${name} exited at start: ${proc.lines.map((l) => l.text).join(' | ')}`);
    let m = 0;
    return {
      name,
      lab,
      gen,
      mark() {
        m = proc.mark();
      },
      refusals() {
        const n = proc.lines.slice(m).length;
        return n ? `${n} log lines` : '';
      },
      tail: () =>
        proc.lines
          .slice(-20)
          .map((l) => `  ${l.text}`)
          .join('\n'),
      pids: () => [proc.pid],
      async udpRcvbufErrors() {
        const snmp = await lab.execOk(srv, 'cat', ['/proc/net/snmp']);
        const [head, vals] = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
        const i = head?.split(/\s+/).indexOf('RcvbufErrors') ?? -1;
        return i > 0 ? Number(vals?.split(/\s+/)[i]) : NaN;
      },
      stop: () => lab.destroy(),
    };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

/** A few clients until one is served (bounded): the server is up, and the first-packet costs are paid. */
async function warmUp(s: Server, timeoutMs: number): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const r = await generate(s.lab, s.gen, { rate: 20, count: 10, tag: SERVER_TAG[s.name] - 1 - i, timeoutMs });
    if (r.completed === r.clients) return;
    await sleep(500);
  }
  throw new Error(`${s.name}: warm-up clients got no lease; its log ends:\n${s.tail()}`);
}

async function rateRun(): Promise<void> {
  const ratesArg = parseRates(textArg('rates', '100,300,1000,3000,6000'));
  if (typeof ratesArg === 'string') throw new Error(ratesArg);
  const rates = ratesArg;
  const seconds = intArg('seconds', 3, 1, 60);
  const timeoutMs = intArg('timeout-ms', 2000, 100, 30_000);
  const retransmitMs = intArg('retransmit-ms', 0, 0, 30_000);
  if (retransmitMs >= timeoutMs) throw new Error('--retransmit-ms must be shorter than --timeout-ms');
  const wanted = textArg('servers', 'tmip,kea,dnsmasq')
    .split(',')
    .map((s) => s.trim());
  for (const w of wanted)
    if (!['tmip', 'kea', 'dnsmasq', 'dnsmasq-noping'].includes(w)) throw new Error(`--servers: unknown server ${JSON.stringify(w)}`);
  if (rates.length > 12) throw new Error('--rates: at most 12 steps');
  for (const r of rates)
    if (r * seconds > MAX_STEP_CLIENTS) throw new Error(`--rates ${r} × --seconds ${seconds}: at most ${MAX_STEP_CLIENTS} clients a step`);
  // On tmpfs: dnsmasq rewrites (and syncs) its lease file on every change; on the VM's disk that,
  // not DHCP, was what the first runs measured (dnsmasq at 10% CPU while dropping 80%).
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'tmip-dhcp-bench-'));
  // Ctrl-C: the labs' own hooks tear down the namespaces and exit; this removes the directory then.
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const steps: Step[] = [];
  console.log(
    `bench/dhcp: full DORA from new MACs, broadcast, not relayed; rates ${rates.join(', ')}/s, ${seconds} s each, new MACs every step`,
  );
  console.log(
    `a client is dropped without an ACK within ${timeoutMs} ms of its first DISCOVER; ${retransmitMs ? `its DISCOVER is sent once more ${retransmitMs} ms after the first if no OFFER came; one REQUEST` : 'no retransmissions (one DISCOVER, one REQUEST)'}`,
  );
  console.log(
    `machine: ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'}), Linux ${os.release()}, Node ${process.version}, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  try {
    for (const name of wanted as ServerName[]) {
      if (name === 'kea' && !which('kea-dhcp4')) {
        console.log('kea: kea-dhcp4 not found; skipped (apt-get install -y kea-dhcp4-server)');
        continue;
      }
      if (name.startsWith('dnsmasq') && !which('dnsmasq')) {
        console.log('dnsmasq: not found; skipped (apt-get install -y dnsmasq-base)');
        continue;
      }
      console.log('');
      if (name === 'tmip') {
        console.log('tmip: lab MLR + CN1 serving cell 1 (debug_level 2, the default); options changed from the defaults:');
        for (const [o, why] of TMIP_CN_OPTIONS) console.log(`  cn1: option ${o}   (${why})`);
        for (const [o, why] of TMIP_MLR_OPTIONS) console.log(`  mlr: option ${o}   (${why})`);
      }
      if (name === 'kea') console.log(`kea: kea-dhcp4 ${BIG_NET}, memfile persist off, raw socket, logging WARN, other settings default`);
      if (name === 'dnsmasq-noping') console.log(`dnsmasq-noping: as dnsmasq, with --no-ping`);
      if (name === 'dnsmasq')
        console.log(
          `dnsmasq: --dhcp-range over ${BIG_NET}, lease max 1,000,000, lease file in ${dir}, --quiet-dhcp, pings before offering as by default`,
        );
      try {
        const s = name === 'tmip' ? await startTmip() : await startPeer(name, dir);
        try {
          await warmUp(s, timeoutMs);
          const mt = /DHCP4_MULTI_THREADING_INFO (.*)/.exec(s.tail());
          if (name === 'kea') console.log(`kea: multi-threading ${mt?.[1] ?? '(not reported)'}`);
          printStepHeader();
          /** Leases completed by the earlier steps: the server holds them all (for tmip, a gateway address each). */
          let held = 0;
          for (const [i, rate] of rates.entries()) {
            s.mark();
            const shed0 = await s.shed?.();
            const cpu0 = s.pids().map(cpuSeconds);
            const udp0 = await s.udpRcvbufErrors?.();
            const w0 = performance.now();
            const r = await generate(s.lab, s.gen, { rate, seconds, tag: SERVER_TAG[name] + i, timeoutMs, retransmitMs });
            const cpu = s.pids().map((p, k) => (100 * (cpuSeconds(p) - (cpu0[k] ?? 0))) / ((performance.now() - w0) / 1000));
            await sleep(300); // log lines of the step's tail
            const udp = udp0 === undefined ? 0 : ((await s.udpRcvbufErrors?.()) ?? 0) - udp0;
            const shed = shed0 === undefined ? 0 : ((await s.shed?.()) ?? 0) - shed0;
            const step: Step = {
              server: name,
              rate,
              r,
              cpu,
              note: [
                held > 0 ? `${held} leases held from earlier steps` : '',
                behind(r),
                r.retransmits ? `${r.retransmits} DISCOVERs sent twice` : '',
                udp ? `${udp} requests dropped by the kernel (server's UDP receive buffer full)` : '',
                shed ? `CN shed ${shed} DHCP frames (DHCP_IN_FLIGHT exchanges of their type waiting on the MLR)` : '',
                s.refusals(),
              ]
                .filter(Boolean)
                .join('; '),
            };
            steps.push(step);
            printStep(step);
            held += r.completed;
            await sleep(1000); // let the server drain before the next step
          }
        } finally {
          await s.stop();
        }
      } catch (e) {
        // One server that will not start or serve does not cost the others' figures.
        console.log(`${name}: failed, skipped: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const servers = [...new Set(steps.map((s) => s.server))];
  console.log('');
  console.log('completed/s (drop %) per offered rate:');
  console.log(`offered/s  ${servers.map((s) => s.padStart(18)).join('')}`);
  for (const rate of rates) {
    const cells = servers.map((sv) => {
      const st = steps.find((s) => s.server === sv && s.rate === rate);
      return (st ? `${fmt(st.r.completedPerSecond)} (${fmt(st.r.dropPercent, 1)}%)` : '—').padStart(18);
    });
    console.log(`${String(rate).padStart(9)}  ${cells.join('')}`);
  }
  const sustained = new Map<ServerName, number | undefined>();
  for (const sv of servers) {
    const best = highestSustained(steps.filter((s) => s.server === sv).map((s) => ({ rate: s.rate, dropPercent: s.r.dropPercent })));
    sustained.set(sv, best);
    console.log(`highest sustained rate (< 0.1% drops at it and every lower step), ${sv}: ${best ?? 'none'}${best ? '/s' : ''}`);
  }
  const tm = sustained.get('tmip');
  for (const peer of ['kea', 'dnsmasq', 'dnsmasq-noping'] as const) {
    const p = sustained.get(peer);
    if (servers.includes('tmip') && servers.includes(peer)) {
      console.log(
        `ratio tmip / ${peer}, highest sustained rate: ${tm && p ? (tm / p).toFixed(3) : '— (none sustained)'}${p === rates[rates.length - 1] ? ` (${peer} sustained the highest step: the ratio is an upper bound)` : ''}`,
      );
    }
  }
}

/** CPU seconds of the process itself (/proc/PID/stat fields 14-15), without its children; NaN when it is gone. */
function ownCpuSeconds(pid: number): number {
  try {
    const f = statFields(pid);
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

async function memoryRun(): Promise<void> {
  const rate = intArg('memory-rate', 100, 1, 10_000);
  const settleMs = intArg('settle-ms', 15_000, 0, 600_000);
  const timeoutMs = intArg('timeout-ms', 2000, 100, 30_000);
  const s = await startTmip();
  const t = s.tmip!;
  let tag = 0x40;
  let leased = 0;
  const lab = t.lab;
  const cn = (name: CnName) => cnPid(t, name);
  try {
    const gateways = async () =>
      (await lab.ip('cn1', ['-o', '-4', 'addr', 'show', 'dev', LAB.mobileIf])).split('\n').filter((l) => / inet .*\/30 /.test(l)).length;
    let cpuMark = { cpu: ownCpuSeconds(cn('cn1')), leased: 0 };
    const row = async (what: string) => {
      await sleep(settleMs);
      const a = processMemory(cn('cn1'));
      const b = processMemory(cn('cn2'));
      const cpu = ownCpuSeconds(cn('cn1'));
      const perLease = leased > cpuMark.leased ? fmt((1000 * (cpu - cpuMark.cpu)) / (leased - cpuMark.leased), 2) : '—';
      cpuMark = { cpu, leased };
      console.log(
        `${what.padEnd(24)} ${String(leased).padStart(6)}  ${String(await gateways()).padStart(8)}  ${fmt(a.rss).padStart(9)}  ${fmt(a.hwm).padStart(9)}  ${fmt(a.anon).padStart(11)}  ${fmt(b.rss).padStart(12)}  ${perLease.padStart(17)}`,
      );
    };
    const flags = shippedNodeFlags('tmip-cn').join(' ') || '(none)';
    console.log(
      `bench/dhcp --memory: CN1's memory with 0, 250 and 5,000 leased clients (DORA at ${rate}/s), each read ${settleMs / 1000} s after the last lease; CN2 is idle throughout`,
    );
    console.log(`the CNs' Node flags: ${flags} (${process.env[NODE_FLAGS_ENV] !== undefined ? NODE_FLAGS_ENV : 'files/usr/sbin/tmip-cn'})`);
    console.log(`the CNs reach the MLR over ${transportArg()}`);
    console.log('options changed from the defaults:');
    for (const [o, why] of TMIP_CN_OPTIONS) console.log(`  cn1: option ${o}   (${why})`);
    for (const [o, why] of TMIP_MLR_OPTIONS) console.log(`  mlr: option ${o}   (${why})`);
    console.log('');
    console.log('point                    leased  gateways  CN1_RSS_MB  CN1_HWM_MB  CN1_anon_MB  CN2_idle_RSS_MB  CN1_cpu_ms/lease');
    await sleep(1000);
    // Reference: what Node itself takes here, with nothing loaded (no network, killed at once).
    const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const killBare = () => bare.kill('SIGKILL');
    process.on('exit', killBare);
    let b = { rss: NaN, hwm: NaN, anon: NaN };
    try {
      await sleep(1500);
      if (bare.pid) b = processMemory(bare.pid);
    } finally {
      killBare();
      process.off('exit', killBare);
    }
    console.log(
      `${'bare node (reference)'.padEnd(24)} ${'—'.padStart(6)}  ${'—'.padStart(8)}  ${fmt(b.rss).padStart(9)}  ${fmt(b.hwm).padStart(9)}  ${fmt(b.anon).padStart(11)}`,
    );
    await row('idle (0 clients)');
    for (const target of [250, 5000]) {
      for (let round = 0; round < 5 && leased < target; round++) {
        const r = await generate(lab, s.gen, { rate, count: target - leased, tag: tag++, timeoutMs });
        leased += r.completed;
        if (r.completed < r.clients)
          console.log(`  (${r.clients - r.completed} of ${r.clients} clients got no ACK within ${timeoutMs} ms; topping up)`);
      }
      await row(`after ${target} leases`);
    }
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/dhcp needs root (network namespaces)');
  if (!fs.existsSync(GEN)) throw new Error(`${GEN} is missing: run 'npm run compile' first`);
  if (process.argv.includes('--memory')) await memoryRun();
  else await rateRun();
}

main().catch((e: unknown) => {
  console.error(`bench/dhcp: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
