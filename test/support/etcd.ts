// SPDX-License-Identifier: GPL-2.0-only
// A throw-away etcd cluster for tests: the command lines of its members (one data directory each,
// client and peer ports on one host address), and a runner for the root namespace's loopback (unit
// tests). The lab spawns the same command lines inside the MLR's namespace (test/lab/mlr-ha.test.ts).
// Debian's etcd-server package provides /usr/bin/etcd (test/install-deps.sh installs it).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const ETCD_BIN = 'etcd';

export function haveEtcd(): boolean {
  return spawnSync(ETCD_BIN, ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  args: string[];
}

/** `size` members on `host`: member i serves clients on basePort + 2i and peers on basePort + 2i + 1. */
export function etcdMembers(dir: string, size: number, host: string, basePort: number): EtcdMember[] {
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peer = (i: number) => `http://${host}:${basePort + 2 * i + 1}`;
  const cluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  return names.map((name, i) => {
    const clientUrl = `http://${host}:${basePort + 2 * i}`;
    return {
      name,
      clientUrl,
      args: [
        '--name',
        name,
        '--data-dir',
        path.join(dir, `etcd-${name}`),
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peer(i),
        '--initial-advertise-peer-urls',
        peer(i),
        '--initial-cluster',
        cluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `tmip-test-${basePort}`,
        // a test cluster: quick elections, little logging
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--log-level',
        'warn',
      ],
    };
  });
}

/** Resolves when every member answers /health (bounded by `timeoutMs`). */
export async function waitHealthy(urls: string[], timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (const url of urls) {
    for (;;) {
      const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
        .then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === 'true')
        .catch(() => false);
      if (ok) break;
      if (Date.now() > end) throw new Error(`etcd at ${url} not healthy within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface LocalEtcd {
  endpoints: string[];
  members: EtcdMember[];
  procs: ChildProcess[];
  stop(): Promise<void>;
}

/** An etcd cluster on 127.0.0.1 of the test's own namespace; stop() kills it and removes its data. */
export async function startLocalEtcd(dir: string, size = 1, basePort = 20000 + Math.floor(Math.random() * 20000)): Promise<LocalEtcd> {
  const members = etcdMembers(dir, size, '127.0.0.1', basePort);
  const procs = members.map((m) =>
    spawn(ETCD_BIN, m.args, { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, `${m.name}.log`), 'a')] }),
  );
  const stop = async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGKILL');
          }),
      ),
    );
  };
  try {
    await waitHealthy(members.map((m) => m.clientUrl));
  } catch (e) {
    await stop();
    throw e;
  }
  return { endpoints: members.map((m) => m.clientUrl), members, procs, stop };
}
