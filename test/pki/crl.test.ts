// CRLs: parsing, and revocation inside verifyChain (PKI_REVOKED, PKI_CRL_BAD_SIGNATURE,
// PKI_CRL_STALE, PKI_CRL_NOT_APPLICABLE), with CRLs from the test AMD CA (RSA-PSS, like AMD's)
// and from `openssl ca`, each outcome cross-checked with `openssl verify -crl_check`.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import { parseCrl, Crl } from '../../src/pki/crl.js';
import { verifyChain, type TrustAnchor } from '../../src/pki/chain.js';
import { loadPinnedRoot } from '../../src/pki/roots.js';
import { CofferError } from '../../src/errors.js';
import { makeFakeAmd, FAKE_AMD_AT, type FakeAmd } from '../helpers/amd-ca.js';
import { AMD, buildTestPki, opensslVerify, tempDir, writePem, type TestPki } from './tools.js';

const cert = (der: Uint8Array): Certificate => parseCertificates(der)[0] as Certificate;

function fails(fn: () => unknown, code: string, kind: 'input' | 'verify' = 'verify'): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected ${code}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.kind, kind);
  return caught;
}

describe('CRLs from the test AMD CA (RSA-PSS SHA-384, issued by the ARK)', () => {
  let amd: FakeAmd;
  let ark: Certificate;
  let ask: Certificate;
  let vcek: Certificate;
  let anchors: TrustAnchor[];
  let dir: string;
  let arkPem: string;
  let askPem: string;
  const ASK_SERIAL = 0x10001n; // AMD's Milan ASK serial, as the test CA copies it

  before(() => {
    amd = makeFakeAmd('Milan');
    ark = cert(amd.ark.der);
    ask = cert(amd.ask.der);
    vcek = cert(amd.issueVcek({ chipId: Buffer.alloc(64, 0x42), tcb: { bl: 4, tee: 0, snp: 22, ucode: 213 }, serial: 0 }).der);
    anchors = [{ cert: ark, label: 'ARK-Milan (test)' }];
    dir = tempDir('crl');
    arkPem = writePem(dir, 'ark.pem', 'CERTIFICATE', ark.der);
    askPem = writePem(dir, 'ask.pem', 'CERTIFICATE', ask.der);
  });

  const ossl = (crl: { der: Buffer }, at = FAKE_AMD_AT, name = `crl-${Math.random().toString(16).slice(2)}.pem`) =>
    opensslVerify({ ca: arkPem, cert: askPem, crl: writePem(dir, name, 'X509 CRL', crl.der), at });

  test('parseCrl reads DER and PEM alike: issuer, dates, normalised revoked serials', () => {
    const made = amd.crl({ revokedSerials: [ASK_SERIAL, 0x80n, 5n] });
    const a = parseCrl(made.der);
    const b = parseCrl(made.pem);
    const c = parseCrl(Buffer.from(made.pem));
    for (const x of [a, b, c]) {
      assert.equal(x.issuer, ark.subject);
      assert.equal(x.thisUpdate.toISOString(), '2025-05-01T00:00:00.000Z');
      assert.equal(x.nextUpdate?.toISOString(), '2025-07-01T00:00:00.000Z');
      assert.deepEqual([...x.revoked].sort(), ['10001', '5', '80']);
      assert.equal(x.signedBy(ark), true);
      assert.equal(x.signedBy(ask), false);
    }
  });

  test('a CRL that revokes nothing of the chain: verifies, with a pki.revocation check; openssl agrees', () => {
    const crl = amd.crl({ revokedSerials: [0x20001n] });
    const r = verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(crl.der)] });
    assert.equal(r.path.length, 3);
    const rev = r.checks.find((c) => c.name === 'pki.revocation');
    assert.ok(rev?.ok);
    assert.ok(ossl(crl).ok);
  });

  test('the ASK revoked by the ARK: PKI_REVOKED naming the serial; openssl: certificate revoked', () => {
    const crl = amd.crl({ revokedSerials: [ASK_SERIAL] });
    const e = fails(() => verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(crl.der)] }), 'PKI_REVOKED');
    assert.match(e.message, /SEV-Milan \(serial 10001\)/);
    fails(() => verifyChain(ask, [], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(crl.pem)] }), 'PKI_REVOKED');
    const o = ossl(crl);
    assert.equal(o.ok, false);
    assert.match(o.out, /certificate revoked/);
  });

  test('the ARK\'s CRL cannot revoke the VCEK (issued by the ASK), even if its serial is listed', () => {
    const crl = amd.crl({ revokedSerials: [0n] });
    verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(crl.der)] });
  });

  test('signed by another key under the ARK\'s name: PKI_CRL_BAD_SIGNATURE; openssl: CRL signature failure', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const crl = amd.crl({ revokedSerials: [], signingKey: other });
    fails(() => verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(crl.der)] }), 'PKI_CRL_BAD_SIGNATURE');
    const o = ossl(crl);
    assert.equal(o.ok, false);
    assert.match(o.out, /CRL signature failure/);
  });

  test('one flipped byte in the CRL signature or its TBS: PKI_CRL_BAD_SIGNATURE', () => {
    const crl = amd.crl({ revokedSerials: [7n] });
    const good = parseCrl(crl.der);
    const sig = (good as unknown as { signed: { signature: Buffer } }).signed.signature;
    const sigStart = crl.der.length - sig.length;
    // A byte of the signature, and a byte of the revoked serial (7 → 6) inside the TBS.
    const serialAt = crl.der.indexOf(Buffer.from([0x02, 0x01, 0x07]));
    assert.ok(serialAt > 0);
    for (const i of [sigStart, sigStart + 100, crl.der.length - 1, serialAt + 2]) {
      const d = Buffer.from(crl.der);
      d[i] = (d[i] as number) ^ 0x01;
      fails(() => verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(d)] }), 'PKI_CRL_BAD_SIGNATURE');
    }
  });

  test('past nextUpdate: PKI_CRL_STALE (nextUpdate itself is still current); openssl: CRL has expired', () => {
    const crl = amd.crl({ revokedSerials: [] });
    const parsed = parseCrl(crl.der);
    const next = parsed.nextUpdate as Date;
    verifyChain(vcek, [ask], anchors, { at: next, crls: [parsed] });
    const late = new Date(next.getTime() + 1000);
    const e = fails(() => verifyChain(vcek, [ask], anchors, { at: late, crls: [parsed] }), 'PKI_CRL_STALE');
    assert.match(e.message, /2025-07-01T00:00:00\.000Z/);
    const o = ossl(crl, late);
    assert.equal(o.ok, false);
    assert.match(o.out, /CRL has expired/);
  });

  test(
    'a CRL whose thisUpdate is still in the future is not current either',
    () => {
      const crl = amd.crl({ revokedSerials: [], thisUpdate: new Date('2025-06-15T00:00:00Z'), nextUpdate: new Date('2025-08-01T00:00:00Z') });
      const o = ossl(crl);
      assert.equal(o.ok, false);
      assert.match(o.out, /CRL is not yet valid/);
      assert.throws(() => verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [parseCrl(crl.der)] }), (e: unknown) => e instanceof CofferError);
    },
  );

  test('a CRL of another product\'s ARK: PKI_CRL_NOT_APPLICABLE', () => {
    const genoa = makeFakeAmd('Genoa');
    const crl = parseCrl(genoa.crl({ revokedSerials: [] }).der);
    const e = fails(() => verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [crl] }), 'PKI_CRL_NOT_APPLICABLE');
    assert.match(e.message, /ARK-Genoa/);
  });

  test('the first bad CRL of several decides; good ones before it are reported as checked', () => {
    const good = parseCrl(amd.crl({ revokedSerials: [] }).der);
    const revoking = parseCrl(amd.crl({ revokedSerials: [ASK_SERIAL] }).der);
    const e = fails(() => verifyChain(vcek, [ask], anchors, { at: FAKE_AMD_AT, crls: [good, revoking] }), 'PKI_REVOKED');
    const checks = e.details?.checks as { name: string; ok: boolean }[];
    assert.equal(checks.filter((c) => c.name === 'pki.revocation' && c.ok).length, 1);
  });

  test('a CRL forged under the real ARK-Milan\'s name does not apply to AMD\'s real chain: PKI_CRL_BAD_SIGNATURE; openssl agrees', () => {
    const realArk = loadPinnedRoot('amd-ark-milan');
    const [realAsk] = parseCertificates(readFileSync(join(AMD, 'amd-certs/ask_ark_milan.pem')));
    const realVcek = parseCertificates(readFileSync(join(AMD, 'go-sev-guest/vcek.der')))[0] as Certificate;
    const forged = amd.crl({ revokedSerials: [] });
    assert.equal(parseCrl(forged.der).issuer, realArk.cert.subject);
    const at = new Date('2025-06-01T00:00:00Z');
    verifyChain(realVcek, [realAsk as Certificate], [realArk], { at });
    fails(() => verifyChain(realVcek, [realAsk as Certificate], [realArk], { at, crls: [parseCrl(forged.der)] }), 'PKI_CRL_BAD_SIGNATURE');
    const o = opensslVerify({
      ca: writePem(dir, 'real-ark.pem', 'CERTIFICATE', realArk.cert.der),
      cert: writePem(dir, 'real-ask.pem', 'CERTIFICATE', (realAsk as Certificate).der),
      crl: writePem(dir, 'forged.pem', 'X509 CRL', forged.der),
      at,
    });
    assert.equal(o.ok, false);
    // openssl matches the forged CRL's authorityKeyIdentifier against the real ARK first, finds no
    // CRL of that ARK, and says so; either way it is refused.
    assert.match(o.out, /CRL signature failure|unable to get certificate CRL/);
  });
});

describe('CRLs from openssl ca', () => {
  let pki: TestPki;
  let root: TrustAnchor;
  let inter: Certificate;
  let leaf: Certificate;
  const at = (): Date => new Date(Date.now() + 60_000);
  before(() => {
    pki = buildTestPki();
    root = { cert: parseCertificates(readFileSync(pki.root))[0] as Certificate, label: 'test root' };
    inter = parseCertificates(readFileSync(pki.inter))[0] as Certificate;
    leaf = parseCertificates(readFileSync(pki.leaf))[0] as Certificate;
  });

  test('an empty CRL of the root: verifies, as with openssl', () => {
    const crl = parseCrl(readFileSync(pki.rootCrlEmpty));
    assert.equal(crl.revoked.size, 0);
    verifyChain(inter, [], [root], { at: at(), crls: [crl] });
    assert.ok(opensslVerify({ ca: pki.root, cert: pki.inter, crl: pki.rootCrlEmpty }).ok);
  });

  test('the intermediate (serial 0x00ff80, DER with a leading zero) revoked by the root: PKI_REVOKED; openssl: certificate revoked', () => {
    assert.equal(inter.serial, 'ff80');
    const crl = parseCrl(readFileSync(pki.rootCrlRevokingInter));
    assert.deepEqual([...crl.revoked], ['ff80']);
    fails(() => verifyChain(inter, [], [root], { at: at(), crls: [crl] }), 'PKI_REVOKED');
    fails(() => verifyChain(leaf, [inter], [root], { at: at(), crls: [crl] }), 'PKI_REVOKED');
    assert.match(opensslVerify({ ca: pki.root, cert: pki.inter, crl: pki.rootCrlRevokingInter }).out, /certificate revoked/);
  });

  test('a CRL signed by an issuer without cRLSign: PKI_CRL_BAD_SIGNATURE; openssl refuses it too', () => {
    assert.equal(inter.canSignCrls, false);
    const crl = parseCrl(readFileSync(pki.interCrlRevokingLeaf));
    assert.equal(crl.signedBy(inter), true, 'the signature itself is fine');
    fails(() => verifyChain(leaf, [inter], [root], { at: at(), crls: [crl] }), 'PKI_CRL_BAD_SIGNATURE');
    const o = opensslVerify({ ca: pki.root, untrusted: pki.inter, cert: pki.leaf, crl: pki.interCrlRevokingLeaf });
    assert.equal(o.ok, false);
    assert.match(o.out, /key usage does not include CRL signing|unable to get certificate CRL|certificate revoked/);
  });

  test('stale after its 30 days, like openssl -attime', () => {
    const crl = parseCrl(readFileSync(pki.rootCrlEmpty));
    const late = new Date((crl.nextUpdate as Date).getTime() + 1000);
    fails(() => verifyChain(inter, [], [root], { at: late, crls: [crl] }), 'PKI_CRL_STALE');
    assert.match(opensslVerify({ ca: pki.root, cert: pki.inter, crl: pki.rootCrlEmpty, at: late }).out, /CRL has expired/);
  });

  test('a root CRL on the AMD chain: PKI_CRL_NOT_APPLICABLE', () => {
    const [ask] = parseCertificates(readFileSync(join(AMD, 'amd-certs/ask_ark_milan.pem')));
    fails(
      () => verifyChain(ask as Certificate, [], [loadPinnedRoot('amd-ark-milan')], { at: new Date('2025-06-01T00:00:00Z'), crls: [parseCrl(readFileSync(pki.rootCrlEmpty))] }),
      'PKI_CRL_NOT_APPLICABLE',
    );
  });
});

describe('parseCrl refuses garbage with PKI_BAD_CRL', () => {
  test('random bytes, empty input, a certificate, PEM without an X509 CRL block', () => {
    fails(() => parseCrl(Buffer.from('not a crl')), 'PKI_BAD_CRL', 'input');
    fails(() => parseCrl(new Uint8Array(0)), 'PKI_BAD_CRL', 'input');
    fails(() => parseCrl(readFileSync(join(AMD, 'go-sev-guest/vcek.der'))), 'PKI_BAD_CRL', 'input');
    fails(() => parseCrl(readFileSync(join(AMD, 'amd-certs/ask_ark_milan.pem'))), 'PKI_BAD_CRL', 'input');
    fails(() => parseCrl('-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n'), 'PKI_BAD_CRL', 'input');
  });

  test('property: arbitrary bytes give a Crl or a CofferError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          assert.ok(parseCrl(b) instanceof Crl);
        } catch (e) {
          if (!(e instanceof CofferError)) throw e;
        }
      }),
      { numRuns: 200 },
    );
  });

  test('every one-bit flip of a real-shaped CRL gives a Crl or a CofferError', () => {
    const der = makeFakeAmd('Milan').crl({ revokedSerials: [0x10001n, 0x80n] }).der;
    const bad: string[] = [];
    for (let i = 0; i < der.length; i++) {
      const d = Buffer.from(der);
      d[i] = (d[i] as number) ^ 0x01;
      try {
        parseCrl(d);
      } catch (e) {
        if (!(e instanceof CofferError)) bad.push(`${i}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      }
    }
    assert.deepEqual(bad, []);
  });
});
