// SPDX-License-Identifier: GPL-2.0-only
// ubus wire messages as ubusd and libubus exchange them over the unix socket: an 8-byte big-endian
// header (version 0, type, seq u16, peer u32) followed by one container blob of UBUS_ATTR_*
// attributes. This module owns the protocol constants (message types, attribute ids, status codes),
// the encoder, the total decoder (typed attributes; DATA and SIGNATURE decoded as blobmsg tables,
// their raw bytes kept for verbatim forwarding) and the stream deframer, which bounds a message at
// 1 MiB as ubusd does. Unknown attribute ids are skipped (as libubus does); a known attribute with
// the wrong shape is an error. No I/O here: the socket client is platform/ubus-client.ts.
import { err, ok, type Result } from '../core/result.js';
import {
  BLOB_HEADER_BYTES,
  blobAttrs,
  blobPadLen,
  decodeBlobmsgTable,
  encodeBlobmsgTable,
  putBlobAttr,
  putBlobNested,
  putBlobString,
  putBlobU32,
  putBlobU8,
  readBlobNested,
  readBlobString,
  readBlobU32,
  readBlobU8,
  type BlobAttr,
  type BlobmsgDecodeOptions,
  type BlobmsgTable,
  type BlobmsgTableInput,
} from './blob.js';
import { u32 } from './bytes.js';

// ---------------------------------------------------------------------------------------------
// Constants

export const UBUS_MSG = {
  HELLO: 0,
  STATUS: 1,
  DATA: 2,
  PING: 3,
  LOOKUP: 4,
  INVOKE: 5,
  ADD_OBJECT: 6,
  REMOVE_OBJECT: 7,
  SUBSCRIBE: 8,
  UNSUBSCRIBE: 9,
  NOTIFY: 10,
  MONITOR: 11,
} as const;

export const UBUS_ATTR = {
  UNSPEC: 0,
  STATUS: 1,
  OBJPATH: 2,
  OBJID: 3,
  METHOD: 4,
  OBJTYPE: 5,
  SIGNATURE: 6,
  DATA: 7,
  TARGET: 8,
  ACTIVE: 9,
  NO_REPLY: 10,
  SUBSCRIBERS: 11,
  USER: 12,
  GROUP: 13,
} as const;
const UBUS_ATTR_MAX = 14;

export const UBUS_STATUS = {
  OK: 0,
  INVALID_COMMAND: 1,
  INVALID_ARGUMENT: 2,
  METHOD_NOT_FOUND: 3,
  NOT_FOUND: 4,
  NO_DATA: 5,
  PERMISSION_DENIED: 6,
  TIMEOUT: 7,
  NOT_SUPPORTED: 8,
  UNKNOWN_ERROR: 9,
  CONNECTION_FAILED: 10,
  NO_MEMORY: 11,
  PARSE_ERROR: 12,
  SYSTEM_ERROR: 13,
} as const;
export type UbusStatusName = keyof typeof UBUS_STATUS;

const MSG_NAMES = Object.keys(UBUS_MSG);
const STATUS_NAMES = Object.keys(UBUS_STATUS) as UbusStatusName[];
const STATUS_TEXT = [
  'ok',
  'invalid command',
  'invalid argument',
  'method not found',
  'object not found',
  'no data',
  'permission denied',
  'timed out',
  'not supported',
  'unknown error',
  'connection failed',
  'out of memory',
  'parse error',
  'system error',
];

/** "INVOKE", ... or "type N". */
export function ubusMessageTypeName(type: number): string {
  return MSG_NAMES[type] ?? `type ${type}`;
}

/** "METHOD_NOT_FOUND", ... or "STATUS_N" for a code outside the table. */
export function ubusStatusName(code: number): string {
  return STATUS_NAMES[code] ?? `STATUS_${code}`;
}

/** A short description of a status code ("method not found"). */
export function ubusStatusText(code: number): string {
  return STATUS_TEXT[code] ?? `unknown status ${code}`;
}

export const UBUS_HEADER_BYTES = 8;
/** ubusd's UBUS_MAX_MSGLEN: the largest padded container it accepts (header not counted). */
export const UBUS_MAX_MSGLEN = 1024 * 1024;
export const UBUS_SYSTEM_OBJECT = { EVENT: 1, ACL: 2, MONITOR: 3 } as const;
/** Ids below this are reserved for system objects; ubusd hands out random ids at or above it. */
export const UBUS_SYSTEM_OBJECT_MAX = 1024;
export const UBUS_DEFAULT_SOCKET = '/var/run/ubus/ubus.sock';
export const UBUS_LEGACY_SOCKET = '/var/run/ubus.sock';

// ---------------------------------------------------------------------------------------------
// Types

/** Decoded attributes. Integers are unsigned 32-bit; NO_REPLY/ACTIVE are booleans. */
export interface UbusAttrs {
  status?: number;
  objpath?: string;
  objid?: number;
  method?: string;
  objtype?: number;
  /** Method name → argument name → blobmsg type number. */
  signature?: BlobmsgTable;
  /** The SIGNATURE payload as received. */
  signatureRaw?: Uint8Array;
  data?: BlobmsgTable;
  /** The DATA payload as received (a list of blobmsg elements). */
  dataRaw?: Uint8Array;
  target?: number;
  active?: boolean;
  noReply?: boolean;
  subscribers?: number[];
  user?: string;
  group?: string;
}

/**
 * Attributes to encode. They are written in the order of the object's keys (ubusd and libubus
 * have fixed orders; tests compare bytes). `dataRaw`/`signatureRaw` are written verbatim and win
 * over `data`/`signature` when both are given.
 */
export interface UbusAttrsInput {
  status?: number;
  objpath?: string;
  objid?: number;
  method?: string;
  objtype?: number;
  signature?: BlobmsgTableInput;
  signatureRaw?: Uint8Array;
  data?: BlobmsgTableInput;
  dataRaw?: Uint8Array;
  target?: number;
  active?: boolean;
  noReply?: boolean;
  subscribers?: readonly number[];
  user?: string;
  group?: string;
}

export interface UbusHeader {
  type: number;
  seq: number;
  peer: number;
}

export interface UbusMessage extends UbusHeader {
  version: number;
  attrs: UbusAttrs;
  /** The container blob (header + attributes) as received, for verbatim forwarding. */
  body: Uint8Array;
}

export interface UbusMessageInput extends UbusHeader {
  attrs?: UbusAttrsInput;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function attrBytes(key: string, attrs: UbusAttrsInput): Buffer | undefined {
  switch (key) {
    case 'status':
      return attrs.status === undefined ? undefined : putBlobU32(UBUS_ATTR.STATUS, attrs.status);
    case 'objpath':
      return attrs.objpath === undefined ? undefined : putBlobString(UBUS_ATTR.OBJPATH, attrs.objpath);
    case 'objid':
      return attrs.objid === undefined ? undefined : putBlobU32(UBUS_ATTR.OBJID, attrs.objid);
    case 'method':
      return attrs.method === undefined ? undefined : putBlobString(UBUS_ATTR.METHOD, attrs.method);
    case 'objtype':
      return attrs.objtype === undefined ? undefined : putBlobU32(UBUS_ATTR.OBJTYPE, attrs.objtype);
    case 'signature':
    case 'signatureRaw': {
      const raw = attrs.signatureRaw ?? (attrs.signature === undefined ? undefined : encodeBlobmsgTable(attrs.signature));
      return raw === undefined ? undefined : putBlobAttr(UBUS_ATTR.SIGNATURE, raw);
    }
    case 'data':
    case 'dataRaw': {
      const raw = attrs.dataRaw ?? (attrs.data === undefined ? undefined : encodeBlobmsgTable(attrs.data));
      return raw === undefined ? undefined : putBlobAttr(UBUS_ATTR.DATA, raw);
    }
    case 'target':
      return attrs.target === undefined ? undefined : putBlobU32(UBUS_ATTR.TARGET, attrs.target);
    case 'active':
      return attrs.active === undefined ? undefined : putBlobU8(UBUS_ATTR.ACTIVE, attrs.active ? 1 : 0);
    case 'noReply':
      return attrs.noReply === undefined ? undefined : putBlobU8(UBUS_ATTR.NO_REPLY, attrs.noReply ? 1 : 0);
    case 'subscribers':
      return attrs.subscribers === undefined
        ? undefined
        : putBlobNested(
            UBUS_ATTR.SUBSCRIBERS,
            attrs.subscribers.map((id) => putBlobU32(0, id)),
          );
    case 'user':
      return attrs.user === undefined ? undefined : putBlobString(UBUS_ATTR.USER, attrs.user);
    case 'group':
      return attrs.group === undefined ? undefined : putBlobString(UBUS_ATTR.GROUP, attrs.group);
    default:
      throw new TypeError(`unknown ubus attribute "${key}"`);
  }
}

/** The container blob (id 0) holding the attributes, in key order. */
export function encodeUbusBody(attrs: UbusAttrsInput = {}): Buffer {
  const parts: Buffer[] = [];
  let data = false;
  let signature = false;
  for (const key of Object.keys(attrs)) {
    if (key === 'data' || key === 'dataRaw') {
      if (data) continue;
      data = attrs.data !== undefined || attrs.dataRaw !== undefined;
    }
    if (key === 'signature' || key === 'signatureRaw') {
      if (signature) continue;
      signature = attrs.signature !== undefined || attrs.signatureRaw !== undefined;
    }
    const b = attrBytes(key, attrs);
    if (b) parts.push(b);
  }
  return putBlobNested(0, parts);
}

/** Header + an already encoded container blob (for forwarding a body verbatim). */
export function encodeUbusFrame(h: UbusHeader, body: Uint8Array): Buffer {
  const out = Buffer.alloc(UBUS_HEADER_BYTES + body.length);
  out.writeUInt8(0, 0);
  out.writeUInt8(h.type & 0xff, 1);
  out.writeUInt16BE(h.seq & 0xffff, 2);
  out.writeUInt32BE(h.peer >>> 0, 4);
  out.set(body, UBUS_HEADER_BYTES);
  return out;
}

/** A whole message. Throws RangeError when the container would exceed UBUS_MAX_MSGLEN. */
export function encodeUbusMessage(m: UbusMessageInput): Buffer {
  const body = encodeUbusBody(m.attrs);
  if (body.length > UBUS_MAX_MSGLEN) throw new RangeError(`ubus message of ${body.length} bytes exceeds ${UBUS_MAX_MSGLEN}`);
  return encodeUbusFrame(m, body);
}

// ---------------------------------------------------------------------------------------------
// Decoding

function attrName(id: number): string {
  return Object.keys(UBUS_ATTR)[id] ?? `attribute ${id}`;
}

function readAttr(a: BlobAttr, attrs: UbusAttrs, opts: BlobmsgDecodeOptions): Result<void> {
  const name = attrName(a.id);
  const fail = (e: string): Result<void> => err(`${name}: ${e}`);
  switch (a.id) {
    case UBUS_ATTR.STATUS:
    case UBUS_ATTR.OBJID:
    case UBUS_ATTR.OBJTYPE:
    case UBUS_ATTR.TARGET: {
      const v = readBlobU32(a);
      if (!v.ok) return fail(v.error);
      if (a.id === UBUS_ATTR.STATUS) attrs.status = v.value;
      else if (a.id === UBUS_ATTR.OBJID) attrs.objid = v.value;
      else if (a.id === UBUS_ATTR.OBJTYPE) attrs.objtype = v.value;
      else attrs.target = v.value;
      return ok(undefined);
    }
    case UBUS_ATTR.OBJPATH:
    case UBUS_ATTR.METHOD:
    case UBUS_ATTR.USER:
    case UBUS_ATTR.GROUP: {
      const v = readBlobString(a);
      if (!v.ok) return fail(v.error);
      if (a.id === UBUS_ATTR.OBJPATH) attrs.objpath = v.value;
      else if (a.id === UBUS_ATTR.METHOD) attrs.method = v.value;
      else if (a.id === UBUS_ATTR.USER) attrs.user = v.value;
      else attrs.group = v.value;
      return ok(undefined);
    }
    case UBUS_ATTR.ACTIVE:
    case UBUS_ATTR.NO_REPLY: {
      const v = readBlobU8(a);
      if (!v.ok) return fail(v.error);
      if (a.id === UBUS_ATTR.ACTIVE) attrs.active = v.value !== 0;
      else attrs.noReply = v.value !== 0;
      return ok(undefined);
    }
    case UBUS_ATTR.DATA:
    case UBUS_ATTR.SIGNATURE: {
      const t = decodeBlobmsgTable(a.payload, opts);
      if (!t.ok) return fail(t.error);
      if (a.id === UBUS_ATTR.DATA) {
        attrs.data = t.value;
        attrs.dataRaw = a.payload;
      } else {
        attrs.signature = t.value;
        attrs.signatureRaw = a.payload;
      }
      return ok(undefined);
    }
    case UBUS_ATTR.SUBSCRIBERS: {
      const list = readBlobNested(a);
      if (!list.ok) return fail(list.error);
      const ids: number[] = [];
      for (const s of list.value) {
        const id = readBlobU32(s);
        if (!id.ok) return fail(id.error);
        ids.push(id.value);
      }
      attrs.subscribers = ids;
      return ok(undefined);
    }
    default:
      return ok(undefined); // UNSPEC and ids this side does not know are skipped, as libubus does
  }
}

/** Decodes the container blob of a message (the bytes after the 8-byte header). */
export function decodeUbusBody(body: Uint8Array, type: number, opts: BlobmsgDecodeOptions = {}): Result<UbusAttrs> {
  if (body.length < BLOB_HEADER_BYTES) return err(`ubus message body of ${body.length} bytes is shorter than a blob header`);
  const rawLen = u32(body, 0) & 0xffffff;
  if (rawLen < BLOB_HEADER_BYTES) return err(`ubus container length ${rawLen} is shorter than its header`);
  if (rawLen !== body.length) return err(`ubus container length ${rawLen} does not match the ${body.length} bytes of the message body`);
  const attrs: UbusAttrs = {};
  // MONITOR messages carry a different attribute set (UBUS_MONITOR_*); they are not interpreted here.
  if (type === UBUS_MSG.MONITOR) return ok(attrs);
  const list = blobAttrs(body.subarray(BLOB_HEADER_BYTES));
  if (!list.ok) return err(`ubus container: ${list.error}`);
  for (const a of list.value) {
    if (a.id >= UBUS_ATTR_MAX) continue;
    const r = readAttr(a, attrs, opts);
    if (!r.ok) return err(r.error);
  }
  return ok(attrs);
}

/** Decodes exactly one whole message (header + container, no trailing bytes). */
export function decodeUbusMessage(buf: Uint8Array, opts: BlobmsgDecodeOptions = {}): Result<UbusMessage> {
  if (buf.length < UBUS_HEADER_BYTES + BLOB_HEADER_BYTES)
    return err(`ubus message of ${buf.length} bytes is shorter than the ${UBUS_HEADER_BYTES + BLOB_HEADER_BYTES}-byte minimum`);
  const version = buf[0] ?? 0;
  if (version !== 0) return err(`unsupported ubus message version ${version}`);
  const type = buf[1] ?? 0;
  const seq = ((buf[2] ?? 0) << 8) | (buf[3] ?? 0);
  const peer = u32(buf, 4);
  const body = buf.subarray(UBUS_HEADER_BYTES);
  const rawLen = u32(body, 0) & 0xffffff;
  if (blobPadLen(rawLen) > UBUS_MAX_MSGLEN) return err(`ubus message of ${rawLen} bytes exceeds ${UBUS_MAX_MSGLEN}`);
  const attrs = decodeUbusBody(body, type, opts);
  if (!attrs.ok) return err(`${ubusMessageTypeName(type)} seq ${seq}: ${attrs.error}`);
  return ok({ version, type, seq, peer, attrs: attrs.value, body });
}

// ---------------------------------------------------------------------------------------------
// Stream deframing

/**
 * Splits a byte stream into messages: reads the 8-byte header and the container's 4-byte blob
 * header, rejects a version other than 0, a container length below 4 or a padded length above
 * `maxLen` (1 MiB, ubusd's limit), then waits for the rest. A message that does not decode is an
 * error too. After any error the reader stays failed: the connection must be closed.
 */
export class UbusFrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  private failure: string | undefined;

  constructor(
    private readonly opts: BlobmsgDecodeOptions = {},
    private readonly maxLen = UBUS_MAX_MSGLEN,
  ) {}

  push(chunk: Uint8Array): Result<UbusMessage[]> {
    if (this.failure) return err(this.failure);
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const out: UbusMessage[] = [];
    const need = UBUS_HEADER_BYTES + BLOB_HEADER_BYTES;
    while (this.buffered.length >= need) {
      const version = this.buffered[0] ?? 0;
      if (version !== 0) return this.fail(`unsupported ubus message version ${version}`);
      const rawLen = this.buffered.readUInt32BE(UBUS_HEADER_BYTES) & 0xffffff;
      if (rawLen < BLOB_HEADER_BYTES) return this.fail(`ubus container length ${rawLen} is shorter than its header`);
      if (blobPadLen(rawLen) > this.maxLen) return this.fail(`ubus message of ${rawLen} bytes exceeds the ${this.maxLen}-byte limit`);
      const total = UBUS_HEADER_BYTES + rawLen;
      if (this.buffered.length < total) break;
      const frame = this.buffered.subarray(0, total);
      this.buffered = this.buffered.subarray(total);
      const m = decodeUbusMessage(frame, this.opts);
      if (!m.ok) return this.fail(m.error);
      out.push(m.value);
    }
    return ok(out);
  }

  /** Bytes held while waiting for the rest of a message. */
  get pending(): number {
    return this.buffered.length;
  }

  get failed(): string | undefined {
    return this.failure;
  }

  private fail(message: string): Result<UbusMessage[]> {
    this.failure = message;
    this.buffered = Buffer.alloc(0);
    return err(message);
  }
}
