// SPDX-License-Identifier: GPL-2.0-only
// tmip-mlr: the mobile location register daemon. `tmip-mlr -f /etc/config/tmip [-F] [-D N]`.
// Reads the config and assembles the MLR (mlr/mlr.ts) from the platform's parts: a TCP listener
// and the state file (snapshot and journal; a failed write ends the process), plus an MQTT broker
// connection when 'option mqtt' is set and a TLS listener when 'option tls_port' is. With
// 'option store etcd://…' the registry lives in etcd instead of the state file, and this MLR stands by
// (listening nowhere) until it holds the leadership (mlr/etcd-store.ts, mlr/leadership.ts).
import os from 'node:os';
import { parseMlrConfig } from '../core/config.js';
import type { Registry } from '../core/registry.js';
import { leadThenLoad } from '../mlr/etcd-store.js';
import { EtcdClient } from '../platform/etcd-client.js';
import { startMlr, type ListenFn } from '../mlr/mlr.js';
import { readUciFile, DEFAULT_CONFIG_FILE } from '../platform/config-file.js';
import { createLogger, LOG } from '../platform/log.js';
import { FileStateFile } from '../platform/state-file.js';
import { serveTcp } from '../platform/tcp-channel.js';
import { serveTls } from '../platform/tls-channel.js';
import { serveMqtt } from '../platform/mqtt-channel.js';
import { VERSION } from '../version.js';
import { fail, parseArgs } from './args.js';
import { keygen } from './keygen.js';

/** The leader's etcd lease: a standby takes over within about this long after the leader dies. */
const LEADER_TTL_SECONDS = 2;
/** How often a standby tries to take the leadership. */
const LEADER_POLL_MS = 250;

const USAGE = `usage: tmip-mlr [-f FILE] [-F] [-D LEVEL] [-s SECTION]
  -f FILE     UCI config file (default ${DEFAULT_CONFIG_FILE}); uses its 'config mlr' section
  -F          stay in the foreground (always the case; kept for compatibility)
  -D LEVEL    debug level 0..7 (overrides debug_level)
  -s SECTION  use this named mlr section
       tmip-mlr keygen NAME
              print a fresh key for the CN NAME: its 'option secret' line and the MLR's 'config key'`;

async function main(): Promise<void> {
  if (process.argv[2] === 'keygen') {
    if (process.argv.length !== 4) fail('tmip-mlr', `keygen takes one CN name\n${USAGE}`);
    const k = keygen(process.argv[3]!);
    if (!k.ok) fail('tmip-mlr', k.error);
    process.stdout.write(k.value);
    return;
  }
  const args = parseArgs(process.argv.slice(2), DEFAULT_CONFIG_FILE);
  if (!args.ok) fail('tmip-mlr', `${args.error}\n${USAGE}`);
  if (args.value.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const pkg = readUciFile(args.value.file);
  if (!pkg.ok) fail('tmip-mlr', pkg.error);
  const cfg = parseMlrConfig(pkg.value, args.value.section);
  if (!cfg.ok) fail('tmip-mlr', `bad configuration in ${args.value.file}:\n${cfg.error}`);
  const logger = createLogger(args.value.debug ?? cfg.value.debugLevel, 'tmip-mlr');
  logger.log(LOG.info, `Starting MLR Server [tmip-mlr ${VERSION}] using ${args.value.file}`);
  for (const w of cfg.value.warnings) logger.log(LOG.info, `config: ${w}`);
  const { listen, port, stateFile, mqtt, store } = cfg.value;
  const tlsCfg = cfg.value.tls;
  const server = await startMlr(
    {
      networkName: cfg.value.networkName,
      offerHoldSeconds: cfg.value.offerHold,
      leaseGraceSeconds: cfg.value.leaseGrace,
      maxOffers: cfg.value.maxOffers,
      declineQuarantineSeconds: cfg.value.declineQuarantine,
      tunnelTypes: cfg.value.tunnelTypes,
      ...(cfg.value.auth ? { keys: cfg.value.keys } : {}),
      logLevel: logger.level,
    },
    {
      listen: [
        (onChannel) => serveTcp(listen, port, onChannel, { log: (m) => logger.log(LOG.error, m) }),
        // `option tls_port`: also serve MLRP over TLS (platform/tls-channel.ts).
        ...(tlsCfg
          ? [
              (onChannel: Parameters<ListenFn>[0]) =>
                serveTls(listen, tlsCfg.port, tlsCfg, onChannel, { log: (m) => logger.log(LOG.info, m) }),
            ]
          : []),
        // `option mqtt`: also serve CNs through an MQTT broker (platform/mqtt-channel.ts).
        ...(mqtt
          ? [
              (onChannel: Parameters<ListenFn>[0]) =>
                serveMqtt(
                  mqtt,
                  {
                    networkName: cfg.value.networkName,
                    username: cfg.value.mqttUsername,
                    ...(cfg.value.mqttPassword !== undefined ? { password: cfg.value.mqttPassword } : {}),
                    ...(cfg.value.mqttCa !== undefined ? { ca: cfg.value.mqttCa } : {}),
                    log: logger.log,
                  },
                  onChannel,
                ),
            ]
          : []),
      ],
      ...(stateFile ? { state: new FileStateFile(stateFile) } : {}),
      // `option store 'etcd://…'`: stand by until this MLR leads, then keep the registry in etcd.
      ...(store
        ? {
            sharedStore: (registry: Registry) =>
              leadThenLoad(new EtcdClient(store.endpoints), registry, {
                networkName: cfg.value.networkName,
                self: { id: `${os.hostname()}:${process.pid}`, serves: `${listen === '0.0.0.0' ? os.hostname() : listen}:${port}` },
                ttlSeconds: LEADER_TTL_SECONDS,
                pollMs: LEADER_POLL_MS,
                log: logger.log,
                // deposed, or etcd did not take a write: acknowledge nothing more; restarted, we stand by
                onFailure: () => process.exit(1),
              }),
          }
        : {}),
      // A journal write failed: acknowledge nothing more; procd restarts us from what is on disk.
      onStateFailure: () => process.exit(1),
      log: logger.log,
    },
  );
  logger.log(LOG.info, 'MLR up and listening...');
  const shutdown = (sig: string) => {
    logger.log(LOG.info, `${sig}: shutting down`);
    void server.close().then(() => process.exit(0));
  };
  // A stray rejected promise is a bug to report, not a reason to drop every client's state.
  process.on('unhandledRejection', (e) =>
    logger.log(LOG.error, `unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
  );
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => fail('tmip-mlr', e instanceof Error ? e.message : String(e)));
