import { createHash, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { inputError } from '../errors.js';
import { Certificate } from '../pki/certificate.js';
import * as asn1js from 'asn1js';
import { OID, algId, bitString, bool, childrenOf, explicit, isContext, octets, oid, parseDer, rawOf, seq, setOf, tlv, time, uint, utf8, type Der } from './der.js';
import type { Signer } from './cms.js';
import { x509SignatureList } from './esl.js';
import { buildAuthVariable, type SecureBootVariable } from './auth.js';
import { normaliseGuid, randomGuid } from './guid.js';

/**
 * The owner's Secure Boot keys: PK, KEK and db, each an RSA key with a self-signed X.509
 * certificate (the choice of sbctl, the Arch wiki and efitools' own documentation: firmware
 * checks a KEK or db update against the PK or KEK certificate as a trust anchor, and an
 * image against a db certificate, so no chain between them is needed). `issuer` allows the
 * other layout (KEK issued by PK, db by KEK) for callers that want it.
 */

export const KEY_SIZES = [2048, 3072] as const;
export type KeySize = (typeof KEY_SIZES)[number];

export interface CertificateRequest {
  commonName: string;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** Signs the certificate; absent: self-signed with `selfKey`. */
  issuer?: Signer;
  selfKey?: KeyObject;
  /** basicConstraints CA (these certificates are trust anchors). */
  ca?: boolean;
}

function name(commonName: string): Der {
  if (commonName.length === 0 || commonName.length > 64) throw inputError('USAGE', `a certificate common name must be 1 to 64 characters, got ${commonName.length}`);
  return seq(setOf(seq(oid(OID.commonName), utf8(commonName))));
}

function keyId(spki: Buffer): Buffer {
  // RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value.
  const bits = childrenOf(parseDer(spki, 'public key', 'PKI_BAD_KEY'))[1];
  if (!(bits instanceof asn1js.BitString)) throw inputError('PKI_BAD_KEY', 'SubjectPublicKeyInfo has no BIT STRING');
  return createHash('sha1').update(Buffer.from(bits.valueBlock.valueHexView)).digest();
}

function extension(type: string, critical: boolean, value: Der): Der {
  return seq(oid(type), ...(critical ? [bool(true)] : []), octets(value));
}

/** An X.509 v3 certificate, SHA-256 with RSA, DER. */
export function createCertificate(req: CertificateRequest): Certificate {
  const signingKey = req.issuer?.privateKey ?? req.selfKey;
  if (!signingKey) throw inputError('USAGE', 'a self-signed certificate needs its private key');
  const spki = req.publicKey.export({ type: 'spki', format: 'der' });
  const subject = name(req.commonName);
  const issuerName = req.issuer ? rawIssuerSubject(req.issuer.certificate) : subject;
  const issuerKeyId = keyId(req.issuer ? req.issuer.certificate.publicKey.export({ type: 'spki', format: 'der' }) : spki);
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  const ca = req.ca ?? true;
  const tbs = seq(
    explicit(0, uint(2)),
    uint(serial),
    algId(OID.sha256WithRSA),
    issuerName,
    seq(time(req.notBefore), time(req.notAfter)),
    subject,
    spki,
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq(...(ca ? [bool(true)] : []))),
        // digitalSignature, and keyCertSign + cRLSign for a CA: 0x86 (one unused bit) or 0x80.
        extension(OID.keyUsage, true, ca ? bitString(Buffer.from([0x86]), 1) : bitString(Buffer.from([0x80]), 7)),
        extension(OID.subjectKeyIdentifier, false, octets(keyId(spki))),
        extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, issuerKeyId))),
      ),
    ),
  );
  const signature = cryptoSign('sha256', tbs, signingKey);
  return Certificate.fromDer(seq(tbs, algId(OID.sha256WithRSA), bitString(signature)));
}

function rawIssuerSubject(cert: Certificate): Der {
  const fields = childrenOf(childrenOf(parseDer(cert.der, 'certificate', 'PKI_BAD_CERTIFICATE'))[0]);
  const subject = fields[isContext(fields[0], 0) ? 5 : 4];
  if (!subject) throw inputError('PKI_BAD_CERTIFICATE', 'certificate has no subject');
  return rawOf(subject);
}

export interface SecureBootKey extends Signer {
  variable: 'PK' | 'KEK' | 'db';
}

export interface SecureBootKeySet {
  owner: string;
  bits: KeySize;
  PK: SecureBootKey;
  KEK: SecureBootKey;
  db: SecureBootKey;
}

export interface KeygenOptions {
  bits?: number;
  owner?: string;
  /** Prefix of the certificates' common names: "<prefix> PK", "<prefix> KEK", "<prefix> db". */
  subjectPrefix?: string;
  /** Start of validity (the caller's clock). */
  at: Date;
  /** Validity in days (default 3650, as efitools' documentation uses). */
  days?: number;
}

export function generateSecureBootKeys(o: KeygenOptions): SecureBootKeySet {
  const bits = o.bits ?? 2048;
  if (!(KEY_SIZES as readonly number[]).includes(bits)) throw inputError('USAGE', `--bits must be 2048 or 3072 (what UEFI firmware accepts), got ${bits}`);
  const owner = o.owner === undefined ? randomGuid() : normaliseGuid(o.owner, '--owner-guid');
  const prefix = o.subjectPrefix ?? 'Coffer';
  const days = o.days ?? 3650;
  const notBefore = new Date(Math.floor(o.at.getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const make = (variable: 'PK' | 'KEK' | 'db'): SecureBootKey => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
    const certificate = createCertificate({ commonName: `${prefix} ${variable}`, publicKey, selfKey: privateKey, notBefore, notAfter });
    return { variable, privateKey, certificate };
  };
  return { owner, bits: bits as KeySize, PK: make('PK'), KEK: make('KEK'), db: make('db') };
}

export interface KeyFile {
  name: string;
  data: Buffer;
  /** Private keys: write with mode 0600. */
  secret: boolean;
}

const SIGNED_BY: Record<'PK' | 'KEK' | 'db', 'PK' | 'KEK'> = { PK: 'PK', KEK: 'PK', db: 'KEK' };

/**
 * The files of a key set, as sbctl and the Arch wiki lay them out: NAME.key (PKCS#8 PEM),
 * NAME.crt (PEM), NAME.cer (DER, what GCP and Azure take), NAME.esl (the variable value),
 * NAME.auth (signed for enrolment: PK by itself, KEK by PK, db by KEK), GUID.txt.
 */
export function keySetFiles(set: SecureBootKeySet, timestamp: Date): KeyFile[] {
  const files: KeyFile[] = [{ name: 'GUID.txt', data: Buffer.from(`${set.owner}\n`), secret: false }];
  for (const v of ['PK', 'KEK', 'db'] as const) {
    const k = set[v];
    const esl = x509SignatureList(k.certificate, set.owner);
    files.push(
      { name: `${v}.key`, data: Buffer.from(k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), secret: true },
      { name: `${v}.crt`, data: Buffer.from(k.certificate.toPem()), secret: false },
      { name: `${v}.cer`, data: k.certificate.der, secret: false },
      { name: `${v}.esl`, data: esl, secret: false },
      { name: `${v}.auth`, data: buildAuthVariable({ name: v as SecureBootVariable }, timestamp, esl, set[SIGNED_BY[v]]), secret: false },
    );
  }
  return files;
}
