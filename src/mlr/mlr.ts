// SPDX-License-Identifier: GPL-2.0-only
// The MLR assembled from its parts: registry, persisted state, the service answering CNs, the expiry
// timer. The transport and the state file are handed in (cli/tmip-mlr.ts passes TCP and a file;
// tests pass loopback TCP or memory), so nothing here opens a socket or a file itself.
import { Registry } from '../core/registry.js';
import type { TunnelType } from '../core/tunnel.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { StateFile } from '../platform/state-file.js';
import { RpcPeer, type MessageChannel } from '../proto/rpc.js';
import { RegistryStore } from './persistence.js';
import { MlrService, type MlrServiceOptions } from './service.js';

export interface MlrOptions {
  networkName: string;
  offerHoldSeconds: number;
  leaseGraceSeconds: number;
  tunnelTypes: TunnelType[];
  expiryIntervalMs?: number;
  handover?: MlrServiceOptions['handover'];
}

/** A listening transport: calls `onChannel` for every CN that connects. */
export interface MlrListener {
  /** Where it listens, for the log. */
  describe: string;
  close(): Promise<void>;
}

export interface MlrDeps {
  listen: (onChannel: (channel: MessageChannel, remoteAddr: string | undefined) => void) => Promise<MlrListener>;
  state?: StateFile;
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
    store = new RegistryStore(deps.state, registry, (m) => log(LOG.error, m));
    const loaded = store.load();
    if (!loaded.ok) throw new Error(loaded.error);
    if (loaded.value) {
      log(
        LOG.info,
        `restored ${registry.allBindings().length} binding(s) and ${registry.allCns().length} CN(s) from ${deps.state.describe}`,
      );
    }
  }
  const service = new MlrService(registry, {
    networkName: opts.networkName,
    offerHoldMs: opts.offerHoldSeconds * 1000,
    leaseGraceMs: opts.leaseGraceSeconds * 1000,
    log,
    onChange: () => store?.touch(),
    ...(opts.handover ? { handover: opts.handover } : {}),
  });
  const peers = new Set<RpcPeer>();
  const listener = await deps.listen((channel, remoteAddr) => {
    const peer = new RpcPeer(channel);
    peers.add(peer);
    channel.onClose(() => peers.delete(peer));
    log(LOG.proto, `connection from ${channel.peer}`);
    service.attach(peer, remoteAddr);
  });
  log(LOG.info, `serving network [${opts.networkName}] on ${listener.describe}`);
  const expiry = setInterval(() => {
    service.expire().catch((e: unknown) => log(LOG.error, `expiry: ${String(e)}`));
  }, opts.expiryIntervalMs ?? 5000);
  return {
    service,
    listener,
    async close() {
      clearInterval(expiry);
      service.stop();
      for (const p of peers) p.close('MLR shutting down');
      await listener.close();
      store?.flush();
    },
  };
}
