// SPDX-License-Identifier: GPL-2.0-only
// Optional: the client scenarios against a real ubusd. Runs only when the environment variable
// UBUSD names a ubusd binary (e.g. one built from openwrt/ubus; put its libraries on
// LD_LIBRARY_PATH yourself) and the tests run as root (ubusd applies ACLs to every other user).
// Nothing is downloaded or built here. Each scenario gets a fresh ubusd on a socket in os.tmpdir().
import test from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { until } from '../support/helpers.js';
import { Harness, scenarios, tempSocketDir, type UbusServerEnv } from '../support/ubus-scenarios.js';

const UBUSD = process.env['UBUSD'];
const skip = !UBUSD
  ? 'set UBUSD to a ubusd binary to run these'
  : !fs.existsSync(UBUSD)
    ? `UBUSD=${UBUSD} does not exist`
    : process.getuid?.() !== 0
      ? 'ubusd only lets root through without ACL files'
      : false;

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

class RealUbusd implements UbusServerEnv {
  private child: ChildProcess | undefined;

  constructor(readonly socketPath: string) {}

  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(UBUSD as string, ['-s', this.socketPath], { stdio: 'ignore' });
    this.child = child;
    await until(
      `ubusd to accept connections on ${this.socketPath}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`ubusd exited with ${child.exitCode}`);
        return canConnect(this.socketPath);
      },
      5000,
      10,
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000); // grace period for SIGTERM, not a wait
    await exited;
    clearTimeout(timer);
  }
}

for (const [name, scenario] of Object.entries(scenarios)) {
  test(`real ubusd: ${name}`, { skip, timeout: 30_000 }, async () => {
    const tmp = tempSocketDir();
    const ubusd = new RealUbusd(tmp.socketPath);
    await ubusd.start();
    const h = new Harness(ubusd);
    try {
      await scenario(h);
    } finally {
      h.close();
      await ubusd.stop();
      tmp.cleanup();
    }
  });
}
