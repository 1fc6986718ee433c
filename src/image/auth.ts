import { ByteReader } from '../bytes/reader.js';
import { ByteWriter } from '../bytes/writer.js';
import { inputError, verifyError } from '../errors.js';
import { fail, pass, type Check } from '../check.js';
import type { Certificate } from '../pki/certificate.js';
import { OID } from './der.js';
import { buildSignedData, checkSignerInfo, parseSignedData, trustPath, type ParsedSignedData, type Signer } from './cms.js';
import { EFI_CERT_TYPE_PKCS7, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, guidBytes, normaliseGuid, readGuid } from './guid.js';

/**
 * Time-based authenticated variables (UEFI 2.10 8.2.2): a `.auth` file is
 * EFI_VARIABLE_AUTHENTICATION_2 (EFI_TIME, then WIN_CERTIFICATE_UEFI_GUID holding a bare
 * PKCS#7 SignedData) followed by the new variable data. The signature is over
 * name (UTF-16LE, no NUL) || vendor GUID || attributes || EFI_TIME || data, SHA-256, with
 * no signed attributes, as `sign-efi-sig-list` makes it and firmware checks it.
 */

export const EFI_VARIABLE_NON_VOLATILE = 0x01;
export const EFI_VARIABLE_BOOTSERVICE_ACCESS = 0x02;
export const EFI_VARIABLE_RUNTIME_ACCESS = 0x04;
export const EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20;
export const EFI_VARIABLE_APPEND_WRITE = 0x40;
/** NV | BS | RT | time-based authenticated write: 0x27. */
export const SECURE_BOOT_ATTRIBUTES = 0x27;

const WIN_CERT_TYPE_EFI_GUID = 0x0ef1;
const WIN_CERT_REVISION = 0x0200;
const CODE = 'SECUREBOOT_BAD_AUTH';

export type SecureBootVariable = 'PK' | 'KEK' | 'db' | 'dbx';
export const SECURE_BOOT_VARIABLES: readonly SecureBootVariable[] = ['PK', 'KEK', 'db', 'dbx'];

/** PK and KEK live under EFI_GLOBAL_VARIABLE; db, dbx (and dbt, dbr) under the image security database GUID. */
export function variableGuid(name: string): string {
  if (name === 'PK' || name === 'KEK') return EFI_GLOBAL_VARIABLE;
  if (name === 'db' || name === 'dbx' || name === 'dbt' || name === 'dbr') return EFI_IMAGE_SECURITY_DATABASE;
  throw inputError('SECUREBOOT_UNKNOWN_VARIABLE', `variable ${name} is not PK, KEK, db, dbx, dbt or dbr: pass its vendor GUID`);
}

/** EFI_TIME as a time-based authenticated variable carries it: the rest must be zero. */
export interface EfiTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export function efiTime(d: Date): EfiTime {
  if (Number.isNaN(d.getTime())) throw inputError('BAD_TIME', 'the timestamp is not a valid time');
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
}

export function efiTimeToDate(t: EfiTime): Date {
  return new Date(Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second));
}

export function encodeEfiTime(t: EfiTime): Buffer {
  if (t.year < 1900 || t.year > 9999) throw inputError('BAD_TIME', `EFI_TIME year ${t.year} is out of range 1900-9999`);
  return new ByteWriter().u16le(t.year).u8(t.month).u8(t.day).u8(t.hour).u8(t.minute).u8(t.second).u8(0).u32le(0).u16le(0).u8(0).u8(0).toBuffer();
}

function readEfiTime(r: ByteReader): EfiTime {
  const t = { year: r.u16le(), month: r.u8(), day: r.u8(), hour: r.u8(), minute: r.u8(), second: r.u8() };
  r.zeros(1, 'Pad1').zeros(4, 'Nanosecond').zeros(2, 'TimeZone').zeros(1, 'Daylight').zeros(1, 'Pad2');
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > 31 || t.hour > 23 || t.minute > 59 || t.second > 59) {
    throw inputError(CODE, `EFI_TIME ${t.year}-${t.month}-${t.day} ${t.hour}:${t.minute}:${t.second} is not a valid time`);
  }
  return t;
}

export interface AuthTarget {
  /** Variable name (PK, KEK, db, dbx, ...). */
  name: string;
  /** Vendor GUID; defaults to the one UEFI defines for the name. */
  vendorGuid?: string;
  /** Append to the current value (EFI_VARIABLE_APPEND_WRITE) instead of replacing it. */
  append?: boolean;
  /** Attributes, overriding 0x27 (0x67 when appending). */
  attributes?: number;
}

function attributesOf(t: AuthTarget): number {
  return t.attributes ?? SECURE_BOOT_ATTRIBUTES | (t.append ? EFI_VARIABLE_APPEND_WRITE : 0);
}

/** The exact bytes the signature covers (what `sign-efi-sig-list -o` writes). */
export function authSignedBytes(target: AuthTarget, timestamp: EfiTime, data: Uint8Array): Buffer {
  if (target.name.length === 0) throw inputError('USAGE', 'the variable name is empty');
  return new ByteWriter()
    .bytes(Buffer.from(target.name, 'utf16le'))
    .bytes(guidBytes(target.vendorGuid ?? variableGuid(target.name), 'vendor GUID'))
    .u32le(attributesOf(target))
    .bytes(encodeEfiTime(timestamp))
    .bytes(data)
    .toBuffer();
}

/** Builds a `.auth` file: EFI_VARIABLE_AUTHENTICATION_2 || data. */
export function buildAuthVariable(target: AuthTarget, timestamp: Date, data: Uint8Array, signer: Signer): Buffer {
  const t = efiTime(timestamp);
  const tbs = authSignedBytes(target, t, data);
  const pkcs7 = buildSignedData({ signer, contentType: OID.data, signedBytes: tbs });
  return new ByteWriter()
    .bytes(encodeEfiTime(t))
    .u32le(24 + pkcs7.length)
    .u16le(WIN_CERT_REVISION)
    .u16le(WIN_CERT_TYPE_EFI_GUID)
    .bytes(guidBytes(EFI_CERT_TYPE_PKCS7))
    .bytes(pkcs7)
    .bytes(data)
    .toBuffer();
}

export interface ParsedAuthVariable {
  timestamp: EfiTime;
  /** The SignedData DER as stored. */
  pkcs7: Buffer;
  signedData: ParsedSignedData;
  /** The variable data that follows the authentication header (an ESL for PK, KEK, db, dbx). */
  data: Buffer;
}

export function parseAuthVariable(buf: Uint8Array): ParsedAuthVariable {
  const r = new ByteReader(buf, 'EFI_VARIABLE_AUTHENTICATION_2');
  const timestamp = readEfiTime(r);
  const length = r.u32le();
  const revision = r.u16le();
  const type = r.u16le();
  if (revision !== WIN_CERT_REVISION) throw inputError(CODE, `WIN_CERTIFICATE revision is 0x${revision.toString(16)}, not 0x0200`);
  if (type !== WIN_CERT_TYPE_EFI_GUID) throw inputError(CODE, `WIN_CERTIFICATE type is 0x${type.toString(16)}, not WIN_CERT_TYPE_EFI_GUID (0x0ef1)`);
  const certType = readGuid(r);
  if (certType !== EFI_CERT_TYPE_PKCS7) throw inputError(CODE, `WIN_CERTIFICATE_UEFI_GUID CertType is ${certType}, not EFI_CERT_TYPE_PKCS7_GUID`);
  if (length < 24 || length - 24 > r.remaining) throw inputError(CODE, `WIN_CERTIFICATE length ${length} does not fit the ${r.remaining + 24} byte(s) after the timestamp`);
  const pkcs7 = r.bytes(length - 24);
  const data = r.bytes(r.remaining);
  const signedData = parseSignedData(pkcs7, '.auth PKCS#7', CODE);
  return { timestamp, pkcs7, signedData, data };
}

export interface VerifiedAuthVariable {
  parsed: ParsedAuthVariable;
  signer: Certificate;
  /** The trusted certificate the signer chains to, when trust anchors were given. */
  anchor?: Certificate;
  checks: Check[];
}

/**
 * Verifies a `.auth` for the variable it will be written to: structure, one signer with no
 * signed attributes (UEFI requires a bare signature for time-based variables), signature over
 * the signed bytes, and — when `trusted` is given (PK for KEK, KEK for db and dbx, PK for PK
 * itself once set) — that the signer is, or is issued by, one of those certificates.
 */
export function verifyAuthVariable(buf: Uint8Array, target: AuthTarget, trusted?: readonly Certificate[]): VerifiedAuthVariable {
  const parsed = parseAuthVariable(buf);
  const checks: Check[] = [];
  const sd = parsed.signedData;
  const failWith = (c: Check): never => {
    checks.push(c);
    throw verifyError(c.code ?? 'SECUREBOOT_BAD_SIGNATURE', c.description, { checks });
  };
  const si = sd.signerInfos[0];
  if (sd.signerInfos.length !== 1 || !si) failWith(fail('auth.signers', 'SECUREBOOT_BAD_SIGNATURE', `the SignedData has ${sd.signerInfos.length} signers, not 1`));
  const info = si as NonNullable<typeof si>;
  if (sd.contentType !== OID.data || sd.content) failWith(fail('auth.content', 'SECUREBOOT_BAD_SIGNATURE', 'the SignedData is not a detached id-data signature'));
  if (info.digest !== 'sha256') failWith(fail('auth.digest', 'SECUREBOOT_BAD_SIGNATURE', `digest algorithm is ${info.digest}; UEFI requires SHA-256`));
  if (info.signedAttributesRaw) failWith(fail('auth.attributes', 'SECUREBOOT_BAD_SIGNATURE', 'the signature has signed attributes; a time-based authenticated variable must not'));
  const tbs = authSignedBytes(target, parsed.timestamp, parsed.data);
  const st = checkSignerInfo(sd, info, tbs);
  if (!st.ok) failWith(fail('auth.signature', 'SECUREBOOT_BAD_SIGNATURE', `${target.name}: ${st.detail}`));
  const signer = (st as { signer: Certificate }).signer;
  const vendor = normaliseGuid(target.vendorGuid ?? variableGuid(target.name));
  checks.push(pass('auth.signature', `PKCS#7 SHA-256 signature over ${target.name} (${vendor}), attributes 0x${attributesOf(target).toString(16)}, timestamp and ${parsed.data.length} data byte(s) verifies with ${signer.subjectCn || signer.subject}`));
  let anchor: Certificate | undefined;
  if (trusted) {
    const path = trustPath(signer, sd.certificates, trusted);
    if (!path) failWith(fail('auth.trust', 'SECUREBOOT_UNTRUSTED_SIGNER', `the signer ${signer.subjectCn || signer.subject} is not one of, nor issued by, the ${trusted.length} trusted certificate(s)`));
    anchor = path?.anchor;
    checks.push(pass('auth.trust', `signer chains to trusted ${anchor?.subjectCn || anchor?.subject}`));
  }
  return { parsed, signer, ...(anchor ? { anchor } : {}), checks };
}

