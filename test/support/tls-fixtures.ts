// SPDX-License-Identifier: GPL-2.0-only
// Throwaway TLS material made with the openssl CLI at test time (no key is ever committed): a CA,
// a server certificate for the MLR (SANs as asked), a client certificate for a CN, and a second,
// unrelated CA with its own server and client certificates for the negative cases. EC P-256 keys,
// valid for two days. Used by the unit tests on loopback and by the namespace lab.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TlsFixtures {
  /** The CA certificate (PEM) that signed `server` and `client`. */
  ca: string;
  server: CertFiles;
  client: CertFiles;
  /** A CA unrelated to `ca`, and certificates it signed (same names and SANs as the good ones). */
  otherCa: string;
  otherServer: CertFiles;
  otherClient: CertFiles;
}

export interface TlsFixtureOptions {
  /** IP SANs of the server certificate; default 127.0.0.1. */
  serverIps?: string[];
  /** DNS SANs of the server certificate; default localhost. */
  serverDns?: string[];
  /** Subject CN of the client certificate; default cn1. */
  clientName?: string;
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${err.stderr?.toString().trim() || err.message}`);
  }
}

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-days', '2'];

function makeCa(dir: string, name: string): CertFiles {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl(['req', '-x509', ...NEW_KEY, '-subj', `/CN=${name}`, '-keyout', files.key, '-out', files.cert]);
  return files;
}

/** A leaf certificate signed by `ca` (OpenSSL 3: `req -x509 -CA`), not itself a CA. */
function makeLeaf(dir: string, name: string, ca: CertFiles, subject: string, san?: string): CertFiles {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl([
    'req',
    '-x509',
    ...NEW_KEY,
    '-subj',
    `/CN=${subject}`,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    ...(san ? ['-addext', `subjectAltName=${san}`] : []),
    '-keyout',
    files.key,
    '-out',
    files.cert,
  ]);
  return files;
}

/** Writes the fixtures into `dir` (which must exist) and returns their paths. */
export function makeTlsFixtures(dir: string, opts: TlsFixtureOptions = {}): TlsFixtures {
  const ips = opts.serverIps ?? ['127.0.0.1'];
  const dns = opts.serverDns ?? ['localhost'];
  const san = [...ips.map((a) => `IP:${a}`), ...dns.map((d) => `DNS:${d}`)].join(',');
  const client = opts.clientName ?? 'cn1';
  const ca = makeCa(dir, 'ca');
  const other = makeCa(dir, 'other-ca');
  const fixtures: TlsFixtures = {
    ca: ca.cert,
    server: makeLeaf(dir, 'server', ca, 'tmip-mlr', san),
    client: makeLeaf(dir, 'client', ca, client),
    otherCa: other.cert,
    otherServer: makeLeaf(dir, 'other-server', other, 'tmip-mlr', san),
    otherClient: makeLeaf(dir, 'other-client', other, client),
  };
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.key')) fs.chmodSync(path.join(dir, f), 0o600);
  return fixtures;
}
