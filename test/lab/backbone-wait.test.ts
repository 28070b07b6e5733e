// SPDX-License-Identifier: GPL-2.0-only
// Boot order on a router: a CN started before its backbone interface has an IPv4 address (DHCP on
// the WAN not done yet) does not exit; it says once that it waits, and serves clients as soon as the
// address appears. Runs in the namespace lab (root); everything is in namespaces the lab creates and
// removes again, also on failure.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startUdhcpc } from './dhcp-clients.js';
import { LAB } from './lab.js';
import { DIST, TmipLab } from './tmip-lab.js';

const skip = process.getuid?.() === 0 ? false : 'lab tests need root (network namespaces)';

describe('a CN whose backbone has no address yet', { skip, timeout: 120_000 }, () => {
  let t: TmipLab | undefined;

  before(async () => {
    t = await TmipLab.start();
  });

  after(async () => {
    await t?.destroy();
  });

  it('waits for the address instead of exiting, and serves once it appears', async () => {
    const lab = t!;
    const address = `${LAB.cn2Ip}/${LAB.backbonePrefix}`;
    await lab.cn('cn2').stop();
    await lab.lab.ip('cn2', ['addr', 'del', address, 'dev', LAB.backboneIf]); // its default route goes with it

    const cn = lab.lab.spawn('cn2', process.execPath, [path.join(DIST, 'tmip-cn.cjs'), '-f', path.join(lab.dir, 'cn2.conf'), '-F'], {
      logFile: path.join(lab.dir, 'cn2.log'),
    });
    lab.cns.cn2 = cn;
    await cn.waitForLine(/cn_if 'bb0' has no IPv4 address yet; waiting for one/, 10_000, { stream: 'both' });
    await sleep(3000); // several back-off rounds
    assert.equal(cn.exitStatus, null, 'still running');
    assert.equal(cn.lines.filter((l) => /waiting for one/.test(l.text)).length, 1, 'said once');

    await lab.lab.ip('cn2', ['addr', 'add', address, 'dev', LAB.backboneIf]);
    await lab.lab.ip('cn2', ['route', 'add', 'default', 'via', LAB.srvIp, 'dev', LAB.backboneIf]);
    await cn.waitForLine(/cn_if 'bb0' has its IPv4 address now: 10\.200\.0\.12\/24/, 15_000, { stream: 'both' });
    await cn.waitForLine(/is now up and running/, 15_000, { stream: 'both' });

    // it serves: a client in its cell gets a lease from its pool and reaches the server
    await lab.lab.addMs('ms1', 2);
    const lease = await startUdhcpc(lab.lab, 'ms1').waitForLease(20_000);
    assert.match(lease.ip, /^10\.2\./);
    assert.ok(await lab.ping('ms1', LAB.srvIp, 3), 'the client reaches the server through the CN');
  });
});
