// SPDX-License-Identifier: GPL-2.0-only
// MlrLink: the CN's connection to its MLR. Connects, binds (network name, pools, tunnel types),
// hands the bind reply to the daemon for re-establishment, serves the MLR's transaction requests
// through handlers the daemon installs, and reconnects with back-off when the link drops.
// An MLR past its capacity answers `busy` (mlr/service.ts): a move (`seen`) is asked again after a
// jittered back-off (busyRetryDelay), at most BUSY_RETRIES times within the request's time-out; any
// other request fails at once (a DHCP client retransmits by itself).
import { monotonicMs } from '../core/clock.js';
import { Backoff } from '../core/backoff.js';
import type { ReplyBody, RequestBody, RequestType } from '../core/messages.js';
import { LOG, type LogFn } from '../platform/log.js';
import {
  AUTH_FAILED,
  DEFAULT_HEARTBEAT,
  RpcError,
  RpcPeer,
  type HeartbeatOptions,
  type MessageChannel,
  type RpcGuard,
} from '../proto/rpc.js';
import type { MlrApi } from './mlr-api.js';

export interface MlrLinkOptions {
  describe: string;
  connect: () => Promise<MessageChannel>;
  bindBody: () => RequestBody<'bind'>;
  /** Install handlers for MLR -> CN requests on a fresh peer. */
  serve: (peer: RpcPeer) => void;
  onBound: (reply: ReplyBody<'bind'>) => Promise<void>;
  log: LogFn;
  /** A guard per connection when this CN has a key (`option secret`); none = unauthenticated. */
  guard?: (describe: string) => RpcGuard;
  /** This CN's name, for the hint when the MLR demands authentication. */
  name?: string;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** The heartbeat on the MLR session (proto/rpc.ts; default DEFAULT_HEARTBEAT, false = none): a silent MLR is left and reconnected. */
  heartbeat?: HeartbeatOptions | false;
  /** How often a move refused as `busy` is asked again (default BUSY_RETRIES). */
  busyRetries?: number;
}

/** How often a move refused as `busy` is asked again. */
export const BUSY_RETRIES = 3;
/** The back-off of a `busy` answer without a retry hint (ms). */
const BUSY_BACKOFF_MS = 50;
/** The longest hint taken from the MLR (ms): the field allows an hour, a move is worth seconds at most. */
const MAX_BUSY_HINT_MS = 1000;
/** Requests asked again after `busy`: moves. DHCP (`discover`, `request`) is retransmitted by the client itself. */
const RETRIED_WHEN_BUSY: ReadonlySet<RequestType> = new Set(['seen']);

/**
 * The wait before retry `attempt` (0 = the first) of a request refused as `busy`: the MLR's hint
 * (or BUSY_BACKOFF_MS; at most MAX_BUSY_HINT_MS) doubled per attempt, times a random factor 0.5-1.5 so that the CNs it refused
 * together do not ask together again.
 */
export function busyRetryDelay(attempt: number, hintMs: number | undefined, random: () => number = Math.random): number {
  return Math.round(Math.min(hintMs ?? BUSY_BACKOFF_MS, MAX_BUSY_HINT_MS) * 2 ** attempt * (0.5 + random()));
}

/** Pages a re-bind may take (MAX_BINDINGS_PER_CN / a page of 400, many times over): a loop bound, not a limit in use. */
const MAX_SYNC_PAGES = 1000;

export class MlrLink implements MlrApi {
  private peer: RpcPeer | undefined;
  private stopped = false;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  /** An attempt (connect and bind) is under way: reconnect() must not start a second one. */
  private connecting = false;
  private firstBind: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** The session being bound (before it becomes `peer`), closed by stop(). */
  private binding: RpcPeer | undefined;

  constructor(private readonly opts: MlrLinkOptions) {
    this.backoff = new Backoff(opts.minBackoffMs, opts.maxBackoffMs);
  }

  get connected(): boolean {
    return this.peer !== undefined && !this.peer.isClosed;
  }

  /** Start connecting; resolves after the first successful bind, rejects if a bind is refused. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstBind = { resolve, reject };
      void this.attempt();
    });
  }

  /** Stop for good; a start() still waiting for its first bind resolves (start-up ends there). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.peer?.close('CN shutting down');
    this.binding?.close('CN shutting down');
    this.firstBind?.resolve();
    this.firstBind = undefined;
  }

  /** Drop the connection on purpose; the usual reconnect then re-binds and re-establishes. */
  reconnect(why: string): void {
    if (this.peer) this.peer.close(why);
    else if (!this.timer && !this.connecting) this.schedule();
  }

  request<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs?: number): Promise<ReplyBody<T>> {
    if (!RETRIED_WHEN_BUSY.has(type)) return this.once(type, body, timeoutMs);
    return this.retryingBusy(type, body, timeoutMs);
  }

  private once<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs?: number): Promise<ReplyBody<T>> {
    if (!this.peer || this.peer.isClosed)
      return Promise.reject(new RpcError('offline', `not connected to the MLR (${this.opts.describe})`));
    return this.peer.request(type, body, timeoutMs);
  }

  /** `once`, asked again after a jittered back-off while the MLR answers `busy` (BUSY_RETRIES, within `timeoutMs`). */
  private async retryingBusy<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs?: number): Promise<ReplyBody<T>> {
    const deadline = timeoutMs !== undefined ? monotonicMs() + timeoutMs : undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(type, body, deadline !== undefined ? Math.max(1, deadline - monotonicMs()) : undefined);
      } catch (e) {
        if (!(e instanceof RpcError) || e.code !== 'busy' || attempt >= (this.opts.busyRetries ?? BUSY_RETRIES)) throw e;
        const wait = busyRetryDelay(attempt, e.retryAfterMs);
        if (deadline !== undefined && monotonicMs() + wait >= deadline) throw e;
        this.opts.log(LOG.detect, `the MLR is busy: asking ${type} again in ${wait} ms`);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** Connect again after the back-off, unless a reconnect is already scheduled. */
  private schedule(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.attempt();
    }, this.backoff.next());
  }

  private async attempt(): Promise<void> {
    if (this.stopped || this.connected) return;
    if (this.connecting) {
      // The session closed while its bind was still being applied (onBound): try again later.
      this.schedule();
      return;
    }
    this.connecting = true;
    try {
      await this.connectAndBind();
    } finally {
      this.connecting = false;
    }
  }

  private async connectAndBind(): Promise<void> {
    const log = this.opts.log;
    let channel: MessageChannel;
    try {
      channel = await this.opts.connect();
    } catch (e) {
      if (this.stopped) return;
      log(LOG.error, `MLR ${this.opts.describe}: ${e instanceof Error ? e.message : String(e)}; retrying`);
      this.schedule();
      return;
    }
    if (this.stopped) {
      channel.close('CN shutting down');
      return;
    }
    const heartbeat = this.opts.heartbeat === false ? {} : { heartbeat: this.opts.heartbeat ?? DEFAULT_HEARTBEAT };
    const peer = new RpcPeer(channel, {
      ...heartbeat,
      ...(this.opts.guard ? { guard: this.opts.guard(`MLR ${this.opts.describe}`) } : {}),
    });
    peer.onProtocolError = (m) => log(LOG.error, `protocol error from MLR: ${m}`);
    this.binding = peer;
    this.opts.serve(peer);
    channel.onClose((reason) => {
      if (this.peer === peer) {
        this.peer = undefined;
        if (!this.stopped) {
          log(LOG.error, `lost the MLR (${reason}); reconnecting`);
          this.schedule();
        }
      }
    });
    try {
      const reply = await peer.request('bind', this.opts.bindBody(), 5000);
      if (this.stopped) return; // stop() closed the session meanwhile
      // Closed between the reply and now (its close handler saw no session yet to reconnect): fail
      // the attempt, so that the catch below schedules the next.
      if (peer.isClosed) throw new RpcError('closed', 'the MLR session closed right after the bind reply');
      this.peer = peer;
      this.backoff.reset();
      log(LOG.info, `Binding CN to the mobile network: Bind accepted (${this.opts.describe})`);
      const paged = reply.bindingsNext !== undefined || reply.peersNext !== undefined;
      const bound = paged ? await this.rest(peer, reply) : reply;
      if (this.stopped) return;
      await this.opts.onBound(bound);
      this.firstBind?.resolve();
      this.firstBind = undefined;
    } catch (e) {
      if (this.stopped) {
        peer.close('CN shutting down');
        return;
      }
      const authFailed = e instanceof RpcError && e.code === AUTH_FAILED;
      // Without a key, an MLR that demands authentication will never accept us: a configuration
      // error, reported like any refusal. With a key it may be a clock still unsynchronised at boot.
      const refused = e instanceof RpcError && (e.code === 'bind-refused' || (authFailed && !this.opts.guard));
      let why = e instanceof Error ? e.message : String(e);
      if (authFailed && !this.opts.guard) {
        why = `the MLR requires authenticated messages but this CN has no key (${why}); run 'tmip-mlr keygen ${this.opts.name ?? 'NAME'}' on the MLR and add the printed 'option secret' line to this CN's section`;
      } else if (authFailed) {
        why = `the MLR rejected our authentication (${why}); check that option secret equals the MLR's 'config key' for this CN and that both clocks are synchronised`;
      }
      log(LOG.error, `Binding CN to the mobile network: ${refused ? 'refused' : 'failed'}: ${why}`);
      peer.close('bind failed');
      if (refused && this.firstBind) {
        this.firstBind.reject(new RpcError('bind-refused', why));
        this.firstBind = undefined;
        this.stopped = true;
        return;
      }
      if (this.peer === peer) this.peer = undefined;
      this.schedule();
    }
  }

  /** The bind reply was the first page: fetch the others (`sync`) and return the whole list as one reply. */
  private async rest(peer: RpcPeer, first: ReplyBody<'bind'>): Promise<ReplyBody<'bind'>> {
    const bindings = [...first.bindings];
    const peers = [...first.peers];
    let next: { bindingsNext?: string; peersNext?: string } = first;
    for (let i = 0; i < MAX_SYNC_PAGES && (next.bindingsNext !== undefined || next.peersNext !== undefined); i++) {
      const page: ReplyBody<'sync'> = await peer.request(
        'sync',
        {
          ...(next.bindingsNext !== undefined ? { bindingsAfter: next.bindingsNext } : {}),
          ...(next.peersNext !== undefined ? { peersAfter: next.peersNext } : {}),
        },
        5000,
      );
      bindings.push(...page.bindings);
      peers.push(...page.peers);
      next = page;
    }
    this.opts.log(
      LOG.info,
      `Binding CN to the mobile network: ${bindings.length} binding(s) and ${peers.length} peer(s) received in pages`,
    );
    return { bindings, peers, ...(first.leaseGrace !== undefined ? { leaseGrace: first.leaseGrace } : {}) };
  }
}
