// SPDX-License-Identifier: GPL-2.0-only
// The nft line runners without root: NftShell against a stand-in for `nft -i` (a shell loop that
// answers the marker and prints nft's error format for some lines), its fallback to `nft -f -`, and
// runNftScript's mapping of `nft -f -` errors back to their lines; then IprouteNetOps.updateMssClamp's
// exact lines and its handling of their errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import { NftShell, runNftScript, type NftLineResult } from '../../src/platform/nft-shell.js';
import { IprouteNetOps } from '../../src/platform/iproute-netops.js';
import type { RunOptions, RunResult } from '../../src/platform/exec.js';
import { ip } from '../support/helpers.js';

const MARKER_ANSWER = 'payload expression, datatype integer (integer), 4 bits';

/** A stand-in for `nft -i`: answers the marker, fails lines containing "bad" like nft does, exits on "die". */
const FAKE_NFT_I = `
while IFS= read -r line; do
  case "$line" in
    "describe ip version") echo "${MARKER_ANSWER}" ;;
    *die*) exit 3 ;;
    *bad*) echo "Error: Could not process rule: No such file or directory" >&2; echo "$line" >&2; echo "                 ^^^" >&2 ;;
    *) : ;;
  esac
done`;

interface Call {
  argv: string[];
  input: string | undefined;
}

/** A runner for the `nft -f -` fallback: answers each call in turn, records it. */
function scripted(answers: RunResult[]) {
  const calls: Call[] = [];
  const runner = async (cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> => {
    calls.push({ argv: [cmd, ...args], input: opts.input });
    return answers.shift() ?? { code: 0, stdout: '', stderr: '' };
  };
  return { calls, runner };
}

const ok: NftLineResult = { ok: true };

test('NftShell: one nft -i, each line answered in order, an error mapped to the line that caused it', async (t) => {
  const fallback = scripted([]);
  const shell = new NftShell({ command: ['sh', '-c', FAKE_NFT_I], runner: fallback.runner, timeoutMs: 3000 });
  t.after(() => shell.close());
  assert.equal(await shell.start(), true, 'the probe is answered');
  const r = await shell.run([
    'add element ip t roamed { 10.1.0.5 }',
    'delete element ip t bad { 10.1.0.9 }',
    'add element ip t roamed { 10.1.0.13 }',
  ]);
  assert.deepEqual(r, [
    ok,
    { ok: false, error: 'Error: Could not process rule: No such file or directory; delete element ip t bad { 10.1.0.9 }' },
    ok,
  ]);
  // Batches sent while others wait are answered in order too.
  const [a, b] = await Promise.all([shell.run(['add element ip t bad { 1.2.3.4 }']), shell.run(['add element ip t roamed { 1.2.3.5 }'])]);
  assert.equal(a[0]?.ok, false);
  assert.deepEqual(b, [ok]);
  assert.equal(fallback.calls.length, 0, 'nothing spawned');
  assert.equal(shell.stats.lines, 5);
});

test('NftShell: where nft -i does not work (no CLI in this build), every batch is spawned as nft -f -', async (t) => {
  const fallback = scripted([{ code: 0, stdout: '', stderr: '' }]);
  const logs: string[] = [];
  const shell = new NftShell({
    command: ['sh', '-c', 'echo "Error: interactive CLI not supported in this build" >&2; exit 1'],
    runner: fallback.runner,
    log: (_l, m) => void logs.push(m),
  });
  t.after(() => shell.close());
  assert.equal(await shell.start(), false);
  assert.equal(shell.unsupported, true);
  assert.ok(
    logs.some((l) => /one process per batch/.test(l) && /interactive CLI not supported/.test(l)),
    logs.join('\n'),
  );
  assert.deepEqual(await shell.run(['add element ip t roamed { 10.1.0.5 }']), [ok]);
  assert.deepEqual(fallback.calls, [{ argv: ['nft', '-f', '-'], input: 'add element ip t roamed { 10.1.0.5 }\n' }]);
});

test('NftShell: a probe answered with something else than two equal lines is not trusted', async (t) => {
  const fallback = scripted([]);
  const shell = new NftShell({ command: ['sh', '-c', 'read a; echo one; read b; echo two; sleep 5'], runner: fallback.runner });
  t.after(() => shell.close());
  assert.equal(await shell.start(), false);
});

test('NftShell: closed while its probe waits, start() still returns', async () => {
  const shell = new NftShell({ command: ['sh', '-c', 'sleep 5'], runner: scripted([]).runner, timeoutMs: 60_000 });
  const started = shell.start();
  shell.close();
  const timeout = new Promise<string>((r) => setTimeout(() => r('hung'), 2000).unref());
  assert.notEqual(await Promise.race([started.then(() => 'settled'), timeout]), 'hung');
});

test('NftShell: lines sent to an nft -i that dies are run again by spawning', async (t) => {
  const fallback = scripted([{ code: 0, stdout: '', stderr: '' }]);
  const logs: string[] = [];
  const shell = new NftShell({ command: ['sh', '-c', FAKE_NFT_I], runner: fallback.runner, log: (_l, m) => void logs.push(m) });
  t.after(() => shell.close());
  assert.equal(await shell.start(), true);
  const r = await shell.run([
    'add element ip t roamed { 10.1.0.5 }',
    'add element ip t die { 10.1.0.9 }',
    'add element ip t roamed { 10.1.0.13 }',
  ]);
  assert.deepEqual(r, [ok, ok, ok]);
  assert.deepEqual(
    fallback.calls.map((c) => c.input),
    ['add element ip t die { 10.1.0.9 }\nadd element ip t roamed { 10.1.0.13 }\n'],
  );
  assert.ok(
    logs.some((l) => /nft -i ended; 2 line\(s\) sent again/.test(l)),
    logs.join('\n'),
  );
  // The next batch starts a new nft -i (it had answered before: not marked unsupported).
  assert.deepEqual(await shell.run(['add element ip t roamed { 10.1.0.17 }']), [ok]);
  assert.equal(fallback.calls.length, 1);
});

test('NftShell refuses lines that could smuggle a second command', async (t) => {
  const shell = new NftShell({ command: ['sh', '-c', FAKE_NFT_I] });
  t.after(() => shell.close());
  assert.throws(() => void shell.run(['add element ip t roamed { 10.1.0.5 }\nflush ruleset']), /refusing nft line/);
  assert.throws(() => void shell.run(['add element ip t roamed { 10.1.0.5 }; flush ruleset']), /refusing nft line/);
});

test('runNftScript: the lines an nft -f - error names fail; the others (rolled back with them) are sent again', async () => {
  const k = scripted([
    {
      code: 1,
      stdout: '',
      stderr:
        '/dev/stdin:2:19-21: Error: No such file or directory; did you mean set ‘s’ in table ip ‘t’?\nadd element ip t nos { 1.2.3.4 }\n                  ^^^\n',
    },
    {
      code: 1,
      stdout: '',
      stderr: '/dev/stdin:2:25-32: Error: Could not process rule: No such file or directory\ndelete element ip t s { 9.9.9.9 }\n   ^^^\n',
    },
    { code: 0, stdout: '', stderr: '' },
  ]);
  const lines = [
    'add element ip t s { 1.1.1.1 }',
    'add element ip t nos { 1.2.3.4 }',
    'delete element ip t s { 9.9.9.9 }',
    'add element ip t s { 2.2.2.2 }',
  ];
  const r = await runNftScript(k.runner, 'nft', { netns: 'x' }, lines);
  assert.deepEqual(r, [
    ok,
    { ok: false, error: 'Error: No such file or directory; did you mean set ‘s’ in table ip ‘t’?; add element ip t nos { 1.2.3.4 }' },
    { ok: false, error: 'Error: Could not process rule: No such file or directory; delete element ip t s { 9.9.9.9 }' },
    ok,
  ]);
  assert.deepEqual(
    k.calls.map((c) => c.input),
    [lines.join('\n') + '\n', [lines[0], lines[2], lines[3]].join('\n') + '\n', [lines[0], lines[3]].join('\n') + '\n'],
  );
});

test('runNftScript: an error that names no line (nft missing, a time-out) fails every line with the command', async () => {
  const k = scripted([{ code: 127, stdout: '', stderr: 'exec of "nft" failed: No such file or directory' }]);
  const r = await runNftScript(k.runner, 'nft', {}, ['add element ip t s { 1.1.1.1 }', 'add element ip t s { 2.2.2.2 }']);
  assert.equal(r.length, 2);
  for (const x of r) assert.ok(!x.ok && /`nft -f -` failed \(exit 127\): exec of "nft" failed/.test(x.error), JSON.stringify(x));
  assert.equal(k.calls.length, 1);
});

test('updateMssClamp: one line per host to the set, spawned as nft -f - without a shell', async () => {
  const k = scripted([]);
  const net = new IprouteNetOps({ runner: k.runner });
  await net.updateMssClamp('tmip_tm', [ip('10.1.0.5'), ip('10.1.0.9')], [ip('10.1.0.13')]);
  assert.deepEqual(k.calls, [
    {
      argv: ['nft', '-f', '-'],
      input:
        'add element ip tmip_tm roamed { 10.1.0.5 }\nadd element ip tmip_tm roamed { 10.1.0.9 }\ndelete element ip tmip_tm roamed { 10.1.0.13 }\n',
    },
  ]);
  await net.updateMssClamp('tmip_tm', [], []);
  assert.equal(k.calls.length, 1, 'nothing to change: nothing run');
  await assert.rejects(net.updateMssClamp('bad table', [ip('10.1.0.5')], []), /invalid nftables table name/);
  await assert.rejects(net.updateMssClamp('tmip_tm', [1.5], []), /invalid IPv4 host address/);
});

test('updateMssClamp through nft -i: removing a host that is gone succeeds; a failed add names its line', async () => {
  const lines: string[][] = [];
  const results: NftLineResult[][] = [
    [{ ok: false, error: 'Error: Could not process rule: No such file or directory; delete element ip tmip_tm roamed { 10.1.0.5 }' }],
    [{ ok: false, error: 'Error: Could not process rule: No such file or directory; add element ip tmip_tm roamed { 10.1.0.9 }' }, ok],
  ];
  const net = new IprouteNetOps({
    runner: () => Promise.reject(new Error('nothing is spawned')),
    nftLines: { run: async (l) => (lines.push([...l]), results.shift()!) },
  });
  await net.updateMssClamp('tmip_tm', [], [ip('10.1.0.5')]);
  await assert.rejects(
    net.updateMssClamp('tmip_tm', [ip('10.1.0.9')], [ip('10.1.0.13')]),
    /`add element ip tmip_tm roamed \{ 10\.1\.0\.9 \}` failed: Error: Could not process rule: No such file or directory/,
  );
  assert.deepEqual(lines, [
    ['delete element ip tmip_tm roamed { 10.1.0.5 }'],
    ['add element ip tmip_tm roamed { 10.1.0.9 }', 'delete element ip tmip_tm roamed { 10.1.0.13 }'],
  ]);
});
