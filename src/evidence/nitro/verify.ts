import { verify as cryptoVerify } from 'node:crypto';
import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { Certificate } from '../../pki/certificate.js';
import { verifyChain, type TrustAnchor } from '../../pki/chain.js';
import { loadPinnedRoot } from '../../pki/roots.js';
import { COSE_ALG_ES384, sigStructure } from './cose.js';
import type { NitroDocument } from './document.js';

export const NITRO_ROOT_ID = 'aws-nitro-root-g1';

export interface NitroVerifyOptions {
  /**
   * The verification time. The certificate chain is checked at the document's own (signed)
   * timestamp, and by default the document's certificate must also still be valid at `at`: Nitro
   * leaves live three hours, so an old document (replayed, or from an enclave long gone) fails
   * with NITRO_DOCUMENT_EXPIRED. A document timestamped after `at` is refused.
   */
  at: Date;
  /** Also refuse a document whose timestamp is more than this many milliseconds before `at`. */
  maxAgeMs?: number;
  /**
   * Verify a historical document: its certificate need not be valid at `at`, only at its own
   * timestamp (explicit opt-out; freshness is then unproven and reported NOT CHECKED).
   */
  historical?: boolean;
  /** Trust anchors; default the pinned AWS Nitro Enclaves Root-G1. Only tests pass others. */
  roots?: readonly TrustAnchor[];
  /** Allowed clock skew between the NSM and the verifier (default 5 minutes). */
  skewMs?: number;
}

export interface NitroVerified {
  document: NitroDocument;
  leaf: Certificate;
  /** Leaf, zonal, regional, ..., root. */
  chain: Certificate[];
  checks: Check[];
}

function failWith(checks: Check[], name: string, code: string, description: string, extra: Partial<Check> = {}): never {
  checks.push(fail(name, code, description, extra));
  throw verifyError(code, description, { checks });
}

function withChecks<T>(checks: Check[], fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
    const inner = (e.details?.checks as Check[] | undefined) ?? [fail('nitro.certificates', e.code, e.message)];
    throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks: [...checks, ...inner] } });
  }
}

/**
 * Verifies a Nitro attestation document: the COSE ES384 signature over the Sig_structure with the
 * leaf certificate's P-384 key first (before any field is believed), then the chain leaf →
 * cabundle → the pinned AWS Nitro Enclaves Root-G1 at the document's timestamp. Throws a
 * CofferError with `details.checks` at the first failure.
 */
export function verifyNitroDocument(doc: NitroDocument, opts: NitroVerifyOptions): NitroVerified {
  const checks: Check[] = [];
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the verification time is not a valid date');
  const { cose } = doc;
  if (cose.alg !== COSE_ALG_ES384) failWith(checks, 'nitro.algorithm', 'NITRO_BAD_ALGORITHM', `the COSE algorithm is ${cose.alg}; Nitro documents are signed with ES384 (-35)`, { expected: '-35', found: String(cose.alg) });
  const leaf = withChecks(checks, () => Certificate.fromDer(doc.certificate));
  const k = leaf.publicKey;
  if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    failWith(checks, 'nitro.signature', 'NITRO_BAD_SIGNATURE', `the document's certificate (${leaf.subjectCn}) does not hold an ECDSA P-384 key`);
  }
  let ok = false;
  if (cose.signature.length === 96) {
    try {
      ok = cryptoVerify('sha384', sigStructure(cose.protectedRaw, cose.payload), { key: k, dsaEncoding: 'ieee-p1363' }, cose.signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) failWith(checks, 'nitro.signature', 'NITRO_BAD_SIGNATURE', `the COSE_Sign1 ES384 signature does not verify with the document's certificate (${leaf.subjectCn})`);
  checks.push(pass('nitro.signature', `COSE_Sign1 ES384 (P-384/SHA-384) signature over Sig_structure("Signature1", protected, h'', payload) verifies with ${leaf.subjectCn}`));

  const ts = new Date(doc.timestamp);
  const skew = opts.skewMs ?? 5 * 60 * 1000;
  if (ts.getTime() > opts.at.getTime() + skew) {
    failWith(checks, 'nitro.timestamp', 'NITRO_TIMESTAMP_IN_FUTURE', `the document is timestamped ${ts.toISOString()}, after the verification time ${opts.at.toISOString()}`, { expected: `<= ${opts.at.toISOString()}`, found: ts.toISOString() });
  }
  checks.push(pass('nitro.timestamp', `document timestamp ${ts.toISOString()} (signed by the NSM) is not after the verification time`, { found: ts.toISOString() }));

  const bundle = withChecks(checks, () => doc.cabundle.map((d) => Certificate.fromDer(d)));
  const anchors = opts.roots ?? [loadPinnedRoot(NITRO_ROOT_ID)];
  const chain = withChecks(checks, () =>
    verifyChain(
      leaf,
      bundle.filter((c) => c.sha256 !== leaf.sha256),
      anchors,
      { at: ts },
    ),
  );
  checks.push(...chain.checks);
  const root = bundle[0];
  if (root && !chain.path.some((c) => c.sha256 === root.sha256)) {
    failWith(checks, 'nitro.cabundle', 'NITRO_BAD_CABUNDLE', `the cabundle's first certificate (${root.subjectCn}) is not the root the chain ends in (${chain.anchor.label})`);
  }
  checks.push(pass('nitro.cabundle', `cabundle (${bundle.length} certificates, root first) links the document's certificate to ${chain.anchor.label} at the document's timestamp`));

  // Freshness: a signed document stays verifiable at its own timestamp for ever, so by default the
  // leaf (three hours) must still be valid now, and optionally the document younger than maxAgeMs.
  const age = opts.at.getTime() - ts.getTime();
  if (opts.historical) {
    checks.push(notChecked('nitro.freshness', `historical document allowed: its certificate (valid until ${leaf.notAfter.toISOString()}) was not required to be valid at ${opts.at.toISOString()}; the document is ${Math.round(age / 1000)} s old`));
  } else {
    if (opts.at.getTime() > leaf.notAfter.getTime()) {
      failWith(checks, 'nitro.freshness', 'NITRO_DOCUMENT_EXPIRED', `the document's certificate expired at ${leaf.notAfter.toISOString()}, before the verification time ${opts.at.toISOString()}: the document (timestamped ${ts.toISOString()}) is stale; allow historical documents explicitly to verify it anyway`, { expected: `>= ${opts.at.toISOString()}`, found: leaf.notAfter.toISOString() });
    }
    if (opts.maxAgeMs !== undefined && age > opts.maxAgeMs) {
      failWith(checks, 'nitro.freshness', 'NITRO_DOCUMENT_TOO_OLD', `the document is ${Math.round(age / 1000)} s old at ${opts.at.toISOString()}, more than the ${Math.round(opts.maxAgeMs / 1000)} s allowed`, { expected: `<= ${Math.round(opts.maxAgeMs / 1000)} s`, found: `${Math.round(age / 1000)} s` });
    }
    checks.push(pass('nitro.freshness', `the document's certificate is still valid at ${opts.at.toISOString()} (until ${leaf.notAfter.toISOString()})${opts.maxAgeMs !== undefined ? ` and the document is at most ${Math.round(opts.maxAgeMs / 1000)} s old` : ''}`, { found: `${Math.round(age / 1000)} s old` }));
  }
  checks.push(notChecked('pki.revocation', 'AWS publishes no CRL for Nitro attestation certificates; a compromised enclave host key would not be noticed (leaves live three hours)'));
  return { document: doc, leaf, chain: chain.path, checks };
}
