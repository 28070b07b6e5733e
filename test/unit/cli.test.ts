// SPDX-License-Identifier: GPL-2.0-only
// The daemons' command lines: bad flags and bad configuration stop start-up with exit code 2 and a
// message that names the option and what is expected.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const CN = path.resolve(here, '../../src/cli/tmip-cn.js');
const MLR = path.resolve(here, '../../src/cli/tmip-mlr.js');

function run(script: string, args: string[]) {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

function tmpConf(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-cli-'));
  const file = path.join(dir, 'tmip');
  fs.writeFileSync(file, text);
  return file;
}

test('tmip-cn refuses a config with bad options, naming each', () => {
  const file = tmpConf(
    "config cn\n\toption mlr '10.0.0.1:99999'\n\toption network_name 'x'\n\toption cn_if 'eth0'\n\toption lease_time '10x'\n",
  );
  const r = run(CN, ['-f', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /mlr/);
  assert.match(r.stderr, /mobile_if/);
  assert.match(r.stderr, /lease_time \(line 5\): '10x'/);
});

test('tmip-cn and tmip-mlr explain a missing file and unknown flags', () => {
  const missing = run(CN, ['-f', '/nonexistent/tmip']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read config file \/nonexistent\/tmip/);
  const flag = run(MLR, ['-x']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /unknown argument '-x'/);
  assert.match(flag.stderr, /usage: tmip-mlr/);
  const level = run(CN, ['-D', '9']);
  assert.equal(level.code, 2);
  assert.match(level.stderr, /-D takes a debug level 0\.\.7/);
  assert.equal(run(MLR, ['-h']).code, 0);
});

test('tmip-mlr refuses a config without network_name', () => {
  const file = tmpConf("config mlr\n\toption port '6554'\n");
  const r = run(MLR, ['-f', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /network_name: required option is missing/);
});
