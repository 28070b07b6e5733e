// SPDX-License-Identifier: GPL-2.0-only
// Registry.involving() and servedBy() (src/core/registry.ts) answer from a per-CN index kept beside
// the bindings, not from a scan. Checked against the scan they replaced over thousands of random
// puts (new bindings, moves, offers, changes of parent), removals and expiries, and after a restore.
import test from 'node:test';
import assert from 'node:assert/strict';
import { involves } from '../../src/core/binding.js';
import { Registry } from '../../src/core/registry.js';
import { ip, rng } from '../support/helpers.js';

const CNS = ['cn1', 'cn2', 'cn3', 'cn4'];
const mac = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;

/** The index, compared with a scan of every binding. */
function check(r: Registry, when: string): void {
  for (const cn of CNS) {
    const scanned = r
      .allBindings()
      .filter((b) => involves(b, cn))
      .map((b) => b.mac)
      .sort();
    assert.deepEqual(
      r
        .involving(cn)
        .map((b) => b.mac)
        .sort(),
      scanned,
      `involving(${cn}) ${when}`,
    );
    assert.equal(r.servedBy(cn), r.allBindings().filter((b) => b.current === cn).length, `servedBy(${cn}) ${when}`);
  }
}

test('involving() and servedBy() match a scan through random puts, moves, removals, expiries and a restore', () => {
  const r = new Registry(['vxlan']);
  CNS.forEach((name, i) => {
    const pool = { network: ip(`10.${i + 1}.0.0`), prefix: 24, first: ip(`10.${i + 1}.0.0`), last: ip(`10.${i + 1}.0.255`), exclude: [] };
    assert.ok(r.registerCn({ name, addr: ip(`10.200.0.${i + 1}`), tunnels: ['vxlan'], pools: [pool] }).ok);
  });
  const random = rng(11);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  for (let step = 0; step < 4000; step++) {
    const m = mac(Math.floor(random() * 64));
    const old = r.binding(m);
    const roll = random();
    if (roll < 0.15) r.remove(m);
    else if (roll < 0.2) r.expire(Math.floor(random() * 1000));
    else {
      const parent = old && random() < 0.8 ? old.parent : pick(CNS);
      const offered = random() < 0.2;
      const cell = old?.cell ?? ip(`10.${CNS.indexOf(parent) + 1}.0.${4 * Math.floor(random() * 64)}`);
      r.put({
        mac: m,
        cell,
        parent,
        current: offered ? null : pick(CNS),
        state: offered ? 'offered' : 'bound',
        expires: step + Math.floor(random() * 2000),
      }); // a cell held by another MAC is refused: that too must leave the index as it was
    }
    check(r, `after step ${step}`);
  }
  assert.ok(r.allBindings().length > 10, 'the run kept bindings around');
  const restored = new Registry(['vxlan']);
  assert.ok(restored.restore(r.snapshot()).ok);
  check(restored, 'after a restore');
});
