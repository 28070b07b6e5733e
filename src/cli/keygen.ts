// SPDX-License-Identifier: GPL-2.0-only
// `tmip-mlr keygen NAME`: a fresh 32-byte key for the CN NAME, printed as the two UCI snippets that
// hold it: the CN's `option secret` line and the MLR's `config key` section.
import { CN_NAME_EXPECTED, CN_NAME_RE } from '../core/config.js';
import { err, ok, type Result } from '../core/result.js';
import { generateKey } from '../proto/auth.js';

export function keygen(name: string, key: string = generateKey()): Result<string> {
  if (!CN_NAME_RE.test(name)) return err(`${JSON.stringify(name)} is not a valid CN name; ${CN_NAME_EXPECTED}`);
  return ok(
    [
      `# On the CN '${name}': add to its 'config cn' section in /etc/config/tmip (its cn_name must be '${name}')`,
      '\t# Key shared with the MLR (tmip-mlr keygen); keep it secret',
      `\toption secret '${key}'`,
      '',
      "# On the MLR: add to /etc/config/tmip beside 'config mlr'",
      'config key',
      '\t# The CN this key belongs to (its cn_name)',
      `\toption cn '${name}'`,
      "\t# The same key as that CN's option secret",
      `\toption secret '${key}'`,
      '',
    ].join('\n'),
  );
}
