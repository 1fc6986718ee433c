import { timingSafeEqual } from 'node:crypto';
import { toHex } from '../../bytes/hex.js';
import type { EnclaveReport, TdReport } from './quote.js';
import type { PckTcb } from './pck.js';
import type { IsvLevel, QeIdentity, TcbInfo, TcbLevel, TcbStatus } from './collateral.js';

/**
 * TCB status as Intel's Quote Verification Library determines it (TcbLevelCheck, TdxModuleCheck,
 * EnclaveIdentity checks and the status convergence):
 *  - platform: the first TCB level (Intel lists them newest first) whose 16 SGX components and
 *    PCESVN are all ≤ those certified in the PCK certificate; for a TDX quote the level's TDX
 *    components must also be ≤ TEE_TCB_SVN, skipping bytes 0-1 (the TDX module's SVN and major
 *    version) when byte 1 is non-zero, because the module is then judged by its own identity;
 *  - TDX module: with TEE_TCB_SVN[1] (major version) > 0, the identity `TDX_<version>` of
 *    tdxModuleIdentities, its MRSIGNER and masked attributes against MRSIGNERSEAM and
 *    SEAMATTRIBUTES, and its first level with isvsvn ≤ TEE_TCB_SVN[0] (no such identity, or no
 *    tdxModuleIdentities at all: DCAP_TDX_MODULE_MISMATCH, as QVL); with version 0 the single
 *    `tdxModule` entry, identity only;
 *  - QE: MRSIGNER, ISVPRODID, masked MISCSELECT and ATTRIBUTES, then the first level with
 *    isvsvn ≤ the QE report's ISVSVN;
 *  - convergence: an OutOfDate QE or TDX module turns UpToDate/SWHardeningNeeded into OutOfDate
 *    and ConfigurationNeeded/ConfigurationAndSWHardeningNeeded into OutOfDateConfigurationNeeded;
 *    a Revoked one makes the whole Revoked. Advisory IDs are the union of every level used.
 */

export type TcbProblem =
  | { code: 'DCAP_TCB_NOT_SUPPORTED'; message: string }
  | { code: 'DCAP_TDX_MODULE_MISMATCH'; message: string }
  | { code: 'DCAP_QE_IDENTITY_MISMATCH'; message: string; expected: string; found: string };

export interface PlatformTcb {
  status: TcbStatus;
  advisoryIds: string[];
  levelIndex: number;
  level: TcbLevel;
}

export interface TdxModuleTcb {
  /** `TDX_xx` identity used, or "tdxModule" for the single legacy entry. */
  identity: string;
  /** Absent when only the identity (not a TCB level) was checked. */
  status?: TcbStatus;
  advisoryIds: string[];
  isvSvn?: number;
}

export interface QeTcb {
  id: string;
  status: TcbStatus;
  advisoryIds: string[];
  isvSvn: number;
}

function eq(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function masked(v: Buffer, mask: Buffer): Buffer {
  const out = Buffer.alloc(v.length);
  for (let i = 0; i < v.length; i++) out[i] = (v[i] as number) & (mask[i] ?? 0);
  return out;
}

function tdxSvnOk(teeTcbSvn: Buffer, level: TcbLevel): boolean {
  const comps = level.tdxComponents ?? [];
  const start = (teeTcbSvn[1] ?? 0) > 0 ? 2 : 0;
  for (let i = start; i < 16; i++) if ((teeTcbSvn[i] ?? 0) < (comps[i] ?? 0)) return false;
  return true;
}

/** The platform's TCB level from the PCK certificate (and, for TDX, TEE_TCB_SVN). */
export function platformTcb(info: TcbInfo, pck: PckTcb, teeTcbSvn?: Buffer): PlatformTcb | TcbProblem {
  for (let n = 0; n < info.levels.length; n++) {
    const level = info.levels[n] as TcbLevel;
    const sgxOk = level.sgxComponents.every((svn, i) => (pck.components[i] ?? 0) >= svn) && pck.pceSvn >= level.pceSvn;
    if (!sgxOk) continue;
    if (info.id === 'TDX' && teeTcbSvn && !tdxSvnOk(teeTcbSvn, level)) continue;
    return { status: level.status, advisoryIds: [...level.advisoryIds], levelIndex: n, level };
  }
  const tee = info.id === 'TDX' && teeTcbSvn ? ` and TEE_TCB_SVN ${toHex(teeTcbSvn)}` : '';
  return {
    code: 'DCAP_TCB_NOT_SUPPORTED',
    message: `the platform's TCB (PCK components ${pck.components.join('.')}, PCESVN ${pck.pceSvn}${tee}) is below every level of the TCB info for FMSPC ${toHex(info.fmspc)}`,
  };
}

function firstIsvLevel(levels: readonly IsvLevel[], svn: number): IsvLevel | undefined {
  return levels.find((l) => svn >= l.isvSvn);
}

/** The TDX module's identity and TCB from TEE_TCB_SVN[0..1], MRSIGNERSEAM and SEAMATTRIBUTES. */
export function tdxModuleTcb(info: TcbInfo, td: TdReport): TdxModuleTcb | TcbProblem | undefined {
  const svn = td.teeTcbSvn[0] ?? 0;
  const version = td.teeTcbSvn[1] ?? 0;
  const check = (name: string, m: { mrSigner: Buffer; attributes: Buffer; attributesMask: Buffer }): TcbProblem | undefined => {
    if (!eq(m.mrSigner, td.mrSignerSeam)) return { code: 'DCAP_TDX_MODULE_MISMATCH', message: `MRSIGNERSEAM ${toHex(td.mrSignerSeam)} is not the ${name} signer ${toHex(m.mrSigner)}` };
    if (!eq(masked(td.seamAttributes, m.attributesMask), masked(m.attributes, m.attributesMask))) {
      return { code: 'DCAP_TDX_MODULE_MISMATCH', message: `SEAMATTRIBUTES ${toHex(td.seamAttributes)} do not match the ${name} attributes ${toHex(m.attributes)} under mask ${toHex(m.attributesMask)}` };
    }
    return undefined;
  };
  if (version === 0) {
    if (!info.tdxModule) return undefined;
    return check('tdxModule', info.tdxModule) ?? { identity: 'tdxModule', advisoryIds: [] };
  }
  // As QVL: a module with a major version is judged only through tdxModuleIdentities (the platform
  // level skipped TEE_TCB_SVN[0..1] for it), so a TCB info without them cannot judge it at all.
  const id = `TDX_${version.toString(16).toUpperCase().padStart(2, '0')}`;
  const identity = info.tdxModuleIdentities?.find((m) => m.id === id);
  if (!identity) return { code: 'DCAP_TDX_MODULE_MISMATCH', message: `the TCB info has no TDX module identity ${id} (TEE_TCB_SVN[1] = ${version})` };
  const mismatch = check(id, identity);
  if (mismatch) return mismatch;
  const level = firstIsvLevel(identity.levels, svn);
  if (!level) return { code: 'DCAP_TCB_NOT_SUPPORTED', message: `TDX module ${id} SVN ${svn} is below every level of its identity` };
  return { identity: id, status: level.status, advisoryIds: [...level.advisoryIds], isvSvn: svn };
}

/** The QE report against the QE identity. */
export function qeTcb(identity: QeIdentity, qe: EnclaveReport): QeTcb | TcbProblem {
  const mismatch = (what: string, expected: string, found: string): TcbProblem => ({ code: 'DCAP_QE_IDENTITY_MISMATCH', message: `the QE report's ${what} does not match the ${identity.id} identity`, expected, found });
  if (!eq(qe.mrSigner, identity.mrSigner)) return mismatch('MRSIGNER', toHex(identity.mrSigner), toHex(qe.mrSigner));
  if (qe.isvProdId !== identity.isvProdId) return mismatch('ISVPRODID', String(identity.isvProdId), String(qe.isvProdId));
  if (((qe.miscSelect & identity.miscSelectMask) >>> 0) !== ((identity.miscSelect & identity.miscSelectMask) >>> 0)) {
    return mismatch('MISCSELECT (masked)', `0x${identity.miscSelect.toString(16)} mask 0x${identity.miscSelectMask.toString(16)}`, `0x${qe.miscSelect.toString(16)}`);
  }
  if (!eq(masked(qe.attributes, identity.attributesMask), masked(identity.attributes, identity.attributesMask))) {
    return mismatch('ATTRIBUTES (masked)', `${toHex(identity.attributes)} mask ${toHex(identity.attributesMask)}`, toHex(qe.attributes));
  }
  const level = firstIsvLevel(identity.levels, qe.isvSvn);
  if (!level) return { code: 'DCAP_TCB_NOT_SUPPORTED', message: `QE ISVSVN ${qe.isvSvn} is below every level of the ${identity.id} identity` };
  return { id: identity.id, status: level.status, advisoryIds: [...level.advisoryIds], isvSvn: qe.isvSvn };
}

/** QVL's convergence of the platform status with a QE or TDX module status. */
export function convergeTcbStatus(platform: TcbStatus, other: TcbStatus | undefined): TcbStatus {
  if (other === 'Revoked') return 'Revoked';
  if (other === 'OutOfDate') {
    if (platform === 'UpToDate' || platform === 'SWHardeningNeeded') return 'OutOfDate';
    if (platform === 'ConfigurationNeeded' || platform === 'ConfigurationAndSWHardeningNeeded') return 'OutOfDateConfigurationNeeded';
  }
  return platform;
}

export function isProblem(v: unknown): v is TcbProblem {
  return typeof v === 'object' && v !== null && 'code' in v && 'message' in v;
}
