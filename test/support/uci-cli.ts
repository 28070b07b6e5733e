// SPDX-License-Identifier: GPL-2.0-only
// A TEST-ONLY stand-in for OpenWrt's `uci` command line tool, for running tmip's shell scripts
// (files/usr/libexec/tmip/integrate, uci-defaults) on a machine without uci: it is NOT the real uci and
// implements only the subcommands those scripts use, over tmip's own UCI parser and writer
// (src/proto/uci.ts), following the behaviour of uci's cli.c as far as they need it:
//   uci [-q] [-c CONFDIR] get|set|add|add_list|del_list|delete|show|commit|batch ...
// - config files are read from CONFDIR (-c, else $TMIP_UCI_CONFDIR, else /etc/config);
// - changes are staged (in CONFDIR/.uci-staged/<package>, as uci keeps them in /tmp/.uci) and written
//   to the config file only by `commit`, as `uci export` writes it (comments are lost, as with uci);
// - sections are named, or `@type[N]` (N < 0 counts from the end); `show` prints anonymous sections
//   as @type[N] and values in single quotes, list items separated by spaces; `get` prints a list's
//   items separated by spaces;
// - `add pkg type` appends an anonymous section (reachable as @type[-1]);
// - `set pkg.sec=type` creates a named section (or changes its type), `set pkg.sec.opt=value` sets an
//   option ('' deletes it), `add_list`/`del_list` add and remove one list item, `delete` removes a
//   section or option;
// - errors: "uci: Entry not found" / "uci: Invalid argument" / "uci: Parse error" on stderr and exit
//   status 1 (-q: no message).
// Usage from a test: a `uci` shell wrapper in PATH that runs `node build/test/support/uci-cli.js "$@"`.
import fs from 'node:fs';
import path from 'node:path';
import { exportUci, parseUci, type UciPackage, type UciSection } from '../../src/proto/uci.js';

class UciFailure extends Error {}

const NOT_FOUND = 'Entry not found';
const INVALID = 'Invalid argument';

interface Ctx {
  confdir: string;
  quiet: boolean;
}

function stagedPath(ctx: Ctx, pkg: string): string {
  return path.join(ctx.confdir, '.uci-staged', pkg);
}

function load(ctx: Ctx, name: string): UciPackage {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new UciFailure(INVALID);
  const staged = stagedPath(ctx, name);
  const file = fs.existsSync(staged) ? staged : path.join(ctx.confdir, name);
  if (!fs.existsSync(file)) throw new UciFailure(NOT_FOUND);
  const r = parseUci(fs.readFileSync(file, 'utf8'));
  if (!r.ok) throw new UciFailure('Parse error');
  r.value.name = name;
  return r.value;
}

function stage(ctx: Ctx, name: string, pkg: UciPackage): void {
  fs.mkdirSync(path.dirname(stagedPath(ctx, name)), { recursive: true });
  // as uci commit writes a config file: without a `package` line
  const { name: _package, ...unnamed } = pkg;
  fs.writeFileSync(stagedPath(ctx, name), exportUci(unnamed));
}

function renumber(pkg: UciPackage): void {
  const counts = new Map<string, number>();
  pkg.sections.forEach((s, i) => {
    s.index = i;
    const n = counts.get(s.type) ?? 0;
    counts.set(s.type, n + 1);
    if (s.anonymous) s.name = `@${s.type}[${n}]`;
  });
}

function findSection(pkg: UciPackage, ref: string): UciSection | undefined {
  const m = /^@([^[\]]+)\[(-?\d+)\]$/.exec(ref);
  if (m) {
    const ofType = pkg.sections.filter((s) => s.type === m[1]);
    const n = Number(m[2]);
    return ofType[n < 0 ? ofType.length + n : n];
  }
  return pkg.sections.find((s) => !s.anonymous && s.name === ref);
}

/** 'pkg.sec.opt=value' → parts; the value may hold '=' and '.'. */
function parsePath(arg: string): { pkg: string; sec?: string; opt?: string; value?: string } {
  const eq = arg.indexOf('=');
  const ref = eq < 0 ? arg : arg.slice(0, eq);
  const value = eq < 0 ? undefined : arg.slice(eq + 1);
  // a section reference may hold dots only inside [...]: split on the first two dots outside brackets
  const parts: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of ref) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === '.' && depth === 0 && parts.length < 2) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  const [pkg, sec, opt] = parts;
  if (!pkg || sec === '' || opt === '') throw new UciFailure(INVALID);
  return { pkg, ...(sec !== undefined ? { sec } : {}), ...(opt !== undefined ? { opt } : {}), ...(value !== undefined ? { value } : {}) };
}

function quoted(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

function showValue(v: string | string[]): string {
  return Array.isArray(v) ? v.map(quoted).join(' ') : quoted(v);
}

function showSection(pkgName: string, s: UciSection, out: string[]): void {
  const name = s.name ?? '';
  out.push(`${pkgName}.${name}=${s.type}`);
  for (const [k, v] of s.options) out.push(`${pkgName}.${name}.${k}=${showValue(v)}`);
}

function run(ctx: Ctx, cmd: string, args: string[]): string[] {
  const out: string[] = [];
  switch (cmd) {
    case 'get': {
      const p = parsePath(args[0] ?? '');
      if (p.sec === undefined || p.value !== undefined) throw new UciFailure(INVALID);
      const s = findSection(load(ctx, p.pkg), p.sec);
      if (!s) throw new UciFailure(NOT_FOUND);
      if (p.opt === undefined) out.push(s.type);
      else {
        const v = s.options.get(p.opt);
        if (v === undefined) throw new UciFailure(NOT_FOUND);
        out.push(Array.isArray(v) ? v.join(' ') : v);
      }
      return out;
    }
    case 'show': {
      const p = args[0] === undefined ? undefined : parsePath(args[0]);
      if (!p) {
        for (const f of fs.readdirSync(ctx.confdir).sort()) {
          if (!f.startsWith('.') && fs.statSync(path.join(ctx.confdir, f)).isFile()) out.push(...run(ctx, 'show', [f]));
        }
        return out;
      }
      const pkg = load(ctx, p.pkg);
      if (p.sec === undefined) {
        for (const s of pkg.sections) showSection(p.pkg, s, out);
        return out;
      }
      const s = findSection(pkg, p.sec);
      if (!s) throw new UciFailure(NOT_FOUND);
      if (p.opt === undefined) showSection(p.pkg, s, out);
      else {
        const v = s.options.get(p.opt);
        if (v === undefined) throw new UciFailure(NOT_FOUND);
        out.push(`${p.pkg}.${p.sec}.${p.opt}=${showValue(v)}`);
      }
      return out;
    }
    case 'set':
    case 'add_list':
    case 'del_list': {
      const p = parsePath(args[0] ?? '');
      if (p.sec === undefined || p.value === undefined) throw new UciFailure(INVALID);
      const pkg = load(ctx, p.pkg);
      let s = findSection(pkg, p.sec);
      if (p.opt === undefined) {
        if (cmd !== 'set' || !/^[A-Za-z0-9_]+$/.test(p.sec) || !/^[A-Za-z0-9_-]+$/.test(p.value)) throw new UciFailure(INVALID);
        if (s) s.type = p.value;
        else {
          s = { type: p.value, name: p.sec, anonymous: false, index: pkg.sections.length, options: new Map(), lines: new Map() };
          pkg.sections.push(s);
        }
      } else {
        if (!s) throw new UciFailure(NOT_FOUND);
        if (!/^[A-Za-z0-9_]+$/.test(p.opt)) throw new UciFailure(INVALID);
        const prev = s.options.get(p.opt);
        if (cmd === 'set') {
          if (p.value === '') s.options.delete(p.opt);
          else s.options.set(p.opt, p.value);
        } else if (cmd === 'add_list') {
          s.options.set(p.opt, prev === undefined ? [p.value] : [...(Array.isArray(prev) ? prev : [prev]), p.value]);
        } else if (Array.isArray(prev)) {
          const rest = prev.filter((v) => v !== p.value);
          if (rest.length === 0) s.options.delete(p.opt);
          else s.options.set(p.opt, rest);
        }
      }
      renumber(pkg);
      stage(ctx, p.pkg, pkg);
      return out;
    }
    case 'add': {
      // a new anonymous section at the end; uci prints its internal name (cfgXXXXXX)
      const [pkgName, type] = args;
      if (pkgName === undefined || type === undefined || !/^[A-Za-z0-9_-]+$/.test(type)) throw new UciFailure(INVALID);
      const pkg = load(ctx, pkgName);
      pkg.sections.push({ type, anonymous: true, index: pkg.sections.length, options: new Map(), lines: new Map() });
      renumber(pkg);
      stage(ctx, pkgName, pkg);
      out.push(`cfg${(pkg.sections.length * 16 + 0xcafe00).toString(16).slice(-6)}`);
      return out;
    }
    case 'delete': {
      const p = parsePath(args[0] ?? '');
      if (p.sec === undefined || p.value !== undefined) throw new UciFailure(INVALID);
      const pkg = load(ctx, p.pkg);
      const s = findSection(pkg, p.sec);
      if (!s) throw new UciFailure(NOT_FOUND);
      if (p.opt === undefined) pkg.sections.splice(pkg.sections.indexOf(s), 1);
      else if (!s.options.delete(p.opt)) throw new UciFailure(NOT_FOUND);
      renumber(pkg);
      stage(ctx, p.pkg, pkg);
      return out;
    }
    case 'commit': {
      const names =
        args[0] !== undefined
          ? [args[0]]
          : fs.existsSync(path.join(ctx.confdir, '.uci-staged'))
            ? fs.readdirSync(path.join(ctx.confdir, '.uci-staged'))
            : [];
      for (const name of names) {
        const staged = stagedPath(ctx, name);
        if (!fs.existsSync(staged)) continue;
        fs.writeFileSync(path.join(ctx.confdir, name), fs.readFileSync(staged));
        fs.rmSync(staged);
      }
      return out;
    }
    case 'batch': {
      // one command a line from stdin, arguments split as uci does (single quotes, backslash);
      // a failing line is reported and the rest still runs, as in uci
      for (const line of fs.readFileSync(0, 'utf8').split('\n')) {
        const words = splitArguments(line);
        if (words.length === 0) continue;
        try {
          out.push(...run(ctx, words[0]!, words.slice(1)));
        } catch (e) {
          if (!(e instanceof UciFailure)) throw e;
          if (!ctx.quiet) process.stderr.write(`uci: ${e.message}\n`);
        }
      }
      return out;
    }
    default:
      throw new UciFailure(INVALID);
  }
}

function splitArguments(line: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new UciFailure('Parse error');
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '\\' && i + 1 < line.length) {
      cur = (cur ?? '') + line[++i]!;
    } else if (c === ' ' || c === '\t') {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else cur = (cur ?? '') + c;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

function main(argv: string[]): number {
  const ctx: Ctx = { confdir: process.env['TMIP_UCI_CONFDIR'] ?? '/etc/config', quiet: false };
  const args = [...argv];
  while (args[0]?.startsWith('-')) {
    const flag = args.shift()!;
    if (flag === '-q') ctx.quiet = true;
    else if (flag === '-c') ctx.confdir = args.shift() ?? ctx.confdir;
    else {
      if (!ctx.quiet) process.stderr.write(`uci: ${INVALID}\n`);
      return 1;
    }
  }
  const cmd = args.shift() ?? '';
  try {
    const out = run(ctx, cmd, args);
    if (out.length > 0) process.stdout.write(out.join('\n') + '\n');
    return 0;
  } catch (e) {
    if (!(e instanceof UciFailure)) throw e;
    if (!ctx.quiet) process.stderr.write(`uci: ${e.message}\n`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
