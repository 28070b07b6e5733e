// SPDX-License-Identifier: GPL-2.0-only
// Command-line flags shared by tmip-cn and tmip-mlr, as the original daemons took them:
// -f FILE (config), -F (foreground; always true here, procd supervises), -D N (debug level),
// -s SECTION (which config section to use), -E (connectivity evaluation, tmip-cn), -h (help).
export interface CliArgs {
  file: string;
  foreground: boolean;
  debug?: number;
  section?: string;
  evaluate: boolean;
  help: boolean;
}

export function parseArgs(argv: string[], defaultFile: string): { ok: true; value: CliArgs } | { ok: false; error: string } {
  const out: CliArgs = { file: defaultFile, foreground: false, evaluate: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (a === '-f') out.file = next();
      else if (a === '-F') out.foreground = true;
      else if (a === '-s') out.section = next();
      else if (a === '-E') out.evaluate = true;
      else if (/^-[EF]+f$/.test(a)) {
        // The original's combined form, e.g. `tmipd -Ef tmipd.rc`.
        out.evaluate ||= a.includes('E');
        out.foreground ||= a.includes('F');
        out.file = next();
      } else if (a === '-h' || a === '--help') out.help = true;
      else if (a === '-D') {
        const v = next();
        if (!/^[0-7]$/.test(v)) return { ok: false, error: `-D takes a debug level 0..7, not '${v}'` };
        out.debug = Number(v);
      } else return { ok: false, error: `unknown argument '${a}'` };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }
  return { ok: true, value: out };
}

export function fail(program: string, message: string): never {
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(2);
}
