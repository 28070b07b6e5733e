// SPDX-License-Identifier: GPL-2.0-only
// PersistentRunner (src/platform/persistent-runner.ts) against a stand-in `ip` (a shell script that
// reads batch lines as iproute2 does: answers `link show dev lo`, prints an error and "Command failed
// -:N" for a command containing 'bad', exits on one containing 'die', never answers one containing
// 'hang'), and against an `ip` without -batch. The real `ip -batch` runs the NetOps contract in the
// lab (test/lab/netops-contract.test.ts). No root needed.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CommandRunner } from '../../src/platform/exec.js';
import { isBatchable, PersistentRunner, sysctlPath } from '../../src/platform/persistent-runner.js';
import { until } from '../support/helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-batch-'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A stand-in ip; every start is appended to `starts`. */
function fakeIp(name: string, body: string): { bin: string; starts: () => number } {
  const bin = path.join(dir, name);
  const starts = path.join(dir, `${name}.starts`);
  fs.writeFileSync(bin, `#!/bin/sh\necho start >> '${starts}'\n${body}\n`, { mode: 0o755 });
  // BATCH_IP reads its start count from "$0.starts".
  return { bin, starts: () => (fs.existsSync(starts) ? fs.readFileSync(starts, 'utf8').split('\n').filter(Boolean).length : 0) };
}

// gen: which start of this stand-in this process is (a command naming 'stale' fails in the first only,
// as a device name the first \`ip\` resolved before the device was created again).
const BATCH_IP = `n=0
gen=$(wc -l < "$0.starts")
while IFS= read -r line; do
  n=$((n+1))
  case "$line" in
    'link show dev lo') echo '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN' ;;
    *bad*) echo 'Error: Nexthop has invalid gateway.' >&2; echo "Command failed -:$n" >&2 ;;
    *die*) echo 'Cannot find device "tdie"' >&2; exit 255 ;;
    *hang*) sleep 5 ;;
    *slow*) sleep 0.3 ;;
    *missing*) echo 'RTNETLINK answers: No such device' >&2; echo "Command failed -:$n" >&2 ;;
    *stale*) if [ "$gen" -le 1 ]; then echo 'Error: ipv4: Device not found.' >&2; echo "Command failed -:$n" >&2; fi ;;
    *) : ;;
  esac
done`;

function spawnRecorder(): { runner: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    runner: async (cmd, args) => {
      calls.push([cmd, ...args].join(' '));
      return { code: 0, stdout: 'spawned', stderr: '' };
    },
  };
}

test('which commands are batched: ip changes of plain words; queries, options and odd words are not', () => {
  assert.equal(isBatchable(['link', 'add', 'tmip01', 'mtu', '1450', 'up', 'type', 'vxlan', 'id', '7']), true);
  assert.equal(isBatchable(['addr', 'add', '10.1.0.6/30', 'brd', '+', 'dev', 'wl0', 'label', 'wl0:t']), true);
  assert.equal(isBatchable(['route', 'replace', '10.1.0.5/32', 'dev', 'tmip01']), true);
  assert.equal(isBatchable(['neigh', 'del', '10.1.0.5', 'dev', 'tmip01']), true);
  assert.equal(isBatchable(['-j', 'link', 'show']), false);
  assert.equal(isBatchable(['link', 'show', 'dev', 'lo']), false);
  assert.equal(isBatchable(['netns', 'add', 'x']), false);
  assert.equal(isBatchable(['link', 'set', 'dev', 'a b']), false);
  assert.equal(isBatchable(['link', 'set', 'dev', 'x\nlink del dev eth0']), false);
  assert.equal(sysctlPath('net.ipv4.conf.eth0/100.rp_filter'), '/proc/sys/net/ipv4/conf/eth0.100/rp_filter');
});

test('changes go to one ip -batch process, pipelined, each with its own result; the rest is spawned', async () => {
  const ip = fakeIp('ip-ok', BATCH_IP);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    const results = await Promise.all([
      p.runner(ip.bin, ['link', 'set', 'dev', 'a', 'up'], {}),
      p.runner(ip.bin, ['route', 'replace', 'bad', 'dev', 'a'], {}),
      p.runner(ip.bin, ['addr', 'add', '10.0.0.1/30', 'dev', 'a'], {}),
    ]);
    assert.deepEqual(
      results.map((r) => [r.code, r.stderr]),
      [
        [0, ''],
        [1, 'Error: Nexthop has invalid gateway.'],
        [0, ''],
      ],
    );
    for (let i = 0; i < 20; i++) assert.equal((await p.runner(ip.bin, ['neigh', 'del', `10.0.0.${i}`, 'dev', 'a'], {})).code, 0);
    assert.equal(ip.starts(), 1, 'one process for 23 changes');
    const q = await p.runner(ip.bin, ['-j', 'link', 'show'], {});
    assert.equal(q.stdout, 'spawned');
    assert.deepEqual(spawned.calls, [`${ip.bin} -j link show`]);
    assert.deepEqual(p.stats, { batched: 23, sysctlWrites: 0, spawned: 1, renewed: 0 });
  } finally {
    p.close();
  }
});

test('a command that makes ip exit gets its error; the commands queued behind it are spawned', async () => {
  const ip = fakeIp('ip-die', BATCH_IP);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    const [died, after] = await Promise.all([
      p.runner(ip.bin, ['neigh', 'del', 'die', 'dev', 'tdie'], {}),
      p.runner(ip.bin, ['link', 'set', 'dev', 'b', 'up'], {}),
    ]);
    assert.deepEqual([died.code, died.stderr], [1, 'Cannot find device "tdie"']);
    assert.equal(after.stdout, 'spawned', 'never ran in the dead process: spawned');
    await until('a new process is started at once, before the next change comes', () => ip.starts() === 2);
    const next = await p.runner(ip.bin, ['link', 'set', 'dev', 'c', 'up'], {});
    assert.deepEqual([next.code, next.stdout], [0, ''], 'the next change runs in it (not spawned)');
    assert.equal(ip.starts(), 2, 'and no other process was started');
    assert.deepEqual(spawned.calls, [`${ip.bin} link set dev b up`]);
  } finally {
    p.close();
  }
});

test('a command without an answer times out, and the next one runs in a new process', async () => {
  const ip = fakeIp('ip-hang', BATCH_IP);
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawnRecorder().runner });
  try {
    const hung = await p.runner(ip.bin, ['link', 'set', 'dev', 'hang', 'up'], { timeoutMs: 200 });
    assert.equal(hung.code, 124);
    assert.equal(hung.timedOut, true);
    assert.equal((await p.runner(ip.bin, ['link', 'set', 'dev', 'd', 'up'], {})).code, 0);
    assert.equal(ip.starts(), 2);
  } finally {
    p.close();
  }
});

test('an ip without -batch (BusyBox): every command is spawned, and that is logged once', async () => {
  const ip = fakeIp('ip-busybox', `echo 'ip: invalid option -- o' >&2; exit 1`);
  const spawned = spawnRecorder();
  const log: string[] = [];
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner, log: (_l, m) => log.push(m) });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await p.runner(ip.bin, ['link', 'set', 'dev', `e${i}`, 'up'], {})).stdout, 'spawned');
    assert.equal(spawned.calls.length, 3);
    assert.equal(ip.starts(), 1, 'tried once');
    assert.equal(log.filter((m) => /-batch is not available/.test(m)).length, 1);
  } finally {
    p.close();
  }
});

test('commands issued in the same tick reach ip in one write', async () => {
  // A stand-in ip that records each read from its stdin (a write of ours arrives in one read).
  const reads = path.join(dir, 'ip-reads.log');
  const script = `const fs = require('fs');
process.stdin.on('data', (chunk) => {
  fs.appendFileSync(${JSON.stringify(reads)}, JSON.stringify(chunk.toString()) + '\\n');
  for (const line of chunk.toString().split('\\n')) if (line === 'link show dev lo') process.stdout.write('1: lo: <LOOPBACK>\\n');
});`;
  const js = path.join(dir, 'ip-reads.cjs');
  fs.writeFileSync(js, script);
  const ip = fakeIp('ip-reads', `exec '${process.execPath}' '${js}'`);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    assert.equal((await p.runner(ip.bin, ['link', 'set', 'dev', 'a', 'up'], {})).code, 0); // started and answering
    const together = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => p.runner(ip.bin, ['addr', 'add', `${a}/30`, 'dev', 'a'], {}));
    assert.deepEqual(
      (await Promise.all(together)).map((r) => r.code),
      [0, 0, 0],
    );
    const chunks = fs
      .readFileSync(reads, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string);
    const last = chunks.at(-1) ?? '';
    assert.equal(
      last,
      'addr add 10.0.0.1/30 dev a\nlink show dev lo\naddr add 10.0.0.2/30 dev a\nlink show dev lo\naddr add 10.0.0.3/30 dev a\nlink show dev lo\n',
      'the three commands, each with its marker, in one read',
    );
    assert.deepEqual(spawned.calls, [], 'nothing spawned');
  } finally {
    p.close();
  }
});

test('a command whose device the batch process knows under an old index is asked again in a new process', async () => {
  const ip = fakeIp('ip-stale', BATCH_IP);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    const [before, stale] = await Promise.all([
      p.runner(ip.bin, ['addr', 'add', '10.0.0.1/30', 'dev', 'a'], {}),
      p.runner(ip.bin, ['addr', 'add', '10.0.0.6/30', 'dev', 'stale'], {}),
    ]);
    assert.equal(before.code, 0);
    assert.deepEqual([stale.code, stale.stderr], [0, ''], 'it worked in the new process');
    assert.equal(ip.starts(), 2);
    // A device that is really missing: asked once more, then its error.
    const missing = await p.runner(ip.bin, ['route', 'add', '10.9.0.1/32', 'dev', 'missing'], {});
    assert.deepEqual([missing.code, missing.stderr], [1, 'RTNETLINK answers: No such device']);
    assert.equal(ip.starts(), 3);
    assert.equal(p.stats.renewed, 2);
    assert.deepEqual(spawned.calls, [], 'nothing spawned');
  } finally {
    p.close();
  }
});

test('after a link del, later changes go to a new process, once the old one has answered what it was sent', async () => {
  const ip = fakeIp('ip-del', BATCH_IP);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    const order: string[] = [];
    const slow = p.runner(ip.bin, ['route', 'add', 'slow', 'dev', 'tm1'], {}).then((r) => order.push(`slow ${r.code}`));
    await until('the first process', () => ip.starts() === 1);
    assert.equal((await p.runner(ip.bin, ['link', 'del', 'dev', 'tm1'], {})).stdout, 'spawned');
    // tm1 created again: the old process would know it under its old index.
    const after = p.runner(ip.bin, ['route', 'add', 'stale', 'dev', 'tm1'], {}).then((r) => order.push(`after ${r.code}`));
    await Promise.all([slow, after]);
    assert.deepEqual(order, ['slow 0', 'after 0'], 'in the order sent, each answered');
    assert.equal(ip.starts(), 2, 'a new process for the command after the delete');
    assert.equal(p.stats.renewed, 1, 'renewed once, not asked again');
    assert.deepEqual(spawned.calls, [`${ip.bin} link del dev tm1`]);
  } finally {
    p.close();
  }
});

test('several commands of one process failing as stale renew it once; a retired process is replaced at once', async () => {
  const ip = fakeIp('ip-stale5', BATCH_IP);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => p.runner(ip.bin, ['addr', 'add', `10.0.0.${4 * i + 2}/30`, 'dev', 'stale'], {})),
    );
    assert.deepEqual(
      results.map((r) => r.code),
      [0, 0, 0, 0, 0],
    );
    assert.equal(ip.starts(), 2, 'one new process for all five');
    assert.equal(p.stats.renewed, 1);
    // After a link del the batch is retired and a new process started before the next change comes.
    await p.runner(ip.bin, ['link', 'del', 'dev', 'tm1'], {});
    await until('a process started ahead of the next change', () => ip.starts() === 3);
    assert.equal(p.stats.renewed, 2);
  } finally {
    p.close();
  }
});

test('close() fails what is in the process at once, spawns what was held or comes later, and starts no process', async () => {
  const ip = fakeIp('ip-close', BATCH_IP);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  const slow = p.runner(ip.bin, ['route', 'add', 'slow', 'dev', 'a'], { timeoutMs: 5000 });
  await until('the first process', () => ip.starts() === 1);
  await p.runner(ip.bin, ['link', 'del', 'dev', 'tm1'], {});
  const held = p.runner(ip.bin, ['addr', 'add', '10.0.0.6/30', 'dev', 'a'], { timeoutMs: 5000 });
  const started = Date.now();
  p.close();
  const [a, b] = await Promise.all([slow, held]);
  assert.ok(Date.now() - started < 1000, 'answered at once, not at a time-out');
  assert.deepEqual([a.code, a.stderr], [1, 'ip -batch: the runner is closed']);
  assert.equal(b.stdout, 'spawned', 'the held command never reached a process: spawned');
  const later = await p.runner(ip.bin, ['link', 'set', 'dev', 'a', 'up'], {});
  assert.equal(later.stdout, 'spawned', "a shutdown's clean-up still runs");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ip.starts(), 1, 'no batch process started after close');
  assert.deepEqual(spawned.calls, [`${ip.bin} link del dev tm1`, `${ip.bin} addr add 10.0.0.6/30 dev a`, `${ip.bin} link set dev a up`]);
});

test('a process that fails to start after batching has worked does not turn batching off', async () => {
  // The second start ends at once (as when a fork fails under memory pressure); the others work.
  const ip = fakeIp('ip-flaky', `if [ "$(wc -l < "$0.starts")" -eq 2 ]; then exit 1; fi\n${BATCH_IP}`);
  const spawned = spawnRecorder();
  const p = new PersistentRunner({ ip: ip.bin, fallback: spawned.runner });
  try {
    const died = await p.runner(ip.bin, ['neigh', 'del', 'die', 'dev', 'tdie'], {});
    assert.equal(died.code, 1);
    await until('the replacement started (and ended at once)', () => ip.starts() === 2);
    await new Promise((r) => setTimeout(r, 100));
    const next = await p.runner(ip.bin, ['link', 'set', 'dev', 'c', 'up'], {});
    assert.deepEqual([next.code, next.stdout], [0, ''], 'batched again, in a third process');
    assert.equal(ip.starts(), 3);
    assert.deepEqual(spawned.calls, []);
  } finally {
    p.close();
  }
});
