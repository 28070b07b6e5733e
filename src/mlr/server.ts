// The tmip-mlr process: loads persisted state, listens for CNs over TCP (MLRP), serves each
// connection with MlrService, expires bindings on a timer, and shuts down cleanly.
import type net from 'node:net';
import { Registry } from '../core/registry.js';
import type { TunnelType } from '../core/tunnel.js';
import { LOG, type LogFn } from '../platform/log.js';
import { listenTcp } from '../platform/tcp-channel.js';
import { RpcPeer } from '../proto/rpc.js';
import { MlrService } from './service.js';
import { StateStore } from './store.js';

export interface MlrServerOptions {
  networkName: string;
  listen: string;
  port: number;
  stateFile?: string;
  offerHoldSeconds: number;
  leaseGraceSeconds: number;
  tunnelTypes: TunnelType[];
  log: LogFn;
  expiryIntervalMs?: number;
}

export interface MlrServer {
  service: MlrService;
  port: number;
  close(): Promise<void>;
}

export async function startMlrServer(opts: MlrServerOptions): Promise<MlrServer> {
  const registry = new Registry(opts.tunnelTypes);
  let store: StateStore | undefined;
  if (opts.stateFile) {
    store = new StateStore(opts.stateFile, () => registry.snapshot(), (m) => opts.log(LOG.error, m));
    const loaded = store.load();
    if (!loaded.ok) throw new Error(loaded.error);
    if (loaded.value) {
      registry.restore(loaded.value);
      opts.log(LOG.info, `restored ${loaded.value.bindings.length} binding(s) and ${loaded.value.cns.length} CN(s) from ${opts.stateFile}`);
    }
  }
  const service = new MlrService(registry, {
    networkName: opts.networkName,
    offerHoldMs: opts.offerHoldSeconds * 1000,
    leaseGraceMs: opts.leaseGraceSeconds * 1000,
    log: opts.log,
    onChange: () => store?.touch(),
  });
  const peers = new Set<RpcPeer>();
  const server: net.Server = await listenTcp(opts.listen, opts.port, (channel) => {
    const peer = new RpcPeer(channel);
    peers.add(peer);
    channel.onClose(() => peers.delete(peer));
    opts.log(LOG.proto, `connection from ${channel.peer}`);
    service.attach(peer, channel.remoteAddress);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  opts.log(LOG.info, `serving network [${opts.networkName}] on ${opts.listen}:${port}`);
  const expiry = setInterval(() => {
    service.expire().catch((e: unknown) => opts.log(LOG.error, `expiry: ${String(e)}`));
  }, opts.expiryIntervalMs ?? 5000);
  return {
    service,
    port,
    async close() {
      clearInterval(expiry);
      for (const p of peers) p.close('MLR shutting down');
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store?.flush();
    },
  };
}
