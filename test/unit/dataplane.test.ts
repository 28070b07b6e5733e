// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import { desiredDataplane, emptyDataplane, planDataplane, type DataplaneContext } from '../../src/core/dataplane.js';
import { formatIPv4 } from '../../src/core/ip.js';
import type { BindingView } from '../../src/core/binding.js';
import { away, home } from '../support/bindings.js';
import { ip } from '../support/helpers.js';

const ctx = (self: string, addr: string): DataplaneContext => ({ self, selfAddr: ip(addr), tunnelPrefix: 'tm', underlayMtu: 1500 });

test('parent of an away MS: tunnel and host route, no gateway', () => {
  const d = desiredDataplane([away], ctx('cn1', '10.200.0.11'));
  assert.deepEqual([...d.gateways], []);
  assert.deepEqual(
    [...d.routes].map(([h, t]) => [formatIPv4(h), t]),
    [['10.1.0.5', 'tm7']],
  );
  const t = d.tunnels.get('tm7')!;
  assert.equal(formatIPv4(t.remote), '10.200.0.12');
  assert.equal(t.mtu, 1450);
  assert.deepEqual([...d.clamped], []);
});

test('current CN of a roamed MS: gateway, tunnel endpoint, MSS clamp, no route', () => {
  const d = desiredDataplane([away], ctx('cn2', '10.200.0.12'));
  assert.deepEqual([...d.gateways].map(formatIPv4), ['10.1.0.6']);
  assert.equal(d.routes.size, 0);
  assert.equal(formatIPv4(d.tunnels.get('tm7')!.remote), '10.200.0.11');
  assert.deepEqual([...d.clamped].map(formatIPv4), ['10.1.0.5']);
});

test('offered bindings and uninvolved CNs change nothing', () => {
  assert.equal(desiredDataplane([{ ...away, state: 'offered' }], ctx('cn1', '10.200.0.11')).tunnels.size, 0);
  const d = desiredDataplane([away], ctx('cn3', '10.200.0.13'));
  assert.equal(d.tunnels.size + d.gateways.size + d.routes.size, 0);
});

test('plans build before they tear down, and coming home removes the tunnel', () => {
  const c = ctx('cn1', '10.200.0.11');
  const awayState = desiredDataplane([away], c);
  const first = planDataplane(emptyDataplane(), awayState);
  assert.deepEqual(
    first.map((o) => o.op),
    ['ensure-tunnel', 'route'],
  );
  assert.deepEqual(planDataplane(awayState, awayState), [], 'nothing to do when nothing changed');
  const back = planDataplane(awayState, desiredDataplane([home], c));
  assert.deepEqual(
    back.map((o) => o.op),
    ['add-gateway', 'del-tunnel'],
  );
});

test('a tunnel shared by two MSs stays until the last one leaves', () => {
  const c = ctx('cn1', '10.200.0.11');
  const second: BindingView = { ...away, mac: '02:00:00:00:00:02', cell: ip('10.1.0.8') };
  const both = desiredDataplane([away, second], c);
  const one = desiredDataplane([second], c);
  assert.deepEqual(
    planDataplane(both, one).map((o) => o.op),
    ['unroute'],
  );
  assert.deepEqual(
    planDataplane(one, desiredDataplane([], c)).map((o) => o.op),
    ['del-tunnel'],
  );
});
