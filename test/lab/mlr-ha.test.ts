// SPDX-License-Identifier: GPL-2.0-only
// Two MLRs sharing a 3-member etcd (issue 9, "high availability on an existing distributed engine").
// The etcd members run in the MLR's namespace on its loopback (127.0.0.1:2379/2381/2383, peers on the
// next ports); MLR A listens on the lab's MLR address, MLR B on a second address of the same
// namespace (10.200.0.3); the CNs `list mlr` both. A leads, B stands by (listening nowhere). A client
// with a TCP stream is in cell 1. Then:
// - A is killed with SIGKILL and, at once, the client roams to cell 2 (a roam during the outage);
// - B takes over when A's lease lapses: both CNs are bound to B within 5 s of the kill;
// - the roam completes (B's registry places the client at CN2, the kernels agree) and the stream
//   survives on the same connection;
// - etcd's own (Raft) leader is killed: etcd elects another, B keeps serving, a roam back completes;
// - A, restarted, stands by: it says who leads and listens nowhere.
// Bindings (status), kernel state (gateways, tunnels) and TCP sessions are counted before and after.
// Everything runs in namespaces the lab creates; the lab kills every process it spawned (etcd too).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { etcdMembers, haveEtcd } from '../support/etcd.js';
import { startUdhcpc, type DhcpClient } from './dhcp-clients.js';
import { LAB, type LabProcess } from './lab.js';
import { startStream, type StreamRun } from './stream.js';
import { DIST, TmipLab, report } from './tmip-lab.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'lab tests need root (network namespaces)' : !haveEtcd() ? 'needs etcd (Debian package etcd-server)' : false;
const MLR_B_IP = '10.200.0.3';
const ETCD_BASE_PORT = 2379;

describe('two MLRs on a 3-member etcd: the leader is killed, the standby serves', { skip, timeout: 120_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun | undefined;
  let client: DhcpClient | undefined;
  let mlrB: LabProcess;
  const etcdProcs: LabProcess[] = [];
  let mac = '';
  let msIp = '';
  const members = () => etcdMembers(t.dir, 3, '127.0.0.1', ETCD_BASE_PORT);

  /** Both MLRs' configs: the same store and keys, each its own listen address. */
  function mlrConf(listen: string): string {
    const conf = fs.readFileSync(path.join(t.dir, 'mlr.conf'), 'utf8');
    return conf.replace(/\toption listen '[^']*'/, `\toption listen '${listen}'`);
  }

  function spawnMlr(name: string, listen: string): LabProcess {
    const file = path.join(t.dir, `${name}.conf`);
    fs.writeFileSync(file, mlrConf(listen));
    return t.lab.spawn('mlr', process.execPath, [path.join(DIST, 'tmip-mlr.cjs'), '-f', file, '-F'], {
      logFile: path.join(t.dir, `${name}.log`),
    });
  }

  before(async () => {
    t = await TmipLab.start({
      debug: 3,
      store: `etcd://${[0, 1, 2].map((i) => `127.0.0.1:${ETCD_BASE_PORT + 2 * i}`).join(',')}`,
      mlrs: [LAB.mlrIp, MLR_B_IP],
      mlrExtra: [`\toption listen '${LAB.mlrIp}'`],
      beforeMlr: async (lab) => {
        await lab.lab.ip('mlr', ['addr', 'add', `${MLR_B_IP}/${LAB.backbonePrefix}`, 'dev', LAB.backboneIf]);
        const ms = etcdMembers(lab.dir, 3, '127.0.0.1', ETCD_BASE_PORT);
        for (const m of ms) etcdProcs.push(lab.lab.spawn('mlr', 'etcd', m.args, { logFile: path.join(lab.dir, `etcd-${m.name}.log`) }));
        // healthy = a quorum answers on every member (bounded: 15 s)
        const check = `const u=${JSON.stringify(ms.map((m) => m.clientUrl))};const end=Date.now()+15000;(async()=>{for(const x of u){for(;;){const ok=await fetch(x+'/health').then(r=>r.json()).then(j=>j.health==='true').catch(()=>false);if(ok)break;if(Date.now()>end)process.exit(1);await new Promise(r=>setTimeout(r,100));}}})()`;
        const r = await lab.lab.exec('mlr', process.execPath, ['-e', check], { timeoutMs: 20_000 });
        assert.equal(r.code, 0, `etcd cluster healthy: ${r.stderr}`);
      },
    });
    mlrB = spawnMlr('mlr-b', MLR_B_IP);
    await mlrB.waitForLine(/standby: \S+ \(serving on 10\.200\.0\.2:6554\) leads/, 10_000, { stream: 'both' });
  });
  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
    if (t?.keptLogs) report('logs', t.keptLogs);
  });

  const status = (host: string) => t.mlrStatus('cn1', host);

  async function kernel() {
    const ss = await t.lab.exec('ms1', 'ss', ['-Htn', 'state', 'established']);
    return {
      gateways: { cn1: await t.gateways('cn1'), cn2: await t.gateways('cn2') },
      tunnels: { cn1: (await t.tunnels('cn1')).length, cn2: (await t.tunnels('cn2')).length },
      tcp: ss.stdout.split('\n').filter((l) => l.trim() !== '').length,
    };
  }

  it('A leads, B stands by listening nowhere; a client with a TCP stream is in cell 1', async () => {
    assert.equal(members().length, 3);
    mac = (await t.lab.addMs('ms1', 1)).mac;
    client = startUdhcpc(t.lab, 'ms1');
    msIp = (await client.waitForLease(20_000)).ip;
    stream = await startStream(t.lab, { ms: 'ms1', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(50, 5000);
    const s = await status(LAB.mlrIp);
    const k = await kernel();
    report('before: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.deepEqual(
      s.bindings.map((b) => [b.mac, b.current, b.state]),
      [[mac, 'cn1', 'bound']],
    );
    assert.equal(k.tcp, 1);
    assert.equal(k.gateways.cn2.length, 0);
    const refused = await t.mlrStatusRun('cn1', MLR_B_IP);
    assert.notEqual(refused.code, 0, 'the standby does not listen');
    assert.match(refused.stderr, /ECONNREFUSED/);
  });

  it('A is killed; the client roams meanwhile; B serves both CNs within 5 s and the roam completes', async () => {
    const marks = { cn1: t.cn('cn1').mark(), cn2: t.cn('cn2').mark() };
    const leases = client!.leases().length;
    const killedAt = performance.now();
    assert.ok(t.mlr.signal('SIGKILL'));
    await t.mlr.exited;
    await t.lab.moveMs('ms1', 2);

    await mlrB.waitForLine(/MLR up and listening/, 10_000, { stream: 'both' });
    const bound = await Promise.all(
      (['cn1', 'cn2'] as const).map(async (cn) => {
        await t.cn(cn).waitForLine(new RegExp(`Bind accepted`), 10_000, { since: marks[cn], stream: 'both' });
        return [...t.cn(cn).lines].reverse().find((l) => /Bind accepted/.test(l.text))!.at;
      }),
    );
    const servedMs = Math.max(...bound) - killedAt;
    report('both CNs bound to the standby after the kill (ms)', Math.round(servedMs));
    assert.ok(servedMs < 5000, `served by the standby ${Math.round(servedMs)} ms after the kill`);

    await t.waitArrival('cn2', mac, marks.cn2, 15_000);
    await t.until(
      'B to place the client at CN2',
      async () => {
        const s = await status(MLR_B_IP);
        return s.bindings.length === 1 && s.bindings[0]!.current === 'cn2';
      },
      10_000,
    );
    const gw = msIp.replace(/\d+$/, (n) => String(Number(n) + 1));
    await t.until('CN2 to play the gateway and CN1 not', async () => {
      const k = await kernel();
      return k.gateways.cn2.includes(gw) && !k.gateways.cn1.includes(gw);
    });
    await stream!.waitResumed(killedAt, 15_000);
    const k = await kernel();
    const s = await status(MLR_B_IP);
    report('after: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.deepEqual(
      s.bindings.map((b) => [b.mac, b.current, b.state]),
      [[mac, 'cn2', 'bound']],
    );
    assert.deepEqual(s.cns.map((c) => [c.name, c.online]).sort(), [
      ['cn1', 'yes'],
      ['cn2', 'yes'],
    ]);
    assert.deepEqual(k.gateways, { cn1: [], cn2: [gw] });
    assert.deepEqual(k.tunnels, { cn1: 1, cn2: 1 });
    assert.equal(k.tcp, 1, 'still one TCP session');
    assert.ok(await t.ping('srv', msIp), 'server -> client through the tunnel');
    const summary = await stream!.summary();
    report('stream', { records: summary.records, maxGapMs: summary.maxGapMs, connections: summary.connections });
    assert.equal(summary.connections, 1, 'the same TCP connection throughout');
    assert.deepEqual(stream!.failures(), []);
    assert.equal(client!.leases().length, leases, 'no new lease');
  });

  it("etcd's own leader killed: etcd elects another, B keeps serving, a roam back completes", async () => {
    // which member leads the Raft group: the one whose member id is the leader its status names
    const urls = members().map((m) => m.clientUrl);
    const find = `Promise.all(${JSON.stringify(urls)}.map(u=>fetch(u+'/v3/maintenance/status',{method:'POST',body:'{}'}).then(r=>r.json()))).then(a=>console.log(a.findIndex(s=>s.header.member_id===s.leader)))`;
    const r = await t.lab.exec('mlr', process.execPath, ['-e', find], { timeoutMs: 10_000 });
    const leader = Number(r.stdout.trim());
    assert.ok(leader >= 0 && leader < 3, `the etcd leader: ${r.stdout} ${r.stderr}`);
    report('etcd leader killed', members()[leader]!.name);
    const m = etcdProcs[leader]!;
    m.signal('SIGKILL');
    await m.exited;
    const since = t.cn('cn1').mark();
    const bMark = mlrB.mark();
    await t.lab.moveMs('ms1', 1);
    await t.waitArrival('cn1', mac, since, 15_000);
    await t.until(
      'B to place the client at CN1',
      async () => {
        const s = await status(MLR_B_IP);
        return s.bindings.length === 1 && s.bindings[0]!.current === 'cn1';
      },
      10_000,
    );
    assert.deepEqual(
      mlrB.lines.slice(bMark).filter((l) => /lost the leadership|deposed|no etcd endpoint/.test(l.text)),
      [],
      'B neither lost its lease nor failed a write',
    );
    await stream!.waitResumed(performance.now() - 100, 15_000);
    assert.deepEqual(stream!.failures(), []);
  });

  it('A, restarted, stands by: it names the leader and listens nowhere', async () => {
    const a = spawnMlr('mlr-a2', LAB.mlrIp);
    await a.waitForLine(/standby: \S+ \(serving on 10\.200\.0\.3:6554\) leads/, 10_000, { stream: 'both' });
    const r = await t.mlrStatusRun('cn1', LAB.mlrIp);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ECONNREFUSED/);
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(a.stdout().filter((l) => /MLR up and listening|leading network/.test(l)).length, 0, 'A does not lead');
    assert.equal((await status(MLR_B_IP)).bindings.length, 1, 'B still serves');
  });
});
