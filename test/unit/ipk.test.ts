// SPDX-License-Identifier: GPL-2.0-only
// The OpenWrt packages: `bash build.sh ipk` (openwrt/build-ipk.sh) writes tmip-cn, tmip-mlr and
// luci-app-tmip .ipk files in the format of OpenWrt's ipkg-build (a gzipped tar of debian-binary,
// data.tar.gz, control.tar.gz), with the right control fields, conffiles, maintainer scripts, file
// modes and owners, reproducibly. The feed Makefiles, run against a stub of the SDK's rules.mk,
// package.mk and luci.mk, install exactly what the .ipk files hold; node-tmip-packet's cross-build
// passes the target settings to npm and installs the addon where Node.js finds it. When an opkg binary is at
// hand (OPKG=/path/to/opkg-cl, or opkg on PATH) the packages are also installed into an offline root.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const RELEASE = /^PKG_RELEASE:=(\d+)$/m.exec(fs.readFileSync(path.join(ROOT, 'openwrt/net/tmip/Makefile'), 'utf8'))?.[1] ?? '?';
const PKG_VERSION = `${VERSION}-r${RELEASE}`;
const EPOCH = '1700000000';
const PACKAGES = ['tmip-cn', 'tmip-mlr', 'luci-app-tmip'] as const;
type Pkg = (typeof PACKAGES)[number];

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, cwd: ROOT, ...opts });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function have(cmd: string): boolean {
  return run('sh', ['-c', `command -v ${cmd}`]).code === 0;
}

const TMPDIRS: string[] = [];
function tmpdir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tmip-${tag}-`));
  TMPDIRS.push(dir);
  return dir;
}
after(() => {
  for (const dir of TMPDIRS) fs.rmSync(dir, { recursive: true, force: true });
});

interface Entry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** `tar -tv` of a tar.gz: names, types, modes, numeric owners. */
function listTar(file: string): Entry[] {
  const r = run('tar', ['--numeric-owner', '-tvzf', file]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const m = /^([-dlhcbps])([-rwxsStT]{9})\s+(\d+)\/(\d+)\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line);
      assert.ok(m, `tar listing line: ${line}`);
      const perms = m[2]!;
      let mode = 0;
      for (let i = 0; i < 9; i++) if (perms[i] !== '-') mode |= 1 << (8 - i);
      return { type: m[1]!, mode, uid: Number(m[3]), gid: Number(m[4]), size: Number(m[5]), name: m[6]! };
    });
}

function untar(file: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const r = run('tar', ['-xzf', file, '-C', dir]);
  assert.equal(r.code, 0, r.stderr);
}

interface Unpacked {
  outer: Entry[];
  dir: string;
  control: Record<string, string>;
  controlText: string;
  controlEntries: Entry[];
  data: Entry[];
  dataDir: string;
}

function unpack(ipk: string): Unpacked {
  const dir = tmpdir('unpack');
  const outer = listTar(ipk);
  untar(ipk, dir);
  untar(path.join(dir, 'control.tar.gz'), path.join(dir, 'control'));
  untar(path.join(dir, 'data.tar.gz'), path.join(dir, 'data'));
  const controlText = fs.readFileSync(path.join(dir, 'control/control'), 'utf8');
  const control: Record<string, string> = {};
  let last = '';
  for (const line of controlText.split('\n').filter((l) => l !== '')) {
    if (line.startsWith(' ')) {
      assert.ok(last, 'a continuation line follows a field');
      control[last] += `\n${line}`;
      continue;
    }
    const m = /^([A-Za-z][A-Za-z0-9-]*): ?(.*)$/.exec(line);
    assert.ok(m, `control line '${line}' is 'Field: value'`);
    last = m[1]!;
    assert.equal(control[last], undefined, `field ${last} appears once`);
    control[last] = m[2]!;
  }
  return {
    outer,
    dir,
    control,
    controlText,
    controlEntries: listTar(path.join(dir, 'control.tar.gz')),
    data: listTar(path.join(dir, 'data.tar.gz')),
    dataDir: path.join(dir, 'data'),
  };
}

// ---------------------------------------------------------------------------------------------

let OUT = '';
let OUT2 = '';
const ipk: Partial<Record<Pkg, Unpacked>> = {};
const fileOf = (dir: string, pkg: Pkg) => path.join(dir, `${pkg}_${PKG_VERSION}_all.ipk`);

before(() => {
  // the packages need the bundles; make them if this checkout has none yet
  if (!['tmip-cn.cjs', 'tmip-mlr.cjs', 'tmip-cn-mqtt.cjs', 'tmip-mlr-mqtt.cjs'].every((f) => fs.existsSync(path.join(ROOT, 'dist', f)))) {
    const r = run('bash', ['build.sh']);
    assert.equal(r.code, 0, `bash build.sh:\n${r.stderr}`);
  }
  // `bash build.sh ipk` as a user runs it, with esbuild stubbed out (the bundles in dist/ are used as
  // they are) and the packages written to a temporary directory
  const stub = tmpdir('npx');
  fs.writeFileSync(path.join(stub, 'npx'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  OUT = tmpdir('ipk');
  const r = run('bash', ['build.sh', 'ipk'], {
    env: { ...process.env, PATH: `${stub}:${process.env.PATH}`, IPK_OUTDIR: OUT, SOURCE_DATE_EPOCH: EPOCH },
  });
  assert.equal(r.code, 0, `bash build.sh ipk:\n${r.stdout}\n${r.stderr}`);
  // and the packing step alone, from another directory
  OUT2 = tmpdir('ipk2');
  const r2 = run('sh', [path.join(ROOT, 'openwrt/build-ipk.sh'), OUT2], {
    cwd: os.tmpdir(),
    env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH },
  });
  assert.equal(r2.code, 0, `openwrt/build-ipk.sh:\n${r2.stderr}`);
  for (const pkg of PACKAGES) ipk[pkg] = unpack(fileOf(OUT, pkg));
});

test('each bundle is CommonJS and leaves MQTT.js to its own -mqtt.cjs module, required only when used (memory)', () => {
  for (const prog of ['tmip-cn', 'tmip-mlr']) {
    const bundle = fs.readFileSync(path.join(ROOT, 'dist', `${prog}.cjs`), 'utf8');
    assert.ok(bundle.startsWith('#!/usr/bin/env node\n"use strict";'), `${prog}: shebang, then strict mode`);
    assert.ok(!bundle.includes('mqtt-packet'), `${prog}: MQTT.js is not inside the bundle`);
    assert.ok(!/\bimport\(/.test(bundle), `${prog}: no dynamic import (it would start the ESM loader)`);
    assert.equal(bundle.split(`require("./${prog}-mqtt.cjs")`).length, 2, `${prog}: one require of its MQTT module`);
    const r = run(process.execPath, [
      '-e',
      'process.stdout.write(typeof require(process.argv[1]).MqttClient)',
      path.join(ROOT, 'dist', `${prog}-mqtt.cjs`),
    ]);
    assert.equal(r.stdout, 'function', r.stderr);
  }
});

test('bash build.sh ipk writes the three packages, named <name>_<version>-r<release>_all.ipk', () => {
  assert.deepEqual(fs.readdirSync(OUT).sort(), PACKAGES.map((p) => `${p}_${PKG_VERSION}_all.ipk`).sort());
});

test('the packages are reproducible: same inputs and SOURCE_DATE_EPOCH give identical bytes', () => {
  for (const pkg of PACKAGES) {
    assert.ok(fs.readFileSync(fileOf(OUT, pkg)).equals(fs.readFileSync(fileOf(OUT2, pkg))), pkg);
  }
});

test('each .ipk is a gzipped tar of ./debian-binary "2.0", ./data.tar.gz and ./control.tar.gz, owned 0:0', () => {
  for (const pkg of PACKAGES) {
    const u = ipk[pkg]!;
    const raw = fs.readFileSync(fileOf(OUT, pkg));
    assert.equal(raw.readUInt16BE(0), 0x1f8b, `${pkg} is gzip`);
    assert.deepEqual(
      u.outer.map((e) => e.name),
      ['./debian-binary', './data.tar.gz', './control.tar.gz'],
    );
    for (const e of u.outer) {
      assert.equal(e.type, '-');
      assert.deepEqual([e.uid, e.gid, e.mode], [0, 0, 0o644], `${pkg} ${e.name}`);
    }
    assert.equal(fs.readFileSync(path.join(u.dir, 'debian-binary'), 'utf8'), '2.0\n');
    // gzip without a file name or time stamp, as ipkg-build (gzip -n)
    assert.equal(raw[3]! & 0x08, 0, 'no FNAME');
    assert.equal(raw.readUInt32LE(4), 0, 'no MTIME');
  }
});

const EXPECT_DEPENDS: Record<Pkg, string[]> = {
  'tmip-cn': ['libc', 'node', 'node-tmip-packet', 'ip-full', 'kmod-vxlan', 'kmod-ipip', 'kmod-gre', 'nftables'],
  'tmip-mlr': ['libc', 'node'],
  'luci-app-tmip': ['libc', 'luci-base'], // usable on an MLR-only router: no tmip-cn
};

test('control: Package, Version, Depends, Source, License, Section, Architecture all, Installed-Size, Description', () => {
  for (const pkg of PACKAGES) {
    const c = ipk[pkg]!.control;
    assert.equal(c.Package, pkg);
    assert.equal(c.Version, PKG_VERSION, 'the package.json version, -r and the Makefile release');
    assert.ok(c.Version.startsWith(`${VERSION}-r`));
    assert.deepEqual(c.Depends!.split(', '), EXPECT_DEPENDS[pkg], `${pkg} Depends, comma-separated OpenWrt names`);
    assert.equal(c.Architecture, 'all');
    assert.equal(c.License, 'GPL-2.0-only');
    assert.equal(c.Section, pkg === 'luci-app-tmip' ? 'luci' : 'net');
    assert.equal(c.Source, pkg === 'luci-app-tmip' ? 'feeds/tmip/luci/luci-app-tmip' : 'feeds/tmip/net/tmip');
    assert.equal(c.SourceName, pkg === 'luci-app-tmip' ? 'luci-app-tmip' : 'tmip');
    assert.equal(c.SourceDateEpoch, EPOCH);
    const data = zlib.gunzipSync(fs.readFileSync(path.join(ipk[pkg]!.dir, 'data.tar.gz')));
    assert.equal(c['Installed-Size'], String(data.length), 'Installed-Size is the unpacked data.tar, as ipkg-build counts it');
    assert.ok(c.Description && c.Description.trim().length > 20, `${pkg} has a description`);
    assert.ok(ipk[pkg]!.controlText.endsWith('\n'));
  }
  const fieldOrder = Object.keys(ipk['tmip-cn']!.control);
  assert.deepEqual(
    fieldOrder,
    [
      'Package',
      'Version',
      'Depends',
      'Source',
      'SourceName',
      'License',
      'Section',
      'SourceDateEpoch',
      'Architecture',
      'Installed-Size',
      'Description',
    ],
    "ipkg's field order",
  );
});

test('control.tar.gz: control and conffiles 0644, postinst and prerm 0755, all owned 0:0', () => {
  for (const pkg of PACKAGES) {
    const entries = ipk[pkg]!.controlEntries;
    const names = entries.map((e) => e.name);
    const expected = ['./', './control', './postinst', './prerm'];
    if (pkg === 'tmip-cn') expected.push('./conffiles');
    if (pkg !== 'luci-app-tmip') expected.push('./prerm-pkg');
    if (pkg === 'luci-app-tmip') expected.push('./postinst-pkg');
    assert.deepEqual([...names].sort(), expected.sort(), pkg);
    for (const e of entries) {
      assert.deepEqual([e.uid, e.gid], [0, 0]);
      const mode = e.type === 'd' || /post|pre/.test(e.name) ? 0o755 : 0o644;
      assert.equal(e.mode, mode, `${pkg} ${e.name} mode ${e.mode.toString(8)}`);
    }
  }
  assert.equal(fs.readFileSync(path.join(ipk['tmip-cn']!.dir, 'control/conffiles'), 'utf8'), '/etc/config/tmip\n');
});

test('maintainer scripts pass sh -n and shellcheck, and hand over to OpenWrt default_postinst/default_prerm', () => {
  for (const pkg of PACKAGES) {
    for (const script of ['postinst', 'prerm', ...(pkg === 'luci-app-tmip' ? ['postinst-pkg'] : ['prerm-pkg'])]) {
      const file = path.join(ipk[pkg]!.dir, 'control', script);
      assert.match(fs.readFileSync(file, 'utf8'), /^#!\/bin\/sh\n/);
      const r = run('sh', ['-n', file]);
      assert.equal(r.code, 0, `${pkg} ${script}: ${r.stderr}`);
      if (have('shellcheck')) {
        const sc = run('shellcheck', ['-s', 'sh', file]);
        assert.equal(sc.code, 0, `shellcheck ${pkg} ${script}:\n${sc.stdout}`);
      }
    }
    // on a router opkg runs /usr/lib/opkg/info/<pkg>.postinst with IPKG_INSTROOT empty; in an image
    // build with IPKG_INSTROOT set to the image root: both source that root's /lib/functions.sh
    const root = tmpdir('instroot');
    fs.mkdirSync(path.join(root, 'lib'));
    fs.writeFileSync(
      path.join(root, 'lib/functions.sh'),
      'default_postinst() { echo "default_postinst $*" >> "$IPKG_INSTROOT/calls"; }\ndefault_prerm() { echo "default_prerm $*" >> "$IPKG_INSTROOT/calls"; }\n',
    );
    const info = path.join(root, 'usr/lib/opkg/info');
    fs.mkdirSync(info, { recursive: true });
    for (const script of ['postinst', 'prerm'])
      fs.copyFileSync(path.join(ipk[pkg]!.dir, 'control', script), path.join(info, `${pkg}.${script}`));
    const env = { PATH: process.env.PATH, IPKG_INSTROOT: root };
    assert.equal(run('sh', [path.join(info, `${pkg}.postinst`), 'configure'], { env }).code, 0);
    assert.equal(run('sh', [path.join(info, `${pkg}.prerm`), 'remove'], { env }).code, 0);
    assert.equal(run('sh', [path.join(info, `${pkg}.postinst`), 'configure'], { env: { ...env, IPKG_NO_SCRIPT: '1' } }).code, 0);
    assert.equal(
      fs.readFileSync(path.join(root, 'calls'), 'utf8'),
      `default_postinst ${info}/${pkg}.postinst configure\ndefault_prerm ${info}/${pkg}.prerm remove\n`,
      'each runs its default once, with its own path (from which OpenWrt derives the package name); IPKG_NO_SCRIPT=1 skips',
    );
    // without /lib/functions.sh (not OpenWrt) they do nothing and succeed
    const bare = tmpdir('bare');
    assert.equal(
      run('sh', [path.join(info, `${pkg}.postinst`), 'configure'], { env: { PATH: process.env.PATH, IPKG_INSTROOT: bare } }).code,
      0,
    );
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(bare, { recursive: true, force: true });
  }
  // the packages' own prerm (default_prerm sources it): takes the firewall/dnsmasq defaults out on a
  // live removal, never in an image build or during an upgrade
  for (const [pkg, role] of [
    ['tmip-cn', 'cn'],
    ['tmip-mlr', 'mlr'],
  ] as const) {
    const text = fs.readFileSync(path.join(ipk[pkg]!.dir, 'control/prerm-pkg'), 'utf8');
    const line = `[ -n "\${IPKG_INSTROOT}" ] || [ "\${PKG_UPGRADE}" = 1 ] || /usr/libexec/tmip/${role}-integrate remove`;
    assert.ok(text.split('\n').includes(line), `${pkg} prerm-pkg:\n${text}`);
  }
  // luci.mk's postinst: nothing in an image build
  const r = run('/bin/sh', [path.join(ipk['luci-app-tmip']!.dir, 'control/postinst-pkg')], {
    env: { PATH: '/nonexistent', IPKG_INSTROOT: '/tmp' },
  });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, '', 'no commands run with IPKG_INSTROOT set');
});

const DIRS = (...paths: string[]) => {
  const out = new Set<string>(['./']);
  for (const p of paths) {
    const parts = p.split('/').filter((s) => s !== '');
    for (let i = 1; i < parts.length; i++) out.add(`./${parts.slice(0, i).join('/')}/`);
  }
  return out;
};

const EXPECT_FILES: Record<Pkg, Record<string, [number, string]>> = {
  'tmip-cn': {
    '/usr/lib/tmip/tmip-cn.cjs': [0o755, 'dist/tmip-cn.cjs'],
    '/usr/lib/tmip/tmip-cn-mqtt.cjs': [0o644, 'dist/tmip-cn-mqtt.cjs'],
    '/usr/sbin/tmip-cn': [0o755, 'files/usr/sbin/tmip-cn'],
    '/etc/init.d/tmip-cn': [0o755, 'files/etc/init.d/tmip-cn'],
    '/etc/config/tmip': [0o600, 'files/etc/config/tmip'],
    '/etc/uci-defaults/90-tmip-cn': [0o755, 'files/etc/uci-defaults/90-tmip-cn'],
    '/usr/libexec/tmip/cn-integrate': [0o755, 'files/usr/libexec/tmip/integrate'],
    '/lib/upgrade/keep.d/tmip-cn': [0o644, 'files/lib/upgrade/keep.d/tmip-cn'],
  },
  'tmip-mlr': {
    '/usr/lib/tmip/tmip-mlr.cjs': [0o755, 'dist/tmip-mlr.cjs'],
    '/usr/lib/tmip/tmip-mlr-mqtt.cjs': [0o644, 'dist/tmip-mlr-mqtt.cjs'],
    '/usr/sbin/tmip-mlr': [0o755, 'files/usr/sbin/tmip-mlr'],
    '/etc/init.d/tmip-mlr': [0o755, 'files/etc/init.d/tmip-mlr'],
    '/etc/uci-defaults/90-tmip-mlr': [0o755, 'files/etc/uci-defaults/90-tmip-mlr'],
    '/usr/libexec/tmip/mlr-integrate': [0o755, 'files/usr/libexec/tmip/integrate'],
    '/lib/upgrade/keep.d/tmip-mlr': [0o644, 'files/lib/upgrade/keep.d/tmip-mlr'],
  },
  'luci-app-tmip': {
    '/www/luci-static/resources/view/tmip/settings.js': [
      0o644,
      'openwrt/luci/luci-app-tmip/htdocs/luci-static/resources/view/tmip/settings.js',
    ],
    '/www/luci-static/resources/view/tmip/status.js': [
      0o644,
      'openwrt/luci/luci-app-tmip/htdocs/luci-static/resources/view/tmip/status.js',
    ],
    '/usr/share/luci/menu.d/luci-app-tmip.json': [0o644, 'openwrt/luci/luci-app-tmip/root/usr/share/luci/menu.d/luci-app-tmip.json'],
    '/usr/share/rpcd/acl.d/luci-app-tmip.json': [0o644, 'openwrt/luci/luci-app-tmip/root/usr/share/rpcd/acl.d/luci-app-tmip.json'],
  },
};

test('data.tar.gz holds exactly the expected files and their directories, with install modes, owned 0:0', () => {
  for (const pkg of PACKAGES) {
    const u = ipk[pkg]!;
    const expected = EXPECT_FILES[pkg];
    const files = u.data.filter((e) => e.type !== 'd');
    const dirs = u.data.filter((e) => e.type === 'd');
    assert.deepEqual(
      files.map((e) => e.name).sort(),
      Object.keys(expected)
        .map((p) => `.${p}`)
        .sort(),
      `${pkg} files`,
    );
    assert.deepEqual(new Set(dirs.map((e) => e.name)), DIRS(...Object.keys(expected)), `${pkg} directories, each listed`);
    for (const e of u.data) {
      assert.deepEqual([e.uid, e.gid], [0, 0], `${pkg} ${e.name} is root's`);
      if (e.type === 'd') {
        assert.equal(e.mode, 0o755, `${pkg} ${e.name}`);
        continue;
      }
      assert.equal(e.type, '-', `${pkg} ${e.name} is a regular file`);
      const [mode, source] = expected[e.name.slice(1)]!;
      assert.equal(e.mode, mode, `${pkg} ${e.name} mode ${e.mode.toString(8)}, expected ${mode.toString(8)}`);
      assert.ok(
        fs.readFileSync(path.join(u.dataDir, e.name)).equals(fs.readFileSync(path.join(ROOT, source))),
        `${pkg} ${e.name} is ${source}`,
      );
    }
    assert.deepEqual(
      u.data.map((e) => e.name),
      [...u.data.map((e) => e.name)].sort(),
      'names sorted, as tar --sort=name',
    );
  }
});

test('the config in tmip-cn is the shipped files/etc/config/tmip, mode 0600, and its only conffile', () => {
  const u = ipk['tmip-cn']!;
  assert.equal(
    fs.readFileSync(path.join(u.dataDir, 'etc/config/tmip'), 'utf8'),
    fs.readFileSync(path.join(ROOT, 'files/etc/config/tmip'), 'utf8'),
  );
  assert.equal(u.data.find((e) => e.name === './etc/config/tmip')?.mode, 0o600);
  assert.ok(
    !fs.existsSync(path.join(ipk['tmip-mlr']!.dir, 'control/conffiles')),
    'tmip-mlr does not own the config (no file clash between the two)',
  );
  assert.ok(!ipk['tmip-mlr']!.data.some((e) => e.name === './etc/config/tmip'));
});

// ---------------------------------------------------------------------------------------------
// The feed Makefiles against a stub SDK

const STUB_RULES = `INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build_dir
STAGING_DIR:=$(TOPDIR)/staging_dir/target
TMP_DIR:=$(TOPDIR)/tmp
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
LN:=ln -sf
HOST_TAR:=tar
FPIC:=-fPIC
MAKE_VARS=CFLAGS="$(TARGET_CFLAGS)" CXXFLAGS="$(TARGET_CFLAGS)" LDFLAGS="-L$(STAGING_DIR)/usr/lib"
MAKE_FLAGS=CC="stub-target-gcc" CXX="stub-target-g++"
print-%:
\t@echo '$*=$($*)'
`;

// package.mk in miniature: BuildPackage reports each package's fields and makes an install-<name>
// target running its install section; 'prepare' and 'compile' run Build/Prepare and Build/Compile.
const STUB_PACKAGE = `PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
.PHONY: prepare compile
prepare:
\trm -rf $(PKG_BUILD_DIR)
\tmkdir -p $(PKG_BUILD_DIR)
\t$(Build/Prepare)
\t$(Build/Configure)
compile:
\t$(Build/Compile)

define BuildPackage
$$(eval DEPENDS:=)
$$(eval PKGARCH:=)
$$(eval SECTION:=)
$$(eval $$(Package/$(1)))
$$(info package $(1)|$$(PKGARCH)|$$(SECTION)|$$(strip $$(DEPENDS))|$(PKG_VERSION)-r$(PKG_RELEASE)|$$(strip $$(Package/$(1)/conffiles)))
install-$(1):
\trm -rf $(DESTDIR)/$(1)
\tmkdir -p $(DESTDIR)/$(1)
\t$$(call Package/$(1)/install,$(DESTDIR)/$(1))
endef
`;

// luci.mk in miniature: htdocs/ to /www, root/ to /, modes kept (cp -pR), as luci.mk installs them
const STUB_LUCI = `PKG_NAME?=$(notdir $(CURDIR))
$(info package $(PKG_NAME)|$(LUCI_PKGARCH)|luci|$(strip $(LUCI_DEPENDS))|$(PKG_VERSION)-r$(PKG_RELEASE)|)
install-$(PKG_NAME):
\trm -rf $(DESTDIR)/$(PKG_NAME)
\tmkdir -p $(DESTDIR)/$(PKG_NAME)/www
\tcp -pR ./htdocs/* $(DESTDIR)/$(PKG_NAME)/www/
\tcp -pR ./root/* $(DESTDIR)/$(PKG_NAME)/
`;

function stubSdk(): string {
  const top = tmpdir('sdk');
  fs.mkdirSync(path.join(top, 'include'));
  fs.mkdirSync(path.join(top, 'feeds/luci'), { recursive: true });
  fs.writeFileSync(path.join(top, 'rules.mk'), STUB_RULES);
  fs.writeFileSync(path.join(top, 'include/package.mk'), STUB_PACKAGE);
  fs.writeFileSync(path.join(top, 'feeds/luci/luci.mk'), STUB_LUCI);
  return top;
}

function make(top: string, dir: string, goals: string[], vars: Record<string, string> = {}) {
  const r = run('make', [
    '--no-print-directory',
    '-C',
    path.join(ROOT, dir),
    `TOPDIR=${top}`,
    ...Object.entries(vars).map(([k, v]) => `${k}=${v}`),
    ...goals,
  ]);
  assert.equal(r.code, 0, `make -C ${dir} ${goals.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  const info = new Map<string, { arch: string; section: string; depends: string[]; version: string; conffiles: string }>();
  for (const line of r.stdout.split('\n')) {
    const m = /^package ([\w-]+)\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|(.*)$/.exec(line);
    if (m)
      info.set(m[1]!, {
        arch: m[2]!,
        section: m[3]!,
        depends: m[4]!.split(/\s+/).filter((d) => d !== ''),
        version: m[5]!,
        conffiles: m[6]!,
      });
  }
  return { ...r, info };
}

/** Every file and directory under dir: relative path -> [type, mode, content or link target]. */
function tree(dir: string): Map<string, [string, number, string]> {
  const out = new Map<string, [string, number, string]>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const relp = '/' + path.relative(dir, p);
      const st = fs.lstatSync(p);
      if (e.isSymbolicLink()) out.set(relp, ['l', 0, fs.readlinkSync(p)]);
      else if (e.isDirectory()) {
        out.set(relp + '/', ['d', st.mode & 0o7777, '']);
        walk(p);
      } else out.set(relp, ['-', st.mode & 0o7777, fs.readFileSync(p).toString('base64')]);
    }
  };
  walk(dir);
  return out;
}

test('the feed Makefiles install the same files, modes and dependencies as the .ipk files', (t) => {
  if (!have('make')) {
    t.skip('make is not installed');
    return;
  }
  const top = stubSdk();
  const dest = path.join(top, 'dest');
  const tmip = make(top, 'openwrt/net/tmip', ['prepare', 'install-tmip-cn', 'install-tmip-mlr'], { DESTDIR: dest });
  const luci = make(top, 'openwrt/luci/luci-app-tmip', ['install-luci-app-tmip'], { DESTDIR: dest });
  for (const pkg of PACKAGES) {
    const meta = (pkg === 'luci-app-tmip' ? luci : tmip).info.get(pkg);
    assert.ok(meta, `${pkg} is built by its Makefile`);
    assert.equal(meta.arch, 'all', `${pkg} PKGARCH`);
    assert.equal(meta.section, ipk[pkg]!.control.Section);
    assert.equal(meta.version, PKG_VERSION);
    assert.deepEqual(
      ['libc', ...meta.depends.map((d) => d.replace(/^\+/, ''))],
      ipk[pkg]!.control.Depends!.split(', '),
      `${pkg}: Makefile DEPENDS = control Depends`,
    );
    assert.ok(
      meta.depends.every((d) => d.startsWith('+')),
      `${pkg} DEPENDS select their packages (+)`,
    );

    const fromMake = tree(path.join(dest, pkg));
    const fromIpk = tree(ipk[pkg]!.dataDir);
    const files = (m: Map<string, [string, number, string]>) => new Map([...m].filter(([, v]) => v[0] !== 'd'));
    const dirs = (m: Map<string, [string, number, string]>) =>
      [...m]
        .filter(([, v]) => v[0] === 'd')
        .map(([k]) => k)
        .sort();
    assert.deepEqual(files(fromMake), files(fromIpk), `${pkg}: same files, modes and contents`);
    assert.deepEqual(dirs(fromMake), dirs(fromIpk), `${pkg}: same directories`);
  }
  assert.equal(tmip.info.get('tmip-cn')!.conffiles, '/etc/config/tmip');
  assert.equal(tmip.info.get('tmip-mlr')!.conffiles, '');
  fs.rmSync(top, { recursive: true, force: true });
});

test('the tmip Makefile stops with a hint when the bundles are missing', (t) => {
  if (!have('make')) {
    t.skip('make is not installed');
    return;
  }
  // a copy of the feed in a repository without dist/
  const top = stubSdk();
  const repo = path.join(top, 'repo');
  fs.mkdirSync(path.join(repo, 'openwrt/net/tmip'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'openwrt/net/tmip/Makefile'), path.join(repo, 'openwrt/net/tmip/Makefile'));
  fs.cpSync(path.join(ROOT, 'files'), path.join(repo, 'files'), { recursive: true });
  const r = spawnSync('make', ['--no-print-directory', '-C', path.join(repo, 'openwrt/net/tmip'), `TOPDIR=${top}`, 'prepare'], {
    encoding: 'utf8',
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /run 'bash build\.sh' there first/);
  fs.rmSync(top, { recursive: true, force: true });
});

test('node-tmip-packet: our addon cross-built by npm with the target settings, installed where Node.js finds it', (t) => {
  if (!have('make')) {
    t.skip('make is not installed');
    return;
  }
  const pkgDir = 'openwrt/lang/node-tmip-packet';
  const top = stubSdk();
  const cpus: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64', i386: 'ia32', arm: 'arm' };
  for (const [arch, cpu] of Object.entries(cpus)) {
    assert.match(make(top, pkgDir, ['print-NODEJS_CPU'], { ARCH: arch }).stdout, new RegExp(`^NODEJS_CPU=${cpu}$`, 'm'));
  }
  const meta = make(top, pkgDir, ['print-PKG_BUILD_DEPENDS']);
  assert.match(meta.stdout, /^PKG_BUILD_DEPENDS=node\/host$/m);
  assert.deepEqual(meta.info.get('node-tmip-packet')?.depends, ['+node'], 'no libpcap');

  // prepare copies the addon's sources from this repository's native/packet
  make(top, pkgDir, ['prepare']);
  const build = path.join(top, 'build_dir', `node-tmip-packet-${VERSION}`);
  for (const f of ['package.json', 'binding.gyp', 'install.js', 'index.js', 'packet.c'])
    assert.ok(fs.readFileSync(path.join(build, f)).equals(fs.readFileSync(path.join(ROOT, 'native/packet', f))), f);

  // the compile step, printed (make -n): npm in the build directory with the target toolchain
  const dry = make(top, pkgDir, ['-n', 'compile'], { ARCH: 'aarch64' });
  const cmd = dry.stdout.replace(/\\\n/g, ' ');
  for (const s of [
    'CC="stub-target-gcc"',
    'CXX="stub-target-g++"',
    'npm_config_arch=arm64',
    'npm_config_target_arch=arm64',
    'npm_config_build_from_source=true',
    `npm_config_nodedir=${top}/staging_dir/target/usr/`,
    'npm install',
    '-fPIC',
  ]) {
    assert.ok(cmd.includes(s), `the compile step has ${s}:\n${cmd}`);
  }
  assert.match(cmd, new RegExp(`cd ${build};`));

  // install from the build directory with a (stand-in) compiled addon
  fs.mkdirSync(path.join(build, 'build/Release'), { recursive: true });
  fs.writeFileSync(path.join(build, 'build/Release/tmip_packet.node'), 'not really an ELF file');
  const dest = path.join(top, 'dest');
  make(top, pkgDir, ['install-node-tmip-packet'], { DESTDIR: dest });
  const root = path.join(dest, 'node-tmip-packet');
  const installed = tree(root);
  assert.deepEqual(installed.get('/usr/lib/node_modules/tmip-packet'), ['l', 0, '../node/tmip-packet']);
  for (const f of [
    '/usr/lib/node/tmip-packet/package.json',
    '/usr/lib/node/tmip-packet/index.js',
    '/usr/lib/node/tmip-packet/build/Release/tmip_packet.node',
  ])
    assert.ok(installed.has(f), f);
  assert.ok(!installed.has('/usr/lib/node/tmip-packet/packet.c'), 'no sources on the router');

  // the bundle (in /usr/lib/tmip) loads tmip-packet with createRequire: Node's own lookup reaches
  // /usr/lib/node_modules/tmip-packet even without OpenWrt's extra search path /usr/lib/node
  fs.mkdirSync(path.join(root, 'usr/lib/tmip'), { recursive: true });
  const probe = path.join(root, 'usr/lib/tmip/probe.mjs');
  fs.writeFileSync(
    probe,
    "import { createRequire } from 'node:module';\nconsole.log(createRequire(import.meta.url).resolve('tmip-packet'));\n",
  );
  const r = run(process.execPath, [probe], { cwd: os.tmpdir(), env: { PATH: process.env.PATH } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.realpathSync(r.stdout.trim()), fs.realpathSync(path.join(root, 'usr/lib/node/tmip-packet/index.js')));
  fs.rmSync(top, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

function findOpkg(): string | undefined {
  if (process.env.OPKG) return process.env.OPKG;
  for (const name of ['opkg', 'opkg-cl']) {
    const r = run('sh', ['-c', `command -v ${name}`]);
    if (r.code === 0) return r.stdout.trim();
  }
  return undefined;
}

test('opkg installs and removes the packages in an offline root, running their scripts', (t) => {
  const opkg = findOpkg();
  if (!opkg) {
    t.skip('no opkg here (set OPKG=/path/to/opkg-cl to run this)');
    return;
  }
  const root = tmpdir('opkg-root');
  for (const d of ['lib', 'var/lock', 'usr/lib/opkg/info']) fs.mkdirSync(path.join(root, d), { recursive: true });
  const conf = path.join(root, 'opkg.conf');
  fs.writeFileSync(conf, 'dest root /\narch all 1\narch noarch 1\n');
  // what the packages depend on, as if installed
  const deps = [...new Set(Object.values(EXPECT_DEPENDS).flat())].filter((d) => !(PACKAGES as readonly string[]).includes(d));
  fs.writeFileSync(
    path.join(root, 'usr/lib/opkg/status'),
    deps.map((d) => `Package: ${d}\nVersion: 1\nStatus: install user installed\nArchitecture: all\nInstalled-Time: 1\n\n`).join(''),
  );
  for (const d of deps) fs.writeFileSync(path.join(root, `usr/lib/opkg/info/${d}.list`), '');
  fs.writeFileSync(
    path.join(root, 'lib/functions.sh'),
    'default_postinst() { echo "postinst $1" >> "$IPKG_INSTROOT/calls"; }\ndefault_prerm() { echo "prerm $1" >> "$IPKG_INSTROOT/calls"; }\n',
  );
  const env = { ...process.env, IPKG_INSTROOT: root };
  const base = ['--offline-root', root, '-f', conf, '--force-postinstall'];
  const inst = run(opkg, [...base, 'install', ...PACKAGES.map((p) => fileOf(OUT, p))], { env });
  assert.equal(inst.code, 0, inst.stdout + inst.stderr);
  for (const pkg of PACKAGES) {
    for (const f of Object.keys(EXPECT_FILES[pkg])) assert.ok(fs.existsSync(path.join(root, f)), `${pkg} installed ${f}`);
  }
  assert.equal(fs.statSync(path.join(root, 'etc/config/tmip')).mode & 0o777, 0o600);
  const status = fs.readFileSync(path.join(root, 'usr/lib/opkg/status'), 'utf8');
  assert.match(
    status,
    /Package: tmip-cn\nVersion: [^\n]+\nDepends: [^\n]+\nStatus: install user installed\nArchitecture: all\nConffiles:\n \/etc\/config\/tmip [0-9a-f]+\n/,
  );
  const calls = fs.readFileSync(path.join(root, 'calls'), 'utf8');
  for (const pkg of PACKAGES)
    assert.ok(
      calls.includes(`postinst ${root}/usr/lib/opkg/info/${pkg}.postinst`) ||
        calls.includes(`postinst ${root}//usr/lib/opkg/info/${pkg}.postinst`),
      calls,
    );
  const rm = run(opkg, [...base, 'remove', ...[...PACKAGES].reverse()], { env });
  assert.equal(rm.code, 0, rm.stdout + rm.stderr);
  for (const f of ['tmip-cn.cjs', 'tmip-cn-mqtt.cjs', 'tmip-mlr.cjs', 'tmip-mlr-mqtt.cjs'])
    assert.ok(!fs.existsSync(path.join(root, 'usr/lib/tmip', f)), f);
  assert.match(fs.readFileSync(path.join(root, 'calls'), 'utf8'), /prerm .*tmip-cn\.prerm/);
  fs.rmSync(root, { recursive: true, force: true });
});
