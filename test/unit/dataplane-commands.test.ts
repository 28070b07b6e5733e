// SPDX-License-Identifier: GPL-2.0-only
// From bindings to kernel commands without root: the data-plane driver on the real iproute2/nft
// adapter, whose command runner records every command line and answers like a kernel with nothing
// of ours in it yet. Table-driven: each case is a CN, the bindings it takes part in, and the exact
// commands that must follow (for the parent, the serving CN, and the way home); then the tunnel's
// linger, its creation ahead of a commit (prepare), and updates of one binding.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { BindingView } from '../../src/core/binding.js';
import { DataplaneDriver } from '../../src/cn/dataplane-driver.js';
import type { RunOptions, RunResult } from '../../src/platform/exec.js';
import { IprouteNetOps } from '../../src/platform/iproute-netops.js';
import { away, cn1, cn2, home } from '../support/bindings.js';
import { until } from '../support/helpers.js';

/** A kernel that has the mobile interface and nothing of ours; every command is recorded as one line. */
function recordingKernel() {
  const lines: string[] = [];
  const runner = async (cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> => {
    lines.push(
      [cmd, ...args].join(' ') +
        (opts.input !== undefined
          ? ' <<< ' +
            opts.input
              .split('\n')
              .filter((l) => /elements|iifname|element ip/.test(l))
              .map((l) => l.trim())
              .join(' | ')
          : ''),
    );
    const line = args.join(' ');
    if (line === '-j addr show dev wl0') {
      return {
        code: 0,
        stdout: JSON.stringify([
          {
            ifname: 'wl0',
            address: '02:cc:00:00:00:01',
            mtu: 1500,
            operstate: 'UP',
            addr_info: [{ family: 'inet', local: '10.1.0.1', prefixlen: 24, label: 'wl0' }],
          },
        ]),
        stderr: '',
      };
    }
    if (line.startsWith('-j -d link show dev ')) return { code: 1, stdout: '', stderr: `Device "${args.at(-1)}" does not exist.` };
    if (line === '-j -d link show' || line === '-j route show table main') return { code: 0, stdout: '[]', stderr: '' };
    if (cmd === 'nft' && args[0] === 'delete')
      return { code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory' };
    return { code: 0, stdout: '', stderr: '' };
  };
  return { lines, runner };
}

async function driverFor(self: typeof cn1, lingerMs = 60_000) {
  const k = recordingKernel();
  const d = new DataplaneDriver(new IprouteNetOps({ runner: k.runner }), {
    lingerMs,
    self: self.name,
    selfAddr: self.addr,
    tunnelPrefix: 'tm',
    underlayMtu: 1500,
    mobileIf: 'wl0',
    mssClamp: true,
    log: () => {},
  });
  await d.load();
  return { d, lines: k.lines };
}

/** Creating the vxlan tunnel tm7 on the CN at 10.200.0.<local> (its device MAC ends in <local> as hex). */
const TUNNEL_TO = (remote: string, local: number) => [
  `ip link add tm7 address 02:74:0a:c8:00:${local.toString(16).padStart(2, '0')} mtu 1450 up type vxlan id 7 local 10.200.0.${local} remote ${remote} dstport 4789 ttl 64`,
  'sysctl -w net.ipv4.conf.tm7.rp_filter=0',
];

const CLAMP_TABLE = [
  'nft delete table ip tmip_tm',
  'nft -f - <<< iifname "wl0" ip saddr @roamed tcp flags & (syn | rst) == syn tcp option maxseg size > 1410 tcp option maxseg size set 1410',
];

const cases: { name: string; self: typeof cn1; steps: { bindings: BindingView[]; commands: string[] }[] }[] = [
  {
    name: 'parent of a station that roamed away, then came home',
    self: cn1,
    steps: [
      {
        bindings: [away],
        commands: [
          ...TUNNEL_TO('10.200.0.12', 11),
          // Issued together; the ip -batch runner gets them pipelined (here: recorded in that order).
          'ip neigh replace 10.1.0.5 lladdr 02:74:0a:c8:00:0c dev tm7 nud permanent',
          'ip route replace 10.1.0.5/32 dev tm7',
        ],
      },
      {
        bindings: [home],
        // The tunnel stays (linger); the host route and its neighbour go.
        commands: [
          'ip addr add 10.1.0.6/30 brd + dev wl0 label wl0:tm',
          'ip route del 10.1.0.5/32 dev tm7',
          'ip neigh del 10.1.0.5 dev tm7',
        ],
      },
    ],
  },
  {
    name: 'the CN a station roamed to, then left again',
    self: cn2,
    steps: [
      {
        bindings: [away],
        commands: [
          'ip link add tm7 address 02:74:0a:c8:00:0c mtu 1450 up type vxlan id 7 local 10.200.0.12 remote 10.200.0.11 dstport 4789 ttl 64',
          'ip addr add 10.1.0.6/30 brd + dev wl0 label wl0:tm',
          'sysctl -w net.ipv4.conf.tm7.rp_filter=0',
          // The clamp after the build, on its own chain.
          'nft -f - <<< add element ip tmip_tm roamed { 10.1.0.5 }',
        ],
      },
      {
        bindings: [],
        commands: ['ip addr del 10.1.0.6/30 dev wl0', 'nft -f - <<< delete element ip tmip_tm roamed { 10.1.0.5 }'],
      },
    ],
  },
];

for (const c of cases) {
  test(`bindings to commands: ${c.name}`, async () => {
    const { d, lines } = await driverFor(c.self);
    assert.deepEqual(
      lines,
      ['ip -j -d link show', 'ip -j addr show dev wl0', 'ip -j route show table main', ...CLAMP_TABLE],
      'start-up reads what an earlier run left and creates the clamp table with its empty set',
    );
    for (const [i, step] of c.steps.entries()) {
      lines.length = 0;
      await d.apply(step.bindings);
      await d.idle();
      assert.deepEqual(lines, step.commands, `step ${i + 1}`);
      lines.length = 0;
      await d.apply(step.bindings);
      await d.idle();
      assert.deepEqual(lines, [], `step ${i + 1}: applying the same bindings again issues nothing`);
    }
  });
}

test('an unused tunnel lingers, then is deleted off the plan queue; one needed again within the linger is kept', async () => {
  const { d, lines } = await driverFor(cn1, 30);
  await d.update(away.mac, away);
  await d.update(away.mac, home);
  lines.length = 0;
  await d.update(away.mac, away); // roams away again within the linger: only the route
  assert.deepEqual(lines, [
    'ip neigh replace 10.1.0.5 lladdr 02:74:0a:c8:00:0c dev tm7 nud permanent',
    'ip route replace 10.1.0.5/32 dev tm7',
    'ip addr del 10.1.0.6/30 dev wl0',
  ]);
  lines.length = 0;
  await d.update(away.mac, home);
  assert.ok(!lines.includes('ip link del dev tm7'), 'not at once');
  await until('the linger to end', () => lines.includes('ip link del dev tm7'));
  assert.equal(d.state.tunnels.size, 0, 'and gone from the model');
  assert.equal(d.stats.expired, 1);
});

test('prepare creates the tunnel ahead: the commit then only adds the gateway and the clamp', async () => {
  const { d, lines } = await driverFor(cn2);
  lines.length = 0;
  d.prepare(away);
  await d.idle();
  assert.deepEqual(lines, TUNNEL_TO('10.200.0.11', 12));
  lines.length = 0;
  await d.update(away.mac, away);
  await d.idle();
  assert.deepEqual(lines, [
    'ip addr add 10.1.0.6/30 brd + dev wl0 label wl0:tm',
    'nft -f - <<< add element ip tmip_tm roamed { 10.1.0.5 }',
  ]);
  lines.length = 0;
  d.prepare(away); // already there: nothing
  await d.idle();
  assert.deepEqual(lines, []);
});
