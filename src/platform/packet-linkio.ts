// SPDX-License-Identifier: GPL-2.0-only
// LinkIO over an AF_PACKET socket through our addon tmip-packet (native/packet/packet.c): a
// promiscuous capture on one Ethernet interface with a classic BPF program (src/proto/bpf.ts), and
// frame injection on the same socket. The addon is loaded lazily, so a missing or broken build is an
// error Result at open time, never a crash at import.
//
// The kernel runs the program on every frame the interface sees, received or sent by this host (not
// this socket's own injections), and queues each accepted frame on the socket, charging its buffer
// (the skb's truesize, not the frame's length) to the receive buffer; a full buffer drops the frame
// and counts it (stats().dropped). The programs the CN and the bench use reject frames whose source
// MAC is the interface's own (what this host transmits). The addon copies each frame into a fresh
// Buffer, so the receiver may keep it.
//
// The interface going down and up again is survived (stats().errors counts it). Deleted, and perhaps
// created again under the same name (a new ifindex), it leaves the socket deaf for good: one error
// counted, then nothing; the link must be opened again, which the CN does when it sees the new index
// (cn/daemon.ts checkMobile, cn/mobile-link.ts).
import { monotonicMs } from '../core/clock.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseMac, type Mac } from '../core/ip.js';
import { err, ok, type Result } from '../core/result.js';
import { RateLimitedLog } from '../proto/auth.js';
import { encodeProgram, MAX_SNAP, type BpfInsn } from '../proto/bpf.js';
import { isValidIfname } from './iproute-netops.js';
import type { LinkIO, LinkStats } from './linkio.js';
import { LOG, type LogFn } from './log.js';

export interface PacketLinkOptions {
  /** Receive buffer in bytes asked of the kernel (default RCVBUF); it doubles it for its overhead. */
  rcvbuf?: number;
  /**
   * The longest frame delivered, 802.1Q tag included; longer ones are counted (truncated) and
   * dropped. Default MAX_SNAP (65,535): on a plain packet socket it costs one buffer of that size in
   * the addon, nothing per frame (the kernel charges each queued frame its skb, whatever the snap
   * length), and it keeps the frames GRO merges on an interface with offloads on (up to 64 KiB),
   * which a snap length near the MTU (1,518 with a tag) would drop.
   */
  snapLength?: number;
  /** The interface's MAC; read from /sys/class/net/IF/address when absent. */
  mac?: Mac;
  /**
   * Where errors thrown by the frame receiver are reported (default: stderr), rate-limited: a frame
   * from the air that makes the receiver throw cannot make us write a line per frame.
   */
  log?: LogFn;
}

/** The addon's socket object (native/packet/packet.c). */
export interface PacketSocket {
  send(frame: Buffer): string | undefined;
  stats(): { received: number; packets: number; drops: number; truncated: number; rcvbuf: number; errors: number; stopped: boolean };
  close(): void;
}

type PacketModule = {
  PacketSocket: new (
    ifname: string,
    program: Buffer,
    rcvbuf: number,
    snaplen: number,
    onFrames: (frames: Buffer[]) => void,
  ) => PacketSocket;
};

/**
 * The receive buffer asked for: 1 MiB, which the kernel doubles to 2 MiB of skb charge (SO_RCVBUFFORCE
 * as root, so net.core.rmem_max does not cap it). What a small frame costs is its skb's truesize: a
 * 342-byte DHCP DISCOVER received on a veth is charged 1,280 bytes (measured by test/lab/netops.test.ts:
 * /proc/net/packet's Rmem over the frames queued), so about 1,600 of them fit; a Wi-Fi driver's
 * receive buffers are commonly 2 to 4 KiB (not measured here), which still leaves room for 500: a
 * power-cut burst of 500 phones' DISCOVERs waits here while the event loop is busy. Unlike libpcap's
 * ring (mapped, counted in RSS whether used or not) this is kernel memory held only while frames wait.
 */
export const RCVBUF = 1 << 20;

let packetModule: PacketModule | undefined;

function loadAddon(): Result<PacketModule> {
  if (packetModule) return ok(packetModule);
  try {
    const require = createRequire(import.meta.url);
    const mod = require('tmip-packet') as PacketModule;
    if (typeof mod?.PacketSocket !== 'function') return err(`the 'tmip-packet' module has no PacketSocket class`);
    packetModule = mod;
    return ok(mod);
  } catch (e) {
    return err(`cannot load the 'tmip-packet' packet capture addon: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The MAC address the kernel reports for an interface. */
export function readInterfaceMac(ifname: string): Result<Mac> {
  if (!isValidIfname(ifname)) return err(`invalid interface name '${ifname}'`);
  let text: string;
  try {
    text = readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(code === 'ENOENT' ? `interface '${ifname}' does not exist` : `cannot read the MAC of '${ifname}': ${String(e)}`);
  }
  return parseMac(text);
}

/** Open a promiscuous capture-and-inject link on `ifname` that delivers what `program` accepts. */
export function openPacketLink(ifname: string, program: readonly BpfInsn[], opts: PacketLinkOptions = {}): Result<LinkIO> {
  if (!isValidIfname(ifname)) return err(`invalid interface name '${ifname}'`);
  const rcvbuf = opts.rcvbuf ?? RCVBUF;
  if (!Number.isInteger(rcvbuf) || rcvbuf < 65536 || rcvbuf > 1 << 30) return err(`invalid receive buffer size ${rcvbuf}`);
  const snapLength = opts.snapLength ?? MAX_SNAP;
  if (!Number.isInteger(snapLength) || snapLength < 64 || snapLength > MAX_SNAP) return err(`invalid snap length ${snapLength}`);
  const code = encodeProgram(program);
  if (!code.ok) return code;
  let mac: Mac;
  if (opts.mac !== undefined) {
    const m = parseMac(opts.mac);
    if (!m.ok) return m;
    mac = m.value;
  } else {
    const m = readInterfaceMac(ifname);
    if (!m.ok) return m;
    mac = m.value;
  }
  const mod = loadAddon();
  if (!mod.ok) return mod;

  // The socket delivers to the link object created below; a frame cannot arrive before the
  // constructor returns (the event loop delivers it later).
  const to: { link?: PacketLink } = {};
  let socket: PacketSocket;
  try {
    socket = new mod.value.PacketSocket(ifname, code.value, rcvbuf, snapLength, (frames) => to.link?.deliver(frames));
  } catch (e) {
    return err(`cannot capture on '${ifname}': ${e instanceof Error ? e.message : String(e)}`);
  }
  to.link = new PacketLink(ifname, mac, socket, snapLength, opts.log);
  return ok(to.link);
}

/** The link over one addon socket; exported for tests, which give it a stand-in socket. */
export class PacketLink implements LinkIO {
  private receiver: ((frame: Buffer) => void) | undefined;
  private closed = false;
  private last: LinkStats = { received: 0, dropped: 0, truncated: 0, errors: 0 };
  private readonly failures: RateLimitedLog;

  constructor(
    readonly ifname: string,
    readonly mac: Mac,
    private readonly socket: PacketSocket,
    private readonly snapLength: number,
    log: LogFn | undefined,
    now: () => number = monotonicMs,
  ) {
    const write = log ? (line: string) => log(LOG.error, line) : (line: string) => void process.stderr.write(line + '\n');
    this.failures = new RateLimitedLog(write, now, undefined, undefined, `frame receiver failures on ${ifname}`);
  }

  deliver(frames: Buffer[]): void {
    for (const frame of frames) {
      const receiver = this.receiver;
      if (this.closed || !receiver) return;
      try {
        receiver(frame);
      } catch (e) {
        this.failures.log(`${this.ifname}: frame receiver failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
    }
  }

  send(frame: Uint8Array): string | undefined {
    if (this.closed) return `${this.ifname}: link is closed`;
    if (frame.byteLength < 14) return `${this.ifname}: frame of ${frame.byteLength} bytes is shorter than an Ethernet header`;
    if (frame.byteLength > this.snapLength) return `${this.ifname}: frame of ${frame.byteLength} bytes is too long`;
    const buf = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const e = this.socket.send(buf);
    return e === undefined ? undefined : `${this.ifname}: send failed: ${e}`;
  }

  onFrame(receiver: (frame: Buffer) => void): void {
    this.receiver = receiver;
  }

  stats(): LinkStats {
    if (this.closed) return { ...this.last };
    const s = this.socket.stats();
    this.last = {
      received: s.received,
      dropped: s.drops,
      truncated: s.truncated,
      errors: s.errors,
      ...(s.stopped ? { stopped: true } : {}),
    };
    return { ...this.last };
  }

  close(): void {
    if (this.closed) return;
    this.stats();
    this.closed = true;
    this.receiver = undefined;
    this.socket.close();
  }
}
