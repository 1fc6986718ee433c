import { createHash } from 'node:crypto';
import { z } from 'zod';
import { claimsFromTpm } from '../../appraisal/index.js';
import { CofferError } from '../../errors.js';
import { parseEventLog, type EventLog } from '../../evidence/eventlog/index.js';
import { HASH_NAMES, TPM_HASHES, assembleAttestationKey, parseAkPart, sameKey, verifyTpmQuote, type AkPart, type PcrBanks, type TpmHash } from '../../evidence/tpm/index.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import { problem } from '../problem.js';
import type { TeeVerified, TeeVerifier, TeeVerifyContext } from './types.js';

/**
 * TPM 2.0 evidence in a KBS attest request (`tee: "tpm"`, the name the Confidential Containers
 * guest-components TPM attester and trustee use). `tee-evidence` is a JSON object (or a string
 * holding one), the guest-components shape plus optional Coffer members:
 *
 *   {
 *     "tpm_quote": { "message": b64 TPMS_ATTEST, "signature": b64 TPMT_SIGNATURE,
 *                    "pcrs": [hex, ...] },          SHA-256 bank, PCR i at index i
 *     "ak_public": b64 TPM2B_PUBLIC | TPMT_PUBLIC,  the AK's TPM public area
 *     "report_data"?: b64,                          if present, must equal the quote's extraData
 *     "pcr_banks"?: { "sha384": { "0": hex, ... } }, other banks (or the SHA-256 bank by index)
 *     "ak_cert"?: PEM | b64 DER, "ak_chain"?: [PEM | b64 DER],
 *     "eventlog"?: b64                              TCG PC Client event log
 *   }
 *
 * The quote's extraData must be exactly the 64-byte report data: HASH(JCS(runtime-data)) zero
 * padded, as for SEV-SNP. The AK is trusted when its key is pinned (trusted key purpose `tpm-ak`)
 * or when `ak_cert` chains to a `tpm-ak-root`; a TPM has no vendor root built in.
 */
const b64 = z.string().min(1).max(1 << 20).regex(/^[A-Za-z0-9+/=_\-\s]+$/, 'must be base64');
const hexReg = z.string().regex(/^[0-9a-fA-F]*$/, 'must be hex').max(128);
const certField = z.string().min(1).max(1 << 16);
const evidenceSchema = z.strictObject({
  tpm_quote: z.strictObject({ message: b64, signature: b64, pcrs: z.array(hexReg).max(24).optional() }),
  ak_public: z.string().min(1).max(1 << 16),
  report_data: b64.optional(),
  pcr_banks: z.partialRecord(z.enum(['sha1', 'sha256', 'sha384', 'sha512']), z.record(z.string().regex(/^(0|[1-9]\d?)$/, 'must be a PCR index'), hexReg)).optional(),
  ak_cert: certField.optional(),
  ak_chain: z.array(certField).max(8).optional(),
  eventlog: b64.optional(),
});
export type TpmTeeEvidence = z.input<typeof evidenceSchema>;

const fromB64 = (s: string) => Buffer.from(s.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'), 'base64');

function certs(field: string, what: string): Certificate[] {
  return parseCertificates(field.includes('-----BEGIN') ? Buffer.from(field, 'utf8') : fromB64(field), what);
}

function bad(code: string, message: string): never {
  throw problem('bad-request', code, `TPM tee-evidence: ${message}`);
}

function pcrBanks(e: z.output<typeof evidenceSchema>): PcrBanks {
  const banks: PcrBanks = new Map();
  const put = (bank: TpmHash, index: number, hex: string) => {
    const size = Object.values(TPM_HASHES).find((h) => h.name === bank)?.size;
    const v = Buffer.from(hex, 'hex');
    if (hex.length % 2 !== 0 || v.length !== size) bad('KBS_BAD_EVIDENCE', `PCR ${bank}:${index} is not ${size ?? '?'} bytes of hex`);
    let b = banks.get(bank);
    if (!b) banks.set(bank, (b = new Map()));
    if (b.has(index) && !(b.get(index) as Buffer).equals(v)) bad('KBS_BAD_EVIDENCE', `PCR ${bank}:${index} is given twice with different values`);
    b.set(index, v);
  };
  (e.tpm_quote.pcrs ?? []).forEach((hex, i) => put('sha256', i, hex));
  for (const [bank, regs] of Object.entries(e.pcr_banks ?? {})) {
    if (!(HASH_NAMES as readonly string[]).includes(bank)) bad('KBS_BAD_EVIDENCE', `unknown PCR bank ${bank}`);
    for (const [i, hex] of Object.entries(regs ?? {})) {
      if (Number(i) > 23) bad('KBS_BAD_EVIDENCE', `PCR index ${i} is out of range (0-23)`);
      put(bank as TpmHash, Number(i), hex);
    }
  }
  if (banks.size === 0) bad('KBS_BAD_EVIDENCE', 'no PCR values (tpm_quote.pcrs or pcr_banks): the quote commits to PCRs a policy could not read');
  return banks;
}

export const tpmVerifier: TeeVerifier = {
  tee: 'tpm',
  verify(evidence: unknown, ctx: TeeVerifyContext): TeeVerified {
    let doc = evidence;
    if (typeof doc === 'string') {
      try {
        doc = JSON.parse(doc);
      } catch {
        bad('KBS_BAD_EVIDENCE', 'a string but not JSON');
      }
    }
    const parsed = evidenceSchema.safeParse(doc);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      bad('KBS_BAD_EVIDENCE', `${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown member(s) ${i.keys.join(', ')}` : i.message}` : 'invalid'} (expected {tpm_quote: {message, signature, pcrs}, ak_public})`);
    }
    const e = parsed.data;
    const expected = ctx.expectedReportData;
    // The broker always passes it; a verifier without it could not bind the quote to the session.
    if (!expected || expected.length !== 64) throw new CofferError('BROKER_INTERNAL', 'the TPM verifier was called without the expected report data');
    try {
      const attest = fromB64(e.tpm_quote.message);
      const signature = fromB64(e.tpm_quote.signature);
      const akText = e.ak_public.includes('-----BEGIN') ? Buffer.from(e.ak_public, 'utf8') : fromB64(e.ak_public);
      const pub = parseAkPart(akText, 'ak_public');
      // Only the TPM's own public area shows that the AK is a restricted signing key bound to its TPM.
      if (pub.kind !== 'tpm-public') bad('KBS_BAD_EVIDENCE', `ak_public is a ${pub.form}; send the AK's TPM public area (TPM2B_PUBLIC or TPMT_PUBLIC, e.g. tpm2_createak -u)`);
      const trust = ctx.tpm ?? { pinnedAks: [], akRoots: [] };
      const pinned = trust.pinnedAks.some((k) => sameKey(k, pub.public.key));
      const parts: AkPart[] = [pub];
      let intermediates: Certificate[] = [];
      if (!pinned) {
        if (e.ak_cert === undefined) throw problem('evidence-invalid', 'KBS_TPM_AK_UNTRUSTED', 'TPM evidence: the attestation key is not pinned (trusted key purpose tpm-ak) and no AK certificate was sent to chain to a tpm-ak-root', { rule: 'evidence.verified' });
        if (trust.akRoots.length === 0) throw problem('evidence-invalid', 'KBS_TPM_AK_UNTRUSTED', 'TPM evidence: the attestation key is not pinned and no TPM AK root is configured (trusted key purpose tpm-ak-root)', { rule: 'evidence.verified' });
        const leaf = certs(e.ak_cert, 'ak_cert');
        if (leaf.length !== 1) bad('KBS_BAD_EVIDENCE', `ak_cert holds ${leaf.length} certificates; send the AK certificate alone and its issuers in ak_chain`);
        parts.push({ kind: 'certificate', form: 'X.509 certificate', certificate: leaf[0] as Certificate });
        intermediates = (e.ak_chain ?? []).flatMap((c, i) => certs(c, `ak_chain[${i}]`));
      }
      const ak = assembleAttestationKey(parts);
      const banks = pcrBanks(e);
      if (e.report_data !== undefined) {
        const rd = fromB64(e.report_data);
        // Informational in the guest-components shape; a disagreement with the signed quote is refused, not ignored.
        if (rd.length !== 64 || !rd.equals(expected)) throw problem('evidence-unbound', 'KBS_EVIDENCE_UNBOUND', 'TPM evidence: report_data is not the hash of the JCS-canonical runtime-data', { rule: 'freshness.binding' });
      }
      let log: EventLog | undefined;
      if (e.eventlog !== undefined) log = parseEventLog(fromB64(e.eventlog));
      const v = verifyTpmQuote(attest, signature, { at: ctx.at, ak, nonce: expected, pcrs: banks, ...(pinned ? {} : { akRoots: trust.akRoots, akIntermediates: intermediates }) });
      return {
        reportData: Buffer.from(v.quote.extraData),
        claims: claimsFromTpm(v, log),
        // The signed TPMS_ATTEST only (its clock and extraData make it unique): an ECDSA
        // signature can be re-encoded and still verify.
        digest: createHash('sha256').update(attest).digest('hex'),
      };
    } catch (err) {
      if (err instanceof CofferError && !('problem' in err)) {
        if (err.code === 'TPM_NONCE_MISMATCH') {
          throw problem('evidence-unbound', 'KBS_EVIDENCE_UNBOUND', "TPM evidence: the quote's extraData is not the hash of the JCS-canonical runtime-data: it is not bound to this nonce and tee-pubkey", { rule: 'freshness.binding' });
        }
        throw problem(err.kind === 'input' ? 'bad-request' : 'evidence-invalid', err.code, `TPM evidence: ${err.message}`, { rule: 'evidence.verified' });
      }
      throw err;
    }
  },
};
