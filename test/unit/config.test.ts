// SPDX-License-Identifier: GPL-2.0-only
// Unit tests for the daemons' config model (src/core/config.ts): a complete CN config, defaults,
// every required option missing, bad values with their messages, pools, the MLR address, the MLR
// section, and the commented default /etc/config/tmip shipped in files/.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  checkIfname,
  parseBool,
  parseCnConfig,
  parseMlrAddress,
  parseMlrConfig,
  parsePoolSpec,
  type CnConfig,
  type MlrConfig,
} from '../../src/core/config.js';
import { parseCidr, parseIPv4 } from '../../src/core/ip.js';
import type { Result } from '../../src/core/result.js';
import { exportUci, parseUci, type UciPackage } from '../../src/proto/uci.js';

function uci(text: string): UciPackage {
  const r = parseUci(text);
  if (!r.ok) assert.fail(`fixture does not parse:\n${r.error}`);
  return r.value;
}

/** A `config cn` section on line 1 with the given option lines on lines 2, 3, ... */
function cnText(lines: string[], header = 'config cn'): string {
  return [header, ...lines.map((l) => `\t${l}`)].join('\n') + '\n';
}

const REQUIRED = ["option mlr '192.0.2.1'", "option network_name 'campus'", "option cn_if 'eth0'", "option mobile_if 'br-lan'"];

function value<T>(r: Result<T>): T {
  if (!r.ok) assert.fail(`unexpected error:\n${r.error}`);
  return r.value;
}

function errorOf<T>(r: Result<T>): string {
  if (r.ok) assert.fail('expected an error');
  return r.error;
}

function cn(lines: string[], header?: string): Result<CnConfig> {
  return parseCnConfig(uci(cnText(lines, header)));
}

const ip = (s: string): number => value(parseIPv4(s));

const FULL = `package tmip

config cn 'main'
\toption enabled '1'
\toption mlr 'mlr.campus.example:7000'
\toption network_name 'campus'
\toption cn_name 'Library AP: 2nd floor'
\toption cn_if 'eth0.10'
\toption mobile_if 'br-lan'
\tlist addr_pool '10.20.0.0/16 10.20.1.0 10.20.1.255'
\tlist addr_pool 'br-guest * *'
\tlist dns_server '10.0.0.53'
\tlist dns_server '9.9.9.9'
\toption domain 'campus.lan'
\toption lease_time '7200'
\toption tunnel_prefix 'tm'
\tlist tunnel_type 'gre'
\tlist tunnel_type 'ipip'
\toption mss_clamp 'off'
\toption debug_level '5'
\toption status_file '/var/run/tmip/cn.status'
\toption new_station_rate '50'

config mlr 'registry'
\toption network_name 'campus'
\toption port '7000'
\toption listen '10.0.0.1'
\toption debug_level '3'
\toption state_file '/etc/tmip/mlr.state'
\toption offer_hold '30'
\toption lease_grace '120'
\toption max_offers '128'
\toption decline_quarantine '300'
\tlist tunnel_type 'vxlan'
\toption enabled 'no'
\toption mqtt 'mqtts://broker.campus.example'
\toption tls_port '6555'
\toption tls_cert '/etc/tmip/mlr.pem'
\toption tls_key '/etc/tmip/mlr.key'

config key
\toption cn 'Library AP: 2nd floor'
\toption secret '00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff'

`;

test('a complete CN config parses into the model', () => {
  const cfg = value(parseCnConfig(uci(FULL)));
  assert.deepEqual(cfg, {
    networkName: 'campus',
    cnName: 'Library AP: 2nd floor',
    mlr: { scheme: 'tcp', host: 'mlr.campus.example', port: 7000 },
    tls: {},
    mqttUsername: 'Library AP: 2nd floor',
    cnIf: 'eth0.10',
    mobileIf: 'br-lan',
    pools: [
      {
        source: { kind: 'cidr', cidr: value(parseCidr('10.20.0.0/16')) },
        first: ip('10.20.1.0'),
        last: ip('10.20.1.255'),
        text: '10.20.0.0/16 10.20.1.0 10.20.1.255',
      },
      { source: { kind: 'interface', ifname: 'br-guest' }, first: null, last: null, text: 'br-guest * *' },
    ],
    dnsServers: [ip('10.0.0.53'), ip('9.9.9.9')],
    domain: 'campus.lan',
    leaseTime: 7200,
    tunnelPrefix: 'tm',
    tunnelTypes: ['gre', 'ipip'],
    mssClamp: false,
    tunnelLinger: 60,
    debugLevel: 5,
    statusFile: '/var/run/tmip/cn.status',
    hostapd: true,
    requireAssociation: true,
    newStationRate: 50,
    enabled: true,
    warnings: [],
  } satisfies CnConfig);
});

test('a complete MLR config parses into the model', () => {
  const cfg = value(parseMlrConfig(uci(FULL)));
  assert.deepEqual(cfg, {
    networkName: 'campus',
    port: 7000,
    listen: '10.0.0.1',
    debugLevel: 3,
    stateFile: '/etc/tmip/mlr.state',
    offerHold: 30,
    leaseGrace: 120,
    maxOffers: 128,
    declineQuarantine: 300,
    tunnelTypes: ['vxlan'],
    enabled: false,
    auth: true,
    keys: [{ cn: 'Library AP: 2nd floor', secret: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' }],
    mqtt: { scheme: 'mqtts', host: 'broker.campus.example', port: 8883 },
    mqttUsername: 'tmip-mlr',
    tls: { port: 6555, cert: '/etc/tmip/mlr.pem', key: '/etc/tmip/mlr.key' },
    warnings: [],
  } satisfies MlrConfig);
});

test('defaults: only the required options given', () => {
  const cfg = value(cn(REQUIRED));
  assert.deepEqual(cfg, {
    networkName: 'campus',
    cnName: 'cn',
    mlr: { scheme: 'tcp', host: '192.0.2.1', port: 6554 },
    tls: {},
    mqttUsername: 'cn',
    cnIf: 'eth0',
    mobileIf: 'br-lan',
    pools: [],
    dnsServers: [],
    leaseTime: 3600,
    tunnelPrefix: 'tmip0',
    tunnelTypes: ['ipip', 'gre', 'vxlan'],
    mssClamp: true,
    tunnelLinger: 60,
    debugLevel: 2,
    hostapd: true,
    requireAssociation: true,
    newStationRate: 20,
    enabled: true,
    warnings: [],
  } satisfies CnConfig);
  assert.equal('domain' in cfg, false);
  assert.equal('statusFile' in cfg, false);
  // a named section's name is the default cn_name
  assert.equal(value(cn(REQUIRED, "config cn 'ap_kitchen'")).cnName, 'ap_kitchen');
  const mlr = value(parseMlrConfig(uci("config mlr\n\toption network_name 'campus'\n\toption auth '0'\n")));
  assert.deepEqual(mlr, {
    auth: false,
    keys: [],
    mqttUsername: 'tmip-mlr',
    networkName: 'campus',
    port: 6554,
    listen: '0.0.0.0',
    debugLevel: 2,
    offerHold: 60,
    leaseGrace: 60,
    maxOffers: 256,
    declineQuarantine: 600,
    tunnelTypes: ['ipip', 'gre', 'vxlan'],
    enabled: true,
    warnings: [],
  } satisfies MlrConfig);
});

test('each required option missing is an error naming the section, option and the fix', () => {
  const expected: Record<string, RegExp> = {
    mlr: /expected 'host' or 'host:port'.*e\.g\. '192\.0\.2\.1:6554'/,
    network_name: /expected 1\.\.64 printable characters without spaces/,
    cn_if:
      /expected option cn_if with a Linux interface name, e\.g\. 'eth0', or option cn_network with a logical interface of \/etc\/config\/network, e\.g\. 'wan'/,
    mobile_if: /expected option mobile_if with a Linux interface name, e\.g\. 'br-lan', or option mobile_network .* e\.g\. 'lan'/,
  };
  for (const [i, line] of REQUIRED.entries()) {
    const opt = line.split(' ')[1]!;
    const e = errorOf(cn(REQUIRED.filter((_, j) => j !== i)));
    assert.equal(e.split('\n').length, 1, e);
    assert.match(e, new RegExp(`^tmip\\.@cn\\[0\\]\\.${opt}: required option is missing \\(section begins on line 1\\); `));
    assert.match(e, expected[opt]!);
  }
  const all = errorOf(cn([]));
  assert.deepEqual(
    all.split('\n').map((l) => l.replace(/:.*/, '')),
    ['tmip.@cn[0].network_name', 'tmip.@cn[0].mlr', 'tmip.@cn[0].cn_if', 'tmip.@cn[0].mobile_if'],
  );
});

test('bad values: each message names the option, its line, what was found and what is expected', () => {
  const cases: Array<[string, string]> = [
    ["option lease_time '10x'", "tmip.@cn[0].lease_time (line 6): '10x' is not a number of seconds; expected an integer 60..31536000"],
    ["option lease_time '59'", "tmip.@cn[0].lease_time (line 6): '59' is out of range; expected an integer 60..31536000"],
    ["option lease_time '31536001'", "tmip.@cn[0].lease_time (line 6): '31536001' is out of range; expected an integer 60..31536000"],
    ["option lease_time '-5'", "tmip.@cn[0].lease_time (line 6): '-5' is not a number of seconds; expected an integer 60..31536000"],
    ["option debug_level '8'", "tmip.@cn[0].debug_level (line 6): '8' is out of range; expected an integer 0..7"],
    ["option debug_level 'high'", "tmip.@cn[0].debug_level (line 6): 'high' is not a whole number; expected an integer 0..7"],
    ["option new_station_rate '0'", "tmip.@cn[0].new_station_rate (line 6): '0' is out of range; expected an integer 1..10000"],
    [
      "option new_station_rate 'fast'",
      "tmip.@cn[0].new_station_rate (line 6): 'fast' is not a number of new stations per second; expected an integer 1..10000",
    ],
    [
      "option mss_clamp 'maybe'",
      "tmip.@cn[0].mss_clamp (line 6): 'maybe' is not a boolean; expected '1'/'0', 'yes'/'no', 'true'/'false', 'on'/'off' or 'enabled'/'disabled'",
    ],
    [
      "option enabled 'True'",
      "tmip.@cn[0].enabled (line 6): 'True' is not a boolean; expected '1'/'0', 'yes'/'no', 'true'/'false', 'on'/'off' or 'enabled'/'disabled'",
    ],
    [
      "option tunnel_prefix 'tmip_abc'",
      "tmip.@cn[0].tunnel_prefix (line 6): 'tmip_abc' is longer than 7 characters; expected 1..7 characters of a-z, 0-9 and '_' starting with a letter (devices are named prefix + pair id in at most 15 bytes), e.g. 'tmip0'",
    ],
    [
      "option tunnel_prefix '0tm'",
      "tmip.@cn[0].tunnel_prefix (line 6): '0tm' is not a valid tunnel prefix; expected 1..7 characters of a-z, 0-9 and '_' starting with a letter (devices are named prefix + pair id in at most 15 bytes), e.g. 'tmip0'",
    ],
    ["list tunnel_type 'ipsec'", "tmip.@cn[0].tunnel_type (line 6): 'ipsec' is not a tunnel type; expected one of ipip, gre, vxlan"],
    [
      "list dns_server '8.8.8'",
      "tmip.@cn[0].dns_server (line 6): '8.8.8' is not an IPv4 address; expected an IPv4 address a.b.c.d (one per 'list dns_server')",
    ],
    [
      "option domain 'campus..lan'",
      "tmip.@cn[0].domain (line 6): 'campus..lan' is not a DNS domain; expected labels of letters, digits and '-' separated by dots, e.g. 'campus.lan'",
    ],
    [
      "option status_file 'cn.status'",
      "tmip.@cn[0].status_file (line 6): 'cn.status' is not an absolute path; expected an absolute path, e.g. '/var/run/tmip/cn.status'",
    ],
    [
      "option cn_name '" + 'x'.repeat(65) + "'",
      `tmip.@cn[0].cn_name (line 6): '${'x'.repeat(65).slice(0, 77)}' is longer than 64 characters; expected 1..64 letters, digits, spaces and . _ - : (not starting or ending with a space), e.g. 'Library 2nd floor'`,
    ],
    [
      "option cn_name 'ap/1'",
      "tmip.@cn[0].cn_name (line 6): 'ap/1' contains a character not allowed in a CN name; expected 1..64 letters, digits, spaces and . _ - : (not starting or ending with a space), e.g. 'Library 2nd floor'",
    ],
    [
      "option cn_name ' ap1'",
      "tmip.@cn[0].cn_name (line 6): ' ap1' contains a character not allowed in a CN name; expected 1..64 letters, digits, spaces and . _ - : (not starting or ending with a space), e.g. 'Library 2nd floor'",
    ],
    [
      "option secret 'abc'",
      "tmip.@cn[0].secret (line 6): a value of 3 characters is not 64 hex digits; expected the 32-byte key that 'tmip-mlr keygen NAME' prints",
    ],
    [
      `option secret '${'g'.repeat(64)}'`,
      "tmip.@cn[0].secret (line 6): the value is not 64 hex digits; expected the 32-byte key that 'tmip-mlr keygen NAME' prints",
    ],
  ];
  for (const [line, message] of cases) assert.equal(errorOf(cn([...REQUIRED, line])), message, line);

  // the same problems in the required options
  const replace = (opt: string, bad: string): string =>
    errorOf(cn(REQUIRED.map((l) => (l.split(' ')[1] === opt ? `option ${opt} '${bad}'` : l))));
  assert.equal(
    replace('network_name', 'my campus'),
    "tmip.@cn[0].network_name (line 3): 'my campus' contains spaces or non-printable characters; expected 1..64 printable characters without spaces, the same on every CN and the MLR, e.g. 'campus'",
  );
  assert.match(
    replace('network_name', 'n'.repeat(65)),
    /^tmip\.@cn\[0\]\.network_name \(line 3\): '.*' is longer than 64 characters; expected/,
  );
  assert.equal(
    replace('cn_if', 'eth0:1'),
    "tmip.@cn[0].cn_if (line 4): 'eth0:1' contains a character not allowed in interface names; expected a Linux interface name of 1..15 bytes without '/', ':' or spaces, e.g. 'br-lan'",
  );
  assert.match(
    replace('mobile_if', 'wlan0-very-long-name'),
    /^tmip\.@cn\[0\]\.mobile_if \(line 5\): 'wlan0-very-long-name' is longer than 15 bytes; expected a Linux interface name/,
  );
  assert.match(
    replace('mlr', '10.0.0.300'),
    /^tmip\.@cn\[0\]\.mlr \(line 2\): '10\.0\.0\.300': '10\.0\.0\.300' is not an IPv4 address; expected 'host' or 'host:port'/,
  );
  assert.match(
    replace('mlr', 'mlr:0'),
    /^tmip\.@cn\[0\]\.mlr \(line 2\): 'mlr:0' has port 0, out of range; expected 'host' or 'host:port'/,
  );
});

test('a value with control characters or quotes is shown escaped in messages', () => {
  const e = errorOf(cn([...REQUIRED, `option lease_time "1'2"`]));
  assert.equal(e, `tmip.@cn[0].lease_time (line 6): "1'2" is not a number of seconds; expected an integer 60..31536000`);
  const e2 = errorOf(cn([...REQUIRED, "option cn_name 'two\nlines'"]));
  assert.match(e2, /^tmip\.@cn\[0\]\.cn_name \(line 6\): "two\\nlines" contains a character not allowed in a CN name/);
});

test('all errors are reported together, one per line, in option order', () => {
  const e = errorOf(
    cn([
      "option mlr 'mlr:99999'", // 2
      "option cn_if 'a/b'", // 3
      "list addr_pool '10.0.0.0/24 10.0.1.1 *'", // 4
      "list addr_pool 'br-lan 10.0.0.9 10.0.0.1'", // 5
      "option lease_time 'forever'", // 6
      "list tunnel_type 'ipip'", // 7
      "list tunnel_type 'ipsec'", // 8
      "option mss_clamp 'maybe'", // 9
      "option whatever 'x'", // 10: a warning, not an error
    ]),
  );
  const lines = e.split('\n');
  assert.deepEqual(
    lines.map((l) => l.replace(/: .*/, '')),
    [
      'tmip.@cn[0].network_name',
      'tmip.@cn[0].mlr (line 2)',
      'tmip.@cn[0].cn_if (line 3)',
      'tmip.@cn[0].mobile_if',
      'tmip.@cn[0].addr_pool (line 4)',
      'tmip.@cn[0].addr_pool (line 5)',
      'tmip.@cn[0].lease_time (line 6)',
      'tmip.@cn[0].tunnel_type (line 8)',
      'tmip.@cn[0].mss_clamp (line 9)',
    ],
  );
});

test('addr_pool: CIDR and interface sources, bounds and their errors', () => {
  const cfg = value(
    cn([
      ...REQUIRED,
      "list addr_pool '10.20.0.0/16 * *'",
      "list addr_pool '10.30.0.0/24 * 10.30.0.127'",
      "list addr_pool 'br-lan 192.168.1.100 192.168.1.199'",
      "list addr_pool '  wlan0   *   * '",
      "list addr_pool '10.40.0.7/24 * *'",
    ]),
  );
  assert.deepEqual(
    cfg.pools.map((p) => [p.source, p.first, p.last]),
    [
      [{ kind: 'cidr', cidr: { network: ip('10.20.0.0'), prefix: 16 } }, null, null],
      [{ kind: 'cidr', cidr: { network: ip('10.30.0.0'), prefix: 24 } }, null, ip('10.30.0.127')],
      [{ kind: 'interface', ifname: 'br-lan' }, ip('192.168.1.100'), ip('192.168.1.199')],
      [{ kind: 'interface', ifname: 'wlan0' }, null, null],
      [{ kind: 'cidr', cidr: { network: ip('10.40.0.0'), prefix: 24 } }, null, null],
    ],
  );
  assert.deepEqual(cfg.warnings, ["tmip.@cn[0].addr_pool (line 10): '10.40.0.7/24' has host bits set; using 10.40.0.0/24"]);
  // a single pool given as a plain option is accepted too
  assert.equal(value(cn([...REQUIRED, "option addr_pool 'br-lan * *'"])).pools.length, 1);

  const bad: Array<[string, RegExp]> = [
    ['br-lan *', /^'br-lan \*' has 2 words; expected '<interface or CIDR> <first\|\*> <last\|\*>', e\.g\. 'br-lan \* \*'/],
    ['10.0.0.0/24 10.0.1.1 *', /first address 10\.0\.1\.1 is outside 10\.0\.0\.0\/24; expected an address inside the subnet or '\*'/],
    ['10.0.0.0/24 * 10.0.1.1', /last address 10\.0\.1\.1 is outside 10\.0\.0\.0\/24/],
    ['br-lan 10.0.0.9 10.0.0.1', /first address 10\.0\.0\.9 is after last address 10\.0\.0\.1; expected first <= last/],
    ['10.0.0.0/31 * *', /'10\.0\.0\.0\/31' is too small for a \/30 station cell; expected a prefix length of 30 or less/],
    ['10.0.0.0/33 * *', /'10\.0\.0\.0\/33' is not a CIDR prefix a\.b\.c\.d\/len/],
    ['10.0.0.1 * *', /'10\.0\.0\.1' is an address, not a pool source/],
    ['br/lan * *', /'br\/lan' is not a CIDR prefix/],
    ['br:lan * *', /'br:lan' contains a character not allowed in interface names/],
    ['br-lan first *', /first address 'first' is not an IPv4 address or '\*'/],
  ];
  for (const [text, re] of bad) {
    const r = parsePoolSpec(text);
    assert.match(errorOf(r), re, text);
    const e = errorOf(cn([...REQUIRED, "list addr_pool 'br-lan * *'", `list addr_pool '${text}'`]));
    assert.ok(e.startsWith('tmip.@cn[0].addr_pool (line 7): '), e);
  }
});

test('mlr: host or host:port, IPv4 literal or DNS name', () => {
  const good: Array<[string, string, number]> = [
    ['192.0.2.1', '192.0.2.1', 6554],
    ['192.0.2.1:7000', '192.0.2.1', 7000],
    ['010.000.002.001', '10.0.2.1', 6554],
    ['mlr', 'mlr', 6554],
    ['mlr.campus.example:1', 'mlr.campus.example', 1],
    ['MLR-1.Example.:65535', 'MLR-1.Example.', 65535],
  ];
  for (const [text, host, port] of good) assert.deepEqual(value(parseMlrAddress(text)), { scheme: 'tcp', host, port }, text);
  const bad: Array<[string, RegExp]> = [
    ['', /has no host/],
    [':6554', /has no host/],
    ['mlr:', /has port '', not a number/],
    ['mlr:65536', /has port 65536, out of range/],
    ['mlr:0', /has port 0, out of range/],
    ['mlr:http', /has port 'http', not a number/],
    ['1.2.3', /'1\.2\.3' is not an IPv4 address/],
    ['1.2.3.256:1', /'1\.2\.3\.256' is not an IPv4 address/],
    ['-mlr', /neither an IPv4 address nor a DNS name/],
    ['mlr_1', /neither an IPv4 address nor a DNS name/],
    ['a..b', /neither an IPv4 address nor a DNS name/],
    ['::1', /IPv6 is not supported/],
    ['[::1]:6554', /IPv6 is not supported/],
  ];
  for (const [text, re] of bad) {
    const e = errorOf(parseMlrAddress(text));
    assert.match(e, re, text);
    assert.match(e, /expected 'host' or 'host:port'/, text);
  }
});

test('parseBool accepts what OpenWrt config_get_bool accepts', () => {
  for (const t of ['1', 'true', 'yes', 'on', 'enabled']) assert.equal(parseBool(t), true, t);
  for (const f of ['0', 'false', 'no', 'off', 'disabled']) assert.equal(parseBool(f), false, f);
  for (const x of ['', '2', 'True', 'YES', ' 1', 'y', 'n']) assert.equal(parseBool(x), undefined, x);
});

test('interface names follow the kernel rules', () => {
  for (const ok of ['eth0', 'br-lan', 'eth0.10', 'wlan0-1', 'a', 'abcdefghijklmno', 'phy0-ap0']) assert.ok(checkIfname(ok).ok, ok);
  for (const bad of ['', '.', '..', 'abcdefghijklmnop', 'eth 0', 'eth0/1', 'eth0:1', 'tab\tx', 'ééééééééé'])
    assert.equal(checkIfname(bad).ok, false, bad);
  // cn_if and mobile_if may be the same device
  const cfg = value(cn(["option mlr '192.0.2.1'", "option network_name 'campus'", "option cn_if 'br-lan'", "option mobile_if 'br-lan'"]));
  assert.equal(cfg.cnIf, cfg.mobileIf);
});

test('dns_server and tunnel_type: list items or one space-separated option; duplicates warn', () => {
  const a = value(cn([...REQUIRED, "option dns_server '10.0.0.53 9.9.9.9'", "option tunnel_type 'vxlan gre'"]));
  assert.deepEqual(a.dnsServers, [ip('10.0.0.53'), ip('9.9.9.9')]);
  assert.deepEqual(a.tunnelTypes, ['vxlan', 'gre']);
  const b = value(cn([...REQUIRED, "list tunnel_type 'gre'", "list tunnel_type 'ipip'", "list tunnel_type 'gre'"]));
  assert.deepEqual(b.tunnelTypes, ['gre', 'ipip']);
  assert.deepEqual(b.warnings, ["tmip.@cn[0].tunnel_type (line 8): 'gre' listed twice; the later one ignored"]);
  // a dns_server option followed by list lines is one list (uci's own rule)
  const c = value(cn([...REQUIRED, "option dns_server '10.0.0.53'", "list dns_server '9.9.9.9'"]));
  assert.deepEqual(c.dnsServers, [ip('10.0.0.53'), ip('9.9.9.9')]);
});

test('a single-valued option given as a list is an error', () => {
  assert.equal(
    errorOf(cn([...REQUIRED, "list lease_time '60'", "list lease_time '120'"])),
    "tmip.@cn[0].lease_time (line 6): '60', '120' given as a list; expected a single value: option lease_time '...'",
  );
  assert.match(errorOf(cn([...REQUIRED, "list domain 'campus.lan'"])), /^tmip\.@cn\[0\]\.domain \(line 6\): 'campus\.lan' given as a list/);
});

test('unknown options are warnings, not errors', () => {
  const cfg = value(cn([...REQUIRED, "option colour 'blue'", "list extra 'x'"]));
  assert.deepEqual(cfg.warnings, [
    "tmip.@cn[0].colour (line 6): unknown option 'colour' ignored",
    "tmip.@cn[0].extra (line 7): unknown option 'extra' ignored",
  ]);
  const mlr = value(parseMlrConfig(uci("config mlr 'm'\n\toption network_name 'x'\n\toption auth '0'\n\toption mlr 'oops'\n")));
  assert.deepEqual(mlr.warnings, ["tmip.m.mlr (line 4): unknown option 'mlr' ignored"]);
});

test('section selection: first, by name, by @cn[n]; missing and wrong-type sections', () => {
  const text = `${cnText([...REQUIRED, "option cn_name 'first'"])}${cnText([...REQUIRED, "option cn_name 'second'"], "config cn 'two'")}config mlr 'reg'\n\toption network_name 'campus'\n`;
  const pkg = uci(text);
  const first = value(parseCnConfig(pkg));
  assert.equal(first.cnName, 'first');
  assert.deepEqual(first.warnings, ["tmip: 2 'config cn' sections; using the first (tmip.@cn[0])"]);
  assert.equal(value(parseCnConfig(pkg, 'two')).cnName, 'second');
  assert.equal(value(parseCnConfig(pkg, '@cn[1]')).cnName, 'second');
  assert.equal(value(parseCnConfig(pkg, '@cn[0]')).warnings.length, 0);
  assert.equal(value(parseCnConfig(pkg, '@cn[-1]')).cnName, 'second');
  assert.match(errorOf(parseCnConfig(pkg, '@cn[2]')), /^tmip\.@cn\[2\]: no such section/);
  assert.equal(errorOf(parseCnConfig(pkg, 'three')), "tmip.three: no such section; the 'config cn' sections are: @cn[0], two");
  assert.equal(errorOf(parseCnConfig(pkg, 'reg')), "tmip.reg: is a 'config mlr' section; expected 'config cn'");
  assert.match(errorOf(parseCnConfig(uci("config mlr\n\toption network_name 'x'\n"))), /^tmip: no 'config cn' section found/);
  assert.match(errorOf(parseMlrConfig(pkg, 'nope')), /^tmip\.nope: no such section; the 'config mlr' sections are: reg$/);
  assert.match(errorOf(parseMlrConfig(uci(''))), /^tmip: no 'config mlr' section found/);
  // errors in another section do not matter
  assert.ok(parseMlrConfig(uci("config cn\n\toption lease_time 'bad'\nconfig mlr\n\toption network_name 'x'\n\toption auth '0'\n")).ok);
});

test('messages use the package name when the file has a package line', () => {
  const e = errorOf(parseCnConfig(uci("package tmip_lab\nconfig cn 'ap1'\n\toption lease_time 'x'\n")));
  assert.match(e, /^tmip_lab\.ap1\.network_name: required option is missing \(section begins on line 2\)/m);
  assert.match(e, /^tmip_lab\.ap1\.lease_time \(line 3\): 'x' is not a number of seconds/m);
});

test('MLR config: bad values are all reported', () => {
  const e = errorOf(
    parseMlrConfig(
      uci(
        [
          'config mlr',
          "\toption port '0'", // 2
          "\toption listen 'any'", // 3
          "\toption debug_level '9'", // 4
          "\toption state_file 'relative/path'", // 5
          "\toption offer_hold '0'", // 6
          "\toption lease_grace 'soon'", // 7
          "\tlist tunnel_type 'wireguard'", // 8
          "\toption enabled 'perhaps'", // 9
        ].join('\n'),
      ),
    ),
  );
  assert.deepEqual(e.split('\n'), [
    "tmip.@mlr[0].network_name: required option is missing (section begins on line 1); expected 1..64 printable characters without spaces, the same on every CN and the MLR, e.g. 'campus'",
    "tmip.@mlr[0].port (line 2): '0' is out of range; expected an integer 1..65535",
    "tmip.@mlr[0].listen (line 3): 'any' is not an IPv4 address; expected the IPv4 address to listen on, or '0.0.0.0' for all",
    "tmip.@mlr[0].debug_level (line 4): '9' is out of range; expected an integer 0..7",
    "tmip.@mlr[0].state_file (line 5): 'relative/path' is not an absolute path; expected an absolute path, e.g. '/etc/tmip/mlr.state'",
    "tmip.@mlr[0].offer_hold (line 6): '0' is out of range; expected an integer 1..3600",
    "tmip.@mlr[0].lease_grace (line 7): 'soon' is not a number of seconds; expected an integer 0..86400",
    "tmip.@mlr[0].tunnel_type (line 8): 'wireguard' is not a tunnel type; expected one of ipip, gre, vxlan",
    "tmip.@mlr[0].enabled (line 9): 'perhaps' is not a boolean; expected '1'/'0', 'yes'/'no', 'true'/'false', 'on'/'off' or 'enabled'/'disabled'",
    "tmip.@mlr[0].auth: authentication is on but there is no 'config key' section; add one per CN ('tmip-mlr keygen NAME' prints it), or set option auth '0' for a closed lab",
  ]);
  assert.match(
    errorOf(parseMlrConfig(uci("config mlr\n\toption network_name 'x'\n\toption auth '0'\n\toption port 'http'\n"))),
    /'http' is not a port number; expected an integer 1\.\.65535/,
  );
});

test('MLR config: the budgets max_offers and decline_quarantine are checked', () => {
  const e = errorOf(
    parseMlrConfig(
      uci(
        [
          "config mlr\n\toption network_name 'x'\n\toption auth '0'",
          "\toption max_offers '5000'",
          "\toption decline_quarantine 'long'",
        ].join('\n'),
      ),
    ),
  );
  assert.deepEqual(e.split('\n'), [
    "tmip.@mlr[0].max_offers (line 4): '5000' is out of range; expected an integer 1..4096",
    "tmip.@mlr[0].decline_quarantine (line 5): 'long' is not a number of seconds; expected an integer 0..86400",
  ]);
});

test("MLR config: 'config key' sections and option auth", () => {
  const key = 'ab'.repeat(32);
  const mlr = (extra: string): string => `config mlr\n\toption network_name 'x'\n${extra}`;
  const good = value(parseMlrConfig(uci(`${mlr('')}config key\n\toption cn 'ap 1'\n\toption secret '${key.toUpperCase()}'\n`)));
  assert.deepEqual(good.keys, [{ cn: 'ap 1', secret: key }]);
  assert.equal(good.auth, true);
  const e = errorOf(
    parseMlrConfig(
      uci(
        [
          'config mlr', // 1
          "\toption network_name 'x'", // 2
          "\toption auth 'maybe'", // 3
          'config key', // 4
          "\toption cn 'ap/1'", // 5
          "\toption secret 'short'", // 6
          'config key', // 7
          "\toption cn 'ap1'", // 8
          `\toption secret '${key}'`, // 9
          'config key', // 10
          "\toption cn 'ap1'", // 11
          `\toption secret '${key}'`, // 12
          'config key', // 13
        ].join('\n') + '\n',
      ),
    ),
  );
  assert.deepEqual(e.split('\n'), [
    "tmip.@mlr[0].auth (line 3): 'maybe' is not a boolean; expected '1'/'0', 'yes'/'no', 'true'/'false', 'on'/'off' or 'enabled'/'disabled'",
    "tmip.@key[0].cn (line 5): 'ap/1' is not a valid CN name; expected 1..64 letters, digits, spaces and . _ - : (not starting or ending with a space)",
    "tmip.@key[0].secret (line 6): a value of 5 characters is not 64 hex digits; expected the 32-byte key that 'tmip-mlr keygen NAME' prints",
    "tmip.@key[2].cn (line 11): 'ap1' has a key already; expected one 'config key' section per CN",
    "tmip.@key[3].cn: required option is missing (section begins on line 13); expected the name of the CN this key belongs to (its cn_name), e.g. 'ap-library'",
    "tmip.@key[3].secret: required option is missing (section begins on line 13); expected 64 hex digits, as 'tmip-mlr keygen NAME' prints",
  ]);
  // auth off: no key needed
  assert.deepEqual(value(parseMlrConfig(uci(mlr("\toption auth '0'\n")))).keys, []);
});

// ---------------------------------------------------------------------------------------------
// The shipped default config.

const SHIPPED = new URL('../../../files/etc/config/tmip', import.meta.url);

test('the shipped /etc/config/tmip parses and is a valid CN config as shipped', () => {
  const text = readFileSync(SHIPPED, 'utf8');
  const pkg = uci(text);
  assert.equal(pkg.name, undefined, '/etc/config files have no package line');
  assert.deepEqual(
    pkg.sections.map((s) => s.type),
    ['cn'],
    'one config cn section; the mlr section ships commented out',
  );
  const cfg = value(parseCnConfig(pkg));
  assert.deepEqual(cfg.warnings, []);
  assert.equal(cfg.mlr.host, '192.0.2.1', 'the MLR address ships as a documentation address');
  assert.equal(cfg.networkName, 'tmip');
  assert.deepEqual(cfg.tunnelTypes, ['ipip', 'gre', 'vxlan']);
  assert.equal(cfg.leaseTime, 3600);
  assert.equal(cfg.tunnelPrefix, 'tmip0');
  assert.equal(cfg.mssClamp, true);
  assert.equal(cfg.debugLevel, 2);
  // every option line carries a one-line comment right above it
  const lines = text.split('\n');
  lines.forEach((l, i) => {
    if (/^#?\t#?(option|list) /.test(l) && !/^#?\t#?list tunnel_type/.test(l) && !/^\t#list addr_pool '10/.test(l)) {
      assert.match(lines[i - 1] ?? '', /^#?\t# /, `line ${i + 1} has no comment above it: ${l}`);
    }
  });
});

test('the shipped file stays valid with every commented-out example enabled, and its mlr section validates', () => {
  const text = readFileSync(SHIPPED, 'utf8');
  // enable the commented option examples inside config cn ("\t#option ..." / "\t#list ...")
  const withExamples = text.replace(/^\t#(option|list) /gm, '\t$1 ');
  const cfg = value(parseCnConfig(uci(withExamples)));
  assert.deepEqual(cfg.warnings, []);
  assert.equal(cfg.pools.length, 2);
  assert.equal(cfg.cnName, 'ap-library');
  assert.ok(cfg.statusFile?.startsWith('/'));
  assert.equal(cfg.domain, 'lan');
  assert.match(cfg.secret ?? '', /^[0-9a-f]{64}$/);
  assert.equal(cfg.tls.cert !== undefined && cfg.tls.key !== undefined && cfg.tls.ca !== undefined, true);
  assert.equal(cfg.mqttUsername, 'ap-library');
  // uncomment the config mlr and config key blocks: "#config mlr", "#config key" and their "#\t..." lines
  const withMlr = withExamples.replace(/^#(config (mlr|key)\b.*)$/gm, '$1').replace(/^#\t/gm, '\t');
  const pkg = uci(withMlr);
  assert.deepEqual(
    pkg.sections.map((s) => s.type),
    ['cn', 'mlr', 'key'],
  );
  const mlr = value(parseMlrConfig(pkg));
  assert.deepEqual(mlr.warnings, []);
  assert.equal(mlr.networkName, cfg.networkName, 'the MLR and CN network names match as shipped');
  assert.equal(mlr.port, cfg.mlr.port);
  assert.equal(mlr.auth, true, 'authentication ships on');
  assert.deepEqual(mlr.keys, [{ cn: cfg.cnName, secret: cfg.secret }], "the key example is the CN example's");
  // without the key section, the MLR with auth on is refused; with auth '0' it starts (a closed lab)
  const noKey = withMlr.slice(0, withMlr.indexOf('config key'));
  assert.match(errorOf(parseMlrConfig(uci(noKey))), /authentication is on but there is no 'config key' section/);
  assert.equal(value(parseMlrConfig(uci(noKey.replace("option auth '1'", "option auth '0'")))).auth, false);
  // enable every commented example of the mlr section too (state_file, MQTT, TLS)
  const full = value(parseMlrConfig(uci(withMlr.replace(/^\t#option /gm, '\toption '))));
  assert.deepEqual(full.warnings, []);
  assert.ok(full.stateFile?.startsWith('/'));
  assert.equal(full.mqtt?.scheme, 'mqtts');
  assert.equal(full.tls?.port, 6555);
  // the CN section still validates with the mlr section present
  assert.ok(parseCnConfig(pkg).ok);
});

test('the shipped file exports and re-parses to the same config', () => {
  const pkg = uci(readFileSync(SHIPPED, 'utf8'));
  const again = uci(exportUci(pkg));
  const a = value(parseCnConfig(pkg));
  const b = value(parseCnConfig(again));
  assert.deepEqual(b, a);
});

test('cn_network / mobile_network: a netifd interface instead of a device, never both, checked names', () => {
  const base = ["option mlr '192.0.2.1'", "option network_name 'campus'"];
  const cfg = value(cn([...base, "option cn_network 'wan'", "option mobile_network 'lan'"]));
  assert.equal(cfg.cnNetwork, 'wan');
  assert.equal(cfg.mobileNetwork, 'lan');
  assert.equal(cfg.cnIf, '', 'the device comes from netifd at start');
  assert.equal(cfg.mobileIf, '');
  assert.deepEqual(cfg.warnings, []);
  const mixed = value(cn([...base, "option cn_network 'wan'", "option mobile_if 'br-lan'"]));
  assert.deepEqual([mixed.cnNetwork, mixed.cnIf, mixed.mobileNetwork, mixed.mobileIf], ['wan', '', undefined, 'br-lan']);
  assert.equal(
    errorOf(cn([...base, "option cn_if 'eth1'", "option cn_network 'wan'", "option mobile_if 'br-lan'"])),
    "tmip.@cn[0].cn_network (line 5): given together with option cn_if; set one of them: expected option cn_if with a Linux interface name, e.g. 'eth0', or option cn_network with a logical interface of /etc/config/network, e.g. 'wan'",
  );
  assert.match(
    errorOf(cn([...base, "option cn_network 'wan-1'", "option mobile_if 'br-lan'"])),
    /^tmip\.@cn\[0\]\.cn_network \(line 4\): 'wan-1' is not a logical interface name \(1-15 letters, digits and '_'\); expected option cn_if/,
  );
  assert.match(
    errorOf(cn([...base, "option cn_if 'eth1'", "option mobile_network 'a_very_long_name_x'"])),
    /mobile_network \(line 5\): 'a_very_long_name_x' is not a logical interface name/,
  );
});
