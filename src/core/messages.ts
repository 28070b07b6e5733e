// The MLRP message schema (version 1): one envelope and a catalogue of typed, validated bodies. The
// same bytes travel over TCP (framed by proto/mlrp.ts) and, later, MQTT; a transport never looks
// inside. Requests carry `id`; replies carry `re` = the request's id and type 'reply' or 'error'.
// Reserved envelope fields `from`, `ts`, `nonce`, `auth` are where per-message authentication
// (sender id, timestamp, nonce, HMAC over the body) slots in without touching CN or MLR logic.
import { err, ok, type Result } from './result.js';
import { array, int, ipv4text, literal, mac, nullable, object, optional, str, tunnelType, type Infer, type Validator } from './schema.js';

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

const cnRef = object({ name: str(64), addr: ipv4text });
export type CnRef = Infer<typeof cnRef>;

const pool = object({
  network: ipv4text,
  prefix: int(0, 32),
  first: ipv4text,
  last: ipv4text,
  exclude: array(ipv4text, 64),
});
export type PoolWire = Infer<typeof pool>;

/** What the MLR tells a CN about one mobile station. `cell` is the /30's network address N. */
const binding = object({
  mac: mac,
  cell: ipv4text,
  parent: cnRef,
  current: nullable(cnRef),
  tunnel: optional(object({ type: tunnelType, key: int(1, 0xffffff) })),
  expires: int(0, Number.MAX_SAFE_INTEGER),
  state: literal('offered', 'bound'),
});
export type BindingView = Infer<typeof binding>;

const detectedVia = literal('dhcp', 'arp', 'ip', 'assoc', 'restore');
export type DetectedVia = Infer<typeof detectedVia>;

/** Request bodies, by message type, and the body of their successful reply. */
export const requests = {
  // CN -> MLR
  bind: {
    body: object({
      network: str(64),
      cn: cnRef,
      tunnels: array(tunnelType, 8),
      pools: array(pool, 64),
      software: optional(str(64)),
    }),
    reply: object({ bindings: array(binding), peers: array(cnRef, 4096) }),
  },
  ping: { body: object({}), reply: object({ time: int(0, Number.MAX_SAFE_INTEGER) }) },
  /** DHCPDISCOVER: find or allocate a cell for this MAC and hold it as an offer. */
  discover: {
    body: object({ mac: mac, requested: optional(ipv4text) }),
    reply: object({ binding: binding }),
  },
  /** DHCPREQUEST (any state): confirm `ip` for `mac`, moving the binding to this CN. */
  request: {
    body: object({ mac: mac, ip: ipv4text, leaseTime: int(60, 31536000), state: literal('selecting', 'init-reboot', 'renewing') }),
    reply: object({ outcome: literal('ack', 'nak', 'ignore'), binding: optional(binding), reason: optional(str(200)) }),
  },
  release: { body: object({ mac: mac, ip: ipv4text, decline: optional(literal('yes')) }), reply: object({}) },
  /** A MAC was seen in this CN's cell (ARP/IP activity or an association): move it here if bound elsewhere. */
  seen: {
    /** leaseTime: how long a statically addressed host adopted on this report holds its cell (the CN's lease_time). */
    body: object({ mac: mac, ip: optional(ipv4text), via: detectedVia, leaseTime: optional(int(60, 31536000)) }),
    reply: object({ outcome: literal('moved', 'here', 'unknown', 'refused'), binding: optional(binding), reason: optional(str(200)) }),
  },
  /** Every other CN of the network, for status displays and connectivity checks. */
  peers: { body: object({}), reply: object({ peers: array(object({ name: str(64), addr: ipv4text, online: literal('yes', 'no') }), 4096) }) },
  status: { body: object({}), reply: object({ cns: array(object({ name: str(64), addr: ipv4text, online: literal('yes', 'no'), pools: array(pool, 64) })), bindings: array(binding) }) },
  // MLR -> CN
  prepare: { body: object({ tx: int(1, Number.MAX_SAFE_INTEGER), binding: binding, previous: nullable(cnRef) }), reply: object({}) },
  commit: { body: object({ tx: int(1, Number.MAX_SAFE_INTEGER), binding: binding, previous: nullable(cnRef) }), reply: object({}) },
  abort: { body: object({ tx: int(1, Number.MAX_SAFE_INTEGER) }), reply: object({}) },
  remove: { body: object({ binding: binding }), reply: object({}) },
} satisfies Record<string, { body: Validator<unknown>; reply: Validator<unknown> }>;

export type RequestType = keyof typeof requests;
export type RequestBody<T extends RequestType> = Infer<(typeof requests)[T]['body']>;
export type ReplyBody<T extends RequestType> = Infer<(typeof requests)[T]['reply']>;

export function isRequestType(t: string): t is RequestType {
  return Object.prototype.hasOwnProperty.call(requests, t);
}

const errorBody = object({ code: str(64), message: str(1000) });
export type ErrorBody = Infer<typeof errorBody>;

const envelopeShape = object({
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

/** Decode and check the envelope (not yet the body: that depends on what it answers). */
export function decodeEnvelope(payload: Uint8Array): Result<Envelope> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return err('message is not valid JSON');
  }
  const shape = envelopeShape(parsed, 'message');
  if (!shape.ok) return shape;
  if (shape.value.v !== SCHEMA_VERSION) return err(`message schema version ${shape.value.v} is not supported (this end speaks ${SCHEMA_VERSION})`);
  return ok({ ...shape.value, body: (parsed as { body?: unknown }).body } as Envelope);
}

export function validateRequestBody<T extends RequestType>(type: T, body: unknown): Result<RequestBody<T>> {
  return requests[type].body(body, `${type}.body`) as Result<RequestBody<T>>;
}

export function validateReplyBody<T extends RequestType>(type: T, body: unknown): Result<ReplyBody<T>> {
  return requests[type].reply(body, `${type}.reply`) as Result<ReplyBody<T>>;
}

export function validateErrorBody(body: unknown): Result<ErrorBody> {
  return errorBody(body, 'error.body');
}
