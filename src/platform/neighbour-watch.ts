// SPDX-License-Identifier: GPL-2.0-only
// NeighbourWatch: tells the CN when an IPv4 neighbour on its mobile interface stops answering (the
// kernel marks the entry FAILED after its unicast probes went unanswered while traffic flowed to it).
// The real one keeps one long-lived `ip -o -4 monitor neigh` process (spawned once at start-up,
// restarted with back-off if it dies; iproute2's `ip`, as the rest of the CN uses) and decodes its
// lines with proto/ip-monitor.ts. No netlink addon: the monitor costs no spawn per event, and the
// events are few (a failure per lost station, repeated while traffic still flows to it).
// Where `ip monitor` is missing (BusyBox ip), start() logs once and the CN runs without it: paging
// is then started by hostapd departures only.
import { monotonicMs } from '../core/clock.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { Backoff } from '../core/backoff.js';
import type { IPv4 } from '../core/ip.js';
import { parseNeighbourLine } from '../proto/ip-monitor.js';
import { readLines } from './line-reader.js';
import { LOG, type LogFn } from './log.js';

export interface NeighbourWatch {
  /** Call `onFailed(ip)` whenever the neighbour entry of `ip` on `ifname` becomes FAILED. */
  start(ifname: string, onFailed: (ip: IPv4) => void): void;
  close(): void;
}

/** Monitor restarts: from 1 s, doubling to at most a minute. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 60_000;
/** A monitor that ran this long before it died counts as having worked (the back-off starts over). */
const HEALTHY_MS = 30_000;

export class IpMonitorNeighbourWatch implements NeighbourWatch {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly backoff = new Backoff(RESTART_MIN_MS, RESTART_MAX_MS);

  constructor(
    private readonly log: LogFn,
    private readonly ipCommand = 'ip',
  ) {}

  start(ifname: string, onFailed: (ip: IPv4) => void): void {
    if (this.closed) return;
    const startedAt = monotonicMs();
    const child = spawn(this.ipCommand, ['-o', '-4', 'monitor', 'neigh'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 500) stderr += d.toString('utf8');
    });
    readLines(child.stdout, (line) => {
      const e = parseNeighbourLine(line);
      if (!e.ok || e.value.dev !== ifname || e.value.deleted) return;
      if (e.value.states.includes('FAILED')) onFailed(e.value.ip);
    });
    child.on('error', (e) => {
      stderr += e.message;
    });
    child.on('close', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.closed) return;
      if (monotonicMs() - startedAt >= HEALTHY_MS) this.backoff.reset();
      const delay = this.backoff.next();
      const why = stderr.trim().split('\n')[0] ?? '';
      this.log(
        LOG.error,
        `neighbour monitor (${this.ipCommand} monitor neigh) ended (${signal ?? `code ${code}`}${why ? `: ${why}` : ''}); ` +
          `lost stations are found through hostapd only until it runs again (retry in ${delay / 1000} s)`,
      );
      this.timer = setTimeout(() => this.start(ifname, onFailed), delay);
      this.timer.unref();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }
}
