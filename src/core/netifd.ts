// SPDX-License-Identifier: GPL-2.0-only
// netifd's view of a logical interface (`ubus call network.interface.<name> status`), decoded: whether
// it is up, its layer-3 device (what the kernel calls it: 'eth1', 'pppoe-wan', 'br-lan') and its IPv4
// addresses. Pure and total: any reply, however malformed, gives a value or an error, never a throw.
import { parseIPv4, type IPv4 } from './ip.js';
import { err, ok, type Result } from './result.js';

export interface NetifdInterface {
  up: boolean;
  /** l3_device (else device); absent while netifd has none for it. */
  device?: string;
  ipv4: { ip: IPv4; prefix: number }[];
}

function field(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[key] : undefined;
}

export function parseInterfaceStatus(reply: unknown): Result<NetifdInterface> {
  if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) return err('netifd status reply is not a table');
  const up = field(reply, 'up') === true;
  const l3 = field(reply, 'l3_device');
  const dev = field(reply, 'device');
  const device = typeof l3 === 'string' && l3 !== '' ? l3 : typeof dev === 'string' && dev !== '' ? dev : undefined;
  const ipv4: NetifdInterface['ipv4'] = [];
  const list = field(reply, 'ipv4-address');
  if (Array.isArray(list)) {
    for (const a of list as unknown[]) {
      const address = field(a, 'address');
      const mask = field(a, 'mask');
      if (typeof address !== 'string' || typeof mask !== 'number' || !Number.isInteger(mask) || mask < 0 || mask > 32) continue;
      const ip = parseIPv4(address);
      if (ip.ok) ipv4.push({ ip: ip.value, prefix: mask });
    }
  }
  return ok(device === undefined ? { up, ipv4 } : { up, device, ipv4 });
}
