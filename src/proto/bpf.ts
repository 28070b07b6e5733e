// SPDX-License-Identifier: GPL-2.0-only
// Classic BPF (the socket filter language of SO_ATTACH_FILTER): instruction encoding, a small
// assembler with forward labels, and the programs the CN and the DHCP bench attach to their packet
// sockets (src/platform/packet-linkio.ts). Pure: no I/O.
//
// Encoding: each instruction is a struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, 8 bytes in
// the host's byte order, which is what the kernel reads (little-endian on x86 and most ARM routers,
// big-endian on MIPS BE ones such as ath79); encodeProgram detects it at run time. Packet loads are
// in network byte order whatever the host's.
//
// The kernel runs the program on every frame the interface sees (received, and sent by this host)
// before queueing it on the socket; a load past the end of the frame rejects the frame. The value a
// program returns is how many bytes of the frame to keep: 0 rejects. VLAN tags: the kernel removes a
// received frame's 802.1Q tag before packet sockets see it (the addon puts it back into the copy it
// delivers), so these programs see the untagged frame, as libpcap's kernel filters did.
import { macToBytes, type Mac } from '../core/ip.js';
import { err, ok, type Result } from '../core/result.js';
import { ETH_HEADER_LEN, ETHERTYPE, IP_PROTOCOL } from './packet.js';

/** One instruction, as the kernel's struct sock_filter. */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** The opcodes these programs use (linux/bpf_common.h: class | size | mode, or class | op | source). */
export const BPF_OP = {
  LD_W_ABS: 0x20, // A = u32 at [k]
  LD_H_ABS: 0x28, // A = u16 at [k]
  LD_B_ABS: 0x30, // A = u8 at [k]
  LD_H_IND: 0x48, // A = u16 at [X + k]
  LDX_B_MSH: 0xb1, // X = 4 * (u8 at [k] & 0xf)   (an IPv4 header's length)
  JEQ_K: 0x15, // pc += A == k ? jt : jf
  JSET_K: 0x45, // pc += A & k ? jt : jf
  RET_K: 0x06, // return k
} as const;

/** The kernel's limit on a program's length (BPF_MAXINSNS). */
export const BPF_MAX_INSNS = 4096;
/** The most a program can keep of a frame (the addon's largest snap length). */
export const MAX_SNAP = 65535;

/** Offsets in an untagged Ethernet frame (the kernel hands the filter the tag removed). */
const ETH_TYPE = 12;
const IP_START = ETH_HEADER_LEN;
const IP_FLAGS_FRAGMENT_OFF = IP_START + 6; // 3 flag bits, 13-bit fragment offset
const IP_PROTOCOL_OFF = IP_START + 9;
const FRAGMENT_OFFSET_MASK = 0x1fff;

/** Whether this host stores a u16 least significant byte first. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encode instructions as the kernel's sock_filter array, in this host's byte order. */
export function encodeProgram(insns: readonly BpfInsn[], littleEndian = LITTLE_ENDIAN): Result<Buffer> {
  if (insns.length < 1 || insns.length > BPF_MAX_INSNS)
    return err(`a BPF program has 1..${BPF_MAX_INSNS} instructions, not ${insns.length}`);
  const out = Buffer.alloc(insns.length * 8);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (const [i, { code, jt, jf, k }] of insns.entries()) {
    if (!isUint(code, 0xffff) || !isUint(jt, 0xff) || !isUint(jf, 0xff) || !isUint(k, 0xffffffff))
      return err(`BPF instruction ${i} out of range: ${JSON.stringify(insns[i])}`);
    view.setUint16(i * 8, code, littleEndian);
    view.setUint8(i * 8 + 2, jt);
    view.setUint8(i * 8 + 3, jf);
    view.setUint32(i * 8 + 4, k, littleEndian);
  }
  return ok(out);
}

/** Decode a sock_filter array (the inverse of encodeProgram). */
export function decodeProgram(bytes: Uint8Array, littleEndian = LITTLE_ENDIAN): Result<BpfInsn[]> {
  if (bytes.length === 0 || bytes.length % 8 !== 0 || bytes.length / 8 > BPF_MAX_INSNS)
    return err(`a BPF program is 1..${BPF_MAX_INSNS} 8-byte instructions, not ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const insns: BpfInsn[] = [];
  for (let o = 0; o < bytes.length; o += 8)
    insns.push({
      code: view.getUint16(o, littleEndian),
      jt: view.getUint8(o + 2),
      jf: view.getUint8(o + 3),
      k: view.getUint32(o + 4, littleEndian),
    });
  return ok(insns);
}

function isUint(n: number, max: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= max;
}

// ---- assembler: jumps name labels further down ----

type Step = { label: string } | { code: number; k: number; jt?: string; jf?: string };

const op = (code: number, k: number): Step => ({ code, k });
const jump = (code: number, k: number, jt: string, jf: string): Step => ({ code, k, jt, jf });
const label = (name: string): Step => ({ label: name });

/** Resolve labels into relative jump offsets (forward only, at most 255 instructions ahead). */
function assemble(steps: readonly Step[]): Result<BpfInsn[]> {
  const at = new Map<string, number>();
  let n = 0;
  for (const s of steps) {
    if ('label' in s) {
      if (at.has(s.label)) return err(`BPF label '${s.label}' defined twice`);
      at.set(s.label, n);
    } else n++;
  }
  const insns: BpfInsn[] = [];
  for (const s of steps) {
    if ('label' in s) continue;
    const pc = insns.length;
    const offset = (name: string | undefined): number | string => {
      if (name === undefined) return 0;
      const target = at.get(name);
      if (target === undefined) return `BPF label '${name}' is not defined`;
      const d = target - pc - 1;
      return d >= 0 && d <= 0xff ? d : `BPF jump from ${pc} to '${name}' is out of range`;
    };
    const jt = offset(s.jt);
    const jf = offset(s.jf);
    if (typeof jt === 'string') return err(jt);
    if (typeof jf === 'string') return err(jf);
    insns.push({ code: s.code, jt, jf, k: s.k });
  }
  return ok(insns);
}

// ---- building blocks ----

/** The MAC as the two loads that compare it: its first 2 bytes (u16) and its last 4 (u32). */
function macWords(mac: Mac): { hi: number; lo: number } {
  const b = macToBytes(mac);
  return { hi: ((b[0]! << 8) | b[1]!) >>> 0, lo: ((b[2]! << 24) | (b[3]! << 16) | (b[4]! << 8) | b[5]!) >>> 0 };
}

/** `not ether src MAC`: a frame from MAC goes to `reject`; others continue after the block. */
function notFrom(mac: Mac, reject: string): Step[] {
  const { hi, lo } = macWords(mac);
  return [
    op(BPF_OP.LD_W_ABS, 8),
    jump(BPF_OP.JEQ_K, lo, 'src-lo', 'not-own'),
    label('src-lo'),
    op(BPF_OP.LD_H_ABS, 6),
    jump(BPF_OP.JEQ_K, hi, reject, 'not-own'),
    label('not-own'),
  ];
}

/**
 * `udp and dst port PORT` for IPv4 as libpcap compiles it: UDP, first fragment only (fragment offset
 * 0: a later fragment has no UDP header), the port read past the IPv4 header's real length (IHL,
 * options included). Continues at `match` or `miss`.
 */
function udpPort(which: 'src' | 'dst', port: number, match: string, miss: string, prefix: string): Step[] {
  return [
    op(BPF_OP.LD_H_ABS, ETH_TYPE),
    jump(BPF_OP.JEQ_K, ETHERTYPE.IPV4, `${prefix}-ip`, miss),
    label(`${prefix}-ip`),
    op(BPF_OP.LD_B_ABS, IP_PROTOCOL_OFF),
    jump(BPF_OP.JEQ_K, IP_PROTOCOL.UDP, `${prefix}-udp`, miss),
    label(`${prefix}-udp`),
    op(BPF_OP.LD_H_ABS, IP_FLAGS_FRAGMENT_OFF),
    jump(BPF_OP.JSET_K, FRAGMENT_OFFSET_MASK, miss, `${prefix}-first`),
    label(`${prefix}-first`),
    op(BPF_OP.LDX_B_MSH, IP_START),
    op(BPF_OP.LD_H_IND, IP_START + (which === 'src' ? 0 : 2)),
    jump(BPF_OP.JEQ_K, port, match, miss),
  ];
}

function checkSnap(snap: number): string | undefined {
  return isUint(snap, MAX_SNAP) && snap > 0 ? undefined : `snap length ${snap} is not 1..${MAX_SNAP}`;
}

function finish(steps: Step[], snap: number): Result<BpfInsn[]> {
  const bad = checkSnap(snap);
  if (bad) return err(bad);
  return assemble([...steps, label('accept'), op(BPF_OP.RET_K, snap), label('reject'), op(BPF_OP.RET_K, 0)]);
}

// ---- the programs ----

/**
 * The CN's capture on its mobile interface, the meaning of libpcap's
 * `not ether src OWN and (arp or (udp dst port 67) or (ip and not ether dst OWN and not ether multicast))`
 * for IPv4 (libpcap's `udp dst port 67` also matches IPv6, which DHCPv4 never uses): ARP, DHCP to
 * servers, and IPv4 a station sends to some other gateway's MAC (roam detection); not what this
 * host itself sends on the interface (its source MAC is ours). Accepts `snap` bytes.
 */
export function cnCaptureProgram(ownMac: Mac, snap = MAX_SNAP): Result<BpfInsn[]> {
  const dst = macWords(ownMac);
  return finish(
    [
      ...notFrom(ownMac, 'reject'),
      op(BPF_OP.LD_H_ABS, ETH_TYPE),
      jump(BPF_OP.JEQ_K, ETHERTYPE.ARP, 'accept', 'not-arp'),
      label('not-arp'),
      ...udpPort('dst', 67, 'accept', 'other-ip', 'dhcp'),
      // ip and not ether dst OWN and not ether multicast
      label('other-ip'),
      op(BPF_OP.LD_H_ABS, ETH_TYPE),
      jump(BPF_OP.JEQ_K, ETHERTYPE.IPV4, 'is-ip', 'reject'),
      label('is-ip'),
      op(BPF_OP.LD_B_ABS, 0),
      jump(BPF_OP.JSET_K, 0x01, 'reject', 'unicast'), // the group bit: multicast and broadcast
      label('unicast'),
      op(BPF_OP.LD_W_ABS, 2),
      jump(BPF_OP.JEQ_K, dst.lo, 'dst-lo', 'accept'),
      label('dst-lo'),
      op(BPF_OP.LD_H_ABS, 0),
      jump(BPF_OP.JEQ_K, dst.hi, 'reject', 'accept'),
    ],
    snap,
  );
}

/**
 * bench/dhcp's generator: DHCP replies, libpcap's `not ether src OWN and udp and src port 67 and dst
 * port 68` for IPv4. Accepts `snap` bytes.
 */
export function dhcpReplyProgram(ownMac: Mac, snap = MAX_SNAP): Result<BpfInsn[]> {
  return finish(
    [
      ...notFrom(ownMac, 'reject'),
      ...udpPort('src', 67, 'src-67', 'reject', 'reply'),
      label('src-67'),
      op(BPF_OP.LD_H_IND, IP_START + 2),
      jump(BPF_OP.JEQ_K, 68, 'accept', 'reject'),
    ],
    snap,
  );
}

/** Every frame but what this host sends on the interface: libpcap's `not ether src OWN`. */
export function notFromProgram(ownMac: Mac, snap = MAX_SNAP): Result<BpfInsn[]> {
  return finish(notFrom(ownMac, 'reject'), snap);
}
