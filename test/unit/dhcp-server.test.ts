// SPDX-License-Identifier: GPL-2.0-only
// The CN's DHCP server under load (src/cn/dhcp-server.ts): how many exchanges wait on the MLR,
// retransmissions merged into the waiting exchange and answered with the newest xid, DISCOVERs shed
// past their share while REQUESTs keep theirs, and a slow MLR's DISCOVER given up.
import test from 'node:test';
import assert from 'node:assert/strict';
import { DhcpServer, DHCP_IN_FLIGHT, DISCOVER_TIMEOUT_MS } from '../../src/cn/dhcp-server.js';
import type { MlrApi } from '../../src/cn/mlr-api.js';
import { cellOf, type Mac } from '../../src/core/ip.js';
import type { BindingView } from '../../src/core/binding.js';
import type { ReplyBody, RequestBody, RequestType } from '../../src/core/messages.js';
import { FakeLinkIO } from '../../src/platform/fake-linkio.js';
import { decodeDhcp, DHCP_MESSAGE, type DhcpMessage } from '../../src/proto/dhcp.js';
import { MAX_INBOUND } from '../../src/proto/rpc.js';
import { dhcpMessage } from '../support/dhcp-messages.js';
import { ip, value } from '../support/helpers.js';

const CELL = ip('10.1.0.4');

function view(mac: Mac): BindingView {
  return { mac, cell: CELL, parent: { name: 'cn1', addr: ip('10.200.0.11') }, current: null, state: 'offered', expires: 0 };
}

/** An MLR whose answers the test releases by hand; records every request and its time-out. */
class HeldMlr implements MlrApi {
  readonly calls: { type: RequestType; timeoutMs: number | undefined; answer: () => void; fail: (e: Error) => void }[] = [];
  request<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs?: number): Promise<ReplyBody<T>> {
    const mac = (body as { mac: Mac }).mac;
    return new Promise((resolve, reject) => {
      const reply = type === 'discover' ? { binding: view(mac) } : { outcome: 'ack', binding: view(mac) };
      this.calls.push({ type, timeoutMs, answer: () => resolve(reply as ReplyBody<T>), fail: reject });
    });
  }
}

function setup(): { link: FakeLinkIO; mlr: HeldMlr; server: DhcpServer } {
  const link = new FakeLinkIO();
  const mlr = new HeldMlr();
  const server = new DhcpServer(link, mlr, { leaseTime: 3600, dnsServers: [], log: () => undefined });
  return { link, mlr, server };
}

/** The DHCP messages of the frames sent (Ethernet 14 + IPv4 20 + UDP 8 bytes before the payload). */
function sentMessages(link: FakeLinkIO): DhcpMessage[] {
  return link.takeSent().map((f) => value(decodeDhcp(f.subarray(42))));
}

const macOf = (i: number): Mac =>
  `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
const settle = () => new Promise((r) => setImmediate(r));

void test('a retransmitted DISCOVER joins the waiting one: one MLR request, answered with the newest xid', async () => {
  const { link, mlr, server } = setup();
  const first = server.handle(dhcpMessage('02:aa:00:00:00:01', DHCP_MESSAGE.DISCOVER, 1));
  await server.handle(dhcpMessage('02:aa:00:00:00:01', DHCP_MESSAGE.DISCOVER, 2));
  assert.equal(mlr.calls.length, 1);
  assert.equal(mlr.calls[0]!.timeoutMs, DISCOVER_TIMEOUT_MS);
  assert.equal(server.stats.merged, 1);
  mlr.calls[0]!.answer();
  await first;
  const sent = sentMessages(link);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.messageType, DHCP_MESSAGE.OFFER);
  assert.equal(sent[0]!.xid, 2);
  assert.equal(sent[0]!.yiaddr, cellOf(CELL).host);
  // Once answered, the next DISCOVER of that MAC is a new exchange.
  void server.handle(dhcpMessage('02:aa:00:00:00:01', DHCP_MESSAGE.DISCOVER, 3));
  assert.equal(mlr.calls.length, 2);
});

void test('past its share DISCOVERs are shed, REQUESTs still go through, and the share frees as answers come', async () => {
  const { link, mlr, server } = setup();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < DHCP_IN_FLIGHT.discover + 10; i++) pending.push(server.handle(dhcpMessage(macOf(i), DHCP_MESSAGE.DISCOVER, i)));
  assert.equal(mlr.calls.length, DHCP_IN_FLIGHT.discover);
  assert.equal(server.stats.shed, 10);
  assert.deepEqual(server.waitingCount, { discover: DHCP_IN_FLIGHT.discover, request: 0 });

  const host = cellOf(CELL).host;
  const req = dhcpMessage('02:bb:00:00:00:01', DHCP_MESSAGE.REQUEST, 77, { requestedIp: host, serverId: cellOf(CELL).gateway });
  pending.push(server.handle(req));
  assert.equal(mlr.calls.length, DHCP_IN_FLIGHT.discover + 1);
  assert.equal(mlr.calls.at(-1)!.type, 'request');

  for (const c of mlr.calls) c.answer();
  await Promise.all(pending);
  const sent = sentMessages(link);
  assert.equal(sent.filter((m) => m.messageType === DHCP_MESSAGE.OFFER).length, DHCP_IN_FLIGHT.discover);
  assert.equal(sent.filter((m) => m.messageType === DHCP_MESSAGE.ACK).length, 1);
  assert.deepEqual(server.waitingCount, { discover: 0, request: 0 });
  // A shed client's retransmission is served now.
  void server.handle(dhcpMessage(macOf(DHCP_IN_FLIGHT.discover + 5), DHCP_MESSAGE.DISCOVER, 1));
  assert.equal(mlr.calls.length, DHCP_IN_FLIGHT.discover + 2);
});

void test('REQUESTs have their own share and are shed past it', async () => {
  const { mlr, server } = setup();
  const host = cellOf(CELL).host;
  for (let i = 0; i < DHCP_IN_FLIGHT.request + 3; i++) {
    void server.handle(dhcpMessage(macOf(i), DHCP_MESSAGE.REQUEST, i, { requestedIp: host, serverId: cellOf(CELL).gateway }));
  }
  await settle();
  assert.equal(mlr.calls.length, DHCP_IN_FLIGHT.request);
  assert.equal(server.stats.shed, 3);
});

void test('while REQUESTs fill their share, new DISCOVERs are shed: the clients offered already finish first', async () => {
  const { mlr, server } = setup();
  const host = cellOf(CELL).host;
  const requests = DHCP_IN_FLIGHT.request - 2;
  for (let i = 0; i < requests; i++) {
    void server.handle(dhcpMessage(macOf(i), DHCP_MESSAGE.REQUEST, i, { requestedIp: host, serverId: cellOf(CELL).gateway }));
  }
  for (let i = 0; i < 5; i++) void server.handle(dhcpMessage(macOf(1000 + i), DHCP_MESSAGE.DISCOVER, i));
  await settle();
  // Room for two more exchanges in the REQUESTs' share: two DISCOVERs (their REQUESTs will need it).
  assert.deepEqual(server.waitingCount, { discover: 2, request: requests });
  assert.equal(server.stats.shed, 3);
  // A REQUEST still gets its place, though DISCOVERs are shed.
  void server.handle(dhcpMessage(macOf(2000), DHCP_MESSAGE.REQUEST, 1, { requestedIp: host, serverId: cellOf(CELL).gateway }));
  assert.equal(server.waitingCount.request, requests + 1);
  // As the MLR answers the REQUESTs, DISCOVERs are taken again.
  for (const c of mlr.calls.filter((c) => c.type === 'request').slice(0, 10)) c.answer();
  await settle();
  void server.handle(dhcpMessage(macOf(1003), DHCP_MESSAGE.DISCOVER, 9));
  assert.equal(server.waitingCount.discover, 3);
});

void test('a DISCOVER the MLR does not answer in time is given up, freeing its place; no OFFER goes out', async () => {
  const { link, mlr, server } = setup();
  const p = server.handle(dhcpMessage('02:cc:00:00:00:01', DHCP_MESSAGE.DISCOVER, 9));
  mlr.calls[0]!.fail(new Error('no reply to discover within 2000 ms'));
  await p;
  assert.equal(link.sent.length, 0);
  assert.equal(server.stats.errors, 1);
  assert.deepEqual(server.waitingCount, { discover: 0, request: 0 });
});

void test("the exchanges the CN lets wait stay under the MLR's own bound per session, with room for its other requests", () => {
  // Past MAX_INBOUND the MLR answers busy: a REQUEST refused there wastes the offer made for it.
  assert.ok(DHCP_IN_FLIGHT.discover + DHCP_IN_FLIGHT.request < MAX_INBOUND);
  assert.ok(DHCP_IN_FLIGHT.request > DHCP_IN_FLIGHT.discover, 'REQUESTs finish clients: they get the larger share');
});

void test('the handover is told while a SELECTING REQUEST waits on the MLR, also when it fails; not for a renewal', async () => {
  const link = new FakeLinkIO();
  const mlr = new HeldMlr();
  const told: [Mac, boolean][] = [];
  const server = new DhcpServer(link, mlr, {
    leaseTime: 3600,
    dnsServers: [],
    log: () => undefined,
    selecting: (mac, waiting) => told.push([mac, waiting]),
  });
  const a = '02:aa:00:00:00:01';
  const host = cellOf(CELL).host;
  const taking = server.handle(dhcpMessage(a, DHCP_MESSAGE.REQUEST, 1, { requestedIp: host, serverId: cellOf(CELL).gateway }));
  assert.deepEqual(told, [[a, true]], 'told before the MLR answers');
  mlr.calls[0]!.answer();
  await taking;
  assert.deepEqual(told, [
    [a, true],
    [a, false],
  ]);
  assert.equal(sentMessages(link)[0]!.messageType, DHCP_MESSAGE.ACK);

  const failing = server.handle(dhcpMessage(a, DHCP_MESSAGE.REQUEST, 2, { requestedIp: host, serverId: cellOf(CELL).gateway }));
  mlr.calls[1]!.fail(new Error('lost'));
  await failing;
  assert.deepEqual(told.slice(2), [
    [a, true],
    [a, false],
  ]);

  // A renewal (ciaddr, no server identifier) is not a client taking an offer.
  const renewing = server.handle(dhcpMessage(a, DHCP_MESSAGE.REQUEST, 3, { ciaddr: host }));
  mlr.calls[2]!.answer();
  await renewing;
  assert.equal(told.length, 4);
});

void test("a reply that carries the move's commit (tx) is applied before the ACK; replyWaiting spans every REQUEST", async () => {
  const link = new FakeLinkIO();
  const told: [Mac, boolean][] = [];
  let release: (() => void) | undefined;
  const applied: number[] = [];
  const answers: ReplyBody<'request'>[] = [
    { outcome: 'ack', binding: view('02:aa:00:00:00:01'), tx: 7 },
    { outcome: 'ack', binding: view('02:aa:00:00:00:01') },
  ];
  const mlr: MlrApi = {
    request<T extends RequestType>(): Promise<ReplyBody<T>> {
      return Promise.resolve(answers.shift() as ReplyBody<T>);
    },
  };
  const server = new DhcpServer(link, mlr, {
    leaseTime: 3600,
    dnsServers: [],
    log: () => undefined,
    replyWaiting: (mac, waiting) => told.push([mac, waiting]),
    applyReply: (tx) => {
      applied.push(tx);
      return new Promise<void>((r) => (release = r));
    },
  });
  const a = '02:aa:00:00:00:01';
  const host = cellOf(CELL).host;
  const taking = server.handle(dhcpMessage(a, DHCP_MESSAGE.REQUEST, 1, { requestedIp: host, serverId: cellOf(CELL).gateway }));
  await settle();
  assert.deepEqual(applied, [7]);
  assert.equal(link.sent.length, 0, 'no ACK while the binding is being applied');
  assert.deepEqual(told, [[a, true]], 'still waiting: a commit that overtakes the reply must be seen');
  release!();
  await taking;
  assert.equal(sentMessages(link)[0]!.messageType, DHCP_MESSAGE.ACK);
  assert.deepEqual(told.at(-1), [a, false]);
  // Without tx (an MLR that sent a commit instead): nothing to apply; a renewal is told too.
  await server.handle(dhcpMessage(a, DHCP_MESSAGE.REQUEST, 2, { ciaddr: host }));
  assert.deepEqual(applied, [7]);
  assert.equal(sentMessages(link)[0]!.messageType, DHCP_MESSAGE.ACK);
  assert.equal(told.length, 4);
});
