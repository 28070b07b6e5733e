// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import { BROADCAST_MAC, macFromBytes } from '../../src/core/ip.js';
import {
  ARP_OP,
  buildArpReply,
  buildGratuitousArp,
  buildUdpFrame,
  classifyFrame,
  decodeArp,
  decodeEthernet,
  decodeIPv4,
  decodeUdp,
  encodeArp,
  encodeEthernet,
  encodeIPv4Udp,
  ETHERTYPE,
  internetChecksum,
  type IPv4Packet,
} from '../../src/proto/packet.js';
import { assertResult, hex, ip, rng } from '../support/helpers.js';
import { UDHCPC_DISCOVER, UDHCPC_MAC } from '../support/fixtures.js';

function randomBytes(next: () => number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(next() * 256);
  return b;
}

// The classic example header (Wikipedia "IPv4 header checksum"): 192.168.0.1 -> 192.168.0.199,
// UDP, TTL 64, DF, total length 115, checksum 0xb861 (computed by hand / independently).
const KNOWN_HEADER = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');

// busybox udhcpc 1.35 DHCPDISCOVER as a whole frame; the IPv4 (0x79a6) and UDP (0xc839)
// checksums were computed independently of this code base (Python).
const UDHCPC_DHCP = UDHCPC_DISCOVER;
const UDHCPC_HEADERS = hex(
  'ffffffffffff 020000aabb01 0800' + // Ethernet
    '4500 0148 0000 0000 4011 79a6 00000000 ffffffff' + // IPv4: 0.0.0.0 -> 255.255.255.255, len 328
    '0044 0043 0134 c839', // UDP 68 -> 67, len 308
);
const UDHCPC_FRAME = Buffer.concat([UDHCPC_HEADERS, UDHCPC_DHCP]);

test('the udhcpc DHCPDISCOVER fixture has the expected shape', () => {
  assert.equal(UDHCPC_DHCP.length, 300);
  assert.equal(UDHCPC_FRAME.length, 342);
});

test('IPv4 header checksum matches a known-good header', () => {
  const zeroed = Buffer.from(KNOWN_HEADER);
  zeroed[10] = 0;
  zeroed[11] = 0;
  assert.equal(internetChecksum(zeroed), 0xb861);
  assert.equal(internetChecksum(KNOWN_HEADER), 0); // a valid header sums to 0xffff
  const packet = Buffer.concat([KNOWN_HEADER, Buffer.alloc(0x73 - 20)]);
  const r = decodeIPv4(packet);
  assert.ok(r.ok, r.ok ? '' : r.error);
  assert.equal(r.value.src, ip('192.168.0.1'));
  assert.equal(r.value.dst, ip('192.168.0.199'));
  assert.equal(r.value.protocol, 17);
  assert.equal(r.value.ttl, 64);
  assert.equal(r.value.flags, 0b010);
  assert.equal(r.value.fragment, false);
  assert.equal(r.value.totalLength, 115);
  assert.equal(r.value.payload.length, 95);
});

test('IPv4 with a bad header checksum gets its own error', () => {
  const packet = Buffer.concat([KNOWN_HEADER, Buffer.alloc(0x73 - 20)]);
  packet[11] = 0x62;
  const r = decodeIPv4(packet);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.error, /checksum mismatch.*0xb862.*computed 0xb861/);
  const p2 = Buffer.concat([KNOWN_HEADER, Buffer.alloc(0x73 - 20)]);
  p2[15] = (p2[15] ?? 0) ^ 1; // change the source address, leave the checksum
  assert.match((decodeIPv4(p2) as { error: string }).error, /checksum/);
});

test('IPv4 structural errors: version, IHL, lengths', () => {
  const base = () => Buffer.concat([KNOWN_HEADER, Buffer.alloc(0x73 - 20)]);
  const fix = (b: Buffer, hlen = 20) => {
    b[10] = 0;
    b[11] = 0;
    b.writeUInt16BE(internetChecksum(b, 0, hlen), 10);
    return b;
  };
  const short = decodeIPv4(KNOWN_HEADER.subarray(0, 19));
  assert.match((short as { error: string }).error, /too short/);

  const v6 = base();
  v6[0] = 0x65;
  assert.match((decodeIPv4(fix(v6)) as { error: string }).error, /version 6/);

  const ihl4 = base();
  ihl4[0] = 0x44;
  assert.match((decodeIPv4(fix(ihl4, 16)) as { error: string }).error, /IHL 4 < 5/);

  const ihlBig = Buffer.from(KNOWN_HEADER);
  ihlBig[0] = 0x4f; // 60-byte header, only 20 present
  assert.match((decodeIPv4(ihlBig) as { error: string }).error, /header length 60 exceeds the 20 bytes/);

  const tooLong = base();
  tooLong.writeUInt16BE(0x74, 2);
  assert.match((decodeIPv4(fix(tooLong)) as { error: string }).error, /total length 116 exceeds the 115 bytes/);

  const tooShort = base();
  tooShort.writeUInt16BE(19, 2);
  assert.match((decodeIPv4(fix(tooShort)) as { error: string }).error, /total length 19 < header length 20/);
});

test('IPv4 options are skipped via IHL and link padding is cut off', () => {
  const udp = encodeIPv4Udp({ srcIp: ip('10.0.0.1'), dstIp: ip('10.0.0.2'), srcPort: 1000, dstPort: 2000, payload: Buffer.from('hi') });
  // Insert a 4-byte option (NOP NOP NOP EOL) after the 20-byte header.
  const withOpt = Buffer.concat([udp.subarray(0, 20), hex('01010100'), udp.subarray(20), Buffer.alloc(7, 0xee)]);
  withOpt[0] = 0x46;
  withOpt.writeUInt16BE(udp.length + 4, 2);
  withOpt.writeUInt16BE(0, 10);
  withOpt.writeUInt16BE(internetChecksum(withOpt, 0, 24), 10);
  const r = decodeIPv4(withOpt);
  assert.ok(r.ok, r.ok ? '' : r.error);
  assert.equal(r.value.headerLength, 24);
  assert.equal(r.value.payload.length, 10);
  const u = decodeUdp(r.value);
  assert.ok(u.ok, u.ok ? '' : u.error);
  assert.equal(Buffer.from(u.value.payload).toString(), 'hi');
});

test('fragments are flagged and not decoded as UDP', () => {
  const make = (flagsOffset: number) => {
    const b = encodeIPv4Udp({ srcIp: ip('10.0.0.1'), dstIp: ip('10.0.0.2'), srcPort: 68, dstPort: 67, payload: Buffer.alloc(20) });
    b.writeUInt16BE(flagsOffset, 6);
    b.writeUInt16BE(0, 10);
    b.writeUInt16BE(internetChecksum(b, 0, 20), 10);
    return b;
  };
  const first = decodeIPv4(make(0x2000)); // MF, offset 0
  assert.ok(first.ok);
  assert.equal(first.value.fragment, true);
  assert.equal(first.value.flags, 1);
  assert.match((decodeUdp(first.value) as { error: string }).error, /fragment/);
  const later = decodeIPv4(make(0x0005)); // offset 40 bytes, last fragment
  assert.ok(later.ok);
  assert.equal(later.value.fragment, true);
  assert.equal(later.value.fragmentOffset, 5);
  const df = decodeIPv4(make(0x4000));
  assert.ok(df.ok);
  assert.equal(df.value.fragment, false);
  // classifyFrame does not treat a fragment to port 67 as DHCP.
  const frame = encodeEthernet({ dst: BROADCAST_MAC, src: UDHCPC_MAC, etherType: ETHERTYPE.IPV4, payload: make(0x2000) });
  const c = classifyFrame(frame);
  assert.ok(c.ok);
  assert.equal(c.value.kind, 'ipv4');
});

test('the udhcpc frame decodes, checksums verify, and the encoder reproduces it byte for byte', () => {
  const c = classifyFrame(UDHCPC_FRAME);
  assert.ok(c.ok, c.ok ? '' : c.error);
  assert.equal(c.value.kind, 'dhcp');
  if (c.value.kind !== 'dhcp') return;
  assert.equal(c.value.eth.dst, BROADCAST_MAC);
  assert.equal(c.value.eth.src, UDHCPC_MAC);
  assert.equal(c.value.ip.src, 0);
  assert.equal(c.value.ip.dst, 0xffffffff);
  assert.equal(c.value.udp.srcPort, 68);
  assert.equal(c.value.udp.dstPort, 67);
  assert.equal(c.value.udp.checksummed, true);
  assert.deepEqual(Buffer.from(c.value.udp.payload), UDHCPC_DHCP);

  const built = buildUdpFrame({
    srcMac: UDHCPC_MAC,
    dstMac: BROADCAST_MAC,
    srcIp: 0,
    dstIp: 0xffffffff,
    srcPort: 68,
    dstPort: 67,
    payload: UDHCPC_DHCP,
  });
  assert.deepEqual(built, UDHCPC_FRAME);
});

test('UDP checksum: corruption is caught, 0 means none, computed 0 is sent as 0xffff', () => {
  const bad = Buffer.from(UDHCPC_FRAME);
  bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0x40; // flip a payload bit
  const r = classifyFrame(bad);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.error, /UDP checksum mismatch/);

  const none = Buffer.from(bad);
  none.writeUInt16BE(0, 14 + 20 + 6);
  const n = classifyFrame(none);
  assert.ok(n.ok, n.ok ? '' : n.error);
  assert.equal(n.value.kind === 'dhcp' && n.value.udp.checksummed, false);

  // Choose a payload word that makes the computed checksum 0.
  const args = { srcIp: ip('10.1.2.3'), dstIp: ip('10.1.2.4'), srcPort: 4000, dstPort: 5000 };
  const probe = encodeIPv4Udp({ ...args, payload: Buffer.alloc(2) });
  const c = probe.readUInt16BE(26);
  const zeroing = Buffer.alloc(2);
  zeroing.writeUInt16BE(c);
  const p = encodeIPv4Udp({ ...args, payload: zeroing });
  assert.equal(p.readUInt16BE(26), 0xffff);
  const d = decodeIPv4(p);
  assert.ok(d.ok);
  const u = decodeUdp(d.value);
  assert.ok(u.ok, u.ok ? '' : u.error);
  assert.equal(u.value.checksummed, true);
});

test('UDP length field is checked against the IPv4 payload', () => {
  const base = encodeIPv4Udp({ srcIp: ip('10.0.0.1'), dstIp: ip('10.0.0.2'), srcPort: 1, dstPort: 2, payload: Buffer.alloc(4) });
  const d = decodeIPv4(base);
  assert.ok(d.ok);
  const withLen = (len: number): IPv4Packet => {
    const payload = Buffer.from(d.value.payload);
    payload.writeUInt16BE(len, 4);
    payload.writeUInt16BE(0, 6);
    return { ...d.value, payload };
  };
  assert.match((decodeUdp(withLen(13)) as { error: string }).error, /UDP length 13 exceeds the 12 bytes/);
  assert.match((decodeUdp(withLen(7)) as { error: string }).error, /UDP length 7 < 8/);
  const shorter = decodeUdp(withLen(10)); // trailing bytes beyond the UDP length are ignored
  assert.ok(shorter.ok);
  assert.equal(shorter.value.payload.length, 2);
  assert.match((decodeUdp({ ...d.value, payload: d.value.payload.subarray(0, 7) }) as { error: string }).error, /too short/);
  assert.match((decodeUdp({ ...d.value, protocol: 6 }) as { error: string }).error, /not UDP/);
});

test('Ethernet round trip, padding to 60 bytes, and one 802.1Q tag', () => {
  const payload = Buffer.from('hello');
  const f = encodeEthernet({ dst: 'aa:bb:cc:dd:ee:ff', src: '02:00:00:00:00:01', etherType: 0x88b5, payload });
  assert.equal(f.length, 60);
  const d = decodeEthernet(f);
  assert.ok(d.ok);
  assert.equal(d.value.dst, 'aa:bb:cc:dd:ee:ff');
  assert.equal(d.value.src, '02:00:00:00:00:01');
  assert.equal(d.value.etherType, 0x88b5);
  assert.equal(d.value.vlan, undefined);
  assert.deepEqual(Buffer.from(d.value.payload.subarray(0, 5)), payload);
  assert.equal(d.value.payload.length, 46);

  const tagged = encodeEthernet({ dst: BROADCAST_MAC, src: '02:00:00:00:00:01', etherType: ETHERTYPE.ARP, payload, vlan: 42 });
  assert.equal(tagged.readUInt16BE(12), 0x8100);
  const t = decodeEthernet(tagged);
  assert.ok(t.ok);
  assert.equal(t.value.vlan, 42);
  assert.equal(t.value.etherType, ETHERTYPE.ARP);
  // PCP/DEI bits are not part of the VLAN id.
  tagged[14] = (tagged[14] ?? 0) | 0xf0;
  const t2 = decodeEthernet(tagged);
  assert.ok(t2.ok);
  assert.equal(t2.value.vlan, 42);

  assert.match((decodeEthernet(f.subarray(0, 13)) as { error: string }).error, /too short: 13 bytes/);
  assert.match((decodeEthernet(tagged.subarray(0, 17)) as { error: string }).error, /802\.1Q frame too short/);
  assert.ok(decodeEthernet(f.subarray(0, 14)).ok); // empty payload is fine

  assert.throws(() => encodeEthernet({ dst: 'not a mac', src: BROADCAST_MAC, etherType: 0x800, payload }), TypeError);
});

test('macFromBytes writes every byte value as two lower-case hex digits; bytes past the end read as 0', () => {
  const b = Uint8Array.from({ length: 262 }, (_, i) => (i * 7) & 0xff);
  const spelled = (o: number) => Array.from({ length: 6 }, (_, i) => (b[o + i] ?? 0).toString(16).padStart(2, '0')).join(':');
  for (let o = 0; o <= 256; o++) assert.equal(macFromBytes(b, o), spelled(o));
  assert.equal(macFromBytes(b, 259), spelled(259));
  assert.equal(macFromBytes(Uint8Array.of(0x02, 0xab, 0, 0x0f, 0xf0, 0xff)), '02:ab:00:0f:f0:ff');
});

test('MACs in every spelling parseMac accepts encode the same bytes; others throw', () => {
  const bytes = [0x02, 0xab, 0xcd, 0xef, 0x09, 0x1f];
  for (const src of ['02:ab:cd:ef:09:1f', '02:AB:CD:EF:09:1F', '02-ab-cd-ef-09-1f', '02abcdef091f']) {
    const f = encodeEthernet({ dst: src, src, etherType: 0x800, payload: Buffer.alloc(0) });
    assert.deepEqual([...f.subarray(0, 6)], bytes, src);
    assert.deepEqual([...f.subarray(6, 12)], bytes, src);
    const arp = encodeArp({ op: ARP_OP.REQUEST, senderMac: src, senderIp: 1, targetMac: src, targetIp: 2 });
    assert.deepEqual([...arp.subarray(8, 14)], bytes, src);
    assert.deepEqual([...arp.subarray(18, 24)], bytes, src);
  }
  // 17 characters but not a MAC: a bad digit, a bad separator, mixed separators.
  for (const bad of ['02:ab:cd:ef:09:1g', '02;ab:cd:ef:09:1f', '02:ab-cd:ef:09:1f', '02:ab:cd:ef:09:1', ' 2:ab:cd:ef:09:1f']) {
    assert.throws(() => encodeEthernet({ dst: bad, src: BROADCAST_MAC, etherType: 0x800, payload: Buffer.alloc(0) }), TypeError, bad);
    assert.throws(() => encodeArp({ op: 1, senderMac: BROADCAST_MAC, senderIp: 1, targetMac: bad, targetIp: 2 }), TypeError, bad);
  }
});

test('ARP round trip and validation', () => {
  const a = {
    op: ARP_OP.REPLY,
    senderMac: '02:00:00:00:00:01',
    senderIp: ip('10.0.0.1'),
    targetMac: '02:00:00:00:00:02',
    targetIp: ip('10.0.0.2'),
  };
  const body = encodeArp(a);
  assert.equal(body.length, 28);
  assert.deepEqual(body.subarray(0, 8), hex('0001 0800 06 04 0002'));
  const d = decodeArp(body);
  assert.ok(d.ok);
  assert.deepEqual(d.value, a);
  const mutate = (at: number, v: number) => {
    const b = Buffer.from(body);
    b[at] = v;
    return decodeArp(b);
  };
  assert.match((mutate(1, 6) as { error: string }).error, /hardware type 6/);
  assert.match((mutate(2, 0x86) as { error: string }).error, /protocol type 0x8600/);
  assert.match((mutate(4, 8) as { error: string }).error, /hardware address length 8/);
  assert.match((mutate(5, 16) as { error: string }).error, /protocol address length 16/);
  assert.match((decodeArp(body.subarray(0, 27)) as { error: string }).error, /too short: 27/);
  const odd = mutate(7, 9); // unknown ops are passed through
  assert.ok(odd.ok);
  assert.equal(odd.value.op, 9);
});

test('gratuitous ARP and ARP reply builders', () => {
  const g = buildGratuitousArp('02:00:00:00:00:01', ip('10.9.8.6'));
  assert.equal(g.length, 60);
  const c = classifyFrame(g);
  assert.ok(c.ok);
  assert.equal(c.value.kind, 'arp');
  if (c.value.kind !== 'arp') return;
  assert.equal(c.value.eth.dst, BROADCAST_MAC);
  assert.equal(c.value.eth.src, '02:00:00:00:00:01');
  assert.deepEqual(c.value.arp, {
    op: 1,
    senderMac: '02:00:00:00:00:01',
    senderIp: ip('10.9.8.6'),
    targetMac: '00:00:00:00:00:00',
    targetIp: ip('10.9.8.6'),
  });

  const r = buildArpReply({ srcMac: '02:00:00:00:00:01', srcIp: ip('10.9.8.6'), dstMac: '02:00:00:00:00:99', dstIp: ip('10.9.8.5') });
  const rc = classifyFrame(r);
  assert.ok(rc.ok);
  assert.equal(rc.value.kind, 'arp');
  if (rc.value.kind !== 'arp') return;
  assert.equal(rc.value.eth.dst, '02:00:00:00:00:99');
  assert.deepEqual(rc.value.arp, {
    op: 2,
    senderMac: '02:00:00:00:00:01',
    senderIp: ip('10.9.8.6'),
    targetMac: '02:00:00:00:00:99',
    targetIp: ip('10.9.8.5'),
  });
});

test('encodeIPv4Udp round trip with ttl and id; DF is unset', () => {
  const b = encodeIPv4Udp({
    srcIp: ip('192.0.2.1'),
    dstIp: ip('198.51.100.7'),
    srcPort: 67,
    dstPort: 68,
    payload: Buffer.from('xyz'),
    ttl: 5,
    id: 0xbeef,
  });
  const d = decodeIPv4(b);
  assert.ok(d.ok, d.ok ? '' : d.error);
  assert.equal(d.value.ttl, 5);
  assert.equal(d.value.id, 0xbeef);
  assert.equal(d.value.flags, 0);
  assert.equal(d.value.src, ip('192.0.2.1'));
  assert.equal(d.value.dst, ip('198.51.100.7'));
  const u = decodeUdp(d.value);
  assert.ok(u.ok, u.ok ? '' : u.error);
  assert.deepEqual(u.value, { srcPort: 67, dstPort: 68, checksummed: true, payload: u.value.payload });
  assert.equal(Buffer.from(u.value.payload).toString(), 'xyz');
  assert.throws(() => encodeIPv4Udp({ srcIp: -1, dstIp: 0, srcPort: 1, dstPort: 1, payload: Buffer.alloc(0) }), RangeError);
  assert.throws(() => encodeIPv4Udp({ srcIp: 0, dstIp: 0, srcPort: 70000, dstPort: 1, payload: Buffer.alloc(0) }), RangeError);
  assert.throws(() => encodeIPv4Udp({ srcIp: 0, dstIp: 0, srcPort: 1, dstPort: 1, payload: Buffer.alloc(65600) }), RangeError);
});

test('classifyFrame: ipv4 (non-DHCP UDP), other EtherTypes, malformed ARP/IPv4', () => {
  const dns = buildUdpFrame({
    srcMac: '02:00:00:00:00:01',
    dstMac: '02:00:00:00:00:02',
    srcIp: ip('10.0.0.1'),
    dstIp: ip('10.0.0.2'),
    srcPort: 5353,
    dstPort: 53,
    payload: Buffer.alloc(12),
  });
  const c = classifyFrame(dns);
  assert.ok(c.ok);
  assert.equal(c.value.kind, 'ipv4');
  if (c.value.kind === 'ipv4') assert.equal(c.value.ip.src, ip('10.0.0.1'));

  const v6 = encodeEthernet({ dst: BROADCAST_MAC, src: '02:00:00:00:00:01', etherType: ETHERTYPE.IPV6, payload: Buffer.alloc(40) });
  const o = classifyFrame(v6);
  assert.ok(o.ok);
  assert.equal(o.value.kind, 'other');

  const badArp = Buffer.from(buildGratuitousArp('02:00:00:00:00:01', 1));
  badArp[14 + 5] = 6;
  assert.equal(classifyFrame(badArp).ok, false);

  const badIp = Buffer.from(dns);
  badIp[14 + 8] = 1; // TTL change without checksum update
  assert.match((classifyFrame(badIp) as { error: string }).error, /IPv4 header checksum/);

  const tagged = encodeEthernet({
    dst: BROADCAST_MAC,
    src: UDHCPC_MAC,
    etherType: ETHERTYPE.IPV4,
    payload: UDHCPC_FRAME.subarray(14),
    vlan: 7,
  });
  const t = classifyFrame(tagged);
  assert.ok(t.ok);
  assert.equal(t.value.kind, 'dhcp');
  assert.equal(t.value.eth.vlan, 7);
});

test('truncation at every byte offset never throws, and only the whole frame decodes', () => {
  for (let n = 0; n <= UDHCPC_FRAME.length; n++) {
    const r = classifyFrame(UDHCPC_FRAME.subarray(0, n));
    assertResult(r, `length ${n}`);
    assert.equal(r.ok, n === UDHCPC_FRAME.length, `length ${n}`);
  }
  const arp = buildGratuitousArp('02:00:00:00:00:01', ip('10.0.0.9'));
  for (let n = 0; n <= arp.length; n++) {
    const r = classifyFrame(arp.subarray(0, n));
    assertResult(r, `arp length ${n}`);
    assert.equal(r.ok, n >= 14 + 28, `arp length ${n}`);
  }
  const ipOnly = UDHCPC_FRAME.subarray(14);
  for (let n = 0; n <= ipOnly.length; n++) {
    const r = decodeIPv4(ipOnly.subarray(0, n));
    assertResult(r, `ip length ${n}`);
    assert.equal(r.ok, n === ipOnly.length);
  }
});

/** Re-checksum the IPv4 header of a frame (if the header looks sane) so mutations reach deeper layers. */
function refreshIpChecksum(frame: Buffer): void {
  if (frame.length < 34 || frame.readUInt16BE(12) !== ETHERTYPE.IPV4) return;
  const hlen = ((frame[14] ?? 0) & 0x0f) * 4;
  if (hlen < 20 || 14 + hlen > frame.length) return;
  frame.writeUInt16BE(0, 24);
  frame.writeUInt16BE(internetChecksum(frame, 14, 14 + hlen), 24);
}

test('fuzz: 2000 random buffers and 2000 mutated frames never throw (seeded)', () => {
  const next = rng(0x7a1f00d);
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(next, Math.floor(next() * 400));
    if (b.length >= 14 && next() < 0.5) b.writeUInt16BE([ETHERTYPE.IPV4, ETHERTYPE.ARP, ETHERTYPE.VLAN][i % 3] ?? 0, 12);
    const label = `random #${i}`;
    assertResult(classifyFrame(b), label);
    assertResult(decodeEthernet(b), label);
    assertResult(decodeArp(b), label);
    const d = decodeIPv4(b);
    assertResult(d, label);
    if (d.ok) assertResult(decodeUdp(d.value), label);
    assertResult(
      decodeUdp({
        src: 0,
        dst: 0,
        protocol: 17,
        ttl: 1,
        id: 0,
        flags: 0,
        fragmentOffset: 0,
        fragment: false,
        headerLength: 20,
        totalLength: 20 + b.length,
        payload: b,
      }),
      label,
    );
  }
  const seeds = [UDHCPC_FRAME, buildGratuitousArp('02:00:00:00:00:01', 0x0a000001)];
  let decoded = 0;
  for (let i = 0; i < 2000; i++) {
    const f = Buffer.from(seeds[i % seeds.length] ?? UDHCPC_FRAME);
    const flips = 1 + Math.floor(next() * 4);
    for (let k = 0; k < flips; k++) f[Math.floor(next() * Math.min(f.length, 60))] = Math.floor(next() * 256);
    refreshIpChecksum(f);
    const cut = next() < 0.3 ? f.subarray(0, Math.floor(next() * f.length)) : f;
    const r = classifyFrame(cut);
    assertResult(r, `mutation #${i}`);
    if (r.ok) decoded++;
  }
  assert.ok(decoded > 0, 'some mutations should still decode');
});
