import { inputError, verifyError } from '../errors.js';
import { fail, pass, type Check } from '../check.js';
import type { Certificate } from './certificate.js';
import type { Crl } from './crl.js';
import { verifyWith } from './signature.js';

/** A root the caller trusts, with a label for reports (e.g. "ARK-Milan (pinned)"). */
export interface TrustAnchor {
  cert: Certificate;
  label: string;
}

export interface ChainOptions {
  /** The time at which every certificate must be valid. */
  at: Date;
  /** Revocation lists; each must be issued by a certificate of the chain and is checked. */
  crls?: readonly Crl[];
  maxDepth?: number;
}

export interface VerifiedChain {
  /** Leaf first, anchor last. */
  path: Certificate[];
  anchor: TrustAnchor;
  checks: Check[];
}

// Signature results are cached by (child, issuer) content hash: a chain seen before costs
// a few map lookups and date comparisons, not RSA verifications.
const sigCache = new Map<string, boolean>();
const SIG_CACHE_MAX = 4096;

function signedBy(child: Certificate, issuer: Certificate): boolean {
  const key = `${child.sha256}:${issuer.sha256}`;
  const hit = sigCache.get(key);
  if (hit !== undefined) return hit;
  const ok = verifyWith(child.signed.algorithm, child.signed.tbs, child.signed.signature, issuer.publicKey);
  if (sigCache.size >= SIG_CACHE_MAX) {
    const oldest = sigCache.keys().next().value;
    if (oldest !== undefined) sigCache.delete(oldest);
  }
  sigCache.set(key, ok);
  return ok;
}

const crlCache = new WeakMap<Crl, Map<string, boolean>>();
function crlSignedBy(crl: Crl, issuer: Certificate): boolean {
  let m = crlCache.get(crl);
  if (!m) crlCache.set(crl, (m = new Map()));
  const hit = m.get(issuer.sha256);
  if (hit !== undefined) return hit;
  const ok = crl.signedBy(issuer);
  m.set(issuer.sha256, ok);
  return ok;
}

function chainError(code: string, message: string, checks: Check[], name: string): never {
  checks.push(fail(name, code, message));
  throw verifyError(code, message, { checks });
}

function label(c: Certificate): string {
  return c.subjectCn || c.subject || `certificate with serial ${c.serial} issued by ${c.issuerCn || c.issuer}`;
}

/**
 * Builds and checks the path from `leaf` through `intermediates` to one of `anchors`:
 * every signature (RSA PKCS#1, RSA-PSS with its parameters enforced, ECDSA), every validity
 * window at `opts.at`, CA constraints on every issuer, no unknown critical extension, and
 * revocation against every supplied CRL. The first failure throws a CofferError whose
 * `details.checks` lists what was checked up to it.
 */
export function verifyChain(
  leaf: Certificate,
  intermediates: readonly Certificate[],
  anchors: readonly TrustAnchor[],
  opts: ChainOptions,
): VerifiedChain {
  const checks: Check[] = [];
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the chain validation time is not a valid date');
  const maxDepth = opts.maxDepth ?? 8;
  const path: Certificate[] = [leaf];
  let anchor: TrustAnchor | undefined = anchors.find((a) => a.cert.sha256 === leaf.sha256);

  while (!anchor) {
    const current = path[path.length - 1] as Certificate;
    if (path.length > maxDepth) chainError('PKI_CHAIN_TOO_LONG', `certificate chain longer than ${maxDepth}`, checks, 'pki.chain');
    const anchorCandidates = anchors.filter((a) => a.cert.subject === current.issuer);
    const viaAnchor = anchorCandidates.find((a) => signedBy(current, a.cert));
    if (viaAnchor) {
      checks.push(pass('pki.signature', `${label(current)} is signed by ${viaAnchor.label}`));
      path.push(viaAnchor.cert);
      anchor = viaAnchor;
      break;
    }
    const candidates = intermediates.filter((c) => c.subject === current.issuer && !path.includes(c));
    const next = candidates.find((c) => signedBy(current, c));
    if (next) {
      if (next.isSelfIssued) {
        chainError('PKI_UNTRUSTED_ROOT', `${label(current)} chains to ${label(next)}, which is not a trusted root`, checks, 'pki.anchor');
      }
      checks.push(pass('pki.signature', `${label(current)} is signed by ${label(next)}`));
      path.push(next);
      continue;
    }
    if (anchorCandidates.length > 0 || candidates.length > 0) {
      const by = anchorCandidates[0]?.label ?? label(candidates[0] as Certificate);
      chainError('PKI_BAD_SIGNATURE', `the signature of ${label(current)} does not verify with the key of ${by}`, checks, 'pki.signature');
    }
    if (current.isSelfIssued) {
      chainError('PKI_UNTRUSTED_ROOT', `${label(current)} is self-signed and is not a trusted root`, checks, 'pki.anchor');
    }
    chainError('PKI_CHAIN_INCOMPLETE', `no certificate for the issuer of ${label(current)} (${current.issuer}) was supplied or trusted`, checks, 'pki.chain');
  }
  checks.push(pass('pki.anchor', `chain ends at trusted root ${anchor.label}`, { found: anchor.cert.sha256 }));

  for (let i = 0; i < path.length; i++) {
    const c = path[i] as Certificate;
    const unknown = c.unknownCriticalExtensions();
    if (unknown.length > 0) {
      chainError('PKI_UNKNOWN_CRITICAL_EXTENSION', `${label(c)} has critical extension(s) Coffer does not understand: ${unknown.join(', ')}`, checks, 'pki.extensions');
    }
    if (i > 0 && !c.canSignCertificates) {
      chainError('PKI_NOT_CA', `${label(c)} is not a CA certificate allowed to sign certificates`, checks, 'pki.ca');
    }
    // RFC 5280 6.1.4 (m): the CA certificates below this one (excluding the leaf) may not exceed its pathLenConstraint.
    if (i > 0 && c.pathLength !== undefined && i - 1 > c.pathLength) {
      chainError('PKI_PATH_LENGTH', `${label(c)} allows ${c.pathLength} CA certificate(s) below it, the chain has ${i - 1}`, checks, 'pki.ca');
    }
    const at = opts.at.getTime();
    if (at < c.notBefore.getTime()) {
      chainError('PKI_NOT_YET_VALID', `${label(c)} is not valid before ${c.notBefore.toISOString()} (checked at ${opts.at.toISOString()})`, checks, 'pki.validity');
    }
    if (at > c.notAfter.getTime()) {
      chainError('PKI_EXPIRED', `${label(c)} expired at ${c.notAfter.toISOString()} (checked at ${opts.at.toISOString()})`, checks, 'pki.validity');
    }
  }
  checks.push(pass('pki.validity', `every certificate is valid at ${opts.at.toISOString()}`));

  for (const crl of opts.crls ?? []) {
    const issuerIndex = path.findIndex((c) => c.subject === crl.issuer);
    const issuer = path[issuerIndex];
    if (!issuer) {
      chainError('PKI_CRL_NOT_APPLICABLE', `a CRL issued by ${crl.issuer} does not belong to this chain`, checks, 'pki.crl');
    }
    if (!crlSignedBy(crl, issuer) || !issuer.canSignCrls) {
      chainError('PKI_CRL_BAD_SIGNATURE', `the CRL of ${label(issuer)} is not validly signed by it`, checks, 'pki.crl');
    }
    if (opts.at.getTime() < crl.thisUpdate.getTime()) {
      chainError('PKI_CRL_NOT_YET_VALID', `the CRL of ${label(issuer)} was issued at ${crl.thisUpdate.toISOString()}, after the verification time ${opts.at.toISOString()}`, checks, 'pki.crl');
    }
    if (crl.nextUpdate && opts.at.getTime() > crl.nextUpdate.getTime()) {
      chainError('PKI_CRL_STALE', `the CRL of ${label(issuer)} was due for renewal at ${crl.nextUpdate.toISOString()}`, checks, 'pki.crl');
    }
    for (const c of path.slice(0, issuerIndex)) {
      if (crl.isRevoked(c)) {
        chainError('PKI_REVOKED', `${label(c)} (serial ${c.serial}) is revoked by the CRL of ${label(issuer)}`, checks, 'pki.revocation');
      }
    }
    checks.push(pass('pki.revocation', `no certificate of the chain is on the CRL of ${label(issuer)}`));
  }
  return { path, anchor, checks };
}
