// SPDX-License-Identifier: GPL-2.0-only
// Inline commits end to end (core/messages.ts FEATURES.inlineCommit): the real MLR service and, at
// cn1, the real DHCP server and handover over in-memory channels, cn2 a bare session. The MLR frees a
// station's lock before its reply is written, so a later move's commit can reach cn1 before the
// REQUEST's reply that carries the earlier one: cn1 must end with the later state. And both ways of
// mixing versions: a CN that announces the feature to an MLR that ignores it gets commits as before.
import test from 'node:test';
import assert from 'node:assert/strict';
import { AssociationTable } from '../../src/core/association.js';
import type { BindingView } from '../../src/core/binding.js';
import { cellOf, type Mac } from '../../src/core/ip.js';
import { FEATURES, type RequestBody } from '../../src/core/messages.js';
import { Registry } from '../../src/core/registry.js';
import { CnHandover } from '../../src/cn/handover.js';
import { DhcpServer } from '../../src/cn/dhcp-server.js';
import { MlrService } from '../../src/mlr/service.js';
import { FakeLinkIO } from '../../src/platform/fake-linkio.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { decodeDhcp, DHCP_MESSAGE, type DhcpMessage } from '../../src/proto/dhcp.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import { dhcpMessage } from '../support/dhcp-messages.js';
import { ip, until, value } from '../support/helpers.js';

const A: Mac = '02:aa:00:00:00:0a';

function bindBody(name: string, n: number, features?: string[]): RequestBody<'bind'> {
  return {
    network: 'n',
    cn: { name, addr: ip(`10.200.0.${n}`) },
    tunnels: ['vxlan'],
    pools: [{ network: ip(`10.${n}.0.0`), prefix: 24, first: ip(`10.${n}.0.0`), last: ip(`10.${n}.0.255`), exclude: [ip(`10.${n}.0.1`)] }],
    ...(features ? { features } : {}),
  };
}

function request(mac: Mac, host: number): DhcpMessage {
  return dhcpMessage(mac, DHCP_MESSAGE.REQUEST, 42, { requestedIp: host, serverId: cellOf(host).gateway });
}

/**
 * The MLR (its disk held while `hold` is set), cn1 with its real handover and DHCP server (announcing
 * inline commits when `cn1Features`, and the MLR honouring them unless `oldMlr`), and cn2, a bare session.
 */
async function world(o: { cn1Features: boolean; oldMlr?: boolean }) {
  let held: (() => void)[] | undefined;
  const service = new MlrService(new Registry(['vxlan']), {
    networkName: 'n',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    maxLagMs: Infinity,
    log: () => undefined,
    durable: () => (held ? new Promise<void>((r) => held!.push(r)) : Promise.resolve()),
  });
  const events: string[] = [];
  const kernel: (BindingView | undefined)[] = [];
  const link = new FakeLinkIO('wl0', '02:cc:00:00:00:01');
  const [cnEnd, mlrEnd] = memoryChannelPair('cn1', 'mlr');
  service.attach(new RpcPeer(mlrEnd), undefined);
  const peer = new RpcPeer(cnEnd);
  const cn1 = new CnHandover({
    self: 'cn1',
    mlr: peer,
    dataplane: {
      apply: () => Promise.resolve([]),
      update: (mac, b) => {
        events.push(`kernel ${mac} ${b?.current?.name ?? 'none'}`);
        kernel.push(b);
        return Promise.resolve([]);
      },
    },
    link,
    associations: new AssociationTable(),
    requireAssociation: false,
    tunnels: () => ['vxlan'],
    leaseTime: 600,
    log: () => undefined,
  });
  cn1.serve(peer);
  // What the DHCP server asks of the MLR, noted as it is answered (an old MLR's reply: without tx).
  const mlr = {
    request: async <T extends 'request'>(type: T, body: RequestBody<T>, timeoutMs?: number) => {
      const r = await peer.request(type, body, timeoutMs);
      events.push(`reply${r.tx !== undefined ? ' with tx' : ''}`);
      if (o.oldMlr) delete r.tx;
      return r;
    },
  };
  const dhcp = new DhcpServer(link, mlr as never, {
    leaseTime: 600,
    dnsServers: [],
    log: () => undefined,
    replyWaiting: (mac, w) => cn1.replyWaiting(mac, w),
    applyReply: (tx, b) => cn1.applyReply(tx, b),
  });
  cn1.beginResync();
  // An old MLR drops the `features` it does not know: it binds cn1 as a CN without them.
  const bound = await peer.request('bind', bindBody('cn1', 1, o.cn1Features && !o.oldMlr ? [FEATURES.inlineCommit] : undefined));
  await cn1.reestablish(bound.bindings);
  const [cn2End, mlr2End] = memoryChannelPair('cn2', 'mlr');
  service.attach(new RpcPeer(mlr2End), undefined);
  const cn2 = new RpcPeer(cn2End);
  cn2.handle('commit', () => ({}));
  cn2.handle('remove', () => ({}));
  await cn2.request('bind', bindBody('cn2', 2));
  // DHCP replies among the frames sent (the gateway's announcements are ARP).
  const acks = () =>
    link.sent
      .filter((f) => f.readUInt16BE(12) === 0x0800)
      .map((f) => value(decodeDhcp(f.subarray(42))))
      .filter((m) => m.messageType === DHCP_MESSAGE.ACK).length;
  return {
    service,
    cn1,
    cn2,
    peer,
    dhcp,
    events,
    kernel,
    acks,
    hold: () => (held = []),
    flush: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const r of waiting) r();
    },
  };
}

test('a move that overtakes the REQUEST reply carrying the commit wins: cn1 ends with the later state', async () => {
  const w = await world({ cn1Features: true });
  const offer = await w.peer.request('discover', { mac: A });
  const host = offer.binding.cell + 1;
  // The lease waits for the disk, holding A's lock; meanwhile A associates at cn2 (its move queues).
  w.hold();
  const acked = w.dhcp.handle(request(A, host));
  await until('the lease to wait for the disk', () => w.service.outstandingWork === 1);
  const roam = w.cn2.request('seen', { mac: A, via: 'assoc' });
  await until('the roam to queue behind it', () => w.service.outstandingWork === 2);
  w.flush();
  assert.equal((await roam).outcome, 'moved');
  await acked;
  // The roam's commit reached cn1 before the REQUEST's reply (the race this guards against) ...
  assert.deepEqual(w.events, ['kernel 02:aa:00:00:00:0a cn2', 'reply with tx']);
  // ... and the reply, older, was not applied over it: cn1 is the parent, tunnelling to cn2.
  assert.equal(w.kernel.length, 1);
  assert.equal(w.cn1.station(A)?.binding?.current?.name, 'cn2');
  assert.equal(w.cn1.isServed(A), false);
  assert.equal(w.acks(), 1, 'the client still gets its ACK (its lease stands)');
});

test('a new client at its home CN: one round trip fewer, the binding in the kernel before the ACK', async () => {
  const w = await world({ cn1Features: true });
  const offer = await w.peer.request('discover', { mac: A });
  await w.dhcp.handle(request(A, offer.binding.cell + 1));
  assert.deepEqual(w.events, ['reply with tx', 'kernel 02:aa:00:00:00:0a cn1']);
  assert.equal(w.acks(), 1);
  assert.ok(w.cn1.isServed(A));
  assert.equal(w.cn1.stats.committed, 1, 'applied as a commit');
});

test('mixed versions: a CN without the feature, or an MLR that ignores it, gets the commit before the reply as before', async () => {
  for (const o of [{ cn1Features: false }, { cn1Features: true, oldMlr: true }]) {
    const w = await world(o);
    const offer = await w.peer.request('discover', { mac: A });
    await w.dhcp.handle(request(A, offer.binding.cell + 1));
    assert.deepEqual(w.events, ['kernel 02:aa:00:00:00:0a cn1', 'reply'], JSON.stringify(o));
    assert.equal(w.acks(), 1);
    assert.ok(w.cn1.isServed(A));
  }
});
