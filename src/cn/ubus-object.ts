// SPDX-License-Identifier: GPL-2.0-only
// The CN's `tmip` ubus object (what LuCI and `ubus call tmip ...` read): status, clients, tunnels,
// peers and reload. The first CN on a router publishes `tmip`; a second instance, finding the name
// taken, publishes `tmip.<cn_name>`. This module only maps methods to the CN's report; the figures
// come from the daemon (CnReport).
import type { LogFn } from '../platform/log.js';
import { LOG } from '../platform/log.js';
import type { UbusMethod, UbusPort } from '../platform/ubus-port.js';

/** What the CN reports; each is a plain JSON-able object as ubus returns it. */
export interface CnReport {
  status(): Record<string, unknown>;
  clients(): Record<string, unknown>[];
  tunnels(): Record<string, unknown>[];
  /** The MLR's view of the other CNs, or our last known list when the MLR does not answer. */
  peers(): Promise<Record<string, unknown>[]>;
  /** Re-bind to the MLR and re-apply every binding. */
  reload(why: string): void;
}

/** The object's name candidates for CN `cnName`, in order. */
export function tmipObjectNames(cnName: string): string[] {
  return ['tmip', `tmip.${cnName.replace(/[^A-Za-z0-9_-]/g, '_')}`];
}

export async function publishTmipObject(ubus: UbusPort, cnName: string, report: CnReport, log: LogFn): Promise<string | undefined> {
  const methods: Record<string, UbusMethod> = {
    status: { args: {}, handler: () => report.status() },
    clients: { args: {}, handler: () => ({ clients: report.clients() }) },
    tunnels: { args: {}, handler: () => ({ tunnels: report.tunnels() }) },
    peers: { args: {}, handler: async () => ({ peers: await report.peers() }) },
    reload: {
      args: {},
      handler: () => {
        report.reload('ubus reload');
        return { ok: true };
      },
    },
  };
  for (const name of tmipObjectNames(cnName)) {
    try {
      await ubus.addObject(name, methods);
      log(LOG.info, `Published ubus object '${name}' (status, clients, tunnels, peers, reload)`);
      return name;
    } catch (e) {
      log(LOG.error, `cannot publish ubus object '${name}': ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return undefined;
}
