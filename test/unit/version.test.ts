// SPDX-License-Identifier: GPL-2.0-only
// One version: src/version.ts (what the daemons report), package.json and its lock, and PKG_VERSION of
// every package the OpenWrt feed builds from this repository agree, so a bump that misses one fails
// `make unit`. That includes our packet capture addon (native/packet/package.json, its lock entry and
// the feed's node-tmip-packet). A feed package built from an upstream tarball (PKG_SOURCE) would carry
// the upstream version instead.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../../src/version.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function readJson(rel: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(ROOT, rel), 'utf8'));
}

/** Every file named Makefile under dir, as paths relative to ROOT. */
function makefiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return makefiles(rel);
    return e.isFile() && e.name === 'Makefile' ? [rel] : [];
  });
}

/** The value of a `NAME:=value` line, or undefined. */
function makeVar(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:=[ \\t]*(.*?)[ \\t]*$`, 'm').exec(text)?.[1];
}

test('VERSION is a plain release version', () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+$/, 'OpenWrt and npm both accept it as is');
});

test('package.json and package-lock.json carry VERSION', () => {
  assert.equal((readJson('package.json') as { version?: unknown }).version, VERSION, 'package.json "version"');
  const lock = readJson('package-lock.json') as { version?: unknown; packages?: Record<string, { version?: unknown } | undefined> };
  assert.equal(lock.version, VERSION, 'package-lock.json "version" (run npm install after a bump)');
  assert.equal(lock.packages?.['']?.version, VERSION, 'package-lock.json packages[""].version');
  assert.equal((readJson('native/packet/package.json') as { version?: unknown }).version, VERSION, 'native/packet/package.json "version"');
  assert.equal(lock.packages?.['native/packet']?.version, VERSION, 'package-lock.json packages["native/packet"].version');
});

test('PKG_VERSION of every feed package built from this repository is VERSION', () => {
  const own = makefiles('openwrt').filter((f) => makeVar(fs.readFileSync(path.join(ROOT, f), 'utf8'), 'PKG_SOURCE') === undefined);
  assert.deepEqual(
    own.sort(),
    ['openwrt/lang/node-tmip-packet/Makefile', 'openwrt/luci/luci-app-tmip/Makefile', 'openwrt/net/tmip/Makefile'],
    'the feed packages made from this repository',
  );
  for (const f of own) {
    assert.equal(makeVar(fs.readFileSync(path.join(ROOT, f), 'utf8'), 'PKG_VERSION'), VERSION, `PKG_VERSION in ${f}`);
  }
});
