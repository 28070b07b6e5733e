// SPDX-License-Identifier: GPL-2.0-only
// Logging for both daemons: numbered levels as the original tmipd used them (0-7, default 2;
// 0 nothing, 1 errors, 2 start-up and state changes, 3 handovers, 4 detection, 5 every protocol
// message, 6-7 debugging), written as lines: errors (level 1) to stderr, everything else to stdout.
// procd forwards both to syslog under the command's name (`tmip-cn[pid]`), stdout at LOG_INFO and
// stderr at LOG_ERR, so only errors show as daemon.err (`logread -e tmip-cn`).
export type LogFn = (level: number, message: string) => void;

export interface Logger {
  log: LogFn;
  level: number;
}

export const LOG = { error: 1, info: 2, handover: 3, detect: 4, proto: 5, debug: 6 } as const;

/** Where log lines go: `info` for levels 2 and up, `error` for level 1 (and below). */
export interface LogSinks {
  info: (line: string) => void;
  error: (line: string) => void;
}

const STD_SINKS: LogSinks = {
  info: (l) => process.stdout.write(l + '\n'),
  error: (l) => process.stderr.write(l + '\n'),
};

export function createLogger(level: number, name: string, sinks: LogSinks = STD_SINKS): Logger {
  const logger: Logger = {
    level,
    log(lvl, message) {
      if (lvl > logger.level) return;
      const t = new Date().toISOString().slice(11, 23);
      (lvl <= LOG.error ? sinks.error : sinks.info)(`${t} ${name}[${lvl}] ${message}`);
    },
  };
  return logger;
}
