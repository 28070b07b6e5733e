// SPDX-License-Identifier: GPL-2.0-only
// Attacks from inside the cells (issue 8), against the bundled daemons in the lab: an attacker port
// on each cell bridge (a namespace like a mobile station's) injects raw DHCP frames through an
// AF_PACKET socket (python3, inside the attacker's namespace only). The victim, a real udhcpc client
// with a TCP stream, must keep its address, binding and session through a forged DHCPRELEASE (the
// attacker's own source MAC, and the victim's MAC spoofed from the other cell), a DHCPDECLINE flood
// for its MAC (also with its MAC spoofed in its own cell), its MAC and IP spoofed in ARP and IP
// frames from the other cell (refused by the old CN's presence check as a duplicate MAC), and a
// DISCOVER flood from random MACs;
// a new client still gets a lease, the CN's memory stays bounded and its log shows summary lines.
// Without hostapd (the first lab): a flood through one CN cannot take another CN's cells or offers;
// in the flooded cell a new client is served once the flood stops (the bucket refills in 2 s, the
// offers lapse after offer_hold) — telling it from the flood needs association (README). With
// hostapd (the second lab) it is told: a new client that associated gets its lease in the flooded
// cell while the flood goes on.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LAB } from './lab.js';
import { startUdhcpc } from './dhcp-clients.js';
import { HostapdStandIns } from './hostapd-standins.js';
import { startStream, type StreamRun } from './stream.js';
import { TmipLab, type CnName } from './tmip-lab.js';

const skip = process.getuid?.() === 0 ? false : 'lab tests need root (network namespaces)';
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/**
 * What both scripts below share: address helpers, the Internet checksum, and `send_paced`, which
 * sends frame(i) for i in range(count) on `ifname` at most `rate` per second (0 = as fast as it can),
 * for at most 20 s, and prints how many it sent.
 */
const PY_PRELUDE = `
import random, socket, struct, sys, time
mac = lambda s: bytes.fromhex(s.replace(':', ''))
ip = lambda s: socket.inet_aton(s)
def csum(b):
    if len(b) % 2: b += b'\\x00'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def send_paced(ifname, count, rate, frame):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((ifname, 0))
    start = time.monotonic(); deadline = start + 20; sent = 0
    for i in range(count):
        sock.send(frame(i))
        sent += 1
        now = time.monotonic()
        if now > deadline: break
        if rate > 0 and sent / rate > now - start: time.sleep(sent / rate - (now - start))
    print(sent)
`;

/**
 * Sends `count` DHCP client frames on `ifname` at most `rate` per second (0 = as fast as it can):
 * argv ifname kind(discover|decline|release) count src(mac|'chaddr') chaddr(mac|'random') ip server rate.
 */
const INJECT_SCRIPT = `${PY_PRELUDE}
ifname, kind, count, src, chaddr, ip_s, server_s, rate = sys.argv[1:9]
t = {'discover': 1, 'decline': 4, 'release': 7}[kind]
rnd = random.Random(1)
def frame(i):
    ch = bytes([0x02] + [rnd.randrange(256) for _ in range(5)]) if chaddr == 'random' else mac(chaddr)
    sm = ch if src == 'chaddr' else mac(src)
    ci = ip(ip_s) if t == 7 else bytes(4)
    bootp = struct.pack('!BBBBIHH4s4s4s4s16s64s128s', 1, 1, 6, 0, rnd.getrandbits(32), 0, 0, ci, bytes(4), bytes(4), bytes(4), ch + bytes(10), b'', b'')
    opts = b'\\x63\\x82\\x53\\x63' + bytes([53, 1, t])
    if t == 4: opts += bytes([50, 4]) + ip(ip_s)
    if t in (4, 7): opts += bytes([54, 4]) + ip(server_s)
    payload = bootp + opts + b'\\xff'
    payload += bytes(max(0, 300 - len(payload)))
    udp = struct.pack('!HHHH', 68, 67, 8 + len(payload), 0) + payload
    iph = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, ci, ip('255.255.255.255'))
    iph = iph[:10] + struct.pack('!H', csum(iph)) + iph[12:]
    return b'\\xff' * 6 + sm + b'\\x08\\x00' + iph + udp
send_paced(ifname, int(count), float(rate), frame)
`;

/**
 * Sends `count` frames, half ARP requests and half ICMP echo requests, claiming MAC `src` and IPv4
 * `ip`, unicast to `dst` (the victim's gateway MAC), at `rate` per second:
 * argv ifname src ip dst gateway server count rate.
 */
const SPOOF_SCRIPT = `${PY_PRELUDE}
ifname, src_s, ip_s, dst_s, gw_s, server_s, count, rate = sys.argv[1:9]
src, dst = mac(src_s), mac(dst_s)
arp = dst + src + b'\\x08\\x06' + struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, 1, src, ip(ip_s), bytes(6), ip(gw_s))
def frame(i):
    if i % 2 == 0:
        return arp
    icmp = struct.pack('!BBHHH', 8, 0, 0, 0x7a7a, i & 0xffff) + bytes(32)
    icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
    iph = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), i & 0xffff, 0, 64, 1, 0, ip(ip_s), ip(server_s))
    iph = iph[:10] + struct.pack('!H', csum(iph)) + iph[12:]
    return dst + src + b'\\x08\\x00' + iph + icmp
send_paced(ifname, int(count), float(rate), frame)
`;

interface Injection {
  kind: 'discover' | 'decline' | 'release';
  count: number;
  /** Ethernet source: a MAC, or 'chaddr' (the same as the client hardware address). */
  src: string;
  /** Client hardware address: a MAC, or 'random' (a new random unicast MAC per frame). */
  chaddr: string;
  ip?: string;
  server?: string;
  /** Frames per second; 0 = as fast as the socket takes them. */
  rate?: number;
}

/** Inject DHCP client frames from an attacker port; resolves with the number sent. */
async function inject(t: TmipLab, attacker: string, i: Injection): Promise<number> {
  const args = [i.kind, String(i.count), i.src, i.chaddr, i.ip ?? '0.0.0.0', i.server ?? '0.0.0.0', String(i.rate ?? 0)];
  const r = await t.lab.exec(attacker, PYTHON, ['-c', INJECT_SCRIPT, LAB.msIf, ...args], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `injector failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** VmRSS of a daemon in kB (/proc/PID/status). */
function rssKb(t: TmipLab, name: CnName): number {
  const status = fs.readFileSync(`/proc/${t.cn(name).pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${name}`);
  return Number(m[1]);
}

function logLines(t: TmipLab, file: string): string[] {
  return fs.readFileSync(path.join(t.dir, file), 'utf8').split('\n');
}

describe('attacks from inside the cells', { skip, timeout: 120_000 }, () => {
  let t: TmipLab;
  let stream: StreamRun | undefined;
  let victimMac = '';
  let victimIp = '';
  const ATTACKER1 = '02:a7:00:00:00:01';
  const ATTACKER2 = '02:a7:00:00:00:02';

  before(async () => {
    // A small offer budget and a short offer hold, so that the lab sees both at work in seconds.
    t = await TmipLab.start({ mlrExtra: ["\toption max_offers '16'", "\toption offer_hold '4'"] });
    await t.lab.addMs('atk1', 1, { mac: ATTACKER1 });
    await t.lab.addMs('atk2', 2, { mac: ATTACKER2 });
  });
  after(async () => {
    await stream?.stop().catch(() => null);
    await t?.destroy();
  });

  /** The victim still has its address, its gateway at CN1, its binding, and a live TCP session. */
  async function victimIntact(what: string): Promise<void> {
    assert.equal(await t.lab.addressOf('victim'), victimIp, `${what}: the victim keeps its address`);
    assert.ok((await t.gateways('cn1')).includes('10.1.0.6'), `${what}: CN1 keeps the victim's gateway`);
    const mlr = logLines(t, 'mlr.log').filter((l) => l.includes(victimMac) && /released via|dropped|removed|expired/.test(l));
    assert.deepEqual(mlr, [], `${what}: the MLR never dropped the victim's binding`);
    const records = stream!.records();
    await stream!.waitRecords(records + 20, 5000);
    assert.deepEqual(stream!.failures(), [], `${what}: no reset, no sequence error`);
    assert.ok(await t.ping('victim', LAB.srvIp, 1), `${what}: the victim reaches the server`);
  }

  it('the victim gets its lease in cell 1 and a TCP stream runs', async () => {
    const ms = await t.lab.addMs('victim', 1);
    victimMac = ms.mac;
    const lease = await startUdhcpc(t.lab, 'victim').waitForLease(20_000);
    victimIp = lease.ip;
    assert.equal(victimIp, '10.1.0.5');
    // A phone's background traffic (as in roam.test.ts): it also keeps the cell bridge's idea of
    // where the victim's MAC is fresh after a frame spoofed with that MAC.
    t.lab.spawn('victim', 'ping', ['-q', '-i', '0.1', LAB.srvIp]);
    stream = await startStream(t.lab, { ms: 'victim', intervalMs: 10 });
    await stream.waitConnected();
    await stream.waitRecords(50, 5000);
  });

  it("a forged DHCPRELEASE changes nothing: from the attacker's MAC in the cell, or with the victim's MAC from the other cell", async () => {
    const release = { kind: 'release' as const, count: 200, chaddr: victimMac, ip: victimIp, server: '10.1.0.6', rate: 2000 };
    assert.equal(await inject(t, 'atk1', { ...release, src: ATTACKER1 }), 200);
    assert.equal(await inject(t, 'atk2', { ...release, src: 'chaddr' }), 200);
    await t.cn('cn1').waitForLine(/ignoring DHCPRELEASE for \S+: sent from 02:a7:00:00:00:01, not from the client's own MAC/, 5000, {
      stream: 'both',
    });
    await t.cn('cn2').waitForLine(/ignoring DHCPRELEASE for \S+: not served in this cell/, 5000, { stream: 'both' });
    await victimIntact('forged RELEASE');
  });

  it("the victim's MAC and IP spoofed from the other cell: the move is refused as a duplicate MAC", async () => {
    // The victim's gateway MAC (CN1's mobile interface), as the victim itself resolved it.
    const neigh = await t.lab.execOk('victim', 'ip', ['neigh', 'show', '10.1.0.6']);
    const gwMac = /lladdr (\S+)/.exec(neigh)?.[1];
    assert.ok(gwMac, `the victim has resolved its gateway: ${neigh}`);
    const mlrMark = t.mlr.mark();
    const cn2Mark = t.cn('cn2').mark();
    // 3 s of ARP and IP from the victim's MAC and IP in cell 2: past CN2's 1 s cool-down, so the
    // move is asked for (and refused) more than once.
    const args = [LAB.msIf, victimMac, victimIp, gwMac, '10.1.0.6', LAB.srvIp, '300', '100'];
    const spoof = t.lab.exec('atk2', PYTHON, ['-c', SPOOF_SCRIPT, ...args], { timeoutMs: 30_000 });
    const refused = new RegExp(`rolled back \\(duplicate MAC: ${victimMac} still answers at cn1; move to cn2 via (ip|arp) refused\\)`);
    await t.mlr.waitForLine(refused, 5000, { since: mlrMark, stream: 'both' });
    await t.cn('cn2').waitForLine(new RegExp(`${victimMac}: refused \\(duplicate MAC`), 5000, { since: cn2Mark, stream: 'both' });
    const r = await spoof;
    assert.equal(r.code, 0, `spoofer failed: ${r.stderr}`);
    assert.equal(Number(r.stdout.trim()), 300);
    const mlr = logLines(t, 'mlr.log');
    assert.ok(mlr.filter((l) => refused.test(l)).length >= 2, 'refused on every report, not only the first');
    assert.deepEqual(
      mlr.filter((l) => l.includes(`committed ${victimMac} at cn2`)),
      [],
      'the victim never moved',
    );
    assert.ok(!(await t.gateways('cn2')).includes('10.1.0.6'), "CN2 never took the victim's gateway");
    await victimIntact('MAC+IP spoofed from cell 2');
  });

  it("a DHCPDECLINE flood for the victim's MAC never removes its binding, even with its MAC spoofed in its own cell", async () => {
    const decline = { kind: 'decline' as const, chaddr: victimMac, ip: victimIp, server: '10.1.0.6' };
    assert.equal(await inject(t, 'atk1', { ...decline, src: ATTACKER1, count: 5000 }), 5000);
    assert.equal(await inject(t, 'atk2', { ...decline, src: 'chaddr', count: 500, rate: 2000 }), 500);
    // The victim's own MAC in its own cell passes the CN's checks (no hostapd here): the MLR
    // quarantines the cell and keeps the bound binding. Few frames, so the bridge's learning of
    // the victim's MAC on the attacker's port lasts only until the victim's next frame.
    const mark = t.mlr.mark();
    assert.equal(await inject(t, 'atk1', { ...decline, src: 'chaddr', count: 3 }), 3);
    await t.mlr.waitForLine(/declined 10\.1\.0\.5 via cn1 .* cell quarantined for 600 s/, 5000, { since: mark, stream: 'both' });
    await victimIntact('DECLINE flood');
  });

  it('a DISCOVER flood from random MACs is capped; a new client gets a lease; memory and log stay bounded', async () => {
    const rssBefore = rssKb(t, 'cn2');
    const logBefore = logLines(t, 'cn2.log').length;
    const mark = t.cn('cn2').mark();
    // A new client in cell 1 while cell 2 is flooded: the budgets are per CN.
    await t.lab.addMs('newcomer', 1);
    const flood = inject(t, 'atk2', { kind: 'discover', count: 20_000, src: 'chaddr', chaddr: 'random', rate: 10_000 });
    const newcomer = startUdhcpc(t.lab, 'newcomer');
    const lease = await newcomer.waitForLease(20_000);
    assert.match(lease.ip, /^10\.1\.0\./, 'a cell of CN1, untouched by the flood through CN2');
    assert.ok((await flood) >= 19_000, 'the flood was sent');
    await t.cn('cn2').waitForLine(/more frames from new stations dropped \(new_station_rate\) in the last \d+ s/, 15_000, {
      since: mark,
      stream: 'both',
    });
    const lines = logLines(t, 'cn2.log').length - logBefore;
    assert.ok(lines < 200, `CN2 logged ${lines} lines for 20 000 frames`);
    const grown = (rssKb(t, 'cn2') - rssBefore) / 1024;
    process.stdout.write(`# DISCOVER flood of 20 000 frames: CN2 logged ${lines} lines, its RSS grew by ${grown.toFixed(1)} MB\n`);
    assert.ok(grown < 30, `CN2's RSS grew by ${grown.toFixed(1)} MB`);
    // In the flooded cell a new client is served once the flood is over: the bucket refills and
    // the offers the flood took lapse after offer_hold (4 s here).
    await t.lab.addMs('latecomer', 2);
    const late = await startUdhcpc(t.lab, 'latecomer').waitForLease(20_000);
    assert.match(late.ip, /^10\.2\.0\./);
    await victimIntact('DISCOVER flood');
  });

  it('the ignored DECLINEs are logged as a few lines and a summary, not one line per frame', async () => {
    await t.cn('cn1').waitForLine(/\d+ more DHCPDECLINEs ignored in the last \d+ s/, 15_000, { stream: 'both' });
    const ignored = logLines(t, 'cn1.log').filter((l) => /ignoring DHCPDECLINE/.test(l)).length;
    assert.ok(ignored <= 6, `${ignored} lines for 5000 ignored DECLINEs`);
  });
});

describe('a DISCOVER flood in a cell with hostapd', { skip, timeout: 120_000 }, () => {
  let standIns: HostapdStandIns;
  let t: TmipLab;

  before(async () => {
    standIns = await HostapdStandIns.start();
    t = await TmipLab.start({ cnExtra: standIns.cnExtra(), mlrExtra: ["\toption max_offers '16'"] });
    await t.lab.addMs('atk1', 1, { mac: '02:a7:00:00:00:01' });
  });
  after(async () => {
    await t?.destroy();
    await standIns?.stop();
  });

  it('a new client that associated gets its lease in the flooded cell while the flood goes on', async () => {
    const rssBefore = rssKb(t, 'cn1');
    const logBefore = logLines(t, 'cn1.log').length;
    const ms = await t.lab.addMs('newcomer', 1);
    await standIns.hostapd.cn1.assoc(ms.mac);
    let floodEnded = 0;
    const flood = inject(t, 'atk1', { kind: 'discover', count: 120_000, src: 'chaddr', chaddr: 'random', rate: 10_000 }).then((n) => {
      floodEnded = Date.now();
      return n;
    });
    // The flood is under way. It lasts 12 s: under load the CN's capture drops frames, udhcpc's among
    // them, and udhcpc sends again only after 3 s; the lease must come while the flood still runs.
    await new Promise((r) => setTimeout(r, 500));
    const lease = await startUdhcpc(t.lab, 'newcomer').waitForLease(20_000);
    const leasedAt = Date.now();
    assert.match(lease.ip, /^10\.1\.0\./, 'a cell of the flooded CN');
    assert.ok((await flood) >= 110_000, 'the flood was sent');
    assert.ok(leasedAt < floodEnded, `leased ${floodEnded - leasedAt} ms before the flood ended`);
    // The flood's MACs never associated: no offer was made for them, nothing was allocated.
    await t.cn('cn1').waitForLine(/more frames from MACs not associated here ignored in the last \d+ s/, 15_000, { stream: 'both' });
    const offers = logLines(t, 'mlr.log').filter((l) => / -> cn1 \(via dhcp/.test(l) && !l.includes(ms.mac));
    assert.deepEqual(offers, [], 'no binding for a flooding MAC');
    const lines = logLines(t, 'cn1.log').length - logBefore;
    assert.ok(lines < 200, `CN1 logged ${lines} lines for 120 000 frames`);
    const grown = (rssKb(t, 'cn1') - rssBefore) / 1024;
    process.stdout.write(
      `# DISCOVER flood with hostapd, 120 000 frames over 12 s: lease in the flooded cell during it; CN1 logged ${lines} lines, RSS +${grown.toFixed(1)} MB\n`,
    );
    assert.ok(grown < 30, `CN1's RSS grew by ${grown.toFixed(1)} MB`);
  });
});
