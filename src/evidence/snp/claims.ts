import { toHex } from '../../bytes/hex.js';
import type { SnpPolicy, SnpPlatformInfo, SnpProduct, SnpReport } from './report.js';
import { productFromCpuid } from './report.js';
import { decodeTcb, type TcbVersion } from './tcb.js';

/** A TCB as JSON: components plus the raw u64 in hex. */
export interface TcbClaims {
  raw: string;
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

export interface SnpClaims {
  version: number;
  product: SnpProduct | null;
  signingKey: 'vcek' | 'vlek' | 'none';
  measurement: string;
  reportData: string;
  hostData: string;
  chipId: string;
  vmpl: number;
  guestSvn: number;
  policy: Omit<SnpPolicy, 'raw'> & { raw: string };
  platformInfo: Omit<SnpPlatformInfo, 'raw' | 'unknownBits'> & { raw: string; unknownBits: string };
  keyInfo: { authorKeyEn: boolean; maskChipKey: boolean };
  reportedTcb: TcbClaims;
  currentTcb: TcbClaims;
  committedTcb: TcbClaims;
  launchTcb: TcbClaims;
  familyId: string;
  imageId: string;
  idKeyDigest: string;
  authorKeyDigest: string;
  reportId: string;
  reportIdMa: string;
  cpuid: { family: number; model: number; stepping: number } | null;
  currentFirmware: string;
  committedFirmware: string;
  launchMitVector: string | null;
  currentMitVector: string | null;
}

function tcbClaims(t: TcbVersion): TcbClaims {
  const out: TcbClaims = { raw: t.raw.toString(16).padStart(16, '0'), bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
  if (t.fmc !== undefined) out.fmc = t.fmc;
  return out;
}

/**
 * The report as claims: every binary value lowercase hex, every flag named. `product` is the
 * verified product when known, else the one CPUID names (v3+), else null (a v2 report alone).
 */
export function snpClaims(report: SnpReport, product?: SnpProduct): SnpClaims {
  const p = product ?? productFromCpuid(report.cpuid);
  // TCB layout depends on the product; v2 reports (no CPUID) predate Turin.
  const layout = p ?? 'Milan';
  const { raw: policyRaw, ...policy } = report.policy;
  const { raw: piRaw, unknownBits, ...platformInfo } = report.platformInfo;
  const fw = (v: SnpReport['currentVersion']) => `${v.major}.${v.minor}.${v.build}`;
  return {
    version: report.version,
    product: p ?? null,
    signingKey: report.keyInfo.signingKey,
    measurement: toHex(report.measurement),
    reportData: toHex(report.reportData),
    hostData: toHex(report.hostData),
    chipId: toHex(report.chipId),
    vmpl: report.vmpl,
    guestSvn: report.guestSvn,
    policy: { raw: `0x${policyRaw.toString(16)}`, ...policy },
    platformInfo: { raw: `0x${piRaw.toString(16)}`, ...platformInfo, unknownBits: `0x${unknownBits.toString(16)}` },
    keyInfo: { authorKeyEn: report.keyInfo.authorKeyEn, maskChipKey: report.keyInfo.maskChipKey },
    reportedTcb: tcbClaims(decodeTcb(report.reportedTcb, layout)),
    currentTcb: tcbClaims(decodeTcb(report.currentTcb, layout)),
    committedTcb: tcbClaims(decodeTcb(report.committedTcb, layout)),
    launchTcb: tcbClaims(decodeTcb(report.launchTcb, layout)),
    familyId: toHex(report.familyId),
    imageId: toHex(report.imageId),
    idKeyDigest: toHex(report.idKeyDigest),
    authorKeyDigest: toHex(report.authorKeyDigest),
    reportId: toHex(report.reportId),
    reportIdMa: toHex(report.reportIdMa),
    cpuid: report.cpuid ?? null,
    currentFirmware: fw(report.currentVersion),
    committedFirmware: fw(report.committedVersion),
    launchMitVector: report.launchMitVector === undefined ? null : `0x${report.launchMitVector.toString(16)}`,
    currentMitVector: report.currentMitVector === undefined ? null : `0x${report.currentMitVector.toString(16)}`,
  };
}

const POLICY_FLAGS: [keyof SnpPolicy, string][] = [
  ['smt', 'SMT allowed'],
  ['migrateMa', 'MIGRATE_MA (migration agent allowed)'],
  ['debug', 'DEBUG (host may decrypt guest)'],
  ['singleSocket', 'SINGLE_SOCKET'],
  ['cxlAllowed', 'CXL_ALLOW'],
  ['memAes256Xts', 'MEM_AES_256_XTS required'],
  ['raplDis', 'RAPL_DIS required'],
  ['ciphertextHiding', 'CIPHERTEXT_HIDING required'],
  ['pageSwapDisable', 'PAGE_SWAP_DISABLE'],
];

const PLATFORM_FLAGS: [keyof SnpPlatformInfo, string][] = [
  ['smtEnabled', 'SMT_EN'],
  ['tsmeEnabled', 'TSME_EN'],
  ['eccEnabled', 'ECC_EN'],
  ['raplDisabled', 'RAPL_DIS'],
  ['ciphertextHidingEnabled', 'CIPHERTEXT_HIDING_EN'],
  ['aliasCheckComplete', 'ALIAS_CHECK_COMPLETE'],
  ['tioEnabled', 'SEV_TIO_EN'],
];

function fmtTcb(t: TcbClaims): string {
  const parts = `${t.fmc !== undefined ? `fmc=${t.fmc} ` : ''}bl=${t.bootloader} tee=${t.tee} snp=${t.snp} ucode=${t.microcode}`;
  return `${parts}  (0x${t.raw})`;
}

/** A labelled, aligned rendering of a report for a person, flags spelled out. */
export function formatSnpReport(report: SnpReport, product?: SnpProduct): string {
  const c = snpClaims(report, product);
  const onOff = (obj: Record<string, unknown>, flags: [string, string][]) => {
    const set = flags.filter(([k]) => obj[k] === true).map(([, n]) => n);
    return set.length > 0 ? set.join(', ') : 'none';
  };
  const rows: [string, string][] = [
    ['Version', String(c.version)],
    ['Product', c.product ?? 'unknown (v2 report: no CPUID; the VCEK issuer decides)'],
    ['CPUID', c.cpuid ? `family 0x${c.cpuid.family.toString(16)} model 0x${c.cpuid.model.toString(16)} stepping 0x${c.cpuid.stepping.toString(16)}` : 'not reported (v2)'],
    ['Signing key', `${c.signingKey.toUpperCase()}${c.keyInfo.maskChipKey ? ', MASK_CHIP_KEY (VCEK not used)' : ''}${/^0+$/.test(c.chipId) ? ', CHIP_ID masked' : ''}${c.keyInfo.authorKeyEn ? ', author key present' : ''}`],
    ['Guest policy', `${c.policy.raw}  ABI ≥ ${c.policy.abiMajor}.${c.policy.abiMinor}; ${onOff(c.policy, POLICY_FLAGS)}`],
    ['Platform info', `${c.platformInfo.raw}  ${onOff(c.platformInfo, PLATFORM_FLAGS)}${c.platformInfo.unknownBits !== '0x0' ? `; UNKNOWN bits ${c.platformInfo.unknownBits}` : ''}`],
    ['VMPL', String(c.vmpl)],
    ['Guest SVN', String(c.guestSvn)],
    ['Measurement', c.measurement],
    ['Report data', c.reportData],
    ['Host data', c.hostData],
    ['Family id', c.familyId],
    ['Image id', c.imageId],
    ['ID key digest', c.idKeyDigest],
    ['Author key digest', c.authorKeyDigest],
    ['Report id', c.reportId],
    ['Report id (MA)', c.reportIdMa],
    ['Chip id', c.chipId],
    ['Reported TCB', fmtTcb(c.reportedTcb)],
    ['Current TCB', fmtTcb(c.currentTcb)],
    ['Committed TCB', fmtTcb(c.committedTcb)],
    ['Launch TCB', fmtTcb(c.launchTcb)],
    ['Firmware', `current ${c.currentFirmware}, committed ${c.committedFirmware}`],
  ];
  if (c.launchMitVector !== null) rows.push(['Mitigation vector', `launch ${c.launchMitVector}, current ${c.currentMitVector ?? ''}`]);
  rows.push(['Signature', `ECDSA P-384 r=${toHex(report.signature.r).slice(0, 16)}… s=${toHex(report.signature.s).slice(0, 16)}…`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
