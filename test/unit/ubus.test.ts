// SPDX-License-Identifier: GPL-2.0-only
import test from 'node:test';
import assert from 'node:assert/strict';
import { blobmsgTyped } from '../../src/proto/blob.js';
import {
  decodeUbusMessage,
  encodeUbusBody,
  encodeUbusFrame,
  encodeUbusMessage,
  UbusFrameReader,
  ubusMessageTypeName,
  ubusStatusName,
  ubusStatusText,
  UBUS_ATTR,
  UBUS_MAX_MSGLEN,
  UBUS_MSG,
  UBUS_STATUS,
  type UbusMessage,
  type UbusMessageInput,
} from '../../src/proto/ubus.js';
import { errorOf, hex, rng, value } from '../support/helpers.js';

function decoded(b: Uint8Array): UbusMessage {
  return value(decodeUbusMessage(b));
}

/** Splits a chunk holding several messages, checking each decodes. */
function stream(b: Uint8Array): UbusMessage[] {
  const r = new UbusFrameReader().push(b);
  assert.ok(r.ok, r.ok ? '' : r.error);
  assert.equal(
    r.value.reduce((n, m) => n + 8 + m.body.length, 0),
    b.length,
  );
  return r.value;
}

function assertEncodes(m: UbusMessageInput, bytes: Buffer, label: string): void {
  assert.equal(encodeUbusMessage(m).toString('hex'), bytes.toString('hex'), label);
}

// ---------------------------------------------------------------------------------------------
// Real exchanges, pasted verbatim (only spaces added). Captured through a byte-logging unix-socket
// proxy placed between the `ubus` CLI or a small libubus publisher and ubusd, all built from
// openwrt/ubus 3cc98db (2025-12-02) and openwrt/libubox 1aa36ee (2026-02-13). The publisher
// registered `hostapd.wl0` with get_clients (no args) and del_client {addr: string, reason: int32},
// and on getting a subscriber sent `assoc` {address, signal, freq} then `disassoc` {address} with
// ubus_notify(..., -1), as hostapd does. Client and object ids are whatever that ubusd drew.

const PUBLISHER = 0xdb5f786f; // the C publisher's client id as seen by the caller's invoke
const OBJ = 0x0eb3c7b1; // hostapd.wl0
const OBJTYPE = 0x70aa0a6e;
const SUB_CLIENT = 0xce9e90b5; // the publisher's client id in the first session (HELLO below)
const SUB_OBJ = 0xec6d7905; // the `ubus subscribe` CLI's unnamed subscriber object

const HELLO = hex('00 00 00 00 ce 9e 90 b5 00 00 00 04');

const ADD_OBJECT = hex(`
  00060001000000000000006402000010686f73746170642e776c30000600005082000014000b6765745f636c69656e74
  7300000082000038000a64656c5f636c69656e7400000000850000100004616464720000000000038500001400067265
  61736f6e0000000000000005
`);
const ADD_OBJECT_REPLY = hex(`00 02 0001 00000000 00000014 03000008 0eb3c7b1 05000008 70aa0a6e
                              00 01 0001 00000000 0000000c 01000008 00000000`);
const LOOKUP = hex('00 04 0001 00000000 00000014 02000010 686f73746170642e776c3000');
const LOOKUP_REPLY = hex(`
  00020001000000000000007402000010686f73746170642e776c3000030000080eb3c7b10500000870aa0a6e06000050
  82000014000b6765745f636c69656e747300000082000038000a64656c5f636c69656e74000000008500001000046164
  6472000000000003850000140006726561736f6e0000000000000005
  00010001000000000000000c0100000800000000
`);
// `ubus call hostapd.wl0 get_clients` → ubusd
const INVOKE = hex('00 05 0002 0eb3c7b1 00000020 03000008 0eb3c7b1 04000010 6765745f636c69656e747300 07000004');
// ubusd → publisher: peer = the caller's client id, USER/GROUP added
const INVOKE_FORWARDED = hex(`00 05 0002 db5f786f 00000038 03000008 0eb3c7b1 04000010 6765745f636c69656e747300
                              0c000009 726f6f74 00 000000 0d000009 726f6f74 00 000000 07000004`);
const REPLY_DATA = hex(`
  00020002db5f786f0000007c030000080eb3c7b1070000708500001000046672657100000000096c8200005c0007636c
  69656e74730000008200004c001130323a30303a30303a30303a30303a3031008700000d000461757468000001000000
  8700000d00056173736f6300010000008500001400067369676e616c00000000ffffffd8
`);
const REPLY_DATA_DELIVERED = hex(`
  000200020eb3c7b10000007c030000080eb3c7b1070000708500001000046672657100000000096c8200005c0007636c
  69656e74730000008200004c001130323a30303a30303a30303a30303a3031008700000d000461757468000001000000
  8700000d00056173736f6300010000008500001400067369676e616c00000000ffffffd8
`);
const REPLY_STATUS = hex('00 01 0002 db5f786f 00000014 01000008 00000000 03000008 0eb3c7b1');
const REPLY_STATUS_DELIVERED = hex('00 01 0002 0eb3c7b1 00000014 01000008 00000000 03000008 0eb3c7b1');
// `ubus call hostapd.wl0 nope '{}'`: the publisher's libubus answers METHOD_NOT_FOUND
const INVOKE_NOPE = hex('00 05 0002 0eb3c7b1 0000001c 03000008 0eb3c7b1 04000009 6e6f7065 00 000000 07000004');
const NOPE_STATUS_DELIVERED = hex('00 01 0002 0eb3c7b1 00000014 01000008 00000003 03000008 0eb3c7b1');

// `ubus subscribe hostapd.wl0`
const ADD_UNNAMED = hex('00 06 0001 00000000 00000004');
const ADD_UNNAMED_REPLY = hex(`00 02 0001 00000000 0000000c 03000008 ec6d7905
                               00 01 0001 00000000 0000000c 01000008 00000000`);
const SUBSCRIBE = hex('00 08 0003 00000000 00000014 03000008 ec6d7905 08000008 0eb3c7b1');
const ACTIVE_TO_OWNER = hex('00 0a 0001 00000000 00000014 03000008 0eb3c7b1 09000005 01 000000');
const INACTIVE_TO_OWNER = hex('00 0a 0002 00000000 00000014 03000008 0eb3c7b1 09000005 00 000000');
const ADDRESS = '83000022 0007 61646472657373 00 0000 30323a30303a30303a30303a30303a3031 00 0000';
// the publisher's two notifications, written in one go
const NOTIFIES = hex(`
  000a00020eb3c7b10000006c030000080eb3c7b10400000a6173736f630000000700004c830000220007616464726573
  7300000030323a30303a30303a30303a30303a30310000008500001400067369676e616c00000000ffffffd885000010
  00046672657100000000096c0a00000501000000
  000a00030eb3c7b10000004c030000080eb3c7b10400000d6469736173736f6300000000070000288300002200076164
  647265737300000030323a30303a30303a30303a30303a30310000000a00000501000000
`);
// ...as ubusd delivered them to the subscriber object
const ASSOC_DELIVERED = hex(`
  00050002ce9e90b5000000840a0000050100000003000008ec6d79050400000a6173736f630000000c000009726f6f74
  000000000d000009726f6f74000000000700004c8300002200076164647265737300000030323a30303a30303a30303a
  30303a30310000008500001400067369676e616c00000000ffffffd88500001000046672657100000000096c
`);
const DISASSOC_DELIVERED = hex(`00 05 0003 ce9e90b5 00000064 0a000005 01 000000 03000008 ec6d7905 0400000d 6469736173736f63 00 000000
                                0c000009 726f6f74 00 000000 0d000009 726f6f74 00 000000 07000028 ${ADDRESS}`);

// `ubus listen 'ubus.object.*'` (listener object 0x49e4d6e5), then the publisher exits
const REGISTER = hex(`
  00050002000000010000005403000008000000010400000d726567697374657200000000070000388500001400066f62
  6a6563740000000049e4d6e58300001e00077061747465726e000000756275732e6f626a6563742e2a000000
`);
const REGISTER_STATUS = hex('00 01 0002 00000001 0000000c 01000008 00000000');
const REMOVE_EVENT = hex(`
  0005000100000000000000500300000849e4d6e504000017756275732e6f626a6563742e72656d6f766500000700002c
  8500001000026964000000000eb3c7b1830000180004706174680000686f73746170642e776c3000
`);
const EVENT_ACK = hex('00 01 0001 00000000 00000014 01000008 00000000 03000008 49e4d6e5');

// `ubus call hostapd.wl0 del_client '{"s":"x","n":5,"b":true,"big":5000000000,"neg":-7,"d":1.5,"a":[1,"x"],"t":{"k":null}}'`
const INVOKE_TYPES = hex(`
  00050002f8cd2cc5000000a803000008f8cd2cc50400000f64656c5f636c69656e7400000700008c8300000a00017300
  780000008500000c00016e0000000005870000090001620001000000840000140003626967000000000000012a05f200
  8500001000036e6567000000fffffff988000010000164003ff800000000000081000020000161008500000c00000000
  000000018300000a000000007800000082000010000174008000000800016b00
`);
// `ubus send foo.bar '{"x":1}'` and its delivery to a `ubus listen 'foo.*'` object 0xa2bf36df
const SEND = hex(`
  00050001000000010000004803000008000000010400000973656e640000000007000030830000140002696400000000
  666f6f2e626172008200001800046461746100008500000c0001780000000001
`);
const SEND_DELIVERED = hex(
  '00 05 0001 00000000 00000028 03000008 a2bf36df 0400000c 666f6f2e626172 00 07000010 8500000c 0001 78 00 00000001',
);

// ---------------------------------------------------------------------------------------------

test('constants and names follow ubusmsg.h', () => {
  assert.equal(UBUS_MSG.MONITOR, 11);
  assert.equal(UBUS_ATTR.GROUP, 13);
  assert.equal(UBUS_STATUS.SYSTEM_ERROR, 13);
  assert.equal(ubusMessageTypeName(5), 'INVOKE');
  assert.equal(ubusMessageTypeName(99), 'type 99');
  assert.equal(ubusStatusName(3), 'METHOD_NOT_FOUND');
  assert.equal(ubusStatusName(77), 'STATUS_77');
  assert.equal(ubusStatusText(4), 'object not found');
  assert.equal(UBUS_MAX_MSGLEN, 1048576);
});

test('HELLO: 00 00 00 00 <peer> 00 00 00 04', () => {
  const m = decoded(HELLO);
  assert.deepEqual(
    { type: m.type, seq: m.seq, peer: m.peer, attrs: m.attrs },
    { type: UBUS_MSG.HELLO, seq: 0, peer: SUB_CLIENT, attrs: {} },
  );
  assertEncodes({ type: UBUS_MSG.HELLO, seq: 0, peer: SUB_CLIENT }, HELLO, 'hello');
});

test("ADD_OBJECT with a signature, and ubusd's DATA {OBJID, OBJTYPE} + STATUS", () => {
  const signature = { get_clients: {}, del_client: { addr: 3, reason: 5 } };
  assertEncodes({ type: UBUS_MSG.ADD_OBJECT, seq: 1, peer: 0, attrs: { objpath: 'hostapd.wl0', signature } }, ADD_OBJECT, 'add object');
  const m = decoded(ADD_OBJECT);
  assert.equal(m.attrs.objpath, 'hostapd.wl0');
  assert.deepEqual(m.attrs.signature, signature);
  const [data, status] = stream(ADD_OBJECT_REPLY);
  assert.deepEqual(data?.attrs, { objid: OBJ, objtype: OBJTYPE });
  assert.deepEqual({ type: status?.type, seq: status?.seq, attrs: status?.attrs }, { type: UBUS_MSG.STATUS, seq: 1, attrs: { status: 0 } });
  assertEncodes(
    { type: UBUS_MSG.DATA, seq: 1, peer: 0, attrs: { objid: OBJ, objtype: OBJTYPE } },
    ADD_OBJECT_REPLY.subarray(0, 28),
    'reply data',
  );
});

test('LOOKUP and its reply: DATA {OBJPATH, OBJID, OBJTYPE, SIGNATURE} then STATUS', () => {
  assertEncodes({ type: UBUS_MSG.LOOKUP, seq: 1, peer: 0, attrs: { objpath: 'hostapd.wl0' } }, LOOKUP, 'lookup');
  const [data, status] = stream(LOOKUP_REPLY);
  assert.equal(data?.type, UBUS_MSG.DATA);
  assert.equal(data?.attrs.objpath, 'hostapd.wl0');
  assert.equal(data?.attrs.objid, OBJ);
  assert.equal(data?.attrs.objtype, OBJTYPE);
  assert.deepEqual(data?.attrs.signature, { get_clients: {}, del_client: { addr: 3, reason: 5 } });
  assert.equal(status?.attrs.status, UBUS_STATUS.OK);
  // The signature is kept raw, so a server can hand it on verbatim.
  assertEncodes(
    {
      type: UBUS_MSG.DATA,
      seq: 1,
      peer: 0,
      attrs: { objpath: 'hostapd.wl0', objid: OBJ, objtype: OBJTYPE, signatureRaw: data?.attrs.signatureRaw ?? new Uint8Array(0) },
    },
    LOOKUP_REPLY.subarray(0, 8 + 0x74),
    'lookup data',
  );
});

test('INVOKE, its forwarded form, and the DATA/STATUS reply in both directions', () => {
  assertEncodes({ type: UBUS_MSG.INVOKE, seq: 2, peer: OBJ, attrs: { objid: OBJ, method: 'get_clients', data: {} } }, INVOKE, 'invoke');
  const fwd = decoded(INVOKE_FORWARDED);
  assert.equal(fwd.peer, PUBLISHER);
  assert.deepEqual(
    { objid: fwd.attrs.objid, method: fwd.attrs.method, user: fwd.attrs.user, group: fwd.attrs.group, data: fwd.attrs.data },
    {
      objid: OBJ,
      method: 'get_clients',
      user: 'root',
      group: 'root',
      data: {},
    },
  );
  assertEncodes(
    { type: UBUS_MSG.INVOKE, seq: 2, peer: PUBLISHER, attrs: { objid: OBJ, method: 'get_clients', user: 'root', group: 'root', data: {} } },
    INVOKE_FORWARDED,
    'forwarded',
  );

  const clients = { freq: 2412, clients: { '02:00:00:00:00:01': { auth: blobmsgTyped('bool', true), assoc: true, signal: -40 } } };
  assertEncodes({ type: UBUS_MSG.DATA, seq: 2, peer: PUBLISHER, attrs: { objid: OBJ, data: clients } }, REPLY_DATA, 'reply data');
  assertEncodes({ type: UBUS_MSG.STATUS, seq: 2, peer: PUBLISHER, attrs: { status: 0, objid: OBJ } }, REPLY_STATUS, 'reply status');
  const data = decoded(REPLY_DATA_DELIVERED);
  assert.equal(data.peer, OBJ);
  assert.deepEqual(data.attrs.data, { freq: 2412, clients: { '02:00:00:00:00:01': { auth: true, assoc: true, signal: -40 } } });
  const status = decoded(REPLY_STATUS_DELIVERED);
  assert.deepEqual(
    { type: status.type, seq: status.seq, peer: status.peer, attrs: status.attrs },
    { type: UBUS_MSG.STATUS, seq: 2, peer: OBJ, attrs: { status: 0, objid: OBJ } },
  );
  // Forwarding keeps the body and only rewrites the header's peer.
  assert.deepEqual(encodeUbusFrame({ type: UBUS_MSG.DATA, seq: 2, peer: OBJ }, decoded(REPLY_DATA).body), REPLY_DATA_DELIVERED);
});

test('INVOKE of a missing method is answered METHOD_NOT_FOUND', () => {
  assertEncodes({ type: UBUS_MSG.INVOKE, seq: 2, peer: OBJ, attrs: { objid: OBJ, method: 'nope', data: {} } }, INVOKE_NOPE, 'invoke');
  assert.equal(decoded(NOPE_STATUS_DELIVERED).attrs.status, UBUS_STATUS.METHOD_NOT_FOUND);
});

test('subscribing: unnamed ADD_OBJECT, SUBSCRIBE, NOTIFY {OBJID, ACTIVE} to the owner', () => {
  assertEncodes({ type: UBUS_MSG.ADD_OBJECT, seq: 1, peer: 0 }, ADD_UNNAMED, 'unnamed');
  assert.deepEqual(
    stream(ADD_UNNAMED_REPLY).map((m) => m.attrs),
    [{ objid: SUB_OBJ }, { status: 0 }],
  );
  assertEncodes({ type: UBUS_MSG.SUBSCRIBE, seq: 3, peer: 0, attrs: { objid: SUB_OBJ, target: OBJ } }, SUBSCRIBE, 'subscribe');
  assert.deepEqual(decoded(ACTIVE_TO_OWNER).attrs, { objid: OBJ, active: true });
  assert.deepEqual(decoded(INACTIVE_TO_OWNER).attrs, { objid: OBJ, active: false });
  assertEncodes({ type: UBUS_MSG.NOTIFY, seq: 1, peer: 0, attrs: { objid: OBJ, active: true } }, ACTIVE_TO_OWNER, 'active');
});

test('hostapd-style assoc/disassoc: NOTIFY from the publisher, INVOKE to the subscriber object', () => {
  const address = '02:00:00:00:00:01';
  const [assoc, disassoc] = stream(NOTIFIES);
  assert.deepEqual(assoc?.attrs.data, { address, signal: -40, freq: 2412 });
  assert.equal(assoc?.attrs.noReply, true);
  assertEncodes(
    {
      type: UBUS_MSG.NOTIFY,
      seq: 2,
      peer: OBJ,
      attrs: { objid: OBJ, method: 'assoc', data: { address, signal: -40, freq: 2412 }, noReply: true },
    },
    NOTIFIES.subarray(0, 8 + 0x6c),
    'notify assoc',
  );
  assert.equal(disassoc?.attrs.method, 'disassoc');

  const delivered = stream(Buffer.concat([ASSOC_DELIVERED, DISASSOC_DELIVERED]));
  assert.deepEqual(
    delivered.map((m) => ({
      type: m.type,
      seq: m.seq,
      peer: m.peer,
      objid: m.attrs.objid,
      method: m.attrs.method,
      noReply: m.attrs.noReply,
      data: m.attrs.data,
    })),
    [
      {
        type: UBUS_MSG.INVOKE,
        seq: 2,
        peer: SUB_CLIENT,
        objid: SUB_OBJ,
        method: 'assoc',
        noReply: true,
        data: { address, signal: -40, freq: 2412 },
      },
      { type: UBUS_MSG.INVOKE, seq: 3, peer: SUB_CLIENT, objid: SUB_OBJ, method: 'disassoc', noReply: true, data: { address } },
    ],
  );
  assertEncodes(
    {
      type: UBUS_MSG.INVOKE,
      seq: 2,
      peer: SUB_CLIENT,
      attrs: { noReply: true, objid: SUB_OBJ, method: 'assoc', user: 'root', group: 'root', data: { address, signal: -40, freq: 2412 } },
    },
    ASSOC_DELIVERED,
    'assoc delivered',
  );
});

test('events: register with the event object, a ubus.object.remove delivery and its ack; send', () => {
  assertEncodes(
    {
      type: UBUS_MSG.INVOKE,
      seq: 2,
      peer: 1,
      attrs: { objid: 1, method: 'register', data: { object: blobmsgTyped('int32', 0x49e4d6e5), pattern: 'ubus.object.*' } },
    },
    REGISTER,
    'register',
  );
  assert.deepEqual(decoded(REGISTER_STATUS).attrs, { status: 0 });
  assert.equal(decoded(REGISTER_STATUS).peer, 1);
  const ev = decoded(REMOVE_EVENT);
  assert.deepEqual(
    { peer: ev.peer, objid: ev.attrs.objid, method: ev.attrs.method, data: ev.attrs.data },
    { peer: 0, objid: 0x49e4d6e5, method: 'ubus.object.remove', data: { id: OBJ, path: 'hostapd.wl0' } },
  );
  assertEncodes({ type: UBUS_MSG.STATUS, seq: 1, peer: 0, attrs: { status: 0, objid: 0x49e4d6e5 } }, EVENT_ACK, 'ack');
  assertEncodes(
    { type: UBUS_MSG.INVOKE, seq: 1, peer: 1, attrs: { objid: 1, method: 'send', data: { id: 'foo.bar', data: { x: 1 } } } },
    SEND,
    'send',
  );
  assert.deepEqual(decoded(SEND_DELIVERED).attrs.data, { x: 1 });
  // A listener id of 2^31 or more must still travel as INT32, so it decodes as a negative int32.
  const big = decoded(
    encodeUbusMessage({
      type: UBUS_MSG.INVOKE,
      seq: 1,
      peer: 1,
      attrs: { objid: 1, method: 'register', data: { object: blobmsgTyped('int32', 0xf0000000), pattern: 'x' } },
    }),
  );
  assert.equal(((big.attrs.data?.['object'] as number) >>> 0).toString(16), 'f0000000');
});

test("the CLI's JSON → blobmsg typing matches ours (INT32, INT8, INT64, DOUBLE, UNSPEC, ARRAY)", () => {
  const data = { s: 'x', n: 5, b: true, big: 5000000000, neg: -7, d: 1.5, a: [1, 'x'], t: { k: null } };
  assertEncodes(
    { type: UBUS_MSG.INVOKE, seq: 2, peer: 0xf8cd2cc5, attrs: { objid: 0xf8cd2cc5, method: 'del_client', data } },
    INVOKE_TYPES,
    'typed invoke',
  );
  assert.deepEqual(decoded(INVOKE_TYPES).attrs.data, data);
});

test('STATUS from ubusd for a NOTIFY that wants replies lists the subscribers', () => {
  const bytes = encodeUbusMessage({
    type: UBUS_MSG.STATUS,
    seq: 9,
    peer: OBJ,
    attrs: { objid: OBJ, subscribers: [SUB_OBJ, 0x12345678], status: 0 },
  });
  assert.equal(
    bytes.subarray(8).toString('hex'),
    '00000028' + '030000080eb3c7b1' + '0b000014' + '00000008ec6d7905' + '0000000812345678' + '0100000800000000',
  );
  assert.deepEqual(decoded(bytes).attrs, { objid: OBJ, subscribers: [SUB_OBJ, 0x12345678], status: 0 });
});

test('decoder rejects malformed messages and skips unknown attributes', () => {
  assert.match(errorOf(decodeUbusMessage(hex('00000000 00000000 000000'))), /shorter than the 12-byte minimum/);
  assert.match(errorOf(decodeUbusMessage(hex('01000000 00000000 00000004'))), /version 1/);
  assert.match(errorOf(decodeUbusMessage(hex('00000000 00000000 00000003'))), /shorter than its header/);
  assert.match(errorOf(decodeUbusMessage(hex('00000000 00000000 00000008 00000000'.slice(0, -8)))), /does not match/);
  assert.match(errorOf(decodeUbusMessage(hex('00000000 00000000 00000004 00'))), /does not match/);
  // OBJID with three bytes, METHOD without its NUL, NO_REPLY with four bytes, SUBSCRIBERS with a short id
  assert.match(
    errorOf(decodeUbusMessage(hex('00050001 00000000 0000000c 03000007 010203 00'))),
    /OBJID: int32 attribute 3 has 3 payload bytes/,
  );
  assert.match(
    errorOf(decodeUbusMessage(hex('00050001 00000000 0000000c 04000008 61626364'))),
    /METHOD: string attribute 4 is not NUL-terminated/,
  );
  assert.match(errorOf(decodeUbusMessage(hex('00050001 00000000 0000000c 0a000008 00000001'))), /NO_REPLY/);
  assert.match(errorOf(decodeUbusMessage(hex('00010001 00000000 00000010 0b00000c 00000006 000001 00'))), /SUBSCRIBERS/);
  // DATA whose blobmsg is broken
  assert.match(errorOf(decodeUbusMessage(hex('00020001 00000000 00000010 0700000c 8300000a 00000000'))), /DATA: /);
  // an attribute running past the container
  assert.match(errorOf(decodeUbusMessage(hex('00020001 00000000 0000000c 03000010 00000001'))), /runs past/);
  // unknown ids and UNSPEC are skipped; the extended bit on a ubus attribute is ignored
  const m = decoded(hex('00020001 00000000 00000018 0e000005 01000000 00000004 83000008 00000001'));
  assert.deepEqual(m.attrs, { objid: 1 });
  // MONITOR messages use another attribute set and are passed through uninterpreted
  assert.deepEqual(decoded(hex('000b0001 00000000 0000000c 05000008 00000001')).attrs, {});
});

test('every truncation of a real message is an error', () => {
  for (const msg of [INVOKE_FORWARDED, ASSOC_DELIVERED, LOOKUP_REPLY.subarray(0, 8 + 0x74), INVOKE_TYPES]) {
    for (let cut = 0; cut < msg.length; cut++) {
      const r = decodeUbusMessage(msg.subarray(0, cut));
      assert.ok(!r.ok, `cut ${cut} of ${msg.length}`);
    }
    assert.ok(decodeUbusMessage(msg).ok);
  }
});

test('deframer: every split point of a real multi-message stream yields the same messages', () => {
  const all = Buffer.concat([
    HELLO,
    ADD_OBJECT_REPLY,
    LOOKUP_REPLY,
    INVOKE_FORWARDED,
    ASSOC_DELIVERED,
    DISASSOC_DELIVERED,
    REMOVE_EVENT,
    INVOKE_TYPES,
  ]);
  const whole = stream(all).map((m) => ({ type: m.type, seq: m.seq, peer: m.peer, attrs: m.attrs }));
  assert.equal(whole.length, 10);
  for (let split = 0; split <= all.length; split++) {
    const reader = new UbusFrameReader();
    const a = reader.push(all.subarray(0, split));
    const b = reader.push(all.subarray(split));
    assert.ok(a.ok && b.ok, `split ${split}`);
    assert.deepEqual(
      [...a.value, ...b.value].map((m) => ({ type: m.type, seq: m.seq, peer: m.peer, attrs: m.attrs })),
      whole,
      `split ${split}`,
    );
    assert.equal(reader.pending, 0);
  }
  // one byte at a time
  const reader = new UbusFrameReader();
  const got: UbusMessage[] = [];
  for (const byte of all) {
    const r = reader.push(Uint8Array.of(byte));
    assert.ok(r.ok);
    got.push(...r.value);
  }
  assert.equal(got.length, 10);
});

test('deframer: oversize, bad version, short container and undecodable bodies fail for good', () => {
  const oversize = Buffer.alloc(12);
  oversize.writeUInt32BE(UBUS_MAX_MSGLEN + 1, 8);
  const r1 = new UbusFrameReader();
  assert.match(errorOf(r1.push(oversize)), /exceeds the 1048576-byte limit/);
  assert.match(errorOf(r1.push(HELLO)), /exceeds/); // stays failed
  assert.ok(r1.failed);
  // exactly the limit is accepted as a length (and then waited for)
  const atLimit = Buffer.alloc(12);
  atLimit.writeUInt32BE(UBUS_MAX_MSGLEN, 8);
  const r2 = new UbusFrameReader();
  const waiting = r2.push(atLimit);
  assert.ok(waiting.ok && waiting.value.length === 0);
  assert.match(errorOf(new UbusFrameReader().push(hex('02000000 00000000 00000004'))), /version 2/);
  assert.match(errorOf(new UbusFrameReader().push(hex('00000000 00000000 00000002'))), /shorter than its header/);
  assert.match(errorOf(new UbusFrameReader().push(hex('00050001 00000000 0000000c 03000007 010203 00'))), /OBJID/);
  const r3 = new UbusFrameReader();
  assert.ok(!r3.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).ok);
  // a smaller limit can be configured
  assert.match(errorOf(new UbusFrameReader({}, 64).push(LOOKUP_REPLY)), /exceeds the 64-byte limit/);
});

test('encoder: attribute order follows the keys; raw DATA wins; oversize throws', () => {
  const a = encodeUbusBody({ status: 0, objid: 1 });
  const b = encodeUbusBody({ objid: 1, status: 0 });
  assert.notDeepEqual(a, b);
  assert.equal(a.toString('hex'), '00000014' + '0100000800000000' + '0300000800000001');
  const raw = Buffer.from('8500000c000178000000002a', 'hex');
  assert.deepEqual(decoded(encodeUbusMessage({ type: 2, seq: 1, peer: 0, attrs: { data: { x: 1 }, dataRaw: raw } })).attrs.data, { x: 42 });
  assert.throws(() => encodeUbusMessage({ type: 2, seq: 1, peer: 0, attrs: { data: { big: 'x'.repeat(UBUS_MAX_MSGLEN) } } }), RangeError);
  // seq and peer are masked to their field widths
  const m = decoded(encodeUbusMessage({ type: 3, seq: 0x12345, peer: 2 ** 32 + 5 }));
  assert.deepEqual({ seq: m.seq, peer: m.peer }, { seq: 0x2345, peer: 5 });
});

test('seeded fuzz: mutated real messages and random streams never throw', () => {
  const r = rng(0x0b05);
  const seeds = [
    HELLO,
    ADD_OBJECT,
    LOOKUP_REPLY,
    INVOKE_FORWARDED,
    REPLY_DATA,
    NOTIFIES,
    ASSOC_DELIVERED,
    REGISTER,
    REMOVE_EVENT,
    INVOKE_TYPES,
  ];
  let decodedCount = 0;
  for (let i = 0; i < 8000; i++) {
    const seed = seeds[i % seeds.length] as Buffer;
    const m = Buffer.from(seed);
    const flips = 1 + Math.floor(r() * 3);
    for (let f = 0; f < flips; f++) m[8 + Math.floor(r() * (m.length - 8))] = Math.floor(r() * 256);
    const res = decodeUbusMessage(m);
    assert.equal(typeof res.ok, 'boolean');
    if (res.ok) decodedCount++;
    const reader = new UbusFrameReader();
    let off = 0;
    while (off < m.length) {
      const n = 1 + Math.floor(r() * 16);
      const out = reader.push(m.subarray(off, off + n));
      assert.equal(typeof out.ok, 'boolean');
      if (!out.ok) break;
      off += n;
    }
  }
  for (let i = 0; i < 2000; i++) {
    const junk = Uint8Array.from({ length: Math.floor(r() * 48) }, () => Math.floor(r() * 256));
    if (junk.length > 8 && r() < 0.7) junk[0] = 0;
    assert.equal(typeof decodeUbusMessage(junk).ok, 'boolean');
    assert.equal(typeof new UbusFrameReader().push(junk).ok, 'boolean');
  }
  assert.ok(decodedCount > 0);
});
