// SPDX-License-Identifier: GPL-2.0-only
// Canonical JSON: object keys sorted by UTF-16 code units, no white space, strings and numbers as
// JSON.stringify writes them. The text MLRP's HMAC covers (proto/auth.ts); core/schema.ts codecs
// write it straight from typed values (Codec.text), and canonicalJson writes it for any parsed value.
// Pure functions; nesting is bounded (MAX_DEPTH) so hostile input cannot recurse deeply.

/** Deepest body nesting that is canonicalised (MLRP bodies nest at most 4 deep). */
const MAX_DEPTH = 32;

/**
 * A string as JSON.stringify writes it: one of printable ASCII other than `"` and `\` (names, MACs,
 * addresses, hex: nearly every string MLRP carries) as it is between quotes, without the call.
 */
export function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/**
 * Sort object keys by UTF-16 code units (what sort() without a comparator does; keys are distinct):
 * a few, as MLRP objects have, by insertion (cheaper than the generic sort), many by sort().
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/** Canonical JSON of a parsed JSON value, or undefined if it nests deeper than MAX_DEPTH. */
export function canonicalJson(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  // One pass, building the string as it goes; the keys of an object are sorted only when they are not
  // in order already. Byte for byte what sorting every object's keys and JSON.stringify would write.
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      return JSON.stringify(value) ?? 'null';
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    const items = value as unknown[];
    let out = '[';
    for (let i = 0; i < items.length; i++) {
      const c = canonicalJson(items[i], depth + 1);
      if (c === undefined) return undefined;
      out += i === 0 ? c : `,${c}`;
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      sortKeys(keys);
      break;
    }
  }
  let out = '{';
  let first = true;
  for (const key of keys) {
    const item = obj[key];
    if (item === undefined) continue;
    const c = canonicalJson(item, depth + 1);
    if (c === undefined) return undefined;
    out += `${first ? '' : ','}${quote(key)}:${c}`;
    first = false;
  }
  return `${out}}`;
}
