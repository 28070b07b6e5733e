// SPDX-License-Identifier: GPL-2.0-only
// The scratch network namespaces of one test file: every name added here is deleted at process exit
// and on SIGINT/SIGTERM/SIGHUP, whatever state the tests were left in. (The full lab in lab.ts has its
// own, richer teardown; this is for tests that build a few namespaces by hand.)
import { execFileSync } from 'node:child_process';

export const scratchNamespaces = new Set<string>();

/** Delete every namespace still listed (synchronously: it runs from the exit handler too). */
export function deleteScratchNamespacesSync(): void {
  for (const ns of scratchNamespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
    } catch {
      // already gone
    }
    scratchNamespaces.delete(ns);
  }
}

process.on('exit', deleteScratchNamespacesSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    deleteScratchNamespacesSync();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}
