// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  BOOTP_MIN_REPLY_LEN,
  classifyRequest,
  decodeDhcp,
  DHCP_MESSAGE,
  DHCP_OPTION,
  dhcpMessageName,
  dhcpReplyDestination,
  encodeDhcpReply,
  type DhcpMessage,
} from '../../src/proto/dhcp.js';
import { classifyFrame } from '../../src/proto/packet.js';
import { UDHCPC_DISCOVER } from '../support/fixtures.js';
import { assertResult, errorOf, hex, ip, rng, value } from '../support/helpers.js';

function decoded(b: Uint8Array): DhcpMessage {
  return value(decodeDhcp(b));
}

const SNAME_FILE = '00'.repeat(64 + 128);
const COOKIE = '63825363';

/** A BOOTREQUEST header (236 bytes) + cookie; fields as hex. */
function header(o: {
  op?: string;
  htype?: string;
  hlen?: string;
  xid?: string;
  secs?: string;
  flags?: string;
  ciaddr?: string;
  giaddr?: string;
  chaddr: string;
}): string {
  return (
    (o.op ?? '01') +
    (o.htype ?? '01') +
    (o.hlen ?? '06') +
    '00' +
    (o.xid ?? '12345678') +
    (o.secs ?? '0000') +
    (o.flags ?? '0000') +
    (o.ciaddr ?? '00000000') +
    '00000000' + // yiaddr
    '00000000' + // siaddr
    (o.giaddr ?? '00000000') +
    o.chaddr +
    '00'.repeat(16 - o.chaddr.length / 2) +
    SNAME_FILE +
    COOKIE
  );
}

/** A DHCP message: header, then options (hex), then end + pad to 300 bytes. */
function message(headerHex: string, optionsHex: string, end = true): Buffer {
  const body = hex(headerHex + optionsHex + (end ? 'ff' : ''));
  return body.length >= 300 || !end ? body : Buffer.concat([body, Buffer.alloc(300 - body.length)]);
}

// ISC dhclient 4.4 (Debian) DHCPDISCOVER with a remembered lease: 53, 50, 12, 55 (13 options).
const DHCLIENT_DISCOVER = hex(
  '01010600 5ad1c0de 0003 0000 00000000 00000000 00000000 00000000' +
    '525400123456 00000000000000000000' +
    SNAME_FILE +
    COOKIE +
    '350101' +
    '3204 c0a80164' +
    '0c06 64656269616e' +
    '370d 011c02030f06770c2c2f1a792a' +
    'ff' +
    '00'.repeat(27),
);

// The same udhcpc message inside its Ethernet/IPv4/UDP frame (checksums computed independently).
const UDHCPC_FRAME = Buffer.concat([
  hex('ffffffffffff 020000aabb01 0800 4500 0148 0000 0000 4011 79a6 00000000 ffffffff 0044 0043 0134 c839'),
  UDHCPC_DISCOVER,
]);

test('message type constants and names', () => {
  assert.deepEqual(DHCP_MESSAGE, { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 });
  assert.equal(dhcpMessageName(DHCP_MESSAGE.DISCOVER), 'DHCPDISCOVER');
  assert.equal(dhcpMessageName(6), 'DHCPNAK');
  assert.equal(dhcpMessageName(8), 'DHCPINFORM');
  assert.equal(dhcpMessageName(42), 'DHCP message type 42');
});

test('decodes a busybox udhcpc DHCPDISCOVER', () => {
  assert.equal(UDHCPC_DISCOVER.length, 300);
  const m = decoded(UDHCPC_DISCOVER);
  assert.equal(m.op, 1);
  assert.equal(m.htype, 1);
  assert.equal(m.hlen, 6);
  assert.equal(m.hops, 0);
  assert.equal(m.xid, 0x3903f326);
  assert.equal(m.broadcast, false);
  assert.equal(m.ciaddr, 0);
  assert.equal(m.giaddr, 0);
  assert.equal(m.chaddr, '02:00:00:aa:bb:01');
  assert.equal(m.chaddrRaw.length, 16);
  assert.equal(m.messageType, DHCP_MESSAGE.DISCOVER);
  assert.deepEqual(Buffer.from(m.clientId ?? []), hex('01020000aabb01'));
  assert.equal(m.maxMessageSize, 576);
  assert.deepEqual(m.paramRequestList, [1, 3, 6, 12, 15, 28, 42]);
  assert.equal(m.hostname, 'OpenWrt');
  assert.equal(Buffer.from(m.options.get(DHCP_OPTION.VENDOR_CLASS) ?? []).toString(), 'udhcp 1.35.0');
  assert.equal(m.requestedIp, undefined);
  assert.equal(m.serverId, undefined);
  assert.equal(m.leaseTime, undefined);
  assert.deepEqual([...m.options.keys()], [53, 61, 57, 55, 60, 12]);
});

test('decodes an ISC dhclient DHCPDISCOVER', () => {
  assert.equal(DHCLIENT_DISCOVER.length, 300);
  const m = decoded(DHCLIENT_DISCOVER);
  assert.equal(m.xid, 0x5ad1c0de);
  assert.equal(m.secs, 3);
  assert.equal(m.chaddr, '52:54:00:12:34:56');
  assert.equal(m.messageType, DHCP_MESSAGE.DISCOVER);
  assert.equal(m.requestedIp, ip('192.168.1.100'));
  assert.equal(m.hostname, 'debian');
  assert.deepEqual(m.paramRequestList, [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]);
  assert.equal(m.clientId, undefined);
});

test('decodes the udhcpc DISCOVER out of a captured frame', () => {
  const c = classifyFrame(UDHCPC_FRAME);
  assert.ok(c.ok, c.ok ? '' : c.error);
  assert.equal(c.value.kind, 'dhcp');
  if (c.value.kind !== 'dhcp') return;
  const m = decoded(c.value.udp.payload);
  assert.equal(m.chaddr, c.value.eth.src);
});

test('truncation at every byte offset returns an error or a valid result, never throws', () => {
  for (const packet of [UDHCPC_DISCOVER, DHCLIENT_DISCOVER]) {
    for (let n = 0; n <= packet.length; n++) {
      const r = decodeDhcp(packet.subarray(0, n));
      assertResult(r, `length ${n}`);
      if (n < 240) assert.match(errorOf(r), /too short/, `length ${n}`);
      if (r.ok) assert.equal(r.value.messageType, DHCP_MESSAGE.DISCOVER);
    }
  }
  // Cut inside udhcpc's option 61 value: the length runs past the end.
  assert.match(
    errorOf(decodeDhcp(UDHCPC_DISCOVER.subarray(0, 240 + 3 + 5))),
    /option 61 at offset 243 has length 7 but only 3 bytes remain/,
  );
  // Cut right after option 61's code: no length byte.
  assert.match(errorOf(decodeDhcp(UDHCPC_DISCOVER.subarray(0, 240 + 3 + 1))), /option 61 at offset 243 has no length byte/);
  // Cut between options (no end option): accepted.
  assert.ok(decodeDhcp(UDHCPC_DISCOVER.subarray(0, 240 + 3 + 9)).ok);
  // Cut before option 53: missing message type.
  assert.match(errorOf(decodeDhcp(UDHCPC_DISCOVER.subarray(0, 240))), /message type option \(53\) is missing/);
});

test('an option length that runs past the end is rejected', () => {
  const h = header({ chaddr: '020000000001' });
  assert.match(errorOf(decodeDhcp(message(h, '350101 0c10 41414141', false))), /option 12 .* length 16 but only 4 bytes remain/);
  assert.match(errorOf(decodeDhcp(message(h, '3501', false))), /option 53 .* length 1 but only 0 bytes remain/);
  assert.match(errorOf(decodeDhcp(message(h, '0c ff', false))), /option 12 .* length 255 but only 0 bytes remain/);
});

test('zero-length and 255-length options', () => {
  const h = header({ chaddr: '020000000001' });
  const m = decoded(message(h, '350101 e000 0c00 3d00 3700 e1ff' + '5a'.repeat(255)));
  assert.equal(m.options.get(224)?.length, 0);
  assert.equal(m.options.get(225)?.length, 255);
  assert.equal(m.hostname, undefined); // empty hostname is treated as absent
  assert.equal(m.clientId, undefined);
  assert.equal(m.paramRequestList, undefined);
  // Zero-length options whose value has a fixed size are errors.
  assert.match(errorOf(decodeDhcp(message(h, '350101 3200'))), /option 50 \(requested IP address\) has length 0, expected 4/);
  assert.match(errorOf(decodeDhcp(message(h, '350101 3600'))), /option 54 \(server identifier\) has length 0, expected 4/);
  assert.match(errorOf(decodeDhcp(message(h, '3500'))), /option 53 \(message type\) has length 0, expected 1/);
  assert.match(errorOf(decodeDhcp(message(h, '350101 3303 000e10'))), /option 51 \(lease time\) has length 3/);
  assert.match(errorOf(decodeDhcp(message(h, '350101 390400000240'))), /option 57 .* length 4, expected 2/);
});

test('message type is required and must be 1..8', () => {
  const h = header({ chaddr: '020000000001' });
  assert.match(errorOf(decodeDhcp(message(h, '0c0141'))), /option \(53\) is missing/);
  assert.match(errorOf(decodeDhcp(message(h, '350109'))), /message type 9 is not 1\.\.8/);
  assert.match(errorOf(decodeDhcp(message(h, '350100'))), /message type 0 is not 1\.\.8/);
  assert.match(errorOf(decodeDhcp(message(h, '35020101'))), /has length 2, expected 1/);
  for (let t = 1; t <= 8; t++) assert.equal(decoded(message(h, `3501${t.toString(16).padStart(2, '0')}`)).messageType, t);
});

test('header checks: cookie, hlen, op, minimum length', () => {
  const good = message(header({ chaddr: '020000000001' }), '350101');
  assert.ok(decodeDhcp(good).ok);
  const noCookie = Buffer.from(good);
  noCookie.writeUInt32BE(0x63825364, 236);
  assert.match(errorOf(decodeDhcp(noCookie)), /magic cookie 0x63825364/);
  const bootp = Buffer.from(good.subarray(0, 236)); // plain BOOTP header, no cookie at all
  assert.match(errorOf(decodeDhcp(bootp)), /too short: 236 bytes < 240/);
  assert.match(
    errorOf(decodeDhcp(message(header({ hlen: '11', chaddr: '020000000001' }), '350101'))),
    /hlen 17 exceeds the 16-byte chaddr/,
  );
  assert.match(errorOf(decodeDhcp(message(header({ hlen: 'ff', chaddr: '020000000001' }), '350101'))), /hlen 255 exceeds/);
  assert.match(errorOf(decodeDhcp(message(header({ hlen: '10', chaddr: '020000000001' }), '350101'))), /hlen 16 is not 6/);
  assert.match(errorOf(decodeDhcp(message(header({ hlen: '00', chaddr: '020000000001' }), '350101'))), /hlen 0 is not 6/);
  assert.match(errorOf(decodeDhcp(message(header({ op: '03', chaddr: '020000000001' }), '350101'))), /op 3/);
  // Exactly 240 bytes plus a message type and no end option is the smallest acceptable message.
  assert.ok(decodeDhcp(message(header({ chaddr: '020000000001' }), '350101', false)).ok);
});

test('pad, end, trailing garbage, duplicates (RFC 3396 concatenation), hostname NULs', () => {
  const h = header({ chaddr: '020000000001', flags: '8000', ciaddr: '0a000005' });
  const m = decoded(message(h, '00 00 350103 00 0c03 666f6f 0c03 626172 3702 0103 3702 060f 3604 0a000006 ff 0c 99 deadbeef'));
  assert.equal(m.broadcast, true);
  assert.equal(m.flags, 0x8000);
  assert.equal(m.ciaddr, ip('10.0.0.5'));
  assert.equal(m.hostname, 'foobar');
  assert.deepEqual(m.paramRequestList, [1, 3, 6, 15]);
  assert.equal(m.serverId, ip('10.0.0.6'));
  assert.equal(m.messageType, DHCP_MESSAGE.REQUEST);
  const nul = decoded(message(h, '350101 0c05 686f737400'));
  assert.equal(nul.hostname, 'host');
  // Duplicated fixed-size options concatenate to the wrong length and are rejected.
  assert.match(errorOf(decodeDhcp(message(h, '350101 3204 0a000001 3204 0a000002'))), /option 50 .* length 8, expected 4/);
});

test('decoded options and chaddr are copies: the frame can be reused; three pieces concatenate in order', () => {
  const h = header({ chaddr: '020000000001' });
  const raw = message(h, '350103 0c02 6162 3204 0a000001 0c01 63 0c02 6465 ff');
  const m = decoded(raw);
  assert.equal(m.hostname, 'abcde');
  assert.deepEqual([...m.options.get(12)!], [...Buffer.from('abcde')]);
  raw.fill(0xee);
  assert.deepEqual([...m.options.get(50)!], [10, 0, 0, 1]);
  assert.deepEqual([...m.options.get(12)!], [...Buffer.from('abcde')]);
  assert.deepEqual([...m.chaddrRaw.subarray(0, 6)], [2, 0, 0, 0, 0, 1]);
  assert.equal(m.chaddr, '02:00:00:00:00:01');
});

function request(o: Partial<DhcpMessage> = {}): DhcpMessage {
  const m = decoded(UDHCPC_DISCOVER);
  return { ...m, ...o, broadcast: ((o.flags ?? m.flags) & 0x8000) !== 0 };
}

/** Walk a reply's options, returning codes in order (pads skipped, stops at end). */
function optionCodes(b: Uint8Array): number[] {
  const codes: number[] = [];
  for (let i = 240; i < b.length;) {
    const code = b[i] ?? 0;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    codes.push(code);
    i += 2 + (b[i + 1] ?? 0);
  }
  return codes;
}

const FULL = {
  serverId: ip('10.20.0.2'),
  subnetMask: 0xfffffffc,
  router: ip('10.20.0.2'),
  dnsServers: [ip('9.9.9.9'), ip('1.1.1.1')],
  domain: 'mesh.example',
  leaseTime: 3600,
  renewalTime: 1800,
  rebindingTime: 3150,
};

test('OFFER encodes and decodes back with the right options, in order, padded to 300', () => {
  const req = request({ flags: 0x8000, giaddr: 0 });
  const b = encodeDhcpReply({ request: req, messageType: DHCP_MESSAGE.OFFER, yiaddr: ip('10.20.0.1'), ...FULL });
  assert.ok(b.length >= BOOTP_MIN_REPLY_LEN);
  assert.equal(b.length, 240 + 64); // options need 64 bytes here, so no padding
  assert.deepEqual(optionCodes(b), [53, 54, 51, 58, 59, 1, 3, 6, 15]);
  const m = decoded(b);
  assert.equal(m.op, 2);
  assert.equal(m.messageType, DHCP_MESSAGE.OFFER);
  assert.equal(m.xid, req.xid);
  assert.equal(m.flags, 0x8000);
  assert.equal(m.htype, 1);
  assert.equal(m.hlen, 6);
  assert.equal(m.hops, 0);
  assert.equal(m.chaddr, req.chaddr);
  assert.deepEqual(m.chaddrRaw, req.chaddrRaw);
  assert.equal(m.ciaddr, 0);
  assert.equal(m.yiaddr, ip('10.20.0.1'));
  assert.equal(m.siaddr, 0);
  assert.equal(m.serverId, FULL.serverId);
  assert.equal(m.leaseTime, 3600);
  assert.deepEqual(Buffer.from(m.options.get(58) ?? []), hex('00000708'));
  assert.deepEqual(Buffer.from(m.options.get(59) ?? []), hex('00000c4e'));
  assert.deepEqual(Buffer.from(m.options.get(1) ?? []), hex('fffffffc'));
  assert.deepEqual(Buffer.from(m.options.get(3) ?? []), hex('0a140002'));
  assert.deepEqual(Buffer.from(m.options.get(6) ?? []), hex('09090909 01010101'));
  assert.equal(Buffer.from(m.options.get(15) ?? []).toString(), 'mesh.example');
});

test('ACK: ciaddr per RFC 2131 table 3, and no lease times for INFORM', () => {
  // SELECTING (server id present): ciaddr 0 in the ACK.
  const selecting = request({ messageType: DHCP_MESSAGE.REQUEST, serverId: FULL.serverId, requestedIp: ip('10.20.0.1') });
  const a1 = decoded(encodeDhcpReply({ request: selecting, messageType: DHCP_MESSAGE.ACK, yiaddr: ip('10.20.0.1'), ...FULL }));
  assert.equal(a1.messageType, DHCP_MESSAGE.ACK);
  assert.equal(a1.ciaddr, 0);
  assert.equal(a1.yiaddr, ip('10.20.0.1'));
  assert.equal(a1.leaseTime, 3600);

  // RENEWING: ciaddr copied.
  const renewing = request({ messageType: DHCP_MESSAGE.REQUEST, ciaddr: ip('10.20.0.1') });
  const a2 = decoded(encodeDhcpReply({ request: renewing, messageType: DHCP_MESSAGE.ACK, yiaddr: ip('10.20.0.1'), ...FULL }));
  assert.equal(a2.ciaddr, ip('10.20.0.1'));

  // INFORM: ciaddr copied, lease options dropped even when passed.
  const inform = request({ messageType: DHCP_MESSAGE.INFORM, ciaddr: ip('10.20.0.1') });
  const a3b = encodeDhcpReply({ request: inform, messageType: DHCP_MESSAGE.ACK, yiaddr: 0, ...FULL });
  assert.deepEqual(optionCodes(a3b), [53, 54, 1, 3, 6, 15]);
  const a3 = decoded(a3b);
  assert.equal(a3.ciaddr, ip('10.20.0.1'));
  assert.equal(a3.yiaddr, 0);

  // OFFER never copies ciaddr.
  const o = decoded(encodeDhcpReply({ request: renewing, messageType: DHCP_MESSAGE.OFFER, yiaddr: ip('10.20.0.1'), ...FULL }));
  assert.equal(o.ciaddr, 0);
});

test('NAK carries only 53, 54, 56; yiaddr 0; broadcast flag when relayed', () => {
  const req = request({ messageType: DHCP_MESSAGE.REQUEST, requestedIp: ip('10.99.0.1'), ciaddr: ip('10.99.0.1') });
  const b = encodeDhcpReply({
    request: req,
    messageType: DHCP_MESSAGE.NAK,
    yiaddr: ip('10.20.0.1'),
    ...FULL,
    message: 'address not valid here',
  });
  assert.equal(b.length, 300); // short replies are padded to the BOOTP minimum
  assert.deepEqual(optionCodes(b), [53, 54, 56]);
  const m = decoded(b);
  assert.equal(m.messageType, DHCP_MESSAGE.NAK);
  assert.equal(m.yiaddr, 0);
  assert.equal(m.ciaddr, 0);
  assert.equal(m.flags, 0);
  assert.equal(Buffer.from(m.options.get(56) ?? []).toString(), 'address not valid here');
  const relayed = decoded(
    encodeDhcpReply({ request: { ...req, giaddr: ip('10.0.0.1') }, messageType: DHCP_MESSAGE.NAK, yiaddr: 0, serverId: FULL.serverId }),
  );
  assert.equal(relayed.flags & 0x8000, 0x8000);
  assert.equal(relayed.giaddr, ip('10.0.0.1'));
  assert.deepEqual(
    optionCodes(encodeDhcpReply({ request: req, messageType: DHCP_MESSAGE.NAK, yiaddr: 0, serverId: FULL.serverId })),
    [53, 54],
  );
});

test('options longer than 255 bytes are split and decode back concatenated', () => {
  const domain = 'x'.repeat(300);
  const dns = Array.from({ length: 70 }, (_, k) => ip('10.0.0.0') + k); // 280 bytes
  const b = encodeDhcpReply({ request: request(), messageType: DHCP_MESSAGE.OFFER, yiaddr: 1, serverId: 2, dnsServers: dns, domain });
  assert.deepEqual(optionCodes(b), [53, 54, 6, 6, 15, 15]);
  const m = decoded(b);
  assert.equal(Buffer.from(m.options.get(15) ?? []).toString(), domain);
  assert.equal(m.options.get(6)?.length, 280);
  assert.throws(() => encodeDhcpReply({ request: request(), messageType: DHCP_MESSAGE.OFFER, yiaddr: -1, serverId: 2 }), RangeError);
});

test('reply destination follows RFC 2131 §4.1 (every branch)', () => {
  const yi = ip('10.20.0.1');
  const offer = { messageType: DHCP_MESSAGE.OFFER, yiaddr: yi };
  const nak = { messageType: DHCP_MESSAGE.NAK, yiaddr: 0 };
  const mac = '02:00:00:aa:bb:01';
  // giaddr → relay, even for a NAK and with ciaddr/broadcast set.
  assert.deepEqual(dhcpReplyDestination(request({ giaddr: ip('10.0.0.1'), ciaddr: ip('10.1.1.1'), flags: 0x8000 }), nak), {
    kind: 'relay',
    ip: ip('10.0.0.1'),
  });
  assert.deepEqual(dhcpReplyDestination(request({ giaddr: ip('10.0.0.1') }), offer), { kind: 'relay', ip: ip('10.0.0.1') });
  // NAK without a relay is always broadcast, even when ciaddr is set.
  assert.deepEqual(dhcpReplyDestination(request({ ciaddr: ip('10.20.0.1') }), nak), { kind: 'broadcast' });
  assert.deepEqual(dhcpReplyDestination(request(), nak), { kind: 'broadcast' });
  // ciaddr → unicast to ciaddr at chaddr (even with the broadcast bit).
  assert.deepEqual(
    dhcpReplyDestination(request({ ciaddr: ip('10.20.0.1'), flags: 0x8000 }), { messageType: DHCP_MESSAGE.ACK, yiaddr: yi }),
    {
      kind: 'unicast',
      ip: ip('10.20.0.1'),
      mac,
    },
  );
  // broadcast bit → broadcast.
  assert.deepEqual(dhcpReplyDestination(request({ flags: 0x8000 }), offer), { kind: 'broadcast' });
  // otherwise unicast to yiaddr at chaddr.
  assert.deepEqual(dhcpReplyDestination(request(), offer), { kind: 'unicast', ip: yi, mac });
  // ... unless there is no yiaddr to unicast to.
  assert.deepEqual(dhcpReplyDestination(request(), { messageType: DHCP_MESSAGE.ACK, yiaddr: 0 }), { kind: 'broadcast' });
});

test('classifyRequest follows RFC 2131 §4.3.2', () => {
  const base = { messageType: DHCP_MESSAGE.REQUEST } as const;
  assert.equal(classifyRequest(request({ ...base, serverId: 1, requestedIp: 5 })), 'selecting');
  assert.equal(classifyRequest(request({ ...base, requestedIp: 5, ciaddr: 0 })), 'init-reboot');
  assert.equal(classifyRequest(request({ ...base, ciaddr: 5 })), 'renewing-or-rebinding');
  assert.equal(classifyRequest(request({ ...base })), 'invalid');
  assert.equal(classifyRequest(request({ messageType: DHCP_MESSAGE.DISCOVER, requestedIp: 5 })), 'invalid');
  // Decoded from the wire: a dhclient-style INIT-REBOOT request.
  const h = header({ chaddr: '525400123456' });
  assert.equal(classifyRequest(decoded(message(h, '350103 3204 c0a80164'))), 'init-reboot');
  assert.equal(
    classifyRequest(decoded(message(header({ chaddr: '525400123456', ciaddr: 'c0a80164' }), '350103'))),
    'renewing-or-rebinding',
  );
  assert.equal(classifyRequest(decoded(message(h, '350103 3204 c0a80164 3604 c0a80101'))), 'selecting');
});

test('fuzz: random buffers, random option areas and mutations never throw (seeded)', () => {
  const next = rng(0xd4c9);
  const bytes = (len: number) => {
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = Math.floor(next() * 256);
    return b;
  };
  // 2000 entirely random buffers.
  for (let i = 0; i < 2000; i++) assertResult(decodeDhcp(bytes(Math.floor(next() * 600))), `random #${i}`);
  // 2000 valid headers with random option areas (reaches the option parser).
  const head = hex(header({ chaddr: '020000000001' }));
  let ok = 0;
  for (let i = 0; i < 2000; i++) {
    const opts = bytes(Math.floor(next() * 80));
    if (next() < 0.5 && opts.length >= 3) opts.set([53, 1, 1 + Math.floor(next() * 8)], 0);
    const r = decodeDhcp(Buffer.concat([head, opts]));
    assertResult(r, `options #${i}`);
    if (r.ok) ok++;
  }
  assert.ok(ok > 0, 'some random option areas should decode');
  // 2000 mutations of real client messages.
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(i % 2 ? UDHCPC_DISCOVER : DHCLIENT_DISCOVER);
    const flips = 1 + Math.floor(next() * 6);
    for (let k = 0; k < flips; k++)
      b[next() < 0.7 ? 236 + Math.floor(next() * 64) : Math.floor(next() * b.length)] = Math.floor(next() * 256);
    const r = decodeDhcp(b);
    assertResult(r, `mutation #${i}`);
    if (r.ok) {
      assert.ok(r.value.messageType >= 1 && r.value.messageType <= 8);
      assert.equal(r.value.hlen, 6);
    }
  }
});
