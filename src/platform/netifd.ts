// SPDX-License-Identifier: GPL-2.0-only
// Finds the device behind a netifd logical interface (`option cn_network` / `mobile_network`) over
// ubus, waiting while it is down or (for the backbone) has no IPv4 address yet: the first wait is
// logged once, then it retries with back-off (core/backoff.ts) until netifd says it is there. An
// interface netifd does not know is a configuration error and ends the wait at once.
import { Backoff } from '../core/backoff.js';
import { formatIPv4 } from '../core/ip.js';
import { parseInterfaceStatus, type NetifdInterface } from '../core/netifd.js';
import { err, ok, type Result } from '../core/result.js';
import { LOG, type LogFn } from './log.js';
import type { UbusPort } from './ubus-port.js';

export interface WaitOptions {
  /** Wait for an IPv4 address too (the backbone), not only for the device. */
  needAddress: boolean;
  /** The option that named it, for messages: 'cn_network' or 'mobile_network'. */
  option: string;
  log: LogFn;
  backoff?: Backoff;
  sleep?: (ms: number) => Promise<void>;
}

const NOT_FOUND = /\bnot[ _]found\b/i;

/** The interface once it is usable; an error when netifd has no such interface. */
export async function waitForNetwork(
  ubus: UbusPort,
  name: string,
  opts: WaitOptions,
): Promise<Result<NetifdInterface & { device: string }>> {
  const backoff = opts.backoff ?? new Backoff(1000, 30_000);
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let told = false;
  for (;;) {
    let why: string;
    try {
      const reply = await ubus.call(`network.interface.${name}`, 'status', {}, 5000);
      const st = parseInterfaceStatus(reply);
      if (!st.ok) why = st.error;
      else if (!st.value.up || st.value.device === undefined) why = 'it is down';
      else if (opts.needAddress && st.value.ipv4.length === 0) why = `${st.value.device} has no IPv4 address yet`;
      else {
        const a = st.value.ipv4[0];
        if (told) opts.log(LOG.info, `${opts.option} '${name}' is up: ${st.value.device}${a ? ` ${formatIPv4(a.ip)}/${a.prefix}` : ''}`);
        return ok({ ...st.value, device: st.value.device });
      }
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      if (NOT_FOUND.test(text)) {
        return err(
          `${opts.option} '${name}': netifd has no such interface; expected the name of an interface section of /etc/config/network (ubus list 'network.interface.*')`,
        );
      }
      why = `netifd does not answer (${text})`;
    }
    if (!told) opts.log(LOG.info, `waiting for ${opts.option} '${name}': ${why}; retrying with back-off`);
    told = true;
    await sleep(backoff.next());
  }
}

/** `cfg` with cnIf / mobileIf taken from netifd where cn_network / mobile_network name the interface. */
export async function resolveNetworks<C extends { cnIf: string; mobileIf: string; cnNetwork?: string; mobileNetwork?: string }>(
  cfg: C,
  ubus: UbusPort,
  log: LogFn,
  tuning: Pick<WaitOptions, 'backoff' | 'sleep'> = {},
): Promise<Result<C>> {
  let out = cfg;
  if (cfg.cnNetwork !== undefined) {
    const r = await waitForNetwork(ubus, cfg.cnNetwork, { needAddress: true, option: 'cn_network', log, ...tuning });
    if (!r.ok) return r;
    out = { ...out, cnIf: r.value.device };
  }
  if (cfg.mobileNetwork !== undefined) {
    const r = await waitForNetwork(ubus, cfg.mobileNetwork, { needAddress: false, option: 'mobile_network', log, ...tuning });
    if (!r.ok) return r;
    out = { ...out, mobileIf: r.value.device };
  }
  return ok(out);
}
