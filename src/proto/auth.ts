// SPDX-License-Identifier: GPL-2.0-only
// Per-message authentication of MLRP (any transport): every envelope carries `from` (the sender: a
// CN's name, or 'mlr'), `ts` (Unix time in ms), `nonce` (16 random bytes, 32 lower-case hex digits)
// and `auth` = HMAC-SHA256 as 64 lower-case hex digits. CN X's 32-byte key signs both directions
// of X's traffic: X signs as X, the MLR signs as 'mlr' with X's key.
//
// Canonical bytes (what the HMAC covers), UTF-8:
//
//   "MLRP-HMAC-1\n" + ROLE + "\n" + JSON.stringify([v, type, id|null, re|null, from, ts, nonce]) + "\n" + CJSON(body)
//
// ROLE is the sender's role, 'cn' or 'mlr' (so a message can never be reflected back to its sender,
// even to a CN named 'mlr'). CJSON is the body as sent, in canonical JSON: object keys sorted by
// UTF-16 code units, no white space, strings and numbers as JSON.stringify writes them; the same
// bytes whatever order the keys had on the wire. A body nested deeper than 32 levels is not
// canonicalised and is rejected (no recursion on hostile input).
//
// A receiver checks, in this order, and rejects on the first failure: all four fields present and
// well-formed; the sender is one it has a key for (the MLR: the `config key` sections; a CN: only
// 'mlr'); the sender is the identity already bound on this session (the first authenticated message
// fixes it); |now - ts| <= the window (7 s by default: clocks must be NTP-synchronised); the HMAC
// (compared in constant time); the nonce is new. Only a message whose HMAC checked out enters the
// replay cache, so a forger cannot fill it.
//
// Replay cache: one per key holder (per sender id), shared by all sessions of that sender (a replay
// into a second connection is caught too). A nonce is remembered until its ts + window, after which
// the timestamp check rejects the message anyway. The cache is capped (REPLAY_CACHE_MAX per sender);
// when full after dropping expired entries, the message is REJECTED, never an unexpired nonce
// forgotten: a flood can only make its own sender's messages fail, it can never open a replay hole.
// Only key holders can put nonces in a cache, and each sender has its own, so one CN cannot starve
// another.
//
// A refused request is answered with an UNSIGNED error, code 'auth-failed' (proto/rpc.ts), so that a
// sender without the right key learns why; an unsigned reply is believed only in that form, and only
// ends the request it answers (as a lost reply would). Nothing else unsigned reaches a handler.
//
// Each rejection is one log line naming the check and the peer; a shared limiter lets at most
// LOG_BURST such lines through per LOG_INTERVAL_MS and then one "N more suppressed" line.
//
// Cost per message: each peer's key is prepared once (MacKey: the HMAC as two one-shot hashes over
// precomputed pads, the same digests as createHmac without its per-message object); nonces are cut
// from a pooled random buffer; sealText writes the sent JSON text around the body's canonical text,
// which proto/rpc.ts has the body's codec write from the typed value (core/schema.ts Codec.text), so
// a body is serialised once per message (once for all CNs a body goes to), not again by
// JSON.stringify; sealJson does the same for an envelope given as an object (errors, tests), with
// the body canonicalised once when it is sent again and again (the MLR's `busy`); a session looks its
// peer's key and replay cache up once.
import { canonicalJson, quote } from '../core/canonical-json.js';
import { monotonicMs } from '../core/clock.js';
import crypto, { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { SCHEMA_VERSION, type Envelope } from '../core/messages.js';
import { err, ok, type Result } from '../core/result.js';

/** The schema version as it is written in every envelope. */
const VERSION_TEXT = String(SCHEMA_VERSION);

/** The MLR's sender id. */
export const MLR_ID = 'mlr';

export type Role = 'cn' | 'mlr';
/** Accepted clock difference between sender and receiver (ms). */
export const AUTH_WINDOW_MS = 7000;
/**
 * Nonces remembered per sender. An entry lives at most 2 x window (ts may lie up to one window in
 * the future), so 16384 allows a sustained ~1100 messages/s per sender, far above a CN's needs, in
 * at most ~2 MB per sender.
 */
export const REPLAY_CACHE_MAX = 16384;
/** Rejection log lines let through per interval, across all sessions. */
const LOG_BURST = 10;
const LOG_INTERVAL_MS = 60_000;
/**
 * Canonical JSON of the last RECENT request bodies signed, by object: one body sent to several CNs
 * (prepare, commit), one right after the other, is canonicalised once. A ring compared by identity,
 * not a WeakMap (whose entry for every body sent, most of them sent once, cost more than it saved).
 * Reply bodies are mostly fresh objects (proto/rpc.ts encodes each): for them only the last one is
 * remembered (canonicalReplyBody). Both caches rely on a body object not being changed once sent.
 */
const RECENT = 16;
const recentBodies: unknown[] = new Array<unknown>(RECENT).fill(undefined);
const recentCanonical: string[] = new Array<string>(RECENT).fill('');
let recentAt = 0;

function canonicalSentBody(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return canonicalJson(body);
  for (let i = 0; i < RECENT; i++) if (recentBodies[i] === body) return recentCanonical[i];
  const c = canonicalJson(body);
  if (c !== undefined) {
    recentBodies[recentAt] = body;
    recentCanonical[recentAt] = c;
    recentAt = (recentAt + 1) % RECENT;
  }
  return c;
}

/**
 * Canonical JSON of a reply body: the last one is remembered by object, since one body answered again
 * and again (the MLR's `busy` refusal, made once) is then canonicalised once.
 */
let lastReplyBody: unknown;
let lastReplyCanonical: string | undefined;
function canonicalReplyBody(body: unknown): string | undefined {
  if (body === lastReplyBody && lastReplyCanonical !== undefined) return lastReplyCanonical;
  const c = canonicalJson(body);
  if (typeof body === 'object' && body !== null) {
    lastReplyBody = body;
    lastReplyCanonical = c;
  }
  return c;
}

/** 16 random bytes as hex, cut from a pool filled 256 nonces at a time (one randomBytes call, not one per message). */
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function freshNonce(): string {
  if (nonceAt + 16 > noncePool.length) {
    noncePool = randomBytes(4096);
    nonceAt = 0;
  }
  const n = noncePool.toString('hex', nonceAt, nonceAt + 16);
  nonceAt += 16;
  return n;
}

/** One element of a JSON array as JSON.stringify writes it (absent: null). */
function item(v: unknown): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'string') return quote(v);
  return v === undefined ? 'null' : (JSON.stringify(v) ?? 'null');
}

/**
 * `{ ...env, from, ts, nonce, auth: '' }`, fields in that order. The envelopes proto/rpc.ts sends are
 * written out as literals: V8 takes a slow path for a spread followed by more fields, or for fields
 * added to a spread copy (microseconds per message).
 */
function stamp(env: Envelope, from: string, ts: number, nonce: string): Envelope {
  if (env.from === undefined && env.ts === undefined && env.nonce === undefined && env.auth === undefined) {
    const keys = Object.keys(env);
    if (keys.length === 4 && keys[0] === 'v' && keys[1] === 'type' && keys[3] === 'body') {
      const { v, type, id, re, body } = env;
      if (keys[2] === 'id') return { v, type, id, body, from, ts, nonce, auth: '' } as Envelope;
      if (keys[2] === 're') return { v, type, re, body, from, ts, nonce, auth: '' } as Envelope;
    }
  }
  return { ...env, from, ts, nonce, auth: '' };
}

/** The text the HMAC covers, given the body's canonical JSON. */
function canonicalText(env: Envelope, role: Role, body: string): string {
  // JSON.stringify([v, type, id ?? null, re ?? null, from ?? null, ts ?? null, nonce ?? null]), written out.
  const head = `[${item(env.v)},${item(env.type)},${item(env.id)},${item(env.re)},${item(env.from)},${item(env.ts)},${item(env.nonce)}]`;
  return `MLRP-HMAC-1\n${role}\n${head}\n${body}`;
}

/** The bytes the HMAC covers (see the module header), or undefined for a body nested too deep. */
export function canonicalBytes(env: Envelope, role: Role): Buffer | undefined {
  const body = canonicalJson(env.body);
  return body === undefined ? undefined : Buffer.from(canonicalText(env, role, body), 'utf8');
}

/** HMAC-SHA256 of `bytes` (a string is taken as UTF-8) as 64 lower-case hex digits (the `auth` field). */
export function hmac(key: Buffer | KeyObject, bytes: Buffer | string): string {
  return typeof bytes === 'string'
    ? createHmac('sha256', key).update(bytes, 'utf8').digest('hex')
    : createHmac('sha256', key).update(bytes).digest('hex');
}

/** node:crypto's one-shot hash (Node >= 20.12), when there is one. */
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;
/** Texts up to this many UTF-16 units are signed with oneShot (longer ones, rare, with createHmac: no big scratch kept). */
const ONE_SHOT_MAX_CHARS = 16384;
/** The inner hash's input, inner pad then the text as UTF-8; shared by all keys (single-threaded, never re-entered). */
const innerInput = Buffer.alloc(64 + ONE_SHOT_MAX_CHARS * 3);

/**
 * One peer's HMAC-SHA256 key, prepared once: HMAC(K, m) = H(K^opad || H(K^ipad || m)) (RFC 2104) as
 * two one-shot hashes over pads computed here, with no Hmac object per message (createHmac's fixed
 * cost is most of the cost of signing a short message). The same digests as createHmac.
 */
export class MacKey {
  private readonly ipad = Buffer.alloc(64);
  /** The outer pad, then room for the inner digest. */
  private readonly outer = Buffer.alloc(96);
  private readonly key: KeyObject;

  constructor(raw: Buffer) {
    // A key longer than the 64-byte block is hashed first (RFC 2104); MLRP keys are 32 bytes.
    const k = raw.length > 64 ? crypto.createHash('sha256').update(raw).digest() : raw;
    for (let i = 0; i < 64; i++) {
      this.ipad[i] = (k[i] ?? 0) ^ 0x36;
      this.outer[i] = (k[i] ?? 0) ^ 0x5c;
    }
    this.key = createSecretKey(raw);
  }

  /** HMAC-SHA256 of `text` (UTF-8) as 64 lower-case hex digits. */
  macHex(text: string): string {
    if (oneShot === undefined || text.length > ONE_SHOT_MAX_CHARS) return hmac(this.key, text);
    innerInput.set(this.ipad, 0);
    const n = innerInput.write(text, 64, 'utf8');
    this.outer.write(oneShot('sha256', innerInput.subarray(0, 64 + n), 'binary'), 64, 'latin1');
    return oneShot('sha256', this.outer, 'hex');
  }

  /**
   * Whether `hex` (64 lower-case hex digits) is the HMAC of `text`. Every digit is compared whatever
   * differs (no early exit), so the time taken does not tell how much of a forgery matched.
   */
  verifyHex(text: string, hex: string): boolean {
    const mine = this.macHex(text);
    if (hex.length !== mine.length) return false;
    let diff = 0;
    for (let i = 0; i < mine.length; i++) diff |= mine.charCodeAt(i) ^ hex.charCodeAt(i);
    return diff === 0;
  }
}

/** A fresh 32-byte key as 64 lower-case hex digits. */
export function generateKey(): string {
  return randomBytes(32).toString('hex');
}

/** Nonces seen per sender, each until its expiry; bounded (see the module header). */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  /** The earliest expiry in `seen` (a lower bound): nothing can be pruned before it passes. */
  private earliest = Infinity;
  /**
   * The nonces in the order they were added, with their expiries (from `head` on): a sender's
   * timestamps mostly rise, so expired entries are dropped from the front as new ones arrive, O(1)
   * per message, and the cache holds about what the window holds instead of filling up to `max`.
   * One out of order only delays those behind it; the full scan of prune() still catches everything.
   */
  private order: string[] = [];
  private orderExpiry: number[] = [];
  private head = 0;

  constructor(private readonly max = REPLAY_CACHE_MAX) {}

  get size(): number {
    return this.seen.size;
  }

  /** Remember `nonce` until `expires`; 'replay' if it is known, 'full' if there is no room. */
  add(nonce: string, expires: number, now: number): 'ok' | 'replay' | 'full' {
    const known = this.seen.get(nonce);
    if (known !== undefined && known >= now) return 'replay';
    this.dropExpiredFront(now);
    if (this.seen.size >= this.max && this.earliest < now) this.prune(now);
    if (this.seen.size >= this.max) return 'full';
    this.seen.set(nonce, expires);
    this.order.push(nonce);
    this.orderExpiry.push(expires);
    if (expires < this.earliest) this.earliest = expires;
    return 'ok';
  }

  /** Forget the expired nonces at the front of the arrival order (at most a few per call, amortised). */
  private dropExpiredFront(now: number): void {
    const { order, orderExpiry } = this;
    let h = this.head;
    while (h < order.length && orderExpiry[h]! < now) {
      const n = order[h]!;
      // Only if it is still this entry: a nonce added again after it expired has a later expiry.
      if (this.seen.get(n) === orderExpiry[h]) this.seen.delete(n);
      h++;
    }
    if (h > 1024 && h * 2 > order.length) {
      this.order = order.slice(h);
      this.orderExpiry = orderExpiry.slice(h);
      h = 0;
    } else if (h === order.length && h > 0) {
      this.order = [];
      this.orderExpiry = [];
      h = 0;
    }
    this.head = h;
  }

  /** Forget expired nonces; a full cache is scanned at most once per expiry, not once per message. */
  private prune(now: number): void {
    this.earliest = Infinity;
    for (const [n, exp] of this.seen) {
      if (exp < now) this.seen.delete(n);
      else if (exp < this.earliest) this.earliest = exp;
    }
    // The arrival order keeps only what is still cached (it would otherwise grow past `max`).
    const order: string[] = [];
    const orderExpiry: number[] = [];
    for (let i = this.head; i < this.order.length; i++) {
      const n = this.order[i]!;
      const exp = this.orderExpiry[i]!;
      if (this.seen.get(n) === exp) {
        order.push(n);
        orderExpiry.push(exp);
      }
    }
    this.order = order;
    this.orderExpiry = orderExpiry;
    this.head = 0;
  }
}

/**
 * Lets `burst` lines through per `intervalMs`, then reports how many it held back in one line:
 * "N more <what> in the last T s" (default "N more similar message(s) suppressed ..."). The summary is
 * written by the first line of the next interval, or by flush().
 */
export class RateLimitedLog {
  private windowStart = -Infinity;
  private count = 0;
  private suppressed = 0;
  /** Lines held back since this log was made. */
  suppressedTotal = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number = monotonicMs,
    private readonly burst = LOG_BURST,
    private readonly intervalMs = LOG_INTERVAL_MS,
    private readonly what?: string,
  ) {}

  log(line: string): void {
    const now = this.now();
    if (now - this.windowStart >= this.intervalMs) this.summarize(now);
    if (this.count < this.burst) {
      this.count++;
      this.write(line);
    } else {
      this.suppressed++;
      this.suppressedTotal++;
    }
  }

  /** Write the pending summary once its interval is over (call it from a timer). */
  flush(): void {
    const now = this.now();
    if (this.suppressed > 0 && now - this.windowStart >= this.intervalMs) this.summarize(now);
  }

  private summarize(now: number): void {
    if (this.suppressed > 0) {
      const s = Math.round((now - this.windowStart) / 1000);
      this.write(
        this.what !== undefined
          ? `${this.suppressed} more ${this.what} in the last ${s} s`
          : `${this.suppressed} more similar message(s) suppressed in the last ${s} s`,
      );
    }
    this.windowStart = now;
    this.count = 0;
    this.suppressed = 0;
  }
}

export interface AuthenticatorOptions {
  /** Our sender id: a CN's name, or MLR_ID. */
  self: string;
  role: Role;
  /** The key for messages to and from `peer` (hex); undefined = unknown peer. */
  keyOf: (peer: string) => string | undefined;
  /** One line per rejected message (rate-limited here). */
  log: (line: string) => void;
  windowMs?: number;
  now?: () => number;
  replayCacheMax?: number;
}

/** Keys, replay caches and the rejection log of one daemon; shared by all its sessions. */
export class Authenticator {
  private readonly caches = new Map<string, ReplayCache>();
  /** Each peer's key, prepared once. */
  private readonly keys = new Map<string, MacKey>();
  readonly rejections: RateLimitedLog;
  readonly windowMs: number;
  readonly now: () => number;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.windowMs = opts.windowMs ?? AUTH_WINDOW_MS;
    this.now = opts.now ?? Date.now;
    // Log intervals are durations: on the monotonic clock unless a test drives the wall clock.
    this.rejections = new RateLimitedLog(opts.log, opts.now ?? monotonicMs);
  }

  get self(): string {
    return this.opts.self;
  }

  /** A guard for one session (connection) with the peer `describe` (its address, for the log). */
  session(describe: string, peer?: string): SessionGuard {
    return new SessionGuard(this, describe, peer);
  }

  /** @internal */
  key(peer: string): MacKey | undefined {
    let k = this.keys.get(peer);
    if (k === undefined) {
      const hex = this.opts.keyOf(peer);
      if (hex === undefined || !/^[0-9a-f]{64}$/i.test(hex)) return undefined;
      k = new MacKey(Buffer.from(hex, 'hex'));
      this.keys.set(peer, k);
    }
    return k;
  }

  /** @internal */
  cache(peer: string): ReplayCache {
    let c = this.caches.get(peer);
    if (!c) {
      c = new ReplayCache(this.opts.replayCacheMax);
      this.caches.set(peer, c);
    }
    return c;
  }

  /** @internal */
  get role(): Role {
    return this.opts.role;
  }
}

const NONCE_RE = /^[0-9a-f]{32}$/;
/** A peer-supplied string as it appears in the log: quoted, control characters escaped. */
const show = (s: string): string => (/^[\w .:-]*$/.test(s) ? `'${s}'` : JSON.stringify(s));
const MAC_RE = /^[0-9a-f]{64}$/;

/** Seals outgoing and opens incoming envelopes of one session; fixes the peer's identity. */
export class SessionGuard {
  private bound: string | undefined;
  /** The bound peer's key and replay cache (the Authenticator's, looked up once per session, not per message). */
  private boundKey: MacKey | undefined;
  private boundCache: ReplayCache | undefined;

  constructor(
    private readonly auth: Authenticator,
    private readonly describe: string,
    /** The only sender accepted (a CN expects 'mlr'); undefined = any sender with a key (the MLR). */
    private readonly expected?: string,
  ) {}

  /** The authenticated peer of this session, once its first message checked out. */
  get identity(): string | undefined {
    return this.bound;
  }

  /** The key outgoing envelopes are signed with: the bound peer's, else the expected peer's (undefined: none). */
  private sealingKey(): MacKey | undefined {
    if (this.boundKey !== undefined) return this.boundKey;
    const peer = this.bound ?? this.expected;
    return peer === undefined ? undefined : this.auth.key(peer);
  }

  /** Stamp `env` with from/ts/nonce/auth. Without a known peer key it goes out unsigned. */
  seal(env: Envelope): Envelope {
    const key = this.sealingKey();
    if (!key) return env;
    const body = env.re === undefined ? canonicalSentBody(env.body) : canonicalJson(env.body);
    if (body === undefined) return env;
    const stamped = stamp(env, this.auth.self, this.auth.now(), freshNonce());
    stamped.auth = key.macHex(canonicalText(stamped, this.auth.role, body));
    return stamped;
  }

  /**
   * seal(env) written as the JSON text that is sent: the fields of the sealed envelope in the same order,
   * with the body in its canonical form (the text the HMAC covers, so the body is serialised once, not
   * again by JSON.stringify). A receiver parses the same envelope. Undefined when the envelope would go
   * out unsigned (no key for the peer, a body nested too deeply): the caller sends it unsigned then.
   */
  sealJson(env: Envelope): string | undefined {
    if (this.sealingKey() === undefined) return undefined;
    const body = env.re === undefined ? canonicalSentBody(env.body) : canonicalReplyBody(env.body);
    if (body === undefined) return undefined;
    return this.sealWith(item(env.v), env.type, env.id, env.re, body);
  }

  /**
   * sealJson for the envelope `{v: SCHEMA_VERSION, type, id | re, body}` whose body is given as its
   * canonical JSON text already (core/schema.ts Codec.text): nothing is serialised again.
   */
  sealText(type: string, id: number | undefined, re: number | undefined, body: string): string | undefined {
    return this.sealWith(VERSION_TEXT, type, id, re, body);
  }

  private sealWith(v: string, envType: string, envId: number | undefined, envRe: number | undefined, body: string): string | undefined {
    const key = this.sealingKey();
    if (!key) return undefined;
    const from = this.auth.self;
    const ts = this.auth.now();
    const nonce = freshNonce();
    const type = quote(envType);
    const id = item(envId);
    const re = item(envRe);
    const f = quote(from);
    const t = item(ts);
    const auth = key.macHex(`MLRP-HMAC-1\n${this.auth.role}\n[${v},${type},${id},${re},${f},${t},"${nonce}"]\n${body}`);
    const ref = (envId !== undefined ? `"id":${id},` : '') + (envRe !== undefined ? `"re":${re},` : '');
    return `{"v":${v},"type":${type},${ref}"body":${body},"from":${f},"ts":${t},"nonce":"${nonce}","auth":"${auth}"}`;
  }

  /** Check `env` (see the module header); the error names the failed check. Logs each rejection. */
  open(env: Envelope): Result<string> {
    const r = this.check(env);
    if (!r.ok)
      this.auth.rejections.log(
        `rejected ${show(env.type)} from ${this.describe}${env.from !== undefined ? ` (claims ${show(env.from)})` : ''}: ${r.error}`,
      );
    return r;
  }

  private check(env: Envelope): Result<string> {
    const { from, ts, nonce, auth } = env;
    if (from === undefined || ts === undefined || nonce === undefined || auth === undefined) {
      return err('not authenticated (no from/ts/nonce/auth)');
    }
    if (!NONCE_RE.test(nonce) || !MAC_RE.test(auth)) return err('malformed nonce or auth field');
    if (this.expected !== undefined && from !== this.expected) return err(`unknown sender ${show(from)} (expected '${this.expected}')`);
    const key = from === this.bound ? this.boundKey! : this.auth.key(from);
    if (!key) return err(`unknown sender ${show(from)} (no key for it)`);
    if (this.bound !== undefined && from !== this.bound) return err(`sender '${from}' is not '${this.bound}', who this session belongs to`);
    const now = this.auth.now();
    const skew = ts - now;
    if (Math.abs(skew) > this.auth.windowMs) {
      return err(
        `timestamp ${(skew / 1000).toFixed(1)} s off our clock (window ${this.auth.windowMs / 1000} s; are the clocks synchronised?)`,
      );
    }
    const peerRole: Role = this.auth.role === 'mlr' ? 'cn' : 'mlr';
    const body = canonicalJson(env.body);
    if (body === undefined) return err('body nested too deeply to authenticate');
    if (!key.verifyHex(canonicalText(env, peerRole, body), auth)) return err('bad HMAC (wrong key, or the message was altered)');
    const added = (from === this.bound ? this.boundCache! : this.auth.cache(from)).add(nonce, ts + this.auth.windowMs, now);
    if (added === 'replay') return err('replayed nonce');
    if (added === 'full') return err('replay cache full (too many messages within the window)');
    if (this.bound === undefined) {
      this.bound = from;
      this.boundKey = key;
      this.boundCache = this.auth.cache(from);
    }
    return ok(from);
  }
}

/** A CN's sessions with its MLR: signs as `self` with `secret`, accepts only 'mlr'. One per CN process. */
export function cnGuards(
  self: string,
  secret: string,
  log: (line: string) => void,
  now?: () => number,
): (describe: string) => SessionGuard {
  const auth = new Authenticator({
    self,
    role: 'cn',
    keyOf: (peer) => (peer === MLR_ID ? secret : undefined),
    log,
    ...(now ? { now } : {}),
  });
  return (describe) => auth.session(describe, MLR_ID);
}
