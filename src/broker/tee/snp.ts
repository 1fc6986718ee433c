import { createHash } from 'node:crypto';
import { z } from 'zod';
import { claimsFromSnp } from '../../appraisal/index.js';
import { CofferError } from '../../errors.js';
import { decodeSnpEvidence, fromTsm, verifySnpReport, type SnpEvidence } from '../../evidence/snp/index.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import { problem } from '../problem.js';
import type { TeeVerified, TeeVerifier, TeeVerifyContext } from './types.js';

/**
 * SEV-SNP evidence in a KBS attest request. `tee-evidence` is a JSON object (or a string holding
 * one) in either form:
 *
 *   { "report": b64, "vcek": PEM|b64 DER, "cert_chain": PEM|b64 DER|[...], "product"?: "Milan" }
 *   { "outblob": b64, "auxblob": b64 }                      (configfs-tsm; auxblob = GHCB cert table)
 *
 * `report` may also be a base64 configfs-tsm CBOR capture. Base64 may be standard or URL-safe.
 */
const b64 = z.string().min(1).max(1 << 20).regex(/^[A-Za-z0-9+/=_\-\s]+$/, 'must be base64');
const certField = z.union([z.string().min(1).max(1 << 20), z.array(z.string().min(1).max(1 << 20)).max(16)]);
const evidenceSchema = z.union([
  z.strictObject({ report: b64, vcek: certField.optional(), cert_chain: certField.optional(), product: z.enum(['Milan', 'Genoa', 'Turin']).optional() }),
  z.strictObject({ outblob: b64, auxblob: b64.optional(), product: z.enum(['Milan', 'Genoa', 'Turin']).optional() }),
]);

const fromB64 = (s: string) => Buffer.from(s.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'), 'base64');

function certs(field: string | string[] | undefined, what: string): Certificate[] {
  if (field === undefined) return [];
  return (Array.isArray(field) ? field : [field]).flatMap((f) => parseCertificates(f.includes('-----BEGIN') ? Buffer.from(f, 'utf8') : fromB64(f), what));
}

/** An SEV-SNP report's signature covers bytes [0, 0x2A0); the signature follows. */
export const SNP_SIGNED_LENGTH = 0x2a0;

export const snpVerifier: TeeVerifier = {
  tee: 'snp',
  verify(evidence: unknown, ctx: TeeVerifyContext): TeeVerified {
    let doc = evidence;
    if (typeof doc === 'string') {
      try {
        doc = JSON.parse(doc);
      } catch {
        throw problem('bad-request', 'KBS_BAD_EVIDENCE', 'tee-evidence is a string but not JSON');
      }
    }
    const parsed = evidenceSchema.safeParse(doc);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw problem('bad-request', 'KBS_BAD_EVIDENCE', `SNP tee-evidence: ${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.message}` : 'invalid'} (expected {report, vcek, cert_chain} or {outblob, auxblob})`);
    }
    const e = parsed.data;
    try {
      let ev: SnpEvidence;
      let supplied: Certificate[];
      if ('report' in e) {
        ev = decodeSnpEvidence(fromB64(e.report));
        supplied = [...ev.certificates, ...certs(e.vcek, 'vcek'), ...certs(e.cert_chain, 'cert_chain')];
      } else {
        ev = fromTsm(fromB64(e.outblob), e.auxblob !== undefined ? fromB64(e.auxblob) : undefined);
        supplied = ev.certificates;
      }
      const verified = verifySnpReport(ev.report, { at: ctx.at, certificates: supplied, roots: ctx.snpRoots, ...(e.product ? { product: e.product } : {}) });
      return {
        reportData: Buffer.from(verified.report.reportData),
        claims: claimsFromSnp(verified),
        // Only the signed bytes: an ECDSA signature can be re-encoded as (r, n - s) and still
        // verify, so hashing the signature too would let one report pass as "new" evidence.
        digest: createHash('sha256').update(ev.report.subarray(0, SNP_SIGNED_LENGTH)).digest('hex'),
      };
    } catch (err) {
      if (err instanceof CofferError && !('problem' in err)) {
        throw problem(err.kind === 'input' ? 'bad-request' : 'evidence-invalid', err.code, `SNP evidence: ${err.message}`, { rule: 'evidence.verified' });
      }
      throw err;
    }
  },
};
