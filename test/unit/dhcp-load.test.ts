// SPDX-License-Identifier: GPL-2.0-only
// bench/dhcp's pure parts (bench/dhcp-load.ts): the client frames the load generator sends, as the
// project's own decoders read them; replies built by the CN's encoder, as the generator reads them;
// the per-client DORA state and the step summary; the send schedule; the rate options.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  clientFrame,
  clientMac,
  decodeReply,
  DoraTable,
  dueCount,
  encodeClientMessage,
  highestSustained,
  parseRates,
  scheduledAt,
  type ReplyAction,
} from '../../bench/dhcp-load.js';
import { classifyRequest, decodeDhcp, DHCP_MESSAGE, encodeDhcpReply, type DhcpMessage } from '../../src/proto/dhcp.js';
import { buildUdpFrame, classifyFrame } from '../../src/proto/packet.js';
import { ip, value } from '../support/helpers.js';

const SERVER_MAC = '02:5e:00:00:00:01';
const SERVER_ID = ip('10.64.0.1');

/** The frame a server sends to a client's request: a reply of `type`, broadcast from port 67 to 68. */
function serverReply(request: DhcpMessage, type: number, yiaddr: number, serverId = SERVER_ID): Buffer {
  const payload = encodeDhcpReply({ request, messageType: type, yiaddr, serverId, leaseTime: 600 });
  return buildUdpFrame({
    srcMac: SERVER_MAC,
    dstMac: 'ff:ff:ff:ff:ff:ff',
    srcIp: serverId,
    dstIp: 0xffffffff,
    srcPort: 67,
    dstPort: 68,
    payload,
  });
}

/** The server's reply of `type` to `request`, as the generator reads it off the wire (decodeReply). */
function replyTo(request: DhcpMessage, type: number, yiaddr: string, serverId = SERVER_ID): DhcpMessage {
  const m = decodeReply(serverReply(request, type, ip(yiaddr), serverId));
  assert.ok(m, 'decodeReply reads the reply');
  return m;
}

/** The REQUEST frame a DoraTable answered an OFFER with (fails when it sent none). */
function requestFor(a: ReplyAction): Buffer {
  assert.equal(a.kind, 'request');
  if (a.kind !== 'request') throw new Error('no REQUEST');
  return a.frame;
}

/** The DHCP message inside a client frame, as the CN would see it. */
function requestOf(frame: Buffer): DhcpMessage {
  const c = value(classifyFrame(frame));
  assert.equal(c.kind, 'dhcp');
  if (c.kind !== 'dhcp') throw new Error('not DHCP');
  return value(decodeDhcp(c.udp.payload));
}

test('client n of a step has its own locally administered unicast MAC', () => {
  assert.equal(clientMac(0x21, 0), '02:21:00:00:00:00');
  assert.equal(clientMac(0x21, 0x01020304), '02:21:01:02:03:04');
  assert.notEqual(clientMac(0x21, 5), clientMac(0x22, 5));
});

test('a DISCOVER is a broadcast BOOTREQUEST from the client MAC, 0.0.0.0:68 -> 255.255.255.255:67, checksums valid', () => {
  const chaddr = clientMac(1, 7);
  const frame = clientFrame({ type: DHCP_MESSAGE.DISCOVER, xid: 0x12345678, chaddr });
  const c = value(classifyFrame(frame)); // classifyFrame verifies the UDP checksum
  assert.equal(c.kind, 'dhcp');
  if (c.kind !== 'dhcp') return;
  assert.equal(c.eth.src, chaddr);
  assert.equal(c.eth.dst, 'ff:ff:ff:ff:ff:ff');
  assert.equal(c.ip.src, 0);
  assert.equal(c.ip.dst, 0xffffffff);
  assert.equal(c.udp.srcPort, 68);
  assert.ok(c.udp.checksummed);
  const m = value(decodeDhcp(c.udp.payload));
  assert.equal(m.op, 1);
  assert.equal(m.messageType, DHCP_MESSAGE.DISCOVER);
  assert.equal(m.xid, 0x12345678);
  assert.equal(m.chaddr, chaddr);
  assert.ok(m.broadcast);
  assert.equal(m.ciaddr, 0);
  assert.equal(m.requestedIp, undefined);
  assert.equal(m.serverId, undefined);
  assert.deepEqual(m.paramRequestList, [1, 3, 6, 15, 51]);
  assert.ok(c.udp.payload.length >= 300, 'padded to the BOOTP minimum');
});

test('a REQUEST carries the offer as SELECTING: server id and requested IP, ciaddr 0', () => {
  const m = value(
    decodeDhcp(
      encodeClientMessage({
        type: DHCP_MESSAGE.REQUEST,
        xid: 9,
        chaddr: clientMac(1, 1),
        requestedIp: ip('10.64.0.12'),
        serverId: SERVER_ID,
      }),
    ),
  );
  assert.equal(m.messageType, DHCP_MESSAGE.REQUEST);
  assert.equal(m.requestedIp, ip('10.64.0.12'));
  assert.equal(m.serverId, SERVER_ID);
  assert.equal(classifyRequest(m), 'selecting');
});

test('decodeReply reads a server reply, also with an unfilled UDP checksum, and nothing else', () => {
  const req = requestOf(clientFrame({ type: DHCP_MESSAGE.DISCOVER, xid: 1, chaddr: clientMac(1, 0) }));
  const frame = serverReply(req, DHCP_MESSAGE.OFFER, ip('10.64.0.8'));
  const m = decodeReply(Buffer.from(frame));
  assert.equal(m?.messageType, DHCP_MESSAGE.OFFER);
  assert.equal(m?.yiaddr, ip('10.64.0.8'));
  // A checksum left to the veth's offload: wrong on the capture, still read.
  const partial = Buffer.from(frame);
  partial[14 + 20 + 6] = 0x12;
  partial[14 + 20 + 7] = 0x34;
  assert.equal(decodeReply(partial)?.xid, 1);
  // The client's own request (to port 67), and garbage, are not replies.
  assert.equal(decodeReply(clientFrame({ type: DHCP_MESSAGE.DISCOVER, xid: 1, chaddr: clientMac(1, 0) })), undefined);
  assert.equal(decodeReply(Buffer.alloc(10)), undefined);
});

test('DoraTable: OFFER -> one REQUEST, ACK -> bound; strays, duplicates, NAK and a late ACK are counted', () => {
  const t = new DoraTable(3, 1000);
  const d = [0, 1, 2, 3].map((n) => {
    const frame = t.discoverFrame(n);
    assert.equal(t.sent(n * 10), n);
    return requestOf(frame);
  });
  assert.equal(t.size, 4);
  // client 0: OFFER, REQUEST, ACK after 5 ms
  const req = requestOf(requestFor(t.reply(replyTo(d[0]!, DHCP_MESSAGE.OFFER, '10.64.0.8'), 2)));
  assert.equal(req.xid, 1000);
  assert.equal(req.requestedIp, ip('10.64.0.8'));
  assert.equal(req.serverId, SERVER_ID);
  // a second OFFER for client 0 (another server) is not answered
  assert.equal(t.reply(replyTo(d[0]!, DHCP_MESSAGE.OFFER, '10.64.0.20', ip('10.64.0.2')), 3).kind, 'none');
  t.reply(replyTo(req, DHCP_MESSAGE.ACK, '10.64.0.8'), 5);
  assert.equal(t.addressOf(0), '10.64.0.8');
  // client 1: OFFER, then NAK
  const b = requestOf(requestFor(t.reply(replyTo(d[1]!, DHCP_MESSAGE.OFFER, '10.64.0.12'), 12)));
  t.reply(replyTo(b, DHCP_MESSAGE.NAK, '0.0.0.0'), 13);
  assert.equal(t.addressOf(1), '');
  // client 2: OFFER, ACK 3 s after its DISCOVER (late)
  const c = requestOf(requestFor(t.reply(replyTo(d[2]!, DHCP_MESSAGE.OFFER, '10.64.0.16'), 22)));
  t.reply(replyTo(c, DHCP_MESSAGE.ACK, '10.64.0.16'), 3020);
  // client 3: nothing. A reply for an xid we never sent, and one with our xid but another MAC: strays.
  for (const [xid, chaddr] of [
    [5000, clientMac(3, 4000)],
    [1003, clientMac(9, 3)],
  ] as const) {
    const stranger = requestOf(clientFrame({ type: DHCP_MESSAGE.DISCOVER, xid, chaddr }));
    assert.equal(t.reply(replyTo(stranger, DHCP_MESSAGE.OFFER, '10.64.0.40'), 30).kind, 'none');
  }

  const s = t.summary(2, 2000);
  assert.equal(s.clients, 4);
  assert.equal(s.completed, 1);
  assert.equal(s.completedPerSecond, 0.5);
  assert.equal(s.dropPercent, 75);
  assert.equal(s.offers, 3);
  assert.equal(s.naks, 1);
  assert.equal(s.late, 1);
  assert.equal(s.stray, 2);
  assert.equal(s.duplicates, 1);
  assert.equal(s.distinctIps, 1);
  assert.equal(s.p50, 5);
  assert.equal(s.max, 5);
});

test('unanswered: clients old enough and still without an OFFER, in send order, each once', () => {
  const t = new DoraTable(4, 0);
  const d = [0, 1, 2].map((n) => {
    const f = t.discoverFrame(n);
    t.sent(n * 100);
    return requestOf(f);
  });
  t.reply(replyTo(d[1]!, DHCP_MESSAGE.OFFER, '10.64.0.8'), 150);
  assert.deepEqual(t.unanswered(0, 999, 1000), { due: [], next: 0 }, 'nobody is 1000 ms old yet');
  const a = t.unanswered(0, 1150, 1000);
  assert.deepEqual(a, { due: [0], next: 2 }, 'client 1 has its OFFER; client 2 is not old enough');
  assert.deepEqual(t.unanswered(a.next, 5000, 1000), { due: [2], next: 3 });
  assert.deepEqual(t.unanswered(3, 9000, 1000), { due: [], next: 3 });
});

test('the schedule: client n is due at n/rate s; dueCount counts the clients due so far, capped', () => {
  assert.equal(scheduledAt(0, 1000), 0);
  assert.equal(scheduledAt(3000, 1000), 3000);
  assert.equal(dueCount(-1, 1000, 10), 0);
  assert.equal(dueCount(0, 1000, 10), 1);
  assert.equal(dueCount(2.5, 1000, 10), 3);
  assert.equal(dueCount(1000, 1000, 10), 10);
  // every client n is due once the clock reaches its scheduled time, not before
  for (const rate of [7, 100, 6000]) {
    for (const n of [1, 5, 99]) {
      assert.equal(dueCount(scheduledAt(n, rate), rate, 1e9), n + 1);
      assert.equal(dueCount(scheduledAt(n, rate) - 0.001, rate, 1e9), n);
    }
  }
});

test('--rates and the highest sustained rate', () => {
  assert.deepEqual(parseRates('100, 300,1000'), [100, 300, 1000]);
  for (const bad of ['', '100,,300', '0', '1.5', 'x', '-3', '200000']) assert.equal(typeof parseRates(bad), 'string', bad);
  const steps = [
    { rate: 300, dropPercent: 0.05 },
    { rate: 100, dropPercent: 0 },
    { rate: 1000, dropPercent: 2 },
    { rate: 3000, dropPercent: 0 },
  ];
  assert.equal(highestSustained(steps), 300, 'a clean step above a failing one does not count');
  assert.equal(highestSustained([{ rate: 100, dropPercent: 0.1 }]), undefined);
  assert.equal(highestSustained([]), undefined);
});
