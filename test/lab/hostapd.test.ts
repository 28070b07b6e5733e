// SPDX-License-Identifier: GPL-2.0-only
// hostapd over ubus, in the lab: each CN talks to its own ubusd (our ubusd-compatible test server on
// a unix socket) on which a stand-in hostapd publishes `hostapd.wl0` and announces associations.
// A roaming client is moved by its association alone, before it sends a single frame; a MAC that
// never associated with an AP is not moved by its ARP/IP traffic; `ubus call tmip ...` answers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LAB } from './lab.js';
import { startUdhcpc } from './dhcp-clients.js';
import { startStream, type StreamRun } from './stream.js';
import { HostapdStandIns } from './hostapd-standins.js';
import { lineEpoch, TmipLab } from './tmip-lab.js';

const skip = process.getuid?.() === 0 ? false : 'lab tests need root (network namespaces)';

/** Frames an MS has sent on its eth0 so far: the kernel's counter, read without any capture lag. */
async function framesSent(t: TmipLab, ms: string): Promise<number> {
  const out = await t.lab.ip(ms, ['-s', '-j', 'link', 'show', 'dev', LAB.msIf]);
  const n = (JSON.parse(out) as { stats64?: { tx?: { packets?: unknown } } }[])[0]?.stats64?.tx?.packets;
  if (typeof n !== 'number') throw new Error(`no tx packet counter for ${ms} in ${out}`);
  return n;
}

/**
 * Bytes the server has sent to `msIp` over TCP that the MS has not acknowledged yet (Send-Q), summed
 * over the established connections; null when there is none (so that a lost stream cannot pass as quiet).
 */
async function unacked(t: TmipLab, msIp: string): Promise<number | null> {
  const out = await t.lab.execOk('srv', 'ss', ['-tnH', 'state', 'established', 'dst', msIp]);
  let sum: number | null = null;
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    const peer = f.findIndex((x) => x.startsWith(`${msIp}:`));
    if (peer < 2) continue;
    sum = (sum ?? 0) + Number(f[peer - 2]); // Recv-Q Send-Q Local:Port Peer:Port
  }
  return sum;
}

describe('hostapd association events', { skip, timeout: 120_000 }, () => {
  let standIns: HostapdStandIns;
  let hostapd: HostapdStandIns['hostapd'];
  let t: TmipLab;
  let stream: StreamRun | undefined;

  before(async () => {
    standIns = await HostapdStandIns.start(['cn1']); // cn1's hostapd is there before the CN starts, cn2's comes later
    hostapd = standIns.hostapd;
    t = await TmipLab.start({ cnExtra: standIns.cnExtra() });
    const mark = t.cn('cn2').mark();
    await hostapd.cn2.publish();
    await t.cn('cn2').waitForLine(/watching hostapd\.wl0/, 5000, { since: mark, stream: 'both' });
  });

  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
    await standIns?.stop();
  });

  it('a station is moved by its association, before it sends any frame', async () => {
    const ms = await t.lab.addMs('ms1', 1);
    await hostapd.cn1.assoc(ms.mac);
    const dhcp = startUdhcpc(t.lab, 'ms1');
    const lease = await dhcp.waitForLease(20_000);
    assert.equal(lease.ip, '10.1.0.5');
    stream = await startStream(t.lab, { ms: 'ms1' });
    await stream.waitConnected();
    await stream.waitRecords(30, 5000);
    // Quiet the client: pause the server's sender, then wait until the client has acknowledged all it
    // was sent (the server's Send-Q is empty), so it has nothing left to send.
    stream.source.signal('SIGSTOP');
    await t.until(
      'the client to acknowledge everything the paused sender had sent (server Send-Q 0)',
      async () => (await unacked(t, lease.ip)) === 0,
    );
    const peer = t.lab.ms('ms1').peer;
    const capture = t.lab.spawn('air', 'tcpdump', ['-l', '-n', '-tt', '-c', '20', '-i', peer, 'ether', 'src', ms.mac]);
    await capture.waitForLine(/listening on/, 5000, { stream: 'stderr' });
    const captured = () => capture.stdout().filter((l) => /^\d+\.\d+ /.test(l));
    // The disassoc at cn1 starts paging: cn2 may ask the client for its address, and it answers (an
    // ARP reply is all it may send). Anything else would be the client's own traffic.
    const framesFromClient = () => captured().filter((l) => !/ ARP, Reply /.test(l));

    const mark = t.cn('cn2').mark();
    const sentBefore = await framesSent(t, 'ms1');
    await hostapd.cn1.disassoc(ms.mac);
    const movedAt = await t.lab.moveMs('ms1', 2);
    await hostapd.cn2.assoc(ms.mac);
    const arrival = await t.waitArrival('cn2', ms.mac, mark);
    assert.match(arrival, /after detection via assoc/);
    // The kernel's counter says how many frames left the client's eth0 until the commit; the capture
    // (whose output lags) says what they were: answers to pages at most.
    const sent = (await framesSent(t, 'ms1')) - sentBefore;
    await t.until(`the capture to show the ${sent} frame(s) the client sent`, async () => captured().length >= sent);
    assert.deepEqual(framesFromClient(), [], 'the handover completed while the client had sent nothing but ARP replies');
    assert.deepEqual(await t.gateways('cn2'), ['10.1.0.6']);

    // Resume the sender: the data now flows through the tunnel, and the client answers.
    stream.source.signal('SIGCONT');
    await stream.waitResumed(movedAt, 10_000);
    await t.until('a frame of its own from the client', async () => framesFromClient().length > 0);
    assert.ok(Number(framesFromClient()[0]!.split(' ')[0]) * 1000 > lineEpoch(arrival), 'its first frame came after the commit');
    assert.deepEqual(stream.failures(), [], 'same TCP session, no reset');
    assert.deepEqual(await t.gateways('cn2'), ['10.1.0.6']);
  });

  it('a MAC that never associated here is not moved by its ARP and IP traffic', async () => {
    const ms = await t.lab.addMs('ms2', 1);
    await hostapd.cn1.assoc(ms.mac);
    const lease = await startUdhcpc(t.lab, 'ms2').waitForLease(20_000);
    assert.equal(lease.ip, '10.1.0.9');
    const mark = t.cn('cn2').mark();
    await t.lab.moveMs('ms2', 2); // no association at cn2: a spoofer, or a station of another AP
    await t.lab.exec('ms2', 'ip', ['neigh', 'flush', 'dev', 'eth0']); // make it ARP for its gateway
    assert.equal(await t.ping('ms2', LAB.srvIp, 3), false, 'not served at cn2');
    await t.cn('cn2').waitForLine(new RegExp(`ignoring (ARP|IP) from ${ms.mac}: not associated`), 5000, { since: mark, stream: 'both' });
    assert.ok(!(await t.gateways('cn2')).includes('10.1.0.10'));

    await hostapd.cn2.assoc(ms.mac);
    await t.waitArrival('cn2', ms.mac, mark);
    assert.ok(await t.ping('ms2', LAB.srvIp, 3), 'served once it associated');
  });

  it('ubus call tmip status / clients / tunnels answer through ubusd', async () => {
    const c = standIns.client('cn2');
    const status = (await c.call('tmip', 'status', {})) as { cn_name: string; mlr: { connected: boolean }; hostapd: { bss: string[] } };
    assert.equal(status.cn_name, 'cn2');
    assert.equal(status.mlr.connected, true);
    assert.deepEqual(status.hostapd.bss, ['wl0']);
    const list = (await c.call('tmip', 'clients', {})) as { clients: { ip: string; here: boolean; associated: boolean }[] };
    assert.deepEqual(list.clients.map((x) => [x.ip, x.here, x.associated]).sort(), [
      ['10.1.0.5', true, true],
      ['10.1.0.9', true, true],
    ]);
    const tunnels = (await c.call('tmip', 'tunnels', {})) as { tunnels: { type: string; peer: string }[] };
    assert.deepEqual(
      tunnels.tunnels.map((x) => [x.type, x.peer]),
      [['vxlan', LAB.cn1Ip]],
    );
  });
});
