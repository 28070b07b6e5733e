// SPDX-License-Identifier: GPL-2.0-only
// TLS transport for MLRP: the TCP channel (tcp-channel.ts) over a tls.TLSSocket, with a connector
// (CN side, `option mlr 'tls://host[:port]'`) and a listener (MLR side, `option tls_port`). The
// certificate files are read and checked once, with errors that name the option; TLS 1.2 at least.
// On the listener a failed or stalled handshake closes that connection only and is logged, at most
// once a minute with a count of the others.
import { monotonicMs } from '../core/clock.js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import type * as Tls from 'node:tls';
import type { TlsFiles } from '../core/config.js';
import { RateLimitedLog } from '../proto/auth.js';
import { acceptedChannelOptions, connectionLimiter, remoteHost, TcpChannel, type ListenTcpOptions } from './tcp-channel.js';

/** A client that has not finished its handshake by then is dropped. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
const MIN_VERSION = 'TLSv1.2';
/** At most one handshake-failure line per this interval; the others are counted into the next one. */
const FAILURE_LOG_INTERVAL_MS = 60_000;
/** Where Debian, OpenWrt (ca-bundle) and Alpine, then Fedora/RHEL keep the system's CA bundle. */
const SYSTEM_CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

/**
 * node:tls, loaded on first use: a static import would load it (and OpenSSL's TLS state) into every
 * daemon at start, about 1 MB of RSS that a CN without tls:// or mqtts:// never uses (bench/dhcp --memory).
 */
let tlsModule: typeof Tls | undefined;
const tlsLib = (): typeof Tls => (tlsModule ??= createRequire(import.meta.url)('node:tls') as typeof Tls);

/** The certificate, key and (optional) client CA of the MLR's TLS listener (MlrConfig.tls). */
export interface TlsServerFiles {
  cert: string;
  key: string;
  ca?: string;
}

/** An error text without Node's trailing ", open '/path'" (the caller names the file). */
function short(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/, \w+ '[^']*'$/, '');
}

/** One PEM file, read and checked as `what`; an error names the option and the path. */
function readPem<T>(opt: string, file: string, what: string, check: (pem: Buffer) => T): { pem: Buffer; parsed: T } {
  let pem: Buffer;
  try {
    pem = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${opt} '${file}': ${short(e)}`);
  }
  try {
    return { pem, parsed: check(pem) };
  } catch (e) {
    throw new Error(`${opt} '${file}': not ${what} (${short(e)})`);
  }
}

/** OpenSSL's reason ('wrong version number') rather than its whole error line, where it gives one. */
function tlsErrorText(e: Error): string {
  const reason = (e as { reason?: unknown }).reason;
  return typeof reason === 'string' && reason !== '' ? reason : e.message;
}

interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Reads and checks the files: the CA and the certificate must be PEM certificates, the key a PEM
 * private key that belongs to the certificate. Throws an Error that names the option
 * (`tls_cert '/x': ENOENT: no such file or directory`).
 */
export function loadTlsFiles(files: TlsFiles, prefix = 'tls'): TlsMaterial {
  const out: TlsMaterial = {};
  if (files.ca !== undefined) {
    out.ca = readPem(`${prefix}_ca`, files.ca, 'a PEM certificate', (pem) => new crypto.X509Certificate(pem)).pem;
  }
  let cert: crypto.X509Certificate | undefined;
  if (files.cert !== undefined) {
    const c = readPem(`${prefix}_cert`, files.cert, 'a PEM certificate', (pem) => new crypto.X509Certificate(pem));
    out.cert = c.pem;
    cert = c.parsed;
  }
  if (files.key !== undefined) {
    const k = readPem(`${prefix}_key`, files.key, 'a PEM private key', (pem) => crypto.createPrivateKey(pem));
    out.key = k.pem;
    if (cert && !cert.checkPrivateKey(k.parsed)) {
      throw new Error(`${prefix}_key '${files.key}': not the private key of ${prefix}_cert '${files.cert ?? ''}'`);
    }
  }
  return out;
}

let systemCa: string[] | undefined;

/** Node's built-in roots plus the system's CA bundle where there is one (OpenWrt: ca-bundle). */
function systemCaList(): string[] {
  if (systemCa) return systemCa;
  const list = [...tlsLib().rootCertificates];
  for (const f of SYSTEM_CA_BUNDLES) {
    try {
      list.push(fs.readFileSync(f, 'utf8'));
      break;
    } catch {
      // not on this system
    }
  }
  systemCa = list;
  return list;
}

const clientContexts = new WeakMap<TlsFiles, Tls.SecureContext>();

/**
 * The CN's TLS context for these files, read at the first call and kept for the life of `files`
 * (tmip-cn calls this at start-up, so a bad path stops it there; reconnects reuse the context).
 * Errors name the options as `<prefix>_ca` etc. (the MLR's broker CA is `mqtt_ca`).
 */
export function tlsClientContext(files: TlsFiles, prefix = 'tls'): Tls.SecureContext {
  let ctx = clientContexts.get(files);
  if (!ctx) {
    const m = loadTlsFiles(files, prefix);
    ctx = tlsLib().createSecureContext({
      minVersion: MIN_VERSION,
      ca: m.ca ?? systemCaList(),
      ...(m.cert && m.key ? { cert: m.cert, key: m.key } : {}),
    });
    clientContexts.set(files, ctx);
  }
  return ctx;
}

/** node:tls's connect (node:tls loaded on first use, as everywhere in this module). */
export function tlsConnect(options: Tls.ConnectionOptions): Tls.TLSSocket {
  return tlsLib().connect(options);
}

/**
 * Connects to an MLR's TLS listener and resolves once the handshake is done and the server's
 * certificate checked: against `files.ca` (else the system's CAs), for the name `host` (a DNS name
 * as SNI and against the DNS SANs; an IPv4 literal against the IP SANs). Presents the client
 * certificate when `files` has one. `timeoutMs` covers the TCP connect and the handshake.
 */
export function connectTls(host: string, port: number, files: TlsFiles, timeoutMs = 5000): Promise<TcpChannel> {
  const where = `tls://${host}:${port}`;
  let secureContext: Tls.SecureContext;
  try {
    secureContext = tlsClientContext(files);
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
  return new Promise((resolve, reject) => {
    // No servername for an IP literal: SNI may not carry one (RFC 6066); Node then checks the IP SANs.
    const socket = tlsLib().connect({
      host,
      port,
      secureContext,
      rejectUnauthorized: true,
      ...(net.isIP(host) ? {} : { servername: host }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connecting to ${where} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpChannel(socket));
    });
    socket.once('error', (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`connecting to ${where}: ${tlsErrorText(e)}`));
    });
  });
}

export interface ServeTlsOptions extends ListenTcpOptions {
  /** Default TLS_HANDSHAKE_TIMEOUT_MS. */
  handshakeTimeoutMs?: number;
  /** One handshake-failure line per this interval at most (default one minute). */
  failureLogIntervalMs?: number;
}

/**
 * The MLR's TLS listener: every connection that completes its handshake becomes a channel; `port`
 * is the bound port. With `files.ca`, a client certificate signed by that CA is required. The files
 * are read before listening; a bad one rejects with an error naming its option (tls_cert, ...).
 * As on the TCP listener, connections per source address are limited (before any TLS work) and a
 * channel must bring its first frame within FRAME_TIMEOUT_MS (and, as there, is closed once more
 * than maxWriteBuffer bytes wait for a peer that does not read).
 */
export async function serveTls(
  host: string,
  port: number,
  files: TlsServerFiles,
  onChannel: (channel: TcpChannel, remoteAddr: string | undefined) => void,
  opts: ServeTlsOptions = {},
): Promise<{ describe: string; port: number; close(): Promise<void> }> {
  const m = loadTlsFiles(files);
  const requireClientCert = m.ca !== undefined;
  const log = opts.log ?? (() => {});
  const tlsServer = tlsLib().createServer({
    cert: m.cert,
    key: m.key,
    ...(m.ca ? { ca: m.ca } : {}),
    // With tls_ca the client's certificate is requested and checked below, not by Node, which would
    // drop a refused client without a word (no 'tlsClientError'); the MLR logs every refusal.
    requestCert: requireClientCert,
    rejectUnauthorized: false,
    minVersion: MIN_VERSION,
    handshakeTimeout: opts.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
  });
  const channelOpts = acceptedChannelOptions(opts);
  const failures = new RateLimitedLog(log, monotonicMs, 1, opts.failureLogIntervalMs ?? FAILURE_LOG_INTERVAL_MS);
  // Peer addresses are noted at accept: a connection reset during the handshake has none left to ask.
  // The TLS socket wraps the accepted one as `_parent` (not public API, hence the fallbacks).
  const peers = new WeakMap<net.Socket, string>();
  const peerOf = (socket: Tls.TLSSocket) => {
    const raw = (socket as unknown as { _parent?: unknown })._parent;
    const noted = raw instanceof net.Socket ? peers.get(raw) : undefined;
    return noted ?? `${remoteHost(socket) ?? '?'}:${socket.remotePort ?? '?'}`;
  };
  tlsServer.on('secureConnection', (socket: Tls.TLSSocket) => {
    if (requireClientCert && !socket.authorized) {
      const sent = Object.keys(socket.getPeerCertificate()).length > 0;
      const why = sent ? `client certificate refused (${String(socket.authorizationError ?? 'not trusted')})` : 'no client certificate';
      failures.log(`TLS handshake with ${peerOf(socket)} failed: ${why}`);
      socket.destroy();
      return;
    }
    const ch = new TcpChannel(socket, channelOpts);
    onChannel(ch, ch.remoteAddress);
  });
  tlsServer.on('tlsClientError', (e: Error, socket: Tls.TLSSocket) => {
    failures.log(`TLS handshake with ${peerOf(socket)} failed: ${tlsErrorText(e)}`);
    socket.destroy(); // Node leaves a timed-out socket open
  });
  // Plain TCP accepts, admitted by the same per-source limits as the TCP listener, then handed to
  // the TLS server (the documented way to inject a connection into a tls.Server).
  const admit = connectionLimiter(opts);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    if (!admit(socket)) return;
    sockets.add(socket);
    peers.set(socket, `${remoteHost(socket) ?? '?'}:${socket.remotePort ?? '?'}`);
    socket.once('close', () => sockets.delete(socket));
    tlsServer.emit('connection', socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // An error after listening (e.g. EMFILE on accept) must not crash the MLR.
  server.on('error', (e) => log(`TLS listener: ${e.message}`));
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return {
    describe: `tls://${host}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
