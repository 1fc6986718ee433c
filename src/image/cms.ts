import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { inputError } from '../errors.js';
import { Certificate } from '../pki/certificate.js';
import { verifyWith, type SignatureAlgorithm } from '../pki/signature.js';
import { OID, algId, childrenOf, contentOf, explicit, isContext, octets, oid, oidOf, parseDer, rawOf, seq, setOf, tlv, uint, type Der } from './der.js';

/**
 * PKCS#7 / CMS SignedData as UEFI uses it: bare (authenticated variables) or in a
 * ContentInfo (Authenticode), one signer identified by issuer and serial number, RSA
 * PKCS#1 v1.5. Building writes exact DER (deterministic: no signing time), parsing keeps
 * the raw bytes that signatures and digests are computed over.
 */

/** A signing key and its certificate. */
export interface Signer {
  certificate: Certificate;
  privateKey: KeyObject;
}

export type DigestName = 'sha256' | 'sha384' | 'sha512';

const DIGESTS: Record<string, DigestName> = { [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };
const DIGEST_OIDS: Record<DigestName, string> = { sha256: OID.sha256, sha384: OID.sha384, sha512: OID.sha512 };
const SIGNATURE_OIDS: Record<string, SignatureAlgorithm['kind']> = {
  [OID.rsaEncryption]: 'rsa-pkcs1',
  '1.2.840.113549.1.1.11': 'rsa-pkcs1',
  '1.2.840.113549.1.1.12': 'rsa-pkcs1',
  '1.2.840.113549.1.1.13': 'rsa-pkcs1',
  '1.2.840.10045.2.1': 'ecdsa',
  '1.2.840.10045.4.3.2': 'ecdsa',
  '1.2.840.10045.4.3.3': 'ecdsa',
  '1.2.840.10045.4.3.4': 'ecdsa',
};

export function digestOf(name: DigestName, data: Uint8Array): Buffer {
  return createHash(name).update(data).digest();
}

/** IssuerAndSerialNumber of a certificate, from its DER verbatim. */
export function issuerAndSerial(cert: Certificate): Der {
  const tbs = childrenOf(parseDer(cert.der, 'certificate', 'PKI_BAD_CERTIFICATE'))[0];
  const fields = childrenOf(tbs);
  const off = isContext(fields[0], 0) ? 1 : 0;
  const serial = fields[off];
  const issuer = fields[off + 2];
  if (!serial || !issuer) throw inputError('PKI_BAD_CERTIFICATE', 'certificate has no issuer or serial number');
  return seq(rawOf(issuer), rawOf(serial));
}

/** An Attribute: SEQUENCE { type, SET OF value }. */
export function attribute(type: string, ...values: Der[]): Der {
  return seq(oid(type), setOf(...values));
}

export interface SignedDataInput {
  signer: Signer;
  /** eContentType: id-data for a detached authenticated-variable signature. */
  contentType: string;
  /** The encapsulated content, placed in [0] EXPLICIT; absent for a detached signature. */
  content?: Der;
  /**
   * Without signed attributes the signature is over these bytes directly (authenticated
   * variables). With them it is over the DER SET of attributes, which the caller builds
   * (they carry the message digest).
   */
  signedBytes?: Uint8Array;
  signedAttributes?: Der[];
  /** Further certificates to include (the signer's own is always included first). */
  extraCertificates?: readonly Certificate[];
}

/** A bare SignedData (not wrapped in ContentInfo), SHA-256, one signer. */
export function buildSignedData(input: SignedDataInput): Der {
  const { signer } = input;
  const keyType = signer.privateKey.asymmetricKeyType;
  if (keyType !== 'rsa') throw inputError('SIGNING_KEY_UNSUPPORTED', `UEFI signing needs an RSA key, got ${keyType ?? 'an unknown key type'}`);
  let signedAttrs: Der | undefined;
  let toSign: Uint8Array;
  if (input.signedAttributes) {
    const set = setOf(...input.signedAttributes);
    toSign = set;
    signedAttrs = Buffer.concat([Buffer.from([0xa0]), set.subarray(1)]);
  } else {
    if (!input.signedBytes) throw inputError('USAGE', 'a SignedData without signed attributes needs the bytes to sign');
    toSign = input.signedBytes;
  }
  const signature = cryptoSign('sha256', toSign, signer.privateKey);
  const signerInfo = seq(
    uint(1),
    issuerAndSerial(signer.certificate),
    algId(OID.sha256),
    ...(signedAttrs ? [signedAttrs] : []),
    algId(OID.rsaEncryption),
    octets(signature),
  );
  const certs = [signer.certificate, ...(input.extraCertificates ?? []).filter((c) => c.sha256 !== signer.certificate.sha256)];
  return seq(
    uint(1),
    setOf(algId(OID.sha256)),
    seq(oid(input.contentType), ...(input.content ? [explicit(0, input.content)] : [])),
    tlv(0xa0, ...certs.map((c) => c.der)),
    setOf(signerInfo),
  );
}

export function wrapContentInfo(signedData: Der): Der {
  return seq(oid(OID.signedData), explicit(0, signedData));
}

export interface ParsedSignerInfo {
  /** DER of the issuer Name and the serial number (lower-case hex, no leading zeros). */
  issuer: Buffer;
  serial: string;
  digest: DigestName;
  /** The [0] IMPLICIT signed attributes as stored, or undefined. */
  signedAttributesRaw?: Buffer;
  /** Attribute values (each value's DER) by attribute OID. */
  signedAttributes: Map<string, Buffer[]>;
  signatureAlgorithm: string;
  signature: Buffer;
}

export interface ParsedSignedData {
  version: number;
  contentType: string;
  /** DER of the encapsulated content (inside [0] EXPLICIT), if present. */
  content?: Buffer;
  certificates: Certificate[];
  signerInfos: ParsedSignerInfo[];
}

function integerValue(el: asn1js.AsnType | undefined, what: string, code: string): number {
  if (!(el instanceof asn1js.Integer)) throw inputError(code, `${what} is not an INTEGER`);
  return el.valueBlock.valueDec;
}

function octetValue(el: asn1js.AsnType | undefined, what: string, code: string): Buffer {
  if (!(el instanceof asn1js.OctetString) || el.idBlock.isConstructed) throw inputError(code, `${what} is not a primitive OCTET STRING`);
  return Buffer.from(el.valueBlock.valueHexView);
}

function serialHex(el: asn1js.AsnType | undefined, code: string): string {
  if (!(el instanceof asn1js.Integer)) throw inputError(code, 'signer serial number is not an INTEGER');
  const s = Buffer.from(el.valueBlock.valueHexView).toString('hex').replace(/^0+/, '');
  return s === '' ? '0' : s;
}

function digestAlgorithm(el: asn1js.AsnType | undefined, what: string, code: string): DigestName {
  const o = oidOf(childrenOf(el)[0]);
  const d = o ? DIGESTS[o] : undefined;
  if (!d) throw inputError(code, `${what}: digest algorithm ${o ?? '?'} is not SHA-256/384/512`);
  return d;
}

function parseSignerInfo(el: asn1js.AsnType, code: string): ParsedSignerInfo {
  const f = childrenOf(el);
  if (!(el instanceof asn1js.Sequence) || f.length < 5) throw inputError(code, 'SignerInfo is not a SEQUENCE of at least 5 fields');
  integerValue(f[0], 'SignerInfo version', code);
  const sid = f[1];
  const sidParts = childrenOf(sid);
  if (!(sid instanceof asn1js.Sequence) || sidParts.length !== 2 || !sidParts[0]) throw inputError(code, 'SignerInfo identifies its signer other than by issuer and serial number');
  const digest = digestAlgorithm(f[2], 'SignerInfo', code);
  let i = 3;
  let signedAttributesRaw: Buffer | undefined;
  const signedAttributes = new Map<string, Buffer[]>();
  if (isContext(f[i], 0)) {
    const attrs = f[i] as asn1js.AsnType;
    signedAttributesRaw = rawOf(attrs);
    for (const a of childrenOf(attrs)) {
      const [type, values] = childrenOf(a);
      const t = oidOf(type);
      if (!t || !(values instanceof asn1js.Set)) throw inputError(code, 'a signed attribute is not { OID, SET }');
      if (signedAttributes.has(t)) throw inputError(code, `signed attribute ${t} appears twice`);
      signedAttributes.set(t, childrenOf(values).map(rawOf));
    }
    i++;
  }
  const sigAlg = oidOf(childrenOf(f[i])[0]);
  if (!sigAlg) throw inputError(code, 'SignerInfo has no signature algorithm');
  const signature = octetValue(f[i + 1], 'SignerInfo signature', code);
  return { issuer: rawOf(sidParts[0]), serial: serialHex(sidParts[1], code), digest, ...(signedAttributesRaw ? { signedAttributesRaw } : {}), signedAttributes, signatureAlgorithm: sigAlg, signature };
}

/** Parses a bare SignedData. `code` is the caller's error code for malformed structures. */
export function parseSignedData(der: Uint8Array, what: string, code: string): ParsedSignedData {
  const root = parseDer(der, what, code);
  const f = childrenOf(root);
  if (!(root instanceof asn1js.Sequence) || f.length < 4) throw inputError(code, `${what}: SignedData is not a SEQUENCE of at least 4 fields`);
  const version = integerValue(f[0], `${what}: SignedData version`, code);
  if (!(f[1] instanceof asn1js.Set)) throw inputError(code, `${what}: digestAlgorithms is not a SET`);
  const encap = childrenOf(f[2]);
  const contentType = oidOf(encap[0]);
  if (!contentType) throw inputError(code, `${what}: encapsulated content has no content type`);
  let content: Buffer | undefined;
  if (encap[1] !== undefined) {
    if (!isContext(encap[1], 0) || childrenOf(encap[1]).length !== 1) throw inputError(code, `${what}: encapsulated content is not [0] EXPLICIT`);
    content = rawOf(childrenOf(encap[1])[0] as asn1js.AsnType);
  }
  const certificates: Certificate[] = [];
  let i = 3;
  if (isContext(f[i], 0)) {
    for (const c of childrenOf(f[i])) certificates.push(Certificate.fromDer(rawOf(c)));
    i++;
  }
  if (isContext(f[i], 1)) i++;
  const infos = f[i];
  if (!(infos instanceof asn1js.Set) || i !== f.length - 1) throw inputError(code, `${what}: signerInfos is missing or not last`);
  const signerInfos = childrenOf(infos).map((s) => parseSignerInfo(s, code));
  return { version, contentType, ...(content ? { content } : {}), certificates, signerInfos };
}

/** Parses a ContentInfo holding a SignedData. */
export function parseContentInfo(der: Uint8Array, what: string, code: string): ParsedSignedData {
  const root = parseDer(der, what, code);
  const [type, body] = childrenOf(root);
  if (oidOf(type) !== OID.signedData) throw inputError(code, `${what}: ContentInfo does not hold a SignedData (content type ${oidOf(type) ?? '?'})`);
  if (!isContext(body, 0) || childrenOf(body).length !== 1) throw inputError(code, `${what}: ContentInfo content is not [0] EXPLICIT`);
  return parseSignedData(rawOf(childrenOf(body)[0] as asn1js.AsnType), what, code);
}

export type SignerStatus =
  | { ok: true; signer: Certificate }
  | { ok: false; reason: 'no-signer-certificate' | 'digest-mismatch' | 'content-type-mismatch' | 'bad-signature' | 'unsupported-algorithm'; detail: string; signer?: Certificate };

/**
 * Checks one SignerInfo: the signer's certificate is included, the messageDigest attribute
 * (when there are signed attributes) equals the digest of `data`, and the signature verifies
 * with the certificate's key. Returns a status rather than throwing, so callers name the
 * failure in their own terms.
 */
export function checkSignerInfo(sd: ParsedSignedData, si: ParsedSignerInfo, data: Uint8Array): SignerStatus {
  const signer = sd.certificates.find((c) => {
    try {
      return issuerAndSerial(c).equals(seq(si.issuer, uint(Buffer.from(si.serial.length % 2 ? `0${si.serial}` : si.serial, 'hex'))));
    } catch {
      return false;
    }
  });
  if (!signer) return { ok: false, reason: 'no-signer-certificate', detail: `the signer's certificate (serial ${si.serial}) is not included` };
  const kind = SIGNATURE_OIDS[si.signatureAlgorithm];
  if (!kind) return { ok: false, reason: 'unsupported-algorithm', detail: `signature algorithm ${si.signatureAlgorithm} is not supported`, signer };
  let signed: Uint8Array = data;
  if (si.signedAttributesRaw) {
    const md = si.signedAttributes.get(OID.messageDigest);
    const want = digestOf(si.digest, data);
    const found = md?.length === 1 && md[0] ? contentOf(md[0]) : undefined;
    if (!found || !found.equals(want)) {
      return { ok: false, reason: 'digest-mismatch', detail: `messageDigest ${found?.toString('hex') ?? '(absent)'} is not the ${si.digest} of the content, ${want.toString('hex')}`, signer };
    }
    const ct = si.signedAttributes.get(OID.contentType);
    if (!ct || ct.length !== 1 || !ct[0]?.equals(oid(sd.contentType))) {
      return { ok: false, reason: 'content-type-mismatch', detail: `the contentType attribute does not name ${sd.contentType}`, signer };
    }
    signed = Buffer.concat([Buffer.from([0x31]), si.signedAttributesRaw.subarray(1)]);
  }
  const ok = verifyWith({ kind, hash: si.digest, oid: si.signatureAlgorithm }, signed, si.signature, signer.publicKey);
  if (!ok) return { ok: false, reason: 'bad-signature', detail: `the ${kind === 'ecdsa' ? 'ECDSA' : 'RSA'}/${si.digest} signature does not verify with ${signer.subjectCn || signer.subject}`, signer };
  return { ok: true, signer };
}

/**
 * Is `leaf` trusted by one of `anchors`, as UEFI firmware decides it (EDK2 Pkcs7Verify with
 * a partial chain): the leaf itself is an anchor, or a chain through `intermediates` reaches
 * a certificate that is an anchor or is signed by one. Validity periods are not checked,
 * as firmware has no trusted clock. Returns the anchor and the path, or undefined.
 */
export function trustPath(leaf: Certificate, intermediates: readonly Certificate[], anchors: readonly Certificate[]): { anchor: Certificate; path: Certificate[] } | undefined {
  const path: Certificate[] = [];
  let current: Certificate | undefined = leaf;
  for (let depth = 0; current && depth < 8; depth++) {
    const cur: Certificate = current;
    path.push(cur);
    const same = anchors.find((a) => a.sha256 === cur.sha256);
    if (same) return { anchor: same, path };
    const issuer = anchors.find((a) => a.subject === cur.issuer && verifyWith(cur.signed.algorithm, cur.signed.tbs, cur.signed.signature, a.publicKey));
    if (issuer) return { anchor: issuer, path: [...path, issuer] };
    current = intermediates.find((c) => c.sha256 !== cur.sha256 && !path.includes(c) && c.subject === cur.issuer && verifyWith(cur.signed.algorithm, cur.signed.tbs, cur.signed.signature, c.publicKey));
  }
  return undefined;
}

export function digestOid(name: DigestName): string {
  return DIGEST_OIDS[name];
}
