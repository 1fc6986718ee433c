import { createPublicKey, type KeyObject } from 'node:crypto';
import { CompactSign, compactVerify, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { inputError, verifyError } from '../errors.js';

/**
 * Reference values: what an image must produce when it boots, signed by whoever built it (a JWS,
 * ES384 or EdDSA). A store accepts a document only after its signature verifies with one of the
 * signer keys the caller trusts; an unsigned, wrongly signed or altered document is refused.
 * Format: docs/reference-values.md.
 */

export const REFERENCE_TYP = 'coffer-reference-values+jws';
export const REFERENCE_ALGORITHMS = ['ES384', 'EdDSA', 'Ed25519'] as const;

const hexOf = (bytes?: number) =>
  z
    .string()
    .regex(/^[0-9a-fA-F]+$/)
    .refine((s) => s.length % 2 === 0 && (bytes === undefined || s.length === bytes * 2), bytes === undefined ? 'must be whole bytes of hex' : `must be ${bytes} bytes of hex`)
    .transform((s) => s.toLowerCase());

const pcrBank = z.record(z.string().regex(/^(0|[1-9]\d?)$/), hexOf());

export const referenceValuesSchema = z.strictObject({
  image: z.strictObject({ id: z.string().min(1), name: z.string().min(1).optional(), version: z.string().min(1) }),
  issuedAt: z.iso.datetime({ offset: true }),
  measurements: z.strictObject({
    snp: z.array(hexOf(48)).optional(),
    tdx: z.strictObject({ mrtd: z.array(hexOf(48)).optional(), rtmrs: z.record(z.enum(['0', '1', '2', '3']), hexOf(48)).optional() }).optional(),
    pcrs: z.strictObject({ sha1: pcrBank.optional(), sha256: pcrBank.optional(), sha384: pcrBank.optional(), sha512: pcrBank.optional() }).optional(),
    ukiAuthenticode: z.array(hexOf(32)).optional(),
    verityRootHash: hexOf().optional(),
    kernelCommandLine: z.string().optional(),
  }),
});

export type ReferenceValues = z.output<typeof referenceValuesSchema>;

export interface ReferenceDocument {
  values: ReferenceValues;
  /** Where it was loaded from (a file name), for messages. */
  source: string;
  /** JWS header alg and kid, and the trusted key that verified it (its index in the trusted list). */
  alg: string;
  kid?: string;
  signer: number;
}

/** Reads trusted signer keys: PEM public keys or certificates, a JWK, or a JWKS. */
export function parseTrustedKeys(data: Uint8Array | string, what = 'reference signer key'): KeyObject[] {
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) {
      const doc = JSON.parse(trimmed) as { keys?: unknown[] };
      const jwks = Array.isArray(doc.keys) ? doc.keys : [doc];
      return jwks.map((k) => {
        // Only the public members: a private JWK given by mistake is used as its public half.
        const pub = Object.fromEntries(Object.entries(k as Record<string, unknown>).filter(([name]) => !['d', 'p', 'q', 'dp', 'dq', 'qi'].includes(name)));
        return createPublicKey({ key: pub as never, format: 'jwk' });
      });
    }
    const blocks = trimmed.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
    if (blocks.length === 0) throw new Error('no PEM block');
    return blocks.map((b) => createPublicKey(b));
  } catch {
    throw inputError('REFERENCE_BAD_KEY', `${what} is not a PEM public key or certificate, a JWK or a JWKS`);
  }
}

/** Signs reference values (an image build does this). */
export async function signReferenceValues(values: ReferenceValues, key: KeyObject, opts: { kid?: string } = {}): Promise<string> {
  const parsed = referenceValuesSchema.parse(values);
  const alg = key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ES384' : undefined;
  if (!alg) throw inputError('REFERENCE_BAD_KEY', 'reference values are signed with an Ed25519 or ECDSA P-384 key');
  return new CompactSign(Buffer.from(JSON.stringify(parsed), 'utf8')).setProtectedHeader({ alg, typ: REFERENCE_TYP, ...(opts.kid ? { kid: opts.kid } : {}) }).sign(key);
}

/**
 * Verifies one reference-value JWS with the trusted keys (the first that verifies wins), then
 * validates its payload. Throws REFERENCE_UNSIGNED, REFERENCE_BAD_SIGNATURE (exit 1) or
 * REFERENCE_INVALID / REFERENCE_BAD_FORMAT (exit 2).
 */
export async function verifyReferenceValues(jws: string, trusted: readonly KeyObject[], source = 'reference values'): Promise<ReferenceDocument> {
  const token = jws.trim();
  if (trusted.length === 0) throw inputError('REFERENCE_NO_TRUSTED_KEY', `${source}: no trusted reference signer key was given; reference values are only used when their signature is checked`);
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw inputError('REFERENCE_BAD_FORMAT', `${source} is not a JWS in compact serialisation`);
  }
  const parts = token.split('.');
  if (header.alg === undefined || header.alg === 'none' || parts.length !== 3 || parts[2] === '') {
    throw verifyError('REFERENCE_UNSIGNED', `${source} is not signed (alg ${header.alg ?? 'missing'}): unsigned reference values are refused`);
  }
  if (!(REFERENCE_ALGORITHMS as readonly string[]).includes(header.alg)) {
    throw verifyError('REFERENCE_BAD_ALGORITHM', `${source} is signed with ${header.alg}; reference values must be signed with ES384 or EdDSA`);
  }
  if (header.typ !== undefined && header.typ !== REFERENCE_TYP) throw inputError('REFERENCE_BAD_FORMAT', `${source} has typ "${header.typ}", not ${REFERENCE_TYP}`);
  let payload: Uint8Array | undefined;
  let signer = -1;
  for (const [i, key] of trusted.entries()) {
    try {
      payload = (await compactVerify(token, key, { algorithms: [...REFERENCE_ALGORITHMS] })).payload;
      signer = i;
      break;
    } catch (e) {
      if (e instanceof joseErrors.JWSSignatureVerificationFailed || e instanceof joseErrors.JOSEAlgNotAllowed || e instanceof TypeError || e instanceof joseErrors.JOSENotSupported) continue;
      if (e instanceof joseErrors.JWSInvalid) throw inputError('REFERENCE_BAD_FORMAT', `${source} is not a valid JWS: ${e.message}`);
      continue;
    }
  }
  if (!payload) throw verifyError('REFERENCE_BAD_SIGNATURE', `the signature of ${source} does not verify with any trusted reference signer key (${trusted.length} trusted)`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw inputError('REFERENCE_INVALID', `${source}: the signed payload is not JSON`);
  }
  const r = referenceValuesSchema.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    throw inputError('REFERENCE_INVALID', `${source}: ${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message}` : 'invalid'}`);
  }
  return { values: r.data, source, alg: header.alg, ...(header.kid ? { kid: header.kid } : {}), signer };
}

/** Verified reference values, by image id. Read-only once built. */
export class ReferenceStore {
  private readonly docs: readonly ReferenceDocument[];

  constructor(docs: readonly ReferenceDocument[] = []) {
    this.docs = [...docs];
  }

  /** Verifies every document (all must verify) and returns the store. */
  static async load(documents: readonly { jws: string; source: string }[], trusted: readonly KeyObject[]): Promise<ReferenceStore> {
    const docs: ReferenceDocument[] = [];
    for (const d of documents) docs.push(await verifyReferenceValues(d.jws, trusted, d.source));
    return new ReferenceStore(docs);
  }

  get documents(): readonly ReferenceDocument[] {
    return this.docs;
  }

  /** Every document for the image id (all versions). */
  forImage(id: string): ReferenceDocument[] {
    return this.docs.filter((d) => d.values.image.id === id);
  }

  get size(): number {
    return this.docs.length;
  }
}
