// SPDX-License-Identifier: GPL-2.0-only
// "Acknowledged only when durable": MlrService and its handovers over a real RegistryStore whose
// journal appends can be held back (MemoryStateFile.paused, a slow disk). While the record of a change
// is not on disk, the CN gets no reply (bind, request, decline, a roam's `seen`), and no
// commit or remove is sent for a change that allocates or frees a cell; once the append completes,
// they follow. A roam of a bound binding sends its commits at once, beside the append. An OFFER
// does not wait for the disk (it promises nothing; the DHCPACK does).
import test from 'node:test';
import assert from 'node:assert/strict';
import type { RequestBody } from '../../src/core/messages.js';
import { Registry } from '../../src/core/registry.js';
import { RegistryStore } from '../../src/mlr/persistence.js';
import { MlrService } from '../../src/mlr/service.js';
import { MemoryStateFile } from '../../src/platform/fake-state-file.js';
import { memoryChannelPair } from '../../src/platform/memory-channel.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import { ip, unsettledWithin, until } from '../support/helpers.js';

const A = '02:00:00:00:00:0a';

async function world() {
  const registry = new Registry(['vxlan']);
  const file = new MemoryStateFile();
  const store = new RegistryStore(file, registry);
  await store.open();
  const service = new MlrService(registry, {
    networkName: 'n',
    offerHoldMs: 60_000,
    leaseGraceMs: 60_000,
    log: () => {},
    durable: () => store.durable(),
  });
  const connect = async (name: string, n: number) => {
    const [cnEnd, mlrEnd] = memoryChannelPair(name, 'mlr');
    service.attach(new RpcPeer(mlrEnd), undefined);
    const peer = new RpcPeer(cnEnd);
    const got: string[] = [];
    for (const type of ['prepare', 'commit', 'remove', 'abort', 'probe'] as const) {
      peer.handle(type, () => {
        got.push(type);
        return type === 'probe' ? { present: 'no' as const } : {};
      });
    }
    const body: RequestBody<'bind'> = {
      network: 'n',
      cn: { name, addr: ip(`10.200.0.${n}`) },
      tunnels: ['vxlan'],
      pools: [
        { network: ip(`10.${n}.0.0`), prefix: 24, first: ip(`10.${n}.0.0`), last: ip(`10.${n}.0.255`), exclude: [ip(`10.${n}.0.1`)] },
      ],
    };
    const bound = peer.request('bind', body);
    return { peer, got, bound };
  };
  return { registry, file, store, service, connect };
}

/** `p` has not settled within `ms` (the store's append is held back, so nothing may answer). */
const pending = (p: Promise<unknown>, what: string, ms = 60) => unsettledWithin(p, what, ms);

test('bind and a DHCP move are answered and committed only once their journal records are on disk; an OFFER is not held', async () => {
  const w = await world();
  w.file.paused = true;
  const cn1 = await w.connect('cn1', 1);
  await pending(cn1.bound, 'the bind reply before its record is on disk');
  assert.ok(w.registry.cn('cn1'), 'the registry has the CN already');
  w.file.resume();
  await cn1.bound;
  assert.match(w.file.journal ?? '', /"t":"cn","name":"cn1"/);

  w.file.paused = true;
  const cell = (await cn1.peer.request('discover', { mac: A })).binding.cell; // answered with the disk held
  assert.equal(w.registry.binding(A)?.state, 'offered');
  assert.doesNotMatch(w.file.journal ?? '', /"state":"offered"/, 'the offer is not on disk yet');
  // Offered again (the client's DISCOVER retransmitted): the same cell, still without waiting.
  assert.equal((await cn1.peer.request('discover', { mac: A })).binding.cell, cell);

  w.file.paused = true;
  const ack = cn1.peer.request('request', { mac: A, ip: cell + 1, leaseTime: 600, state: 'selecting' });
  await until('the move to be written to the registry', () => w.registry.binding(A)?.state === 'bound');
  await pending(ack, 'the ACK before the move is on disk');
  assert.deepEqual(cn1.got, [], 'not committed (the parent takes its own client: nothing to prepare)');
  w.file.resume();
  assert.equal((await ack).outcome, 'ack');
  assert.deepEqual(cn1.got, ['commit']);
  assert.match(w.file.journal ?? '', /"state":"offered".*"state":"bound"/s, 'the offer reached the disk with the next flush');
});

test('a roam sends its commits at once but is answered only once on disk; a release sends its removes only once on disk', async () => {
  const w = await world();
  const cn1 = await w.connect('cn1', 1);
  const cn2 = await w.connect('cn2', 2);
  await Promise.all([cn1.bound, cn2.bound]);
  const offer = await cn1.peer.request('discover', { mac: A });
  const host = offer.binding.cell + 1;
  await cn1.peer.request('request', { mac: A, ip: host, leaseTime: 600, state: 'selecting' });
  cn1.got.length = 0;

  w.file.paused = true;
  const seen = cn2.peer.request('seen', { mac: A, ip: host, via: 'assoc' });
  await until('the roam to be written to the registry', () => w.registry.binding(A)?.current === 'cn2');
  await until('the commits, with the record not yet on disk', () => cn1.got.includes('commit') && cn2.got.includes('commit'));
  await pending(seen, 'the roam reply before it is on disk');
  assert.deepEqual([cn1.got, cn2.got], [['commit'], ['commit']], 'nothing prepared; committed before the record is on disk');
  assert.doesNotMatch(w.file.journal ?? '', /"current":"cn2"/, 'the move is not on disk yet');
  w.file.resume();
  assert.equal((await seen).outcome, 'moved');
  assert.match(
    w.file.journal ?? '',
    /"t":"pair","a":"cn1","b":"cn2","key":1.*"t":"put".*"current":"cn2"/s,
    'the tunnel key, then the move',
  );

  w.file.paused = true;
  const released = cn2.peer.request('release', { mac: A, ip: host });
  await until('the binding to leave the registry', () => w.registry.binding(A) === undefined);
  await pending(released, 'the release reply before it is on disk');
  assert.ok(!cn1.got.includes('remove') && !cn2.got.includes('remove'), 'no remove sent before the record is on disk');
  w.file.resume();
  await released;
  assert.ok(cn1.got.includes('remove') && cn2.got.includes('remove'));
  assert.match(w.file.journal ?? '', /"t":"rm","mac":"02:00:00:00:00:0a"/);
});
