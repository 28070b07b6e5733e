// SPDX-License-Identifier: GPL-2.0-only
// ubus client over ubusd's unix stream socket, written against the wire protocol (no libubus):
// connect and learn the client id from HELLO, look objects up, call methods, publish objects whose
// methods answer INVOKE, subscribe to another client's notifications (e.g. hostapd.<ifname>: one
// unnamed subscriber object per subscription, so each notification says which object sent it),
// listen for and send events, and notify subscribers of our own objects. When the socket drops it
// reconnects with exponential back-off and re-establishes everything it had: published objects
// (new ids), subscriptions (looked up again; with `follow`, re-made whenever the watched path
// reappears, via ubusd's `ubus.object.add` event) and event registrations. Every incoming byte goes
// through the total decoder in proto/ubus.ts; protocol garbage closes the connection (and so
// reconnects); nothing a peer sends, and no user callback, can throw out of the event loop.
// It never calls hostapd's `notify_response`, so hostapd never waits on us before admitting a client.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  blobmsgTyped,
  BLOBMSG_TYPE,
  type BlobmsgDecodeOptions,
  type BlobmsgTable,
  type BlobmsgTableInput,
  type BlobmsgValue,
} from '../proto/blob.js';
import {
  encodeUbusMessage,
  UbusFrameReader,
  UBUS_DEFAULT_SOCKET,
  UBUS_LEGACY_SOCKET,
  UBUS_MSG,
  UBUS_STATUS,
  UBUS_SYSTEM_OBJECT,
  ubusStatusName,
  ubusStatusText,
  type UbusMessage,
  type UbusMessageInput,
} from '../proto/ubus.js';
import { LOG, type LogFn } from './log.js';

// ---------------------------------------------------------------------------------------------
// Public types

/** A failed ubus request: `status` is the ubus status code, `statusName` its name. */
export class UbusError extends Error {
  readonly statusName: string;

  constructor(
    readonly status: number,
    context?: string,
  ) {
    super(`${context ? context + ': ' : ''}${ubusStatusText(status)} (${ubusStatusName(status)})`);
    this.name = 'UbusError';
    this.statusName = ubusStatusName(status);
  }
}

/** Argument types a published method declares (sent in the object's signature). */
export type UbusArgType = 'unspec' | 'array' | 'table' | 'string' | 'int64' | 'int32' | 'int16' | 'int8' | 'bool' | 'double';

const ARG_TYPE_NUMBER: Record<UbusArgType, number> = {
  unspec: BLOBMSG_TYPE.UNSPEC,
  array: BLOBMSG_TYPE.ARRAY,
  table: BLOBMSG_TYPE.TABLE,
  string: BLOBMSG_TYPE.STRING,
  int64: BLOBMSG_TYPE.INT64,
  int32: BLOBMSG_TYPE.INT32,
  int16: BLOBMSG_TYPE.INT16,
  int8: BLOBMSG_TYPE.INT8,
  bool: BLOBMSG_TYPE.BOOL,
  double: BLOBMSG_TYPE.DOUBLE,
};

export interface UbusInvokeContext {
  path: string;
  method: string;
  objectId: number;
  /** The caller's client id. */
  peer: number;
  user?: string;
  group?: string;
}

/** Returns the reply table (sent as DATA) or nothing; throw a UbusError to answer with its status. */
export type UbusMethodHandler = (
  data: BlobmsgTable,
  ctx: UbusInvokeContext,
) => BlobmsgTableInput | void | Promise<BlobmsgTableInput | void>;

export interface UbusMethodSpec {
  /** Declared arguments; a present argument of the wrong type is answered INVALID_ARGUMENT. */
  args?: Record<string, UbusArgType>;
  handler: UbusMethodHandler;
}

export interface UbusObjectInfo {
  path: string;
  id: number;
  type: number;
  /** Method → argument → blobmsg type number. */
  signature: Record<string, Record<string, number>>;
}

export interface UbusNotifyResult {
  /** Subscriber object ids ubusd forwarded to (only when waiting for replies). */
  subscribers?: number[];
  /** Status each subscriber answered, by subscriber object id (only when waiting). */
  statuses: Record<number, number>;
}

export interface UbusObjectHandle {
  readonly path: string;
  /** Current object id (changes on reconnect; 0 while disconnected). */
  readonly id: number;
  /** Whether ubusd reports subscribers (NOTIFY with ACTIVE). */
  readonly hasSubscribers: boolean;
  notify(type: string, data?: BlobmsgTableInput, opts?: UbusNotifyOptions): Promise<UbusNotifyResult>;
  remove(): Promise<void>;
}

export interface UbusNotifyOptions {
  /** Ask subscribers to answer and wait for them (default false: NO_REPLY, like hostapd). */
  wait?: boolean;
  timeoutMs?: number;
}

export interface UbusSubscribeOptions {
  /** Keep the subscription after the object disappears and re-make it when the path reappears (default true). */
  follow?: boolean;
  /**
   * Runs each time the subscription delivers again after `onGone` (its object came back, or ubusd
   * did): the moment to re-read what was missed meanwhile, e.g. hostapd's `get_clients`.
   */
  onActive?: () => void;
}

export interface UbusSubscription {
  readonly path: string;
  /** The watched object's id, 0 while it is absent or we are disconnected. */
  readonly targetId: number;
  readonly active: boolean;
  unsubscribe(): Promise<void>;
}

export interface UbusEventRegistration {
  readonly pattern: string;
  off(): Promise<void>;
}

export type UbusNotifyHandler = (type: string, data: BlobmsgTable) => void | Promise<void>;
export type UbusEventHandler = (event: string, data: BlobmsgTable) => void | Promise<void>;

export interface UbusClientOptions {
  /** Socket path(s) tried in order; default /var/run/ubus/ubus.sock then /var/run/ubus.sock. */
  socketPath?: string | readonly string[];
  /** Reconnect after the connection drops (default true). */
  reconnect?: boolean;
  /** First reconnect delay; doubles per failed attempt up to reconnectMaxDelayMs (defaults 500 / 10000). */
  reconnectDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** How long to wait for HELLO after connecting (default 5000). */
  connectTimeoutMs?: number;
  /** Timeout of lookups, registrations and other internal requests (default 10000). */
  requestTimeoutMs?: number;
  /** Default timeout of call() (default 30000, as the ubus CLI). */
  callTimeoutMs?: number;
  /** How blobmsg payloads are decoded (INT8 as bool by default). */
  blobmsg?: BlobmsgDecodeOptions;
  log?: LogFn;
}

export interface UbusClientEvents {
  connected: [clientId: number];
  disconnected: [reason: string];
  reconnected: [clientId: number];
  closed: [];
}

// ---------------------------------------------------------------------------------------------
// Internal state

interface Pending {
  seq: number;
  /** Returns true when the request is finished. */
  handle(m: UbusMessage): boolean;
  fail(e: Error): void;
  timer: NodeJS.Timeout;
}

interface PublishedEntry {
  kind: 'published';
  path: string;
  methods: Map<string, UbusMethodSpec>;
  signature: BlobmsgTableInput;
  id: number;
  hasSubscribers: boolean;
  onSubscribe?: (active: boolean) => void;
}

interface SubscriberEntry {
  kind: 'subscriber';
  path: string;
  onNotify: UbusNotifyHandler;
  onGone?: () => void;
  onActive?: () => void;
  follow: boolean;
  objId: number;
  targetId: number;
  state: 'active' | 'waiting' | 'closed';
  busy: boolean;
  /** onGone has run since the subscription was last active (so it runs once per outage). */
  gone: boolean;
  /** The object came back while a (re)subscription was in flight: try again when it ends. */
  again: boolean;
}

interface EventEntry {
  kind: 'event';
  pattern: string;
  handler: UbusEventHandler;
  objId: number;
}

type LocalObject = PublishedEntry | SubscriberEntry | EventEntry;

const OK = UBUS_STATUS.OK;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A caught value as an Error (what write() and nextSeq() throw always is one), for a rejection. */
function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function isTable(v: unknown): v is BlobmsgTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function argMatches(type: UbusArgType, v: BlobmsgValue): boolean {
  switch (type) {
    case 'unspec':
      return true;
    case 'string':
      return typeof v === 'string';
    case 'int64':
      return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
    case 'int32':
    case 'int16':
      return typeof v === 'number' && Number.isInteger(v);
    case 'int8':
    case 'bool':
      return typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v));
    case 'double':
      return typeof v === 'number';
    case 'table':
      return isTable(v);
    case 'array':
      return Array.isArray(v);
  }
}

// ---------------------------------------------------------------------------------------------

export class UbusClient extends EventEmitter<UbusClientEvents> {
  private readonly paths: readonly string[];
  private readonly opts: Required<Omit<UbusClientOptions, 'socketPath' | 'log' | 'blobmsg'>>;
  private readonly blobmsgOpts: BlobmsgDecodeOptions;
  private readonly log: LogFn;

  private socket: net.Socket | undefined;
  /** The socket of a connection attempt still waiting for HELLO. */
  private opening: net.Socket | undefined;
  private gen = 0;
  private state: 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed' = 'idle';
  private userClosed = false;
  private id: number | undefined;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | undefined;

  private readonly objects = new Map<number, LocalObject>();
  private readonly published = new Set<PublishedEntry>();
  private readonly subscriptions = new Set<SubscriberEntry>();
  private readonly events = new Set<EventEntry>();
  private objectWatch: EventEntry | undefined;
  private objectWatchPending: Promise<void> | undefined;

  constructor(options: UbusClientOptions = {}) {
    super();
    const p = options.socketPath;
    this.paths = p === undefined ? [UBUS_DEFAULT_SOCKET, UBUS_LEGACY_SOCKET] : typeof p === 'string' ? [p] : [...p];
    this.opts = {
      reconnect: options.reconnect ?? true,
      reconnectDelayMs: options.reconnectDelayMs ?? 500,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      callTimeoutMs: options.callTimeoutMs ?? 30_000,
    };
    this.blobmsgOpts = options.blobmsg ?? {};
    this.log = options.log ?? (() => {});
    this.backoff = this.opts.reconnectDelayMs;
  }

  /** Our client id from HELLO, undefined while disconnected. */
  get clientId(): number | undefined {
    return this.id;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  /** Connects (trying each socket path) and waits for HELLO. Rejects if no path answers. */
  async connect(): Promise<void> {
    if (this.state === 'connected') return;
    if (this.state === 'connecting') throw new Error('ubus: connect() already in progress');
    this.userClosed = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    await this.open();
    this.backoff = this.opts.reconnectDelayMs;
    const id = this.id ?? 0;
    this.announce('connected', id);
    // After close() and a new connect(), what was published or subscribed before is restored.
    await this.restore(this.gen);
  }

  /** Closes the connection and stops reconnecting; pending requests fail with CONNECTION_FAILED. */
  close(): void {
    this.userClosed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const wasOpen = this.state !== 'closed';
    if (this.state === 'connected') this.drop(this.gen, 'closed by client');
    else this.gen++;
    this.opening?.destroy();
    this.state = 'closed';
    this.failPending('closed by client');
    if (wasOpen) this.announce('closed');
  }

  private async open(): Promise<void> {
    this.state = 'connecting';
    const errors: string[] = [];
    for (const path of this.paths) {
      try {
        await this.openPath(path);
        if (this.userClosed) {
          this.drop(this.gen, 'closed by client');
          throw new UbusError(UBUS_STATUS.CONNECTION_FAILED, 'closed while connecting');
        }
        this.log(LOG.info, `ubus: connected to ${path} as client ${(this.id ?? 0).toString(16).padStart(8, '0')}`);
        return;
      } catch (e) {
        errors.push(`${path}: ${errorText(e)}`);
        if (this.userClosed) break;
      }
    }
    this.state = this.userClosed ? 'closed' : 'idle';
    throw new UbusError(UBUS_STATUS.CONNECTION_FAILED, `cannot connect to ubusd (${errors.join('; ')})`);
  }

  private openPath(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const gen = ++this.gen;
      const reader = new UbusFrameReader(this.blobmsgOpts);
      const socket = net.connect({ path });
      this.opening = socket;
      let hello = false;
      let settled = false;
      const failEarly = (why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.opening === socket) this.opening = undefined;
        socket.destroy();
        reject(new Error(why));
      };
      const timer = setTimeout(() => failEarly(`no HELLO within ${this.opts.connectTimeoutMs} ms`), this.opts.connectTimeoutMs);
      socket.on('data', (chunk: Buffer) => {
        if (gen !== this.gen) return;
        const r = reader.push(chunk);
        if (!r.ok) {
          if (hello) this.drop(gen, `protocol error: ${r.error}`);
          else failEarly(`protocol error: ${r.error}`);
          return;
        }
        for (const m of r.value) {
          if (!hello) {
            if (m.type !== UBUS_MSG.HELLO || m.peer <= 1) {
              failEarly(`expected HELLO, got message type ${m.type} peer ${m.peer}`);
              return;
            }
            hello = true;
            settled = true;
            clearTimeout(timer);
            if (this.opening === socket) this.opening = undefined;
            this.socket = socket;
            this.id = m.peer;
            this.state = 'connected';
            resolve();
            continue;
          }
          this.dispatch(m, gen);
          if (gen !== this.gen) return;
        }
      });
      socket.on('error', (e) => {
        if (hello) this.drop(gen, e.message);
        else failEarly(e.message);
      });
      socket.on('close', () => {
        if (hello) this.drop(gen, 'connection closed by ubusd');
        else failEarly('connection closed before HELLO');
      });
    });
  }

  /** Tears the current connection down (once per connection) and schedules a reconnect. */
  private drop(gen: number, reason: string): void {
    if (gen !== this.gen || this.state !== 'connected') return;
    this.gen++;
    this.socket?.destroy();
    this.socket = undefined;
    this.id = undefined;
    this.state = this.userClosed ? 'closed' : 'backoff';
    this.failPending(reason);
    this.objects.clear();
    for (const p of this.published) {
      p.id = 0;
      p.hasSubscribers = false;
    }
    for (const ev of this.events) ev.objId = 0;
    const interrupted: SubscriberEntry[] = [];
    for (const s of this.subscriptions) {
      s.objId = 0;
      s.targetId = 0;
      if (s.state === 'active') {
        s.state = 'waiting';
        interrupted.push(s);
      }
    }
    if (this.userClosed) return;
    this.log(LOG.error, `ubus: disconnected: ${reason}`);
    this.announce('disconnected', reason);
    if (this.opts.reconnect) this.scheduleReconnect();
    else this.state = 'idle';
    // Without ubusd nothing is delivered: each subscriber hears so once (onActive when re-made).
    for (const s of interrupted) this.markGone(s);
  }

  private failPending(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.fail(new UbusError(UBUS_STATUS.CONNECTION_FAILED, reason));
    }
  }

  private scheduleReconnect(): void {
    if (this.userClosed || this.reconnectTimer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.reconnectMaxDelayMs);
    this.state = 'backoff';
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect();
    }, delay);
  }

  private async reconnect(): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      if (this.userClosed) return;
      this.log(LOG.info, `ubus: reconnect failed: ${errorText(e)}`);
      this.scheduleReconnect();
      return;
    }
    this.backoff = this.opts.reconnectDelayMs;
    const gen = this.gen;
    await this.restore(gen);
    if (gen === this.gen && this.state === 'connected') {
      this.log(LOG.info, 'ubus: reconnected; objects, subscriptions and event registrations restored');
      this.announce('reconnected', this.id ?? 0);
    }
  }

  /** Re-establishes published objects, event registrations and subscriptions on a new connection. */
  private async restore(gen: number): Promise<void> {
    for (const p of [...this.published]) {
      if (gen !== this.gen) return;
      try {
        await this.registerPublished(p);
      } catch (e) {
        this.log(LOG.error, `ubus: could not re-publish ${p.path}: ${errorText(e)}`);
      }
    }
    for (const ev of [...this.events]) {
      if (gen !== this.gen) return;
      try {
        await this.registerEvent(ev);
      } catch (e) {
        this.log(LOG.error, `ubus: could not re-register event pattern ${ev.pattern}: ${errorText(e)}`);
      }
    }
    for (const s of [...this.subscriptions]) {
      if (gen !== this.gen) return;
      await this.resubscribe(s);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  private nextSeq(): number {
    for (let i = 0; i < 0x10000; i++) {
      this.seq = (this.seq + 1) & 0xffff;
      if (!this.pending.has(this.seq)) return this.seq;
    }
    throw new UbusError(UBUS_STATUS.NO_MEMORY, 'no free request sequence number');
  }

  private write(m: UbusMessageInput): void {
    if (this.state !== 'connected' || !this.socket) throw new UbusError(UBUS_STATUS.CONNECTION_FAILED, 'not connected to ubusd');
    let bytes: Buffer;
    try {
      bytes = encodeUbusMessage(m);
    } catch (e) {
      throw new UbusError(UBUS_STATUS.INVALID_ARGUMENT, errorText(e));
    }
    this.socket.write(bytes);
  }

  /**
   * Sends a request and resolves with the final STATUS code. `onData` sees each DATA message of
   * the same seq and peer. Rejects (CONNECTION_FAILED, TIMEOUT, INVALID_ARGUMENT) when no status comes.
   */
  private request(
    type: number,
    peer: number,
    attrs: UbusMessageInput['attrs'],
    timeoutMs: number,
    onData?: (m: UbusMessage) => void,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      let seq: number;
      try {
        seq = this.nextSeq();
        this.write({ type, seq, peer, ...(attrs !== undefined ? { attrs } : {}) });
      } catch (e) {
        reject(asError(e));
        return;
      }
      const timer = setTimeout(() => {
        if (this.pending.get(seq) !== entry) return;
        this.pending.delete(seq);
        reject(new UbusError(UBUS_STATUS.TIMEOUT));
      }, timeoutMs);
      const entry: Pending = {
        seq,
        timer,
        handle: (m) => {
          if (m.peer !== peer) return false;
          if (m.type === UBUS_MSG.DATA) {
            if (onData) this.safely('request data handler', () => onData(m));
            return false;
          }
          if (m.type !== UBUS_MSG.STATUS) return false;
          clearTimeout(timer);
          resolve(m.attrs.status ?? UBUS_STATUS.INVALID_ARGUMENT);
          return true;
        },
        fail: reject,
      };
      this.pending.set(seq, entry);
    });
  }

  private async requestOk(
    context: string,
    type: number,
    peer: number,
    attrs: UbusMessageInput['attrs'],
    onData?: (m: UbusMessage) => void,
  ): Promise<void> {
    const status = await this.request(type, peer, attrs, this.opts.requestTimeoutMs, onData);
    if (status !== OK) throw new UbusError(status, context);
  }

  /** Objects matching a path or a pattern ending in `*` (all objects when omitted). NOT_FOUND → []. */
  async lookup(pattern?: string): Promise<UbusObjectInfo[]> {
    const found: UbusObjectInfo[] = [];
    const status = await this.request(
      UBUS_MSG.LOOKUP,
      0,
      pattern === undefined ? {} : { objpath: pattern },
      this.opts.requestTimeoutMs,
      (m) => {
        const a = m.attrs;
        if (a.objpath === undefined || a.objid === undefined || a.objtype === undefined) return;
        const signature: Record<string, Record<string, number>> = {};
        for (const [method, args] of Object.entries(a.signature ?? {})) {
          const argTypes: Record<string, number> = {};
          if (isTable(args)) for (const [arg, t] of Object.entries(args)) if (typeof t === 'number') argTypes[arg] = t;
          signature[method] = argTypes;
        }
        found.push({ path: a.objpath, id: a.objid, type: a.objtype, signature });
      },
    );
    if (status === UBUS_STATUS.NOT_FOUND) return [];
    if (status !== OK) throw new UbusError(status, `lookup ${pattern ?? '*'}`);
    return found;
  }

  /** The id of the object at exactly `path`; rejects with NOT_FOUND. */
  async lookupId(path: string): Promise<number> {
    const list = await this.lookup(path);
    const hit = list.find((o) => o.path === path);
    if (!hit) throw new UbusError(UBUS_STATUS.NOT_FOUND, `lookup ${path}`);
    return hit.id;
  }

  /**
   * Calls `method` on an object (path or id) and resolves with the reply table (the first DATA),
   * or undefined when the method answered with a status only. Rejects with UbusError.
   */
  async call(
    object: string | number,
    method: string,
    data: BlobmsgTableInput = {},
    timeoutMs = this.opts.callTimeoutMs,
  ): Promise<BlobmsgTable | undefined> {
    const id = typeof object === 'number' ? object : await this.lookupId(object);
    let reply: BlobmsgTable | undefined;
    const status = await this.request(UBUS_MSG.INVOKE, id, { objid: id, method, data }, timeoutMs, (m) => {
      if (reply === undefined && m.attrs.data) reply = m.attrs.data;
    });
    if (status !== OK) throw new UbusError(status, `call ${typeof object === 'number' ? object.toString(16) : object} ${method}`);
    return reply;
  }

  /** PING: resolves when ubusd answers. */
  async ping(): Promise<void> {
    await this.requestOk('ping', UBUS_MSG.PING, 0, {});
  }

  // -------------------------------------------------------------------------------------------
  // Publishing

  private async addUnnamedObject(): Promise<number> {
    let id = 0;
    await this.requestOk('add object', UBUS_MSG.ADD_OBJECT, 0, {}, (m) => {
      id = m.attrs.objid ?? 0;
    });
    if (!id) throw new UbusError(UBUS_STATUS.NO_DATA, 'add object');
    return id;
  }

  private async removeObjectId(id: number): Promise<void> {
    this.objects.delete(id);
    if (this.state !== 'connected' || !id) return;
    await this.requestOk('remove object', UBUS_MSG.REMOVE_OBJECT, 0, { objid: id });
  }

  private async registerPublished(p: PublishedEntry): Promise<void> {
    let id = 0;
    await this.requestOk(`add object ${p.path}`, UBUS_MSG.ADD_OBJECT, 0, { objpath: p.path, signature: p.signature }, (m) => {
      id = m.attrs.objid ?? 0;
    });
    if (!id) throw new UbusError(UBUS_STATUS.NO_DATA, `add object ${p.path}`);
    p.id = id;
    p.hasSubscribers = false;
    this.objects.set(id, p);
  }

  /** Publishes an object whose methods answer INVOKE. Re-published automatically after a reconnect. */
  async addObject(
    path: string,
    methods: Record<string, UbusMethodSpec>,
    options: { onSubscribe?: (active: boolean) => void } = {},
  ): Promise<UbusObjectHandle> {
    const signature: Record<string, Record<string, number>> = {};
    for (const [name, spec] of Object.entries(methods)) {
      const args: Record<string, number> = {};
      for (const [arg, t] of Object.entries(spec.args ?? {})) args[arg] = ARG_TYPE_NUMBER[t];
      signature[name] = args;
    }
    const entry: PublishedEntry = {
      kind: 'published',
      path,
      methods: new Map(Object.entries(methods)),
      signature,
      id: 0,
      hasSubscribers: false,
    };
    if (options.onSubscribe) entry.onSubscribe = options.onSubscribe;
    await this.registerPublished(entry);
    this.published.add(entry);
    return {
      path,
      get id() {
        return entry.id;
      },
      get hasSubscribers() {
        return entry.hasSubscribers;
      },
      notify: (type, data, opts) => this.notifyEntry(entry, type, data, opts),
      remove: () => this.removePublished(entry),
    };
  }

  /** Removes a published object by path. */
  async removeObject(path: string): Promise<void> {
    const entry = [...this.published].find((p) => p.path === path);
    if (!entry) throw new UbusError(UBUS_STATUS.NOT_FOUND, `remove object ${path}`);
    await this.removePublished(entry);
  }

  private async removePublished(entry: PublishedEntry): Promise<void> {
    if (!this.published.delete(entry)) return;
    const id = entry.id;
    entry.id = 0;
    await this.removeObjectId(id);
  }

  /**
   * Sends a notification to the subscribers of one of our objects (as hostapd does). By default
   * with NO_REPLY; with `wait`, subscribers answer and their statuses are collected.
   */
  async notify(path: string, type: string, data: BlobmsgTableInput = {}, opts: UbusNotifyOptions = {}): Promise<UbusNotifyResult> {
    const entry = [...this.published].find((p) => p.path === path);
    if (!entry) throw new UbusError(UBUS_STATUS.NOT_FOUND, `notify ${path}`);
    return this.notifyEntry(entry, type, data, opts);
  }

  private notifyEntry(
    entry: PublishedEntry,
    type: string,
    data: BlobmsgTableInput = {},
    opts: UbusNotifyOptions = {},
  ): Promise<UbusNotifyResult> {
    const objid = entry.id;
    if (!this.published.has(entry)) return Promise.reject(new UbusError(UBUS_STATUS.NOT_FOUND, `notify ${entry.path}: object was removed`));
    if (!objid) return Promise.reject(new UbusError(UBUS_STATUS.CONNECTION_FAILED, `notify ${entry.path}: object not registered`));
    if (!opts.wait) {
      try {
        this.write({ type: UBUS_MSG.NOTIFY, seq: this.nextSeq(), peer: objid, attrs: { objid, method: type, data, noReply: true } });
      } catch (e) {
        return Promise.reject(asError(e));
      }
      return Promise.resolve({ statuses: {} });
    }
    // With replies: ubusd first answers STATUS (peer = our object) listing the subscribers, then each
    // subscriber's STATUS arrives with the same seq and peer = that subscriber's object id.
    return new Promise((resolve, reject) => {
      let seq: number;
      try {
        seq = this.nextSeq();
        this.write({ type: UBUS_MSG.NOTIFY, seq, peer: objid, attrs: { objid, method: type, data } });
      } catch (e) {
        reject(asError(e));
        return;
      }
      const result: UbusNotifyResult = { statuses: {} };
      const waiting = new Set<number>();
      const finish = (): void => {
        clearTimeout(timer);
        this.pending.delete(seq);
        resolve(result);
      };
      const timer = setTimeout(() => {
        if (this.pending.get(seq) !== entryP) return;
        if (result.subscribers)
          finish(); // resolve with what answered in time
        else {
          this.pending.delete(seq);
          reject(new UbusError(UBUS_STATUS.TIMEOUT, `notify ${entry.path}`));
        }
      }, opts.timeoutMs ?? this.opts.requestTimeoutMs);
      const entryP: Pending = {
        seq,
        timer,
        handle: (m) => {
          if (m.type !== UBUS_MSG.STATUS) return false;
          if (!result.subscribers && m.peer === objid) {
            if ((m.attrs.status ?? OK) !== OK) {
              clearTimeout(timer);
              reject(new UbusError(m.attrs.status ?? UBUS_STATUS.INVALID_ARGUMENT, `notify ${entry.path}`));
              return true;
            }
            result.subscribers = m.attrs.subscribers ?? [];
            for (const s of result.subscribers) waiting.add(s);
          } else if (waiting.delete(m.peer)) {
            result.statuses[m.peer] = m.attrs.status ?? UBUS_STATUS.INVALID_ARGUMENT;
          } else return false;
          if (result.subscribers && waiting.size === 0) {
            clearTimeout(timer);
            resolve(result);
            return true;
          }
          return false;
        },
        fail: reject,
      };
      this.pending.set(seq, entryP);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Subscriptions

  /**
   * Subscribes to notifications of the object at `path` (which must exist now). `onGone` runs
   * once each time the subscription stops delivering: ubusd says the object went away, or the
   * connection to ubusd was lost. With `follow` (default) the subscription is re-made when an
   * object with that path appears again; after a reconnect it is re-made if the object is there
   * (or, with `follow`, once it appears). Either way `onActive` runs when it delivers again. A
   * subscription is one SUBSCRIBE at a time, however often its object or ubusd restart.
   */
  async subscribe(
    path: string,
    onNotify: UbusNotifyHandler,
    onGone?: () => void,
    options: UbusSubscribeOptions = {},
  ): Promise<UbusSubscription> {
    const entry: SubscriberEntry = {
      kind: 'subscriber',
      path,
      onNotify,
      follow: options.follow ?? true,
      objId: 0,
      targetId: 0,
      state: 'waiting',
      busy: false,
      gone: false,
      again: false,
    };
    if (onGone) entry.onGone = onGone;
    if (options.onActive) entry.onActive = options.onActive;
    if (entry.follow) await this.ensureObjectWatch();
    entry.busy = true;
    try {
      await this.establishSubscription(entry);
    } catch (e) {
      const id = entry.objId;
      entry.state = 'closed';
      entry.objId = 0;
      if (id) await this.removeObjectId(id).catch(() => {});
      throw e;
    } finally {
      entry.busy = false;
    }
    this.subscriptions.add(entry);
    return {
      path,
      get targetId() {
        return entry.targetId;
      },
      get active() {
        return entry.state === 'active';
      },
      unsubscribe: () => this.unsubscribeEntry(entry),
    };
  }

  private async establishSubscription(s: SubscriberEntry): Promise<void> {
    if (!s.objId) {
      s.objId = await this.addUnnamedObject();
      this.objects.set(s.objId, s);
    }
    const target = await this.lookupId(s.path);
    await this.requestOk(`subscribe ${s.path}`, UBUS_MSG.SUBSCRIBE, 0, { objid: s.objId, target });
    s.targetId = target;
    s.state = 'active';
    s.gone = false;
    this.log(LOG.info, `ubus: subscribed to ${s.path} (${target.toString(16).padStart(8, '0')})`);
  }

  /**
   * Re-subscribes a waiting subscription (never an active one: a second SUBSCRIBE of the same
   * subscriber object would make ubusd deliver every notification twice); an absent target leaves
   * it waiting (follow) or ends it. On success the subscriber's onActive runs.
   */
  private async resubscribe(s: SubscriberEntry): Promise<void> {
    if (s.state !== 'waiting') return;
    if (s.busy) {
      s.again = true;
      return;
    }
    s.busy = true;
    s.again = false;
    try {
      await this.establishSubscription(s);
      const cb = s.onActive;
      if (cb) this.safely(`onActive ${s.path}`, cb);
    } catch (e) {
      if (e instanceof UbusError && e.status === UBUS_STATUS.NOT_FOUND) {
        this.log(LOG.info, `ubus: ${s.path} is not there${s.follow ? '; waiting for it to appear' : ''}`);
        if (!s.follow) this.endSubscription(s, true);
      } else {
        this.log(LOG.error, `ubus: could not subscribe to ${s.path}: ${errorText(e)}`);
      }
    } finally {
      s.busy = false;
    }
    if (s.again) void this.resubscribe(s);
  }

  private endSubscription(s: SubscriberEntry, gone: boolean): void {
    const id = s.objId;
    s.state = 'closed';
    s.objId = 0;
    s.targetId = 0;
    this.subscriptions.delete(s);
    if (id) void this.removeObjectId(id).catch(() => {});
    if (gone) this.markGone(s);
  }

  /** Runs the subscriber's onGone, once per outage. */
  private markGone(s: SubscriberEntry): void {
    if (s.gone) return;
    s.gone = true;
    const cb = s.onGone;
    if (cb) this.safely(`onGone ${s.path}`, cb);
  }

  private async unsubscribeEntry(s: SubscriberEntry): Promise<void> {
    if (s.state === 'closed') return;
    const id = s.objId;
    s.state = 'closed';
    s.objId = 0;
    s.targetId = 0;
    this.subscriptions.delete(s);
    // Removing the subscriber object makes ubusd drop its subscriptions.
    if (id) await this.removeObjectId(id);
  }

  private targetGone(s: SubscriberEntry): void {
    if (s.state !== 'active') return;
    this.log(LOG.info, `ubus: ${s.path} went away`);
    s.targetId = 0;
    if (s.follow) {
      s.state = 'waiting';
      this.markGone(s);
    } else this.endSubscription(s, true);
  }

  /** Internal `ubus.object.add` listener used to follow subscriptions whose object went away. */
  private ensureObjectWatch(): Promise<void> {
    if (this.objectWatch) return Promise.resolve();
    if (this.objectWatchPending) return this.objectWatchPending;
    const entry: EventEntry = {
      kind: 'event',
      pattern: 'ubus.object.add',
      objId: 0,
      handler: (_event, data) => {
        const path = data['path'];
        if (typeof path !== 'string') return;
        for (const s of this.subscriptions) if (s.state === 'waiting' && s.path === path) void this.resubscribe(s);
      },
    };
    this.objectWatchPending = this.registerEvent(entry).then(
      () => {
        this.objectWatch = entry;
        this.events.add(entry);
        this.objectWatchPending = undefined;
      },
      (e: unknown) => {
        this.objectWatchPending = undefined;
        throw e;
      },
    );
    return this.objectWatchPending;
  }

  // -------------------------------------------------------------------------------------------
  // Events

  private async registerEvent(ev: EventEntry): Promise<void> {
    if (!ev.objId) {
      ev.objId = await this.addUnnamedObject();
      this.objects.set(ev.objId, ev);
    }
    // The object id must travel as INT32 (ubusd's policy); ids above 2^31 would otherwise become INT64.
    await this.requestOk(`register event ${ev.pattern}`, UBUS_MSG.INVOKE, UBUS_SYSTEM_OBJECT.EVENT, {
      objid: UBUS_SYSTEM_OBJECT.EVENT,
      method: 'register',
      data: { object: blobmsgTyped('int32', ev.objId), pattern: ev.pattern },
    });
  }

  /** Listens for events whose name equals `pattern`, or starts with it when it ends in `*`. */
  async onEvent(pattern: string, handler: UbusEventHandler): Promise<UbusEventRegistration> {
    const entry: EventEntry = { kind: 'event', pattern, handler, objId: 0 };
    try {
      await this.registerEvent(entry);
    } catch (e) {
      const id = entry.objId;
      entry.objId = 0;
      if (id) await this.removeObjectId(id).catch(() => {});
      throw e;
    }
    this.events.add(entry);
    return {
      pattern,
      off: async () => {
        if (!this.events.delete(entry)) return;
        const id = entry.objId;
        entry.objId = 0;
        await this.removeObjectId(id);
      },
    };
  }

  /** Sends an event. ubusd does not deliver it back to this client's own listeners. */
  async sendEvent(id: string, data: BlobmsgTableInput = {}): Promise<void> {
    await this.requestOk(`send event ${id}`, UBUS_MSG.INVOKE, UBUS_SYSTEM_OBJECT.EVENT, {
      objid: UBUS_SYSTEM_OBJECT.EVENT,
      method: 'send',
      data: { id, data },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Incoming messages

  private dispatch(m: UbusMessage, gen: number): void {
    switch (m.type) {
      case UBUS_MSG.STATUS:
      case UBUS_MSG.DATA: {
        const p = this.pending.get(m.seq);
        if (!p) return;
        let done = false;
        try {
          done = p.handle(m);
        } catch (e) {
          this.log(LOG.error, `ubus: reply handler failed: ${errorText(e)}`);
        }
        if (done && this.pending.get(m.seq) === p) {
          clearTimeout(p.timer);
          this.pending.delete(m.seq);
        }
        return;
      }
      case UBUS_MSG.INVOKE:
        void this.handleInvoke(m, gen).catch((e: unknown) => this.log(LOG.error, `ubus: invoke handling failed: ${errorText(e)}`));
        return;
      case UBUS_MSG.NOTIFY: {
        // From ubusd: whether one of our objects has subscribers.
        const o = m.attrs.objid === undefined ? undefined : this.objects.get(m.attrs.objid);
        if (o?.kind !== 'published' || m.attrs.active === undefined) return;
        o.hasSubscribers = m.attrs.active;
        const cb = o.onSubscribe;
        if (cb) this.safely(`onSubscribe ${o.path}`, () => cb(m.attrs.active === true));
        return;
      }
      case UBUS_MSG.UNSUBSCRIBE: {
        // From ubusd: an object we watched went away.
        const o = m.attrs.objid === undefined ? undefined : this.objects.get(m.attrs.objid);
        if (o?.kind !== 'subscriber' || m.attrs.target === undefined) return;
        if (o.targetId === m.attrs.target) this.targetGone(o);
        return;
      }
      default:
        this.log(LOG.debug, `ubus: ignoring message type ${m.type} seq ${m.seq}`);
    }
  }

  private reply(gen: number, m: UbusMessage, objid: number, status: number, data?: BlobmsgTableInput): void {
    if (gen !== this.gen || this.state !== 'connected') return;
    if (data !== undefined) {
      try {
        this.write({ type: UBUS_MSG.DATA, seq: m.seq, peer: m.peer, attrs: { objid, data } });
      } catch (e) {
        this.log(LOG.error, `ubus: reply could not be sent: ${errorText(e)}`);
        status = UBUS_STATUS.UNKNOWN_ERROR;
      }
    }
    try {
      this.write({ type: UBUS_MSG.STATUS, seq: m.seq, peer: m.peer, attrs: { status, objid } });
    } catch (e) {
      this.log(LOG.error, `ubus: status could not be sent: ${errorText(e)}`);
    }
  }

  private async handleInvoke(m: UbusMessage, gen: number): Promise<void> {
    const a = m.attrs;
    const objid = a.objid ?? 0;
    const o = this.objects.get(objid);
    const noReply = a.noReply === true;
    if (!o) {
      if (!noReply) this.reply(gen, m, objid, UBUS_STATUS.NOT_FOUND);
      return;
    }
    if (a.method === undefined) {
      if (!noReply) this.reply(gen, m, objid, UBUS_STATUS.INVALID_ARGUMENT);
      return;
    }
    const method = a.method;
    if (o.kind === 'subscriber') {
      if (o.state === 'active') await this.runCallback(`notification ${method} from ${o.path}`, () => o.onNotify(method, a.data ?? {}));
      if (!noReply) this.reply(gen, m, objid, OK);
      return;
    }
    if (o.kind === 'event') {
      await this.runCallback(`event ${method}`, () => o.handler(method, a.data ?? {}));
      if (!noReply) this.reply(gen, m, objid, OK);
      return;
    }
    const spec = o.methods.get(method);
    if (!spec) {
      if (!noReply) this.reply(gen, m, objid, UBUS_STATUS.METHOD_NOT_FOUND);
      return;
    }
    if (!a.data) {
      if (!noReply) this.reply(gen, m, objid, UBUS_STATUS.INVALID_ARGUMENT);
      return;
    }
    const data = a.data;
    for (const [arg, type] of Object.entries(spec.args ?? {})) {
      const v = Object.prototype.hasOwnProperty.call(data, arg) ? data[arg] : undefined;
      if (v !== undefined && !argMatches(type, v)) {
        if (!noReply) this.reply(gen, m, objid, UBUS_STATUS.INVALID_ARGUMENT);
        return;
      }
    }
    const ctx: UbusInvokeContext = { path: o.path, method, objectId: objid, peer: m.peer };
    if (a.user !== undefined) ctx.user = a.user;
    if (a.group !== undefined) ctx.group = a.group;
    let status: number = OK;
    let result: BlobmsgTableInput | void = undefined;
    try {
      result = await spec.handler(data, ctx);
    } catch (e) {
      status = e instanceof UbusError ? e.status : UBUS_STATUS.UNKNOWN_ERROR;
      if (!(e instanceof UbusError)) this.log(LOG.error, `ubus: ${o.path} ${method} failed: ${errorText(e)}`);
    }
    if (noReply) return;
    if (status === OK && result !== undefined && !isTable(result)) {
      this.log(LOG.error, `ubus: ${o.path} ${method} returned a ${typeof result}, not a table`);
      status = UBUS_STATUS.UNKNOWN_ERROR;
      result = undefined;
    }
    this.reply(gen, m, objid, status, status === OK && result ? result : undefined);
  }

  private async runCallback(what: string, fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.log(LOG.error, `ubus: ${what}: handler threw: ${errorText(e)}`);
    }
  }

  /**
   * Emits to each listener separately, so a listener that throws neither escapes into a socket
   * callback nor keeps the listeners after it from running (rawListeners keeps `once` semantics).
   */
  private announce<K extends keyof UbusClientEvents>(event: K, ...args: UbusClientEvents[K]): void {
    for (const listener of this.rawListeners(event)) {
      this.safely(`'${event}' listener`, () => void (listener as (...a: unknown[]) => unknown).apply(this, args));
    }
  }

  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log(LOG.error, `ubus: ${what}: callback threw: ${errorText(e)}`);
    }
  }
}
