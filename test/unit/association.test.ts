// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import { AssociationTable, bssOfObject, isWdsNetdev } from '../../src/core/association.js';
import { until } from '../support/helpers.js';

const A = '02:00:00:00:00:0a';

test('assoc is an arrival once per BSS; departures only from the BSS the station is on', () => {
  const t = new AssociationTable();
  assert.equal(t.present, false);
  assert.equal(t.mayMigrate(A, true), true, 'without hostapd, activity is enough');
  t.bssAdded('wlan0');
  assert.equal(t.mayMigrate(A, true), false, 'with hostapd, an unassociated MAC is not moved');
  assert.equal(t.mayMigrate(A, false), true, 'unless association is not required');
  assert.deepEqual(t.notify('wlan0', 'assoc', { address: A.toUpperCase(), freq: 2412 }), { kind: 'arrive', mac: A, bss: 'wlan0' });
  assert.deepEqual(t.notify('wlan0', 'sta-authorized', { address: A }), { kind: 'none' }, 'authorized after assoc on the same BSS');
  assert.equal(t.mayMigrate(A, true), true);
  assert.deepEqual(t.notify('wlan1', 'disassoc', { address: A }), { kind: 'none' }, 'not on wlan1');
  assert.deepEqual(t.notify('wlan0', 'deauth', { address: A }), { kind: 'leave', mac: A, bss: 'wlan0' });
  assert.equal(t.mayMigrate(A, true), false);
});

test('WDS stations are never mobile stations', () => {
  const t = new AssociationTable();
  const present = t.loadClients('phy0-ap0', {
    freq: 5180,
    clients: { [A]: { wds: true, authorized: true }, '02:00:00:00:00:0b': { authorized: true }, junk: {} },
  });
  assert.deepEqual(present, ['02:00:00:00:00:0b']);
  assert.equal(t.isWds(A), true);
  assert.equal(t.mayMigrate(A, false), false);
  assert.deepEqual(t.notify('phy0-ap0', 'assoc', { address: A }), { kind: 'none' });
  assert.deepEqual(t.notify('phy0-ap0', 'disassoc', { address: A }), { kind: 'none' });
});

test('hostile notifications are ignored', () => {
  const t = new AssociationTable();
  for (const data of [null, 1, 'x', [], { address: 5 }, { address: 'zz:zz' }, { address: '' }])
    assert.deepEqual(t.notify('wlan0', 'assoc', data), { kind: 'none' });
  assert.deepEqual(t.notify('wlan0', 'probe', { address: A }), { kind: 'none' });
  assert.deepEqual(t.loadClients('wlan0', { clients: 'nope' }), []);
});

test('object and netdev names', () => {
  assert.equal(bssOfObject('hostapd.phy0-ap0'), 'phy0-ap0');
  assert.equal(bssOfObject('hostapd'), undefined);
  assert.equal(isWdsNetdev('phy0-ap0.sta1'), true);
  assert.equal(isWdsNetdev('wlan0'), false);
});

test('a WDS station netdev appearing makes the watcher re-read its BSS and mark the link', async () => {
  const { FakeUbus } = await import('../../src/platform/fake-ubus.js');
  const { HostapdWatcher } = await import('../../src/cn/hostapd-watcher.js');
  const ubus = new FakeUbus();
  const clients: Record<string, unknown> = {};
  ubus.publish('network.device');
  ubus.publish('hostapd.phy0-ap0', { get_clients: () => ({ clients }) });
  const table = new AssociationTable();
  const arrivals: string[] = [];
  const w = new HostapdWatcher({ ubus, table, onArrive: (mac) => arrivals.push(mac), log: () => {} });
  await w.start();
  assert.deepEqual(w.bsses, ['phy0-ap0']);
  ubus.notify('hostapd.phy0-ap0', 'assoc', { address: A });
  assert.deepEqual(arrivals, [A], 'at first it looks like any station');
  clients[A] = { wds: true, authorized: true };
  ubus.notify('network.device', 'add', { name: 'phy0-ap0.sta1', present: true });
  await until('the watcher to re-read phy0-ap0 and mark the station as a WDS link', () => table.isWds(A), 2000, 2);
  assert.equal(table.mayMigrate(A, false), false);
  ubus.unpublish('hostapd.phy0-ap0');
  assert.deepEqual(w.bsses, []);
  assert.equal(table.present, false);
});
