import { ByteWriter } from '../../bytes/writer.js';
import { inputError } from '../../errors.js';
import { TPM_ALG } from '../../evidence/tpm/constants.js';

/**
 * TPMT_PUBLIC templates for the keys the guest creates. A primary key is derived from its
 * hierarchy's seed and its template, so the same template gives the same key on every boot of the
 * same TPM: nothing needs to be stored to get the SRK or AK back.
 */

/** TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

const A = TPMA_OBJECT;
const NIST_P256 = 0x0003;

export type SrkKind = 'ecc' | 'rsa';
export type AkKind = 'ecc' | 'rsa';

/** A storage key: restricted decryption key with AES-128-CFB for its children (TCG provisioning guidance SRK). */
export function srkTemplate(kind: SrkKind = 'ecc'): Buffer {
  const w = new ByteWriter()
    .u16be(kind === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA)
    .u16be(TPM_ALG.SHA256)
    .u32be((A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.userWithAuth | A.noDA | A.restricted | A.decrypt) >>> 0)
    .u16be(0) // authPolicy: empty
    .u16be(TPM_ALG.AES)
    .u16be(128)
    .u16be(TPM_ALG.CFB)
    .u16be(TPM_ALG.NULL); // scheme: a restricted decryption key has none
  if (kind === 'ecc') w.u16be(NIST_P256).u16be(TPM_ALG.NULL).u16be(0).u16be(0);
  else w.u16be(2048).u32be(0).u16be(0);
  return w.toBuffer();
}

/**
 * An attestation key: restricted signing key (it signs only TPM-generated structures such as
 * quotes), ECDSA-SHA256 on P-256 or RSASSA-SHA256 with RSA-2048. RSA-PSS is avoided on purpose:
 * tpm2_checkquote 5.4 rejects swtpm's PSS salt length.
 */
export function akTemplate(kind: AkKind = 'ecc'): Buffer {
  const w = new ByteWriter()
    .u16be(kind === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA)
    .u16be(TPM_ALG.SHA256)
    .u32be((A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.userWithAuth | A.noDA | A.restricted | A.sign) >>> 0)
    .u16be(0)
    .u16be(TPM_ALG.NULL); // symmetric: none for a signing key
  if (kind === 'ecc') w.u16be(TPM_ALG.ECDSA).u16be(TPM_ALG.SHA256).u16be(NIST_P256).u16be(TPM_ALG.NULL).u16be(0).u16be(0);
  else w.u16be(TPM_ALG.RSASSA).u16be(TPM_ALG.SHA256).u16be(2048).u32be(0).u16be(0);
  return w.toBuffer();
}

/** PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the TCG default EK templates. */
export const EK_POLICY_SHA256 = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');

/**
 * The TCG EK Credential Profile's default EK templates (L-1 RSA-2048, L-2 ECC P-256): with them,
 * CreatePrimary in the endorsement hierarchy re-creates the key the EK certificate certifies.
 */
export function ekTemplate(kind: 'rsa' | 'ecc'): Buffer {
  const w = new ByteWriter()
    .u16be(kind === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA)
    .u16be(TPM_ALG.SHA256)
    .u32be((A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.adminWithPolicy | A.restricted | A.decrypt) >>> 0)
    .u16be(EK_POLICY_SHA256.length)
    .bytes(EK_POLICY_SHA256)
    .u16be(TPM_ALG.AES)
    .u16be(128)
    .u16be(TPM_ALG.CFB)
    .u16be(TPM_ALG.NULL);
  if (kind === 'ecc') w.u16be(NIST_P256).u16be(TPM_ALG.NULL).u16be(32).zeros(32).u16be(32).zeros(32);
  else w.u16be(2048).u32be(0).u16be(256).zeros(256);
  return w.toBuffer();
}

/** Most a sealed data object may hold (MAX_SYM_DATA). */
export const MAX_SEALED_BYTES = 128;

/**
 * A sealed data object: KEYEDHASH with scheme NULL, data supplied by the caller, usable only
 * through its authPolicy (userWithAuth clear, so the empty auth value opens nothing), bound to
 * this TPM and parent (fixedTPM, fixedParent), no dictionary-attack lockout for policy failures.
 */
export function sealedObjectTemplate(authPolicy: Uint8Array): Buffer {
  if (authPolicy.length !== 32) throw inputError('TPM_BAD_ARGUMENT', `a sealed object's SHA-256 policy is 32 bytes, not ${authPolicy.length}`);
  return new ByteWriter()
    .u16be(TPM_ALG.KEYEDHASH)
    .u16be(TPM_ALG.SHA256)
    .u32be((A.fixedTPM | A.fixedParent | A.noDA) >>> 0)
    .u16be(authPolicy.length)
    .bytes(authPolicy)
    .u16be(TPM_ALG.NULL) // TPMT_KEYEDHASH_SCHEME
    .u16be(0) // unique: the TPM fills it with H(seedValue || data)
    .toBuffer();
}

/** The attributes a sealed object created by seal() must have, exactly. */
export const SEALED_OBJECT_ATTRIBUTES = (A.fixedTPM | A.fixedParent | A.noDA) >>> 0;
