// SPDX-License-Identifier: GPL-2.0-only
// The namespace lab itself, without tmip: the topology routes, a TCP stream and a bulk transfer reach a
// statically addressed MS, the real DHCP clients start and broadcast a DISCOVER, and every lab is torn
// down completely, also when its process dies of a signal or an uncaught exception.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { until, within } from '../support/helpers.js';
import { Lab, LAB, listNamespaces, destroyStaleLabs } from './lab.js';
import { startStream, bulkTransfer, toEpoch, type StreamRun } from './stream.js';
import { startUdhcpc, startDhclient } from './dhcp-clients.js';

const skip = typeof process.getuid === 'function' && process.getuid() === 0 ? false : 'needs root (network namespaces)';
const labs: Lab[] = [];

/** Resolves with `value` after ms, without keeping the process alive (a bound for Promise.race). */
function timeout<T>(ms: number, value: T): Promise<T> {
  return new Promise((r) => setTimeout(() => r(value), ms).unref());
}

/** Waits until the sink has reported records arriving `ms` after `t` (performance.now()): that much stream went by. */
function streamFor(stream: StreamRun, t: number, ms: number, what: string): Promise<void> {
  return until(`${ms} ms of stream ${what}`, () => stream.lastArrival() >= toEpoch(t) + ms, ms + 5000, 20);
}

async function newLab(): Promise<Lab> {
  const lab = await Lab.create({ name: 'topology' });
  labs.push(lab);
  return lab;
}

after(async () => {
  await Promise.allSettled(labs.map((l) => l.destroy()));
});

/** Exists and is not a zombie (an orphan killed with its owner may wait a while to be reaped by init). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

async function assertGone(prefix: string): Promise<void> {
  const left = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  assert.deepEqual(left, [], `namespaces left behind: ${left.join(' ')}`);
}

test('stale labs of dead runs are removed before we start', { skip }, async () => {
  await destroyStaleLabs();
});

test('static MS in cell1 reaches srv; stream and 2 MB bulk transfer; destroy leaves nothing', { skip, timeout: 60_000 }, async () => {
  const lab = await newLab();
  const prefix = lab.prefix;
  try {
    assert.deepEqual(lab.allNamespaces().sort(), ['air', 'bb', 'cn1', 'cn2', 'mlr', 'srv'].map((r) => prefix + r).sort());
    const ms = await lab.addMs('ms1', 1, { mac: '02:00:00:00:01:05' });
    assert.equal(ms.ns, prefix + 'ms1');
    assert.equal(lab.ns('ms1'), ms.ns);

    // Routing: srv -> cn1 pool via cn1, cn1 default via srv.
    assert.match(await lab.ip('srv', ['route', 'show', LAB.cn1Pool]), /via 10\.200\.0\.11 dev bb0/);
    assert.match(await lab.ip('srv', ['route', 'show', LAB.cn2Pool]), /via 10\.200\.0\.12 dev bb0/);
    assert.match(await lab.ip('cn1', ['route', 'show', 'default']), /via 10\.200\.0\.10 dev bb0/);
    assert.equal((await lab.execOk('cn1', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).trim(), '1');
    assert.equal((await lab.execOk('ms1', 'sysctl', ['-n', 'net.ipv4.conf.all.rp_filter'])).trim(), '0');
    assert.match(await lab.ip('ms1', ['link', 'show', 'dev', 'eth0']), /link\/ether 02:00:00:00:01:05/);

    // A hand-made /30 between cn1's wl0 and the MS.
    await lab.ip('cn1', ['addr', 'add', '10.1.0.6/30', 'dev', LAB.mobileIf]);
    await lab.ip('ms1', ['addr', 'add', '10.1.0.5/30', 'dev', LAB.msIf]);
    await lab.ip('ms1', ['route', 'add', 'default', 'via', '10.1.0.6']);
    assert.equal(await lab.addressOf('ms1'), '10.1.0.5');

    const ping = await lab.exec('ms1', 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', LAB.srvIp], { timeoutMs: 10_000 });
    assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /3 received/);
    // The MLR is on the backbone only.
    assert.equal((await lab.exec('mlr', 'ping', ['-n', '-c', '1', '-W', '2', LAB.cn2Ip], { timeoutMs: 5000 })).code, 0);

    // Paced stream srv -> MS (inbound connection to the MS).
    const stream = await startStream(lab, { ms: 'ms1' });
    await stream.waitRecords(60, 5000);
    await streamFor(stream, performance.now(), 300, 'after the first 60 records');
    const summary = await stream.stop();
    assert.ok(summary, 'sink printed no summary');
    assert.equal(summary.seqErrors, 0);
    assert.equal(summary.resets, 0);
    assert.ok(summary.records >= 60, `only ${summary.records} records`);
    assert.deepEqual(stream.failures(), []);
    assert.ok(stream.maxGapMs() < 500, `gap of ${stream.maxGapMs()} ms on a quiet lab`);

    // 2 MB srv -> MS, both connection directions.
    const inbound = await bulkTransfer(lab, 'srv', 'ms1', 2_000_000);
    assert.ok(inbound.ok, inbound.error);
    assert.equal(inbound.bytes, 2_000_000);
    const outbound = await bulkTransfer(lab, 'srv', 'ms1', 2_000_000, { listener: 'from' });
    assert.ok(outbound.ok, outbound.error);
    assert.equal(outbound.sha256, inbound.sha256);
  } finally {
    await lab.destroy();
  }
  await assertGone(prefix);
  await lab.destroy(); // idempotent
});

test('roam: moving the MS port to cell2 cuts it off from cn1, moving back restores the stream', { skip, timeout: 60_000 }, async () => {
  const lab = await newLab();
  try {
    await lab.addMs('ms1', 1);
    await lab.ip('cn1', ['addr', 'add', '10.1.0.6/30', 'dev', LAB.mobileIf]);
    await lab.ip('ms1', ['addr', 'add', '10.1.0.5/30', 'dev', LAB.msIf]);
    await lab.ip('ms1', ['route', 'add', 'default', 'via', '10.1.0.6']);
    const stream = await startStream(lab, { ms: 'ms1' });
    await stream.waitRecords(30, 5000);
    const away = await lab.moveMs('ms1', 2);
    assert.equal(lab.ms('ms1').cell, 2);
    assert.match(await lab.ip('air', ['link', 'show', 'dev', 'p-ms1']), /master cell2/);
    // A deliberate outage of about 400 ms (not a wait for an event): the stall and its length must show.
    await new Promise((r) => setTimeout(r, 400));
    const stalled = stream.gapAround(away, 100);
    assert.ok(stalled >= 250, `the stall in progress should show, got ${stalled} ms`);
    const back = await lab.moveMs('ms1', 1);
    const gap = await stream.waitResumed(back, 10_000);
    assert.ok(gap >= 350, `expected the ~400 ms outage to show, got ${gap} ms`);
    assert.equal(stream.gapAround(away, 100), gap);
    const summary = await stream.stop();
    assert.equal(summary?.seqErrors, 0);
    assert.equal(summary?.resets, 0);
  } finally {
    await lab.destroy();
  }
});

test('udhcpc and dhclient start and broadcast a DHCPDISCOVER into the cell', { skip, timeout: 60_000 }, async () => {
  const lab = await newLab();
  try {
    for (const kind of ['udhcpc', 'dhclient'] as const) {
      const mac = kind === 'udhcpc' ? '02:00:00:00:02:01' : '02:00:00:00:02:02';
      const name = kind === 'udhcpc' ? 'msu' : 'msd';
      await lab.addMs(name, 1, { mac });
      const dump = lab.spawn('cn1', 'tcpdump', ['-l', '-n', '-v', '-c', '1', '-i', LAB.mobileIf, `udp port 67 and ether src ${mac}`]);
      await dump.waitForLine(/listening on/, 5000, { stream: 'stderr' });
      const client = kind === 'udhcpc' ? startUdhcpc(lab, name) : startDhclient(lab, name);
      const exited = await Promise.race([dump.exited, timeout(10_000, null)]);
      await dump.stop(500);
      await client.stop();
      const out = dump.stdout().join('\n');
      assert.ok(exited, `${kind}: no DHCP packet captured within 10 s; client output:\n${client.proc.lines.map((l) => l.text).join('\n')}`);
      assert.match(out, new RegExp(`Request from ${mac}`), `${kind}: ${out}`);
      assert.match(out, /DHCP-Message \(53\), length 1: Discover/, `${kind}: ${out}`);
      assert.deepEqual(client.leases(), [], 'no server, so no lease');
      // Nothing was flushed or added: eth0 still has no IPv4 address.
      assert.equal(await lab.addressOf(name), null);
    }
  } finally {
    await lab.destroy();
  }
});

test('the DHCP client scripts apply leases without flushing (busybox udhcpd as a stand-in server)', { skip, timeout: 90_000 }, async () => {
  const lab = await newLab();
  try {
    const conf = path.join(lab.tmpDir, 'udhcpd.conf');
    fs.writeFileSync(path.join(lab.tmpDir, 'udhcpd.leases'), '');
    fs.writeFileSync(
      conf,
      [
        `interface ${LAB.mobileIf}`,
        'start 10.1.0.100',
        'end 10.1.0.150',
        `lease_file ${lab.tmpDir}/udhcpd.leases`,
        'option subnet 255.255.255.0',
        `option router ${LAB.cn1WlIp}`,
        'option lease 120',
        '',
      ].join('\n'),
    );
    const server = lab.spawn('cn1', 'busybox', ['udhcpd', '-f', conf]);
    await server.waitForLine(/started/, 5000, { stream: 'both' });

    // udhcpc: bound, then a renew (SIGUSR1) under a running stream: no reset, no stall.
    await lab.addMs('msu', 1);
    const u = startUdhcpc(lab, 'msu');
    const bound = await u.waitForLease(15_000);
    assert.equal(bound.event, 'bound');
    assert.equal(bound.router, LAB.cn1WlIp);
    assert.equal(bound.prefix, 24);
    assert.equal(bound.serverId, LAB.cn1WlIp);
    assert.equal(await lab.addressOf('msu'), bound.ip);
    assert.match(await lab.ip('msu', ['route', 'show', 'default']), new RegExp(`via ${LAB.cn1WlIp.replace(/\./g, '\\.')} dev eth0`));
    const stream = await startStream(lab, { ms: 'msu' });
    await stream.waitRecords(30, 5000);
    u.renew();
    const renewed = await u.waitForLease(10_000);
    assert.equal(renewed.event, 'renew');
    assert.equal(renewed.ip, bound.ip);
    await streamFor(stream, performance.now(), 300, 'after the renew');
    const summary = await stream.stop();
    assert.equal(summary?.resets, 0);
    assert.equal(summary?.seqErrors, 0);
    assert.deepEqual(stream.failures(), []);
    await u.stop();
    assert.equal(await lab.addressOf('msu'), bound.ip, 'stopping udhcpc must leave the address');

    // dhclient: BOUND, then INIT-REBOOT with the same lease file gets the same address back.
    await lab.addMs('msd', 1);
    const d = startDhclient(lab, 'msd');
    const first = await d.waitForLease(20_000);
    assert.equal(first.event, 'BOUND');
    assert.equal(await lab.addressOf('msd'), first.ip);
    await d.reboot();
    const again = await d.waitForLease(20_000);
    assert.equal(again.event, 'REBOOT');
    assert.equal(again.ip, first.ip);
    await d.stop();
    assert.equal(await lab.addressOf('msd'), first.ip, 'stopping dhclient must leave the address');
    assert.ok(!d.events().some((e) => /^DHCP (RELEASE|STOP|EXPIRE)/.test(e)), d.events().join('\n'));
  } finally {
    await lab.destroy();
  }
});

// A process that owns a lab dies in three ways; each time its namespaces and processes must be gone.
const labModule = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lab.js');
const helpersModule = path.join(path.dirname(fileURLToPath(import.meta.url)), '../support/helpers.js');
for (const how of ['SIGTERM', 'SIGINT', 'uncaught'] as const) {
  test(
    `a lab is torn down when its process gets ${how === 'uncaught' ? 'an uncaught exception' : how}`,
    { skip, timeout: 60_000 },
    async () => {
      // The child reports its lab once the process it spawned runs inside the lab (exec'd into
      // sleep), and throws (uncaught) only when told to on stdin, after we have looked at its lab.
      const code = `
      import fs from 'node:fs';
      import { until } from ${JSON.stringify(helpersModule)};
      import { Lab } from ${JSON.stringify(labModule)};
      const lab = await Lab.create({ name: 'doomed' });
      await lab.addMs('ms1', 2);
      const p = lab.spawn('srv', 'sleep', ['30']);
      const comm = () => { try { return fs.readFileSync('/proc/' + p.pid + '/comm', 'utf8').trim(); } catch { return ''; } };
      await until('the spawned process to exec sleep inside the lab', () => comm() === 'sleep', 5000, 5);
      console.log(JSON.stringify({ prefix: lab.prefix, pid: p.pid }));
      ${how === 'uncaught' ? "process.stdin.once('data', () => { throw new Error('boom'); });" : 'setInterval(() => {}, 1000);'}
    `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      const printed = new Promise<void>((resolve) => {
        child.stdout.on('data', () => out.includes('\n') && resolve());
        void exited.then(() => resolve());
      });
      await within(printed, 20_000, 'the lab owner to print its lab (or exit)').catch((e: Error) => {
        child.kill('SIGKILL');
        assert.fail(`${e.message}; its stderr: ${err}`);
      });
      const info = JSON.parse(out.split('\n')[0] || '{}') as { prefix?: string; pid?: number };
      assert.ok(info.prefix, `child did not build its lab: ${err}`);
      const before = (await listNamespaces()).filter((n) => n.startsWith(info.prefix!));
      assert.equal(before.length, 7);
      if (how === 'uncaught') child.stdin.write('throw\n');
      else child.kill(how);
      const status = await Promise.race([exited, timeout(20_000, 'hung' as const)]);
      if (status === 'hung') child.kill('SIGKILL');
      assert.notEqual(status, 'hung', 'lab owner did not exit');
      await assertGone(info.prefix);
      assert.ok(!running(info.pid!), 'process spawned in the lab survived');
    },
  );
}

test('no namespace of this file remains', { skip }, async () => {
  await Promise.allSettled(labs.map((l) => l.destroy()));
  for (const l of labs) await assertGone(l.prefix);
});
