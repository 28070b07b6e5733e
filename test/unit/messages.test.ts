// SPDX-License-Identifier: GPL-2.0-only
// The optional fields of inline commits (core/messages.ts FEATURES.inlineCommit) as the codecs see
// them: a bind's `features` (unknown names kept for the MLR to ignore, the list bounded), `tx` on the
// request/seen replies and on `remove`, and old ends that know none of them.
import test from 'node:test';
import assert from 'node:assert/strict';
import { bindingCodec, type BindingView } from '../../src/core/binding.js';
import {
  decodeReplyBody,
  decodeRequestBody,
  encodeReplyBody,
  encodeRequestBody,
  FEATURES,
  type RequestBody,
} from '../../src/core/messages.js';
import { literal, object, optional, str } from '../../src/core/schema.js';
import { ip, value } from '../support/helpers.js';

/** A bind body as it travels (addresses as strings). */
const bind = encodeRequestBody('bind', {
  network: 'n',
  cn: { name: 'cn1', addr: ip('10.200.0.1') },
  tunnels: ['vxlan'],
  pools: [],
} satisfies RequestBody<'bind'>) as Record<string, unknown>;
const b: BindingView = {
  mac: '02:aa:00:00:00:01',
  cell: ip('10.1.0.4'),
  parent: { name: 'cn1', addr: ip('10.200.0.1') },
  current: { name: 'cn1', addr: ip('10.200.0.1') },
  state: 'bound',
  expires: 1e12,
};

test('bind features: decoded with unknown names kept; a list past its bound is refused; absent for old CNs', () => {
  const features = [FEATURES.inlineCommit, 'a-later-feature'];
  assert.deepEqual(value(decodeRequestBody('bind', { ...bind, features })).features, features);
  assert.equal(value(decodeRequestBody('bind', bind)).features, undefined);
  assert.equal(decodeRequestBody('bind', { ...bind, features: Array.from({ length: 65 }, (_, i) => `f${i}`) }).ok, false);
  assert.equal(decodeRequestBody('bind', { ...bind, features: ['x'.repeat(65)] }).ok, false);
  // An old MLR's bind codec has no `features`: it drops them and binds the CN as before.
  const oldBind = object({ network: str(64) });
  assert.deepEqual(value(oldBind.decode({ network: 'n', features }, 'bind')), { network: 'n' });
});

test('tx on replies and removes: optional both ways; an old CN drops it', () => {
  const reply = encodeReplyBody('request', { outcome: 'ack', binding: b, tx: 12 }) as { binding: unknown };
  assert.equal(value(decodeReplyBody('request', reply)).tx, 12);
  assert.equal(value(decodeReplyBody('request', { outcome: 'ack', binding: reply.binding })).tx, undefined);
  assert.equal(decodeReplyBody('seen', { outcome: 'moved', tx: 0 }).ok, false, 'transaction ids start at 1');
  assert.equal(value(decodeRequestBody('remove', { binding: reply.binding, tx: 3 })).tx, 3);
  assert.equal(value(decodeRequestBody('remove', { binding: reply.binding })).tx, undefined, 'an old MLR sends none');
  const oldReply = object({ outcome: literal('ack', 'nak', 'ignore'), binding: optional(bindingCodec) });
  assert.deepEqual(Object.keys(value(oldReply.decode(reply, 'r'))), ['outcome', 'binding']);
});
