// SPDX-License-Identifier: GPL-2.0-only
// The CN's way to its MLR, chosen by the address's scheme: MLRP over TCP (tcp://, or a bare
// host[:port]), MLRP over TLS (tls://), or MQTT 5 through a broker (mqtt://, mqtts://). Each gives
// the same MessageChannel, so nothing above the transport knows which one carries its messages.
import type { CnConfig, MlrAddress } from '../core/config.js';
import type { MessageChannel } from '../proto/rpc.js';
import { connectTcp } from './tcp-channel.js';
import { connectTls } from './tls-channel.js';
import type { LogFn } from './log.js';
import { connectMqtt } from './mqtt-channel.js';

export async function connectMlr(
  mlr: MlrAddress,
  cfg: Pick<CnConfig, 'cnName' | 'networkName' | 'tls' | 'mqttUsername' | 'mqttPassword'>,
  opts: { log?: LogFn; probe?: boolean } = {},
): Promise<MessageChannel> {
  switch (mlr.scheme) {
    case 'tcp':
      return connectTcp(mlr.host, mlr.port);
    case 'tls':
      return connectTls(mlr.host, mlr.port, cfg.tls);
    case 'mqtt':
    case 'mqtts':
      return connectMqtt(mlr, {
        networkName: cfg.networkName,
        cnName: cfg.cnName,
        username: cfg.mqttUsername,
        ...(cfg.mqttPassword !== undefined ? { password: cfg.mqttPassword } : {}),
        tls: cfg.tls,
        ...(opts.log ? { log: opts.log } : {}),
        ...(opts.probe ? { probe: true } : {}),
      });
  }
}
