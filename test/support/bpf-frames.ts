// SPDX-License-Identifier: GPL-2.0-only
// Frames for checking the capture programs of src/proto/bpf.ts, each with what the CN's program and
// the DHCP bench's program must do with it: run through the test BPF interpreter (unit test) and
// sent over a veth to a real packet socket (lab test, test/lab/netops.test.ts).
import { buildArp, buildUdpFrame, ARP_OP } from '../../src/proto/packet.js';
import type { Mac } from '../../src/core/ip.js';

export interface FrameCase {
  name: string;
  frame: Buffer;
  /** cnCaptureProgram(own) accepts it. */
  cn: boolean;
  /** dhcpReplyProgram(own) accepts it. */
  reply: boolean;
  /** The kernel takes this frame's 802.1Q tag out before the filter runs (a received tagged frame). */
  tagged?: boolean;
}

export const STATION: Mac = '02:00:00:5a:00:01';
export const OTHER_GW: Mac = '02:00:00:9e:00:01';
const BCAST: Mac = 'ff:ff:ff:ff:ff:ff';
const ip = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

function udp(src: Mac, dst: Mac, srcPort: number, dstPort: number, payload = 300): Buffer {
  return buildUdpFrame({
    srcMac: src,
    dstMac: dst,
    srcIp: 0,
    dstIp: ip(255, 255, 255, 255),
    srcPort,
    dstPort,
    payload: Buffer.alloc(payload, 0x5a),
  });
}

/** An IPv4 frame with protocol `proto` and a 20-byte payload (TCP-like), from src to dst. */
function ipFrame(src: Mac, dst: Mac, proto = 6): Buffer {
  const f = buildUdpFrame({
    srcMac: src,
    dstMac: dst,
    srcIp: ip(10, 9, 0, 2),
    dstIp: ip(8, 8, 8, 8),
    srcPort: 40000,
    dstPort: 443,
    payload: Buffer.alloc(12),
  });
  f[23] = proto;
  return f;
}

/** UDP with a 4-byte IPv4 option (IHL 6): the real ports sit 4 bytes later than without options. */
function withIpOption(src: Mac, dst: Mac, dstPort: number, decoyPort: number): Buffer {
  const plain = udp(src, dst, 68, dstPort, 100);
  const f = Buffer.concat([plain.subarray(0, 34), Buffer.from([0x01, 0x01, 0x01, 0x00]), plain.subarray(34)]);
  f[14] = 0x46;
  f.writeUInt16BE(f.readUInt16BE(16) + 4, 16);
  // where a program ignoring the IHL would read the destination port: the option's bytes
  f.writeUInt16BE(decoyPort, 36);
  return f;
}

/** A later IPv4 fragment (offset 185 x 8 bytes): its payload is not a UDP header, though it reads like one to port 67. */
function laterFragment(src: Mac, dst: Mac): Buffer {
  const f = udp(src, dst, 68, 67, 100);
  f.writeUInt16BE(185, 20);
  return f;
}

function tagged(frame: Buffer, vlan: number): Buffer {
  return Buffer.concat([frame.subarray(0, 12), Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff]), frame.subarray(12)]);
}

export function frameCases(own: Mac): FrameCase[] {
  const discover = udp(STATION, BCAST, 68, 67);
  const offer = udp(OTHER_GW, BCAST, 67, 68);
  const firstFragment = udp(STATION, own, 68, 67, 100);
  firstFragment.writeUInt16BE(0x2000, 20); // MF set, offset 0: the UDP header is here
  return [
    {
      name: 'ARP request, broadcast',
      frame: buildArp(ARP_OP.REQUEST, { srcMac: STATION, srcIp: ip(10, 9, 0, 2), dstMac: '00:00:00:00:00:00', dstIp: ip(10, 9, 0, 1) }),
      cn: true,
      reply: false,
    },
    { name: 'DHCP DISCOVER, broadcast', frame: discover, cn: true, reply: false },
    { name: 'DHCP to our MAC, IHL 6', frame: withIpOption(STATION, own, 67, 9), cn: true, reply: false },
    { name: 'UDP 9 to our MAC, IHL 6, option bytes read like port 67', frame: withIpOption(STATION, own, 9, 67), cn: false, reply: false },
    { name: 'first fragment to port 67, our MAC', frame: firstFragment, cn: true, reply: false },
    { name: 'later fragment reading like port 67, our MAC', frame: laterFragment(STATION, own), cn: false, reply: false },
    { name: 'DHCP OFFER (67 to 68), broadcast', frame: offer, cn: false, reply: true },
    { name: 'DHCP reply unicast to a station', frame: udp(OTHER_GW, STATION, 67, 68), cn: true, reply: true },
    { name: 'UDP to port 68, our MAC', frame: udp(STATION, own, 68, 68), cn: false, reply: false },
    { name: 'IPv4 unicast to another gateway', frame: ipFrame(STATION, OTHER_GW), cn: true, reply: false },
    { name: 'IPv4 to our MAC', frame: ipFrame(STATION, own), cn: false, reply: false },
    { name: 'IPv4 to a multicast MAC', frame: ipFrame(STATION, '01:00:5e:00:00:fb', 17), cn: false, reply: false },
    { name: 'IPv4 UDP broadcast, not DHCP', frame: udp(STATION, BCAST, 5353, 5353), cn: false, reply: false },
    {
      name: 'IPv6',
      frame: Buffer.concat([
        Buffer.from('333300000001', 'hex'),
        Buffer.from(STATION.replace(/:/g, ''), 'hex'),
        Buffer.from('86dd', 'hex'),
        Buffer.alloc(60),
      ]),
      cn: false,
      reply: false,
    },
    {
      name: 'ARP from our own MAC',
      frame: buildArp(ARP_OP.REQUEST, { srcMac: own, srcIp: ip(10, 9, 0, 1), dstMac: '00:00:00:00:00:00', dstIp: ip(10, 9, 0, 2) }),
      cn: false,
      reply: false,
    },
    { name: 'DHCP from our own MAC', frame: udp(own, BCAST, 68, 67), cn: false, reply: false },
    { name: 'DHCP OFFER from our own MAC', frame: udp(own, BCAST, 67, 68), cn: false, reply: false },
    // a tagged frame's tag is out of band by the time a program sees it on Linux: the program sees the
    // inner DISCOVER and accepts it; the interpreter, given the tagged bytes, sees ethertype 0x8100
    { name: 'DHCP DISCOVER in VLAN 5', frame: tagged(udp(STATION, BCAST, 68, 67, 301), 5), cn: false, reply: false, tagged: true },
    {
      name: 'runt: an IPv4 header cut before the protocol byte',
      frame: ipFrame(STATION, OTHER_GW).subarray(0, 23),
      cn: false,
      reply: false,
    },
    { name: 'runt: a DISCOVER cut before its destination port', frame: discover.subarray(0, 37), cn: false, reply: false },
  ];
}
