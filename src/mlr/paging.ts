// SPDX-License-Identifier: GPL-2.0-only
// Paging: the MLR looks for a station that went silent. A CN that serves a station and can no longer
// reach it — hostapd reported its departure, or the kernel's neighbour entry for its N+1 failed while
// traffic flowed to it — sends `lost`. The MLR then asks every other connected CN to `page` it (each
// sends unicast ARP requests for N+1 from N+2 in its cell, cn/handover.ts); the CN where the station
// is hears its answer and reports it with `seen`, and the move runs as any other (mlr/handover.ts).
//
// Rules:
// - Only the CN the registry places the station at may report it lost, and only for its own host
//   address; anything else is refused (paging: no) and changes nothing.
// - Pages go out in rounds (ROUNDS_MS after the report) until the binding is no longer at the
//   reporter: a station that left before it reached its next AP is found when it gets there. The
//   rounds end after the last one; a later report starts them again.
// - One paging per station at a time; at most MAX_ACTIVE stations paged at once (beyond: "busy").
//   Each round costs one small message per connected CN, so a CN's reports cost the backbone at most
//   MAX_ACTIVE x CNs messages per round.
// - For GONE_MS after the report, a traffic-detected move of the station away from the reporter skips
//   the presence check there (it has just said the station is not in its cell).
// - A paging that found nothing makes the next one for that station wait: 5 s, then twice as long
//   after each fruitless one, up to 5 minutes (a client switched off while a server keeps sending to
//   it must not make every AP send ARP forever). A departure reported by hostapd (`disassoc`) is fresh
//   news and pages at once; the wait ends when the station is found or moves.
import { formatIPv4, type Mac } from '../core/ip.js';
import type { ReplyBody, RequestBody } from '../core/messages.js';
import type { Registry } from '../core/registry.js';
import { LOG, type LogFn } from '../platform/log.js';
import type { CnSession } from './handover.js';

/** When the page rounds go out, after the report (ms). */
export const PAGE_ROUNDS_MS: readonly number[] = [0, 250, 1000, 3000];
/** How long a report that a station left a CN stands (no presence check there meanwhile). */
export const GONE_MS = 10_000;
/** Stations paged at once. */
const MAX_ACTIVE = 256;
/** Each page is answered at once by the CN; past this the MLR stops waiting (the page still went out). */
const PAGE_TIMEOUT_MS = 2000;
/** The wait after a fruitless paging: this, doubled after each further one, up to MAX_HOLD_OFF_MS. */
const HOLD_OFF_MS = 5000;
const MAX_HOLD_OFF_MS = 300_000;

export interface PagerOptions {
  registry: Registry;
  /** Every connected CN and its session. */
  sessions: () => Iterable<[string, CnSession]>;
  log: LogFn;
  now: () => number;
  roundsMs?: readonly number[];
}

interface Paging {
  from: string;
  since: number;
  timers: NodeJS.Timeout[];
}

export class Pager {
  private readonly active = new Map<Mac, Paging>();
  /** Who last reported each station gone, and when (bounded by MAX_ACTIVE * 4, oldest dropped). */
  private readonly gone = new Map<Mac, { cn: string; at: number }>();
  /** Stations whose last paging found nothing: how often in a row, and no new paging before `until`. */
  private readonly fruitless = new Map<Mac, { count: number; until: number }>();
  readonly stats = { reports: 0, refused: 0, rounds: 0, pages: 0, found: 0 };

  constructor(private readonly o: PagerOptions) {}

  /** A CN reports that a station it serves is lost in its cell. */
  lost(cn: string, body: RequestBody<'lost'>): ReplyBody<'lost'> {
    const { registry, log } = this.o;
    const b = registry.binding(body.mac);
    const refuse = (reason: string): ReplyBody<'lost'> => {
      this.stats.refused++;
      return { paging: 'no', reason };
    };
    if (!b || b.state !== 'bound') return refuse(`${body.mac} has no binding`);
    if (b.current !== cn) return refuse(`${body.mac} is not served by ${cn}`);
    if (b.cell + 1 !== body.ip) return refuse(`${body.mac} holds ${formatIPv4(b.cell + 1)}, not ${formatIPv4(body.ip)}`);
    this.stats.reports++;
    const now = this.o.now();
    this.gone.delete(body.mac);
    this.gone.set(body.mac, { cn, at: now });
    if (this.gone.size > MAX_ACTIVE * 4) this.gone.delete(this.gone.keys().next().value!);
    const running = this.active.get(body.mac);
    if (running?.from === cn) return { paging: 'no', reason: 'already paging for it' };
    if (running) this.stopPaging(body.mac);
    const held = this.fruitless.get(body.mac);
    if (held && held.until > now && body.why !== 'disassoc') {
      return refuse(`paged ${held.count} time(s) without an answer; next paging in ${Math.ceil((held.until - now) / 1000)} s`);
    }
    if (this.active.size >= MAX_ACTIVE) return refuse(`busy: ${MAX_ACTIVE} stations are being paged`);
    log(LOG.handover, `${body.mac} ${formatIPv4(body.ip)} lost at ${cn} (${body.why}); paging the other CNs`);
    const paging: Paging = { from: cn, since: now, timers: [] };
    this.active.set(body.mac, paging);
    const rounds = this.o.roundsMs ?? PAGE_ROUNDS_MS;
    rounds.forEach((delay, i) => {
      const t = setTimeout(() => this.round(body.mac, body.ip, paging, i === rounds.length - 1), delay);
      t.unref();
      paging.timers.push(t);
    });
    return { paging: 'yes' };
  }

  /** A move of `mac` to `to` was committed: if it was being paged, it is found. */
  moved(mac: Mac, to: string): void {
    this.fruitless.delete(mac);
    const p = this.active.get(mac);
    if (!p || to === p.from) return;
    this.stats.found++;
    this.o.log(LOG.handover, `${mac} found at ${to} ${Math.round(this.o.now() - p.since)} ms after it was lost at ${p.from}`);
    this.stopPaging(mac);
  }

  /** Did `cn` report lately that `mac` left its cell? */
  reportedGone(mac: Mac, cn: string): boolean {
    const g = this.gone.get(mac);
    return g !== undefined && g.cn === cn && this.o.now() - g.at < GONE_MS;
  }

  /** Stations being paged now (for status). */
  get paging(): number {
    return this.active.size;
  }

  stop(): void {
    for (const mac of [...this.active.keys()]) this.stopPaging(mac);
  }

  private round(mac: Mac, ip: number, paging: Paging, last: boolean): void {
    if (this.active.get(mac) !== paging) return;
    const b = this.o.registry.binding(mac);
    if (!b || b.state !== 'bound' || b.current !== paging.from) {
      // Moved (found: moved() has logged it) or gone meanwhile.
      this.stopPaging(mac);
      this.fruitless.delete(mac);
      return;
    }
    this.stats.rounds++;
    for (const [name, session] of this.o.sessions()) {
      if (name === paging.from) continue;
      this.stats.pages++;
      session.request('page', { mac, ip }, PAGE_TIMEOUT_MS).catch(() => undefined);
    }
    if (last) {
      this.stopPaging(mac);
      this.holdOff(mac);
    }
  }

  /** The last round went out and nobody found the station: the next paging for it waits. */
  private holdOff(mac: Mac): void {
    const count = (this.fruitless.get(mac)?.count ?? 0) + 1;
    const wait = Math.min(MAX_HOLD_OFF_MS, HOLD_OFF_MS * 2 ** Math.min(count - 1, 16));
    this.fruitless.delete(mac);
    this.fruitless.set(mac, { count, until: this.o.now() + wait });
    if (this.fruitless.size > MAX_ACTIVE * 4) this.fruitless.delete(this.fruitless.keys().next().value!);
  }

  private stopPaging(mac: Mac): void {
    const p = this.active.get(mac);
    if (!p) return;
    for (const t of p.timers) clearTimeout(t);
    this.active.delete(mac);
  }
}
