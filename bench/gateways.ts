// SPDX-License-Identifier: GPL-2.0-only
// bench/gateways — what the kernel charges for one more cell's gateway on the CN's mobile interface,
// as the number of cells served there grows. Not a test.
//
// The CN gives each station it serves a gateway address N+2/30 on the mobile interface (NetOps
// addAddress, through one long-lived `ip -batch` process). Linux keeps an interface's IPv4 addresses
// in a list that every add walks, so the cost of an add grows with the addresses already there. This
// bench adds --cells such addresses (default 12,000) to a veth in a network namespace of its own, in
// steps of --step (default 1,000) through one `ip -batch` process per step, and prints the time per
// add at each level. The reference, measured in the same run in a second namespace: the same cells
// served by routes instead (N+2 as a `local` route in table local, N+1 as a /32 on the link), which the
// kernel inserts in constant time. Routes are not what the CN uses: the kernel picks the sender
// address of its own ARP requests from the interface's addresses only, so with routes its requests
// to a station would come from an address outside the station's /30, which some hosts do not
// answer (Linux's arp_announce documentation: "target hosts ... require the source IP address in ARP
// requests to be part of their logical network"). The ratio says what the address list costs.
//   npm run compile && node build/bench/gateways.js [--cells 12000] [--step 1000]     (root)
import { spawnSync } from 'node:child_process';
import { formatIPv4 } from '../src/core/ip.js';
import { intArg } from './synthetic.js';

const CELLS = intArg('cells', 12_000, 1000, 200_000);
const STEP = intArg('step', 1000, 100, 50_000);
/** One namespace for the addresses, one for the routes: neither's tables weigh on the other. */
const NS = { addr: `tmipb-gwa-${process.pid}`, routes: `tmipb-gwr-${process.pid}` };

function ip(ns: string, args: string[], input?: string): void {
  const r = spawnSync('ip', ['-n', ns, ...args], { input, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`ip -n ${ns} ${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
}

/** Cell k's network N: 10.64.0.0 + 4k (a /10 holds a million cells). */
const cell = (k: number) => 0x0a400000 + 4 * k;

/** Seconds for `lines` through one `ip -batch -`. */
function timedBatch(ns: string, lines: string[]): number {
  const t0 = process.hrtime.bigint();
  ip(ns, ['-batch', '-'], lines.join('\n') + '\n');
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('bench/gateways needs root (a network namespace)');
  const made: string[] = [];
  try {
    for (const ns of [NS.addr, NS.routes]) {
      const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr}`);
      made.push(ns);
      ip(ns, ['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
      for (const d of ['va', 'vb']) ip(ns, ['link', 'set', d, 'up']);
    }
    console.log(`bench/gateways: ${CELLS} cells in steps of ${STEP}, one \`ip -batch\` per step, namespaces ${NS.addr}, ${NS.routes}`);
    console.log('cells held  address: ms per add  routes: ms per cell  ratio address/routes');
    const totals = { addr: 0, routes: 0 };
    for (let held = 0; held < CELLS; held += STEP) {
      const n = Math.min(STEP, CELLS - held);
      const addr: string[] = [];
      const routes: string[] = [];
      for (let k = held; k < held + n; k++) {
        const net = cell(k);
        addr.push(`addr add ${formatIPv4(net + 2)}/30 brd + dev va label va:tm`);
        routes.push(`route add local ${formatIPv4(net + 2)}/32 dev va table local`);
        routes.push(`route add ${formatIPv4(net + 1)}/32 dev va scope link src ${formatIPv4(net + 2)}`);
      }
      const a = timedBatch(NS.addr, addr);
      const b = timedBatch(NS.routes, routes);
      totals.addr += a;
      totals.routes += b;
      const perA = (1000 * a) / n;
      const perB = (1000 * b) / n;
      console.log(
        `${String(held).padStart(10)}  ${perA.toFixed(3).padStart(17)}  ${perB.toFixed(3).padStart(19)}  ${(perA / perB).toFixed(1).padStart(20)}`,
      );
    }
    console.log(
      `all ${CELLS} cells: addresses ${totals.addr.toFixed(2)} s, routes ${totals.routes.toFixed(2)} s (ratio ${(totals.addr / totals.routes).toFixed(1)})`,
    );
  } finally {
    for (const ns of made) spawnSync('ip', ['netns', 'del', ns]);
  }
}

main();
