// SPDX-License-Identifier: GPL-2.0-only
// RpcPeer: request/response over any MessageChannel (TCP now, MQTT next). It stamps request ids,
// matches replies, enforces time-outs (one timer per peer, due at the earliest deadline), decodes
// every incoming body with core/messages.ts's codecs (handlers and callers see typed values only)
// and encodes every outgoing one, and dispatches requests to registered handlers. It knows message
// types but nothing of their meaning.
// An optional guard (proto/auth.ts) seals every outgoing envelope and opens every incoming one before
// anything else looks at it; without a guard messages travel unauthenticated (`option auth '0'`).
// Bounded: at most `maxInbound` handler calls run at once (more get a 'busy' error, with a
// `retryAfter` hint in ms, as a handler's RpcError may carry one) and at most `maxPending` own
// requests wait for replies (more are refused at once). An optional admission hook (`admission`, the
// MLR's backpressure) sees each request's type before anything is decoded (requestHead(): the head
// every sender writes, `{"v":1,"type":"…","id":N,`) and may have it answered with an error at once,
// unparsed and unverified (on a session already authenticated, the answer signed as any other).
// Cheap per message: a body's codec writes its canonical JSON text from the typed value (core/schema.ts
// Codec.text; once per body however many CNs it goes to), the guard signs and frames the envelope
// around it (auth.ts sealText), and one time-out timer serves all of a session's requests.
// Heartbeat (option `heartbeat`, issue 9): every message that arrives counts as a sign of life; when
// nothing has arrived for `intervalMs` (75-100 % of it, at random) the peer sends a `ping` request
// (again each interval while the silence lasts), and when nothing at all has arrived for `missMs` it
// closes the channel with a reason that says so. A peer with a heartbeat answers `ping` itself
// unless a handler is installed; an old peer that answers `unsupported` is alive all the same. When
// both ends run one, whichever is due first pings and the reply serves both.
import { monotonicMs } from '../core/clock.js';
import type { Result } from '../core/result.js';
import {
  SCHEMA_VERSION,
  decodeEnvelope,
  encodeEnvelope,
  isRequestType,
  decodeErrorBody,
  decodeReplyBody,
  decodeRequestBody,
  encodeReplyBody,
  encodeRequestBody,
  replyBodyText,
  requestBodyText,
  type Envelope,
  type ErrorBody,
  type ReplyBody,
  type RequestBody,
  type RequestType,
} from '../core/messages.js';

/** A bidirectional, message-oriented link: it moves whole payloads and knows nothing of their meaning. */
export interface MessageChannel {
  readonly peer: string;
  /**
   * Send one message. `meta` says whether it is a request (`id`) or the reply to one (`re`), for
   * transports that correlate on their own (MQTT 5 correlation data); a byte stream ignores it.
   */
  send(payload: Buffer, meta?: { id?: number; re?: number }): void;
  /**
   * The sender the transport itself vouches for, when it does: over MQTT the CN whose topic the
   * message came from (the broker's ACL confines each CN account to its own topic). A byte stream
   * vouches for nobody.
   */
  readonly transportIdentity?: string;
  onMessage(receiver: (payload: Buffer) => void): void;
  onClose(receiver: (reason: string) => void): void;
  close(reason?: string): void;
}

export class RpcError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** With `busy`: how long the sender suggests waiting before asking again (ms; the error body's `retryAfter`). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Authenticates one session: proto/auth.ts's SessionGuard. */
export interface RpcGuard {
  /**
   * Sign an outgoing envelope and write it as the JSON text sent (the body in the canonical form the
   * HMAC covers, so it is serialised once); undefined when it goes out unsigned (no key for the peer).
   */
  sealJson(env: Envelope): string | undefined;
  /**
   * The envelope `{v: SCHEMA_VERSION, type, id | re, body}` signed and written as the JSON text sent,
   * given its body's canonical text (core/schema.ts Codec.text); undefined when it goes out unsigned.
   */
  sealText(type: string, id: number | undefined, re: number | undefined, body: string): string | undefined;
  /** Check an incoming envelope; ok(sender id) or the failed check. */
  open(env: Envelope): Result<string>;
  /** The peer's authenticated id, once a message from it checked out. */
  readonly identity: string | undefined;
}

/**
 * Handler calls one peer may have running at once; a flood beyond it is answered 'busy'. Above the
 * DHCP exchanges a CN lets wait on the MLR (cn/dhcp-server.ts DHCP_IN_FLIGHT, 128), with room for its
 * other requests.
 */
export const MAX_INBOUND = 160;
/** The retry hint (ms) of the 'busy' answer past MAX_INBOUND. */
const INBOUND_RETRY_AFTER_MS = 50;
/** Own requests one peer may have waiting for replies. */
export const MAX_PENDING = 1024;
/** Error code of a message refused by the guard (sent unsigned, so an unkeyed sender can read it). */
export const AUTH_FAILED = 'auth-failed';

/** The application heartbeat of one session: ping after `intervalMs` of silence, close after `missMs`. */
export interface HeartbeatOptions {
  intervalMs: number;
  missMs: number;
}

/**
 * The heartbeat the MLR runs on every CN session and the CN on its MLR session: a ping after about
 * 1 s of silence, closed after 3 s of silence (two or three pings unanswered). A dead peer is noticed
 * 3 s after the last message it sent; an idle link carries about one ping and one reply a second.
 */
export const DEFAULT_HEARTBEAT: Readonly<HeartbeatOptions> = { intervalMs: 1000, missMs: 3000 };

export interface RpcPeerOptions {
  timeoutMs?: number;
  guard?: RpcGuard;
  maxInbound?: number;
  maxPending?: number;
  /** Ping when the peer falls silent and close the channel when it stays silent (none = rely on the transport). */
  heartbeat?: HeartbeatOptions;
}

/**
 * The canonical text of the last RECENT request bodies sent, by the body object: the MLR sends one
 * body to every participant of a move (prepare, then commit), one right after the other, so it is
 * written once. Bodies are not changed after they are sent. A ring compared by identity, not a
 * WeakMap: a WeakMap entry for every body sent (most are sent once) cost more in set-up and GC than
 * it saved.
 */
const RECENT = 16;
const recentBodies: unknown[] = new Array<unknown>(RECENT).fill(undefined);
const recentTypes: (RequestType | undefined)[] = new Array<RequestType | undefined>(RECENT).fill(undefined);
const recentTexts: (string | undefined)[] = new Array<string | undefined>(RECENT).fill(undefined);
let recentAt = 0;

function requestTextOnce<T extends RequestType>(type: T, body: RequestBody<T>): string | undefined {
  for (let i = 0; i < RECENT; i++) if (recentBodies[i] === body && recentTypes[i] === type) return recentTexts[i];
  const text = requestBodyText(type, body);
  recentBodies[recentAt] = body;
  recentTypes[recentAt] = type;
  recentTexts[recentAt] = text;
  recentAt = (recentAt + 1) % RECENT;
  return text;
}

/** The longest error message the error body's codec takes (core/messages.ts); longer ones are cut. */
const ERROR_MESSAGE_MAX = 1000;

function errorBody(code: string, message: string, retryAfter?: number): ErrorBody {
  if (message.length > ERROR_MESSAGE_MAX) message = `${message.slice(0, ERROR_MESSAGE_MAX - 3)}...`;
  return retryAfter === undefined ? { code, message } : { code, message, retryAfter };
}

/** The error body of `e`; one RpcError thrown again and again (the MLR's `busy`) makes its body once. */
const errorBodies = new WeakMap<RpcError, ErrorBody>();
function errorBodyOf(e: RpcError): ErrorBody {
  let b = errorBodies.get(e);
  if (b === undefined) errorBodies.set(e, (b = errorBody(e.code, e.message, e.retryAfterMs)));
  return b;
}

/** The head every MLRP sender writes first (auth.ts sealText and sealJson, and sendText unsigned): `{"v":1,"type":"`. */
const HEAD = Buffer.from(`{"v":${SCHEMA_VERSION},"type":"`, 'latin1');
/** The type requestHead() found last (set with its result; single-threaded). */
let headType = '';

/**
 * The id of a request written in the usual layout, `{"v":1,"type":"<type>","id":<digits>,` (the type
 * is left in `headType`); undefined for anything else (a reply, another layout, junk), which then goes
 * the usual way. Reads at most the first ~70 bytes; decides nothing but whether the admission hook is
 * asked (what it refuses is answered without being parsed; everything else is parsed and checked).
 */
export function requestHead(p: Buffer): number | undefined {
  const n = HEAD.length;
  if (p.length < n + 8) return undefined;
  for (let i = 0; i < n; i++) if (p[i] !== HEAD[i]) return undefined;
  let at = n;
  const typeEnd = Math.min(p.length, n + 33);
  while (at < typeEnd && p[at] !== 0x22) {
    const c = p[at]!;
    if (c < 0x61 || c > 0x7a) return undefined; // message types are lower-case letters
    at++;
  }
  if (at === n || p[at] !== 0x22) return undefined;
  const typeAt = n;
  const typeLen = at - n;
  // ,"id":
  if (p[at + 1] !== 0x2c || p[at + 2] !== 0x22 || p[at + 3] !== 0x69 || p[at + 4] !== 0x64 || p[at + 5] !== 0x22 || p[at + 6] !== 0x3a)
    return undefined;
  at += 7;
  let id = 0;
  const start = at;
  while (at < p.length && at - start < 16) {
    const c = p[at]!;
    if (c < 0x30 || c > 0x39) break;
    id = id * 10 + (c - 0x30);
    at++;
  }
  if (at === start || at - start >= 16 || p[at] !== 0x2c || (p[start] === 0x30 && at - start > 1)) return undefined;
  headType = p.toString('latin1', typeAt, typeAt + typeLen);
  return id;
}

type Handler<T extends RequestType> = (body: RequestBody<T>) => Promise<ReplyBody<T>> | ReplyBody<T>;

interface Pending {
  type: RequestType;
  resolve: (body: unknown) => void;
  reject: (e: Error) => void;
  /** monotonicMs() after which it has timed out, and its time-out (ms) for the message. */
  deadline: number;
  timeoutMs: number;
}

export class RpcPeer {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Handler<RequestType>>();
  private closed: string | undefined;
  private inbound = 0;
  private readonly defaultTimeoutMs: number;
  private readonly guard: RpcGuard | undefined;
  private readonly maxInbound: number;
  private readonly maxPending: number;
  private readonly heartbeat: HeartbeatOptions | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /**
   * One timer for the time-outs of all pending requests, due no later than the earliest deadline
   * (`deadlineAt`): a request costs no timer of its own (arming and clearing one per request was a
   * measurable share of a message's cost). When the last pending request is answered the timer is not
   * cleared but unref'd (it keeps no process alive): the next request, whose deadline is later, keeps
   * it, and when it fires it re-arms for the earliest deadline then pending. So a session that sends one
   * request at a time (the MLR's commits to most CNs) arms a timer once per time-out, not per request.
   */
  private deadlineTimer: NodeJS.Timeout | undefined;
  private deadlineAt = Infinity;
  /** monotonicMs() of the last message that arrived (or of the start), and of our last ping. */
  private lastHeard = monotonicMs();
  private lastPing = 0;
  /** Called for every protocol problem the peer caused (bad JSON, bad body, unknown reply). */
  onProtocolError: (message: string) => void = () => {};
  /**
   * Admission before anything is decoded (the MLR's backpressure, mlr/service.ts): called with the type
   * of each request that arrives in the usual layout (requestHead()) on a session that authenticated
   * already (or has no guard), and the handler calls this session has running. An error means the
   * request is answered with it at once, from its envelope's head alone: not parsed further, not
   * verified, never handed to a handler (the answer is signed for the session's authenticated peer).
   * Refusing so costs a fraction of serving, so that an MLR past its capacity does not spend it on
   * refusals. Undefined (or no function): the request goes the usual way.
   */
  admission: ((type: string, inbound: number) => RpcError | undefined) | undefined;

  /** Handler calls of this session running now (the one asking included, when asked from a handler). */
  get handling(): number {
    return this.inbound;
  }

  constructor(
    readonly channel: MessageChannel,
    options: number | RpcPeerOptions = {},
  ) {
    const o = typeof options === 'number' ? { timeoutMs: options } : options;
    this.defaultTimeoutMs = o.timeoutMs ?? 3000;
    this.guard = o.guard;
    this.maxInbound = o.maxInbound ?? MAX_INBOUND;
    this.maxPending = o.maxPending ?? MAX_PENDING;
    channel.onMessage((payload) => this.receive(payload));
    channel.onClose((reason) => this.shutdown(reason));
    if (o.heartbeat) {
      const { intervalMs, missMs } = o.heartbeat;
      if (!(intervalMs > 0 && missMs > intervalMs))
        throw new RangeError(`heartbeat: need 0 < intervalMs < missMs, got ${intervalMs} and ${missMs}`);
      this.heartbeat = { intervalMs, missMs };
      this.handlers.set('ping', () => ({ time: Date.now() }));
      this.beat();
    }
  }

  /** Heartbeat tick: close after `missMs` of silence, ping after `intervalMs`, then sleep until the next is due. */
  private beat(confirm = false): void {
    this.heartbeatTimer = undefined;
    const hb = this.heartbeat;
    if (!hb || this.closed !== undefined) return;
    const now = monotonicMs();
    const silent = now - this.lastHeard;
    if (silent >= hb.missMs) {
      // Timers run before pending I/O in a turn of the event loop: after a stall of this process, what
      // arrived meanwhile is read first (setImmediate runs after the poll phase), then judged.
      if (!confirm) {
        setImmediate(() => this.beat(true));
        return;
      }
      this.close(`heartbeat: nothing from ${this.channel.peer} for ${Math.round(silent)} ms (limit ${hb.missMs} ms)`);
      return;
    }
    if (now >= Math.max(this.lastHeard, this.lastPing) + (hb.intervalMs * 3) / 4) {
      this.lastPing = now;
      this.request('ping', {}, hb.missMs).catch(() => undefined);
    }
    // The next ping comes after 75-100 % of the interval: two ends that both run a heartbeat drift
    // apart, so one pings and the other's reply (it has just heard from us) serves them both.
    const pingAt = Math.max(this.lastHeard, this.lastPing) + hb.intervalMs * (1 - Math.random() / 4);
    const next = Math.min(this.lastHeard + hb.missMs, pingAt);
    this.heartbeatTimer = setTimeout(() => this.beat(), Math.max(1, Math.ceil(next - monotonicMs())));
    this.heartbeatTimer.unref();
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  /** Whether this session authenticates its messages (a guard is installed). */
  get authenticated(): boolean {
    return this.guard !== undefined;
  }

  /** The peer's authenticated id (its CN name, or 'mlr'); undefined before or without authentication. */
  get identity(): string | undefined {
    return this.guard?.identity;
  }

  handle<T extends RequestType>(type: T, handler: Handler<T>): void {
    this.handlers.set(type, handler);
  }

  request<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs = this.defaultTimeoutMs): Promise<ReplyBody<T>> {
    if (this.closed) return Promise.reject(new RpcError('closed', `connection closed: ${this.closed}`));
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new RpcError('busy', `${this.pending.size} requests to ${this.channel.peer} are already waiting for replies`));
    }
    const id = this.nextId++;
    return new Promise<ReplyBody<T>>((resolve, reject) => {
      const deadline = monotonicMs() + timeoutMs;
      this.pending.set(id, { type, resolve: resolve as (b: unknown) => void, reject, deadline, timeoutMs });
      if (deadline < this.deadlineAt) this.armDeadline(deadline);
      else if (this.pending.size === 1) this.deadlineTimer?.ref();
      const text = requestTextOnce(type, body);
      if (text !== undefined) this.sendText(type, id, undefined, text);
      else this.send({ v: SCHEMA_VERSION, type, id, body: encodeRequestBody(type, body) });
    });
  }

  /** (Re)arm the time-out timer for `at` (a monotonicMs() value). */
  private armDeadline(at: number): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineAt = at;
    this.deadlineTimer = setTimeout(() => this.expire(), Math.max(1, Math.ceil(at - monotonicMs())));
  }

  /** The time-out timer: fail the requests past their deadline, then wait for the next deadline. */
  private expire(): void {
    this.deadlineTimer = undefined;
    this.deadlineAt = Infinity;
    const now = monotonicMs();
    let next = Infinity;
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.reject(new RpcError('timeout', `no reply to ${p.type} from ${this.channel.peer} within ${p.timeoutMs} ms`));
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity && this.closed === undefined) this.armDeadline(next);
  }

  /** Forget request `id` (answered); with nothing pending any more the time-out timer keeps no process alive. */
  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.deadlineTimer?.unref();
  }

  close(reason = 'closed locally'): void {
    this.channel.close(reason);
    this.shutdown(reason);
  }

  /**
   * Send `{v, type, id | re, body}` whose body is already canonical JSON text: signed around it when
   * the guard can, else unsigned in the same layout (requestHead() reads it either way).
   */
  private sendText(type: string, id: number | undefined, re: number | undefined, body: string): void {
    if (this.closed) return;
    const meta = id !== undefined ? { id } : { re: re! };
    const text =
      this.guard?.sealText(type, id, re, body) ??
      `{"v":${SCHEMA_VERSION},"type":${JSON.stringify(type)},${id !== undefined ? `"id":${id}` : `"re":${re}`},"body":${body}}`;
    this.channel.send(Buffer.from(text, 'utf8'), meta);
  }

  private send(env: Envelope, sign = true): void {
    if (this.closed) return;
    const meta = env.id !== undefined ? { id: env.id } : env.re !== undefined ? { re: env.re } : {};
    const text = sign ? this.guard?.sealJson(env) : undefined;
    if (text !== undefined) {
      this.channel.send(Buffer.from(text, 'utf8'), meta);
      return;
    }
    this.channel.send(encodeEnvelope(env), meta);
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = reason;
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.deadlineAt = Infinity;
    for (const [id, p] of this.pending) {
      p.reject(new RpcError('closed', `connection closed before ${p.type} was answered: ${reason}`));
      this.pending.delete(id);
    }
  }

  private receive(payload: Buffer): void {
    this.lastHeard = monotonicMs();
    if (this.admission !== undefined && (this.guard === undefined || this.guard.identity !== undefined)) {
      const id = requestHead(payload);
      if (id !== undefined) {
        const refusal = this.admission(headType, this.inbound);
        if (refusal !== undefined) {
          this.send({ v: SCHEMA_VERSION, type: 'error', re: id, body: errorBodyOf(refusal) });
          return;
        }
      }
    }
    const decoded = decodeEnvelope(payload);
    if (!decoded.ok) {
      this.onProtocolError(decoded.error);
      return;
    }
    const env = decoded.value;
    if (this.guard) {
      const opened = this.guard.open(env);
      if (!opened.ok) {
        if (env.re !== undefined && env.type === 'error' && env.auth === undefined) {
          // An unsigned error is believed only when it says our own authentication failed (the peer
          // could not check or sign): it ends that request, as a lost reply would, and says why.
          const body = decodeErrorBody(env.body);
          if (body.ok && body.value.code === AUTH_FAILED) this.receiveReply(env, env.re);
        } else if (env.re === undefined && env.id !== undefined) {
          this.send(
            {
              v: SCHEMA_VERSION,
              type: 'error',
              re: env.id,
              body: { code: AUTH_FAILED, message: `authentication failed: ${opened.error}` },
            },
            false,
          );
        }
        return;
      }
    }
    if (env.re !== undefined) {
      this.receiveReply(env, env.re);
      return;
    }
    if (env.id === undefined) {
      this.onProtocolError(`message '${env.type}' has neither id nor re`);
      return;
    }
    void this.receiveRequest(env, env.id);
  }

  private receiveReply(env: Envelope, re: number): void {
    const p = this.pending.get(re);
    if (!p) {
      this.onProtocolError(`reply to unknown or expired request ${re}`);
      return;
    }
    this.settle(re);
    if (env.type === 'error') {
      const body = decodeErrorBody(env.body);
      p.reject(body.ok ? new RpcError(body.value.code, body.value.message, body.value.retryAfter) : new RpcError('protocol', body.error));
      return;
    }
    const body = decodeReplyBody(p.type, env.body);
    if (body.ok) p.resolve(body.value);
    else p.reject(new RpcError('protocol', body.error));
  }

  private async receiveRequest(env: Envelope, id: number): Promise<void> {
    const fail = (code: string, message: string, retryAfter?: number) =>
      this.send({ v: SCHEMA_VERSION, type: 'error', re: id, body: errorBody(code, message, retryAfter) });
    if (!isRequestType(env.type)) return fail('unknown-type', `unknown message type '${env.type}'`);
    const handler = this.handlers.get(env.type);
    if (!handler) return fail('unsupported', `this end does not serve '${env.type}'`);
    const body = decodeRequestBody(env.type, env.body);
    if (!body.ok) {
      this.onProtocolError(body.error);
      return fail('bad-request', body.error);
    }
    if (this.inbound >= this.maxInbound)
      return fail('busy', `${this.inbound} requests are already being handled; try again later`, INBOUND_RETRY_AFTER_MS);
    this.inbound++;
    try {
      const reply = await handler(body.value);
      const text = replyBodyText(env.type, reply);
      if (text !== undefined) this.sendText('reply', undefined, id, text);
      else this.send({ v: SCHEMA_VERSION, type: 'reply', re: id, body: encodeReplyBody(env.type, reply) });
    } catch (e) {
      if (e instanceof RpcError) this.send({ v: SCHEMA_VERSION, type: 'error', re: id, body: errorBodyOf(e) });
      else fail('internal', e instanceof Error ? e.message : String(e));
    } finally {
      this.inbound--;
    }
  }
}
