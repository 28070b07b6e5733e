// A small validator toolkit for decoded JSON: each Validator checks an unknown value and returns a
// typed Result naming the path of the first offending field. Used for every MLRP message body so
// that nothing hostile reaches CN or MLR logic unchecked.
import { formatIPv4, parseIPv4, parseMac, type IPv4, type Mac } from './ip.js';
import { err, ok, type Result } from './result.js';
import { isTunnelType, type TunnelType } from './tunnel.js';

export type Validator<T> = (value: unknown, path: string) => Result<T>;
export type Infer<V> = V extends Validator<infer T> ? T : never;

export const str =
  (max = 256): Validator<string> =>
  (v, p) =>
    typeof v === 'string' && v.length <= max ? ok(v) : err(`${p}: expected a string of at most ${max} characters`);

export const int =
  (min: number, max: number): Validator<number> =>
  (v, p) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? ok(v) : err(`${p}: expected an integer ${min}..${max}`);

export const bool: Validator<boolean> = (v, p) => (typeof v === 'boolean' ? ok(v) : err(`${p}: expected true or false`));

/** An IPv4 address carried as a dotted-quad string, decoded to its integer. */
export const ipv4: Validator<IPv4> = (v, p) => {
  if (typeof v !== 'string') return err(`${p}: expected an IPv4 address string`);
  const r = parseIPv4(v);
  return r.ok ? r : err(`${p}: ${r.error}`);
};

/** An IPv4 address kept as its canonical dotted-quad string (the wire form of MLRP messages). */
export const ipv4text: Validator<string> = (v, p) => {
  const r = ipv4(v, p);
  return r.ok ? ok(formatIPv4(r.value)) : r;
};

export const mac: Validator<Mac> = (v, p) => {
  if (typeof v !== 'string') return err(`${p}: expected a MAC address string`);
  const r = parseMac(v);
  return r.ok ? r : err(`${p}: ${r.error}`);
};

export const tunnelType: Validator<TunnelType> = (v, p) =>
  typeof v === 'string' && isTunnelType(v) ? ok(v) : err(`${p}: expected a tunnel type`);

export const literal =
  <L extends string>(...values: L[]): Validator<L> =>
  (v, p) =>
    typeof v === 'string' && (values as string[]).includes(v) ? ok(v as L) : err(`${p}: expected one of ${values.join(', ')}`);

export const optional =
  <T>(inner: Validator<T>): Validator<T | undefined> =>
  (v, p) =>
    v === undefined || v === null ? ok(undefined) : inner(v, p);

export const nullable =
  <T>(inner: Validator<T>): Validator<T | null> =>
  (v, p) =>
    v === null ? ok(null) : inner(v, p);

export const array =
  <T>(inner: Validator<T>, max = 10000): Validator<T[]> =>
  (v, p) => {
    if (!Array.isArray(v)) return err(`${p}: expected an array`);
    if (v.length > max) return err(`${p}: more than ${max} items`);
    const out: T[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = inner(v[i], `${p}[${i}]`);
      if (!r.ok) return r;
      out.push(r.value);
    }
    return ok(out);
  };

type Shape = Record<string, Validator<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: undefined extends Infer<S[K]> ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
type Flatten<T> = { [K in keyof T]: T[K] };
type ShapeType<S extends Shape> = Flatten<{ [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined> }>;

/** An object with exactly these fields (unknown fields are ignored for forward compatibility). */
export const object =
  <S extends Shape>(shape: S): Validator<ShapeType<S>> =>
  (v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return err(`${p}: expected an object`);
    const out: Record<string, unknown> = {};
    for (const [key, validator] of Object.entries(shape)) {
      const r = validator((v as Record<string, unknown>)[key], `${p}.${key}`);
      if (!r.ok) return r;
      if (r.value !== undefined) out[key] = r.value;
    }
    return ok(out as ShapeType<S>);
  };
