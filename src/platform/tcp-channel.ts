// SPDX-License-Identifier: GPL-2.0-only
// TCP transport for MLRP: wraps a net.Socket as a MessageChannel using the MLRP framing, with a
// listener (MLR side) and a connector (CN side). A framing error closes the connection.
// Bounded: a frame must be completed within FRAME_TIMEOUT_MS of its first byte (a slow peer that
// sends half a frame is closed), a server-side connection must send its first frame within that
// time too, and the listener takes at most MAX_CONNECTIONS_PER_SOURCE connections per source
// address (MAX_CONNECTIONS in all); more are closed at once. A peer that does not read what it is
// sent is closed once MAX_WRITE_BUFFER bytes wait for it.
// Writes are coalesced: the frames sent during one turn of the event loop go out in one socket write
// (one system call instead of one per message), in order, at the end of the turn, or at once when the
// channel is closed locally. One setImmediate flushes every channel written to in the turn (the MLR
// writes to hundreds of CNs in one turn; not an Immediate per channel).
import net from 'node:net';
import { RateLimitedLog } from '../proto/auth.js';
import { FrameDecoder, MLRP_HEADER_BYTES, MLRP_MAX_PAYLOAD, encodeFrames } from '../proto/mlrp.js';
import type { MessageChannel } from '../proto/rpc.js';

/** A frame started must be complete within this time, or the connection is closed. */
export const FRAME_TIMEOUT_MS = 10_000;
/** Connections the MLR's listener accepts from one source address (a CN needs one or two). */
export const MAX_CONNECTIONS_PER_SOURCE = 8;
/** Connections the listener accepts in all. */
export const MAX_CONNECTIONS = 4096;
/** Bytes queued for a peer that does not read before it is dropped (a bind reply is at most 256 KiB). */
export const MAX_WRITE_BUFFER = 4 * 1024 * 1024;

export interface TcpChannelOptions {
  /** Close when a frame stays incomplete this long (default FRAME_TIMEOUT_MS; 0 = never). */
  frameTimeoutMs?: number;
  /** Server side: close when no frame at all has arrived this long after connecting. */
  firstFrameTimeoutMs?: number;
  /** Close when more than this many bytes wait to be sent (default MAX_WRITE_BUFFER). */
  maxWriteBuffer?: number;
}

/** A socket's remote address, an IPv4-mapped IPv6 one as plain IPv4. */
export function remoteHost(socket: net.Socket): string | undefined {
  return socket.remoteAddress?.replace(/^::ffff:/, '');
}

/** Channels with frames queued this turn; flushDirty() writes them all at its end. */
let dirty: TcpChannel[] = [];

function flushDirty(): void {
  const list = dirty;
  dirty = [];
  // A channel closed meanwhile has nothing queued (close() flushed, finish() dropped it): flush() then does nothing.
  for (const ch of list) {
    try {
      ch.flush();
    } catch (e) {
      ch.close(`write failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

export class TcpChannel implements MessageChannel {
  readonly peer: string;
  private readonly decoder = new FrameDecoder();
  private receiver: (payload: Buffer) => void = () => {};
  private closeReceivers: ((reason: string) => void)[] = [];
  private closedReason: string | undefined;
  private frameTimer: NodeJS.Timeout | undefined;
  private readonly maxWriteBuffer: number;
  /** Payloads sent this turn, not yet written, and their bytes with frame headers. */
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  /** Whether this channel is in `dirty`, waiting for the end of the turn. */
  private dirty = false;

  constructor(
    private readonly socket: net.Socket,
    opts: TcpChannelOptions = {},
  ) {
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const frameTimeout = opts.frameTimeoutMs ?? FRAME_TIMEOUT_MS;
    this.maxWriteBuffer = opts.maxWriteBuffer ?? MAX_WRITE_BUFFER;
    const arm = (ms: number, why: string) => {
      this.frameTimer = setTimeout(() => this.close(why), ms);
      this.frameTimer.unref();
    };
    if (opts.firstFrameTimeoutMs) arm(opts.firstFrameTimeoutMs, `no message within ${opts.firstFrameTimeoutMs} ms of connecting`);
    socket.on('data', (chunk: Buffer) => {
      // The payloads are views of the chunk (no copies) when it holds whole frames: proto/mlrp.ts.
      const frames = this.decoder.push(chunk);
      if (!frames.ok) {
        this.close(`framing error: ${frames.error}`);
        return;
      }
      if (frames.value.length > 0 || this.decoder.pending === 0) {
        clearTimeout(this.frameTimer);
        this.frameTimer = undefined;
      }
      if (this.decoder.pending > 0 && this.frameTimer === undefined && frameTimeout > 0) {
        arm(frameTimeout, `incomplete frame for ${frameTimeout} ms (${this.decoder.pending} bytes held)`);
      }
      for (const f of frames.value) this.receiver(f);
    });
    socket.on('error', (e) => this.finish(e.message));
    socket.on('close', () => this.finish('connection closed by peer'));
  }

  get remoteAddress(): string | undefined {
    return remoteHost(this.socket);
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress?.replace(/^::ffff:/, '');
  }

  send(payload: Buffer): void {
    if (this.closedReason) return;
    if (this.socket.writableLength + this.queuedBytes > this.maxWriteBuffer) {
      this.close(`peer does not read: ${this.socket.writableLength + this.queuedBytes} bytes wait to be sent`);
      return;
    }
    if (payload.length > MLRP_MAX_PAYLOAD) throw new RangeError(`MLRP payload of ${payload.length} bytes exceeds ${MLRP_MAX_PAYLOAD}`);
    this.queued.push(payload);
    this.queuedBytes += MLRP_HEADER_BYTES + payload.length;
    if (!this.dirty) {
      this.dirty = true;
      dirty.push(this);
      if (dirty.length === 1) setImmediate(flushDirty);
    }
  }

  /** Write the queued payloads as MLRP frames, all in one buffer (at the end of the turn: flushDirty). */
  flush(): void {
    this.dirty = false;
    if (this.queued.length === 0 || this.closedReason) return;
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    this.socket.write(encodeFrames(queued));
  }

  onMessage(receiver: (payload: Buffer) => void): void {
    this.receiver = receiver;
  }

  onClose(receiver: (reason: string) => void): void {
    if (this.closedReason) receiver(this.closedReason);
    else this.closeReceivers.push(receiver);
  }

  close(reason = 'closed'): void {
    // What was sent before the close goes out first (as it did when every send wrote at once).
    if (!this.closedReason) this.flush();
    this.socket.destroy();
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.closedReason) return;
    clearTimeout(this.frameTimer);
    this.queued = [];
    this.queuedBytes = 0;
    this.closedReason = reason;
    for (const r of this.closeReceivers) r(reason);
    this.closeReceivers = [];
  }
}

export interface ListenTcpOptions extends TcpChannelOptions {
  maxPerSource?: number;
  maxConnections?: number;
  /** Refused connections are logged here, at a bounded rate. */
  log?: (line: string) => void;
}

/** Counts open connections per source address; refuses beyond the limits. */
export function connectionLimiter(opts: ListenTcpOptions): (socket: net.Socket) => boolean {
  const perSource = new Map<string, number>();
  let total = 0;
  const max = opts.maxPerSource ?? MAX_CONNECTIONS_PER_SOURCE;
  const maxTotal = opts.maxConnections ?? MAX_CONNECTIONS;
  const refusals = new RateLimitedLog(opts.log ?? (() => {}));
  return (socket) => {
    const addr = remoteHost(socket) ?? '?';
    const n = perSource.get(addr) ?? 0;
    if (n >= max || total >= maxTotal) {
      refusals.log(
        `refused a connection from ${addr}: ${n >= max ? `${n} open from that address (at most ${max})` : `${total} open (at most ${maxTotal})`}`,
      );
      socket.destroy();
      return false;
    }
    perSource.set(addr, n + 1);
    total++;
    socket.once('close', () => {
      total--;
      const left = (perSource.get(addr) ?? 1) - 1;
      if (left <= 0) perSource.delete(addr);
      else perSource.set(addr, left);
    });
    return true;
  };
}

/** The options of a channel the listener accepted: a first frame is due within the frame time-out. */
export function acceptedChannelOptions(opts: ListenTcpOptions): TcpChannelOptions {
  return {
    ...(opts.frameTimeoutMs !== undefined ? { frameTimeoutMs: opts.frameTimeoutMs } : {}),
    ...(opts.maxWriteBuffer !== undefined ? { maxWriteBuffer: opts.maxWriteBuffer } : {}),
    firstFrameTimeoutMs: opts.firstFrameTimeoutMs ?? opts.frameTimeoutMs ?? FRAME_TIMEOUT_MS,
  };
}

export function listenTcp(
  host: string,
  port: number,
  onChannel: (ch: TcpChannel) => void,
  opts: ListenTcpOptions = {},
): Promise<net.Server> {
  const admit = connectionLimiter(opts);
  const channelOpts = acceptedChannelOptions(opts);
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      if (admit(socket)) onChannel(new TcpChannel(socket, channelOpts));
    });
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function connectTcp(host: string, port: number, timeoutMs = 5000): Promise<TcpChannel> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpChannel(socket));
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`connecting to ${host}:${port}: ${e.message}`));
    });
  });
}

/** A TCP listener as the MLR uses it: every connection becomes a channel; `port` is the bound port. */
export async function serveTcp(
  host: string,
  port: number,
  onChannel: (channel: TcpChannel, remoteAddr: string | undefined) => void,
  opts: ListenTcpOptions = {},
): Promise<{ describe: string; port: number; close(): Promise<void> }> {
  const server = await listenTcp(host, port, (ch) => onChannel(ch, ch.remoteAddress), opts);
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return {
    describe: `${host}:${bound}`,
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
