// SPDX-License-Identifier: GPL-2.0-only
// A small codec toolkit for JSON messages and files: each Codec decodes an unknown value into a
// typed one (returning a Result that names the path of the first offending field, never throwing)
// and encodes the typed value back into plain JSON. Addresses are decoded into numbers here, once,
// at the boundary, so that nothing hostile or textual reaches CN or MLR logic. Used for every MLRP
// message body (core/messages.ts) and for the MLR's state file.
// Each codec built here also writes a value's canonical JSON text directly (`text`: what
// canonicalJson(encode(value)) gives, byte for byte, without building the plain-JSON copy or sorting
// keys per message): the form MLRP signs and sends (proto/rpc.ts, proto/auth.ts).
import { canonicalJson, quote } from './canonical-json.js';
import { formatIPv4, parseIPv4, parseMac, type IPv4, type Mac } from './ip.js';
import { err, ok, type Result } from './result.js';
import { isTunnelType, type TunnelType } from './tunnel.js';

export interface Codec<T> {
  /** Check an untrusted value and turn it into T. */
  decode(value: unknown, path: string): Result<T>;
  /** Turn a T into plain JSON (strings, numbers, booleans, null, arrays, objects). */
  encode(value: T): unknown;
  /**
   * canonicalJson(encode(value)) written directly (undefined where that is: nesting past its bound).
   * Optional: codecs made elsewhere may leave it out, and textOf() derives it from encode.
   */
  text?(value: T): string | undefined;
}
export type Infer<C> = C extends Codec<infer T> ? T : never;

/** The canonical JSON text of `codec.encode(value)`: codec.text when it has one. */
export function textOf<T>(codec: Codec<T>, value: T): string | undefined {
  return codec.text !== undefined ? codec.text(value) : canonicalJson(codec.encode(value));
}

/** The canonical text of a value whose wire form is itself (a string, mostly). */
const selfText = (v: unknown): string | undefined => (typeof v === 'string' ? quote(v) : canonicalJson(v));

/** A codec whose wire form is its typed form (strings, numbers, literals): encoding copies nothing. */
function plain<T>(decode: (value: unknown, path: string) => Result<T>): Codec<T> {
  return { decode, encode: (v) => v, text: selfText };
}

export const str = (max = 256): Codec<string> =>
  plain((v, p) => (typeof v === 'string' && v.length <= max ? ok(v) : err(`${p}: expected a string of at most ${max} characters`)));

export const int = (min: number, max: number): Codec<number> =>
  plain((v, p) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? ok(v) : err(`${p}: expected an integer ${min}..${max}`),
  );

/** An IPv4 address: a dotted-quad string on the wire, its 32-bit number inside. */
export const ipv4: Codec<IPv4> = {
  decode(v, p) {
    if (typeof v !== 'string') return err(`${p}: expected an IPv4 address string`);
    const r = parseIPv4(v);
    return r.ok ? r : err(`${p}: ${r.error}`);
  },
  encode: (v) => formatIPv4(v),
  text: (v) => quote(formatIPv4(v)),
};

/** A MAC address in any common notation on the wire; canonical lower-case colon form inside. */
export const mac: Codec<Mac> = plain((v, p) => {
  if (typeof v !== 'string') return err(`${p}: expected a MAC address string`);
  const r = parseMac(v);
  return r.ok ? r : err(`${p}: ${r.error}`);
});

export const tunnelType: Codec<TunnelType> = plain((v, p) =>
  typeof v === 'string' && isTunnelType(v) ? ok(v) : err(`${p}: expected a tunnel type`),
);

export const literal = <L extends string>(...values: L[]): Codec<L> =>
  plain((v, p) =>
    typeof v === 'string' && (values as string[]).includes(v) ? ok(v as L) : err(`${p}: expected one of ${values.join(', ')}`),
  );

/** Absent (undefined or null on the wire) or an inner value. */
export const optional = <T>(inner: Codec<T>): Codec<T | undefined> => ({
  decode: (v, p) => (v === undefined || v === null ? ok(undefined) : inner.decode(v, p)),
  encode: (v) => (v === undefined ? undefined : inner.encode(v)),
  text: (v) => (v === undefined ? 'null' : textOf(inner, v)),
});

export const nullable = <T>(inner: Codec<T>): Codec<T | null> => ({
  decode: (v, p) => (v === null ? ok(null) : inner.decode(v, p)),
  encode: (v) => (v === null ? null : inner.encode(v)),
  text: (v) => (v === null ? 'null' : textOf(inner, v)),
});

export const array = <T>(inner: Codec<T>, max = 10000): Codec<T[]> => ({
  decode(v, p) {
    if (!Array.isArray(v)) return err(`${p}: expected an array`);
    if (v.length > max) return err(`${p}: more than ${max} items`);
    const out: T[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = inner.decode(v[i], `${p}[${i}]`);
      if (!r.ok) return r;
      out.push(r.value);
    }
    return ok(out);
  },
  encode: (v) => v.map((x) => inner.encode(x)),
  text(v) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      // A hole (never in what the MLR builds) is what encode's map leaves it: null once canonical.
      const t = i in v ? textOf(inner, v[i]!) : 'null';
      if (t === undefined) return undefined;
      out += i === 0 ? t : `,${t}`;
    }
    return `${out}]`;
  },
});

type Shape = Record<string, Codec<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: undefined extends Infer<S[K]> ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
type Flatten<T> = { [K in keyof T]: T[K] };
export type ShapeType<S extends Shape> = Flatten<
  { [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined> }
>;

/** An object with these fields (unknown fields are dropped, for forward compatibility). */
export const object = <S extends Shape>(shape: S): Codec<ShapeType<S>> => {
  // The fields and their path suffixes, listed once (not once per message).
  const fields = Object.entries(shape).map(([key, codec]) => ({ key, codec, suffix: `.${key}` }));
  // For text(): the fields in canonical order (UTF-16 code units, as canonicalJson sorts), each with `"key":`.
  const sorted = fields
    .map(({ key, codec }) => ({ key, codec, head: `${quote(key)}:` }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    decode(v, p) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return err(`${p}: expected an object`);
      const out: Record<string, unknown> = {};
      for (const { key, codec, suffix } of fields) {
        const r = codec.decode((v as Record<string, unknown>)[key], p + suffix);
        if (!r.ok) return r;
        if (r.value !== undefined) out[key] = r.value;
      }
      return ok(out as ShapeType<S>);
    },
    encode(v) {
      const out: Record<string, unknown> = {};
      for (const { key, codec } of fields) {
        const field = (v as Record<string, unknown>)[key];
        if (field !== undefined) out[key] = codec.encode(field);
      }
      return out;
    },
    text(v) {
      let out = '{';
      let first = true;
      for (const { key, codec, head } of sorted) {
        const field = (v as Record<string, unknown>)[key];
        if (field === undefined) continue;
        const t = textOf(codec, field);
        if (t === undefined) return undefined;
        out += first ? head + t : `,${head}${t}`;
        first = false;
      }
      return `${out}}`;
    },
  };
};

/** A codec that also checks a rule the shape cannot express; `check` returns the problem, or undefined. */
export const refine = <T>(inner: Codec<T>, check: (value: T) => string | undefined): Codec<T> => ({
  decode(v, p) {
    const r = inner.decode(v, p);
    if (!r.ok) return r;
    const problem = check(r.value);
    return problem === undefined ? r : err(`${p}: ${problem}`);
  },
  encode: (v) => inner.encode(v),
  text: (v) => textOf(inner, v),
});
