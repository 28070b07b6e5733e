// SPDX-License-Identifier: GPL-2.0-only
// What PersistentRunner keeps out of its `ip -batch` (issue 11): `link del`, which takes 15–45 ms
// for a vxlan device and would hold up every command behind it, is spawned beside the batch; the
// other changes still go to the batch. A stand-in `ip` answers the batch; no root needed.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isBatchable, PersistentRunner } from '../../src/platform/persistent-runner.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-linkdel-'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('link del is not batchable; link add/set and the other changes are', () => {
  assert.equal(isBatchable(['link', 'del', 'dev', 'tmip7']), false);
  assert.equal(isBatchable(['link', 'delete', 'dev', 'tmip7']), false);
  assert.equal(isBatchable(['link', 'add', 'tmip7', 'type', 'vxlan', 'id', '7']), true);
  assert.equal(isBatchable(['link', 'set', 'dev', 'tmip7', 'up']), true);
  assert.equal(isBatchable(['addr', 'del', '10.1.0.6/30', 'dev', 'wl0']), true);
});

test('a link del is spawned while the batch goes on with the next change', async (t) => {
  const bin = path.join(dir, 'ip');
  const lines = path.join(dir, 'lines');
  fs.writeFileSync(
    bin,
    `#!/bin/sh
while IFS= read -r line; do
  echo "$line" >> '${lines}'
  case "$line" in
    'link show dev lo') echo '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN' ;;
  esac
done
`,
    { mode: 0o755 },
  );
  const spawned: string[] = [];
  const r = new PersistentRunner({
    ip: bin,
    fallback: async (cmd, args) => {
      spawned.push([path.basename(cmd), ...args].join(' '));
      return { code: 0, stdout: '', stderr: '' };
    },
  });
  t.after(() => r.close());
  const [del, add] = await Promise.all([
    r.runner(bin, ['link', 'del', 'dev', 'tmip7'], {}),
    r.runner(bin, ['addr', 'add', '10.1.0.6/30', 'dev', 'wl0'], {}),
  ]);
  assert.equal(del.code, 0);
  assert.equal(add.code, 0);
  assert.deepEqual(spawned, ['ip link del dev tmip7']);
  assert.ok(fs.readFileSync(lines, 'utf8').includes('addr add 10.1.0.6/30 dev wl0\n'), 'the address went to the batch');
  assert.deepEqual(r.stats, { batched: 1, sysctlWrites: 0, spawned: 1, renewed: 1 }, 'the batch is renewed after the delete');
});
