import { constants, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { toHex } from '../../bytes/hex.js';
import type { Certificate } from '../../pki/certificate.js';
import { verifyChain, type TrustAnchor } from '../../pki/chain.js';
import { algName, TPM_HASHES } from './constants.js';
import { attributeNames, parseTpmQuote, parseTpmSignature, type TpmQuote, type TpmSignature } from './structures.js';
import { computePcrDigest, type PcrBanks } from './pcrs.js';
import { describeKey, sameKey, type AttestationKey } from './ak.js';

export interface TpmVerifyOptions {
  /** Time at which the AK certificate chain must be valid. */
  at: Date;
  ak: AttestationKey;
  /** The nonce the verifier sent: extraData must equal it. Required unless skipNonceCheck. */
  nonce?: Uint8Array;
  /** Accept a quote without checking its freshness (replayable!). Reported as a warning check. */
  skipNonceCheck?: boolean;
  /** PCR values the quote must stand for; every selected PCR must be present. */
  pcrs?: PcrBanks;
  /** Roots for the AK certificate (required with a certificate; no root is built in). */
  akRoots?: readonly TrustAnchor[];
  akIntermediates?: readonly Certificate[];
  /** The AK's qualified name (H(parent QN || name)), when the verifier knows the AK's parent. */
  expectedQualifiedSigner?: Uint8Array;
}

export interface TpmQuoteVerified {
  quote: TpmQuote;
  signature: TpmSignature;
  ak: AttestationKey;
  /** AK certificate to root, when a certificate was given. */
  akChain?: Certificate[];
  /** The selected PCR values the verified digest stands for (only when PCR values were supplied). */
  pcrs?: PcrBanks;
  /** The nonce was deliberately not checked. */
  nonceChecked: boolean;
  checks: Check[];
}

function failWith(checks: Check[], name: string, code: string, description: string, extra: Partial<Check> = {}, kind: 'verify' | 'input' = 'verify'): never {
  checks.push(fail(name, code, description, extra));
  throw new CofferError(code, description, { kind, details: { checks } });
}

/** Re-throws a CofferError from a sub-step with the checks gathered so far (plus its own). */
function withChecks<T>(checks: Check[], name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
    const inner = (e.details?.checks as Check[] | undefined) ?? [fail(name, e.code, e.message)];
    throw new CofferError(e.code, e.message, { kind: e.kind, details: { ...e.details, checks: [...checks, ...inner] } });
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The curves an AK may use: NIST P-256 and P-384 (what TPMs implement for ECDSA AKs). */
const CURVE_BYTES: Readonly<Record<string, number>> = { prime256v1: 32, secp384r1: 48 };
/** The smallest RSA AK accepted. */
export const MIN_RSA_AK_BITS = 2048;

/**
 * The AK's parts must hold one key, and a key strong enough to mean something. AttestationKey is a
 * plain interface that any caller can assemble, so this is checked here, not only when loading.
 */
function checkAkKey(checks: Check[], ak: AttestationKey): Check {
  const others: [string, KeyObject][] = [];
  if (ak.public) others.push(['TPM public area', ak.public.key]);
  if (ak.certificate) others.push(['AK certificate', ak.certificate.publicKey]);
  for (const [what, k] of others) {
    if (!sameKey(ak.key, k)) failWith(checks, 'tpm.ak.key', 'TPM_AK_MISMATCH', `the ${what} holds a different key (${describeKey(k)}) than the AK key (${describeKey(ak.key)})`);
  }
  const type = ak.key.asymmetricKeyType;
  if (type === 'rsa') {
    const bits = ak.key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_AK_BITS) failWith(checks, 'tpm.ak.key', 'TPM_BAD_AK', `the AK is an RSA-${bits} key; at least RSA-${MIN_RSA_AK_BITS} is required`, { expected: `RSA >= ${MIN_RSA_AK_BITS}`, found: `RSA-${bits}` });
  } else if (type === 'ec') {
    const curve = ak.key.asymmetricKeyDetails?.namedCurve ?? 'unknown';
    if (CURVE_BYTES[curve] === undefined) failWith(checks, 'tpm.ak.key', 'TPM_BAD_AK', `the AK is on curve ${curve}; only P-256 and P-384 are accepted`, { expected: 'prime256v1 or secp384r1', found: curve });
  } else {
    failWith(checks, 'tpm.ak.key', 'TPM_BAD_AK', `the AK is a ${type ?? 'unknown'} key, neither RSA nor ECC`);
  }
  return pass('tpm.ak.key', `the AK is an acceptable ${describeKey(ak.key)} key${others.length ? `, the same in every form given (${ak.forms.join(' + ')})` : ''}`);
}

/**
 * RSA-PSS salt lengths a TPM uses: TPM 2.0 Part 1 says the salt is as long as the digest when the
 * TPM follows FIPS 186-4 (libtpms/swtpm do), otherwise the largest the key allows. Both are
 * accepted, nothing else (no "auto" recovery of arbitrary salt lengths).
 */
function pssSaltLengths(key: KeyObject, digestSize: number): number[] {
  const modBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  return [...new Set([digestSize, modBytes - digestSize - 2])].filter((n) => n >= 0);
}

/** True when the TPMT_SIGNATURE verifies over `data` with `key`. Never throws for a bad signature. */
export function verifyTpmSignature(sig: TpmSignature, data: Uint8Array, key: KeyObject): boolean {
  const h = TPM_HASHES[sig.hash];
  if (!h) return false;
  try {
    if (sig.alg === 'ecdsa') {
      if (key.asymmetricKeyType !== 'ec' || !sig.ecdsa) return false;
      const n = CURVE_BYTES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (!n || sig.ecdsa.r.length > n || sig.ecdsa.s.length > n) return false;
      const p1363 = Buffer.alloc(2 * n);
      sig.ecdsa.r.copy(p1363, n - sig.ecdsa.r.length);
      sig.ecdsa.s.copy(p1363, 2 * n - sig.ecdsa.s.length);
      return cryptoVerify(h.name, data, { key, dsaEncoding: 'ieee-p1363' }, p1363);
    }
    if (key.asymmetricKeyType !== 'rsa' || !sig.rsa) return false;
    if (sig.alg === 'rsassa') return cryptoVerify(h.name, data, { key, padding: constants.RSA_PKCS1_PADDING }, sig.rsa);
    return pssSaltLengths(key, h.size).some((saltLength) => cryptoVerify(h.name, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig.rsa as Buffer));
  } catch {
    return false;
  }
}

function sigLabel(sig: TpmSignature): string {
  return `${sig.alg.toUpperCase()}/${sig.hashName.toUpperCase()}`;
}

/**
 * Verifies a TPM 2.0 quote: the TPMT_SIGNATURE over the TPMS_ATTEST bytes with the AK first (so
 * any altered byte fails as a signature error before a field is believed), then the strict parse,
 * the AK's restrictions (restricted, sign, fixedTPM) when its TPM public area is known, the AK
 * certificate's chain to a caller-supplied root, the qualified signer, extraData against the
 * nonce (constant time), and pcrDigest against the supplied PCR values for every selected bank.
 * Throws a CofferError with `details.checks` at the first failure.
 */
export function verifyTpmQuote(attest: Uint8Array, signature: Uint8Array, opts: TpmVerifyOptions): TpmQuoteVerified {
  const checks: Check[] = [];
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the verification time is not a valid date');
  if (opts.nonce === undefined && !opts.skipNonceCheck) {
    throw inputError('TPM_NONCE_REQUIRED', 'a nonce is required: a quote whose extraData is not checked against a fresh nonce proves nothing about when it was made');
  }
  if (opts.nonce !== undefined && opts.skipNonceCheck) throw inputError('USAGE', 'give a nonce or skip the nonce check, not both');
  if (opts.nonce !== undefined && opts.nonce.length === 0) {
    throw inputError('TPM_NONCE_REQUIRED', 'the nonce is empty: an empty extraData proves no freshness (skip the nonce check explicitly if that is intended)');
  }
  const { ak } = opts;
  if (ak.certificate && (!opts.akRoots || opts.akRoots.length === 0)) {
    throw inputError('TPM_AK_ROOT_REQUIRED', `an AK certificate (${ak.certificate.subjectCn || ak.certificate.issuerCn}) was given without a root to check it against; Coffer trusts no vTPM root by default`);
  }
  if (!ak.certificate && opts.akRoots && opts.akRoots.length > 0) throw inputError('TPM_AK_NO_CERTIFICATE', 'an AK root was given but no AK certificate to chain to it');
  const raw = Buffer.from(attest.buffer, attest.byteOffset, attest.byteLength);
  // Before any signature is believed: the AK forms hold one key, and a strong enough one.
  const akKeyCheck = checkAkKey(checks, ak);

  // 1. The signature, on the raw bytes, before any field is believed.
  const sig = withChecks(checks, 'tpm.signature.format', () => parseTpmSignature(signature));
  if (sig.hashName === 'sha1') {
    failWith(checks, 'tpm.signature', 'TPM_UNSUPPORTED_ALG', `the quote is signed over SHA-1 (${sig.alg.toUpperCase()}/SHA1); SHA-1 signatures are not accepted`);
  }
  const keyType = ak.key.asymmetricKeyType === 'ec' ? 'ecc' : 'rsa';
  if ((sig.alg === 'ecdsa') !== (keyType === 'ecc')) {
    failWith(checks, 'tpm.signature', 'TPM_BAD_SIGNATURE', `the signature is ${sigLabel(sig)} but the AK is an ${describeKey(ak.key)} key`, { expected: keyType === 'ecc' ? 'ECDSA' : 'RSASSA or RSAPSS', found: sig.alg.toUpperCase() });
  }
  const scheme = ak.public?.scheme;
  if (scheme && scheme.alg !== 0x0010 && (scheme.alg !== sig.algId || scheme.hash !== sig.hash)) {
    const want = `${scheme.algName.toUpperCase()}/${(scheme.hashName ?? '').toUpperCase()}`;
    failWith(checks, 'tpm.signature.scheme', 'TPM_SCHEME_MISMATCH', `the AK's TPM public area fixes its scheme to ${want}, the signature is ${sigLabel(sig)}`, { expected: want, found: sigLabel(sig) });
  }
  if (!verifyTpmSignature(sig, raw, ak.key)) {
    failWith(checks, 'tpm.signature', 'TPM_BAD_SIGNATURE', `the quote's ${sigLabel(sig)} signature does not verify with the supplied AK (${describeKey(ak.key)}, from ${ak.forms.join(' + ')})`);
  }
  checks.push(pass('tpm.signature', `${sigLabel(sig)} signature over the ${raw.length}-byte TPMS_ATTEST verifies with the AK (${describeKey(ak.key)}, from ${ak.forms.join(' + ')})`));

  // 2. Strict parse of the now-authenticated bytes.
  const quote = withChecks(checks, 'tpm.format', () => parseTpmQuote(raw));
  checks.push(pass('tpm.format', `TPMS_ATTEST is a well-formed quote (magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE, no trailing bytes)`));
  // The TPM computes pcrDigest with the signing scheme's hash: any other size cannot be its digest.
  const sigHashSize = TPM_HASHES[sig.hash]?.size;
  if (quote.pcrDigest.length !== sigHashSize) {
    failWith(checks, 'tpm.pcr-digest', 'TPM_BAD_SIZE', `the quoted pcrDigest is ${quote.pcrDigest.length} bytes, but the quote is signed with ${sig.hashName.toUpperCase()} (${sigHashSize ?? '?'} bytes)`, { expected: String(sigHashSize), found: String(quote.pcrDigest.length) });
  }
  // A quote that selects no PCR attests to nothing about the platform's state.
  if (quote.pcrSelection.every((s) => s.pcrs.length === 0)) {
    failWith(checks, 'tpm.pcr-selection', 'TPM_EMPTY_SELECTION', `the quote selects no PCR (${quote.pcrSelection.length === 0 ? 'no bank' : quote.pcrSelection.map((s) => `${s.hashName}: none`).join(', ')}): it attests to nothing about the boot`);
  }

  // 3. What kind of key signed: only a restricted signing key that never leaves the TPM makes a
  // quote mean anything (an unrestricted key signs any bytes that start with the magic).
  if (ak.public) {
    const a = ak.public.attributes;
    const found = attributeNames(a).join('|') || 'none';
    if (!a.restricted || !a.sign || !a.fixedTPM) {
      const missing = [!a.restricted && 'restricted', !a.sign && 'sign', !a.fixedTPM && 'fixedTPM'].filter(Boolean).join(', ');
      failWith(checks, 'tpm.ak.attributes', 'TPM_AK_NOT_RESTRICTED', `the AK is not a restricted signing key bound to its TPM (missing ${missing}): it could sign forged TPMS_ATTEST bytes`, { expected: 'restricted|sign|fixedTPM', found });
    }
    checks.push(
      pass(
        'tpm.ak.attributes',
        opts.ak.certificate
          ? 'the AK is a restricted signing key bound to its TPM (restricted, sign, fixedTPM), as its certificate vouches'
          : 'the AK public area declares a restricted signing key (restricted, sign, fixedTPM); only an AK certificate chained to a trusted root shows it lives in a TPM',
        { found, expected: 'restricted|sign|fixedTPM' },
      ),
    );
  } else {
    checks.push(
      notChecked('tpm.ak.attributes', `the AK was given as ${ak.forms.join(' + ')}, without its TPM public area; that it is a restricted, TPM-bound key is ${ak.certificate ? 'vouched for only by its certificate issuer' : 'taken on trust'}`),
    );
  }

  checks.push(akKeyCheck);

  // 4. The AK certificate: chain to the caller's root (key equality was re-checked above).
  let akChain: Certificate[] | undefined;
  if (ak.certificate) {
    const cert = ak.certificate;
    const intermediates = (opts.akIntermediates ?? []).filter((c) => c.sha256 !== cert.sha256);
    const chain = withChecks(checks, 'pki.chain', () => verifyChain(cert, intermediates, opts.akRoots ?? [], { at: opts.at }));
    checks.push(...chain.checks);
    akChain = chain.path;
    checks.push(pass('tpm.ak.certificate', `the AK certificate (issued by ${cert.issuerCn || cert.issuer}) certifies the key that signed the quote`, { found: cert.sha256 }));
  }

  // 5. Qualified signer: H(parent QN || name) — it depends on the AK's parents, so it equals the
  // AK's name only in form (same nameAlg), unless the verifier knows the expected value.
  const qs = quote.qualifiedSigner;
  if (opts.expectedQualifiedSigner) {
    const exp = Buffer.from(opts.expectedQualifiedSigner);
    if (!equal(exp, qs)) failWith(checks, 'tpm.qualified-signer', 'TPM_QUALIFIED_SIGNER_MISMATCH', "the quote's qualified signer is not the AK's expected qualified name", { expected: toHex(exp), found: toHex(qs) });
    checks.push(pass('tpm.qualified-signer', "the quote's qualified signer equals the AK's expected qualified name", { found: toHex(qs) }));
  } else if (ak.public) {
    const alg = qs.length >= 2 ? qs.readUInt16BE(0) : -1;
    if (alg !== ak.public.nameAlg) {
      failWith(checks, 'tpm.qualified-signer', 'TPM_AK_MISMATCH', `the quote's qualified signer is computed with ${alg < 0 ? 'no algorithm' : algName(alg)}, the AK's nameAlg is ${ak.public.nameAlgName}`, { expected: ak.public.nameAlgName, found: alg < 0 ? 'none' : algName(alg) });
    }
    checks.push(pass('tpm.qualified-signer', `qualified signer uses the AK's nameAlg (${ak.public.nameAlgName}); its value depends on the AK's parent and is not compared (AK name ${toHex(ak.public.name)})`, { found: toHex(qs) }));
  } else {
    checks.push({ ...notChecked('tpm.qualified-signer', 'without the AK public area the qualified signer cannot be related to the AK'), found: toHex(qs) });
  }

  // 6. Freshness.
  let nonceChecked = false;
  if (opts.nonce !== undefined) {
    const n = Buffer.from(opts.nonce);
    if (!equal(n, quote.extraData)) failWith(checks, 'tpm.nonce', 'TPM_NONCE_MISMATCH', "the quote's extraData is not the expected nonce: the quote may be replayed or made for another verifier", { expected: toHex(n), found: toHex(quote.extraData) });
    checks.push(pass('tpm.nonce', "the quote's extraData equals the expected nonce", { expected: toHex(n), found: toHex(quote.extraData) }));
    nonceChecked = true;
  } else {
    checks.push({ ...notChecked('tpm.nonce', `WARNING: freshness is unproven, this quote may be a replay (extraData ${quote.extraData.length === 0 ? 'is empty' : toHex(quote.extraData)})`), found: toHex(quote.extraData) });
  }

  // 7. PCR digest: H_sig-hash(selected values in selection order), for every selected bank.
  let pcrs: PcrBanks | undefined;
  const selected = quote.pcrSelection.map((s) => `${s.hashName}:${s.pcrs.join(',') || 'none'}`).join(' ');
  if (opts.pcrs) {
    const banks = opts.pcrs;
    const digest = withChecks(checks, 'tpm.pcr-digest', () => computePcrDigest(quote.pcrSelection, banks, sig.hashName));
    if (!equal(digest, quote.pcrDigest)) {
      failWith(checks, 'tpm.pcr-digest', 'TPM_PCR_DIGEST_MISMATCH', `the supplied PCR values (${selected}) do not hash to the quoted pcrDigest`, { expected: toHex(quote.pcrDigest), found: toHex(digest) });
    }
    checks.push(pass('tpm.pcr-digest', `${sig.hashName.toUpperCase()} of the supplied PCR values (${selected}) equals the quoted pcrDigest`, { found: toHex(digest) }));
    pcrs = new Map();
    for (const s of quote.pcrSelection) {
      const bank = banks.get(s.hashName);
      pcrs.set(s.hashName, new Map(s.pcrs.map((p) => [p, bank?.get(p) as Buffer])));
    }
  } else {
    checks.push({ ...notChecked('tpm.pcr-digest', `no PCR values supplied; the quote commits to PCRs ${selected} through pcrDigest only`), found: toHex(quote.pcrDigest) });
  }

  return { quote, signature: sig, ak, ...(akChain ? { akChain } : {}), ...(pcrs ? { pcrs } : {}), nonceChecked, checks };
}

/** Throws when any check failed (the first failure's code; all checks in details). */
export function assertTpmChecks(checks: Check[]): void {
  const failed = checks.find((c) => !c.ok);
  if (failed) throw verifyError(failed.code ?? 'VALIDATION_FAILED', failed.description, { checks });
}
