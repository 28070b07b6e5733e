// SPDX-License-Identifier: GPL-2.0-only
// Lab tests (root) for the real kernel adapters: IprouteNetOps driving iproute2/sysctl/nft and the
// AF_PACKET LinkIO (our addon tmip-packet with the BPF programs of src/proto/bpf.ts: the CN's
// program checked against the real kernel frame by frame, and a burst sent while the reader is
// blocked), inside network namespaces this test creates and always deletes:
//
//   C (vc 10.252.0.2) ── vm (10.252.0.1) A (10.251.0.1) va ── vb (10.251.0.2) B
//   "mobile" side              the CN under test              the peer CN
//
// Nothing outside these namespaces is touched: every IprouteNetOps runs with `netns`, every other
// command goes through `ip netns exec`, and captures run in child processes started inside a namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatIPv4, macFromBytes, parseIPv4, type IPv4 } from '../../src/core/ip.js';
import type { TunnelSpec } from '../../src/core/tunnel.js';
import { run, runOk, type RunResult } from '../../src/platform/exec.js';
import { IprouteNetOps, vxlanMacFor } from '../../src/platform/iproute-netops.js';
import { openPacketLink } from '../../src/platform/packet-linkio.js';
import { BPF_OP, type BpfInsn } from '../../src/proto/bpf.js';
import { frameCases } from '../support/bpf-frames.js';
import { deleteScratchNamespacesSync, scratchNamespaces } from './scratch-namespaces.js';

const ROOT = process.getuid?.() === 0;
const SKIP = ROOT ? false : 'needs root to create network namespaces';
const NS = { a: `tmiptest-${process.pid}-a`, b: `tmiptest-${process.pid}-b`, c: `tmiptest-${process.pid}-c` };

const ip = (s: string): IPv4 => {
  const r = parseIPv4(s);
  assert.ok(r.ok, s);
  return r.value;
};

const A_ADDR = ip('10.251.0.1');
const B_ADDR = ip('10.251.0.2');
const C_ADDR = ip('10.252.0.2');

/** Run in a namespace; reject on failure. */
function inNs(ns: string, cmd: string, args: string[], timeoutMs = 5000): Promise<RunResult> {
  return runOk(cmd, args, { netns: ns, timeoutMs });
}

async function json<T>(ns: string, args: string[]): Promise<T> {
  return JSON.parse((await inNs(ns, 'ip', ['-j', ...args])).stdout) as T;
}

async function ifindex(ns: string, dev: string): Promise<number> {
  const [link] = await json<Array<{ ifindex: number }>>(ns, ['link', 'show', 'dev', dev]);
  assert.ok(link, `${dev} exists in ${ns}`);
  return link.ifindex;
}

async function linkNames(ns: string): Promise<string[]> {
  return (await json<Array<{ ifname: string }>>(ns, ['link', 'show'])).map((l) => l.ifname);
}

// ---- capture child processes (a capture must be opened from inside the interface's namespace) ----
// program 'all': everything but our own transmissions; 'cn': the CN's program. With `quiet` frames
// are counted, not printed. Commands on stdin: SEND hex; BURST n hex tag (n copies, bytes 10-11 of
// the source MAC numbered); BLOCK path (busy until the file exists, at most 10 s); STATS tag; QUIT.

const CHILD_SCRIPT = `
const cfg = JSON.parse(process.env.TMIP_PCAP_CHILD);
const { openPacketLink, readInterfaceMac } = await import(cfg.module);
const bpf = await import(cfg.bpf);
const fs = await import('node:fs');
const mac = readInterfaceMac(cfg.ifname);
if (!mac.ok) { console.log('ERROR ' + mac.error); process.exit(2); }
const program = cfg.program === 'cn' ? bpf.cnCaptureProgram(mac.value) : bpf.notFromProgram(mac.value);
const r = openPacketLink(cfg.ifname, program.value, cfg.rcvbuf ? { rcvbuf: cfg.rcvbuf } : {});
if (!r.ok) { console.log('ERROR ' + r.error); process.exit(2); }
const link = r.value;
let count = 0;
link.onFrame((f) => { count++; if (!cfg.quiet) console.log('FRAME ' + f.toString('hex')); });
let server;
if (cfg.listenTcp) {
  const net = await import('node:net');
  server = net.createServer((s) => s.destroy()).listen(cfg.listenTcp);
  await new Promise((res) => server.once('listening', res));
}
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line.startsWith('SEND ')) console.log('SENT ' + (link.send(Buffer.from(line.slice(5), 'hex')) ?? 'ok'));
    else if (line.startsWith('BURST ')) {
      const [, n, hex, tag] = line.split(' ');
      const f = Buffer.from(hex, 'hex');
      let errors = 0;
      for (let i = 0; i < Number(n); i++) { f.writeUInt16BE(i, 10); if (link.send(f) !== undefined) errors++; }
      console.log('BURSTED ' + tag + ' ' + errors);
    } else if (line.startsWith('BLOCK ')) {
      console.log('BLOCKING');
      const end = Date.now() + 10000;
      while (!fs.existsSync(line.slice(6)) && Date.now() < end);
      console.log('UNBLOCKED');
    } else if (line.startsWith('STATS ')) console.log(line + ' ' + JSON.stringify({ count, ...link.stats() }));
    else if (line === 'QUIT') { link.close(); server?.close(); process.exit(0); }
  }
});
setTimeout(() => { link.close(); process.exit(3); }, cfg.lifeMs ?? 20000);
console.log('READY ' + link.mac);
`;

interface PcapChild {
  lines: string[];
  /** Resolve with the first line (already seen or arriving within `ms`) satisfying `pred`. */
  waitFor(pred: (line: string) => boolean, ms: number, what: string): Promise<string>;
  write(line: string): void;
  frames(): Buffer[];
  stop(): void;
}

function startPcapChild(
  ns: string,
  cfg: { ifname: string; program: 'all' | 'cn'; listenTcp?: number; rcvbuf?: number; quiet?: boolean },
): PcapChild {
  const module = new URL('../../src/platform/packet-linkio.js', import.meta.url).href;
  const bpf = new URL('../../src/proto/bpf.js', import.meta.url).href;
  const child: ChildProcessWithoutNullStreams = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', CHILD_SCRIPT],
    {
      env: { ...process.env, TMIP_PCAP_CHILD: JSON.stringify({ ...cfg, module, bpf }) },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    partial += d;
    for (let i = partial.indexOf('\n'); i >= 0; i = partial.indexOf('\n')) {
      lines.push(partial.slice(0, i));
      partial = partial.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.on('error', () => undefined);
  return {
    lines,
    waitFor(pred, ms, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(pred);
          if (hit === undefined) return false;
          cleanup();
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `timed out after ${ms} ms waiting for ${what} in ${ns}; child output:\n${lines.join('\n').slice(0, 4000)}\nstderr: ${stderr.slice(0, 2000)}`,
            ),
          );
        }, ms);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(listener);
        };
        const listener = () => void check();
        if (!check()) waiters.add(listener);
      });
    },
    write(line) {
      child.stdin.write(line + '\n');
    },
    frames() {
      return lines.filter((l) => l.startsWith('FRAME ')).map((l) => Buffer.from(l.slice(6), 'hex'));
    },
    stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.write('QUIT\n');
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }, 1000).unref();
      }
    },
  };
}

// ---- frame helpers ----

const macBytes = (mac: string) => Buffer.from(mac.replace(/:/g, ''), 'hex');
const ipBytes = (addr: IPv4) => Buffer.from([(addr >>> 24) & 255, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255]);

function arpRequest(senderMac: string, senderIp: IPv4, targetIp: IPv4): Buffer {
  return Buffer.concat([
    Buffer.from('ffffffffffff', 'hex'),
    macBytes(senderMac),
    Buffer.from([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]),
    macBytes(senderMac),
    ipBytes(senderIp),
    Buffer.alloc(6),
    ipBytes(targetIp),
  ]);
}

interface ArpView {
  dst: string;
  src: string;
  op: number;
  spa: IPv4;
  tpa: IPv4;
}

function parseArp(f: Buffer): ArpView | undefined {
  if (f.length < 42 || f.readUInt16BE(12) !== 0x0806) return undefined;
  return { dst: macFromBytes(f, 0), src: macFromBytes(f, 6), op: f.readUInt16BE(20), spa: f.readUInt32BE(28), tpa: f.readUInt32BE(38) };
}

interface TcpView {
  src: IPv4;
  dst: IPv4;
  dport: number;
  flags: number;
  mss: number | undefined;
}

function parseTcp(f: Buffer): TcpView | undefined {
  if (f.length < 34 || f.readUInt16BE(12) !== 0x0800) return undefined;
  const ihl = ((f[14] ?? 0) & 15) * 4;
  if (f[23] !== 6) return undefined;
  const t = 14 + ihl;
  if (f.length < t + 20) return undefined;
  const doff = ((f[t + 12] ?? 0) >> 4) * 4;
  let mss: number | undefined;
  for (let o = t + 20; o < t + doff && o < f.length;) {
    const kind = f[o] ?? 0;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const len = f[o + 1] ?? 0;
    if (len < 2) break;
    if (kind === 2 && len === 4) mss = f.readUInt16BE(o + 2);
    o += len;
  }
  return { src: f.readUInt32BE(26), dst: f.readUInt32BE(30), dport: f.readUInt16BE(t + 2), flags: f[t + 13] ?? 0, mss };
}

const SYN = 0x02;
const ACK = 0x10;

// ---- the tests ----

describe('IprouteNetOps and packet LinkIO in network namespaces', { skip: SKIP, timeout: 120_000 }, () => {
  const netA = new IprouteNetOps({ netns: NS.a });
  const netB = new IprouteNetOps({ netns: NS.b });
  const tunA: TunnelSpec = { name: 'tt7', type: 'vxlan', local: A_ADDR, remote: B_ADDR, key: 7, mtu: 1450 };
  const tunB: TunnelSpec = { name: 'tt7', type: 'vxlan', local: B_ADDR, remote: A_ADDR, key: 7, mtu: 1450 };

  before(async () => {
    if (!ROOT) return;
    for (const ns of Object.values(NS)) {
      await runOk('ip', ['netns', 'add', ns]);
      scratchNamespaces.add(ns);
      await inNs(ns, 'ip', ['link', 'set', 'dev', 'lo', 'up']);
    }
    await inNs(NS.a, 'ip', ['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', NS.b]);
    await inNs(NS.a, 'ip', ['link', 'add', 'vm', 'type', 'veth', 'peer', 'name', 'vc', 'netns', NS.c]);
    await inNs(NS.a, 'ip', ['addr', 'add', '10.251.0.1/24', 'dev', 'va']);
    await inNs(NS.a, 'ip', ['addr', 'add', '10.252.0.1/24', 'dev', 'vm']);
    await inNs(NS.a, 'ip', ['link', 'set', 'dev', 'va', 'up']);
    await inNs(NS.a, 'ip', ['link', 'set', 'dev', 'vm', 'up']);
    await inNs(NS.b, 'ip', ['addr', 'add', '10.251.0.2/24', 'dev', 'vb']);
    await inNs(NS.b, 'ip', ['link', 'set', 'dev', 'vb', 'up']);
    await inNs(NS.b, 'ip', ['route', 'add', '10.252.0.0/24', 'via', '10.251.0.1']);
    await inNs(NS.c, 'ip', ['addr', 'add', '10.252.0.2/24', 'dev', 'vc']);
    await inNs(NS.c, 'ip', ['link', 'set', 'dev', 'vc', 'up']);
    await inNs(NS.c, 'ip', ['route', 'add', 'default', 'via', '10.252.0.1']);
  });

  after(() => {
    deleteScratchNamespacesSync();
  });

  test('interfaceInfo reads MAC, MTU, state and labelled addresses', async () => {
    const info = await netA.interfaceInfo('va');
    const [link] = await json<Array<{ address: string }>>(NS.a, ['link', 'show', 'dev', 'va']);
    assert.equal(info.ifname, 'va');
    assert.equal(info.mac, link?.address);
    assert.equal(info.mtu, 1500);
    assert.equal(info.up, true);
    assert.deepEqual(info.addresses, [{ ip: A_ADDR, prefix: 24, label: 'va' }]);
    await assert.rejects(netA.interfaceInfo('nosuch0'), /does not exist/);
    await assert.rejects(netA.interfaceInfo('bad name'), /invalid interface name/);
  });

  test('probeTunnelTypes finds vxlan, and every reported type can really be created', async () => {
    const types = await netA.probeTunnelTypes('tt');
    assert.ok(types.includes('vxlan'), `probe found ${types.join(', ')}`);
    assert.deepEqual(
      types,
      ['ipip', 'gre', 'vxlan'].filter((t) => (types as string[]).includes(t)),
      'in TUNNEL_TYPES order',
    );
    assert.deepEqual(
      (await linkNames(NS.a)).filter((n) => n.startsWith('ttp')),
      [],
      'no scratch device left',
    );
    for (const [i, type] of types.entries()) {
      const spec: TunnelSpec = { name: `tt9${i}`, type, local: A_ADDR, remote: ip('10.251.0.99'), key: 90 + i, mtu: 1400 };
      await netA.ensureTunnel(spec);
      const info = await netA.interfaceInfo(spec.name);
      assert.equal(info.mtu, 1400);
      assert.equal(info.up, true);
      assert.ok((await netA.listTunnels('tt9')).includes(spec.name));
      await netA.deleteLink(spec.name);
      await netA.deleteLink(spec.name); // already gone
    }
    assert.deepEqual(await netA.listTunnels('tt9'), []);
  });

  test('ensureTunnel (vxlan) is idempotent and re-creates on changed parameters', async () => {
    await netA.ensureTunnel(tunA);
    await netB.ensureTunnel(tunB);
    const first = await ifindex(NS.a, 'tt7');
    const [details] = await json<
      Array<{ address: string; mtu: number; flags: string[]; linkinfo: { info_kind: string; info_data: Record<string, unknown> } }>
    >(NS.a, ['-d', 'link', 'show', 'dev', 'tt7']);
    assert.ok(details);
    assert.equal(details.linkinfo.info_kind, 'vxlan');
    assert.equal(details.linkinfo.info_data['id'], 7);
    assert.equal(details.linkinfo.info_data['local'], '10.251.0.1');
    assert.equal(details.linkinfo.info_data['remote'], '10.251.0.2');
    assert.equal(details.linkinfo.info_data['port'], 4789);
    assert.equal(details.address, vxlanMacFor(A_ADDR));
    assert.equal(details.mtu, 1450);
    assert.ok(details.flags.includes('UP'));
    assert.equal((await inNs(NS.a, 'sysctl', ['-n', 'net.ipv4.conf.tt7.rp_filter'])).stdout.trim(), '0');

    await netA.ensureTunnel(tunA);
    assert.equal(await ifindex(NS.a, 'tt7'), first, 'same parameters: device kept');
    await netA.ensureTunnel({ ...tunA, mtu: 1400 });
    assert.equal(await ifindex(NS.a, 'tt7'), first, 'MTU change: device kept');
    assert.equal((await netA.interfaceInfo('tt7')).mtu, 1400);

    await netA.ensureTunnel({ ...tunA, remote: ip('10.251.0.9') });
    const second = await ifindex(NS.a, 'tt7');
    assert.notEqual(second, first, 'changed remote: device re-created');
    await netA.ensureTunnel({ ...tunA, key: 8, remote: ip('10.251.0.9') });
    assert.notEqual(await ifindex(NS.a, 'tt7'), second, 'changed VNI: device re-created');
    await netA.ensureTunnel(tunA);
    const [back] = await json<Array<{ mtu: number; linkinfo: { info_data: Record<string, unknown> } }>>(NS.a, [
      '-d',
      'link',
      'show',
      'dev',
      'tt7',
    ]);
    assert.equal(back?.linkinfo.info_data['remote'], '10.251.0.2');
    assert.equal(back?.mtu, 1450);

    await assert.rejects(netA.ensureTunnel({ ...tunA, name: 'va' }), /not a tunnel/);
    await assert.rejects(netA.ensureTunnel({ ...tunA, name: 'x'.repeat(16) }), /invalid tunnel name/);
    await assert.rejects(netA.ensureTunnel({ ...tunA, key: 0 }), /invalid key/);
    assert.deepEqual(await netA.listTunnels('tt'), ['tt7']);
  });

  test('addAddress/deleteAddress with labels are idempotent', async () => {
    await netA.addAddress('va', ip('10.66.0.2'), 30, 'va:tm');
    await netA.addAddress('va', ip('10.66.0.2'), 30, 'va:tm');
    const info = await netA.interfaceInfo('va');
    assert.deepEqual(
      info.addresses.filter((a) => a.label === 'va:tm'),
      [{ ip: ip('10.66.0.2'), prefix: 30, label: 'va:tm' }],
    );
    const [raw] = await json<Array<{ addr_info: Array<{ local: string; broadcast?: string }> }>>(NS.a, ['addr', 'show', 'dev', 'va']);
    assert.equal(raw?.addr_info.find((a) => a.local === '10.66.0.2')?.broadcast, '10.66.0.3', 'broadcast address set');
    await netA.deleteAddress('va', ip('10.66.0.2'), 30);
    await netA.deleteAddress('va', ip('10.66.0.2'), 30);
    assert.equal((await netA.interfaceInfo('va')).addresses.length, 1);
    await assert.rejects(netA.addAddress('nosuch0', ip('10.66.0.2'), 30, 'nosuch0:tm'), /failed/);
  });

  test('a /32 routed into the vxlan tunnel carries a ping between the namespaces', async () => {
    await netA.addAddress('va', ip('10.77.0.1'), 32, 'va:tm');
    await netB.addAddress('vb', ip('10.77.0.2'), 32, 'vb:tm');
    const ping = () => run('ping', ['-c', '1', '-W', '2', '-I', '10.77.0.1', '10.77.0.2'], { netns: NS.a, timeoutMs: 5000 });
    assert.notEqual((await ping()).code, 0, 'no path before the routes exist');

    await netA.routeHostIntoTunnel(ip('10.77.0.2'), tunA);
    await netB.routeHostIntoTunnel(ip('10.77.0.1'), tunB);
    await netA.routeHostIntoTunnel(ip('10.77.0.2'), tunA); // replace: idempotent
    const [neigh] = await json<Array<{ lladdr: string; state: string[] }>>(NS.a, ['neigh', 'show', '10.77.0.2', 'dev', 'tt7']);
    assert.equal(neigh?.lladdr, vxlanMacFor(B_ADDR));
    assert.ok(neigh?.state.includes('PERMANENT'));

    const rxBefore =
      (await json<Array<{ stats64: { rx: { packets: number } } }>>(NS.b, ['-s', 'link', 'show', 'dev', 'tt7']))[0]?.stats64.rx.packets ?? 0;
    let r = await ping();
    for (let i = 0; i < 2 && r.code !== 0; i++) r = await ping();
    assert.equal(r.code, 0, `ping through the tunnel failed:\n${r.stdout}${r.stderr}`);
    const rxAfter =
      (await json<Array<{ stats64: { rx: { packets: number } } }>>(NS.b, ['-s', 'link', 'show', 'dev', 'tt7']))[0]?.stats64.rx.packets ?? 0;
    assert.ok(rxAfter > rxBefore, `B's tunnel received the echo request (rx ${rxBefore} -> ${rxAfter})`);

    assert.deepEqual(await netA.listTunnelRoutes('tt'), [{ ip: ip('10.77.0.2'), dev: 'tt7' }]);
    assert.deepEqual(await netA.listTunnelRoutes('zz'), []);
    assert.deepEqual(await netB.listTunnelRoutes('tt'), [{ ip: ip('10.77.0.1'), dev: 'tt7' }]);

    await netA.deleteHostRoute(ip('10.77.0.2'), 'tt7');
    await netA.deleteHostRoute(ip('10.77.0.2'), 'tt7');
    await netA.deleteHostRoute(ip('10.77.0.2'), 'nosuch0');
    assert.deepEqual(await netA.listTunnelRoutes('tt'), []);
    assert.deepEqual(await json<unknown[]>(NS.a, ['neigh', 'show', '10.77.0.2', 'dev', 'tt7']), []);
    assert.notEqual((await ping()).code, 0, 'no path after the route is gone');
  });

  test('setSysctl writes inside the namespace and reports failures clearly', async () => {
    await netA.setSysctl('net.ipv4.ip_forward', '1');
    assert.equal((await inNs(NS.a, 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
    await netA.setSysctl('net.ipv4.conf.va.rp_filter', '0');
    await assert.rejects(netA.setSysctl('net.ipv4.conf.nosuch0.rp_filter', '0'), /cannot set sysctl net\.ipv4\.conf\.nosuch0\.rp_filter=0/);
    await assert.rejects(netA.setSysctl('net.ipv4.ip_forward;reboot', '1'), /invalid sysctl key/);
  });

  test('setMssClamp installs the table, clamps SYN and SYN/ACK of roamed hosts only, and is replaced atomically', async () => {
    await netA.setSysctl('net.ipv4.ip_forward', '1');
    await netA.setMssClamp('tmip_tt', 'vm', 1410, [C_ADDR, ip('10.252.0.9')]);
    let listing = (await inNs(NS.a, 'nft', ['list', 'table', 'ip', 'tmip_tt'])).stdout;
    assert.match(listing, /elements = \{ 10\.252\.0\.2, 10\.252\.0\.9 \}/);
    assert.match(
      listing,
      /iifname "vm" ip saddr @roamed tcp flags syn \/ syn,rst tcp option maxseg size > 1410 tcp option maxseg size set 1410/,
    );
    assert.match(listing, /oifname "vm" ip daddr @roamed /);

    const childC = startPcapChild(NS.c, { ifname: 'vc', program: 'all', listenTcp: 5000 });
    const childB = startPcapChild(NS.b, { ifname: 'vb', program: 'all' });
    try {
      await childC.waitFor((l) => l.startsWith('READY') || l.startsWith('ERROR'), 10_000, 'READY');
      await childB.waitFor((l) => l.startsWith('READY') || l.startsWith('ERROR'), 10_000, 'READY');
      assert.ok(
        childC.lines.some((l) => l.startsWith('READY')),
        childC.lines.join('\n'),
      );
      assert.ok(
        childB.lines.some((l) => l.startsWith('READY')),
        childB.lines.join('\n'),
      );
      const connect = () =>
        runOk(
          process.execPath,
          [
            '-e',
            `const s = require('net').connect(5000, '10.252.0.2', () => s.end()); s.on('error', () => {}); s.on('close', () => process.exit(0)); setTimeout(() => process.exit(1), 3000);`,
          ],
          { netns: NS.b, timeoutMs: 6000 },
        );
      await connect();
      const isFrame = (l: string) => l.startsWith('FRAME ');
      const tcpOf = (l: string) => (isFrame(l) ? parseTcp(Buffer.from(l.slice(6), 'hex')) : undefined);
      const synLine = await childC.waitFor((l) => tcpOf(l)?.flags === SYN, 5000, 'the SYN at C');
      assert.equal(tcpOf(synLine)?.mss, 1410, 'SYN towards the roamed host clamped (oifname rule)');
      const synAckLine = await childB.waitFor((l) => tcpOf(l)?.flags === (SYN | ACK), 5000, 'the SYN/ACK at B');
      assert.equal(tcpOf(synAckLine)?.mss, 1410, 'SYN/ACK from the roamed host clamped (iifname rule)');

      // Not roamed any more: the same connection keeps the MSS the endpoints chose (1460 on a 1500 MTU).
      await netA.setMssClamp('tmip_tt', 'vm', 1410, []);
      listing = (await inNs(NS.a, 'nft', ['list', 'table', 'ip', 'tmip_tt'])).stdout;
      assert.doesNotMatch(listing, /elements/);
      const seen = childC.lines.length;
      await connect();
      const syn2 = await childC.waitFor((l) => childC.lines.indexOf(l) >= seen && tcpOf(l)?.flags === SYN, 5000, 'the second SYN at C');
      assert.equal(tcpOf(syn2)?.mss, 1460, 'no clamp for hosts outside the set');
    } finally {
      childC.stop();
      childB.stop();
    }

    await netA.deleteMssClamp('tmip_tt');
    await netA.deleteMssClamp('tmip_tt');
    assert.doesNotMatch((await inNs(NS.a, 'nft', ['list', 'tables'])).stdout, /tmip_tt/);
    await assert.rejects(netA.setMssClamp('bad table', 'vm', 1410, []), /invalid nftables table name/);
    await assert.rejects(netA.setMssClamp('tmip_tt', 'vm', 0, []), /invalid MSS/);
  });

  test('packet link: injected frame reaches the peer, capture is promiscuous and skips our own transmissions', async () => {
    const child = startPcapChild(NS.a, { ifname: 'va', program: 'all' });
    try {
      const ready = await child.waitFor((l) => l.startsWith('READY') || l.startsWith('ERROR'), 10_000, 'READY');
      assert.match(ready, /^READY /, ready);
      const ownMac = ready.slice(6);
      assert.equal(ownMac, (await netA.interfaceInfo('va')).mac);
      const [details] = await json<Array<{ promiscuity: number }>>(NS.a, ['-d', 'link', 'show', 'dev', 'va']);
      assert.ok((details?.promiscuity ?? 0) >= 1, 'the capture put va in promiscuous mode');

      // An ARP request from a station that does not exist: B answers it to the made-up MAC, which is
      // not va's (so the capture sees frames for other stations); B's neighbour entry proves delivery.
      const fakeMac = '02:00:00:00:77:01';
      const fakeIp = ip('10.251.0.77');
      child.write(`SEND ${arpRequest(fakeMac, fakeIp, B_ADDR).toString('hex')}`);
      assert.equal(await child.waitFor((l) => l.startsWith('SENT '), 5000, 'SENT'), 'SENT ok');
      await child.waitFor(
        (l) => {
          const a = l.startsWith('FRAME ') ? parseArp(Buffer.from(l.slice(6), 'hex')) : undefined;
          return a !== undefined && a.op === 2 && a.dst === fakeMac && a.spa === B_ADDR && a.tpa === fakeIp;
        },
        5000,
        "B's ARP reply to the injected request",
      );
      const neigh = await json<Array<{ lladdr?: string }>>(NS.b, ['neigh', 'show', formatIPv4(fakeIp), 'dev', 'vb']);
      assert.equal(neigh[0]?.lladdr, fakeMac, 'B learned the injected sender');

      // The kernel's own traffic on va (echo request, src = va's MAC) is not delivered; B's reply is.
      const r = await run('ping', ['-c', '1', '-W', '2', '10.251.0.2'], { netns: NS.a, timeoutMs: 5000 });
      assert.equal(r.code, 0, r.stderr);
      await child.waitFor(
        (l) => l.startsWith('FRAME ') && Buffer.from(l.slice(6), 'hex').readUInt16BE(12) === 0x0800,
        5000,
        'the echo reply',
      );
      const own = child.frames().filter((f) => macFromBytes(f, 6) === ownMac);
      assert.deepEqual(
        own.map((f) => f.toString('hex')),
        [],
        'frames sent by this host are filtered out',
      );
    } finally {
      child.stop();
    }
  });

  test("the CN's BPF program in the kernel keeps what the unit test's interpreter keeps", async () => {
    const rx = startPcapChild(NS.a, { ifname: 'va', program: 'cn' });
    const tx = startPcapChild(NS.b, { ifname: 'vb', program: 'all', quiet: true });
    try {
      for (const c of [rx, tx]) assert.match(await c.waitFor((l) => /^(READY|ERROR)/.test(l), 10_000, 'READY'), /^READY /);
      const ownMac = rx.lines.find((l) => l.startsWith('READY '))!.slice(6);
      const cases = frameCases(ownMac);
      for (const c of cases) tx.write(`SEND ${c.frame.toString('hex')}`);
      // the last one, accepted: frames arrive in order on a veth, so every earlier one is in by then
      const sentinel = arpRequest('02:00:00:00:77:02', ip('10.251.0.78'), B_ADDR);
      tx.write(`SEND ${sentinel.toString('hex')}`);
      await rx.waitFor((l) => l === `FRAME ${sentinel.toString('hex')}`, 5000, 'the last frame');
      const sent = tx.lines.filter((l) => l.startsWith('SENT '));
      assert.deepEqual(new Set(sent), new Set(['SENT ok']), sent.join('\n'));
      const got = new Set(rx.frames().map((f) => f.toString('hex')));
      for (const c of cases) {
        // A received frame's 802.1Q tag is out of band when the program runs: it sees (and accepts)
        // the DISCOVER inside, and the addon delivers the frame with its tag put back.
        const expected = c.tagged ? true : c.cn;
        assert.equal(got.has(c.frame.toString('hex')), expected, c.name);
      }
    } finally {
      rx.stop();
      tx.stop();
    }
  });

  test('a burst of 500 DISCOVERs sent while the reader is blocked all arrive; a small buffer drops, and counts', async () => {
    const discover = frameCases('02:cc:00:00:00:01').find((c) => c.name === 'DHCP DISCOVER, broadcast')!.frame;
    const N = 500;
    const tx = startPcapChild(NS.b, { ifname: 'vb', program: 'all', quiet: true });
    try {
      assert.match(await tx.waitFor((l) => /^(READY|ERROR)/.test(l), 10_000, 'READY'), /^READY /);
      for (const rcvbuf of [undefined, 65536]) {
        const rx = startPcapChild(NS.a, { ifname: 'va', program: 'cn', quiet: true, ...(rcvbuf ? { rcvbuf } : {}) });
        const gate = path.join(os.tmpdir(), `tmip-burst-${process.pid}-${rcvbuf ?? 0}`);
        try {
          assert.match(await rx.waitFor((l) => /^(READY|ERROR)/.test(l), 10_000, 'READY'), /^READY /);
          rx.write(`BLOCK ${gate}`);
          await rx.waitFor((l) => l === 'BLOCKING', 5000, 'the reader blocked');
          tx.write(`BURST ${N} ${discover.toString('hex')} ${rcvbuf ?? 0}`);
          const done = await tx.waitFor((l) => l.startsWith(`BURSTED ${rcvbuf ?? 0} `), 5000, 'the burst sent');
          assert.equal(done, `BURSTED ${rcvbuf ?? 0} 0`);
          // what the kernel holds for them while the reader is blocked (/proc/net/packet: Rmem)
          const rmem = (await inNs(NS.a, 'cat', ['/proc/net/packet'])).stdout
            .split('\n')
            .slice(1)
            .map((l) => Number(l.trim().split(/\s+/)[6] ?? 0))
            .reduce((a, b) => Math.max(a, b), 0);
          fs.writeFileSync(gate, '');
          await rx.waitFor((l) => l === 'UNBLOCKED', 12_000, 'the reader unblocked');
          let stats: { count: number; received: number; dropped: number; truncated: number } | undefined;
          for (let i = 0; i < 50; i++) {
            rx.write(`STATS ${i}`);
            const line = await rx.waitFor((l) => l.startsWith(`STATS ${i} `), 5000, 'STATS');
            stats = JSON.parse(line.slice(`STATS ${i} `.length)) as typeof stats;
            if (stats!.count + stats!.dropped >= N) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          process.stdout.write(
            `# burst rcvbuf=${rcvbuf ?? 'default'}: ${JSON.stringify(stats)}, Rmem while blocked ${rmem} bytes (${Math.round(rmem / Math.max(1, stats!.count))} per queued frame)\n`,
          );
          assert.equal(stats!.count, stats!.received);
          assert.equal(stats!.truncated, 0);
          if (rcvbuf === undefined) assert.deepEqual([stats!.count, stats!.dropped], [N, 0], 'the default buffer holds the whole burst');
          else {
            assert.ok(stats!.dropped > 0, 'a 64 KiB buffer cannot hold 500 frames');
            assert.equal(stats!.count + stats!.dropped, N, 'the drop counter accounts for every frame not delivered');
          }
        } finally {
          rx.stop();
          fs.rmSync(gate, { force: true });
        }
      }
    } finally {
      tx.stop();
    }
  });

  test('the capture goes on after its interface goes down and comes back up', async () => {
    const discover = frameCases('02:cc:00:00:00:01').find((c) => c.name === 'DHCP DISCOVER, broadcast')!.frame;
    const rx = startPcapChild(NS.a, { ifname: 'va', program: 'cn', quiet: true });
    const tx = startPcapChild(NS.b, { ifname: 'vb', program: 'all', quiet: true });
    try {
      for (const c of [rx, tx]) assert.match(await c.waitFor((l) => /^(READY|ERROR)/.test(l), 10_000, 'READY'), /^READY /);
      const count = async (tag: string): Promise<number> => {
        rx.write(`STATS ${tag}`);
        const line = await rx.waitFor((l) => l.startsWith(`STATS ${tag} `), 5000, 'STATS');
        return (JSON.parse(line.slice(`STATS ${tag} `.length)) as { count: number }).count;
      };
      // (a Wi-Fi restart takes the AP's interface down and up; the kernel flags the socket with
      // ENETDOWN, which the event loop sees as an error on it)
      await inNs(NS.a, 'ip', ['link', 'set', 'dev', 'va', 'down']);
      await inNs(NS.a, 'ip', ['link', 'set', 'dev', 'va', 'up']);
      const before = await count('before');
      for (let i = 0; i < 20; i++) {
        tx.write(`BURST 1 ${discover.toString('hex')} flap${i}`);
        await tx.waitFor((l) => l.startsWith(`BURSTED flap${i} `), 5000, 'sent');
        if ((await count(`after${i}`)) > before) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.fail('no frame captured after the interface came back up');
    } finally {
      rx.stop();
      tx.stop();
    }
  });

  test('the addon survives sockets garbage-collected open, closed twice, and used after close', async () => {
    const addon = new URL('../../../native/packet/index.js', import.meta.url).pathname;
    const script = `
      const { PacketSocket } = require(${JSON.stringify(addon)});
      const prog = Buffer.alloc(8); prog.writeUInt16LE(6, 0); prog.writeUInt32LE(65535, 4);
      for (let i = 0; i < 200; i++) {
        const s = new PacketSocket('va', prog, 65536, 2048, () => {});
        if (i % 3 === 1) s.close();
        if (i % 3 === 2) { s.close(); s.close(); if (s.send(Buffer.alloc(60)) !== 'socket is closed') process.exit(3); s.stats(); }
      }
      global.gc();
      setTimeout(() => { global.gc(); setTimeout(() => console.log('done'), 50); }, 50);`;
    const r = await inNs(NS.a, process.execPath, ['--expose-gc', '-e', script], 20_000);
    assert.equal(r.stdout.trim(), 'done');
  });

  test('openPacketLink reports errors as Results', () => {
    const all: BpfInsn[] = [{ code: BPF_OP.RET_K, jt: 0, jf: 0, k: 0 }];
    const bad = openPacketLink('bad name', all);
    assert.ok(!bad.ok && /invalid interface name/.test(bad.error));
    const missing = openPacketLink('tmipnosuch0', all);
    assert.ok(!missing.ok && /does not exist/.test(missing.error), missing.ok ? '' : missing.error);
    const gone = openPacketLink('tmipnosuch0', all, { mac: '02:00:00:00:00:01' });
    assert.ok(!gone.ok && /tmipnosuch0: No such device/.test(gone.error), gone.ok ? '' : gone.error);
    const lo = openPacketLink('lo', all, { mac: '00:00:00:00:00:00' });
    assert.ok(!lo.ok && /not an Ethernet interface/.test(lo.error), lo.ok ? '' : lo.error);
    assert.ok(!openPacketLink('lo', [], { mac: '00:00:00:00:00:00' }).ok);
  });
});
