// SPDX-License-Identifier: GPL-2.0-only
// The OpenWrt files (files/ and openwrt/): every shell script passes `sh -n` and `shellcheck -s sh`,
// every JSON file parses, the LuCI views compile and behave in a stub LuCI (settings validators agree
// with the daemons' config reader option by option; the status page renders the CN's ubus replies),
// the rpcd ACL and menu match the views, and the procd init scripts, run under a stub of rc.common's
// config_* and procd_* helpers, start exactly the instances and command lines the daemons accept.
// What the router's CN holds at start is pinned too: Node's flags, and no node:tls without TLS.
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
import { shippedNodeFlags } from '../support/node-flags.js';

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

test('each daemon is its own command: /usr/sbin/<name> execs node on the bundle with its arguments', () => {
  // The CN runs with V8's memory-saving flags (memory on a router, files/usr/sbin/tmip-cn says why);
  // the MLR, on a server, keeps V8's sizing, its threads and its optimising compiler.
  const flags = {
    'tmip-cn': '--max-semi-space-size=1 --v8-pool-size=1 --no-short-builtin-calls --max-opt=1 ',
    'tmip-mlr': '',
  };
  for (const prog of ['tmip-cn', 'tmip-mlr'] as const) {
    const text = fs.readFileSync(path.join(FILES, 'usr/sbin', prog), 'utf8');
    assert.match(text, /^#!\/bin\/sh\n/);
    const execs = text.split('\n').filter((l) => l.startsWith('exec '));
    assert.deepEqual(execs, [`exec /usr/bin/node ${flags[prog]}/usr/lib/tmip/${prog}.cjs "$@"`], 'exec keeps the pid procd logs under');
    assert.deepEqual(shippedNodeFlags(prog), flags[prog].split(' ').filter(Boolean), 'the lab runs the daemon with the same flags');
  }
});

test('the modules tmip-cn starts with load node:tls only when a TLS context is asked for (memory)', () => {
  // Every module src/cli/tmip-cn.ts imports (read from its compiled text; not the file itself: it runs
  // the daemon), then the context a tls:// or mqtts:// CN builds at start. Loaded at start, node:tls
  // costs a CN about 1 MB of RSS; fs/promises, readline and MQTT.js are never loaded by importing them
  // (about 0.6 MB, 0.6 MB and 1 MB; perf_hooks, loaded by a use of `performance`, ESLint keeps out).
  const cli = new URL('../../src/cli/tmip-cn.js', import.meta.url);
  const modules = [...fs.readFileSync(cli, 'utf8').matchAll(/^import .* from '(\.\.?\/[^']+)';$/gm)].map((m) => new URL(m[1]!, cli).href);
  assert.ok(modules.length >= 10 && modules.some((m) => m.endsWith('/platform/tls-channel.js')), modules.join('\n'));
  const code = `${modules.map((m) => `await import(${JSON.stringify(m)});`).join('')}
    const loaded = () => process.moduleLoadList.includes('NativeModule tls');
    const before = loaded();
    const others = ['fs/promises', 'readline', 'perf_hooks'].filter((m) => process.moduleLoadList.includes('NativeModule ' + m));
    const mqtt = Object.keys(require.cache).filter((f) => f.includes('/node_modules/mqtt/'));
    const { tlsClientContext } = await import(${JSON.stringify(new URL('../../src/platform/tls-channel.js', import.meta.url).href)});
    tlsClientContext({});
    process.stdout.write(JSON.stringify({ before, after: loaded(), others, mqtt }));`;
  const r = run(process.execPath, [
    '--input-type=module',
    '-e',
    `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); ${code}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { before: false, after: true, others: [], mqtt: [] });
});

test('the expected shell scripts are there and executable', () => {
  const names = SHELL_FILES.map(rel);
  for (const f of [
    'files/etc/init.d/tmip-cn',
    'files/etc/init.d/tmip-mlr',
    'files/usr/sbin/tmip-cn',
    'files/usr/sbin/tmip-mlr',
    'files/etc/uci-defaults/90-tmip-mlr',
    'files/etc/uci-defaults/90-tmip-cn',
    'files/usr/libexec/tmip/integrate',
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
  title?: string | undefined;
  description?: string | undefined;
  values: [string, string | undefined][];
  validate?: (this: StubOption, sid: string, value: string) => true | string;
  default?: string;
  rmempty?: boolean;
  enabled?: string;
  password?: boolean;
  placeholder?: string;
}
interface StubSection {
  type: string;
  kind: string;
  anonymous?: boolean;
  addremove?: boolean;
  title?: string | undefined;
  description?: string | undefined;
  options: StubOption[];
  tabs: string[];
  triggered: string[];
}

/**
 * What the form holds while the validators run, per section type, section id and option: what
 * LuCI's section.formvalue()/cfgvalue() and cfgsections() answer from.
 */
type FormState = Record<string, Record<string, Record<string, string>>>;

function stubForm(state: FormState = {}) {
  const maps: { config: string; title?: string | undefined; description?: string | undefined; sections: StubSection[] }[] = [];
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
  type OptionClass = new (s: StubSection, n: string) => StubOption;
  class TypedSection {
    kind = 'TypedSection';
    options: StubOption[] = [];
    tabs: string[] = [];
    constructor(
      public map: unknown,
      public type: string,
      public title?: string,
      public description?: string,
    ) {}
    tab(name: string) {
      this.tabs.push(name);
    }
    option(cls: OptionClass, name: string, title?: string, description?: string) {
      const o = new cls(this, name);
      o.title = title;
      o.description = description;
      this.options.push(o);
      return o;
    }
    taboption(tab: string, cls: OptionClass, name: string, title?: string, description?: string) {
      assert.ok(this.tabs.includes(tab), `tab '${tab}' is declared before option '${name}' uses it`);
      return this.option(cls, name, title, description);
    }
    cfgsections() {
      return Object.keys(state[this.type] ?? {});
    }
    formvalue(sid: string, opt: string) {
      return state[this.type]?.[sid]?.[opt] ?? null;
    }
    cfgvalue(sid: string, opt: string) {
      return this.formvalue(sid, opt);
    }
    /** validations of other options that a validator asked for, as `type.option` */
    triggered: string[] = [];
    getUIElement(sid: string, opt: string) {
      const o = this.options.find((x) => x.name === opt);
      return o
        ? {
            triggerValidation: () => {
              this.triggered.push(`${this.type}.${opt}`);
              return o.validate?.call(o, sid, this.formvalue(sid, opt) ?? '');
            },
          }
        : null;
    }
  }
  class TableSection extends TypedSection {
    override kind = 'TableSection';
  }
  class Map {
    sections: StubSection[] = [];
    constructor(
      public config: string,
      public title?: string,
      public description?: string,
    ) {
      maps.push(this);
    }
    section(
      cls: new (m: unknown, t: string, title?: string, description?: string) => StubSection,
      type: string,
      title?: string,
      description?: string,
    ) {
      const s = new cls(this, type, title, description);
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
    TableSection,
    Flag: option('Flag'),
    Value: option('Value'),
    ListValue: option('ListValue'),
    DynamicList: option('DynamicList'),
    MultiValue: option('MultiValue'),
  };
  const widgets = { DeviceSelect: option('DeviceSelect'), NetworkSelect: option('NetworkSelect') };
  return { form, widgets, maps };
}

async function settingsPage(state: FormState = {}) {
  const { form, widgets, maps } = stubForm(state);
  const view = loadView(
    path.join(VIEWS, 'tmip/settings.js'),
    { view: { extend: (o: unknown) => o }, form, widgets },
    { _: (s: string) => s, L: {}, E: () => ({}) },
  );
  await view.render();
  assert.equal(maps.length, 1);
  assert.equal(maps[0]!.config, 'tmip');
  return maps[0]!;
}

async function settingsSections(state: FormState = {}): Promise<Record<string, StubSection>> {
  return Object.fromEntries((await settingsPage(state)).sections.map((s) => [s.type, s]));
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

/**
 * Option names the config reader reads, from config.ts (best effort: a refactor can only shrink the
 * set): parseCnConfig's section ('cn'), parseMlrConfig's own section ('mlr') or its key sections ('key').
 */
function daemonOptions(type: 'cn' | 'mlr' | 'key'): Set<string> {
  const src = fs.readFileSync(path.join(ROOT, 'src/core/config.ts'), 'utf8');
  const cn = src.indexOf('export function parseCnConfig');
  const mlr = src.indexOf('export function parseMlrConfig');
  const body = type === 'cn' ? src.slice(cn, mlr) : src.slice(mlr);
  const reader = type === 'key' ? 'kr' : type === 'mlr' ? 'r' : '(?:r|ifname)';
  const names = new Set([...body.matchAll(new RegExp(`(?<![\\w.])${reader}(?:\\.\\w+)?\\('([a-z_]+)'`, 'g'))].map((m) => m[1]!));
  if (type === 'key') return names;
  if (body.includes('r.networkName()')) names.add('network_name');
  if (body.includes('r.tunnelTypes()')) names.add('tunnel_type');
  if (body.includes('r.tlsFiles()')) for (const n of ['tls_ca', 'tls_cert', 'tls_key']) names.add(n);
  return names;
}

const HEX = '5e0c1a5b9d3f4e7a8c2b6d0f1e3a5c7b9d1f3e5a7c9b0d2f4e6a8c0b2d4f6e8a';
const BASE_CN: Record<string, string> = { mlr: '10.0.0.2', network_name: 'campus', cn_if: 'eth0', mobile_if: 'wlan0' };
const BASE_MLR: Record<string, string> = { network_name: 'campus' };
const BASE_KEY: Record<string, string> = { cn: 'ap1', secret: HEX };
const BASES: Record<SettingsType, Record<string, string>> = { cn: BASE_CN, mlr: BASE_MLR, key: BASE_KEY };
type SettingsType = 'cn' | 'mlr' | 'key';

function sectionLines(type: string, options: Record<string, string>, lists: Set<string> = new Set()): string[] {
  const lines = [`config ${type}`];
  for (const [k, v] of Object.entries(options)) lines.push(`\t${lists.has(k) ? 'list' : 'option'} ${k} ${q(v)}`);
  return lines;
}

/**
 * The config for a sample: the type's base section with `options` on top; an mlr section comes with one
 * key section (authentication is on by default) and a key section with the mlr section it belongs to.
 */
function sampleConfig(type: SettingsType, options: Record<string, string>, lists: Set<string> = new Set(), keys = 1): string {
  const own = sectionLines(type, { ...BASES[type], ...options }, lists);
  const extraKeys = Array.from({ length: keys }, (_x, i) => sectionLines('key', { cn: `ap${i + 1}`, secret: HEX }));
  const sections =
    type === 'cn' ? [own] : type === 'mlr' ? [own, ...extraKeys] : [sectionLines('mlr', BASE_MLR), own, ...extraKeys.slice(1)];
  return sections.map((s) => s.join('\n') + '\n').join('\n');
}

function parseFor(type: SettingsType, text: string) {
  const pkg = uci(text);
  return type === 'cn' ? parseCnConfig(pkg) : parseMlrConfig(pkg);
}

/** Whether the daemon's config reader accepts `value` for `opt` (no error naming another option). */
function daemonAccepts(type: SettingsType, opt: string, value: string, list: boolean, companions: Record<string, string> = {}): boolean {
  const r = parseFor(type, sampleConfig(type, { ...companions, [opt]: value }, new Set(list ? [opt] : [])));
  if (r.ok) {
    assert.ok(
      !r.value.warnings.some((w) => w.includes('unknown option')),
      `the daemon knows ${type}.${opt}: ${r.value.warnings.join('; ')}`,
    );
    return true;
  }
  const at = type === 'key' ? `@key[0].${opt}` : `.${opt}`;
  assert.ok(r.error.includes(at), `errors of ${type}.${opt}=${JSON.stringify(value)} name the option only:\n${r.error}`);
  return false;
}

const x = (c: string, n: number) => c.repeat(n);

const CN_SAMPLES: Record<string, string[]> = {
  cn_network: ['wan', 'wan_2', 'WAN', x('n', 15), x('n', 16), 'wan-1', 'wan 2', 'br.lan'],
  mobile_network: ['lan', x('n', 15), x('n', 16), 'lan/2'],
  mlr: [
    '10.0.0.1',
    '10.0.0.1:6554',
    'mlr.example.org',
    'mlr.example.org:1',
    'host:0',
    'host:65536',
    'host:',
    ':80',
    'host:00080',
    'host:000080',
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
    // the transports
    'tcp://10.0.0.1',
    'tcp://mlr.lan:6554',
    'tls://mlr.lan',
    'tls://10.0.0.1:6555',
    'mqtt://broker.lan',
    'mqtts://broker.lan:8883',
    'mqtts://broker.lan/',
    'mqtts://broker.lan//',
    'mqtts://broker.lan/path',
    'http://mlr.lan',
    'TCP://mlr.lan',
    'tcp:/mlr.lan',
    'tcp://',
    'tls:///',
    'mqtt://:1883',
    'mqtt://broker.lan:0',
    'mqtt://broker.lan:99999',
    'tls://::1',
    'mqtt://a b',
    'tls://1.2.3',
  ],
  network_name: ['campus', "it's", 'a b', x('n', 64), x('n', 65), 'é', '!~', ''],
  cn_name: [
    'AP library',
    'Library 2nd floor',
    'ap-1.lab_2:x',
    'a',
    x('c', 64),
    x('c', 65),
    x('ü', 64),
    'ü',
    'tab\there',
    ' lead',
    'trail ',
    '<img src=x onerror=alert(1)>',
    'a"b',
    "a'b",
    'a&b',
  ],
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
  new_station_rate: ['1', '20', '10000', '0', '10001', 'x'],
  tunnel_linger: ['0', '60', '3600', '3601', '-1', 'x'],
  tunnel_prefix: ['tmip0', 'a', x('a', 7), x('a', 8), '0abc', 'Tmip', 'a_b', 'a-b'],
  tunnel_type: ['ipip', 'gre', 'vxlan', 'GRE', 'sit', 'ipip gre'],
  status_file: ['/var/run/tmip/cn.status', 'relative/path', '/with\ttab', `/${x('p', 4094)}`, `/${x('p', 4095)}`],
  ubus_socket: ['/var/run/ubus/ubus.sock', 'ubus.sock'],
  secret: [HEX, HEX.toUpperCase(), HEX.slice(1), `${HEX}0`, x('g', 64), `${HEX.slice(1)} `, 'secret'],
  tls_ca: ['/etc/tmip/ca.pem', 'ca.pem', '/with\ttab'],
  tls_cert: ['/etc/tmip/cn.pem', 'cn.pem', '/with\nnewline'],
  tls_key: ['/etc/tmip/cn.key', 'cn.key'],
};
const LIST_OPTIONS = new Set(['addr_pool', 'dns_server', 'tunnel_type', 'mlr']);

const MLR_SAMPLES: Record<string, string[]> = {
  network_name: ['campus', 'a b', x('n', 65), ''],
  port: ['1', '6554', '65535', '0', '65536', 'abc', '-1'],
  listen: ['0.0.0.0', '10.0.0.1', 'host', '10.0.0.1/24'],
  state_file: ['/etc/tmip/mlr.state', 'mlr.state'],
  store: [
    'etcd://10.0.0.1:2379,10.0.0.2:2381,etcd.lan',
    'etcd://10.0.0.1/',
    'etcd://10.0.0.1:0',
    'etcd://10.0.0.300',
    'etcd://a,a',
    'etcd://',
    'http://10.0.0.1:2379',
  ],
  offer_hold: ['1', '3600', '0', '3601'],
  lease_grace: ['0', '86400', '86401', 'x'],
  max_offers: ['1', '4096', '0', '4097', 'x'],
  decline_quarantine: ['0', '86400', '86401', '-1'],
  tunnel_type: ['ipip', 'vxlan', 'udp'],
  mqtt: [
    'mqtt://broker.lan',
    'mqtts://broker.lan',
    'mqtts://10.0.0.1:8883',
    'mqtt://broker.lan/',
    'broker.lan',
    'broker.lan:1883',
    'tcp://broker.lan',
    'tls://broker.lan',
    'http://broker.lan',
    'mqtt://',
    'mqtt://broker.lan:0',
    'mqtts://::1',
  ],
  mqtt_ca: ['/etc/tmip/broker-ca.pem', 'broker-ca.pem'],
  tls_port: ['6555', '1', '65535', '0', '65536', 'x'],
  tls_cert: ['/etc/tmip/mlr.pem', 'mlr.pem'],
  tls_key: ['/etc/tmip/mlr.key', 'mlr.key'],
  tls_ca: ['/etc/tmip/ca.pem', 'ca.pem'],
};

const KEY_SAMPLES: Record<string, string[]> = {
  cn: ['ap-library', 'Library 2nd floor', 'cn', ' ap', x('k', 64), x('k', 65), '<script>alert(1)</script>', ''],
  secret: [HEX, HEX.toUpperCase(), HEX.slice(2), 'x', ''],
};

/** Options that only make sense with others set: those are set too, in the form and in the config. */
const COMPANIONS: Record<string, Record<string, string>> = {
  'cn.cn_network': { cn_if: '' },
  'cn.mobile_network': { mobile_if: '' },
  'cn.tls_cert': { tls_key: '/etc/tmip/cn.key' },
  'cn.tls_key': { tls_cert: '/etc/tmip/cn.pem' },
  'mlr.tls_cert': { tls_key: '/etc/tmip/mlr.key' },
  'mlr.tls_key': { tls_cert: '/etc/tmip/mlr.pem' },
  'mlr.tls_port': { tls_cert: '/etc/tmip/mlr.pem', tls_key: '/etc/tmip/mlr.key' },
};

const SID = 'cfg0123ab';

/** LuCI's verdict on `value` for `type.opt`, with the form holding `others` in the same section. */
async function luciVerdict(type: SettingsType, opt: string, value: string, others: Record<string, string> = {}, state: FormState = {}) {
  const sections = await settingsSections({ ...state, [type]: { ...state[type], [SID]: { ...others, [opt]: value } } });
  const o = optionNamed(sections[type]!, opt);
  assert.equal(typeof o.validate, 'function', `${type}.${opt} has a validator`);
  const verdict = o.validate!(SID, value);
  assert.ok(verdict === true || (typeof verdict === 'string' && verdict.length > 0), `${type}.${opt}: validator returns true or a message`);
  return verdict;
}

test('the settings page has anonymous, addable cn and mlr sections and a table of CN keys', async () => {
  const sections = await settingsSections();
  for (const type of ['cn', 'mlr', 'key']) {
    const s = sections[type];
    assert.ok(s, `a section of type '${type}'`);
    assert.equal(s.anonymous, true, `${type} is anonymous`);
    assert.equal(s.addremove, true, `${type} sections can be added and removed`);
  }
  assert.equal(sections.key!.kind, 'TableSection', 'the keys are a table');
  assert.deepEqual(
    sections.key!.options.map((o) => o.name),
    ['cn', 'secret'],
  );
  const page = await settingsPage();
  assert.deepEqual(
    page.sections.map((s) => s.type),
    ['cn', 'mlr', 'key'],
    'the keys come right after the MLR section they belong to',
  );
});

test('the settings page exposes every option of the shipped config and of the config readers', async () => {
  const sections = await settingsSections();
  const shipped = shippedOptions();
  assert.ok(shipped.cn && shipped.cn.size >= 20, `options found in the shipped config: ${[...(shipped.cn ?? [])].join(' ')}`);
  assert.ok(shipped.mlr && shipped.mlr.size >= 16);
  for (const type of Object.keys(shipped)) {
    assert.ok(sections[type], `the settings page has the '${type}' sections of files/etc/config/tmip`);
    const exposed = new Set(sections[type].options.map((o) => o.name));
    for (const opt of shipped[type]!) assert.ok(exposed.has(opt), `${type}.${opt} (in files/etc/config/tmip) is on the settings page`);
  }
  for (const [type, min] of [
    ['cn', 20],
    ['mlr', 16],
    ['key', 2],
  ] as const) {
    const exposed = new Set(sections[type]!.options.map((o) => o.name));
    const read = daemonOptions(type);
    assert.ok(read.size >= min, `options read for ${type}: ${[...read].join(' ')}`);
    for (const opt of read) assert.ok(exposed.has(opt), `${type}.${opt} (read by the daemon) is on the settings page`);
  }
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
    max_offers: '256',
    decline_quarantine: '600',
    new_station_rate: '20',
    tunnel_linger: '60',
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
    store: 'etcd://10.0.0.1:2379',
    secret: HEX,
    tls_ca: '/etc/tmip/ca.pem',
    tls_cert: '/etc/tmip/cert.pem',
    tls_key: '/etc/tmip/key.pem',
    tls_port: '6555',
    mqtt_username: 'user',
    mqtt_password: 'pass word',
    mqtt: 'mqtts://broker.lan',
    mqtt_ca: '/etc/tmip/broker-ca.pem',
    auth: '1',
    cn: 'ap1',
    cn_network: 'wan',
    mobile_network: 'lan',
  };
  const all = (type: SettingsType) => {
    const opts: Record<string, string> = {};
    for (const o of sections[type]!.options) {
      assert.ok(o.name in valid, `test knows a valid value for ${type}.${o.name}`);
      opts[o.name] = valid[o.name]!;
    }
    return { opts, lists: new Set(sections[type]!.options.filter((o) => o.kind === 'DynamicList').map((o) => o.name)) };
  };
  const cn = all('cn');
  // each side is a device or a logical interface, not both: the networks here, the devices below
  delete cn.opts['cn_if'];
  delete cn.opts['mobile_if'];
  const devices = parseFor(
    'cn',
    sectionLines('cn', { ...cn.opts, cn_network: '', mobile_network: '', cn_if: 'eth0', mobile_if: 'wlan0' }, cn.lists).join('\n') + '\n',
  );
  assert.ok(devices.ok && devices.value.warnings.length === 0, devices.ok ? devices.value.warnings.join('; ') : devices.error);
  const mlr = all('mlr');
  delete mlr.opts['store']; // the registry in etcd or in state_file, not both: the samples check store alone
  const key = all('key');
  const cnText = sectionLines('cn', cn.opts, cn.lists).join('\n') + '\n';
  const mlrText = [sectionLines('mlr', mlr.opts, mlr.lists), sectionLines('key', key.opts)].map((s) => s.join('\n') + '\n').join('\n');
  for (const [type, text] of [
    ['cn', cnText],
    ['mlr', mlrText],
  ] as const) {
    const r = parseFor(type, text);
    assert.ok(r.ok, `${type} with every option of the page parses: ${r.ok ? '' : r.error}`);
    assert.deepEqual(r.value.warnings, [], `no unknown options in ${type}`);
  }
});

test('the settings validators accept exactly what the daemons accept', async () => {
  const check = async (type: SettingsType, samples: Record<string, string[]>) => {
    for (const [opt, values] of Object.entries(samples)) {
      const list = LIST_OPTIONS.has(opt);
      const o = optionNamed((await settingsSections())[type]!, opt);
      assert.equal(o.kind === 'DynamicList', list, `${type}.${opt} is ${list ? '' : 'not '}a list`);
      const companions = COMPANIONS[`${type}.${opt}`] ?? {};
      for (const value of values) {
        const luci = await luciVerdict(type, opt, value, companions);
        const daemon = daemonAccepts(type, opt, value, list, companions);
        assert.equal(
          luci === true,
          daemon,
          `${type}.${opt} = ${JSON.stringify(value)}: LuCI says ${luci === true ? 'ok' : JSON.stringify(luci)}, the daemon ${daemon ? 'accepts' : 'refuses'} it`,
        );
      }
    }
  };
  await check('cn', CN_SAMPLES);
  await check('mlr', MLR_SAMPLES);
  await check('key', KEY_SAMPLES);
});

test('the settings validators check the options that go together as the daemons do', async () => {
  const cases: { what: string; type: SettingsType; opt: string; value: string; form: Record<string, string>; config: string }[] = [];
  for (const [type, cert, key] of [
    ['cn', '/etc/tmip/cn.pem', '/etc/tmip/cn.key'],
    ['mlr', '/etc/tmip/mlr.pem', '/etc/tmip/mlr.key'],
  ] as const) {
    cases.push(
      {
        what: 'a certificate without its key',
        type,
        opt: 'tls_cert',
        value: cert,
        form: {},
        config: sampleConfig(type, { tls_cert: cert }),
      },
      { what: 'a key without its certificate', type, opt: 'tls_key', value: key, form: {}, config: sampleConfig(type, { tls_key: key }) },
      {
        what: 'no certificate, with a key',
        type,
        opt: 'tls_cert',
        value: '',
        form: { tls_key: key },
        config: sampleConfig(type, { tls_key: key }),
      },
      {
        what: 'no key, with a certificate',
        type,
        opt: 'tls_key',
        value: '',
        form: { tls_cert: cert },
        config: sampleConfig(type, { tls_cert: cert }),
      },
      { what: 'neither', type, opt: 'tls_cert', value: '', form: {}, config: sampleConfig(type, {}) },
      {
        what: 'both',
        type,
        opt: 'tls_key',
        value: key,
        form: { tls_cert: cert },
        config: sampleConfig(type, { tls_cert: cert, tls_key: key }),
      },
    );
  }
  cases.push(
    {
      what: 'a TLS port without certificate and key',
      type: 'mlr',
      opt: 'tls_port',
      value: '6555',
      form: {},
      config: sampleConfig('mlr', { tls_port: '6555' }),
    },
    {
      what: 'a TLS port with a certificate only',
      type: 'mlr',
      opt: 'tls_port',
      value: '6555',
      form: { tls_cert: '/etc/tmip/mlr.pem' },
      config: sampleConfig('mlr', { tls_port: '6555', tls_cert: '/etc/tmip/mlr.pem' }),
    },
  );
  for (const c of cases) {
    const luci = await luciVerdict(c.type, c.opt, c.value, c.form);
    const daemon = parseFor(c.type, c.config).ok;
    assert.equal(
      luci === true,
      daemon,
      `${c.type}: ${c.what}: LuCI says ${luci === true ? 'ok' : JSON.stringify(luci)}, the daemon ${daemon ? 'accepts' : 'refuses'} it`,
    );
  }

  // a certificate's check validates its key again (and the TLS port), whose check does not come back
  const pair = await settingsSections({ mlr: { [SID]: { tls_cert: '/etc/tmip/mlr.pem', tls_port: '6555' } } });
  const cert = optionNamed(pair.mlr!, 'tls_cert');
  assert.notEqual(cert.validate!(SID, '/etc/tmip/mlr.pem'), true, 'the certificate needs its key');
  assert.deepEqual(pair.mlr!.triggered, ['mlr.tls_key', 'mlr.tls_port']);

  // authentication on needs a key; off does not
  for (const [auth, keys] of [
    ['1', 0],
    ['1', 1],
    ['1', 2],
    ['0', 0],
  ] as const) {
    const state: FormState = {
      key: Object.fromEntries(Array.from({ length: keys }, (_x, i) => [`cfgkey${i}`, { cn: `ap${i + 1}`, secret: HEX }])),
    };
    const luci = await luciVerdict('mlr', 'auth', auth, {}, state);
    const daemon = parseFor('mlr', sampleConfig('mlr', { auth }, new Set(), keys)).ok;
    assert.equal(
      luci === true,
      daemon,
      `auth ${auth} with ${keys} keys: LuCI says ${String(luci)}, the daemon ${daemon ? 'accepts' : 'refuses'} it`,
    );
  }

  // one key per CN: the daemon refuses the later duplicates
  const state: FormState = {
    key: { cfgkey0: { cn: 'ap1', secret: HEX }, cfgkey1: { cn: 'ap2', secret: HEX }, cfgkey2: { cn: 'ap1', secret: HEX } },
  };
  const keyCn = optionNamed((await settingsSections(state)).key!, 'cn');
  assert.equal(keyCn.validate!('cfgkey0', 'ap1'), true, 'the first key of a CN is fine');
  assert.equal(keyCn.validate!('cfgkey1', 'ap2'), true);
  assert.notEqual(keyCn.validate!('cfgkey2', 'ap1'), true, 'a second key of the same CN is not');
  const dup = parseMlrConfig(uci(sampleConfig('mlr', {}, new Set(), 2).replace("option cn 'ap2'", "option cn 'ap1'")));
  assert.ok(!dup.ok && dup.error.includes('@key[1].cn'), dup.ok ? 'accepted' : dup.error);
});

test('optional settings may be left empty, required ones may not', async () => {
  const sections = await settingsSections();
  const required = new Set(['cn.mlr', 'cn.network_name', 'mlr.network_name', 'key.cn', 'key.secret']);
  // one of each pair: a device or a logical interface
  const pairs: Record<string, string> = {
    cn_if: 'cn_network',
    cn_network: 'cn_if',
    mobile_if: 'mobile_network',
    mobile_network: 'mobile_if',
  };
  for (const [opt, partner] of Object.entries(pairs)) {
    const neither = await luciVerdict('cn', opt, '', { [partner]: '' });
    assert.notEqual(neither, true, `cn.${opt}: one of ${opt} and ${partner} is needed`);
    assert.equal(parseFor('cn', sampleConfig('cn', { [opt]: '', [partner]: '' })).ok, false, 'nor does the daemon take neither');
    assert.equal(
      await luciVerdict('cn', opt, '', { [partner]: partner.endsWith('_if') ? 'eth1' : 'wan' }),
      true,
      `cn.${opt} may be empty when ${partner} is set`,
    );
    const both = await luciVerdict('cn', opt, opt.endsWith('_if') ? 'eth1' : 'wan', {
      [partner]: partner.endsWith('_if') ? 'eth1' : 'wan',
    });
    assert.notEqual(both, true, `cn.${opt} and ${partner} together are refused`);
  }
  for (const type of ['cn', 'mlr', 'key']) {
    for (const o of sections[type]!.options) {
      if (!o.validate || (type === 'cn' && o.name in pairs)) continue;
      const empty = o.validate(SID, '');
      if (required.has(`${type}.${o.name}`)) {
        assert.notEqual(empty, true, `${type}.${o.name} is required`);
        assert.equal(o.rmempty, false, `${type}.${o.name} keeps its value`);
      } else assert.equal(empty, true, `${type}.${o.name} may be empty`);
    }
  }
});

test('keys and passwords are password fields', async () => {
  const sections = await settingsSections();
  for (const [type, name] of [
    ['cn', 'secret'],
    ['cn', 'mqtt_password'],
    ['mlr', 'mqtt_password'],
    ['key', 'secret'],
  ] as const) {
    assert.equal(optionNamed(sections[type]!, name).password, true, `${type}.${name} is a password field`);
  }
  for (const type of ['cn', 'key'] as const) {
    assert.match(
      String(optionNamed(sections[type]!, 'secret').description),
      /tmip-mlr keygen NAME/,
      'the key help points at tmip-mlr keygen',
    );
  }
  assert.match(String(sections.key!.description), /tmip-mlr keygen NAME/);
});

test('flags default to on and are written as 0 when cleared; levels and tunnel types match the daemon', async () => {
  const sections = await settingsSections();
  const flags: [string, string][] = [
    ['cn', 'enabled'],
    ['cn', 'mss_clamp'],
    ['cn', 'hostapd'],
    ['cn', 'require_association'],
    ['mlr', 'enabled'],
    ['mlr', 'auth'],
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
  for (const name of ['cn_network', 'mobile_network']) assert.equal(optionNamed(sections.cn!, name).kind, 'NetworkSelect');
  // the labels are the daemons' levels (src/platform/log.ts), not syslog's
  for (const type of ['cn', 'mlr']) {
    const labels = optionNamed(sections[type]!, 'debug_level').values.map((v) => String(v[1]));
    assert.match(labels[0]!, /^0 – nothing$/);
    assert.match(labels[1]!, /^1 – errors$/);
    assert.match(labels[2]!, /^2 – start-up and state changes$/);
    assert.match(labels[3]!, /^3 – each handover step$/);
    assert.match(labels[5]!, /^5 – every protocol message$/);
    for (const l of labels) assert.doesNotMatch(l, /emergenc|alert|critical|warning|notice/, 'no syslog severities');
  }
  const shipped = fs.readFileSync(SHIPPED_CONFIG, 'utf8');
  assert.doesNotMatch(shipped, /emergenc/, 'nor in the shipped config');
  // a new MLR (or CN) section comes with the network name filled in: it can be saved as it is
  for (const type of ['cn', 'mlr'] as const) {
    const o = optionNamed(sections[type]!, 'network_name');
    assert.equal(o.default, 'tmip');
    assert.equal(o.validate!(SID, String(o.default)), true);
  }
});

test('titles and help texts of the settings page are markup as meant: no text is swallowed as a tag', async () => {
  // LuCI's form.js renders them with E('div', {...}, text): markup (see the fake DOM below)
  const page = await settingsPage();
  const texts: [string, string][] = [
    ['map title', page.title ?? ''],
    ['map description', page.description ?? ''],
  ];
  for (const s of page.sections) {
    texts.push([`${s.type} title`, s.title ?? ''], [`${s.type} description`, s.description ?? '']);
    for (const o of s.options)
      texts.push([`${s.type}.${o.name} title`, o.title ?? ''], [`${s.type}.${o.name} description`, o.description ?? '']);
  }
  const { parseHtml } = fakeDom();
  for (const [what, text] of texts) {
    const tags = parseHtml(text)
      .flatMap((n) => descendants(n))
      .filter((n) => n.nodeType === 1)
      .map((n) => n.tag);
    assert.ok(
      tags.every((t) => t === 'code'),
      `${what} holds no markup but <code>: ${JSON.stringify(text)}`,
    );
    assert.doesNotMatch(text, /&(?![a-z]+;|#\d+;)/, `${what}: a literal & is written &amp;`);
  }
  const pool = optionNamed(Object.fromEntries(page.sections.map((s) => [s.type, s])).cn!, 'addr_pool');
  const shown = parseHtml(pool.description ?? '')
    .map((n) => n.textContent)
    .join('');
  assert.ok(shown.includes('"<interface or subnet> <first|*> <last|*>"'), `the addr_pool help shows its syntax: ${shown}`);
});

// -- status page -------------------------------------------------------------------------------

/**
 * A small DOM, and LuCI's E(), dom.content() and cbi_update_table() on it, behaving as LuCI's do for
 * what matters here, text versus markup. From openwrt/luci, modules/luci-base/htdocs/luci-static/
 * resources/luci.js (dom.create, dom.append, dom.content):
 *   - dom.create(tag, attrs, children): attrs is any non-array object; a tag starting with '<' is
 *     parsed as HTML; then dom.attr() (functions become listeners) and dom.append();
 *   - dom.append(node, children): an ARRAY's items are appended, DOM nodes as they are and anything
 *     else as document.createTextNode(String(item)); a function is called and its result appended;
 *     a node is appended; ANY OTHER VALUE, A STRING INCLUDED, IS ASSIGNED TO node.innerHTML;
 *   - dom.content(node, children) empties node, then dom.append(node, children).
 * And from ui.js (Table.update, what cbi_update_table() calls): every cell becomes
 * E('td', { 'class': 'td', 'data-value': raw }, cell) (cell = [raw, shown] or shown), so a string
 * cell is markup too; an empty table gets a placeholder row.
 * innerHTML is parsed by a sketch of the browser's parser: an element per tag, entities decoded, the
 * body of <script>/<style> kept as text. Elements it makes are marked fromMarkup, and every string
 * assigned to innerHTML is logged.
 */
class FakeNode {
  childNodes: FakeNode[] = [];
  attrs: Record<string, string> = {};
  listeners: Record<string, (...a: unknown[]) => unknown> = {};
  style: Record<string, string> = {};
  parentNode: FakeNode | null = null;
  fromMarkup = false;
  /** cbi_update_table: the cells of each row, and the placeholder it was given */
  rows?: FakeNode[][];
  placeholder?: FakeNode;
  constructor(
    public nodeType: 1 | 3 | 11,
    public tag: string,
    public data = '',
  ) {}
  get textContent(): string {
    return this.nodeType === 3 ? this.data : this.childNodes.map((c) => c.textContent).join('');
  }
  appendChild(n: FakeNode): FakeNode {
    if (n.nodeType === 11) {
      for (const c of [...n.childNodes]) this.appendChild(c);
      return n;
    }
    n.parentNode?.removeChild(n);
    n.parentNode = this;
    this.childNodes.push(n);
    return n;
  }
  removeChild(n: FakeNode): FakeNode {
    this.childNodes = this.childNodes.filter((c) => c !== n);
    n.parentNode = null;
    return n;
  }
}

function descendants(n: FakeNode): FakeNode[] {
  return [n, ...n.childNodes.flatMap(descendants)];
}

const isNode = (v: unknown): v is FakeNode => v instanceof FakeNode;

/** A value as JavaScript makes a string of it (LuCI's `'' + value`). */
function str(v: unknown): string {
  return String(v);
}

function fakeDom() {
  const innerHtmlWrites: string[] = [];
  const VOID = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr']);
  const RAW = new Set(['script', 'style', 'textarea', 'title']);
  const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'", nbsp: '\u00a0' };
  const decode = (s: string) =>
    s.replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (m, e: string) =>
      e[0] === '#'
        ? String.fromCodePoint(parseInt(e.slice(e[1] === 'x' || e[1] === 'X' ? 2 : 1), e[1] === 'x' || e[1] === 'X' ? 16 : 10))
        : (ENTITIES[e.toLowerCase()] ?? m),
    );
  const text = (s: string) => new FakeNode(3, '#text', s);

  function parseHtml(html: string): FakeNode[] {
    const root = new FakeNode(11, '#fragment');
    const stack = [root];
    const re = /<!--[\s\S]*?(?:-->|$)|<\/([A-Za-z][^\s/>]*)[^>]*>|<([A-Za-z][^\s/>]*)((?:[^>"']|"[^"]*"|'[^']*')*)>|[^<]+|</g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(html)) !== null) {
      const top = stack[stack.length - 1]!;
      if (m[0].startsWith('<!--')) continue;
      if (m[1] !== undefined) {
        const tag = m[1].toLowerCase();
        const i = stack.map((n) => n.tag).lastIndexOf(tag);
        if (i > 0) stack.length = i;
        continue;
      }
      if (m[2] !== undefined) {
        const tag = m[2].toLowerCase();
        const el = new FakeNode(1, tag);
        el.fromMarkup = true;
        for (const a of (m[3] ?? '').matchAll(/([^\s=/]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g)) {
          el.attrs[a[1]!.toLowerCase()] = decode((a[2] ?? '').replace(/^(["'])([\s\S]*)\1$/, '$2'));
        }
        top.appendChild(el);
        if (RAW.has(tag)) {
          const end = html.toLowerCase().indexOf(`</${tag}`, re.lastIndex);
          const body = html.slice(re.lastIndex, end < 0 ? html.length : end);
          if (body !== '') el.appendChild(text(tag === 'textarea' || tag === 'title' ? decode(body) : body));
          re.lastIndex = end < 0 ? html.length : end;
        } else if (!VOID.has(tag) && !/\/\s*$/.test(m[3] ?? '')) stack.push(el);
        continue;
      }
      top.appendChild(text(decode(m[0])));
    }
    return [...root.childNodes];
  }

  function setInnerHTML(node: FakeNode, html: string) {
    innerHtmlWrites.push(html);
    for (const c of [...node.childNodes]) node.removeChild(c);
    for (const n of parseHtml(html)) node.appendChild(n);
  }

  const dom = {
    attr(node: FakeNode, attrs: unknown) {
      if (attrs == null || typeof attrs !== 'object') return;
      for (const [k, v] of Object.entries(attrs as Record<string, unknown>)) {
        if (v == null) continue;
        if (typeof v === 'function') node.listeners[k] = v as (...a: unknown[]) => unknown;
        else node.attrs[k] = typeof v === 'object' ? JSON.stringify(v) : str(v);
      }
    },
    append(node: FakeNode, children: unknown): FakeNode | null {
      if (Array.isArray(children)) {
        for (const c of children as unknown[]) {
          if (isNode(c)) node.appendChild(c);
          else if (c != null) node.appendChild(text(str(c)));
        }
        return node.childNodes[node.childNodes.length - 1] ?? null;
      }
      if (typeof children === 'function') return dom.append(node, (children as (n: FakeNode) => unknown)(node));
      if (isNode(children)) return node.appendChild(children);
      if (children != null) {
        setInnerHTML(node, str(children));
        return node.childNodes[node.childNodes.length - 1] ?? null;
      }
      return null;
    },
    content(node: FakeNode, children: unknown) {
      for (const c of [...node.childNodes]) node.removeChild(c);
      return dom.append(node, children);
    },
    create(tag: unknown, attrs?: unknown, children?: unknown): FakeNode {
      if (attrs == null || typeof attrs !== 'object' || Array.isArray(attrs) || isNode(attrs)) {
        // (LuCI takes any Object for attributes, a node included; the views never pass one there)
        assert.ok(!isNode(attrs), 'E(tag, node): LuCI would take the node for attributes');
        children = attrs;
        attrs = null;
      }
      let elem: FakeNode;
      if (Array.isArray(tag)) {
        elem = new FakeNode(11, '#fragment');
        for (const t of tag as unknown[]) elem.appendChild(dom.create(t));
      } else if (isNode(tag)) elem = tag;
      else if (str(tag).charCodeAt(0) === 60) elem = parseHtml(str(tag))[0] ?? new FakeNode(11, '#fragment');
      else elem = new FakeNode(1, str(tag));
      dom.attr(elem, attrs);
      dom.append(elem, children);
      return elem;
    },
  };
  const E = (tag: unknown, attrs?: unknown, children?: unknown) => dom.create(tag, attrs, children);

  function cbi_update_table(table: FakeNode, data: unknown[][], placeholder: FakeNode) {
    const titles = table.childNodes.find((n) => (n.attrs.class ?? '').includes('table-titles'));
    assert.ok(titles, 'the table has a title row');
    const columns = titles.childNodes.filter((n) => n.tag === 'th').length;
    for (const row of table.childNodes.filter((n) => n !== titles)) table.removeChild(row);
    table.rows = Array.from(data, (row) => {
      const tr = table.appendChild(E('tr', { class: 'tr' }));
      const cells: FakeNode[] = [];
      for (let i = 0; i < columns; i++) {
        const cell = row[i];
        const raw: unknown = Array.isArray(cell) ? cell[0] : null;
        const shown: unknown = Array.isArray(cell) ? cell[1] : cell;
        cells.push(tr.appendChild(E('td', { class: 'td', 'data-value': raw }, shown != null ? shown : '')));
      }
      return cells;
    });
    table.placeholder = placeholder;
    if (data.length === 0) table.appendChild(E('tr', { class: 'tr placeholder' }, E('td', { class: 'td' }, placeholder)));
  }

  const document = { createTextNode: (s: unknown) => text(str(s)) };
  return { E, dom, cbi_update_table, document, parseHtml, innerHtmlWrites };
}

/** The text of a node, with a space between elements (for "shows X somewhere" checks). */
function textOf(n: FakeNode | undefined): string {
  if (!n) return '';
  return n.nodeType === 3 ? n.data : n.childNodes.map(textOf).join(' ');
}

function findAll(n: FakeNode, pred: (x: FakeNode) => boolean): FakeNode[] {
  return descendants(n).filter((x) => x.nodeType === 1 && pred(x));
}

function statusPage(replies: Record<string, () => Promise<unknown>>) {
  const declared: { object: string; method: string; expect?: Record<string, unknown> }[] = [];
  const polls: { fn: () => Promise<unknown>; interval: number }[] = [];
  const notes: [FakeNode, string][] = [];
  const fake = fakeDom();
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
    dom: { content: (node: FakeNode, children: unknown) => fake.dom.content(node, children) },
    poll: { add: (fn: () => Promise<unknown>, interval: number) => polls.push({ fn, interval }) },
    rpc,
    ui: {
      createHandlerFn: (self: Record<string, unknown>, name: string) => () => {
        const handler = self[name];
        assert.ok(typeof handler === 'function', `the view has a method ${name}`);
        return (handler as () => unknown).call(self);
      },
      // ui.addNotification(title, children, classes) puts children in with dom.append()
      addNotification: (_t: unknown, body: unknown, cls: string) => {
        const box = fake.E('div', { class: `alert-message ${cls}` });
        fake.dom.append(box, body);
        notes.push([box, cls]);
      },
    },
  };
  const globals = {
    _: (s: string) => s,
    E: fake.E,
    L: { bind: (fn: (...a: unknown[]) => unknown, self: unknown, ...args: unknown[]) => fn.bind(self, ...args) },
    cbi_update_table: fake.cbi_update_table,
    document: fake.document,
  };
  const view = loadView(path.join(VIEWS, 'tmip/status.js'), modules, globals);
  return { view, declared, polls, notes, innerHtmlWrites: fake.innerHtmlWrites };
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

function tableRows(page: FakeNode, placeholder: string): string[][] {
  const t = findAll(page, (n) => Array.isArray(n.rows)).find((n) => textOf(n.placeholder).includes(placeholder));
  assert.ok(t?.rows, `a table with the placeholder '${placeholder}'`);
  return t.rows.map((cells) => cells.map((td) => td.textContent));
}

/** The status table's value cell for a label. */
function statusValue(page: FakeNode, label: string): FakeNode {
  const row = findAll(page, (n) => n.tag === 'tr' && n.childNodes[0]?.textContent === label)[0];
  assert.ok(row, `the status table has a row '${label}'`);
  return row.childNodes[1]!;
}

for (const [shape, statusReply] of [
  ['flat', STATUS],
  ['wrapped', { status: STATUS }],
] as const)
  test(`the status page calls the CN ubus methods the ACL grants, and renders their replies (${shape} status)`, async () => {
    const replies = {
      status: async (): Promise<unknown> => statusReply,
      clients: async (): Promise<unknown> => CLIENTS_REPLY,
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

    const page = view.render(await view.load()) as FakeNode;
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

    const clients = tableRows(page, 'No clients');
    assert.equal(clients.length, 2);
    assert.deepEqual(clients[0], ['02:00:00:00:00:01', '10.13.150.5', 'ap-library', 'ap-library', 'yes', 'no', '3600s']);
    assert.equal(clients[1]![5], '-', 'a field the reply lacks shows as -');
    assert.match(String(clients[1]![6]), /^1[12]\ds$/, 'an absolute expiry time is shown as the time left');
    assert.deepEqual(tableRows(page, 'No tunnels'), [['tmip07', 'ipip', '10.200.0.7', '7', '1480']]);
    assert.deepEqual(tableRows(page, 'No peer CNs'), [['ap-gym', '10.200.0.7', 'unknown']]);
    const notice = findAll(page, (n) => (n.attrs.class ?? '').includes('alert-message'))[0]!;
    assert.equal(notice.style.display, 'none', 'no warning while the CN answers');

    // hostapd in use: the BSSes it watches
    replies.status = async () => ({ ...STATUS, hostapd: { enabled: true, present: true, bss: ['hostapd.phy0-ap0', 'hostapd.phy1-ap0'] } });
    await polls[0]!.fn();
    assert.equal(statusValue(page, 'hostapd events').textContent, 'in use (hostapd.phy0-ap0, hostapd.phy1-ap0)');

    // the capture on the clients' interface: its counters, and the states an operator must see
    assert.equal(statusValue(page, 'Capture').textContent, '-', 'no capture counters in the reply');
    const capture = (c: Record<string, unknown>) => async () => ({ ...STATUS, capture: c });
    replies.status = capture({ received: 1234, dropped: 5, truncated: 0, errors: 0, reopened: 2 });
    await polls[0]!.fn();
    assert.equal(statusValue(page, 'Capture').textContent, '1234 frames received, 5 dropped, opened again: 2');
    replies.status = capture({ received: 0, dropped: 0, truncated: 0, errors: 1, reopened: 0, interface_gone: true });
    await polls[0]!.fn();
    assert.equal(statusValue(page, 'Capture').textContent, 'the interface is gone: its clients are unreachable until it is back');
    replies.status = capture({ received: '<b>9</b>', dropped: 0, truncated: 0, errors: 0, reopened: 0 });
    await polls[0]!.fn();
    assert.equal(statusValue(page, 'Capture').textContent, '0 frames received, 0 dropped', 'a count that is not a number shows as 0');

    // the CN goes away: the next poll shows a warning and empty tables
    replies.status = async () => Promise.reject(new Error('Object not found'));
    replies.clients = async () => Promise.reject(new Error('Object not found'));
    await polls[0]!.fn();
    assert.equal(notice.style.display, '');
    assert.match(textOf(notice), /not running.*Object not found/);
    assert.match(
      textOf(notice),
      /only the location register \(tmip-mlr without tmip-cn\).*Settings page.*logread -e tmip-mlr/,
      'an MLR-only router is told why',
    );
    assert.deepEqual(tableRows(page, 'No clients'), []);
    assert.ok(textOf(page).includes('No clients'), 'an empty table shows its placeholder');
    assert.equal(tableRows(page, 'No tunnels').length, 1, 'a method that still answers keeps its table');

    // the reload button
    const button = findAll(page, (n) => n.tag === 'button')[0]!;
    await button.listeners.click!();
    assert.equal(notes.length, 1);
    assert.equal(notes[0]![1], 'info');
  });

test('the fake DOM treats strings as LuCI does: text in an array, markup when alone', () => {
  const { E, dom, cbi_update_table, innerHtmlWrites } = fakeDom();
  const img = '<img src=x onerror=alert(1)>';
  const asMarkup = E('td', {}, img);
  assert.equal(asMarkup.childNodes[0]?.tag, 'img', "E('td', {}, string) parses the string");
  assert.equal(asMarkup.childNodes[0]?.attrs.onerror, 'alert(1)');
  const asText = E('td', {}, [img]);
  assert.equal(asText.childNodes[0]?.nodeType, 3, "E('td', {}, [string]) makes a text node");
  assert.equal(asText.textContent, img);
  const p = E('p');
  dom.content(p, '<script>alert(1)</script>&amp;');
  assert.equal(p.childNodes[0]?.tag, 'script', 'dom.content(node, string) parses the string');
  assert.equal(p.textContent, 'alert(1)&');
  const table = E('table', {}, [E('tr', { class: 'tr table-titles' }, [E('th', {}, ['a']), E('th', {}, ['b'])])]);
  cbi_update_table(table, [[img, [1, '<b>x</b>']]], E('em', {}, ['none']));
  assert.equal(table.rows![0]![0]!.childNodes[0]?.tag, 'img', 'cbi_update_table parses a string cell');
  assert.equal(table.rows![0]![1]!.attrs['data-value'], '1');
  assert.equal(table.rows![0]![1]!.childNodes[0]?.tag, 'b');
  assert.deepEqual(innerHtmlWrites, [img, '<script>alert(1)</script>&amp;', img, '<b>x</b>']);
});

test('the status page shows hostile names from ubus as text, never as markup', async () => {
  // what a stranger can choose: a CN name registered at an MLR with auth off reaches every CN's peer
  // list; the rest stands for any value the CN passes on
  const H = {
    img: '<img src=x onerror=alert(1)>',
    script: '<script>alert(document.cookie)</script>',
    quotes: `"'><svg onload=alert(2)>`,
    entity: '&lt;b&gt;bold?&lt;/b&gt; &amp; &#60;i&#62;',
    closing: '</td></tr></table><iframe src=javascript:alert(3)>',
  };
  const status = {
    cn_name: H.img,
    network_name: H.script,
    address: H.quotes,
    cn_if: '<b>eth0</b>',
    mobile_if: H.entity,
    mlr: { address: '<a href="javascript:alert(4)">mlr</a>', connected: false },
    pools: [H.img, H.closing],
    tunnel_types: ['<u>ipip</u>'],
    clients_here: '<marquee>2</marquee>',
    hostapd: { enabled: true, present: true, bss: [H.script, H.img] },
  };
  const clients = {
    clients: [{ mac: H.img, ip: H.script, parent: H.quotes, current: H.entity, here: H.closing, associated: true, expires: '<i>soon</i>' }],
  };
  const tunnels = { tunnels: [{ name: H.script, type: H.img, peer: H.quotes, key: H.entity, mtu: '<b>1480</b>' }] };
  const peers = {
    peers: [
      { name: H.img, addr: H.script, online: H.quotes },
      { name: H.closing, addr: '10.200.0.9', online: true },
    ],
  };
  const replies: Record<string, () => Promise<unknown>> = {
    status: async () => status,
    clients: async () => clients,
    tunnels: async () => tunnels,
    peers: async () => peers,
    reload: async () => Promise.reject(new Error(H.script)),
  };
  const { view, polls, notes, innerHtmlWrites } = statusPage(replies);
  const page = view.render(await view.load()) as FakeNode;

  const noMarkup = (where: string, root: FakeNode) => {
    const made = descendants(root).filter((n) => n.fromMarkup);
    assert.deepEqual(
      made.map((n) => n.tag),
      [],
      `${where}: no element is made from a string`,
    );
    for (const html of innerHtmlWrites) {
      assert.ok(!/[<&]/.test(html), `${where}: nothing but plain text is assigned to innerHTML: ${JSON.stringify(html)}`);
    }
  };
  noMarkup('status page', page);

  const shows = (label: string, text: string) => assert.equal(statusValue(page, label).textContent, text, `${label} shows the raw text`);
  shows('CN name', H.img);
  shows('Network name', H.script);
  shows('Backbone address', H.quotes);
  shows('Interfaces', `backbone <b>eth0</b>, clients ${H.entity}`);
  shows('MLR', '<a href="javascript:alert(4)">mlr</a>');
  shows('MLR connection', 'not connected');
  shows('Address pools', `${H.img}, ${H.closing}`);
  shows('Tunnel types', '<u>ipip</u>');
  shows('Clients here', '<marquee>2</marquee>');
  shows('hostapd events', `in use (${H.script}, ${H.img})`);
  for (const label of ['CN name', 'Network name', 'Address pools', 'hostapd events']) {
    const cell = statusValue(page, label);
    assert.ok(
      cell.childNodes.every((n) => n.nodeType === 3),
      `${label}: the cell holds text nodes only`,
    );
  }

  assert.deepEqual(tableRows(page, 'No clients'), [[H.img, H.script, H.quotes, H.entity, H.closing, 'yes', '-']]);
  assert.deepEqual(tableRows(page, 'No tunnels'), [[H.script, H.img, H.quotes, H.entity, '<b>1480</b>']]);
  assert.deepEqual(tableRows(page, 'No peer CNs'), [
    [H.img, H.script, H.quotes],
    [H.closing, '10.200.0.9', 'yes'],
  ]);

  // an error text (from rpc, but say it came from the other end) is text too
  replies.status = async () => Promise.reject(new Error(H.img));
  await polls[0]!.fn();
  const notice = findAll(page, (n) => (n.attrs.class ?? '').includes('alert-message'))[0]!;
  assert.equal(notice.style.display, '');
  assert.ok(notice.textContent.includes(`(${H.img})`), notice.textContent);
  noMarkup('status page after an error', page);

  const button = findAll(page, (n) => n.tag === 'button')[0]!;
  await button.listeners.click!();
  assert.equal(notes.length, 1);
  assert.equal(notes[0]![1], 'error');
  assert.equal(notes[0]![0].textContent, `Reload failed: ${H.script}`);
  noMarkup('reload notification', notes[0]![0]);
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
procd_add_interface_trigger() { echo "interface_trigger $*"; }
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

function runInit(script: 'tmip-cn' | 'tmip-mlr', configText: string, args: string[] = [], shell: string[] = ['sh'], keepD?: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-init-'));
  const config = path.join(dir, 'tmip');
  const harness = path.join(dir, 'harness.sh');
  fs.writeFileSync(config, configText);
  fs.writeFileSync(harness, HARNESS);
  const r = run(shell[0]!, [...shell.slice(1), harness, ...args], {
    env: {
      PATH: process.env.PATH,
      HARNESS_CONFIG: config,
      HARNESS_INIT: path.join(FILES, 'etc/init.d', script),
      TMIP_KEEP_D: keepD ?? path.join(dir, 'keep.d'),
    },
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
      // its own command (syslog shows tmip-cn[pid]), which runs the bundle with the same arguments
      assert.deepEqual(cmd, ['/usr/sbin/tmip-cn', '-f', '/etc/config/tmip', '-F', '-s', ref]);
      const args = parseArgs(cmd.slice(1), '/nonexistent');
      assert.ok(args.ok, `tmip-cn accepts ${cmd.slice(1).join(' ')}`);
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
  // the shipped section names logical interfaces: procd restarts it on their netifd events
  assert.equal(inst.params.netdev, undefined, 'no device to watch');
  assert.deepEqual(
    after.other.filter((l) => l.startsWith('interface_trigger ')),
    ['interface_trigger interface.* wan /etc/init.d/tmip-cn restart', 'interface_trigger interface.* lan /etc/init.d/tmip-cn restart'],
  );
  const devices = runInit(
    'tmip-cn',
    configured
      .replace("option cn_network 'wan'", "option cn_if 'eth1'")
      .replace("option mobile_network 'lan'", "option mobile_if 'br-lan'"),
  );
  assert.deepEqual(devices.instances[0]!.params.netdev, ['br-lan', 'eth1']);
  assert.deepEqual(
    devices.other.filter((l) => l.startsWith('interface_trigger ')),
    [],
  );
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

config key
	option cn 'ap1'
	option secret '${'5e0c1a5b9d3f4e7a8c2b6d0f1e3a5c7b9d1f3e5a7c9b0d2f4e6a8c0b2d4f6e8a'}'
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
    assert.deepEqual(cmd, ['/usr/sbin/tmip-mlr', '-f', '/etc/config/tmip', '-F', '-s', '@mlr[0]']);
    const args = parseArgs(cmd.slice(1), '/nonexistent');
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

test('sysupgrade keeps the config and the MLR state: keep.d files, and the state file wherever it is configured', () => {
  assert.deepEqual(fs.readFileSync(path.join(FILES, 'lib/upgrade/keep.d/tmip-mlr'), 'utf8').split('\n'), [
    '/etc/config/tmip',
    '/etc/tmip/',
    '',
  ]);
  assert.deepEqual(fs.readFileSync(path.join(FILES, 'lib/upgrade/keep.d/tmip-cn'), 'utf8').split('\n'), ['/etc/tmip/', '']);
  const keepD = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-keep-'));
  const keep = path.join(keepD, 'tmip-mlr-state');
  try {
    const withState = (p: string) => MLR_CONFIG.replace("option port '7000'", `option port '7000'\n\toption state_file '${p}'`);
    runInit('tmip-mlr', withState('/etc/tmip/mlr.state'), [], ['sh'], keepD);
    assert.equal(fs.existsSync(keep), false, 'under /etc/tmip/ the package keep.d file covers it');
    runInit('tmip-mlr', withState('/srv/tmip/mlr.state'), [], ['sh'], keepD);
    assert.equal(fs.readFileSync(keep, 'utf8'), '/srv/tmip/mlr.state\n/srv/tmip/mlr.state.journal\n', 'the state file and its journal');
    const mtime = fs.statSync(keep).mtimeMs;
    fs.utimesSync(keep, new Date(0), new Date(0));
    runInit('tmip-mlr', withState('/srv/tmip/mlr.state'), [], ['sh'], keepD);
    assert.equal(fs.statSync(keep).mtimeMs, 0, 'not rewritten when nothing changed (flash)');
    assert.ok(mtime > 0);
    runInit('tmip-mlr', MLR_CONFIG, [], ['sh'], keepD);
    assert.equal(fs.existsSync(keep), false, 'no state file, nothing listed');
  } finally {
    fs.rmSync(keepD, { recursive: true, force: true });
  }
});

test('tmip-mlr init: with authentication on and no CN key, nothing is started and the log says what to add', () => {
  const keyless = MLR_CONFIG.slice(0, MLR_CONFIG.indexOf('config key'));
  for (const shell of SHELLS) {
    const { instances, other } = runInit('tmip-mlr', keyless, [], shell);
    assert.deepEqual(instances, [], 'not started without a key');
    assert.ok(
      other.some((l) => l.startsWith('logger ') && l.includes("no 'config key' section") && l.includes('tmip-mlr keygen NAME')),
      other.join('\n'),
    );
    const off = runInit('tmip-mlr', keyless.replace("option port '7000'", "option port '7000'\n\toption auth '0'"), [], shell);
    assert.equal(off.instances.length, 1, "option auth '0' (a closed lab) starts without keys");
  }
});

test("tmip-mlr's uci-defaults adds an mlr section the daemon accepts once a CN key is added, with the shipped defaults", () => {
  const text = fs.readFileSync(path.join(FILES, 'etc/uci-defaults/90-tmip-mlr'), 'utf8');
  const lines = ['config mlr'];
  for (const m of text.matchAll(/^\s*(set|add_list) tmip\.@mlr\[-1\]\.(\w+)='([^']*)'$/gm)) {
    lines.push(`\t${m[1] === 'set' ? 'option' : 'list'} ${m[2]} '${m[3]}'`);
  }
  assert.ok(lines.length >= 8, lines.join('\n'));
  assert.match(text, /^\s*add tmip mlr$/m);
  assert.match(text, /^\s*commit tmip$/m);
  // Authentication is on: without a key the daemon refuses the section, naming the fix...
  const keyless = parseMlrConfig(uci(lines.join('\n') + '\n'));
  assert.ok(!keyless.ok && /no 'config key' section.*tmip-mlr keygen NAME/.test(keyless.error), 'refused until a key is added');
  // ...and with the section `tmip-mlr keygen NAME` prints, it starts.
  const KEY = `config key\n\toption cn 'ap1'\n\toption secret '${'ab'.repeat(32)}'\n`;
  const cfg = parseMlrConfig(uci(lines.join('\n') + '\n' + KEY));
  assert.ok(cfg.ok, cfg.ok ? '' : cfg.error);
  assert.deepEqual(cfg.value.warnings, []);
  assert.equal(cfg.value.enabled, true);
  // the same values as the commented-out 'config mlr' of the shipped file
  const shipped = fs.readFileSync(SHIPPED_CONFIG, 'utf8');
  const mlrStart = shipped.indexOf('#config mlr');
  const mlrEnd = shipped.indexOf('\n\n', mlrStart);
  const sample = shipped
    .slice(mlrStart, mlrEnd < 0 ? undefined : mlrEnd)
    .replace(/^#\t?(?!\t?#)/gm, '')
    .replace(/^#.*$/gm, '');
  const ref = parseMlrConfig(uci(sample + KEY));
  assert.ok(ref.ok, ref.ok ? '' : ref.error);
  const { warnings: _a, keys: _k1, ...added } = cfg.value;
  const { warnings: _b, keys: _k2, ...documented } = ref.value;
  assert.deepEqual(added, documented);
});

// ---------------------------------------------------------------------------------------------
// Makefiles (text-level; ipk.test.ts runs them against a stub SDK)

test('the feed Makefiles follow the OpenWrt layout and carry the package.json version', () => {
  const { version } = readJson(path.join(ROOT, 'package.json')) as { version: string };
  const tmip = fs.readFileSync(path.join(FEED, 'net/tmip/Makefile'), 'utf8');
  const luci = fs.readFileSync(path.join(LUCI_APP, 'Makefile'), 'utf8');
  const addon = fs.readFileSync(path.join(FEED, 'lang/node-tmip-packet/Makefile'), 'utf8');
  for (const [name, mk] of [
    ['net/tmip', tmip],
    ['luci-app-tmip', luci],
    ['node-tmip-packet', addon],
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
  // usable on an MLR-only router: no dependency on tmip-cn (node-tmip-packet, kernel modules)
  assert.match(luci, /^LUCI_DEPENDS:=\+luci-base$/m);
  assert.match(luci, /^include \$\(TOPDIR\)\/feeds\/luci\/luci\.mk$/m);
  assert.match(luci, /^# call BuildPackage - OpenWrt buildroot signature$/m, 'the signature the feed scanner looks for');
  // node-tmip-packet builds our addon from this repository's native/packet, nothing downloaded
  assert.match(addon, new RegExp(`^PKG_VERSION:=${version.replace(/\./g, '\\.')}$`, 'm'));
  assert.doesNotMatch(addon, /^PKG_SOURCE/m);
  assert.match(addon, /^TMIP_ADDON:=\$\(TMIP_ROOT\)\/native\/packet$/m);
  assert.match(addon, /^PKG_BUILD_DEPENDS:=node\/host$/m);
  assert.match(addon, /^\s+DEPENDS:=\+node$/m);
  assert.match(tmip, /^\s+DEPENDS:=\+node \+node-tmip-packet \+ip-full /m);
  assert.doesNotMatch(tmip, /libpcap|node-cap/);
  for (const s of [
    'npm_config_arch=$(NODEJS_CPU)',
    'npm_config_target_arch=$(NODEJS_CPU)',
    'npm_config_build_from_source=true',
    'npm_config_nodedir=$(STAGING_DIR)/usr/',
    '$(MAKE_FLAGS)',
  ]) {
    assert.ok(addon.includes(s), `node-tmip-packet's build passes ${s}`);
  }
  assert.match(addon, /\/usr\/lib\/node\/\$\(PKG_NPM_NAME\)\/build\/Release/);
});
