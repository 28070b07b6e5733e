// SPDX-License-Identifier: GPL-2.0-only
// bench/dhcp's load generator, one step: run inside the client namespace (bench/dhcp.ts starts it
// with `ip netns exec`), it opens a packet link on the client veth (src/platform/packet-linkio.ts)
// and, at a fixed offered rate for a fixed time, starts one new client per 1/rate s: a DISCOVER
// broadcast with the broadcast flag from the client's own MAC; on its first OFFER a REQUEST in
// SELECTING state (server id, requested IP); the ACK ends it. No retransmissions, unless
// --retransmit-ms: then a client without an OFFER that long after its DISCOVER sends it once more
// (the same xid; latency still counts from the first). When the last
// client has had its timeout it prints one line `RESULT {json}` (bench/dhcp-load.ts's StepResult,
// plus how late the sends were against their schedule) and exits.
// Usage: node build/bench/dhcp-gen.js --if IF --rate R (--seconds S | --count N) --timeout-ms T --tag K --xid-base X [--retransmit-ms R]
import { performance } from 'node:perf_hooks';
import { dhcpReplyProgram } from '../src/proto/bpf.js';
import { openPacketLink, readInterfaceMac } from '../src/platform/packet-linkio.js';
import { DoraTable, dueCount, MAX_STEP_CLIENTS, scheduledAt, decodeReply } from './dhcp-load.js';
import { intArg, percentile, textArg } from './synthetic.js';

function main(): void {
  const ifname = textArg('if', 'eth0');
  const rate = intArg('rate', 100, 1, 100_000);
  const count = process.argv.includes('--count')
    ? intArg('count', 1, 1, MAX_STEP_CLIENTS)
    : Math.round(rate * intArg('seconds', 3, 1, 600));
  if (count > MAX_STEP_CLIENTS)
    throw new Error(`--rate × --seconds is ${count} clients; at most ${MAX_STEP_CLIENTS} (their DISCOVERs are built ahead)`);
  const seconds = count / rate;
  const timeoutMs = intArg('timeout-ms', 2000, 10, 60_000);
  const tag = intArg('tag', 1, 0, 255);
  const xidBase = intArg('xid-base', 0x10000000, 0, 0x7fffffff);
  // 0: no retransmission; else a client without an OFFER this long after its DISCOVER sends it once more.
  const retransmitMs = intArg('retransmit-ms', 0, 0, 60_000);

  // Replies only: UDP from port 67 to port 68 (OFFER, ACK and NAK, broadcast or unicast).
  const mac = readInterfaceMac(ifname);
  const program = mac.ok ? dhcpReplyProgram(mac.value) : mac;
  const link = program.ok ? openPacketLink(ifname, program.value, { rcvbuf: 64 << 20 }) : program;
  if (!link.ok) {
    process.stderr.write(`dhcp-gen: ${link.error}\n`);
    process.exit(2);
  }
  const io = link.value;
  const table = new DoraTable(tag, xidBase);
  let sendErrors = 0;
  let firstSendError = '';
  const send = (frame: Buffer) => {
    const e = io.send(frame);
    if (e !== undefined) {
      sendErrors++;
      firstSendError ||= e;
    }
  };
  io.onFrame((frame) => {
    const msg = decodeReply(frame);
    if (!msg) return;
    const a = table.reply(msg, performance.now());
    if (a.kind === 'request') send(a.frame);
  });

  const discovers = Array.from({ length: count }, (_, n) => table.discoverFrame(n));
  const lags: number[] = [];
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const t0 = performance.now() + 20; // the capture is open before the first DISCOVER
  let lastSentAt = 0;
  let retransmitFrom = 0;
  let retransmits = 0;
  const tick = () => {
    const now = performance.now();
    const due = dueCount(now - t0, rate, count);
    while (table.size < due) {
      const at = performance.now();
      const n = table.sent(at);
      lags.push(at - (t0 + scheduledAt(n, rate)));
      send(discovers[n]!);
      lastSentAt = at;
    }
    if (retransmitMs > 0) {
      const u = table.unanswered(retransmitFrom, now, retransmitMs);
      for (const n of u.due) send(discovers[n]!);
      retransmits += u.due.length;
      retransmitFrom = u.next;
    }
    if (table.size < count || (retransmitMs > 0 && retransmitFrom < count)) setTimeout(tick, 1);
    else setTimeout(finish, Math.max(0, timeoutMs - retransmitMs) + 50);
  };
  const finish = () => {
    io.close();
    const cpu = process.cpuUsage(cpu0);
    const r = table.summary(seconds, timeoutMs);
    const out = {
      ...r,
      rate,
      seconds,
      timeoutMs,
      sendErrors,
      retransmits,
      firstSendError,
      sendLagP50: percentile(lags, 50),
      sendLagP99: percentile(lags, 99),
      sendLagMax: lags.length ? percentile(lags, 100) : 0, // not Math.max(...lags): 200k arguments overflow the stack
      /** The generator's CPU time over its wall time, in % of one core. */
      cpuPercent: (100 * (cpu.user + cpu.system)) / 1000 / (performance.now() - wall0),
      /** How long the sends took against the schedule's length (1.0 = on time). */
      sendSpan: (lastSentAt - t0) / Math.max(1, scheduledAt(count - 1, rate)),
    };
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
    process.exit(0);
  };
  setTimeout(tick, 20);
}

try {
  main();
} catch (e) {
  process.stderr.write(`dhcp-gen: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
