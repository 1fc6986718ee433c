import { createPublicKey, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { bundleFromJSON, isBundleWithDsseEnvelope, isBundleWithMessageSignature, isBundleWithPublicKey } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial, type VerificationPolicy } from '@sigstore/verify';
import { inputError, verifyError } from '../errors.js';
import { z } from 'zod';
import { descriptorSchema, digestOf, type Descriptor } from './oci.js';
import { DIGEST, registryKey } from './reference.js';
import type { RegistryClient } from './registry.js';

/**
 * Image signatures, offline: cosign's simple-signing payload signed by a public key, as cosign
 * stores it next to the image (tag `sha256-<hex>.sig`), and Sigstore bundles checked by
 * @sigstore/verify against a trusted root the caller supplies. Either way the signature is only
 * worth something once the digest it names equals the digest of the manifest we verified.
 */

export const COSIGN_SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const COSIGN_TYPE = 'cosign container image signature';

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A signer key as cosign writes it (PEM SPKI): ECDSA P-256/P-384, Ed25519 or RSA of 2048 bits or more. */
export function parseSignerKey(pem: string | Buffer): KeyObject {
  let k: KeyObject;
  try {
    k = createPublicKey(pem);
  } catch {
    throw inputError('SIGNER_BAD_KEY', 'the signer key is not a PEM public key');
  }
  const t = k.asymmetricKeyType;
  const curve = k.asymmetricKeyDetails?.namedCurve;
  if (t === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1')) return k;
  if (t === 'ed25519') return k;
  if (t === 'rsa' && (k.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return k;
  throw inputError('SIGNER_BAD_KEY', `signer key type ${t ?? 'unknown'}${curve ? ` (${curve})` : ''} is not accepted (ECDSA P-256/P-384, Ed25519, RSA >= 2048)`);
}

/**
 * The digests a signature by this key may be over. cosign loads every key with SHA-256
 * (LoadPublicKey / SignerVerifierFromKeyRef hard-code crypto.SHA256, P-384 included); sigstore's
 * newer per-key defaults use SHA-384 for P-384, so both are tried there (an ECDSA signature over
 * one digest cannot verify over the other without a collision between them). Ed25519 is pure.
 */
function hashesFor(k: KeyObject): (string | null)[] {
  if (k.asymmetricKeyType === 'ed25519') return [null];
  return k.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? ['sha256', 'sha384'] : ['sha256'];
}

export interface SimpleSigningPayload {
  critical: { identity: { 'docker-reference': string }; image: { 'docker-manifest-digest': string }; type: string };
  optional?: Record<string, unknown> | null;
}

/**
 * Verifies one cosign signature: the signature over the exact payload bytes with the key, then the
 * payload's type and manifest digest (and repository, when given). Returns the parsed payload.
 */
export function verifyCosignPayload(payload: Buffer, signatureB64: string, key: KeyObject, expect: { digest: string; repository?: string }): SimpleSigningPayload {
  if (!DIGEST.test(expect.digest)) throw inputError('SIGNATURE_BAD_DIGEST', `expected digest ${expect.digest} is not sha256:<hex> or sha512:<hex>`);
  const sig = Buffer.from(signatureB64, 'base64');
  if (sig.length === 0 || sig.toString('base64') !== signatureB64.replace(/\s/g, '')) throw verifyError('COSIGN_BAD_SIGNATURE', 'the signature is not base64');
  if (!hashesFor(key).some((h) => cryptoVerify(h, payload, key, sig))) throw verifyError('COSIGN_BAD_SIGNATURE', 'the signature does not verify with the signer key');
  let p: SimpleSigningPayload;
  try {
    p = JSON.parse(payload.toString('utf8')) as SimpleSigningPayload;
  } catch {
    throw verifyError('COSIGN_BAD_PAYLOAD', 'the signed payload is not JSON');
  }
  const c = p?.critical;
  if (c?.type !== COSIGN_TYPE) throw verifyError('COSIGN_BAD_PAYLOAD', `the signed payload is not a "${COSIGN_TYPE}"`);
  const d = c.image?.['docker-manifest-digest'];
  if (typeof d !== 'string' || !sameText(d, expect.digest)) throw verifyError('COSIGN_WRONG_DIGEST', `the signature is for ${String(d)}, not ${expect.digest}`);
  if (expect.repository !== undefined) {
    const ref = c.identity?.['docker-reference'];
    if (typeof ref !== 'string' || sameRepository(stripTagAndDigest(ref), expect.repository) === false) throw verifyError('COSIGN_WRONG_REPOSITORY', `the signature names ${String(ref)}, not ${expect.repository}`);
  }
  return p;
}

/**
 * Whether two `host/repository` names are the same repository: Docker Hub's spellings folded
 * (cosign writes go-containerregistry's `index.docker.io/library/x`; references say `docker.io`).
 */
function sameRepository(a: string, b: string): boolean {
  const norm = (r: string) => {
    const i = r.indexOf('/');
    return i < 0 ? r : `${registryKey(r.slice(0, i))}${r.slice(i)}`;
  };
  return norm(a) === norm(b);
}

/** `host:port/repo:tag@digest` without tag and digest (a port's colon is kept). */
function stripTagAndDigest(ref: string): string {
  const noDigest = ref.split('@')[0] ?? '';
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** The tag cosign stores an image's signatures under. */
export function cosignSignatureTag(manifestDigest: string): string {
  return manifestDigest.replace(':', '-') + '.sig';
}

/**
 * Fetches the cosign signatures of a manifest from its registry and accepts the image when at
 * least one verifies with the key and names that manifest digest. Every blob read is
 * digest-checked; a registry without signatures for the image fails.
 */
export async function verifyCosignImage(client: RegistryClient, manifestDigest: string, keyPem: string | Buffer, repository?: string): Promise<{ verified: number; payload: SimpleSigningPayload }> {
  const key = parseSignerKey(keyPem);
  let sigManifest: { descriptor: Descriptor; bytes: Buffer };
  try {
    sigManifest = await client.resolve(cosignSignatureTag(manifestDigest));
  } catch (e) {
    if ((e as { code?: string }).code === 'REGISTRY_NOT_FOUND') throw verifyError('COSIGN_NO_SIGNATURE', `no cosign signature for ${manifestDigest}`);
    throw e;
  }
  // The signature manifest comes by tag, so nothing vouches for it: every descriptor in it is
  // validated (a missing size would otherwise make the payload read unbounded).
  let doc: unknown;
  try {
    doc = JSON.parse(sigManifest.bytes.toString('utf8'));
  } catch {
    throw verifyError('COSIGN_BAD_SIGNATURE_MANIFEST', `the signature manifest of ${manifestDigest} is not JSON`);
  }
  const parsed = z.object({ layers: z.array(descriptorSchema) }).safeParse(doc);
  if (!parsed.success) throw verifyError('COSIGN_BAD_SIGNATURE_MANIFEST', `the signature manifest of ${manifestDigest} is not an image manifest: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`);
  const errors: string[] = [];
  for (const layer of parsed.data.layers) {
    if (layer.mediaType !== COSIGN_SIMPLE_SIGNING) continue;
    const sig = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    if (!sig) continue;
    const payload = await client.read(layer, 64 * 1024);
    if (payload.length !== layer.size || digestOf(payload, layer.digest.startsWith('sha512:') ? 'sha512' : 'sha256') !== layer.digest) {
      errors.push(`payload ${layer.digest} does not match its descriptor`);
      continue;
    }
    try {
      return { verified: 1, payload: verifyCosignPayload(payload, sig, key, { digest: manifestDigest, ...(repository !== undefined ? { repository } : {}) }) };
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw verifyError('COSIGN_NOT_VERIFIED', `no cosign signature of ${manifestDigest} verifies${errors.length ? `: ${errors.join('; ')}` : ''}`);
}

/** Builds the simple-signing payload cosign signs (for signing tools and tests). */
export function simpleSigningPayload(repository: string, manifestDigest: string): Buffer {
  return Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': repository }, image: { 'docker-manifest-digest': manifestDigest }, type: COSIGN_TYPE }, optional: null }));
}

export interface SigstoreCheck {
  /** Bundle JSON (any version @sigstore/bundle accepts). */
  bundle: unknown;
  /** Trusted root JSON (Sigstore trusted_root.json). */
  trustedRoot: unknown;
  /** The image manifest digest the bundle must speak about. */
  digest: string;
  /** For a message-signature bundle: the signed artifact bytes (the manifest). */
  artifact?: Buffer;
  /** Keys for public-key bundles, by hint. */
  keys?: Record<string, string | Buffer>;
  /** For certificate (keyless) bundles: the identity the certificate must carry. */
  identity?: { issuer: string; subject: string };
  /**
   * For a DSSE bundle (an in-toto attestation): the predicate type that means "approved to run".
   * Required there: an SBOM or a scan result signed by the same key names the same image digest.
   */
  predicateType?: string;
  /** Transparency log entries required (default: 1 for keyless, 0 for a supplied key). */
  tlogThreshold?: number;
  timestampThreshold?: number;
}

/**
 * Verifies a Sigstore bundle offline against the supplied trusted root: signature, key or
 * certificate chain, transparency log and timestamps as thresholds demand, identity policy for
 * keyless bundles, and finally that what was signed is the expected manifest digest (the message
 * digest of a message signature; the subject of an in-toto statement in a DSSE envelope).
 */
export function verifySigstoreBundle(c: SigstoreCheck): { signer: 'public-key' | 'certificate'; digest: string } {
  if (!DIGEST.test(c.digest)) throw inputError('SIGNATURE_BAD_DIGEST', `expected digest ${c.digest} is not sha256:<hex> or sha512:<hex>`);
  let bundle: ReturnType<typeof bundleFromJSON>;
  let root: TrustedRoot;
  try {
    bundle = bundleFromJSON(c.bundle);
  } catch (e) {
    throw inputError('SIGSTORE_BAD_BUNDLE', `not a Sigstore bundle: ${(e as Error).message}`);
  }
  try {
    root = TrustedRoot.fromJSON(c.trustedRoot);
  } catch (e) {
    throw inputError('SIGSTORE_BAD_ROOT', `not a Sigstore trusted root: ${(e as Error).message}`);
  }
  const keyed = isBundleWithPublicKey(bundle);
  // @sigstore/verify checks a certificate chain once per verified timestamp: with none required
  // and none present, the chain to the trusted CA would never be checked.
  if (!keyed && (c.timestampThreshold ?? 1) < 1) throw inputError('SIGSTORE_BAD_OPTIONS', 'a keyless bundle needs at least one verified timestamp (the certificate is checked at that time)');
  const keys = new Map(Object.entries(c.keys ?? {}).map(([hint, pem]) => [hint, parseSignerKey(pem)]));
  const trust = toTrustMaterial(root, (hint: string) => {
    const k = keys.get(hint);
    if (!k) throw verifyError('SIGSTORE_UNKNOWN_KEY', `no trusted key for hint "${hint}"`);
    return { publicKey: k, validFor: () => true };
  });
  const verifier = new Verifier(trust, {
    tlogThreshold: c.tlogThreshold ?? (keyed ? 0 : 1),
    ctlogThreshold: keyed ? 0 : 1,
    timestampThreshold: c.timestampThreshold ?? (keyed ? 0 : 1),
  });
  if (!keyed && !c.identity) throw inputError('SIGSTORE_NO_IDENTITY', 'a keyless bundle needs the expected identity (issuer and subject)');
  const policy: VerificationPolicy | undefined = c.identity
    ? { subjectAlternativeName: c.identity.subject, extensions: { issuer: c.identity.issuer } }
    : undefined;
  if (isBundleWithMessageSignature(bundle) && !c.artifact) throw inputError('SIGSTORE_NO_ARTIFACT', 'a message-signature bundle needs the signed artifact (the image manifest)');
  try {
    verifier.verify(toSignedEntity(bundle, isBundleWithMessageSignature(bundle) ? c.artifact : undefined), policy);
  } catch (e) {
    if ((e as { code?: string }).code === 'SIGSTORE_UNKNOWN_KEY') throw e;
    throw verifyError('SIGSTORE_NOT_VERIFIED', `Sigstore bundle does not verify: ${(e as Error).message}`);
  }
  const [alg, hex] = c.digest.split(':') as [string, string];
  if (isBundleWithMessageSignature(bundle)) {
    const got = digestOf(c.artifact as Buffer, alg as 'sha256' | 'sha512');
    if (!sameText(got, c.digest)) throw verifyError('SIGSTORE_WRONG_DIGEST', `the signed artifact is ${got}, not ${c.digest}`);
  } else if (isBundleWithDsseEnvelope(bundle)) {
    const env = bundle.content.dsseEnvelope;
    if (env.payloadType !== 'application/vnd.in-toto+json') throw verifyError('SIGSTORE_WRONG_DIGEST', `DSSE payload type ${env.payloadType} is not an in-toto statement`);
    if (!c.predicateType) throw inputError('SIGSTORE_NO_PREDICATE_TYPE', 'a DSSE bundle is an attestation: give the predicate type that approves the image (an SBOM or scan result signed by the same key names the same digest)');
    let st: { subject?: { digest?: Record<string, string> }[]; predicateType?: unknown };
    try {
      st = JSON.parse(Buffer.from(env.payload).toString('utf8')) as typeof st;
    } catch {
      throw verifyError('SIGSTORE_WRONG_DIGEST', 'the DSSE payload is not JSON');
    }
    if (st.predicateType !== c.predicateType) throw verifyError('SIGSTORE_WRONG_PREDICATE', `the signed statement's predicate type is ${JSON.stringify(st.predicateType)}, not ${c.predicateType}`);
    const hit = (st.subject ?? []).some((s) => typeof s.digest?.[alg] === 'string' && sameText(s.digest[alg] as string, hex));
    if (!hit) throw verifyError('SIGSTORE_WRONG_DIGEST', `no subject of the signed statement has ${c.digest}`);
  }
  return { signer: keyed ? 'public-key' : 'certificate', digest: c.digest };
}
