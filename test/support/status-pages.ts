// SPDX-License-Identifier: GPL-2.0-only
// Walks the MLR's paged `status` (every page, bounded) into one list of CNs and one of bindings, as a
// test or a lab tool wants it. Each request passes the cursors the previous page gave.
import type { ReplyBody, RequestBody } from '../../src/core/messages.js';
import type { RpcPeer } from '../../src/proto/rpc.js';

/** Pages fetched at the most (100,000 bindings take 250): a loop bound. */
const MAX_PAGES = 2000;

export async function statusAll(
  peer: RpcPeer,
  timeoutMs = 10_000,
): Promise<{ cns: ReplyBody<'status'>['cns']; bindings: ReplyBody<'status'>['bindings']; pages: number }> {
  const cns: ReplyBody<'status'>['cns'] = [];
  const bindings: ReplyBody<'status'>['bindings'] = [];
  let body: RequestBody<'status'> = {};
  let pages = 0;
  for (; pages < MAX_PAGES;) {
    const page = await peer.request('status', body, timeoutMs);
    pages++;
    cns.push(...page.cns);
    bindings.push(...page.bindings);
    if (page.cnsNext === undefined && page.bindingsNext === undefined) break;
    body = {
      ...(page.cnsNext !== undefined ? { cnsAfter: page.cnsNext } : {}),
      ...(page.bindingsNext !== undefined ? { bindingsAfter: page.bindingsNext } : {}),
    };
  }
  return { cns, bindings, pages };
}
