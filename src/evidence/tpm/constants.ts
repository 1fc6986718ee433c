/**
 * TPM 2.0 constants (TCG TPM 2.0 Library, Part 2: Structures). Only what quotes, signatures and
 * public areas need; every other value is refused by the parsers, never guessed at.
 */

/** TPM_GENERATED_VALUE: the magic of every TPMS_ATTEST the TPM produces. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TPM_ST attestation structure tags (Part 2, 6.9). */
export const TPM_ST_ATTEST: Readonly<Record<number, string>> = {
  0x8014: 'nv',
  0x8015: 'command-audit',
  0x8016: 'session-audit',
  0x8017: 'certify',
  0x8018: 'quote',
  0x8019: 'time',
  0x801a: 'creation',
  0x801c: 'nv-digest',
};
export const TPM_ST_ATTEST_QUOTE = 0x8018;

/** TPM_ALG_ID values (TCG Algorithm Registry) that the structures below can carry. */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

const ALG_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(TPM_ALG).map(([k, v]) => [v, k.toLowerCase().replace(/_/g, '-')]));

/** "sha256", "rsassa", ... or "0x1234" for a value the registry table above does not hold. */
export function algName(id: number): string {
  return ALG_NAMES[id] ?? `0x${id.toString(16).padStart(4, '0')}`;
}

/** Hash algorithms Coffer computes, by TPM_ALG_ID: node:crypto name and digest size. */
export type TpmHash = 'sha1' | 'sha256' | 'sha384' | 'sha512';

export const TPM_HASHES: Readonly<Record<number, { name: TpmHash; size: number }>> = {
  [TPM_ALG.SHA1]: { name: 'sha1', size: 20 },
  [TPM_ALG.SHA256]: { name: 'sha256', size: 32 },
  [TPM_ALG.SHA384]: { name: 'sha384', size: 48 },
  [TPM_ALG.SHA512]: { name: 'sha512', size: 64 },
};

/** Digest sizes of hash algorithms that are valid TPMI_ALG_HASH values but that Coffer does not compute. */
export const OTHER_HASH_SIZES: Readonly<Record<number, number>> = {
  [TPM_ALG.SM3_256]: 32,
  [TPM_ALG.SHA3_256]: 32,
  [TPM_ALG.SHA3_384]: 48,
  [TPM_ALG.SHA3_512]: 64,
};

export const HASH_IDS: Readonly<Record<TpmHash, number>> = { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384, sha512: TPM_ALG.SHA512 };

export const HASH_NAMES: readonly TpmHash[] = ['sha1', 'sha256', 'sha384', 'sha512'];

/** sizeof(TPMU_HA): the largest digest a TPM2B_DIGEST may hold (SHA-512). */
export const MAX_DIGEST_SIZE = 64;
/** sizeof(TPMT_HA): the bound of TPM2B_DATA (extraData). */
export const MAX_DATA_SIZE = 66;
/** sizeof(TPMU_NAME): a digest with its algorithm (2 + 64), or a 4-byte handle. */
export const MAX_NAME_SIZE = 66;
/** PCR_SELECT_MIN: the PC Client profile requires at least 24 PCRs, so a TPM's bitmap is at least 3 octets. */
export const PCR_SELECT_MIN = 3;
/** PCR_SELECT_MAX: no TPM implements more than 32 PCRs per bank (TSS2 uses 4 octets). */
export const PCR_SELECT_MAX = 4;
/** HASH_COUNT bound for TPML_PCR_SELECTION (TSS2's TPM2_NUM_PCR_BANKS). */
export const MAX_PCR_BANKS = 16;
/** MAX_RSA_KEY_BYTES (4096-bit keys). */
export const MAX_RSA_KEY_BYTES = 512;
/** MAX_ECC_KEY_BYTES (P-521). */
export const MAX_ECC_KEY_BYTES = 66;

/** TPM_ECC_CURVE identifiers; the three NIST curves have a node:crypto name. */
export const TPM_ECC_CURVES: Readonly<Record<number, { name: string; jwk?: string; bytes: number }>> = {
  0x0001: { name: 'nist-p192', bytes: 24 },
  0x0002: { name: 'nist-p224', bytes: 28 },
  0x0003: { name: 'nist-p256', jwk: 'P-256', bytes: 32 },
  0x0004: { name: 'nist-p384', jwk: 'P-384', bytes: 48 },
  0x0005: { name: 'nist-p521', jwk: 'P-521', bytes: 66 },
  0x0010: { name: 'bn-p256', bytes: 32 },
  0x0011: { name: 'bn-p638', bytes: 80 },
  0x0020: { name: 'sm2-p256', bytes: 32 },
};

/** TPM_RH_* hierarchy handles: the qualified name of a primary object starts from one of these. */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;
