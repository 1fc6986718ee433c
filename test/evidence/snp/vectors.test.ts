// Every real SEV-SNP report in shared/vectors verifies down to AMD's pinned ARK with its own
// certificates, and decodes to the values the manifest gives (which come from the origin
// repositories' own tests or an independent re-check).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { encode as cborEncode, decode as cborDecode } from 'cbor2';
import type { Check } from '../../../src/check.js';
import { parseCertificates, type Certificate } from '../../../src/pki/certificate.js';
import { PINNED_ROOTS, amdRoots, loadPinnedRoot } from '../../../src/pki/roots.js';
import { parseSnpReport, productFromCpuid, type SnpProduct, type SnpReport } from '../../../src/evidence/snp/report.js';
import { decodeTcb } from '../../../src/evidence/snp/tcb.js';
import { verifySnpReport, type SnpVerified } from '../../../src/evidence/snp/verify.js';
import { snpClaims } from '../../../src/evidence/snp/claims.js';
import { decodeSnpEvidence, fromTsm, parseCertTable } from '../../../src/evidence/snp/input.js';
import { AMD_OID } from '../../../src/evidence/snp/vcek.js';
import { GENOA_CHAIN, MILAN_CHAIN, MILAN_VLEK_CHAIN, REAL_AT, certs, expectCoffer, expectedFor, vector } from './real-vectors.js';

// ---------------------------------------------------------------------------------------------
// Reading the manifest's human-written values.

const hexOf = (v: string | number | undefined, what: string): string => {
  const m = /^([0-9a-f]+)/i.exec(String(v ?? ''));
  assert.ok(m?.[1], `manifest ${what} is not hex: ${String(v)}`);
  return m[1].toLowerCase();
};

function tcbOf(v: string | number | undefined, what: string): { bl: number; tee: number; snp: number; ucode: number; raw?: bigint } {
  const s = String(v ?? '');
  const m = /bl=(\d+) tee=(\d+) snp=(\d+) ucode=(\d+)/.exec(s);
  assert.ok(m, `manifest ${what} has no bl/tee/snp/ucode: ${s}`);
  const raw = /0x([0-9a-f]{16})/i.exec(s);
  return { bl: Number(m[1]), tee: Number(m[2]), snp: Number(m[3]), ucode: Number(m[4]), ...(raw?.[1] ? { raw: BigInt(`0x${raw[1]}`) } : {}) };
}

function firmwareOf(v: string | number | undefined): { major: number; minor: number; build: number } {
  const s = String(v ?? '');
  const m = /^(\d+)\.(\d+)(?:\.(\d+)| build (\d+))/.exec(s);
  assert.ok(m, `manifest firmware not understood: ${s}`);
  return { major: Number(m[1]), minor: Number(m[2]), build: Number(m[3] ?? m[4]) };
}

const numberOf = (v: string | number | undefined): number => (typeof v === 'number' ? v : Number(/^(0x[0-9a-f]+|\d+)/i.exec(String(v))?.[1]));

/**
 * Asserts every value the manifest gives for a report (and refuses a manifest key it does not
 * understand, so that nothing the manifest states goes unchecked by accident).
 */
function assertManifest(report: SnpReport, product: SnpProduct, exp: Record<string, string | number>, keys: readonly string[]): void {
  const layout = (raw: bigint) => decodeTcb(raw, product);
  for (const key of keys) {
    const v = exp[key];
    assert.ok(v !== undefined, `manifest lacks ${key}`);
    switch (key) {
      case 'version':
      case 'snp_version':
        assert.equal(report.version, v);
        break;
      case 'product': {
        const m = /^(Milan|Genoa|Turin)/.exec(String(v));
        assert.ok(m, `product ${String(v)}`);
        assert.equal(product, m[1]);
        if (report.cpuid) assert.equal(productFromCpuid(report.cpuid), m[1]);
        const cpu = /fam 0x([0-9a-f]+) model 0x([0-9a-f]+)(?: step 0x([0-9a-f]+))?/i.exec(String(v));
        if (cpu) {
          assert.equal(report.cpuid?.family, parseInt(cpu[1] as string, 16));
          assert.equal(report.cpuid?.model, parseInt(cpu[2] as string, 16));
          if (cpu[3]) assert.equal(report.cpuid?.stepping, parseInt(cpu[3], 16));
        }
        const model = /model 0x([0-9a-f]+)/i.exec(String(v));
        if (model && !cpu) assert.equal(report.cpuid?.model, parseInt(model[1] as string, 16));
        break;
      }
      case 'policy':
        assert.equal(report.policy.raw, BigInt(`0x${hexOf(String(v).replace(/^0x/i, ''), key)}`));
        break;
      case 'vmpl':
      case 'guest_svn':
        assert.equal(key === 'vmpl' ? report.vmpl : report.guestSvn, v);
        break;
      case 'platform_info':
        assert.equal(report.platformInfo.raw, BigInt(numberOf(v)));
        break;
      case 'key_info': {
        assert.equal(report.keyInfo.raw, numberOf(v));
        const kind = /\((VCEK|VLEK)\)/.exec(String(v))?.[1];
        if (kind) assert.equal(report.keyInfo.signingKey, kind.toLowerCase());
        break;
      }
      case 'report_data': {
        const s = String(v);
        const twice = /^([0-9a-f]+) x2/.exec(s);
        assert.equal(report.reportData.toString('hex'), twice?.[1] ? twice[1].repeat(2) : hexOf(s, key));
        break;
      }
      case 'report_data[0:32]':
        assert.equal(report.reportData.subarray(0, 32).toString('hex'), hexOf(v, key));
        break;
      case 'measurement':
        assert.equal(report.measurement.toString('hex'), hexOf(v, key));
        break;
      case 'host_data':
        assert.equal(report.hostData.toString('hex'), hexOf(v, key));
        break;
      case 'report_id':
        assert.equal(report.reportId.toString('hex'), hexOf(v, key));
        break;
      case 'family_id':
        assert.equal(report.familyId.toString('hex'), hexOf(v, key));
        break;
      case 'image_id':
        assert.equal(report.imageId.toString('hex'), hexOf(v, key));
        break;
      case 'id_key_digest':
        assert.equal(report.idKeyDigest.toString('hex'), hexOf(v, key));
        break;
      case 'chip_id': {
        const s = String(v);
        const chip = report.chipId.toString('hex');
        if (s.startsWith('all zero')) assert.equal(chip, '00'.repeat(64));
        else if (s.includes('…')) {
          const [head, tail] = s.split('…') as [string, string];
          assert.ok(chip.startsWith(head) && chip.endsWith(tail), `chip id ${chip} is not ${s}`);
        } else assert.equal(chip, hexOf(s, key));
        break;
      }
      case 'chip_id_prefix':
        assert.ok(report.chipId.toString('hex').startsWith(hexOf(v, key)));
        break;
      case 'reported_tcb':
      case 'current_tcb': {
        const want = tcbOf(v, key);
        const raw = key === 'reported_tcb' ? report.reportedTcb : report.currentTcb;
        const got = layout(raw);
        assert.deepEqual({ bl: got.bootloader, tee: got.tee, snp: got.snp, ucode: got.microcode }, { bl: want.bl, tee: want.tee, snp: want.snp, ucode: want.ucode }, key);
        if (want.raw !== undefined) assert.equal(raw, want.raw);
        break;
      }
      case 'firmware':
        assert.deepEqual(report.currentVersion, firmwareOf(v));
        break;
      default:
        assert.fail(`test does not know how to check manifest key ${key}`);
    }
  }
}

function assertVerified(v: SnpVerified, product: SnpProduct, kind: 'vcek' | 'vlek'): void {
  assert.equal(v.product, product);
  assert.equal(v.signingKey, kind);
  assert.deepEqual(
    v.chain.map((c) => c.subjectCn),
    [kind === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK', kind === 'vcek' ? `SEV-${product}` : `SEV-VLEK-${product}`, `ARK-${product}`],
  );
  // The chain ends at the pinned root itself, not at the ARK copy that came with the evidence.
  const pin = PINNED_ROOTS.find((p) => p.product === product);
  assert.equal(v.chain[2]?.sha256, pin?.sha256);
  assert.ok(v.checks.every((c: Check) => c.ok), JSON.stringify(v.checks.filter((c) => !c.ok)));
  const names = v.checks.map((c) => c.name);
  for (const n of ['snp.signature', 'snp.format', 'snp.signing-key', 'snp.product', 'pki.anchor', 'pki.validity', 'snp.tcb', 'snp.chip-id']) {
    assert.ok(names.includes(n), `missing check ${n} in ${names.join(', ')}`);
  }
  assert.equal(v.tcb.reported.raw, v.report.reportedTcb);
  // The endorsement key certifies exactly the reported TCB.
  assert.deepEqual(
    { bl: v.endorsement.tcb.bootloader, tee: v.endorsement.tcb.tee, snp: v.endorsement.tcb.snp, ucode: v.endorsement.tcb.microcode },
    { bl: v.tcb.reported.bootloader, tee: v.tcb.reported.tee, snp: v.tcb.reported.snp, ucode: v.tcb.reported.microcode },
  );
}

// ---------------------------------------------------------------------------------------------

describe('real SEV-SNP reports verify and decode to the manifest values', () => {
  test('go-sev-guest attestation.bin (Milan v2, debug policy) with its VCEK and the Milan chain', () => {
    const file = 'amd-snp/go-sev-guest/attestation.bin';
    const raw = vector(file);
    const v = verifySnpReport(raw, { at: REAL_AT, certificates: certs('amd-snp/go-sev-guest/vcek.der', MILAN_CHAIN) });
    assertVerified(v, 'Milan', 'vcek');
    const exp = expectedFor(file);
    assertManifest(v.report, 'Milan', exp, ['version', 'product', 'vmpl', 'report_data', 'measurement', 'host_data', 'report_id', 'chip_id', 'reported_tcb', 'platform_info', 'firmware']);
    // "0xb0000 (SMT, debug allowed ...)"
    assert.equal(v.report.policy.raw, 0xb0000n);
    assert.equal(v.report.policy.smt, true);
    assert.equal(v.report.policy.debug, true);
    assert.equal(v.report.policy.migrateMa, false);
    assert.equal(v.report.cpuid, undefined);
    assert.equal(v.report.keyInfo.signingKey, 'vcek');
    assert.equal(v.report.guestSvn, 0);
    assert.equal(v.report.idKeyDigest.toString('hex'), '00'.repeat(48), 'launched without an ID block');
    // No ID block: every TCB is the same one.
    for (const t of [v.report.currentTcb, v.report.committedTcb, v.report.launchTcb]) assert.equal(t, 0x4405000000000002n);
    assert.deepEqual(v.report.committedVersion, { major: 1, minor: 49, build: 3 });

    const vcekExp = expectedFor('amd-snp/go-sev-guest/vcek.der');
    assert.equal(v.endorsementKey.notBefore.toISOString().slice(0, 10), vcekExp.not_before);
    assert.equal(v.endorsementKey.notAfter.toISOString().slice(0, 10), vcekExp.not_after);
    assert.equal(v.endorsement.productName, vcekExp.productName_ext);
    const [hwHead, hwTail] = String(vcekExp['hwid_ext_1.3.6.1.4.1.3704.1.4']).split('…') as [string, string];
    const hw = v.endorsement.hwId?.toString('hex') ?? '';
    assert.ok(hw.startsWith(hwHead) && hw.endsWith(hwTail));
    assert.equal(hw, v.report.chipId.toString('hex'));

    const claims = snpClaims(v.report, v.product);
    assert.equal(claims.product, 'Milan');
    assert.equal(claims.signingKey, 'vcek');
    assert.equal(claims.currentFirmware, '1.49.3');
    assert.deepEqual(claims.reportedTcb, { raw: '4405000000000002', bootloader: 2, tee: 0, snp: 5, microcode: 68 });
  });

  test('trustee test-report.bin (Milan v2 with an ID block) with test-vcek.der and the Milan chain', () => {
    const file = 'amd-snp/trustee/test-report.bin';
    const v = verifySnpReport(vector(file), { at: REAL_AT, certificates: certs('amd-snp/trustee/test-vcek.der', MILAN_CHAIN) });
    assertVerified(v, 'Milan', 'vcek');
    assertManifest(v.report, 'Milan', expectedFor(file), [
      'version', 'product', 'guest_svn', 'policy', 'family_id', 'image_id', 'vmpl', 'report_data', 'measurement', 'id_key_digest', 'chip_id', 'current_tcb', 'reported_tcb', 'firmware',
    ]);
    // current microcode 206 was loaded after launch; the VCEK certifies the reported 115.
    assert.equal(v.tcb.current.microcode, 206);
    assert.equal(v.endorsement.tcb.microcode, 115);
    assert.equal(v.report.policy.debug, false);
    assert.equal(v.report.policy.abiMinor, 0x1f);
  });

  test('trustee test-vlek-report.bin (Milan v3, AWS VLEK) verifies inside the VLEK validity window', () => {
    const file = 'amd-snp/trustee/test-vlek-report.bin';
    const chain = certs('amd-snp/trustee/test-vlek.der', MILAN_VLEK_CHAIN);
    const vlekExp = expectedFor('amd-snp/trustee/test-vlek.der');
    const vlek = chain[0] as Certificate;
    assert.equal(vlek.subjectCn, 'SEV-VLEK');
    assert.equal(vlek.notBefore.toISOString().slice(0, 10), vlekExp.not_before);
    assert.equal(vlek.notAfter.toISOString().slice(0, 10), String(vlekExp.not_after).slice(0, 10));
    assert.equal(expectedFor(MILAN_VLEK_CHAIN).ask_cn, 'SEV-VLEK-Milan');

    for (const at of [new Date('2024-12-11T00:00:00Z'), REAL_AT, new Date('2025-12-10T00:00:00Z')]) {
      const v = verifySnpReport(vector(file), { at, certificates: chain });
      assertVerified(v, 'Milan', 'vlek');
      assert.equal(v.endorsement.cspId, 'CN=cc-us-east-2.amazonaws.com');
      assert.equal(v.endorsement.hwId, undefined);
      assertManifest(v.report, 'Milan', expectedFor(file), [
        'version', 'product', 'policy', 'vmpl', 'key_info', 'platform_info', 'chip_id', 'report_data', 'measurement', 'reported_tcb', 'current_tcb', 'firmware',
      ]);
      assert.equal(v.checks.find((c) => c.name === 'snp.chip-id')?.description.includes('CN=cc-us-east-2.amazonaws.com'), true);
    }
    // After 2025-12-10 the VLEK has expired; before 2024-12-10 it did not exist yet.
    expectCoffer(() => verifySnpReport(vector(file), { at: new Date('2025-12-11T00:00:00Z'), certificates: chain }), 'PKI_EXPIRED', { checkName: 'pki.validity', kind: 'verify', message: /SEV-VLEK expired at 2025-12-10/ });
    expectCoffer(() => verifySnpReport(vector(file), { at: new Date('2024-12-01T00:00:00Z'), certificates: chain }), 'PKI_NOT_YET_VALID', { checkName: 'pki.validity' });
  });

  test('trustee e2e-report.bin (Genoa-family model 0xA0, v3) with e2e-vcek.der and the Genoa chain', () => {
    const file = 'amd-snp/trustee/e2e-report.bin';
    const v = verifySnpReport(vector(file), { at: REAL_AT, certificates: certs('amd-snp/trustee/e2e-vcek.der', GENOA_CHAIN) });
    assertVerified(v, 'Genoa', 'vcek');
    assertManifest(v.report, 'Genoa', expectedFor(file), ['version', 'product', 'chip_id']);
    // The .bin was rebuilt from e2e-evidence.json; that entry carries the rest of the values.
    assertManifest(v.report, 'Genoa', expectedFor('amd-snp/trustee/e2e-evidence.json'), ['version', 'policy', 'vmpl', 'measurement', 'report_data', 'reported_tcb', 'firmware']);
    assert.deepEqual(v.report.cpuid, { family: 0x19, model: 0xa0, stepping: 2 });
    assert.equal(v.endorsementKey.notBefore.toISOString().slice(0, 10), '2025-05-27');
  });

  test('e2e-report.bin equals the report fields of e2e-evidence.json', () => {
    const ev = JSON.parse(vector('amd-snp/trustee/e2e-evidence.json').toString('utf8')) as Record<string, unknown>;
    const text = JSON.stringify(ev);
    const r = parseSnpReport(vector('amd-snp/trustee/e2e-report.bin'));
    // The evidence JSON holds the measurement as a byte array; spot-check it is the same one.
    const arr = Array.from(r.measurement).join(',');
    assert.ok(text.includes(arr), 'measurement bytes of the .bin appear in the evidence JSON');
    const vcekBytes = Array.from(vector('amd-snp/trustee/e2e-vcek.der').subarray(0, 64)).join(',');
    assert.ok(text.includes(vcekBytes), 'the VCEK DER of the .der file appears in the evidence JSON');
  });

  test('Azure az-milan-hcl-report.snp.bin (Milan v2) with the VCEK+ASK+ARK bundle, and it is bytes 0x20..0x4C0 of hcl-report.bin', () => {
    const file = 'amd-snp/azure-derived/az-milan-hcl-report.snp.bin';
    const hcl = vector('azure-cvm/trustee-az-snp-vtpm/hcl-report.bin');
    assert.equal(hcl.length, 2600);
    assert.equal(hcl.subarray(0, 4).toString('latin1'), 'HCLA');
    assert.ok(hcl.subarray(0x20, 0x4c0).equals(vector(file)), 'the derived report is the HCL slice [0x20, 0x4C0)');

    const bundle = certs('azure-cvm/trustee-az-snp-vtpm/vcek.pem');
    assert.deepEqual(bundle.map((c) => c.subjectCn), ['SEV-VCEK', 'SEV-Milan', 'ARK-Milan']);
    // Verify the slice taken here (not only the stored copy).
    const v = verifySnpReport(hcl.subarray(0x20, 0x4c0), { at: REAL_AT, certificates: bundle });
    assertVerified(v, 'Milan', 'vcek');
    assertManifest(v.report, 'Milan', expectedFor(file), ['product', 'version', 'measurement', 'report_data[0:32]', 'chip_id_prefix']);
    assertManifest(v.report, 'Milan', expectedFor('azure-cvm/trustee-az-snp-vtpm/hcl-report.bin'), ['snp_version', 'product', 'report_data[0:32]']);
    assert.equal(v.report.reportData.subarray(32).toString('hex'), '00'.repeat(32));
  });

  test('Azure az-genoa-hcl-report.snp.bin (Genoa v3): parsed values; its VCEK is not in the vectors, and another Genoa VCEK is refused', () => {
    const file = 'amd-snp/azure-derived/az-genoa-hcl-report.snp.bin';
    const raw = vector(file);
    const r = parseSnpReport(raw);
    assert.equal(productFromCpuid(r.cpuid), 'Genoa');
    assertManifest(r, 'Genoa', expectedFor(file), ['product', 'version', 'measurement', 'reported_tcb', 'report_data[0:32]']);
    assert.deepEqual(r.cpuid, { family: 0x19, model: 0x11, stepping: 1 });
    assert.equal(r.keyInfo.signingKey, 'vcek');

    for (const vcek of ['amd-snp/trustee/e2e-vcek.der', 'amd-snp/veraison/sevsnp-tsm-report.vcek.pem']) {
      const e = expectCoffer(() => verifySnpReport(raw, { at: REAL_AT, certificates: certs(vcek, GENOA_CHAIN) }), 'SNP_BAD_SIGNATURE', { checkName: 'snp.signature', kind: 'verify' });
      // The message says why: the VCEK belongs to another chip.
      assert.match(e.message, /belongs to chip [0-9a-f]{16}…, the report claims chip 0506ffba875e939c…/);
    }
  });

  test('veraison TSM outblob + its VCEK PEM with the Genoa chain', () => {
    const file = 'amd-snp/veraison/sevsnp-tsm-report.outblob.bin';
    const v = verifySnpReport(vector(file), { at: REAL_AT, certificates: certs('amd-snp/veraison/sevsnp-tsm-report.vcek.pem', GENOA_CHAIN) });
    assertVerified(v, 'Genoa', 'vcek');
    assertManifest(v.report, 'Genoa', expectedFor('amd-snp/veraison/sevsnp-tsm-report.cbor'), ['product', 'version', 'measurement', 'report_data', 'chip_id', 'reported_tcb']);
    assert.equal(v.report.reportData.subarray(0, 32).toString('latin1'), 'MIDBNH28iioisjPyxxxxxxxxxxxxxxxx');
    assert.equal(v.endorsementKey.notBefore.toISOString().slice(0, 10), '2025-04-20');
  });

  test('veraison TSM capture through fromTsm(outblob, auxblob): certificates come from the auxblob', () => {
    const m = cborDecode(vector('amd-snp/veraison/sevsnp-tsm-report.cbor')) as { outblob: Uint8Array; auxblob: Uint8Array; provider: string };
    const entries = parseCertTable(m.auxblob);
    assert.deepEqual(
      entries.map((e) => [e.guid, e.role]),
      [
        ['c0b406a4-a803-4952-9743-3fb6014cd0ae', 'ARK'],
        ['4ab7b379-bbac-4fe4-a02f-05aef327c782', 'ASK'],
        ['63da758d-e664-4564-adc5-f4b93be8accd', 'VCEK'],
      ],
    );
    // "auxblob entry 63da758d-…, offset 4698 len 1879" is the derived VCEK PEM, byte for byte.
    assert.ok(entries[2]?.data.equals(vector('amd-snp/veraison/sevsnp-tsm-report.vcek.pem')));
    assert.ok(Buffer.from(m.auxblob).subarray(4698, 4698 + 1879).equals(vector('amd-snp/veraison/sevsnp-tsm-report.vcek.pem')));

    const ev = fromTsm(m.outblob, m.auxblob);
    assert.ok(ev.report.equals(vector('amd-snp/veraison/sevsnp-tsm-report.outblob.bin')));
    assert.deepEqual(ev.certificates.map((c) => c.subjectCn), ['ARK-Genoa', 'SEV-Genoa', 'SEV-VCEK']);
    const v = verifySnpReport(ev.report, { at: REAL_AT, certificates: ev.certificates });
    assertVerified(v, 'Genoa', 'vcek');
    assertManifest(v.report, 'Genoa', expectedFor('amd-snp/veraison/sevsnp-tsm-report.cbor'), ['measurement', 'report_data', 'chip_id', 'reported_tcb']);
  });

  test('veraison TSM CBOR capture through decodeSnpEvidence', () => {
    const ev = decodeSnpEvidence(vector('amd-snp/veraison/sevsnp-tsm-report.cbor'));
    assert.equal(ev.form, 'tsm-cbor');
    assert.ok(ev.report.equals(vector('amd-snp/veraison/sevsnp-tsm-report.outblob.bin')));
    const v = verifySnpReport(ev.report, { at: REAL_AT, certificates: ev.certificates });
    assertVerified(v, 'Genoa', 'vcek');
  });

  test('the real TSM capture carries provider "sev_guest\\n"; with the newline trimmed decodeSnpEvidence takes it', () => {
    const m = cborDecode(vector('amd-snp/veraison/sevsnp-tsm-report.cbor')) as { outblob: Uint8Array; auxblob: Uint8Array; provider: string };
    assert.equal(m.provider, 'sev_guest\n');
    // Plain Uint8Arrays: cbor2 would encode a Buffer through its toJSON as a map.
    const outblob = new Uint8Array(m.outblob);
    const auxblob = new Uint8Array(m.auxblob);
    const ev = decodeSnpEvidence(cborEncode({ outblob, auxblob, provider: 'sev_guest' }));
    assert.equal(ev.form, 'tsm-cbor');
    assert.ok(ev.report.equals(vector('amd-snp/veraison/sevsnp-tsm-report.outblob.bin')));
    assert.deepEqual(ev.certificates.map((c) => c.subjectCn), ['ARK-Genoa', 'SEV-Genoa', 'SEV-VCEK']);
    const v = verifySnpReport(ev.report, { at: REAL_AT, certificates: ev.certificates });
    assertVerified(v, 'Genoa', 'vcek');
    assertManifest(v.report, 'Genoa', expectedFor('amd-snp/veraison/sevsnp-tsm-report.cbor'), ['product', 'version', 'measurement', 'report_data', 'chip_id', 'reported_tcb']);
    // Without a provider key at all it is accepted too.
    assert.equal(decodeSnpEvidence(cborEncode({ outblob, auxblob })).certificates.length, 3);
  });

  test('a report verifies only with its own certificate: every real report against every other real VCEK fails the signature', () => {
    const pairs: [string, string[]][] = [
      ['amd-snp/go-sev-guest/attestation.bin', ['amd-snp/go-sev-guest/vcek.der', MILAN_CHAIN]],
      ['amd-snp/trustee/test-report.bin', ['amd-snp/trustee/test-vcek.der', MILAN_CHAIN]],
      ['amd-snp/azure-derived/az-milan-hcl-report.snp.bin', ['azure-cvm/trustee-az-snp-vtpm/vcek.pem']],
      ['amd-snp/trustee/e2e-report.bin', ['amd-snp/trustee/e2e-vcek.der', GENOA_CHAIN]],
      ['amd-snp/veraison/sevsnp-tsm-report.outblob.bin', ['amd-snp/veraison/sevsnp-tsm-report.vcek.pem', GENOA_CHAIN]],
    ];
    for (const [report] of pairs) {
      for (const [other, chain] of pairs) {
        if (other === report) continue;
        expectCoffer(() => verifySnpReport(vector(report), { at: REAL_AT, certificates: certs(...chain) }), 'SNP_BAD_SIGNATURE', { checkName: 'snp.signature' });
      }
    }
  });
});

describe('AMD roots', () => {
  const bundles: [string, SnpProduct, string][] = [
    [MILAN_CHAIN, 'Milan', 'SEV-Milan'],
    [MILAN_VLEK_CHAIN, 'Milan', 'SEV-VLEK-Milan'],
    [GENOA_CHAIN, 'Genoa', 'SEV-Genoa'],
    ['amd-snp/amd-certs/ask_ark_genoa_vlek.pem', 'Genoa', 'SEV-VLEK-Genoa'],
    ['amd-snp/amd-certs/ask_ark_turin_vcek.pem', 'Turin', 'SEV-Turin'],
    ['amd-snp/amd-certs/ask_ark_turin_vlek.pem', 'Turin', 'SEV-VLEK-Turin'],
  ];

  test('the pinned roots in src/pki/roots/ are the ARKs of the AMD cert_chain bundles, and their SHA-256 is the pin', () => {
    assert.deepEqual(PINNED_ROOTS.filter((p) => p.vendor === 'AMD').map((p) => p.product).sort(), ['Genoa', 'Milan', 'Turin']);
    for (const [file, product, askCn] of bundles) {
      const exp = expectedFor(file);
      const [ask, ark] = certs(file) as [Certificate, Certificate];
      assert.equal(ask.subjectCn, exp.ask_cn);
      assert.equal(ask.subjectCn, askCn);
      assert.equal(ark.subjectCn, exp.ark_cn);
      assert.equal(ark.subjectCn, `ARK-${product}`);
      const pin = PINNED_ROOTS.find((p) => p.product === product);
      assert.ok(pin);
      // Read the shipped file independently of the loader, and hash it here.
      const shipped = parseCertificates(readFileSync(new URL(`../../../src/pki/roots/${pin.file}`, import.meta.url)), pin.file);
      assert.equal(shipped.length, 1);
      assert.ok(shipped[0]?.der.equals(ark.der), `${pin.file} is not the ARK in ${file}`);
      assert.equal(createHash('sha256').update(ark.der).digest('hex'), pin.sha256);
      assert.equal(loadPinnedRoot(pin.id).cert.sha256, pin.sha256);
      assert.equal(loadPinnedRoot(pin.id).product, product);
    }
    assert.deepEqual(amdRoots().map((r) => r.cert.subjectCn).sort(), ['ARK-Genoa', 'ARK-Milan', 'ARK-Turin']);
  });

  test('the real reports verify without a roots option (default pinned roots) and the ARK copy in the bundle is not what is trusted', () => {
    // Only the VCEK and ASK: the ARK must come from the pins.
    const [ask] = certs(MILAN_CHAIN) as [Certificate];
    const v = verifySnpReport(vector('amd-snp/go-sev-guest/attestation.bin'), { at: REAL_AT, certificates: [...certs('amd-snp/go-sev-guest/vcek.der'), ask] });
    assert.equal(v.chain[2]?.sha256, PINNED_ROOTS[0]?.sha256);
    assert.ok(v.checks.some((c) => c.name === 'pki.anchor' && c.ok && c.description.includes('(pinned)')));
  });

  test('the VCEK extension OIDs the verifier reads are present on the real VCEKs', () => {
    for (const f of ['amd-snp/go-sev-guest/vcek.der', 'amd-snp/trustee/test-vcek.der', 'amd-snp/trustee/e2e-vcek.der']) {
      const c = certs(f)[0] as Certificate;
      for (const oid of [AMD_OID.blSpl, AMD_OID.teeSpl, AMD_OID.snpSpl, AMD_OID.ucodeSpl, AMD_OID.hwId, AMD_OID.productName]) {
        assert.ok(c.extension(oid), `${f} lacks ${oid}`);
      }
      assert.equal(c.extension(AMD_OID.hwId)?.length, 64);
      assert.equal(c.serial, '0');
    }
  });
});
