import { timingSafeEqual } from 'node:crypto';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { toHex } from '../../bytes/hex.js';
import type { EnclaveReport, TdReport } from './quote.js';
import type { TcbStatus } from './collateral.js';
import type { DcapVerified } from './verify.js';

/** TDATTRIBUTES bits (TDX module ABI): DEBUG makes the TD's memory readable by the host. */
export const TD_ATTR = { debug: 0n, septVeDisable: 28n, pks: 30n, kl: 31n, perfmon: 63n } as const;
/** SGX ATTRIBUTES.FLAGS bits. */
export const SGX_ATTR = { init: 0n, debug: 1n, mode64bit: 2n, provisionKey: 4n, einitTokenKey: 5n, kss: 7n } as const;

export interface TcbExpectation {
  /** TCB statuses accepted (default: UpToDate only). Revoked never passes verification. */
  acceptedTcbStatuses?: readonly TcbStatus[];
}

export interface TdxExpectations extends TcbExpectation {
  mrTd?: readonly Buffer[];
  /** RTMR index → expected value (48 bytes). */
  rtmrs?: Partial<Record<0 | 1 | 2 | 3, Buffer>>;
  mrConfigId?: Buffer;
  mrOwner?: Buffer;
  mrOwnerConfig?: Buffer;
  mrSeam?: readonly Buffer[];
  /** Expected REPORTDATA; shorter values are zero-padded to 64 bytes. */
  reportData?: Buffer;
  /** Exact XFAM (8 bytes, as in the report). */
  xfam?: Buffer;
  /** Exact TDATTRIBUTES (8 bytes, as in the report). */
  tdAttributes?: Buffer;
  /** Accept a TD with TDATTRIBUTES.DEBUG set (default false). */
  allowDebug?: boolean;
}

export interface SgxExpectations extends TcbExpectation {
  mrEnclave?: readonly Buffer[];
  mrSigner?: readonly Buffer[];
  isvProdId?: number;
  minimumIsvSvn?: number;
  reportData?: Buffer;
  /** Exact ATTRIBUTES (16 bytes: flags then XFRM). */
  attributes?: Buffer;
  /** Accept an enclave with ATTRIBUTES.DEBUG set (default false). */
  allowDebug?: boolean;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function padTo(b: Buffer, n: number): Buffer {
  return b.length >= n ? b : Buffer.concat([b, Buffer.alloc(n - b.length)]);
}

function bytesCheck(checks: Check[], name: string, code: string, what: string, found: Buffer, accepted: readonly Buffer[]): void {
  const ok = accepted.some((a) => equal(a, found));
  const expected = accepted.map(toHex).join(' | ');
  checks.push(ok ? pass(name, `${what} matches`, { expected, found: toHex(found) }) : fail(name, code, `${what} is not an accepted value`, { expected, found: toHex(found) }));
}

export function bit(b: Buffer, n: bigint): boolean {
  return ((b.readBigUInt64LE(0) >> n) & 1n) === 1n;
}

function tcbCheck(checks: Check[], prefix: string, v: DcapVerified, exp: TcbExpectation): void {
  const accepted = exp.acceptedTcbStatuses ?? ['UpToDate'];
  if (!v.tcb) {
    checks.push(notChecked(`${prefix}.tcb-status`, 'no TCB info was given (--collateral): the platform may run firmware with known vulnerabilities'));
    return;
  }
  const found = `${v.tcb.status}${v.tcb.advisoryIds.length > 0 ? ` (${v.tcb.advisoryIds.join(', ')})` : ''}`;
  checks.push(
    accepted.includes(v.tcb.status)
      ? pass(`${prefix}.tcb-status`, `TCB status ${v.tcb.status} is accepted`, { expected: accepted.join(' | '), found })
      : fail(`${prefix}.tcb-status`, 'DCAP_TCB_STATUS_NOT_ACCEPTED', `TCB status ${v.tcb.status} is not accepted`, { expected: accepted.join(' | '), found }),
  );
}

function reportDataCheck(checks: Check[], name: string, code: string, found: Buffer, expected: Buffer | undefined): void {
  if (!expected) {
    checks.push(notChecked(name, 'no expected REPORTDATA was given: freshness and key binding are not established'));
  } else if (expected.length > 64) {
    checks.push(fail(name, code, `expected report data is ${expected.length} bytes, longer than the 64-byte field`));
  } else {
    bytesCheck(checks, name, code, 'REPORTDATA', found, [padTo(expected, 64)]);
  }
}

/** A TD report against expectations: one check per rule, all evaluated. Pure. */
export function validateTdReport(td: TdReport, v: DcapVerified | undefined, exp: TdxExpectations): Check[] {
  const checks: Check[] = [];
  if (exp.mrTd && exp.mrTd.length > 0) bytesCheck(checks, 'tdx.mrtd', 'TDX_MRTD_MISMATCH', 'MRTD', td.mrTd, exp.mrTd);
  else checks.push(notChecked('tdx.mrtd', 'no expected MRTD was given: any TD firmware is accepted'));
  for (const i of [0, 1, 2, 3] as const) {
    const want = exp.rtmrs?.[i];
    if (want) bytesCheck(checks, `tdx.rtmr${i}`, 'TDX_RTMR_MISMATCH', `RTMR${i}`, td.rtmrs[i], [want]);
  }
  if (!exp.rtmrs || Object.keys(exp.rtmrs).length === 0) checks.push(notChecked('tdx.rtmr', 'no expected RTMR value and no event log were given: the boot chain after the firmware is not appraised'));
  if (exp.mrConfigId) bytesCheck(checks, 'tdx.mrconfigid', 'TDX_MRCONFIGID_MISMATCH', 'MRCONFIGID', td.mrConfigId, [padTo(exp.mrConfigId, 48)]);
  if (exp.mrOwner) bytesCheck(checks, 'tdx.mrowner', 'TDX_MROWNER_MISMATCH', 'MROWNER', td.mrOwner, [padTo(exp.mrOwner, 48)]);
  if (exp.mrOwnerConfig) bytesCheck(checks, 'tdx.mrownerconfig', 'TDX_MROWNERCONFIG_MISMATCH', 'MROWNERCONFIG', td.mrOwnerConfig, [padTo(exp.mrOwnerConfig, 48)]);
  if (exp.mrSeam && exp.mrSeam.length > 0) bytesCheck(checks, 'tdx.mrseam', 'TDX_MRSEAM_MISMATCH', 'MRSEAM', td.mrSeam, exp.mrSeam);
  if (exp.xfam) bytesCheck(checks, 'tdx.xfam', 'TDX_XFAM_MISMATCH', 'XFAM', td.xfam, [exp.xfam]);
  if (exp.tdAttributes) bytesCheck(checks, 'tdx.td-attributes', 'TDX_ATTRIBUTES_MISMATCH', 'TDATTRIBUTES', td.tdAttributes, [exp.tdAttributes]);
  reportDataCheck(checks, 'tdx.report-data', 'TDX_REPORT_DATA_MISMATCH', td.reportData, exp.reportData);
  const debug = bit(td.tdAttributes, TD_ATTR.debug);
  checks.push(
    debug && !exp.allowDebug
      ? fail('tdx.debug', 'TDX_DEBUG_ALLOWED', 'the TD is debuggable: the host can read and change its memory and registers (TDATTRIBUTES.DEBUG = 1)', { expected: 'DEBUG = 0', found: 'DEBUG = 1' })
      : pass('tdx.debug', debug ? 'the TD is debuggable (explicitly accepted)' : 'the TD is not debuggable', { found: `DEBUG = ${debug ? 1 : 0}` }),
  );
  if (v) tcbCheck(checks, 'tdx', v, exp);
  return checks;
}

/** An SGX enclave report against expectations. Pure. */
export function validateEnclaveReport(report: EnclaveReport, v: DcapVerified | undefined, exp: SgxExpectations): Check[] {
  const checks: Check[] = [];
  if (exp.mrEnclave && exp.mrEnclave.length > 0) bytesCheck(checks, 'sgx.mrenclave', 'SGX_MRENCLAVE_MISMATCH', 'MRENCLAVE', report.mrEnclave, exp.mrEnclave);
  else checks.push(notChecked('sgx.mrenclave', 'no expected MRENCLAVE was given: any enclave code is accepted'));
  if (exp.mrSigner && exp.mrSigner.length > 0) bytesCheck(checks, 'sgx.mrsigner', 'SGX_MRSIGNER_MISMATCH', 'MRSIGNER', report.mrSigner, exp.mrSigner);
  else checks.push(notChecked('sgx.mrsigner', 'no expected MRSIGNER was given: an enclave signed by anyone is accepted'));
  if (exp.isvProdId !== undefined) {
    const ok = report.isvProdId === exp.isvProdId;
    checks.push(ok ? pass('sgx.isv-prod-id', `ISVPRODID ${report.isvProdId}`, { expected: String(exp.isvProdId), found: String(report.isvProdId) }) : fail('sgx.isv-prod-id', 'SGX_ISVPRODID_MISMATCH', `ISVPRODID ${report.isvProdId} is not ${exp.isvProdId}`, { expected: String(exp.isvProdId), found: String(report.isvProdId) }));
  }
  if (exp.minimumIsvSvn !== undefined) {
    const ok = report.isvSvn >= exp.minimumIsvSvn;
    checks.push(ok ? pass('sgx.isv-svn', `ISVSVN ${report.isvSvn} ≥ ${exp.minimumIsvSvn}`, { expected: `≥ ${exp.minimumIsvSvn}`, found: String(report.isvSvn) }) : fail('sgx.isv-svn', 'SGX_ISVSVN_TOO_LOW', `ISVSVN ${report.isvSvn} is below the minimum ${exp.minimumIsvSvn}`, { expected: `≥ ${exp.minimumIsvSvn}`, found: String(report.isvSvn) }));
  }
  if (exp.attributes) bytesCheck(checks, 'sgx.attributes', 'SGX_ATTRIBUTES_MISMATCH', 'ATTRIBUTES', report.attributes, [exp.attributes]);
  reportDataCheck(checks, 'sgx.report-data', 'SGX_REPORT_DATA_MISMATCH', report.reportData, exp.reportData);
  const debug = bit(report.attributes, SGX_ATTR.debug);
  checks.push(
    debug && !exp.allowDebug
      ? fail('sgx.debug', 'SGX_DEBUG_ALLOWED', 'the enclave is a debug enclave: its memory can be read by a debugger (ATTRIBUTES.DEBUG = 1)', { expected: 'DEBUG = 0', found: 'DEBUG = 1' })
      : pass('sgx.debug', debug ? 'debug enclave (explicitly accepted)' : 'the enclave is not a debug enclave', { found: `DEBUG = ${debug ? 1 : 0}` }),
  );
  if (v) tcbCheck(checks, 'sgx', v, exp);
  return checks;
}
