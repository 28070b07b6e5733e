// SPDX-License-Identifier: GPL-2.0-only
// Small helpers shared by the unit tests: parsing a dotted quad or failing the test, hex literals,
// a seeded PRNG for reproducible fuzz loops, assertions on Result values, and the bounded waits
// (until, within, nextEvent, neverWithin) every test uses instead of fixed sleeps.
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { parseIPv4, type IPv4 } from '../../src/core/ip.js';
import type { Result } from '../../src/core/result.js';

/** The address `s` as a number; fails the test if `s` does not parse. */
export const ip = (s: string): IPv4 => {
  const r = parseIPv4(s);
  assert.ok(r.ok, s);
  return r.value;
};

/** Bytes from hex text; white space and `|` separators are ignored. */
export const hex = (s: string) => Buffer.from(s.replace(/\s+|\|/g, ''), 'hex');

/** Deterministic PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `r` is a well-formed Result: `ok` is a boolean and an error carries a string. */
export function assertResult(r: Result<unknown>, label: string): void {
  assert.equal(typeof r.ok, 'boolean', label);
  if (!r.ok) assert.equal(typeof r.error, 'string', label);
}

/** The value of `r`; fails the test with the error text if `r` is an error. */
export function value<T>(r: Result<T>): T {
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

/** The error text of `r`; fails the test if `r` is ok. */
export function errorOf(r: Result<unknown>): string {
  assert.ok(!r.ok, 'expected an error');
  return r.error;
}

/** Poll `cond` every `stepMs` until it holds; fail after `timeoutMs`. Bounded in time and count. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 2000, stepMs = 5): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && Date.now() <= end; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** `p`, or a failure after `timeoutMs` that names what was awaited. The timer does not outlive `p`. */
export function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * The arguments of the next `event` from `emitter` for which `filter` (if given) holds; fails after
 * `timeoutMs` naming `what`. Subscribe before doing what causes the event.
 */
export function nextEvent(
  emitter: EventEmitter,
  event: string,
  what: string,
  timeoutMs = 2000,
  filter?: (...args: unknown[]) => boolean,
): Promise<unknown[]> {
  let listener: ((...args: unknown[]) => void) | undefined;
  const got = new Promise<unknown[]>((resolve) => {
    listener = (...args: unknown[]) => {
      if (filter && !filter(...args)) return;
      emitter.off(event, listener!);
      resolve(args);
    };
    emitter.on(event, listener);
  });
  return within(got, timeoutMs, `${what} (event "${event}")`).finally(() => emitter.off(event, listener!));
}

/**
 * For the rare "nothing happened" check with no evidence to wait for instead (a timer that must not
 * fire): polls `cond` every `stepMs` for `ms` and fails as soon as it holds. Take `ms` from the timer
 * in question (a few times its delay) and say so at the call site; wherever the input leaves a trace
 * once processed (a log line, a counter, a reply behind it on the same path), wait for that instead.
 */
export async function neverWithin(what: string, cond: () => boolean | Promise<boolean>, ms: number, stepMs = 5): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; i < 100_000; i++) {
    if (await cond()) throw new Error(`${what} happened within ${ms} ms, which it must not`);
    if (Date.now() >= end) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Fails if `p` settles (resolves or rejects) within `ms`: something it waits for must not have happened. */
export async function unsettledWithin(p: Promise<unknown>, what: string, ms: number): Promise<void> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await neverWithin(what, () => settled, ms);
}
