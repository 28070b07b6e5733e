// SPDX-License-Identifier: GPL-2.0-only
// UCI config files: a total parser for exactly what OpenWrt's libuci reads (a port of its file.c:
// package/config/option/list, quoting, comments, ';', backslash continuation, same-name section
// merges; checked against the real `uci` binary) and a writer for exactly what `uci export` prints.
// Never throws: every problem becomes a 'line N: ...' error, all of a file's errors reported together.
import { err, ok, type Result } from '../core/result.js';

export type UciValue = string | string[];

export interface UciSection {
  type: string;
  /** The section's name; for an anonymous section its `uci show` name, e.g. '@cn[0]'. */
  name?: string;
  anonymous: boolean;
  /** Position among all sections of the package (0-based). */
  index: number;
  /** Options in first-definition order; a `list` option holds a string[]. */
  options: Map<string, UciValue>;
  /** Line number of each option (for a list: of its first item). */
  lines: Map<string, number>;
  /** For list options: the line number of every item, parallel to the value array. */
  itemLines?: Map<string, number[]>;
  /** Line of the (first) `config` statement that opened this section. */
  line?: number;
}

export interface UciPackage {
  name?: string;
  sections: UciSection[];
}

const NAME_RE = /^[A-Za-z0-9_]+$/;
const PACKAGE_RE = /^[A-Za-z0-9_-]+$/;
/**
 * libuci accepts any printable non-space ASCII in a section type (that is how `wifi-iface` works).
 * We additionally refuse the characters `uci export` would write unquoted and so could not read back.
 */
const TYPE_RE = /^[!$-&(-:<-[\]-~]+$/; // 0x21..0x7e minus " # ' ; \

/** C isspace(): space, \t, \n, \v, \f, \r. */
function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
}

class ParseError extends Error {
  constructor(
    readonly line: number,
    message: string,
    /** Not reported: a consequence of an error already reported. */
    readonly silent = false,
  ) {
    super(message);
    this.name = 'ParseError';
  }
}

/** What the line parser reports; each may throw a ParseError. */
interface Handler {
  package(name: string, line: number): void;
  config(type: string, name: string, line: number): void;
  /** libuci checks for an open section before reading an option's arguments. */
  needSection(keyword: 'option' | 'list', line: number): void;
  option(keyword: 'option' | 'list', key: string, value: string, line: number): void;
}

/**
 * A port of libuci's line parser (file.c). libuci works on a line buffer that it edits in place; two
 * of those edits are visible in what it accepts, and are reproduced here with `end` (the first NUL
 * ahead of the cursor): a '#' outside quotes ends the line, and a ';' that directly follows an
 * argument written without any quote or backslash is overwritten, which drops the rest of the line
 * (`option a b; option c d` sets only a, while `option a 'b'; option c d` sets both).
 */
class LineParser {
  /**
   * The current line buffer, one element per character (appending lines stays linear even when a
   * quote spans thousands of lines): one physical line, plus following ones joined by quotes or '\'.
   */
  private b: string[] = [];
  private end = 0;
  private pos = 0;
  /** [offset in b, physical line number] where each joined line starts. */
  private marks: Array<[number, number]> = [];
  private next = 0;
  private lineNo = 0;
  private spanned: { quote: string; open: number; close: number } | undefined;

  constructor(private readonly physical: string[]) {}

  /** Load the next line as a fresh buffer; false at the end of the file. */
  startLine(): boolean {
    if (this.next >= this.physical.length) return false;
    this.b = [];
    this.pos = 0;
    this.marks = [];
    return this.getln(0);
  }

  /** libuci uci_getln(ctx, at): read the next physical line into the buffer at offset `at`. */
  private getln(at: number): boolean {
    const line = this.physical[this.next];
    if (line === undefined) return false;
    this.next++;
    this.lineNo++;
    this.b.length = at;
    for (const ch of line) this.b.push(ch);
    this.end = this.b.length;
    while (this.marks.length > 0 && this.marks[this.marks.length - 1]![0] >= at) this.marks.pop();
    this.marks.push([at, this.lineNo]);
    return true;
  }

  lineAt(p: number): number {
    for (let i = this.marks.length - 1; i >= 0; i--) {
      const [o, l] = this.marks[i]!;
      if (o <= p) return l;
    }
    return this.marks[0]?.[1] ?? this.lineNo;
  }

  private cur(): string {
    return this.pos < this.end ? this.b[this.pos]! : '';
  }

  private fail(message: string, at = this.pos): never {
    throw new ParseError(this.lineAt(at), message);
  }

  private unterminated(q: string, open: number): never {
    let msg = `unterminated ${q} quote (no closing ${q} before the end of the file)`;
    const s = this.spanned;
    if (s) msg += `; note the ${s.quote} quote opened on line ${s.open} runs on to line ${s.close}: is its closing quote missing?`;
    throw new ParseError(open, msg);
  }

  private skipWhitespace(): void {
    while (this.pos < this.end && isSpace(this.b[this.pos]!)) this.pos++;
  }

  /** Past a backslash: false (and the next line joined) when it ends the line. */
  private backslash(): boolean {
    this.pos++;
    const c = this.cur();
    if (c === '' || c === '\n') {
      this.getln(this.pos);
      return false;
    }
    return true;
  }

  private singleQuote(): string {
    const open = this.lineAt(this.pos);
    this.pos++;
    let v = '';
    for (;;) {
      const c = this.cur();
      if (c === "'") {
        this.pos++;
        break;
      }
      if (c === '') {
        this.getln(this.pos);
        if (this.cur() === '') this.unterminated("'", open);
        continue;
      }
      v += c;
      this.pos++;
    }
    const close = this.lineAt(this.pos - 1);
    if (close !== open) this.spanned = { quote: "'", open, close };
    return v;
  }

  private doubleQuote(): string {
    const open = this.lineAt(this.pos);
    this.pos++;
    let v = '';
    for (;;) {
      const c = this.cur();
      if (c === '"') {
        this.pos++;
        break;
      }
      if (c === '') {
        this.getln(this.pos);
        if (this.cur() === '') this.unterminated('"', open);
        continue;
      }
      if (c === '\\') {
        if (!this.backslash()) continue;
        v += this.cur();
        this.pos++;
        continue;
      }
      v += c;
      this.pos++;
    }
    const close = this.lineAt(this.pos - 1);
    if (close !== open) this.spanned = { quote: '"', open, close };
    return v;
  }

  /** libuci parse_str: one argument of adjacent quoted/unquoted pieces. */
  private str(): string {
    let v = '';
    let edited = false; // some quote or backslash was removed, so libuci's write cursor lags behind
    let nextArg = true;
    loop: do {
      const c = this.cur();
      switch (c) {
        case "'":
          v += this.singleQuote();
          edited = true;
          break;
        case '"':
          v += this.doubleQuote();
          edited = true;
          break;
        case '#':
          this.end = this.pos;
          break loop;
        case '':
          break loop;
        case ';':
          nextArg = false;
          break loop;
        case '\\':
          edited = true;
          if (!this.backslash()) continue;
          v += this.cur();
          this.pos++;
          break;
        default:
          v += c;
          this.pos++;
      }
    } while (this.cur() !== '' && !isSpace(this.cur()));
    if (this.cur() !== '' && nextArg) this.pos++;
    else if (!nextArg && !edited) this.end = this.pos; // the terminating NUL lands on the ';'
    return v;
  }

  /** libuci next_arg. */
  private arg(required: boolean, what: string): string {
    this.skipWhitespace();
    const at = this.pos;
    let v: string;
    if (this.cur() === ';') {
      this.pos++;
      v = '';
    } else {
      v = this.str();
    }
    if (v === '' && required) this.fail(what, at);
    return v;
  }

  private assertEol(what: string): void {
    this.skipWhitespace();
    const at = this.pos;
    if (this.arg(false, what) !== '') this.fail(`too many arguments to ${what}; quote a value that contains spaces`, at);
  }

  /** The keyword of the command being parsed (to tell a failed `config` from other failures). */
  keyword: Keyword | undefined;

  /** libuci uci_parse_line: the commands of one line buffer, separated by ';'. A ParseError ends the line. */
  parseLine(h: Handler): void {
    this.keyword = undefined;
    this.skipWhitespace();
    for (;;) {
      // strtok(" \t") on the raw buffer: the keyword ends only at a space or tab
      let p = this.pos;
      while (p < this.end && (this.b[p] === ' ' || this.b[p] === '\t')) p++;
      if (p >= this.end) return;
      let q = p;
      while (q < this.end && this.b[q] !== ' ' && this.b[q] !== '\t') q++;
      const word = this.b.slice(p, q).join('');
      if (word[0] === '#') return;
      const keyword = KEYWORDS[word];
      this.keyword = keyword;
      const line = this.lineAt(p);
      if (!keyword) {
        const trimmed = word.replace(/\s+$/, '');
        if (trimmed === '' || trimmed[0] === ';') {
          this.fail("empty command: a ';' must have a command on each side on the same line", p);
        }
        const bare = KEYWORDS[trimmed];
        if (bare) this.fail(`${bare} without arguments`, p); // libuci: "invalid command" (the word includes the newline)
        this.fail(`invalid command ${show(trimmed)}; expected package, config, option or list`, p);
      }
      this.pos = q + 1;
      if (keyword === 'package') {
        const name = this.arg(true, 'package without a name');
        if (!PACKAGE_RE.test(name)) this.fail(`invalid package name ${show(name)}; expected letters, digits, '_' or '-'`, p);
        this.assertEol('package');
        h.package(name, line);
      } else if (keyword === 'config') {
        const type = this.arg(true, "config without a type; expected 'config <type> [<name>]'");
        if (!TYPE_RE.test(type)) {
          this.fail(`invalid section type ${show(type)}; expected printable ASCII without spaces, quotes, '#', ';' or '\\'`, p);
        }
        const name = this.arg(false, 'config');
        if (name !== '' && !NAME_RE.test(name)) this.fail(`invalid section name ${show(name)}; expected letters, digits or '_'`, p);
        this.assertEol('config');
        h.config(type, name, line);
      } else {
        h.needSection(keyword, line);
        const key = this.arg(true, `${keyword} without a name; expected '${keyword} <name> <value>'`);
        if (!NAME_RE.test(key)) this.fail(`invalid option name ${show(key)}; expected letters, digits or '_'`, p);
        const value = this.arg(false, keyword);
        this.assertEol(`${keyword} '${key}'`);
        h.option(keyword, key, value, line);
      }
    }
  }
}

type Keyword = 'package' | 'config' | 'option' | 'list';

const KEYWORDS: Record<string, Keyword> = {
  p: 'package',
  package: 'package',
  c: 'config',
  config: 'config',
  o: 'option',
  option: 'option',
  l: 'list',
  list: 'list',
};

function show(s: string): string {
  return JSON.stringify(s);
}

/**
 * Parse the text of a UCI config file (as in /etc/config, or `uci export` output).
 *
 * This is libuci's parser (file.c) in its default strict mode, so a file is accepted here exactly when
 * `uci` accepts it and means the same, with these deliberate differences:
 * - all errors of a file are reported (libuci stops at the first), each as 'line N: ...' naming the
 *   line where the command starts;
 * - CRLF line endings count as LF, also inside multi-line quoted values (uci would keep the CR);
 * - a NUL byte is an error (libuci silently truncates the line at it);
 * - section types may not contain quotes, '#', ';' or '\' (libuci accepts them but `uci export` then
 *   writes text it cannot read back);
 * - `package` statements name the package; a second one naming a different package is an error
 *   (loading /etc/config/x, uci ignores them; `uci import` would start another package).
 * Semantics, as in libuci: keywords may be abbreviated to one letter (`c`, `o`, `l`, `p`);
 * `config <type> ''` is anonymous; a later `config` with the same name and type continues the
 * earlier section (same name, other type: error); `option k v` given twice: the last wins, keeping
 * the first one's position; `option k ''` (or no value) is ignored; `list k v` appends; `list` after
 * an `option` of the same name turns it into a list whose first item is the old value; `option` after
 * a `list` replaces the list; `list k` with no value appends ''. Quoted values may span lines.
 */
export function parseUci(input: string): Result<UciPackage> {
  if (typeof input !== 'string') return err('line 1: input is not text');
  const nul = input.indexOf('\0');
  if (nul >= 0) {
    let lineNo = 1;
    for (let i = 0; i < nul; i++) if (input.charCodeAt(i) === 10) lineNo++;
    return err(`line ${lineNo}: NUL byte in the file; a UCI config file is text`);
  }
  const text = input.replace(/\r\n/g, '\n');
  const physical = text.split(/(?<=\n)/).filter((l) => l !== '');

  const errors: string[] = [];
  const pkg: UciPackage = { sections: [] };
  const byName = new Map<string, UciSection>();
  let section: UciSection | undefined;
  let broken = false; // the last `config` failed: skip its options without cascading errors

  const handler: Handler = {
    package(name, line) {
      if (pkg.name !== undefined && pkg.name !== name) {
        throw new ParseError(line, `a second package statement ('${name}' after '${pkg.name}'); one file holds one package`);
      }
      pkg.name = name;
    },
    config(type, name, line) {
      if (name !== '') {
        const prior = byName.get(name);
        if (prior) {
          if (prior.type !== type) {
            const where = prior.line === undefined ? '' : ` on line ${prior.line}`;
            throw new ParseError(
              line,
              `section '${name}' was declared as type '${prior.type}'${where}; it cannot be redeclared as '${type}'`,
            );
          }
          section = prior; // libuci continues the earlier section
          broken = false;
          return;
        }
      }
      const s: UciSection = {
        type,
        anonymous: name === '',
        index: pkg.sections.length,
        options: new Map(),
        lines: new Map(),
        itemLines: new Map(),
        line,
      };
      if (name !== '') {
        s.name = name;
        byName.set(name, s);
      }
      pkg.sections.push(s);
      section = s;
      broken = false;
    },
    needSection(keyword, line) {
      if (section) return;
      if (broken) throw new ParseError(line, '', true);
      throw new ParseError(line, `${keyword} before the first config section; options belong to a 'config <type>' section`);
    },
    option(keyword, key, value, line) {
      if (section) setOption(section, keyword, key, value, line);
    },
  };

  const parser = new LineParser(physical);
  try {
    while (parser.startLine()) {
      try {
        parser.parseLine(handler);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        if (!e.silent) errors.push(`line ${e.line}: ${e.message}`);
        if (parser.keyword === 'config') {
          section = undefined;
          broken = true;
        }
      }
    }
  } catch (e) {
    return err(`line ${parser.lineAt(Infinity)}: internal parser error: ${String(e)}`);
  }

  if (errors.length > 0) return err(errors.join('\n'));
  nameAnonymous(pkg);
  return ok(pkg);
}

function setOption(s: UciSection, kind: 'option' | 'list', key: string, value: string, line: number): void {
  const itemLines = (s.itemLines ??= new Map<string, number[]>());
  const prev = s.options.get(key);
  if (kind === 'option') {
    if (value === '') return; // libuci: setting an option to '' while parsing is a no-op
    s.options.set(key, value);
    s.lines.set(key, line);
    itemLines.delete(key);
    return;
  }
  if (Array.isArray(prev)) {
    prev.push(value);
    const lines = itemLines.get(key);
    if (lines) lines.push(line);
    else
      itemLines.set(
        key,
        prev.map(() => line),
      );
  } else if (typeof prev === 'string') {
    // libuci: the string option becomes the first item of the new list
    s.options.set(key, [prev, value]);
    itemLines.set(key, [s.lines.get(key) ?? line, line]);
  } else {
    s.options.set(key, [value]);
    s.lines.set(key, line);
    itemLines.set(key, [line]);
  }
}

/** Give anonymous sections their `uci show` names: '@<type>[<index among sections of that type>]'. */
function nameAnonymous(pkg: UciPackage): void {
  const counts = new Map<string, number>();
  for (const s of pkg.sections) {
    const i = counts.get(s.type) ?? 0;
    counts.set(s.type, i + 1);
    if (s.anonymous) s.name = `@${s.type}[${i}]`;
  }
}

/** The escaping of `uci export`: every ' becomes '\'' (the value is then wrapped in '...'). */
export function uciEscape(s: string): string {
  return s.replace(/'/g, "'\\''");
}

/**
 * Write a package exactly as `uci export` does: `package <name>` (when named), then for each section
 * a blank line, `config <type>` plus ` '<name>'` for named sections, one tab-indented
 * `option k 'v'` line per option and one `list k 'v'` line per list item; then a final blank line.
 * Options holding '' and empty lists are written as uci would (`option k ''`) / not at all; both
 * vanish when the text is parsed again, just as with uci.
 */
export function exportUci(pkg: UciPackage): string {
  let out = '';
  if (pkg.name !== undefined) out += `package ${uciEscape(pkg.name)}\n`;
  for (const s of pkg.sections) {
    out += `\nconfig ${uciEscape(s.type)}`;
    if (!s.anonymous && s.name !== undefined) out += ` '${uciEscape(s.name)}'`;
    out += '\n';
    for (const [key, value] of s.options) {
      if (Array.isArray(value)) {
        for (const item of value) out += `\tlist ${uciEscape(key)} '${uciEscape(item)}'\n`;
      } else {
        out += `\toption ${uciEscape(key)} '${uciEscape(value)}'\n`;
      }
    }
  }
  out += '\n';
  return out;
}
