// SPDX-License-Identifier: GPL-2.0-only
// tmip-cn: the correspondent node daemon for one mobile interface.
// `tmip-cn -f /etc/config/tmip [-F] [-D N] [-s SECTION]`.
import fs from 'node:fs';
import path from 'node:path';
import { formatMlrAddress, parseCnConfig } from '../core/config.js';
import { CnDaemon } from '../cn/daemon.js';
import { clampTableName } from '../cn/dataplane-driver.js';
import { evaluateConnectivity } from '../cn/evaluate.js';
import { readUciFile, DEFAULT_CONFIG_FILE } from '../platform/config-file.js';
import { IprouteNetOps } from '../platform/iproute-netops.js';
import { PersistentRunner } from '../platform/persistent-runner.js';
import { NftShell } from '../platform/nft-shell.js';
import { createLogger, LOG } from '../platform/log.js';
import { openPacketLink } from '../platform/packet-linkio.js';
import { connectMlr } from '../platform/mlr-transport.js';
import { failoverConnector } from '../platform/mlr-failover.js';
import { tlsClientContext } from '../platform/tls-channel.js';
import { openUbusPort } from '../platform/ubus-port-live.js';
import { IpMonitorNeighbourWatch } from '../platform/neighbour-watch.js';
import { resolveNetworks } from '../platform/netifd.js';
import { fail, parseArgs } from './args.js';

const USAGE = `usage: tmip-cn [-f FILE] [-F] [-D LEVEL] [-s SECTION]
  -f FILE     UCI config file (default ${DEFAULT_CONFIG_FILE}); uses its first 'config cn' section
  -F          stay in the foreground (always the case; procd supervises it)
  -D LEVEL    debug level 0..7 (overrides debug_level; 3 shows handovers, 5 protocol messages)
  -s SECTION  use this named cn section
  -E          network connectivity evaluation: ping the MLR, list the CNs it knows, exit`;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULT_CONFIG_FILE);
  if (!args.ok) fail('tmip-cn', `${args.error}\n${USAGE}`);
  if (args.value.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const pkg = readUciFile(args.value.file);
  if (!pkg.ok) fail('tmip-cn', pkg.error);
  const cfg = parseCnConfig(pkg.value, args.value.section);
  if (!cfg.ok) fail('tmip-cn', `bad configuration in ${args.value.file}:\n${cfg.error}`);
  if (args.value.evaluate) {
    const ok = await evaluateConnectivity(
      cfg.value,
      // with `list mlr`: the one that serves (one round over the list)
      (mlr) =>
        cfg.value.mlrs
          ? failoverConnector(cfg.value.mlrs, (a) => connectMlr(a, cfg.value, { probe: true }), { windowMs: 0 })()
          : connectMlr(mlr, cfg.value, { probe: true }),
      (l) => process.stdout.write(l + '\n'),
    );
    process.exit(ok ? 0 : 1);
  }
  // tls:// and mqtts://: read and check the certificate files once, now, so a wrong one stops start-up
  // (the transport reuses the checked context) instead of failing every connection attempt.
  if (cfg.value.mlr.scheme === 'tls' || cfg.value.mlr.scheme === 'mqtts') {
    try {
      tlsClientContext(cfg.value.tls);
    } catch (e) {
      fail('tmip-cn', e instanceof Error ? e.message : String(e));
    }
  }
  const logger = createLogger(args.value.debug ?? cfg.value.debugLevel, 'tmip-cn');
  // cn_network / mobile_network: the devices come from netifd; wait for them (and the backbone's address).
  if (cfg.value.cnNetwork !== undefined || cfg.value.mobileNetwork !== undefined) {
    const opt = cfg.value.cnNetwork !== undefined ? 'cn_network' : 'mobile_network';
    const ubus = await openUbusPort(cfg.value.ubusSocket, logger.log).catch((e: unknown) =>
      fail('tmip-cn', `option ${opt} needs netifd over ubus: ${e instanceof Error ? e.message : String(e)}`),
    );
    if (!ubus)
      fail(
        'tmip-cn',
        `option ${opt} needs netifd over ubus, and there is no ubus socket; name the device with option ${opt.replace('_network', '_if')} instead`,
      );
    const resolved = await resolveNetworks(cfg.value, ubus, logger.log);
    ubus.close();
    if (!resolved.ok) fail('tmip-cn', `bad configuration in ${args.value.file}:\n${resolved.error}`);
    cfg.value = resolved.value;
  }
  // `list mlr` of several MLRs (etcd store): bind to whichever serves (platform/mlr-failover.ts).
  const mlrs = cfg.value.mlrs;
  const connectAny = mlrs
    ? failoverConnector(mlrs, (a) => connectMlr(a, cfg.value, { log: logger.log }), {
        onSwitch: (a) => logger.log(LOG.info, `MLR: connected to ${formatMlrAddress(a)}, the one of ${mlrs.length} (list mlr) that serves`),
      })
    : undefined;
  const commands = new PersistentRunner({ log: logger.log });
  // MSS-clamp set changes through one long-lived `nft -i` (probed now; spawned `nft -f -` where it does not work).
  const nft = cfg.value.mssClamp ? new NftShell({ log: logger.log }) : undefined;
  await nft?.start();
  const net = new IprouteNetOps({ log: logger.log, runner: commands.runner, ...(nft ? { nftLines: nft } : {}) });
  const daemon = new CnDaemon(cfg.value, {
    // Kernel changes through one long-lived `ip -batch` and sysctl file writes, not a process each.
    net,
    openLink: (ifname, program, mac) => openPacketLink(ifname, program, { mac, log: logger.log }),
    connect: (mlr) => (connectAny ? connectAny() : connectMlr(mlr, cfg.value, { log: logger.log })),
    openUbus: () => openUbusPort(cfg.value.ubusSocket, logger.log),
    neighbours: new IpMonitorNeighbourWatch(logger.log),
    log: logger.log,
  });
  const shutdown = (sig: string) => {
    logger.log(LOG.info, `${sig}: shutting down (kernel state is kept for the next start, but for the MSS-clamp table)`);
    daemon.stop();
    commands.close();
    nft?.close();
    const table = clampTableName(cfg.value.tunnelPrefix);
    const removed = cfg.value.mssClamp
      ? net.deleteMssClamp(table).catch((e: unknown) => logger.log(LOG.error, `cannot delete nftables table ${table}: ${String(e)}`))
      : undefined;
    void Promise.race([removed, new Promise((r) => setTimeout(r, 2000))]).then(() => process.exit(0));
  };
  // A stray rejected promise is a bug to report, not a reason to drop every client's state.
  process.on('unhandledRejection', (e) =>
    logger.log(LOG.error, `unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
  );
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => daemon.reload('SIGHUP'));
  process.on('SIGUSR1', () => {
    const file = cfg.value.statusFile;
    if (!file) {
      logger.log(LOG.info, `SIGUSR1: status ${JSON.stringify(daemon.statusReport())}`);
      return;
    }
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(daemon.statusReport(), null, 2) + '\n');
      logger.log(LOG.info, `SIGUSR1: status written to ${file}`);
    } catch (e) {
      logger.log(LOG.error, `SIGUSR1: cannot write ${file}: ${(e as Error).message}`);
    }
  });
  await daemon.start();
}

main().catch((e: unknown) => fail('tmip-cn', e instanceof Error ? e.message : String(e)));
