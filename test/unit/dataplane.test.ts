// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  describeOp,
  desiredDataplane,
  emptyDataplane,
  emptyTouched,
  idleTunnels,
  IncrementalDataplane,
  planDataplane,
  planTouched,
  type DataplaneContext,
  type DataplaneState,
} from '../../src/core/dataplane.js';
import { formatIPv4 } from '../../src/core/ip.js';
import type { BindingView } from '../../src/core/binding.js';
import { away, home } from '../support/bindings.js';
import { ip, rng } from '../support/helpers.js';

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

test('plans build before they tear down; coming home leaves the tunnel to linger (the driver removes it)', () => {
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
    ['add-gateway', 'unroute'],
  );
  assert.deepEqual(idleTunnels(awayState, desiredDataplane([home], c)), ['tm7']);
});

test('a tunnel shared by two MSs is wanted until the last one leaves', () => {
  const c = ctx('cn1', '10.200.0.11');
  const second: BindingView = { ...away, mac: '02:00:00:00:00:02', cell: ip('10.1.0.8') };
  const both = desiredDataplane([away, second], c);
  const one = desiredDataplane([second], c);
  assert.deepEqual(
    planDataplane(both, one).map((o) => o.op),
    ['unroute'],
  );
  assert.deepEqual(idleTunnels(both, one), []);
  assert.deepEqual(
    planDataplane(one, desiredDataplane([], c)).map((o) => o.op),
    ['unroute'],
  );
  assert.deepEqual(idleTunnels(one, desiredDataplane([], c)), ['tm7']);
});

test('a tunnel re-created with other parameters gets every route into it again, even ones not touched', () => {
  const c = ctx('cn1', '10.200.0.11');
  const second: BindingView = { ...away, mac: '02:00:00:00:00:02', cell: ip('10.1.0.8') };
  const have = desiredDataplane([away, second], c);
  have.tunnels.set('tm7', { ...have.tunnels.get('tm7')!, key: -1 }); // as load() finds it
  const model = new IncrementalDataplane(c);
  const t = emptyTouched();
  model.set(away.mac, away, t);
  model.set(second.mac, second, emptyTouched()); // not touched by this plan
  assert.deepEqual(
    planTouched(have, model.want, t).map((o) => `${o.op}${o.op === 'route' ? ` ${formatIPv4(o.ip)}` : ''}`),
    ['ensure-tunnel', 'route 10.1.0.5', 'route 10.1.0.9'],
  );
});

function stateText(s: DataplaneState): string {
  const sorted = <T>(xs: Iterable<T>) => [...xs].map((x) => JSON.stringify(x)).sort();
  return JSON.stringify({
    gateways: sorted(s.gateways),
    tunnels: sorted(s.tunnels.values()),
    routes: sorted(s.routes),
    clamped: sorted(s.clamped),
  });
}

/** Apply a plan to a model of the kernel, as the driver does (idle tunnels stay). */
function applyPlan(have: DataplaneState, ops: ReturnType<typeof planTouched>): void {
  for (const o of ops) {
    if (o.op === 'ensure-tunnel') have.tunnels.set(o.spec.name, o.spec);
    else if (o.op === 'add-gateway') have.gateways.add(o.ip);
    else if (o.op === 'route') have.routes.set(o.ip, o.tunnel.name);
    else if (o.op === 'clamp') {
      for (const h of o.add) have.clamped.add(h);
      for (const h of o.del) have.clamped.delete(h);
    } else if (o.op === 'unroute') {
      if (have.routes.get(o.ip) === o.dev) have.routes.delete(o.ip);
    } else if (o.op === 'del-gateway') have.gateways.delete(o.ip);
  }
}

test('model: random binding changes, kept incrementally, give the from-scratch desired state; touched plans converge', () => {
  const cns = [1, 2, 3, 4].map((n) => ({ name: `cn${n}`, addr: ip(`10.200.0.1${n}`) }));
  const c = ctx('cn1', '10.200.0.11');
  /** The MLR's pair key for cn1 with cn<n>: one per pair, type fixed per pair. */
  const pair = (n: number) => ({ type: (['ipip', 'gre', 'vxlan'] as const)[n % 3]!, key: n });
  for (let seed = 1; seed <= 40; seed++) {
    const rand = rng(seed);
    const model = new IncrementalDataplane(c);
    const bindings = new Map<string, BindingView>();
    const have = emptyDataplane();
    for (let step = 0; step < 150; step++) {
      const m = Math.floor(rand() * 25);
      const mac = `02:00:00:00:00:${m.toString(16).padStart(2, '0')}`;
      const touched = emptyTouched();
      if (rand() < 0.2) {
        bindings.delete(mac);
        model.set(mac, undefined, touched);
      } else {
        const p = cns[Math.floor(rand() * cns.length)]!;
        const cur = rand() < 0.1 ? null : cns[Math.floor(rand() * cns.length)]!;
        const b: BindingView = {
          mac,
          cell: ip(`10.1.${m}.0`), // one cell per station, as the MLR allocates
          parent: p,
          current: cur,
          ...(cur && cur.name !== p.name ? { tunnel: pair(Number(p.name.slice(2)) * Number(cur.name.slice(2))) } : {}),
          expires: 1,
          state: rand() < 0.1 ? 'offered' : 'bound',
        };
        bindings.set(mac, b);
        model.set(mac, b, touched);
      }
      const scratch = desiredDataplane(bindings.values(), c);
      assert.equal(stateText(model.want), stateText(scratch), `seed ${seed} step ${step}: incremental = from scratch`);
      applyPlan(have, planTouched(have, model.want, touched));
      // The kernel model matches what is wanted, but for idle tunnels left to linger.
      for (const name of idleTunnels(have, model.want)) have.tunnels.delete(name);
      assert.equal(stateText(have), stateText(scratch), `seed ${seed} step ${step}: the touched plan converges`);
      assert.deepEqual(planDataplane(have, scratch), [], `seed ${seed} step ${step}: nothing left for a full plan`);
    }
  }
});

test("a clamp op's log line names a few hosts and counts the rest", () => {
  const hosts = Array.from({ length: 5000 }, (_, n) => ip('10.64.0.1') + 4 * n);
  const line = describeOp({ op: 'clamp', add: hosts, del: [ip('10.1.0.5')] });
  assert.match(line, /^MSS clamp: add 10\.64\.0\.1 10\.64\.0\.5 .* \(\+4992 more\), remove 10\.1\.0\.5$/);
  assert.ok(line.length < 200, `${line.length} characters`);
  assert.equal(describeOp({ op: 'clamp', add: [], del: [] }), 'MSS clamp: add none, remove none');
});
