import { createHash } from 'node:crypto';
import { z } from 'zod';
import { claimsFromDcap } from '../../appraisal/from-dcap.js';
import { CofferError } from '../../errors.js';
import { verifyDcapQuote } from '../../evidence/tdx/index.js';
import { problem } from '../problem.js';
import type { TeeVerified, TeeVerifier, TeeVerifyContext } from './types.js';

/**
 * Intel TDX evidence in a KBS attest request (`tee: "tdx"`): the guest-components shape,
 *
 *   { "quote": b64 DCAP quote v4 or v5, "cc_eventlog"?: b64 CCEL (not used yet) }
 *
 * The quote is verified by `verifyDcapQuote` to the pinned Intel SGX Root CA (the PCK chain it
 * carries in its certification data): quote signature, QE report signature, QE binding of the
 * attestation key, PCK chain and extensions, Intel's TD_QE identity. Collateral (TCB info, QE
 * identity, CRLs) is not fetched by the broker, so the TCB status is reported as not checked.
 * The TD report's REPORT_DATA must be the 64-byte report data, as for SEV-SNP.
 */
const b64 = z.string().min(1).max(1 << 20).regex(/^[A-Za-z0-9+/=_\-\s]+$/, 'must be base64');
const evidenceSchema = z.strictObject({ quote: b64, cc_eventlog: b64.optional(), aa_eventlog: z.string().max(1 << 20).optional() });

const TD_MIGRATABLE_BIT = 29n;

const fromB64 = (s: string) => Buffer.from(s.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'), 'base64');

export const tdxVerifier: TeeVerifier = {
  tee: 'tdx',
  verify(evidence: unknown, ctx: TeeVerifyContext): TeeVerified {
    let doc = evidence;
    if (typeof doc === 'string') {
      try {
        doc = JSON.parse(doc);
      } catch {
        throw problem('bad-request', 'KBS_BAD_EVIDENCE', 'TDX tee-evidence is a string but not JSON');
      }
    }
    const parsed = evidenceSchema.safeParse(doc);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw problem('bad-request', 'KBS_BAD_EVIDENCE', `TDX tee-evidence: ${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown member(s) ${i.keys.join(', ')}` : i.message}` : 'invalid'} (expected {quote, cc_eventlog?})`);
    }
    try {
      const v = verifyDcapQuote(fromB64(parsed.data.quote), { at: ctx.at, tee: 'tdx', ...(ctx.tdxRoots ? { roots: ctx.tdxRoots } : {}) });
      const td = v.quote.td;
      if (!td) throw problem('bad-request', 'KBS_BAD_EVIDENCE', 'TDX tee-evidence: the quote carries no TD report');
      const claims = claimsFromDcap(v);
      // TD_ATTRIBUTES.MIGRATABLE (bit 29): a migration TD may export the TD's state. Without it in
      // the claims, "migration: forbidden" (the release baseline) would not apply to TDX at all.
      claims.debug = { ...claims.debug, migration: ((td.tdAttributes.readBigUInt64LE(0) >> TD_MIGRATABLE_BIT) & 1n) === 1n };
      return {
        reportData: Buffer.from(td.reportData),
        claims,
        // The signed bytes only (header and TD report): an ECDSA signature can be re-encoded.
        digest: createHash('sha256').update(v.quote.raw.subarray(0, v.quote.signedLength)).digest('hex'),
      };
    } catch (err) {
      if (err instanceof CofferError && !('problem' in err)) {
        throw problem(err.kind === 'input' ? 'bad-request' : 'evidence-invalid', err.code, `TDX evidence: ${err.message}`, { rule: 'evidence.verified' });
      }
      throw err;
    }
  },
};
