import * as asn1js from 'asn1js';
import { inputError, verifyError } from '../errors.js';
import { fail, pass, type Check } from '../check.js';
import type { Certificate } from '../pki/certificate.js';
import { OID, algId, bitString, childrenOf, contentOf, explicit, octets, oid, oidOf, parseDer, seq, tlv } from './der.js';
import { attribute, buildSignedData, checkSignerInfo, digestOf, parseContentInfo, trustPath, wrapContentInfo, type DigestName, type ParsedSignedData, type Signer } from './cms.js';
import { appendAttributeCertificate, attributeCertificates, authenticodeHash, parsePe, prepareForSigning, WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA } from './pe.js';

/**
 * Authenticode signatures on PE/COFF images, as UEFI firmware checks them against db and
 * dbx: a ContentInfo SignedData whose content is SpcIndirectDataContent (the image hash),
 * with signed attributes whose messageDigest covers that content without its outer tag and
 * length.
 */

const CODE = 'AUTHENTICODE_BAD_STRUCTURE';
const OBSOLETE = Buffer.from('<<<Obsolete>>>', 'utf16le').swap16();

/** SpcIndirectDataContent for a PE image hash, as sbsign and signtool write it. */
export function spcIndirectDataContent(imageHash: Uint8Array, digest: DigestName = 'sha256'): Buffer {
  const peImageData = seq(bitString(Buffer.alloc(0)), explicit(0, explicit(2, tlv(0x80, OBSOLETE))));
  return seq(seq(oid(OID.spcPeImageData), peImageData), seq(algId(digestOid(digest)), octets(imageHash)));
}

function digestOid(d: DigestName): string {
  return d === 'sha256' ? OID.sha256 : d === 'sha384' ? OID.sha384 : OID.sha512;
}

/**
 * Signs a PE image with a db key: pads an unsigned image to 8 bytes, adds a signature to its
 * certificate table (after any existing ones, unless `replace`), updates the CheckSum.
 * Deterministic: no signing time.
 */
export function signPe(image: Uint8Array, signer: Signer, opts: { replace?: boolean; extraCertificates?: readonly Certificate[] } = {}): Buffer {
  const prepared = prepareForSigning(image, opts.replace ?? false);
  const hash = authenticodeHash(prepared, 'sha256');
  const idc = spcIndirectDataContent(hash);
  const signedData = buildSignedData({
    signer,
    contentType: OID.spcIndirectData,
    content: idc,
    signedAttributes: [
      attribute(OID.contentType, oid(OID.spcIndirectData)),
      attribute(OID.spcSpOpusInfo, seq()),
      attribute(OID.messageDigest, octets(digestOf('sha256', contentOf(idc)))),
    ],
    ...(opts.extraCertificates ? { extraCertificates: opts.extraCertificates } : {}),
  });
  return appendAttributeCertificate(prepared, wrapContentInfo(signedData));
}

export interface AuthenticodeSignature {
  index: number;
  /** The hash the signature states for the image, and its algorithm. */
  digest: DigestName;
  imageHash: Buffer;
  signedData: ParsedSignedData;
  /** SpcIndirectDataContent DER, as signed. */
  content: Buffer;
}

/** Reads the signatures of a PE image (no checks beyond structure). */
export function readAuthenticode(image: Uint8Array): AuthenticodeSignature[] {
  const pe = parsePe(image);
  const out: AuthenticodeSignature[] = [];
  attributeCertificates(image, pe).forEach((wc, index) => {
    if (wc.revision !== WIN_CERT_REVISION_2_0 || wc.type !== WIN_CERT_TYPE_PKCS_SIGNED_DATA) {
      throw inputError(CODE, `certificate table entry ${index} is revision 0x${wc.revision.toString(16)} type 0x${wc.type.toString(16)}, not a PKCS#7 signature`);
    }
    // bCertificate may carry trailing zero padding after the DER.
    const der = wc.data.subarray(0, derExtent(wc.data));
    const sd = parseContentInfo(der, `signature ${index}`, CODE);
    if (sd.contentType !== OID.spcIndirectData || !sd.content) throw inputError(CODE, `signature ${index} does not hold SpcIndirectDataContent`);
    const [dataField, digestInfo] = childrenOf(parseDer(sd.content, 'SpcIndirectDataContent', CODE));
    if (oidOf(childrenOf(dataField)[0]) !== OID.spcPeImageData) throw inputError(CODE, `signature ${index} is not for a PE image (SpcPeImageData)`);
    const [alg, hash] = childrenOf(digestInfo);
    const algOid = oidOf(childrenOf(alg)[0]);
    const digest: DigestName | undefined = algOid === OID.sha256 ? 'sha256' : algOid === OID.sha384 ? 'sha384' : algOid === OID.sha512 ? 'sha512' : undefined;
    if (!digest) throw inputError(CODE, `signature ${index} uses image digest ${algOid ?? '?'}, not SHA-256/384/512`);
    if (!(hash instanceof asn1js.OctetString)) throw inputError(CODE, `signature ${index}: image digest is not an OCTET STRING`);
    out.push({ index, digest, imageHash: Buffer.from(hash.valueBlock.valueHexView), signedData: sd, content: sd.content });
  });
  return out;
}

function derExtent(b: Buffer): number {
  if (b.length < 2) return b.length;
  const first = b[1] ?? 0;
  if (first < 0x80) return Math.min(b.length, 2 + first);
  const n = first & 0x7f;
  let len = 0;
  for (let i = 0; i < n && i < 4; i++) len = len * 256 + (b[2 + i] ?? 0);
  return Math.min(b.length, 2 + n + len);
}

export interface SignatureDatabase {
  certificates: readonly Certificate[];
  /** SHA-256 image hashes (EFI_CERT_SHA256 entries). */
  hashes?: readonly Uint8Array[];
}

export interface SignatureVerdict {
  index: number;
  ok: boolean;
  code?: string;
  reason: string;
  signer?: string;
  issuer?: string;
  digest: DigestName;
  imageHash: string;
  /** The db certificate the signer chains to. */
  trustedBy?: string;
}

export interface AuthenticodeResult {
  /** SHA-256 Authenticode hash of the image as it stands. */
  sha256: string;
  signatures: SignatureVerdict[];
  /** How the image is allowed: a signature chaining to db, or its hash in db. */
  authorizedBy: 'signature' | 'hash';
  checks: Check[];
}

interface Evaluated {
  verdict: SignatureVerdict;
  signature: AuthenticodeSignature;
  signer?: Certificate;
}

function evaluate(image: Uint8Array): Evaluated[] {
  const hashes = new Map<DigestName, Buffer>();
  return readAuthenticode(image).map((s): Evaluated => {
    const computed = hashes.get(s.digest) ?? authenticodeHash(image, s.digest);
    hashes.set(s.digest, computed);
    const base = { index: s.index, digest: s.digest, imageHash: s.imageHash.toString('hex') };
    const si = s.signedData.signerInfos[0];
    const bad = (reason: string, extra: Partial<SignatureVerdict> = {}, code = 'AUTHENTICODE_BAD_SIGNATURE'): Evaluated => ({ verdict: { ...base, ...extra, ok: false, code, reason }, signature: s });
    if (s.signedData.signerInfos.length !== 1 || !si) return bad(`${s.signedData.signerInfos.length} signers; Authenticode has exactly one`);
    if (!si.signedAttributesRaw) return bad('no signed attributes; Authenticode requires them');
    const st = checkSignerInfo(s.signedData, si, contentOf(s.content));
    const who = st.signer ? { signer: st.signer.subjectCn || st.signer.subject, issuer: st.signer.issuerCn || st.signer.issuer } : {};
    if (!st.ok) return bad(st.detail, who);
    if (!computed.equals(s.imageHash)) {
      return bad(`the signed image hash ${s.imageHash.toString('hex')} is not the image's ${s.digest} Authenticode hash ${computed.toString('hex')}`, who, 'AUTHENTICODE_DIGEST_MISMATCH');
    }
    return { verdict: { ...base, ...who, ok: true, reason: 'signature and image hash verify' }, signature: s, signer: st.signer };
  });
}

/** Checks each signature on its own: image hash, messageDigest, signature. No trust decision. */
export function checkSignatures(image: Uint8Array): SignatureVerdict[] {
  return evaluate(image).map((e) => e.verdict);
}

/**
 * Verifies a PE image against db (and dbx) as UEFI firmware does: forbidden if its hash or a
 * signer (or any certificate of a signer's chain) is in dbx; allowed if a valid signature
 * chains to a db certificate, or its hash is in db. Throws a verify CofferError otherwise,
 * with the per-signature checks in `details.checks`.
 */
export function verifyAuthenticode(image: Uint8Array, db: SignatureDatabase, dbx: SignatureDatabase = { certificates: [] }): AuthenticodeResult {
  const sha256 = authenticodeHash(image, 'sha256');
  const checks: Check[] = [];
  const evaluated = evaluate(image);
  const verdicts = evaluated.map((e) => e.verdict);
  const stop = (code: string, msg: string): never => {
    throw verifyError(code, msg, { checks, signatures: verdicts });
  };
  const hex = sha256.toString('hex');
  if ((dbx.hashes ?? []).some((h) => Buffer.from(h).equals(sha256))) {
    checks.push(fail('authenticode.dbx', 'AUTHENTICODE_FORBIDDEN', `the image hash ${hex} is in dbx`));
    stop('AUTHENTICODE_FORBIDDEN', `the image hash ${hex} is in dbx`);
  }
  let trusted: SignatureVerdict | undefined;
  for (const { verdict: v, signature: s, signer } of evaluated) {
    if (!v.ok || !signer) {
      checks.push(fail(`authenticode.signature[${v.index}]`, v.code ?? 'AUTHENTICODE_BAD_SIGNATURE', v.reason));
      continue;
    }
    const forbidden = trustPath(signer, s.signedData.certificates, dbx.certificates);
    if (forbidden) {
      checks.push(fail(`authenticode.signature[${v.index}]`, 'AUTHENTICODE_FORBIDDEN', `signer ${v.signer} chains to ${forbidden.anchor.subjectCn || forbidden.anchor.subject}, which is in dbx`));
      stop('AUTHENTICODE_FORBIDDEN', `signature ${v.index}: signer ${v.signer} chains to ${forbidden.anchor.subjectCn || forbidden.anchor.subject}, which is in dbx`);
    }
    const path = trustPath(signer, s.signedData.certificates, db.certificates);
    if (!path) {
      v.ok = false;
      v.code = 'AUTHENTICODE_UNTRUSTED';
      v.reason = `valid, but signer ${v.signer} (issuer ${v.issuer}) does not chain to any of the ${db.certificates.length} db certificate(s)`;
      checks.push(fail(`authenticode.signature[${v.index}]`, v.code, v.reason));
      continue;
    }
    v.trustedBy = path.anchor.subjectCn || path.anchor.subject;
    checks.push(pass(`authenticode.signature[${v.index}]`, `${v.digest} image hash and signature verify; signer ${v.signer} chains to db certificate ${v.trustedBy}`));
    trusted ??= v;
  }
  if (trusted) return { sha256: hex, signatures: verdicts, authorizedBy: 'signature', checks };
  if ((db.hashes ?? []).some((h) => Buffer.from(h).equals(sha256))) {
    checks.push(pass('authenticode.db-hash', `the image hash ${hex} is in db`));
    return { sha256: hex, signatures: verdicts, authorizedBy: 'hash', checks };
  }
  if (verdicts.length === 0) {
    checks.push(fail('authenticode.signed', 'AUTHENTICODE_NOT_SIGNED', `the image has no signature and its hash ${hex} is not in db`));
    stop('AUTHENTICODE_NOT_SIGNED', `the image has no signature and its hash ${hex} is not in db`);
  }
  const first = verdicts.find((v) => v.code === 'AUTHENTICODE_UNTRUSTED') ?? verdicts[0];
  return stop(first?.code ?? 'AUTHENTICODE_BAD_SIGNATURE', `signature ${first?.index ?? 0}: ${first?.reason ?? 'invalid'}`);
}

