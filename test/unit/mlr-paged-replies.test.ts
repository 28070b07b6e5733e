// SPDX-License-Identifier: GPL-2.0-only
// Replies that scale (issue 9): over real MLRP/TCP on loopback, with its 256 KiB frame limit, a CN
// with 10,000 clients re-binds (the bind reply is the first page, MlrLink fetches the rest with
// `sync`), and `status` is walked page by page at 100,000 bindings. Before paging, the first reply
// alone (about 2.5 MB, or 25 MB) could not be sent at all.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { BindingView } from '../../src/core/binding.js';
import { PAGE, type ReplyBody, type RequestBody } from '../../src/core/messages.js';
import type { PoolRange } from '../../src/core/pool.js';
import { MlrLink } from '../../src/cn/mlr-link.js';
import { startMlr } from '../../src/mlr/mlr.js';
import { connectTcp, serveTcp } from '../../src/platform/tcp-channel.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import { ip } from '../support/helpers.js';
import { statusAll } from '../support/status-pages.js';

function pool16(second: number): PoolRange {
  const network = ip(`10.${second}.0.0`);
  return { network, prefix: 16, first: network, last: ip(`10.${second}.255.255`), exclude: [] };
}

function macOf(n: number): string {
  const hex = n.toString(16).padStart(10, '0');
  return `02:${hex.match(/../g)!.join(':')}`;
}

/** An MLR on an ephemeral loopback port whose register holds `perCn` bound clients at each of `cns` CNs. */
async function mlrWith(cns: number, perCn: number) {
  let port = 0;
  const mlr = await startMlr(
    { networkName: 'lab', offerHoldSeconds: 60, leaseGraceSeconds: 60, tunnelTypes: ['vxlan'] },
    {
      listen: async (onChannel) => {
        const l = await serveTcp('127.0.0.1', 0, onChannel);
        port = l.port;
        return l;
      },
      log: () => {},
    },
  );
  const registry = mlr.service.registry;
  let n = 0;
  for (let c = 1; c <= cns; c++) {
    const name = `cn${c}`;
    assert.ok(registry.registerCn({ name, addr: ip(`10.200.0.${c}`), tunnels: ['vxlan'], pools: [pool16(c)] }).ok);
    for (let i = 0; i < perCn; i++) {
      const put = registry.put({
        mac: macOf(n++),
        cell: pool16(c).network + 4 * (i + 1),
        parent: name,
        current: name,
        state: 'bound',
        expires: 1e15,
      });
      assert.ok(put.ok, put.ok ? '' : put.error);
    }
  }
  return { mlr, port: () => port };
}

test('a CN with 10,000 clients re-binds: the bind reply is the first page and sync brings the rest', async () => {
  const { mlr, port } = await mlrWith(2, 10_000);
  try {
    let bound: ReplyBody<'bind'> | undefined;
    const syncs: RequestBody<'sync'>[] = [];
    const bindBody: RequestBody<'bind'> = {
      network: 'lab',
      cn: { name: 'cn1', addr: ip('10.200.0.1') },
      tunnels: ['vxlan'],
      pools: [pool16(1)],
    };
    const link = new MlrLink({
      describe: 'test',
      connect: async () => {
        const channel = await connectTcp('127.0.0.1', port());
        // Watch what the CN asks for: every sync request the link sends.
        const send = channel.send.bind(channel);
        channel.send = (payload: Buffer) => {
          const msg = JSON.parse(Buffer.from(payload).toString('utf8')) as { type: string; body: RequestBody<'sync'> };
          if (msg.type === 'sync') syncs.push(msg.body);
          return send(payload);
        };
        return channel;
      },
      bindBody: () => bindBody,
      serve: () => {},
      onBound: async (reply) => {
        bound = reply;
      },
      log: () => {},
    });
    await link.start();
    link.stop();
    assert.ok(bound, 'bound');
    const macs = new Set(bound.bindings.map((b: BindingView) => b.mac));
    assert.equal(bound.bindings.length, 10_000, 'every binding of cn1');
    assert.equal(macs.size, 10_000, 'none twice');
    assert.ok(bound.bindings.every((b) => b.current?.name === 'cn1'));
    assert.deepEqual(
      bound.peers.map((p) => p.name),
      ['cn2'],
    );
    assert.equal(bound.leaseGrace, 60);
    assert.equal(syncs.length, Math.ceil(10_000 / PAGE.bindings) - 1, 'one sync per page after the first');
    assert.deepEqual(syncs[0], { bindingsAfter: [...macs].sort()[PAGE.bindings - 1] });
  } finally {
    await mlr.close();
  }
});

test('status answers at 100,000 bindings, a page at a time, every binding once', async () => {
  const { mlr, port } = await mlrWith(10, 10_000);
  const peer = new RpcPeer(await connectTcp('127.0.0.1', port()));
  try {
    const started = Date.now();
    const first = await peer.request('status', {}, 10_000);
    const firstMs = Date.now() - started;
    const all = await statusAll(peer);
    const seen = new Set(all.bindings.map((b) => b.mac));
    const cns = new Set(all.cns.map((c) => c.name));
    const allMs = Date.now() - started;
    process.stdout.write(`# status at 100,000 bindings: first page ${firstMs} ms, all ${all.pages} pages ${allMs} ms\n`);
    assert.equal(seen.size, 100_000);
    assert.equal(all.bindings.length, 100_000, 'none twice');
    assert.equal(cns.size, 10);
    assert.ok(first.bindings.length === PAGE.bindings && first.bindingsNext !== undefined);
    assert.ok(firstMs < 5000, `first page in ${firstMs} ms`);
  } finally {
    peer.close('done');
    await mlr.close();
  }
});
