import { timingSafeEqual } from 'node:crypto';
import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { isAllZero, toHex } from '../../bytes/hex.js';
import type { Certificate } from '../../pki/certificate.js';
import type { TrustAnchor } from '../../pki/chain.js';
import type { ProductAnchor } from '../../pki/roots.js';
import { verifySnpReport, type SnpVerified } from '../snp/verify.js';
import { verifyDcapQuote, type DcapCollateral, type DcapVerified } from '../dcap/verify.js';
import type { AttestationKey } from '../tpm/ak.js';
import type { PcrBanks } from '../tpm/pcrs.js';
import { verifyTpmQuote, type TpmQuoteVerified } from '../tpm/verify.js';
import { azureTpmtSignature, type AzureVtpmQuote } from './bundle.js';
import { parseHclReport, parseRuntimeData, type HclReport, type HclRuntimeData } from './hcl.js';
import { parseTdReportStruct, tdReportDigestsConsistent, type TdReportStruct } from './tdreport.js';

export interface AzureInput {
  /** The HCL report (vTPM NV index 0x01400001). */
  hclReport: Uint8Array;
  /** The vTPM quote made with HCLAkPub; without it the vTPM is not verified (reported NOT CHECKED). */
  tpmQuote?: AzureVtpmQuote;
  /** TDX: the TD quote of the same TD (the TDREPORT in the HCL report is MACed, not signed). */
  tdQuote?: Uint8Array;
  /** SNP: VCEK and its chain (ASK, ARK) in any order. */
  certificates?: readonly Certificate[];
}

export interface AzureVerifyOptions {
  at: Date;
  /** The nonce the verifier sent: the vTPM quote's extraData must equal it. */
  nonce?: Uint8Array;
  /** Expected HCL user-data (zero-padded to 64 bytes): Azure's "report data" in evidence v2. */
  expectedUserData?: Uint8Array;
  /** DCAP collateral for the TD quote; without it the TCB status is NOT CHECKED. */
  collateral?: DcapCollateral;
  /** Test-only trust anchors (default: the pinned AMD ARKs / Intel SGX Root CA). */
  snpRoots?: readonly ProductAnchor[];
  intelRoots?: readonly TrustAnchor[];
}

export interface AzureVerified {
  tee: 'snp' | 'tdx';
  hcl: HclReport;
  runtime: HclRuntimeData;
  snp: SnpVerified | undefined;
  tdx: DcapVerified | undefined;
  tdReport: TdReportStruct | undefined;
  tpm: TpmQuoteVerified | undefined;
  /** REPORT_DATA of the signed hardware evidence (SNP report or TD quote). */
  reportData: Buffer;
  checks: Check[];
}

function failWith(checks: Check[], name: string, code: string, description: string, extra: Partial<Check> = {}): never {
  checks.push(fail(name, code, description, extra));
  throw verifyError(code, description, { checks });
}

function step<T>(checks: Check[], name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
    const inner = (e.details?.checks as Check[] | undefined) ?? [fail(name, e.code, e.message)];
    throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks: [...checks, ...inner] } });
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const TD_FIELDS = ['reportData', 'mrTd', 'mrConfigId', 'mrOwner', 'mrOwnerConfig', 'tdAttributes', 'xfam', 'mrSeam', 'mrSignerSeam', 'seamAttributes', 'teeTcbSvn'] as const;

/**
 * Verifies Azure confidential VM evidence:
 *  1. the hardware evidence to its vendor root: the SEV-SNP report in the HCL report with the VCEK
 *     (verifySnpReport), requested at VMPL 0 (the HCL's), or for TDX the TD quote with DCAP (verifyDcapQuote) and the HCL's TDREPORT
 *     field by field against that signed quote (the TDREPORT itself is only MACed);
 *  2. the binding: REPORT_DATA[0:32] = SHA-256(runtime data, as embedded);
 *  3. the runtime data (now authenticated): HCLAkPub;
 *  4. the vTPM quote with HCLAkPub: signature, nonce, PCR digest over the supplied PCRs;
 *  5. optionally the HCL user-data against the expected report data.
 * Throws a CofferError with `details.checks` at the first failure.
 */
export function verifyAzureEvidence(input: AzureInput, opts: AzureVerifyOptions): AzureVerified {
  const checks: Check[] = [];
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the verification time is not a valid date');
  const hcl = parseHclReport(input.hclReport);
  checks.push(pass('azure.hcl.format', `HCL report v${hcl.version} (${hcl.tee === 'snp' ? 'SEV-SNP' : 'TDX'}, runtime data ${hcl.runtimeData.length} bytes, SHA-256) is well formed; padding is zero`));

  let snp: SnpVerified | undefined;
  let tdx: DcapVerified | undefined;
  let tdReport: TdReportStruct | undefined;
  let reportData: Buffer;
  if (hcl.tee === 'snp') {
    if (input.tdQuote) throw inputError('AZURE_BAD_EVIDENCE', 'a TD quote was given with an SEV-SNP HCL report');
    const certs = input.certificates ?? [];
    snp = step(checks, 'azure.snp', () => verifySnpReport(hcl.hardwareReport, { at: opts.at, certificates: certs, ...(opts.snpRoots ? { roots: opts.snpRoots } : {}) }));
    checks.push(...snp.checks);
    // The HCL (the paravisor that owns the vTPM) runs at VMPL 0; a report requested from any other
    // VMPL came from the guest OS, which can put what it likes in REPORT_DATA, so the binding below
    // would tie the runtime data (and the AK) to nothing.
    if (snp.report.vmpl !== 0) {
      failWith(checks, 'azure.vmpl', 'AZURE_BAD_VMPL', `the SEV-SNP report was requested at VMPL ${snp.report.vmpl}, not at VMPL 0 where Azure's HCL runs: its REPORT_DATA does not vouch for the HCL runtime data`, { expected: '0', found: String(snp.report.vmpl) });
    }
    checks.push(pass('azure.vmpl', 'the SEV-SNP report was requested at VMPL 0 (the HCL)', { expected: '0', found: '0' }));
    reportData = snp.report.reportData;
  } else {
    if (!input.tdQuote) throw inputError('AZURE_NO_TD_QUOTE', 'an Azure TDX HCL report holds a TDREPORT, which only the CPU can check: give the TD quote of the same TD');
    const tdQuote = input.tdQuote;
    tdx = step(checks, 'azure.tdx', () => verifyDcapQuote(tdQuote, { at: opts.at, tee: 'tdx', ...(opts.collateral ? { collateral: opts.collateral } : {}), ...(opts.intelRoots ? { roots: opts.intelRoots } : {}) }));
    checks.push(...tdx.checks);
    const td = tdx.quote.td;
    if (!td) failWith(checks, 'azure.tdreport', 'AZURE_TDREPORT_MISMATCH', 'the TD quote carries no TD report body');
    const rep = step(checks, 'azure.tdreport', () => parseTdReportStruct(hcl.hardwareReport));
    tdReport = rep;
    const digests = tdReportDigestsConsistent(rep);
    if (!digests.tcbInfo || !digests.tdInfo) {
      failWith(checks, 'azure.tdreport.digests', 'AZURE_TDREPORT_INCONSISTENT', `the TDREPORT's ${!digests.tcbInfo ? 'TEE_TCB_INFO_HASH' : 'TEE_INFO_HASH'} is not the SHA-384 of its ${!digests.tcbInfo ? 'TEE_TCB_INFO' : 'TDINFO'}`);
    }
    checks.push(pass('azure.tdreport.digests', 'TDREPORT: TEE_TCB_INFO_HASH and TEE_INFO_HASH are the SHA-384 of TEE_TCB_INFO and TDINFO'));
    for (const f of TD_FIELDS) {
      if (!equal(rep[f], td[f])) failWith(checks, 'azure.tdreport', 'AZURE_TDREPORT_MISMATCH', `the HCL report's TDREPORT ${f} differs from the signed TD quote's: the two are not from the same TD`, { expected: toHex(td[f]), found: toHex(rep[f]) });
    }
    for (const i of [0, 1, 2, 3] as const) {
      if (!equal(rep.rtmrs[i], td.rtmrs[i])) failWith(checks, 'azure.tdreport', 'AZURE_TDREPORT_MISMATCH', `the HCL report's TDREPORT RTMR${i} differs from the signed TD quote's`, { expected: toHex(td.rtmrs[i]), found: toHex(rep.rtmrs[i]) });
    }
    checks.push(pass('azure.tdreport', "the HCL report's TDREPORT equals the DCAP-verified TD quote in REPORTDATA, MRTD, RTMRs, MRCONFIGID, MROWNER(CONFIG), attributes, XFAM, MRSEAM and TEE_TCB_SVN"));
    reportData = td.reportData;
  }

  // 2. The binding of the vTPM's keys to the CPU-signed evidence.
  const bound = reportData.subarray(0, 32);
  if (!equal(bound, hcl.runtimeDataDigest)) {
    failWith(checks, 'azure.report-data', 'AZURE_REPORT_DATA_MISMATCH', `REPORT_DATA[0:32] is not the SHA-256 of the HCL runtime data: the runtime data (and its AK) is not the one the ${hcl.tee === 'snp' ? 'SEV-SNP report' : 'TD quote'} vouches for`, { expected: toHex(hcl.runtimeDataDigest), found: toHex(bound) });
  }
  checks.push(pass('azure.report-data', `REPORT_DATA[0:32] = SHA-256 of the ${hcl.runtimeData.length}-byte runtime data as embedded${isAllZero(reportData.subarray(32)) ? '; REPORT_DATA[32:64] is zero' : ''}`, { found: toHex(bound) }));

  // 3. The runtime data, now authenticated.
  const runtime = step(checks, 'azure.runtime-data', () => parseRuntimeData(hcl.runtimeData));
  checks.push(pass('azure.runtime-data', `runtime data: keys ${runtime.keys.map((k) => k.kid).join(', ')}${runtime.vmConfiguration ? ', vm-configuration' : ''}${runtime.userData ? ', user-data' : ''}`));

  // 4. The vTPM quote with the HCL's AK.
  let tpm: TpmQuoteVerified | undefined;
  if (input.tpmQuote) {
    const q = input.tpmQuote;
    const ak: AttestationKey = { key: runtime.akPub.key, forms: ['HCLAkPub JWK'] };
    const pcrs: PcrBanks = new Map([['sha256', new Map(q.pcrs.map((v, i) => [i, v]))]]);
    const nonceOpt = opts.nonce !== undefined ? { nonce: opts.nonce } : { skipNonceCheck: true };
    tpm = step(checks, 'azure.vtpm', () => verifyTpmQuote(q.message, azureTpmtSignature(q), { at: opts.at, ak, pcrs, ...nonceOpt }));
    checks.push(...tpm.checks);
    if (opts.nonce === undefined) checks.push(notChecked('azure.vtpm.nonce', `no nonce was given: the vTPM quote's extraData (${toHex(tpm.quote.extraData)}) is not compared, freshness is unproven`));
  } else {
    checks.push(notChecked('azure.vtpm', 'no vTPM quote was given: the PCRs (and so the boot chain) are not attested'));
  }

  // 5. User data (evidence v2 carries the verifier's report data here).
  if (opts.expectedUserData !== undefined) {
    const want = Buffer.alloc(64);
    Buffer.from(opts.expectedUserData).copy(want, 0, 0, 64);
    if (opts.expectedUserData.length > 64) throw inputError('USAGE', 'the expected user data is longer than 64 bytes');
    const got = runtime.userData;
    if (!got || !equal(Buffer.concat([got, Buffer.alloc(64 - got.length)]), want)) {
      failWith(checks, 'azure.user-data', 'AZURE_USER_DATA_MISMATCH', "the HCL runtime data's user-data is not the expected report data", { expected: toHex(want), found: got ? toHex(got) : 'none' });
    }
    checks.push(pass('azure.user-data', "the HCL runtime data's user-data equals the expected report data", { found: toHex(got) }));
  }
  return { tee: hcl.tee, hcl, runtime, snp, tdx, tdReport, tpm, reportData: Buffer.from(reportData), checks };
}
