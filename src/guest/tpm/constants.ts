/**
 * TPM 2.0 command-side constants (TCG TPM 2.0 Library, Part 2: Structures), limited to what the
 * guest's client sends. Structure-side constants (algorithms, curves) live in evidence/tpm.
 */

/** TPM_CC command codes (Part 2, table "TPM_CC Constants"). */
export const TPM_CC = {
  NV_UndefineSpace: 0x00000122,
  NV_DefineSpace: 0x0000012a,
  CreatePrimary: 0x00000131,
  NV_Write: 0x00000137,
  Startup: 0x00000144,
  Shutdown: 0x00000145,
  NV_Read: 0x0000014e,
  Create: 0x00000153,
  Load: 0x00000157,
  Quote: 0x00000158,
  Unseal: 0x0000015e,
  FlushContext: 0x00000165,
  NV_ReadPublic: 0x00000169,
  ReadPublic: 0x00000173,
  StartAuthSession: 0x00000176,
  GetCapability: 0x0000017a,
  GetRandom: 0x0000017b,
  PCR_Read: 0x0000017e,
  PolicyPCR: 0x0000017f,
  PCR_Extend: 0x00000182,
  PolicyGetDigest: 0x00000189,
} as const;

export const CC_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(TPM_CC).map(([k, v]) => [v, `TPM2_${k}`]));

/** TPM_ST tags of command and response headers. */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  CREATION: 0x8021,
} as const;

/** Permanent handles (TPM_RH) used as hierarchies or placeholders. */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** The password authorisation "session" handle. */
export const TPM_RS_PW = 0x40000009;

/** TPM_SE session types. */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_SU startup types. */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPM_CAP and TPM_PT values used by GetCapability. */
export const TPM_CAP = { TPM_PROPERTIES: 0x00000006, PCRS: 0x00000005 } as const;
export const TPM_PT = {
  /** PT_FIXED + 13: TPM_PT_INPUT_BUFFER, the largest TPM2B_MAX_BUFFER. */
  INPUT_BUFFER: 0x0000010d,
  /** PT_FIXED + 30: TPM_PT_MAX_COMMAND_SIZE, the largest command the TPM accepts. */
  MAX_COMMAND_SIZE: 0x0000011e,
  /** PT_FIXED + 31: TPM_PT_MAX_RESPONSE_SIZE, the largest response the TPM produces. */
  MAX_RESPONSE_SIZE: 0x0000011f,
  /** PT_FIXED + 44: TPM_PT_NV_BUFFER_MAX, the largest NV_Read/NV_Write chunk. */
  NV_BUFFER_MAX: 0x0000012c,
} as const;

/** TPMA_SESSION bit continueSession. */
export const SESSION_CONTINUE = 0x01;

/** TPMA_NV bits the reader looks at (Part 2, TPMA_NV). */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  POLICYWRITE: 1 << 3,
  POLICY_DELETE: 1 << 10,
  WRITELOCKED: 1 << 11,
  WRITEALL: 1 << 12,
  WRITEDEFINE: 1 << 13,
  WRITE_STCLEAR: 1 << 14,
  GLOBALLOCK: 1 << 15,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  ORDERLY: 1 << 26,
  CLEAR_STCLEAR: 1 << 27,
  READLOCKED: 1 << 28,
  WRITTEN: 1 << 29,
  PLATFORMCREATE: 1 << 30,
  READ_STCLEAR: 1 << 31,
} as const;

/**
 * NV indices where clouds and the TCG EK Credential Profile place certificates and templates.
 * GCE's AK indices come from Google's go-tpm-tools (client/keys.go): certificates at 0x01C10000
 * (RSA) and 0x01C10002 (ECC), the AK templates at 0x01C10001 (RSA) and 0x01C10003 (ECC).
 */
export const NV_INDEX = {
  /** TCG EK Credential Profile: RSA-2048 EK certificate. */
  EK_CERT_RSA: 0x01c00002,
  /** RSA EK nonce and template (optional). */
  EK_NONCE_RSA: 0x01c00003,
  EK_TEMPLATE_RSA: 0x01c00004,
  /** TCG EK Credential Profile: ECC NIST P-256 EK certificate. */
  EK_CERT_ECC: 0x01c0000a,
  EK_NONCE_ECC: 0x01c0000b,
  EK_TEMPLATE_ECC: 0x01c0000c,
  GCE_AK_CERT_RSA: 0x01c10000,
  GCE_AK_TEMPLATE_RSA: 0x01c10001,
  GCE_AK_CERT_ECC: 0x01c10002,
  GCE_AK_TEMPLATE_ECC: 0x01c10003,
} as const;

/** TPM_HT_NV_INDEX: the high octet of an NV index handle. */
export const TPM_HT_NV_INDEX = 0x01;

/** The TPM header: tag (u16), size (u32), code (u32). */
export const HEADER_SIZE = 10;
