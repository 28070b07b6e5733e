// SPDX-License-Identifier: GPL-2.0-only
// The NetOps contract (test/support/netops-contract.ts) against FakeNetOps: the in-memory kernel the CN
// unit tests run on must behave like IprouteNetOps on a real kernel (the same suite runs there in
// test/lab/netops-contract.test.ts).
import { formatIPv4, type IPv4 } from '../../src/core/ip.js';
import { FakeNetOps } from '../../src/platform/fake-netops.js';
import { netopsContract, type ContractEnv } from '../support/netops-contract.js';

async function fakeEnv(): Promise<ContractEnv> {
  const net = new FakeNetOps();
  let links = 0;
  return {
    net,
    async addPlainLink(name: string, addr: IPv4, prefix: number) {
      links++;
      const mac = `02:00:00:00:01:${links.toString(16).padStart(2, '0')}`;
      net.addInterface({ ifname: name, mac, addresses: [{ ip: addr, prefix, label: name }] });
    },
    async removeLink(name: string) {
      net.removeInterface(name);
    },
    async setDown(name: string) {
      const info = net.interfaces.get(name);
      if (!info) throw new Error(`no link ${name}`);
      info.up = false;
    },
    async readSysctl(key: string) {
      return net.sysctls.get(key);
    },
    async readNeighbour(addr: IPv4, dev: string) {
      return net.neighbours.get(`${dev} ${formatIPv4(addr)}`);
    },
    async linkId(name: string) {
      return net.tunnels.get(name)?.ifindex ?? net.ifindexes.get(name);
    },
    async readClamp(table: string) {
      const c = net.clamps.get(table);
      return c && { mobileIf: c.mobileIf, mss: c.mss, hosts: [...c.hosts] };
    },
    async effects() {
      return JSON.stringify({
        interfaces: [...net.interfaces],
        tunnels: [...net.tunnels],
        routes: [...net.routes],
        neighbours: [...net.neighbours],
        sysctls: [...net.sysctls],
        clamps: [...net.clamps],
      });
    },
    async close() {},
  };
}

netopsContract('FakeNetOps', fakeEnv);
