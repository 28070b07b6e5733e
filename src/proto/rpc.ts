// SPDX-License-Identifier: GPL-2.0-only
// RpcPeer: request/response over any MessageChannel (TCP now, MQTT next). It stamps request ids,
// matches replies, enforces time-outs, decodes every incoming body with core/messages.ts's codecs
// (handlers and callers see typed values only) and encodes every outgoing one, and dispatches
// requests to registered handlers. It knows message types but nothing of their meaning.
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
  type Envelope,
  type ReplyBody,
  type RequestBody,
  type RequestType,
} from '../core/messages.js';

/** A bidirectional, message-oriented link: it moves whole payloads and knows nothing of their meaning. */
export interface MessageChannel {
  readonly peer: string;
  send(payload: Buffer): void;
  onMessage(receiver: (payload: Buffer) => void): void;
  onClose(receiver: (reason: string) => void): void;
  close(reason?: string): void;
}

export class RpcError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Handler<T extends RequestType> = (body: RequestBody<T>) => Promise<ReplyBody<T>> | ReplyBody<T>;

interface Pending {
  type: RequestType;
  resolve: (body: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class RpcPeer {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Handler<RequestType>>();
  private closed: string | undefined;
  /** Called for every protocol problem the peer caused (bad JSON, bad body, unknown reply). */
  onProtocolError: (message: string) => void = () => {};

  constructor(
    readonly channel: MessageChannel,
    private readonly defaultTimeoutMs = 3000,
  ) {
    channel.onMessage((payload) => this.receive(payload));
    channel.onClose((reason) => this.shutdown(reason));
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  handle<T extends RequestType>(type: T, handler: Handler<T>): void {
    this.handlers.set(type, handler);
  }

  request<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs = this.defaultTimeoutMs): Promise<ReplyBody<T>> {
    if (this.closed) return Promise.reject(new RpcError('closed', `connection closed: ${this.closed}`));
    const id = this.nextId++;
    return new Promise<ReplyBody<T>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError('timeout', `no reply to ${type} from ${this.channel.peer} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { type, resolve: resolve as (b: unknown) => void, reject, timer });
      this.send({ v: SCHEMA_VERSION, type, id, body: encodeRequestBody(type, body) });
    });
  }

  close(reason = 'closed locally'): void {
    this.channel.close(reason);
    this.shutdown(reason);
  }

  private send(env: Envelope): void {
    if (this.closed) return;
    this.channel.send(encodeEnvelope(env));
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RpcError('closed', `connection closed before ${p.type} was answered: ${reason}`));
      this.pending.delete(id);
    }
  }

  private receive(payload: Buffer): void {
    const decoded = decodeEnvelope(payload);
    if (!decoded.ok) {
      this.onProtocolError(decoded.error);
      return;
    }
    const env = decoded.value;
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
    this.pending.delete(re);
    clearTimeout(p.timer);
    if (env.type === 'error') {
      const body = decodeErrorBody(env.body);
      p.reject(body.ok ? new RpcError(body.value.code, body.value.message) : new RpcError('protocol', body.error));
      return;
    }
    const body = decodeReplyBody(p.type, env.body);
    if (body.ok) p.resolve(body.value);
    else p.reject(new RpcError('protocol', body.error));
  }

  private async receiveRequest(env: Envelope, id: number): Promise<void> {
    const fail = (code: string, message: string) => this.send({ v: SCHEMA_VERSION, type: 'error', re: id, body: { code, message } });
    if (!isRequestType(env.type)) return fail('unknown-type', `unknown message type '${env.type}'`);
    const handler = this.handlers.get(env.type);
    if (!handler) return fail('unsupported', `this end does not serve '${env.type}'`);
    const body = decodeRequestBody(env.type, env.body);
    if (!body.ok) {
      this.onProtocolError(body.error);
      return fail('bad-request', body.error);
    }
    try {
      const reply = await handler(body.value);
      this.send({ v: SCHEMA_VERSION, type: 'reply', re: id, body: encodeReplyBody(env.type, reply) });
    } catch (e) {
      if (e instanceof RpcError) fail(e.code, e.message);
      else fail('internal', e instanceof Error ? e.message : String(e));
    }
  }
}
