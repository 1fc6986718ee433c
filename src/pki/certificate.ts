import { X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import * as x509 from './x509.js';
import { CofferError, inputError } from '../errors.js';
import { sha256Hex, splitSignedDer, type SignedData } from './signature.js';

/** Extensions Coffer understands; a certificate with any other critical extension is refused. */
const KNOWN_CRITICAL = new Set([
  '2.5.29.15', // keyUsage
  '2.5.29.19', // basicConstraints
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
]);

const KEY_USAGE_CERT_SIGN = x509.KeyUsageFlags.keyCertSign;
const KEY_USAGE_CRL_SIGN = x509.KeyUsageFlags.cRLSign;

/**
 * An X.509 certificate parsed once: DER, subject and issuer, validity, public key, extensions.
 * Instances are immutable and cached by the SHA-256 of their DER (see `Certificate.fromDer`),
 * so a verifier that sees the same VCEK on every boot parses it once.
 */
export class Certificate {
  readonly der: Buffer;
  readonly sha256: string;
  readonly subject: string;
  readonly issuer: string;
  readonly subjectCn: string;
  readonly issuerCn: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Serial number, lowercase hex without leading zeros ("0" for zero). */
  readonly serial: string;
  readonly publicKey: KeyObject;
  readonly isCa: boolean;
  /** basicConstraints pathLenConstraint: how many CA certificates may follow below this one. */
  readonly pathLength: number | undefined;
  /** keyUsage bits, or undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  readonly signed: SignedData;
  private readonly extensions: ReadonlyMap<string, { critical: boolean; value: Buffer }>;

  private constructor(der: Buffer, sha256: string) {
    this.der = der;
    this.sha256 = sha256;
    try {
      const node = new NodeX509(der);
      const peculiar = new x509.X509Certificate(der);
      this.signed = splitSignedDer(der, 'certificate');
      this.subject = peculiar.subject;
      this.issuer = peculiar.issuer;
      this.subjectCn = peculiar.subjectName.getField('CN')[0] ?? '';
      this.issuerCn = peculiar.issuerName.getField('CN')[0] ?? '';
      this.notBefore = peculiar.notBefore;
      this.notAfter = peculiar.notAfter;
      this.serial = normaliseSerial(peculiar.serialNumber);
      // Node and @peculiar/x509 both parse parts of a certificate lazily: touch everything
      // here so that a damaged certificate fails now, as one CofferError.
      this.publicKey = node.publicKey;
      const exts = new Map<string, { critical: boolean; value: Buffer }>();
      for (const ext of peculiar.extensions) {
        if (exts.has(ext.type)) throw inputError('PKI_BAD_CERTIFICATE', `certificate ${this.subjectCn} repeats extension ${ext.type}`);
        exts.set(ext.type, { critical: ext.critical, value: Buffer.from(ext.value) });
      }
      this.extensions = exts;
      const bc = peculiar.getExtension(x509.BasicConstraintsExtension);
      this.isCa = bc?.ca ?? false;
      this.pathLength = bc?.ca ? bc.pathLength : undefined;
      const ku = peculiar.getExtension(x509.KeyUsagesExtension);
      this.keyUsage = ku ? ku.usages : undefined;
    } catch (e) {
      if (e instanceof CofferError && e.code !== 'PKI_BAD_DER') throw e;
      throw inputError('PKI_BAD_CERTIFICATE', `not a valid X.509 certificate (${e instanceof Error ? e.message.split('\n')[0] : 'parse error'})`);
    }
  }

  private static cache = new Map<string, Certificate>();
  private static readonly CACHE_MAX = 1024;

  /** Parses DER (cached by content hash; the cache is bounded). */
  static fromDer(der: Uint8Array): Certificate {
    const buf = Buffer.from(der);
    const h = sha256Hex(buf);
    const hit = Certificate.cache.get(h);
    if (hit) return hit;
    const cert = new Certificate(buf, h);
    if (Certificate.cache.size >= Certificate.CACHE_MAX) {
      const oldest = Certificate.cache.keys().next().value;
      if (oldest !== undefined) Certificate.cache.delete(oldest);
    }
    Certificate.cache.set(h, cert);
    return cert;
  }

  /** Raw value (the extnValue OCTET STRING's content) of an extension, if present. */
  extension(oid: string): Buffer | undefined {
    return this.extensions.get(oid)?.value;
  }

  /** Critical extensions this code does not understand (must be empty to trust the certificate). */
  unknownCriticalExtensions(): string[] {
    return [...this.extensions].filter(([oid, e]) => e.critical && !KNOWN_CRITICAL.has(oid)).map(([oid]) => oid);
  }

  get isSelfIssued(): boolean {
    return this.subject === this.issuer;
  }

  /** May this certificate sign other certificates (basicConstraints CA and, if present, keyCertSign)? */
  get canSignCertificates(): boolean {
    return this.isCa && (this.keyUsage === undefined || (this.keyUsage & KEY_USAGE_CERT_SIGN) !== 0);
  }

  get canSignCrls(): boolean {
    return this.keyUsage === undefined || (this.keyUsage & KEY_USAGE_CRL_SIGN) !== 0;
  }

  toPem(): string {
    const b64 = this.der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
    return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
  }
}

export function normaliseSerial(hex: string): string {
  const s = hex.toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/**
 * Reads one certificate or a bundle: PEM (any number of CERTIFICATE blocks) or a single DER.
 * Anything else is refused.
 */
export function parseCertificates(data: Uint8Array | string, what = 'certificate file'): Certificate[] {
  const text = typeof data === 'string' ? data : looksLikePem(data) ? Buffer.from(data).toString('latin1') : undefined;
  if (text !== undefined) {
    const out: Certificate[] = [];
    for (const m of text.matchAll(PEM_CERT)) {
      const body = (m[1] ?? '').replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw inputError('PKI_BAD_PEM', `${what}: a PEM block is not valid base64`);
      out.push(Certificate.fromDer(Buffer.from(body, 'base64')));
    }
    if (out.length === 0) throw inputError('PKI_BAD_PEM', `${what} holds no PEM certificate`);
    return out;
  }
  return [Certificate.fromDer(data as Uint8Array)];
}

function looksLikePem(b: Uint8Array): boolean {
  const head = Buffer.from(b.subarray(0, Math.min(b.length, 4096))).toString('latin1');
  return head.includes('-----BEGIN ');
}
