// SPDX-License-Identifier: GPL-2.0-only
// The MLR's state through the StateFile port (MemoryStateFile): a round trip, and every kind of bad
// state refused at load with the first bad record named by its position.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../src/core/registry.js';
import { RegistryStore } from '../../src/mlr/persistence.js';
import { MemoryStateFile } from '../../src/platform/fake-state-file.js';
import { errorOf, ip, value } from '../support/helpers.js';

const pool = { network: ip('10.1.0.0'), prefix: 24, first: ip('10.1.0.0'), last: ip('10.1.0.255'), exclude: [ip('10.1.0.1')] };

function filled(): Registry {
  const r = new Registry(['vxlan']);
  value(r.registerCn({ name: 'cn1', addr: ip('10.200.0.11'), tunnels: ['vxlan'], pools: [pool] }));
  value(r.registerCn({ name: 'cn2', addr: ip('10.200.0.12'), tunnels: ['vxlan'], pools: [] }));
  value(r.put({ mac: '02:00:00:00:00:01', cell: ip('10.1.0.4'), parent: 'cn1', current: 'cn2', state: 'bound', expires: 5_000_000 }));
  value(r.pairTunnel('cn1', 'cn2'));
  return r;
}

function load(text: string) {
  const file = new MemoryStateFile();
  file.text = text;
  const registry = new Registry(['vxlan']);
  return { result: new RegistryStore(file, registry, () => {}).load(), registry };
}

test('the registry survives a save and a load, addresses written as text', () => {
  const file = new MemoryStateFile();
  const store = new RegistryStore(file, filled(), () => {});
  store.touch();
  store.flush();
  assert.equal(file.saves, 1);
  assert.match(file.text ?? '', /"addr":"10.200.0.11"/);
  const registry = new Registry(['vxlan']);
  assert.equal(value(new RegistryStore(file, registry, () => {}).load()), true);
  assert.deepEqual(registry.snapshot(), filled().snapshot());
  assert.equal(registry.cn('cn1')?.online, false, 'restored CNs are offline until they bind');
});

test('a state file of older builds (addresses as numbers) still loads', () => {
  const old = JSON.parse(JSON.stringify(filled().snapshot())) as unknown;
  const { result, registry } = load(JSON.stringify(old));
  assert.equal(value(result), true);
  assert.equal(registry.binding('02:00:00:00:00:01')?.cell, ip('10.1.0.4'));
});

test('bad state is refused at load, naming the first bad record by its position', () => {
  const good = JSON.parse(JSON.stringify(registryText())) as Record<string, unknown[]>;
  const cases: [string, (s: Record<string, unknown[]>) => void, RegExp][] = [
    ['a binding without a cell', (s) => delete (s['bindings']![0] as Record<string, unknown>)['cell'], /state\.bindings\[0\]\.cell/],
    [
      'a cell that is not a /30',
      (s) => ((s['bindings']![0] as Record<string, unknown>)['cell'] = '10.1.0.5'),
      /bindings\[0\]\.cell: not the network address/,
    ],
    [
      'a binding naming an unknown CN',
      (s) => ((s['bindings']![0] as Record<string, unknown>)['parent'] = 'ghost'),
      /bindings\[0\]: parent 'ghost'/,
    ],
    [
      'two bindings on one cell',
      (s) => s['bindings']!.push({ ...(s['bindings']![0] as object), mac: '02:00:00:00:00:02' }),
      /bindings\[1\]: cell 10.1.0.4\/30 is bound/,
    ],
    ['a CN entry that is not an object', (s) => (s['cns']![1] = 7), /state\.cns\[1\]: expected an object/],
    [
      'overlapping pools',
      (s) => ((s['cns']![1] as Record<string, unknown>)['pools'] = (s['cns']![0] as Record<string, unknown>)['pools']),
      /cns\[1\]: pool .* overlaps/,
    ],
    ['a tunnel key at or past nextKey', (s) => ((s as Record<string, unknown>)['nextKey'] = 1), /pairs\[0\]: key 1 is not below nextKey 1/],
  ];
  for (const [what, spoil, expected] of cases) {
    const s = structuredClone(good);
    spoil(s);
    const { result, registry } = load(JSON.stringify(s));
    assert.match(errorOf(result), expected, what);
    assert.equal(registry.allBindings().length + registry.allCns().length, 0, `${what}: nothing loaded`);
  }
  assert.match(errorOf(load('{"cns": [').result), /not valid JSON/);
});

function registryText(): unknown {
  const file = new MemoryStateFile();
  const store = new RegistryStore(file, filled(), () => {});
  store.touch();
  store.flush();
  return JSON.parse(file.text!);
}
