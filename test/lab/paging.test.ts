// SPDX-License-Identifier: GPL-2.0-only
// Paging in the lab (issue 8): a client that only receives sends nothing the new CN could detect when
// it roams. Its old CN notices that it lost it — the kernel's ARP probes of its N+1 fail while the
// stream flows to it, or hostapd reports its departure — and the MLR has the other CNs page it (a
// unicast ARP request for N+1 from N+2); the CN where it answers takes it over.
// The stream is UDP from the server (test/lab/udp-stream.ts), so the client never sends a
// packet of its own; a capture on its port checks that it sent nothing but ARP.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { LabProcess } from './lab.js';
import { startUdhcpc } from './dhcp-clients.js';
import { toEpoch } from './stream.js';
import { UdpStream } from './udp-stream.js';
import { HostapdStandIns } from './hostapd-standins.js';
import { lineEpoch, report, TmipLab } from './tmip-lab.js';

const skip = process.getuid?.() === 0 ? false : 'lab tests need root (network namespaces)';

/** tcpdump on the MS's port in the air: every frame the MS sends that is not ARP. */
async function captureNonArp(t: TmipLab, ms: string, mac: string): Promise<{ frames: () => string[]; proc: LabProcess }> {
  const proc = t.lab.spawn('air', 'tcpdump', ['-l', '-n', '-e', '-i', t.lab.ms(ms).peer, 'ether', 'src', mac, 'and', 'not', 'arp']);
  await proc.waitForLine(/listening on/, 5000, { stream: 'stderr' });
  return { proc, frames: () => proc.stdout().filter((l) => /^\d\d:\d\d/.test(l)) };
}

describe('paging: a receive-only client without hostapd', { skip, timeout: 120_000 }, () => {
  let t: TmipLab;
  let stream: UdpStream | undefined;

  before(async () => {
    t = await TmipLab.start({});
  });

  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  it('roams while a 10 ms stream flows to it: its old CN loses it, paging finds it, the gap is under 1.5 s', async () => {
    const ms = await t.lab.addMs('ms1', 1);
    const lease = await startUdhcpc(t.lab, 'ms1').waitForLease(20_000);
    stream = await UdpStream.start(t.lab, 'ms1', lease.ip);
    await new Promise((r) => setTimeout(r, 1000)); // a second of steady stream before the roam
    const capture = await captureNonArp(t, 'ms1', ms.mac);

    const marks = { cn1: t.cn('cn1').mark(), cn2: t.cn('cn2').mark(), mlr: t.mlr.mark() };
    const movedAt = await t.lab.moveMs('ms1', 2);
    const arrival = await t.waitArrival('cn2', ms.mac, marks.cn2, 10_000);
    assert.match(arrival, /after detection via arp/, 'detected by its answer to a page');
    await t.cn('cn1').waitForLine(new RegExp(`${ms.mac} ${lease.ip} stopped answering ARP; asking the MLR to page`), 1000, {
      since: marks.cn1,
      stream: 'both',
    });
    await t.mlr.waitForLine(new RegExp(`${ms.mac} found at cn2 \\d+ ms after it was lost at cn1`), 1000, {
      since: marks.mlr,
      stream: 'both',
    });
    await stream.waitResumed(movedAt, 5000);
    await new Promise((r) => setTimeout(r, 500)); // a later stall would show in the measurement
    const gap = stream.gapAround(movedAt, 2000);
    report('receive-only roam (paging on neighbour failure): largest gap ms', Math.round(gap));
    report('receive-only roam: move to arrival at cn2 ms', Math.round(lineEpoch(arrival) - toEpoch(movedAt)));
    assert.ok(gap > 0 && gap < 1500, `largest gap ${gap} ms`);
    assert.deepEqual(capture.frames(), [], 'the client sent nothing but ARP');
    await capture.proc.stop();
    assert.deepEqual(await t.gateways('cn2'), [`10.1.0.${Number(lease.ip.split('.')[3]) + 1}`]);
  });
});

describe('paging: a departure reported by hostapd', { skip, timeout: 120_000 }, () => {
  let standIns: HostapdStandIns;
  let t: TmipLab;
  let stream: UdpStream | undefined;

  before(async () => {
    standIns = await HostapdStandIns.start();
    t = await TmipLab.start({ cnExtra: standIns.cnExtra() });
  });

  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
    await standIns?.stop();
  });

  it("is found at the new AP within 300 ms, though the new AP's association event is missing", async () => {
    const ms = await t.lab.addMs('ms1', 1);
    await standIns.hostapd.cn1.assoc(ms.mac);
    const lease = await startUdhcpc(t.lab, 'ms1').waitForLease(20_000);
    stream = await UdpStream.start(t.lab, 'ms1', lease.ip);
    await new Promise((r) => setTimeout(r, 500));

    const mark = t.cn('cn2').mark();
    const movedAt = await t.lab.moveMs('ms1', 2);
    // The station associates with cn2's AP, but the notification is lost: hostapd lists it, says nothing.
    standIns.hostapd.cn2.stations.set(ms.mac, { auth: true, assoc: true, authorized: true, wds: false });
    const leftAt = performance.now();
    await standIns.hostapd.cn1.disassoc(ms.mac);
    const arrival = await t.waitArrival('cn2', ms.mac, mark, 5000);
    const found = lineEpoch(arrival) - toEpoch(leftAt);
    report('disassoc reported -> arrival at the new AP (ms)', Math.round(found));
    assert.ok(found <= 300, `found ${found} ms after the disassoc`);
    assert.match(arrival, /after detection via arp/);
    await stream.waitResumed(movedAt, 5000);
    assert.deepEqual(await t.gateways('cn2'), [`10.1.0.${Number(lease.ip.split('.')[3]) + 1}`]);
    assert.ok(
      !t
        .cn('cn2')
        .lines.slice(mark)
        .some((l) => /ignoring ARP from .* not associated/.test(l.text)),
      "hostapd's list was re-read before the answer was judged",
    );
  });
});
