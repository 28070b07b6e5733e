// SPDX-License-Identifier: GPL-2.0-only
// The NetOps contract (test/support/netops-contract.ts) against IprouteNetOps on the real kernel, each
// check in a network namespace of its own that this file creates (tmipnc-<pid>-<n>) and always
// deletes: after each check, at process exit and on SIGINT/SIGTERM/SIGHUP. Every command, those of
// IprouteNetOps (`netns` option) and those that seed or read state, runs through `ip netns exec`;
// nothing in the root namespace is touched. The contract runs twice: with every command spawned, and
// with IprouteNetOps's changes sent through one long-lived `ip -batch` (PersistentRunner, as tmip-cn
// runs it). Then the MSS-clamp set's element changes (updateMssClamp) in the real kernel, through one
// long-lived `nft -i` (NftShell, as tmip-cn runs it) and spawned `nft -f -` per batch. Needs root;
// skipped otherwise.
import { formatIPv4, parseIPv4, type IPv4 } from '../../src/core/ip.js';
import { run, runOk, type CommandRunner } from '../../src/platform/exec.js';
import { IprouteNetOps } from '../../src/platform/iproute-netops.js';
import { NftShell } from '../../src/platform/nft-shell.js';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PersistentRunner, sysctlPath } from '../../src/platform/persistent-runner.js';
import { netopsContract, type ClampView, type ContractEnv } from '../support/netops-contract.js';
import { scratchNamespaces } from './scratch-namespaces.js';

const ROOT = process.getuid?.() === 0;
const SKIP = ROOT ? false : 'needs root to create network namespaces';
/** At most this many namespaces per run (each check takes one). */
const MAX_NAMESPACES = 64;
let made = 0;

/** Parse `nft list table ip T` as IprouteNetOps writes it (both rules must agree). */
function parseClamp(listing: string): ClampView {
  const ifs = [...listing.matchAll(/(?:iif|oif)name "([^"]+)"/g)].map((m) => m[1]);
  const mss = [...listing.matchAll(/maxseg size set (\d+)/g)].map((m) => Number(m[1]));
  if (ifs.length !== 2 || ifs[0] !== ifs[1] || mss.length !== 2 || mss[0] !== mss[1]) {
    throw new Error(`unexpected clamp table:\n${listing}`);
  }
  const elements = /elements = \{([^}]*)\}/.exec(listing)?.[1] ?? '';
  const hosts = elements
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const r = parseIPv4(s);
      if (!r.ok) throw new Error(`bad set element '${s}'`);
      return r.value;
    });
  return { mobileIf: ifs[0] as string, mss: mss[0] as number, hosts: hosts.sort((a, b) => a - b) };
}

/** `batched`: IprouteNetOps's commands go through PersistentRunner (its changes through one `ip -batch`). */
async function namespaceEnv(batched = false): Promise<ContractEnv> {
  if (++made > MAX_NAMESPACES) throw new Error(`more than ${MAX_NAMESPACES} namespaces in one run`);
  const ns = `tmipnc-${process.pid}-${made}`;
  await runOk('ip', ['netns', 'add', ns]);
  scratchNamespaces.add(ns);
  const inNs = (cmd: string, args: string[]) => runOk(cmd, args, { netns: ns, timeoutMs: 5000 });
  await inNs('ip', ['link', 'set', 'dev', 'lo', 'up']);
  const commands: string[] = [];
  const persistent = batched ? new PersistentRunner() : undefined;
  const runner: CommandRunner = (cmd, args, opts) => {
    commands.push([cmd, ...args].join(' '));
    return persistent ? persistent.runner(cmd, args, opts) : run(cmd, args, opts);
  };
  let peers = 0;
  return {
    net: new IprouteNetOps({ netns: ns, runner }),
    async addPlainLink(name: string, addr: IPv4, prefix: number) {
      const peer = `zpeer${++peers}`;
      await inNs('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', peer]);
      await inNs('ip', ['addr', 'add', `${formatIPv4(addr)}/${prefix}`, 'dev', name]);
      await inNs('ip', ['link', 'set', 'dev', peer, 'up']);
      await inNs('ip', ['link', 'set', 'dev', name, 'up']);
    },
    async setDown(name: string) {
      await inNs('ip', ['link', 'set', 'dev', name, 'down']);
    },
    async removeLink(name: string) {
      await inNs('ip', ['link', 'del', 'dev', name]);
    },
    async readSysctl(key: string) {
      const r = await run('cat', [sysctlPath(key)], { netns: ns, timeoutMs: 5000 });
      return r.code === 0 ? r.stdout.trim() : undefined;
    },
    async readNeighbour(addr: IPv4, dev: string) {
      const r = await run('ip', ['-j', 'neigh', 'show', formatIPv4(addr), 'dev', dev], { netns: ns, timeoutMs: 5000 });
      if (r.code !== 0) return undefined;
      const [entry] = JSON.parse(r.stdout || '[]') as Array<{ lladdr?: string }>;
      return entry?.lladdr;
    },
    async linkId(name: string) {
      const r = await run('ip', ['-j', 'link', 'show', 'dev', name], { netns: ns, timeoutMs: 5000 });
      if (r.code !== 0) return undefined;
      return (JSON.parse(r.stdout) as Array<{ ifindex?: number }>)[0]?.ifindex;
    },
    async readClamp(table: string) {
      const r = await run('nft', ['list', 'table', 'ip', table], { netns: ns, timeoutMs: 5000 });
      if (r.code !== 0) {
        if (/No such file or directory/.test(r.stderr)) return undefined;
        throw new Error(`nft list table ip ${table}: ${r.stderr}`);
      }
      return parseClamp(r.stdout);
    },
    async effects() {
      return commands.join('\n');
    },
    async close() {
      persistent?.close();
      // Left in `scratchNamespaces` (for the exit handler) unless really gone.
      if ((await run('ip', ['netns', 'del', ns], { timeoutMs: 5000 })).code === 0) scratchNamespaces.delete(ns);
    },
  };
}

netopsContract('IprouteNetOps in a network namespace', () => namespaceEnv(), { skip: SKIP, timeoutMs: 120_000 });
netopsContract('IprouteNetOps through one ip -batch process (PersistentRunner)', () => namespaceEnv(true), {
  skip: SKIP,
  timeoutMs: 120_000,
});

/** `nft list table ip T` in `ns`, parsed; undefined when the table is absent. */
async function clampIn(ns: string, table: string): Promise<ClampView | undefined> {
  const r = await run('nft', ['list', 'table', 'ip', table], { netns: ns, timeoutMs: 5000 });
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new Error(`nft list table ip ${table}: ${r.stderr}`);
  }
  return parseClamp(r.stdout);
}

const h = (s: string): IPv4 => (parseIPv4(s) as { value: IPv4 }).value;

for (const mode of ['one nft -i (NftShell)', 'nft -f - spawned per batch'] as const) {
  describe(`updateMssClamp in the kernel: ${mode}`, { skip: SKIP, timeout: 60_000 }, () => {
    const ns = `tmipnc-${process.pid}-nft${mode.startsWith('one') ? 'i' : 'f'}`;
    let shell: NftShell | undefined;
    let net: IprouteNetOps;
    after(async () => {
      shell?.close();
      if ((await run('ip', ['netns', 'del', ns], { timeoutMs: 5000 })).code === 0) scratchNamespaces.delete(ns);
    });

    it('adds and removes only the hosts named; the table, its rules and the other hosts stay', async () => {
      await runOk('ip', ['netns', 'add', ns]);
      scratchNamespaces.add(ns);
      if (mode.startsWith('one')) {
        shell = new NftShell({ netns: ns, timeoutMs: 5000 });
        assert.equal(await shell.start(), true, 'nft -i answers its probe');
      }
      net = new IprouteNetOps({ netns: ns, ...(shell ? { nftLines: shell } : {}) });
      await net.setMssClamp('tmip_ts', 'wl0', 1410, []);
      assert.deepEqual(await clampIn(ns, 'tmip_ts'), { mobileIf: 'wl0', mss: 1410, hosts: [] });
      await net.updateMssClamp('tmip_ts', [h('10.1.0.5'), h('10.1.0.9')], []);
      assert.deepEqual((await clampIn(ns, 'tmip_ts'))?.hosts.map(formatIPv4), ['10.1.0.5', '10.1.0.9']);
      await net.updateMssClamp('tmip_ts', [h('10.1.0.13'), h('10.1.0.9')], [h('10.1.0.5')]);
      assert.deepEqual(await clampIn(ns, 'tmip_ts'), { mobileIf: 'wl0', mss: 1410, hosts: [h('10.1.0.9'), h('10.1.0.13')] });
    });

    it('removing a host that is not there succeeds, and the other lines of the batch still apply', async () => {
      await net.updateMssClamp('tmip_ts', [h('10.1.0.17')], [h('10.1.0.5'), h('10.1.0.9')]);
      assert.deepEqual((await clampIn(ns, 'tmip_ts'))?.hosts.map(formatIPv4), ['10.1.0.13', '10.1.0.17']);
    });

    it("adding to a table that is gone fails with nft's error, named by its line; removing from it succeeds", async () => {
      await net.deleteMssClamp('tmip_ts');
      await assert.rejects(
        net.updateMssClamp('tmip_ts', [h('10.1.0.21')], []),
        /`add element ip tmip_ts roamed \{ 10\.1\.0\.21 \}` failed: .*No such file or directory/,
      );
      await net.updateMssClamp('tmip_ts', [], [h('10.1.0.13')]);
      assert.equal(await clampIn(ns, 'tmip_ts'), undefined);
      if (shell) {
        assert.equal(shell.unsupported, false);
        assert.equal(shell.stats.spawned, 0, 'every line went through nft -i');
        assert.ok(shell.stats.lines >= 8);
      }
    });
  });
}
