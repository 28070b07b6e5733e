// SPDX-License-Identifier: GPL-2.0-only
// The OpenWrt files (files/ and openwrt/): every shell script passes `sh -n` and `shellcheck -s sh`,
// every JSON file parses, the LuCI views compile and behave in a stub LuCI (settings validators agree
// with the daemons' config reader option by option; the status page renders the CN's ubus replies),
// the rpcd ACL and menu match the views, and the procd init scripts, run under a stub of rc.common's
// config_* and procd_* helpers, start exactly the instances and command lines the daemons accept.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { parseArgs } from '../../src/cli/args.js';
import { parseCnConfig, parseMlrConfig } from '../../src/core/config.js';
import { TUNNEL_TYPES } from '../../src/core/tunnel.js';
import { parseUci, type UciPackage } from '../../src/proto/uci.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FILES = path.join(ROOT, 'files');
const FEED = path.join(ROOT, 'openwrt');
const LUCI_APP = path.join(FEED, 'luci/luci-app-tmip');
const VIEWS = path.join(LUCI_APP, 'htdocs/luci-static/resources/view');
const SHIPPED_CONFIG = path.join(FILES, 'etc/config/tmip');

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (entry.isFile()) out.push(p);
  }
  return out.sort();
}

const ALL_FILES = [...walk(FILES), ...walk(FEED)];
const rel = (p: string) => path.relative(ROOT, p);

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...opts });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function uci(text: string): UciPackage {
  const r = parseUci(text);
  if (!r.ok) assert.fail(`UCI text does not parse:\n${r.error}\n${text}`);
  return r.value;
}

/** A value in UCI single quotes. */
function q(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// Shell scripts

const SHELL_FILES = ALL_FILES.filter((f) => f.endsWith('.sh') || /^#!\s*\/bin\/sh\b/.test(fs.readFileSync(f, 'utf8').split('\n')[0] ?? ''));

test('the expected shell scripts are there and executable', () => {
  const names = SHELL_FILES.map(rel);
  for (const f of [
    'files/etc/init.d/tmip-cn',
    'files/etc/init.d/tmip-mlr',
    'files/usr/sbin/tmip-cn',
    'files/usr/sbin/tmip-mlr',
    'files/etc/uci-defaults/90-tmip-mlr',
    'openwrt/build-ipk.sh',
  ]) {
    assert.ok(names.includes(f), `${f} is a shell script under files/ or openwrt/`);
    assert.ok((fs.statSync(path.join(ROOT, f)).mode & 0o111) !== 0, `${f} is executable in the repository`);
  }
});

test('every shell script passes sh -n (and busybox sh -n when busybox is there)', () => {
  const shells = have('busybox') ? [['sh'], ['busybox', 'sh']] : [['sh']];
  for (const f of SHELL_FILES) {
    for (const sh of shells) {
      const r = run(sh[0]!, [...sh.slice(1), '-n', f]);
      assert.equal(r.code, 0, `${sh.join(' ')} -n ${rel(f)}:\n${r.stderr}`);
    }
  }
});

test('every shell script passes shellcheck -s sh', (t) => {
  if (!have('shellcheck')) {
    t.skip('shellcheck is not installed');
    return;
  }
  for (const f of SHELL_FILES) {
    const r = run('shellcheck', ['-s', 'sh', f]);
    assert.equal(r.code, 0, `shellcheck -s sh ${rel(f)}:\n${r.stdout}${r.stderr}`);
  }
});

// ---------------------------------------------------------------------------------------------
// JSON: menu and ACL

const JSON_FILES = ALL_FILES.filter((f) => f.endsWith('.json'));

test('every JSON file parses', () => {
  assert.ok(JSON_FILES.length >= 2, 'the menu and the ACL');
  for (const f of JSON_FILES) assert.doesNotThrow(() => JSON.parse(fs.readFileSync(f, 'utf8')), rel(f));
});

function readJson(p: string): unknown {
  return JSON.parse(fs.readFileSync(p, 'utf8'));
}

/** luci/menu.d: what these tests read of an entry. */
type LuciMenu = Record<
  string,
  { action: { type: string; path?: string }; depends: { acl?: string[]; uci?: Record<string, boolean> } } | undefined
>;
/** rpcd/acl.d: what these tests read of a group. */
type RpcdAcl = Record<
  string,
  | { description?: unknown; read: { ubus: { tmip: string[] }; uci: string[] }; write: { ubus: { tmip: string[] }; uci: string[] } }
  | undefined
>;
const ACL_FILE = path.join(LUCI_APP, 'root/usr/share/rpcd/acl.d/luci-app-tmip.json');

test('the LuCI menu puts Settings and Status under Services, behind the ACL and the uci config', () => {
  const menu = readJson(path.join(LUCI_APP, 'root/usr/share/luci/menu.d/luci-app-tmip.json')) as LuciMenu;
  const top = menu['admin/services/tmip'];
  assert.ok(top, 'admin/services/tmip');
  assert.equal(top.action.type, 'firstchild');
  assert.deepEqual(top.depends.acl, ['luci-app-tmip']);
  assert.deepEqual(top.depends.uci, { tmip: true });
  for (const page of ['settings', 'status']) {
    const entry = menu[`admin/services/tmip/${page}`];
    assert.ok(entry, `admin/services/tmip/${page}`);
    assert.equal(entry.action.type, 'view');
    assert.equal(entry.action.path, `tmip/${page}`);
    assert.ok(fs.existsSync(path.join(VIEWS, `${entry.action.path}.js`)), `view ${entry.action.path}.js exists`);
  }
});

test('the rpcd ACL grants read of the ubus status methods and uci tmip, write of uci tmip and reload', () => {
  const acl = readJson(ACL_FILE) as RpcdAcl;
  const grant = acl['luci-app-tmip'];
  assert.ok(grant, 'the ACL group is named after the package, as the menu expects');
  assert.equal(typeof grant.description, 'string');
  assert.deepEqual([...grant.read.ubus.tmip].sort(), ['clients', 'peers', 'status', 'tunnels']);
  assert.deepEqual(grant.read.uci, ['tmip']);
  assert.deepEqual(grant.write.ubus.tmip, ['reload']);
  assert.deepEqual(grant.write.uci, ['tmip']);
});

// ---------------------------------------------------------------------------------------------
// LuCI views in a stub LuCI

/**
 * Loads a view the way LuCI's loader does: the 'require x' / 'require x as y' directives become the
 * parameters of a function whose body is the file, called with the required modules; _, L, E and
 * cbi_update_table are globals.
 */
/** A view as the file returns it (the stub's view.extend returns its argument): LuCI calls load(), then render(). */
interface LuciView {
  load(): Promise<unknown>;
  render(data?: unknown): unknown;
}

function loadView(file: string, modules: Record<string, unknown>, globals: Record<string, unknown>): LuciView {
  const source = fs.readFileSync(file, 'utf8');
  const names = [...source.matchAll(/^'require ([\w.]+)(?:\s+as\s+(\w+))?';\s*$/gm)].map((m) => m[2] ?? m[1]!.replace(/[^\w]/g, '_'));
  const ctx = vm.createContext({ console, ...globals });
  vm.runInContext(
    `String.prototype.format = function() {
       var args = arguments, i = 0;
       return this.replace(/%([sdt%])/g, function(m, c) {
         if (c === '%') return '%';
         var v = args[i++];
         return c === 'd' ? String(Math.floor(Number(v))) : c === 't' ? String(v) + 's' : String(v);
       });
     };`,
    ctx,
  );
  const factory = vm.runInContext(`(function(${names.join(', ')}) {\n${source}\n})`, ctx, { filename: file }) as (
    ...modules: unknown[]
  ) => LuciView;
  return factory(
    ...names.map((n) => {
      assert.ok(n in modules, `${path.basename(file)} requires '${n}', which the stub LuCI does not provide`);
      return modules[n];
    }),
  );
}

test('the LuCI views are plain scripts LuCI can compile, with their directives first', () => {
  for (const f of walk(VIEWS)) {
    const source = fs.readFileSync(f, 'utf8');
    assert.match(source, /^'use strict';\n('require [\w.]+( as \w+)?';\n)+/, `${rel(f)} starts with 'use strict' and its 'require' lines`);
    assert.match(source, /'require view';/);
    // LuCI compiles a view as a function body (it ends in `return view.extend(...)`)
    assert.doesNotThrow(() => new vm.Script(`(function() {\n${source}\n})`, { filename: f }), rel(f));
  }
});

interface StubOption {
  name: string;
  kind: string;
  section: StubSection;
  values: [string, string | undefined][];
  validate?: (sid: string, value: string) => true | string;
  default?: string;
  rmempty?: boolean;
  enabled?: string;
  placeholder?: string;
}
interface StubSection {
  type: string;
  anonymous?: boolean;
  addremove?: boolean;
  options: StubOption[];
}

function stubForm() {
  const maps: { config: string; sections: StubSection[] }[] = [];
  const option = (kind: string) =>
    class {
      name: string;
      kind = kind;
      section: StubSection;
      values: [string, string | undefined][] = [];
      enabled = kind === 'Flag' ? '1' : undefined;
      disabled = kind === 'Flag' ? '0' : undefined;
      constructor(section: StubSection, name: string) {
        this.section = section;
        this.name = name;
      }
      value(key: string, label?: string) {
        this.values.push([key, label]);
      }
      depends() {}
    };
  class TypedSection {
    options: StubOption[] = [];
    tabs: string[] = [];
    constructor(
      public map: unknown,
      public type: string,
    ) {}
    tab(name: string) {
      this.tabs.push(name);
    }
    option(cls: new (s: StubSection, n: string) => StubOption, name: string) {
      const o = new cls(this, name);
      this.options.push(o);
      return o;
    }
    taboption(tab: string, cls: new (s: StubSection, n: string) => StubOption, name: string) {
      assert.ok(this.tabs.includes(tab), `tab '${tab}' is declared before option '${name}' uses it`);
      return this.option(cls, name);
    }
  }
  class Map {
    sections: StubSection[] = [];
    constructor(public config: string) {
      maps.push(this);
    }
    section(cls: new (m: unknown, t: string) => StubSection, type: string) {
      const s = new cls(this, type);
      this.sections.push(s);
      return s;
    }
    render() {
      return Promise.resolve(this);
    }
  }
  const form = {
    Map,
    TypedSection,
    Flag: option('Flag'),
    Value: option('Value'),
    ListValue: option('ListValue'),
    DynamicList: option('DynamicList'),
    MultiValue: option('MultiValue'),
  };
  const widgets = { DeviceSelect: option('DeviceSelect') };
  return { form, widgets, maps };
}

async function settingsSections(): Promise<Record<string, StubSection>> {
  const { form, widgets, maps } = stubForm();
  const view = loadView(
    path.join(VIEWS, 'tmip/settings.js'),
    { view: { extend: (o: unknown) => o }, form, widgets },
    { _: (s: string) => s, L: {}, E: () => ({}) },
  );
  await view.render();
  assert.equal(maps.length, 1);
  assert.equal(maps[0]!.config, 'tmip');
  return Object.fromEntries(maps[0]!.sections.map((s) => [s.type, s]));
}

function optionNamed(s: StubSection, name: string): StubOption {
  const o = s.options.find((x) => x.name === name);
  assert.ok(o, `the settings page has ${s.type}.${name}`);
  return o;
}

/** Option names of each section type in the shipped config, active or commented out. */
function shippedOptions(): Record<string, Set<string>> {
  const out: Record<string, Set<string>> = {};
  let type = '';
  for (const line of fs.readFileSync(SHIPPED_CONFIG, 'utf8').split('\n')) {
    const sec = /^#?config\s+(\w+)/.exec(line);
    if (sec) {
      type = sec[1]!;
      out[type] ??= new Set();
      continue;
    }
    const opt = /^#?\s*#?(?:option|list)\s+(\w+)\s/.exec(line.replace(/^#\t#/, '#'));
    if (opt && type) out[type]!.add(opt[1]!);
  }
  return out;
}

/** Option names parseCnConfig reads, from config.ts (best effort: a refactor can only shrink the set). */
function daemonCnOptions(): Set<string> {
  const src = fs.readFileSync(path.join(ROOT, 'src/core/config.ts'), 'utf8');
  const start = src.indexOf('export function parseCnConfig');
  const end = src.indexOf('export function parseMlrConfig');
  const body = src.slice(start, end);
  const names = new Set([...body.matchAll(/(?:r\.\w+|ifname)\('([a-z_]+)'/g)].map((m) => m[1]!));
  if (body.includes('r.networkName()')) names.add('network_name');
  if (body.includes('r.tunnelTypes()')) names.add('tunnel_type');
  return names;
}

const BASE_CN: Record<string, string> = { mlr: '10.0.0.2', network_name: 'campus', cn_if: 'eth0', mobile_if: 'wlan0' };
const BASE_MLR: Record<string, string> = { network_name: 'campus' };

function sectionText(type: string, base: Record<string, string>, opt: string, value: string, list: boolean): string {
  const lines = [`config ${type}`];
  for (const [k, v] of Object.entries(base)) if (k !== opt) lines.push(`\toption ${k} ${q(v)}`);
  lines.push(`\t${list ? 'list' : 'option'} ${opt} ${q(value)}`);
  return lines.join('\n') + '\n';
}

/** Whether the daemon's config reader accepts `value` for `opt` (no error naming the option). */
function daemonAccepts(type: 'cn' | 'mlr', opt: string, value: string, list: boolean): boolean {
  const pkg = uci(sectionText(type, type === 'cn' ? BASE_CN : BASE_MLR, opt, value, list));
  const r = type === 'cn' ? parseCnConfig(pkg) : parseMlrConfig(pkg);
  if (r.ok) {
    assert.ok(
      !r.value.warnings.some((w) => w.includes('unknown option')),
      `the daemon knows ${type}.${opt}: ${r.value.warnings.join('; ')}`,
    );
    return true;
  }
  assert.ok(r.error.includes(`.${opt}`), `errors of ${type}.${opt}=${JSON.stringify(value)} name the option only:\n${r.error}`);
  return false;
}

const x = (c: string, n: number) => c.repeat(n);

const CN_SAMPLES: Record<string, string[]> = {
  mlr: [
    '10.0.0.1',
    '10.0.0.1:6554',
    'mlr.example.org',
    'mlr.example.org:1',
    'host:0',
    'host:65536',
    'host:',
    ':80',
    '10.0.0.256',
    '1.2.3',
    '01.2.3.4',
    'a_b',
    '::1',
    'fe80::1:80',
    '-x.org',
    x('a', 64),
    `${x('a', 63)}.${x('b', 63)}.${x('c', 63)}.${x('d', 61)}`,
    `${x('a', 63)}.${x('b', 63)}.${x('c', 63)}.${x('d', 62)}`,
    'x.org.',
    '',
  ],
  network_name: ['campus', "it's", 'a b', x('n', 64), x('n', 65), 'é', '!~', ''],
  cn_name: ['AP library', x('c', 64), x('c', 65), x('ü', 64), x('ü', 65), 'tab\there'],
  cn_if: ['eth0', 'br-lan', 'lan1.100', x('a', 15), x('a', 16), 'eth0:1', 'a/b', 'a b', '.', '..', x('ü', 7), x('ü', 8), ''],
  mobile_if: ['wlan0', 'phy0-ap0', x('z', 16), ''],
  addr_pool: [
    'br-lan * *',
    '10.20.0.0/16 10.20.1.0 10.20.1.255',
    '10.20.0.0/16 * *',
    '10.20.0.1/16 * *',
    '10.20.0.0/30 * *',
    '10.20.0.0/31 * *',
    '10.20.0.0/33 * *',
    '10.20.0.0/016 * *',
    '10.20.0.0/16 10.21.0.0 *',
    '10.20.0.0/16 * 10.20.255.255',
    '10.20.0.0/16 * 10.21.0.0',
    '10.20.0.0/16 10.20.1.255 10.20.1.0',
    'br-lan 10.0.0.1 10.0.0.9',
    'br-lan 10.0.0.9 10.0.0.1',
    'br-lan',
    'br-lan * * *',
    '10.1.2.3 * *',
    'br-lan x *',
    '  br-lan \t * *  ',
    'eth0:1 * *',
    `${x('a', 16)} * *`,
    '0.0.0.0/0 * *',
  ],
  dns_server: ['192.0.2.53', '256.1.1.1', 'dns.example', '1.2.3.4 5.6.7.8', '1.2.3'],
  domain: ['lan', 'campus.lan', 'campus.lan.', '-bad', 'a..b', x('l', 63), x('l', 64), 'under_score'],
  lease_time: ['60', '59', '3600', '0060', '31536000', '31536001', '-1', '1e3', ' 60', '60s'],
  tunnel_prefix: ['tmip0', 'a', x('a', 7), x('a', 8), '0abc', 'Tmip', 'a_b', 'a-b'],
  tunnel_type: ['ipip', 'gre', 'vxlan', 'GRE', 'sit', 'ipip gre'],
  status_file: ['/var/run/tmip/cn.status', 'relative/path', '/with\ttab', `/${x('p', 4094)}`, `/${x('p', 4095)}`],
  ubus_socket: ['/var/run/ubus/ubus.sock', 'ubus.sock'],
};
const LIST_OPTIONS = new Set(['addr_pool', 'dns_server', 'tunnel_type']);

const MLR_SAMPLES: Record<string, string[]> = {
  network_name: ['campus', 'a b', x('n', 65), ''],
  port: ['1', '6554', '65535', '0', '65536', 'abc', '-1'],
  listen: ['0.0.0.0', '10.0.0.1', 'host', '10.0.0.1/24'],
  state_file: ['/etc/tmip/mlr.state', 'mlr.state'],
  offer_hold: ['1', '3600', '0', '3601'],
  lease_grace: ['0', '86400', '86401', 'x'],
  tunnel_type: ['ipip', 'vxlan', 'udp'],
};

test('the settings page has an anonymous, addable cn section and an mlr section', async () => {
  const sections = await settingsSections();
  for (const type of ['cn', 'mlr']) {
    const s = sections[type];
    assert.ok(s, `a TypedSection '${type}'`);
    assert.equal(s.anonymous, true, `${type} is anonymous`);
    assert.equal(s.addremove, true, `${type} sections can be added and removed`);
  }
});

test('the settings page exposes every option of the shipped config and of the CN config reader', async () => {
  const sections = await settingsSections();
  const shipped = shippedOptions();
  assert.ok(shipped.cn && shipped.cn.size >= 14, `options found in the shipped config: ${[...(shipped.cn ?? [])].join(' ')}`);
  assert.ok(shipped.mlr && shipped.mlr.size >= 7);
  for (const type of ['cn', 'mlr']) {
    const exposed = new Set(sections[type]!.options.map((o) => o.name));
    for (const opt of shipped[type]!) assert.ok(exposed.has(opt), `${type}.${opt} (in files/etc/config/tmip) is on the settings page`);
  }
  const cnExposed = new Set(sections.cn!.options.map((o) => o.name));
  const read = daemonCnOptions();
  assert.ok(read.size >= 15, `options read by parseCnConfig: ${[...read].join(' ')}`);
  for (const opt of read) assert.ok(cnExposed.has(opt), `cn.${opt} (read by parseCnConfig) is on the settings page`);
});

test('every option on the settings page is one the daemons know', async () => {
  const sections = await settingsSections();
  const valid: Record<string, string> = {
    ...BASE_CN,
    ...BASE_MLR,
    enabled: '1',
    mss_clamp: '0',
    hostapd: '1',
    require_association: '0',
    debug_level: '3',
    port: '6554',
    listen: '0.0.0.0',
    offer_hold: '60',
    lease_grace: '60',
    lease_time: '600',
    tunnel_prefix: 'tm',
    tunnel_type: 'gre',
    addr_pool: 'br-lan * *',
    dns_server: '192.0.2.53',
    domain: 'lan',
    cn_name: 'ap',
    status_file: '/tmp/s',
    ubus_socket: '/tmp/u',
    state_file: '/tmp/m',
  };
  for (const type of ['cn', 'mlr'] as const) {
    const lines = [`config ${type}`];
    for (const o of sections[type]!.options) {
      assert.ok(o.name in valid, `test knows a valid value for ${type}.${o.name}`);
      lines.push(`\t${o.kind === 'DynamicList' ? 'list' : 'option'} ${o.name} ${q(valid[o.name]!)}`);
    }
    const pkg = uci(lines.join('\n') + '\n');
    const r = type === 'cn' ? parseCnConfig(pkg) : parseMlrConfig(pkg);
    assert.ok(r.ok, `${type} with every option of the page parses: ${r.ok ? '' : r.error}`);
    assert.deepEqual(r.value.warnings, [], `no unknown options in ${type}`);
  }
});

test('the settings validators accept exactly what the daemons accept', async () => {
  const sections = await settingsSections();
  const check = (type: 'cn' | 'mlr', samples: Record<string, string[]>) => {
    for (const [opt, values] of Object.entries(samples)) {
      const o = optionNamed(sections[type]!, opt);
      assert.equal(typeof o.validate, 'function', `${type}.${opt} has a validator`);
      const list = LIST_OPTIONS.has(opt);
      assert.equal(o.kind === 'DynamicList', list, `${type}.${opt} is ${list ? '' : 'not '}a list`);
      for (const value of values) {
        const luci = o.validate!('cfg0123ab', value);
        assert.ok(luci === true || (typeof luci === 'string' && luci.length > 0), `${type}.${opt}: validator returns true or a message`);
        const daemon = daemonAccepts(type, opt, value, list);
        assert.equal(
          luci === true,
          daemon,
          `${type}.${opt} = ${JSON.stringify(value)}: LuCI says ${luci === true ? 'ok' : JSON.stringify(luci)}, the daemon ${daemon ? 'accepts' : 'refuses'} it`,
        );
      }
    }
  };
  check('cn', CN_SAMPLES);
  check('mlr', MLR_SAMPLES);
});

test('optional settings may be left empty, required ones may not', async () => {
  const sections = await settingsSections();
  const required = new Set(['mlr', 'network_name', 'cn_if', 'mobile_if']);
  for (const type of ['cn', 'mlr']) {
    for (const o of sections[type]!.options) {
      if (!o.validate) continue;
      const empty = o.validate('cfg0123ab', '');
      if (required.has(o.name)) {
        assert.notEqual(empty, true, `${type}.${o.name} is required`);
        assert.equal(o.rmempty, false, `${type}.${o.name} keeps its value`);
      } else assert.equal(empty, true, `${type}.${o.name} may be empty`);
    }
  }
});

test('flags default to on and are written as 0 when cleared; levels and tunnel types match the daemon', async () => {
  const sections = await settingsSections();
  const flags: [string, string][] = [
    ['cn', 'enabled'],
    ['cn', 'mss_clamp'],
    ['cn', 'hostapd'],
    ['cn', 'require_association'],
    ['mlr', 'enabled'],
  ];
  for (const [type, name] of flags) {
    const o = optionNamed(sections[type]!, name);
    assert.equal(o.kind, 'Flag', `${type}.${name} is a Flag`);
    assert.equal(o.default, '1', `${type}.${name} defaults to 1, as the daemon does`);
    assert.equal(o.rmempty, false, `${type}.${name} is written as '0' when cleared (absent would mean on)`);
  }
  for (const type of ['cn', 'mlr']) {
    const level = optionNamed(sections[type]!, 'debug_level');
    assert.equal(level.kind, 'ListValue');
    assert.deepEqual(
      level.values.map((v) => v[0]),
      ['0', '1', '2', '3', '4', '5', '6', '7'],
    );
    assert.equal(level.default, '2');
    for (const [v] of level.values) assert.ok(daemonAccepts(type as 'cn' | 'mlr', 'debug_level', v, false));
    assert.deepEqual(
      optionNamed(sections[type]!, 'tunnel_type').values.map((v) => v[0]),
      [...TUNNEL_TYPES],
    );
  }
  for (const name of ['cn_if', 'mobile_if']) assert.equal(optionNamed(sections.cn!, name).kind, 'DeviceSelect');
});

// -- status page -------------------------------------------------------------------------------

interface Node {
  tag: unknown;
  attrs: Record<string, unknown>;
  children: unknown;
  style: Record<string, string>;
  rows?: unknown[][];
  placeholder?: unknown;
}

function textOf(n: unknown): string {
  if (n == null) return '';
  if (typeof n === 'string' || typeof n === 'number') return String(n);
  if (Array.isArray(n)) return n.map(textOf).join(' ');
  const node = n as Node;
  return [textOf(node.children), node.rows ? textOf(node.rows) : ''].join(' ');
}

function findAll(n: unknown, pred: (x: Node) => boolean, out: Node[] = []): Node[] {
  if (Array.isArray(n)) n.forEach((c) => findAll(c, pred, out));
  else if (n && typeof n === 'object' && 'tag' in n) {
    if (pred(n as Node)) out.push(n as Node);
    findAll((n as Node).children, pred, out);
  }
  return out;
}

function statusPage(replies: Record<string, () => Promise<unknown>>) {
  const declared: { object: string; method: string; expect?: Record<string, unknown> }[] = [];
  const polls: { fn: () => Promise<unknown>; interval: number }[] = [];
  const notes: unknown[] = [];
  const E = (tag: unknown, attrs?: unknown, children?: unknown): Node => {
    if (Array.isArray(tag)) return { tag: 'fragment', attrs: {}, children: tag.length ? tag : attrs, style: {} };
    const hasAttrs = attrs && typeof attrs === 'object' && !Array.isArray(attrs) && !('tag' in attrs);
    return { tag, attrs: hasAttrs ? (attrs as Record<string, unknown>) : {}, children: hasAttrs ? children : attrs, style: {} };
  };
  const rpc = {
    declare(opts: { object: string; method: string; expect?: Record<string, unknown> }) {
      declared.push(opts);
      return () =>
        (replies[opts.method] ?? (() => Promise.reject(new Error('Method not found'))))().then((reply: unknown) => {
          if (!opts.expect) return reply;
          const key = Object.keys(opts.expect)[0]!;
          const v = (reply as Record<string, unknown> | null | undefined)?.[key];
          const dflt = opts.expect[key];
          return v == null || Array.isArray(v) !== Array.isArray(dflt) || typeof v !== typeof dflt ? dflt : v;
        });
    },
  };
  const modules = {
    view: { extend: (o: unknown) => o },
    dom: {
      content: (node: Node, children: unknown) => {
        node.children = children;
      },
    },
    poll: { add: (fn: () => Promise<unknown>, interval: number) => polls.push({ fn, interval }) },
    rpc,
    ui: {
      createHandlerFn: (self: Record<string, unknown>, name: string) => () => {
        const handler = self[name];
        assert.ok(typeof handler === 'function', `the view has a method ${name}`);
        return (handler as () => unknown).call(self);
      },
      addNotification: (_t: unknown, body: unknown, cls: string) => notes.push([body, cls]),
    },
  };
  const globals = {
    _: (s: string) => s,
    E,
    L: { bind: (fn: (...a: unknown[]) => unknown, self: unknown, ...args: unknown[]) => fn.bind(self, ...args) },
    cbi_update_table: (table: Node, rows: unknown[][], placeholder: unknown) => {
      table.rows = rows;
      table.placeholder = placeholder;
    },
  };
  const view = loadView(path.join(VIEWS, 'tmip/status.js'), modules, globals);
  return { view, declared, polls, notes };
}

// What `ubus call tmip <method>` answers (the CN's status reply is flat; a reply wrapped as
// { status: {...} } is read the same way)
const STATUS = {
  cn_name: 'ap-library',
  network_name: 'campus',
  address: '10.200.0.5',
  cn_if: 'eth0',
  mobile_if: 'br-lan',
  mlr: { address: '10.200.0.2:6554', connected: true },
  pools: ['10.13.150.0/24 [10.13.150.4 - 10.13.150.251]'],
  tunnel_types: ['ipip', 'vxlan'],
  clients_here: 2,
  hostapd: { enabled: true, present: false, bss: [], require_association: true },
};
const CLIENTS_REPLY = {
  clients: [
    {
      mac: '02:00:00:00:00:01',
      ip: '10.13.150.5',
      parent: 'ap-library',
      current: 'ap-library',
      here: true,
      associated: false,
      expires: 3600,
    },
    {
      mac: '02:00:00:00:00:02',
      ip: '10.14.0.9',
      parent: 'ap-gym',
      current: 'ap-library',
      here: true,
      expires: Math.floor(Date.now() / 1000) + 120,
    },
  ],
};
const TUNNELS_REPLY = { tunnels: [{ name: 'tmip07', type: 'ipip', peer: '10.200.0.7', key: 7, mtu: 1480 }] };
const PEERS_REPLY = { peers: [{ name: 'ap-gym', addr: '10.200.0.7', online: 'unknown' }] };

for (const [shape, statusReply] of [
  ['flat', STATUS],
  ['wrapped', { status: STATUS }],
] as const)
  test(`the status page calls the CN ubus methods the ACL grants, and renders their replies (${shape} status)`, async () => {
    const replies = {
      status: async (): Promise<unknown> => statusReply,
      clients: async () => CLIENTS_REPLY,
      tunnels: async () => TUNNELS_REPLY,
      peers: async () => PEERS_REPLY,
      reload: async () => ({}),
    };
    const { view, declared, polls, notes } = statusPage(replies);
    const acl = (readJson(ACL_FILE) as RpcdAcl)['luci-app-tmip'];
    assert.ok(acl);
    const granted = [...acl.read.ubus.tmip, ...acl.write.ubus.tmip].sort();
    assert.ok(declared.every((d) => d.object === 'tmip'));
    assert.deepEqual(declared.map((d) => d.method).sort(), granted, 'the page calls exactly the methods the ACL grants');

    const page = view.render(await view.load()) as Node;
    assert.equal(polls.length, 1);
    assert.equal(polls[0]!.interval, 5);
    const all = textOf(page);
    for (const s of [
      'ap-library',
      'campus',
      '10.200.0.5',
      'backbone eth0, clients br-lan',
      '10.200.0.2:6554',
      'connected',
      '10.13.150.0/24 [10.13.150.4 - 10.13.150.251]',
      'ipip, vxlan',
      'hostapd not running',
    ]) {
      assert.ok(all.includes(s), `status shows ${s}`);
    }
    assert.ok(!all.includes('not connected'));

    const tables = findAll(page, (n) => Array.isArray(n.rows));
    const rowsOf = (placeholder: string) => {
      const t = tables.find((n) => textOf(n.placeholder).includes(placeholder));
      assert.ok(t, `a table with the placeholder '${placeholder}'`);
      return JSON.parse(JSON.stringify(t.rows)) as unknown[][]; // arrays of the view's realm, made plain
    };
    const clients = rowsOf('No clients');
    assert.equal(clients.length, 2);
    assert.deepEqual(clients[0], ['02:00:00:00:00:01', '10.13.150.5', 'ap-library', 'ap-library', 'yes', 'no', '3600s']);
    assert.equal(clients[1]![5], '-', 'a field the reply lacks shows as -');
    assert.match(String(clients[1]![6]), /^1[12]\ds$/, 'an absolute expiry time is shown as the time left');
    assert.deepEqual(rowsOf('No tunnels'), [['tmip07', 'ipip', '10.200.0.7', '7', '1480']]);
    assert.deepEqual(rowsOf('No peer CNs'), [['ap-gym', '10.200.0.7', 'unknown']]);
    const notice = findAll(page, (n) => typeof n.attrs.class === 'string' && n.attrs.class.includes('alert-message'))[0]!;
    assert.equal(notice.style.display, 'none', 'no warning while the CN answers');

    // the CN goes away: the next poll shows a warning and empty tables
    replies.status = async () => Promise.reject(new Error('Object not found'));
    replies.clients = async () => Promise.reject(new Error('Object not found'));
    await polls[0]!.fn();
    assert.equal(notice.style.display, '');
    assert.match(textOf(notice), /not running.*Object not found/);
    assert.deepEqual(rowsOf('No clients'), []);
    assert.equal(rowsOf('No tunnels').length, 1, 'a method that still answers keeps its table');

    // the reload button
    const button = findAll(page, (n) => n.tag === 'button')[0]!;
    await (button.attrs.click as () => Promise<unknown>)();
    assert.equal(notes.length, 1);
  });

// ---------------------------------------------------------------------------------------------
// Init scripts under a stub rc.common

/**
 * What /etc/rc.common and /lib/functions.sh provide to start_service, in miniature: config_load reads
 * the UCI file as shell (as uci export output is read), naming unnamed sections cfgNNXXXX like uci;
 * config_get/config_get_bool/config_foreach behave as OpenWrt's; procd_* and logger print what they
 * are given, one line each.
 */
const HARNESS = String.raw`
CONFIG_SECTIONS=""
CONFIG_NUM_SECTIONS=0
config() {
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	CONFIG_SECTION=${'$'}{2:-$(printf 'cfg%02x%04x' "$CONFIG_NUM_SECTIONS" 51966)}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${'$'}{CONFIG_SECTION}_TYPE=\$1"
}
option() { eval "CONFIG_${'$'}{CONFIG_SECTION}_$1=\$2"; }
list() { eval "CONFIG_${'$'}{CONFIG_SECTION}_$1=\"\${CONFIG_${'$'}{CONFIG_SECTION}_$1:+\$CONFIG_${'$'}{CONFIG_SECTION}_$1 }\$2\""; }
config_load() { echo "config_load $1"; . "$HARNESS_CONFIG"; }
config_get() { eval "$1=\${CONFIG_$2_$3:-\$4}"; }
config_get_bool() {
	config_get "$1" "$2" "$3" "$4"
	eval "case \"\$$1\" in 1|on|true|yes|enabled) $1=1;; 0|off|false|no|disabled) $1=0;; *) $1=\$4;; esac"
}
config_foreach() {
	_fn=$1; _type=$2; shift 2
	for _s in $CONFIG_SECTIONS; do
		eval "_t=\$CONFIG_${'$'}{_s}_TYPE"
		[ "$_t" = "$_type" ] && "$_fn" "$_s" "$@"
	done
	return 0
}
procd_open_instance() { echo "open_instance $1"; }
procd_set_param() { printf 'set_param'; printf '\t%s' "$@"; echo; }
procd_close_instance() { echo "close_instance"; }
procd_add_reload_trigger() { echo "reload_trigger $*"; }
logger() { echo "logger $*"; }
. "$HARNESS_INIT"
echo "START=$START STOP=$STOP USE_PROCD=$USE_PROCD"
start_service "$@"
service_triggers
`;

interface Instance {
  name: string;
  params: Record<string, string[]>;
}

function runInit(script: 'tmip-cn' | 'tmip-mlr', configText: string, args: string[] = [], shell: string[] = ['sh']) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-init-'));
  const config = path.join(dir, 'tmip');
  const harness = path.join(dir, 'harness.sh');
  fs.writeFileSync(config, configText);
  fs.writeFileSync(harness, HARNESS);
  const r = run(shell[0]!, [...shell.slice(1), harness, ...args], {
    env: { PATH: process.env.PATH, HARNESS_CONFIG: config, HARNESS_INIT: path.join(FILES, 'etc/init.d', script) },
  });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 0, `harness for ${script} (${shell.join(' ')}) failed:\n${r.stderr}\n${r.stdout}`);
  assert.equal(r.stderr, '', `no complaints from the shell: ${r.stderr}`);
  const instances: Instance[] = [];
  const other: string[] = [];
  let current: Instance | undefined;
  for (const line of r.stdout.split('\n').filter((l) => l !== '')) {
    if (line.startsWith('open_instance ')) {
      assert.equal(current, undefined, 'instances do not nest');
      current = { name: line.slice('open_instance '.length), params: {} };
    } else if (line === 'close_instance') {
      assert.ok(current);
      instances.push(current);
      current = undefined;
    } else if (line.startsWith('set_param\t')) {
      assert.ok(current, `procd_set_param inside an instance: ${line}`);
      const [, key, ...values] = line.split('\t');
      current.params[key!] = values;
    } else other.push(line);
  }
  assert.equal(current, undefined, 'every instance is closed');
  return { instances, other };
}

const SHELLS = have('busybox') ? [['sh'], ['busybox', 'sh']] : [['sh']];

const CN_CONFIG = `config cn 'ap1'
	option mlr '10.0.0.2'
	option network_name 'campus'
	option cn_if 'eth0'
	option mobile_if 'br-lan'
	list tunnel_type 'ipip'
	list tunnel_type 'gre'

config cn
	option enabled '0'
	option mlr '10.0.0.2'
	option network_name 'campus'
	option cn_if 'eth9'
	option mobile_if 'wlan9'

config mlr
	option network_name 'campus'

config cn
	option enabled 'yes'
	option mlr '10.0.0.2:7000'
	option network_name 'campus'
	option cn_if 'eth1'
	option mobile_if 'eth1'
	option tunnel_prefix 'tmip1'

config cn 'ap4'
	option enabled 'off'
	option mlr '10.0.0.2'

config cn
	# the shipped placeholder MLR: not started
	option mlr '192.0.2.1:6554'
	option network_name 'campus'
	option cn_if 'eth2'
	option mobile_if 'wlan2'
`;

test('tmip-cn init: START/STOP/USE_PROCD and the reload trigger on the tmip config', () => {
  const text = fs.readFileSync(path.join(FILES, 'etc/init.d/tmip-cn'), 'utf8');
  assert.match(text, /^#!\/bin\/sh \/etc\/rc\.common\n/);
  for (const shell of SHELLS) {
    const { other } = runInit('tmip-cn', CN_CONFIG, [], shell);
    assert.ok(other.includes('START=95 STOP=10 USE_PROCD=1'), other.join('\n'));
    assert.ok(other.includes('config_load tmip'));
    assert.ok(other.includes('reload_trigger tmip'));
  }
});

test('tmip-cn init: one procd instance per enabled cn section, with a command line the daemon accepts', () => {
  const pkg = uci(CN_CONFIG);
  for (const shell of SHELLS) {
    const { instances, other } = runInit('tmip-cn', CN_CONFIG, [], shell);
    assert.deepEqual(
      instances.map((i) => i.name),
      ['ap1', 'cfg04cafe'],
      `instances (${shell.join(' ')})`,
    );
    const expect: [string, string, string[]][] = [
      ['ap1', 'eth0', ['br-lan', 'eth0']],
      ['@cn[2]', 'eth1', ['eth1']],
    ];
    instances.forEach((inst, i) => {
      const [ref, cnIf, netdev] = expect[i]!;
      const cmd = inst.params.command!;
      assert.deepEqual(cmd, ['/usr/bin/node', '/usr/lib/tmip/tmip-cn.js', '-f', '/etc/config/tmip', '-F', '-s', ref]);
      const args = parseArgs(cmd.slice(2), '/nonexistent');
      assert.ok(args.ok, `tmip-cn accepts ${cmd.slice(2).join(' ')}`);
      const { file, foreground, section, help, debug } = args.value;
      assert.deepEqual(
        { file, foreground, section, help, debug },
        { file: '/etc/config/tmip', foreground: true, section: ref, help: false, debug: undefined },
      );
      const cfg = parseCnConfig(pkg, ref);
      assert.ok(cfg.ok, `-s ${ref} names a valid cn section: ${cfg.ok ? '' : cfg.error}`);
      assert.equal(cfg.value.cnIf, cnIf, `-s ${ref} is the section the init script read`);
      assert.deepEqual(inst.params.respawn, []);
      assert.deepEqual(inst.params.stdout, ['1']);
      assert.deepEqual(inst.params.stderr, ['1']);
      assert.deepEqual(inst.params.file, ['/etc/config/tmip']);
      assert.deepEqual(inst.params.netdev, netdev);
      assert.ok(Number(inst.params.term_timeout?.[0]) >= 5, 'term_timeout');
    });
    const notices = other.filter((l) => l.startsWith('logger '));
    assert.equal(notices.length, 1, 'one notice, for the placeholder MLR');
    assert.match(notices[0]!, /tmip-cn .*tmip\.@cn\[4\].*placeholder 192\.0\.2\.1/);
  }
});

test('tmip-cn init: start with a section name starts that instance only', () => {
  const { instances } = runInit('tmip-cn', CN_CONFIG, ['ap1']);
  assert.deepEqual(
    instances.map((i) => i.name),
    ['ap1'],
  );
  assert.deepEqual(runInit('tmip-cn', CN_CONFIG, ['ap4']).instances, [], 'a disabled section stays stopped');
});

test('tmip-cn init: the shipped config starts nothing until the MLR address is set', () => {
  const shipped = fs.readFileSync(SHIPPED_CONFIG, 'utf8');
  const before = runInit('tmip-cn', shipped);
  assert.deepEqual(before.instances, []);
  assert.ok(
    before.other.some((l) => l.startsWith('logger ') && l.includes('tmip.@cn[0].mlr')),
    before.other.join('\n'),
  );

  const configured = shipped.replace("option mlr '192.0.2.1'", "option mlr '10.200.0.2'");
  assert.notEqual(configured, shipped);
  const after = runInit('tmip-cn', configured);
  assert.equal(after.instances.length, 1);
  const inst = after.instances[0]!;
  assert.deepEqual(inst.params.command!.slice(-2), ['-s', '@cn[0]']);
  assert.deepEqual(inst.params.netdev, ['br-lan', 'eth0']);
  assert.ok(parseCnConfig(uci(configured), '@cn[0]').ok);
  const off = runInit('tmip-cn', configured.replace("option enabled '1'", "option enabled '0'"));
  assert.deepEqual(off.instances, [], "option enabled '0' is honoured");
});

const MLR_CONFIG = `config cn
	option mlr '10.0.0.2'

config mlr
	option network_name 'campus'
	option port '7000'

config mlr 'spare'
	option enabled '0'
	option network_name 'other'
`;

test('tmip-mlr init: one procd instance per enabled mlr section, with a command line the daemon accepts', () => {
  const text = fs.readFileSync(path.join(FILES, 'etc/init.d/tmip-mlr'), 'utf8');
  assert.match(text, /^#!\/bin\/sh \/etc\/rc\.common\n/);
  const pkg = uci(MLR_CONFIG);
  for (const shell of SHELLS) {
    const { instances, other } = runInit('tmip-mlr', MLR_CONFIG, [], shell);
    assert.ok(other.includes('START=95 STOP=10 USE_PROCD=1'));
    assert.ok(other.includes('reload_trigger tmip'));
    assert.equal(instances.length, 1);
    const inst = instances[0]!;
    const cmd = inst.params.command!;
    assert.deepEqual(cmd, ['/usr/bin/node', '/usr/lib/tmip/tmip-mlr.js', '-f', '/etc/config/tmip', '-F', '-s', '@mlr[0]']);
    const args = parseArgs(cmd.slice(2), '/nonexistent');
    assert.ok(args.ok && args.value.section === '@mlr[0]' && args.value.foreground);
    const cfg = parseMlrConfig(pkg, '@mlr[0]');
    assert.ok(cfg.ok && cfg.value.port === 7000, 'the instance gets the enabled section');
    assert.deepEqual(inst.params.respawn, []);
    assert.deepEqual(inst.params.file, ['/etc/config/tmip']);
    assert.deepEqual(inst.params.stdout, ['1']);
    assert.deepEqual(inst.params.stderr, ['1']);
    assert.equal(inst.params.netdev, undefined);
  }
});

test("tmip-mlr's uci-defaults adds an mlr section the daemon accepts, with the shipped defaults", () => {
  const text = fs.readFileSync(path.join(FILES, 'etc/uci-defaults/90-tmip-mlr'), 'utf8');
  const lines = ['config mlr'];
  for (const m of text.matchAll(/^\s*(set|add_list) tmip\.@mlr\[-1\]\.(\w+)='([^']*)'$/gm)) {
    lines.push(`\t${m[1] === 'set' ? 'option' : 'list'} ${m[2]} '${m[3]}'`);
  }
  assert.ok(lines.length >= 8, lines.join('\n'));
  assert.match(text, /^\s*add tmip mlr$/m);
  assert.match(text, /^\s*commit tmip$/m);
  const cfg = parseMlrConfig(uci(lines.join('\n') + '\n'));
  assert.ok(cfg.ok, cfg.ok ? '' : cfg.error);
  assert.deepEqual(cfg.value.warnings, []);
  assert.equal(cfg.value.enabled, true);
  // the same values as the commented-out 'config mlr' of the shipped file
  const shipped = fs.readFileSync(SHIPPED_CONFIG, 'utf8');
  const sample = shipped
    .slice(shipped.indexOf('#config mlr'))
    .replace(/^#\t?(?!\t?#)/gm, '')
    .replace(/^#.*$/gm, '');
  const ref = parseMlrConfig(uci(sample));
  assert.ok(ref.ok, ref.ok ? '' : ref.error);
  const { warnings: _a, ...added } = cfg.value;
  const { warnings: _b, ...documented } = ref.value;
  assert.deepEqual(added, documented);
});

// ---------------------------------------------------------------------------------------------
// Makefiles (text-level; ipk.test.ts runs them against a stub SDK)

test('the feed Makefiles follow the OpenWrt layout and carry the package.json version', () => {
  const { version } = readJson(path.join(ROOT, 'package.json')) as { version: string };
  const tmip = fs.readFileSync(path.join(FEED, 'net/tmip/Makefile'), 'utf8');
  const luci = fs.readFileSync(path.join(LUCI_APP, 'Makefile'), 'utf8');
  const cap = fs.readFileSync(path.join(FEED, 'lang/node-cap/Makefile'), 'utf8');
  for (const [name, mk] of [
    ['net/tmip', tmip],
    ['luci-app-tmip', luci],
    ['node-cap', cap],
  ] as const) {
    assert.match(mk, /^include \$\(TOPDIR\)\/rules\.mk$/m, `${name} includes rules.mk`);
    // recipe lines inside define blocks are tab-indented
    for (const block of mk.matchAll(/^define (Build\/\w+|Package\/[\w-]+\/install)\n([\s\S]*?)^endef$/gm)) {
      for (const line of block[2]!.split('\n').filter((l) => l.trim() !== '')) {
        assert.match(line, /^\t/, `${name}: '${block[1]}' recipe lines start with a tab: ${JSON.stringify(line)}`);
      }
    }
  }
  assert.match(tmip, new RegExp(`^PKG_VERSION:=${version.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(luci, new RegExp(`^PKG_VERSION:=${version.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(tmip, /^\$\(eval \$\(call BuildPackage,tmip-cn\)\)$/m);
  assert.match(tmip, /^\$\(eval \$\(call BuildPackage,tmip-mlr\)\)$/m);
  assert.match(tmip, /^\s+PKGARCH:=all$/m);
  assert.match(tmip, /^define Package\/tmip-cn\/conffiles\n\/etc\/config\/tmip\nendef$/m);
  assert.match(luci, /^LUCI_DEPENDS:=\+luci-base \+tmip-cn$/m);
  assert.match(luci, /^include \$\(TOPDIR\)\/feeds\/luci\/luci\.mk$/m);
  assert.match(luci, /^# call BuildPackage - OpenWrt buildroot signature$/m, 'the signature the feed scanner looks for');
  // node-cap builds the version of cap the project locks, from the npm registry
  const lock = readJson(path.join(ROOT, 'package-lock.json')) as { packages: Record<string, { version?: string } | undefined> };
  assert.match(cap, new RegExp(`^PKG_VERSION:=${String(lock.packages['node_modules/cap']?.version).replace(/\./g, '\\.')}$`, 'm'));
  assert.match(cap, /^PKG_HASH:=[0-9a-f]{64}$/m);
  assert.match(cap, /^PKG_BUILD_DEPENDS:=node\/host$/m);
  for (const s of [
    'npm_config_arch=$(NODEJS_CPU)',
    'npm_config_target_arch=$(NODEJS_CPU)',
    'npm_config_build_from_source=true',
    'npm_config_nodedir=$(STAGING_DIR)/usr/',
    '$(MAKE_FLAGS)',
  ]) {
    assert.ok(cap.includes(s), `node-cap's build passes ${s}`);
  }
  assert.match(cap, /\/usr\/lib\/node\/\$\(PKG_NPM_NAME\)\/build\/Release/);
});
