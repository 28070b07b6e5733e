// SPDX-License-Identifier: GPL-2.0-only
// Result: the value-or-error type every total decoder and validator in tmip returns instead of throwing.
export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function err<T = never>(error: string): Result<T> {
  return { ok: false, error };
}
