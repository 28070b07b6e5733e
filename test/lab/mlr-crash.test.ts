// SPDX-License-Identifier: GPL-2.0-only
// kill -9 of the MLR in the middle of a burst of roams (issue 9, "durable by default"). Three clients
// (udhcpc, a 10 Hz ping each, a TCP stream on the first) leave cell 1 for cell 2: two at once, the
// third when CN2 is committed the first. The MLR is killed with SIGKILL once CN2 has been committed
// the second and the MLR has begun the third's transaction, which the kill cuts short. Then:
// - nothing acknowledged is lost: the state files (what the restarted MLR loads) place every client
//   where the CNs' kernels say it was committed, or — for a roam the MLR had made durable but not yet
//   committed — where it was going; the restarted MLR says the same in `status`;
// - the interrupted roam completes once the MLR is back (CN2 asks again), and every client ends at CN2;
// - the TCP stream survives, on the same connection, and no client needs a new lease.
// Bindings (MLR status), kernel state (gateways, tunnels on both CNs) and TCP sessions are counted
// before and after.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { formatIPv4 } from '../../src/core/ip.js';
import { Registry } from '../../src/core/registry.js';
import { RegistryStore } from '../../src/mlr/persistence.js';
import { FileStateFile } from '../../src/platform/state-file.js';
import { startUdhcpc, type DhcpClient } from './dhcp-clients.js';
import { LAB } from './lab.js';
import { startStream, type StreamRun } from './stream.js';
import { TmipLab, report, type CnName } from './tmip-lab.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'lab tests need root (network namespaces)';
const MSS = ['ms1', 'ms2', 'ms3'] as const;

describe('the MLR killed with SIGKILL in the middle of a burst of roams', { skip, timeout: 180_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun | undefined;
  const clients: DhcpClient[] = [];
  const macs: Record<string, string> = {};
  const ips: Record<string, string> = {};

  before(async () => {
    t = await TmipLab.start();
  });
  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  const status = () => t.mlrStatus();

  /** What the kernels hold: gateways and tunnels per CN, established TCP sessions of ms1. */
  async function kernel() {
    const ss = await t.lab.exec('ms1', 'ss', ['-Htn', 'state', 'established']);
    return {
      gateways: { cn1: (await t.gateways('cn1')).sort(), cn2: (await t.gateways('cn2')).sort() },
      tunnels: { cn1: (await t.tunnels('cn1')).length, cn2: (await t.tunnels('cn2')).length },
      tcp: ss.stdout.split('\n').filter((l) => l.trim() !== '').length,
    };
  }

  const gatewayOf = (ms: string) => ips[ms]!.replace(/\d+$/, (n) => String(Number(n) + 1));

  it('three clients lease in cell 1; one carries a TCP stream', async () => {
    for (const ms of MSS) {
      macs[ms] = (await t.lab.addMs(ms, 1)).mac;
      const c = startUdhcpc(t.lab, ms);
      clients.push(c);
      ips[ms] = (await c.waitForLease(20_000)).ip;
      t.lab.spawn(ms, 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    }
    stream = await startStream(t.lab, { ms: 'ms1', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(50, 5000);
    const s = await status();
    const k = await kernel();
    report('before: bindings, kernel', { bindings: s.bindings.length, ...k });
    assert.equal(s.bindings.length, 3);
    assert.ok(s.bindings.every((b) => b.current === 'cn1' && b.state === 'bound'));
    assert.deepEqual(k.gateways, { cn1: MSS.map(gatewayOf).sort(), cn2: [] });
    assert.deepEqual(k.tunnels, { cn1: 0, cn2: 0 });
    assert.equal(k.tcp, 1, 'one TCP session');
  });

  it('kill -9 right after the second commit of the burst: no acknowledged roam is lost', async () => {
    const leases = clients.map((c) => c.leases().length);
    const cn2 = t.cn('cn2');
    const mlr = t.mlr;
    let arrivals = 0;
    let acknowledged2 = 0;
    let ms3Started = false;
    let killedAt = 0;
    let third: Promise<number> | undefined;
    // ms1 and ms2 leave first; ms3 leaves when CN2 is committed the first of them. The MLR dies the
    // moment both hold: it has acknowledged the second (it logs "committed <mac> at cn2" once the move
    // is on disk; a roam's commits go out beside the fdatasync, so CN2's arrival alone is not yet an
    // acknowledgement), and it has begun ms3's transaction (it logs "tx N: <mac> ... -> cn2" at the
    // start), so ms3's roam is cut somewhere inside.
    const acknowledgedLine = new RegExp(`committed (${macs['ms1']!}|${macs['ms2']!}) at cn2`);
    const killed = new Promise<void>((resolve) => {
      const maybeKill = () => {
        if (acknowledged2 < 2 || !ms3Started || killedAt) return;
        stopCn();
        stopMlr();
        mlr.signal('SIGKILL');
        killedAt = performance.now();
        resolve();
      };
      const stopCn = cn2.onLine((line) => {
        if (!/has arrived in this cell/.test(line.text)) return;
        arrivals++;
        if (arrivals === 1) third = t.lab.moveMs('ms3', 2);
        maybeKill();
      });
      const stopMlr = mlr.onLine((line) => {
        if (line.text.includes(`${macs['ms3']!} `) && /tx \d+: .* -> cn2/.test(line.text)) ms3Started = true;
        if (acknowledgedLine.test(line.text)) acknowledged2++;
        maybeKill();
      });
    });
    const marks = { cn1: t.cn('cn1').mark(), cn2: cn2.mark() };
    await Promise.all([t.lab.moveMs('ms1', 2), t.lab.moveMs('ms2', 2)]);
    await Promise.race([
      killed,
      new Promise((_, reject) =>
        setTimeout(
          () =>
            reject(new Error(`within 15 s: ${arrivals} arrival(s) at CN2, ${acknowledged2} acknowledged, ms3's move begun: ${ms3Started}`)),
          15_000,
        ).unref(),
      ),
    ]);
    await third;
    const exit = await mlr.exited;
    assert.equal(exit.signal, 'SIGKILL');
    for (const cn of ['cn1', 'cn2'] as const) await t.cn(cn).waitForLine(/lost the MLR/, 10_000, { since: marks[cn], stream: 'both' });

    // What the CNs were committed: who holds each client's gateway now (the MLR is dead: nothing moves).
    const k = await kernel();
    const holder = (ms: string): CnName[] => (['cn1', 'cn2'] as const).filter((cn) => k.gateways[cn].includes(gatewayOf(ms)));
    // What the restarted MLR will hold: the state files, loaded as it loads them.
    const registry = new Registry(['vxlan']);
    const loaded = new RegistryStore(new FileStateFile(path.join(t.dir, 'mlr.state')), registry).load();
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.error);
    const onDisk = Object.fromEntries(MSS.map((ms) => [ms, registry.binding(macs[ms]!)]));
    const ms3Phase = mlr.lines
      .filter((l) => l.text.includes(macs['ms3']!) && /tx \d+: /.test(l.text))
      .map((l) => l.text.replace(/^.*?tx/, 'tx'));
    report('at the kill', {
      ms3AtTheMlr: ms3Phase,
      committed: Object.fromEntries(MSS.map((ms) => [ms, holder(ms)])),
      onDisk: Object.fromEntries(MSS.map((ms) => [ms, onDisk[ms]?.current ?? 'none'])),
      replayed: loaded.ok ? loaded.value.replayed : 0,
      notes: loaded.ok ? loaded.value.notes : [],
    });
    let acknowledged = 0;
    for (const ms of MSS) {
      const b = onDisk[ms];
      assert.ok(b, `${ms}: its binding is on disk`);
      assert.equal(formatIPv4(b.cell + 1), ips[ms]);
      assert.equal(b.state, 'bound');
      const h = holder(ms);
      assert.ok(h.length > 0, `${ms}: a CN plays its gateway`);
      // Acknowledged (the MLR logged "committed", after the disk write; CN1 may not have had its own
      // commit yet): CN2 plays the gateway and the disk must say CN2. Not acknowledged: the disk says
      // CN1, or CN2 when the MLR made the move durable but died before its reply; CN2 may hold the
      // gateway of a roam the disk does not have (its commits go out beside the fdatasync): that
      // client's next frame at CN2 moves it again.
      if (mlr.lines.some((l) => l.text.includes(`committed ${macs[ms]!} at cn2`))) {
        assert.ok(h.includes('cn2'), `${ms}: its acknowledged roam was committed at CN2`);
        acknowledged++;
        assert.equal(b.current, 'cn2', `${ms}: its acknowledged roam to CN2 is on disk`);
      } else assert.ok(b.current === 'cn1' || b.current === 'cn2', `${ms}: ${b.current}`);
    }
    assert.ok(acknowledged >= 2, `the kill came after two commits (${acknowledged} acknowledged)`);

    // The restarted MLR holds what was on disk, and says so in its status.
    const restart = await t.startMlr();
    await restart.waitForLine(/restored 3 binding\(s\) and 2 CN\(s\) from .* and \d+ journal record\(s\)/, 1000, { stream: 'both' });
    const s = await status();
    assert.equal(s.bindings.length, 3);
    for (const ms of MSS) {
      const now = s.bindings.find((b) => b.mac === macs[ms]);
      assert.ok(now, `${ms} in the restarted MLR's status`);
      if (onDisk[ms]?.current === 'cn2') assert.equal(now.current, 'cn2', `${ms}: the restarted MLR holds its move`);
    }

    // The interrupted roam is asked again and completes: every client ends served by CN2.
    for (const cn of ['cn1', 'cn2'] as const) await t.cn(cn).waitForLine(/Bind accepted/, 15_000, { since: marks[cn], stream: 'both' });
    await t.until(
      'every client to be served by CN2',
      async () => {
        const st = await status();
        return st.bindings.length === 3 && st.bindings.every((b) => b.current === 'cn2');
      },
      20_000,
    );
    await t.until('CN2 to play every gateway and CN1 none', async () => {
      const g = (await kernel()).gateways;
      return g.cn1.length === 0 && g.cn2.length === 3;
    });
    await stream!.waitResumed(killedAt, 15_000);
    const after = await kernel();
    const final = await status();
    report('after: bindings, kernel', { bindings: final.bindings.length, ...after });
    assert.deepEqual(after.gateways, { cn1: [], cn2: MSS.map(gatewayOf).sort() });
    assert.deepEqual(after.tunnels, { cn1: 1, cn2: 1 }, 'one tunnel between the parent and CN2');
    assert.equal(after.tcp, 1, 'still one TCP session');
    for (const ms of MSS) assert.ok(await t.ping('srv', ips[ms]!), `server -> ${ms}`);
    assert.deepEqual(stream!.failures(), [], 'no reset, no sequence error');
    const summary = await stream!.summary();
    report('stream', { records: summary.records, maxGapMs: summary.maxGapMs, connections: summary.connections });
    assert.equal(summary.connections, 1, 'the same TCP connection throughout');
    assert.equal(summary.resets, 0);
    assert.deepEqual(
      clients.map((c) => c.leases().length),
      leases,
      'no client needed a new lease',
    );
  });
});
