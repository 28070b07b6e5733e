// SPDX-License-Identifier: GPL-2.0-only
// The CN's UbusPort on a real ubusd: connects a UbusClient (which re-establishes its objects,
// subscriptions and event registrations after ubusd restarts) or reports that there is no ubus.
import fs from 'node:fs';
import type { UbusMethod, UbusPort } from './ubus-port.js';
import type { BlobmsgTableInput } from '../proto/blob.js';
import type { LogFn } from './log.js';
import { UbusClient, type UbusArgType, type UbusMethodSpec } from './ubus-client.js';

export const DEFAULT_UBUS_SOCKETS = ['/var/run/ubus/ubus.sock', '/var/run/ubus.sock'];

/** Connect to ubusd at `socket` (or the default paths); undefined when no socket exists. */
export async function openUbusPort(socket: string | undefined, log?: LogFn): Promise<UbusPort | undefined> {
  const paths = socket ? [socket] : DEFAULT_UBUS_SOCKETS;
  if (!paths.some((p) => fs.existsSync(p))) return undefined;
  const client = new UbusClient({ socketPath: paths, ...(log ? { log } : {}) });
  await client.connect();
  const methods = (m: Record<string, UbusMethod>): Record<string, UbusMethodSpec> =>
    Object.fromEntries(
      Object.entries(m).map(([name, spec]) => [
        name,
        {
          args: spec.args as Record<string, UbusArgType>,
          handler: async (data) => (await spec.handler(data)) as BlobmsgTableInput,
        },
      ]),
    );
  return {
    lookup: async (pattern) => (await client.lookup(pattern)).map((o) => ({ path: o.path })),
    call: (path, method, data, timeoutMs) => client.call(path, method, data as BlobmsgTableInput, timeoutMs),
    addObject: (path, m) => client.addObject(path, methods(m)),
    subscribe: (path, onNotify, onGone, onBack) =>
      client.subscribe(path, (type, data) => onNotify(type, data), onGone, onBack ? { onActive: onBack } : {}),
    onEvent: (pattern, handler) => client.onEvent(pattern, (event, data) => handler(event, data)),
    close: () => client.close(),
  };
}
