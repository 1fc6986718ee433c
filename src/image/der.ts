import { ByteWriter } from '../bytes/writer.js';
import * as asn1js from 'asn1js';
import { fromBerSafe } from '../pki/ber.js';
import { inputError } from '../errors.js';

/**
 * A small DER encoder for the structures image/ writes (certificates, PKCS#7 SignedData,
 * Authenticode's SpcIndirectDataContent). It builds exact bytes, so a structure can embed
 * DER taken verbatim from elsewhere (a certificate, an issuer Name) without re-encoding it,
 * which is what makes signatures reproducible. Parsing goes through asn1js, as in pki/.
 */

export type Der = Buffer;

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Buffer.from([0x80 | out.length, ...out]);
}

export function tlv(tag: number, ...content: Uint8Array[]): Der {
  const w = new ByteWriter().u8(tag);
  const body = Buffer.concat(content.map((c) => Buffer.from(c)));
  return w.bytes(lengthBytes(body.length)).bytes(body).toBuffer();
}

export const seq = (...items: Uint8Array[]): Der => tlv(0x30, ...items);
/** A SET OF with its elements in DER order (sorted by encoding), as X.690 11.6 requires. */
export const setOf = (...items: Uint8Array[]): Der => tlv(0x31, ...[...items].map((i) => Buffer.from(i)).sort(Buffer.compare));
export const octets = (b: Uint8Array): Der => tlv(0x04, b);
export const nullDer = (): Der => Buffer.from([0x05, 0x00]);
/** [n] EXPLICIT (constructed, context-specific). */
export const explicit = (n: number, ...items: Uint8Array[]): Der => tlv(0xa0 | n, ...items);
export const bitString = (b: Uint8Array, unused = 0): Der => tlv(0x03, Buffer.from([unused]), b);
export const utf8 = (s: string): Der => tlv(0x0c, Buffer.from(s, 'utf8'));
export const bool = (v: boolean): Der => Buffer.from([0x01, 0x01, v ? 0xff : 0x00]);

/** INTEGER from unsigned big-endian magnitude (a leading zero added when the top bit is set). */
export function uint(b: Uint8Array | number): Der {
  const hex = typeof b === 'number' ? b.toString(16) : '';
  let m = typeof b === 'number' ? Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex') : Buffer.from(b);
  let i = 0;
  while (i < m.length - 1 && m[i] === 0) i++;
  m = m.subarray(i);
  if (m.length === 0) m = Buffer.from([0]);
  if ((m[0] ?? 0) & 0x80) m = Buffer.concat([Buffer.from([0]), m]);
  return tlv(0x02, m);
}

export function oid(dotted: string): Der {
  const parts = dotted.split('.').map((p) => BigInt(p));
  const [a, b, ...rest] = parts;
  if (a === undefined || b === undefined) throw inputError('DER_BAD_OID', `OID ${dotted} has fewer than two arcs`);
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...rest]) {
    const bytes: number[] = [];
    let v = arc;
    do {
      bytes.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < bytes.length - 1; i++) bytes[i] = (bytes[i] ?? 0) | 0x80;
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
export function time(d: Date): Der {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const body = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const y = d.getUTCFullYear();
  return y < 2050 ? tlv(0x17, Buffer.from(`${p(y % 100)}${body}`, 'latin1')) : tlv(0x18, Buffer.from(`${p(y, 4)}${body}`, 'latin1'));
}

export const OID = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  spcIndirectData: '1.3.6.1.4.1.311.2.1.4',
  spcPeImageData: '1.3.6.1.4.1.311.2.1.15',
  spcSpOpusInfo: '1.3.6.1.4.1.311.2.1.12',
} as const;

/** AlgorithmIdentifier with NULL parameters, as OpenSSL writes it for digests and RSA. */
export const algId = (dotted: string): Der => seq(oid(dotted), nullDer());

/** Parses exactly one DER element (no trailing bytes) with asn1js. */
export function parseDer(der: Uint8Array, what: string, code: string): asn1js.AsnType {
  const parsed = fromBerSafe(der);
  if (parsed.offset === -1) throw inputError(code, `${what} is not valid DER (${parsed.result.error || 'parse error'})`);
  if (parsed.offset !== der.byteLength) throw inputError(code, `${what} has ${der.byteLength - parsed.offset} trailing byte(s) after its DER structure`);
  return parsed.result;
}

/** The exact bytes an asn1js element was decoded from. */
export function rawOf(el: asn1js.AsnType): Buffer {
  return Buffer.from(el.valueBeforeDecodeView);
}

export function oidOf(el: asn1js.AsnType | undefined): string | undefined {
  return el instanceof asn1js.ObjectIdentifier ? el.valueBlock.toString() : undefined;
}

export function childrenOf(el: asn1js.AsnType | undefined): asn1js.AsnType[] {
  if (el instanceof asn1js.Constructed) return el.valueBlock.value;
  if (el instanceof asn1js.Sequence || el instanceof asn1js.Set) return el.valueBlock.value;
  return [];
}

export function isContext(el: asn1js.AsnType | undefined, n: number): boolean {
  return el !== undefined && el.idBlock.tagClass === 3 && el.idBlock.tagNumber === n;
}

/** The content bytes of a DER element: the bytes after its tag and length. */
export function contentOf(raw: Buffer): Buffer {
  const first = raw[1] ?? 0;
  const header = first < 0x80 ? 2 : 2 + (first & 0x7f);
  return raw.subarray(header);
}
