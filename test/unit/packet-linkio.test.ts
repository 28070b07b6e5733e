// SPDX-License-Identifier: GPL-2.0-only
// openPacketLink's checks that need neither root nor an interface: bad arguments, and a missing
// addon build, are error Results, never exceptions (the module loads the addon lazily, so importing
// it without one is fine too); and the addon's own argument checks, which come before it opens a
// socket. The socket itself: test/lab/netops.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPacketLink, PacketLink, type PacketSocket } from '../../src/platform/packet-linkio.js';
import { BPF_OP, type BpfInsn } from '../../src/proto/bpf.js';

const BUILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ACCEPT: BpfInsn[] = [{ code: BPF_OP.RET_K, jt: 0, jf: 0, k: 65535 }];
const MAC = '02:00:00:00:00:01';

test('bad arguments are error Results', () => {
  const cases: [Parameters<typeof openPacketLink>, RegExp][] = [
    [['bad name', ACCEPT, { mac: MAC }], /invalid interface name/],
    [['x'.repeat(16), ACCEPT, { mac: MAC }], /invalid interface name/],
    [['eth0', ACCEPT, { mac: MAC, rcvbuf: 1000 }], /invalid receive buffer size/],
    [['eth0', ACCEPT, { mac: MAC, rcvbuf: 1.5e9 }], /invalid receive buffer size/],
    [['eth0', ACCEPT, { mac: MAC, snapLength: 10 }], /invalid snap length/],
    [['eth0', ACCEPT, { mac: MAC, snapLength: 70000 }], /invalid snap length/],
    [['eth0', [], { mac: MAC }], /1\.\.4096 instructions/],
    [['eth0', [{ code: 0x10000, jt: 0, jf: 0, k: 0 }], { mac: MAC }], /out of range/],
    [['eth0', ACCEPT, { mac: 'not a mac' }], /MAC/i],
    [['tmipnosuch0', ACCEPT, {}], /does not exist/],
  ];
  for (const [args, re] of cases) {
    const r = openPacketLink(...args);
    assert.ok(!r.ok, `${JSON.stringify(args)} opened`);
    assert.match(r.error, re);
  }
});

test('without the addon built, opening is an error Result, not a crash', () => {
  // a copy of the compiled sources where no node_modules/tmip-packet can be found
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmip-noaddon-'));
  try {
    fs.cpSync(path.join(BUILD, 'src'), path.join(dir, 'src'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const script = `const m = await import(${JSON.stringify(path.join(dir, 'src/platform/packet-linkio.js'))});
      const r = m.openPacketLink('eth0', [{ code: 6, jt: 0, jf: 0, k: 65535 }], { mac: '${MAC}' });
      console.log(JSON.stringify(r));`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      env: { PATH: process.env.PATH },
    });
    assert.equal(out.status, 0, out.stderr);
    const r = JSON.parse(out.stdout) as { ok: boolean; error?: string };
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /cannot load the 'tmip-packet' packet capture addon/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the addon refuses bad arguments, and a call without new, before it opens anything', () => {
  type Ctor = new (...args: unknown[]) => unknown;
  const { PacketSocket } = createRequire(import.meta.url)('tmip-packet') as { PacketSocket: Ctor };
  const prog = Buffer.alloc(8);
  prog.writeUInt16LE(BPF_OP.RET_K, 0);
  prog.writeUInt32LE(65535, 4);
  const noop = (): void => {};
  const make =
    (...args: unknown[]) =>
    () =>
      new PacketSocket(...args);
  const cases: [() => unknown, RegExp][] = [
    // as a plain function `this` is the global object: it must not get a socket wrapped into it
    [() => (PacketSocket as unknown as (...a: unknown[]) => unknown)('tmipnosuch0', prog, 65536, 2048, noop), /called with new/],
    [
      () => (PacketSocket as unknown as { call(t: unknown, ...a: unknown[]): unknown }).call({}, 'tmipnosuch0', prog, 65536, 2048, noop),
      /called with new/,
    ],
    [make('tmipnosuch0', prog, 65536, 2048), /missing arguments/],
    [make('x'.repeat(16), prog, 65536, 2048, noop), /invalid interface name/],
    [make('', prog, 65536, 2048, noop), /invalid interface name/],
    [make('tmipnosuch0', new Uint8Array(12), 65536, 2048, noop), /1\.\.4096 instructions/],
    [make('tmipnosuch0', Buffer.alloc(8 * 4097), 65536, 2048, noop), /1\.\.4096 instructions/],
    [make('tmipnosuch0', 'not a buffer', 65536, 2048, noop), /not a Buffer/],
    [make('tmipnosuch0', prog, 4095, 2048, noop), /rcvbuf/],
    [make('tmipnosuch0', prog, Infinity, 2048, noop), /rcvbuf/],
    [make('tmipnosuch0', prog, 65536, 63, noop), /snaplen/],
    [make('tmipnosuch0', prog, 65536, 65536, noop), /snaplen/],
    [make('tmipnosuch0', prog, 65536, 2048, 'not a function'), /not a function/],
    // all valid: the first thing it asks the kernel is the interface's index
    [make('tmipnosuch0', prog, 65536, 2048, noop), /tmipnosuch0: No such device/],
  ];
  for (const [call, re] of cases) assert.throws(call, re);
});

test('a receiver that throws on every frame costs at most a burst of log lines per interval', () => {
  const lines: string[] = [];
  const clock = { t: 1_000_000 };
  const socket: PacketSocket = {
    send: () => undefined,
    stats: () => ({ received: 0, packets: 0, drops: 0, truncated: 0, rcvbuf: 0, errors: 0, stopped: false }),
    close: () => undefined,
  };
  const link = new PacketLink(
    'wl0',
    MAC,
    socket,
    65535,
    (_level, line) => lines.push(line),
    () => clock.t,
  );
  let calls = 0;
  link.onFrame(() => {
    calls++;
    throw new Error('bad frame');
  });
  const frames = Array.from({ length: 100 }, () => Buffer.alloc(60));
  link.deliver(frames);
  assert.equal(calls, 100, 'every frame still reaches the receiver');
  assert.equal(lines.length, 10, 'a burst, not a line per frame');
  assert.match(lines[0]!, /^wl0: frame receiver failed: Error: bad frame/);
  clock.t += 60_000;
  link.deliver(frames.slice(0, 1));
  assert.equal(lines.length, 12);
  assert.equal(lines[10], '90 more frame receiver failures on wl0 in the last 60 s');
});

test("the link's counters are the socket's, with `stopped` once the socket is no longer polled; kept after close", () => {
  let stopped = false;
  const socket: PacketSocket = {
    send: () => undefined,
    stats: () => ({ received: 7, packets: 9, drops: 2, truncated: 1, rcvbuf: 4096, errors: 1001, stopped }),
    close: () => undefined,
  };
  const link = new PacketLink('wl0', MAC, socket, 65535, () => undefined);
  assert.deepEqual(link.stats(), { received: 7, dropped: 2, truncated: 1, errors: 1001 });
  stopped = true;
  assert.deepEqual(link.stats(), { received: 7, dropped: 2, truncated: 1, errors: 1001, stopped: true });
  link.close();
  stopped = false;
  assert.equal(link.stats().stopped, true, 'the last counters, read at close');
});
