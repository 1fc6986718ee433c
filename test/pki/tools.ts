// Shared by the PKI tests: the real vectors, the real `openssl` as an oracle, and a small
// certificate authority built with the openssl command line (independent of src/).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VECTORS = fileURLToPath(new URL('../../../shared/vectors/', import.meta.url));
export const AMD = join(VECTORS, 'amd-snp');

interface ManifestEntry {
  file: string;
  expected?: Record<string, unknown>;
}
const manifest = JSON.parse(readFileSync(join(VECTORS, 'manifest.json'), 'utf8')) as { files: ManifestEntry[] };

/** The manifest's `expected` values of a vector, by its path under vectors/. */
export function expected(file: string): Record<string, unknown> {
  const e = manifest.files.find((f) => f.file === file);
  if (!e) throw new Error(`${file} is not in the vectors manifest`);
  return e.expected ?? {};
}

export const AMD_BUNDLES = [
  'ask_ark_milan.pem',
  'ask_ark_milan_vlek.pem',
  'ask_ark_genoa.pem',
  'ask_ark_genoa_vlek.pem',
  'ask_ark_turin_vcek.pem',
  'ask_ark_turin_vlek.pem',
] as const;

let checked = false;
function requireOpenssl(): void {
  if (checked) return;
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error('these tests use the real openssl command as an oracle, and it is not installed: apt-get install openssl');
  }
  checked = true;
}

export interface RunResult {
  status: number;
  out: string;
}

/** Runs openssl; throws (with its output) unless `allowFail`. */
export function openssl(args: string[], opts: { cwd?: string; allowFail?: boolean } = {}): RunResult {
  requireOpenssl();
  const r = spawnSync('openssl', args, { cwd: opts.cwd, encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) throw r.error;
  if (r.status !== 0 && !opts.allowFail) throw new Error(`openssl ${args.join(' ')} failed (${r.status}):\n${out}`);
  return { status: r.status ?? -1, out };
}

/**
 * `openssl verify -CAfile ca [-untrusted u] [-attime t] [-crl_check -CRLfile c] cert`:
 * ok when openssl says so; `out` holds its diagnostics (e.g. "certificate has expired").
 */
export function opensslVerify(o: { ca: string; cert: string; untrusted?: string; at?: Date; crl?: string; crlCheck?: 'leaf' | 'all' }): { ok: boolean; out: string } {
  const args = ['verify', '-CAfile', o.ca];
  if (o.untrusted) args.push('-untrusted', o.untrusted);
  if (o.at) args.push('-attime', String(Math.floor(o.at.getTime() / 1000)));
  if (o.crl) args.push('-CRLfile', o.crl, o.crlCheck === 'all' ? '-crl_check_all' : '-crl_check');
  args.push(o.cert);
  const r = openssl(args, { allowFail: true });
  return { ok: r.status === 0 && /: OK\s*$/m.test(r.out), out: r.out };
}

const made: string[] = [];
/** A fresh directory under the OS temp dir, removed when the process exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `coffer-pkitest-${prefix}-`));
  if (made.length === 0) process.once('exit', () => made.forEach((m) => rmSync(m, { recursive: true, force: true })));
  made.push(d);
  return d;
}

export function writePem(dir: string, name: string, label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  const path = join(dir, name);
  writeFileSync(path, `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`);
  return path;
}

const CA_CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[subca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[nocertsign]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
[crit]
basicConstraints = critical,CA:FALSE
1.2.3.4.5 = critical,ASN1:UTF8String:must be understood
[noncrit]
basicConstraints = critical,CA:FALSE
1.2.3.4.5 = ASN1:UTF8String:may be ignored
[namecons]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign
nameConstraints = critical,permitted;DNS:example.com
[ca]
default_ca = rootca
[rootca]
database = root-index.txt
crlnumber = root-crlnumber
default_md = sha256
default_crl_days = 30
[interca]
database = inter-index.txt
crlnumber = inter-crlnumber
default_md = sha256
default_crl_days = 30
`;

/** Paths (PEM) of a small openssl-made PKI; every key is EC P-256, every cert valid from now. */
export interface TestPki {
  dir: string;
  root: string;
  /** CA:TRUE pathlen:0, keyCertSign only (no cRLSign), serial 0x00ff80 (DER needs a leading zero). */
  inter: string;
  /** CA:FALSE, signed by inter, serial 7. */
  leaf: string;
  /** Signed by leaf (a non-CA used as issuer). */
  grandchild: string;
  /** Signed by inter, with an unknown critical extension 1.2.3.4.5. */
  crit: string;
  /** Signed by inter, with the same extension not critical. */
  noncrit: string;
  /** CA:TRUE but keyUsage digitalSignature only, signed by root; and a leaf it signed. */
  noCertSign: string;
  noCertSignLeaf: string;
  /** CA:TRUE signed by inter (pathlen:0), and a leaf under it: a path-length violation. */
  subCa: string;
  subCaLeaf: string;
  /** CA with a critical nameConstraints extension, signed by root; and a leaf under it. */
  nameCons: string;
  nameConsLeaf: string;
  /** CRL by root revoking inter; CRL by root revoking nothing; CRL by inter (which lacks cRLSign) revoking leaf. */
  rootCrlRevokingInter: string;
  rootCrlEmpty: string;
  interCrlRevokingLeaf: string;
}

export function buildTestPki(): TestPki {
  const dir = tempDir('pki');
  const cnf = join(dir, 'ca.cnf');
  writeFileSync(cnf, CA_CONFIG);
  const run = (...args: string[]): void => void openssl(args, { cwd: dir });
  const key = (name: string): void => run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const issue = (name: string, cn: string, issuer: string, ext: string, serial: string, days = '365'): void => {
    key(name);
    run('req', '-new', '-config', cnf, '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-set_serial', serial, '-days', days, '-extfile', cnf, '-extensions', ext, '-out', `${name}.pem`);
  };
  key('root');
  run('req', '-new', '-x509', '-config', cnf, '-key', 'root.key', '-subj', '/CN=Coffer Test Root', '-days', '3650', '-extensions', 'root', '-out', 'root.pem');
  issue('inter', 'Coffer Test Intermediate', 'root', 'inter', '0x00ff80', '3650');
  issue('leaf', 'Coffer Test Leaf', 'inter', 'leaf', '7');
  issue('grandchild', 'Coffer Test Grandchild', 'leaf', 'leaf', '9');
  issue('crit', 'Coffer Test Critical', 'inter', 'crit', '8');
  issue('noncrit', 'Coffer Test Noncritical', 'inter', 'noncrit', '10');
  issue('nocertsign', 'Coffer Test No CertSign', 'root', 'nocertsign', '11');
  issue('nocertsign-leaf', 'Coffer Test Under No CertSign', 'nocertsign', 'leaf', '12');
  issue('subca', 'Coffer Test Sub CA', 'inter', 'subca', '13');
  issue('subca-leaf', 'Coffer Test Under Sub CA', 'subca', 'leaf', '14');
  issue('namecons', 'Coffer Test Name Constrained', 'root', 'namecons', '15');
  issue('namecons-leaf', 'Coffer Test Under Name Constraints', 'namecons', 'leaf', '16');

  for (const db of ['root', 'inter']) {
    writeFileSync(join(dir, `${db}-index.txt`), '');
    writeFileSync(join(dir, `${db}-crlnumber`), '01\n');
  }
  run('ca', '-config', cnf, '-name', 'rootca', '-gencrl', '-keyfile', 'root.key', '-cert', 'root.pem', '-out', 'root-empty.crl');
  run('ca', '-config', cnf, '-name', 'rootca', '-revoke', 'inter.pem', '-keyfile', 'root.key', '-cert', 'root.pem');
  run('ca', '-config', cnf, '-name', 'rootca', '-gencrl', '-keyfile', 'root.key', '-cert', 'root.pem', '-out', 'root-revokes-inter.crl');
  run('ca', '-config', cnf, '-name', 'interca', '-revoke', 'leaf.pem', '-keyfile', 'inter.key', '-cert', 'inter.pem');
  run('ca', '-config', cnf, '-name', 'interca', '-gencrl', '-keyfile', 'inter.key', '-cert', 'inter.pem', '-out', 'inter-revokes-leaf.crl');

  const p = (f: string): string => join(dir, f);
  return {
    dir,
    root: p('root.pem'),
    inter: p('inter.pem'),
    leaf: p('leaf.pem'),
    grandchild: p('grandchild.pem'),
    crit: p('crit.pem'),
    noncrit: p('noncrit.pem'),
    noCertSign: p('nocertsign.pem'),
    noCertSignLeaf: p('nocertsign-leaf.pem'),
    subCa: p('subca.pem'),
    subCaLeaf: p('subca-leaf.pem'),
    nameCons: p('namecons.pem'),
    nameConsLeaf: p('namecons-leaf.pem'),
    rootCrlRevokingInter: p('root-revokes-inter.crl'),
    rootCrlEmpty: p('root-empty.crl'),
    interCrlRevokingLeaf: p('inter-revokes-leaf.crl'),
  };
}
