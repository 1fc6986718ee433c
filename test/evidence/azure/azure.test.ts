// Azure confidential VM evidence (trustee's az-snp-vtpm and az-tdx-vtpm samples): the HCL report
// parsed, the SEV-SNP report to the pinned ARK or the TD quote to the Intel root, the binding of
// REPORT_DATA to the runtime data, the vTPM quote with HCLAkPub, the v0/v1/v2 bundles, and the
// manifest's negatives, each with its own code.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { Certificate, parseCertificates } from '../../../src/pki/certificate.js';
import { makeFakeAmd, buildReport, signReport, defaultChipId, defaultTcb, FAKE_AMD_AT } from '../../helpers/amd-ca.js';
import { fakeRoots } from '../snp/real-vectors.js';
import { loadCollateral } from '../../../src/evidence/dcap/index.js';
import {
  HCL_RUNTIME_DATA_OFFSET,
  parseAzureEvidence,
  parseAzureVtpmQuote,
  parseHclReport,
  parseRuntimeData,
  parseTdReportStruct,
  verifyAzureEvidence,
  type AzureInput,
} from '../../../src/evidence/azure/index.js';
import { claimsFromAzure } from '../../../src/appraisal/from-azure.js';
import { coffer, expected, vec, VECTORS } from '../nitro/vectors.js';

const S = 'azure-cvm/trustee-az-snp-vtpm/';
const T = 'azure-cvm/trustee-az-tdx-vtpm/';
const AT = new Date('2025-06-01T00:00:00Z');
const CHALLENGE = Buffer.from('challenge');
const MILAN = parseCertificates(vec('amd-snp/amd-certs/ask_ark_milan.pem'));
const quoteJson = (p: string) => parseAzureVtpmQuote(JSON.parse(vec(p).toString('utf8')) as unknown);

function snpInput(hcl = vec(`${S}hcl-report.bin`)): AzureInput {
  return { hclReport: hcl, tpmQuote: quoteJson(`${S}tpm-quote-v1.json`), certificates: parseCertificates(vec(`${S}vcek.pem`)) };
}

function tdxInput(hcl = vec(`${T}hcl-report.bin`), td = vec(`${T}td-quote.bin`)): AzureInput {
  return { hclReport: hcl, tpmQuote: quoteJson(`${T}tpm-quote-v1.json`), tdQuote: td };
}

function flip(b: Buffer, at: number, fn: (x: number) => number): Buffer {
  const c = Buffer.from(b);
  c[at] = fn(c[at] as number) & 0xff;
  return c;
}

describe('HCL report parsing', () => {
  test('SNP: header, 1184-byte SNP report (the DERIVED az-milan slice), runtime data whose SHA-256 is the manifest\'s report_data', () => {
    const e = expected(`${S}hcl-report.bin`);
    const h = parseHclReport(vec(`${S}hcl-report.bin`));
    assert.equal(h.tee, 'snp');
    assert.equal(h.version, 1);
    assert.equal(h.requestType, 2);
    assert.equal(h.reportSize, 2346);
    assert.ok(h.hardwareReport.equals(vec('amd-snp/azure-derived/az-milan-hcl-report.snp.bin')));
    assert.equal(h.runtimeDataDigest.toString('hex'), e['report_data[0:32]']);
    const r = parseRuntimeData(h.runtimeData);
    assert.deepEqual(r.keys.map((k) => k.kid), ['HCLAkPub', 'HCLEkPub']);
    assert.equal(r.akPub.key.asymmetricKeyType, 'rsa');
    assert.equal(r.userData?.toString('hex'), e['user-data']);
    assert.equal(r.vmConfiguration?.['secure-boot'], true);
  });

  test('TDX: report type 4, a TDREPORT whose REPORTDATA and MRTD are the manifest\'s', () => {
    const h = parseHclReport(vec(`${T}hcl-report.bin`));
    assert.equal(h.tee, 'tdx');
    assert.equal(h.version, 2);
    const td = parseTdReportStruct(h.hardwareReport);
    const want = expected(`${T}hcl-report.bin`)['tdreport.report_data[0:32]']?.split(' ')[0];
    assert.equal(td.reportData.subarray(0, 32).toString('hex'), want);
    assert.equal(td.mrTd.toString('hex'), expected(`${T}td-quote.bin`).mr_td);
    assert.equal(h.runtimeDataDigest.toString('hex'), want);
  });

  test('structure errors have their own codes', () => {
    const hcl = vec(`${S}hcl-report.bin`);
    assert.equal(coffer(() => parseHclReport(flip(hcl, 0, (x) => x + 1))).code, 'AZURE_HCL_BAD_MAGIC');
    assert.equal(coffer(() => parseHclReport(flip(hcl, 4, () => 9))).code, 'AZURE_HCL_UNSUPPORTED');
    assert.equal(coffer(() => parseHclReport(flip(hcl, 8, (x) => x + 1))).code, 'AZURE_HCL_BAD_SIZE');
    assert.equal(coffer(() => parseHclReport(flip(hcl, 0x14, () => 1))).code, 'RESERVED_NOT_ZERO');
    assert.equal(coffer(() => parseHclReport(flip(hcl, 0x4c0 + 8, () => 1))).code, 'AZURE_HCL_UNSUPPORTED');
    assert.equal(coffer(() => parseHclReport(flip(hcl, 0x4c0 + 12, () => 2))).code, 'AZURE_HCL_UNSUPPORTED');
    assert.equal(coffer(() => parseHclReport(flip(hcl, hcl.length - 1, () => 1))).code, 'RESERVED_NOT_ZERO');
    assert.equal(coffer(() => parseHclReport(hcl.subarray(0, 0x600))).code, 'TRUNCATED');
    assert.equal(coffer(() => parseRuntimeData(Buffer.from('{"keys":[]}'))).code, 'AZURE_BAD_RUNTIME_DATA');
  });
});

describe('Azure SEV-SNP CVM', () => {
  test('hcl-report.bin + vcek.pem + tpm-quote-v1.json verify with nonce "challenge"; claims carry the manifest values', () => {
    const v = verifyAzureEvidence(snpInput(), { at: AT, nonce: CHALLENGE });
    const d = expected('amd-snp/azure-derived/az-milan-hcl-report.snp.bin');
    assert.equal(v.snp?.product, 'Milan');
    assert.equal(v.snp?.report.measurement.toString('hex'), d.measurement);
    assert.equal(v.reportData.subarray(0, 32).toString('hex'), d['report_data[0:32] ']?.trim() ?? v.hcl.runtimeDataDigest.toString('hex'));
    assert.equal(v.tpm?.quote.extraData.toString(), 'challenge');
    assert.equal(v.tpm?.pcrs?.get('sha256')?.get(0)?.toString('hex'), expected(`${S}tpm-quote-v1.json`).pcr0);
    assert.ok(v.checks.some((c) => c.name === 'azure.report-data' && c.ok));
    const claims = claimsFromAzure(v);
    assert.equal(claims.verification.length, 1);
    assert.equal(claims.verification[0]?.verified, true);
    assert.equal(claims.launch.snp, d.measurement);
    assert.equal(claims.runtime.pcrs?.sha256?.['0'], expected(`${S}tpm-quote-v1.json`).pcr0);
    assert.deepEqual(claims.platforms.map((p) => p.tee), ['sev-snp', 'tpm']);
  });

  test('the manifest negatives: byte[0x6e0]+=1 binding, byte[0x1a6]=0 signature, byte[0x540]=0 binding (before the JSON is read)', () => {
    const hcl = vec(`${S}hcl-report.bin`);
    assert.equal(coffer(() => verifyAzureEvidence(snpInput(flip(hcl, 0x6e0, (x) => x + 1)), { at: AT, nonce: CHALLENGE })).code, 'AZURE_REPORT_DATA_MISMATCH');
    assert.equal(coffer(() => verifyAzureEvidence(snpInput(flip(hcl, 0x1a6, () => 0)), { at: AT, nonce: CHALLENGE })).code, 'SNP_BAD_SIGNATURE');
    assert.equal(coffer(() => verifyAzureEvidence(snpInput(flip(hcl, 0x540, () => 0)), { at: AT, nonce: CHALLENGE })).code, 'AZURE_REPORT_DATA_MISMATCH');
  });

  test('the vTPM quote negatives: signature[0]^=1, the nonce reversed, pcrs[0][0]^=1', () => {
    const sig = snpInput();
    sig.tpmQuote = { ...sig.tpmQuote!, signature: flip(sig.tpmQuote!.signature, 0, (x) => x ^ 1) };
    assert.equal(coffer(() => verifyAzureEvidence(sig, { at: AT, nonce: CHALLENGE })).code, 'TPM_BAD_SIGNATURE');
    assert.equal(coffer(() => verifyAzureEvidence(snpInput(), { at: AT, nonce: Buffer.from('egnellahc') })).code, 'TPM_NONCE_MISMATCH');
    const pcr = snpInput();
    pcr.tpmQuote = { ...pcr.tpmQuote!, pcrs: [flip(pcr.tpmQuote!.pcrs[0]!, 0, (x) => x ^ 1), ...pcr.tpmQuote!.pcrs.slice(1)] };
    assert.equal(coffer(() => verifyAzureEvidence(pcr, { at: AT, nonce: CHALLENGE })).code, 'TPM_PCR_DIGEST_MISMATCH');
    // The TDX VM's quote (another AK) does not verify with this HCL report's HCLAkPub.
    assert.equal(coffer(() => verifyAzureEvidence({ ...snpInput(), tpmQuote: quoteJson(`${T}tpm-quote-v1.json`) }, { at: AT, nonce: CHALLENGE })).code, 'TPM_BAD_SIGNATURE');
  });

  test('single-byte flips, region by region, fail with distinct codes; none verifies', () => {
    const hcl = vec(`${S}hcl-report.bin`);
    const regions: [string, number, number, readonly string[]][] = [
      ['header', 0, 0x20, ['AZURE_HCL_BAD_MAGIC', 'AZURE_HCL_UNSUPPORTED', 'AZURE_HCL_BAD_SIZE', 'AZURE_HCL_BAD_STATUS', 'RESERVED_NOT_ZERO']],
      ['SNP report', 0x20, 0x4c0, ['SNP_BAD_SIGNATURE', 'RESERVED_NOT_ZERO']], // the report's unsigned tail after the signature must be zero
      ['runtime header', 0x4c0, HCL_RUNTIME_DATA_OFFSET, ['AZURE_HCL_BAD_SIZE', 'AZURE_HCL_UNSUPPORTED', 'RESERVED_NOT_ZERO', 'TRUNCATED']],
      ['runtime data', HCL_RUNTIME_DATA_OFFSET, HCL_RUNTIME_DATA_OFFSET + 1110, ['AZURE_REPORT_DATA_MISMATCH']],
      ['padding', HCL_RUNTIME_DATA_OFFSET + 1110, hcl.length, ['RESERVED_NOT_ZERO']],
    ];
    for (const [name, from, to, codes] of regions) {
      const step = Math.max(1, Math.floor((to - from) / 40));
      for (let i = from; i < to; i += step) {
        // Request type 2 ^ 1 = 3 (wrapped key) is a valid, unsigned header value: flip another bit there.
        const mask = i === 0x0c ? 0x04 : 0x01;
        const e = coffer(() => verifyAzureEvidence(snpInput(flip(hcl, i, (x) => x ^ mask)), { at: AT, nonce: CHALLENGE }));
        assert.ok(codes.includes(e.code), `${name} byte 0x${i.toString(16)}: ${e.code}`);
      }
    }
  });

  for (const v of ['v0', 'v1', 'v2'] as const) {
    test(`evidence-${v}.json verifies (SNP v3 Milan per manifest) with the expected report data and PCR0`, () => {
      const e = expected(`${S}evidence-${v}.json`);
      const ev = parseAzureEvidence(vec(`${S}evidence-${v}.json`).toString('utf8'));
      assert.equal(ev.format, `snp-${v}`);
      const rd = v === 'v2' ? Buffer.from(e.report_data ?? '', 'hex') : Buffer.from(e['report_data (claims)'] ?? '', 'hex');
      assert.equal(rd.length > 0, true);
      const res = verifyAzureEvidence({ hclReport: ev.hclReport, tpmQuote: ev.tpmQuote, certificates: [...ev.certificates, ...MILAN] }, { at: AT, nonce: rd, ...(v === 'v2' ? { expectedUserData: rd } : {}) });
      assert.equal(res.snp?.report.version, 3);
      assert.equal(res.snp?.product, 'Milan');
      assert.equal(res.tpm?.pcrs?.get('sha256')?.get(0)?.toString('hex'), e['tpm.pcr00']);
      if (v === 'v2') {
        assert.equal(res.runtime.userData?.subarray(0, 48).toString('hex'), e.report_data);
        const err = coffer(() => verifyAzureEvidence({ hclReport: ev.hclReport, tpmQuote: ev.tpmQuote, certificates: [...ev.certificates, ...MILAN] }, { at: AT, nonce: rd, expectedUserData: Buffer.from('123abc', 'hex') }));
        assert.equal(err.code, 'AZURE_USER_DATA_MISMATCH');
      }
    });
  }

  test('without the ASK the v1 VCEK alone does not chain; without a quote the vTPM is NOT CHECKED', () => {
    const ev = parseAzureEvidence(vec(`${S}evidence-v1.json`).toString('utf8'));
    assert.equal(coffer(() => verifyAzureEvidence({ hclReport: ev.hclReport, certificates: ev.certificates }, { at: AT })).code, 'PKI_CHAIN_INCOMPLETE');
    const v = verifyAzureEvidence({ hclReport: ev.hclReport, certificates: [...ev.certificates, ...MILAN] }, { at: AT });
    assert.ok(v.checks.find((c) => c.name === 'azure.vtpm')?.notChecked);
  });
});

describe('Azure TDX CVM', () => {
  const work = mkdtempSync(join(tmpdir(), 'coffer-aztdx-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  test('hcl-report.bin + td-quote.bin + tpm-quote-v1.json: TD quote to the Intel root (TCB NOT CHECKED without collateral), TDREPORT = quote, binding, vTPM', () => {
    const e = expected(`${T}td-quote.bin`);
    const v = verifyAzureEvidence(tdxInput(), { at: AT, nonce: CHALLENGE });
    const td = v.tdx?.quote.td;
    assert.equal(td?.mrTd.toString('hex'), e.mr_td);
    assert.equal(td?.mrSeam.toString('hex'), e.mr_seam);
    assert.equal(td?.teeTcbSvn.toString('hex'), e.tee_tcb_svn);
    assert.equal(td?.reportData.toString('hex'), e.report_data);
    assert.equal(v.tdx?.pck.fmspc.toString('hex'), e.fmspc);
    assert.ok(v.checks.find((c) => c.name === 'dcap.tcb')?.notChecked);
    assert.equal(v.tpm?.pcrs?.get('sha256')?.get(0)?.toString('hex'), expected(`${T}tpm-quote-v1.json`).pcr0);
    const claims = claimsFromAzure(v);
    assert.equal(claims.launch.tdx?.mrtd, e.mr_td);
    assert.equal(claims.platforms[0]?.tcbStatus, 'unknown');
  });

  test('with the 2025 collateral in the vectors (teekit TCB info for FMSPC 00806f050000, trustee TD_QE identity) at 2025-10-29 the TCB status is OutOfDate', () => {
    const dir = join(work, 'col');
    mkdirSync(dir);
    copyFileSync(join(VECTORS, 'intel-tdx/teekit/tcbInfo-tdx-00806f050000.json'), join(dir, 'tcbInfo.json'));
    copyFileSync(join(VECTORS, 'intel-tdx/trustee/qeIdentity_TD_QE_2025-10-28.json'), join(dir, 'qeIdentity.json'));
    copyFileSync(new URL('../tdx/fixtures/intel-tcb-signing-2025.pem', import.meta.url), join(dir, 'chain.pem'));
    const at = new Date('2025-10-29T00:00:00Z');
    let v;
    try {
      v = verifyAzureEvidence(tdxInput(), { at, nonce: CHALLENGE, collateral: loadCollateral(dir) });
    } catch (err) {
      // The PCK certificates of this 2024 quote must be valid at the collateral's date for this to hold.
      assert.fail(`Azure TD quote with 2025 collateral: ${(err as Error).message}`);
    }
    // The Azure host's TCB is behind Intel's October 2025 TCB evaluation: OutOfDate, with advisories.
    assert.equal(v.tdx?.tcb?.status, 'OutOfDate');
    assert.ok(v.tdx?.tcb?.advisoryIds.includes('INTEL-SA-00960'));
    assert.equal(v.tdx?.tcb?.tcbInfo.fmspc, '00806f050000');
  });

  test('the evidence-v0.json bundle verifies the same way', () => {
    const ev = parseAzureEvidence(vec(`${T}evidence-v0.json`).toString('utf8'));
    assert.equal(ev.format, 'tdx-v0');
    const v = verifyAzureEvidence({ hclReport: ev.hclReport, tpmQuote: ev.tpmQuote, tdQuote: ev.tdQuote! }, { at: AT, nonce: CHALLENGE });
    assert.equal(v.tpm?.pcrs?.get('sha256')?.get(0)?.toString('hex'), expected(`${T}evidence-v0.json`)['tpm.pcr00']);
  });

  test('negatives: byte[0x880]+=1 binding; a TDREPORT field flip is caught by its internal digest; TD quote flips fail DCAP; no TD quote is an input error', () => {
    const hcl = vec(`${T}hcl-report.bin`);
    assert.equal(coffer(() => verifyAzureEvidence(tdxInput(flip(hcl, 0x880, (x) => x + 1)), { at: AT, nonce: CHALLENGE })).code, 'AZURE_REPORT_DATA_MISMATCH');
    assert.equal(coffer(() => verifyAzureEvidence(tdxInput(flip(hcl, 0x20 + 512 + 20, (x) => x ^ 1)), { at: AT, nonce: CHALLENGE })).code, 'AZURE_TDREPORT_INCONSISTENT');
    assert.equal(coffer(() => verifyAzureEvidence(tdxInput(flip(hcl, 0x20 + 128, (x) => x ^ 1)), { at: AT, nonce: CHALLENGE })).code, 'AZURE_TDREPORT_MISMATCH');
    const td = vec(`${T}td-quote.bin`);
    assert.equal(coffer(() => verifyAzureEvidence(tdxInput(hcl, flip(td, 200, (x) => x ^ 1)), { at: AT, nonce: CHALLENGE })).code, 'DCAP_QUOTE_BAD_SIGNATURE');
    const noQuote = tdxInput();
    delete noQuote.tdQuote;
    const e = coffer(() => verifyAzureEvidence(noQuote, { at: AT }));
    assert.equal(e.code, 'AZURE_NO_TD_QUOTE');
    assert.equal(e.kind, 'input');
  });
});

describe('security review: the SEV-SNP report must come from VMPL 0 (the HCL)', () => {
  // The review's azure-vmpl script: a guest at VMPL 2 asks for a report whose REPORT_DATA is the
  // hash of runtime data naming its own software "AK", then quotes PCRs of its choice with it.
  function forged(vmpl: number) {
    const milan = makeFakeAmd('Milan');
    const vcekKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const vcek = milan.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan'), key: vcekKey });
    const ak = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = ak.publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const runtime = Buffer.from(JSON.stringify({ keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: jwk.e, n: jwk.n }], 'vm-configuration': { 'secure-boot': true }, 'user-data': '00'.repeat(64) }));
    const rd = Buffer.concat([createHash('sha256').update(runtime).digest(), Buffer.alloc(32)]);
    const report = signReport(buildReport({ vmpl, reportData: rd }), vcekKey);
    const hdr = Buffer.alloc(32);
    hdr.write('HCLA', 0, 'latin1');
    hdr.writeUInt32LE(1, 4);
    hdr.writeUInt32LE(0x4c0 + 20 + runtime.length, 8);
    hdr.writeUInt32LE(2, 12);
    const rh = Buffer.alloc(20);
    rh.writeUInt32LE(runtime.length + 20, 0);
    rh.writeUInt32LE(1, 4);
    rh.writeUInt32LE(2, 8);
    rh.writeUInt32LE(1, 12);
    rh.writeUInt32LE(runtime.length, 16);
    const hcl = Buffer.concat([hdr, report, rh, runtime]);
    const pcrs = Array.from({ length: 24 }, (_, i) => Buffer.alloc(32, i === 7 ? 0x77 : 0));
    const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const attest = Buffer.concat([
      u32(0xff544347), u16(0x8018), u16(34), u16(0x000b), Buffer.alloc(32, 1), u16(CHALLENGE.length), CHALLENGE,
      Buffer.alloc(8), u32(1), u32(0), Buffer.from([1]), Buffer.alloc(8),
      u32(1), u16(0x000b), Buffer.from([3, 0xff, 0xff, 0xff]), u16(32), createHash('sha256').update(Buffer.concat(pcrs)).digest(),
    ]);
    const tpmQuote = { signature: sign('sha256', attest, ak.privateKey), message: attest, pcrs };
    const certificates = [vcek, milan.ask, milan.ark].map((c) => Certificate.fromDer(c.der));
    return () => verifyAzureEvidence({ hclReport: hcl, certificates, tpmQuote }, { at: FAKE_AMD_AT, nonce: CHALLENGE, snpRoots: fakeRoots(milan) });
  }

  test('a report from VMPL 2 fails AZURE_BAD_VMPL before the runtime-data binding is believed', () => {
    const e = coffer(forged(2));
    assert.equal(e.code, 'AZURE_BAD_VMPL');
    const checks = (e.details?.checks ?? []) as { name: string; ok: boolean }[];
    assert.equal(checks.at(-1)?.name, 'azure.vmpl');
    assert.ok(!checks.some((c) => c.name === 'azure.report-data' || c.name.startsWith('tpm.')));
  });

  test('the same construction at VMPL 0 passes the VMPL check (the SNP report is the HCL\'s)', () => {
    const v = forged(0)();
    assert.ok(v.checks.some((c) => c.name === 'azure.vmpl' && c.ok));
  });
});
