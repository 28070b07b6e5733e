// SPDX-License-Identifier: GPL-2.0-only
// The MLRP message schema (version 1): one envelope and a catalogue of typed bodies, each with a codec
// that checks the JSON and decodes it (addresses into numbers, pools into ranges) so that the RPC
// layer hands CN and MLR logic typed values only, and encodes their replies back. The same bytes travel over TCP (framed by proto/mlrp.ts) and, later, MQTT; a transport never looks
// inside. Requests carry `id`; replies carry `re` = the request's id and type 'reply' or 'error'.
// Reserved envelope fields `from`, `ts`, `nonce`, `auth` are where per-message authentication
// (sender id, timestamp, nonce, HMAC over the body) slots in without touching CN or MLR logic.
import { bindingCodec, cnRefCodec } from './binding.js';
import { cidrContains, maskOf } from './ip.js';
import type { PoolRange } from './pool.js';
import { err, ok, type Result } from './result.js';
import {
  array,
  int,
  ipv4,
  literal,
  mac,
  nullable,
  object,
  optional,
  refine,
  str,
  textOf,
  tunnelType,
  type Codec,
  type Infer,
} from './schema.js';

export const SCHEMA_VERSION = 1;

export interface Envelope {
  v: number;
  type: string;
  id?: number;
  re?: number;
  from?: string;
  ts?: number;
  nonce?: string;
  auth?: string;
  body: unknown;
}

/** A CN's address pool: decoded straight into the PoolRange the registry allocates from. */
const pool: Codec<PoolRange> = refine(
  object({ network: ipv4, prefix: int(0, 30), first: ipv4, last: ipv4, exclude: array(ipv4, 64) }),
  (p) => {
    const subnet = { network: p.network, prefix: p.prefix };
    if ((p.network & maskOf(p.prefix)) >>> 0 !== p.network) return 'network is not aligned to its prefix';
    if (!cidrContains(subnet, p.first) || !cidrContains(subnet, p.last)) return 'first/last lie outside the subnet';
    if (p.first > p.last) return 'first is after last';
    return undefined;
  },
);

const detectedVia = literal('dhcp', 'arp', 'ip', 'assoc', 'restore');
export type DetectedVia = Infer<typeof detectedVia>;

const txId = int(1, Number.MAX_SAFE_INTEGER);
const online = literal('yes', 'no');

/**
 * Replies that list bindings, peers or CNs carry one page each, so that every message stays far below
 * the 256 KiB frame whatever the register holds (a binding encodes to at most about 300 bytes, a peer
 * to about 100, a CN with 64 pools to tens of kilobytes: CN pages are cut by size too, in
 * mlr/service.ts). A reply that has more says where the next page starts (`…Next`: the last key
 * sent); the next request passes it as `…After`.
 */
export const PAGE = { bindings: 400, peers: 500, cns: 100 } as const;

/**
 * Optional protocol features, announced by a CN in its bind (`features`) and used by the MLR only on
 * sessions that announced them; either end without one works as before.
 * - inlineCommit: for a move in which this CN is the only participant to be told (a new client at its
 *   home CN; a move whose other participants are offline), for a renewal at this CN, and for every
 *   move asked by this CN's `seen` (whoever else is told: that reply goes out beside the other
 *   commits, for a roam before the move is on the MLR's disk), the MLR sends no `commit`: the
 *   `request` or `seen` reply carries the binding and the transaction's `tx`, and the CN applies it
 *   as that commit before it answers the client. A `remove` then carries `tx` too, and the CN applies
 *   no reply, commit or remove older than the newest transaction it applied for the station in this
 *   session (the MLR may free the station's lock before its reply is written, so a later
 *   transaction's commit may arrive first).
 */
export const FEATURES = { inlineCommit: 'inline-commit' } as const;

/** Request bodies, by message type, and the body of their successful reply. */
export const requests = {
  // CN -> MLR
  bind: {
    body: object({
      network: str(64),
      cn: cnRefCodec,
      tunnels: array(tunnelType, 8),
      pools: array(pool, 64),
      software: optional(str(64)),
      /**
       * Protocol features this CN understands (FEATURES): an MLR that knows one may use it on this
       * session; an old MLR drops the field (unknown fields are dropped) and uses none. Unknown names
       * are ignored. Bounded generously (64 names of up to 64 characters), so that a later CN's longer
       * list is not refused by this MLR.
       */
      features: optional(array(str(64), 64)),
    }),
    /** The first page of what involves the CN; with a `…Next`, ask `sync` for the rest before acting on it. */
    reply: object({
      bindings: array(bindingCodec, PAGE.bindings),
      peers: array(cnRefCodec, PAGE.peers),
      bindingsNext: optional(mac),
      peersNext: optional(str(64)),
      /** The MLR's lease_grace (s): a binding's `expires` is the client's lease end plus this. */
      leaseGrace: optional(int(0, 31536000)),
    }),
  },
  /**
   * The next pages after a bind reply with a `…Next`: bindings involving this CN with a MAC after
   * `bindingsAfter`, peers with a name after `peersAfter` (each in its own order; an absent `…After`
   * with the other given means that list is complete and returns nothing of it).
   */
  sync: {
    body: object({ bindingsAfter: optional(mac), peersAfter: optional(str(64)) }),
    reply: object({
      bindings: array(bindingCodec, PAGE.bindings),
      peers: array(cnRefCodec, PAGE.peers),
      bindingsNext: optional(mac),
      peersNext: optional(str(64)),
    }),
  },
  ping: { body: object({}), reply: object({ time: int(0, Number.MAX_SAFE_INTEGER) }) },
  /** DHCPDISCOVER: find or allocate a cell for this MAC and hold it as an offer. */
  discover: {
    body: object({ mac, requested: optional(ipv4) }),
    reply: object({ binding: bindingCodec }),
  },
  /**
   * DHCPREQUEST (any state): confirm `ip` for `mac`, moving the binding to this CN. With `tx` (only to a
   * CN that announced FEATURES.inlineCommit at bind) the reply is the move's commit for this CN: no
   * `commit` message comes, and the CN applies `binding` as it would that commit, before its DHCPACK.
   */
  request: {
    body: object({ mac, ip: ipv4, leaseTime: int(60, 31536000), state: literal('selecting', 'init-reboot', 'renewing') }),
    reply: object({
      outcome: literal('ack', 'nak', 'ignore'),
      binding: optional(bindingCodec),
      reason: optional(str(200)),
      tx: optional(txId),
    }),
  },
  release: { body: object({ mac, ip: ipv4, decline: optional(literal('yes')) }), reply: object({}) },
  /** A MAC was seen in this CN's cell (ARP/IP activity or an association): move it here if bound elsewhere. */
  seen: {
    /** leaseTime: how long a statically addressed host adopted on this report holds its cell (the CN's lease_time). */
    body: object({ mac, ip: optional(ipv4), via: detectedVia, leaseTime: optional(int(60, 31536000)) }),
    /** `tx`: as in `request`'s reply, the move's commit for this CN carried in the reply. */
    reply: object({
      outcome: literal('moved', 'here', 'unknown', 'refused'),
      binding: optional(bindingCodec),
      reason: optional(str(200)),
      tx: optional(txId),
    }),
  },
  /**
   * A station served here can no longer be reached here: hostapd reported its departure (disassoc,
   * deauth) or the kernel's neighbour entry for its N+1 failed while traffic flowed to it. The MLR
   * then pages the other CNs for it (`page`). `paging`: whether it did (no when it refused or is
   * already paging for this station).
   */
  lost: {
    body: object({ mac, ip: ipv4, why: literal('disassoc', 'unreachable') }),
    reply: object({ paging: literal('yes', 'no'), reason: optional(str(200)) }),
  },
  /** Every other CN of the network, for status displays and connectivity checks. */
  peers: { body: object({}), reply: object({ peers: array(object({ name: str(64), addr: ipv4, online }), 4096) }) },
  /** The register, a page at a time (`…After` as `…Next` of the previous page; none: from the start). */
  status: {
    body: object({ cnsAfter: optional(str(64)), bindingsAfter: optional(mac) }),
    reply: object({
      cns: array(object({ name: str(64), addr: ipv4, online, pools: array(pool, 64) }), PAGE.cns),
      bindings: array(bindingCodec, PAGE.bindings),
      cnsNext: optional(str(64)),
      bindingsNext: optional(mac),
    }),
  },
  // MLR -> CN
  /** Phase 1: can you take part? A CN reserves what the move needs; `abort` gives it back. */
  prepare: { body: object({ tx: txId, binding: bindingCodec, previous: nullable(cnRefCodec) }), reply: object({}) },
  /** Phase 2: this is now the binding (also sent on its own to reconcile a CN that missed a commit). */
  commit: { body: object({ tx: txId, binding: bindingCodec, previous: nullable(cnRefCodec) }), reply: object({}) },
  abort: { body: object({ tx: txId }), reply: object({}) },
  /**
   * The binding is gone. `tx` (from MLRs that send inline commits) orders it against the commits and
   * replies of the same session: a CN ignores a remove older than the newest transaction it applied.
   */
  remove: { body: object({ binding: bindingCodec, tx: optional(txId) }), reply: object({}) },
  /**
   * Presence check before a traffic-detected move: does the station `mac` still answer in your cell, at
   * `ip` (its N+1)? Sent to the previous current CN, which asks by a unicast ARP request from N+2.
   */
  probe: { body: object({ mac, ip: ipv4 }), reply: object({ present: literal('yes', 'no') }) },
  /**
   * Paging: look for the station `mac` in your cell. The CN sends unicast ARP requests for `ip` (its
   * N+1) from the cell's gateway N+2; a station there answers, which the CN detects as usual (`seen`).
   * Answered at once; what the station answers arrives later, as a detection.
   */
  page: { body: object({ mac, ip: ipv4 }), reply: object({}) },
} satisfies Record<string, { body: Codec<unknown>; reply: Codec<unknown> }>;

export type RequestType = keyof typeof requests;
export type RequestBody<T extends RequestType> = Infer<(typeof requests)[T]['body']>;
export type ReplyBody<T extends RequestType> = Infer<(typeof requests)[T]['reply']>;

export function isRequestType(t: string): t is RequestType {
  return Object.prototype.hasOwnProperty.call(requests, t);
}

/** `retryAfter` (ms), with code `busy`: when to ask again (older peers drop the field and back off as they do). */
const errorBody = object({ code: str(64), message: str(1000), retryAfter: optional(int(0, 3_600_000)) });
export type ErrorBody = Infer<typeof errorBody>;

/** The envelope's fields, checked by the generic codec (decodeEnvelope's fallback, and the reference its fast path must match). */
export const envelopeShape = object({
  v: int(0, 255),
  type: str(32),
  id: optional(int(0, Number.MAX_SAFE_INTEGER)),
  re: optional(int(0, Number.MAX_SAFE_INTEGER)),
  from: optional(str(64)),
  ts: optional(int(0, Number.MAX_SAFE_INTEGER)),
  nonce: optional(str(64)),
  auth: optional(str(256)),
});

export function encodeEnvelope(env: Envelope): Buffer {
  return Buffer.from(JSON.stringify(env), 'utf8');
}

const isInt = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
const isAbsentOr = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || v === null || check(v);
const isStr = (max: number) => (v: unknown) => typeof v === 'string' && v.length <= max;
const isStr64 = isStr(64);
const isStr256 = isStr(256);
const isId = (v: unknown) => isInt(v, Number.MAX_SAFE_INTEGER);

/**
 * The envelope of a parsed message when every field is well-formed (exactly what envelopeShape
 * accepts), else undefined: the common case checked without building paths or error texts.
 */
function quickEnvelope(parsed: unknown): Envelope | undefined {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const m = parsed as Record<string, unknown>;
  const { v, type, id, re, from, ts, nonce, auth } = m;
  if (!isInt(v, 255) || typeof type !== 'string' || type.length > 32) return undefined;
  if (!isAbsentOr(id, isId) || !isAbsentOr(re, isId) || !isAbsentOr(ts, isId)) return undefined;
  if (!isAbsentOr(from, isStr64) || !isAbsentOr(nonce, isStr64) || !isAbsentOr(auth, isStr256)) return undefined;
  // The same fields, in the same order, as envelopeShape's decode gives (absent or null: left out).
  const env = { v, type } as Envelope;
  if (id !== undefined && id !== null) env.id = id as number;
  if (re !== undefined && re !== null) env.re = re as number;
  if (from !== undefined && from !== null) env.from = from as string;
  if (ts !== undefined && ts !== null) env.ts = ts as number;
  if (nonce !== undefined && nonce !== null) env.nonce = nonce as string;
  if (auth !== undefined && auth !== null) env.auth = auth as string;
  env.body = m.body;
  return env;
}

/** Decode and check the envelope (not yet the body: that depends on what it answers). */
export function decodeEnvelope(payload: Uint8Array): Result<Envelope> {
  let parsed: unknown;
  try {
    parsed = JSON.parse((Buffer.isBuffer(payload) ? payload : Buffer.from(payload)).toString('utf8'));
  } catch {
    return err('message is not valid JSON');
  }
  let env = quickEnvelope(parsed);
  if (env === undefined) {
    const shape = envelopeShape.decode(parsed, 'message');
    if (!shape.ok) return shape;
    env = { ...shape.value, body: (parsed as { body?: unknown }).body };
  }
  if (env.v !== SCHEMA_VERSION) return err(`message schema version ${env.v} is not supported (this end speaks ${SCHEMA_VERSION})`);
  return ok(env);
}

/** Check a request body and decode it into numbers and canonical forms. */
export function decodeRequestBody<T extends RequestType>(type: T, body: unknown): Result<RequestBody<T>> {
  return (requests[type].body as Codec<unknown>).decode(body, `${type}.body`) as Result<RequestBody<T>>;
}

export function decodeReplyBody<T extends RequestType>(type: T, body: unknown): Result<ReplyBody<T>> {
  return (requests[type].reply as Codec<unknown>).decode(body, `${type}.reply`) as Result<ReplyBody<T>>;
}

export function encodeRequestBody<T extends RequestType>(type: T, body: RequestBody<T>): unknown {
  return (requests[type].body as Codec<unknown>).encode(body);
}

export function encodeReplyBody<T extends RequestType>(type: T, body: ReplyBody<T>): unknown {
  return (requests[type].reply as Codec<unknown>).encode(body);
}

/** A request body's canonical JSON text (what is signed and sent), written from the typed value. */
export function requestBodyText<T extends RequestType>(type: T, body: RequestBody<T>): string | undefined {
  return textOf(requests[type].body as Codec<unknown>, body);
}

/** A reply body's canonical JSON text, written from the typed value. */
export function replyBodyText<T extends RequestType>(type: T, body: ReplyBody<T>): string | undefined {
  return textOf(requests[type].reply as Codec<unknown>, body);
}

export function decodeErrorBody(body: unknown): Result<ErrorBody> {
  return errorBody.decode(body, 'error.body');
}
