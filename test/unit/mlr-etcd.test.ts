// SPDX-License-Identifier: GPL-2.0-only
// The MLR's registry in etcd (`option store`) and its leadership: the key layout and `option store`
// (pure), `list mlr` on the CN and the connector that follows the serving MLR, and, against a real
// etcd on 127.0.0.1 (skipped without Debian's etcd-server): every change round-trips through etcd; a
// standby waits while the leader holds its lease and takes over when it is given back; a deposed
// leader's writes are refused (fencing), so its durable() rejects and it is told to stop.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseCnConfig, parseMlrConfig, type MlrAddress } from '../../src/core/config.js';
import { chunk, coalesce, decodeRecord, etcdPrefix, leaderKey, parseStoreUrl, prefixEnd, recordKey } from '../../src/core/etcd-keys.js';
import { Registry } from '../../src/core/registry.js';
import { EtcdRegistryStore, leadThenLoad, type SharedStore } from '../../src/mlr/etcd-store.js';
import { Leadership } from '../../src/mlr/leadership.js';
import { EtcdClient, type EtcdApi } from '../../src/platform/etcd-client.js';
import { failoverConnector } from '../../src/platform/mlr-failover.js';
import { connectTcp } from '../../src/platform/tcp-channel.js';
import { parseUci } from '../../src/proto/uci.js';
import { haveEtcd, startLocalEtcd, type LocalEtcd } from '../support/etcd.js';
import { errorOf, ip, value } from '../support/helpers.js';

const P = etcdPrefix('campus');
const pool = { network: ip('10.1.0.0'), prefix: 16, first: ip('10.1.0.0'), last: ip('10.1.255.255'), exclude: [] };
const mac = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const cell = (n: number) => ip('10.1.0.0') + 4 * n;
const quiet = () => undefined;

function withCns(r: Registry): Registry {
  value(r.registerCn({ name: 'cn1', addr: ip('10.200.0.11'), tunnels: ['vxlan'], pools: [pool] }));
  value(r.registerCn({ name: 'cn 2', addr: ip('10.200.0.12'), tunnels: ['vxlan'], pools: [] }));
  return r;
}
const put = (r: Registry, n: number, current = 'cn1', expires = 9e12) =>
  value(r.put({ mac: mac(n), cell: cell(n), parent: 'cn1', current, state: 'bound', expires }));

// ---- pure -------------------------------------------------------------------------------------

test('option store: etcd://host[:port],... becomes the endpoints; anything else is refused with the form expected', () => {
  assert.deepEqual(value(parseStoreUrl('etcd://10.0.0.1,10.0.0.2:2381,etcd.lan')), [
    'http://10.0.0.1:2379',
    'http://10.0.0.2:2381',
    'http://etcd.lan:2379',
  ]);
  assert.match(errorOf(parseStoreUrl('http://10.0.0.1:2379')), /is not an etcd store; expected 'etcd:\/\/host/);
  assert.match(errorOf(parseStoreUrl('etcd://10.0.0.1:99999')), /port 99999 is out of range/);
  assert.match(errorOf(parseStoreUrl('etcd://10.0.0.300')), /'10.0.0.300' is not an IPv4 address/);
  assert.match(errorOf(parseStoreUrl('etcd://a,a')), /listed twice/);
});

test('a batch collapses to the last change per key; keys are named by what they hold', () => {
  const b = (n: number, current: string | null) => ({
    mac: mac(n),
    cell: cell(n),
    parent: 'cn1',
    current,
    state: 'bound' as const,
    expires: 1,
  });
  const ops = coalesce(P, [
    { kind: 'put', binding: b(1, 'cn1') },
    { kind: 'put', binding: b(2, 'cn1') },
    { kind: 'put', binding: b(1, 'cn 2') },
    { kind: 'remove', mac: mac(2) },
    { kind: 'pair', a: 'cn 2', b: 'cn1', key: 3, type: 'vxlan' },
  ]);
  assert.deepEqual(
    ops.map((o) => [o.key, o.value === undefined ? 'delete' : ((JSON.parse(o.value) as { current?: string }).current ?? 'pair')]),
    [
      [`tmip/campus/r/b/${mac(1)}`, 'cn 2'],
      [`tmip/campus/r/b/${mac(2)}`, 'delete'],
      ['tmip/campus/r/p/cn%202/cn1', 'pair'],
    ],
  );
  assert.deepEqual(
    chunk([1, 2, 3, 4, 5], 2).map((c) => c.length),
    [2, 2, 1],
  );
  assert.equal(prefixEnd('tmip/campus/r/b/'), 'tmip/campus/r/b0');
  assert.equal(leaderKey(P), 'tmip/campus/leader');
  // a record under another record's key is refused, so is garbage
  const rec = coalesce(P, [{ kind: 'put', binding: b(1, 'cn1') }])[0]!;
  assert.equal(value(decodeRecord(P, rec.key, rec.value!)).kind, 'put');
  assert.match(errorOf(decodeRecord(P, `${P}r/b/${mac(9)}`, rec.value!)), /belongs under 'tmip\/campus\/r\/b\/02:00:00:00:00:01'/);
  assert.match(errorOf(decodeRecord(P, rec.key, '{"t":"put"')), /not JSON/);
  assert.match(errorOf(decodeRecord(P, rec.key, '{"t":"put","mac":"x"}')), /record/);
  assert.equal(recordKey(P, { kind: 'quarantine', cell: cell(3), until: 1, by: mac(3) }), 'tmip/campus/r/q/10.1.0.12');
});

test('config: list mlr names several MLRs; option store and state_file exclude each other', () => {
  const uci = (t: string) => value(parseUci(t));
  const cn = (lines: string[]) =>
    parseCnConfig(
      uci(
        `config cn\n${[...lines, "option network_name 'campus'", "option cn_if 'eth0'", "option mobile_if 'br-lan'"].map((l) => `\t${l}\n`).join('')}`,
      ),
    );
  const two = value(cn(["list mlr '10.0.0.1'", "list mlr '10.0.0.2:7000'"]));
  assert.deepEqual(
    two.mlrs?.map((m) => `${m.host}:${m.port}`),
    ['10.0.0.1:6554', '10.0.0.2:7000'],
  );
  assert.equal(two.mlr.host, '10.0.0.1');
  assert.equal(value(cn(["option mlr '10.0.0.1'"])).mlrs, undefined, 'one MLR: no list');
  assert.match(errorOf(cn(["list mlr '10.0.0.1'", "list mlr 'tls://10.0.0.2'"])), /mlr \(line \d\): mixes tcp and tls/);
  assert.match(errorOf(cn(["list mlr '10.0.0.1'", "list mlr '10.0.0.300'"])), /mlr \(line 3\): '10.0.0.300'/);
  const nine = Array.from({ length: 9 }, (_, i) => `list mlr '10.0.0.${i + 1}'`);
  assert.match(errorOf(cn(nine)), /mlr \(line 10\): lists 9 MLRs; expected at most 8/);
  assert.equal(value(cn(nine.slice(0, 8))).mlrs?.length, 8);

  const mlr = (lines: string[]) =>
    parseMlrConfig(uci(`config mlr\n\toption network_name 'campus'\n\toption auth '0'\n${lines.map((l) => `\t${l}\n`).join('')}`));
  assert.deepEqual(value(mlr(["option store 'etcd://10.0.0.1,10.0.0.2'"])).store?.endpoints, [
    'http://10.0.0.1:2379',
    'http://10.0.0.2:2379',
  ]);
  assert.match(
    errorOf(mlr(["option store 'etcd://10.0.0.1'", "option state_file '/etc/tmip/mlr.state'"])),
    /\.store \(line \d\): given together with option state_file; .*remove option state_file/,
  );
  assert.match(errorOf(mlr(["option store 'redis://x'"])), /\.store \(line \d\): 'redis:\/\/x' is not an etcd store/);
});

test('the CN connector tries every listed MLR at once, takes the one that accepts, and waits out a take-over (bounded)', async (t) => {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  // a port with nobody on it: refused at once, like a standby
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const dead = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const standby = { scheme: 'tcp' as const, host: '127.0.0.1', port: dead };
  const leader = { scheme: 'tcp' as const, host: '127.0.0.1', port };
  // a server that is powered off: its connect hangs until the time-out (here 2 s)
  const off = { scheme: 'tcp' as const, host: '192.0.2.1', port: 6554 };
  const tried: string[] = [];
  const switched: number[] = [];
  const connectOne = (x: MlrAddress) => {
    tried.push(`${x.host}:${x.port}`);
    if (x === off) return new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), 2000));
    return connectTcp(x.host, x.port);
  };
  const connect = failoverConnector([off, standby, leader], connectOne, {
    windowMs: 300,
    pollMs: 50,
    onSwitch: (a) => switched.push(a.port),
  });
  const t0 = Date.now();
  const ch = await connect();
  assert.ok(Date.now() - t0 < 1000, 'the hanging address does not hold up the others');
  assert.equal(ch.peer, `127.0.0.1:${port}`);
  ch.close();
  (await connect()).close();
  assert.deepEqual(switched, [port], 'told once, when the serving MLR changed');

  const none = failoverConnector([standby], connectOne, { windowMs: 300, pollMs: 50 });
  tried.length = 0;
  const t1 = Date.now();
  await assert.rejects(none(), /no MLR of 1 accepts: 127.0.0.1:\d+: /);
  assert.ok(Date.now() - t1 >= 250, 'kept trying for the window');
  assert.ok(tried.length >= 3 && tried.length <= 8, `bounded: ${tried.length} attempts`);
});

test('a write no etcd endpoint answers is retried for a while, then fails the store; an etcd error fails it at once', async () => {
  const fake = (failures: number, unreachable: boolean) => {
    let calls = 0;
    const api = {
      describe: 'etcd fake',
      txn: () => {
        calls++;
        if (calls <= failures) return Promise.reject(Object.assign(new Error(`down ${calls}`), { unreachable }));
        return Promise.resolve({ succeeded: true, revision: 1 });
      },
    } as unknown as EtcdApi;
    return { api, calls: () => calls };
  };
  const guard = () => ({ key: leaderKey(P), target: 'CREATE' as const, createRevision: 1 });
  const flaky = fake(3, true);
  const r1 = withCns(new Registry(['vxlan']));
  const s1 = new EtcdRegistryStore(flaky.api, r1, { prefix: P, guard });
  s1.open();
  put(r1, 1);
  await s1.durable();
  assert.equal(flaky.calls(), 4, 'three failures, then the write that took');

  const failures: string[] = [];
  const broken = fake(1000, false);
  const r2 = withCns(new Registry(['vxlan']));
  const s2 = new EtcdRegistryStore(broken.api, r2, { prefix: P, guard, onFailure: (m) => failures.push(m) });
  s2.open();
  put(r2, 1);
  await assert.rejects(s2.durable(), /down 1; the MLR acknowledges no change/);
  assert.equal(broken.calls(), 1, 'an answer that is an error is not retried');
  assert.equal(failures.length, 1);

  const gone = fake(1000, true);
  const r3 = withCns(new Registry(['vxlan']));
  const s3 = new EtcdRegistryStore(gone.api, r3, { prefix: P, guard, retryMs: 1500 });
  s3.open();
  put(r3, 1);
  const t0 = Date.now();
  await assert.rejects(s3.durable(), /down \d+; the MLR acknowledges no change/);
  const took = Date.now() - t0;
  assert.ok(took >= 1400 && took < 3000, `gave up after ${took} ms`);
  assert.ok(gone.calls() >= 5 && gone.calls() <= 20, `bounded: ${gone.calls()} tries`);
});

// ---- against a real etcd ----------------------------------------------------------------------

const skip = haveEtcd() ? false : 'needs etcd (Debian package etcd-server)';

test(
  'etcd: the leader keeps every change, a standby takes over when the lease is given back, and loads it all',
  { skip, timeout: 60_000 },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-etcd-'));
    const etcd: LocalEtcd = await startLocalEtcd(dir);
    t.after(async () => {
      await etcd.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const failures: string[] = [];
    // a first endpoint nobody answers on: every request moves on to the next
    const open = (registry: Registry, id: string) =>
      leadThenLoad(new EtcdClient(['http://127.0.0.1:9', ...etcd.endpoints], 500), registry, {
        networkName: 'campus',
        self: { id, serves: `${id}:6554` },
        ttlSeconds: 2,
        pollMs: 100,
        log: quiet,
        onFailure: (m) => failures.push(`${id}: ${m}`),
      });

    const ra = new Registry(['vxlan']);
    const a = await open(ra, 'A');
    withCns(ra);
    for (let n = 1; n <= 150; n++) put(ra, n); // more than one transaction's worth in one batch
    put(ra, 1, 'cn 2');
    value(ra.pairTunnel('cn1', 'cn 2'));
    ra.remove(mac(2));
    ra.quarantine(cell(200), Date.now() + 600_000, mac(200));
    ra.quarantine(cell(201), Date.now() + 300, mac(201)); // ends before B loads
    await a.durable();

    const rb = new Registry(['vxlan']);
    let bLeads = false;
    const bStarted = open(rb, 'B').then((s) => ((bLeads = true), s));
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(bLeads, false, 'B stands by while A holds the lease');
    const handedOver = Date.now();
    await a.close(); // revokes A's lease
    const b: SharedStore = await bStarted;
    const tookMs = Date.now() - handedOver;
    assert.ok(tookMs < 1500, `B leads ${tookMs} ms after A gave up`);
    const snap = rb.snapshot();
    assert.equal(snap.bindings.length, 149);
    assert.equal(rb.binding(mac(1))?.current, 'cn 2');
    assert.equal(rb.binding(mac(2)), undefined, 'the removed binding is gone');
    assert.deepEqual(
      snap.quarantined?.map((q) => q.cell),
      [cell(200)],
      'the live quarantine only',
    );
    assert.deepEqual(snap.pairs, [{ a: 'cn 2', b: 'cn1', key: 1, type: 'vxlan' }]);
    assert.equal(
      rb.allCns().every((c) => !c.online),
      true,
      'restored CNs are offline until they bind',
    );
    // the ended quarantine's key was deleted
    const client = new EtcdClient(etcd.endpoints);
    const q = await client.range(`${P}r/q/`, { rangeEnd: prefixEnd(`${P}r/q/`) });
    assert.deepEqual(
      q.kvs.map((kv) => kv.key),
      [`${P}r/q/10.1.3.32`],
    );
    await b.close();
    assert.deepEqual(failures, []);
  },
);

test(
  'etcd: a deposed leader can write nothing more; its durable() rejects and it is told to stop',
  { skip, timeout: 60_000 },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-etcd-'));
    const etcd = await startLocalEtcd(dir);
    t.after(async () => {
      await etcd.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const client = new EtcdClient(etcd.endpoints);
    const bindings = async () => (await client.range(`${P}r/b/`, { rangeEnd: prefixEnd(`${P}r/b/`) })).kvs.map((kv) => kv.key);

    // The fence itself: a store whose term is not the leader key's writes nothing.
    const failures: string[] = [];
    const lone = withCns(new Registry(['vxlan']));
    const fenced = new EtcdRegistryStore(client, lone, {
      prefix: P,
      guard: () => ({ key: leaderKey(P), target: 'CREATE', createRevision: 12345 }),
      onFailure: (m) => failures.push(m),
    });
    fenced.open();
    put(lone, 1);
    await assert.rejects(fenced.durable(), /deposed: the leader key in etcd \S+ is no longer this MLR's, another MLR leads now/);
    assert.equal(failures.length, 1);
    assert.deepEqual(await bindings(), [], 'nothing written');
    put(lone, 2);
    await assert.rejects(fenced.durable(), /acknowledges no change until it is restarted/, 'failed for good');

    // A leads and writes; then its lease lapses behind its back (revoked here: as if it was cut off for
    // a TTL) and B takes over. Whatever A changes from then on is refused, and A is told to stop.
    failures.length = 0;
    const ra = new Registry(['vxlan']);
    const a = await leadThenLoad(client, ra, {
      networkName: 'campus',
      self: { id: 'A', serves: 'A' },
      ttlSeconds: 2,
      pollMs: 100,
      log: quiet,
      onFailure: (m) => failures.push(m),
    });
    withCns(ra);
    put(ra, 3);
    await a.durable();
    assert.deepEqual(await bindings(), [`${P}r/b/${mac(3)}`]);
    const held = await client.range(leaderKey(P));
    await client.leaseRevoke(held.kvs[0]!.lease);
    const b = new Leadership(client, {
      key: leaderKey(P),
      self: { id: 'B', serves: 'B' },
      ttlSeconds: 2,
      pollMs: 50,
      log: quiet,
      onLost: quiet,
    });
    await b.acquire();
    t.after(() => b.close());
    put(ra, 4);
    // refused by the fence, or A noticed its lease is gone first: either way nothing is acknowledged
    await assert.rejects(a.durable(), /deposed|lost the leadership/);
    assert.deepEqual(await bindings(), [`${P}r/b/${mac(3)}`], "A's change after the take-over is not in etcd");
    await new Promise((r) => setTimeout(r, 1000)); // A's lease refresh runs meanwhile
    assert.equal(failures.length, 1, `told once: ${failures.join(' | ')}`);
    await a.close();
    assert.ok(b.leading, 'B still leads');
  },
);
