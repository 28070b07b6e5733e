// SPDX-License-Identifier: GPL-2.0-only
// A receive-only client's stream for lab tests and benchmarks: stream-tool udp-source on the server
// sends a datagram every 10 ms to udp-sink on the MS, which never sends anything back (no ACKs, unlike
// the TCP stream in stream.ts), so after a roam only the network itself can find the client (paging).
// Times passed in are this process's performance.now(), as in stream.ts.
import type { Lab, LabProcess, Role } from './lab.js';
import { spawnTool, toEpoch, type ToolEvent } from './stream.js';

export const UDP_STREAM_PORT = 7010;

export interface UdpGap {
  ms: number;
  from: number;
  to: number;
}

export class UdpStream {
  readonly events: ToolEvent[] = [];

  private constructor(
    readonly sink: LabProcess,
    readonly source: LabProcess,
  ) {
    sink.onLine((l) => {
      if (l.stream !== 'stdout' || !l.text.startsWith('{')) return;
      try {
        this.events.push(JSON.parse(l.text) as ToolEvent);
      } catch {
        /* not an event */
      }
    });
  }

  /** Start the sink on `ms` and the source on `from` (default the server); resolves once data arrives. */
  static async start(
    lab: Lab,
    ms: Role,
    msIp: string,
    opts: { from?: Role; intervalMs?: number; gapMs?: number } = {},
  ): Promise<UdpStream> {
    const sink = spawnTool(lab, ms, 'udp-sink', ['--port', String(UDP_STREAM_PORT), '--gap-ms', String(opts.gapMs ?? 50)]);
    await sink.waitForLine(/"event":"listening"/, 5000);
    const source = spawnTool(lab, opts.from ?? 'srv', 'udp-source', [
      '--connect',
      `${msIp}:${UDP_STREAM_PORT}`,
      '--interval-ms',
      String(opts.intervalMs ?? 10),
    ]);
    const s = new UdpStream(sink, source);
    try {
      await sink.waitForLine(/"event":"first"/, 5000);
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  gaps(): UdpGap[] {
    return this.events.filter((e) => e.event === 'gap') as unknown as UdpGap[];
  }

  /** The largest gap overlapping [t - windowMs, t + windowMs] (t: performance.now()); 0 when none. */
  gapAround(t: number, windowMs: number): number {
    const lo = toEpoch(t) - windowMs;
    const hi = toEpoch(t) + windowMs;
    return Math.max(
      0,
      ...this.gaps()
        .filter((g) => g.to >= lo && g.from <= hi)
        .map((g) => g.ms),
    );
  }

  /**
   * Resolves once a datagram has arrived after t (performance.now()) and no gap reported around t is
   * still open, with the gap around t (0 when the interruption stayed under the sink's --gap-ms).
   */
  async waitResumed(t: number, timeoutMs: number, windowMs = 2000): Promise<number> {
    const at = toEpoch(t);
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const g = this.gaps().find((x) => x.to >= at && x.from <= at + windowMs);
      if (g) return g.ms;
      const lastAt = this.events.filter((e) => e.event === 'progress').at(-1)?.lastAt;
      // Arrivals well past t and no gap: the stream never stopped for longer than --gap-ms.
      if (typeof lastAt === 'number' && lastAt > at + windowMs) return 0;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`the UDP stream did not resume within ${timeoutMs} ms after the roam`);
  }

  async stop(): Promise<void> {
    await this.source.stop();
    await this.sink.stop();
  }
}
