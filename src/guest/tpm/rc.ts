import { CofferError } from '../../errors.js';

/**
 * TPM_RC decoding (TPM 2.0 Library Part 2, "TPM_RC (Response Codes)"). Bit 7 selects the format:
 * format one (bit 7 set) carries a 6-bit error number and names the parameter (bit 6 set, number
 * in bits 8-11), the handle (bits 8-10, bit 11 clear) or the session (bits 8-10, bit 11 set) it
 * blames; format zero carries a 7-bit number with bit 8 (TPM 2.0 code), bit 10 (vendor) and
 * bit 11 (warning). Bits 16 and above are a software layer (TSS / resource manager), not the TPM.
 */

const FMT1: Readonly<Record<number, [string, string]>> = {
  0x01: ['ASYMMETRIC', 'asymmetric algorithm not supported or not correct'],
  0x02: ['ATTRIBUTES', 'inconsistent attributes'],
  0x03: ['HASH', 'hash algorithm not supported or not appropriate'],
  0x04: ['VALUE', 'value is out of range or is not correct for the context'],
  0x05: ['HIERARCHY', 'hierarchy is not enabled or is not correct for the use'],
  0x07: ['KEY_SIZE', 'key size is not supported'],
  0x08: ['MGF', 'mask generation function not supported'],
  0x09: ['MODE', 'mode of operation not supported'],
  0x0a: ['TYPE', 'the type of the value is not appropriate for the use'],
  0x0b: ['HANDLE', 'the handle is not correct for the use'],
  0x0c: ['KDF', 'unsupported key derivation function or function not appropriate for use'],
  0x0d: ['RANGE', 'value was out of allowed range'],
  0x0e: ['AUTH_FAIL', 'the authorization HMAC check failed and the DA counter incremented'],
  0x0f: ['NONCE', 'invalid nonce size or nonce value mismatch'],
  0x10: ['PP', 'authorization requires assertion of physical presence'],
  0x12: ['SCHEME', 'unsupported or incompatible scheme'],
  0x15: ['SIZE', 'structure is the wrong size'],
  0x16: ['SYMMETRIC', 'unsupported symmetric algorithm or key size, or not appropriate for instance'],
  0x17: ['TAG', 'incorrect structure tag'],
  0x18: ['SELECTOR', 'union selector is incorrect'],
  0x1a: ['INSUFFICIENT', 'the TPM was unable to unmarshal a value because there were not enough octets in the input buffer'],
  0x1b: ['SIGNATURE', 'the signature is not valid'],
  0x1c: ['KEY', 'key fields are not compatible with the selected use'],
  0x1d: ['POLICY_FAIL', 'a policy check failed'],
  0x1f: ['INTEGRITY', 'integrity check failed'],
  0x20: ['TICKET', 'invalid ticket'],
  0x21: ['RESERVED_BITS', 'reserved bits not set to zero as required'],
  0x22: ['BAD_AUTH', 'authorization failure without DA implications'],
  0x23: ['EXPIRED', 'the policy has expired'],
  0x24: ['POLICY_CC', 'the commandCode in the policy is not the commandCode of the command'],
  0x25: ['BINDING', 'public and sensitive portions of an object are not cryptographically bound'],
  0x26: ['CURVE', 'curve not supported'],
  0x27: ['ECC_POINT', 'point is not on the required curve'],
};

const VER1: Readonly<Record<number, [string, string]>> = {
  0x00: ['INITIALIZE', 'TPM not initialized by TPM2_Startup or already initialized'],
  0x01: ['FAILURE', 'commands not being accepted because of a TPM failure'],
  0x03: ['SEQUENCE', 'improper use of a sequence handle'],
  0x0b: ['PRIVATE', 'not currently used'],
  0x19: ['HMAC', 'not currently used'],
  0x20: ['DISABLED', 'the command is disabled'],
  0x21: ['EXCLUSIVE', 'command failed because audit sequence required exclusivity'],
  0x24: ['AUTH_TYPE', 'authorization handle is not correct for command'],
  0x25: ['AUTH_MISSING', 'command requires an authorization session for handle and it is not present'],
  0x26: ['POLICY', 'policy failure in math operation or an invalid authPolicy value'],
  0x27: ['PCR', 'PCR check fail'],
  0x28: ['PCR_CHANGED', 'PCR have changed since checked'],
  0x2d: ['UPGRADE', 'the TPM is in field upgrade mode'],
  0x2e: ['TOO_MANY_CONTEXTS', 'context ID counter is at maximum'],
  0x2f: ['AUTH_UNAVAILABLE', 'authValue or authPolicy is not available for selected entity'],
  0x30: ['REBOOT', 'a _TPM_Init and Startup(CLEAR) is required before the TPM can resume operation'],
  0x31: ['UNBALANCED', 'the protection algorithms (hash and symmetric) are not reasonably balanced'],
  0x42: ['COMMAND_SIZE', 'command commandSize value is inconsistent with contents of the command buffer'],
  0x43: ['COMMAND_CODE', 'command code not supported'],
  0x44: ['AUTHSIZE', 'the value of authorizationSize is out of range or the number of octets in the authorization area is greater than required'],
  0x45: ['AUTH_CONTEXT', 'use of an authorization session with a context command or another command that cannot have an authorization session'],
  0x46: ['NV_RANGE', 'NV offset+size is out of range'],
  0x47: ['NV_SIZE', 'requested allocation size is larger than allowed'],
  0x48: ['NV_LOCKED', 'NV access locked'],
  0x49: ['NV_AUTHORIZATION', 'NV access authorization fails in command actions'],
  0x4a: ['NV_UNINITIALIZED', 'an NV Index is used before being initialized or the state saved by TPM2_Shutdown(STATE) could not be restored'],
  0x4b: ['NV_SPACE', 'insufficient space for NV allocation'],
  0x4c: ['NV_DEFINED', 'NV Index or persistent object already defined'],
  0x50: ['BAD_CONTEXT', 'context in TPM2_ContextLoad() is not valid'],
  0x51: ['CPHASH', 'cpHash value already set or not correct for use'],
  0x52: ['PARENT', 'handle for parent is not a valid parent'],
  0x53: ['NEEDS_TEST', 'some function needs testing'],
  0x54: ['NO_RESULT', 'returned when an internal function cannot process a request due to an unspecified problem'],
  0x55: ['SENSITIVE', 'the sensitive area did not unmarshal correctly after decryption'],
};

const WARN: Readonly<Record<number, [string, string]>> = {
  0x01: ['CONTEXT_GAP', 'gap for context ID is too large'],
  0x02: ['OBJECT_MEMORY', 'out of memory for object contexts'],
  0x03: ['SESSION_MEMORY', 'out of memory for session contexts'],
  0x04: ['MEMORY', 'out of shared object/session memory or need space for internal operations'],
  0x05: ['SESSION_HANDLES', 'out of session handles; a session must be flushed before a new session may be created'],
  0x06: ['OBJECT_HANDLES', 'out of object handles; the handle space for objects is depleted and a reboot is required'],
  0x07: ['LOCALITY', 'bad locality'],
  0x08: ['YIELDED', 'the TPM has suspended operation on the command; forward progress was made and the command may be retried'],
  0x09: ['CANCELED', 'the command was canceled'],
  0x0a: ['TESTING', 'TPM is performing self-tests'],
  0x20: ['NV_RATE', 'the TPM is rate-limiting accesses to prevent wearout of NV'],
  0x21: ['LOCKOUT', 'authorizations for objects subject to DA protection are not allowed at this time because the TPM is in DA lockout mode'],
  0x22: ['RETRY', 'the TPM was not able to start the command'],
  0x23: ['NV_UNAVAILABLE', 'the command may require writing of NV and NV is not current accessible'],
};
for (let i = 0; i < 7; i++) {
  (WARN as Record<number, [string, string]>)[0x10 + i] = [`REFERENCE_H${i}`, `the ${i + 1}th handle in the handle area references a transient object or session that is not loaded`];
  (WARN as Record<number, [string, string]>)[0x18 + i] = [`REFERENCE_S${i}`, `the ${i + 1}th authorization session handle references a session that is not loaded`];
}

export interface TpmRcInfo {
  rc: number;
  /** "TPM_RC_POLICY_FAIL", "TPM_RC_VENDOR", "TPM12_RC", "TPM_RC_LAYER" ... */
  name: string;
  /** Human description from the specification. */
  description: string;
  format: 'one' | 'zero' | 'tpm12' | 'vendor' | 'layer';
  warning: boolean;
  /** Format one: which parameter (1-15), handle (1-7) or session (1-7) the TPM blames. */
  parameter?: number;
  handle?: number;
  session?: number;
}

function hex(rc: number): string {
  return `0x${(rc >>> 0).toString(16).padStart(3, '0')}`;
}

/** Decodes a TPM_RC into its name, meaning and blamed parameter, handle or session. */
export function decodeTpmRc(rcIn: number): TpmRcInfo {
  const rc = rcIn >>> 0;
  if (rc === 0) return { rc, name: 'TPM_RC_SUCCESS', description: 'success', format: 'zero', warning: false };
  if (rc > 0xffff) {
    return { rc, name: 'TPM_RC_LAYER', description: `software layer ${(rc >>> 16) & 0xff} (not the TPM) reported error ${hex(rc & 0xffff)}`, format: 'layer', warning: false };
  }
  if (rc & 0x80) {
    const e = rc & 0x3f;
    const [n, d] = FMT1[e] ?? [`FMT1_${e.toString(16).padStart(2, '0')}`, 'unknown format-one error'];
    const info: TpmRcInfo = { rc, name: `TPM_RC_${n}`, description: d, format: 'one', warning: false };
    const num = (rc >>> 8) & 0xf;
    if (rc & 0x40) info.parameter = num;
    else if (num & 0x8) info.session = num & 0x7;
    else if (num !== 0) info.handle = num;
    return info;
  }
  if (!(rc & 0x100)) return { rc, name: 'TPM12_RC', description: `a TPM 1.2 response code (${hex(rc)})`, format: 'tpm12', warning: false };
  if (rc & 0x400) return { rc, name: 'TPM_RC_VENDOR', description: `vendor-defined response code ${hex(rc)}`, format: 'vendor', warning: (rc & 0x800) !== 0 };
  const e = rc & 0x7f;
  const warning = (rc & 0x800) !== 0;
  const [n, d] = (warning ? WARN : VER1)[e] ?? [`${warning ? 'WARN' : 'VER1'}_${e.toString(16).padStart(2, '0')}`, `unknown ${warning ? 'warning' : 'error'}`];
  return { rc, name: `TPM_RC_${n}`, description: d, format: 'zero', warning };
}

/** Human text: "TPM_RC_POLICY_FAIL (0x99d, session 1): a policy check failed". */
export function describeTpmRc(info: TpmRcInfo): string {
  const where = info.parameter !== undefined ? `, parameter ${info.parameter}` : info.handle !== undefined ? `, handle ${info.handle}` : info.session !== undefined ? `, session ${info.session}` : '';
  return `${info.name} (${hex(info.rc)}${where}): ${info.description}`;
}

/** Codes whose failure says the platform state is not what a policy demands: a verification failure. */
const VERIFY_CODES = new Set(['TPM_RC_POLICY_FAIL', 'TPM_RC_PCR_CHANGED', 'TPM_RC_PCR', 'TPM_RC_INTEGRITY', 'TPM_RC_POLICY', 'TPM_RC_SIGNATURE', 'TPM_RC_AUTH_FAIL', 'TPM_RC_BAD_AUTH', 'TPM_RC_LOCKOUT']);

/** The CofferError for a failed command: code TPM_RC_<NAME>, details { rc, command, ... }. */
export function tpmRcError(command: string, rc: number): CofferError {
  const info = decodeTpmRc(rc);
  const code = /^TPM_RC_[A-Z0-9_]+$/.test(info.name) ? info.name : info.name === 'TPM12_RC' ? 'TPM_RC_TPM12' : 'TPM_RC_UNKNOWN';
  return new CofferError(code, `${command} failed: ${describeTpmRc(info)}`, {
    kind: VERIFY_CODES.has(code) ? 'verify' : 'input',
    details: { command, rc: info.rc, rcHex: hex(info.rc), ...(info.parameter !== undefined ? { parameter: info.parameter } : {}), ...(info.handle !== undefined ? { handle: info.handle } : {}), ...(info.session !== undefined ? { session: info.session } : {}) },
  });
}

/** Warnings after which the same command may simply be sent again. */
export function isRetryable(rc: number): boolean {
  const info = decodeTpmRc(rc);
  return info.name === 'TPM_RC_RETRY' || info.name === 'TPM_RC_YIELDED' || info.name === 'TPM_RC_TESTING' || info.name === 'TPM_RC_NV_RATE';
}
