// SPDX-License-Identifier: GPL-2.0-only
// The heart of tmip, proven against real parts: the bundled MLR and CNs in network namespaces, the
// kernel's vxlan tunnels, real DHCP clients (busybox udhcpc, ISC dhclient) and real TCP streams.
// A client gets a /30 in cell 1, roams to cell 2 (its link moves between the cell bridges, carrier
// up, as in a Wi-Fi roam), keeps its address and its TCP session, renews or re-boots its lease there
// (ACK, never NAK), downloads in bulk through the tunnel, and roams home, where the tunnel goes.
// The client runs a 10 Hz ping to the server, standing in for a phone's background traffic: that
// (like any frame it sends to its old gateway) is what the new CN detects it by.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LAB } from './lab.js';
import { startDhclient, startUdhcpc, type DhcpClient } from './dhcp-clients.js';
import { bulkTransfer, startStream, toEpoch, type StreamRun } from './stream.js';
import { TmipLab, TUNNEL_PREFIX, report, type TmipLabOptions } from './tmip-lab.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'lab tests need root (network namespaces)';
const mqttSkip = spawnSync('mosquitto', ['-h']).error ? 'mosquitto is not installed (make deps installs it)' : false;
const tlsSkip = spawnSync('openssl', ['version']).error ? 'openssl is not installed (make deps installs it)' : false;
const BULK_BYTES = 8_000_000;

/**
 * Roams `ms` to cell `to` and returns the largest stream gap the roam can have caused: gaps still open
 * when the link moved or opening within 2 s after it. A gap that had closed before the move (an
 * earlier test's deliberate outage) is not the roam's, however close before it was.
 */
async function roam(t: TmipLab, stream: StreamRun, ms: string, mac: string, to: 1 | 2): Promise<number> {
  const cn = to === 1 ? 'cn1' : 'cn2';
  const mark = t.cn(cn).mark();
  const at = await t.lab.moveMs(ms, to);
  await t.waitArrival(cn, mac, mark);
  await stream.waitResumed(at, 10_000);
  // Deliberate duration, not a wait for an event: a second stall shortly after the resumption must
  // have the chance to show in the measurement.
  await new Promise((r) => setTimeout(r, 600));
  const moved = toEpoch(at);
  const own = stream.gaps().filter((g) => g.to >= moved && g.from <= moved + 2000);
  return Math.max(0, ...own.map((g) => g.ms));
}

/** A variant of the roam run: its title, the lab's options, how `tmip-cn -E` names the MLR. */
interface RoamVariant {
  title?: string;
  lab?: TmipLabOptions;
  mlrWhere?: RegExp;
}

function describeClient(kind: 'udhcpc' | 'dhclient', variant: RoamVariant = {}): void {
  describe(
    variant.title ?? `roaming with ${kind}`,
    {
      skip: variant.lab?.transport === 'mqtt' ? skip || mqttSkip : variant.lab?.transport === 'tls' ? skip || tlsSkip : skip,
      timeout: 180_000,
    },
    () => {
      let t: TmipLab;
      let client: DhcpClient;
      let stream: StreamRun;
      let ip = '';
      let mac = '';

      before(async () => {
        t = await TmipLab.start(variant.lab);
      });
      after(async () => {
        await stream?.stop().catch(() => null);
        await t?.destroy();
      });

      it('both CNs pass the connectivity evaluation (tmip-cn -E)', { skip: kind !== 'udhcpc' }, async () => {
        const r = await t.evaluate('cn1');
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, variant.mlrWhere ?? /MLR @ 10\.200\.0\.2:6554: Passed/);
        assert.match(r.stdout, /CN @ 10\.200\.0\.12 \[cn2\]: Passed/);
      });

      it('gets its own /30 from CN1 in cell 1 and reaches the server', async () => {
        const ms = await t.lab.addMs('ms1', 1);
        mac = ms.mac;
        client = kind === 'udhcpc' ? startUdhcpc(t.lab, 'ms1') : startDhclient(t.lab, 'ms1');
        const lease = await client.waitForLease(20_000);
        assert.equal(lease.ip, '10.1.0.5', 'first cell of CN1 pool 10.1.0.0/24 (.0/30 holds CN1 own .1)');
        assert.equal(lease.router, '10.1.0.6');
        assert.equal(lease.mask, '255.255.255.252');
        assert.equal(lease.serverId, '10.1.0.6');
        ip = lease.ip;
        assert.ok(await t.ping('ms1', LAB.srvIp), 'MS -> server');
        assert.ok(await t.ping('srv', ip), 'server -> MS');
        t.lab.spawn('ms1', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
        stream = await startStream(t.lab, { ms: 'ms1', intervalMs: 10 });
        await stream.waitConnected();
        await stream.waitRecords(50, 5000);
      });

      it('roams to cell 2 and keeps its address and TCP session', async () => {
        const gap = await roam(t, stream, 'ms1', mac, 2);
        report(`${kind} largest stream gap around the roam to cell 2 (ms)`, gap);
        assert.deepEqual(stream.failures(), [], 'no reset, no sequence error');
        assert.equal(await t.lab.addressOf('ms1'), ip);
        assert.deepEqual(await t.gateways('cn2'), ['10.1.0.6'], 'CN2 now plays the gateway');
        await t.until('CN1 to withdraw the gateway', async () => (await t.gateways('cn1')).length === 0);
        assert.equal((await t.tunnels('cn1')).length, 1, 'parent tunnels to CN2');
        assert.equal((await t.tunnels('cn2')).length, 1);
        const clamp = await t.lab.exec('cn2', 'nft', ['list', 'table', 'ip', `tmip_${TUNNEL_PREFIX}`]);
        assert.match(clamp.stdout, new RegExp(`elements = \\{ ${ip.replace(/\./g, '\\.')} \\}`), 'MSS clamp covers the roamed client');
        assert.ok(await t.ping('srv', ip), 'server -> roamed MS');
        assert.ok(await t.ping('ms1', LAB.srvIp), 'roamed MS -> server');
      });

      it('asks for its address again in cell 2 and gets an ACK, not a NAK', async () => {
        const before = client.leases().length;
        if (kind === 'udhcpc') (client as ReturnType<typeof startUdhcpc>).renew();
        else await (client as ReturnType<typeof startDhclient>).reboot();
        const lease = await client.waitForLease(20_000);
        assert.equal(client.leases().length, before + 1);
        assert.equal(lease.ip, ip);
        assert.equal(lease.event, kind === 'udhcpc' ? 'renew' : 'REBOOT');
        assert.equal(lease.serverId, '10.1.0.6');
        assert.ok(!client.events().some((e) => /nak/i.test(e)), 'no NAK seen by the client');
        assert.deepEqual(stream.failures(), []);
      });

      it('downloads several MB in full-size segments through the tunnel, intact', async () => {
        const r = await bulkTransfer(t.lab, 'srv', 'ms1', BULK_BYTES);
        report(`${kind} bulk download away from home`, `${r.bytes} bytes in ${r.ms} ms`);
        assert.equal(r.ok, true);
        assert.equal(r.bytes, BULK_BYTES);
      });

      it('roams home; the tunnel is removed on both CNs', async () => {
        const gap = await roam(t, stream, 'ms1', mac, 1);
        report(`${kind} largest stream gap around the roam home (ms)`, gap);
        assert.deepEqual(stream.failures(), []);
        await t.until('tunnels to go', async () => (await t.tunnels('cn1')).length === 0 && (await t.tunnels('cn2')).length === 0);
        assert.deepEqual(await t.gateways('cn1'), ['10.1.0.6']);
        assert.deepEqual(await t.gateways('cn2'), []);
        assert.ok(await t.ping('srv', ip));
        const summary = await stream.summary();
        report(`${kind} stream summary`, {
          records: summary.records,
          maxGapMs: summary.maxGapMs,
          resets: summary.resets,
          seqErrors: summary.seqErrors,
        });
        assert.equal(summary.resets, 0);
        assert.equal(summary.seqErrors, 0);
        assert.equal(summary.connections, 1, 'the same TCP connection throughout');
      });

      it('roams to cell 2 again: the tunnel removed before is created anew under its name; home again', async () => {
        // The CNs' long-lived `ip -batch` knew the old tunnel's index (persistent-runner.ts).
        const marks = { cn1: t.cn('cn1').mark(), cn2: t.cn('cn2').mark() };
        const gap = await roam(t, stream, 'ms1', mac, 2);
        report(`${kind} largest stream gap around the second roam to cell 2 (ms)`, gap);
        assert.deepEqual(await t.gateways('cn2'), ['10.1.0.6']);
        await t.until('the tunnels again', async () => (await t.tunnels('cn1')).length === 1 && (await t.tunnels('cn2')).length === 1);
        assert.ok(await t.ping('srv', ip), 'server -> MS through the new tunnel');
        for (const cn of ['cn1', 'cn2'] as const) {
          const failed = t
            .cn(cn)
            .lines.slice(marks[cn])
            .filter((l) => /dataplane: .* failed/.test(l.text));
          assert.deepEqual(failed, [], `${cn}: every kernel change worked the first time`);
        }
        await roam(t, stream, 'ms1', mac, 1);
        await t.until('tunnels to go', async () => (await t.tunnels('cn1')).length === 0 && (await t.tunnels('cn2')).length === 0);
        assert.deepEqual(stream.failures(), []);
        assert.equal((await stream.summary()).connections, 1, 'the same TCP connection throughout');
      });

      it('a second MS that first appears in cell 2 gets a cell from CN2', async () => {
        await t.lab.addMs('ms2', 2);
        const c2 = kind === 'udhcpc' ? startUdhcpc(t.lab, 'ms2') : startDhclient(t.lab, 'ms2');
        const lease = await c2.waitForLease(20_000);
        assert.equal(lease.ip, '10.2.0.5');
        assert.equal(lease.router, '10.2.0.6');
        assert.ok(await t.ping('ms2', LAB.srvIp));
        assert.deepEqual(await t.tunnels('cn2'), [], 'at home: no tunnel');
      });
    },
  );
}

describeClient('udhcpc');
describeClient('dhclient');
describeClient('udhcpc', {
  title: 'roaming over MQTT (udhcpc)',
  lab: { transport: 'mqtt' },
  mlrWhere: /MLR @ mqtt:\/\/10\.200\.0\.2:1883: Passed/,
});
describeClient('udhcpc', {
  title: 'roaming over TLS (udhcpc)',
  lab: { transport: 'tls' },
  mlrWhere: /MLR @ tls:\/\/10\.200\.0\.2:6555: Passed/,
});

describe('CN restarts while a client is away', { skip, timeout: 120_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun;
  before(async () => {
    t = await TmipLab.start();
  });
  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  it('the parent CN, killed and its kernel state lost, restores the tunnel from the MLR without a new lease', async () => {
    const ms = await t.lab.addMs('ms1', 1);
    const client = startUdhcpc(t.lab, 'ms1');
    const lease = await client.waitForLease(20_000);
    t.lab.spawn('ms1', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    stream = await startStream(t.lab, { ms: 'ms1' });
    await stream.waitConnected();
    await roam(t, stream, 'ms1', ms.mac, 2);
    const leases = client.leases().length;

    const cn1 = t.cn('cn1');
    cn1.signal('SIGKILL');
    await cn1.exited;
    for (const dev of await t.tunnels('cn1')) await t.lab.ip('cn1', ['link', 'del', dev]);
    assert.equal(await t.ping('srv', lease.ip, 1), false, 'with the tunnel gone, inbound traffic is lost');

    const down = performance.now();
    const p = await t.startCn('cn1');
    await p.waitForLine(/1 host\(s\) restored/, 10_000, { stream: 'both' });
    assert.equal((await t.tunnels('cn1')).length, 1, 'tunnel rebuilt');
    assert.ok(await t.ping('srv', lease.ip), 'server -> MS again');
    await stream.waitResumed(down, 15_000);
    assert.deepEqual(stream.failures(), [], 'the TCP session survived the outage');
    assert.equal(client.leases().length, leases, 'no new lease was needed');
  });

  it('the serving CN restarts and keeps the client reachable', async () => {
    const mark = performance.now();
    await t.cn('cn2').stop();
    assert.deepEqual(await t.gateways('cn2'), ['10.1.0.6'], 'a clean stop leaves the gateway in place');
    // Leftovers a crashed run could have left that no binding wants any more: they must be purged.
    await t.lab.ip('cn2', [
      'link',
      'add',
      `${TUNNEL_PREFIX}999`,
      'type',
      'vxlan',
      'id',
      '999',
      'local',
      LAB.cn2Ip,
      'remote',
      LAB.srvIp,
      'dstport',
      '4789',
    ]);
    await t.lab.ip('cn2', ['addr', 'add', '10.2.0.42/30', 'dev', LAB.mobileIf, 'label', `${LAB.mobileIf}:${TUNNEL_PREFIX}`]);
    await t.lab.ip('cn2', ['addr', 'add', '10.2.0.50/30', 'dev', LAB.mobileIf]); // not ours: no label
    const p = await t.startCn('cn2');
    await p.waitForLine(/1 host\(s\) restored/, 10_000, { stream: 'both' });
    assert.deepEqual((await t.gateways('cn2')).sort(), ['10.1.0.6', '10.2.0.50'], 'our stale address purged, a foreign one kept');
    assert.equal((await t.tunnels('cn2')).length, 1, 'the stale tunnel purged, the live one kept');
    await stream.waitResumed(mark, 10_000);
    assert.ok(await t.ping('srv', (await t.lab.addressOf('ms1'))!));
    assert.deepEqual(stream.failures(), []);
  });

  it('the MLR restarts: bindings survive in state_file, CNs re-bind, the session goes on and a later roam works', async () => {
    const ms = t.lab.ms('ms1');
    const marks = { cn1: t.cn('cn1').mark(), cn2: t.cn('cn2').mark() };
    await t.mlr.stop();
    // Both CNs have noticed the MLR is gone (and carry on) before the data plane is tried without it.
    for (const cn of ['cn1', 'cn2'] as const) await t.cn(cn).waitForLine(/lost the MLR/, 5000, { since: marks[cn], stream: 'both' });
    assert.ok(await t.ping('srv', '10.1.0.5'), 'the data plane does not need the MLR');
    await t.startMlr();
    for (const cn of ['cn1', 'cn2'] as const) await t.cn(cn).waitForLine(/Bind accepted/, 15_000, { since: marks[cn], stream: 'both' });
    await t.cn('cn2').waitForLine(/1 host\(s\) restored/, 10_000, { since: marks.cn2, stream: 'both' });
    const gap = await roam(t, stream, 'ms1', ms.mac, 1);
    process.stdout.write(`# largest stream gap around the roam home after the MLR restart (ms): ${gap}\n`);
    await t.until('tunnels to go', async () => (await t.tunnels('cn1')).length === 0 && (await t.tunnels('cn2')).length === 0);
    assert.deepEqual(stream.failures(), []);
  });
});

/** The MLR's record of `mac` in its state files (the snapshot, then the journal's last record of it), or undefined. */
function bindingInState(t: TmipLab, mac: string): Record<string, unknown> | undefined {
  const file = path.join(t.dir, 'mlr.state');
  if (!fs.existsSync(file)) return undefined;
  let found: Record<string, unknown> | undefined;
  const walk = (v: unknown): void => {
    if (found || v === null || typeof v !== 'object') return;
    if (!Array.isArray(v) && Object.values(v).some((x) => typeof x === 'string' && x.toLowerCase() === mac))
      found = v as Record<string, unknown>;
    else for (const x of Object.values(v)) walk(x);
  };
  try {
    walk(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch {
    return undefined; // being rewritten
  }
  const journal = `${file}.journal`;
  if (!fs.existsSync(journal)) return found;
  for (const line of fs.readFileSync(journal, 'utf8').split('\n')) {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // the torn tail of a write in progress
    }
    if (typeof record['mac'] === 'string' && record['mac'].toLowerCase() === mac) found = record['t'] === 'rm' ? undefined : record;
  }
  return found;
}

describe('MQTT broker restarts during a roam', { skip: skip || mqttSkip, timeout: 120_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun;
  before(async () => {
    t = await TmipLab.start({ transport: 'mqtt' });
  });
  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  it('the roam completes once the broker is back, the MLR holds the binding and the TCP stream survives', async () => {
    const ms = await t.lab.addMs('ms1', 1);
    const client = startUdhcpc(t.lab, 'ms1');
    const lease = await client.waitForLease(20_000);
    t.lab.spawn('ms1', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    stream = await startStream(t.lab, { ms: 'ms1', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(50, 5000);

    // The broker dies as the client moves: CN2's request cannot reach the MLR until it is back.
    const marks = { cn1: t.cn('cn1').mark(), cn2: t.cn('cn2').mark(), mlr: t.mlr.mark() };
    t.broker!.signal('SIGKILL');
    await t.broker!.exited;
    const at = await t.lab.moveMs('ms1', 2);
    for (const cn of ['cn1', 'cn2'] as const) await t.cn(cn).waitForLine(/lost the MLR/, 10_000, { since: marks[cn], stream: 'both' });
    await t.mlr.waitForLine(/lost the MQTT broker/, 10_000, { since: marks.mlr, stream: 'both' });
    await t.startBroker();
    await t.mlr.waitForLine(/connected to the MQTT broker/, 20_000, { since: marks.mlr, stream: 'both' });
    for (const cn of ['cn1', 'cn2'] as const) await t.cn(cn).waitForLine(/Bind accepted/, 30_000, { since: marks[cn], stream: 'both' });
    await t.waitArrival('cn2', ms.mac, marks.cn2, 30_000);
    await stream.waitResumed(at, 30_000);
    process.stdout.write(`# stream gap across the broker outage and roam (ms): ${Math.max(0, ...stream.gaps().map((g) => g.ms))}\n`);

    assert.deepEqual(await t.gateways('cn2'), [lease.ip.replace(/\.5$/, '.6')], 'CN2 plays the gateway');
    await t.until('CN1 to withdraw the gateway', async () => (await t.gateways('cn1')).length === 0);
    assert.equal((await t.tunnels('cn1')).length, 1, 'the parent tunnels to CN2');
    await t.until(
      'the MLR to record the binding at CN2',
      async () => JSON.stringify(bindingInState(t, ms.mac) ?? {}).includes('"cn2"'),
      10_000,
    );
    assert.equal(await t.lab.addressOf('ms1'), lease.ip);
    assert.ok(await t.ping('srv', lease.ip), 'server -> roamed MS');
    assert.deepEqual(stream.failures(), [], 'the TCP session survived');
    const summary = await stream.summary();
    assert.equal(summary.connections, 1, 'the same TCP connection throughout');
    assert.equal(summary.resets, 0);
  });
});
