// The verifier against a simulated AMD (test/helpers/amd-ca.ts): every way a chain or a report
// can be wrong fails with its own code, and details.checks ends with the check that failed.
// Then validateSnpReport: each rule passes and fails with its code.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Check } from '../../../src/check.js';
import { CofferError } from '../../../src/errors.js';
import { Certificate } from '../../../src/pki/certificate.js';
import { Crl } from '../../../src/pki/crl.js';
import { parseSnpReport, type SnpProduct } from '../../../src/evidence/snp/report.js';
import { decodeTcbSet } from '../../../src/evidence/snp/tcb.js';
import { verifySnpReport, type SnpVerifyOptions } from '../../../src/evidence/snp/verify.js';
import { validateSnpReport, assertChecks, type SnpExpectations } from '../../../src/evidence/snp/validate.js';
import { snpClaims } from '../../../src/evidence/snp/claims.js';
import {
  FAKE_AMD_AT,
  buildReport,
  defaultChipId,
  defaultTcb,
  encodeTcb,
  makeFakeAmd,
  signReport,
  type FakeAmd,
  type IssuedCert,
  type ReportFields,
  type TcbParts,
} from '../../helpers/amd-ca.js';
import { GENOA_CHAIN, MILAN_CHAIN, REAL_AT, certs, expectCoffer, fakeRoots, vector } from './real-vectors.js';

const p384 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;

const milan = makeFakeAmd('Milan');
const genoa = makeFakeAmd('Genoa');
const turin = makeFakeAmd('Turin');
const roots = fakeRoots(milan, genoa, turin);

/** One chip of a product: its VCEK key, and a VCEK at the product's default TCB. */
interface Chip {
  amd: FakeAmd;
  key: KeyObject;
  chipId: Buffer;
  vcek: IssuedCert;
}
function chip(amd: FakeAmd, chipId = defaultChipId(amd.product), tcb: TcbParts = defaultTcb(amd.product)): Chip {
  const key = p384();
  return { amd, key, chipId, vcek: amd.issueVcek({ chipId, tcb, key }) };
}
const milanChip = chip(milan);

const cert = (c: IssuedCert): Certificate => Certificate.fromDer(c.der);
const chainOf = (amd: FakeAmd, leaf: IssuedCert): Certificate[] => [cert(leaf), cert(amd.ask), cert(amd.ark)];

function signed(key: KeyObject, fields: ReportFields = {}): Buffer {
  return signReport(buildReport(fields), key);
}

function verify(raw: Buffer, certificates: Certificate[], extra: Partial<SnpVerifyOptions> = {}) {
  return verifySnpReport(raw, { at: FAKE_AMD_AT, certificates, roots, ...extra });
}

const lastCheck = (checks: Check[]): Check => checks[checks.length - 1] as Check;

describe('the simulated AMD: baseline', () => {
  test('a Milan v3 report signed by its VCEK verifies to the fake ARK with every check passing', () => {
    const v = verify(signed(milanChip.key), chainOf(milan, milanChip.vcek));
    assert.equal(v.product, 'Milan');
    assert.equal(v.signingKey, 'vcek');
    assert.deepEqual(v.chain.map((c) => c.subjectCn), ['SEV-VCEK', 'SEV-Milan', 'ARK-Milan']);
    assert.ok(v.checks.every((c) => c.ok));
    assert.equal(lastCheck(v.checks).name, 'snp.chip-id');
    assert.match(lastCheck(v.checks).description, /hwID equals the report's CHIP_ID/);
  });

  test('the chain may come in any order and the ARK may be left out', () => {
    const raw = signed(milanChip.key);
    assert.equal(verify(raw, [cert(milan.ark), cert(milanChip.vcek), cert(milan.ask)]).product, 'Milan');
    assert.equal(verify(raw, [cert(milan.ask), cert(milanChip.vcek)]).product, 'Milan');
  });

  test('a version 2 report (no CPUID) takes its product from the chain, and the caller may say which', () => {
    const raw = signed(milanChip.key, { version: 2 });
    assert.equal(verify(raw, chainOf(milan, milanChip.vcek)).product, 'Milan');
    assert.equal(verify(raw, chainOf(milan, milanChip.vcek), { product: 'Milan' }).product, 'Milan');
  });
});

describe('a VCEK of another chip', () => {
  test('report from chip A, signed with the same key as chip B\'s VCEK → SNP_CHIP_ID_MISMATCH', () => {
    const key = p384();
    const chipA = defaultChipId('Milan');
    const chipB = Buffer.from(chipA).reverse();
    const vcekB = milan.issueVcek({ chipId: chipB, tcb: defaultTcb('Milan'), key });
    const e = expectCoffer(() => verify(signed(key, { chipId: chipA }), chainOf(milan, vcekB)), 'SNP_CHIP_ID_MISMATCH', { checkName: 'snp.chip-id', kind: 'verify' });
    const c = lastCheck(e.details?.checks as Check[]);
    assert.equal(c.expected, chipB.toString('hex'));
    assert.equal(c.found, chipA.toString('hex'));
  });

  test('report from chip A verified with chip B\'s own VCEK (another key) → SNP_BAD_SIGNATURE, naming both chips', () => {
    const b = chip(milan, Buffer.alloc(64, 0xb2));
    const e = expectCoffer(() => verify(signed(milanChip.key), chainOf(milan, b.vcek)), 'SNP_BAD_SIGNATURE', { checkName: 'snp.signature' });
    assert.match(e.message, /belongs to chip b2b2b2b2b2b2b2b2…/);
  });

  test('real: go-sev-guest attestation.bin with trustee\'s VCEK (another Milan chip) → SNP_BAD_SIGNATURE', () => {
    const e = expectCoffer(
      () => verifySnpReport(vector('amd-snp/go-sev-guest/attestation.bin'), { at: REAL_AT, certificates: certs('amd-snp/trustee/test-vcek.der', MILAN_CHAIN) }),
      'SNP_BAD_SIGNATURE',
      { checkName: 'snp.signature', kind: 'verify' },
    );
    assert.match(e.message, /belongs to chip c38427a30d4c7af9…, the report claims chip 3ac3fe21e13fb099…/);
  });

  test('Turin: the hwID is 8 bytes and must equal the first 8 bytes of CHIP_ID', () => {
    const key = p384();
    const other = Buffer.alloc(64);
    other.writeBigUInt64BE(0x1122334455667788n, 0);
    const vcekOther = turin.issueVcek({ chipId: other, tcb: defaultTcb('Turin'), key });
    expectCoffer(() => verify(signed(key, { product: 'Turin' }), chainOf(turin, vcekOther)), 'SNP_CHIP_ID_MISMATCH', { checkName: 'snp.chip-id' });
  });
});

describe('the wrong product', () => {
  test('real: go-sev-guest VCEK (issued by SEV-Milan) with the Genoa ASK/ARK → SNP_WRONG_PRODUCT', () => {
    const e = expectCoffer(
      () => verifySnpReport(vector('amd-snp/go-sev-guest/attestation.bin'), { at: REAL_AT, certificates: certs('amd-snp/go-sev-guest/vcek.der', GENOA_CHAIN) }),
      'SNP_WRONG_PRODUCT',
      { checkName: 'snp.product', kind: 'verify' },
    );
    assert.match(e.message, /SEV-Genoa/);
  });

  test('the report\'s CPUID says Genoa but the chain is Milan → SNP_WRONG_PRODUCT', () => {
    const raw = signed(milanChip.key, { cpuidFamily: 0x19, cpuidModel: 0x11, cpuidStepping: 1 });
    const e = expectCoffer(() => verify(raw, chainOf(milan, milanChip.vcek)), 'SNP_WRONG_PRODUCT', { checkName: 'snp.product' });
    const c = lastCheck(e.details?.checks as Check[]);
    assert.equal(c.expected, 'Genoa');
    assert.equal(c.found, 'Milan');
  });

  test('the caller says Genoa for a v2 report whose chain is Milan → SNP_WRONG_PRODUCT', () => {
    expectCoffer(() => verify(signed(milanChip.key, { version: 2 }), chainOf(milan, milanChip.vcek), { product: 'Genoa' }), 'SNP_WRONG_PRODUCT', { checkName: 'snp.product' });
  });

  test('a CPUID that is no known SEV-SNP part → SNP_UNKNOWN_PRODUCT', () => {
    expectCoffer(() => verify(signed(milanChip.key, { cpuidFamily: 0x17, cpuidModel: 0x31 }), chainOf(milan, milanChip.vcek)), 'SNP_UNKNOWN_PRODUCT', { checkName: 'snp.product' });
  });

  test('a Milan VCEK whose productName extension names Genoa → SNP_WRONG_PRODUCT', () => {
    const key = p384();
    const vcek = milan.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan'), key, productName: 'Genoa-B1' });
    expectCoffer(() => verify(signed(key), chainOf(milan, vcek)), 'SNP_WRONG_PRODUCT', { checkName: 'snp.product' });
  });

  test('Genoa: a genuine Genoa report and chain verify; with the Milan ASK instead → SNP_WRONG_PRODUCT', () => {
    const g = chip(genoa);
    const raw = signed(g.key, { product: 'Genoa' });
    assert.equal(verify(raw, chainOf(genoa, g.vcek)).product, 'Genoa');
    expectCoffer(() => verify(raw, [cert(g.vcek), cert(milan.ask), cert(milan.ark)]), 'SNP_WRONG_PRODUCT', { checkName: 'snp.product' });
  });
});

describe('validity and trust', () => {
  test('a VCEK checked after its notAfter → PKI_EXPIRED; before its notBefore → PKI_NOT_YET_VALID', () => {
    const key = p384();
    const expired = milan.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan'), key, notBefore: new Date('2023-01-01T00:00:00Z'), notAfter: new Date('2025-01-01T00:00:00Z') });
    const raw = signed(key);
    expectCoffer(() => verify(raw, chainOf(milan, expired)), 'PKI_EXPIRED', { checkName: 'pki.validity', kind: 'verify', message: /SEV-VCEK expired at 2025-01-01/ });
    // The same certificate is fine inside its window.
    assert.equal(verify(raw, chainOf(milan, expired), { at: new Date('2024-06-01T00:00:00Z') }).product, 'Milan');
    const future = milan.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan'), key, notBefore: new Date('2025-12-01T00:00:00Z') });
    expectCoffer(() => verify(raw, chainOf(milan, future)), 'PKI_NOT_YET_VALID', { checkName: 'pki.validity', message: /SEV-VCEK is not valid before 2025-12-01/ });
  });

  test('an expired ASK → PKI_EXPIRED naming the ASK', () => {
    const old = makeFakeAmd('Milan', { notBefore: new Date('2015-01-01T00:00:00Z'), notAfter: new Date('2025-03-01T00:00:00Z') });
    const key = p384();
    const vcek = old.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan'), key });
    expectCoffer(() => verify(signed(key), chainOf(old, vcek), { roots: fakeRoots(old) }), 'PKI_EXPIRED', { checkName: 'pki.validity', message: /^SEV-Milan expired/ });
  });

  test('a fake ARK that is not among the roots (default pinned roots) is not trusted', () => {
    const raw = signed(milanChip.key);
    // The fake ASK names "ARK-Milan" as issuer, which the pinned ARK-Milan did not sign.
    const e = expectCoffer(() => verifySnpReport(raw, { at: FAKE_AMD_AT, certificates: chainOf(milan, milanChip.vcek) }), 'PKI_BAD_SIGNATURE', { checkName: 'pki.signature', kind: 'verify' });
    assert.match(e.message, /SEV-Milan does not verify with the key of ARK-Milan \(pinned\)/);
    // Trusting only another product's root: the Milan chain has no anchor at all.
    expectCoffer(() => verify(raw, chainOf(milan, milanChip.vcek), { roots: fakeRoots(genoa) }), 'PKI_UNTRUSTED_ROOT', { checkName: 'pki.anchor' });
  });

  test('a second hierarchy with the same names: the trusted ARK-Milan did not sign this ASK → PKI_BAD_SIGNATURE', () => {
    // Roots hold another "ARK-Milan"; the ARK that came with the evidence is ignored.
    const other = makeFakeAmd('Milan', { notBefore: new Date('2019-01-01T00:00:00Z') });
    const e = expectCoffer(() => verify(signed(milanChip.key), chainOf(milan, milanChip.vcek), { roots: fakeRoots(other) }), 'PKI_BAD_SIGNATURE', { checkName: 'pki.signature' });
    assert.match(e.message, /does not verify with the key of fake ARK-Milan/);
  });
});

describe('revocation', () => {
  const askSerial = BigInt(`0x${cert(milan.ask).serial}`);
  const crl = (opts: Parameters<FakeAmd['crl']>[0]): Crl => new Crl(milan.crl(opts).der);
  const raw = signed(milanChip.key);
  const chain = chainOf(milan, milanChip.vcek);

  test('the ARK\'s CRL listing the ASK\'s serial → PKI_REVOKED', () => {
    assert.equal(askSerial, 0x10001n);
    const e = expectCoffer(() => verify(raw, chain, { crls: [crl({ revokedSerials: [askSerial] })] }), 'PKI_REVOKED', { checkName: 'pki.revocation', kind: 'verify' });
    assert.match(e.message, /SEV-Milan \(serial 10001\) is revoked by the CRL of ARK-Milan/);
  });

  test('a CRL that revokes other serials passes with a pki.revocation check', () => {
    const v = verify(raw, chain, { crls: [crl({ revokedSerials: [0x10002n, 0x99n] })] });
    const rev = v.checks.find((c) => c.name === 'pki.revocation');
    assert.ok(rev?.ok);
    assert.match(rev.description, /ARK-Milan/);
    // An empty CRL too.
    assert.ok(verify(raw, chain, { crls: [crl({ revokedSerials: [] })] }).checks.some((c) => c.name === 'pki.revocation' && c.ok));
  });

  test('serial 0 on the ARK\'s CRL does not revoke the VCEK (VCEK serials are all 0 and issued by the ASK)', () => {
    assert.equal(cert(milanChip.vcek).serial, '0');
    assert.ok(verify(raw, chain, { crls: [crl({ revokedSerials: [0n] })] }).checks.some((c) => c.name === 'pki.revocation' && c.ok));
  });

  test('a CRL with a bad signature → PKI_CRL_BAD_SIGNATURE', () => {
    // Signed by the ASK's RSA key while naming ARK-Milan as issuer.
    expectCoffer(() => verify(raw, chain, { crls: [crl({ revokedSerials: [], signingKey: milan.ask.key })] }), 'PKI_CRL_BAD_SIGNATURE', { checkName: 'pki.crl', kind: 'verify' });
    // A revoking CRL with a bad signature is refused for its signature, not believed.
    expectCoffer(() => verify(raw, chain, { crls: [crl({ revokedSerials: [askSerial], signingKey: milan.ask.key })] }), 'PKI_CRL_BAD_SIGNATURE', { checkName: 'pki.crl' });
  });

  test('a stale CRL (nextUpdate before the verification time) → PKI_CRL_STALE', () => {
    const stale = crl({ revokedSerials: [], thisUpdate: new Date('2025-01-01T00:00:00Z'), nextUpdate: new Date('2025-02-01T00:00:00Z') });
    expectCoffer(() => verify(raw, chain, { crls: [stale] }), 'PKI_CRL_STALE', { checkName: 'pki.crl', message: /due for renewal at 2025-02-01/ });
    assert.ok(verify(raw, chain, { crls: [stale], at: new Date('2025-01-15T00:00:00Z') }).checks.some((c) => c.name === 'pki.revocation'));
  });

  test('another product\'s CRL → PKI_CRL_NOT_APPLICABLE', () => {
    expectCoffer(() => verify(raw, chain, { crls: [new Crl(genoa.crl({ revokedSerials: [] }).der)] }), 'PKI_CRL_NOT_APPLICABLE', { checkName: 'pki.crl' });
  });
});

describe('the report against its endorsement key', () => {
  test('REPORTED_TCB differing from the VCEK\'s TCB in any one component → SNP_TCB_MISMATCH', () => {
    const base = defaultTcb('Milan');
    for (const k of ['bl', 'tee', 'snp', 'ucode'] as const) {
      const reported = { ...base, [k]: base[k] + 1 };
      const raw = signed(milanChip.key, { reportedTcb: reported });
      const e = expectCoffer(() => verify(raw, chainOf(milan, milanChip.vcek)), 'SNP_TCB_MISMATCH', { checkName: 'snp.tcb', kind: 'verify' });
      const c = lastCheck(e.details?.checks as Check[]);
      assert.equal(c.expected, `bl=${base.bl} tee=${base.tee} snp=${base.snp} ucode=${base.ucode}`);
      assert.equal(c.found, `bl=${reported.bl} tee=${reported.tee} snp=${reported.snp} ucode=${reported.ucode}`);
    }
  });

  test('current, committed and launch TCB may differ from the VCEK\'s (only the reported TCB is certified)', () => {
    const newer = { ...defaultTcb('Milan'), ucode: 220 };
    const v = verify(signed(milanChip.key, { currentTcb: newer, committedTcb: newer, launchTcb: newer }), chainOf(milan, milanChip.vcek));
    assert.equal(v.tcb.current.microcode, 220);
    assert.equal(v.tcb.reported.microcode, defaultTcb('Milan').ucode);
  });

  test('a non-zero reserved byte in a TCB value → RESERVED_NOT_ZERO (snp.tcb.format)', () => {
    const raw = signed(milanChip.key, { currentTcb: encodeTcb('Milan', defaultTcb('Milan')) | (1n << 24n) });
    expectCoffer(() => verify(raw, chainOf(milan, milanChip.vcek)), 'RESERVED_NOT_ZERO', { checkName: 'snp.tcb.format' });
  });

  test('a VLEK-signed report verified with a VCEK (same key) → SNP_WRONG_KEY_TYPE', () => {
    const raw = signed(milanChip.key, { signingKey: 1 });
    expectCoffer(() => verify(raw, chainOf(milan, milanChip.vcek)), 'SNP_WRONG_KEY_TYPE', { checkName: 'snp.signing-key', kind: 'verify' });
  });

  test('a VCEK-signed report verified with a VLEK (same key) → SNP_WRONG_KEY_TYPE', () => {
    const key = p384();
    const vlek = milan.issueVlek({ tcb: defaultTcb('Milan'), key });
    const vlekChain = [cert(vlek), cert(milan.asvk), cert(milan.ark)];
    expectCoffer(() => verify(signed(key, { signingKey: 0 }), vlekChain), 'SNP_WRONG_KEY_TYPE', { checkName: 'snp.signing-key' });
    // The VLEK report itself verifies, vouched for by the CSP.
    const v = verify(signed(key, { signingKey: 1 }), vlekChain);
    assert.equal(v.signingKey, 'vlek');
    assert.deepEqual(v.chain.map((c) => c.subjectCn), ['SEV-VLEK', 'SEV-VLEK-Milan', 'ARK-Milan']);
    assert.match(lastCheck(v.checks).description, /cc-us-east-2\.amazonaws\.com/);
    // A VLEK with the VCEK chain (ASK instead of ASVK): refused.
    expectCoffer(() => verify(signed(key, { signingKey: 1 }), [cert(vlek), cert(milan.ask), cert(milan.ark)]), 'SNP_WRONG_PRODUCT', { checkName: 'snp.product' });
  });

  test('SIGNING_KEY = 7 (none) → SNP_UNSIGNED even when the bytes carry a valid signature', () => {
    expectCoffer(() => verify(signed(milanChip.key, { signingKey: 7 }), chainOf(milan, milanChip.vcek)), 'SNP_UNSIGNED', { checkName: 'snp.signing-key', kind: 'verify' });
  });

  test('no certificates → SNP_NO_ENDORSEMENT_KEY (kind input); CA certificates alone are no endorsement key either', () => {
    const raw = signed(milanChip.key);
    expectCoffer(() => verify(raw, []), 'SNP_NO_ENDORSEMENT_KEY', { checkName: 'snp.endorsement-key', kind: 'input' });
    expectCoffer(() => verify(raw, [cert(milan.ask), cert(milan.ark)]), 'SNP_NO_ENDORSEMENT_KEY', { checkName: 'snp.endorsement-key', kind: 'input' });
  });

  test('a VCEK without the hwID extension → SNP_BAD_ENDORSEMENT_KEY', () => {
    const key = p384();
    const vcek = milan.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan'), key, omitExtensions: ['1.3.6.1.4.1.3704.1.4'] });
    expectCoffer(() => verify(signed(key), chainOf(milan, vcek)), 'SNP_BAD_ENDORSEMENT_KEY', { checkName: 'snp.chip-id' });
  });
});

describe('Turin, version 5 and masked chip ids', () => {
  const turinChip = chip(turin);

  test('Turin v3: FMC in the TCB and an 8-byte hwID verify', () => {
    const v = verify(signed(turinChip.key, { product: 'Turin' }), chainOf(turin, turinChip.vcek));
    assert.equal(v.product, 'Turin');
    assert.deepEqual(v.chain.map((c) => c.subjectCn), ['SEV-VCEK', 'SEV-Turin', 'ARK-Turin']);
    assert.equal(v.endorsement.hwId?.length, 8);
    const t = defaultTcb('Turin');
    assert.deepEqual({ fmc: v.tcb.reported.fmc, bl: v.tcb.reported.bootloader, tee: v.tcb.reported.tee, snp: v.tcb.reported.snp, ucode: v.tcb.reported.microcode }, { fmc: t.fmc, bl: t.bl, tee: t.tee, snp: t.snp, ucode: t.ucode });
    assert.equal(v.endorsement.tcb.fmc, t.fmc);
    assert.equal(snpClaims(v.report, v.product).reportedTcb.fmc, t.fmc);
  });

  test('Turin v5 with mitigation vectors verifies and decodes them', () => {
    const v = verify(signed(turinChip.key, { product: 'Turin', version: 5, launchMitVector: 0x5n, currentMitVector: 0x7n }), chainOf(turin, turinChip.vcek));
    assert.equal(v.report.version, 5);
    assert.equal(v.report.launchMitVector, 5n);
    assert.equal(v.report.currentMitVector, 7n);
    const claims = snpClaims(v.report, v.product);
    assert.equal(claims.launchMitVector, '0x5');
    assert.equal(claims.currentMitVector, '0x7');
  });

  test('Milan v5 verifies', () => {
    const v = verify(signed(milanChip.key, { version: 5, launchMitVector: 1n, currentMitVector: 3n }), chainOf(milan, milanChip.vcek));
    assert.equal(v.report.version, 5);
    assert.equal(v.report.currentMitVector, 3n);
  });

  test('Turin: an FMC differing from the VCEK\'s → SNP_TCB_MISMATCH', () => {
    const t = defaultTcb('Turin');
    const raw = signed(turinChip.key, { product: 'Turin', reportedTcb: { ...t, fmc: (t.fmc ?? 0) + 1 } });
    const e = expectCoffer(() => verify(raw, chainOf(turin, turinChip.vcek)), 'SNP_TCB_MISMATCH', { checkName: 'snp.tcb' });
    assert.match(lastCheck(e.details?.checks as Check[]).found ?? '', /^fmc=2 /);
  });

  test('Turin: a VCEK without the fmcSPL extension → SNP_BAD_ENDORSEMENT_KEY', () => {
    const key = p384();
    const vcek = turin.issueVcek({ chipId: defaultChipId('Turin'), tcb: defaultTcb('Turin'), key, omitExtensions: ['1.3.6.1.4.1.3704.1.3.9'] });
    expectCoffer(() => verify(signed(key, { product: 'Turin' }), chainOf(turin, vcek)), 'SNP_BAD_ENDORSEMENT_KEY', { kind: 'input' });
  });

  test('an all-zero CHIP_ID (host masked it) passes with the masked note', () => {
    for (const fields of [{ chipId: Buffer.alloc(64) }] as ReportFields[]) {
      const v = verify(signed(milanChip.key, fields), chainOf(milan, milanChip.vcek));
      const c = lastCheck(v.checks);
      assert.equal(c.name, 'snp.chip-id');
      assert.ok(c.ok);
      assert.match(c.description, /masked/);
      assert.equal(c.expected, milanChip.chipId.toString('hex'));
    }
  });

  test('MASK_CHIP_KEY set with a non-zero CHIP_ID of another chip is not waved through', () => {
    const key = p384();
    const vcekB = milan.issueVcek({ chipId: Buffer.alloc(64, 0xbb), tcb: defaultTcb('Milan'), key });
    const raw = signed(key, { maskChipKey: true, chipId: Buffer.alloc(64, 0xaa) });
    // Under MASK_CHIP_KEY the firmware does not sign with the VCEK at all: a VCEK signature is a contradiction.
    expectCoffer(() => verify(raw, chainOf(milan, vcekB)), 'SNP_UNSIGNED', { checkName: 'snp.signing-key' });
    const same = signed(milanChip.key, { maskChipKey: true });
    expectCoffer(() => verify(same, chainOf(milan, milanChip.vcek)), 'SNP_UNSIGNED', { checkName: 'snp.signing-key' });
  });

  test('Turin: bytes 8-63 of CHIP_ID must be zero (the VCEK certifies 8 bytes)', () => {
    const turin = makeFakeAmd('Turin');
    const t = chip(turin);
    const tail = Buffer.from(defaultChipId('Turin'));
    tail[40] = 0xab;
    expectCoffer(() => verify(signed(t.key, { product: 'Turin', version: 5, chipId: tail }), chainOf(turin, t.vcek)), 'SNP_CHIP_ID_MISMATCH', { checkName: 'snp.chip-id' });
  });

  test('an invalid Date as the verification time is refused with a CofferError', () => {
    // Any code will do; what matters is that the failure is a CofferError, not a RangeError.
    assert.throws(() => verify(signed(milanChip.key), chainOf(milan, milanChip.vcek), { at: new Date(Number.NaN) }), CofferError);
  });
});

// ---------------------------------------------------------------------------------------------
// Validation

describe('validateSnpReport', () => {
  const MEAS = Buffer.alloc(48, 0x4d);
  const HOST = Buffer.alloc(32, 0x48);
  const IDK = Buffer.alloc(48, 0x49);
  const AUTH = Buffer.alloc(48, 0x41);
  const FAMILY = Buffer.alloc(16, 0x46);
  const IMAGE = Buffer.alloc(16, 0x69);
  const NONCE = Buffer.alloc(32, 0x6e);

  function report(fields: ReportFields = {}, product: SnpProduct = 'Milan') {
    const r = parseSnpReport(
      buildReport({
        product,
        measurement: MEAS,
        hostData: HOST,
        idKeyDigest: IDK,
        authorKeyDigest: AUTH,
        authorKeyEn: true,
        familyId: FAMILY,
        imageId: IMAGE,
        reportData: Buffer.concat([NONCE, Buffer.alloc(32)]),
        guestSvn: 3,
        vmpl: 0,
        policy: 0x30000n,
        platformInfo: 1n,
        ...fields,
      }),
    );
    return { r, tcb: decodeTcbSet(r, product) };
  }

  /** The check named `name` passed; assertChecks does not throw. */
  function passes(exp: SnpExpectations, name: string, fields: ReportFields = {}, product: SnpProduct = 'Milan'): Check {
    const { r, tcb } = report(fields, product);
    const checks = validateSnpReport(r, tcb, exp);
    const c = checks.find((x) => x.name === name);
    assert.ok(c, `no ${name} check in ${checks.map((x) => x.name).join(', ')}`);
    assert.equal(c.ok, true, `${name}: ${c.description}`);
    assert.doesNotThrow(() => assertChecks(checks));
    return c;
  }

  /** The check named `name` failed with `code`, and assertChecks throws that code with all checks attached. */
  function fails(exp: SnpExpectations, name: string, code: string, fields: ReportFields = {}, product: SnpProduct = 'Milan'): Check {
    const { r, tcb } = report(fields, product);
    const checks = validateSnpReport(r, tcb, exp);
    const c = checks.find((x) => x.name === name);
    assert.ok(c, `no ${name} check`);
    assert.equal(c.ok, false);
    assert.equal(c.code, code);
    const failed = checks.filter((x) => !x.ok);
    assert.deepEqual(failed.map((x) => x.name), [name], 'only this rule fails');
    const e = expectCoffer(() => assertChecks(checks), code, { kind: 'verify' });
    assert.deepEqual(e.details?.checks, checks);
    return c;
  }

  test('safe defaults: with no expectations the policy and firmware rules run and pass, and what was not compared says NOT CHECKED', () => {
    const { r, tcb } = report();
    const checks = validateSnpReport(r, tcb, {});
    assert.deepEqual(checks.map((c) => c.name), ['snp.measurement', 'snp.report-data', 'snp.policy.debug', 'snp.policy.migration-agent', 'snp.tcb.minimum', 'snp.firmware.committed']);
    assert.ok(checks.every((c) => c.ok));
    assert.deepEqual(checks.filter((c) => c.notChecked).map((c) => c.name), ['snp.measurement', 'snp.report-data', 'snp.tcb.minimum']);
    for (const c of checks.filter((x) => x.notChecked)) assert.match(c.description, /^NOT CHECKED: /);
  });

  test('minimum TCB applies to REPORTED, COMMITTED and CURRENT; LAUNCH has its own minimum', () => {
    const base = defaultTcb('Milan');
    const older = { ...base, snp: base.snp - 1 };
    fails({ minimumTcb: { snp: base.snp } }, 'snp.tcb.minimum', 'SNP_TCB_TOO_LOW', { committedTcb: older, currentTcb: older });
    passes({ minimumTcb: { snp: base.snp } }, 'snp.tcb.minimum', { launchTcb: older });
    fails({ minimumLaunchTcb: { snp: base.snp } }, 'snp.tcb.launch-minimum', 'SNP_TCB_TOO_LOW', { launchTcb: older });
    passes({ minimumLaunchTcb: { snp: base.snp - 1 } }, 'snp.tcb.launch-minimum', { launchTcb: older });
  });

  test('provisional firmware (current version ≠ committed) is refused unless allowed', () => {
    const prov: ReportFields = { currentVersion: { major: 1, minor: 55, build: 40 }, committedVersion: { major: 1, minor: 55, build: 30 } };
    fails({}, 'snp.firmware.committed', 'SNP_PROVISIONAL_FIRMWARE', prov);
    passes({ allowProvisionalFirmware: true }, 'snp.firmware.committed', prov);
  });

  test('unknown PLATFORM_INFO bits are refused unless allowed; SEV_TIO_EN (bit 7) is known', () => {
    fails({}, 'snp.platform-info', 'SNP_PLATFORM_INFO_UNKNOWN', { platformInfo: 0x41n });
    passes({ allowUnknownPlatformInfo: true }, 'snp.platform-info', { platformInfo: 0x41n });
    const { r, tcb } = report({ platformInfo: 0x81n });
    assert.equal(r.platformInfo.tioEnabled, true);
    assert.equal(validateSnpReport(r, tcb, {}).some((c) => c.name === 'snp.platform-info'), false);
  });

  test('signing key kind and VLEK cloud provider can be required', () => {
    const { r, tcb } = report();
    const vcek = validateSnpReport(r, tcb, { signingKey: 'vlek' }, { kind: 'vcek', cspId: undefined });
    assert.equal(vcek.find((c) => c.name === 'snp.signing-key.required')?.code, 'SNP_WRONG_KEY_TYPE');
    assert.ok(validateSnpReport(r, tcb, { signingKey: 'vcek' }, { kind: 'vcek', cspId: undefined }).every((c) => c.ok));
    const aws = 'CN=cc-us-east-2.amazonaws.com';
    assert.ok(validateSnpReport(r, tcb, { cspIds: [aws] }, { kind: 'vlek', cspId: aws }).every((c) => c.ok));
    assert.equal(validateSnpReport(r, tcb, { cspIds: [aws] }, { kind: 'vlek', cspId: 'CN=other' }).find((c) => !c.ok)?.code, 'SNP_CSP_MISMATCH');
    assert.equal(validateSnpReport(r, tcb, { cspIds: [aws] }, { kind: 'vcek', cspId: undefined }).find((c) => !c.ok)?.code, 'SNP_CSP_MISMATCH');
  });

  test('measurement: one of a list', () => {
    passes({ measurements: [Buffer.alloc(48, 1), MEAS] }, 'snp.measurement');
    const c = fails({ measurements: [Buffer.alloc(48, 1), Buffer.alloc(48, 2)] }, 'snp.measurement', 'SNP_MEASUREMENT_MISMATCH');
    assert.equal(c.found, MEAS.toString('hex'));
    assert.equal(c.expected, `${'01'.repeat(48)} | ${'02'.repeat(48)}`);
  });

  test('report data: a 32-byte value is zero-padded to 64; a wrong or over-long one fails', () => {
    passes({ reportData: NONCE }, 'snp.report-data');
    passes({ reportData: Buffer.concat([NONCE, Buffer.alloc(32)]) }, 'snp.report-data');
    fails({ reportData: Buffer.alloc(32, 0x6f) }, 'snp.report-data', 'SNP_REPORT_DATA_MISMATCH');
    // The padding is zeros: the same nonce followed by non-zero bytes is not a match.
    fails({ reportData: NONCE }, 'snp.report-data', 'SNP_REPORT_DATA_MISMATCH', { reportData: Buffer.concat([NONCE, Buffer.alloc(32, 1)]) });
    fails({ reportData: Buffer.alloc(65) }, 'snp.report-data', 'SNP_REPORT_DATA_MISMATCH');
  });

  test('host data', () => {
    passes({ hostData: HOST }, 'snp.host-data');
    fails({ hostData: Buffer.alloc(32, 0x47) }, 'snp.host-data', 'SNP_HOST_DATA_MISMATCH');
  });

  test('family id and image id', () => {
    passes({ familyId: FAMILY }, 'snp.family-id');
    fails({ familyId: Buffer.alloc(16) }, 'snp.family-id', 'SNP_FAMILY_ID_MISMATCH');
    passes({ imageId: IMAGE }, 'snp.image-id');
    fails({ imageId: Buffer.alloc(16) }, 'snp.image-id', 'SNP_IMAGE_ID_MISMATCH');
  });

  test('minimum TCB per component (Milan)', () => {
    const t = defaultTcb('Milan');
    passes({ minimumTcb: { bootloader: t.bl, tee: t.tee, snp: t.snp, microcode: t.ucode } }, 'snp.tcb.minimum');
    for (const [k, v] of [['bootloader', t.bl], ['tee', t.tee], ['snp', t.snp], ['microcode', t.ucode]] as const) {
      const c = fails({ minimumTcb: { [k]: v + 1 } }, 'snp.tcb.minimum', 'SNP_TCB_TOO_LOW');
      assert.match(c.description, new RegExp(`REPORTED_TCB ${k} \\(${v} < ${v + 1}\\)`));
    }
    // Milan has no FMC: asking for one cannot be met.
    const c = fails({ minimumTcb: { fmc: 0 } }, 'snp.tcb.minimum', 'SNP_TCB_TOO_LOW');
    assert.match(c.description, /no fmc/);
  });

  test('minimum TCB per component on Turin, FMC included', () => {
    const t = defaultTcb('Turin');
    passes({ minimumTcb: { fmc: t.fmc, bootloader: t.bl, tee: t.tee, snp: t.snp, microcode: t.ucode } }, 'snp.tcb.minimum', {}, 'Turin');
    const c = fails({ minimumTcb: { fmc: (t.fmc ?? 0) + 1 } }, 'snp.tcb.minimum', 'SNP_TCB_TOO_LOW', {}, 'Turin');
    assert.match(c.description, /fmc/);
    fails({ minimumTcb: { microcode: t.ucode + 1 } }, 'snp.tcb.minimum', 'SNP_TCB_TOO_LOW', {}, 'Turin');
  });

  test('debug: forbidden by default, allowed with allowDebug', () => {
    const debug: ReportFields = { policy: 0x30000n | (1n << 19n) };
    fails({}, 'snp.policy.debug', 'SNP_DEBUG_ALLOWED', debug);
    fails({ allowDebug: false }, 'snp.policy.debug', 'SNP_DEBUG_ALLOWED', debug);
    const c = passes({ allowDebug: true }, 'snp.policy.debug', debug);
    assert.match(c.description, /explicitly accepted/);
    passes({}, 'snp.policy.debug');
  });

  test('the real go-sev-guest report (policy 0xb0000, debug) is refused by default and accepted with allowDebug', () => {
    const r = parseSnpReport(vector('amd-snp/go-sev-guest/attestation.bin'));
    const tcb = decodeTcbSet(r, 'Milan');
    expectCoffer(() => assertChecks(validateSnpReport(r, tcb, {})), 'SNP_DEBUG_ALLOWED');
    assert.doesNotThrow(() => assertChecks(validateSnpReport(r, tcb, { allowDebug: true, minimumFirmware: { major: 1, minor: 49 } })));
    // go-sev-guest check_test: min_version 1.49 ok, 1.50 fails.
    expectCoffer(() => assertChecks(validateSnpReport(r, tcb, { allowDebug: true, minimumFirmware: { major: 1, minor: 50 } })), 'SNP_FIRMWARE_TOO_OLD');
  });

  test('migration agent: forbidden by default, allowed with allowMigrationAgent', () => {
    const ma: ReportFields = { policy: 0x30000n | (1n << 18n) };
    fails({}, 'snp.policy.migration-agent', 'SNP_MIGRATION_AGENT_ALLOWED', ma);
    passes({ allowMigrationAgent: true }, 'snp.policy.migration-agent', ma);
  });

  test('SMT: when disallowed, neither the policy nor the platform may have it', () => {
    const off: ReportFields = { policy: 0x20000n, platformInfo: 0n };
    passes({ allowSmt: false }, 'snp.smt', off);
    fails({ allowSmt: false }, 'snp.smt', 'SNP_SMT_ENABLED', { policy: 0x30000n, platformInfo: 0n });
    fails({ allowSmt: false }, 'snp.smt', 'SNP_SMT_ENABLED', { policy: 0x20000n, platformInfo: 1n });
    // allowSmt true (or unset) runs no SMT rule.
    const { r, tcb } = report();
    assert.equal(validateSnpReport(r, tcb, { allowSmt: true }).some((c) => c.name === 'snp.smt'), false);
  });

  test('VMPL', () => {
    passes({ vmpl: 0 }, 'snp.vmpl');
    passes({ vmpl: 2 }, 'snp.vmpl', { vmpl: 2 });
    const c = fails({ vmpl: 0 }, 'snp.vmpl', 'SNP_VMPL_MISMATCH', { vmpl: 1 });
    assert.equal(c.expected, '0');
    assert.equal(c.found, '1');
  });

  test('ID key digest and author key digest', () => {
    passes({ idKeyDigests: [IDK] }, 'snp.id-key');
    fails({ idKeyDigests: [AUTH] }, 'snp.id-key', 'SNP_ID_KEY_MISMATCH');
    passes({ authorKeyDigests: [AUTH] }, 'snp.author-key');
    fails({ authorKeyDigests: [IDK] }, 'snp.author-key', 'SNP_AUTHOR_KEY_MISMATCH');
    // Required author key, but the guest was launched without one.
    const c = fails({ authorKeyDigests: [AUTH] }, 'snp.author-key', 'SNP_AUTHOR_KEY_MISMATCH', { authorKeyEn: false });
    assert.match(c.description, /AUTHOR_KEY_EN = 0/);
  });

  test('guest SVN minimum', () => {
    passes({ minimumGuestSvn: 3 }, 'snp.guest-svn');
    fails({ minimumGuestSvn: 4 }, 'snp.guest-svn', 'SNP_GUEST_SVN_TOO_LOW');
  });

  test('firmware minimum compares major, then minor', () => {
    const fw: ReportFields = { currentVersion: { major: 1, minor: 55, build: 40 }, committedVersion: { major: 1, minor: 55, build: 40 } };
    passes({ minimumFirmware: { major: 1, minor: 55 } }, 'snp.firmware', fw);
    passes({ minimumFirmware: { major: 1, minor: 9 } }, 'snp.firmware', fw);
    passes({ minimumFirmware: { major: 0, minor: 99 } }, 'snp.firmware', fw);
    fails({ minimumFirmware: { major: 1, minor: 56 } }, 'snp.firmware', 'SNP_FIRMWARE_TOO_OLD', fw);
    fails({ minimumFirmware: { major: 2, minor: 0 } }, 'snp.firmware', 'SNP_FIRMWARE_TOO_OLD', fw);
  });

  test('every rule is evaluated: a report wrong in three ways lists three failures, and assertChecks names the first', () => {
    const { r, tcb } = report({ policy: 0x30000n | (1n << 19n), vmpl: 1 });
    const checks = validateSnpReport(r, tcb, { measurements: [Buffer.alloc(48)], vmpl: 0 });
    assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.code), ['SNP_MEASUREMENT_MISMATCH', 'SNP_DEBUG_ALLOWED', 'SNP_VMPL_MISMATCH']);
    expectCoffer(() => assertChecks(checks), 'SNP_MEASUREMENT_MISMATCH');
  });

  test('validation on a verified real report: trustee test-report.bin with its ID block values', () => {
    const v = verifySnpReport(vector('amd-snp/trustee/test-report.bin'), { at: REAL_AT, certificates: certs('amd-snp/trustee/test-vcek.der', MILAN_CHAIN) });
    const checks = validateSnpReport(v.report, v.tcb, {
      measurements: [Buffer.from('a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c', 'hex')],
      reportData: Buffer.from('ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2', 'hex'),
      idKeyDigests: [Buffer.from('0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3', 'hex')],
      familyId: Buffer.from([1]),
      imageId: Buffer.from([2]),
      minimumGuestSvn: 4,
      minimumTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
      minimumFirmware: { major: 1, minor: 52 },
      vmpl: 0,
    });
    assert.ok(checks.every((c) => c.ok), JSON.stringify(checks.filter((c) => !c.ok)));
    expectCoffer(() => assertChecks(validateSnpReport(v.report, v.tcb, { minimumTcb: { microcode: 116 } })), 'SNP_TCB_TOO_LOW');
  });
});

describe('review follow-ups', () => {
  test('without a CRL the revocation link is reported NOT CHECKED (ok, but flagged), and with one it is checked', () => {
    const v = verify(signed(milanChip.key), chainOf(milan, milanChip.vcek));
    const rev = v.checks.find((c) => c.name === 'pki.revocation');
    assert.ok(rev);
    assert.equal(rev.notChecked, true);
    assert.match(rev.description, /^NOT CHECKED: no CRL/);
    const crl = new Crl(milan.crl({ revokedSerials: [] }).der);
    const w = verify(signed(milanChip.key), chainOf(milan, milanChip.vcek), { crls: [crl] });
    const checked = w.checks.find((c) => c.name === 'pki.revocation');
    assert.ok(checked && checked.ok && !checked.notChecked);
  });

  test('the same VCEK supplied twice is one candidate; of two different VCEKs the one that signed is used', () => {
    const twice = [...chainOf(milan, milanChip.vcek), cert(milanChip.vcek)];
    assert.equal(verify(signed(milanChip.key), twice).signingKey, 'vcek');
    const other = chip(milan, Buffer.alloc(64, 0x77));
    const both = [cert(other.vcek), ...chainOf(milan, milanChip.vcek)];
    assert.equal(verify(signed(milanChip.key), both).endorsementKey.sha256, cert(milanChip.vcek).sha256);
  });

  test('a VCEK certifying a non-zero reserved TCB component (spl_4) is refused', () => {
    const key = p384();
    const vcek = milan.issueVcek({
      chipId: defaultChipId('Milan'),
      tcb: defaultTcb('Milan'),
      key,
      omitExtensions: ['1.3.6.1.4.1.3704.1.3.4'],
      extraExtensions: [{ oid: '1.3.6.1.4.1.3704.1.3.4', value: Buffer.from([0x02, 0x01, 0x01]) }],
    });
    expectCoffer(() => verify(signed(key), chainOf(milan, vcek)), 'SNP_BAD_ENDORSEMENT_KEY', { kind: 'input' });
  });
});
