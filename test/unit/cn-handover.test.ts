// SPDX-License-Identifier: GPL-2.0-only
// The CN's side of a handover (src/cn/handover.ts) on stand-ins: what prepare reserves and abort gives
// back, a lapsing reservation, a commit without prepare, refusals at prepare, and the detection rules
// (one request per station at a time, a cool-down, association gating, bounded records), and the
// presence probe (the unicast ARP it sends, the replies that count, its time-out), and paging (`lost`
// reports on departure or neighbour failure, the ARP a page sends, how a paged station's answer is taken).
import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { AssociationTable } from '../../src/core/association.js';
import type { BindingView } from '../../src/core/binding.js';
import type { ReplyBody, RequestBody, RequestType } from '../../src/core/messages.js';
import { CnHandover, LOST_REPORT_INTERVAL_MS, PAGED_MS, PROBE_TIMEOUT_MS } from '../../src/cn/handover.js';
import { FakeLinkIO } from '../../src/platform/fake-linkio.js';
import { ARP_OP, decodeArp, decodeEthernet, encodeArp, encodeEthernet, ETHERTYPE } from '../../src/proto/packet.js';
import { RpcError } from '../../src/proto/rpc.js';
import { ip, until } from '../support/helpers.js';

const MS = '02:aa:00:00:00:01';
const cn1 = { name: 'cn1', addr: ip('10.200.0.11') };
const cn2 = { name: 'cn2', addr: ip('10.200.0.12') };
const cn3 = { name: 'cn3', addr: ip('10.200.0.13') };
const toCn2: BindingView = {
  mac: MS,
  cell: ip('10.1.0.4'),
  parent: cn1,
  current: cn2,
  tunnel: { type: 'vxlan', key: 1 },
  expires: 1e15,
  state: 'bound',
};

function setup(
  opts: {
    tunnels?: ('vxlan' | 'ipip')[];
    seen?: ReplyBody<'seen'>;
    maxIdleStations?: number;
    newStationRate?: number;
    requireAssociation?: boolean;
    log?: string[];
    refreshAssociations?: () => Promise<void>;
    resync?: (why: string) => void;
    /** Use the handover's own default clock instead of the test's `clock`. */
    ownClock?: boolean;
  } = {},
) {
  const clock = { t: 1_000_000 };
  const applied: BindingView[][] = [];
  const requests: { type: string; body: unknown; answer: (r: ReplyBody<'seen'>) => void; fail: (e: Error) => void }[] = [];
  const associations = new AssociationTable();
  const link = new FakeLinkIO('wl0', '02:cc:00:00:00:02');
  const h = new CnHandover({
    self: 'cn2',
    mlr: {
      request<T extends RequestType>(type: T, body: RequestBody<T>): Promise<ReplyBody<T>> {
        return new Promise((resolve, reject) => requests.push({ type, body, answer: (r) => resolve(r as ReplyBody<T>), fail: reject }));
      },
    },
    dataplane: {
      apply: async (bs) => {
        applied.push([...bs]);
        return [];
      },
    },
    link,
    associations,
    requireAssociation: opts.requireAssociation ?? true,
    tunnels: () => opts.tunnels ?? ['vxlan'],
    leaseTime: 600,
    log: (_level, m) => opts.log?.push(m),
    ...(opts.ownClock ? {} : { now: () => clock.t }),
    cooldownMs: 1000,
    reservationMs: 5000,
    ...(opts.maxIdleStations !== undefined ? { maxIdleStations: opts.maxIdleStations } : {}),
    ...(opts.newStationRate !== undefined ? { newStationRate: opts.newStationRate } : {}),
    ...(opts.refreshAssociations ? { refreshAssociations: opts.refreshAssociations } : {}),
    ...(opts.resync ? { resync: opts.resync } : {}),
  });
  return { h, clock, applied, requests, associations, link };
}

test('prepare reserves the station for its transaction; abort gives it all back', () => {
  const { h } = setup();
  h.prepare({ tx: 7, binding: toCn2, previous: cn3 });
  assert.equal(h.station(MS)?.reserved?.tx, 7);
  assert.throws(() => h.prepare({ tx: 8, binding: toCn2, previous: cn3 }), /already in transaction 7/);
  h.abort(7);
  assert.equal(h.station(MS), undefined, 'nothing is left of the reservation');
  assert.equal(h.stats.aborted, 1);
  h.abort(7); // a repeated or unknown abort is harmless
  assert.equal(h.stats.aborted, 1);
});

test('a reservation nobody confirms lapses; a commit without prepare is applied all the same', async () => {
  const { h, clock, applied } = setup();
  h.prepare({ tx: 1, binding: toCn2, previous: null });
  clock.t += 6000;
  h.prepare({ tx: 2, binding: toCn2, previous: null });
  assert.equal(h.stats.lapsed, 1);
  assert.equal(h.station(MS)?.reserved?.tx, 2);
  await h.commit(99, toCn2);
  assert.equal(h.station(MS)?.reserved, undefined);
  assert.equal(h.station(MS)?.phase, 'idle');
  assert.deepEqual(applied.at(-1), [toCn2]);
  assert.ok(h.isServed(MS));
  // The station moves on to cn3: no longer ours, the data plane is told to drop it.
  await h.commit(100, { ...toCn2, current: cn3, tunnel: { type: 'vxlan', key: 2 } });
  assert.deepEqual(applied.at(-1), []);
  assert.equal(h.isServed(MS), false);
});

test('prepare refuses a move this CN takes no part in, or whose tunnel it cannot build', () => {
  const { h } = setup({ tunnels: ['ipip'] });
  const elsewhere = { ...toCn2, parent: cn1, current: cn3 };
  assert.throws(() => h.prepare({ tx: 1, binding: elsewhere, previous: cn1 }), /takes no part/);
  assert.throws(() => h.prepare({ tx: 2, binding: toCn2, previous: null }), /cannot build vxlan/);
  // The old current CN withdraws whatever the tunnel type: it builds nothing.
  h.prepare({ tx: 3, binding: elsewhere, previous: cn2 });
  assert.equal(h.station(MS)?.reserved?.tx, 3);
});

test('detection: one request per station at a time, then a cool-down; association gates traffic', async () => {
  const { h, clock, requests, associations } = setup();
  // No hostapd: traffic alone may move a station.
  h.observe(MS, ip('10.1.0.5'), 'ip');
  h.observe(MS, ip('10.1.0.5'), 'arp');
  assert.equal(requests.length, 1, 'one request in flight');
  assert.deepEqual(requests[0]?.body, { mac: MS, via: 'ip', leaseTime: 600, ip: ip('10.1.0.5') });
  assert.equal(h.stats.suppressed, 1);
  requests[0].answer({ outcome: 'unknown' });
  await until('the request to finish', () => h.station(MS)?.phase === 'idle');
  h.observe(MS, ip('10.1.0.5'), 'ip');
  assert.equal(requests.length, 1, 'cool-down');
  clock.t += 1001;
  h.observe(MS, ip('10.1.0.5'), 'ip');
  assert.equal(requests.length, 2);
  requests[1]!.answer({ outcome: 'unknown' });
  // hostapd present and association required: an unassociated MAC's traffic is refused.
  associations.bssAdded('wl0');
  const other = '02:aa:00:00:00:02';
  h.observe(other, ip('10.1.0.9'), 'arp');
  assert.equal(h.acceptDhcp(other), false);
  assert.equal(h.stats.refused, 2);
  assert.equal(requests.length, 2);
  // ...until it associates: then the association itself starts the move.
  associations.notify('wl0', 'assoc', { address: other });
  h.arrived(other);
  assert.equal(requests.length, 3);
  assert.equal((requests[2]?.body as { via: string }).via, 'assoc');
});

test('records of stations that hold nothing here stay bounded under a flood of MACs', async () => {
  const { h, requests } = setup({ maxIdleStations: 100, newStationRate: 100_000 });
  const macOf = (i: number) => `02:bb:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  const live = (from: number, to: number) => {
    let n = 0;
    for (let i = from; i < to; i++) if (h.station(macOf(i))) n++;
    return n;
  };
  for (let i = 0; i < 1000; i++) h.observe(macOf(i), ip('10.9.0.1') + i, 'ip');
  assert.equal(requests.length, 1000);
  assert.equal(live(0, 1000), 1000, 'a station with a request in flight is never dropped');
  for (const r of requests) r.answer({ outcome: 'unknown' });
  await until('every request to finish', () => h.station(macOf(999))?.phase === 'idle');
  // The first thousand are idle now (in their cool-down); a second flood pushes the oldest out.
  for (let i = 1000; i < 2000; i++) h.observe(macOf(i), ip('10.9.0.1') + i, 'ip');
  assert.ok(live(0, 1000) <= 100, `idle records are bounded (${live(0, 1000)} of the first flood left)`);
  assert.equal(live(1000, 2000), 1000);
});

test('records bound here are never trimmed and do not count against the idle bound', async () => {
  const { h, requests } = setup({ maxIdleStations: 100, newStationRate: 100_000 });
  const macOf = (p: string, i: number) =>
    `02:${p}:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  for (let i = 0; i < 150; i++) await h.commit(i, { ...toCn2, mac: macOf('b1', i), cell: ip('10.2.0.0') + 4 * i });
  for (let i = 0; i < 1000; i++) h.observe(macOf('b2', i), ip('10.9.0.1') + i, 'ip');
  for (const r of requests) r.answer({ outcome: 'unknown' });
  await until('every request to finish', () => h.station(macOf('b2', 999))?.phase === 'idle');
  for (let i = 1000; i < 1200; i++) h.observe(macOf('b2', i), ip('10.9.0.1') + i, 'ip');
  assert.equal(h.bindings().length, 150, 'every binding is kept');
  const live = (from: number, to: number) => {
    let n = 0;
    for (let i = from; i < to; i++) if (h.station(macOf('b2', i))) n++;
    return n;
  };
  assert.ok(live(0, 1000) <= 100, `the oldest idle records went (${live(0, 1000)} of the first flood left)`);
  assert.equal(live(1000, 1200), 200, 'the newest (in flight) stay');
});

test('a step of the wall clock (NTP at boot) neither empties nor fills the new-station budget', async (t) => {
  // The wall clock, as the handover would see it, under the test's control from the start.
  const realNow = Date.now.bind(Date);
  let step = 0;
  t.mock.method(Date, 'now', () => realNow() + step);
  const { h } = setup({ newStationRate: 5, ownClock: true });
  const macOf = (i: number) => `02:de:00:00:00:${i.toString(16).padStart(2, '0')}`;
  let accepted = 0;
  for (let i = 0; i < 11; i++) if (h.acceptDhcp(macOf(i))) accepted++;
  assert.equal(accepted, 10, 'the burst');
  // The wall clock steps back an hour: on it the bucket would refill -18,000 tokens.
  step = -3_600_000;
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(h.acceptDhcp(macOf(20)), true, '250 ms later one more new station (5/s)');
  // And forward a day: no more than the rate since.
  step = 86_400_000;
  accepted = 0;
  for (let i = 30; i < 40; i++) if (h.acceptDhcp(macOf(i))) accepted++;
  assert.ok(accepted <= 1, `${accepted} admitted right after the step`);
});

test('new stations are admitted at new_station_rate with a burst of twice that; known ones take no token', async () => {
  const log: string[] = [];
  const { h, clock, requests } = setup({ newStationRate: 5, log });
  const macOf = (i: number) => `02:dd:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  // 10 000 DHCP frames from distinct MACs in one instant: the burst (10) is admitted, the rest dropped.
  let accepted = 0;
  for (let i = 0; i < 10_000; i++) if (h.acceptDhcp(macOf(i))) accepted++;
  assert.equal(accepted, 10);
  assert.equal(h.guard.new_station_dropped, 9990);
  // ARP/IP from new MACs draws on the same budget: nothing left.
  h.observe(macOf(20_000), ip('10.9.0.1'), 'arp');
  assert.equal(requests.length, 0);
  assert.equal(h.guard.new_station_dropped, 9991);
  // An admitted station's next frames (its REQUEST after the OFFER) take no token.
  assert.equal(h.acceptDhcp(macOf(3)), true);
  // The bucket refills at the rate: after 1 s, 5 more; never more than the burst.
  clock.t += 1000;
  accepted = 0;
  for (let i = 30_000; i < 30_100; i++) if (h.acceptDhcp(macOf(i))) accepted++;
  assert.equal(accepted, 5);
  clock.t += 60_000;
  accepted = 0;
  for (let i = 40_000; i < 40_100; i++) if (h.acceptDhcp(macOf(i))) accepted++;
  assert.equal(accepted, 10, 'the burst is the cap however long the pause');
  // The log stays bounded: 3 lines per 10 s interval, then one summary line.
  assert.equal(log.filter((l) => /^dropping DHCP from new station/.test(l)).length, 6, log.join('\n'));
  clock.t += 10_000;
  h.flushGuardLogs(); // the daemon's timer: the last interval's summary is written even if the flood stopped
  assert.deepEqual(
    log.filter((l) => /more frames from new stations dropped/.test(l)),
    [
      '10083 more frames from new stations dropped (new_station_rate) in the last 61 s',
      '87 more frames from new stations dropped (new_station_rate) in the last 10 s',
    ],
  );
  await h.commit(1, toCn2);
  assert.equal(h.acceptDhcp(MS), true, 'a station served here is never budgeted');
});

test('RELEASE/DECLINE pass only from the station itself, served here, associated when hostapd is present', async () => {
  const log: string[] = [];
  const { h, associations } = setup({ log });
  const other = '02:aa:00:00:00:77';
  assert.equal(h.mayRelease('RELEASE', MS, MS), false, 'not served here');
  await h.commit(1, toCn2);
  assert.equal(h.mayRelease('RELEASE', other, MS), false, 'another source MAC');
  assert.equal(h.mayRelease('DECLINE', other, MS), false);
  assert.equal(h.mayRelease('RELEASE', MS, MS), true);
  assert.equal(h.mayRelease('DECLINE', MS, MS), true);
  associations.bssAdded('wl0');
  assert.equal(h.mayRelease('RELEASE', MS, MS), false, 'hostapd present, not associated here');
  associations.notify('wl0', 'assoc', { address: MS });
  assert.equal(h.mayRelease('RELEASE', MS, MS), true);
  assert.deepEqual(h.guard, { new_station_dropped: 0, unassociated: 0, release_ignored: 3, decline_ignored: 1 });
  assert.deepEqual(
    log.filter((l) => l.startsWith('ignoring')),
    [
      `ignoring DHCPRELEASE for ${MS}: not served in this cell`,
      `ignoring DHCPRELEASE for ${MS}: sent from ${other}, not from the client's own MAC`,
      `ignoring DHCPDECLINE for ${MS}: sent from ${other}, not from the client's own MAC`,
      `ignoring DHCPRELEASE for ${MS}: not associated with this AP`,
    ],
  );
});

/** An ARP packet from Ethernet source `src`, as the capture would hand it over. */
function arpFrom(src: string, a: { op: number; senderMac: string; senderIp: number }) {
  const arp = { ...a, targetMac: '02:cc:00:00:00:02', targetIp: ip('10.1.0.6') };
  return { src, arp, frame: encodeEthernet({ dst: '02:cc:00:00:00:02', src, etherType: ETHERTYPE.ARP, payload: encodeArp(arp) }) };
}

test('probe: a unicast ARP request for N+1 from N+2, answered by the station itself', async () => {
  const { h, link } = setup();
  await h.commit(1, toCn2);
  link.sent.length = 0;
  const answer = h.probe(MS, ip('10.1.0.5'));
  assert.equal(link.sent.length, 1, 'the first request goes out at once');
  const eth = decodeEthernet(link.sent[0]!);
  assert.ok(eth.ok);
  assert.equal(eth.value.dst, MS, 'unicast to the station');
  assert.equal(eth.value.src, '02:cc:00:00:00:02');
  assert.equal(eth.value.etherType, ETHERTYPE.ARP);
  const arp = decodeArp(eth.value.payload);
  assert.ok(arp.ok);
  assert.deepEqual(
    { op: arp.value.op, senderMac: arp.value.senderMac, senderIp: arp.value.senderIp, targetIp: arp.value.targetIp },
    { op: ARP_OP.REQUEST, senderMac: '02:cc:00:00:00:02', senderIp: ip('10.1.0.6'), targetIp: ip('10.1.0.5') },
  );
  const right = arpFrom(MS, { op: ARP_OP.REPLY, senderMac: MS, senderIp: ip('10.1.0.5') });
  h.arpHeard(right.src, right.arp);
  assert.equal(await answer, true);
});

test('probe: no reply (or only replies that do not count) is absent after PROBE_TIMEOUT_MS; two requests sent', async () => {
  const { h, link } = setup();
  await h.commit(1, toCn2);
  link.sent.length = 0;
  const started = Date.now();
  const answer = h.probe(MS, ip('10.1.0.5'));
  // Not an answer (had one counted, the probe would say present): another MAC with the station's
  // address, the station with another address, another sender MAC from the station's source, its request.
  const wrong = [
    arpFrom('02:ee:00:00:00:09', { op: ARP_OP.REPLY, senderMac: '02:ee:00:00:00:09', senderIp: ip('10.1.0.5') }),
    arpFrom(MS, { op: ARP_OP.REPLY, senderMac: MS, senderIp: ip('10.1.0.9') }),
    arpFrom(MS, { op: ARP_OP.REPLY, senderMac: '02:ee:00:00:00:09', senderIp: ip('10.1.0.5') }),
    arpFrom(MS, { op: ARP_OP.REQUEST, senderMac: MS, senderIp: ip('10.1.0.5') }),
  ];
  for (const w of wrong) h.arpHeard(w.src, w.arp);
  assert.equal(await answer, false);
  const waited = Date.now() - started;
  assert.ok(waited >= PROBE_TIMEOUT_MS - 1 && waited < 1000, `waited ${waited} ms`);
  assert.equal(link.sent.length, 2, 'sent twice within the time-out');
  assert.deepEqual(link.sent[0], link.sent[1]);
  // A late reply resolves nothing and breaks nothing: the next probe is answered as usual.
  const late = arpFrom(MS, { op: ARP_OP.REPLY, senderMac: MS, senderIp: ip('10.1.0.5') });
  h.arpHeard(late.src, late.arp);
  const next = h.probe(MS, ip('10.1.0.5'));
  h.arpHeard(late.src, late.arp);
  assert.equal(await next, true);
});

test('probe: a reply that came in time counts even when the CN was busy past the time-out', async () => {
  const { h } = setup();
  await h.commit(1, toCn2);
  // The capture stands in as a loopback UDP socket: the station's reply is waiting in the kernel
  // when the event loop, busy for longer than PROBE_TIMEOUT_MS, turns again. The loop runs expired
  // timers before it reads sockets; the probe must not decide before the socket was read.
  const sock = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const reply = arpFrom(MS, { op: ARP_OP.REPLY, senderMac: MS, senderIp: ip('10.1.0.5') });
    sock.on('message', (m) => {
      if (m.toString() === 'reply') h.arpHeard(reply.src, reply.arp);
    });
    const answer = h.probe(MS, ip('10.1.0.5'));
    // Other frames queued ahead of the reply: more than one turn of the loop reads (libuv reads 32
    // datagrams a turn, the capture addon 64 frames).
    for (let i = 0; i < 100; i++) sock.send(Buffer.from('other'), sock.address().port, '127.0.0.1');
    sock.send(Buffer.from('reply'), sock.address().port, '127.0.0.1');
    const busyUntil = Date.now() + PROBE_TIMEOUT_MS * 3;
    while (Date.now() < busyUntil) {
      // the CN is busy (a long synchronous task, or not scheduled at all)
    }
    assert.equal(await answer, true);
  } finally {
    sock.close();
  }
});

test('probe: refused for a station not served here, or at another address; nothing is sent', async () => {
  const { h, link } = setup();
  await assert.rejects(h.probe(MS, ip('10.1.0.5')), /does not serve/);
  await h.commit(1, { ...toCn2, current: cn3 }); // cn2 takes no part: no binding kept
  await h.commit(2, toCn2);
  await assert.rejects(h.probe(MS, ip('10.1.0.9')), /does not serve/);
  const sent = link.sent.filter(
    (f) => f.readUInt16BE(12) === ETHERTYPE.ARP && decodeArp(f.subarray(14)).ok && f.readUInt16BE(20) === ARP_OP.REQUEST && f[0] !== 0xff,
  );
  assert.equal(sent.length, 0);
});

/** The ARP requests among `frames`, decoded. */
function arpRequests(frames: Buffer[]) {
  return frames.flatMap((f) => {
    const eth = decodeEthernet(f);
    if (!eth.ok || eth.value.etherType !== ETHERTYPE.ARP) return [];
    const arp = decodeArp(eth.value.payload);
    return arp.ok && arp.value.op === ARP_OP.REQUEST ? [{ dst: eth.value.dst, ...arp.value }] : [];
  });
}

test('lost: a served station that leaves (hostapd) or stops answering (neighbour FAILED) is reported once per interval', async () => {
  const { h, clock, requests } = setup();
  h.left(MS);
  h.neighbourFailed(ip('10.1.0.5'));
  assert.equal(requests.length, 0, 'not served here: nothing to report');
  await h.commit(1, toCn2);
  h.left(MS);
  assert.deepEqual(
    requests.map((r) => [r.type, r.body]),
    [['lost', { mac: MS, ip: ip('10.1.0.5'), why: 'disassoc' }]],
  );
  h.neighbourFailed(ip('10.1.0.5')); // the kernel repeats FAILED while traffic flows: one report per interval
  h.neighbourFailed(ip('10.1.0.9')); // nobody's address here
  assert.equal(requests.length, 1);
  clock.t += LOST_REPORT_INTERVAL_MS;
  h.neighbourFailed(ip('10.1.0.5'));
  assert.deepEqual(requests[1]?.body, { mac: MS, ip: ip('10.1.0.5'), why: 'unreachable' });
  assert.equal(h.stats.lost, 2);
  // Once it has left for another CN, a failure of its old address reports nothing.
  await h.commit(2, { ...toCn2, current: cn3 });
  clock.t += LOST_REPORT_INTERVAL_MS;
  h.neighbourFailed(ip('10.1.0.5'));
  assert.equal(requests.length, 2);
});

test('stations hostapd lists as associated take no new-station token: 500 phones back at once all get answers', () => {
  const { h, associations } = setup({ newStationRate: 1 });
  const macOf = (i: number) => `02:ee:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  associations.bssAdded('wl0');
  for (let i = 0; i < 500; i++) associations.notify('wl0', 'assoc', { address: macOf(i) });
  let accepted = 0;
  for (let i = 0; i < 500; i++) if (h.acceptDhcp(macOf(i))) accepted++;
  assert.equal(accepted, 500);
  assert.equal(h.guard.new_station_dropped, 0);
  // A MAC hostapd does not list still draws on the budget (burst 2) — when association is not required.
  const loose = setup({ newStationRate: 1, requireAssociation: false });
  loose.associations.bssAdded('wl0');
  let strangers = 0;
  for (let i = 0; i < 10; i++) if (loose.h.acceptDhcp(macOf(1000 + i))) strangers++;
  assert.equal(strangers, 2);
  assert.equal(loose.h.guard.new_station_dropped, 8);
});

test('page: unicast ARP requests for N+1 from N+2; the answer is reported without a new-station token', async () => {
  const { h, link, requests, clock } = setup({ newStationRate: 1 });
  // Spend the new-station budget (burst 2): a third new MAC is dropped.
  h.observe('02:bb:00:00:00:01', ip('10.9.0.1'), 'arp');
  h.observe('02:bb:00:00:00:02', ip('10.9.0.5'), 'arp');
  h.observe('02:bb:00:00:00:03', ip('10.9.0.9'), 'arp');
  assert.equal(requests.length, 2);
  assert.equal(h.guard.new_station_dropped, 1);

  link.sent.length = 0;
  h.page(MS, ip('10.1.0.5'));
  await until('three page requests', () => link.sent.length >= 3);
  const sent = arpRequests(link.sent);
  assert.equal(sent.length, 3);
  for (const a of sent) {
    assert.deepEqual(
      { dst: a.dst, senderMac: a.senderMac, senderIp: a.senderIp, targetIp: a.targetIp },
      { dst: MS, senderMac: '02:cc:00:00:00:02', senderIp: ip('10.1.0.6'), targetIp: ip('10.1.0.5') },
    );
  }
  // Its answer, from another address than the paged one, is not the answer: budgeted as usual.
  h.observe(MS, ip('10.1.0.9'), 'arp');
  assert.equal(requests.length, 2);
  h.observe(MS, ip('10.1.0.5'), 'arp');
  assert.deepEqual(requests.at(-1)?.body, { mac: MS, ip: ip('10.1.0.5'), via: 'arp', leaseTime: 600 });
  assert.equal(h.stats.pageAnswers, 1);
  // After PAGED_MS, the same MAC is a new station again.
  const other = '02:aa:00:00:00:42';
  h.page(other, ip('10.1.0.9'));
  clock.t += PAGED_MS;
  h.observe(other, ip('10.1.0.9'), 'arp'); // 1.5 s refilled 1.5 tokens: it takes one of them
  assert.equal(requests.length, 4);
  assert.equal(h.stats.pageAnswers, 1, 'a late answer is not a page answer');
  h.observe('02:bb:00:00:00:04', ip('10.9.0.13'), 'arp');
  assert.equal(requests.length, 4, 'the budget it took is gone for the next new station');
});

test('page: hostapd present but silent about the station: its list is re-read once, and association decides', async () => {
  const loads: string[] = [];
  /** The stations hostapd lists in get_clients (no notification was ever sent for them). */
  const listed = new Set<string>();
  const { h, associations, requests } = setup({
    refreshAssociations: async () => {
      loads.push('get_clients');
      associations.loadClients('wl0', { clients: Object.fromEntries([...listed].map((m) => [m, { authorized: true }])) });
    },
  });
  associations.bssAdded('wl0');
  h.page(MS, ip('10.1.0.5'));
  h.observe(MS, ip('10.1.0.5'), 'arp');
  await until('one refresh, then refused', () => loads.length === 1 && h.guard.unassociated === 1);
  assert.equal(requests.length, 0, 'hostapd does not list it: refused');
  h.observe(MS, ip('10.1.0.5'), 'arp');
  assert.equal(loads.length, 1, 're-read once per page');

  const third = '02:aa:00:00:00:03';
  listed.add(third);
  h.page(third, ip('10.1.0.9'));
  h.observe(third, ip('10.1.0.9'), 'arp');
  await until('reported after hostapd listed it', () => requests.length === 1);
  assert.deepEqual(requests[0]?.body, { mac: third, ip: ip('10.1.0.9'), via: 'arp', leaseTime: 600 });
});

test('page: nothing is sent for a station served here; a page for a non-host address is refused', async () => {
  const { h, link } = setup();
  await h.commit(1, toCn2);
  link.sent.length = 0;
  h.page(MS, ip('10.1.0.5'));
  assert.throws(() => h.page('02:aa:00:00:00:09', ip('10.1.0.6')), /not a cell's host address/);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(
    arpRequests(link.sent).filter((a) => a.targetIp === ip('10.1.0.5')).length,
    0,
    'no request for N+1 (only announcements of N+2)',
  );
});

test('a re-bind in pages: a commit that arrives while the pages are on their way is newer than the list', async () => {
  const { h } = setup();
  const other = '02:aa:00:00:00:05';
  await h.commit(1, { ...toCn2, mac: other, cell: ip('10.1.0.8') });
  h.beginResync();
  // While the pages come: MS arrives at cn2 (commit) and `other` is removed.
  await h.commit(2, toCn2);
  await h.remove({ ...toCn2, mac: other, cell: ip('10.1.0.8') });
  // The pages were read before both: MS at cn3 (cn2 takes no part), `other` still served here.
  await h.reestablish([
    { ...toCn2, current: cn3 },
    { ...toCn2, mac: other, cell: ip('10.1.0.8') },
  ]);
  assert.deepEqual(h.station(MS)?.binding, toCn2, "the commit's binding stands");
  assert.equal(h.station(other)?.binding, undefined, 'the remove stands');
  // Without a resync under way, the list is the whole truth again.
  await h.reestablish([{ ...toCn2, mac: other, cell: ip('10.1.0.8') }]);
  assert.equal(h.station(MS)?.binding, undefined);
  assert.equal(h.station(other)?.binding?.mac, other);
  // A renewal's reply (same binding, a later expiry) during the pages stands too.
  h.beginResync();
  await h.applyReply(7, { ...toCn2, mac: other, cell: ip('10.1.0.8'), expires: 2e15 });
  await h.reestablish([{ ...toCn2, mac: other, cell: ip('10.1.0.8') }]);
  assert.equal(h.station(other)?.binding?.expires, 2e15, "the renewal's expiry stands");
});

test('a gateway is announced four times, once for a station taking its address from our DHCP now, and not after stop', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { h, link } = setup();
  const announcements = () => link.sent.map((f) => decodeEthernet(f)).filter((e) => e.ok && e.value.etherType === ETHERTYPE.ARP).length;
  // A station that roamed here: its gateway is announced at once and repeated.
  await h.commit(1, toCn2);
  assert.equal(announcements(), 2, 'a gratuitous ARP and a unicast reply at once');
  t.mock.timers.tick(1000);
  assert.equal(announcements(), 8, 'repeated three times');

  // A new client whose REQUEST (SELECTING) waits on the MLR while the commit arrives: once.
  link.sent.length = 0;
  const fresh = { ...toCn2, mac: '02:aa:00:00:00:02', cell: ip('10.1.0.8') };
  h.dhcpSelecting(fresh.mac, true);
  await h.commit(2, fresh);
  h.dhcpSelecting(fresh.mac, false);
  t.mock.timers.tick(1000);
  assert.equal(announcements(), 2, 'no repeats');
  const eth = decodeEthernet(link.sent[1]!);
  assert.ok(eth.ok);
  const reply = decodeArp(eth.value.payload);
  assert.ok(reply.ok);
  assert.equal(reply.value.targetMac, fresh.mac, 'the unicast reply goes to the station');

  // Once its REQUEST is answered the station is like any other again.
  link.sent.length = 0;
  await h.commit(3, { ...fresh, expires: 2e15 });
  t.mock.timers.tick(1000);
  assert.equal(announcements(), 8);

  // The CN stops: the repeats still pending are not sent.
  link.sent.length = 0;
  await h.commit(4, { ...fresh, expires: 3e15 });
  h.stop();
  t.mock.timers.tick(1000);
  assert.equal(announcements(), 2, 'only the first, sent before the stop');
});

// ---- inline commits: a reply that carries the move's commit (core/messages.ts FEATURES.inlineCommit) ----

/** MS bound here at home (cn2 is the parent and the current CN): what a new client's REQUEST reply carries. */
const atHome: BindingView = { mac: MS, cell: ip('10.2.0.4'), parent: cn2, current: cn2, expires: 1e15, state: 'bound' };

test('inline commit: a commit for a later transaction that overtakes the reply wins; the stale reply is not applied', async () => {
  const log: string[] = [];
  const { h, applied } = setup({ log });
  h.replyWaiting(MS, true);
  // tx 6 moved the station on to cn3 (cn2 takes no part) and its commit arrived before tx 5's reply.
  await h.commit(6, { ...atHome, current: cn3, parent: cn1, tunnel: { type: 'vxlan', key: 3 } });
  assert.ok(h.station(MS), 'the record stays while a reply is awaited, though it holds no binding');
  const calls = applied.length;
  await h.applyReply(5, atHome);
  h.replyWaiting(MS, false);
  assert.equal(applied.length, calls, 'the data plane was not asked again');
  assert.equal(h.isServed(MS), false, 'the stale reply did not bring the station back');
  assert.equal(h.station(MS), undefined, 'the record is forgotten once nothing is awaited');
  assert.ok(log.some((l) => /tx 5: reply for .* not applied: transaction 6/.test(l)));
});

test('inline commit: a remove for a later transaction that overtakes the reply wins; an older remove is ignored', async () => {
  const { h, applied } = setup();
  h.replyWaiting(MS, true);
  await h.commit(2, atHome); // an earlier lease, applied by commit
  await h.remove(atHome, 9); // dropped (expired, declined) by tx 9 ...
  await h.applyReply(8, atHome); // ... before tx 8's reply came
  h.replyWaiting(MS, false);
  assert.equal(h.station(MS), undefined);
  assert.deepEqual(applied.at(-1), []);

  // A reply applied, then a remove of an older transaction: ignored. One without tx (old MLR): applied.
  await h.applyReply(10, atHome);
  assert.ok(h.isServed(MS));
  await h.remove(atHome, 4);
  assert.ok(h.isServed(MS), 'older than what was applied');
  await h.remove(atHome);
  assert.equal(h.isServed(MS), false, 'without tx, a remove is applied as always');
});

test('inline commit: applied before it resolves; a renewal only notes its expiry; a new MLR session numbers afresh', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { h, applied, link } = setup();
  h.replyWaiting(MS, true);
  const done = h.applyReply(3, atHome);
  h.replyWaiting(MS, false);
  await done;
  assert.deepEqual(applied.at(-1), [atHome], 'applied to the kernel');
  assert.ok(h.isServed(MS));
  t.mock.timers.tick(2000); // the announcement's repeats
  const calls = applied.length;
  link.sent.length = 0;
  // The renewal's reply: the same binding with a later expiry; nothing in the kernel changes.
  await h.applyReply(4, { ...atHome, expires: 2e15 });
  t.mock.timers.tick(2000);
  assert.equal(applied.length, calls, 'no data-plane call');
  assert.equal(link.sent.length, 0, 'no announcement');
  assert.equal(h.station(MS)?.binding?.expires, 2e15);
  // A renewal whose binding the CN lacks (a reply lost to a time-out before) applies it in full.
  await h.commit(5, { ...atHome, current: cn3, tunnel: { type: 'vxlan', key: 4 } });
  await h.applyReply(6, atHome);
  assert.deepEqual(applied.at(-1), [atHome]);
  // After a re-bind (a new MLR session, maybe another MLR) tx numbers start again.
  h.beginResync();
  await h.reestablish([]);
  await h.applyReply(1, atHome);
  assert.ok(h.isServed(MS), 'tx 1 of the new session applies');
});

test('inline commit: a data plane that fails is retried, then the CN re-binds; a newer commit stops the retries', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const resyncs: string[] = [];
  let failures = 0;
  let calls = 0;
  const h = new CnHandover({
    self: 'cn2',
    mlr: { request: () => new Promise(() => undefined) },
    dataplane: {
      apply: () => {
        calls++;
        if (failures === 0) return Promise.resolve([]);
        failures--;
        return Promise.reject(new Error('RTNETLINK answers: No buffer space available'));
      },
    },
    link: new FakeLinkIO('wl0', '02:cc:00:00:00:02'),
    associations: new AssociationTable(),
    requireAssociation: false,
    tunnels: () => ['vxlan'],
    leaseTime: 600,
    log: () => undefined,
    resync: (why) => resyncs.push(why),
    reapplyDelaysMs: [10, 20],
  });
  failures = 3;
  await h.applyReply(1, atHome); // resolves: the client gets its ACK, as after a failed commit
  assert.ok(h.isServed(MS));
  for (let i = 0; i < 3; i++) {
    t.mock.timers.tick(20);
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(calls, 3, 'two retries after the first failure');
  assert.deepEqual(resyncs, [`applying ${MS} failed`]);

  failures = 1;
  resyncs.length = 0;
  await h.applyReply(2, { ...atHome, cell: ip('10.2.0.8') });
  await h.commit(3, atHome); // newer: the retry of tx 2 is moot
  const before = calls;
  t.mock.timers.tick(50);
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, before, 'no retry');
  assert.deepEqual(resyncs, []);

  // The CN stops: a pending retry does not run.
  failures = 1;
  await h.applyReply(4, { ...atHome, cell: ip('10.2.0.8') });
  const stopped = calls;
  h.stop();
  t.mock.timers.tick(50);
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, stopped, 'no retry after stop');
});

test('inline commit: a commit that overtakes the `seen` reply carrying an older one wins, the record kept meanwhile', async () => {
  const { h, requests, associations } = setup();
  // An associated station: hostapd's word starts the move (no new-station token, nothing else keeps the record).
  associations.bssAdded('wl0');
  associations.notify('wl0', 'assoc', { address: MS });
  h.arrived(MS);
  assert.equal(requests.length, 1);
  // tx 6 moved the station on to cn3 (cn2 takes no part) and its commit arrived before tx 5's reply.
  await h.commit(6, { ...atHome, current: cn3, parent: cn1, tunnel: { type: 'vxlan', key: 3 } });
  requests[0]!.answer({ outcome: 'moved', binding: atHome, tx: 5 });
  await until('the request to finish', () => h.station(MS)?.phase === 'idle' && h.station(MS)?.awaiting === 0);
  assert.equal(h.isServed(MS), false, 'the stale reply did not bring the station back');
});

test('a `seen` that times out makes the CN re-bind (its reply may have carried a commit); a closed link does not', async () => {
  const resyncs: string[] = [];
  const { h, requests, associations, clock } = setup({ resync: (why) => resyncs.push(why) });
  associations.bssAdded('wl0');
  associations.notify('wl0', 'assoc', { address: MS });
  h.arrived(MS);
  assert.equal(requests.length, 1);
  requests[0]!.fail(new RpcError('closed', 'connection closed: heartbeat'));
  await until('the report to finish', () => h.station(MS)?.phase !== 'requested');
  assert.deepEqual(resyncs, [], 'the link re-binds on its own after a close');
  clock.t += 2000; // past the cool-down
  h.arrived(MS);
  assert.equal(requests.length, 2);
  requests[1]!.fail(new RpcError('timeout', 'no reply to seen from mlr within 10000 ms'));
  await until('the re-bind', () => resyncs.length > 0);
  assert.deepEqual(resyncs, [`no reply to the report of ${MS}`]);
});
