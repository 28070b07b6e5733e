// SPDX-License-Identifier: GPL-2.0-only
// MQTT 5 transport for MLRP (MQTT.js): the CN's connector (connectMqtt) and the MLR's listener
// (serveMqtt), both giving the same MessageChannel as TCP, so nothing above knows a broker is there.
//
// Topics, under tmip/<network_name>/ (a broker ACL can confine each CN to its own, see
// files/etc/mosquitto/tmip.acl):
//   tmip/<net>/mlr/<cn>      CN -> MLR, one topic per CN   (`pattern write tmip/+/mlr/%u`)
//   tmip/<net>/cn/<cn>       MLR -> CN, the CN's inbox     (`pattern read tmip/+/cn/%u`)
//   tmip/<net>/status/<cn>   presence: 'online' on connect, 'offline' as the last will (retained)
// CN names may hold letters, digits, space and . _ - : (all valid in a topic level); a CN or network
// name with + # / (or an empty one) is refused here, so it can never widen a subscription.
//
// Every message is QoS 1, retain false; presence is QoS 1, retain true, so an MLR that (re)connects
// learns from the retained statuses who is online and tells each of them to re-bind. A request
// carries responseTopic (the sender's inbox) and correlationData (its id); a reply carries the same
// correlationData and goes to that inbox, which is always the fixed peer topic: each side publishes
// only to the other's topic for this CN, whatever response topic a packet names (the MLR logs a
// foreign one). The MLRP envelope carries id/re itself, so the receiver does not need them.
//
// Sessions: clean start and session expiry 0 on both sides. A broker connection that drops closes
// the channel(s) it carried; the CN then reconnects with back-off and re-binds (MlrLink), and the
// MLR re-sends the whole truth in the bind reply. Messages queued for a dead session (a prepare or
// commit about a state that has moved on) must therefore never be replayed into a new one, which
// is exactly what a persistent session would do. Every CN connection has a random session id
// (user property `tmip-session` on all it publishes, its presence and last will included): the MLR
// keeps one virtual channel per CN and session, so a late last will or a message of an old session
// never closes or feeds the channel of a new one. The daemon's client id is tmip-cn-<cn>, so a
// restarted CN takes over (and ends) its own half-dead connection at once; `tmip-cn -E` connects as
// a probe (its own client id, presence not retained), so it never disturbs the daemon's session. The MLR closes a CN's channel by publishing a
// message with user property `tmip-control: close` to the CN's inbox; the CN then closes its
// channel, and its MlrLink re-binds.
//
// Bounds: payloads over 256 KiB (the TCP framing's limit) are dropped and logged; the broker is
// asked not to send packets over 1 MiB at all; the MLR holds at most 4096 CN channels, 8 per CN; a
// session id is 1..64 of [0-9A-Za-z_-] or the message is dropped; malformed input is logged at most
// once a minute per topic and 32 lines a minute in all.
import { monotonicMs } from '../core/clock.js';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type * as MqttLibrary from 'mqtt';
import type { IClientOptions, IClientPublishOptions, IPublishPacket, MqttClient } from 'mqtt';
import { Backoff } from '../core/backoff.js';
import { CN_NAME_RE, type MlrAddress, type TlsFiles } from '../core/config.js';
import { RateLimitedLog } from '../proto/auth.js';
import type { MessageChannel } from '../proto/rpc.js';
import { LOG, type LogFn } from './log.js';
import { tlsClientContext, tlsConnect } from './tls-channel.js';

export const MQTT_MAX_PAYLOAD = 256 * 1024;
/** What the broker may send us at most (MQTT 5 Maximum Packet Size); bigger packets never arrive. */
const MQTT_MAX_PACKET = 1024 * 1024;
export const MQTT_MAX_CHANNELS = 4096;
const SESSION_PROP = 'tmip-session';
const CONTROL_PROP = 'tmip-control';
const THROTTLE_MS = 60_000;
/** Lines a ThrottledLog writes in one THROTTLE_MS, over all topics (then one summary line). */
const THROTTLE_BURST = 32;
/** What a session id may look like (ours: 12 hex digits); anything else is not a session of ours. */
const SESSION_RE = /^[0-9A-Za-z_-]{1,64}$/;
/** Channels one CN may hold at the MLR at once (its daemon, a probe, a session about to end). */
export const MQTT_MAX_SESSIONS_PER_CN = 8;

export interface MqttTopics {
  /** CN -> MLR. */
  toMlr(cn: string): string;
  /** MLR -> CN (the CN's inbox). */
  toCn(cn: string): string;
  status(cn: string): string;
  mlrPrefix: string;
  cnPrefix: string;
  statusPrefix: string;
}

/** Why `text` cannot be one topic level, or undefined if it can. */
function badLevel(text: string): string | undefined {
  if (text.length === 0) return 'is empty';
  if (/[+#/]/.test(text) || text.includes('\0')) return 'contains + # / or NUL, which MQTT topics reserve';
  return undefined;
}

/** The topic names of one network; throws if the network name cannot be a topic level. */
export function mqttTopics(network: string): MqttTopics {
  const bad = badLevel(network);
  if (bad) throw new Error(`network name ${JSON.stringify(network)} ${bad}`);
  const base = `tmip/${network}`;
  return {
    toMlr: (cn) => `${base}/mlr/${cn}`,
    toCn: (cn) => `${base}/cn/${cn}`,
    status: (cn) => `${base}/status/${cn}`,
    mlrPrefix: `${base}/mlr/`,
    cnPrefix: `${base}/cn/`,
    statusPrefix: `${base}/status/`,
  };
}

/** A CN's channel at the MLR: one per CN and connection (session). */
const key = (cn: string, session: string) => `${cn}\u0000${session}`;

function checkCnName(cn: string): string | undefined {
  return badLevel(cn) ?? (CN_NAME_RE.test(cn) ? undefined : 'is not a CN name (1..64 letters, digits, spaces and . _ - :)');
}

/**
 * Logs a problem at most once per THROTTLE_MS per key (a topic), saying how many were left out, and
 * at most THROTTLE_BURST lines per THROTTLE_MS in all (however many topics a stranger makes up).
 * The topic is a stranger's text: control characters are replaced and it is cut at 200 characters.
 */
class ThrottledLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();
  private readonly lines: RateLimitedLog;
  constructor(log: LogFn) {
    this.lines = new RateLimitedLog((line) => log(LOG.error, line), monotonicMs, THROTTLE_BURST, THROTTLE_MS, 'MQTT input problem(s)');
  }

  warn(key: string, message: string): void {
    const now = monotonicMs();
    const s = this.seen.get(key);
    if (s && now - s.at < THROTTLE_MS) {
      s.suppressed++;
      return;
    }
    if (this.seen.size >= 1024) this.seen.clear();
    const more = s && s.suppressed > 0 ? ` (${s.suppressed} more since the last report)` : '';
    this.seen.set(key, { at: now, suppressed: 0 });
    // eslint-disable-next-line no-control-regex
    const shown = key.slice(0, 200).replace(/[\u0000-\u001f\u007f]/g, '?');
    this.lines.log(`MQTT ${shown}${key.length > 200 ? '...' : ''}: ${message}${more}`);
  }
}

function userProp(packet: IPublishPacket, name: string): string | undefined {
  const v = packet.properties?.userProperties?.[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The packet's session id, if it has one that can be ours (bounded: it becomes a map key). */
function sessionOf(packet: IPublishPacket): string | undefined {
  const s = userProp(packet, SESSION_PROP);
  return s !== undefined && SESSION_RE.test(s) ? s : undefined;
}

function brokerUrl(address: MlrAddress): string {
  return `${address.scheme === 'mqtts' ? 'mqtts' : 'mqtt'}://${address.host}:${address.port}`;
}

/**
 * mqtts://: the same TLS context as tls:// (tls-channel.ts), so the files are read and checked once
 * per `tls` object, not at every reconnect, and a bad one is reported naming its option. Given to
 * tls.connect for the broker's socket (openBrokerStream).
 */
function tlsOptions(address: MlrAddress, tls: TlsFiles, prefix = 'tls'): ConnectionOptions | undefined {
  if (address.scheme !== 'mqtts') return undefined;
  return {
    rejectUnauthorized: true,
    // SNI for a DNS name; Node checks the certificate against the host either way.
    ...(net.isIP(address.host) ? {} : { servername: address.host }),
    secureContext: tlsClientContext(tls, prefix),
  };
}

/** A failed connection; `refused` when the broker answered with a refusal (credentials, ACL). */
class MqttConnectError extends Error {
  constructor(
    message: string,
    readonly refused: boolean,
  ) {
    super(message);
  }
}

/**
 * MQTT.js, loaded on the first broker connection. A daemon on the TCP transport never runs it: loaded
 * and connected, it adds 4-5 MB to a bare Node process's RSS, and an MQTT CN measures about 1 MB more
 * than a TCP one (bench/dhcp --memory --transport mqtt). In the bundles it is a module of its own beside the daemon's (build.sh:
 * dist/<prog>-mqtt.cjs), which exports `MqttClient` only: hence the narrow type, so that using more of
 * the library fails to compile instead of at run time.
 */
let mqttLibrary: Promise<Pick<typeof MqttLibrary, 'MqttClient'>> | undefined;

/**
 * The broker's socket, opened by us rather than by mqtt.connect(): that call sets up every transport
 * MQTT.js has (WebSocket, WeChat, Alipay, SOCKS) the first time, loading the `ws` package and more,
 * about 3 MB of RSS for nothing on a router (and with them MQTT.js's MQTTJS_SOCKS_PROXY variable, which
 * tmip does not honour). As MQTT.js's own mqtts builder does, a TLS handshake that fails is reported as
 * the client's error and the socket ended.
 */
function openBrokerStream(client: MqttClient, address: MlrAddress, tls: ConnectionOptions | undefined): net.Socket {
  if (tls === undefined) return net.createConnection({ host: address.host, port: address.port });
  const socket = tlsConnect({ ...tls, host: address.host, port: address.port });
  const onHandshakeError = (e: Error) => {
    client.emit('error', e);
    socket.end();
  };
  socket.on('error', onHandshakeError);
  socket.once('secureConnect', () => socket.off('error', onHandshakeError));
  return socket;
}

/** Connects and resolves once the broker accepted us; rejects on refusal, error or time-out. */
async function connectClient(
  address: MlrAddress,
  options: IClientOptions,
  tls: ConnectionOptions | undefined,
  timeoutMs: number,
): Promise<MqttClient> {
  const url = brokerUrl(address);
  const { MqttClient: Client } = await (mqttLibrary ??= import('mqtt'));
  return new Promise((resolve, reject) => {
    const client: MqttClient = new Client((self) => openBrokerStream(self, address, tls), {
      ...options,
      host: address.host,
      port: address.port,
      protocol: address.scheme === 'mqtts' ? 'mqtts' : 'mqtt',
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      // MQTT.js would otherwise pre-build a Buffer for each of the 65,536 16-bit numbers on its first
      // write (mqtt-packet's number cache), about 6 MB of heap on a router; the few numbers a packet
      // carries are written as they come instead.
      writeCache: false,
    });
    let lastError = '';
    let refused = false;
    const onError = (e: Error & { code?: unknown }) => {
      lastError = e.message;
      // A CONNACK refusal carries its MQTT reason code as a number; socket errors carry a string.
      if (typeof e.code === 'number') refused = true;
    };
    const onClose = () => fail(lastError || 'connection closed');
    const onConnect = () => {
      clearTimeout(timer);
      // Small request/ack exchanges: without this, Nagle and delayed ACKs stall each hop ~40 ms.
      (client.stream as Partial<net.Socket>).setNoDelay?.(true);
      client.off('close', onClose);
      resolve(client);
    };
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs + 500);
    const fail = (why: string) => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('close', onClose);
      // keep swallowing errors of the dying client
      client.end(true);
      reject(new MqttConnectError(`MQTT broker ${url}: ${why}`, refused));
    };
    client.on('error', onError);
    client.once('close', onClose);
    client.once('connect', onConnect);
  });
}

/** The end of the way out that a channel's `send` takes: topic, correlation and session. */
function publishOptions(session: string, meta: { id?: number; re?: number } | undefined, inbox: string): IClientPublishOptions {
  const corr = meta?.id ?? meta?.re;
  return {
    qos: 1,
    retain: false,
    properties: {
      userProperties: { [SESSION_PROP]: session },
      ...(meta?.id !== undefined ? { responseTopic: inbox } : {}),
      ...(corr !== undefined ? { correlationData: Buffer.from(String(corr)) } : {}),
    },
  };
}

/** Shared bookkeeping of a channel: one receiver, close receivers, a reason once closed. */
abstract class BaseChannel implements MessageChannel {
  abstract readonly peer: string;
  protected receiver: (payload: Buffer) => void = () => {};
  private closeReceivers: ((reason: string) => void)[] = [];
  protected closedReason: string | undefined;

  abstract send(payload: Buffer, meta?: { id?: number; re?: number }): void;
  abstract close(reason?: string): void;

  onMessage(receiver: (payload: Buffer) => void): void {
    this.receiver = receiver;
  }

  onClose(receiver: (reason: string) => void): void {
    if (this.closedReason !== undefined) receiver(this.closedReason);
    else this.closeReceivers.push(receiver);
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Mark closed and tell the receivers (once). */
  finish(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    const rs = this.closeReceivers;
    this.closeReceivers = [];
    for (const r of rs) r(reason);
  }
}

export interface MqttCnOptions {
  networkName: string;
  cnName: string;
  username: string;
  password?: string;
  tls?: TlsFiles;
  log?: LogFn;
  connectTimeoutMs?: number;
  /** MQTT keep-alive in seconds (how soon the broker publishes our last will); default 15. */
  keepaliveSeconds?: number;
  /** A short-lived connection beside the daemon's (`tmip-cn -E`): own client id, no retained presence. */
  probe?: boolean;
}

/** The CN's channel to the MLR through the broker. Closes when the broker connection drops. */
export class MqttCnChannel extends BaseChannel {
  readonly peer: string;
  private readonly inbox: string;
  private readonly outbox: string;
  private readonly throttled: ThrottledLog;

  constructor(
    /** The MQTT client; tests reach its socket through it. */
    readonly client: MqttClient,
    private readonly topics: MqttTopics,
    private readonly cn: string,
    readonly session: string,
    url: string,
    log: LogFn,
    private readonly retainPresence = true,
  ) {
    super();
    this.peer = `${url} as ${cn}`;
    this.inbox = topics.toCn(cn);
    this.outbox = topics.toMlr(cn);
    this.throttled = new ThrottledLog(log);
    client.on('message', (topic, payload, packet) => this.receive(topic, payload, packet));
    client.on('error', (e) => log(LOG.proto, `MQTT ${url}: ${e.message}`));
    client.on('close', () => this.finish(`lost the MQTT broker ${url}`));
  }

  send(payload: Buffer, meta?: { id?: number; re?: number }): void {
    if (this.closed) return;
    // Replies too go to our own topic: it is the response topic the MLR names, and the only one the
    // broker's ACL lets us write (a response topic from the inbox is not used to steer us elsewhere).
    this.client.publish(this.outbox, payload, publishOptions(this.session, meta, this.inbox));
  }

  close(reason = 'closed'): void {
    if (this.closed) return;
    this.finish(reason);
    // Say goodbye (the last will only covers a dropped connection), then leave once it is acked.
    this.client.publish(this.topics.status(this.cn), 'offline', {
      qos: 1,
      retain: this.retainPresence,
      properties: { userProperties: { [SESSION_PROP]: this.session } },
    });
    this.client.end(false);
    setTimeout(() => this.client.end(true), 2000).unref();
  }

  private receive(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (this.closed || topic !== this.inbox) return;
    const session = userProp(packet, SESSION_PROP);
    if (session !== this.session) return; // for another connection of this CN (an earlier one, a probe)
    if (userProp(packet, CONTROL_PROP) === 'close') {
      this.close('closed by the MLR');
      return;
    }
    if (payload.length > MQTT_MAX_PAYLOAD) {
      this.throttled.warn(topic, `dropped a message of ${payload.length} bytes (limit ${MQTT_MAX_PAYLOAD})`);
      return;
    }
    this.receiver(payload);
  }
}

/** CN side: connect to the broker, subscribe to our inbox, announce ourselves online. */
export async function connectMqtt(address: MlrAddress, opts: MqttCnOptions): Promise<MqttCnChannel> {
  const topics = mqttTopics(opts.networkName);
  const bad = checkCnName(opts.cnName);
  if (bad) throw new Error(`CN name ${JSON.stringify(opts.cnName)} ${bad}; it names this CN's MQTT topics`);
  const log = opts.log ?? (() => {});
  const session = randomBytes(6).toString('hex');
  const url = brokerUrl(address);
  const client = await connectClient(
    address,
    {
      protocolVersion: 5,
      clean: true,
      // One connection per CN: a new one takes over (and ends) a half-dead earlier one at once.
      clientId: `tmip-cn-${encodeURIComponent(opts.cnName)}${opts.probe ? `-probe-${session}` : ''}`,
      username: opts.username,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      keepalive: opts.keepaliveSeconds ?? 15,
      properties: { sessionExpiryInterval: 0, maximumPacketSize: MQTT_MAX_PACKET },
      will: {
        topic: topics.status(opts.cnName),
        payload: Buffer.from('offline'),
        qos: 1,
        retain: !opts.probe,
        properties: { userProperties: { [SESSION_PROP]: session } },
      },
    },
    tlsOptions(address, opts.tls ?? {}),
    opts.connectTimeoutMs ?? 5000,
  );
  try {
    const granted = await client.subscribeAsync(topics.toCn(opts.cnName), { qos: 1 });
    if (granted.some((g) => g.qos > 2)) throw new Error(`the broker refused our subscription to ${topics.toCn(opts.cnName)} (ACL?)`);
    const channel = new MqttCnChannel(client, topics, opts.cnName, session, url, log, !opts.probe);
    await client.publishAsync(topics.status(opts.cnName), 'online', {
      qos: 1,
      retain: !opts.probe,
      properties: { userProperties: { [SESSION_PROP]: session } },
    });
    return channel;
  } catch (e) {
    client.end(true);
    throw new Error(`MQTT broker ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The MLR's end of one CN's connection (one CN, one session). */
class MqttMlrChannel extends BaseChannel {
  readonly peer: string;

  constructor(
    private readonly server: MqttMlrServer,
    readonly cn: string,
    readonly session: string,
  ) {
    super();
    this.peer = `mqtt:${cn}`;
    this.transportIdentity = cn;
  }

  readonly transportIdentity: string;

  send(payload: Buffer, meta?: { id?: number; re?: number }): void {
    if (this.closed) return;
    this.server.publishToCn(this.cn, this.session, payload, meta);
  }

  close(reason = 'closed'): void {
    if (this.closed) return;
    this.finish(reason);
    this.server.closedByUs(this);
  }

  deliver(payload: Buffer): void {
    if (this.closed) return;
    this.receiver(payload);
  }
}

export interface MqttMlrOptions {
  networkName: string;
  username: string;
  password?: string;
  /** CA of the broker's certificate (mqtts://). */
  ca?: string;
  log: LogFn;
  maxChannels?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  keepaliveSeconds?: number;
}

class MqttMlrServer {
  private client: MqttClient | undefined;
  /** By CN name and session: a CN's daemon and a `tmip-cn -E` probe beside it are two channels. */
  private readonly channels = new Map<string, MqttMlrChannel>();
  /** Sessions whose channel we closed: their late messages are dropped, not a new channel. */
  private readonly closedSessions = new Set<string>();
  private readonly topics: MqttTopics;
  private readonly url: string;
  private readonly throttled: ThrottledLog;
  /** One object for the life of the server, so its TLS context is built once. */
  private readonly tlsFiles: TlsFiles;
  private stopped = false;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private firstUp: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(
    private readonly address: MlrAddress,
    private readonly opts: MqttMlrOptions,
    private readonly onChannel: (channel: MessageChannel, remoteAddr: string | undefined) => void,
  ) {
    this.topics = mqttTopics(opts.networkName);
    this.url = brokerUrl(address);
    this.throttled = new ThrottledLog(opts.log);
    this.tlsFiles = opts.ca !== undefined ? { ca: opts.ca } : {};
    this.backoff = new Backoff(opts.minBackoffMs, opts.maxBackoffMs);
  }

  get describe(): string {
    return `MQTT broker ${this.url} (topics ${this.topics.mlrPrefix}+)`;
  }

  /** Resolves once connected and subscribed the first time; rejects if that first attempt fails. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstUp = { resolve, reject };
      void this.attempt();
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const ch of [...this.channels.values()]) ch.close('MLR shutting down');
    const c = this.client;
    this.client = undefined;
    if (c) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([c.endAsync(false), new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      c.end(true);
    }
  }

  publishToCn(cn: string, session: string, payload: Buffer, meta: { id?: number; re?: number } | undefined): void {
    // Only ever the CN's own inbox: a CN must not steer our (all-topics) account at another CN's.
    this.client?.publish(this.topics.toCn(cn), payload, publishOptions(session, meta, this.topics.toMlr(cn)));
  }

  closedByUs(ch: MqttMlrChannel): void {
    this.forget(ch);
    this.rememberClosed(ch.cn, ch.session);
    this.sendControlClose(ch.cn, ch.session);
  }

  private sendControlClose(cn: string, session: string): void {
    this.client?.publish(this.topics.toCn(cn), '', {
      qos: 1,
      retain: false,
      properties: { userProperties: { [CONTROL_PROP]: 'close', [SESSION_PROP]: session } },
    });
  }

  private forget(ch: MqttMlrChannel): void {
    if (this.channels.get(key(ch.cn, ch.session)) === ch) this.channels.delete(key(ch.cn, ch.session));
  }

  private rememberClosed(cn: string, session: string): void {
    if (this.closedSessions.size >= MQTT_MAX_CHANNELS) this.closedSessions.delete(this.closedSessions.values().next().value!);
    this.closedSessions.add(key(cn, session));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(), this.backoff.next());
  }

  private async attempt(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    const log = this.opts.log;
    let client: MqttClient;
    try {
      client = await connectClient(
        this.address,
        {
          protocolVersion: 5,
          clean: true,
          clientId: `tmip-mlr-${encodeURIComponent(this.opts.networkName)}`,
          username: this.opts.username,
          ...(this.opts.password !== undefined ? { password: this.opts.password } : {}),
          keepalive: this.opts.keepaliveSeconds ?? 15,
          properties: { sessionExpiryInterval: 0, maximumPacketSize: MQTT_MAX_PACKET },
        },
        tlsOptions(this.address, this.tlsFiles, 'mqtt'),
        5000,
      );
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      // Refused (wrong account) or a bad CA file at start: a configuration error, stop here. An
      // unreachable broker is not: serve the other transports meanwhile and keep trying.
      if (this.firstUp && (!(e instanceof MqttConnectError) || e.refused)) {
        this.firstUp.reject(new Error(msg));
        this.firstUp = undefined;
        this.stopped = true;
        return;
      }
      this.firstUp?.resolve();
      this.firstUp = undefined;
      log(LOG.error, `${msg}; retrying`);
      this.schedule();
      return;
    }
    if (this.stopped) {
      client.end(true);
      return;
    }
    this.client = client;
    client.on('message', (topic, payload, packet) => this.receive(topic, payload, packet));
    client.on('error', (e) => log(LOG.proto, `MQTT ${this.url}: ${e.message}`));
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end(true);
      // Every CN's channel goes with the broker; the CNs re-bind when it is back.
      // Their sessions are dead to us: a CN still on one is told to re-bind (retained presence).
      for (const ch of [...this.channels.values()]) {
        this.rememberClosed(ch.cn, ch.session);
        ch.finish(`lost the MQTT broker ${this.url}`);
      }
      this.channels.clear();
      if (!this.stopped) {
        log(LOG.error, `lost the MQTT broker ${this.url}; reconnecting`);
        this.schedule();
      }
    });
    try {
      const granted = await client.subscribeAsync([`${this.topics.mlrPrefix}+`, `${this.topics.statusPrefix}+`], { qos: 1 });
      if (granted.some((g) => g.qos > 2)) throw new Error(`the broker refused a subscription (ACL?): ${JSON.stringify(granted)}`);
    } catch (e) {
      const msg = `MQTT broker ${this.url}: ${e instanceof Error ? e.message : String(e)}`;
      if (this.firstUp) {
        this.stopped = true;
        this.client = undefined;
        client.end(true);
        this.firstUp.reject(new Error(msg));
        this.firstUp = undefined;
        return;
      }
      log(LOG.error, msg);
      client.end(true);
      return;
    }
    this.backoff.reset();
    log(LOG.info, `connected to the MQTT broker ${this.url}`);
    this.firstUp?.resolve();
    this.firstUp = undefined;
  }

  private receive(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic.startsWith(this.topics.statusPrefix)) this.presence(topic, topic.slice(this.topics.statusPrefix.length), payload, packet);
    else if (topic.startsWith(this.topics.mlrPrefix)) this.fromCn(topic, topic.slice(this.topics.mlrPrefix.length), payload, packet);
  }

  private presence(topic: string, cn: string, payload: Buffer, packet: IPublishPacket): void {
    const session = sessionOf(packet);
    const state = payload.length <= 7 ? payload.toString() : '';
    if (checkCnName(cn) || session === undefined || (state !== 'online' && state !== 'offline')) {
      if (payload.length > 0) this.throttled.warn(topic, 'ignored a malformed presence message');
      return;
    }
    const ch = this.channels.get(key(cn, session));
    if (state === 'offline') {
      if (ch) {
        this.forget(ch);
        ch.finish('the CN went offline (MQTT presence)');
      }
      return;
    }
    // A retained 'online' from before we (re)connected: that CN may think it is bound to us.
    if (packet.retain && !ch) this.sendControlClose(cn, session);
  }

  private fromCn(topic: string, cn: string, payload: Buffer, packet: IPublishPacket): void {
    const bad = checkCnName(cn);
    if (bad) {
      this.throttled.warn(topic, `dropped a message: the CN name ${bad}`);
      return;
    }
    const session = sessionOf(packet);
    if (session === undefined) {
      this.throttled.warn(topic, `dropped a message without a valid ${SESSION_PROP} user property`);
      return;
    }
    if (payload.length > MQTT_MAX_PAYLOAD) {
      this.throttled.warn(topic, `dropped a message of ${payload.length} bytes (limit ${MQTT_MAX_PAYLOAD})`);
      return;
    }
    const responseTopic = packet.properties?.responseTopic;
    if (responseTopic !== undefined && responseTopic !== this.topics.toCn(cn)) {
      // We reply to the CN's own inbox whatever it asks: a CN must not steer our account elsewhere.
      this.throttled.warn(topic, `ignored response topic ${JSON.stringify(responseTopic.slice(0, 200))}`);
    }
    const k = key(cn, session);
    if (this.closedSessions.has(k)) return;
    let ch = this.channels.get(k);
    if (!ch) {
      if (this.channels.size >= (this.opts.maxChannels ?? MQTT_MAX_CHANNELS)) {
        this.throttled.warn(topic, `dropped a message: already ${this.channels.size} CN channels`);
        return;
      }
      if (this.sessionsOf(cn) >= MQTT_MAX_SESSIONS_PER_CN) {
        this.throttled.warn(topic, `dropped a message: already ${MQTT_MAX_SESSIONS_PER_CN} channels of CN '${cn}'`);
        return;
      }
      ch = new MqttMlrChannel(this, cn, session);
      this.channels.set(k, ch);
      this.opts.log(LOG.proto, `MQTT: CN '${cn}' (session ${session}) on ${topic}`);
      this.onChannel(ch, `mqtt:${cn}`);
    }
    ch.deliver(payload);
  }

  private sessionsOf(cn: string): number {
    let n = 0;
    for (const ch of this.channels.values()) if (ch.cn === cn) n++;
    return n;
  }
}

/**
 * MLR side: connect to the broker (reconnecting with back-off), subscribe to every CN's topic and
 * presence, and hand each CN (per connection) to `onChannel` as its own channel. Resolves once the
 * first connection is up, or once the first attempt found the broker unreachable (it keeps trying);
 * rejects if the broker refused us or the subscription at start-up (a configuration error).
 */
export async function serveMqtt(
  address: MlrAddress,
  opts: MqttMlrOptions,
  onChannel: (channel: MessageChannel, remoteAddr: string | undefined) => void,
): Promise<{ describe: string; close(): Promise<void> }> {
  const server = new MqttMlrServer(address, opts, onChannel);
  await server.start();
  return { describe: server.describe, close: () => server.close() };
}
