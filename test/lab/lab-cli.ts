// SPDX-License-Identifier: GPL-2.0-only
// For humans poking around the lab:
//   node build/test/lab/lab-cli.js up [--ms NAME[:CELL]]...   build a lab that stays up; prints its namespaces
//   node build/test/lab/lab-cli.js list                       labs on this machine and whether their owner lives
//   node build/test/lab/lab-cli.js down [RUNID]               tear down one lab, or every lab whose owner is gone
//                                                             (including ones kept by `up`)
import { Lab, LAB, destroyLabById, destroyStaleLabs, listLabs, type Cell } from './lab.js';

function usage(): never {
  process.stderr.write('usage: lab-cli up [--ms NAME[:CELL]]... | list | down [RUNID]\n');
  process.exit(2);
}

async function up(args: string[]): Promise<void> {
  const ms: Array<{ name: string; cell: Cell }> = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--ms') usage();
    const m = /^([a-z][a-z0-9]{0,11})(?::([12]))?$/.exec(args[++i] ?? '');
    if (!m?.[1]) usage();
    ms.push({ name: m[1], cell: m[2] === '2' ? 2 : 1 });
  }
  const lab = await Lab.create({ name: 'cli' });
  try {
    for (const m of ms) await lab.addMs(m.name, m.cell);
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  lab.keep();
  const out = process.stdout;
  out.write(`lab ${lab.runId} is up\n`);
  for (const role of ['bb', 'air', 'mlr', 'srv', 'cn1', 'cn2'] as const) out.write(`  ${role.padEnd(5)} ${lab.ns(role)}\n`);
  for (const m of ms)
    out.write(
      `  ${m.name.padEnd(5)} ${lab.ns(m.name)}   (eth0 ${lab.ms(m.name).mac}, cell${m.cell}; roam: ip -n ${lab.ns('air')} link set dev p-${m.name} master cell${m.cell === 1 ? 2 : 1})\n`,
    );
  out.write(
    `addresses: srv ${LAB.srvIp}, mlr ${LAB.mlrIp}, cn1 ${LAB.cn1Ip} (wl0 ${LAB.cn1WlIp}/${LAB.wlPrefix}), cn2 ${LAB.cn2Ip} (wl0 ${LAB.cn2WlIp}/${LAB.wlPrefix})\n`,
  );
  out.write(`a shell inside: ip netns exec ${lab.ns('srv')} bash\n`);
  out.write(`teardown:       node ${process.argv[1]} down ${lab.runId}\n`);
}

async function main(): Promise<void> {
  const [cmd, ...args] = process.argv.slice(2);
  switch (cmd) {
    case 'up':
      return up(args);
    case 'list': {
      const labs = await listLabs();
      if (!labs.length) process.stdout.write('no labs\n');
      for (const l of labs) {
        const owner = l.pid === null ? 'no record' : `pid ${l.pid} ${l.ownerAlive ? 'alive' : 'gone'}`;
        process.stdout.write(
          `${l.runId}${l.name ? ` (${l.name})` : ''}: ${owner}${l.keep ? ', kept' : ''}; ${l.namespaces.join(' ') || 'no namespaces'}\n`,
        );
      }
      return;
    }
    case 'down': {
      if (args.length > 1) usage();
      const log = (m: string) => process.stderr.write(m + '\n');
      if (args[0]) {
        const gone = await destroyLabById(args[0], log);
        process.stdout.write(`removed ${gone.length} namespace(s) of ${args[0]}\n`);
      } else {
        const ids = await destroyStaleLabs({ includeKept: true, log });
        process.stdout.write(ids.length ? `removed labs: ${ids.join(' ')}\n` : 'no stale labs\n');
      }
      return;
    }
    default:
      usage();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`lab-cli: ${(err as Error).message}\n`);
  process.exit(1);
});
