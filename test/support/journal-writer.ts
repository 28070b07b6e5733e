// SPDX-License-Identifier: GPL-2.0-only
// A child process for mlr-journal.test.ts: keeps an MLR registry in real state files (FileStateFile in
// DIR) and changes it as fast as it can, five changes per turn, printing "acked <n>" once change n is
// durable (RegistryStore.durable()), until the test kills it with SIGKILL.
//   node build/test/support/journal-writer.js DIR
// Change n puts the binding of MAC 02:00:00:00:<n as 16 bits> at cell 10.<n / 64>.<(n % 64) * 4>,
// bound at cn1 with expiry n; every seventh change instead removes the binding of change n - 3.
import path from 'node:path';
import { Registry } from '../../src/core/registry.js';
import { RegistryStore } from '../../src/mlr/persistence.js';
import { FileStateFile } from '../../src/platform/state-file.js';

const writerMac = (n: number): string =>
  `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
const writerCell = (n: number): number => ((10 << 24) | (Math.floor(n / 64) << 8) | ((n % 64) * 4)) >>> 0;
const writerRemoves = (n: number): boolean => n % 7 === 6;

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: journal-writer DIR');
  const registry = new Registry(['vxlan']);
  const store = new RegistryStore(new FileStateFile(path.join(dir, 'mlr.state')), registry, {
    compaction: { minRecords: 200, factor: 2, minBytes: 4096 },
  });
  const loaded = store.load();
  if (!loaded.ok) throw new Error(loaded.error);
  await store.open();
  const pool = { network: 10 << 24, prefix: 8, first: 10 << 24, last: ((10 << 24) | 0xffffff) >>> 0, exclude: [] };
  registry.registerCn({ name: 'cn1', addr: 0xc0a80001, tunnels: ['vxlan'], pools: [pool] });
  await store.durable();
  for (let n = 0; n < 60_000; n += 5) {
    for (let k = n; k < n + 5; k++) {
      if (writerRemoves(k)) registry.remove(writerMac(k - 3));
      else registry.put({ mac: writerMac(k), cell: writerCell(k), parent: 'cn1', current: 'cn1', state: 'bound', expires: k });
    }
    await store.durable();
    process.stdout.write(`acked ${n + 4}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
