// SPDX-License-Identifier: GPL-2.0-only
// Unit tests for the UCI parser and `uci export` writer (src/proto/uci.ts): real export output,
// quoting, sections, comments, merges, error reporting, round trips and a seeded fuzz.
import test from 'node:test';
import assert from 'node:assert/strict';
import { exportUci, parseUci, type UciPackage, type UciSection, type UciValue } from '../../src/proto/uci.js';
import { rng } from '../support/helpers.js';

function parse(text: string): UciPackage {
  const r = parseUci(text);
  if (!r.ok) assert.fail(`unexpected parse error:\n${r.error}`);
  return r.value;
}

function parseErr(text: string): string {
  const r = parseUci(text);
  if (r.ok) assert.fail('expected a parse error');
  return r.error;
}

/** The structure without line bookkeeping: what must survive export → parse. */
function shape(p: UciPackage): unknown {
  return {
    name: p.name,
    sections: p.sections.map((s) => ({
      type: s.type,
      name: s.name,
      anonymous: s.anonymous,
      index: s.index,
      options: [...s.options].map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]),
    })),
  };
}

function opts(s: UciSection | undefined): Record<string, UciValue> {
  assert.ok(s, 'section exists');
  return Object.fromEntries(s.options);
}

// `uci export network` on a stock OpenWrt 23.05 router with DSA ports, verbatim format.
const NETWORK_EXPORT = `package network

config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config globals 'globals'
\toption ula_prefix 'fd3c:1e2a:77b0::/48'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'lan1'
\tlist ports 'lan2'
\tlist ports 'lan3'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'
\toption ip6assign '60'

config interface 'wan'
\toption device 'wan'
\toption proto 'dhcp'

config interface 'wan6'
\toption device 'wan'
\toption proto 'dhcpv6'

config device
\toption name 'br-guest'
\toption type 'bridge'
\toption bridge_empty '1'

`;

const TMIP_EXPORT = `package tmip

config cn 'main'
\toption mlr '10.0.0.1:6554'
\toption network_name 'campus'
\toption cn_name 'Library AP (2nd floor) '\\''north'\\'''
\toption cn_if 'eth0'
\toption mobile_if 'br-lan'
\tlist addr_pool '10.20.0.0/16 10.20.1.0 10.20.1.255'
\tlist addr_pool 'br-guest * *'
\tlist dns_server '10.0.0.53'
\tlist dns_server '9.9.9.9'
\toption lease_time '7200'

config mlr
\toption network_name 'campus'
\toption port '6554'

`;

test('real `uci export network` output parses and exports back byte for byte', () => {
  const p = parse(NETWORK_EXPORT);
  assert.equal(p.name, 'network');
  assert.deepEqual(
    p.sections.map((s) => [s.type, s.name, s.anonymous, s.index]),
    [
      ['interface', 'loopback', false, 0],
      ['globals', 'globals', false, 1],
      ['device', '@device[0]', true, 2],
      ['interface', 'lan', false, 3],
      ['interface', 'wan', false, 4],
      ['interface', 'wan6', false, 5],
      ['device', '@device[1]', true, 6],
    ],
  );
  assert.deepEqual(opts(p.sections[2]), { name: 'br-lan', type: 'bridge', ports: ['lan1', 'lan2', 'lan3'] });
  assert.equal(p.sections[3]?.options.get('ipaddr'), '192.168.1.1');
  assert.equal(p.sections[3]?.lines.get('ipaddr'), 22);
  assert.equal(p.sections[3]?.line, 19);
  assert.deepEqual(p.sections[2]?.itemLines?.get('ports'), [15, 16, 17]);
  assert.equal(exportUci(p), NETWORK_EXPORT);
});

test('tmip export with escaped quotes round-trips exactly', () => {
  const p = parse(TMIP_EXPORT);
  assert.equal(p.sections[0]?.options.get('cn_name'), "Library AP (2nd floor) 'north'");
  assert.deepEqual(p.sections[0]?.options.get('addr_pool'), ['10.20.0.0/16 10.20.1.0 10.20.1.255', 'br-guest * *']);
  assert.equal(p.sections[1]?.name, '@mlr[0]');
  assert.equal(exportUci(p), TMIP_EXPORT);
});

test('hand-written /etc/config file: no package line, tabs/spaces, unquoted values, wifi-iface types', () => {
  const text = [
    '# /etc/config/wireless as a user edits it',
    '',
    "config wifi-device 'radio0'",
    '        option type     mac80211',
    "        option channel  '36'",
    '        option htmode   "VHT80"',
    '',
    'config wifi-iface',
    '\toption device radio0 # trailing comment',
    "\toption ssid 'Campus Wi-Fi'",
    '\toption encryption none',
    '',
  ].join('\n');
  const p = parse(text);
  assert.equal(p.name, undefined);
  assert.equal(p.sections.length, 2);
  assert.equal(p.sections[0]?.type, 'wifi-device');
  assert.deepEqual(opts(p.sections[0]), { type: 'mac80211', channel: '36', htmode: 'VHT80' });
  assert.equal(p.sections[1]?.name, '@wifi-iface[0]');
  assert.deepEqual(opts(p.sections[1]), { device: 'radio0', ssid: 'Campus Wi-Fi', encryption: 'none' });
  const exported = exportUci(p);
  assert.ok(exported.startsWith("\nconfig wifi-device 'radio0'\n\toption type 'mac80211'\n"));
  assert.deepEqual(shape(parse(exported)), shape(p));
});

test("quoting: single, double with escapes, unquoted, concatenation, the '\\'' idiom", () => {
  const text = [
    'config t',
    "\toption a 'it'\\''s'",
    '\toption b "say \\"hi\\" \\\\ back"',
    '\toption c plain_word',
    '\toption d foo\'bar baz\'"qux"end',
    "\toption e 'back\\slash kept'",
    '\toption f a\\ b',
    "\toption g '#not a comment; nor a separator'",
    '\toption h "tab\there"',
    "\toption i ''\\'''",
    '\toption j "$HOME `x`"',
    "\toption k 'ünïcödé ✓'",
  ].join('\n');
  assert.deepEqual(opts(parse(text).sections[0]), {
    a: "it's",
    b: 'say "hi" \\ back',
    c: 'plain_word',
    d: 'foobar bazquxend',
    e: 'back\\slash kept',
    f: 'a b',
    g: '#not a comment; nor a separator',
    h: 'tab\there',
    i: "'",
    j: '$HOME `x`',
    k: 'ünïcödé ✓',
  });
});

test('multi-line values: quotes span lines, backslash-newline splices', () => {
  const text = [
    'config t',
    "\toption a 'line1",
    "line2'",
    '\toption b "one \\',
    'two"',
    '\toption c abc\\',
    'def',
    "\toption d 'after'",
  ].join('\n');
  const s = parse(text).sections[0];
  assert.deepEqual(opts(s), { a: 'line1\nline2', b: 'one two', c: 'abcdef', d: 'after' });
  assert.equal(s?.lines.get('a'), 2);
  assert.equal(s?.lines.get('d'), 8);
  const again = parse(exportUci(parse(text)));
  assert.deepEqual(shape(again), shape(parse(text)));
});

test('a continuation line that starts with a blank ends the argument (libuci), so the next word is extra', () => {
  assert.match(parseErr('config t\n\toption a x\\\n   b\n'), /^line 3: too many arguments to option 'a'/);
});

test('large inputs stay linear: a quote left open over 50,000 lines is reported quickly', () => {
  const text = "config t\n\toption a 'start\n" + ('y'.repeat(40) + '\n').repeat(50000);
  const t0 = Date.now();
  assert.match(parseErr(text), /^line 2: unterminated ' quote/);
  let many = '';
  for (let i = 0; i < 20000; i++) many += `config t 's${i}'\n\toption a 'v${i}'\n\tlist b "x\\"${i}"\n`;
  assert.equal(parse(many).sections.length, 20000);
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
});

test('lists append; anonymous sections get @type[n] names, named keep theirs; index is global', () => {
  const text = [
    'config host',
    "\toption name 'a'",
    "config rule 'r1'",
    '\tlist proto tcp',
    '\tlist proto udp',
    "\tlist proto 'icmp'",
    'config host',
    "\toption name 'b'",
    'config rule',
  ].join('\n');
  const p = parse(text);
  assert.deepEqual(
    p.sections.map((s) => [s.name, s.anonymous, s.index]),
    [
      ['@host[0]', true, 0],
      ['r1', false, 1],
      ['@host[1]', true, 2],
      ['@rule[1]', true, 3],
    ],
  );
  assert.deepEqual(p.sections[1]?.options.get('proto'), ['tcp', 'udp', 'icmp']);
  assert.equal(p.sections[1]?.lines.get('proto'), 4);
  assert.deepEqual(p.sections[1]?.itemLines?.get('proto'), [4, 5, 6]);
});

test("config with an empty name ('') is anonymous", () => {
  const p = parse("config cn ''\n\toption x 1\n");
  assert.equal(p.sections[0]?.anonymous, true);
  assert.equal(p.sections[0]?.name, '@cn[0]');
  assert.equal(exportUci(p), "\nconfig cn\n\toption x '1'\n\n");
});

test('comments: whole line, after whitespace, mid-word (as libuci), never inside quotes', () => {
  const text = [
    '# header comment',
    '   # indented comment',
    'config t # comment after the type',
    '\toption a one # comment',
    '\toption b two#rest is a comment in libuci too',
    "\toption c 'in#quotes'",
    '\toption d "in # double"',
    '\t#option e commented',
    '',
    '\t',
  ].join('\n');
  const p = parse(text);
  assert.equal(p.sections.length, 1);
  assert.deepEqual(opts(p.sections[0]), { a: 'one', b: 'two', c: 'in#quotes', d: 'in # double' });
});

test("keywords abbreviate to one letter; ; separates commands with libuci's exact quirks", () => {
  const p = parse("p abbrev\nc t 'n'; o a 'b'; l c 'x'; l c y\nconfig u 'u'; option z 'q;r'\n");
  assert.equal(p.name, 'abbrev');
  assert.deepEqual(opts(p.sections[0]), { a: 'b', c: ['x', 'y'] });
  assert.deepEqual(opts(p.sections[1]), { z: 'q;r' });
  // libuci NUL-terminates an argument in place: a ';' right after an argument written without any
  // quote or backslash is overwritten, and the rest of the line is silently dropped
  const q = parse('config t n; option a b\nconfig u\n\toption a 1; option b 2\n');
  assert.deepEqual(opts(q.sections[0]), {});
  assert.deepEqual(opts(q.sections[1]), { a: '1' });
  // ... but not after a space
  assert.deepEqual(opts(parse('config t n ; option a b\n').sections[0]), { a: 'b' });
  // an empty command on either side of a ';' is an error, as in libuci
  assert.match(parseErr("config t 'n';\n"), /^line 1: empty command/);
  assert.match(parseErr("config t\n; option a 'b'\n"), /^line 2: empty command/);
});

test('same name and type merges into the first section; last option wins in place', () => {
  const text = [
    "config interface 'lan'",
    "\toption proto 'static'",
    "\toption ipaddr '192.168.1.1'",
    "config interface 'wan'",
    "\toption proto 'dhcp'",
    "config interface 'lan'",
    "\toption ipaddr '10.0.0.1'",
    "\toption mtu '1400'",
    "\toption proto 'none'",
  ].join('\n');
  const p = parse(text);
  assert.equal(p.sections.length, 2);
  const lan = p.sections[0];
  assert.equal(lan?.name, 'lan');
  assert.equal(lan?.index, 0);
  assert.deepEqual(
    [...(lan?.options ?? [])],
    [
      ['proto', 'none'],
      ['ipaddr', '10.0.0.1'],
      ['mtu', '1400'],
    ],
  );
  assert.equal(lan?.lines.get('ipaddr'), 7);
});

test('same name with a different type is an error naming both lines', () => {
  const e = parseErr("config interface 'lan'\nconfig device 'lan'\n");
  assert.match(e, /^line 2: section 'lan' was declared as type 'interface' on line 1; it cannot be redeclared as 'device'$/);
});

test('option then list converts to a list (libuci); list then option replaces; empty option is ignored', () => {
  const text = [
    'config t',
    '\toption dns 1.1.1.1',
    '\tlist dns 8.8.8.8',
    '\tlist ports a',
    '\tlist ports b',
    '\toption ports c',
    "\toption keep 'x'",
    "\toption keep ''",
    '\toption bare',
  ].join('\n');
  const s = parse(text).sections[0];
  assert.deepEqual(opts(s), { dns: ['1.1.1.1', '8.8.8.8'], ports: 'c', keep: 'x' });
  assert.deepEqual(s?.itemLines?.get('dns'), [2, 3]);
  assert.equal(s?.lines.get('ports'), 6);
  assert.equal(s?.itemLines?.has('ports'), false);
});

test('CRLF line endings parse exactly like LF', () => {
  const crlf = NETWORK_EXPORT.replace(/\n/g, '\r\n');
  const p = parse(crlf);
  assert.deepEqual(shape(p), shape(parse(NETWORK_EXPORT)));
  assert.equal(p.sections[3]?.lines.get('ipaddr'), 22);
  assert.equal(exportUci(p), NETWORK_EXPORT);
  // quoted multi-line values do not keep the CR either
  assert.equal(parse("config t\r\n\toption a 'x\r\ny'\r\n").sections[0]?.options.get('a'), 'x\ny');
});

test('a file with NUL bytes is an error naming the line', () => {
  assert.equal(parseErr("config t\n\toption a 'x'\n\toption b 'y\0z'\n"), 'line 3: NUL byte in the file; a UCI config file is text');
  assert.match(parseErr('\0\0\0'), /^line 1: NUL byte/);
});

test('unterminated quotes are errors naming the line where the quote opened', () => {
  assert.match(parseErr("config t\n\toption a 'never closed\n"), /^line 2: unterminated ' quote/);
  // a quote left open swallows the next line's opening quote, so the error surfaces later; the
  // message points back at the quote that spanned lines
  assert.equal(
    parseErr("config t\n\toption a 'never closed\n\toption b 'x'\n"),
    "line 3: unterminated ' quote (no closing ' before the end of the file); note the ' quote opened on line 2 runs on to line 3: is its closing quote missing?",
  );
  assert.match(parseErr('config t\n\n\toption a "never closed\n'), /^line 3: unterminated " quote/m);
  assert.match(parseErr('config t\n\toption a "ends in backslash\\'), /^line 2: unterminated " quote/m);
});

test('option or list before any config is an error', () => {
  assert.match(parseErr("# comment\noption a 'b'\n"), /^line 2: option before the first config section/);
  assert.match(parseErr("package x\nlist a 'b'\nconfig t\n"), /^line 2: list before the first config section/);
});

test('invalid names, types, commands and argument counts are errors; all are reported together', () => {
  const text = [
    'config t',
    "\toption bad-name 'x'", // 2
    "config t 'bad-name'", // 3
    'config "ty\'pe"', // 4: quote in type
    'config', // 5
    'frobnicate x', // 6
    "config ok 'fine'",
    "\toption a 'b' 'c'", // 8
    "\tlist 'a b' x", // 9
    "'option' x y", // 10: a quoted keyword is not a keyword
    'package bad.name', // 11
    "\toption ok 'yes'",
  ].join('\n');
  const lines = parseErr(text).split('\n');
  assert.deepEqual(
    lines.map((l) => l.replace(/:.*/, '')),
    ['line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'line 8', 'line 9', 'line 10', 'line 11'],
  );
  assert.match(lines[0]!, /invalid option name "bad-name"/);
  assert.match(lines[1]!, /invalid section name "bad-name"/);
  assert.match(lines[2]!, /invalid section type/);
  assert.match(lines[3]!, /config without arguments/);
  assert.match(lines[4]!, /invalid command "frobnicate"/);
  assert.match(lines[5]!, /too many arguments to option 'a'/);
});

test("options of a broken config line are skipped without cascading 'before config' errors", () => {
  const e = parseErr("config t 'bad name'\n\toption a b\n\toption c d\n");
  assert.equal(e.split('\n').length, 1);
});

test('a second package statement is an error', () => {
  assert.match(parseErr('package a\npackage b\n'), /^line 2: a second package statement/);
  assert.match(parseErr('package a-b_c\npackage\n'), /^line 2: package without arguments/);
  assert.match(parseErr('package a-b_c\npackage ;\n'), /^line 2: package without a name/);
  assert.equal(parse('package x\nconfig t\npackage x\n').name, 'x');
  assert.match(parseErr('package bad.name\n'), /^line 1: invalid package name/);
});

test('empty input and comment-only input are an empty package', () => {
  assert.deepEqual(shape(parse('')), { name: undefined, sections: [] });
  assert.deepEqual(shape(parse('# nothing\n\n   \n')), { name: undefined, sections: [] });
  assert.equal(exportUci(parse('')), '\n');
  assert.equal(exportUci(parse('package x')), 'package x\n\n');
});

test('exportUci writes exactly the uci export format', () => {
  const pkg: UciPackage = {
    name: 'tmip',
    sections: [
      {
        type: 'cn',
        name: '@cn[0]',
        anonymous: true,
        index: 0,
        options: new Map<string, UciValue>([
          ['cn_name', "it's"],
          ['tunnel_type', ['ipip', 'gre']],
        ]),
        lines: new Map(),
      },
      { type: 'mlr', name: 'central', anonymous: false, index: 1, options: new Map([['port', '6554']]), lines: new Map() },
    ],
  };
  assert.equal(
    exportUci(pkg),
    "package tmip\n\nconfig cn\n\toption cn_name 'it'\\''s'\n\tlist tunnel_type 'ipip'\n\tlist tunnel_type 'gre'\n\nconfig mlr 'central'\n\toption port '6554'\n\n",
  );
  assert.deepEqual(shape(parse(exportUci(pkg))), shape(pkg));
});

// ---------------------------------------------------------------------------------------------
// Seeded random round trips (rng: mulberry32).
test('round trip: random packages with hostile values survive export → parse unchanged', () => {
  const rand = rng(0x7a1b);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const valueChars = ["'", '"', '\\', '#', ';', ' ', '\t', '\n', 'a', 'Z', '0', '$', '`', 'é', '✓', "\\'", "'\\''"];
  const value = (): string => {
    let s = '';
    const n = 1 + Math.floor(rand() * 12);
    for (let i = 0; i < n; i++) s += pick(valueChars);
    return s;
  };
  const ident = (): string => pick(['a', 'b', 'x_1', 'ports', 'Name9', '_']);
  for (let round = 0; round < 300; round++) {
    const sections: UciSection[] = [];
    const nSections = Math.floor(rand() * 5);
    const typeCounts = new Map<string, number>();
    for (let i = 0; i < nSections; i++) {
      const type = pick(['cn', 'mlr', 'wifi-iface', 'interface']);
      const k = typeCounts.get(type) ?? 0;
      typeCounts.set(type, k + 1);
      const anonymous = rand() < 0.5;
      const options = new Map<string, UciValue>();
      const nOpts = Math.floor(rand() * 5);
      for (let j = 0; j < nOpts; j++) {
        options.set(ident(), rand() < 0.5 ? value() : Array.from({ length: 1 + Math.floor(rand() * 3) }, value));
      }
      sections.push({ type, name: anonymous ? `@${type}[${k}]` : `s${i}`, anonymous, index: i, options, lines: new Map() });
    }
    const pkg: UciPackage = rand() < 0.5 ? { name: 'pkg-' + round, sections } : { sections };
    const text = exportUci(pkg);
    const back = parseUci(text);
    assert.ok(back.ok, `round ${round}: ${back.ok ? '' : back.error}\n${text}`);
    assert.deepEqual(shape(back.value), shape(pkg), `round ${round}:\n${text}`);
    assert.equal(exportUci(back.value), text);
  }
});

test('fuzz: thousands of random files never throw; errors are line-numbered; successes round-trip', () => {
  const rand = rng(20240611);
  const tokens = [
    'config',
    'option',
    'list',
    'package',
    'c',
    'o',
    'l',
    'cn',
    'name',
    'a_1',
    'x-y',
    'value',
    ' ',
    ' ',
    '\t',
    '\n',
    '\n',
    '\r\n',
    "'",
    "'",
    '"',
    '"',
    '\\',
    '#',
    ';',
    "'\\''",
    '\0',
    'é',
    '',
  ];
  let oks = 0;
  for (let i = 0; i < 4000; i++) {
    let text = '';
    const n = Math.floor(rand() * 40);
    for (let j = 0; j < n; j++) text += tokens[Math.floor(rand() * tokens.length)]!;
    let r: ReturnType<typeof parseUci>;
    try {
      r = parseUci(text);
    } catch (e) {
      assert.fail(`parseUci threw on ${JSON.stringify(text)}: ${String(e)}`);
    }
    if (r.ok) {
      oks++;
      const again = parseUci(exportUci(r.value));
      assert.ok(again.ok, `re-parse failed for ${JSON.stringify(text)}`);
      assert.deepEqual(shape(again.value), shape(r.value), JSON.stringify(text));
    } else {
      for (const line of r.error.split('\n')) assert.match(line, /^line \d+: \S/, JSON.stringify(text));
    }
  }
  assert.ok(oks > 100, `only ${oks} random inputs parsed; the fuzz should exercise both outcomes`);
});

test('parseUci is total for non-string input smuggled past the type system', () => {
  const r = parseUci(undefined as unknown as string);
  assert.equal(r.ok, false);
});
