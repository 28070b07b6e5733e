// SPDX-License-Identifier: GPL-2.0-only
// A small etcd v3 client over etcd's JSON gateway (HTTP POST to /v3/kv/range, /v3/kv/txn,
// /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke) with Node's fetch: what the MLR's etcd
// store needs (mlr/etcd-store.ts, mlr/leadership.ts), and nothing else.
//
// Why not the npm package `etcd3`: it loads its protocol definitions from disk at run time
// (`${__dirname}/../proto/rpc.proto` in lib/connection-pool.js), so it does not survive esbuild's
// one-file bundle that tmip ships (dist/tmip-mlr.cjs) without copying .proto files beside it, and it
// brings @grpc/grpc-js along, a large dependency for a router. The gateway is part of every etcd 3.4+
// server (Debian's etcd-server included), speaks the same API, and needs no dependency.
//
// Endpoints: a request goes to the endpoint that answered last; when it cannot be reached, times out
// or answers 5xx/"unavailable", the next one is tried, each at most once per request. An answer that
// is an etcd error (a bad request) is not retried. Keys and values are strings (UTF-8), base64 on the
// wire; 64-bit numbers travel as decimal strings and stay strings here where they are ids.

export interface EtcdKv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** The lease the key is attached to ('0': none). */
  lease: string;
}

export type EtcdCompare = { key: string; target: 'CREATE'; createRevision: number } | { key: string; target: 'LEASE'; lease: string };

export type EtcdRequestOp = { put: string; value: string; lease?: string } | { del: string };

/** What the MLR needs of etcd (the real client below; tests may pass another). */
export interface EtcdApi {
  readonly describe: string;
  /** One page of keys from `key` (inclusive) to `rangeEnd` (exclusive; undefined = just `key`). */
  range(
    key: string,
    opts?: { rangeEnd?: string; limit?: number; revision?: number },
  ): Promise<{ kvs: EtcdKv[]; more: boolean; revision: number }>;
  txn(compare: EtcdCompare[], success: EtcdRequestOp[], failure?: EtcdRequestOp[]): Promise<{ succeeded: boolean; revision: number }>;
  leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }>;
  /** The lease's remaining TTL after the refresh; 0 when it is gone (expired or revoked). */
  leaseKeepAlive(id: string): Promise<number>;
  leaseRevoke(id: string): Promise<void>;
}

export class EtcdError extends Error {
  constructor(
    message: string,
    /** True when no endpoint could be reached (as opposed to an answer that is an error). */
    readonly unreachable: boolean,
  ) {
    super(message);
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');
const num = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? Number(v) : 0);

export class EtcdClient implements EtcdApi {
  private current = 0;
  readonly describe: string;

  constructor(
    private readonly endpoints: readonly string[],
    private readonly timeoutMs = 2000,
  ) {
    if (endpoints.length === 0) throw new Error('etcd: no endpoint');
    this.describe = `etcd ${endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',')}`;
  }

  async range(key: string, opts: { rangeEnd?: string; limit?: number; revision?: number } = {}) {
    const body: Record<string, unknown> = { key: b64(key) };
    if (opts.rangeEnd !== undefined) body['range_end'] = b64(opts.rangeEnd);
    if (opts.limit !== undefined) body['limit'] = String(opts.limit);
    if (opts.revision !== undefined) body['revision'] = String(opts.revision);
    const r = await this.call('/v3/kv/range', body);
    const kvs = Array.isArray(r['kvs']) ? (r['kvs'] as Record<string, unknown>[]) : [];
    return {
      kvs: kvs.map((kv) => ({
        key: unb64(kv['key']),
        value: unb64(kv['value']),
        createRevision: num(kv['create_revision']),
        modRevision: num(kv['mod_revision']),
        lease: typeof kv['lease'] === 'string' ? kv['lease'] : '0',
      })),
      more: r['more'] === true,
      revision: headerRevision(r),
    };
  }

  async txn(compare: EtcdCompare[], success: EtcdRequestOp[], failure: EtcdRequestOp[] = []) {
    const r = await this.call('/v3/kv/txn', {
      compare: compare.map((c) =>
        c.target === 'CREATE'
          ? { key: b64(c.key), target: 'CREATE', result: 'EQUAL', create_revision: String(c.createRevision) }
          : { key: b64(c.key), target: 'LEASE', result: 'EQUAL', lease: c.lease },
      ),
      success: success.map(requestOp),
      failure: failure.map(requestOp),
    });
    return { succeeded: r['succeeded'] === true, revision: headerRevision(r) };
  }

  async leaseGrant(ttlSeconds: number) {
    const r = await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) });
    if (typeof r['ID'] !== 'string' || r['error'])
      throw new EtcdError(`etcd lease grant: ${JSON.stringify(r['error'] ?? 'no lease id')}`, false);
    return { id: r['ID'], ttl: num(r['TTL']) };
  }

  async leaseKeepAlive(id: string) {
    const r = await this.call('/v3/lease/keepalive', { ID: id });
    const result = (r['result'] ?? {}) as Record<string, unknown>;
    return num(result['TTL']);
  }

  async leaseRevoke(id: string) {
    await this.call('/v3/lease/revoke', { ID: id }).catch((e: unknown) => {
      // revoking a lease that is already gone is not a failure
      if (!(e instanceof EtcdError) || e.unreachable) throw e;
    });
  }

  /** POST to one endpoint after another until one answers. */
  private async call(path: string, body: unknown): Promise<Record<string, unknown>> {
    const problems: string[] = [];
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const i = (this.current + tried) % this.endpoints.length;
      const ep = this.endpoints[i]!;
      let res: Response;
      let text: string;
      try {
        res = await fetch(ep + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        text = await res.text();
      } catch (e) {
        problems.push(`${ep}: ${describeFetchError(e)}`);
        continue;
      }
      // The lease keep-alive is a stream: one JSON object per line; the first one is the answer.
      const first = text.split('\n').find((l) => l.trim() !== '') ?? '{}';
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(first) as Record<string, unknown>;
      } catch {
        problems.push(`${ep}: HTTP ${res.status}, not JSON`);
        continue;
      }
      const message = typeof json['error'] === 'string' ? json['error'] : typeof json['message'] === 'string' ? json['message'] : undefined;
      // gRPC code 14 = unavailable (no leader, member stopping): another member may do better.
      if (res.status >= 500 || json['code'] === 14) {
        problems.push(`${ep}: ${message ?? `HTTP ${res.status}`}`);
        continue;
      }
      if (!res.ok || (message !== undefined && json['code'] !== undefined)) {
        this.current = i;
        throw new EtcdError(`etcd ${path}: ${message ?? `HTTP ${res.status}`}`, false);
      }
      this.current = i;
      return json;
    }
    throw new EtcdError(`no etcd endpoint answered ${path} (${problems.join('; ')})`, true);
  }
}

function requestOp(op: EtcdRequestOp): Record<string, unknown> {
  if ('del' in op) return { request_delete_range: { key: b64(op.del) } };
  return { request_put: { key: b64(op.put), value: b64(op.value), ...(op.lease !== undefined ? { lease: op.lease } : {}) } };
}

function headerRevision(r: Record<string, unknown>): number {
  const h = r['header'];
  return typeof h === 'object' && h !== null ? num((h as Record<string, unknown>)['revision']) : 0;
}

function describeFetchError(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    if (cause instanceof Error) return cause.message;
    return e.name === 'TimeoutError' ? 'timed out' : e.message;
  }
  return String(e);
}
