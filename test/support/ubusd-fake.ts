// SPDX-License-Identifier: GPL-2.0-only
// A ubusd-compatible test server on a unix socket, written from the protocol as ubusd implements
// it (OpenWrt ubus, checked against ubusd_proto.c / ubusd_obj.c / ubusd_event.c at commit
// 3cc98db, 2025-12): HELLO with a random client id >= 1024; LOOKUP (all, exact, trailing-`*`
// prefix, in path order); INVOKE routed to the owning client with peer rewritten to the caller and
// USER/GROUP added, its DATA/STATUS answers routed back with peer = object id; ADD_OBJECT named
// and unnamed (random ids >= 1024, object types shared through OBJTYPE, `ubus.object.add` event);
// REMOVE_OBJECT (`ubus.object.remove`); SUBSCRIBE/UNSUBSCRIBE with NOTIFY {OBJID, ACTIVE} to the
// watched object's owner; NOTIFY fanned out to subscribers as INVOKE (NO_REPLY copied; without
// NO_REPLY the publisher first gets STATUS {OBJID, SUBSCRIBERS, STATUS}); the event object (id 1)
// with `register` (trailing-`*` prefix patterns) and `send` (names starting "ubus." refused, never
// looped back to the sender); PING answered by echoing the message as DATA; UNSUBSCRIBE sent to
// subscribers when a watched object or its client goes away; INVALID_COMMAND for anything else.
// stop() drops every client and removes the socket; start() again on the same path behaves like a
// restarted ubusd (all ids and registrations are new), which is how the client's reconnect is tested.
//
// Deviations from the real ubusd, on purpose or for simplicity:
// - no ACLs (every client is treated like root) and USER/GROUP are this process's own names, not
//   the peer's SO_PEERCRED credentials (tests run in one process, so they are the same);
// - the ACL (2) and monitor (3) system objects exist but answer every method INVALID_COMMAND, and
//   MONITOR traffic is not produced;
// - messages go through tmip's own strict decoder: a message ubusd would half-accept (say an OBJID
//   of the wrong size, silently ignored by blob_parse_untrusted) disconnects the client here, and a
//   version byte other than 0 (which ubusd ignores) disconnects it too;
// - no per-client transmit queue limit and no LOOKUP continuation for slow readers.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import {
  blobAttrs,
  blobmsgTyped,
  blobPadLen,
  checkBlobmsgNamedElement,
  decodeBlobmsgElement,
  encodeBlobmsgTable,
  BLOBMSG_TYPE,
} from '../../src/proto/blob.js';
import {
  encodeUbusBody,
  encodeUbusFrame,
  UbusFrameReader,
  UBUS_MSG,
  UBUS_STATUS,
  UBUS_SYSTEM_OBJECT,
  UBUS_SYSTEM_OBJECT_MAX,
  type UbusAttrsInput,
  type UbusMessage,
} from '../../src/proto/ubus.js';

interface Client {
  id: number;
  socket: net.Socket;
  /** Newest first, as ubusd's list_add keeps them. */
  objects: Obj[];
  alive: boolean;
}

interface ObjType {
  id: number;
  refcount: number;
  /** Each method's blobmsg element, unpadded, as the publisher sent it. */
  methods: Uint8Array[];
}

interface Obj {
  id: number;
  path?: string;
  client?: Client;
  type?: ObjType;
  /** Subscriptions to this object (newest first). */
  subscribers: Sub[];
  /** Subscriptions this object holds as a subscriber (newest first). */
  targets: Sub[];
  events: EventSource[];
  invokeSeq: number;
  eventSeen: number;
}

interface Sub {
  subscriber: Obj;
  target: Obj;
}

interface EventSource {
  pattern: string;
  partial: boolean;
  obj: Obj;
}

/** What a client sent, for assertions. */
export interface FakeUbusdLogEntry {
  client: number;
  type: number;
  seq: number;
  peer: number;
  objid?: number;
  method?: string;
  objpath?: string;
}

function groupName(gid: number): string | undefined {
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === gid) return f[0];
    }
  } catch {
    // no /etc/group: fall through
  }
  return undefined;
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class FakeUbusd {
  readonly user: string;
  readonly group: string;
  /** Everything clients sent since start(), oldest first (bounded). */
  readonly log: FakeUbusdLogEntry[] = [];

  private server: net.Server | undefined;
  private clients = new Map<number, Client>();
  private objects = new Map<number, Obj>();
  private types = new Map<number, ObjType>();
  private paths = new Map<string, Obj>();
  private patterns: EventSource[] = [];
  private eventSeq = 0;
  private objEventSeq = 1;

  constructor(
    readonly path: string,
    opts: { user?: string; group?: string } = {},
  ) {
    const info = os.userInfo();
    this.user = opts.user ?? info.username;
    this.group = opts.group ?? groupName(info.gid) ?? info.username;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Listens on the socket path (a stale file there is removed first). */
  async start(): Promise<void> {
    if (this.server) return;
    this.reset();
    fs.rmSync(this.path, { force: true });
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** Drops every client, stops listening and removes the socket file. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const cl of this.clients.values()) {
      cl.alive = false;
      cl.socket.destroy();
    }
    this.clients.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
    this.reset();
  }

  // -------------------------------------------------------------------------------------------
  // Inspection and fault injection for tests

  objectId(path: string): number | undefined {
    return this.paths.get(path)?.id;
  }

  objectPaths(): string[] {
    return [...this.paths.keys()].sort(utf8Compare);
  }

  clientIds(): number[] {
    return [...this.clients.keys()];
  }

  /** Subscriber object ids of the object at `path`. */
  subscribers(path: string): number[] {
    return this.paths.get(path)?.subscribers.map((s) => s.subscriber.id) ?? [];
  }

  /** Number of registered event patterns. */
  get eventPatternCount(): number {
    return this.patterns.length;
  }

  /** Writes raw bytes to one client or to all. */
  sendRaw(bytes: Uint8Array, clientId?: number): void {
    for (const cl of this.clients.values()) if (clientId === undefined || cl.id === clientId) cl.socket.write(bytes);
  }

  /** Disconnects one client or all (their objects go away as on a real ubusd). */
  dropClients(clientId?: number): void {
    for (const cl of [...this.clients.values()]) if (clientId === undefined || cl.id === clientId) this.disconnect(cl);
  }

  // -------------------------------------------------------------------------------------------
  // State

  private reset(): void {
    this.clients = new Map();
    this.objects = new Map();
    this.types = new Map();
    this.paths = new Map();
    this.patterns = [];
    this.eventSeq = 0;
    this.objEventSeq = 1;
    this.log.length = 0;
    for (const id of [UBUS_SYSTEM_OBJECT.EVENT, UBUS_SYSTEM_OBJECT.ACL, UBUS_SYSTEM_OBJECT.MONITOR]) this.objects.set(id, this.newObj(id));
  }

  private newObj(id: number): Obj {
    return { id, subscribers: [], targets: [], events: [], invokeSeq: 0, eventSeen: 0 };
  }

  private allocId(taken: Map<number, unknown>): number {
    for (;;) {
      const id = crypto.randomInt(UBUS_SYSTEM_OBJECT_MAX, 2 ** 32);
      if (!taken.has(id)) return id;
    }
  }

  private accept(socket: net.Socket): void {
    const cl: Client = { id: this.allocId(this.clients), socket, objects: [], alive: true };
    this.clients.set(cl.id, cl);
    const reader = new UbusFrameReader();
    socket.on('data', (chunk: Buffer) => {
      if (!cl.alive) return;
      const r = reader.push(chunk);
      if (!r.ok) {
        this.disconnect(cl);
        return;
      }
      for (const m of r.value) {
        if (!cl.alive) return;
        this.receive(cl, m);
      }
    });
    socket.on('error', () => this.disconnect(cl));
    socket.on('close', () => this.disconnect(cl));
    this.send(cl, UBUS_MSG.HELLO, 0, cl.id, {});
  }

  private disconnect(cl: Client): void {
    if (!cl.alive) return;
    cl.alive = false;
    for (const obj of [...cl.objects]) this.freeObject(obj);
    this.clients.delete(cl.id);
    cl.socket.destroy();
  }

  private sendFrame(cl: Client | undefined, type: number, seq: number, peer: number, body: Uint8Array): void {
    if (!cl?.alive || cl.socket.destroyed) return;
    cl.socket.write(encodeUbusFrame({ type, seq, peer }, body));
  }

  private send(cl: Client | undefined, type: number, seq: number, peer: number, attrs: UbusAttrsInput): void {
    this.sendFrame(cl, type, seq, peer, encodeUbusBody(attrs));
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch (ubusd_proto_receive_message): a handler returns a status to send, or -1 for none.

  private receive(cl: Client, m: UbusMessage): void {
    const a = m.attrs;
    if (this.log.length < 10_000) {
      const entry: FakeUbusdLogEntry = { client: cl.id, type: m.type, seq: m.seq, peer: m.peer };
      if (a.objid !== undefined) entry.objid = a.objid;
      if (a.method !== undefined) entry.method = a.method;
      if (a.objpath !== undefined) entry.objpath = a.objpath;
      this.log.push(entry);
    }
    let ret: number;
    switch (m.type) {
      case UBUS_MSG.PING:
        this.sendFrame(cl, UBUS_MSG.DATA, m.seq, m.peer, m.body);
        ret = 0;
        break;
      case UBUS_MSG.ADD_OBJECT:
        ret = this.addObject(cl, m);
        break;
      case UBUS_MSG.REMOVE_OBJECT:
        ret = this.removeObject(cl, m);
        break;
      case UBUS_MSG.LOOKUP:
        ret = this.lookup(cl, m);
        break;
      case UBUS_MSG.INVOKE:
        ret = this.invoke(cl, m);
        break;
      case UBUS_MSG.STATUS:
      case UBUS_MSG.DATA:
        ret = this.response(cl, m);
        break;
      case UBUS_MSG.SUBSCRIBE:
        ret = this.subscribe(cl, m);
        break;
      case UBUS_MSG.UNSUBSCRIBE:
        ret = this.unsubscribeReq(cl, m);
        break;
      case UBUS_MSG.NOTIFY:
        ret = this.notify(cl, m);
        break;
      default:
        ret = UBUS_STATUS.INVALID_COMMAND;
    }
    if (ret >= 0) this.send(cl, UBUS_MSG.STATUS, m.seq, m.peer, { status: ret });
  }

  private createType(signature: Uint8Array): ObjType | undefined {
    const list = blobAttrs(signature);
    if (!list.ok) return undefined;
    const methods: Uint8Array[] = [];
    for (const a of list.value) {
      if (!checkBlobmsgNamedElement(a).ok) return undefined;
      methods.push(Uint8Array.from(a.raw));
    }
    const type: ObjType = { id: this.allocId(this.types), refcount: 0, methods };
    this.types.set(type.id, type);
    return type;
  }

  private unrefType(type: ObjType): void {
    if (--type.refcount <= 0) this.types.delete(type.id);
  }

  private addObject(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    let type: ObjType | undefined;
    // As ubusd: an unknown OBJTYPE or a malformed SIGNATURE leaves the object without a type.
    if (a.objtype !== undefined) type = this.types.get(a.objtype);
    else if (a.signatureRaw !== undefined) type = this.createType(a.signatureRaw);
    const obj = this.newObj(this.allocId(this.objects));
    if (type) {
      obj.type = type;
      type.refcount++;
    }
    this.objects.set(obj.id, obj);
    if (a.objpath !== undefined) {
      if (this.paths.has(a.objpath)) {
        this.freeObject(obj);
        return UBUS_STATUS.INVALID_ARGUMENT;
      }
      obj.path = a.objpath;
      this.paths.set(obj.path, obj);
      this.sendObjectEvent(obj, true);
    }
    obj.client = cl;
    cl.objects.unshift(obj);
    const reply: UbusAttrsInput = { objid: obj.id };
    if (a.signatureRaw !== undefined && obj.type) reply.objtype = obj.type.id;
    this.send(cl, UBUS_MSG.DATA, m.seq, m.peer, reply);
    return 0;
  }

  private removeObject(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    if (a.objid === undefined) return UBUS_STATUS.INVALID_ARGUMENT;
    const obj = this.objects.get(a.objid);
    if (!obj) return UBUS_STATUS.NOT_FOUND;
    if (obj.client !== cl) return UBUS_STATUS.PERMISSION_DENIED;
    const reply: UbusAttrsInput = { objid: obj.id };
    if (obj.type && obj.type.refcount === 1) reply.objtype = obj.type.id;
    this.send(cl, UBUS_MSG.DATA, m.seq, m.peer, reply);
    this.freeObject(obj);
    return 0;
  }

  private freeObject(obj: Obj): void {
    for (const s of [...obj.targets]) this.unsubscribe(s);
    for (const s of [...obj.subscribers]) this.notifyUnsubscribe(s);
    for (const ev of obj.events) this.patterns = this.patterns.filter((p) => p !== ev);
    obj.events = [];
    if (obj.path !== undefined) {
      this.sendObjectEvent(obj, false);
      this.paths.delete(obj.path);
    }
    if (obj.client) obj.client.objects = obj.client.objects.filter((o) => o !== obj);
    this.objects.delete(obj.id);
    if (obj.type) this.unrefType(obj.type);
  }

  private sendObj(cl: Client, m: UbusMessage, obj: Obj): void {
    if (!obj.type || obj.path === undefined) return;
    const signature = Buffer.concat(obj.type.methods.map((raw) => Buffer.concat([raw, Buffer.alloc(blobPadLen(raw.length) - raw.length)])));
    this.send(cl, UBUS_MSG.DATA, m.seq, m.peer, { objpath: obj.path, objid: obj.id, objtype: obj.type.id, signatureRaw: signature });
  }

  private lookup(cl: Client, m: UbusMessage): number {
    const sorted = [...this.paths.values()].sort((x, y) => utf8Compare(x.path ?? '', y.path ?? ''));
    const objpath = m.attrs.objpath;
    if (objpath === undefined) {
      for (const obj of sorted) this.sendObj(cl, m, obj);
      return 0;
    }
    if (objpath === '') return UBUS_STATUS.INVALID_ARGUMENT;
    if (!objpath.endsWith('*')) {
      const obj = this.paths.get(objpath);
      if (!obj) return UBUS_STATUS.NOT_FOUND;
      this.sendObj(cl, m, obj);
      return 0;
    }
    const prefix = objpath.slice(0, -1);
    let found = false;
    for (const obj of sorted) {
      if (!(obj.path ?? '').startsWith(prefix)) continue;
      found = true;
      this.sendObj(cl, m, obj);
    }
    return found ? 0 : UBUS_STATUS.NOT_FOUND;
  }

  private invoke(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    if (a.method === undefined || a.objid === undefined) return UBUS_STATUS.INVALID_ARGUMENT;
    const obj = this.objects.get(a.objid);
    if (!obj) return UBUS_STATUS.NOT_FOUND;
    if (!obj.client) return obj.id === UBUS_SYSTEM_OBJECT.EVENT ? this.eventRecv(cl, a.method, a.dataRaw) : UBUS_STATUS.INVALID_COMMAND;
    this.forwardInvoke(obj, a.method, m.seq, cl.id, a.dataRaw, false);
    return -1;
  }

  private forwardInvoke(obj: Obj, method: string, seq: number, peer: number, dataRaw: Uint8Array | undefined, noReply: boolean): void {
    const attrs: UbusAttrsInput = {};
    if (noReply) attrs.noReply = true;
    attrs.objid = obj.id;
    attrs.method = method;
    attrs.user = this.user;
    attrs.group = this.group;
    if (dataRaw !== undefined) attrs.dataRaw = dataRaw;
    this.send(obj.client, UBUS_MSG.INVOKE, seq, peer, attrs);
  }

  private response(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    if (a.objid === undefined) return -1;
    if (m.type === UBUS_MSG.STATUS && a.status === undefined) return -1;
    if (m.type === UBUS_MSG.DATA && a.dataRaw === undefined) return -1;
    const obj = this.objects.get(a.objid);
    if (!obj || obj.client !== cl) return -1;
    const to = this.clients.get(m.peer);
    if (!to) return -1;
    this.sendFrame(to, m.type, m.seq, a.objid, m.body);
    return -1;
  }

  private subscribe(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    if (a.objid === undefined || a.target === undefined) return UBUS_STATUS.INVALID_ARGUMENT;
    const obj = this.objects.get(a.objid);
    if (!obj) return UBUS_STATUS.NOT_FOUND;
    if (obj.client !== cl) return UBUS_STATUS.INVALID_ARGUMENT;
    const target = this.objects.get(a.target);
    if (!target?.client) return UBUS_STATUS.NOT_FOUND;
    if (target.client === cl) return UBUS_STATUS.INVALID_ARGUMENT;
    const first = target.subscribers.length === 0;
    const s: Sub = { subscriber: obj, target };
    target.subscribers.unshift(s);
    obj.targets.unshift(s);
    if (first) this.notifySubscription(target);
    return 0;
  }

  private unsubscribeReq(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    if (a.objid === undefined || a.target === undefined) return UBUS_STATUS.INVALID_ARGUMENT;
    const obj = this.objects.get(a.objid);
    if (!obj) return UBUS_STATUS.NOT_FOUND;
    if (obj.client !== cl) return UBUS_STATUS.INVALID_ARGUMENT;
    const s = obj.targets.find((t) => t.target.id === a.target);
    if (!s) return UBUS_STATUS.NOT_FOUND;
    this.unsubscribe(s);
    return 0;
  }

  private unsubscribe(s: Sub): void {
    s.target.subscribers = s.target.subscribers.filter((x) => x !== s);
    s.subscriber.targets = s.subscriber.targets.filter((x) => x !== s);
    if (s.target.subscribers.length === 0) this.notifySubscription(s.target);
  }

  private notifySubscription(obj: Obj): void {
    this.send(obj.client, UBUS_MSG.NOTIFY, (obj.invokeSeq = (obj.invokeSeq + 1) & 0xffff), 0, {
      objid: obj.id,
      active: obj.subscribers.length > 0,
    });
  }

  private notifyUnsubscribe(s: Sub): void {
    const sub = s.subscriber;
    this.send(sub.client, UBUS_MSG.UNSUBSCRIBE, (sub.invokeSeq = (sub.invokeSeq + 1) & 0xffff), 0, { objid: sub.id, target: s.target.id });
    this.unsubscribe(s);
  }

  private notify(cl: Client, m: UbusMessage): number {
    const a = m.attrs;
    if (a.method === undefined || a.objid === undefined) return UBUS_STATUS.INVALID_ARGUMENT;
    const noReply = a.noReply === true;
    const obj = this.objects.get(a.objid);
    if (!obj) return UBUS_STATUS.NOT_FOUND;
    if (obj.client !== cl) return UBUS_STATUS.PERMISSION_DENIED;
    if (!noReply) {
      this.send(cl, UBUS_MSG.STATUS, m.seq, m.peer, { objid: obj.id, subscribers: obj.subscribers.map((s) => s.subscriber.id), status: 0 });
    }
    for (const s of [...obj.subscribers]) this.forwardInvoke(s.subscriber, a.method, m.seq, cl.id, a.dataRaw, noReply);
    return -1;
  }

  // -------------------------------------------------------------------------------------------
  // The event object (ubusd_event.c)

  /** Named fields of a blobmsg table with the given types (blobmsg_parse: a wrong type counts as absent). */
  private fields(dataRaw: Uint8Array | undefined, want: Record<string, number>): Map<string, { value: unknown; raw: Uint8Array }> {
    const out = new Map<string, { value: unknown; raw: Uint8Array }>();
    if (!dataRaw) return out;
    const list = blobAttrs(dataRaw);
    if (!list.ok) return out;
    for (const a of list.value) {
      const el = decodeBlobmsgElement(a, { int8: 'number' });
      if (!el.ok || want[el.value.name] !== el.value.type || out.has(el.value.name)) continue;
      const nameLen = ((a.payload[0] ?? 0) << 8) | (a.payload[1] ?? 0);
      out.set(el.value.name, { value: el.value.value, raw: a.payload.subarray(blobPadLen(2 + nameLen + 1)) });
    }
    return out;
  }

  private eventRecv(cl: Client, method: string, dataRaw: Uint8Array | undefined): number {
    if (method === 'register') {
      if (!dataRaw) return UBUS_STATUS.INVALID_ARGUMENT;
      const f = this.fields(dataRaw, { pattern: BLOBMSG_TYPE.STRING, object: BLOBMSG_TYPE.INT32 });
      const objectField = f.get('object');
      const patternField = f.get('pattern');
      if (!objectField || !patternField) return UBUS_STATUS.INVALID_ARGUMENT;
      const id = Number(objectField.value) >>> 0;
      if (id < UBUS_SYSTEM_OBJECT_MAX) return UBUS_STATUS.PERMISSION_DENIED;
      const obj = this.objects.get(id);
      if (!obj) return UBUS_STATUS.NOT_FOUND;
      if (obj.client !== cl) return UBUS_STATUS.PERMISSION_DENIED;
      let pattern = String(patternField.value);
      if (pattern === '') return UBUS_STATUS.PERMISSION_DENIED;
      const partial = pattern.endsWith('*');
      if (partial) pattern = pattern.slice(0, -1);
      const ev: EventSource = { pattern, partial, obj };
      obj.events.unshift(ev);
      this.patterns.push(ev);
      return 0;
    }
    if (method === 'send') {
      if (!dataRaw) return UBUS_STATUS.INVALID_ARGUMENT;
      const f = this.fields(dataRaw, { id: BLOBMSG_TYPE.STRING, data: BLOBMSG_TYPE.TABLE });
      const idField = f.get('id');
      const dataField = f.get('data');
      if (!idField || !dataField) return UBUS_STATUS.INVALID_ARGUMENT;
      const id = String(idField.value);
      if (id.startsWith('ubus.')) return UBUS_STATUS.PERMISSION_DENIED;
      this.sendEvent(cl, id, dataField.raw);
      return 0;
    }
    return UBUS_STATUS.INVALID_COMMAND;
  }

  private sendEvent(from: Client | undefined, id: string, dataRaw: Uint8Array): void {
    this.objEventSeq++;
    const sorted = [...this.patterns].sort((x, y) => utf8Compare(x.pattern, y.pattern));
    for (const ev of sorted) {
      if (!(ev.pattern === id || (ev.partial && id.startsWith(ev.pattern)))) continue;
      const obj = ev.obj;
      if (obj.client === from) continue; // no loop-back to the sender
      if (obj.eventSeen === this.objEventSeq) continue; // one delivery per listener object
      obj.eventSeen = this.objEventSeq;
      this.eventSeq = (this.eventSeq + 1) & 0xffff;
      this.send(obj.client, UBUS_MSG.INVOKE, this.eventSeq, 0, { objid: obj.id, method: id, dataRaw });
    }
  }

  private sendObjectEvent(obj: Obj, add: boolean): void {
    const data = encodeBlobmsgTable({ id: blobmsgTyped('int32', obj.id), path: obj.path ?? '' });
    this.sendEvent(undefined, add ? 'ubus.object.add' : 'ubus.object.remove', data);
  }
}
