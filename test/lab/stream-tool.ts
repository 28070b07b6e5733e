// SPDX-License-Identifier: GPL-2.0-only
// Standalone TCP continuity tool for the lab, run inside a namespace:
//   node build/test/lab/stream-tool.js sink --port P [--gap-ms 50] [--progress-ms 1000]
//   node build/test/lab/stream-tool.js source --connect IP:P [--interval-ms 10] [--payload 64] [--duration-s D]
//   node build/test/lab/stream-tool.js bulk-serve (--port P | --connect IP:P) --bytes N [--seed S]
//   node build/test/lab/stream-tool.js bulk-fetch (--connect IP:P | --port P) --bytes N [--seed S] [--timeout-s T]
//   node build/test/lab/stream-tool.js udp-sink --port P [--gap-ms 50]
//   node build/test/lab/stream-tool.js udp-source --connect IP:P [--interval-ms 10]
// The UDP pair is a receive-only client's stream: the sink never sends a packet (no ACKs), so a roam
// can be detected only by what the network does (paging), not by the client's own traffic.
// Output: one JSON object per line on stdout. Times `at`/`from`/`to`/`lastAt` are epoch milliseconds
// with sub-millisecond precision (performance.timeOrigin + performance.now()), comparable across processes.
//
// Record framing (source -> sink): [u32 seq][f64 sendTimeMs][u16 payloadLen][payload], big-endian;
// payload byte i = (seq + i) & 0xff. seq starts at 0 on each connection and must grow by exactly 1.
import { createCipheriv, createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const HEADER = 14;

function now(): number {
  return performance.timeOrigin + performance.now();
}

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ ...obj, at: +now().toFixed(3) }) + '\n');
}

function parseArgs(argv: string[]): { mode: string; opts: Map<string, string> } {
  const [mode = '', ...rest] = argv;
  const opts = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? '';
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const v = rest[i + 1];
    if (v === undefined || v.startsWith('--')) opts.set(a.slice(2), 'true');
    else {
      opts.set(a.slice(2), v);
      i++;
    }
  }
  return { mode, opts };
}

function num(opts: Map<string, string>, key: string, def?: number): number {
  const v = opts.get(key);
  if (v === undefined) {
    if (def === undefined) throw new Error(`--${key} is required`);
    return def;
  }
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${key}: not a number: ${v}`);
  return n;
}

function hostPort(s: string | undefined): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(s ?? '');
  if (!m?.[1] || !m[2]) throw new Error(`--connect wants IP:PORT, got ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

function errInfo(err: unknown): { code?: string; message: string } {
  const e = err as NodeJS.ErrnoException;
  return { ...(e?.code ? { code: e.code } : {}), message: String(e?.message ?? err) };
}

/** Install SIGTERM/SIGINT (print summary, exit 0), SIGUSR2 (print summary) and exit hooks. */
function summaryHooks(summary: () => Record<string, unknown>): void {
  let printed = false;
  const print = () => emit({ event: 'summary', ...summary() });
  process.on('SIGUSR2', print);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      printed = true;
      print();
      process.exit(0);
    });
  }
  process.on('exit', () => {
    if (!printed) print();
  });
}

// ---------------------------------------------------------------------------------------- sink --

interface Gap {
  ms: number;
  atSeq: number;
  from: number;
  to: number;
  conn: number;
}

function sink(opts: Map<string, string>): void {
  const port = num(opts, 'port');
  const gapReportMs = num(opts, 'gap-ms', 50);
  const progressMs = Math.max(50, num(opts, 'progress-ms', 1000));
  const gaps: Gap[] = [];
  let records = 0;
  let conns = 0;
  let maxGapMs = 0;
  let lastAt = 0;
  let lastSeq = -1;
  let seqErrors = 0;
  let resets = 0;
  const maxGapsKept = 10_000;

  summaryHooks(() => ({
    records,
    connections: conns,
    seq: lastSeq,
    maxGapMs: +maxGapMs.toFixed(3),
    seqErrors,
    resets,
    lastAt: +lastAt.toFixed(3),
    sinceLastMs: lastAt ? +(now() - lastAt).toFixed(3) : null,
    gaps,
  }));

  const server = net.createServer((sock) => {
    const conn = ++conns;
    sock.setNoDelay(true);
    emit({ event: 'connected', conn, remote: `${sock.remoteAddress}:${sock.remotePort}`, local: `${sock.localAddress}:${sock.localPort}` });
    let buf: Buffer = Buffer.alloc(0);
    let expect = 0;
    let connLast = 0;
    sock.on('data', (chunk: Buffer) => {
      const t = now();
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let off = 0;
      let got = 0;
      while (buf.length - off >= HEADER) {
        const len = buf.readUInt16BE(off + 12);
        if (buf.length - off < HEADER + len) break;
        const seq = buf.readUInt32BE(off);
        if (seq !== expect) {
          seqErrors++;
          emit({ event: 'error', kind: 'seq', conn, expected: expect, got: seq });
        }
        for (let i = 0; i < len; i++) {
          if (buf[off + HEADER + i] !== ((seq + i) & 0xff)) {
            seqErrors++;
            emit({ event: 'error', kind: 'payload', conn, seq });
            break;
          }
        }
        expect = seq + 1;
        lastSeq = seq;
        off += HEADER + len;
        got++;
      }
      buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
      if (!got) return;
      if (connLast) {
        const gap = t - connLast;
        if (gap > maxGapMs) maxGapMs = gap;
        if (gap > gapReportMs) {
          const g: Gap = { ms: +gap.toFixed(3), atSeq: lastSeq - got + 1, from: +connLast.toFixed(3), to: +t.toFixed(3), conn };
          if (gaps.length < maxGapsKept) gaps.push(g);
          emit({ event: 'gap', ...g });
        }
      }
      records += got;
      connLast = t;
      lastAt = t;
    });
    sock.on('error', (err) => {
      const info = errInfo(err);
      if (info.code === 'ECONNRESET') {
        resets++;
        emit({ event: 'reset', conn, seq: lastSeq, ...info });
      } else emit({ event: 'error', kind: 'socket', conn, seq: lastSeq, ...info });
    });
    sock.on('end', () => {
      emit({ event: 'end', conn, seq: lastSeq, records });
      sock.end();
    });
  });
  server.on('error', (err) => {
    emit({ event: 'error', kind: 'listen', ...errInfo(err) });
    process.exit(1);
  });
  server.listen(port, '0.0.0.0', () => emit({ event: 'listening', port }));
  setInterval(() => {
    emit({
      event: 'progress',
      seq: lastSeq,
      records,
      maxGapMs: +maxGapMs.toFixed(3),
      lastAt: +lastAt.toFixed(3),
      sinceLastMs: lastAt ? +(now() - lastAt).toFixed(3) : null,
    });
  }, progressMs);
}

// -------------------------------------------------------------------------------------- source --

function source(opts: Map<string, string>): void {
  const { host, port } = hostPort(opts.get('connect'));
  const intervalMs = num(opts, 'interval-ms', 10);
  const payload = num(opts, 'payload', 64);
  if (payload > 65535) throw new Error('--payload at most 65535');
  const durationS = opts.has('duration-s') ? num(opts, 'duration-s') : null;
  const connectTimeoutMs = num(opts, 'connect-timeout-ms', 10_000);
  let seq = 0;
  let connected = false;
  summaryHooks(() => ({ sent: seq }));

  const sock = net.connect({ host, port });
  const connectTimer = setTimeout(() => {
    emit({ event: 'error', kind: 'connect-timeout', message: `no connection to ${host}:${port} within ${connectTimeoutMs} ms` });
    process.exit(1);
  }, connectTimeoutMs);
  let timer: NodeJS.Timeout | null = null;
  let progress: NodeJS.Timeout | null = null;
  sock.on('connect', () => {
    clearTimeout(connectTimer);
    connected = true;
    sock.setNoDelay(true);
    emit({ event: 'connected', remote: `${host}:${port}`, local: `${sock.localAddress}:${sock.localPort}` });
    const send = () => {
      const rec = Buffer.alloc(HEADER + payload);
      rec.writeUInt32BE(seq >>> 0, 0);
      rec.writeDoubleBE(now(), 4);
      rec.writeUInt16BE(payload, 12);
      for (let i = 0; i < payload; i++) rec[HEADER + i] = (seq + i) & 0xff;
      sock.write(rec);
      seq++;
    };
    send();
    timer = setInterval(send, intervalMs);
    progress = setInterval(() => emit({ event: 'progress', sent: seq, queuedBytes: sock.writableLength }), 1000);
    if (durationS !== null) {
      setTimeout(() => {
        if (timer) clearInterval(timer);
        emit({ event: 'done', sent: seq });
        sock.end();
      }, durationS * 1000);
    }
  });
  sock.on('error', (err) => {
    emit({ event: 'error', kind: connected ? 'socket' : 'connect', sent: seq, ...errInfo(err) });
    process.exit(1);
  });
  sock.on('close', () => {
    if (timer) clearInterval(timer);
    if (progress) clearInterval(progress);
    emit({ event: 'closed', sent: seq });
    process.exit(0);
  });
  sock.on('end', () => emit({ event: 'end', sent: seq }));
}

// ---------------------------------------------------------------------------------------- bulk --

const CHUNK = 64 * 1024;

/** Deterministic pseudo-random byte stream: AES-128-CTR keystream keyed by SHA-256("tmip-lab-bulk:" + seed). */
function* bulkStream(bytes: number, seed: string): Generator<Buffer, void, undefined> {
  const key = createHash('sha256').update(`tmip-lab-bulk:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  for (let left = bytes; left > 0; left -= CHUNK) yield cipher.update(left >= CHUNK ? zeros : zeros.subarray(0, left));
}

function expectedDigest(bytes: number, seed: string): string {
  const h = createHash('sha256');
  for (const c of bulkStream(bytes, seed)) h.update(c);
  return h.digest('hex');
}

/** A connected socket: by listening (first connection) or by connecting. */
function getSocket(opts: Map<string, string>, onReady: (s: net.Socket) => void): void {
  if (opts.has('connect')) {
    const { host, port } = hostPort(opts.get('connect'));
    const s = net.connect({ host, port }, () => onReady(s));
    s.on('error', (err) => {
      emit({ event: 'error', kind: 'socket', ...errInfo(err) });
      process.exit(1);
    });
    return;
  }
  const port = num(opts, 'port');
  const server = net.createServer((s) => {
    s.on('error', (err) => emit({ event: 'error', kind: 'socket', ...errInfo(err) }));
    onReady(s);
  });
  server.on('error', (err) => {
    emit({ event: 'error', kind: 'listen', ...errInfo(err) });
    process.exit(1);
  });
  server.listen(port, '0.0.0.0', () => emit({ event: 'listening', port }));
}

function bulkServe(opts: Map<string, string>): void {
  const bytes = num(opts, 'bytes');
  const seed = opts.get('seed') ?? '1';
  const connectMode = opts.has('connect');
  getSocket(opts, (s) => {
    emit({ event: 'connected', remote: `${s.remoteAddress}:${s.remotePort}` });
    const t0 = performance.now();
    const gen = bulkStream(bytes, seed);
    const pump = () => {
      for (;;) {
        const { value, done } = gen.next();
        if (done) {
          s.end(() => {
            emit({ event: 'sent', bytes, ms: +(performance.now() - t0).toFixed(1) });
            if (connectMode) process.exit(0);
          });
          return;
        }
        if (!s.write(value)) {
          s.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

function bulkFetch(opts: Map<string, string>): void {
  const bytes = num(opts, 'bytes');
  const seed = opts.get('seed') ?? '1';
  const timeoutS = num(opts, 'timeout-s', 60);
  const want = expectedDigest(bytes, seed);
  setTimeout(() => {
    emit({ event: 'error', kind: 'timeout', message: `no complete transfer within ${timeoutS} s` });
    process.exit(1);
  }, timeoutS * 1000).unref();
  getSocket(opts, (s) => {
    emit({ event: 'connected', remote: `${s.remoteAddress}:${s.remotePort}` });
    const t0 = performance.now();
    const h = createHash('sha256');
    let got = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
      h.update(c);
    });
    s.on('end', () => {
      const digest = h.digest('hex');
      const ok = got === bytes && digest === want;
      emit({ event: 'done', bytes: got, expectedBytes: bytes, ok, sha256: digest, ms: +(performance.now() - t0).toFixed(1) });
      s.end();
      process.exit(ok ? 0 : 1);
    });
  });
}

// ---------------------------------------------------------------------------------------- udp --

/**
 * Receives datagrams [u32 seq][f64 sendTimeMs]; reports the first, every gap above --gap-ms, progress
 * every 100 ms (records, lastAt), a summary. Sends nothing.
 */
function udpSink(opts: Map<string, string>): void {
  const port = num(opts, 'port');
  const gapReportMs = num(opts, 'gap-ms', 50);
  const gaps: Omit<Gap, 'conn'>[] = [];
  let records = 0;
  let lastAt = 0;
  let lastSeq = -1;
  let maxGapMs = 0;
  summaryHooks(() => ({ records, seq: lastSeq, maxGapMs: +maxGapMs.toFixed(3), lastAt: +lastAt.toFixed(3), gaps }));
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg) => {
    if (msg.length < 12) return;
    const t = now();
    const seq = msg.readUInt32BE(0);
    if (records === 0) emit({ event: 'first', seq });
    if (lastAt) {
      const gap = t - lastAt;
      if (gap > maxGapMs) maxGapMs = gap;
      if (gap > gapReportMs && gaps.length < 10_000) {
        const g = { ms: +gap.toFixed(3), atSeq: seq, from: +lastAt.toFixed(3), to: +t.toFixed(3) };
        gaps.push(g);
        emit({ event: 'gap', ...g });
      }
    }
    records++;
    lastSeq = seq;
    lastAt = t;
  });
  sock.bind(port, () => emit({ event: 'listening', port }));
  // Progress: when the last datagram arrived (a short interruption leaves no gap event to go by).
  setInterval(() => {
    if (records > 0) emit({ event: 'progress', records, lastAt: +lastAt.toFixed(3) });
  }, 100);
}

/** Sends a datagram every --interval-ms to --connect until stopped. */
function udpSource(opts: Map<string, string>): void {
  const { host, port } = hostPort(opts.get('connect'));
  const intervalMs = Math.max(1, num(opts, 'interval-ms', 10));
  const sock = dgram.createSocket('udp4');
  let seq = 0;
  let errors = 0;
  summaryHooks(() => ({ sent: seq, errors }));
  const send = () => {
    const b = Buffer.alloc(64);
    b.writeUInt32BE(seq++, 0);
    b.writeDoubleBE(now(), 4);
    // A send error (EHOSTUNREACH after the kernel's ARP failed) is counted, not fatal: the stream goes on.
    sock.send(b, port, host, (e) => {
      if (e) errors++;
    });
  };
  emit({ event: 'started', to: `${host}:${port}` });
  setInterval(send, intervalMs);
}

function main(): void {
  const { mode, opts } = parseArgs(process.argv.slice(2));
  switch (mode) {
    case 'sink':
      return sink(opts);
    case 'source':
      return source(opts);
    case 'bulk-serve':
      return bulkServe(opts);
    case 'bulk-fetch':
      return bulkFetch(opts);
    case 'udp-sink':
      return udpSink(opts);
    case 'udp-source':
      return udpSource(opts);
    default:
      process.stderr.write('usage: stream-tool sink|source|bulk-serve|bulk-fetch|udp-sink|udp-source [options]\n');
      process.exit(2);
  }
}

try {
  main();
} catch (err) {
  emit({ event: 'error', kind: 'usage', message: String((err as Error).message) });
  process.exit(2);
}
