// SPDX-License-Identifier: GPL-2.0-only
// tmip's firewall (fw4) and dnsmasq defaults on a stock OpenWrt router: files/usr/libexec/tmip/integrate,
// installed as cn-integrate and mlr-integrate, run against copies of stock /etc/config/firewall, dhcp
// and network (test/fixtures/openwrt-24.10) through a test-only stand-in of the `uci` tool
// (test/support/uci-cli.ts); the results are read back with tmip's UCI parser, and removal must give
// back the stock files section for section, option for option.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportUci, parseUci, type UciPackage, type UciSection } from '../../src/proto/uci.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPT = path.join(ROOT, 'files/usr/libexec/tmip/integrate');
const STOCK = path.join(ROOT, 'test/fixtures/openwrt-24.10');
const UCI_CLI = path.join(ROOT, 'build/test/support/uci-cli.js');

const CN_CONFIG = `
config cn 'ap1'
	option mlr '10.200.0.2'
	option network_name 'campus'
	option cn_network 'wan'
	option mobile_network 'lan'
	list addr_pool 'br-lan * *'
	list addr_pool '10.20.0.0/16 10.20.1.0 10.20.1.255'
	option tunnel_prefix 'tmip0'
	list tunnel_type 'ipip'
	list tunnel_type 'gre'
	list tunnel_type 'vxlan'
`;

interface Router {
  dir: string;
  conf: string;
  run(cmd: string, ...args: string[]): { code: number | null; stdout: string; stderr: string };
  read(pkg: string): UciPackage;
  cleanup(): void;
}

/** A router's /etc/config (stock firewall, dhcp, network and the given tmip) and /usr/libexec/tmip. */
function router(tmip: string): Router {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-integrate-'));
  const conf = path.join(dir, 'config');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(conf);
  fs.mkdirSync(bin);
  for (const f of ['firewall', 'dhcp', 'network']) fs.copyFileSync(path.join(STOCK, f), path.join(conf, f));
  fs.writeFileSync(path.join(conf, 'tmip'), tmip);
  fs.writeFileSync(path.join(bin, 'uci'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(UCI_CLI)} "$@"\n`, {
    mode: 0o755,
  });
  // installed under the names the packages give it
  for (const name of ['cn-integrate', 'mlr-integrate']) fs.copyFileSync(SCRIPT, path.join(bin, name));
  const env = { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, TMIP_UCI_CONFDIR: conf, TMIP_NO_RELOAD: '1' };
  return {
    dir,
    conf,
    run(cmd, ...args) {
      const r = spawnSync('sh', [path.join(bin, cmd), ...args], { encoding: 'utf8', env, timeout: 60_000 });
      return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    },
    read(pkg) {
      const r = parseUci(fs.readFileSync(path.join(conf, pkg), 'utf8'));
      if (!r.ok) assert.fail(`${pkg} does not parse after the script:\n${r.error}`);
      return r.value;
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

function stock(pkg: string): UciPackage {
  const r = parseUci(fs.readFileSync(path.join(STOCK, pkg), 'utf8'));
  if (!r.ok) assert.fail(r.error);
  return r.value;
}

function named(p: UciPackage, name: string): UciSection | undefined {
  return p.sections.find((s) => !s.anonymous && s.name === name);
}

function options(s: UciSection | undefined): Record<string, string | string[]> {
  assert.ok(s, 'section exists');
  return Object.fromEntries(s.options);
}

function ok(r: { code: number | null; stdout: string; stderr: string }): void {
  assert.equal(r.code, 0, `exit status ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

test('cn-integrate add: a tmip zone for the tunnels, forwardings, tunnel rules, unmasqueraded cells, dnsmasq off the mobile interface', () => {
  const r = router(CN_CONFIG);
  try {
    ok(r.run('cn-integrate', 'add'));
    const fw = r.read('firewall');
    assert.deepEqual(options(named(fw, 'tmip')), {
      name: 'tmip',
      device: ['tmip0+'],
      input: 'REJECT',
      output: 'ACCEPT',
      forward: 'REJECT',
      family: 'ipv4',
    });
    assert.equal(named(fw, 'tmip')?.type, 'zone');
    assert.ok(!named(fw, 'tmip')?.options.has('masq'), 'the tmip zone never masquerades');
    for (const zone of ['lan', 'wan']) {
      assert.equal(named(fw, `tmip_from_${zone}`)?.type, 'forwarding');
      assert.deepEqual(options(named(fw, `tmip_from_${zone}`)), { src: zone, dest: 'tmip' });
      assert.deepEqual(options(named(fw, `tmip_to_${zone}`)), { src: 'tmip', dest: zone });
    }
    assert.deepEqual(options(named(fw, 'tmip_vxlan')), {
      name: 'Allow-tmip-vxlan',
      src: 'wan',
      proto: 'udp',
      dest_port: '4789',
      family: 'ipv4',
      target: 'ACCEPT',
    });
    assert.deepEqual(options(named(fw, 'tmip_ipip')), {
      name: 'Allow-tmip-ipip',
      src: 'wan',
      proto: '4',
      family: 'ipv4',
      target: 'ACCEPT',
    });
    assert.deepEqual(options(named(fw, 'tmip_gre')), { name: 'Allow-tmip-gre', src: 'wan', proto: '47', family: 'ipv4', target: 'ACCEPT' });
    assert.equal(named(fw, 'tmip_nonat')?.type, 'nat');
    assert.deepEqual(options(named(fw, 'tmip_nonat')), {
      name: 'tmip-cells-unmasqueraded',
      src: 'wan',
      src_ip: ['192.168.1.0/24', '10.20.0.0/16'],
      proto: 'all',
      family: 'ipv4',
      target: 'ACCEPT',
    });
    // everything stock is still there, untouched (the wan zone keeps masquerading other traffic)
    const added = fw.sections.filter((s) => s.name?.startsWith('tmip'));
    assert.equal(added.length, 9);
    assert.equal(exportUci({ sections: fw.sections.filter((s) => !added.includes(s)) }), exportUci(stock('firewall')));

    const dhcp = r.read('dhcp');
    assert.deepEqual(options(named(dhcp, 'lan')), { ...options(named(stock('dhcp'), 'lan')), ignore: '1', tmip_ignore: '1' });
    assert.deepEqual(options(named(dhcp, 'wan')), options(named(stock('dhcp'), 'wan')));

    // a second run changes nothing
    const before = [fs.readFileSync(path.join(r.conf, 'firewall'), 'utf8'), fs.readFileSync(path.join(r.conf, 'dhcp'), 'utf8')];
    ok(r.run('cn-integrate', 'add'));
    assert.deepEqual([fs.readFileSync(path.join(r.conf, 'firewall'), 'utf8'), fs.readFileSync(path.join(r.conf, 'dhcp'), 'utf8')], before);

    // removal gives the stock configuration back
    ok(r.run('cn-integrate', 'remove'));
    assert.equal(exportUci(r.read('firewall')), exportUci(stock('firewall')));
    assert.equal(exportUci(r.read('dhcp')), exportUci(stock('dhcp')));
    assert.ok(!fs.existsSync(path.join(r.conf, '.uci-staged', 'firewall')), 'committed, nothing left staged');
  } finally {
    r.cleanup();
  }
});

test('cn-integrate follows the config: devices instead of networks, only the chosen tunnel types, every prefix; keeps an operator ignore', () => {
  const r = router(`
config cn
	option mlr '10.200.0.2'
	option network_name 'campus'
	option cn_if 'eth1'
	option mobile_if 'br-lan'
	option tunnel_prefix 'tmipa'
	list tunnel_type 'vxlan'

config cn
	option enabled '0'
	option tunnel_prefix 'off'
	list tunnel_type 'gre'

config cn
	option mlr '10.200.0.2'
	option network_name 'campus'
	option cn_if 'eth1'
	option mobile_if 'br-lan'
	option tunnel_prefix 'tmipb'
	list tunnel_type 'vxlan'
`);
  try {
    fs.writeFileSync(
      path.join(r.conf, 'dhcp'),
      fs.readFileSync(path.join(r.conf, 'dhcp'), 'utf8').replace("option interface 'lan'", "option interface 'lan'\n\toption ignore '1'"),
    );
    const dhcpBefore = exportUci(r.read('dhcp'));
    ok(r.run('cn-integrate', 'add'));
    const fw = r.read('firewall');
    assert.deepEqual(named(fw, 'tmip')?.options.get('device'), ['tmipa+', 'tmipb+'], 'each enabled instance, disabled ones not');
    assert.ok(named(fw, 'tmip_vxlan'));
    assert.equal(named(fw, 'tmip_gre'), undefined, 'gre is not configured on an enabled instance');
    assert.equal(named(fw, 'tmip_ipip'), undefined);
    assert.equal(named(fw, 'tmip_nonat'), undefined, 'no pool: no cells of ours to exempt');
    assert.deepEqual(options(named(fw, 'tmip_from_wan')), { src: 'wan', dest: 'tmip' }, 'eth1 is the wan network');
    assert.ok(named(fw, 'tmip_to_lan'), 'br-lan is the lan network');
    assert.equal(exportUci(r.read('dhcp')), dhcpBefore, 'dnsmasq was already off on lan: nothing to do');
    ok(r.run('cn-integrate', 'remove'));
    assert.equal(exportUci(r.read('dhcp')), dhcpBefore, "the operator's ignore stays");
    assert.equal(exportUci(r.read('firewall')), exportUci(stock('firewall')));
  } finally {
    r.cleanup();
  }
});

test('mlr-integrate: the MLR port and TLS port from the backbone zone, taken out again on removal', () => {
  const r = router(`
config mlr
	option network_name 'campus'
	option port '6554'
	option tls_port '6555'
`);
  try {
    ok(r.run('mlr-integrate', 'add'));
    const fw = r.read('firewall');
    assert.deepEqual(options(named(fw, 'tmip_mlr')), {
      name: 'Allow-tmip-MLR',
      src: 'wan',
      proto: 'tcp',
      family: 'ipv4',
      target: 'ACCEPT',
      dest_port: ['6554', '6555'],
    });
    assert.equal(named(fw, 'tmip'), undefined, 'an MLR-only router gets no tunnel zone');
    assert.equal(exportUci(r.read('dhcp')), exportUci(stock('dhcp')), 'nor is dnsmasq touched');
    ok(r.run('cn-integrate', 'remove'));
    assert.ok(named(r.read('firewall'), 'tmip_mlr'), "removing tmip-cn leaves the MLR's rule");
    ok(r.run('mlr-integrate', 'remove'));
    assert.equal(exportUci(r.read('firewall')), exportUci(stock('firewall')));
  } finally {
    r.cleanup();
  }
});

test("a fresh install: the packages' uci-defaults with the shipped /etc/config/tmip on a stock router, and removal", () => {
  const r = router(fs.readFileSync(path.join(ROOT, 'files/etc/config/tmip'), 'utf8'));
  try {
    // the uci-defaults as installed, with this router's paths instead of /etc/config and /usr/libexec/tmip
    for (const name of ['90-tmip-cn', '90-tmip-mlr']) {
      const text = fs
        .readFileSync(path.join(ROOT, 'files/etc/uci-defaults', name), 'utf8')
        .replaceAll('/etc/config/', `${r.conf}/`)
        .replaceAll('/usr/libexec/tmip/', `${path.join(r.dir, 'bin')}/`);
      fs.writeFileSync(path.join(r.dir, name), text);
      ok(r.run(`../${name}`));
    }
    const fw = r.read('firewall');
    assert.deepEqual(named(fw, 'tmip')?.options.get('device'), ['tmip0+']);
    for (const s of ['tmip_from_lan', 'tmip_to_lan', 'tmip_from_wan', 'tmip_to_wan', 'tmip_vxlan', 'tmip_ipip', 'tmip_gre', 'tmip_mlr'])
      assert.ok(named(fw, s), `firewall.${s}`);
    assert.deepEqual(named(fw, 'tmip_nonat')?.options.get('src_ip'), ['192.168.1.0/24'], "br-lan's subnet: the shipped pool");
    assert.deepEqual(named(fw, 'tmip_mlr')?.options.get('dest_port'), ['6554']);
    assert.equal(named(r.read('dhcp'), 'lan')?.options.get('ignore'), '1', 'dnsmasq off the mobile network');
    assert.equal(r.read('tmip').sections.filter((s) => s.type === 'mlr').length, 1, "tmip-mlr's defaults added its section");
    // removing both packages gives the stock firewall and dhcp back
    ok(r.run('cn-integrate', 'remove'));
    ok(r.run('mlr-integrate', 'remove'));
    assert.equal(exportUci(r.read('firewall')), exportUci(stock('firewall')));
    assert.equal(exportUci(r.read('dhcp')), exportUci(stock('dhcp')));
  } finally {
    r.cleanup();
  }
});

test('the uci stand-in: get, set, lists, delete, show and commit as the scripts use them', () => {
  const r = router('');
  try {
    const uci = (...args: string[]) =>
      spawnSync(process.execPath, [UCI_CLI, ...args], { encoding: 'utf8', env: { ...process.env, TMIP_UCI_CONFDIR: r.conf } });
    assert.equal(uci('get', 'firewall.@zone[1].name').stdout, 'wan\n');
    assert.equal(uci('get', 'firewall.@zone[-1].network').stdout, 'wan wan6\n');
    assert.equal(uci('-q', 'get', 'firewall.@zone[2]').status, 1);
    assert.equal(uci('get', 'firewall.nothing').stderr, 'uci: Entry not found\n');
    assert.equal(uci('set', 'dhcp.lan.ignore=1').status, 0);
    assert.equal(uci('get', 'dhcp.lan.ignore').stdout, '1\n', 'staged changes are seen');
    assert.equal(
      r
        .read('dhcp')
        .sections.find((s) => s.name === 'lan')
        ?.options.get('ignore'),
      undefined,
      'but not written before commit',
    );
    assert.equal(uci('commit', 'dhcp').status, 0);
    assert.equal(
      r
        .read('dhcp')
        .sections.find((s) => s.name === 'lan')
        ?.options.get('ignore'),
      '1',
    );
    assert.match(uci('show', 'firewall').stdout, /^firewall\.@zone\[1\]\.network='wan' 'wan6'$/m);
    assert.equal(uci('set', 'firewall.x.y=1').status, 1, 'no such section');
  } finally {
    r.cleanup();
  }
});
