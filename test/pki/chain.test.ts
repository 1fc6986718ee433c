// verifyChain on AMD's real chains, cross-checked with `openssl verify`, and every error code on
// chains built by openssl (independent of src/) and by the test AMD CA.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import { verifyChain, type TrustAnchor } from '../../src/pki/chain.js';
import { amdRoots, loadPinnedRoot } from '../../src/pki/roots.js';
import { CofferError } from '../../src/errors.js';
import type { Check } from '../../src/check.js';
import { makeFakeAmd } from '../helpers/amd-ca.js';
import { AMD, VECTORS, buildTestPki, opensslVerify, tempDir, writePem, type TestPki } from './tools.js';

const AT = new Date('2025-06-01T00:00:00Z');

function load(path: string): Certificate[] {
  return parseCertificates(readFileSync(path), path);
}
function one(path: string): Certificate {
  const [c] = load(path);
  assert.ok(c);
  return c;
}
function bundle(name: string): { ask: Certificate; ark: Certificate; path: string } {
  const path = join(AMD, 'amd-certs', name);
  const [ask, ark] = load(path) as [Certificate, Certificate];
  return { ask, ark, path };
}
const anchor = (cert: Certificate, label = `${cert.subjectCn} (test anchor)`): TrustAnchor => ({ cert, label });

/** Runs fn, which must throw a verify-kind CofferError with `code`; returns it. */
function chainFails(fn: () => unknown, code: string): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected ${code}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.kind, 'verify');
  const checks = caught.details?.checks as Check[] | undefined;
  assert.ok(Array.isArray(checks), 'details.checks lists what was checked');
  const last = checks[checks.length - 1];
  assert.equal(last?.ok, false);
  assert.equal(last?.code, code);
  return caught;
}

// Each real leaf with the KDS bundle it chains through and an instant inside every window.
const LEAVES = [
  { leaf: 'amd-snp/go-sev-guest/vcek.der', bundle: 'ask_ark_milan.pem', ark: 'amd-ark-milan' },
  { leaf: 'amd-snp/trustee/test-vcek.der', bundle: 'ask_ark_milan.pem', ark: 'amd-ark-milan' },
  { leaf: 'amd-snp/trustee/test-vlek.der', bundle: 'ask_ark_milan_vlek.pem', ark: 'amd-ark-milan' },
  { leaf: 'amd-snp/trustee/e2e-vcek.der', bundle: 'ask_ark_genoa.pem', ark: 'amd-ark-genoa' },
  { leaf: 'amd-snp/veraison/sevsnp-tsm-report.vcek.pem', bundle: 'ask_ark_genoa.pem', ark: 'amd-ark-genoa' },
] as const;

describe('the real AMD chains', () => {
  for (const name of ['ask_ark_milan.pem', 'ask_ark_milan_vlek.pem', 'ask_ark_genoa.pem', 'ask_ark_genoa_vlek.pem', 'ask_ark_turin_vcek.pem', 'ask_ark_turin_vlek.pem']) {
    test(`${name}: the ASK/ASVK verifies under the ARK (and openssl agrees); the ARK is the pinned one`, () => {
      const { ask, ark, path } = bundle(name);
      const r = verifyChain(ask, [], [anchor(ark)], { at: AT });
      assert.deepEqual(r.path.map((c) => c.subjectCn), [ask.subjectCn, ark.subjectCn]);
      assert.deepEqual(r.checks.map((c) => [c.name, c.ok]), [['pki.signature', true], ['pki.anchor', true], ['pki.validity', true]]);
      const product = ark.subjectCn.replace('ARK-', '').toLowerCase();
      const pinned = loadPinnedRoot(`amd-ark-${product}`);
      assert.ok(pinned.cert.der.equals(ark.der), 'the KDS bundle ARK is byte-identical to the pinned root');
      // The same against the pinned anchors, as the SNP verifier uses them.
      assert.equal(verifyChain(ask, [], amdRoots(), { at: AT }).anchor.label, pinned.label);

      const dir = tempDir('chain');
      const arkPem = writePem(dir, 'ark.pem', 'CERTIFICATE', ark.der);
      const askPem = writePem(dir, 'ask.pem', 'CERTIFICATE', ask.der);
      const o = opensslVerify({ ca: arkPem, cert: askPem, at: AT });
      assert.ok(o.ok, o.out);
      assert.ok(opensslVerify({ ca: arkPem, cert: arkPem, at: AT }).ok, 'openssl: the ARK verifies itself');
      assert.ok(opensslVerify({ ca: arkPem, cert: path, at: AT }).ok, 'openssl reads the first block of the bundle: the ASK');
    });
  }

  for (const { leaf, bundle: b, ark: arkId } of LEAVES) {
    test(`${leaf} → ${b}: Coffer and openssl verify -CAfile ark -untrusted ask -attime agree`, () => {
      const leafPath = join(VECTORS, leaf);
      const { ask, ark, path } = bundle(b);
      const c = one(leafPath);
      const r = verifyChain(c, [ask, ark], [loadPinnedRoot(arkId)], { at: AT });
      assert.deepEqual(r.path.map((x) => x.subjectCn), [c.subjectCn, ask.subjectCn, ark.subjectCn]);
      assert.equal(r.anchor.label, `${ark.subjectCn} (pinned)`);

      const dir = tempDir('chain');
      const arkPem = writePem(dir, 'ark.pem', 'CERTIFICATE', ark.der);
      const askPem = writePem(dir, 'ask.pem', 'CERTIFICATE', ask.der);
      const o = opensslVerify({ ca: arkPem, untrusted: askPem, cert: leafPath, at: AT });
      assert.ok(o.ok, o.out);
      // The bundle itself as -untrusted (ASK + ARK) also works for openssl.
      assert.ok(opensslVerify({ ca: arkPem, untrusted: path, cert: leafPath, at: AT }).ok);
    });
  }

  test('the 3-certificate Azure bundle verifies to the pinned Milan ARK', () => {
    const [vcek, ask, ark] = load(join(VECTORS, 'azure-cvm/trustee-az-snp-vtpm/vcek.pem')) as [Certificate, Certificate, Certificate];
    const r = verifyChain(vcek, [ask, ark], amdRoots(), { at: AT });
    assert.equal(r.anchor.label, 'ARK-Milan (pinned)');
    assert.equal(r.path.length, 3);
  });

  test('a VCEK with the wrong product chain: PKI_CHAIN_INCOMPLETE, and openssl fails too', () => {
    const genoaVcek = join(VECTORS, 'amd-snp/trustee/e2e-vcek.der');
    const { ask, ark } = bundle('ask_ark_milan.pem');
    const e = chainFails(() => verifyChain(one(genoaVcek), [ask, ark], amdRoots(), { at: AT }), 'PKI_CHAIN_INCOMPLETE');
    assert.match(e.message, /SEV-Genoa/);
    const dir = tempDir('chain');
    const o = opensslVerify({ ca: writePem(dir, 'ark.pem', 'CERTIFICATE', ark.der), untrusted: writePem(dir, 'ask.pem', 'CERTIFICATE', ask.der), cert: genoaVcek, at: AT });
    assert.equal(o.ok, false);
    assert.match(o.out, /unable to get local issuer certificate/);
  });

  test('a VCEK with no ASK supplied: PKI_CHAIN_INCOMPLETE naming the missing issuer', () => {
    const e = chainFails(() => verifyChain(one(join(AMD, 'go-sev-guest/vcek.der')), [], amdRoots(), { at: AT }), 'PKI_CHAIN_INCOMPLETE');
    assert.match(e.message, /SEV-Milan/);
  });

  test('expired and not-yet-valid, at the exact boundaries, like openssl -attime', () => {
    const vcekPath = join(AMD, 'go-sev-guest/vcek.der');
    const vcek = one(vcekPath);
    const { ask, ark } = bundle('ask_ark_milan.pem');
    const anchors = [loadPinnedRoot('amd-ark-milan')];
    const dir = tempDir('chain');
    const arkPem = writePem(dir, 'ark.pem', 'CERTIFICATE', ark.der);
    const askPem = writePem(dir, 'ask.pem', 'CERTIFICATE', ask.der);
    const ossl = (at: Date) => opensslVerify({ ca: arkPem, untrusted: askPem, cert: vcekPath, at });

    // notAfter is inclusive (RFC 5280 4.1.2.5). openssl counts the notAfter second itself as
    // expired (X509_cmp_time "earlier than, or equal to"), so compare it one second before.
    verifyChain(vcek, [ask], anchors, { at: vcek.notAfter });
    assert.ok(ossl(new Date(vcek.notAfter.getTime() - 1000)).ok);
    const late = new Date(vcek.notAfter.getTime() + 1000);
    const e1 = chainFails(() => verifyChain(vcek, [ask], anchors, { at: late }), 'PKI_EXPIRED');
    assert.match(e1.message, /SEV-VCEK expired at 2029-09-24/);
    assert.match(ossl(late).out, /certificate has expired/);

    verifyChain(vcek, [ask], anchors, { at: vcek.notBefore });
    assert.ok(ossl(vcek.notBefore).ok);
    const early = new Date(vcek.notBefore.getTime() - 1000);
    const e2 = chainFails(() => verifyChain(vcek, [ask], anchors, { at: early }), 'PKI_NOT_YET_VALID');
    assert.match(e2.message, /SEV-VCEK is not valid before 2022-09-24/);
    assert.match(ossl(early).out, /certificate is not yet valid/);

    // The CA certificates' windows count too: the ASK is not valid before 2020-10-22.
    const e3 = chainFails(() => verifyChain(ask, [], anchors, { at: new Date('2020-01-01T00:00:00Z') }), 'PKI_NOT_YET_VALID');
    assert.match(e3.message, /SEV-Milan|ARK-Milan/);
    chainFails(() => verifyChain(ask, [], anchors, { at: new Date('2046-01-01T00:00:00Z') }), 'PKI_EXPIRED');
  });

  test('the VLEK expired on 2025-12-10: PKI_EXPIRED at 2026-01-01', () => {
    const { ask, ark } = bundle('ask_ark_milan_vlek.pem');
    chainFails(() => verifyChain(one(join(AMD, 'trustee/test-vlek.der')), [ask, ark], amdRoots(), { at: new Date('2026-01-01T00:00:00Z') }), 'PKI_EXPIRED');
  });

  test('maxDepth bounds the path: PKI_CHAIN_TOO_LONG', () => {
    const { ask, ark } = bundle('ask_ark_milan.pem');
    chainFails(() => verifyChain(one(join(AMD, 'go-sev-guest/vcek.der')), [ask, ark], amdRoots(), { at: AT, maxDepth: 1 }), 'PKI_CHAIN_TOO_LONG');
  });
});

describe('one flipped byte in the real ASK', () => {
  const { ask, ark } = bundle('ask_ark_milan.pem');
  const anchors = [anchor(ark)];
  const sigLen = ask.signed.signature.length;
  // The signature BIT STRING content is the last sigLen bytes of the DER.
  const sigStart = ask.der.length - sigLen;
  const tbsStart = ask.der.indexOf(ask.signed.tbs);
  const tbsEnd = tbsStart + ask.signed.tbs.length;

  // Parsing a flipped certificate costs ~2 ms, so the sweeps sample: every byte at the edges,
  // a stride in between (a different stride for the TBS so that every kind of field is hit).
  const sample = (from: number, to: number, stride: number): number[] => {
    const out: number[] = [];
    for (let i = from; i < to; i++) if (i < from + 32 || i >= to - 32 || (i - from) % stride === 0) out.push(i);
    return out;
  };

  test('bytes across the signature (all of the first and last 32): PKI_BAD_SIGNATURE', () => {
    assert.equal(sigLen, 512);
    assert.ok(ask.der.subarray(sigStart).equals(ask.signed.signature));
    for (const i of sample(sigStart, ask.der.length, 7)) {
      const d = Buffer.from(ask.der);
      d[i] = (d[i] as number) ^ 0x01;
      const flipped = parseCertificates(d)[0] as Certificate;
      chainFails(() => verifyChain(flipped, [], anchors, { at: AT }), 'PKI_BAD_SIGNATURE');
    }
  });

  test('bytes across the TBS: never verifies; where it still parses with the same issuer, PKI_BAD_SIGNATURE', () => {
    assert.ok(tbsStart > 0);
    const outcomes = new Map<string, number>();
    let badSig = 0;
    for (const i of sample(tbsStart, tbsEnd, 3)) {
      const d = Buffer.from(ask.der);
      d[i] = (d[i] as number) ^ 0x01;
      let flipped: Certificate;
      try {
        flipped = parseCertificates(d)[0] as Certificate;
      } catch (e) {
        // Refused while parsing (a CofferError, or see the todo in certificate.test.ts).
        const k = e instanceof CofferError ? e.code : 'parse: non-CofferError';
        outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
        continue;
      }
      let code = 'VERIFIED';
      try {
        verifyChain(flipped, [], anchors, { at: AT });
      } catch (e) {
        code = e instanceof CofferError ? e.code : `non-CofferError ${String(e)}`;
      }
      assert.notEqual(code, 'VERIFIED', `flip at ${i} verified`);
      assert.ok(!code.startsWith('non-CofferError'), `flip at ${i}: ${code}`);
      if (flipped.issuer === ark.subject && flipped.subject !== flipped.issuer) {
        assert.equal(code, 'PKI_BAD_SIGNATURE', `flip at ${i}`);
        badSig++;
      }
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
    assert.ok(badSig > 200, `most TBS flips parse and fail the signature (got ${badSig}; outcomes ${JSON.stringify([...outcomes])})`);
  });

  test('openssl agrees on a sample of flips (first, middle and last byte of the signature; a byte of the public key)', () => {
    const dir = tempDir('flip');
    const arkPem = writePem(dir, 'ark.pem', 'CERTIFICATE', ark.der);
    const spki = ask.publicKey.export({ type: 'spki', format: 'der' });
    const keyAt = ask.der.indexOf(spki) + Math.floor(spki.length / 2);
    for (const i of [sigStart, sigStart + 256, ask.der.length - 1, keyAt]) {
      const d = Buffer.from(ask.der);
      d[i] = (d[i] as number) ^ 0x01;
      const p = writePem(dir, `ask-${i}.pem`, 'CERTIFICATE', d);
      const o = opensslVerify({ ca: arkPem, cert: p, at: AT });
      assert.equal(o.ok, false, `openssl accepted flip at ${i}`);
      assert.match(o.out, /signature failure|decode|error/i);
      chainFails(() => verifyChain(parseCertificates(d)[0] as Certificate, [], anchors, { at: AT }), 'PKI_BAD_SIGNATURE');
    }
  });
});

describe('untrusted roots and impostors', () => {
  test('a self-signed root that is not an anchor: PKI_UNTRUSTED_ROOT (real Milan chain, Genoa anchor)', () => {
    const { ask, ark } = bundle('ask_ark_milan.pem');
    const genoa = [loadPinnedRoot('amd-ark-genoa')];
    const e = chainFails(() => verifyChain(ask, [ark], genoa, { at: AT }), 'PKI_UNTRUSTED_ROOT');
    assert.match(e.message, /ARK-Milan/);
    chainFails(() => verifyChain(ark, [], genoa, { at: AT }), 'PKI_UNTRUSTED_ROOT');
    chainFails(() => verifyChain(one(join(AMD, 'go-sev-guest/vcek.der')), [ask, ark], genoa, { at: AT }), 'PKI_UNTRUSTED_ROOT');
    chainFails(() => verifyChain(ark, [], [], { at: AT }), 'PKI_UNTRUSTED_ROOT');
  });

  test('an ASK with AMD\'s name from another key: PKI_BAD_SIGNATURE against the pinned ARK; its own fake ARK is PKI_UNTRUSTED_ROOT', () => {
    const fake = makeFakeAmd('Milan');
    const fakeAsk = parseCertificates(fake.ask.der)[0] as Certificate;
    const fakeArk = parseCertificates(fake.ark.der)[0] as Certificate;
    const realArk = loadPinnedRoot('amd-ark-milan');
    assert.equal(fakeArk.subject, realArk.cert.subject, 'the impostor copies the real name exactly');
    chainFails(() => verifyChain(fakeAsk, [], [realArk], { at: AT }), 'PKI_BAD_SIGNATURE');
    chainFails(() => verifyChain(fakeAsk, [fakeArk], [realArk], { at: AT }), 'PKI_UNTRUSTED_ROOT');
    chainFails(() => verifyChain(fakeArk, [], [realArk], { at: AT }), 'PKI_BAD_SIGNATURE');
    // And a real VCEK with the fake ASK in between.
    chainFails(() => verifyChain(one(join(AMD, 'go-sev-guest/vcek.der')), [fakeAsk], [realArk], { at: AT }), 'PKI_BAD_SIGNATURE');
    // The fake hierarchy verifies under its own ARK (so the failures above are about trust, not shape).
    const leaf = fake.issueVcek({ chipId: Buffer.alloc(64, 7), tcb: { bl: 1, tee: 0, snp: 1, ucode: 1 } });
    assert.equal(verifyChain(parseCertificates(leaf.der)[0] as Certificate, [fakeAsk], [anchor(fakeArk)], { at: AT }).path.length, 3);
  });
});

describe('chains made with openssl', () => {
  let pki: TestPki;
  let root: TrustAnchor;
  const now = (): Date => new Date(Date.now() + 60_000);
  before(() => {
    pki = buildTestPki();
    root = anchor(one(pki.root));
  });

  test('root → intermediate → leaf verifies, as with openssl', () => {
    const r = verifyChain(one(pki.leaf), [one(pki.inter)], [root], { at: now() });
    assert.deepEqual(r.path.map((c) => c.subjectCn), ['Coffer Test Leaf', 'Coffer Test Intermediate', 'Coffer Test Root']);
    assert.ok(opensslVerify({ ca: pki.root, untrusted: pki.inter, cert: pki.leaf }).ok);
  });

  test('missing intermediate: PKI_CHAIN_INCOMPLETE; openssl: unable to get local issuer certificate', () => {
    chainFails(() => verifyChain(one(pki.leaf), [], [root], { at: now() }), 'PKI_CHAIN_INCOMPLETE');
    assert.match(opensslVerify({ ca: pki.root, cert: pki.leaf }).out, /unable to get local issuer certificate/);
  });

  test('a leaf used as an issuer: PKI_NOT_CA; openssl: invalid CA certificate', () => {
    const e = chainFails(() => verifyChain(one(pki.grandchild), [one(pki.leaf), one(pki.inter)], [root], { at: now() }), 'PKI_NOT_CA');
    assert.match(e.message, /Coffer Test Leaf/);
    const dir = tempDir('notca');
    const untrusted = join(dir, 'u.pem');
    writeFileSync(untrusted, readFileSync(pki.leaf, 'latin1') + readFileSync(pki.inter, 'latin1'));
    const o = opensslVerify({ ca: pki.root, untrusted, cert: pki.grandchild });
    assert.equal(o.ok, false);
    assert.match(o.out, /invalid CA certificate/);
  });

  test('a CA without keyCertSign used as an issuer: PKI_NOT_CA; openssl: key usage does not include certificate signing', () => {
    chainFails(() => verifyChain(one(pki.noCertSignLeaf), [one(pki.noCertSign)], [root], { at: now() }), 'PKI_NOT_CA');
    const o = opensslVerify({ ca: pki.root, untrusted: pki.noCertSign, cert: pki.noCertSignLeaf });
    assert.equal(o.ok, false);
    assert.match(o.out, /key usage does not include certificate signing|invalid CA certificate/);
  });

  test('an unknown critical extension: PKI_UNKNOWN_CRITICAL_EXTENSION naming its OID; openssl: unhandled critical extension', () => {
    const c = one(pki.crit);
    assert.deepEqual(c.unknownCriticalExtensions(), ['1.2.3.4.5']);
    const e = chainFails(() => verifyChain(c, [one(pki.inter)], [root], { at: now() }), 'PKI_UNKNOWN_CRITICAL_EXTENSION');
    assert.match(e.message, /1\.2\.3\.4\.5/);
    assert.match(opensslVerify({ ca: pki.root, untrusted: pki.inter, cert: pki.crit }).out, /unhandled critical extension/);
    // Not critical: both accept it.
    verifyChain(one(pki.noncrit), [one(pki.inter)], [root], { at: now() });
    assert.ok(opensslVerify({ ca: pki.root, untrusted: pki.inter, cert: pki.noncrit }).ok);
  });

  test('a critical nameConstraints extension (which Coffer does not enforce) fails closed', () => {
    chainFails(() => verifyChain(one(pki.nameConsLeaf), [one(pki.nameCons)], [root], { at: now() }), 'PKI_UNKNOWN_CRITICAL_EXTENSION');
  });

  test('self-signed openssl root not among the anchors: PKI_UNTRUSTED_ROOT', () => {
    chainFails(() => verifyChain(one(pki.leaf), [one(pki.inter), one(pki.root)], amdRoots(), { at: now() }), 'PKI_UNTRUSTED_ROOT');
  });

  test('validity of openssl certificates: not yet valid an hour ago, expired in 2 years', () => {
    chainFails(() => verifyChain(one(pki.leaf), [one(pki.inter)], [root], { at: new Date(Date.now() - 3_600_000) }), 'PKI_NOT_YET_VALID');
    chainFails(() => verifyChain(one(pki.leaf), [one(pki.inter)], [root], { at: new Date(Date.now() + 2 * 365 * 86_400_000) }), 'PKI_EXPIRED');
  });

  test(
    'a path-length violation (CA under a pathlen:0 intermediate) is refused, as openssl refuses it',
    () => {
      const dir = tempDir('pathlen');
      const untrusted = join(dir, 'u.pem');
      writeFileSync(untrusted, readFileSync(pki.subCa, 'latin1') + readFileSync(pki.inter, 'latin1'));
      const ossl = opensslVerify({ ca: pki.root, untrusted, cert: pki.subCaLeaf });
      assert.equal(ossl.ok, false);
      assert.match(ossl.out, /path length constraint exceeded/);
      assert.throws(
        () => verifyChain(one(pki.subCaLeaf), [one(pki.subCa), one(pki.inter)], [root], { at: now() }),
        (e: unknown) => e instanceof CofferError && e.kind === 'verify',
      );
    },
  );
});
