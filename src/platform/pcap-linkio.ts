// SPDX-License-Identifier: GPL-2.0-only
// LinkIO over libpcap through the `cap` addon: a promiscuous capture on one Ethernet interface with
// a BPF filter, and frame injection with pcap_sendpacket. The addon is loaded lazily, so a missing
// or broken build is an error Result at open time, never a crash at import.
//
// cap facts this relies on (node_modules/cap/src/binding.cc): open() always sets promiscuous mode,
// snaplen 65535 and libpcap's immediate mode; every packet is copied into the one Buffer given to
// open() and announced as ('packet', nbytes, truncated), so the bytes must be copied out before
// returning. libpcap also sees frames the host itself transmits on the interface (forwarded IP,
// kernel ARP, other processes' injections; not this handle's own injections). By default those are
// filtered out by source MAC (`not ether src OWN-MAC and (...)`). libpcap's `inbound` qualifier
// would say this more directly but is unreliable: with libpcap 1.10.3 on Linux 6.x it silently
// dropped the first matching received frames of a capture (seen in the lab), so it is not used.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseMac, type Mac } from '../core/ip.js';
import { err, ok, type Result } from '../core/result.js';
import { isValidIfname } from './iproute-netops.js';
import type { LinkIO } from './linkio.js';
import { LOG, type LogFn } from './log.js';

export interface PcapLinkOptions {
  /** libpcap's kernel buffer in bytes (default 1 MiB). */
  bufferSize?: number;
  /** The interface's MAC; read from /sys/class/net/IF/address when absent. */
  mac?: Mac;
  /** Also deliver frames whose source MAC is the interface's own (what this host transmits); default false. */
  includeOwn?: boolean;
  /** Where errors thrown by the frame receiver are reported (default: stderr). */
  log?: LogFn;
}

/** The part of the `cap` addon's Cap object we use. */
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
  send(buffer: Buffer, size?: number): void;
  setMinBytes?: (n: number) => void;
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(event?: string): void;
}

type CapModule = { Cap: new () => CapHandle };

const SNAPLEN = 65535;
/**
 * The capture ring. It holds 16 frames, whatever their size: in immediate mode libpcap uses a
 * TPACKET_V2 ring of fixed slots sized by the snap length, which `cap` fixes at 65,535; with the
 * interface's segmentation/receive offloads on (veth, and a router's bridge or Wi-Fi interface as a
 * rule) libpcap keeps that size, and each slot takes a 128 KiB block: 16 slots, 2 MiB mapped for the
 * 1 MiB asked (seen: 200 frames sent to a veth while the reader was blocked, 16 received; 200 with
 * the veth's offloads off, when libpcap sizes slots by the MTU). A snap length near the MTU would
 * give several hundred slots in the same memory; that needs an addon that sets it. The CN's filter passes ARP, DHCP and IP
 * frames not addressed to this host (roam detection), and a burst of new clients waits here while the
 * event loop is busy. bench/dhcp, 2 s at 1000 and 3000 DISCOVERs/s, frames neither answered nor shed
 * by the CN (so lost in the ring): 512 KiB about 20 % and 30 %, 1 MiB about 7 % and 17 %, 4 MiB none.
 * Its pages count in the CN's RSS, so 1 MiB: past what the CN can serve anyway, a lost DISCOVER is
 * retransmitted by its client as a shed one is. libpcap's drop count is not read (no counter).
 */
const DEFAULT_BUFFER_SIZE = 1 << 20;

let capModule: CapModule | undefined;

function loadCap(): Result<CapModule> {
  if (capModule) return ok(capModule);
  try {
    const require = createRequire(import.meta.url);
    const mod = require('cap') as CapModule;
    if (typeof mod?.Cap !== 'function') return err(`the 'cap' module has no Cap class`);
    capModule = mod;
    return ok(mod);
  } catch (e) {
    return err(`cannot load the 'cap' packet capture addon: ${e instanceof Error ? e.message : String(e)}`);
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

/** The BPF filter actually installed for `filter` on an interface with MAC `ownMac`. */
export function effectiveFilter(filter: string, ownMac: Mac, includeOwn = false): string {
  const f = filter.trim();
  if (includeOwn) return f;
  return f ? `not ether src ${ownMac} and (${f})` : `not ether src ${ownMac}`;
}

/** Open a promiscuous capture-and-inject link on `ifname` with BPF `filter` ('' captures everything). */
export function openPcapLink(ifname: string, filter: string, opts: PcapLinkOptions = {}): Result<LinkIO> {
  if (!isValidIfname(ifname)) return err(`invalid interface name '${ifname}'`);
  const bufferSize = opts.bufferSize ?? DEFAULT_BUFFER_SIZE;
  if (!Number.isInteger(bufferSize) || bufferSize < 65536 || bufferSize > 1 << 30) return err(`invalid pcap buffer size ${bufferSize}`);
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
  const mod = loadCap();
  if (!mod.ok) return mod;

  const cap = new mod.value.Cap();
  const buffer = Buffer.alloc(SNAPLEN);
  const bpf = effectiveFilter(filter, mac, opts.includeOwn);
  let linkType: string;
  try {
    linkType = cap.open(ifname, bpf, bufferSize, buffer);
  } catch (e) {
    try {
      cap.close();
    } catch {
      // nothing was opened
    }
    return err(`cannot capture on '${ifname}' with filter '${bpf}': ${e instanceof Error ? e.message : String(e)}`);
  }
  if (linkType !== 'ETHERNET') {
    cap.close();
    return err(`'${ifname}' is not an Ethernet interface (pcap link type ${linkType})`);
  }
  // Windows only (WinPcap); on Linux cap already sets libpcap's immediate mode.
  if (typeof cap.setMinBytes === 'function') cap.setMinBytes(0);
  return ok(new PcapLink(ifname, mac, cap, buffer, opts.log));
}

class PcapLink implements LinkIO {
  private receiver: ((frame: Buffer) => void) | undefined;
  private closed = false;
  /** Frames longer than the snapshot length (dropped). */
  truncated = 0;

  constructor(
    readonly ifname: string,
    readonly mac: Mac,
    private readonly cap: CapHandle,
    buffer: Buffer,
    private readonly log: LogFn | undefined,
  ) {
    cap.on('packet', (nbytes, truncated) => {
      if (this.closed) return;
      if (truncated) {
        this.truncated++;
        return;
      }
      const receiver = this.receiver;
      if (!receiver) return;
      // cap reuses `buffer` for the next packet: hand out a copy.
      const frame = Buffer.from(buffer.subarray(0, nbytes));
      try {
        receiver(frame);
      } catch (e) {
        const msg = `${this.ifname}: frame receiver failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
        if (this.log) this.log(LOG.error, msg);
        else process.stderr.write(msg + '\n');
      }
    });
  }

  send(frame: Uint8Array): string | undefined {
    if (this.closed) return `${this.ifname}: link is closed`;
    if (frame.byteLength < 14) return `${this.ifname}: frame of ${frame.byteLength} bytes is shorter than an Ethernet header`;
    if (frame.byteLength > SNAPLEN) return `${this.ifname}: frame of ${frame.byteLength} bytes is too long`;
    const buf = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    try {
      this.cap.send(buf, buf.length);
      return undefined;
    } catch (e) {
      return `${this.ifname}: send failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  onFrame(receiver: (frame: Buffer) => void): void {
    this.receiver = receiver;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.receiver = undefined;
    try {
      this.cap.close();
    } finally {
      this.cap.removeAllListeners('packet');
    }
  }
}
