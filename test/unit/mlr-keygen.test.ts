// SPDX-License-Identifier: GPL-2.0-only
// `tmip-mlr keygen NAME`: a fresh key as the CN's `option secret` line and the MLR's `config key`
// section, both accepted by the config readers and holding the same key; bad names are refused.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keygen } from '../../src/cli/keygen.js';
import { parseCnConfig, parseMlrConfig } from '../../src/core/config.js';
import { parseUci } from '../../src/proto/uci.js';

const MLR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/tmip-mlr.js');

/** The printed snippets placed into a CN's and the MLR's config; returns both parsed. */
function install(out: string, name: string) {
  const [cnPart, mlrPart] = out.split(/\n(?=# On the MLR)/);
  assert.ok(cnPart && mlrPart, out);
  const cnText = `config cn\n\toption mlr '192.0.2.1'\n\toption network_name 'n'\n\toption cn_if 'eth0'\n\toption mobile_if 'br-lan'\n\toption cn_name '${name}'\n${cnPart}\n`;
  const mlrText = `config mlr\n\toption network_name 'n'\n\n${mlrPart}`;
  const cn = parseUci(cnText);
  const mlr = parseUci(mlrText);
  assert.ok(cn.ok && mlr.ok);
  const c = parseCnConfig(cn.value);
  const m = parseMlrConfig(mlr.value);
  assert.ok(c.ok, c.ok ? '' : c.error);
  assert.ok(m.ok, m.ok ? '' : m.error);
  assert.deepEqual(c.value.warnings, []);
  assert.deepEqual(m.value.warnings, []);
  return { cn: c.value, mlr: m.value };
}

test('keygen: the two snippets hold the same fresh key and parse as CN and MLR config', () => {
  const a = keygen('Library 2nd floor');
  const b = keygen('Library 2nd floor');
  assert.ok(a.ok && b.ok);
  const x = install(a.value, 'Library 2nd floor');
  const y = install(b.value, 'Library 2nd floor');
  assert.match(x.cn.secret ?? '', /^[0-9a-f]{64}$/);
  assert.deepEqual(x.mlr.keys, [{ cn: 'Library 2nd floor', secret: x.cn.secret }]);
  assert.notEqual(x.cn.secret, y.cn.secret, 'each run makes a new key');
  // every option line has a comment above it, as in the shipped file
  const lines = a.value.split('\n');
  lines.forEach((l, i) => {
    if (/^\toption /.test(l)) assert.match(lines[i - 1] ?? '', /^\t# /, l);
  });
});

test('keygen: names outside CN_NAME_RE are refused', () => {
  for (const bad of ['', ' ap', 'ap ', "ap'1", 'a/b', 'x'.repeat(65), 'tab\tname']) {
    const r = keygen(bad);
    assert.equal(r.ok, false, JSON.stringify(bad));
    if (!r.ok) assert.match(r.error, /is not a valid CN name/);
  }
});

test('tmip-mlr keygen NAME prints the snippets; a bad or missing name exits 2', () => {
  const r = spawnSync(process.execPath, [MLR, 'keygen', 'ap-1'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  const { cn, mlr } = install(r.stdout, 'ap-1');
  assert.deepEqual(mlr.keys, [{ cn: 'ap-1', secret: cn.secret }]);
  const cases: [string[], RegExp][] = [
    [['keygen', 'a/b'], /^tmip-mlr: "a\/b" is not a valid CN name/],
    [['keygen'], /^tmip-mlr: keygen takes one CN name/],
    [['keygen', 'a', 'b'], /^tmip-mlr: keygen takes one CN name/],
  ];
  for (const [args, message] of cases) {
    const bad = spawnSync(process.execPath, [MLR, ...args], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(bad.status, 2, args.join(' '));
    assert.match(bad.stderr, message, args.join(' '));
    assert.equal(bad.stdout, '', 'no key is printed');
  }
});
