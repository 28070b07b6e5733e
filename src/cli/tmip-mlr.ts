// SPDX-License-Identifier: GPL-2.0-only
// tmip-mlr: the mobile location register daemon. `tmip-mlr -f /etc/config/tmip [-F] [-D N]`.
// Reads the config and assembles the MLR (mlr/mlr.ts) from the platform's parts: a TCP listener
// and the state file.
import { parseMlrConfig } from '../core/config.js';
import { startMlr } from '../mlr/mlr.js';
import { readUciFile, DEFAULT_CONFIG_FILE } from '../platform/config-file.js';
import { createLogger, LOG } from '../platform/log.js';
import { FileStateFile } from '../platform/state-file.js';
import { serveTcp } from '../platform/tcp-channel.js';
import { VERSION } from '../version.js';
import { fail, parseArgs } from './args.js';

const USAGE = `usage: tmip-mlr [-f FILE] [-F] [-D LEVEL] [-s SECTION]
  -f FILE     UCI config file (default ${DEFAULT_CONFIG_FILE}); uses its 'config mlr' section
  -F          stay in the foreground (always the case; kept for compatibility)
  -D LEVEL    debug level 0..7 (overrides debug_level)
  -s SECTION  use this named mlr section`;

async function main(): Promise<void> {
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
  const { listen, port, stateFile } = cfg.value;
  const server = await startMlr(
    {
      networkName: cfg.value.networkName,
      offerHoldSeconds: cfg.value.offerHold,
      leaseGraceSeconds: cfg.value.leaseGrace,
      tunnelTypes: cfg.value.tunnelTypes,
    },
    {
      listen: (onChannel) => serveTcp(listen, port, onChannel),
      ...(stateFile ? { state: new FileStateFile(stateFile) } : {}),
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
