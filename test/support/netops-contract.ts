// SPDX-License-Identifier: GPL-2.0-only
// The NetOps contract: the behaviour the CN relies on from any NetOps, as one suite that runs against
// FakeNetOps (test/unit/netops-contract.test.ts) and against IprouteNetOps on a real kernel inside
// network namespaces (test/lab/netops-contract.test.ts), so the fake cannot drift from the kernel.
// It owns the checks; each caller owns its ContractEnv (how to seed a plain link and read state back
// where NetOps itself cannot). Tunnel types come from probeTunnelTypes: only what exists is tested.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPv4, Mac } from '../../src/core/ip.js';
import { TUNNEL_TYPES, type TunnelSpec, type TunnelType } from '../../src/core/tunnel.js';
import { vxlanMacFor } from '../../src/platform/iproute-netops.js';
import { ipv4ConfKey, type NetOps, type TunnelRoute } from '../../src/platform/netops.js';
import { ip } from './helpers.js';

export interface ClampView {
  mobileIf: string;
  mss: number;
  /** Sorted ascending. */
  hosts: IPv4[];
}

/** One fresh, empty "kernel" with a NetOps driving it. */
export interface ContractEnv {
  readonly net: NetOps;
  /** Create a plain (non-tunnel) link `name`, up, MTU 1500, with `addr`/`prefix` on it (label = name). */
  addPlainLink(name: string, addr: IPv4, prefix: number): Promise<void>;
  /** Set a link administratively down. */
  setDown(name: string): Promise<void>;
  /** Delete a link behind NetOps's back (as a Wi-Fi reload deletes a wlan device). */
  removeLink(name: string): Promise<void>;
  /** A sysctl's value (dotted key as NetOps takes it), undefined when the key does not exist. */
  readSysctl(key: string): Promise<string | undefined>;
  /** The MAC of the neighbour entry for `addr` on `dev`, undefined when there is none. */
  readNeighbour(addr: IPv4, dev: string): Promise<Mac | undefined>;
  /** An identity of the link that changes when it is deleted and created again (its ifindex). */
  linkId(name: string): Promise<number | undefined>;
  /** The MSS-clamp table as installed, undefined when it does not exist. */
  readClamp(table: string): Promise<ClampView | undefined>;
  /** A summary of every change NetOps has made so far (commands run, or the fake's state). */
  effects(): Promise<string>;
  /** Tear everything down. */
  close(): Promise<void>;
}

export interface ContractOptions {
  /** Skip the whole suite with this reason. */
  skip?: string | false;
  timeoutMs?: number;
}

const byIp = (a: TunnelRoute, b: TunnelRoute) => a.ip - b.ip;

export function netopsContract(label: string, makeEnv: () => Promise<ContractEnv>, options: ContractOptions = {}): void {
  /** Run `body` against a fresh environment that is always closed afterwards. */
  const withEnv = (body: (env: ContractEnv, net: NetOps) => Promise<void>) => async () => {
    const env = await makeEnv();
    try {
      await body(env, env.net);
    } finally {
      await env.close();
    }
  };

  /** The tunnel types this environment can create, checked to be a subset of TUNNEL_TYPES in order. */
  const typesOf = async (net: NetOps): Promise<TunnelType[]> => {
    const types = await net.probeTunnelTypes('tcq');
    assert.deepEqual(
      types,
      TUNNEL_TYPES.filter((t) => types.includes(t)),
      'probe result in TUNNEL_TYPES order, no duplicates',
    );
    assert.ok(types.length > 0, 'at least one tunnel type can be created');
    return types;
  };

  const spec = (over: Partial<TunnelSpec> = {}): TunnelSpec => ({
    name: 'tct1',
    type: 'vxlan',
    local: ip('10.61.0.1'),
    remote: ip('10.61.0.2'),
    key: 5,
    mtu: 1400,
    ...over,
  });

  describe(`NetOps contract: ${label}`, { skip: options.skip ?? false, timeout: options.timeoutMs ?? 120_000 }, () => {
    test(
      "interfaceIndex: the link's index; undefined once it is gone; another index when it is created again",
      withEnv(async (env, net) => {
        await env.addPlainLink('pl0', ip('10.60.0.1'), 24);
        const plain = await net.interfaceIndex('pl0');
        assert.ok(plain !== undefined && plain > 0);
        assert.equal(plain, await env.linkId('pl0'));
        assert.equal(await net.interfaceIndex('nosuch0'), undefined);
        await assert.rejects(net.interfaceIndex('bad name'), /invalid interface name/);
        await assert.rejects(net.interfaceIndex('../../x'), /invalid interface name/);
        const [type] = await typesOf(net);
        await net.ensureTunnel(spec({ type: type! }));
        const first = await net.interfaceIndex('tct1');
        assert.equal(first, await env.linkId('tct1'));
        await net.ensureTunnel(spec({ type: type!, remote: ip('10.61.0.3') })); // created again
        const second = await net.interfaceIndex('tct1');
        assert.ok(second !== undefined && second !== first, `a new index (${first} then ${second})`);
        assert.equal(second, await env.linkId('tct1'));
        await net.deleteLink('tct1');
        assert.equal(await net.interfaceIndex('tct1'), undefined);
      }),
    );

    test(
      'a link deleted and created again under its name: NetOps changes reach the new device',
      withEnv(async (env, net) => {
        const types = await typesOf(net);
        // Deleted and created by someone else (a long-lived `ip -batch` knows the old index).
        await env.addPlainLink('pl0', ip('10.60.0.1'), 24);
        await net.addAddress('pl0', ip('10.60.0.6'), 30, 'pl0:tm');
        await env.removeLink('pl0');
        await env.addPlainLink('pl0', ip('10.60.0.1'), 24);
        await net.addAddress('pl0', ip('10.60.0.10'), 30, 'pl0:tm');
        assert.deepEqual(
          (await net.interfaceInfo('pl0')).addresses.filter((a) => a.label === 'pl0:tm'),
          [{ ip: ip('10.60.0.10'), prefix: 30, label: 'pl0:tm' }],
        );
        // A tunnel deleted through NetOps and created again (a peer's tunnel after its linger).
        const t1 = spec({ type: types[0]! });
        await net.ensureTunnel(t1);
        await net.routeHostIntoTunnel(ip('10.62.0.5'), t1);
        await net.deleteLink('tct1');
        await net.ensureTunnel(t1);
        await net.routeHostIntoTunnel(ip('10.62.0.9'), t1);
        assert.deepEqual(await net.listTunnelRoutes('tct'), [{ ip: ip('10.62.0.9'), dev: 'tct1' }]);
      }),
    );

    test(
      'interfaceInfo reads a link with its labelled addresses; missing and invalid names are refused',
      withEnv(async (env, net) => {
        await env.addPlainLink('pl0', ip('10.60.0.1'), 24);
        const info = await net.interfaceInfo('pl0');
        assert.equal(info.ifname, 'pl0');
        assert.match(info.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        assert.notEqual(info.mac, '00:00:00:00:00:00');
        assert.equal(info.mtu, 1500);
        assert.equal(info.up, true);
        assert.deepEqual(info.addresses, [{ ip: ip('10.60.0.1'), prefix: 24, label: 'pl0' }]);
        await env.setDown('pl0');
        assert.equal((await net.interfaceInfo('pl0')).up, false);
        await assert.rejects(net.interfaceInfo('nosuch0'), /interface 'nosuch0' does not exist/);
        await assert.rejects(net.interfaceInfo('bad name'), /invalid interface name/);
      }),
    );

    test(
      'addAddress and deleteAddress are idempotent and keep labels and prefixes apart',
      withEnv(async (env, net) => {
        await env.addPlainLink('pl0', ip('10.60.0.1'), 24);
        const ours = async () => (await net.interfaceInfo('pl0')).addresses.filter((a) => a.label === 'pl0:tm');
        await net.addAddress('pl0', ip('10.66.0.2'), 30, 'pl0:tm');
        await net.addAddress('pl0', ip('10.66.0.2'), 30, 'pl0:tm');
        await net.addAddress('pl0', ip('10.66.0.9'), 32, 'pl0:tm');
        assert.deepEqual(await ours(), [
          { ip: ip('10.66.0.2'), prefix: 30, label: 'pl0:tm' },
          { ip: ip('10.66.0.9'), prefix: 32, label: 'pl0:tm' },
        ]);

        await net.deleteAddress('pl0', ip('10.66.0.2'), 30);
        await net.deleteAddress('pl0', ip('10.66.0.2'), 30);
        await net.deleteAddress('pl0', ip('10.66.0.9'), 31); // another prefix: not this address
        assert.deepEqual(await ours(), [{ ip: ip('10.66.0.9'), prefix: 32, label: 'pl0:tm' }]);
        await net.deleteAddress('pl0', ip('10.66.0.9'), 32);
        assert.deepEqual((await net.interfaceInfo('pl0')).addresses, [{ ip: ip('10.60.0.1'), prefix: 24, label: 'pl0' }]);

        await net.deleteAddress('nosuch0', ip('10.66.0.2'), 30); // the interface is gone: so is the address
        await assert.rejects(net.addAddress('nosuch0', ip('10.66.0.2'), 30, 'nosuch0:tm'), /Cannot find device "nosuch0"/);
      }),
    );

    test(
      'probeTunnelTypes leaves nothing behind, clears its own leftovers and refuses foreign links',
      withEnv(async (env, net) => {
        const types = await typesOf(net);
        assert.deepEqual(await net.listTunnels('tcq'), [], 'no scratch device left');
        // A leftover of an interrupted probe (scratch device names are `${prefix}p${n}`).
        await net.ensureTunnel(spec({ name: 'tcqp2', type: types[0]! }));
        assert.deepEqual(await net.listTunnels('tcq'), ['tcqp2']);
        assert.deepEqual(await net.probeTunnelTypes('tcq'), types);
        assert.deepEqual(await net.listTunnels('tcq'), []);
        // A link of a scratch name that is not a tunnel is not ours to delete.
        await env.addPlainLink('tcqp0', ip('10.60.1.1'), 24);
        await assert.rejects(net.probeTunnelTypes('tcq'), /tcqp0 exists and is not a tunnel/);
        assert.equal((await net.interfaceInfo('tcqp0')).addresses.length, 1, 'the foreign link is untouched');
      }),
    );

    test(
      'ensureTunnel creates each available type, keeps it when unchanged and re-creates it on a changed parameter',
      withEnv(async (env, net) => {
        const types = await typesOf(net);
        for (const type of types) {
          const s = spec({ type });
          await net.ensureTunnel(s);
          const info = await net.interfaceInfo(s.name);
          assert.equal(info.up, true, `${type} up`);
          assert.equal(info.mtu, 1400, `${type} MTU`);
          assert.equal(info.mac, type === 'vxlan' ? vxlanMacFor(s.local) : '00:00:00:00:00:00', `${type} MAC`);
          assert.deepEqual(await net.listTunnels('tct'), [s.name]);
          assert.equal(await env.readSysctl(ipv4ConfKey(s.name, 'rp_filter')), '0', `${type} rp_filter`);
          const first = await env.linkId(s.name);
          assert.notEqual(first, undefined);

          await net.ensureTunnel(s);
          assert.equal(await env.linkId(s.name), first, `${type}: same parameters keep the device`);
          await net.ensureTunnel({ ...s, mtu: 1380 });
          assert.equal(await env.linkId(s.name), first, `${type}: an MTU change keeps the device`);
          assert.equal((await net.interfaceInfo(s.name)).mtu, 1380);
          await env.setDown(s.name);
          await net.ensureTunnel(s);
          assert.equal(await env.linkId(s.name), first, `${type}: a device that is down is kept`);
          const again = await net.interfaceInfo(s.name);
          assert.deepEqual([again.up, again.mtu], [true, 1400], 'up again, MTU back');

          let id = first;
          const changes: Array<[string, Partial<TunnelSpec>, boolean]> = [
            ['remote', { remote: ip('10.61.0.9') }, true],
            ['local', { local: ip('10.61.0.8') }, true],
            ['key', { key: 6 }, type !== 'ipip'], // ipip has no key
          ];
          for (const [what, over, recreated] of changes) {
            await net.ensureTunnel({ ...s, ...over });
            const now = await env.linkId(s.name);
            if (recreated) assert.notEqual(now, id, `${type}: a changed ${what} re-creates the device`);
            else assert.equal(now, id, `${type}: a changed ${what} is no change`);
            id = now;
            await net.ensureTunnel(s);
            id = await env.linkId(s.name);
          }
          const other = types.find((t) => t !== type);
          if (other) {
            await net.ensureTunnel({ ...s, type: other });
            assert.notEqual(await env.linkId(s.name), id, `${type} -> ${other}: re-created`);
            assert.equal((await net.interfaceInfo(s.name)).mac, other === 'vxlan' ? vxlanMacFor(s.local) : '00:00:00:00:00:00');
          }

          await net.deleteLink(s.name);
          await net.deleteLink(s.name);
          assert.deepEqual(await net.listTunnels('tct'), []);
          await assert.rejects(net.interfaceInfo(s.name), /does not exist/);
          assert.equal(await env.readSysctl(ipv4ConfKey(s.name, 'rp_filter')), undefined, 'per-interface sysctls go with the link');
        }
      }),
    );

    test(
      "ensureTunnel refuses a link of the tunnel's name that is not a tunnel, and leaves it alone",
      withEnv(async (env, net) => {
        const type = (await typesOf(net))[0]!;
        await env.addPlainLink('tct2', ip('10.62.0.1'), 24);
        const before = await env.linkId('tct2');
        await assert.rejects(net.ensureTunnel(spec({ name: 'tct2', type })), /tct2 exists and is not a tunnel/);
        assert.equal(await env.linkId('tct2'), before);
        assert.deepEqual((await net.interfaceInfo('tct2')).addresses, [{ ip: ip('10.62.0.1'), prefix: 24, label: 'tct2' }]);
        assert.deepEqual(await net.listTunnels('tct'), []);
      }),
    );

    test(
      'host routes into tunnels: listed back, replaced, moved, deleted idempotently, gone with their device',
      withEnv(async (env, net) => {
        const types = await typesOf(net);
        const type = types.includes('vxlan') ? 'vxlan' : (types[0] as TunnelType);
        const t1 = spec({ name: 'tcr1', type, key: 1, remote: ip('10.61.0.2') });
        const t2 = spec({ name: 'tcr2', type, key: 2, remote: ip('10.61.0.3') });
        await net.ensureTunnel(t1);
        await net.ensureTunnel(t2);
        const h5 = ip('10.70.0.5');
        const h6 = ip('10.70.0.6');
        const routes = async () => (await net.listTunnelRoutes('tcr')).sort(byIp);

        await net.routeHostIntoTunnel(h5, t1);
        await net.routeHostIntoTunnel(h6, t1);
        await net.routeHostIntoTunnel(h5, t1); // replace: idempotent
        assert.deepEqual(await routes(), [
          { ip: h5, dev: 'tcr1' },
          { ip: h6, dev: 'tcr1' },
        ]);
        assert.deepEqual(await net.listTunnelRoutes('zz'), []);
        if (type === 'vxlan') {
          assert.equal(await env.readNeighbour(h5, 'tcr1'), vxlanMacFor(t1.remote), "permanent neighbour: the peer's device MAC");
        }

        // An address on a tunnel brings a connected (non-/32) route: never listed as a host route.
        await net.addAddress('tcr1', ip('10.71.0.1'), 24, 'tcr1');
        assert.deepEqual(await routes(), [
          { ip: h5, dev: 'tcr1' },
          { ip: h6, dev: 'tcr1' },
        ]);

        await net.routeHostIntoTunnel(h6, t2);
        assert.deepEqual(
          await routes(),
          [
            { ip: h5, dev: 'tcr1' },
            { ip: h6, dev: 'tcr2' },
          ],
          'moved, listed once',
        );

        await net.deleteHostRoute(h5, 'tcr2'); // not routed there: nothing to do
        assert.deepEqual(await routes(), [
          { ip: h5, dev: 'tcr1' },
          { ip: h6, dev: 'tcr2' },
        ]);
        await net.deleteHostRoute(h5, 'tcr1');
        await net.deleteHostRoute(h5, 'tcr1');
        await net.deleteHostRoute(h5, 'nosuch0');
        assert.deepEqual(await routes(), [{ ip: h6, dev: 'tcr2' }]);
        assert.equal(await env.readNeighbour(h5, 'tcr1'), undefined, 'the neighbour went with the route');

        await assert.rejects(net.routeHostIntoTunnel(h5, { ...t1, name: 'nosuch0' }), /Cannot find device "nosuch0"/);
        await env.setDown('tcr1');
        await assert.rejects(net.routeHostIntoTunnel(h5, t1), /not up/);

        // Re-creating or deleting a tunnel takes its routes (and neighbours) with it.
        if (type === 'vxlan') assert.equal(await env.readNeighbour(h6, 'tcr2'), vxlanMacFor(t2.remote));
        await net.ensureTunnel({ ...t2, remote: ip('10.61.0.4') });
        assert.deepEqual(await routes(), []);
        assert.equal(await env.readNeighbour(h6, 'tcr2'), undefined);
        await net.ensureTunnel(t1);
        await net.routeHostIntoTunnel(h5, t1);
        await net.deleteLink('tcr1');
        assert.deepEqual(await routes(), []);
      }),
    );

    test(
      'setSysctl writes, also per interface (dotted names as slashes), and refuses keys that do not exist',
      withEnv(async (env, net) => {
        await net.setSysctl('net.ipv4.ip_forward', '1');
        assert.equal(await env.readSysctl('net.ipv4.ip_forward'), '1');
        await net.setSysctl('net.ipv4.ip_forward', '0');
        assert.equal(await env.readSysctl('net.ipv4.ip_forward'), '0');
        await env.addPlainLink('pl.5', ip('10.60.2.1'), 24);
        await net.setSysctl(ipv4ConfKey('pl.5', 'rp_filter'), '2');
        assert.equal(await env.readSysctl(ipv4ConfKey('pl.5', 'rp_filter')), '2');
        await net.setSysctl('net.ipv4.conf.all.rp_filter', '0');
        await assert.rejects(
          net.setSysctl('net.ipv4.conf.nosuch0.rp_filter', '0'),
          /cannot set sysctl net\.ipv4\.conf\.nosuch0\.rp_filter=0/,
        );
      }),
    );

    test(
      'the MSS-clamp table is replaced as a whole, emptied, and deleted idempotently',
      withEnv(async (env, net) => {
        const [h5, h7, h9] = [ip('10.70.0.5'), ip('10.70.0.7'), ip('10.70.0.9')];
        await net.setMssClamp('tmip_tc', 'pl0', 1410, [h9, h5, h9]);
        assert.deepEqual(await env.readClamp('tmip_tc'), { mobileIf: 'pl0', mss: 1410, hosts: [h5, h9] });
        await net.setMssClamp('tmip_tc', 'pl1', 1380, [h7]);
        assert.deepEqual(await env.readClamp('tmip_tc'), { mobileIf: 'pl1', mss: 1380, hosts: [h7] });
        await net.setMssClamp('tmip_tc', 'pl1', 1380, []);
        assert.deepEqual(await env.readClamp('tmip_tc'), { mobileIf: 'pl1', mss: 1380, hosts: [] });
        await net.setMssClamp('tmip_tc2', 'pl0', 1400, [h5]);
        await net.deleteMssClamp('tmip_tc');
        await net.deleteMssClamp('tmip_tc');
        assert.equal(await env.readClamp('tmip_tc'), undefined);
        assert.deepEqual(await env.readClamp('tmip_tc2'), { mobileIf: 'pl0', mss: 1400, hosts: [h5] }, 'other tables untouched');
      }),
    );

    test(
      'invalid input is refused before anything is changed',
      withEnv(async (env, net) => {
        await env.addPlainLink('pl0', ip('10.60.0.1'), 24);
        const before = await env.effects();
        const h = ip('10.70.0.5');
        const bad: Array<[string, () => Promise<unknown>, RegExp]> = [
          ['interface name', () => net.interfaceInfo('bad name'), /invalid interface name/],
          ['probe prefix', () => net.probeTunnelTypes('x'.repeat(14)), /invalid probe device name/],
          ['tunnel name', () => net.ensureTunnel(spec({ name: 'x'.repeat(16) })), /invalid tunnel name/],
          ['tunnel key', () => net.ensureTunnel(spec({ key: 0 })), /invalid key/],
          ['tunnel MTU', () => net.ensureTunnel(spec({ mtu: 67 })), /invalid MTU/],
          ['tunnel type', () => net.ensureTunnel(spec({ type: 'sit' as unknown as TunnelType })), /unknown tunnel type/],
          ['tunnel address', () => net.ensureTunnel(spec({ remote: -1 })), /invalid IPv4 tunnel remote address/],
          ['link name', () => net.deleteLink('-x'), /invalid interface name/],
          ['address label', () => net.addAddress('pl0', h, 30, 'a b'), /invalid address label/],
          ['prefix', () => net.addAddress('pl0', h, 33, 'pl0'), /invalid prefix length/],
          ['address', () => net.deleteAddress('pl0', 2 ** 32, 30), /invalid IPv4 address/],
          ['host', () => net.routeHostIntoTunnel(-5, spec()), /invalid IPv4 host address/],
          ['route tunnel name', () => net.routeHostIntoTunnel(h, spec({ name: '' })), /invalid tunnel name/],
          ['route device', () => net.deleteHostRoute(h, 'a/b'), /invalid interface name/],
          ['sysctl key', () => net.setSysctl('net.ipv4.ip_forward;reboot', '1'), /invalid sysctl key/],
          ['sysctl value', () => net.setSysctl('net.ipv4.ip_forward', '1\n2'), /invalid value for sysctl/],
          ['clamp table', () => net.setMssClamp('bad table', 'pl0', 1410, []), /invalid nftables table name/],
          ['clamp interface', () => net.setMssClamp('tmip_tc', 'p l', 1410, []), /invalid interface name/],
          ['clamp MSS', () => net.setMssClamp('tmip_tc', 'pl0', 0, []), /invalid MSS/],
          ['clamp host', () => net.setMssClamp('tmip_tc', 'pl0', 1410, [1.5]), /invalid IPv4 host address/],
          ['clamp table to delete', () => net.deleteMssClamp('a;b'), /invalid nftables table name/],
        ];
        for (const [what, call, re] of bad) await assert.rejects(call(), re, what);
        assert.equal(await env.effects(), before, 'nothing was run or changed');
      }),
    );
  });
}
