// The pinned AMD roots: each shipped file's DER hashes (per openssl) to its pin, every root loads
// and is the ARK of its product, and a tampered file is refused. The tampering happens on a
// throw-away copy of src/ so the repository's files are never touched.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import type * as rootsModule from '../../src/pki/roots.js';
import { PINNED_ROOTS, loadPinnedRoot, amdRoots } from '../../src/pki/roots.js';
import { parseCertificates } from '../../src/pki/certificate.js';
import { CofferError } from '../../src/errors.js';
import { AMD, openssl, tempDir } from './tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ROOTS_DIR = join(REPO, 'src/pki/roots');

describe('PINNED_ROOTS', () => {
  test('lists exactly the ARKs of Milan, Genoa and Turin, the Intel SGX Root CA and the AWS Nitro Enclaves Root-G1, each with a file in src/pki/roots', () => {
    assert.deepEqual(PINNED_ROOTS.map((r) => [r.id, r.vendor, r.product, r.file]), [
      ['amd-ark-milan', 'AMD', 'Milan', 'amd-ark-milan.pem'],
      ['amd-ark-genoa', 'AMD', 'Genoa', 'amd-ark-genoa.pem'],
      ['amd-ark-turin', 'AMD', 'Turin', 'amd-ark-turin.pem'],
      ['intel-sgx-root-ca', 'Intel', 'SGX/TDX', 'intel-sgx-root-ca.pem'],
      ['aws-nitro-root-g1', 'AWS', 'Nitro Enclaves', 'aws-nitro-root-g1.pem'],
    ]);
    assert.deepEqual(readdirSync(ROOTS_DIR).sort(), PINNED_ROOTS.map((r) => r.file).sort());
    for (const r of PINNED_ROOTS) assert.match(r.sha256, /^[0-9a-f]{64}$/);
  });

  test('the Intel SGX Root CA is the one in the vectors, and loads as "Intel SGX Root CA (pinned)"', () => {
    const a = loadPinnedRoot('intel-sgx-root-ca');
    assert.equal(a.cert.subjectCn, 'Intel SGX Root CA');
    assert.equal(a.label, 'Intel SGX Root CA (pinned)');
    const vec = parseCertificates(readFileSync(join(REPO, '../shared/vectors/intel-tdx/roots/Intel_SGX_Root_CA.pem')))[0];
    assert.ok(vec?.der.equals(a.cert.der));
  });

  for (const r of PINNED_ROOTS) {
    test(`${r.file}: openssl x509 -outform der | sha256sum equals the pin`, () => {
      const path = join(ROOTS_DIR, r.file);
      const dir = tempDir('pin');
      const out = join(dir, 'ark.der');
      openssl(['x509', '-in', path, '-outform', 'der', '-out', out]);
      const viaFile = readFileSync(out);
      assert.equal(createHash('sha256').update(viaFile).digest('hex'), r.sha256);
      const fp = openssl(['x509', '-in', path, '-noout', '-fingerprint', '-sha256']).out;
      assert.equal(/Fingerprint=([0-9A-F:]+)/.exec(fp)?.[1]?.replace(/:/g, '').toLowerCase(), r.sha256);
      // One certificate per file, self-signed, and openssl agrees it verifies itself.
      assert.equal((readFileSync(path, 'latin1').match(/BEGIN CERTIFICATE/g) ?? []).length, 1);
      assert.match(openssl(['verify', '-CAfile', path, path]).out, /: OK/);
    });

    if (r.vendor === 'AMD') test(`loadPinnedRoot(${r.id}) loads ARK-${r.product}, matching its pin and AMD's KDS bundle`, () => {
      const a = loadPinnedRoot(r.id);
      assert.equal(a.cert.sha256, r.sha256);
      assert.equal(a.product, r.product);
      assert.equal(a.cert.subjectCn, `ARK-${r.product}`);
      assert.equal(a.label, `ARK-${r.product} (pinned)`);
      assert.ok(a.cert.isSelfIssued && a.cert.isCa);
      assert.equal(loadPinnedRoot(r.id), a, 'loaded once, then cached');
      const bundleFile = r.product === 'Turin' ? 'ask_ark_turin_vcek.pem' : `ask_ark_${r.product.toLowerCase()}.pem`;
      const kdsArk = parseCertificates(readFileSync(join(AMD, 'amd-certs', bundleFile)))[1];
      assert.ok(kdsArk?.der.equals(a.cert.der), 'the pinned ARK is the one AMD KDS serves');
    });
  }

  test('amdRoots() gives the three, in order', () => {
    assert.deepEqual(amdRoots().map((a) => [a.product, a.cert.subjectCn]), [
      ['Milan', 'ARK-Milan'],
      ['Genoa', 'ARK-Genoa'],
      ['Turin', 'ARK-Turin'],
    ]);
  });

  test('an unknown id: PKI_UNKNOWN_ROOT (input error)', () => {
    assert.throws(() => loadPinnedRoot('amd-ark-bergamo'), (e: unknown) => e instanceof CofferError && e.code === 'PKI_UNKNOWN_ROOT' && e.kind === 'input');
  });

  test('the build copies the same root files into dist/pki/roots (when dist exists)', (t) => {
    const dist = join(REPO, 'dist/pki/roots');
    if (!existsSync(dist)) {
      t.diagnostic('dist/ not built; nothing to compare');
      return;
    }
    for (const r of PINNED_ROOTS) assert.ok(readFileSync(join(dist, r.file)).equals(readFileSync(join(ROOTS_DIR, r.file))), r.file);
  });
});

describe('tampered roots (on a copy of src/)', () => {
  type RootsModule = typeof rootsModule;

  /** Copies src/ to a temp dir (node_modules linked), lets `tamper` edit its roots, imports roots.ts from it. */
  async function withCopy(tamper: (rootsDir: string) => void): Promise<RootsModule> {
    const dir = tempDir('roots');
    cpSync(join(REPO, 'src'), join(dir, 'src'), { recursive: true });
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    tamper(join(dir, 'src/pki/roots'));
    const mod = (await import(pathToFileURL(join(dir, 'src/pki/roots.ts')).href)) as RootsModule;
    return mod;
  }

  /** The copy has its own CofferError class: compare by name and code. */
  function refused(fn: () => unknown, code: string): void {
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof Error && caught.name === 'CofferError', `expected ${code}, got ${String(caught)}`);
    assert.equal((caught as Error & { code: string }).code, code, caught.message);
  }

  test('an untouched copy loads (the harness itself works)', async () => {
    const m = await withCopy(() => undefined);
    assert.equal(m.loadPinnedRoot('amd-ark-milan').cert.sha256, PINNED_ROOTS[0]?.sha256);
  });

  test("Milan's file replaced by Genoa's ARK: PKI_ROOT_PIN_MISMATCH; the other roots still load", async () => {
    const m = await withCopy((d) => cpSync(join(ROOTS_DIR, 'amd-ark-genoa.pem'), join(d, 'amd-ark-milan.pem')));
    refused(() => m.loadPinnedRoot('amd-ark-milan'), 'PKI_ROOT_PIN_MISMATCH');
    refused(() => m.amdRoots(), 'PKI_ROOT_PIN_MISMATCH');
    assert.equal(m.loadPinnedRoot('amd-ark-genoa').product, 'Genoa');
  });

  test('a certificate appended to a root file: PKI_ROOT_PIN_MISMATCH', async () => {
    const m = await withCopy((d) => writeFileSync(join(d, 'amd-ark-turin.pem'), readFileSync(join(ROOTS_DIR, 'amd-ark-turin.pem'), 'latin1') + readFileSync(join(ROOTS_DIR, 'amd-ark-milan.pem'), 'latin1')));
    refused(() => m.loadPinnedRoot('amd-ark-turin'), 'PKI_ROOT_PIN_MISMATCH');
  });

  test('the same certificate with one signature byte changed: PKI_ROOT_PIN_MISMATCH', async () => {
    const m = await withCopy((d) => {
      const der = loadPinnedRoot('amd-ark-genoa').cert.der;
      const bad = Buffer.from(der);
      bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
      const b64 = bad.toString('base64').replace(/.{64}/g, '$&\n');
      writeFileSync(join(d, 'amd-ark-genoa.pem'), `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`);
    });
    refused(() => m.loadPinnedRoot('amd-ark-genoa'), 'PKI_ROOT_PIN_MISMATCH');
  });

  test('a missing root file: PKI_ROOT_MISSING; garbage in its place: refused', async () => {
    const m = await withCopy((d) => {
      unlinkSync(join(d, 'amd-ark-milan.pem'));
      writeFileSync(join(d, 'amd-ark-genoa.pem'), 'not a certificate');
    });
    refused(() => m.loadPinnedRoot('amd-ark-milan'), 'PKI_ROOT_MISSING');
    assert.throws(() => m.loadPinnedRoot('amd-ark-genoa'), (e: unknown) => e instanceof Error && e.name === 'CofferError');
  });

  test('re-encoding the PEM (other line length, CRLF, comments) keeps the DER and still loads: the pin is over the DER', async () => {
    const m = await withCopy((d) => {
      const der = loadPinnedRoot('amd-ark-milan').cert.der;
      const b64 = der.toString('base64').replace(/.{76}/g, '$&\r\n');
      writeFileSync(join(d, 'amd-ark-milan.pem'), `AMD ARK-Milan\r\n-----BEGIN CERTIFICATE-----\r\n${b64}\r\n-----END CERTIFICATE-----\r\n`);
    });
    assert.equal(m.loadPinnedRoot('amd-ark-milan').cert.sha256, PINNED_ROOTS[0]?.sha256);
  });
});
