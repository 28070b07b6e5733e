// SPDX-License-Identifier: GPL-2.0-only
// Network connectivity evaluation (`tmip-cn -E`), as the original offered: an application-level ping
// of the MLR, then every CN the MLR knows with whether it is connected there. It does not bind, so
// it can run beside the live daemon.
import { monotonicMs } from '../core/clock.js';
import { formatMlrAddress, type CnConfig, type MlrAddress } from '../core/config.js';
import { formatIPv4 } from '../core/ip.js';
import { cnGuards } from '../proto/auth.js';
import { RpcPeer, type MessageChannel } from '../proto/rpc.js';

export async function evaluateConnectivity(
  cfg: CnConfig,
  connect: (mlr: MlrAddress) => Promise<MessageChannel>,
  print: (line: string) => void,
): Promise<boolean> {
  print('Network Connectivity Evaluation');
  const where = formatMlrAddress(cfg.mlr);
  let peer: RpcPeer;
  const t0 = monotonicMs();
  try {
    const guard = cfg.secret !== undefined ? cnGuards(cfg.cnName, cfg.secret, (m) => print(`+ ${m}`))(`MLR ${where}`) : undefined;
    peer = new RpcPeer(await connect(cfg.mlr), guard ? { guard } : {});
    await peer.request('ping', {}, 3000);
  } catch (e) {
    print(`+ MLR @ ${where}: Failed (${e instanceof Error ? e.message : String(e)})`);
    return false;
  }
  print(`+ MLR @ ${where}: Passed (${(monotonicMs() - t0).toFixed(1)} ms).`);
  let ok = true;
  try {
    const { peers } = await peer.request('peers', {}, 3000);
    if (peers.length === 0) print('+ no other CN registered');
    for (const p of peers) {
      const here = p.name === cfg.cnName ? ' (this CN)' : '';
      print(
        `+ CN @ ${formatIPv4(p.addr)} [${p.name}]${here}: ${p.online === 'yes' ? 'Passed (connected to the MLR)' : 'Not connected to the MLR'}.`,
      );
      if (p.online !== 'yes' && !here) ok = false;
    }
  } catch (e) {
    print(`+ listing CNs failed: ${e instanceof Error ? e.message : String(e)}`);
    ok = false;
  } finally {
    peer.close('evaluation done');
  }
  return ok;
}
