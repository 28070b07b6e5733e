// SPDX-License-Identifier: GPL-2.0-only
// The live demo (`make demo`): builds the namespace lab, starts the MLR and two CNs, gives a client
// an address in cell 1 by DHCP (busybox udhcpc), streams TCP from the server to it, roams it to
// cell 2 and back, and narrates what the network did. Everything is torn down at the end.
import { LAB } from './lab.js';
import { startUdhcpc } from './dhcp-clients.js';
import { bulkTransfer, startStream } from './stream.js';
import { TmipLab } from './tmip-lab.js';

const say = (m: string) => console.log(`\n== ${m}`);
const show = (m: string) => console.log(`   ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (it builds network namespaces)');
  say('Building the lab: backbone (MLR 10.200.0.2, server 10.200.0.10), CN1 (cell 1, pool 10.1.0.0/24), CN2 (cell 2, pool 10.2.0.0/24)');
  const t = await TmipLab.start({ debug: 3 });
  const follow = (name: 'mlr' | 'cn1' | 'cn2') => {
    const p = name === 'mlr' ? t.mlr : t.cn(name);
    p.onLine((l) => {
      const m = /tmip-\w+\[\d\] (.*)$/.exec(l.text);
      if (m && !/^dataplane: MSS/.test(m[1]!)) show(`${name.padEnd(3)} | ${m[1]}`);
    });
  };
  try {
    show(`MLR, CN1 and CN2 are up (logs in ${t.dir})`);
    follow('mlr');
    follow('cn1');
    follow('cn2');

    say('A client joins cell 1 and asks for an address (busybox udhcpc)');
    const ms = await t.lab.addMs('phone', 1);
    const client = startUdhcpc(t.lab, 'phone');
    const lease = await client.waitForLease(20_000);
    await sleep(100);
    show(`client ${ms.mac} got ${lease.ip}/${lease.prefix}, gateway ${lease.router}`);
    t.lab.spawn('phone', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);

    say('The server opens a TCP connection to the client and sends a record every 10 ms');
    const stream = await startStream(t.lab, { ms: 'phone', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(100, 10_000);
    show(`${stream.records()} records received`);

    say('The client roams to cell 2 (another AP, another routed subnet)');
    let at = await t.lab.moveMs('phone', 2);
    await stream.waitResumed(at, 10_000);
    await sleep(800);
    show(
      `stream still running on the same connection: ${stream.records()} records, largest gap around the roam ${stream.gapAround(at, 2000).toFixed(0)} ms`,
    );
    show(
      `client address: ${await t.lab.addressOf('phone')}; tunnels CN1 ${JSON.stringify(await t.tunnels('cn1'))}, CN2 ${JSON.stringify(await t.tunnels('cn2'))}`,
    );
    show(`ping server -> client: ${(await t.ping('srv', lease.ip)) ? 'ok' : 'FAILED'}`);

    say('Away from home, the client downloads 8 MB through the tunnel');
    const bulk = await bulkTransfer(t.lab, 'srv', 'phone', 8_000_000);
    show(`${bulk.bytes} bytes in ${bulk.ms} ms, checksum ${bulk.ok ? 'verified' : 'WRONG'}`);

    say('The client renews its lease at CN2: same address, ACK');
    client.renew();
    const renewed = await client.waitForLease(10_000);
    show(`renewed ${renewed.ip} from server ${renewed.serverId}`);

    say('The client roams home to cell 1');
    at = await t.lab.moveMs('phone', 1);
    await stream.waitResumed(at, 10_000);
    await sleep(800);
    show(
      `largest gap around the roam home ${stream.gapAround(at, 2000).toFixed(0)} ms; tunnels now CN1 ${JSON.stringify(await t.tunnels('cn1'))}, CN2 ${JSON.stringify(await t.tunnels('cn2'))}`,
    );

    const summary = await stream.stop();
    say('Result');
    show(
      `one TCP connection, ${summary?.records} records, ${summary?.resets} resets, ${summary?.seqErrors} sequence errors, largest gap ${summary?.maxGapMs.toFixed(0)} ms`,
    );
    const ok = summary !== null && summary.resets === 0 && summary.seqErrors === 0 && summary.connections === 1 && bulk.ok;
    show(ok ? 'the session survived both roams' : 'SOMETHING WENT WRONG');
    process.exitCode = ok ? 0 : 1;
  } finally {
    await t.destroy();
    say('Lab torn down');
  }
}

main().catch((e: unknown) => {
  console.error(`demo: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
