// SPDX-License-Identifier: GPL-2.0-only
// Unit tests of IprouteNetOps without root and without running anything: a scripted CommandRunner
// checks the exact argument vector of every command each NetOps method issues and answers with canned
// {code, stdout, stderr}. The tables cover iproute2's JSON as the adapter reads it and every error
// wording that must (or must not) be taken as "already there" / "already gone".
//
// Where the canned error output comes from (see also the patterns in src/platform/iproute-netops.ts):
//   [obs]  observed in a scratch network namespace on this host: iproute2 6.1.0, BusyBox 1.35.0 (`busybox
//          ip`, `busybox sysctl`), procps sysctl, nftables 1.0.6, Linux 6.18.
//   [ip2]  iproute2 sources: lib/utils.c nodev() 'Cannot find device "x"'; ip/ipaddress.c and
//          ip/iplink.c 'Device "x" does not exist.'; lib/libnetlink.c "RTNETLINK answers: <strerror>"
//          (no extended ack) or "Error: <extack message>." (nl_dump_ext_ack).
//   [bb]   BusyBox sources: networking/libiproute/ll_map.c "can't find device 'x'", libnetlink.c
//          "RTNETLINK answers" via bb_perror_msg ("ip: " prefix), iplink.c ioctl(SIOCGIFFLAGS),
//          procps/sysctl.c "error: 'x' is an unknown key" / "error setting key 'x'".
//   [kern] kernel extended-ack texts: net/ipv4/devinet.c "ipv4: Address already assigned", "ipv4:
//          Address not found"; net/ipv4/fib_semantics.c "Nexthop device is not up" (gateway checks,
//          older kernels) and "Device for nexthop is not up" (device-only routes, [obs] on 6.18);
//          net/ipv4/fib_frontend.c "FIB table does not exist" (route delete in a namespace with no
//          routes yet, [obs]).
//   [nft]  nftables: "Error: Could not process rule: <strerror>" (src/mnl.c, libnftables.c, [obs]);
//          newer releases "Error: No such file or directory; did you mean table ..." (src/cmd.c).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TunnelSpec } from '../../src/core/tunnel.js';
import type { CommandRunner, RunOptions, RunResult } from '../../src/platform/exec.js';
import { IprouteNetOps, mssClampRuleset, vxlanMacFor } from '../../src/platform/iproute-netops.js';
import { ip } from '../support/helpers.js';

// ---- the scripted runner ----

interface Step {
  /** The expected command: binary then arguments. */
  argv: readonly string[];
  /** The expected stdin, when the command gets one. */
  input?: string;
  /** The canned answer (defaults: exit 0, no output). */
  reply?: Partial<RunResult>;
}

/** Answers the expected commands in order; anything else gets exit 99 and is reported by check(). */
class ScriptedRunner {
  readonly seen: Array<{ argv: string[]; opts: RunOptions }> = [];

  constructor(private readonly steps: readonly Step[]) {}

  readonly run: CommandRunner = async (cmd, args, opts) => {
    const argv = [cmd, ...args];
    const step = this.steps[this.seen.length];
    this.seen.push({ argv, opts });
    const same = step !== undefined && JSON.stringify(step.argv) === JSON.stringify(argv) && step.input === opts.input;
    if (!same) return { code: 99, stdout: '', stderr: `scripted runner: unexpected command ${argv.join(' ')}` };
    return { code: 0, stdout: '', stderr: '', ...step.reply };
  };

  /** Exactly the expected commands ran, in order, with the expected stdin. */
  check(): void {
    assert.deepEqual(
      this.seen.map((s) => ({ argv: s.argv, input: s.opts.input })),
      this.steps.map((s) => ({ argv: [...s.argv], input: s.input })),
    );
  }
}

const ok = (stdout = ''): Partial<RunResult> => ({ code: 0, stdout });
const fail = (code: number, stderr: string): Partial<RunResult> => ({ code, stderr: stderr.endsWith('\n') ? stderr : `${stderr}\n` });
/** What exec.ts's run reports when it killed a command; `partial` is whatever it printed before. */
const timedOut = (partial: string): Partial<RunResult> => ({ code: 124, timedOut: true, stderr: `${partial}\ntimed out after 5000 ms` });

// ---- fixtures ----

const VX: TunnelSpec = { name: 'tm7', type: 'vxlan', local: ip('10.0.0.1'), remote: ip('10.0.0.2'), key: 7, mtu: 1450 };
const GRE: TunnelSpec = { ...VX, type: 'gre', mtu: 1472 };
const IPIP: TunnelSpec = { ...VX, type: 'ipip', mtu: 1480 };
const VX_MAC = '02:74:0a:00:00:01';

const SHOW_TM7 = ['ip', '-j', '-d', 'link', 'show', 'dev', 'tm7'];
const ADD_VX = [
  'ip',
  'link',
  'add',
  'tm7',
  'address',
  VX_MAC,
  'mtu',
  '1450',
  'up',
  'type',
  'vxlan',
  'id',
  '7',
  'local',
  '10.0.0.1',
  'remote',
  '10.0.0.2',
  'dstport',
  '4789',
  'ttl',
  '64',
];
const ADD_GRE = [
  'ip',
  'link',
  'add',
  'tm7',
  'mtu',
  '1472',
  'up',
  'type',
  'gre',
  'local',
  '10.0.0.1',
  'remote',
  '10.0.0.2',
  'key',
  '7',
  'ttl',
  '64',
];
const ADD_IPIP = ['ip', 'link', 'add', 'tm7', 'mtu', '1480', 'up', 'type', 'ipip', 'local', '10.0.0.1', 'remote', '10.0.0.2', 'ttl', '64'];
const DEL_TM7 = ['ip', 'link', 'del', 'dev', 'tm7'];
const RP_TM7 = ['sysctl', '-w', 'net.ipv4.conf.tm7.rp_filter=0'];
const RP_OK = ok('net.ipv4.conf.tm7.rp_filter = 0\n');
const NO_TM7 = fail(1, 'Device "tm7" does not exist.'); // [ip2][obs] ip -j -d link show dev tm7

/** `ip -j -d link show dev X` output for one link (the fields the adapter reads, as iproute2 6.1 prints them). */
function linkJson(name: string, kind: string | undefined, data: Record<string, unknown> = {}, address = VX_MAC): string {
  return JSON.stringify([
    {
      ifindex: 7,
      ifname: name,
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1450,
      operstate: 'UNKNOWN',
      link_type: 'ether',
      address,
      ...(kind !== undefined ? { linkinfo: { info_kind: kind, ...(Object.keys(data).length ? { info_data: data } : {}) } } : {}),
    },
  ]);
}
const vxData = (over: Record<string, unknown> = {}) => ({ id: 7, remote: '10.0.0.2', local: '10.0.0.1', port: 4789, ttl: 64, ...over });
const greData = (over: Record<string, unknown> = {}) => ({
  remote: '10.0.0.2',
  local: '10.0.0.1',
  ttl: 64,
  ikey: '0.0.0.7',
  okey: '0.0.0.7',
  ...over,
});

// ---- the case table ----

interface Case {
  name: string;
  call: (net: IprouteNetOps) => Promise<unknown>;
  steps: Step[];
  /** The value it resolves with (undefined for the void methods). */
  result?: unknown;
  /** When set, it must reject with a message matching this (and, if given, not matching `notMessage`). */
  rejects?: RegExp;
  notMessage?: RegExp;
}

const cases: Case[] = [];
const add = (group: string, list: Case[]) => {
  for (const c of list) cases.push({ ...c, name: `${group}: ${c.name}` });
};

/** The same command answered with each of `stderrs`, all of which must count as success. */
function understood(
  name: string,
  call: Case['call'],
  before: Step[],
  argv: string[],
  after: Step[],
  stderrs: Array<[string, number, string]>,
): Case[] {
  return stderrs.map(([origin, code, stderr]) => ({
    name: `${name} — ${origin}: ${JSON.stringify(stderr)} (exit ${code}) is success`,
    call,
    steps: [...before, { argv, reply: fail(code, stderr) }, ...after],
  }));
}

/** Input refused by validation: rejects with `re` and runs nothing. */
const invalid = (name: string, call: Case['call'], re: RegExp): Case => ({ name: `${name} runs nothing`, call, steps: [], rejects: re });

/** The same command answered with each of `stderrs`, all of which must reject naming the command line. */
function refused(name: string, call: Case['call'], before: Step[], argv: string[], stderrs: Array<[string, Partial<RunResult>]>): Case[] {
  return stderrs.map(([origin, reply]) => ({
    name: `${name} — ${origin}: ${JSON.stringify(reply.stderr)} (exit ${reply.code ?? 0}) is a failure`,
    call,
    steps: [...before, { argv, reply }],
    rejects: new RegExp(`\`${argv.join(' ').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\` failed \\(exit ${reply.code ?? 0}\\)`),
  }));
}

// interfaceInfo: `ip -j addr show dev X`
{
  const SHOW = ['ip', '-j', 'addr', 'show', 'dev', 'br-lan'];
  const brLan = JSON.stringify([
    {
      ifindex: 3,
      ifname: 'br-lan',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1500,
      operstate: 'UP',
      link_type: 'ether',
      address: '02:00:00:00:00:AA',
      addr_info: [
        { family: 'inet', local: '192.168.1.1', prefixlen: 24, scope: 'global', label: 'br-lan' },
        { family: 'inet', local: '10.1.0.2', prefixlen: 30, scope: 'global', label: 'br-lan:tm' },
        { family: 'inet', local: '10.1.0.9', prefixlen: 32, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    },
  ]);
  // An ipip device: no MAC, iproute2 prints the local address as "address" (POINTOPOINT, NOARP).
  const ipipDev = JSON.stringify([
    {
      ifindex: 9,
      ifname: 'tm7',
      flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'],
      mtu: 1480,
      operstate: 'UNKNOWN',
      link_type: 'ipip',
      address: '10.0.0.1',
      link_pointtopoint: true,
      broadcast: '10.0.0.2',
      addr_info: [],
    },
  ]);
  // A veth whose peer is down [obs]: no UP flag, operstate DOWN.
  const down = JSON.stringify([
    {
      ifindex: 4,
      link: 'v2',
      ifname: 'br-lan',
      flags: ['BROADCAST', 'MULTICAST', 'M-DOWN'],
      mtu: 1500,
      operstate: 'DOWN',
      link_type: 'ether',
      address: 'd2:fb:90:a1:a8:41',
      addr_info: [],
    },
  ]);
  const info = (net: IprouteNetOps) => net.interfaceInfo('br-lan');
  add('interfaceInfo', [
    {
      name: 'MAC (lower-cased), MTU, state and IPv4 addresses with labels (unlabelled: the interface name; IPv6 skipped)',
      call: info,
      steps: [{ argv: SHOW, reply: ok(brLan) }],
      result: {
        ifname: 'br-lan',
        mac: '02:00:00:00:00:aa',
        mtu: 1500,
        up: true,
        addresses: [
          { ip: ip('192.168.1.1'), prefix: 24, label: 'br-lan' },
          { ip: ip('10.1.0.2'), prefix: 30, label: 'br-lan:tm' },
          { ip: ip('10.1.0.9'), prefix: 32, label: 'br-lan' },
        ],
      },
    },
    {
      name: 'a layer-3 tunnel has no MAC (its "address" is an IPv4 address) and counts as up by its UP flag',
      call: (net) => net.interfaceInfo('tm7'),
      steps: [{ argv: ['ip', '-j', 'addr', 'show', 'dev', 'tm7'], reply: ok(ipipDev) }],
      result: { ifname: 'tm7', mac: '00:00:00:00:00:00', mtu: 1480, up: true, addresses: [] },
    },
    {
      name: 'a link that is down',
      call: info,
      steps: [{ argv: SHOW, reply: ok(down) }],
      result: { ifname: 'br-lan', mac: 'd2:fb:90:a1:a8:41', mtu: 1500, up: false, addresses: [] },
    },
    {
      name: "iproute2's 'Device \"x\" does not exist.' [ip2][obs]",
      call: info,
      steps: [{ argv: SHOW, reply: fail(1, 'Device "br-lan" does not exist.') }],
      rejects: /^interface 'br-lan' does not exist$/,
    },
    {
      name: "BusyBox's \"ip: can't find device 'x'\" [bb][obs]",
      call: info,
      steps: [{ argv: SHOW, reply: fail(1, "ip: can't find device 'br-lan'") }],
      rejects: /^interface 'br-lan' does not exist$/,
    },
    { name: 'empty output', call: info, steps: [{ argv: SHOW, reply: ok('\n') }], rejects: /interface 'br-lan' does not exist/ },
    {
      name: 'output about another link only',
      call: info,
      steps: [{ argv: SHOW, reply: ok(brLan.replace('"ifname":"br-lan"', '"ifname":"eth0"')) }],
      rejects: /interface 'br-lan' does not exist/,
    },
    {
      name: 'output that is not JSON',
      call: info,
      steps: [{ argv: SHOW, reply: ok('3: br-lan: <BROADCAST,MULTICAST,UP> mtu 1500\n') }],
      rejects: /cannot parse the output of `ip -j addr show dev br-lan`/,
    },
    {
      name: 'any other failure names the command and its stderr',
      call: info,
      steps: [{ argv: SHOW, reply: fail(255, 'Cannot open netlink socket: Operation not permitted') }],
      rejects: /`ip -j addr show dev br-lan` failed \(exit 255\): Cannot open netlink socket: Operation not permitted/,
    },
    {
      name: 'a timeout is not "does not exist", whatever it printed',
      call: info,
      steps: [{ argv: SHOW, reply: timedOut('Device "br-lan" does not exist.') }],
      rejects: /`ip -j addr show dev br-lan` failed \(exit 124\).*timed out after 5000 ms/,
      notMessage: /^interface/,
    },
    invalid('an invalid name', (net) => net.interfaceInfo('bad name'), /invalid interface name 'bad name'/),
  ]);
}

// probeTunnelTypes: per type `ip -j -d link show dev P` (leftover?), `ip link add P ...`, `ip link del dev P`
{
  const show = (n: number) => ['ip', '-j', '-d', 'link', 'show', 'dev', `tmp${n}`];
  const absent = (n: number): Step => ({ argv: show(n), reply: fail(1, `Device "tmp${n}" does not exist.`) });
  const probeEnds = ['local', '192.0.2.1', 'remote', '192.0.2.2'];
  const addIpip = ['ip', 'link', 'add', 'tmp0', 'type', 'ipip', ...probeEnds, 'ttl', '64'];
  const addGre = ['ip', 'link', 'add', 'tmp1', 'type', 'gre', ...probeEnds, 'key', '16777215', 'ttl', '64'];
  const addVx = ['ip', 'link', 'add', 'tmp2', 'type', 'vxlan', 'id', '16777215', ...probeEnds, 'dstport', '4790', 'ttl', '64'];
  const del = (n: number) => ['ip', 'link', 'del', 'dev', `tmp${n}`];
  const unknownType = fail(2, 'Error: Unknown device type.'); // [obs] no ipip/gre module on this host
  const probe = (net: IprouteNetOps) => net.probeTunnelTypes('tm');
  add('probeTunnelTypes', [
    {
      name: 'only vxlan: "Error: Unknown device type." [obs] means unsupported; the scratch device is deleted',
      call: probe,
      steps: [
        absent(0),
        { argv: addIpip, reply: unknownType },
        absent(1),
        { argv: addGre, reply: unknownType },
        absent(2),
        { argv: addVx },
        { argv: del(2) },
      ],
      result: ['vxlan'],
    },
    {
      name: 'all three types, in TUNNEL_TYPES order',
      call: probe,
      steps: [
        absent(0),
        { argv: addIpip },
        { argv: del(0) },
        absent(1),
        { argv: addGre },
        { argv: del(1) },
        absent(2),
        { argv: addVx },
        { argv: del(2) },
      ],
      result: ['ipip', 'gre', 'vxlan'],
    },
    {
      name: 'a tunnel left over by an interrupted probe is deleted first (BusyBox "can\'t find device" also means absent)',
      call: probe,
      steps: [
        { argv: show(0), reply: fail(1, "ip: can't find device 'tmp0'") },
        { argv: addIpip, reply: unknownType },
        absent(1),
        { argv: addGre, reply: unknownType },
        { argv: show(2), reply: ok(linkJson('tmp2', 'vxlan', vxData({ id: 16777215, port: 4790 }))) },
        { argv: del(2) },
        { argv: addVx },
        { argv: del(2) },
      ],
      result: ['vxlan'],
    },
    {
      name: "a link of the probe's name that is not a tunnel stops the probe",
      call: probe,
      steps: [{ argv: show(0), reply: ok(linkJson('tmp0', 'veth')) }],
      rejects: /cannot probe tunnel types: link tmp0 exists and is not a tunnel \(kind veth\)/,
    },
    {
      name: 'a hung `ip link add` is a failure, not "unsupported"',
      call: probe,
      steps: [absent(0), { argv: addIpip, reply: timedOut('') }],
      rejects: /cannot probe tunnel type ipip: `ip link add tmp0 .*` failed \(exit 124\)/,
    },
    {
      name: 'a missing `ip` is a failure, not "unsupported"',
      call: probe,
      steps: [absent(0), { argv: addIpip, reply: { code: 127, stderr: 'spawn ip ENOENT' } }],
      rejects: /cannot probe tunnel type ipip: `ip link add tmp0 .*` failed \(exit 127\): spawn ip ENOENT/,
    },
    {
      name: 'a scratch device that cannot be deleted is a failure',
      call: probe,
      steps: [absent(0), { argv: addIpip }, { argv: del(0), reply: fail(2, 'RTNETLINK answers: Operation not permitted') }],
      rejects: /`ip link del dev tmp0` failed \(exit 2\): RTNETLINK answers: Operation not permitted/,
    },
    {
      name: 'a prefix that makes invalid device names runs nothing',
      call: (net) => net.probeTunnelTypes('x'.repeat(14)),
      steps: [],
      rejects: /invalid probe device name/,
    },
  ]);
}

// listTunnels: `ip -j -d link show`
{
  const LIST = ['ip', '-j', '-d', 'link', 'show'];
  const links = JSON.stringify([
    { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP'], link_type: 'loopback' },
    { ifindex: 2, ifname: 'tunl0', linkinfo: { info_kind: 'ipip' } },
    { ifindex: 3, ifname: 'gre0', linkinfo: { info_kind: 'gre' } },
    { ifindex: 4, ifname: 'br-lan', linkinfo: { info_kind: 'bridge' } },
    { ifindex: 5, ifname: 'tm1', linkinfo: { info_kind: 'vxlan', info_data: vxData() } },
    { ifindex: 6, ifname: 'tm2', linkinfo: { info_kind: 'gre', info_data: greData() } },
    { ifindex: 7, ifname: 'tm3', linkinfo: { info_kind: 'ipip' } },
    { ifindex: 8, ifname: 'tm4', linkinfo: { info_kind: 'gretap' } },
    { ifindex: 9, ifname: 'tmx', linkinfo: { info_kind: 'veth' } },
    { ifindex: 10, ifname: 'xtm5', linkinfo: { info_kind: 'vxlan' } },
  ]);
  add('listTunnels', [
    {
      name: 'links of our tunnel kinds whose name starts with the prefix, in kernel order',
      call: (net) => net.listTunnels('tm'),
      steps: [{ argv: LIST, reply: ok(links) }],
      result: ['tm1', 'tm2', 'tm3'],
    },
    {
      name: "the kernel's fallback devices (tunl0, gre0) are never ours",
      call: (net) => net.listTunnels(''),
      steps: [{ argv: LIST, reply: ok(links) }],
      result: ['tm1', 'tm2', 'tm3', 'xtm5'],
    },
    { name: 'no links', call: (net) => net.listTunnels('tm'), steps: [{ argv: LIST, reply: ok('[]') }], result: [] },
    {
      name: 'a failure names the command',
      call: (net) => net.listTunnels('tm'),
      steps: [{ argv: LIST, reply: fail(255, 'Cannot open netlink socket: Operation not permitted') }],
      rejects: /`ip -j -d link show` failed \(exit 255\)/,
    },
    {
      name: 'output that is not a JSON array',
      call: (net) => net.listTunnels('tm'),
      steps: [{ argv: LIST, reply: ok('{"ifname":"tm1"}') }],
      rejects: /cannot parse the output of `ip -j -d link show`: not a JSON array/,
    },
  ]);
}

// ensureTunnel: `ip link add` first; only when the name is in use, `ip -j -d link show dev T`, then keep /
// update / re-create; then the rp_filter sysctl
{
  const ensure = (spec: TunnelSpec) => (net: IprouteNetOps) => net.ensureTunnel(spec);
  const SET_UP = (mtu: number) => ['ip', 'link', 'set', 'dev', 'tm7', 'mtu', String(mtu), 'up'];
  const EXISTS = fail(2, 'RTNETLINK answers: File exists'); // [ip2] ip link add of a name in use
  /** A create that finds the name in use, then the look at what is there. */
  const inUse = (add: string[], show: ReturnType<typeof ok>) => [
    { argv: add, reply: EXISTS },
    { argv: SHOW_TM7, reply: show },
  ];
  add('ensureTunnel', [
    {
      name: 'creates a vxlan device with its MAC, MTU, VNI and port, up, in one command, without looking first; then rp_filter=0',
      call: ensure(VX),
      steps: [{ argv: ADD_VX }, { argv: RP_TM7, reply: RP_OK }],
    },
    {
      name: 'creates an ipip device (no key, no MAC)',
      call: ensure(IPIP),
      steps: [{ argv: ADD_IPIP }, { argv: RP_TM7, reply: RP_OK }],
    },
    {
      name: 'creates a gre device with its key',
      call: ensure(GRE),
      steps: [{ argv: ADD_GRE }, { argv: RP_TM7, reply: RP_OK }],
    },
    {
      name: 'BusyBox\'s "ip: RTNETLINK answers: File exists" also means "look at what is there"',
      call: ensure(VX),
      steps: [
        { argv: ADD_VX, reply: fail(2, 'ip: RTNETLINK answers: File exists') },
        { argv: SHOW_TM7, reply: ok(linkJson('tm7', 'vxlan', vxData())) },
        { argv: SET_UP(1450) },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    {
      name: 'a matching vxlan device is kept: only MTU and up',
      call: ensure({ ...VX, mtu: 1400 }),
      steps: [
        ...inUse(
          ADD_VX.map((a) => (a === '1450' ? '1400' : a)),
          ok(linkJson('tm7', 'vxlan', vxData())),
        ),
        { argv: SET_UP(1400) },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    {
      name: 'a matching vxlan device whose MAC was changed gets ours back',
      call: ensure(VX),
      steps: [
        ...inUse(ADD_VX, ok(linkJson('tm7', 'vxlan', vxData(), '4e:13:c1:89:bd:27'))),
        { argv: ['ip', 'link', 'set', 'dev', 'tm7', 'address', VX_MAC] },
        { argv: SET_UP(1450) },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    {
      name: 'a vxlan MAC printed in capitals still matches',
      call: ensure(VX),
      steps: [
        ...inUse(ADD_VX, ok(linkJson('tm7', 'vxlan', vxData(), VX_MAC.toUpperCase()))),
        { argv: SET_UP(1450) },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    {
      name: 'a matching gre device (keys printed as dotted quads) is kept',
      call: ensure(GRE),
      steps: [...inUse(ADD_GRE, ok(linkJson('tm7', 'gre', greData(), '10.0.0.1'))), { argv: SET_UP(1472) }, { argv: RP_TM7, reply: RP_OK }],
    },
    {
      name: 'a matching ipip device is kept',
      call: ensure(IPIP),
      steps: [
        ...inUse(ADD_IPIP, ok(linkJson('tm7', 'ipip', { remote: '10.0.0.2', local: '10.0.0.1', ttl: 64 }, '10.0.0.1'))),
        { argv: SET_UP(1480) },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    ...(
      [
        ['another remote', linkJson('tm7', 'vxlan', vxData({ remote: '10.0.0.9' }))],
        ['another local', linkJson('tm7', 'vxlan', vxData({ local: '10.0.0.9' }))],
        ['another VNI', linkJson('tm7', 'vxlan', vxData({ id: 8 }))],
        ['another UDP port', linkJson('tm7', 'vxlan', vxData({ port: 8472 }))],
        ['another type (gre)', linkJson('tm7', 'gre', greData(), '10.0.0.1')],
      ] as const
    ).map(([what, json]): Case => ({
      name: `a vxlan device with ${what} is deleted and re-created`,
      call: ensure(VX),
      steps: [...inUse(ADD_VX, ok(json)), { argv: DEL_TM7 }, { argv: ADD_VX }, { argv: RP_TM7, reply: RP_OK }],
    })),
    {
      name: 'a gre device with another key is re-created',
      call: ensure(GRE),
      steps: [
        ...inUse(ADD_GRE, ok(linkJson('tm7', 'gre', greData({ ikey: '0.0.0.8', okey: '0.0.0.8' }), '10.0.0.1'))),
        { argv: DEL_TM7 },
        { argv: ADD_GRE },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    {
      name: 'a device that vanished between the look and the delete is simply created',
      call: ensure(VX),
      steps: [
        ...inUse(ADD_VX, ok(linkJson('tm7', 'vxlan', vxData({ id: 8 })))),
        { argv: DEL_TM7, reply: fail(1, 'Cannot find device "tm7"') },
        { argv: ADD_VX },
        { argv: RP_TM7, reply: RP_OK },
      ],
    },
    {
      name: 'a device that vanished between the create and the look is created',
      call: ensure(VX),
      steps: [...inUse(ADD_VX, NO_TM7), { argv: ADD_VX }, { argv: RP_TM7, reply: RP_OK }],
    },
    {
      name: 'a mismatching device that cannot be deleted stops it',
      call: ensure(VX),
      steps: [
        ...inUse(ADD_VX, ok(linkJson('tm7', 'vxlan', vxData({ id: 8 })))),
        { argv: DEL_TM7, reply: fail(2, 'RTNETLINK answers: Operation not permitted') },
      ],
      rejects: /`ip link del dev tm7` failed \(exit 2\): RTNETLINK answers: Operation not permitted/,
    },
    ...(
      [
        ['veth', 'veth'],
        ['a bridge', 'bridge'],
        ['gretap (not one of our kinds)', 'gretap'],
        ['no link kind (a physical port)', undefined],
      ] as const
    ).map(([what, kind]): Case => ({
      name: `an existing link of the tunnel's name that is ${what} is refused, untouched`,
      call: ensure(VX),
      steps: inUse(ADD_VX, ok(linkJson('tm7', kind))),
      rejects: new RegExp(`link tm7 exists and is not a tunnel \\(kind ${kind ?? 'unknown'}\\); not touching it`),
    })),
    {
      name: "a failing create names the command line and the kernel's answer",
      call: ensure(GRE),
      steps: [{ argv: ADD_GRE, reply: fail(2, 'Error: Unknown device type.') }],
      rejects: new RegExp(
        '`ip link add tm7 mtu 1472 up type gre local 10\\.0\\.0\\.1 remote 10\\.0\\.0\\.2 key 7 ttl 64` failed \\(exit 2\\): ' +
          'Error: Unknown device type\\.',
      ),
    },
    {
      name: 'another device with the same VNI is a failure, not "in use"',
      call: ensure(VX),
      steps: [{ argv: ADD_VX, reply: fail(2, 'Error: A VXLAN device with the specified VNI already exists.') }],
      rejects: /`ip link add tm7 .*` failed \(exit 2\): Error: A VXLAN device with the specified VNI already exists\./,
    },
    {
      name: 'a create racing another one twice ("RTNETLINK answers: File exists" after the look found nothing) is a failure',
      call: ensure(VX),
      steps: [...inUse(ADD_VX, NO_TM7), { argv: ADD_VX, reply: EXISTS }],
      rejects: /`ip link add tm7 .*` failed \(exit 2\): RTNETLINK answers: File exists/,
    },
    {
      name: 'a timed-out look is never "absent" (no create follows)',
      call: ensure(VX),
      steps: inUse(ADD_VX, timedOut('Cannot find device "tm7"')),
      rejects: /`ip -j -d link show dev tm7` failed \(exit 124\)/,
    },
    {
      name: 'a look that fails otherwise stops it',
      call: ensure(VX),
      steps: inUse(ADD_VX, fail(255, 'Cannot open netlink socket: Operation not permitted')),
      rejects: /`ip -j -d link show dev tm7` failed \(exit 255\)/,
    },
    {
      name: 'garbage from the look stops it',
      call: ensure(VX),
      steps: inUse(ADD_VX, ok('[{')),
      rejects: /cannot parse the output of `ip -j -d link show dev tm7`/,
    },
    {
      name: 'a failing rp_filter write fails it (BusyBox printing an error yet exiting 0 [bb])',
      call: ensure(VX),
      steps: [
        { argv: ADD_VX },
        { argv: RP_TM7, reply: { code: 0, stderr: "sysctl: error: 'net.ipv4.conf.tm7.rp_filter' is an unknown key\n" } },
      ],
      rejects: /cannot set sysctl net\.ipv4\.conf\.tm7\.rp_filter=0/,
    },
    {
      name: 'a dotted (VLAN-style) name is written with a slash in the sysctl key',
      call: ensure({ ...IPIP, name: 'tm.7' }),
      steps: [{ argv: ADD_IPIP.map((a) => (a === 'tm7' ? 'tm.7' : a)) }, { argv: ['sysctl', '-w', 'net.ipv4.conf.tm/7.rp_filter=0'] }],
    },
    ...(
      [
        ['a name longer than 15 bytes', { name: 'x'.repeat(16) }, /invalid tunnel name/],
        ['a name with a space', { name: 'tm 7' }, /invalid tunnel name/],
        ['an unknown type', { type: 'sit' as unknown as TunnelSpec['type'] }, /unknown tunnel type 'sit'/],
        ['VNI 0', { key: 0 }, /invalid key 0/],
        ['a VNI above 2^24-1', { key: 0x1000000 }, /invalid key 16777216/],
        ['MTU 67', { mtu: 67 }, /invalid MTU 67/],
        ['a local address that is not an IPv4 address', { local: -1 }, /invalid IPv4 tunnel local address/],
        ['a remote address that is not an IPv4 address', { remote: 2 ** 32 }, /invalid IPv4 tunnel remote address/],
      ] as const
    ).map(([what, over, re]): Case => ({
      name: `${what} runs nothing`,
      call: ensure({ ...VX, ...over }),
      steps: [],
      rejects: re,
    })),
  ]);
}

// deleteLink: `ip link del dev X`
{
  const call = (net: IprouteNetOps) => net.deleteLink('tm7');
  add('deleteLink', [
    { name: 'deletes', call, steps: [{ argv: DEL_TM7 }] },
    ...understood(
      'already gone',
      call,
      [],
      DEL_TM7,
      [],
      [
        ['iproute2 [ip2][obs]', 1, 'Cannot find device "tm7"'],
        ['BusyBox ip [bb][obs]', 2, "ip: can't find device 'tm7'"],
        ['gone between lookup and delete (ENODEV)', 2, 'RTNETLINK answers: No such device'],
        ['BusyBox ioctl [bb][obs: `busybox ip link set dev x up`]', 2, 'ip: SIOCGIFFLAGS: No such device'],
      ],
    ),
    ...refused('not gone', call, [], DEL_TM7, [
      ['no permission', fail(2, 'RTNETLINK answers: Operation not permitted')],
      ['a timeout that printed "Cannot find device"', timedOut('Cannot find device "tm7"')],
      ['`ip` could not be started', { code: 127, stderr: 'spawn ip ENOENT' }],
    ]),
    { name: 'an invalid name runs nothing', call: (net) => net.deleteLink('-x'), steps: [], rejects: /invalid interface name '-x'/ },
  ]);
}

// addAddress: `ip addr add A/P [brd +] dev X label L`
{
  const ADD30 = ['ip', 'addr', 'add', '10.1.0.2/30', 'brd', '+', 'dev', 'br-lan', 'label', 'br-lan:tm'];
  const call = (net: IprouteNetOps) => net.addAddress('br-lan', ip('10.1.0.2'), 30, 'br-lan:tm');
  add('addAddress', [
    { name: 'a /30 with its broadcast address', call, steps: [{ argv: ADD30 }] },
    {
      name: 'a /32 and a /31 without one',
      call: async (net) => {
        await net.addAddress('br-lan', ip('10.1.0.9'), 32, 'br-lan:tm');
        await net.addAddress('br-lan', ip('10.1.0.10'), 31, 'br-lan:tm');
      },
      steps: [
        { argv: ['ip', 'addr', 'add', '10.1.0.9/32', 'dev', 'br-lan', 'label', 'br-lan:tm'] },
        { argv: ['ip', 'addr', 'add', '10.1.0.10/31', 'dev', 'br-lan', 'label', 'br-lan:tm'] },
      ],
    },
    ...understood(
      'already there',
      call,
      [],
      ADD30,
      [],
      [
        ['kernel extack via iproute2 [kern][obs]', 2, 'Error: ipv4: Address already assigned.'],
        ['EEXIST without extack [ip2]', 2, 'RTNETLINK answers: File exists'],
        ['BusyBox ip [bb][obs]', 2, 'ip: RTNETLINK answers: File exists'],
      ],
    ),
    ...refused('not there', call, [], ADD30, [
      ['missing interface, iproute2 [ip2][obs]', fail(1, 'Cannot find device "br-lan"')],
      ['missing interface, BusyBox [bb][obs]', fail(1, "ip: can't find device 'br-lan'")],
      ['no permission', fail(2, 'RTNETLINK answers: Operation not permitted')],
      ['a timeout that printed "File exists"', timedOut('RTNETLINK answers: File exists')],
    ]),
    invalid('an invalid label', (net) => net.addAddress('br-lan', ip('10.1.0.2'), 30, 'a b'), /invalid address label 'a b'/),
    invalid('an invalid interface', (net) => net.addAddress('a;b', ip('10.1.0.2'), 30, 'x'), /invalid interface name/),
    invalid('prefix 33', (net) => net.addAddress('br-lan', ip('10.1.0.2'), 33, 'x'), /invalid prefix length 33/),
    invalid('a bad address', (net) => net.addAddress('br-lan', 1.5, 30, 'x'), /invalid IPv4 address 1\.5/),
  ]);
}

// deleteAddress: `ip addr del A/P dev X`
{
  const DEL = ['ip', 'addr', 'del', '10.1.0.2/30', 'dev', 'br-lan'];
  const call = (net: IprouteNetOps) => net.deleteAddress('br-lan', ip('10.1.0.2'), 30);
  add('deleteAddress', [
    { name: 'deletes', call, steps: [{ argv: DEL }] },
    ...understood(
      'already gone',
      call,
      [],
      DEL,
      [],
      [
        ['kernel extack via iproute2 [kern][obs]', 2, 'Error: ipv4: Address not found.'],
        ['EADDRNOTAVAIL without extack [ip2]', 2, 'RTNETLINK answers: Cannot assign requested address'],
        ['BusyBox ip [bb][obs]', 2, 'ip: RTNETLINK answers: Cannot assign requested address'],
        ['interface gone, iproute2 [ip2][obs]', 1, 'Cannot find device "br-lan"'],
        ['interface gone, BusyBox [bb][obs]', 1, "ip: can't find device 'br-lan'"],
      ],
    ),
    ...refused('not gone', call, [], DEL, [
      ['no permission', fail(2, 'RTNETLINK answers: Operation not permitted')],
      ['a timeout that printed "Address not found"', timedOut('Error: ipv4: Address not found.')],
    ]),
    invalid('prefix -1', (net) => net.deleteAddress('br-lan', ip('10.1.0.2'), -1), /invalid prefix length -1/),
  ]);
}

// routeHostIntoTunnel: vxlan `ip neigh replace H lladdr M dev T nud permanent` + `ip route replace H/32 dev T`; others the route only
{
  const NEIGH = ['ip', 'neigh', 'replace', '10.1.0.5', 'lladdr', vxlanMacFor(ip('10.0.0.2')), 'dev', 'tm7', 'nud', 'permanent'];
  const ROUTE = ['ip', 'route', 'replace', '10.1.0.5/32', 'dev', 'tm7'];
  const vx = (net: IprouteNetOps) => net.routeHostIntoTunnel(ip('10.1.0.5'), VX);
  add('routeHostIntoTunnel', [
    {
      name: "vxlan: a permanent neighbour for the peer CN's device MAC, then the /32",
      call: vx,
      steps: [{ argv: NEIGH }, { argv: ROUTE }],
    },
    { name: 'gre: the /32 only', call: (net) => net.routeHostIntoTunnel(ip('10.1.0.5'), GRE), steps: [{ argv: ROUTE }] },
    { name: 'ipip: the /32 only', call: (net) => net.routeHostIntoTunnel(ip('10.1.0.5'), IPIP), steps: [{ argv: ROUTE }] },
    ...refused('route', vx, [{ argv: NEIGH }], ROUTE, [
      ['device down, gateway check [kern]', fail(2, 'Error: Nexthop device is not up.')],
      ['device down, device-only route [kern][obs]', fail(2, 'Error: Device for nexthop is not up.')],
      ['tunnel gone [ip2][obs]', fail(1, 'Cannot find device "tm7"')],
    ]),
    // Both commands are issued at once: the route is sent even when the neighbour fails.
    ...refused('neighbour', vx, [], NEIGH, [
      ['tunnel gone, iproute2 [ip2][obs]', fail(1, 'Cannot find device "tm7"')],
      ['tunnel gone, BusyBox [bb]', fail(1, "ip: can't find device 'tm7'")],
      ['a timeout', timedOut('')],
    ]).map((c) => ({ ...c, steps: [...c.steps, { argv: ROUTE }] })),
    {
      name: "both fail: the error is the neighbour's, the first sent",
      call: vx,
      steps: [
        { argv: NEIGH, reply: fail(1, 'Cannot find device "tm7"') },
        { argv: ROUTE, reply: fail(1, 'Cannot find device "tm7"') },
      ],
      rejects: /`ip neigh replace 10\.1\.0\.5 .*` failed \(exit 1\)/,
    },
    invalid('a bad host address', (net) => net.routeHostIntoTunnel(-5, VX), /invalid IPv4 host address -5/),
    {
      name: 'a bad tunnel name runs nothing',
      call: (net) => net.routeHostIntoTunnel(ip('10.1.0.5'), { ...VX, name: '' }),
      steps: [],
      rejects: /invalid tunnel name ''/,
    },
  ]);
}

// deleteHostRoute: `ip route del H/32 dev T` and `ip neigh del H dev T`, issued at once
{
  const ROUTE = ['ip', 'route', 'del', '10.1.0.5/32', 'dev', 'tm7'];
  const NEIGH = ['ip', 'neigh', 'del', '10.1.0.5', 'dev', 'tm7'];
  const call = (net: IprouteNetOps) => net.deleteHostRoute(ip('10.1.0.5'), 'tm7');
  add('deleteHostRoute', [
    { name: 'deletes the route and the neighbour', call, steps: [{ argv: ROUTE }, { argv: NEIGH }] },
    {
      // An ipip or gre tunnel holds no neighbour entry, and `neigh del` of a missing one ends `ip -batch`.
      name: 'only the route in a tunnel listed as ipip (or gre); both in one listed as vxlan',
      call: async (net) => {
        await net.listTunnels('tm');
        await net.deleteHostRoute(ip('10.1.0.5'), 'tm7');
        await net.deleteHostRoute(ip('10.1.0.5'), 'tm1');
      },
      steps: [
        {
          argv: ['ip', '-j', '-d', 'link', 'show'],
          reply: ok(
            JSON.stringify([
              { ifname: 'tm7', linkinfo: { info_kind: 'ipip' } },
              { ifname: 'tm1', linkinfo: { info_kind: 'vxlan' } },
            ]),
          ),
        },
        { argv: ROUTE },
        { argv: ['ip', 'route', 'del', '10.1.0.5/32', 'dev', 'tm1'] },
        { argv: ['ip', 'neigh', 'del', '10.1.0.5', 'dev', 'tm1'] },
      ],
    },
    ...understood(
      'route already gone',
      call,
      [],
      ROUTE,
      [{ argv: NEIGH }],
      [
        ['ESRCH, iproute2 [ip2][obs]', 2, 'RTNETLINK answers: No such process'],
        ['ESRCH, BusyBox [bb][obs]', 2, 'ip: RTNETLINK answers: No such process'],
        ['no route in the namespace at all [kern][obs]', 2, 'Error: FIB table does not exist.'],
        ['the same with the family prefix [kern]', 2, 'Error: ipv4: FIB table does not exist.'],
        ['tunnel gone, iproute2 [ip2][obs]', 1, 'Cannot find device "tm7"'],
        ['tunnel gone, BusyBox [bb][obs]', 1, "ip: can't find device 'tm7'"],
      ],
    ),
    ...understood(
      'neighbour already gone',
      call,
      [{ argv: ROUTE }],
      NEIGH,
      [],
      [
        ['ENOENT [kern][obs]', 2, 'RTNETLINK answers: No such file or directory'],
        ['tunnel gone [ip2][obs]', 1, 'Cannot find device "tm7"'],
        ['layer-3 tunnel (kept from the first adapter)', 2, 'RTNETLINK answers: Operation not supported'],
      ],
    ),
    ...refused('route', call, [], ROUTE, [
      ['no permission', fail(2, 'RTNETLINK answers: Operation not permitted')],
      ['a timeout that printed "No such process"', timedOut('RTNETLINK answers: No such process')],
    ]).map((c) => ({ ...c, steps: [...c.steps, { argv: NEIGH }] })),
    ...refused('neighbour', call, [{ argv: ROUTE }], NEIGH, [
      ['BusyBox ip has no `neigh del` [obs]', fail(1, "ip: invalid argument 'del' to 'ip'")],
      ['`ip netns exec` of a missing binary [obs]', fail(1, 'exec of "ip" failed: No such file or directory')],
      ['a timeout that printed ENOENT', timedOut('RTNETLINK answers: No such file or directory')],
    ]),
    invalid('an invalid device', (net) => net.deleteHostRoute(ip('10.1.0.5'), 'a/b'), /invalid interface name 'a\/b'/),
  ]);
}

// listTunnelRoutes: `ip -j route show table main`
{
  const LIST = ['ip', '-j', 'route', 'show', 'table', 'main'];
  // As iproute2 6.1 prints them [obs]: host routes without "/32", blackhole/unreachable without a device.
  const routes = JSON.stringify([
    { dst: 'default', gateway: '192.168.1.254', dev: 'eth0', protocol: 'static', flags: [] },
    { dst: '10.1.0.0/24', dev: 'tm7', protocol: 'kernel', scope: 'link', prefsrc: '10.1.0.1', flags: [] },
    { dst: '10.1.0.5', dev: 'tm7', scope: 'link', flags: [] },
    { dst: '10.1.0.6/32', dev: 'tm7', scope: 'link', flags: [] },
    { type: 'blackhole', dst: '10.1.0.9', flags: [] },
    { type: 'unreachable', dst: '10.1.0.10', dev: 'tm7', flags: [] },
    { dst: '10.1.0.7', dev: 'eth0', scope: 'link', flags: [] },
    { type: 'unicast', dst: '10.1.0.8', dev: 'tm8', scope: 'link', flags: [] },
    { dst: '10.2.0.0/16', dev: 'tm8', scope: 'link', flags: [] },
  ]);
  add('listTunnelRoutes', [
    {
      name: 'unicast /32s on devices with the prefix, in kernel order',
      call: (net) => net.listTunnelRoutes('tm'),
      steps: [{ argv: LIST, reply: ok(routes) }],
      result: [
        { ip: ip('10.1.0.5'), dev: 'tm7' },
        { ip: ip('10.1.0.6'), dev: 'tm7' },
        { ip: ip('10.1.0.8'), dev: 'tm8' },
      ],
    },
    { name: 'another prefix', call: (net) => net.listTunnelRoutes('zz'), steps: [{ argv: LIST, reply: ok(routes) }], result: [] },
    { name: 'an empty table [obs]', call: (net) => net.listTunnelRoutes('tm'), steps: [{ argv: LIST, reply: ok('[]\n') }], result: [] },
    {
      name: 'a failure names the command',
      call: (net) => net.listTunnelRoutes('tm'),
      steps: [{ argv: LIST, reply: fail(2, 'Error: ipv4: FIB table does not exist.\nDump terminated') }],
      rejects: /`ip -j route show table main` failed \(exit 2\): Error: ipv4: FIB table does not exist\.; Dump terminated/,
    },
  ]);
}

// setSysctl: `sysctl -w K=V`
{
  const FWD = ['sysctl', '-w', 'net.ipv4.ip_forward=1'];
  const call = (net: IprouteNetOps) => net.setSysctl('net.ipv4.ip_forward', '1');
  add('setSysctl', [
    { name: 'writes', call, steps: [{ argv: FWD, reply: ok('net.ipv4.ip_forward = 1\n') }] },
    {
      name: "a VLAN interface's key (dots as slashes) is passed as given",
      call: (net) => net.setSysctl('net.ipv4.conf.eth0/100.rp_filter', '0'),
      steps: [{ argv: ['sysctl', '-w', 'net.ipv4.conf.eth0/100.rp_filter=0'] }],
    },
    ...(
      [
        ['procps, missing key [obs]', fail(1, 'sysctl: cannot stat /proc/sys/net/ipv4/ip_forward: No such file or directory')],
        ['procps, not root', fail(255, "sysctl: permission denied on key 'net.ipv4.ip_forward'")],
        ['BusyBox, missing key [bb][obs]', fail(1, "sysctl: error: 'net.ipv4.ip_forward' is an unknown key")],
        ['BusyBox printing the error yet exiting 0 [bb]', { code: 0, stderr: "sysctl: error: 'net.ipv4.ip_forward' is an unknown key\n" }],
        ['BusyBox, not root [bb]', fail(1, "sysctl: error setting key 'net.ipv4.ip_forward': Permission denied")],
        ['a timeout', timedOut('')],
      ] as const
    ).map(([origin, reply]): Case => ({
      name: `${origin} is a failure naming key, command and message`,
      call,
      steps: [{ argv: FWD, reply }],
      rejects: new RegExp(
        `^cannot set sysctl net\\.ipv4\\.ip_forward=1: \`sysctl -w net\\.ipv4\\.ip_forward=1\` failed \\(exit ${reply.code}\\): \\S`,
      ),
    })),
    ...(
      [
        ['a key with a shell metacharacter', 'net.ipv4.ip_forward;reboot', '1', /invalid sysctl key/],
        ['a key with ".."', 'net.ipv4..ip_forward', '1', /invalid sysctl key/],
        ['a one-word key', 'kernel', '1', /invalid sysctl key/],
        ['a value with a newline', 'net.ipv4.ip_forward', '1\nnet.ipv4.conf.all.rp_filter=2', /invalid value for sysctl/],
        ['a value with a semicolon', 'net.ipv4.ip_forward', '1;2', /invalid value for sysctl/],
      ] as const
    ).map(([what, key, value, re]) => invalid(what, (net) => net.setSysctl(key, value), re)),
  ]);
}

// setMssClamp: `nft -f -` with the ruleset on stdin; deleteMssClamp: `nft delete table ip T`
{
  const hosts = [ip('10.1.0.9'), ip('10.1.0.5'), ip('10.1.0.9')];
  const ruleset = mssClampRuleset('tmip_tm', 'br-lan', 1410, hosts);
  const set = (net: IprouteNetOps) => net.setMssClamp('tmip_tm', 'br-lan', 1410, hosts);
  const DEL = ['nft', 'delete', 'table', 'ip', 'tmip_tm'];
  const del = (net: IprouteNetOps) => net.deleteMssClamp('tmip_tm');
  const NFT_ENOENT_1_0_6 = 'Error: Could not process rule: No such file or directory\ndelete table ip tmip_tm\n                ^^^^^^^';
  const NFT_ENOENT_NEWER =
    'Error: No such file or directory; did you mean table \u2018tmip_tm\u2019 in family inet?\n' + 'delete table ip tmip_tm';
  add('setMssClamp', [
    { name: 'feeds the whole-table replacement to `nft -f -`', call: set, steps: [{ argv: ['nft', '-f', '-'], input: ruleset }] },
    {
      name: 'no hosts: an empty set',
      call: (net) => net.setMssClamp('tmip_tm', 'br-lan', 1410, []),
      steps: [{ argv: ['nft', '-f', '-'], input: mssClampRuleset('tmip_tm', 'br-lan', 1410, []) }],
    },
    ...refused(
      'nft',
      set,
      [],
      ['nft', '-f', '-'],
      [
        ['not root [nft]', fail(1, 'Error: Could not process rule: Operation not permitted')],
        ['ENOENT is no success here [nft]', fail(1, 'Error: Could not process rule: No such file or directory')],
        ['a timeout', timedOut('')],
      ],
    ).map((c) => ({ ...c, steps: c.steps.map((s) => ({ ...s, input: ruleset })) })),
    ...(
      [
        ['a table name with a space', 'bad table', 'br-lan', 1410, [], /invalid nftables table name/],
        ['a table name with a dash', 'tmip-tm', 'br-lan', 1410, [], /invalid nftables table name/],
        ['a bad interface', 'tmip_tm', 'br lan', 1410, [], /invalid interface name/],
        ['MSS 0', 'tmip_tm', 'br-lan', 0, [], /invalid MSS 0/],
        ['MSS 65536', 'tmip_tm', 'br-lan', 65536, [], /invalid MSS 65536/],
        ['a bad host', 'tmip_tm', 'br-lan', 1410, [-1], /invalid IPv4 host address -1/],
      ] as const
    ).map(([what, table, dev, mss, hs, re]): Case => ({
      name: `${what} runs nothing`,
      call: (net) => net.setMssClamp(table, dev, mss, [...hs]),
      steps: [],
      rejects: re,
    })),
  ]);
  add('deleteMssClamp', [
    { name: 'deletes the table', call: del, steps: [{ argv: DEL }] },
    ...understood(
      'already gone',
      del,
      [],
      DEL,
      [],
      [
        ['nftables 1.0.6 [nft][obs]', 1, NFT_ENOENT_1_0_6],
        ['newer nftables [nft]', 1, NFT_ENOENT_NEWER],
      ],
    ),
    ...refused('not gone', del, [], DEL, [
      ['`ip netns exec` of a missing nft [obs]', fail(1, 'exec of "nft" failed: No such file or directory')],
      ['not root [nft]', fail(1, 'Error: Could not process rule: Operation not permitted')],
      ['a timeout that printed ENOENT', timedOut('Error: Could not process rule: No such file or directory')],
      ['nft could not be started', { code: 127, stderr: 'spawn nft ENOENT' }],
    ]),
    invalid('an invalid table', (net) => net.deleteMssClamp('a;b'), /invalid nftables table name 'a;b'/),
  ]);
}

// ---- running the table ----

describe('IprouteNetOps against a scripted command runner', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const runner = new ScriptedRunner(c.steps);
      const net = new IprouteNetOps({ runner: runner.run });
      const outcome = c.call(net);
      if (c.rejects) {
        await assert.rejects(outcome, (e: unknown) => {
          assert.ok(e instanceof Error, 'rejects with an Error');
          assert.match(e.message, c.rejects as RegExp);
          if (c.notMessage) assert.doesNotMatch(e.message, c.notMessage);
          return true;
        });
      } else {
        assert.deepEqual(await outcome, c.result);
      }
      runner.check();
    });
  }

  test('the table covers every command the adapter issues', () => {
    const kinds = new Set<string>();
    for (const c of cases) {
      for (const s of c.steps) {
        const [bin, ...args] = s.argv;
        const words = args.filter((a) => /^[a-z-]+$/.test(a) && !['dev', 'tmp0', 'tmp1', 'tmp2'].includes(a));
        kinds.add([bin, ...words.slice(0, args[0] === '-j' ? 3 : 2)].join(' '));
      }
    }
    assert.deepEqual([...kinds].sort(), [
      'ip -j -d link',
      'ip -j addr show',
      'ip -j route show',
      'ip addr add',
      'ip addr del',
      'ip link add',
      'ip link del',
      'ip link set',
      'ip neigh del',
      'ip neigh replace',
      'ip route del',
      'ip route replace',
      'nft -f -',
      'nft delete table',
      'sysctl -w',
    ]);
  });
});

describe('IprouteNetOps command plumbing', () => {
  test('the netns and timeout options reach the runner, and failures name the full command line', async () => {
    const runner = new ScriptedRunner([{ argv: DEL_TM7, reply: fail(2, 'RTNETLINK answers: Operation not permitted') }]);
    const net = new IprouteNetOps({ runner: runner.run, netns: 'tmipx-1', timeoutMs: 1234 });
    await assert.rejects(net.deleteLink('tm7'), /`ip netns exec tmipx-1 ip link del dev tm7` failed \(exit 2\)/);
    runner.check();
    assert.deepEqual(runner.seen[0]?.opts, { netns: 'tmipx-1', timeoutMs: 1234 });
  });

  test('stdin goes with the other options', async () => {
    const runner = new ScriptedRunner([{ argv: ['nft', '-f', '-'], input: mssClampRuleset('t', 'br-lan', 1400, []) }]);
    await new IprouteNetOps({ runner: runner.run, netns: 'tmipx-1' }).setMssClamp('t', 'br-lan', 1400, []);
    assert.deepEqual(runner.seen[0]?.opts, { netns: 'tmipx-1', input: mssClampRuleset('t', 'br-lan', 1400, []) });
  });

  test('the binaries can be replaced', async () => {
    const runner = new ScriptedRunner([
      { argv: ['/usr/sbin/ip-full', 'link', 'del', 'dev', 'tm7'] },
      { argv: ['/sbin/nft2', 'delete', 'table', 'ip', 't'] },
      { argv: ['/bin/busybox-sysctl', '-w', 'net.ipv4.ip_forward=1'] },
    ]);
    const net = new IprouteNetOps({ runner: runner.run, ip: '/usr/sbin/ip-full', nft: '/sbin/nft2', sysctl: '/bin/busybox-sysctl' });
    await net.deleteLink('tm7');
    await net.deleteMssClamp('t');
    await net.setSysctl('net.ipv4.ip_forward', '1');
    runner.check();
  });

  test('an invalid namespace name is refused at construction', () => {
    assert.throws(() => new IprouteNetOps({ netns: 'a b' }), /invalid network namespace name/);
  });

  test('without a runner, commands really run (exec.ts run): harmless stand-ins for sysctl', async () => {
    await new IprouteNetOps({ sysctl: 'true' }).setSysctl('net.ipv4.ip_forward', '1');
    await assert.rejects(
      new IprouteNetOps({ sysctl: 'false' }).setSysctl('net.ipv4.ip_forward', '1'),
      /`false -w net\.ipv4\.ip_forward=1` failed \(exit 1\)/,
    );
  });
});
