// The real TPM quotes in ../shared/vectors: GCE Shielded VM (COS 85, three banks, with and
// without a nonce, AK certificate chained to Google's root), the Azure vTPM quote from kinvolk,
// and the Azure SEV-SNP CVM quote signed by the HCL report's HCLAkPub. Values asserted against
// the vectors' extracted.json and README; then every way to break them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CofferError } from '../../../src/errors.js';
import {
  assembleAttestationKey,
  computePcrDigest,
  loadAttestationKey,
  parseAkPart,
  parsePcrFile,
  parsePcrJson,
  parseTpmQuote,
  parseTpmSignature,
  parseTpmtPublic,
  tpmName,
  tpmQuoteClaims,
  verifyTpmQuote,
  type AttestationKey,
  type PcrBanks,
  type TpmVerifyOptions,
} from '../../../src/evidence/tpm/index.js';
import type { Check } from '../../../src/check.js';
import { BANKS, GCE, GCE_AT, GCE_DIRS, KINVOLK, TRUSTEE_SNP, anchor, cert, expectCoffer, gceExtracted, gceQuote, hclRuntimeData, rsassaSha256, vector } from './vectors.js';

const ROOT_1 = 'tpm_ek_root_1.cer';
const INTERMEDIATE_2 = 'tpm_ek_intermediate_2.crt';
const EXPECTED_AK_NAME = '000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4';

function gceAk(dir: string): AttestationKey {
  return loadAttestationKey([
    { data: vector(join(GCE, dir, 'ak_pub.tpmt')), what: 'ak_pub.tpmt' },
    { data: vector(join(GCE, dir, 'ak_cert.der')), what: 'ak_cert.der' },
  ]);
}

function gceOptions(dir: string, over: Partial<TpmVerifyOptions> = {}): TpmVerifyOptions {
  const nonce = gceExtracted(dir).expected_nonce_hex;
  return {
    at: GCE_AT,
    ak: gceAk(dir),
    ...(nonce ? { nonce: Buffer.from(nonce, 'hex') } : { skipNonceCheck: true }),
    pcrs: parsePcrFile(vector(join(GCE, dir, 'extracted.json'))),
    akRoots: [anchor(ROOT_1)],
    akIntermediates: [cert(join(GCE, '../../gcp/ca', INTERMEDIATE_2))],
    ...over,
  };
}

function byName(checks: Check[], name: string): Check {
  const c = checks.find((x) => x.name === name);
  assert.ok(c, `check ${name} present`);
  return c;
}

function failedChecks(e: CofferError): Check[] {
  return ((e.details?.checks as Check[] | undefined) ?? []).filter((c) => !c.ok);
}

describe('GCE Shielded VM quotes (COS 85)', () => {
  for (const dir of GCE_DIRS) {
    const ex = gceExtracted(dir);
    for (const bank of BANKS) {
      test(`${dir} ${bank}: verifies with the AK certificate chained to tpm_ek_root_1; values as extracted`, () => {
        const q = gceQuote(dir, bank);
        const want = ex.quotes.find((x) => x.bank === bank);
        assert.ok(want);
        const v = verifyTpmQuote(q.attest, q.signature, gceOptions(dir));
        assert.ok(v.checks.every((c) => c.ok));
        assert.equal(v.quote.extraData.toString('hex'), want.extra_data);
        assert.equal(v.quote.pcrDigest.toString('hex'), want.pcr_digest);
        assert.equal(v.quote.clockInfo.clock, BigInt(want.clock));
        assert.equal(v.quote.clockInfo.resetCount, want.reset_count);
        assert.equal(v.quote.clockInfo.restartCount, want.restart_count);
        assert.equal(`0x${v.quote.firmwareVersion.toString(16)}`, want.firmware_version);
        assert.deepEqual(v.quote.pcrSelection.map((s) => [s.hashName, s.pcrs]), [[bank, Array.from({ length: 24 }, (_, i) => i)]]);
        assert.equal(v.signature.alg, 'rsassa');
        assert.equal(v.signature.hashName, 'sha256');
        // The digest is over the selected bank's values but always with the signing scheme's hash (SHA-256).
        const concat = Buffer.concat(Array.from({ length: 24 }, (_, i) => Buffer.from(want.pcrs[String(i)] as string, 'hex')));
        assert.equal(createHash('sha256').update(concat).digest('hex'), want.pcr_digest);
        assert.equal(v.pcrs?.get(bank)?.get(0)?.toString('hex'), want.pcrs['0']);
        // Chain: AK certificate → tpm_ek_intermediate_2 → tpm_ek_root_1.
        assert.equal(v.akChain?.[0]?.subject, '');
        assert.equal(v.akChain?.[1]?.subjectCn, 'tpm_ek_v1_cloud_host-signer-0-2020-10-22T14:02:08-07:00 K:1, 2:HBNpA3TPAbM:0:18');
        assert.match(v.akChain?.[2]?.subjectCn ?? '', /^tpm_ek_v1_cloud_host_root-signer-0-2018-04-06/);
        assert.equal(v.akChain?.length, 3);
        assert.equal(v.akChain?.[1]?.sha256, cert(join(GCE, '../../gcp/ca', INTERMEDIATE_2)).sha256);
        assert.equal(v.akChain?.[2]?.sha256, anchor(ROOT_1).cert.sha256);
        assert.equal(byName(v.checks, 'pki.anchor').description, `chain ends at trusted root ${ROOT_1}`);
        assert.match(byName(v.checks, 'tpm.ak.attributes').expected ?? '', /restricted\|sign\|fixedTPM/);
        assert.equal(byName(v.checks, 'tpm.nonce').description.startsWith('NOT CHECKED: WARNING: freshness is unproven'), !ex.expected_nonce_hex);
        assert.equal(byName(v.checks, 'tpm.nonce').notChecked === true, !ex.expected_nonce_hex);
        assert.equal(v.nonceChecked, Boolean(ex.expected_nonce_hex));
      });
    }

    test(`${dir}: AK name, attributes, certificate facts`, () => {
      const ak = gceAk(dir);
      assert.ok(ak.public && ak.certificate);
      assert.equal(ak.public.name.toString('hex'), ex.ak_name);
      assert.equal(ex.ak_name, EXPECTED_AK_NAME);
      assert.equal(tpmName(ak.public).toString('hex'), EXPECTED_AK_NAME);
      assert.equal(ak.public.type, 'rsa');
      assert.equal(ak.public.rsa?.keyBits, 2048);
      assert.equal(ak.public.rsa?.exponent, 65537);
      assert.equal(ak.public.attributes.raw, 0x00050072);
      assert.deepEqual(
        Object.entries(ak.public.attributes).filter(([k, v]) => k !== 'raw' && v === true).map(([k]) => k),
        ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'restricted', 'sign'],
      );
      assert.equal(ak.public.scheme.algName, 'rsassa');
      assert.equal(ak.public.scheme.hashName, 'sha256');
      assert.equal(ak.public.symmetric.algName, 'null');
      assert.equal(ak.certificate.notBefore.toISOString(), '2021-08-31T23:11:05.000Z');
      assert.equal(ak.certificate.notAfter.toISOString(), '2051-08-24T23:16:05.000Z');
      assert.equal(ak.certificate.issuerCn, 'tpm_ek_v1_cloud_host-signer-0-2020-10-22T14:02:08-07:00 K:1, 2:HBNpA3TPAbM:0:18');
      assert.equal(ak.certificate.subject, '');
      assert.deepEqual(ak.forms, ['TPMT_PUBLIC', 'X.509 certificate']);
    });
  }

  test('the qualified signer is the AK qualified name, not its name (both quotes, all banks)', () => {
    for (const dir of GCE_DIRS) {
      for (const bank of BANKS) {
        const q = parseTpmQuote(gceQuote(dir, bank).attest);
        assert.equal(q.qualifiedSigner.toString('hex'), '000bde01fe4b4ade2f8b7ae19b8a8897e0cb77ae417731d8ce38697ec4f6c095030a');
        assert.notEqual(q.qualifiedSigner.toString('hex'), EXPECTED_AK_NAME);
      }
    }
    const v = verifyTpmQuote(gceQuote(GCE_DIRS[1], 'sha256').attest, gceQuote(GCE_DIRS[1], 'sha256').signature, gceOptions(GCE_DIRS[1], { expectedQualifiedSigner: Buffer.from('000bde01fe4b4ade2f8b7ae19b8a8897e0cb77ae417731d8ce38697ec4f6c095030a', 'hex') }));
    assert.equal(byName(v.checks, 'tpm.qualified-signer').description, "the quote's qualified signer equals the AK's expected qualified name");
    const e = expectCoffer(() => verifyTpmQuote(gceQuote(GCE_DIRS[1], 'sha256').attest, gceQuote(GCE_DIRS[1], 'sha256').signature, gceOptions(GCE_DIRS[1], { expectedQualifiedSigner: Buffer.from(EXPECTED_AK_NAME, 'hex') })), 'TPM_QUALIFIED_SIGNER_MISMATCH', { kind: 'verify' });
    assert.equal(failedChecks(e)[0]?.expected, EXPECTED_AK_NAME);
  });

  test('verifies with the certificate alone, and with the TPMT_PUBLIC alone (no chain then)', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha1');
    const certOnly = loadAttestationKey([{ data: vector(join(GCE, dir, 'ak_cert.der')), what: 'cert' }]);
    const v1 = verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { ak: certOnly }));
    assert.match(byName(v1.checks, 'tpm.ak.attributes').description, /^NOT CHECKED: .*vouched for only by its certificate issuer/);
    const tpmtOnly = loadAttestationKey([{ data: vector(join(GCE, dir, 'ak_pub.tpmt')), what: 'tpmt' }]);
    const v2 = verifyTpmQuote(q.attest, q.signature, { at: GCE_AT, ak: tpmtOnly, nonce: Buffer.from('9009', 'hex') });
    assert.equal(v2.akChain, undefined);
    assert.match(byName(v2.checks, 'tpm.pcr-digest').description, /^NOT CHECKED: no PCR values supplied/);
    assert.equal(v2.pcrs, undefined);
  });

  test('the nonce quote with the wrong nonce → TPM_NONCE_MISMATCH (expected/found in the check)', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha256');
    for (const n of ['9008', '900900', '09', '0990']) {
      const e = expectCoffer(() => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { nonce: Buffer.from(n, 'hex') })), 'TPM_NONCE_MISMATCH', { kind: 'verify' });
      assert.deepEqual([failedChecks(e)[0]?.expected, failedChecks(e)[0]?.found], [n, '9009']);
    }
    // The no-nonce quote carries an empty extraData: any real nonce fails; an empty one is refused as no nonce at all.
    const nn = gceQuote(GCE_DIRS[0], 'sha256');
    expectCoffer(() => verifyTpmQuote(nn.attest, nn.signature, gceOptions(GCE_DIRS[0], { skipNonceCheck: false, nonce: Buffer.from('9009', 'hex') })), 'TPM_NONCE_MISMATCH');
    expectCoffer(() => verifyTpmQuote(nn.attest, nn.signature, gceOptions(GCE_DIRS[0], { skipNonceCheck: false, nonce: Buffer.alloc(0) })), 'TPM_NONCE_REQUIRED', { kind: 'input' });
    expectCoffer(() => verifyTpmQuote(nn.attest, nn.signature, gceOptions(GCE_DIRS[0], { skipNonceCheck: false })), 'TPM_NONCE_REQUIRED', { kind: 'input' });
  });

  test('any changed PCR value of the selected bank → TPM_PCR_DIGEST_MISMATCH; a missing one → TPM_PCR_MISSING', () => {
    const dir = GCE_DIRS[1];
    for (const bank of BANKS) {
      const q = gceQuote(dir, bank);
      const base = parsePcrFile(vector(join(GCE, dir, 'extracted.json')));
      for (const idx of [0, 7, 10, 17, 23]) {
        const pcrs: PcrBanks = new Map([...base].map(([b, m]) => [b, new Map(m)]));
        const v = Buffer.from(pcrs.get(bank)?.get(idx) as Buffer);
        v[v.length - 1] = (v[v.length - 1] as number) ^ 1;
        pcrs.get(bank)?.set(idx, v);
        const e = expectCoffer(() => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { pcrs })), 'TPM_PCR_DIGEST_MISMATCH', { kind: 'verify' });
        assert.equal(failedChecks(e)[0]?.expected, gceExtracted(dir).quotes.find((x) => x.bank === bank)?.pcr_digest);
        // Changing another bank does not matter: only the selected bank is hashed.
        const other = new Map([...base].map(([b, m]) => [b, new Map(m)]));
        const otherBank = BANKS.find((b) => b !== bank) as 'sha1';
        other.get(otherBank)?.set(idx, Buffer.alloc(other.get(otherBank)?.get(idx)?.length ?? 0, 0x5a));
        assert.ok(verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { pcrs: other })).checks.every((c) => c.ok));
      }
      const missing: PcrBanks = new Map([...base].map(([b, m]) => [b, new Map(m)]));
      missing.get(bank)?.delete(13);
      const e = expectCoffer(() => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { pcrs: missing })), 'TPM_PCR_MISSING', { kind: 'input', message: new RegExp(`${bank}:13`) });
      assert.ok(((e.details?.checks as Check[]) ?? []).some((c) => c.name === 'tpm.signature' && c.ok), 'checks up to the failure are kept');
      expectCoffer(() => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { pcrs: new Map() })), 'TPM_PCR_MISSING');
    }
  });

  test('every byte flip of the TPMS_ATTEST → TPM_BAD_SIGNATURE (the signature is checked before any field)', () => {
    const wrong: string[] = [];
    for (const dir of GCE_DIRS) {
      for (const bank of BANKS) {
        const q = gceQuote(dir, bank);
        const opts = gceOptions(dir);
        for (let i = 0; i < q.attest.length; i++) {
          for (const x of [0x01, 0x80]) {
            const b = Buffer.from(q.attest);
            b[i] = (b[i] as number) ^ x;
            try {
              verifyTpmQuote(b, q.signature, opts);
              wrong.push(`${dir} ${bank} byte ${i}^${x}: accepted`);
            } catch (e) {
              if (!(e instanceof CofferError) || e.code !== 'TPM_BAD_SIGNATURE' || e.kind !== 'verify') wrong.push(`${dir} ${bank} byte ${i}: ${String(e)}`);
            }
          }
        }
        // Truncated or extended by a byte: still a signature failure.
        for (const b of [q.attest.subarray(0, -1), Buffer.concat([q.attest, Buffer.alloc(1)])]) expectCoffer(() => verifyTpmQuote(b, q.signature, opts), 'TPM_BAD_SIGNATURE');
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('every byte flip of the TPMT_SIGNATURE: header → a parse or algorithm error, signature bytes → TPM_BAD_SIGNATURE', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha256');
    const opts = gceOptions(dir);
    const seen = new Map<number, Set<string>>();
    for (let i = 0; i < q.signature.length; i++) {
      for (const x of [0x01, 0x02, 0x80, 0xff]) {
        const s = Buffer.from(q.signature);
        s[i] = (s[i] as number) ^ x;
        let code = 'accepted';
        try {
          verifyTpmQuote(q.attest, s, opts);
        } catch (e) {
          code = e instanceof CofferError ? e.code : String(e);
        }
        const set = seen.get(i) ?? new Set<string>();
        set.add(code);
        seen.set(i, set);
      }
    }
    const codes = (i: number) => [...(seen.get(i) ?? [])].sort();
    // sigAlg 0x0014: another algorithm value is unsupported; 0x0016 (RSAPSS) contradicts the AK's RSASSA scheme.
    assert.deepEqual(codes(0), ['TPM_UNSUPPORTED_ALG']);
    assert.deepEqual(codes(1), ['TPM_SCHEME_MISMATCH', 'TPM_UNSUPPORTED_ALG']);
    // hash 0x000b: 0x000a (XOR) / 0x0009 / 0x008b / 0x00f4 are no hash; 0x010b etc. neither.
    assert.deepEqual(codes(2), ['TPM_UNSUPPORTED_ALG']);
    assert.deepEqual(codes(3), ['TPM_UNSUPPORTED_ALG']);
    // size 0x0100: 0x0000 leaves 256 bytes over, 0x0101/0x0102 runs past the end, 0x8100 and 0xff00 exceed 512.
    assert.deepEqual(codes(4), ['TPM_BAD_SIZE', 'TRAILING_BYTES']);
    assert.deepEqual(codes(5), ['TRUNCATED']);
    for (let i = 6; i < q.signature.length; i++) assert.deepEqual(codes(i), ['TPM_BAD_SIGNATURE'], `byte ${i}`);
    // The header errors are input errors; and a signature hash of SHA-1 is refused, not verified.
    const sha1 = Buffer.from(q.signature);
    sha1.writeUInt16BE(0x0004, 2);
    expectCoffer(() => verifyTpmQuote(q.attest, sha1, opts), 'TPM_UNSUPPORTED_ALG', { message: /SHA-1 signatures are not accepted/ });
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature.subarray(0, 100), opts), 'TRUNCATED', { kind: 'input' });
  });

  test('another AK → TPM_BAD_SIGNATURE; AK parts holding different keys → TPM_AK_MISMATCH', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha256');
    const azure = parseAkPart(vector(join(KINVOLK, 'akpub.pem')), 'akpub.pem');
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { ak: assembleAttestationKey([azure]), akRoots: [], akIntermediates: [] })), 'TPM_BAD_SIGNATURE', { kind: 'verify', message: /does not verify with the supplied AK \(RSA-2048, from PEM public key\)/ });
    // Another Google AK certificate (a real GCE vTPM RSA signing-key certificate): chains fine, wrong key.
    const other = parseAkPart(vector('gcp/gce-ek-ak-certs/pca_tpm_rsa_sign_cert.pem'), 'pca');
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, { ak: assembleAttestationKey([other]), akRoots: [anchor('gcp_ek_ak_ca_root.crt')], akIntermediates: [cert('gcp/ca/gcp_ek_ak_ca_intermediate_v3.crt')] })), 'TPM_BAD_SIGNATURE');
    // The quote's AK TPMT_PUBLIC with someone else's certificate (or key) — go-tpm-tools' "ak_cert onto a different AK".
    const tpmt = parseAkPart(vector(join(GCE, dir, 'ak_pub.tpmt')));
    expectCoffer(() => assembleAttestationKey([tpmt, other]), 'TPM_AK_MISMATCH', { kind: 'verify', message: /X\.509 certificate holds a different key/ });
    expectCoffer(() => assembleAttestationKey([tpmt, azure]), 'TPM_AK_MISMATCH');
    expectCoffer(() => assembleAttestationKey([parseAkPart(vector(join(GCE, dir, 'ak_cert.der'))), azure]), 'TPM_AK_MISMATCH');
  });

  test('an AK public area that is not a restricted TPM-bound signing key → TPM_AK_NOT_RESTRICTED', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha384');
    const raw = vector(join(GCE, dir, 'ak_pub.tpmt'));
    for (const [bit, missing] of [[16, 'restricted'], [1, 'fixedTPM']] as const) {
      const b = Buffer.from(raw);
      b.writeUInt32BE((b.readUInt32BE(4) & ~(1 << bit)) >>> 0, 4);
      const ak = loadAttestationKey([{ data: b, what: 'modified' }]);
      assert.notEqual(ak.public?.name.toString('hex'), EXPECTED_AK_NAME, 'attributes are part of the name');
      const e = expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: GCE_AT, ak, nonce: Buffer.from('9009', 'hex') }), 'TPM_AK_NOT_RESTRICTED', { kind: 'verify', message: new RegExp(`missing ${missing}`) });
      assert.equal(failedChecks(e)[0]?.expected, 'restricted|sign|fixedTPM');
    }
  });

  test('AK certificate chain: wrong root, missing intermediate, self-signed intermediate, outside validity → PKI_*', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha1');
    const run = (over: Partial<TpmVerifyOptions>) => () => verifyTpmQuote(q.attest, q.signature, gceOptions(dir, over));
    // The newer "EK/AK CA Root" does not issue the COS-85 AK.
    expectCoffer(run({ akRoots: [anchor('gcp_ek_ak_ca_root.crt')] }), 'PKI_CHAIN_INCOMPLETE', { kind: 'verify', message: /tpm_ek_v1_cloud_host_root/ });
    expectCoffer(run({ akIntermediates: [] }), 'PKI_CHAIN_INCOMPLETE');
    expectCoffer(run({ akRoots: [anchor('gcp_ek_ak_ca_root.crt')], akIntermediates: [cert('gcp/ca/tpm_ek_intermediate_2.crt'), anchor(ROOT_1).cert] }), 'PKI_UNTRUSTED_ROOT');
    expectCoffer(run({ akIntermediates: [cert('gcp/ca/tpm_ek_intermediate_3.crt')] }), 'PKI_CHAIN_INCOMPLETE');
    expectCoffer(run({ at: new Date('2051-09-01T00:00:00Z') }), 'PKI_EXPIRED');
    expectCoffer(run({ at: new Date('2021-08-30T00:00:00Z') }), 'PKI_NOT_YET_VALID');
    const e = expectCoffer(run({ akRoots: [] }), 'TPM_AK_ROOT_REQUIRED', { kind: 'input' });
    assert.match(e.message, /trusts no vTPM root by default/);
    // The chain failure keeps the checks that passed (signature, format) before it.
    let chainErr: unknown;
    try {
      run({ akRoots: [anchor('gcp_ek_ak_ca_root.crt')] })();
    } catch (err) {
      chainErr = err;
    }
    assert.ok(chainErr instanceof CofferError);
    const names = ((chainErr.details?.checks as Check[]) ?? []).map((c) => `${c.ok ? 'ok' : 'FAIL'} ${c.name}`);
    assert.deepEqual(names.slice(0, 3), ['ok tpm.signature', 'ok tpm.format', 'ok tpm.ak.attributes']);
    assert.equal(names[names.length - 1], 'FAIL pki.chain');
  });

  test('claims: the JSON shape, values from the quote', () => {
    const dir = GCE_DIRS[1];
    const q = gceQuote(dir, 'sha256');
    const v = verifyTpmQuote(q.attest, q.signature, gceOptions(dir));
    const c = tpmQuoteClaims(v.quote, v.signature, v.ak, v.pcrs);
    assert.equal(c.type, 'quote');
    assert.equal(c.extraData, '9009');
    assert.deepEqual(c.clock, { clock: '8219159552', resetCount: 10, restartCount: 0, safe: true });
    assert.equal(c.firmwareVersion, '0x2016051100162800');
    assert.deepEqual(c.signature, { alg: 'rsassa', hash: 'sha256' });
    assert.equal(c.ak?.name, EXPECTED_AK_NAME);
    assert.deepEqual(c.ak?.attributes?.names, ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'restricted', 'sign']);
    assert.equal(c.ak?.attributes?.raw, '0x00050072');
    assert.equal(c.ak?.certificate?.notAfter, '2051-08-24T23:16:05.000Z');
    assert.equal(c.pcrs?.sha256?.['0'], '0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf');
    assert.equal(Object.keys(c.pcrs?.sha256 ?? {}).length, 24);
  });
});

describe('Azure vTPM quotes', () => {
  const kinvolk = () => ({
    attest: vector(join(KINVOLK, 'derived/quote.msg')),
    signature: rsassaSha256(vector(join(KINVOLK, 'derived/quote.sig'))),
    ak: loadAttestationKey([{ data: vector(join(KINVOLK, 'akpub.pem')), what: 'akpub.pem' }]),
    pcrs: parsePcrFile(vector(join(KINVOLK, 'derived/pcrs_sha256.json'))),
  });

  test('kinvolk az-cvm-vtpm quote: the derived files equal quote.bin (bincode), and verify with akpub.pem and nonce "challenge"', () => {
    const bin = vector(join(KINVOLK, 'quote.bin'));
    let off = 0;
    const vec = (elem: number): Buffer => {
      const n = Number(bin.readBigUInt64LE(off));
      off += 8;
      const out = bin.subarray(off, off + n * elem);
      off += n * elem;
      return out;
    };
    const sig = vec(1);
    const msg = vec(1);
    const pcrs = vec(32);
    assert.equal(off, bin.length);
    const k = kinvolk();
    assert.ok(k.attest.equals(msg));
    assert.ok(k.signature.subarray(6).equals(sig));
    assert.deepEqual([...(k.pcrs.get('sha256')?.values() ?? [])].map((v) => v.toString('hex')), Array.from({ length: 24 }, (_, i) => pcrs.subarray(32 * i, 32 * i + 32).toString('hex')));
    const v = verifyTpmQuote(k.attest, k.signature, { at: new Date('2025-06-01T00:00:00Z'), ak: k.ak, nonce: Buffer.from('challenge'), pcrs: k.pcrs });
    assert.ok(v.checks.every((c) => c.ok));
    assert.equal(v.quote.extraData.toString('utf8'), 'challenge');
    assert.equal(v.quote.firmwareVersion, 0x2020031200120003n);
    assert.equal(v.quote.pcrDigest.toString('hex'), computePcrDigest(v.quote.pcrSelection, k.pcrs, 'sha256').toString('hex'));
    assert.match(byName(v.checks, 'tpm.ak.attributes').description, /^NOT CHECKED: .*taken on trust/);
  });

  test('kinvolk negatives (as az-cvm-vtpm tests them): reversed signature, nonce [1,2,3,4], a changed PCR', () => {
    const k = kinvolk();
    const reversed = rsassaSha256(Buffer.from(vector(join(KINVOLK, 'derived/quote.sig'))).reverse());
    expectCoffer(() => verifyTpmQuote(k.attest, reversed, { at: new Date(), ak: k.ak, nonce: Buffer.from('challenge'), pcrs: k.pcrs }), 'TPM_BAD_SIGNATURE');
    expectCoffer(() => verifyTpmQuote(k.attest, k.signature, { at: new Date(), ak: k.ak, nonce: Buffer.from([1, 2, 3, 4]), pcrs: k.pcrs }), 'TPM_NONCE_MISMATCH');
    const pcrs = parsePcrJson(vector(join(KINVOLK, 'derived/pcrs_sha256.json')).toString('utf8').replace(/"0": "f/, '"0": "e'));
    expectCoffer(() => verifyTpmQuote(k.attest, k.signature, { at: new Date(), ak: k.ak, nonce: Buffer.from('challenge'), pcrs }), 'TPM_PCR_DIGEST_MISMATCH');
  });

  const trustee = () => {
    const q = JSON.parse(vector(join(TRUSTEE_SNP, 'tpm-quote-v1.json')).toString('utf8')) as { signature: string; message: string; pcrs: string[] };
    const jwk = hclRuntimeData(vector(join(TRUSTEE_SNP, 'hcl-report.bin'))).keys.find((k) => k.kid === 'HCLAkPub');
    assert.ok(jwk);
    return {
      q,
      attest: Buffer.from(q.message, 'hex'),
      signature: rsassaSha256(Buffer.from(q.signature, 'hex')),
      ak: loadAttestationKey([{ data: Buffer.from(JSON.stringify(jwk)), what: 'HCLAkPub' }]),
      pcrs: parsePcrJson(JSON.stringify({ pcrs: q.pcrs })),
    };
  };

  test('trustee az-snp-vtpm quote verifies with the HCL report HCLAkPub JWK; PCR 0 as expected', () => {
    const t = trustee();
    assert.deepEqual(t.ak.forms, ['JWK']);
    const v = verifyTpmQuote(t.attest, t.signature, { at: new Date(), ak: t.ak, nonce: Buffer.from('challenge'), pcrs: t.pcrs });
    assert.ok(v.checks.every((c) => c.ok));
    assert.equal(v.pcrs?.get('sha256')?.get(0)?.toString('hex'), 'f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be');
    assert.deepEqual(v.quote.pcrSelection.map((s) => [s.hashName, s.pcrs.length]), [['sha256', 24]]);
    // The HCLEkPub (a key the HCL report also carries) did not sign it.
    const ek = hclRuntimeData(vector(join(TRUSTEE_SNP, 'hcl-report.bin'))).keys.find((k) => k.kid === 'HCLEkPub');
    const ekAk = loadAttestationKey([{ data: Buffer.from(JSON.stringify(ek)), what: 'HCLEkPub' }]);
    expectCoffer(() => verifyTpmQuote(t.attest, t.signature, { at: new Date(), ak: ekAk, nonce: Buffer.from('challenge') }), 'TPM_BAD_SIGNATURE');
  });

  test('trustee negatives: signature[0]^=1, reversed nonce, pcrs[0][0]^=1', () => {
    const t = trustee();
    const sig = Buffer.from(t.signature);
    sig[6] = (sig[6] as number) ^ 1;
    expectCoffer(() => verifyTpmQuote(t.attest, sig, { at: new Date(), ak: t.ak, nonce: Buffer.from('challenge'), pcrs: t.pcrs }), 'TPM_BAD_SIGNATURE');
    expectCoffer(() => verifyTpmQuote(t.attest, t.signature, { at: new Date(), ak: t.ak, nonce: Buffer.from('challenge').reverse(), pcrs: t.pcrs }), 'TPM_NONCE_MISMATCH');
    const pcrs = [...t.q.pcrs];
    pcrs[0] = `${((parseInt((pcrs[0] as string).slice(0, 2), 16) ^ 1) & 0xff).toString(16).padStart(2, '0')}${(pcrs[0] as string).slice(2)}`;
    expectCoffer(() => verifyTpmQuote(t.attest, t.signature, { at: new Date(), ak: t.ak, nonce: Buffer.from('challenge'), pcrs: parsePcrJson(JSON.stringify(pcrs)) }), 'TPM_PCR_DIGEST_MISMATCH');
  });

  test('the GCE AK does not verify the Azure quote, nor the Azure AK the GCE quote', () => {
    const t = trustee();
    const gce = loadAttestationKey([{ data: vector(join(GCE, GCE_DIRS[1], 'ak_pub.tpmt')), what: 'gce' }]);
    expectCoffer(() => verifyTpmQuote(t.attest, t.signature, { at: new Date(), ak: gce, nonce: Buffer.from('challenge') }), 'TPM_BAD_SIGNATURE');
    const q = gceQuote(GCE_DIRS[1], 'sha1');
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak: t.ak, nonce: Buffer.from('9009', 'hex') }), 'TPM_BAD_SIGNATURE');
  });
});

describe('AK public area of the GCE vector, parsed field by field', () => {
  test('TPMT_PUBLIC and the same as TPM2B_PUBLIC give the same key and name', () => {
    const raw = vector(join(GCE, GCE_DIRS[0], 'ak_pub.tpmt'));
    const p = parseTpmtPublic(raw);
    assert.equal(p.raw.length, 280);
    assert.equal(p.rsa?.modulus.length, 256);
    const size = Buffer.alloc(2);
    size.writeUInt16BE(raw.length);
    const part = parseAkPart(Buffer.concat([size, raw]));
    assert.equal(part.kind, 'tpm-public');
    assert.equal(part.kind === 'tpm-public' && part.form, 'TPM2B_PUBLIC');
    assert.equal(part.kind === 'tpm-public' && part.public.name.toString('hex'), EXPECTED_AK_NAME);
    assert.equal(parseTpmSignature(gceQuote(GCE_DIRS[0], 'sha1').signature).rsa?.length, 256);
  });
});
