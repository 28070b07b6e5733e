// ActivityDetector: notices mobile stations in this cell that are bound elsewhere, from their ARP
// and IPv4 frames (a just-roamed MS keeps talking to its old gateway's MAC, which the promiscuous
// capture sees). Each MAC triggers at most one report at a time, with a cool-down after each.
import type { IPv4, Mac } from '../core/ip.js';
import type { DetectedVia } from '../core/messages.js';

export interface DetectorOptions {
  ownMac: Mac;
  isServed: (mac: Mac) => boolean;
  /** May this MAC's frames move it here at all (e.g. it associated with this AP)? Default: yes. */
  mayMigrate?: (mac: Mac, via: 'arp' | 'ip') => boolean;
  report: (mac: Mac, ip: IPv4 | undefined, via: DetectedVia) => Promise<unknown>;
  cooldownMs?: number;
  now?: () => number;
}

export class ActivityDetector {
  private readonly busy = new Set<Mac>();
  private readonly quietUntil = new Map<Mac, number>();
  private readonly now: () => number;
  readonly stats = { triggers: 0, suppressed: 0 };

  constructor(private readonly opts: DetectorOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** An ARP packet's sender, or an IPv4 packet's source, was seen from `mac`. */
  observe(mac: Mac, ip: IPv4, via: 'arp' | 'ip'): void {
    if (mac === this.opts.ownMac || ip === 0 || this.opts.isServed(mac)) return;
    if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) return; // group addresses are never stations
    if (this.opts.mayMigrate && !this.opts.mayMigrate(mac, via)) return;
    this.trigger(mac, ip, via);
  }

  /** Forget cool-downs (after the MLR link comes back, earlier refusals say nothing). */
  reset(): void {
    this.quietUntil.clear();
  }

  /** Something outside the frames (e.g. a Wi-Fi association) says `mac` is here. */
  trigger(mac: Mac, ip: IPv4 | undefined, via: DetectedVia): void {
    const t = this.now();
    if (this.busy.has(mac) || (this.quietUntil.get(mac) ?? 0) > t) {
      this.stats.suppressed++;
      return;
    }
    this.busy.add(mac);
    this.stats.triggers++;
    const done = () => {
      this.busy.delete(mac);
      this.quietUntil.set(mac, this.now() + (this.opts.cooldownMs ?? 1000));
      if (this.quietUntil.size > 4096) for (const [m, until] of this.quietUntil) if (until <= this.now()) this.quietUntil.delete(m);
    };
    this.opts.report(mac, ip, via).then(done, done);
  }
}
