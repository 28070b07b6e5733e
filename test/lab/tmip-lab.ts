// SPDX-License-Identifier: GPL-2.0-only
// tmip on the lab topology: writes UCI configs for the MLR and both CNs, starts the bundled daemons
// (dist/tmip-mlr.cjs, dist/tmip-cn.cjs) inside their namespaces, and offers the checks the lab tests,
// the demo and the roam benchmark share (tunnels present, gateway addresses, arrival log lines).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from '../support/helpers.js';
import { makeTlsFixtures, type TlsFixtures } from '../support/tls-fixtures.js';
import { shippedNodeFlags } from '../support/node-flags.js';
import { LAB, Lab, type ExecResult, type LabProcess, type Role } from './lab.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DIST = path.join(REPO, 'dist');
export const TUNNEL_PREFIX = 'tmip';
export const NETWORK = 'lab-campus';
const MQTT_PORT = 1883;
export const MQTT_URL = `mqtt://${LAB.mlrIp}:${MQTT_PORT}`;
const TLS_PORT = 6555;
const TLS_URL = `tls://${LAB.mlrIp}:${TLS_PORT}`;

export type CnName = 'cn1' | 'cn2';

/** The compiled status tool, beside this module (build/test/lab/mlr-status-tool.js). */
const STATUS_TOOL = path.join(path.dirname(fileURLToPath(import.meta.url)), 'mlr-status-tool.js');

/** The MLR's register as test/lab/mlr-status-tool.ts prints it (every page, addresses as text). */
export interface MlrStatus {
  cns: { name: string; online: string }[];
  bindings: { mac: string; cell: string; parent: string; current: string | null; state: string }[];
}

/** A figure for the test log: one `# label: value` line (JSON unless a string). */
export function report(label: string, value: unknown): void {
  process.stdout.write(`# ${label}: ${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

/** Epoch ms of a daemon log line's time of day (the daemons log UTC HH:MM:SS.mmm). */
export function lineEpoch(line: string): number {
  const m = /(\d\d):(\d\d):(\d\d)\.(\d\d\d) tmip-/.exec(line);
  if (!m) throw new Error(`no timestamp in ${line}`);
  const d = new Date();
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), +m[1]!, +m[2]!, +m[3]!, +m[4]!);
}

export interface TmipLabOptions {
  log?: (message: string) => void;
  /** Debug level of the daemons; 3 shows every handover step (the tests parse those lines). */
  debug?: number;
  leaseTime?: number;
  /**
   * How the CNs reach the MLR: MLRP over TCP (default), or MQTT through a mosquitto the lab starts in
   * the MLR's namespace on the MLR's lab address, port 1883 (anonymous: the lab is closed), or
   * MLRP over TLS to the MLR's port 6555, both ways authenticated: certificates made in the lab's
   * directory at start (test/support/tls-fixtures.ts), the server's for the MLR's lab address.
   */
  transport?: 'tcp' | 'tls' | 'mqtt';
  /** Extra UCI lines for the MLR's section (e.g. "\toption max_offers '16'"). */
  mlrExtra?: string[];
  /** Extra UCI lines for a CN's section (e.g. "\toption ubus_socket '/tmp/x.sock'"). */
  cnExtra?: Partial<Record<CnName, string[]>>;
  /**
   * The CNs' tunnel_linger in seconds. Default 0 (a tunnel goes as soon as no client needs it, which
   * the tests check); the benches pass the CN's default, 60.
   */
  tunnelLinger?: number;
  /** Authenticate MLRP with a fresh key per CN (default true); false writes `option auth '0'`. */
  auth?: boolean;
  /** The MLR's `option store` (e.g. 'etcd://127.0.0.1:2379'), written instead of its state_file. */
  store?: string;
  /** The CNs' `list mlr` (several MLRs sharing a store), written instead of the one MLR address. */
  mlrs?: string[];
  /** Run after the namespaces exist and before the MLR starts (e.g. start an etcd cluster there). */
  beforeMlr?: (t: TmipLab) => Promise<void>;
}

export class TmipLab {
  readonly dir: string;
  mlr!: LabProcess;
  /** Certificates of transport 'tls'. */
  private tls: TlsFixtures | undefined;
  /** The MQTT broker (transport 'mqtt'). */
  broker: LabProcess | undefined;
  readonly cns: Partial<Record<CnName, LabProcess>> = {};
  /** Each CN's key (64 hex digits), fresh per lab; empty with auth off. */
  readonly keys: Partial<Record<CnName, string>> = {};

  private constructor(
    readonly lab: Lab,
    private readonly opts: TmipLabOptions,
  ) {
    // Inside the Lab's own directory, which it removes on destroy, at exit, on SIGINT/SIGTERM and at
    // the next run after a SIGKILL.
    this.dir = path.join(lab.tmpDir, 'tmip');
    fs.mkdirSync(this.dir);
  }

  static async start(opts: TmipLabOptions = {}): Promise<TmipLab> {
    for (const f of ['tmip-cn.cjs', 'tmip-mlr.cjs', 'tmip-cn-mqtt.cjs', 'tmip-mlr-mqtt.cjs']) {
      if (!fs.existsSync(path.join(DIST, f))) throw new Error(`${path.join(DIST, f)} is missing: run 'bash build.sh' first`);
    }
    const lab = await Lab.create({ name: 'tmip', ...(opts.log ? { log: opts.log } : {}) });
    const t = new TmipLab(lab, opts);
    try {
      t.writeConfigs();
      if (opts.transport === 'mqtt') await t.startBroker();
      await opts.beforeMlr?.(t);
      await t.startMlr();
      await Promise.all([t.startCn('cn1'), t.startCn('cn2')]);
    } catch (e) {
      await t.destroy();
      throw e;
    }
    return t;
  }

  private writeConfigs(): void {
    const debug = this.opts.debug ?? 4;
    fs.writeFileSync(
      path.join(this.dir, 'mlr.conf'),
      `config mlr\n\toption network_name '${NETWORK}'\n${this.opts.transport === 'mqtt' ? `\toption mqtt '${MQTT_URL}'\n` : ''}${this.opts.auth === false ? "\toption auth '0'\n" : ''}\toption port '6554'\n${this.mlrTlsLines()}${this.opts.store ? `\toption store '${this.opts.store}'` : `\toption state_file '${path.join(this.dir, 'mlr.state')}'`}\n\toption debug_level '${debug}'\n` +
        (this.opts.mlrExtra ?? []).map((l) => `${l}\n`).join('') +
        this.keySections(),
    );
    for (const [name, cell] of [
      ['cn1', 1],
      ['cn2', 2],
    ] as const) {
      fs.writeFileSync(
        path.join(this.dir, `${name}.conf`),
        [
          `config cn '${name}'`,
          ...(this.opts.mlrs
            ? this.opts.mlrs.map((m) => `\tlist mlr '${m}'`)
            : [`\toption mlr '${this.opts.transport === 'mqtt' ? MQTT_URL : this.opts.transport === 'tls' ? TLS_URL : LAB.mlrIp}'`]),
          `\toption network_name '${NETWORK}'`,
          `\toption cn_if '${LAB.backboneIf}'`,
          `\toption mobile_if '${LAB.mobileIf}'`,
          `\tlist addr_pool '${LAB.mobileIf} * *'`,
          `\tlist dns_server '${LAB.srvIp}'`,
          `\toption domain 'cell${cell}.lab'`,
          `\toption lease_time '${this.opts.leaseTime ?? 600}'`,
          `\toption tunnel_prefix '${TUNNEL_PREFIX}'`,
          `\toption debug_level '${debug}'`,
          `\toption tunnel_linger '${this.opts.tunnelLinger ?? 0}'`,
          ...(this.keys[name] !== undefined ? [`\toption secret '${this.keys[name]}'`] : []),
          ...this.cnTlsLines(),
          ...(this.opts.cnExtra?.[name] ?? []),
          '',
        ].join('\n'),
      );
    }
  }

  /** Certificates for transport 'tls', made on first use in the lab's directory. */
  private tlsFixtures(): TlsFixtures {
    this.tls ??= makeTlsFixtures(this.dir, { serverIps: [LAB.mlrIp], serverDns: [] });
    return this.tls;
  }

  /** transport 'tls': the MLR also serves MLRP over TLS and requires a client certificate. */
  private mlrTlsLines(): string {
    if (this.opts.transport !== 'tls') return '';
    const f = this.tlsFixtures();
    return `\toption tls_port '${TLS_PORT}'\n\toption tls_cert '${f.server.cert}'\n\toption tls_key '${f.server.key}'\n\toption tls_ca '${f.ca}'\n`;
  }

  /** transport 'tls': the CA that checks the MLR, and the CN's client certificate. */
  private cnTlsLines(): string[] {
    if (this.opts.transport !== 'tls') return [];
    const f = this.tlsFixtures();
    return [`\toption tls_ca '${f.ca}'`, `\toption tls_cert '${f.client.cert}'`, `\toption tls_key '${f.client.key}'`];
  }

  /** The MLR's `config key` sections: a fresh key per CN, unless auth is off. */
  private keySections(): string {
    if (this.opts.auth === false) return '';
    let out = '';
    for (const name of ['cn1', 'cn2'] as const) {
      this.keys[name] ??= crypto.randomBytes(32).toString('hex');
      out += `\nconfig key\n\toption cn '${name}'\n\toption secret '${this.keys[name]}'\n`;
    }
    return out;
  }

  /** mosquitto in the MLR's namespace (transport 'mqtt'); again after a kill, on the same port. */
  async startBroker(): Promise<LabProcess> {
    const conf = path.join(this.dir, 'mosquitto.conf');
    fs.writeFileSync(
      conf,
      // Anonymous and without persistence: a closed lab, and a restart forgets everything (retained
      // presence too), the harder case for the daemons.
      `listener ${MQTT_PORT} ${LAB.mlrIp}\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n`,
    );
    const p = this.lab.spawn('mlr', 'mosquitto', ['-c', conf], { logFile: path.join(this.dir, 'broker.log') });
    this.broker = p;
    await p.waitForLine(/mosquitto version \S+ running/, 10_000, { stream: 'both' });
    return p;
  }

  async startMlr(): Promise<LabProcess> {
    this.mlr = this.lab.spawn('mlr', process.execPath, [path.join(DIST, 'tmip-mlr.cjs'), '-f', path.join(this.dir, 'mlr.conf'), '-F'], {
      logFile: path.join(this.dir, 'mlr.log'),
    });
    await this.mlr.waitForLine(/MLR up and listening/, 10_000, { stream: 'both' });
    // the lab runs authenticated unless told otherwise: make sure the MLR says so
    await this.mlr.waitForLine(this.opts.auth === false ? /authentication is OFF/ : /authentication on: 2 CN key/, 1000, {
      stream: 'both',
    });
    return this.mlr;
  }

  async startCn(name: CnName): Promise<LabProcess> {
    const script = [path.join(DIST, 'tmip-cn.cjs'), '-f', path.join(this.dir, `${name}.conf`), '-F'];
    // Node's flags as the router's command gives them (files/usr/sbin/tmip-cn).
    const p = this.lab.spawn(name, process.execPath, [...shippedNodeFlags('tmip-cn'), ...script], {
      logFile: path.join(this.dir, `${name}.log`),
    });
    this.cns[name] = p;
    await p.waitForLine(/is now up and running/, 15_000, { stream: 'both' });
    return p;
  }

  /** `tmip-cn -E`: the connectivity evaluation, run in a CN's namespace beside the live daemon. */
  evaluate(name: CnName) {
    return this.lab.exec(name, process.execPath, [path.join(DIST, 'tmip-cn.cjs'), '-E', '-f', path.join(this.dir, `${name}.conf`)], {
      timeoutMs: 15_000,
    });
  }

  cn(name: CnName): LabProcess {
    const p = this.cns[name];
    if (!p) throw new Error(`${name} is not running`);
    return p;
  }

  /** Wait for the CN to log the MS's arrival in its cell (after `since`, a mark() of its output). */
  waitArrival(name: CnName, mac: string, since: number, timeoutMs = 10_000): Promise<string> {
    return this.cn(name).waitForLine(new RegExp(`host ${mac} \\S+ has arrived in this cell`), timeoutMs, { since, stream: 'both' });
  }

  /** Names of our tunnel devices in a CN's namespace. */
  async tunnels(name: CnName): Promise<string[]> {
    const out = await this.lab.exec(name, 'ip', ['-o', 'link', 'show']);
    return [...out.stdout.matchAll(new RegExp(`^\\d+: (${TUNNEL_PREFIX}\\d+)[@:]`, 'gm'))].map((m) => m[1]!);
  }

  /** /30 gateway addresses on a CN's mobile interface. */
  async gateways(name: CnName): Promise<string[]> {
    const out = await this.lab.exec(name, 'ip', ['-o', '-4', 'addr', 'show', 'dev', LAB.mobileIf]);
    return [...out.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/30/g)].map((m) => m[1]!);
  }

  /** Poll until cond() holds (bounded). */
  until(what: string, cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
    return until(what, cond, timeoutMs, 100);
  }

  /** Ask the MLR at `host` for its whole status, as cn1 (with cn1's key), from `from`'s namespace: the run as it ended. */
  mlrStatusRun(from: Role = 'cn1', host: string = LAB.mlrIp): Promise<ExecResult> {
    return this.lab.exec(from, process.execPath, [STATUS_TOOL, host, '6554', 'cn1', this.keys.cn1 ?? ''], { timeoutMs: 10_000 });
  }

  /** The MLR's status (as mlrStatusRun); rejects when the tool fails. */
  async mlrStatus(from: Role = 'cn1', host: string = LAB.mlrIp): Promise<MlrStatus> {
    const r = await this.mlrStatusRun(from, host);
    if (r.code !== 0) throw new Error(`status from ${host}: ${r.stderr}`);
    return JSON.parse(r.stdout) as MlrStatus;
  }

  async ping(from: string, to: string, count = 2): Promise<boolean> {
    const r = await this.lab.exec(from, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', to], { timeoutMs: 10_000 });
    return r.code === 0;
  }

  logs(): string {
    return ['mlr', 'cn1', 'cn2', 'broker']
      .map((n) => {
        const f = path.join(this.dir, `${n}.log`);
        return fs.existsSync(f) ? `---- ${n}.log (last 40 lines)\n${fs.readFileSync(f, 'utf8').split('\n').slice(-40).join('\n')}` : '';
      })
      .join('\n');
  }

  /** With TMIP_KEEP_LOGS set: where destroy() copied the configs and logs. */
  keptLogs: string | undefined;

  async destroy(): Promise<void> {
    if (process.env.TMIP_KEEP_LOGS && fs.existsSync(this.dir)) {
      this.keptLogs = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-lab-logs-'));
      fs.cpSync(this.dir, this.keptLogs, { recursive: true });
    }
    await this.lab.destroy();
  }
}
