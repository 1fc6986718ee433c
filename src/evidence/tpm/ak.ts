import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { inputError, isCofferError, verifyError } from '../../errors.js';
import { Certificate, parseCertificates } from '../../pki/certificate.js';
import { parseTpm2bPublic, parseTpmtPublic, type TpmPublic } from './structures.js';

/**
 * The attestation key (AK) that signed a quote, from whatever the caller has: the TPM's own
 * public area (TPMT_PUBLIC or TPM2B_PUBLIC: the only form that shows the key's restrictions and
 * name), a plain public key (PEM/DER SubjectPublicKeyInfo, or a JWK such as Azure's HCLAkPub),
 * or an X.509 AK certificate (Google's vTPM AK certificates). Several forms may be combined;
 * they must all hold the same key.
 */
export type AkPart =
  | { kind: 'tpm-public'; form: 'TPMT_PUBLIC' | 'TPM2B_PUBLIC'; public: TpmPublic }
  | { kind: 'key'; form: 'PEM public key' | 'DER public key' | 'JWK'; key: KeyObject }
  | { kind: 'certificate'; form: 'X.509 certificate'; certificate: Certificate };

export interface AttestationKey {
  key: KeyObject;
  /** The TPM public area, when one was given: attributes, scheme and name are known. */
  public?: TpmPublic;
  certificate?: Certificate;
  /** What the key was assembled from, e.g. ["TPMT_PUBLIC", "X.509 certificate"]. */
  forms: string[];
}

/**
 * An AK's fingerprint: SHA-256 of its SubjectPublicKeyInfo DER, hex. What a per-VM identity names
 * (PCR values are the same on every VM booted from one image; the AK is not).
 */
export function akFingerprint(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex');
}

function keyFrom(fn: () => KeyObject, what: string, form: string): KeyObject {
  try {
    const k = fn();
    if (k.asymmetricKeyType !== 'rsa' && k.asymmetricKeyType !== 'ec') {
      throw inputError('TPM_UNSUPPORTED_ALG', `${what}: a ${k.asymmetricKeyType ?? 'unknown'} key cannot be a TPM attestation key (RSA or ECC)`);
    }
    return k;
  } catch (e) {
    if (isCofferError(e)) throw e;
    throw inputError('TPM_BAD_AK', `${what} is not a valid ${form}`);
  }
}

/**
 * Reads one AK file, recognising its form: PEM (PUBLIC KEY or CERTIFICATE), JSON (a JWK, or an
 * object with a "jwk" member), DER (certificate or SubjectPublicKeyInfo), TPM2B_PUBLIC (its u16
 * size equals the remaining length) or TPMT_PUBLIC.
 */
export function parseAkPart(data: Uint8Array, what = 'AK file'): AkPart {
  const buf = Buffer.from(data);
  if (buf.length === 0) throw inputError('TPM_BAD_AK', `${what} is empty`);
  const text = buf.subarray(0, Math.min(buf.length, 4096)).toString('latin1');
  if (text.includes('-----BEGIN CERTIFICATE-----')) {
    const certs = parseCertificates(buf, what);
    if (certs.length !== 1) throw inputError('TPM_BAD_AK', `${what} holds ${certs.length} certificates; give the AK certificate alone and its issuers with --ak-chain`);
    return { kind: 'certificate', form: 'X.509 certificate', certificate: certs[0] as Certificate };
  }
  if (/-----BEGIN (RSA )?PUBLIC KEY-----/.test(text)) {
    return { kind: 'key', form: 'PEM public key', key: keyFrom(() => createPublicKey(buf.toString('latin1')), what, 'PEM public key') };
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(buf.toString('utf8'));
    } catch {
      throw inputError('TPM_BAD_AK', `${what} is not valid JSON`);
    }
    const jwk = (doc as { jwk?: unknown }).jwk ?? doc;
    if (jwk === null || typeof jwk !== 'object' || typeof (jwk as { kty?: unknown }).kty !== 'string') {
      throw inputError('TPM_BAD_AK', `${what} is JSON but not a JWK (no "kty")`);
    }
    const { kty, n, e, crv, x, y } = jwk as Record<string, unknown>;
    const pub = Object.fromEntries(Object.entries({ kty, n, e, crv, x, y }).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
    return { kind: 'key', form: 'JWK', key: keyFrom(() => createPublicKey({ key: pub, format: 'jwk' }), what, 'JWK') };
  }
  if (buf[0] === 0x30) {
    try {
      return { kind: 'certificate', form: 'X.509 certificate', certificate: Certificate.fromDer(buf) };
    } catch {
      return { kind: 'key', form: 'DER public key', key: keyFrom(() => createPublicKey({ key: buf, format: 'der', type: 'spki' }), what, 'DER public key (SubjectPublicKeyInfo)') };
    }
  }
  if (buf.length >= 2 && buf.readUInt16BE(0) === buf.length - 2) return { kind: 'tpm-public', form: 'TPM2B_PUBLIC', public: parseTpm2bPublic(buf) };
  return { kind: 'tpm-public', form: 'TPMT_PUBLIC', public: parseTpmtPublic(buf) };
}

function jwkOf(k: KeyObject): Record<string, unknown> | undefined {
  try {
    return k.export({ format: 'jwk' }) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** True when two public keys are the same key (RSA: n and e; EC: curve and point). */
export function sameKey(a: KeyObject, b: KeyObject): boolean {
  const ja = jwkOf(a);
  const jb = jwkOf(b);
  if (ja && jb) {
    if (ja.kty !== jb.kty) return false;
    return ja.kty === 'RSA' ? ja.n === jb.n && ja.e === jb.e : ja.crv === jb.crv && ja.x === jb.x && ja.y === jb.y;
  }
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

export function describeKey(k: KeyObject): string {
  const d = k.asymmetricKeyDetails;
  if (k.asymmetricKeyType === 'ec') return `ECC ${d?.namedCurve ?? ''}`.trim();
  return `RSA-${d?.modulusLength ?? '?'}`;
}

/**
 * Combines the parts into one AK. At most one TPM public area and one certificate; every part
 * must hold the same key, or TPM_AK_MISMATCH (a certificate for another key proves nothing about
 * this one).
 */
export function assembleAttestationKey(parts: readonly AkPart[]): AttestationKey {
  if (parts.length === 0) throw inputError('TPM_BAD_AK', 'no attestation key was given');
  const keyOf = (p: AkPart): KeyObject => (p.kind === 'tpm-public' ? p.public.key : p.kind === 'key' ? p.key : p.certificate.publicKey);
  const first = parts[0] as AkPart;
  const key = keyOf(first);
  for (const p of parts.slice(1)) {
    if (!sameKey(key, keyOf(p))) {
      throw verifyError('TPM_AK_MISMATCH', `the ${p.form} holds a different key (${describeKey(keyOf(p))}) than the ${first.form} (${describeKey(key)})`);
    }
  }
  const publics = parts.filter((p): p is Extract<AkPart, { kind: 'tpm-public' }> => p.kind === 'tpm-public');
  const certs = parts.filter((p): p is Extract<AkPart, { kind: 'certificate' }> => p.kind === 'certificate');
  if (publics.length > 1 && publics.some((p) => !p.public.raw.equals((publics[0] as { public: TpmPublic }).public.raw))) {
    throw verifyError('TPM_AK_MISMATCH', 'two different TPM public areas were given for the AK (same key, different attributes or scheme)');
  }
  if (certs.length > 1 && certs.some((c) => c.certificate.sha256 !== (certs[0] as { certificate: Certificate }).certificate.sha256)) {
    throw inputError('TPM_BAD_AK', 'more than one AK certificate was given; pass its issuers with --ak-chain');
  }
  const ak: AttestationKey = { key, forms: [...new Set(parts.map((p) => p.form))] };
  if (publics[0]) ak.public = publics[0].public;
  if (certs[0]) ak.certificate = certs[0].certificate;
  return ak;
}

/** Reads and combines AK files (see parseAkPart). */
export function loadAttestationKey(files: readonly { data: Uint8Array; what: string }[]): AttestationKey {
  return assembleAttestationKey(files.map((f) => parseAkPart(f.data, f.what)));
}
