/**
 * A TPM 2.0 client in TypeScript: no tpm2-tools, no TSS library at runtime.
 *
 * ## Quick use (what the guest agent needs)
 *
 * ```ts
 * import { openTpm, parseTpmTarget } from '../guest/tpm/index.js';
 * const tpm = await openTpm(parseTpmTarget('/dev/tpmrm0'));          // or 'swtpm:host=127.0.0.1,port=2321'
 * try {
 *   const pcrs = await tpm.readPcrs({ sha256: [0, 4, 7, 11] });      // PcrBanks (Map bank → Map index → value)
 *   const q = await tpm.quote(reportData, { sha256: [0, 4, 7, 11] });    // ≤ 64 bytes; the broker's TPM
 *   //   verifier (src/broker/tee/tpm.ts) wants the full 64-byte report data (digest, zero padded)
 *   //   q.attest (TPMS_ATTEST bytes as signed), q.signature (TPMT_SIGNATURE), q.akPublic (TPMT_PUBLIC),
 *   //   q.pcrs (the quoted values, checked against q.attest's pcrDigest), q.akName, q.akQualifiedName
 *   const ekCert = await tpm.readNvCertificate(NV_INDEX.EK_CERT_RSA);  // DER bytes
 *   const blob = await tpm.seal(volumeKey, { sha256: [7, 11] });        // self-describing bytes, safe to store
 *   const key = await tpm.unseal(blob);                                // TPM_RC_POLICY_FAIL after a PCR change
 *   await tpm.extendPcr(15, { sha256: workloadDigest });
 *   const ak = await tpm.attestationKey();                             // { public, name, qualifiedName, pem }
 * } finally {
 *   await tpm.close();
 * }
 * ```
 *
 * Every failure is a CofferError: transport problems (`TPM_UNAVAILABLE`, `TPM_TIMEOUT`,
 * `TPM_BAD_RESPONSE`), TPM response codes as `TPM_RC_<NAME>` (for example `TPM_RC_POLICY_FAIL`,
 * `TPM_RC_PCR_CHANGED`, `TPM_RC_HANDLE`) with `details.rc` and, for format-one codes, the
 * parameter, handle or session number the TPM blamed. Malformed blobs are `TPM_BAD_SEALED_BLOB`.
 *
 * ## Limits (see docs/boot.md, "The TPM client")
 * - Sessions are unsalted and unbound: the unsealed secret crosses the TPM interface in the clear
 *   (no parameter encryption). Inside a confidential VM the vTPM link is the hypervisor-hosted or
 *   SVSM-hosted vTPM; treat the unseal path as readable by whoever runs the vTPM.
 * - The AK is a primary key recreated from a fixed template in the endorsement hierarchy (empty
 *   hierarchy password by default): it is the same key on every boot of the same TPM, but only an
 *   AK certificate (cloud NV index) or the EK credential binds it to a real TPM.
 * - Hierarchy authorisation is a password session (TPM_RS_PW), empty unless given.
 */
export { TPM_CC, TPM_RH, TPM_ST, TPM_RS_PW, NV_INDEX, TPM_SE, TPM_SU, TPM_PT, TPMA_NV } from './constants.js';
export type { PcrBanks } from '../../evidence/tpm/pcrs.js';
export { decodeTpmRc, describeTpmRc, tpmRcError, isRetryable, type TpmRcInfo } from './rc.js';
export {
  DeviceTransport,
  SocketTransport,
  SwtpmControl,
  parseTpmTarget,
  openTransport,
  type TpmTransport,
  type TpmTarget,
  type TransportOptions,
} from './transport.js';
export { buildCommand, parseResponse, type CommandSession, type ParsedResponse, type ResponseExpectation } from './marshal.js';
export { TpmClient, objectName, MAX_QUALIFYING_DATA, type CreatedObject, type LoadedObject, type NvPublic, type PcrReadResult, type PolicySession } from './client.js';
export { akTemplate, ekTemplate, srkTemplate, sealedObjectTemplate, MAX_SEALED_BYTES, TPMA_OBJECT, EK_POLICY_SHA256, type AkKind, type SrkKind } from './templates.js';
export { policyPcrDigest, pcrCompositeDigest, selectionFromInput, encodeSelection, PCR_COUNT, type PcrSelectionInput, type Selection } from './policy.js';
export { encodeSealedBlob, parseSealedBlob, SEALED_BLOB_MAGIC, SEALED_BLOB_VERSION, type SealedBlob } from './blob.js';
export { Tpm, openTpm, type QuoteOptions, type SealOptions, type TpmOpenOptions, type TpmQuoteEvidence } from './tpm.js';
