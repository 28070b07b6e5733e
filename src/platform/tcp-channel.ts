// SPDX-License-Identifier: GPL-2.0-only
// TCP transport for MLRP: wraps a net.Socket as a MessageChannel using the MLRP framing, with a
// listener (MLR side) and a connector (CN side). A framing error closes the connection.
import net from 'node:net';
import { FrameDecoder, encodeFrame } from '../proto/mlrp.js';
import type { MessageChannel } from '../proto/rpc.js';

export class TcpChannel implements MessageChannel {
  readonly peer: string;
  private readonly decoder = new FrameDecoder();
  private receiver: (payload: Buffer) => void = () => {};
  private closeReceivers: ((reason: string) => void)[] = [];
  private closedReason: string | undefined;

  constructor(private readonly socket: net.Socket) {
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk) => {
      const frames = this.decoder.push(chunk);
      if (!frames.ok) {
        this.close(`framing error: ${frames.error}`);
        return;
      }
      for (const f of frames.value) this.receiver(f);
    });
    socket.on('error', (e) => this.finish(e.message));
    socket.on('close', () => this.finish('connection closed by peer'));
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress?.replace(/^::ffff:/, '');
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress?.replace(/^::ffff:/, '');
  }

  send(payload: Buffer): void {
    if (this.closedReason) return;
    this.socket.write(encodeFrame(payload));
  }

  onMessage(receiver: (payload: Buffer) => void): void {
    this.receiver = receiver;
  }

  onClose(receiver: (reason: string) => void): void {
    if (this.closedReason) receiver(this.closedReason);
    else this.closeReceivers.push(receiver);
  }

  close(reason = 'closed'): void {
    this.socket.destroy();
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    for (const r of this.closeReceivers) r(reason);
    this.closeReceivers = [];
  }
}

export function listenTcp(host: string, port: number, onChannel: (ch: TcpChannel) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => onChannel(new TcpChannel(socket)));
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
): Promise<{ describe: string; port: number; close(): Promise<void> }> {
  const server = await listenTcp(host, port, (ch) => onChannel(ch, ch.remoteAddress));
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return {
    describe: `${host}:${bound}`,
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
