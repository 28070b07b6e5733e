// SPDX-License-Identifier: GPL-2.0-only
// The MLR's journal as text, without I/O: one JSON line per registry change (RegistryChange), after a
// header line naming the snapshot generation it continues. This module encodes records, parses a
// journal (every record decoded with the schema codecs; the first bad one named by its line, a torn
// last line, one a crash cut short before its newline, told apart and dropped) and decides when the
// journal is long enough to be folded into a fresh snapshot (compaction). The files themselves are
// platform/state-file.ts's; loading and group commit are mlr/persistence.ts's.
import { formatIPv4 } from './ip.js';
import type { Binding, RegistryChange } from './registry.js';
import { storedBindingCodec, storedCnCodec, storedPairCodec, storedQuarantineCodec } from './registry.js';
import { int, mac, object, type Codec } from './schema.js';
import { err, ok, type Result } from './result.js';

/** The header line's generation: the snapshot this journal continues carries the same number. */
const generation = int(0, Number.MAX_SAFE_INTEGER);
const headerCodec = object({ t: literalT('journal'), gen: generation });

/** A codec for the `t` field of one record kind. */
function literalT<L extends string>(t: L): Codec<L> {
  return { decode: (v, p) => (v === t ? ok(t) : err(`${p}: expected '${t}'`)), encode: (v) => v };
}

const removeCodec = object({ mac });

/** One registry change as a journal record: `{"t": kind, ...fields}`. Checked field by field when read. */
export const journalRecordCodec: Codec<RegistryChange> = {
  decode(v, p) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return err(`${p}: expected an object`);
    const t = (v as Record<string, unknown>)['t'];
    switch (t) {
      case 'cn': {
        const r = storedCnCodec.decode(v, p);
        return r.ok ? ok({ kind: 'cn', cn: r.value }) : r;
      }
      case 'put': {
        const r = storedBindingCodec.decode(v, p);
        return r.ok ? ok({ kind: 'put', binding: r.value }) : r;
      }
      case 'rm': {
        const r = removeCodec.decode(v, p);
        return r.ok ? ok({ kind: 'remove', mac: r.value.mac }) : r;
      }
      case 'pair': {
        const r = storedPairCodec.decode(v, p);
        return r.ok ? ok({ kind: 'pair', ...r.value }) : r;
      }
      case 'q': {
        const r = storedQuarantineCodec.decode(v, p);
        return r.ok ? ok({ kind: 'quarantine', ...r.value }) : r;
      }
      default:
        return err(`${p}.t: expected one of cn, put, rm, pair, q`);
    }
  },
  encode(c) {
    switch (c.kind) {
      case 'cn':
        return { t: 'cn', ...(storedCnCodec.encode(c.cn) as object) };
      case 'put':
        return { t: 'put', ...(storedBindingCodec.encode(c.binding) as object) };
      case 'remove':
        return { t: 'rm', mac: c.mac };
      case 'pair':
        return { t: 'pair', ...(storedPairCodec.encode(c) as object) };
      case 'quarantine':
        return { t: 'q', ...(storedQuarantineCodec.encode(c) as object) };
    }
  },
};

/** The journal's first line: it continues the snapshot of generation `gen`. */
export function journalHeader(gen: number): string {
  return JSON.stringify(headerCodec.encode({ t: 'journal', gen })) + '\n';
}

/** Records as the text appended to the journal (one line each). */
export function encodeRecords(changes: readonly RegistryChange[]): string {
  let out = '';
  for (const c of changes) out += (c.kind === 'put' ? putRecord(c.binding) : JSON.stringify(journalRecordCodec.encode(c))) + '\n';
  return out;
}

/**
 * A `put` record (nearly every record: each move writes one) written out directly: byte for byte what
 * JSON.stringify(journalRecordCodec.encode(change)) writes, without the intermediate objects.
 */
function putRecord(b: Binding): string {
  return `{"t":"put","mac":${JSON.stringify(b.mac)},"cell":"${formatIPv4(b.cell)}","parent":${JSON.stringify(b.parent)},"current":${JSON.stringify(b.current)},"state":${JSON.stringify(b.state)},"expires":${JSON.stringify(b.expires)}}`;
}

export interface ParsedJournal {
  gen: number;
  changes: RegistryChange[];
  /** Line numbers (1-based; line 1 is the header) of each change, for messages. */
  lines: number[];
  /** A last line without its newline (a write a crash cut short, never acknowledged): its number and length. */
  torn?: { line: number; bytes: number };
}

/**
 * Parse a journal's text. `where` names the file in messages. The first line that is not a valid
 * header or record is reported as `<where> line N: <what> <fix(N)>`; a last line that lacks its
 * newline is not an error but `torn` (dropped: it was never on disk whole, so never acknowledged).
 */
export function parseJournal(text: string, where: string, fix: (line: number) => string = () => ''): Result<ParsedJournal> {
  const bad = (line: number, what: string): Result<ParsedJournal> => err(`${where} line ${line}: ${what} ${fix(line)}`.trimEnd());
  const parts = text.split('\n');
  const tail = parts.pop() ?? '';
  const torn = tail.length > 0 ? { line: parts.length + 1, bytes: Buffer.byteLength(tail) } : undefined;
  if (parts.length === 0) {
    if (torn) return ok({ gen: -1, changes: [], lines: [], torn });
    return bad(1, 'the journal is empty (it has no header line)');
  }
  const header = parseLine(parts[0]!);
  const h = header.ok ? headerCodec.decode(header.value, 'header') : header;
  if (!h.ok) return bad(1, `not a tmip journal header (${h.error})`);
  const changes: RegistryChange[] = [];
  const lines: number[] = [];
  for (let i = 1; i < parts.length; i++) {
    const v = parseLine(parts[i]!);
    if (!v.ok) return bad(i + 1, v.error);
    const c = journalRecordCodec.decode(v.value, 'record');
    if (!c.ok) return bad(i + 1, c.error);
    changes.push(c.value);
    lines.push(i + 1);
  }
  return ok({ gen: h.value.gen, changes, lines, ...(torn ? { torn } : {}) });
}

function parseLine(line: string): Result<unknown> {
  try {
    return ok(JSON.parse(line) as unknown);
  } catch {
    return err(`not a JSON record (${JSON.stringify(line.slice(0, 40))}${line.length > 40 ? '…' : ''})`);
  }
}

/** When the journal is folded into a fresh snapshot. */
export interface CompactionPolicy {
  /** Never compact a journal of fewer records than this. */
  minRecords: number;
  /** Compact when the journal holds more than `factor` × the records a snapshot would hold … */
  factor: number;
  /** … or more than `factor` × the last snapshot's bytes, once past `minBytes`. */
  minBytes: number;
}

export const DEFAULT_COMPACTION: CompactionPolicy = { minRecords: 1000, factor: 2, minBytes: 1 << 20 };

/**
 * Whether to compact now. Compacting costs about the live size, and happens only once the journal has
 * grown by `factor` times that size, so the cost per change stays constant on average (amortised),
 * whatever the number of bindings.
 */
export function shouldCompact(
  journal: { records: number; bytes: number },
  live: { records: number; snapshotBytes: number },
  p: CompactionPolicy = DEFAULT_COMPACTION,
): boolean {
  if (journal.records < p.minRecords) return false;
  if (journal.records > p.factor * live.records) return true;
  return journal.bytes > Math.max(p.minBytes, p.factor * live.snapshotBytes);
}
