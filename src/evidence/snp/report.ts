import { ByteReader } from '../../bytes/reader.js';
import { inputError } from '../../errors.js';

/**
 * AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI, "Attestation Report" table), 1184 bytes,
 * little-endian. Versions 2 to 5 are understood; v3 adds CPUID family/model/stepping at 0x188,
 * v5 adds the launch and current mitigation vectors at 0x1F8. Every reserved region must be zero:
 * a field we do not know about is refused, not ignored.
 */
export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, 0x2A0). */
export const SNP_SIGNED_LENGTH = 0x2a0;
export const SNP_SUPPORTED_VERSIONS: readonly number[] = [2, 3, 4, 5];

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';
export type SigningKey = 'vcek' | 'vlek' | 'none';

export interface SnpPolicy {
  raw: bigint;
  abiMinor: number;
  abiMajor: number;
  smt: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  cxlAllowed: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  pageSwapDisable: boolean;
}

export interface SnpPlatformInfo {
  raw: bigint;
  smtEnabled: boolean;
  tsmeEnabled: boolean;
  eccEnabled: boolean;
  raplDisabled: boolean;
  ciphertextHidingEnabled: boolean;
  aliasCheckComplete: boolean;
  tioEnabled: boolean;
  /** Set bits this code does not know (validation refuses them unless told otherwise). */
  unknownBits: bigint;
}

export interface SnpKeyInfo {
  raw: number;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  signingKey: SigningKey;
}

export interface FirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

export interface SnpReport {
  /** The 1184 bytes exactly as received (a private copy). */
  readonly raw: Buffer;
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: SnpPolicy;
  readonly familyId: Buffer;
  readonly imageId: Buffer;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcb: bigint;
  readonly platformInfo: SnpPlatformInfo;
  readonly keyInfo: SnpKeyInfo;
  readonly reportData: Buffer;
  readonly measurement: Buffer;
  readonly hostData: Buffer;
  readonly idKeyDigest: Buffer;
  readonly authorKeyDigest: Buffer;
  readonly reportId: Buffer;
  readonly reportIdMa: Buffer;
  readonly reportedTcb: bigint;
  /** CPUID(1) family/model/stepping, present from version 3 on. */
  readonly cpuid: { family: number; model: number; stepping: number } | undefined;
  readonly chipId: Buffer;
  readonly committedTcb: bigint;
  readonly currentVersion: FirmwareVersion;
  readonly committedVersion: FirmwareVersion;
  readonly launchTcb: bigint;
  /** Version 5 only. */
  readonly launchMitVector: bigint | undefined;
  readonly currentMitVector: bigint | undefined;
  /** ECDSA P-384 r and s as big-endian 48-byte integers (stored little-endian in 72-byte fields). */
  readonly signature: { r: Buffer; s: Buffer };
}

const POLICY_RESERVED_ONE = 1n << 17n;
const POLICY_KNOWN_MASK = (1n << 26n) - 1n;
const PLATFORM_INFO_KNOWN_MASK = 0xbfn; // bits 0-5 and 7 (SEV_TIO_EN)

export function decodePolicy(raw: bigint): SnpPolicy {
  if ((raw & POLICY_RESERVED_ONE) === 0n) {
    throw inputError('SNP_BAD_POLICY', 'guest policy bit 17 is reserved and must be 1');
  }
  if ((raw & ~POLICY_KNOWN_MASK) !== 0n) {
    throw inputError('SNP_BAD_POLICY', `guest policy 0x${raw.toString(16)} sets reserved bits 26-63`);
  }
  const bit = (n: number) => (raw & (1n << BigInt(n))) !== 0n;
  return {
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(16),
    migrateMa: bit(18),
    debug: bit(19),
    singleSocket: bit(20),
    cxlAllowed: bit(21),
    memAes256Xts: bit(22),
    raplDis: bit(23),
    ciphertextHiding: bit(24),
    pageSwapDisable: bit(25),
  };
}

export function decodePlatformInfo(raw: bigint): SnpPlatformInfo {
  // Platform info describes the host; firmware adds bits over time. Unknown bits are kept and
  // refused by validation (SNP_PLATFORM_INFO_UNKNOWN) rather than making the report unreadable.
  const bit = (n: number) => (raw & (1n << BigInt(n))) !== 0n;
  return {
    raw,
    smtEnabled: bit(0),
    tsmeEnabled: bit(1),
    eccEnabled: bit(2),
    raplDisabled: bit(3),
    ciphertextHidingEnabled: bit(4),
    aliasCheckComplete: bit(5),
    tioEnabled: bit(7),
    unknownBits: raw & ~PLATFORM_INFO_KNOWN_MASK,
  };
}

export function decodeKeyInfo(raw: number): SnpKeyInfo {
  if (raw >>> 5 !== 0) throw inputError('RESERVED_NOT_ZERO', `SNP report: key info 0x${raw.toString(16)} sets reserved bits 5-31`);
  const key = (raw >>> 2) & 7;
  const signingKey: SigningKey | undefined = key === 0 ? 'vcek' : key === 1 ? 'vlek' : key === 7 ? 'none' : undefined;
  if (!signingKey) throw inputError('SNP_BAD_KEY_INFO', `SNP report: signing key value ${key} is reserved`);
  return { raw, authorKeyEn: (raw & 1) !== 0, maskChipKey: (raw & 2) !== 0, signingKey };
}

/** Reads a 72-byte little-endian ECDSA component into a 48-byte big-endian integer. */
function ecdsaComponent(r: ByteReader, name: string): Buffer {
  const le = r.view(72);
  for (let i = 48; i < 72; i++) {
    if (le[i] !== 0) throw inputError('SNP_BAD_SIGNATURE_FORMAT', `SNP report: signature ${name} exceeds 384 bits`);
  }
  return Buffer.from(le.subarray(0, 48)).reverse();
}

/**
 * Parses a raw 1184-byte SEV-SNP attestation report. Throws a CofferError (kind input) for a
 * wrong size, an unsupported version or signature algorithm, or a non-zero reserved field.
 */
export function parseSnpReport(data: Uint8Array): SnpReport {
  if (data.length !== SNP_REPORT_SIZE) {
    throw inputError('SNP_BAD_SIZE', `an SEV-SNP report is ${SNP_REPORT_SIZE} bytes, got ${data.length}`);
  }
  const raw = Buffer.from(data);
  const r = new ByteReader(raw, 'SNP report');
  const version = r.u32le();
  if (!SNP_SUPPORTED_VERSIONS.includes(version)) {
    throw inputError('SNP_UNSUPPORTED_VERSION', `SNP report version ${version} is not supported (supported: ${SNP_SUPPORTED_VERSIONS.join(', ')})`);
  }
  const guestSvn = r.u32le();
  const policy = decodePolicy(r.u64le());
  const familyId = r.bytes(16);
  const imageId = r.bytes(16);
  const vmpl = r.u32le();
  if (vmpl > 3) throw inputError('SNP_BAD_VMPL', `SNP report VMPL ${vmpl} is out of range 0-3`);
  const signatureAlgo = r.u32le();
  if (signatureAlgo !== 1) {
    throw inputError('SNP_UNSUPPORTED_SIGNATURE_ALGO', `SNP report signature algorithm ${signatureAlgo} is not ECDSA P-384 with SHA-384 (1)`);
  }
  const currentTcb = r.u64le();
  const platformInfo = decodePlatformInfo(r.u64le());
  const keyInfo = decodeKeyInfo(r.u32le());
  r.zeros(4, 'reserved at 0x4C');
  const reportData = r.bytes(64);
  const measurement = r.bytes(48);
  const hostData = r.bytes(32);
  const idKeyDigest = r.bytes(48);
  const authorKeyDigest = r.bytes(48);
  const reportId = r.bytes(32);
  const reportIdMa = r.bytes(32);
  const reportedTcb = r.u64le();
  let cpuid: SnpReport['cpuid'];
  if (version >= 3) {
    cpuid = { family: r.u8(), model: r.u8(), stepping: r.u8() };
    r.zeros(0x1a0 - 0x18b, 'reserved at 0x18B');
  } else {
    r.zeros(0x1a0 - 0x188, 'reserved at 0x188');
  }
  const chipId = r.bytes(64);
  const committedTcb = r.u64le();
  const currentVersion = { build: r.u8(), minor: r.u8(), major: r.u8() };
  r.zeros(1, 'reserved at 0x1EB');
  const committedVersion = { build: r.u8(), minor: r.u8(), major: r.u8() };
  r.zeros(1, 'reserved at 0x1EF');
  const launchTcb = r.u64le();
  let launchMitVector: bigint | undefined;
  let currentMitVector: bigint | undefined;
  if (version >= 5) {
    launchMitVector = r.u64le();
    currentMitVector = r.u64le();
    r.zeros(SNP_SIGNED_LENGTH - 0x208, 'reserved at 0x208');
  } else {
    r.zeros(SNP_SIGNED_LENGTH - 0x1f8, 'reserved at 0x1F8');
  }
  const sigR = ecdsaComponent(r, 'R');
  const sigS = ecdsaComponent(r, 'S');
  r.zeros(SNP_REPORT_SIZE - r.offset, 'signature reserved bytes');
  r.end();
  return {
    raw,
    version,
    guestSvn,
    policy,
    familyId,
    imageId,
    vmpl,
    signatureAlgo,
    currentTcb,
    platformInfo,
    keyInfo,
    reportData,
    measurement,
    hostData,
    idKeyDigest,
    authorKeyDigest,
    reportId,
    reportIdMa,
    reportedTcb,
    cpuid,
    chipId,
    committedTcb,
    currentVersion,
    committedVersion,
    launchTcb,
    launchMitVector,
    currentMitVector,
    signature: { r: sigR, s: sigS },
  };
}

/**
 * The product line from the report's CPUID fields (version 3 and later). Family 0x19 models
 * 0x00-0x0F are Milan, 0x10-0x1F and 0xA0-0xAF (Bergamo, Siena) are Genoa; family 0x1A models
 * 0x00-0x1F are Turin. Undefined when the report has no CPUID (v2) or the part is unknown.
 */
export function productFromCpuid(cpuid: SnpReport['cpuid']): SnpProduct | undefined {
  if (!cpuid) return undefined;
  if (cpuid.family === 0x19) {
    if (cpuid.model <= 0x0f) return 'Milan';
    if ((cpuid.model >= 0x10 && cpuid.model <= 0x1f) || (cpuid.model >= 0xa0 && cpuid.model <= 0xaf)) return 'Genoa';
  }
  if (cpuid.family === 0x1a && cpuid.model <= 0x1f) return 'Turin';
  return undefined;
}
