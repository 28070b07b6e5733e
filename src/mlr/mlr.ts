// SPDX-License-Identifier: GPL-2.0-only
// The MLR assembled from its parts: registry, persisted state (a journal the service waits on before
// it acknowledges a change: mlr/persistence.ts; or etcd, shared with standby MLRs: mlr/etcd-store.ts),
// the service answering CNs, the expiry timer. The transport and the state file (or the etcd store)
// are handed in (cli/tmip-mlr.ts passes TCP and a file; tests pass loopback TCP or memory), so nothing
// here opens a socket or a file itself.
import type { CnKey } from '../core/config.js';
import { Registry } from '../core/registry.js';
import type { TunnelType } from '../core/tunnel.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { StateFile } from '../platform/state-file.js';
import { Authenticator, MLR_ID } from '../proto/auth.js';
import { DEFAULT_HEARTBEAT, RpcPeer, type HeartbeatOptions, type MessageChannel } from '../proto/rpc.js';
import type { SharedStore } from './etcd-store.js';
import { RegistryStore } from './persistence.js';
import { MlrService, type MlrServiceOptions } from './service.js';

export interface MlrOptions {
  networkName: string;
  offerHoldSeconds: number;
  leaseGraceSeconds: number;
  /** Cells one CN may hold as offers (`option max_offers`); default DEFAULT_MAX_OFFERS. */
  maxOffers?: number;
  /** Seconds a declined cell is quarantined (`option decline_quarantine`); default DEFAULT_DECLINE_QUARANTINE. */
  declineQuarantineSeconds?: number;
  tunnelTypes: TunnelType[];
  expiryIntervalMs?: number;
  handover?: MlrServiceOptions['handover'];
  /** The CNs' keys (`config key`): every message is authenticated. Undefined = authentication off. */
  keys?: readonly CnKey[];
  /** How often "authentication is OFF" is logged again while it is off (default 10 minutes). */
  authOffReminderMs?: number;
  /** The heartbeat on every CN session (proto/rpc.ts; default DEFAULT_HEARTBEAT, false = none): a silent CN goes offline. */
  heartbeat?: HeartbeatOptions | false;
  /** The log level in force: per-move log lines are not built below LOG.handover (undefined: always built). */
  logLevel?: number;
  /** Requests that start work the MLR takes at once over all CNs (default MAX_WORK, mlr/service.ts); more get `busy`. */
  maxWork?: number;
}

/** A listening transport: calls `onChannel` for every CN that connects. */
export interface MlrListener {
  /** Where it listens, for the log. */
  describe: string;
  close(): Promise<void>;
}

/** Starts one listening transport (TCP, TLS, MQTT) that hands every CN connection to `onChannel`. */
export type ListenFn = (onChannel: (channel: MessageChannel, remoteAddr: string | undefined) => void) => Promise<MlrListener>;

export interface MlrDeps {
  /** One transport, or several served at once (e.g. TCP and MQTT). */
  listen: ListenFn | ListenFn[];
  state?: StateFile;
  /**
   * The registry kept elsewhere instead (`option store`: etcd, mlr/etcd-store.ts leadThenLoad): resolves
   * once this MLR leads and has loaded it (a standby waits here, listening nowhere); its durable()
   * gates every acknowledgement.
   */
  sharedStore?: (registry: Registry) => Promise<SharedStore>;
  /** The state could not be written: nothing more is acknowledged (tmip-mlr exits so that procd restarts it). */
  onStateFailure?: (message: string) => void;
  log: LogFn;
}

export interface Mlr {
  service: MlrService;
  listener: MlrListener;
  close(): Promise<void>;
}

export async function startMlr(opts: MlrOptions, deps: MlrDeps): Promise<Mlr> {
  const { log } = deps;
  const registry = new Registry(opts.tunnelTypes);
  let store: RegistryStore | undefined;
  if (deps.state) {
    const onStateFailure = deps.onStateFailure;
    store = new RegistryStore(deps.state, registry, {
      onFailure: (m) => {
        log(LOG.error, m);
        onStateFailure?.(m);
      },
    });
    const loaded = store.load();
    if (!loaded.ok) throw new Error(loaded.error);
    for (const note of loaded.value.notes) log(LOG.info, note);
    if (loaded.value.found) {
      log(
        LOG.info,
        `restored ${registry.allBindings().length} binding(s) and ${registry.allCns().length} CN(s) from ${deps.state.describe} and ${loaded.value.replayed} journal record(s)`,
      );
    }
    await store.open();
  }
  const shared = deps.sharedStore ? await deps.sharedStore(registry) : undefined;
  const durableStore = store ?? shared;
  const service = new MlrService(registry, {
    networkName: opts.networkName,
    offerHoldMs: opts.offerHoldSeconds * 1000,
    leaseGraceMs: opts.leaseGraceSeconds * 1000,
    ...(opts.maxOffers !== undefined ? { maxOffersPerCn: opts.maxOffers } : {}),
    ...(opts.declineQuarantineSeconds !== undefined ? { declineQuarantineMs: opts.declineQuarantineSeconds * 1000 } : {}),
    log,
    ...(durableStore ? { durable: () => durableStore.durable() } : {}),
    ...(opts.handover ? { handover: opts.handover } : {}),
    ...(opts.logLevel !== undefined ? { logLevel: opts.logLevel } : {}),
    ...(opts.maxWork !== undefined ? { maxWork: opts.maxWork } : {}),
  });
  const keys = opts.keys ? new Map(opts.keys.map((k) => [k.cn, k.secret])) : undefined;
  const auth = keys
    ? new Authenticator({ self: MLR_ID, role: 'mlr', keyOf: (cn) => keys.get(cn), log: (m) => log(LOG.error, `auth: ${m}`) })
    : undefined;
  const peers = new Set<RpcPeer>();
  const listener = await listenAll(Array.isArray(deps.listen) ? deps.listen : [deps.listen], (channel, remoteAddr) => {
    const heartbeat = opts.heartbeat === false ? {} : { heartbeat: opts.heartbeat ?? DEFAULT_HEARTBEAT };
    const peer = new RpcPeer(channel, { ...heartbeat, ...(auth ? { guard: auth.session(channel.peer) } : {}) });
    peers.add(peer);
    channel.onClose(() => peers.delete(peer));
    log(LOG.proto, `connection from ${channel.peer}`);
    service.attach(peer, remoteAddr);
  }).catch(async (e: unknown) => {
    await store?.close();
    await shared?.close();
    throw e;
  });
  log(LOG.info, `serving network [${opts.networkName}] on ${listener.describe}`);
  const authOff = 'WARNING: authentication is OFF (option auth 0): anyone who reaches this port can bind as any CN';
  if (auth) log(LOG.info, `authentication on: ${keys?.size ?? 0} CN key(s)`);
  else log(LOG.error, authOff);
  const reminder = auth ? undefined : setInterval(() => log(LOG.error, authOff), opts.authOffReminderMs ?? 600_000);
  reminder?.unref();
  const expiry = setInterval(() => {
    service.expire().catch((e: unknown) => log(LOG.error, `expiry: ${String(e)}`));
  }, opts.expiryIntervalMs ?? 5000);
  return {
    service,
    listener,
    async close() {
      clearInterval(expiry);
      if (reminder) clearInterval(reminder);
      service.stop();
      for (const p of peers) p.close('MLR shutting down');
      await listener.close();
      await store?.close();
      await shared?.close();
    },
  };
}

/** Starts every listener in turn (closing those already up if one fails) as one MlrListener. */
async function listenAll(fns: ListenFn[], onChannel: Parameters<ListenFn>[0]): Promise<MlrListener> {
  const up: MlrListener[] = [];
  try {
    for (const fn of fns) up.push(await fn(onChannel));
  } catch (e) {
    await Promise.all(up.map((l) => l.close()));
    throw e;
  }
  if (up.length === 1) return up[0]!;
  return { describe: up.map((l) => l.describe).join(' and '), close: async () => void (await Promise.all(up.map((l) => l.close()))) };
}
