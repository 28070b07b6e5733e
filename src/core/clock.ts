// SPDX-License-Identifier: GPL-2.0-only
// Which clock measures what. Wall time (Date.now) for what is compared across hosts or kept on disk:
// a binding's expiry, a message's timestamp. A monotonic clock for durations measured inside one
// process — budgets, cool-downs, reservations, log intervals — because a router without a
// real-time clock steps its wall clock when NTP first answers (forward at boot, sometimes back):
// measured on the wall clock, a step back of an hour would leave the new-station budget empty for
// an hour, and a step forward would lapse every reservation at once.
//
// Read through process.hrtime, not `performance.now()`: the first use of `performance` loads Node's
// perf_hooks and its nine internal modules, about 0.8 MB of RSS that a CN on a router has no other
// use for (openwrt/README.md, "Memory"; ESLint forbids `performance` in src/ for this reason).

const ORIGIN = process.hrtime.bigint();

/** Milliseconds on a clock that never steps (since this module was loaded, early in the process). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() - ORIGIN) / 1e6;
}
