// SPDX-License-Identifier: GPL-2.0-only
// bench/roam: N roams back and forth between cell 1 and cell 2 in the namespace lab while the
// server streams a record every --interval-ms (default 10) to the client. Prints, per roam, the
// stream outage (largest inter-arrival gap around the roam: it overstates the outage by up to one
// interval, so a shorter interval measures it more closely) and the CN's own detection-to-commit time, then median and p99,
// and the ratio to the reference measured in the same run: the largest inter-arrival gap over an
// equally long stretch of the same stream with no roam (the lab's own jitter).
// With the client's own traffic as the signal (the default), the outage starts with the client's
// silence: nothing reaches the new CN until the client sends its next frame (a ping, an ACK). tcpdump
// on the client's interface timestamps that frame, so each roam also prints `silence_ms` (move -> the
// client's first frame) and the median of outage minus silence (what the CNs, the MLR and TCP's
// recovery add). Each move waits the dwell plus a random 0-99 ms, so that the moves fall at random
// phases of the 100 ms ping period instead of the same phase every time.
// With --assoc each CN has a ubusd with a stand-in hostapd that announces the association as the
// link moves (as a Wi-Fi AP would), and the client sends no background traffic: detection is the
// association event alone.
// With --transport mqtt the CNs reach the MLR through a mosquitto in the MLR's namespace (MQTT 5)
// instead of MLRP over TCP.
// With --receive-only the client sends nothing at all: the stream is UDP (test/lab/udp-stream.ts), no
// ping, no hostapd. Its old CN notices the loss (its ARP probes of the client fail while the stream
// flows) and the MLR pages the other CNs; the outage is that whole chain. The detect->commit column is
// then the time from the page's answer to the commit. Add --kernel-defaults to put Linux's own ARP
// probe timers back on the CNs' mobile interfaces (what the kernel does untuned: the reference for
// the tuning; each roam then takes up to a minute).
// Usage: node build/bench/roam.js [--roams N] [--dwell-ms MS] [--interval-ms MS] [--assoc | --receive-only [--kernel-defaults]]
//        [--transport tcp|mqtt]
//        (root; `make bench` builds first)
import { LAB } from '../test/lab/lab.js';
import { startUdhcpc } from '../test/lab/dhcp-clients.js';
import { startStream } from '../test/lab/stream.js';
import { UdpStream } from '../test/lab/udp-stream.js';
import { HostapdStandIns } from '../test/lab/hostapd-standins.js';
import { TmipLab } from '../test/lab/tmip-lab.js';
import { intArg, percentile } from './synthetic.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/roam needs root (network namespaces)');
  const roams = intArg('roams', 20, 1, 500);
  const dwell = intArg('dwell-ms', 1500, 1, 60_000);
  const intervalMs = intArg('interval-ms', 10, 1, 100);
  /** Gaps shorter than this are the stream's own pace, not an outage. */
  const GAP_THRESHOLD = Math.max(3, Math.round(intervalMs * 1.5));
  const assoc = process.argv.includes('--assoc');
  const receiveOnly = process.argv.includes('--receive-only');
  if (assoc && receiveOnly) throw new Error('--assoc and --receive-only exclude each other');
  const kernelDefaults = process.argv.includes('--kernel-defaults');
  if (kernelDefaults && !receiveOnly) throw new Error('--kernel-defaults goes with --receive-only');
  const waitMs = kernelDefaults ? 70_000 : 15_000;
  const ti = process.argv.indexOf('--transport');
  const transport = ti >= 0 ? process.argv[ti + 1] : 'tcp';
  if (transport !== 'tcp' && transport !== 'mqtt') throw new Error('--transport wants tcp or mqtt');
  const standIns = assoc ? await HostapdStandIns.start() : undefined;
  const hostapd = standIns?.hostapd;
  const t = await TmipLab.start({
    tunnelLinger: 60, // the CN's default: a tunnel is kept for the station's next roam
    debug: 3,
    transport,
    ...(standIns ? { cnExtra: standIns.cnExtra() } : {}),
  });
  try {
    if (kernelDefaults) {
      const neigh = `net.ipv4.neigh.${LAB.mobileIf}`;
      for (const cn of ['cn1', 'cn2'] as const) {
        await t.lab.sysctl(cn, [
          `${neigh}.base_reachable_time_ms=30000`,
          `${neigh}.delay_first_probe_time=5`,
          `${neigh}.retrans_time_ms=1000`,
          `${neigh}.ucast_solicit=3`,
        ]);
      }
      console.log("ARP probing: Linux's defaults (30 s reachable, 5 s delay, 3 probes 1 s apart), not tmip's tuning");
    }
    const ms = await t.lab.addMs('ms1', 1);
    if (hostapd) await hostapd.cn1.assoc(ms.mac);
    const client = startUdhcpc(t.lab, 'ms1');
    const lease = await client.waitForLease(20_000);
    const traffic = !assoc && !receiveOnly;
    if (traffic) t.lab.spawn('ms1', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    // Epoch milliseconds (kernel timestamps) of every frame the client sends, for `silence_ms`.
    const sent: number[] = [];
    if (traffic) {
      const dump = t.lab.spawn('ms1', 'tcpdump', ['-l', '-n', '-tt', '-Q', 'out', '-i', LAB.msIf]);
      dump.onLine((l) => {
        const m = /^(\d+\.\d+) /.exec(l.text);
        if (m) sent.push(Number(m[1]) * 1000);
      });
    }
    /** Milliseconds from the move (this process's performance.now()) to the client's first frame after it. */
    const silenceAfter = (at: number): number => {
      const epoch = performance.timeOrigin + at;
      const first = sent.find((ts) => ts >= epoch);
      return first === undefined ? NaN : first - epoch;
    };
    console.log(`transport: ${transport === 'mqtt' ? 'MQTT 5 through mosquitto in the MLR namespace' : 'MLRP over TCP'}`);
    if (!receiveOnly) console.log(`stream: a TCP record every ${intervalMs} ms (gaps under ${GAP_THRESHOLD} ms are its pace)`);
    console.log(
      `detection: ${
        assoc
          ? 'hostapd association events (no background traffic from the client)'
          : receiveOnly
            ? 'paging (the client only receives a UDP stream and sends nothing)'
            : "the client's own traffic (10 Hz ping to the server)"
      }`,
    );
    let stream: Awaited<ReturnType<typeof startStream>> | UdpStream;
    if (receiveOnly) {
      stream = await UdpStream.start(t.lab, 'ms1', lease.ip, { gapMs: GAP_THRESHOLD });
      await sleep(1000);
    } else {
      const tcp = await startStream(t.lab, { ms: 'ms1', intervalMs, gapMs: GAP_THRESHOLD });
      await tcp.waitConnected();
      await tcp.waitRecords(100, 10_000);
      stream = tcp;
    }

    // Reference: the same stream, same length of time, no roam.
    const refStart = performance.now();
    await sleep(dwell);
    const reference = Math.max(GAP_THRESHOLD, stream.gapAround(refStart + dwell / 2, dwell / 2));

    const outages: number[] = [];
    const commits: number[] = [];
    const silences: number[] = [];
    const afterSilence: number[] = [];
    console.log(`roam  to     outage_ms  detect->commit_ms  via${traffic ? '  silence_ms' : ''}`);
    for (let i = 1; i <= roams; i++) {
      const to = i % 2 === 1 ? 2 : 1;
      const cn = to === 1 ? 'cn1' : 'cn2';
      const mark = t.cn(cn).mark();
      if (hostapd) await hostapd[to === 1 ? 'cn2' : 'cn1'].disassoc(ms.mac);
      const at = await t.lab.moveMs('ms1', to);
      if (hostapd) await hostapd[cn].assoc(ms.mac);
      const line = await t.waitArrival(cn, ms.mac, mark, waitMs);
      await stream.waitResumed(at, waitMs);
      await sleep(dwell + (traffic ? Math.floor(Math.random() * 100) : 0));
      const outage = Math.max(stream.gapAround(at, dwell / 2), 0);
      const m = /(\d+(?:\.\d+)?) ms after detection via (\w+)/.exec(line);
      const commit = m ? Number(m[1]) : NaN;
      outages.push(Math.max(outage, GAP_THRESHOLD)); // as the summary says: a gap under the threshold is the pace
      if (m) commits.push(commit);
      const silence = traffic ? silenceAfter(at) : NaN;
      if (Number.isFinite(silence)) {
        silences.push(silence);
        afterSilence.push(Math.max(outage, GAP_THRESHOLD) - silence);
      }
      console.log(
        `${String(i).padStart(4)}  cell${to}  ${(outage < GAP_THRESHOLD ? `<${GAP_THRESHOLD}` : outage.toFixed(1)).padStart(9)}  ${String(commit).padStart(17)}  ${(m?.[2] ?? '?').padEnd(3)}${traffic ? `  ${silence.toFixed(1).padStart(10)}` : ''}`,
      );
    }
    const failures = stream instanceof UdpStream ? [] : stream.failures();
    const summary = stream instanceof UdpStream ? (await stream.stop(), undefined) : await stream.stop();
    const med = percentile(outages, 50);
    const p99 = percentile(outages, 99);
    console.log('');
    console.log(
      stream instanceof UdpStream
        ? `roams: ${roams}, stream: UDP to a receive-only client (no resets or sequence checks to report)`
        : `roams: ${roams}, stream records: ${summary?.records ?? '?'}, resets: ${summary?.resets ?? '?'}, sequence errors: ${summary?.seqErrors ?? '?'}, failures: ${failures.length}`,
    );
    console.log(
      `outage per roam (ms): median ${med.toFixed(1)}, p99 ${p99.toFixed(1)}, max ${Math.max(...outages).toFixed(1)} (gaps under ${GAP_THRESHOLD} ms count as ${GAP_THRESHOLD})`,
    );
    console.log(
      `detection -> commit at the new CN (ms): median ${percentile(commits, 50).toFixed(1)}, p99 ${percentile(commits, 99).toFixed(1)}`,
    );
    if (traffic) {
      console.log(
        `client silence, move -> its first frame (ms): median ${percentile(silences, 50).toFixed(1)}, p99 ${percentile(silences, 99).toFixed(1)} (${silences.length} of ${roams} roams timed)`,
      );
      console.log(
        `outage minus that silence (ms; the CNs, the MLR and TCP's recovery): median ${percentile(afterSilence, 50).toFixed(1)}, p99 ${percentile(afterSilence, 99).toFixed(1)}`,
      );
    }
    console.log(`reference, largest gap in ${dwell} ms of the same stream without a roam: ${reference.toFixed(1)} ms`);
    console.log(
      `ratio median outage / reference: ${(Math.max(med, GAP_THRESHOLD) / reference).toFixed(2)}; p99 outage / reference: ${(Math.max(p99, GAP_THRESHOLD) / reference).toFixed(2)}`,
    );
  } finally {
    await t.destroy();
    await standIns?.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench/roam: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
