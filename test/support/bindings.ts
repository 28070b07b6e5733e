// SPDX-License-Identifier: GPL-2.0-only
// Two CNs and one station's binding, away at cn2 and back home at cn1: the data-plane tests'
// (planner and driver) common case.
import type { BindingView } from '../../src/core/binding.js';
import { ip } from './helpers.js';

export const cn1 = { name: 'cn1', addr: ip('10.200.0.11') };
export const cn2 = { name: 'cn2', addr: ip('10.200.0.12') };
/** Parent cn1, served at cn2 through a vxlan tunnel. */
export const away: BindingView = {
  mac: '02:00:00:00:00:01',
  cell: ip('10.1.0.4'),
  parent: cn1,
  current: cn2,
  tunnel: { type: 'vxlan', key: 7 },
  expires: 1e15,
  state: 'bound',
};
/** The same station back at its parent: no tunnel. */
export const home: BindingView = { mac: away.mac, cell: away.cell, parent: cn1, current: cn1, expires: away.expires, state: 'bound' };
