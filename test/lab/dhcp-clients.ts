// SPDX-License-Identifier: GPL-2.0-only
// Real DHCP clients inside an MS namespace (busybox udhcpc, ISC dhclient), each with our own small
// POSIX sh script that applies a lease idempotently: `ip addr replace` + `ip route replace default`,
// never a flush, so a renew, a rebind or an INIT-REBOOT keeps the address and the TCP sessions on it.
// The scripts print one line per event to stdout (the client's stdout, which the lab captures):
//   LEASE <event> ip=A router=R mask=M lease=SECONDS serverid=S interface=I   (a lease was applied)
//   DHCP <event> interface=I ...                                             (anything else; nothing changed)
import fs from 'node:fs';
import path from 'node:path';
import type { Lab, LabProcess } from './lab.js';

export interface Lease {
  /** Script event: udhcpc bound|renew; dhclient BOUND|RENEW|REBIND|REBOOT. */
  event: string;
  ip: string;
  router: string;
  /** Dotted subnet mask as the client passed it. */
  mask: string;
  prefix: number;
  /** Lease time in seconds (NaN when the client gave none). */
  lease: number;
  serverId: string;
  /** performance.now() of this process when the line was read. */
  at: number;
}

export interface DhcpClient {
  kind: 'udhcpc' | 'dhclient';
  ms: string;
  iface: string;
  /** The exact argv run inside the MS namespace by the latest start. */
  command: string[];
  /** Path of the event script written for this client. */
  script: string;
  /** The current client process. */
  proc: LabProcess;
  /** Every lease applied so far (across restarts), in order. */
  leases(): Lease[];
  /** Every LEASE/DHCP line the script printed so far. */
  events(): string[];
  /**
   * Resolves with the next lease not yet returned by an earlier waitForLease() (the first call gets the
   * first lease). Rejects on timeout or if the client exits first.
   */
  waitForLease(timeoutMs: number): Promise<Lease>;
  /** SIGTERM the client (neither client releases its lease on SIGTERM) and wait for it to exit. */
  stop(): Promise<void>;
}

export interface UdhcpcClient extends DhcpClient {
  kind: 'udhcpc';
  /** SIGUSR1: udhcpc renews (unicast DHCPREQUEST to the server); the next waitForLease() gets its result. */
  renew(): void;
}

export interface DhclientClient extends DhcpClient {
  kind: 'dhclient';
  /** Paths of the lease, pid and config files (kept across reboot()). */
  leaseFile: string;
  pidFile: string;
  configFile: string;
  /**
   * Stop the client (no release) and start it again with the same lease file: it sends an INIT-REBOOT
   * DHCPREQUEST for its previous address (no server id), as a station does after a reboot or re-association.
   */
  reboot(): Promise<void>;
}

export interface DhcpClientOptions {
  iface?: string;
  /** Append the client's output to this file. */
  logFile?: string;
  /** Extra arguments placed before the interface name (udhcpc: e.g. ['-x', 'hostname:ms1']). */
  extraArgs?: string[];
}

export interface DhclientOptions extends DhcpClientOptions {
  /** dhclient.conf `timeout` (s): give up (and exit, because of -1) when no lease came; default 30. */
  timeoutS?: number;
  /** dhclient.conf `reboot` (s): how long INIT-REBOOT is tried before falling back to DISCOVER; default 10. */
  rebootS?: number;
  /** Extra dhclient.conf lines. */
  configLines?: string[];
}

const SH_PRELUDE = `#!/bin/sh
# Written by tmip's lab (test/lab/dhcp-clients.ts). Applies a lease idempotently and never flushes.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
mask2prefix() {
  n=0
  saved_ifs=$IFS
  IFS=.
  for octet in $1; do
    case $octet in
      255) n=$((n + 8)) ;; 254) n=$((n + 7)) ;; 252) n=$((n + 6)) ;; 248) n=$((n + 5)) ;;
      240) n=$((n + 4)) ;; 224) n=$((n + 3)) ;; 192) n=$((n + 2)) ;; 128) n=$((n + 1)) ;;
    esac
  done
  IFS=$saved_ifs
  echo "$n"
}
# apply IFACE IP MASK ROUTERS: address replaced (never removed), default route via the first router.
apply() {
  prefix=$(mask2prefix "$3")
  [ "$prefix" -gt 0 ] 2>/dev/null || prefix=32
  ip addr replace "$2/$prefix" dev "$1" || echo "DHCP error ip-addr-replace $2/$prefix dev $1" >&2
  set -- "$1" "$2" "$3" $4
  if [ -n "$4" ]; then
    ip route replace default via "$4" dev "$1" || echo "DHCP error ip-route-replace default via $4 dev $1" >&2
  fi
  first_router=$4
}
`;

const UDHCPC_SCRIPT = `${SH_PRELUDE}
# udhcpc: $1 = deconfig|bound|renew|leasefail|nak; lease in env: ip subnet router lease serverid interface.
case "$1" in
  bound|renew)
    apply "$interface" "$ip" "$subnet" "$router"
    echo "LEASE $1 ip=$ip router=$first_router mask=$subnet lease=$lease serverid=$serverid interface=$interface"
    ;;
  deconfig)
    ip link set dev "$interface" up
    echo "DHCP deconfig interface=$interface"
    ;;
  *)
    echo "DHCP $1 interface=$interface message=$message"
    ;;
esac
exit 0
`;

const DHCLIENT_SCRIPT = `${SH_PRELUDE}
# ISC dhclient: $reason; lease in env: new_ip_address new_subnet_mask new_routers new_dhcp_lease_time
# new_dhcp_server_identifier, interface.
case "$reason" in
  PREINIT)
    ip link set dev "$interface" up
    echo "DHCP PREINIT interface=$interface"
    ;;
  BOUND|RENEW|REBIND|REBOOT)
    apply "$interface" "$new_ip_address" "$new_subnet_mask" "$new_routers"
    echo "LEASE $reason ip=$new_ip_address router=$first_router mask=$new_subnet_mask lease=$new_dhcp_lease_time serverid=$new_dhcp_server_identifier interface=$interface old=$old_ip_address"
    ;;
  TIMEOUT)
    # Do not fall back to an old lease without a server: report and refuse it.
    echo "DHCP TIMEOUT interface=$interface"
    exit 1
    ;;
  *)
    echo "DHCP $reason interface=$interface old=$old_ip_address"
    ;;
esac
exit 0
`;

const LEASE_RE = /^LEASE (\S+) ip=(\S*) router=(\S*) mask=(\S*) lease=(\S*) serverid=(\S*)/;

function mask2prefix(mask: string): number {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return NaN;
  return parts.reduce((n, p) => n + (p.toString(2).match(/1/g)?.length ?? 0), 0);
}

export function parseLeaseLine(text: string, at = 0): Lease | null {
  const m = LEASE_RE.exec(text);
  if (!m) return null;
  const [, event = '', ip = '', router = '', mask = '', lease = '', serverId = ''] = m;
  return { event, ip, router, mask, prefix: mask2prefix(mask), lease: lease === '' ? NaN : Number(lease), serverId, at };
}

function writeScript(lab: Lab, name: string, body: string): string {
  const file = path.join(lab.tmpDir, name);
  fs.writeFileSync(file, body, { mode: 0o755 });
  return file;
}

/** Shared bookkeeping: collects LEASE/DHCP lines from every process of one client, and a lease cursor. */
class LeaseLog {
  readonly leases: Lease[] = [];
  readonly events: string[] = [];
  private cursor = 0;
  private waiters = new Set<() => void>();

  attach(proc: LabProcess): void {
    const take = (text: string, at: number) => {
      if (!/^(LEASE|DHCP) /.test(text)) return;
      this.events.push(text);
      const l = parseLeaseLine(text, at);
      if (l) this.leases.push(l);
      for (const w of [...this.waiters]) w();
    };
    for (const l of proc.lines) if (l.stream === 'stdout') take(l.text, l.at);
    proc.onLine((l) => {
      if (l.stream === 'stdout') take(l.text, l.at);
    });
  }

  skipAll(): void {
    this.cursor = this.leases.length;
  }

  next(proc: () => LabProcess, timeoutMs: number, label: string): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      const check = () => {
        const l = this.leases[this.cursor];
        if (l) {
          this.cursor++;
          finish();
          resolve(l);
        }
      };
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const tail = () =>
        proc()
          .lines.slice(-10)
          .map((l) => `  ${l.stream}: ${l.text}`)
          .join('\n');
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${label}: no lease within ${timeoutMs} ms; last output:\n${tail()}`));
      }, timeoutMs);
      this.waiters.add(check);
      const p = proc();
      void p.exited.then((s) => {
        setTimeout(() => {
          if (!this.waiters.has(check) || proc() !== p) return;
          finish();
          reject(new Error(`${label}: exited (code ${s.code}, signal ${s.signal}) without a new lease; last output:\n${tail()}`));
        }, 100);
      });
      check();
    });
  }
}

/**
 * busybox udhcpc in the foreground on the MS's eth0:
 *   busybox udhcpc -f -i eth0 -s SCRIPT -t 5 -T 1 -A 1 [extraArgs]
 * (-t 5 discovers 1 s apart, then a 1 s pause before the next round; it keeps trying until stopped).
 */
export function startUdhcpc(lab: Lab, ms: string, opts: DhcpClientOptions = {}): UdhcpcClient {
  const iface = opts.iface ?? 'eth0';
  const script = writeScript(lab, `udhcpc-${ms}-${iface}.sh`, UDHCPC_SCRIPT);
  const command = ['busybox', 'udhcpc', '-f', '-i', iface, '-s', script, '-t', '5', '-T', '1', '-A', '1', ...(opts.extraArgs ?? [])];
  const [cmd = 'busybox', ...args] = command;
  const proc = lab.spawn(ms, cmd, args, opts.logFile ? { logFile: opts.logFile } : {});
  const log = new LeaseLog();
  log.attach(proc);
  const client: UdhcpcClient = {
    kind: 'udhcpc',
    ms,
    iface,
    command,
    script,
    proc,
    leases: () => [...log.leases],
    events: () => [...log.events],
    waitForLease: (timeoutMs) => log.next(() => client.proc, timeoutMs, `udhcpc[${ms}]`),
    renew() {
      log.skipAll();
      if (!proc.signal('SIGUSR1')) throw new Error(`udhcpc[${ms}] is not running`);
    },
    stop: () => proc.stop(2000),
  };
  return client;
}

/**
 * ISC dhclient in the foreground on the MS's eth0, with our script and its own config, lease and pid
 * files in the lab's temp dir (so nothing of the host's /etc/dhcp or /var/lib/dhcp is used):
 *   dhclient -4 -d -1 -v -cf CONF -sf SCRIPT -lf LEASEFILE -pf PIDFILE [extraArgs] eth0
 */
export function startDhclient(lab: Lab, ms: string, opts: DhclientOptions = {}): DhclientClient {
  const iface = opts.iface ?? 'eth0';
  const base = `dhclient-${ms}-${iface}`;
  const script = writeScript(lab, `${base}.sh`, DHCLIENT_SCRIPT);
  const configFile = path.join(lab.tmpDir, `${base}.conf`);
  const leaseFile = path.join(lab.tmpDir, `${base}.leases`);
  const pidFile = path.join(lab.tmpDir, `${base}.pid`);
  fs.writeFileSync(
    configFile,
    [
      '# tmip lab dhclient.conf: short timers, plain IPv4 options.',
      `timeout ${opts.timeoutS ?? 30};`,
      'retry 5;',
      `reboot ${opts.rebootS ?? 10};`,
      'initial-interval 1;',
      'backoff-cutoff 2;',
      'request subnet-mask, broadcast-address, routers, domain-name-servers, dhcp-lease-time, dhcp-server-identifier;',
      ...(opts.configLines ?? []),
      '',
    ].join('\n'),
  );
  const command = [
    'dhclient',
    '-4',
    '-d',
    '-1',
    '-v',
    '-cf',
    configFile,
    '-sf',
    script,
    '-lf',
    leaseFile,
    '-pf',
    pidFile,
    ...(opts.extraArgs ?? []),
    iface,
  ];
  const log = new LeaseLog();
  const start = (): LabProcess => {
    const [cmd = 'dhclient', ...args] = command;
    const p = lab.spawn(ms, cmd, args, opts.logFile ? { logFile: opts.logFile } : {});
    log.attach(p);
    return p;
  };
  const client: DhclientClient = {
    kind: 'dhclient',
    ms,
    iface,
    command,
    script,
    leaseFile,
    pidFile,
    configFile,
    proc: start(),
    leases: () => [...log.leases],
    events: () => [...log.events],
    waitForLease: (timeoutMs) => log.next(() => client.proc, timeoutMs, `dhclient[${ms}]`),
    stop: () => client.proc.stop(3000),
    async reboot() {
      await client.proc.stop(3000);
      fs.rmSync(pidFile, { force: true });
      log.skipAll();
      client.proc = start();
    },
  };
  return client;
}
