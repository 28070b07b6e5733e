// SPDX-License-Identifier: GPL-2.0-only
// Boot order on a router: a CN started before its backbone interface has an IPv4 address (DHCP on
// the WAN not done yet), or before its mobile interface exists (Wi-Fi comes up after the services),
// does not exit; it says once that it waits, and serves clients as soon as the address or the device
// appears. Runs in the namespace lab (root); everything is in namespaces the lab creates and
// removes again, also on failure.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startUdhcpc } from './dhcp-clients.js';
import { LAB } from './lab.js';
import { DIST, TmipLab } from './tmip-lab.js';

const skip = process.getuid?.() === 0 ? false : 'lab tests need root (network namespaces)';

describe('a CN started before its interfaces are ready', { skip, timeout: 120_000 }, () => {
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
  it('waits for a mobile interface that does not exist yet, and serves once it is created', async () => {
    const lab = t!;
    const cell = LAB.cells[2];
    await lab.cn('cn2').stop();
    // Deleting one end of the veth deletes both (the bridge port w-cn2 in the air namespace too).
    await lab.lab.ip('cn2', ['link', 'del', 'dev', LAB.mobileIf]);

    const cn = lab.lab.spawn('cn2', process.execPath, [path.join(DIST, 'tmip-cn.cjs'), '-f', path.join(lab.dir, 'cn2.conf'), '-F'], {
      logFile: path.join(lab.dir, 'cn2-mobile.log'),
    });
    lab.cns.cn2 = cn;
    await cn.waitForLine(/mobile_if 'wl0': no such device yet; waiting for it/, 10_000, { stream: 'both' });
    await sleep(3000); // several back-off rounds
    assert.equal(cn.exitStatus, null, 'still running');
    assert.equal(cn.lines.filter((l) => /no such device yet/.test(l.text)).length, 1, 'said once');

    // Created as the lab builds it (Wi-Fi coming up late at boot).
    await lab.lab.ip('air', ['link', 'add', 'w-cn2', 'type', 'veth', 'peer', 'name', LAB.mobileIf, 'netns', lab.lab.ns('cn2')]);
    await lab.lab.ip('air', ['link', 'set', 'dev', 'w-cn2', 'master', LAB.cellBridges[2], 'up']);
    await lab.lab.ip('cn2', ['addr', 'add', `${cell.wlIp}/${LAB.wlPrefix}`, 'dev', LAB.mobileIf]);
    await lab.lab.ip('cn2', ['link', 'set', 'dev', LAB.mobileIf, 'up']);
    await cn.waitForLine(/mobile_if 'wl0' exists now/, 15_000, { stream: 'both' });
    await cn.waitForLine(/is now up and running/, 15_000, { stream: 'both' });

    await lab.lab.addMs('ms2', 2);
    const lease = await startUdhcpc(lab.lab, 'ms2').waitForLease(20_000);
    assert.match(lease.ip, /^10\.2\./);
    assert.ok(await lab.ping('ms2', LAB.srvIp, 3), 'the client reaches the server through the CN');
  });
});
