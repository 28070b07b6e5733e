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

test('log lines: information on stdout, errors on stderr (procd files them as LOG_INFO and LOG_ERR)', async () => {
  const { createLogger, LOG } = await import('../../src/platform/log.js');
  const info: string[] = [];
  const error: string[] = [];
  const logger = createLogger(3, 'tmip-cn', { info: (l) => void info.push(l), error: (l) => void error.push(l) });
  logger.log(LOG.error, 'broken');
  logger.log(LOG.info, 'started');
  logger.log(LOG.handover, 'moved');
  logger.log(LOG.detect, 'too detailed for level 3');
  assert.deepEqual(
    error.map((l) => l.replace(/^\S+ /, '')),
    ['tmip-cn[1] broken'],
  );
  assert.deepEqual(
    info.map((l) => l.replace(/^\S+ /, '')),
    ['tmip-cn[2] started', 'tmip-cn[3] moved'],
  );

  // the real daemon: a running MLR says what it does on stdout and has nothing for stderr
  const { spawn } = await import('node:child_process');
  const port = 20000 + Math.floor(Math.random() * 20000);
  const file = tmpConf(
    `config mlr\n\toption network_name 'campus'\n\toption listen '127.0.0.1'\n\toption port '${port}'\n\nconfig key\n\toption cn 'ap1'\n\toption secret '${'ab'.repeat(32)}'\n`,
  );
  const child = spawn(process.execPath, [MLR, '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  try {
    const deadline = Date.now() + 10_000;
    while (!/MLR up and listening/.test(out) && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 20));
    assert.match(out, /tmip-mlr\[2\] .*MLR up and listening/);
    assert.equal(err, '', 'no errors, so nothing on stderr');
  } finally {
    child.kill('SIGTERM');
  }
});

test('tmip-cn with cn_network: no ubus to ask netifd, or an interface netifd does not know, stops start-up naming the option', async () => {
  const base = "config cn\n\toption mlr '10.0.0.1'\n\toption network_name 'x'\n\toption cn_network 'wann'\n\toption mobile_if 'br-lan'\n";
  const none = run(CN, ['-f', tmpConf(base + "\toption ubus_socket '/nonexistent/ubus.sock'\n")]);
  assert.equal(none.code, 2);
  assert.match(
    none.stderr,
    /option cn_network needs netifd over ubus, and there is no ubus socket; name the device with option cn_if instead/,
  );

  const { FakeUbusd } = await import('../support/ubusd-fake.js');
  const { tempSocketDir } = await import('../support/ubus-scenarios.js');
  const tmp = tempSocketDir();
  const ubusd = new FakeUbusd(tmp.socketPath);
  await ubusd.start();
  try {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [CN, '-f', tmpConf(base + `\toption ubus_socket '${tmp.socketPath}'\n`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 2);
    assert.match(
      err,
      /cn_network 'wann': netifd has no such interface; expected the name of an interface section of \/etc\/config\/network/,
    );
  } finally {
    await ubusd.stop();
    tmp.cleanup();
  }
});
