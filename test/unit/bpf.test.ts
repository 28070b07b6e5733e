// SPDX-License-Identifier: GPL-2.0-only
// The classic BPF programs of src/proto/bpf.ts, run by the test interpreter (test/support/bpf-vm.ts)
// over built frames: ARP, DHCP (broadcast, with IPv4 options, fragments), other IPv4 by destination
// MAC, our own transmissions, VLAN tags, runts; the encoding (host byte order) and its limits. The
// same frames go through the real kernel in test/lab/netops.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  BPF_OP,
  cnCaptureProgram,
  decodeProgram,
  dhcpReplyProgram,
  encodeProgram,
  notFromProgram,
  type BpfInsn,
} from '../../src/proto/bpf.js';
import { runBpf } from '../support/bpf-vm.js';
import { frameCases, STATION } from '../support/bpf-frames.js';

const OWN = '02:cc:00:00:00:01';

function encoded(p: { ok: true; value: BpfInsn[] } | { ok: false; error: string }): Buffer {
  assert.ok(p.ok, p.ok ? '' : p.error);
  const e = encodeProgram(p.value);
  assert.ok(e.ok, e.ok ? '' : e.error);
  return e.value;
}

function verdict(program: Buffer, frame: Uint8Array): number {
  const r = runBpf(program, frame);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

test('the CN program keeps what libpcap`s filter kept, frame by frame', () => {
  const cn = encoded(cnCaptureProgram(OWN));
  for (const c of frameCases(OWN)) assert.equal(verdict(cn, c.frame) > 0, c.cn, c.name);
});

test('the bench program keeps DHCP replies only', () => {
  const reply = encoded(dhcpReplyProgram(OWN));
  for (const c of frameCases(OWN)) assert.equal(verdict(reply, c.frame) > 0, c.reply, c.name);
});

test('accepting returns the snap length; rejecting returns 0', () => {
  const [arp, , , , , , offer] = frameCases(OWN);
  assert.equal(verdict(encoded(cnCaptureProgram(OWN, 2048)), arp!.frame), 2048);
  assert.equal(verdict(encoded(cnCaptureProgram(OWN)), arp!.frame), 65535);
  assert.equal(verdict(encoded(dhcpReplyProgram(OWN, 1600)), offer!.frame), 1600);
  assert.equal(verdict(encoded(cnCaptureProgram(OWN)), Buffer.alloc(64)), 0, 'a zero frame is neither ARP nor IPv4');
  assert.ok(!cnCaptureProgram(OWN, 0).ok);
  assert.ok(!cnCaptureProgram(OWN, 65536).ok);
});

test('every load past the end of a frame rejects it, as the kernel does', () => {
  const cn = encoded(cnCaptureProgram(OWN));
  const reply = encoded(dhcpReplyProgram(OWN));
  const cases = frameCases(OWN);
  const discover = cases.find((c) => c.name === 'DHCP DISCOVER, broadcast')!.frame;
  const offer = cases.find((c) => c.name === 'DHCP OFFER (67 to 68), broadcast')!.frame;
  const toGateway = cases.find((c) => c.name === 'IPv4 unicast to another gateway')!.frame;
  const arp = cases[0]!.frame;
  // the last byte a program reads: the UDP destination port (14 + 20 + 2 + 2), the ethertype, the protocol
  for (let n = 0; n < 38; n++) assert.equal(verdict(cn, discover.subarray(0, n)), 0, `DISCOVER cut to ${n} bytes`);
  assert.ok(verdict(cn, discover.subarray(0, 38)) > 0, 'DISCOVER cut after its port');
  for (let n = 0; n < 38; n++) assert.equal(verdict(reply, offer.subarray(0, n)), 0, `OFFER cut to ${n} bytes`);
  assert.ok(verdict(reply, offer.subarray(0, 38)) > 0);
  for (let n = 0; n < 14; n++) assert.equal(verdict(cn, arp.subarray(0, n)), 0, `ARP cut to ${n} bytes`);
  assert.ok(verdict(cn, arp.subarray(0, 14)) > 0, 'the ethertype is all ARP needs');
  // IPv4 to another gateway: the UDP test reads the protocol byte first (offset 23)
  for (let n = 0; n < 24; n++) assert.equal(verdict(cn, toGateway.subarray(0, n)), 0, `IPv4 cut to ${n} bytes`);
  assert.ok(verdict(cn, toGateway.subarray(0, 24)) > 0);
});

test('everything but our own transmissions', () => {
  const all = encoded(notFromProgram(OWN));
  for (const c of frameCases(OWN)) {
    const fromUs = c.frame.length >= 12 && c.frame.subarray(6, 12).equals(Buffer.from(OWN.replace(/:/g, ''), 'hex'));
    assert.equal(verdict(all, c.frame) > 0, !fromUs && c.frame.length >= 12, c.name);
  }
  // a MAC that differs from ours in its first two bytes only, or its last four only
  const near1 = Buffer.concat([Buffer.alloc(6), Buffer.from('02cd00000001', 'hex'), Buffer.from('0806', 'hex')]);
  const near2 = Buffer.concat([Buffer.alloc(6), Buffer.from('02cc00000002', 'hex'), Buffer.from('0806', 'hex')]);
  assert.ok(verdict(all, near1) > 0);
  assert.ok(verdict(all, near2) > 0);
  assert.ok(verdict(encoded(cnCaptureProgram(OWN)), near1) > 0);
  assert.ok(verdict(encoded(cnCaptureProgram(STATION)), near1) > 0);
});

test('encoding: 8 bytes per instruction in host byte order, both orders decodable, limits checked', () => {
  const insn: BpfInsn = { code: BPF_OP.JEQ_K, jt: 1, jf: 2, k: 0x01020304 };
  const le = encodeProgram([insn], true);
  const be = encodeProgram([insn], false);
  assert.ok(le.ok && be.ok);
  assert.equal(le.value.toString('hex'), '1500010204030201');
  assert.equal(be.value.toString('hex'), '0015010201020304');
  assert.deepEqual(decodeProgram(be.value, false), { ok: true, value: [insn] });
  const host = encodeProgram([insn]);
  assert.ok(host.ok);
  assert.equal(host.value.toString('hex'), (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? le : be).value.toString('hex'));
  assert.ok(!encodeProgram([]).ok);
  assert.ok(!encodeProgram(Array.from({ length: 4097 }, () => insn)).ok);
  assert.ok(!encodeProgram([{ ...insn, jt: 256 }]).ok);
  assert.ok(!encodeProgram([{ ...insn, k: -1 }]).ok);
  assert.ok(!decodeProgram(Buffer.alloc(12)).ok);
  assert.ok(!decodeProgram(Buffer.alloc(0)).ok);
  // the programs are well within the kernel's limits and end in a return
  for (const p of [cnCaptureProgram(OWN), dhcpReplyProgram(OWN), notFromProgram(OWN)]) {
    assert.ok(p.ok);
    assert.ok(p.value.length < 64);
    assert.equal(p.value.at(-1)!.code, BPF_OP.RET_K);
  }
});

test('the interpreter refuses what it does not model', () => {
  assert.ok(!runBpf(Buffer.from('0000000000000000', 'hex'), Buffer.alloc(60)).ok, 'ld #0 is not interpreted: no silent pass');
  const noRet = encodeProgram([{ code: BPF_OP.LD_B_ABS, jt: 0, jf: 0, k: 0 }]);
  assert.ok(noRet.ok);
  assert.ok(!runBpf(noRet.value, Buffer.alloc(60)).ok);
});
