/**
 * AR4SI (draft-ietf-rats-ar4si) trustworthiness claims as EAR (draft-fv-rats-ear) carries them:
 * eight categories, each an integer in -128..127 whose range names a tier. The values used here
 * are the draft's (and Veraison's): 0 no claim, 2 affirming, 32 warning, 96 contraindicated,
 * 99 cryptographic validation failed, plus the category-specific ones below.
 */

export type Ar4siCategory = 'instance-identity' | 'configuration' | 'executables' | 'file-system' | 'hardware' | 'runtime-opaque' | 'storage-opaque' | 'sourced-data';

export const AR4SI_CATEGORIES: readonly Ar4siCategory[] = ['instance-identity', 'configuration', 'executables', 'file-system', 'hardware', 'runtime-opaque', 'storage-opaque', 'sourced-data'];

export type EarStatus = 'none' | 'affirming' | 'warning' | 'contraindicated';

export type TrustVector = Partial<Record<Ar4siCategory, number>>;

/** The draft's named values (a subset: the ones Coffer's rules produce). */
export const AR4SI = {
  NO_CLAIM: 0,
  UNEXPECTED_EVIDENCE: 1,
  VERIFIER_MALFUNCTION: -1,
  CRYPTO_VALIDATION_FAILED: 99,
  // instance identity
  TRUSTWORTHY_INSTANCE: 2,
  UNTRUSTWORTHY_INSTANCE: 96,
  UNRECOGNIZED_INSTANCE: 97,
  // configuration
  APPROVED_CONFIG: 2,
  NO_CONFIG_VULNS: 3,
  UNSAFE_CONFIG: 32,
  UNSUPPORTABLE_CONFIG: 96,
  // executables
  APPROVED_RUNTIME: 2,
  APPROVED_BOOT: 3,
  UNSAFE_RUNTIME: 32,
  UNRECOGNIZED_RUNTIME: 33,
  CONTRAINDICATED_RUNTIME: 96,
  // file system
  APPROVED_FILES: 2,
  UNRECOGNIZED_FILES: 32,
  CONTRAINDICATED_FILES: 96,
  // hardware
  GENUINE_HARDWARE: 2,
  UNSAFE_HARDWARE: 32,
  CONTRAINDICATED_HARDWARE: 96,
  UNRECOGNIZED_HARDWARE: 97,
  // runtime opaque
  ENCRYPTED_MEMORY_RUNTIME: 2,
  ISOLATED_MEMORY_RUNTIME: 32,
  VISIBLE_MEMORY_RUNTIME: 96,
  // storage opaque
  HW_KEYS_ENCRYPTED_SECRETS: 2,
  SW_KEYS_ENCRYPTED_SECRETS: 32,
  UNENCRYPTED_SECRETS: 96,
  // sourced data
  TRUSTED_SOURCES: 2,
  UNTRUSTED_SOURCES: 32,
  CONTRAINDICATED_SOURCES: 96,
} as const;

/** The tier a claim value falls in: none -1..1, affirming ±(2..31), warning ±(32..95), contraindicated ±(96..128). */
export function tierOf(value: number): EarStatus {
  const v = Math.abs(value);
  if (v <= 1) return 'none';
  if (v <= 31) return 'affirming';
  if (v <= 95) return 'warning';
  return 'contraindicated';
}

const RANK: Readonly<Record<EarStatus, number>> = { none: 0, affirming: 1, warning: 2, contraindicated: 3 };

/** The worse of two tiers (contraindicated > warning > affirming > none). */
export function worseTier(a: EarStatus, b: EarStatus): EarStatus {
  return RANK[a] >= RANK[b] ? a : b;
}

/**
 * `ear.status`: no higher trust than the worst claim of the vector. An all-none vector is
 * `none`; an affirming vector with some categories not claimed stays affirming.
 */
export function statusOf(vector: TrustVector): EarStatus {
  let s: EarStatus = 'none';
  for (const v of Object.values(vector)) if (v !== undefined) s = worseTier(s, tierOf(v));
  return s;
}
