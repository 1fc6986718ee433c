import type { Claims } from '../../evidence/claims-model.js';
import type { KeyObject } from 'node:crypto';
import type { TrustAnchor } from '../../pki/chain.js';
import type { ProductAnchor } from '../../pki/roots.js';

/** What a TEE verifier gets besides the evidence: the time and the trust anchors. */
export interface TeeVerifyContext {
  at: Date;
  /** SEV-SNP ARKs; the pinned AMD roots unless a test passes its own in-process. */
  snpRoots: readonly ProductAnchor[];
  /**
   * The 64-byte report data this session's runtime-data must produce, for verifiers that check
   * the binding inside the evidence (a TPM quote's extraData); the broker compares it again.
   */
  expectedReportData?: Buffer;
  /** TPM attestation keys the operator trusts: pinned AK public keys and AK certificate roots. */
  tpm?: { pinnedAks: readonly KeyObject[]; akRoots: readonly TrustAnchor[] };
  /** Intel roots for TDX quotes; undefined: the pinned Intel SGX Root CA. Only tests pass others. */
  tdxRoots?: readonly TrustAnchor[];
}

export interface TeeVerified {
  /** The evidence's report data (SNP REPORT_DATA, 64 bytes) that must bind the runtime-data. */
  reportData: Buffer;
  claims: Claims;
  /** SHA-256 (hex) of the signed evidence bytes, for replay detection and the audit log. */
  digest: string;
}

/**
 * One kind of evidence the KBS accepts, named as in the KBS protocol's `tee` field. Verifiers
 * throw a ProblemError (evidence-invalid, bad-request) and never do I/O.
 */
export interface TeeVerifier {
  readonly tee: string;
  /** Parses and verifies; `evidence` is the request's tee-evidence (JSON value or a JSON string). */
  verify(evidence: unknown, ctx: TeeVerifyContext): TeeVerified;
}
