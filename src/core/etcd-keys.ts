// SPDX-License-Identifier: GPL-2.0-only
// The MLR's registry as etcd keys, without I/O (`option store 'etcd://…'`; the client is
// platform/etcd-client.ts, the store mlr/etcd-store.ts, the election mlr/leadership.ts).
//
// Layout, under `tmip/<network_name>/`:
//   leader            who serves now: {"id", "serves"}, attached to the leader's etcd lease
//   r/cn/<name>       a CN's record     (the journal's `cn` record, core/journal.ts)
//   r/p/<a>/<b>       a CN pair's tunnel (`pair`; a < b)
//   r/b/<mac>         a binding          (`put`; a `remove` deletes the key)
//   r/q/<a.b.c.d>     a quarantined cell (`q`)
// Names are URI-encoded in keys. Each value is the journal record of the latest change of what the key
// names, so a batch of changes collapses to the last change per key (etcd refuses a key twice in one
// transaction) and loading is replay in the order cn, p, b, q through Registry.apply().
// Also here: `option store` parsed into endpoints. Decoders return errors, never throw.
import { formatIPv4, parseIPv4 } from './ip.js';
import { journalRecordCodec } from './journal.js';
import type { RegistryChange } from './registry.js';
import { err, ok, type Result } from './result.js';

/** The key families in the order a load replays them (CNs before what names them). */
export const LOAD_ORDER = ['cn/', 'p/', 'b/', 'q/'] as const;

/** etcd's default limit is 128 operations per transaction; stay well below it. */
export const MAX_TXN_OPS = 100;

export const DEFAULT_ETCD_PORT = 2379;

/** Every key of one network starts with this. */
export function etcdPrefix(networkName: string): string {
  return `tmip/${encodeURIComponent(networkName)}/`;
}

export function leaderKey(prefix: string): string {
  return `${prefix}leader`;
}

/** Where the registry's records live. */
export function recordsPrefix(prefix: string): string {
  return `${prefix}r/`;
}

/** The key just after every key that starts with `prefix` (etcd's range_end); prefixes are ASCII here. */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** One write of a transaction: a put of `value`, or a delete when `value` is undefined. */
export interface EtcdOp {
  key: string;
  value?: string;
}

/** The key a change is kept under. */
export function recordKey(prefix: string, c: RegistryChange): string {
  const r = recordsPrefix(prefix);
  switch (c.kind) {
    case 'cn':
      return `${r}cn/${encodeURIComponent(c.cn.name)}`;
    case 'put':
      return `${r}b/${c.binding.mac}`;
    case 'remove':
      return `${r}b/${c.mac}`;
    case 'pair': {
      const [a, b] = c.a < c.b ? [c.a, c.b] : [c.b, c.a];
      return `${r}p/${encodeURIComponent(a)}/${encodeURIComponent(b)}`;
    }
    case 'quarantine':
      return `${r}q/${formatIPv4(c.cell)}`;
  }
}

/** A change as one etcd write. */
export function changeOp(prefix: string, c: RegistryChange): EtcdOp {
  const key = recordKey(prefix, c);
  return c.kind === 'remove' ? { key } : { key, value: JSON.stringify(journalRecordCodec.encode(c)) };
}

/**
 * A batch of changes as the writes that leave etcd as the registry is after the last of them: the last
 * change per key, in the order each key first changed.
 */
export function coalesce(prefix: string, changes: readonly RegistryChange[]): EtcdOp[] {
  const byKey = new Map<string, EtcdOp>();
  for (const c of changes) {
    const op = changeOp(prefix, c);
    byKey.set(op.key, op);
  }
  return [...byKey.values()];
}

/** Split writes into transactions of at most `max` operations. */
export function chunk<T>(ops: readonly T[], max = MAX_TXN_OPS): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < ops.length; i += max) out.push(ops.slice(i, i + max));
  return out;
}

/** Decode one stored record and check that it is kept under the key its content names. */
export function decodeRecord(prefix: string, key: string, value: string): Result<RegistryChange> {
  let json: unknown;
  try {
    json = JSON.parse(value) as unknown;
  } catch {
    return err('not JSON');
  }
  const c = journalRecordCodec.decode(json, 'record');
  if (!c.ok) return c;
  if (c.value.kind === 'remove') return err('a remove record is never stored');
  const want = recordKey(prefix, c.value);
  if (want !== key) return err(`its content belongs under '${want}'`);
  return c;
}

/** Who leads: the value of the leader key. */
export interface LeaderInfo {
  /** Host name and process id of the leading tmip-mlr. */
  id: string;
  /** Where it serves CNs (its listen address and port), for the standbys' log. */
  serves: string;
}

export function encodeLeader(l: LeaderInfo): string {
  return JSON.stringify({ id: l.id, serves: l.serves });
}

export function decodeLeader(text: string): Result<LeaderInfo> {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null) {
      const { id, serves } = v as Record<string, unknown>;
      if (typeof id === 'string' && typeof serves === 'string') return ok({ id, serves });
    }
  } catch {
    // fall through
  }
  return err('not a tmip leader record');
}

export const STORE_EXPECTED =
  "expected 'etcd://host[:port][,host[:port]...]' naming the etcd cluster's client endpoints (port 2379 by default), e.g. 'etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379'";

/** `option store`: 'etcd://h1[:p],h2[:p],…' → the endpoints as http:// URLs (IPv4 literals or DNS names). */
export function parseStoreUrl(text: string): Result<string[]> {
  const m = /^etcd:\/\/(.+?)\/?$/.exec(text);
  if (!m) return err(`'${text}' is not an etcd store; ${STORE_EXPECTED}`);
  const out: string[] = [];
  for (const part of m[1]!.split(',')) {
    const hp = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(part.trim());
    if (!hp) return err(`'${text}': '${part}' is not host[:port]; ${STORE_EXPECTED}`);
    const host = hp[1]!;
    const port = hp[2] === undefined ? DEFAULT_ETCD_PORT : Number(hp[2]);
    if (port < 1 || port > 65535) return err(`'${text}': port ${port} is out of range; ${STORE_EXPECTED}`);
    if (/^[0-9.]+$/.test(host) && !parseIPv4(host).ok) return err(`'${text}': '${host}' is not an IPv4 address; ${STORE_EXPECTED}`);
    const url = `http://${host}:${port}`;
    if (out.includes(url)) return err(`'${text}': '${part}' is listed twice; ${STORE_EXPECTED}`);
    out.push(url);
  }
  return ok(out);
}
