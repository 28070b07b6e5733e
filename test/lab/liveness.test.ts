// SPDX-License-Identifier: GPL-2.0-only
// Liveness both ways and expiry everywhere (issue 9), with the bundled daemons in the namespace lab.
// One lab, lease_time 60 s and lease_grace 0, three faults in a row:
// - an AP powered off (its process frozen with SIGSTOP, its backbone and Wi-Fi links down: no FIN)
//   while a client with a TCP stream roams away from it: the roam completes within 5 s of the cut and
//   the MLR shows that CN offline; powered up again, it re-binds, withdraws the client's gateway, and
//   tunnels the client's address (it is the parent) to its new AP; the stream resumes on its connection;
// - a backbone link (the other AP's) cut for CUT_MS and restored: the MLR marks that CN offline, the
//   client roams back home during the outage and a new client joins; after the restore the cut-off CN
//   re-binds and drops the gateway it could not be told to drop: nothing lost, no duplicate cell or
//   gateway, the same TCP connection;
// - expiry: a client that roamed away from home stops renewing (its DHCP client killed, its link
//   gone); after its lease the MLR drops the binding and both CNs drop its gateway, route and tunnel
//   (the parent may be cut off at that moment and learn it when it re-binds); its cell is handed out
//   again to the next client.
// And over MQTT: the power-off again, found by the heartbeat through the broker (its keepalive would
// take 22 s to publish the last will).
// Bindings (MLR status), kernel state (gateways, tunnels, host routes) and TCP sessions are counted
// before and after each fault.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { startUdhcpc, type DhcpClient } from './dhcp-clients.js';
import { LAB } from './lab.js';
import { startStream, toEpoch, type StreamRun } from './stream.js';
import { TmipLab, TUNNEL_PREFIX, lineEpoch, report, type CnName, type MlrStatus } from './tmip-lab.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'lab tests need root (network namespaces)';
const mqttSkip = spawnSync('mosquitto', ['-h']).error ? 'mosquitto is not installed (make deps installs it)' : false;
const LEASE_S = 60;
/**
 * The backbone cut, as long as issue 9 asks: it outlasts every timer the fault meets (the heartbeat,
 * 3 s, on both ends; the CN's reconnect back-off at its 10 s ceiling with 5 s connect time-outs;
 * TCP's retransmission back-off past 10 s), several times over.
 */
const CUT_MS = 30_000;

const online = (s: MlrStatus, cn: CnName) => s.cns.find((c) => c.name === cn)?.online;

/** Cut a CN off: its backbone port down (from the bridge's side); a power-off also takes its Wi-Fi port down and freezes the process. */
async function cutCn(t: TmipLab, cn: CnName, powerOff: boolean): Promise<void> {
  if (powerOff) t.cn(cn).signal('SIGSTOP');
  await t.lab.ip('bb', ['link', 'set', 'dev', `v-${cn}`, 'down']);
  if (powerOff) await t.lab.ip('air', ['link', 'set', 'dev', `w-${cn}`, 'down']);
}
async function restoreCn(t: TmipLab, cn: CnName, powerOff: boolean): Promise<number> {
  if (powerOff) await t.lab.ip('air', ['link', 'set', 'dev', `w-${cn}`, 'up']);
  await t.lab.ip('bb', ['link', 'set', 'dev', `v-${cn}`, 'up']);
  if (powerOff) t.cn(cn).signal('SIGCONT');
  return performance.now();
}

describe('liveness and expiry: an AP powered off, a backbone cut, a lease that ends', { skip, timeout: 240_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun | undefined;
  const macs: Record<string, string> = {};
  const ips: Record<string, string> = {};
  const clients: Record<string, DhcpClient> = {};
  /** When the MLR acknowledged msx's lease (it expires LEASE_S later: lease_grace 0). */
  let msxLeasedAt = 0;

  before(async () => {
    t = await TmipLab.start({ leaseTime: LEASE_S, mlrExtra: ["\toption lease_grace '0'"] });
  });
  after(async () => {
    t?.cns.cn1?.signal('SIGCONT');
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  // From the MLR's own namespace: whichever CN is cut off.
  const status = () => t.mlrStatus('mlr');
  const bindingOf = (s: MlrStatus, ms: string) => s.bindings.find((b) => b.mac === macs[ms]);

  /** Host routes into our tunnels on a CN ("10.1.0.5 dev tmip1 ..."): the addresses only. */
  async function tunnelRoutes(cn: CnName): Promise<string[]> {
    const out = await t.lab.exec(cn, 'ip', ['-o', '-4', 'route', 'show']);
    return out.stdout
      .split('\n')
      .filter((l) => new RegExp(`dev ${TUNNEL_PREFIX}\\d+`).test(l))
      .map((l) => l.split(' ')[0]!)
      .sort();
  }

  /** What the kernels hold: gateways, tunnels and tunnel routes per CN, ms1's established TCP sessions. */
  async function kernel() {
    const ss = await t.lab.exec('ms1', 'ss', ['-Htn', 'state', 'established']);
    return {
      gateways: { cn1: (await t.gateways('cn1')).sort(), cn2: (await t.gateways('cn2')).sort() },
      tunnels: { cn1: (await t.tunnels('cn1')).length, cn2: (await t.tunnels('cn2')).length },
      routes: { cn1: await tunnelRoutes('cn1'), cn2: await tunnelRoutes('cn2') },
      tcp: ss.stdout.split('\n').filter((l) => l.trim() !== '').length,
    };
  }
  const gatewayOf = (ms: string) => ips[ms]!.replace(/\d+$/, (n) => String(Number(n) + 1));

  const cut = (cn: CnName, powerOff: boolean) => cutCn(t, cn, powerOff);
  const restore = (cn: CnName, powerOff: boolean) => restoreCn(t, cn, powerOff);

  it('ms1 leases at home in cell 1 with a TCP stream; msx leases in cell 2, roams to cell 1 and stops renewing', async () => {
    for (const [ms, cell] of [
      ['ms1', 1],
      ['msx', 2],
    ] as const) {
      macs[ms] = (await t.lab.addMs(ms, cell)).mac;
      clients[ms] = startUdhcpc(t.lab, ms);
      ips[ms] = (await clients[ms].waitForLease(20_000)).ip;
      if (ms === 'msx') msxLeasedAt = Date.now();
      t.lab.spawn(ms, 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    }
    assert.equal(ips.ms1, '10.1.0.5');
    assert.equal(ips.msx, '10.2.0.5');
    const mark = t.cn('cn1').mark();
    await t.lab.moveMs('msx', 1);
    await t.waitArrival('cn1', macs.msx!, mark);
    // msx leaves for good: no more renewals, no more frames.
    clients.msx!.proc.signal('SIGKILL');
    await t.lab.setMsLink('msx', false);

    stream = await startStream(t.lab, { ms: 'ms1', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(50, 5000);
    const s = await status();
    const k = await kernel();
    report('before: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.deepEqual(
      s.bindings.map((b) => [b.mac, b.parent, b.current]).sort(),
      [
        [macs.ms1, 'cn1', 'cn1'],
        [macs.msx, 'cn2', 'cn1'],
      ].sort(),
    );
    assert.deepEqual(k.gateways, { cn1: [gatewayOf('ms1'), gatewayOf('msx')].sort(), cn2: [] });
    assert.deepEqual(k.tunnels, { cn1: 1, cn2: 1 });
    assert.deepEqual(k.routes, { cn1: [], cn2: [ips.msx] }, 'the parent routes its roamed client into the tunnel');
    assert.equal(k.tcp, 1, 'one TCP session');
  });

  it('an AP powered off while ms1 roams away from it: the roam completes within 5 s, the MLR shows it offline', async () => {
    const mark = t.cn('cn2').mark();
    await cut('cn1', true);
    const cutAt = performance.now();
    await t.lab.moveMs('ms1', 2);
    const line = await t.waitArrival('cn2', macs.ms1!, mark, 10_000);
    const roamMs = lineEpoch(line) - toEpoch(cutAt);
    report('roam away from a powered-off AP completed after the cut (ms)', roamMs);
    assert.ok(roamMs <= 5000, `the roam completed ${roamMs} ms after the cut`);
    const s = await status();
    assert.equal(online(s, 'cn1'), 'no', 'the MLR shows the powered-off CN offline');
    assert.equal(online(s, 'cn2'), 'yes');
    assert.deepEqual([bindingOf(s, 'ms1')?.parent, bindingOf(s, 'ms1')?.current], ['cn1', 'cn2']);
    assert.deepEqual(await t.gateways('cn2'), [gatewayOf('ms1')]);
    assert.ok(
      t.mlr.lines.some((l) => /CN 'cn1' disconnected \(heartbeat: nothing from /.test(l.text)),
      'the heartbeat found it',
    );
  });

  it('powered up again, the AP re-binds and converges; the stream resumes on the same connection', async () => {
    const mark = t.cn('cn1').mark();
    const upAt = await restore('cn1', true);
    await t.cn('cn1').waitForLine(/Bind accepted/, 20_000, { since: mark, stream: 'both' });
    await t.until(
      'cn1 to withdraw ms1 gateway and route its address to cn2',
      async () => !(await t.gateways('cn1')).includes(gatewayOf('ms1')) && (await tunnelRoutes('cn1')).includes(ips.ms1!),
      10_000,
    );
    const gap = await stream!.waitResumed(upAt, 30_000);
    report('stream gap around the power-up (ms)', gap);
    const s = await status();
    const k = await kernel();
    report('after the power-off: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.equal(online(s, 'cn1'), 'yes');
    assert.deepEqual(k.gateways, { cn1: [gatewayOf('msx')], cn2: [gatewayOf('ms1')] });
    assert.deepEqual(k.routes, { cn1: [ips.ms1], cn2: [ips.msx] });
    assert.equal(k.tcp, 1);
    assert.deepEqual(stream!.failures(), []);
  });

  it(`a backbone link cut for ${CUT_MS / 1000} s: a roam and a new client meanwhile; afterwards it converges, no duplicate cell or gateway`, async () => {
    const before = await status();
    await cut('cn2', false);
    const cutAt = performance.now();
    await t.until('the MLR to mark cn2 offline', async () => online(await status(), 'cn2') === 'no', 8000);
    report('cut-off CN offline at the MLR after (ms)', Math.round(performance.now() - cutAt));
    // ms1 comes home meanwhile: the move goes on without cn2 (previous CN, offline).
    const mark = t.cn('cn1').mark();
    const movedAt = await t.lab.moveMs('ms1', 1);
    await t.waitArrival('cn1', macs.ms1!, mark, 5000);
    await stream!.waitResumed(movedAt, 15_000);
    // a new client joins cell 1 meanwhile.
    macs.ms3 = (await t.lab.addMs('ms3', 1)).mac;
    clients.ms3 = startUdhcpc(t.lab, 'ms3');
    ips.ms3 = (await clients.ms3.waitForLease(20_000)).ip;
    assert.ok((await t.gateways('cn2')).includes(gatewayOf('ms1')), 'cut off, cn2 still holds the gateway it cannot be told to drop');
    const rest = CUT_MS - (performance.now() - cutAt);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    const cn2mark = t.cn('cn2').mark();
    const upAt = await restore('cn2', false);
    await t.cn('cn2').waitForLine(/Bind accepted/, 30_000, { since: cn2mark, stream: 'both' });
    report('cut-off CN bound again after the restore (ms)', Math.round(performance.now() - upAt));
    await t.until('cn2 to drop ms1 gateway', async () => !(await t.gateways('cn2')).includes(gatewayOf('ms1')), 10_000);

    const s = await status();
    const k = await kernel();
    report('after the backbone cut: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.equal(online(s, 'cn2'), 'yes');
    for (const ms of ['ms1', 'ms3']) assert.equal(bindingOf(s, ms)?.current, 'cn1', `${ms} is served by cn1`);
    assert.equal(bindingOf(s, 'ms1')?.cell, bindingOf(before, 'ms1')?.cell, 'ms1 keeps its cell');
    const cells = s.bindings.map((b) => b.cell);
    assert.equal(new Set(cells).size, cells.length, `no duplicate cell: ${cells.join(' ')}`);
    assert.ok(!before.bindings.some((b) => b.cell === bindingOf(s, 'ms3')?.cell), 'the new client got a cell nobody held');
    const allGateways = [...k.gateways.cn1, ...k.gateways.cn2];
    assert.equal(new Set(allGateways).size, allGateways.length, `no gateway on two CNs: ${allGateways.join(' ')}`);
    assert.ok(k.gateways.cn1.includes(gatewayOf('ms1')) && k.gateways.cn1.includes(gatewayOf('ms3')));
    assert.equal(k.tcp, 1);
    assert.deepEqual(stream!.failures(), []);
  });

  it('expiry: msx, which stopped renewing, is dropped everywhere after its lease; its cell goes to the next client', async () => {
    const due = msxLeasedAt + LEASE_S * 1000;
    await t.until(
      'the MLR to drop msx',
      async () => bindingOf(await status(), 'msx') === undefined,
      Math.max(0, due - Date.now()) + 15_000,
    );
    report('msx dropped after its lease ended (ms)', Date.now() - due);
    assert.ok(Date.now() >= due - 1000, 'not before its lease ended');
    await t.until(
      'both CNs to drop its gateway, route and tunnel',
      async () => {
        const k = await kernel();
        return !k.gateways.cn1.includes(gatewayOf('msx')) && !k.routes.cn2.includes(ips.msx!) && k.tunnels.cn1 === 0 && k.tunnels.cn2 === 0;
      },
      10_000,
    );
    const s = await status();
    const k = await kernel();
    report('after expiry: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.deepEqual(s.bindings.map((b) => b.mac).sort(), [macs.ms1, macs.ms3].sort());
    assert.deepEqual(k.gateways, { cn1: [gatewayOf('ms1'), gatewayOf('ms3')].sort(), cn2: [] });
    assert.deepEqual(k.routes, { cn1: [], cn2: [] });
    assert.equal(k.tcp, 1);
    // the expired cell is free again: the next client in cell 2 gets it.
    macs.ms4 = (await t.lab.addMs('ms4', 2)).mac;
    clients.ms4 = startUdhcpc(t.lab, 'ms4');
    const lease = await clients.ms4.waitForLease(20_000);
    assert.equal(lease.ip, ips.msx, 'the expired cell is handed out again');
    const summary = await stream!.summary();
    report('stream summary', {
      records: summary.records,
      maxGapMs: summary.maxGapMs,
      resets: summary.resets,
      seqErrors: summary.seqErrors,
    });
    assert.equal(summary.resets, 0);
    assert.equal(summary.seqErrors, 0);
    assert.equal(summary.connections, 1, 'the same TCP connection throughout');
  });
});

describe('over MQTT: an AP powered off while a client roams away from it', { skip: skip || mqttSkip, timeout: 90_000 }, () => {
  let t: TmipLab;
  before(async () => {
    t = await TmipLab.start({ transport: 'mqtt' });
  });
  after(async () => {
    t?.cns.cn1?.signal('SIGCONT');
    await t?.destroy();
  });

  it('the roam completes within 5 s of the cut, long before the broker would publish the last will', async () => {
    const ms = await t.lab.addMs('ms1', 1);
    const client = startUdhcpc(t.lab, 'ms1');
    const lease = await client.waitForLease(20_000);
    t.lab.spawn('ms1', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    assert.equal(online(await t.mlrStatus('mlr'), 'cn1'), 'yes');
    const mark = t.cn('cn2').mark();
    await cutCn(t, 'cn1', true);
    const cutAt = performance.now();
    await t.lab.moveMs('ms1', 2);
    const line = await t.waitArrival('cn2', ms.mac, mark, 10_000);
    const roamMs = lineEpoch(line) - toEpoch(cutAt);
    report('over MQTT: roam away from a powered-off AP completed after the cut (ms)', roamMs);
    assert.ok(roamMs <= 5000, `the roam completed ${roamMs} ms after the cut`);
    const s = await t.mlrStatus('mlr');
    assert.equal(online(s, 'cn1'), 'no');
    assert.equal(s.bindings.find((b) => b.mac === ms.mac)?.current, 'cn2');
    assert.deepEqual(await t.gateways('cn2'), [lease.router]);
    assert.ok(
      t.mlr.lines.some((l) => /CN 'cn1' disconnected \(heartbeat: nothing from mqtt:cn1/.test(l.text)),
      'the heartbeat found it, not the last will',
    );
    // powered up again: it binds again through the broker and withdraws the gateway it no longer serves.
    const cn1mark = t.cn('cn1').mark();
    await restoreCn(t, 'cn1', true);
    await t.cn('cn1').waitForLine(/Bind accepted/, 30_000, { since: cn1mark, stream: 'both' });
    await t.until('cn1 to withdraw the gateway', async () => (await t.gateways('cn1')).length === 0, 10_000);
    assert.equal(online(await t.mlrStatus('mlr'), 'cn1'), 'yes');
    assert.ok(await t.ping('srv', lease.ip), 'server -> roamed client through the parent, back again');
  });
});
