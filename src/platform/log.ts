// SPDX-License-Identifier: GPL-2.0-only
// Logging for both daemons: numbered levels as the original tmipd used them (0-7, default 2;
// 1 errors, 2 start-up and state changes, 3 handovers, 4 detection, 5 every protocol message),
// written as lines to stderr, which procd forwards to syslog (`logread`).
export type LogFn = (level: number, message: string) => void;

export interface Logger {
  log: LogFn;
  level: number;
}

export const LOG = { error: 1, info: 2, handover: 3, detect: 4, proto: 5, debug: 6 } as const;

export function createLogger(level: number, name: string, write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const logger: Logger = {
    level,
    log(lvl, message) {
      if (lvl > logger.level) return;
      const t = new Date().toISOString().slice(11, 23);
      write(`${t} ${name}[${lvl}] ${message}`);
    },
  };
  return logger;
}
