import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify, createLocalJWKSet, exportJWK, calculateJwkThumbprint, decodeProtectedHeader, errors as joseErrors, type JSONWebKeySet, type JWK } from 'jose';
import { z } from 'zod';
import { inputError, verifyError } from '../errors.js';
import type { Claims } from '../evidence/claims-model.js';
import { AR4SI_CATEGORIES, type EarStatus, type TrustVector } from './ar4si.js';
import type { AppraisalResult } from './evaluate.js';

/**
 * Attestation results as EAT Attestation Results (EAR, draft-fv-rats-ear) in a JWT signed with
 * ES384. One submodule per appraised machine; the appraised claims and the rule outcomes ride in
 * Coffer's own namespaced appraisal extensions. Format: docs/results.md.
 */

export const EAR_PROFILE = 'tag:github.com,2023:veraison/ear';
export const EAR_ALG = 'ES384';
/** Coffer's appraisal extensions inside a submodule. */
export const EAR_CLAIMS_KEY = 'coffer.appraised-claims';
export const EAR_VERDICT_KEY = 'coffer.verdict';

export interface VerifierId {
  developer: string;
  build: string;
}

export interface EarAppraisal {
  'ear.status': EarStatus;
  'ear.trustworthiness-vector'?: TrustVector;
  'ear.appraisal-policy-id'?: string;
  [EAR_CLAIMS_KEY]?: Omit<Claims, 'verification'>;
  [EAR_VERDICT_KEY]?: { verdict: 'pass' | 'fail'; policyVersion: string; denial?: string; rules: { id: string; status: string }[] };
}

export interface EarToken {
  eat_profile: string;
  iat: number;
  'ear.verifier-id': VerifierId;
  submods: Record<string, EarAppraisal>;
  eat_nonce?: string;
}

export interface IssueEarOptions {
  verifierId: VerifierId;
  /** Submodule label (default "cvm"). */
  submod?: string;
  /** Issued-at (default: the appraisal time). */
  iat?: Date;
  /** JWS kid (default: the key's RFC 7638 thumbprint). */
  kid?: string;
}

const status = z.enum(['none', 'affirming', 'warning', 'contraindicated']);
const claimValue = z.number().int().min(-128).max(127);
const tvec = z.partialRecord(z.enum(AR4SI_CATEGORIES as [string, ...string[]]), claimValue);
const earSchema = z.looseObject({
  eat_profile: z.literal(EAR_PROFILE),
  iat: z.number().int(),
  'ear.verifier-id': z.looseObject({ developer: z.string().min(1), build: z.string().min(1) }),
  submods: z.record(z.string().min(1), z.looseObject({ 'ear.status': status, 'ear.trustworthiness-vector': tvec.optional(), 'ear.appraisal-policy-id': z.string().optional() })).refine((m) => Object.keys(m).length > 0, 'submods must hold at least one appraisal'),
  eat_nonce: z.string().optional(),
});

/** The EAR claims-set of an appraisal. */
export function earClaims(result: AppraisalResult, opts: IssueEarOptions): EarToken {
  // The verification checks stay in the appraisal record; the token carries the claims.
  const appraised: Omit<Claims, 'verification'> & { verification?: unknown } = { ...result.claims };
  delete appraised.verification;
  const appraisal: EarAppraisal = {
    'ear.status': result.status,
    'ear.appraisal-policy-id': `${result.policy.id}@${result.policy.version}`,
    [EAR_CLAIMS_KEY]: appraised,
    [EAR_VERDICT_KEY]: { verdict: result.verdict, policyVersion: result.policy.version, ...(result.denial ? { denial: result.denial } : {}), rules: result.rules.map((r) => ({ id: r.id, status: r.status })) },
  };
  // The draft: the vector must be present and non-empty; an empty one is omitted (status is then "none").
  if (Object.keys(result.trustworthiness).length > 0) appraisal['ear.trustworthiness-vector'] = result.trustworthiness;
  return {
    eat_profile: EAR_PROFILE,
    iat: Math.floor((opts.iat ?? new Date(result.at)).getTime() / 1000),
    'ear.verifier-id': opts.verifierId,
    submods: { [opts.submod ?? 'cvm']: appraisal },
    ...(result.nonce !== undefined ? { eat_nonce: result.nonce } : {}),
  };
}

function requireP384(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw inputError('EAR_BAD_KEY', `${what} is not an ECDSA P-384 key (EAR results are signed with ES384)`);
  }
}

/** Signs an appraisal as an EAR JWT (ES384). */
export async function issueEar(result: AppraisalResult, key: KeyObject, opts: IssueEarOptions): Promise<string> {
  requireP384(key, 'the signing key');
  if (key.type !== 'private') throw inputError('EAR_BAD_KEY', 'the EAR signing key must be a private key');
  const claims = earClaims(result, opts);
  const kid = opts.kid ?? (await calculateJwkThumbprint(await exportJWK(createPublicKey(key))));
  return new SignJWT(claims as unknown as Record<string, unknown>).setProtectedHeader({ alg: EAR_ALG, typ: 'JWT', kid }).sign(key);
}

/** Loads an ES384 signing key: PEM (PKCS#8 or SEC1) or a private JWK. */
export function loadEarSigningKey(data: Uint8Array | string, what = 'EAR signing key'): KeyObject {
  const text = (typeof data === 'string' ? data : Buffer.from(data).toString('utf8')).trim();
  let key: KeyObject;
  try {
    key = text.startsWith('{') ? createPrivateKey({ key: JSON.parse(text) as never, format: 'jwk' }) : createPrivateKey(text);
  } catch {
    throw inputError('EAR_BAD_KEY', `${what} is not a PEM or JWK private key`);
  }
  requireP384(key, what);
  return key;
}

/** A fresh ES384 key pair, the private half as PKCS#8 PEM (for the caller to store 0600). */
export function generateEarSigningKey(): { privateKey: KeyObject; pem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return { privateKey, pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** The JWKS a relying party needs to verify results signed with these keys. */
export async function earJwks(keys: readonly KeyObject[]): Promise<{ keys: JWK[] }> {
  const out: JWK[] = [];
  for (const k of keys) {
    const pub = k.type === 'private' ? createPublicKey(k) : k;
    requireP384(pub, 'a JWKS key');
    const jwk = await exportJWK(pub);
    out.push({ ...jwk, kid: await calculateJwkThumbprint(jwk), alg: EAR_ALG, use: 'sig' });
  }
  return { keys: out };
}

/** Parses a JWKS (a JSON text or object); a single JWK is accepted as a set of one. */
export function parseJwks(data: Uint8Array | string | object, what = 'JWKS'): JSONWebKeySet {
  let doc: unknown = data;
  if (typeof data === 'string' || data instanceof Uint8Array) {
    try {
      doc = JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
    } catch {
      throw inputError('EAR_BAD_JWKS', `${what} is not JSON`);
    }
  }
  const set = doc as { keys?: unknown; kty?: unknown };
  if (Array.isArray(set.keys)) return { keys: set.keys as JWK[] };
  if (typeof set.kty === 'string') return { keys: [doc as JWK] };
  throw inputError('EAR_BAD_JWKS', `${what} is neither a JWKS ({"keys": [...]}) nor a JWK`);
}

/**
 * Verifies an EAR JWT with a JWKS: ES384 only, signature first, then the claims-set shape
 * (profile, iat, verifier id, at least one submodule with a valid status and vector).
 * Throws EAR_BAD_SIGNATURE, EAR_NO_KEY or EAR_INVALID (exit 1), EAR_BAD_FORMAT (exit 2).
 */
export async function verifyEar(token: string, jwks: JSONWebKeySet): Promise<EarToken> {
  const t = token.trim();
  let header;
  try {
    header = decodeProtectedHeader(t);
  } catch {
    throw inputError('EAR_BAD_FORMAT', 'the result is not a JWT in compact serialisation');
  }
  if (header.alg !== EAR_ALG) throw verifyError('EAR_BAD_ALGORITHM', `the result is signed with ${header.alg ?? 'no algorithm'}, not ${EAR_ALG}`);
  let payload: unknown;
  try {
    payload = (await jwtVerify(t, createLocalJWKSet(jwks), { algorithms: [EAR_ALG] })).payload;
  } catch (e) {
    if (e instanceof joseErrors.JWKSNoMatchingKey) throw verifyError('EAR_NO_KEY', `no key of the JWKS matches the result's signer (kid ${header.kid ?? 'none'})`);
    if (e instanceof joseErrors.JWKSMultipleMatchingKeys) throw verifyError('EAR_BAD_SIGNATURE', 'the result signature does not verify with any matching JWKS key');
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw verifyError('EAR_BAD_SIGNATURE', 'the result signature does not verify with the JWKS key: altered or signed by another key');
    if (e instanceof joseErrors.JWTClaimValidationFailed || e instanceof joseErrors.JWTExpired) throw verifyError('EAR_INVALID', `the result's claims are not valid: ${e.message}`);
    if (e instanceof joseErrors.JOSEError) throw verifyError('EAR_BAD_SIGNATURE', `the result does not verify: ${e.message}`);
    throw inputError('EAR_BAD_FORMAT', 'the result is not a well-formed JWT');
  }
  const r = earSchema.safeParse(payload);
  if (!r.success) {
    const i = r.error.issues[0];
    throw verifyError('EAR_INVALID', `the result is not an EAR claims-set: ${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.message}` : 'invalid'}`);
  }
  return r.data as unknown as EarToken;
}
