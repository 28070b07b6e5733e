// SPDX-License-Identifier: GPL-2.0-only
// Asks a running MLR for its `status` as a CN would (authenticated with that CN's key; it does not
// bind, so the CN's own session is untouched), for lab tests. Run inside a CN's namespace:
//   node build/test/lab/mlr-status-tool.js HOST PORT CN_NAME SECRET
// Prints one JSON line (every page of the paged status): {"cns": [{name, online}], "bindings": [{mac, cell, parent, current, state}]}
// with addresses as dotted text, or exits 1 with the error on stderr.
import { formatIPv4 } from '../../src/core/ip.js';
import { cnGuards } from '../../src/proto/auth.js';
import { RpcPeer } from '../../src/proto/rpc.js';
import { connectTcp } from '../../src/platform/tcp-channel.js';
import { statusAll } from '../support/status-pages.js';

async function main(): Promise<void> {
  const [host = '', port = '', cn = '', secret = ''] = process.argv.slice(2);
  const guard = cnGuards(cn, secret, (m) => process.stderr.write(`auth: ${m}\n`))(`MLR ${host}`);
  const peer = new RpcPeer(await connectTcp(host, Number(port)), { guard });
  const s = await statusAll(peer, 5000);
  process.stdout.write(
    JSON.stringify({
      cns: s.cns.map((c) => ({ name: c.name, online: c.online })),
      bindings: s.bindings.map((b) => ({
        mac: b.mac,
        cell: formatIPv4(b.cell),
        parent: b.parent.name,
        current: b.current?.name ?? null,
        state: b.state,
      })),
    }) + '\n',
  );
  peer.close('done');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
