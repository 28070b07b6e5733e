// SPDX-License-Identifier: GPL-2.0-only
// The CN's mobile interface deleted and created again under the same name (a Wi-Fi reload that
// recreates the wlan device does this on a router), with the bundled daemons in the namespace lab:
// a client leased in cell 1 keeps a TCP stream through CN1 while CN1's wl0 is deleted for about two
// seconds and then created again (a new veth with a new index and MAC, its base address put back as
// netifd would). CN1 says once that it is gone, then reopens its capture, sets the interface's
// neighbour tuning again and puts back the client's gateway, which the kernel dropped with the old
// device; the stream resumes on the same connection and a new client gets a lease in the cell.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { startUdhcpc } from './dhcp-clients.js';
import { LAB } from './lab.js';
import { startStream, type StreamRun } from './stream.js';
import { TmipLab, report } from './tmip-lab.js';

const skip = process.getuid?.() === 0 ? false : 'lab tests need root (network namespaces)';
const NEIGH_KEY = `net.ipv4.neigh.${LAB.mobileIf}.base_reachable_time_ms`;

describe("CN1's mobile interface deleted and created again", { skip, timeout: 120_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun | undefined;

  before(async () => {
    t = await TmipLab.start();
  });
  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  const sysctl = async (key: string) => (await t.lab.execOk('cn1', 'sysctl', ['-n', key])).trim();
  const ifindex = async () => (await t.lab.execOk('cn1', 'cat', [`/sys/class/net/${LAB.mobileIf}/ifindex`])).trim();

  it('the capture, the kernel settings and the gateway come back; the stream resumes; a new client is served', async () => {
    await t.lab.addMs('ms1', 1);
    const ms1 = await startUdhcpc(t.lab, 'ms1').waitForLease(20_000);
    assert.equal(ms1.ip, '10.1.0.5');
    assert.deepEqual(await t.gateways('cn1'), ['10.1.0.6']);
    assert.equal(await sysctl(NEIGH_KEY), '400', "the CN's neighbour tuning");
    stream = await startStream(t.lab, { ms: 'ms1', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(50, 5000);
    const before = await ifindex();

    const mark = t.cn('cn1').mark();
    // Deleting one end of the veth deletes both (the bridge port w-cn1 in the air namespace too).
    await t.lab.ip('cn1', ['link', 'del', 'dev', LAB.mobileIf]);
    await t.cn('cn1').waitForLine(/mobile interface wl0 is gone/, 5000, { since: mark, stream: 'both' });
    await new Promise((r) => setTimeout(r, 2000));
    // Created again as the lab built it, with another MAC; the base address put back.
    const cell = LAB.cells[1];
    await t.lab.ip('air', [
      'link',
      'add',
      'w-cn1',
      'type',
      'veth',
      'peer',
      'name',
      LAB.mobileIf,
      'address',
      '02:cc:0e:00:00:01',
      'netns',
      t.lab.ns('cn1'),
    ]);
    await t.lab.ip('air', ['link', 'set', 'dev', 'w-cn1', 'master', LAB.cellBridges[1], 'up']);
    await t.lab.ip('cn1', ['addr', 'add', `${cell.wlIp}/${LAB.wlPrefix}`, 'dev', LAB.mobileIf]);
    await t.lab.ip('cn1', ['link', 'set', 'dev', LAB.mobileIf, 'up']);
    await t.lab.sysctl('cn1', [`net.ipv4.conf.${LAB.mobileIf}.rp_filter=0`]);
    const upAt = performance.now();
    assert.notEqual(await ifindex(), before, 'a new device');
    assert.notEqual(await sysctl(NEIGH_KEY), '400', "a new device starts with the kernel's defaults");

    await t.cn('cn1').waitForLine(/mobile interface wl0 was created again \(index \d+ -> \d+, MAC 02:cc:0e:00:00:01\)/, 5000, {
      since: mark,
      stream: 'both',
    });
    await t.cn('cn1').waitForLine(/mobile interface wl0: 1 gateway address\(es\) put back/, 5000, { since: mark, stream: 'both' });
    assert.deepEqual(await t.gateways('cn1'), ['10.1.0.6']);
    assert.equal(await sysctl(NEIGH_KEY), '400', 'the tuning set again');
    const gap = await stream.waitResumed(upAt, 30_000);
    report('stream gap after the interface came back (ms)', gap);
    const conns = await t.lab.execOk('ms1', 'ss', ['-Htn', 'state', 'established']);
    assert.equal(conns.split('\n').filter((l) => l.trim() !== '').length, 1, 'the same TCP connection');
    assert.deepEqual(stream.failures(), []);
    assert.equal(t.cn('cn1').lines.filter((l) => l.text.includes('mobile interface wl0 is gone')).length, 1, 'said once');

    // The new capture hears DHCP: a new client gets its own cell.
    await t.lab.addMs('ms2', 1);
    const ms2 = await startUdhcpc(t.lab, 'ms2').waitForLease(20_000);
    assert.equal(ms2.ip, '10.1.0.9');
    assert.deepEqual((await t.gateways('cn1')).sort(), ['10.1.0.10', '10.1.0.6']);
  });
});
