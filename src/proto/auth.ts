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
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Envelope } from '../core/messages.js';
import { err, ok, type Result } from '../core/result.js';

/** The MLR's sender id. */
export const MLR_ID = 'mlr';
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
/** Deepest body nesting that is canonicalised (MLRP bodies nest at most 4 deep). */
const MAX_DEPTH = 32;

export type Role = 'cn' | 'mlr';

/** Canonical JSON of a parsed JSON value, or undefined if it nests deeper than MAX_DEPTH. */
export function canonicalJson(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    const parts: string[] = [];
    for (const item of value as unknown[]) {
      const c = canonicalJson(item, depth + 1);
      if (c === undefined) return undefined;
      parts.push(c);
    }
    return `[${parts.join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort()) {
    if (obj[key] === undefined) continue;
    const c = canonicalJson(obj[key], depth + 1);
    if (c === undefined) return undefined;
    parts.push(`${JSON.stringify(key)}:${c}`);
  }
  return `{${parts.join(',')}}`;
}

/** Canonical JSON of bodies lately signed or checked, by object: one body sent to several CNs is canonicalised once. */
const canonicalBodies = new WeakMap<object, string>();

function canonicalBody(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return canonicalJson(body);
  const known = canonicalBodies.get(body);
  if (known !== undefined) return known;
  const c = canonicalJson(body);
  if (c !== undefined) canonicalBodies.set(body, c);
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

/** The bytes the HMAC covers (see the module header), or undefined for a body nested too deep. */
export function canonicalBytes(env: Envelope, role: Role): Buffer | undefined {
  const body = canonicalBody(env.body);
  if (body === undefined) return undefined;
  const head = JSON.stringify([env.v, env.type, env.id ?? null, env.re ?? null, env.from ?? null, env.ts ?? null, env.nonce ?? null]);
  return Buffer.from(`MLRP-HMAC-1\n${role}\n${head}\n${body}`, 'utf8');
}

function digest(key: Buffer, bytes: Buffer): Buffer {
  return createHmac('sha256', key).update(bytes).digest();
}

/** HMAC-SHA256 of `bytes` as 64 lower-case hex digits (the `auth` field). */
export function hmac(key: Buffer, bytes: Buffer): string {
  return digest(key, bytes).toString('hex');
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

  constructor(private readonly max = REPLAY_CACHE_MAX) {}

  get size(): number {
    return this.seen.size;
  }

  /** Remember `nonce` until `expires`; 'replay' if it is known, 'full' if there is no room. */
  add(nonce: string, expires: number, now: number): 'ok' | 'replay' | 'full' {
    const known = this.seen.get(nonce);
    if (known !== undefined && known >= now) return 'replay';
    if (this.seen.size >= this.max && this.earliest < now) this.prune(now);
    if (this.seen.size >= this.max) return 'full';
    this.seen.set(nonce, expires);
    if (expires < this.earliest) this.earliest = expires;
    return 'ok';
  }

  /** Forget expired nonces; a full cache is scanned at most once per expiry, not once per message. */
  private prune(now: number): void {
    this.earliest = Infinity;
    for (const [n, exp] of this.seen) {
      if (exp < now) this.seen.delete(n);
      else if (exp < this.earliest) this.earliest = exp;
    }
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
    private readonly now: () => number = Date.now,
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
  private readonly keys = new Map<string, Buffer>();
  readonly rejections: RateLimitedLog;
  readonly windowMs: number;
  readonly now: () => number;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.windowMs = opts.windowMs ?? AUTH_WINDOW_MS;
    this.now = opts.now ?? Date.now;
    this.rejections = new RateLimitedLog(opts.log, this.now);
  }

  get self(): string {
    return this.opts.self;
  }

  /** A guard for one session (connection) with the peer `describe` (its address, for the log). */
  session(describe: string, peer?: string): SessionGuard {
    return new SessionGuard(this, describe, peer);
  }

  /** @internal */
  key(peer: string): Buffer | undefined {
    let k = this.keys.get(peer);
    if (k === undefined) {
      const hex = this.opts.keyOf(peer);
      if (hex === undefined || !/^[0-9a-f]{64}$/i.test(hex)) return undefined;
      k = Buffer.from(hex, 'hex');
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

  /** Stamp `env` with from/ts/nonce/auth. Without a known peer key it goes out unsigned. */
  seal(env: Envelope): Envelope {
    const peer = this.bound ?? this.expected;
    const key = peer === undefined ? undefined : this.auth.key(peer);
    if (!key) return env;
    const stamped: Envelope = { ...env, from: this.auth.self, ts: this.auth.now(), nonce: freshNonce() };
    const bytes = canonicalBytes(stamped, this.auth.role);
    if (!bytes) return env;
    return { ...stamped, auth: hmac(key, bytes) };
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
    const key = this.auth.key(from);
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
    const bytes = canonicalBytes(env, peerRole);
    if (!bytes) return err('body nested too deeply to authenticate');
    if (!timingSafeEqual(digest(key, bytes), Buffer.from(auth, 'hex'))) return err('bad HMAC (wrong key, or the message was altered)');
    const added = this.auth.cache(from).add(nonce, ts + this.auth.windowMs, now);
    if (added === 'replay') return err('replayed nonce');
    if (added === 'full') return err('replay cache full (too many messages within the window)');
    this.bound = from;
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
