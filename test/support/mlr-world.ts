// SPDX-License-Identifier: GPL-2.0-only
// Pieces of the in-memory MLR worlds of the unit tests (a real MlrService, CNs as RpcPeers on memory
// channels): cn<n>'s bind, cn1 holding the pool 10.1.0.0/16, and stations bound at cn1.
import type { RequestBody } from '../../src/core/messages.js';
import type { Registry } from '../../src/core/registry.js';
import { ip } from './helpers.js';

/** The bind of CN `name` at 10.200.0.<n> (vxlan); cn 1 serves the pool 10.1.0.0/16, the others none. */
export function cnBind(name: string, n: number): RequestBody<'bind'> {
  return {
    network: 'n',
    cn: { name, addr: ip(`10.200.0.${n}`) },
    tunnels: ['vxlan'],
    pools: n === 1 ? [{ network: ip('10.1.0.0'), prefix: 16, first: ip('10.1.0.0'), last: ip('10.1.255.255'), exclude: [] }] : [],
  };
}

/** Stations 0..count-1 (MAC `mac(i)`) bound at cn1, their home, in cells from 10.1.0.0 up, for an hour. */
export function bindStationsAtCn1(registry: Registry, count: number, mac: (i: number) => string): void {
  for (let i = 0; i < count; i++) {
    const put = registry.put({
      mac: mac(i),
      cell: ip('10.1.0.0') + 4 * i,
      parent: 'cn1',
      current: 'cn1',
      state: 'bound',
      expires: Date.now() + 3_600_000,
    });
    if (!put.ok) throw new Error(put.error);
  }
}
