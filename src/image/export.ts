import { deflateSync, inflateSync } from 'node:zlib';
import { inputError } from '../errors.js';
import type { Certificate } from '../pki/certificate.js';
import { formatGuid, guidBytes } from './guid.js';
import { SECURE_BOOT_ATTRIBUTES, EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS, variableGuid, encodeEfiTime, efiTime } from './auth.js';
import { parseSignatureDatabase } from './esl.js';

/**
 * Cloud exports of the owner's Secure Boot variables (issue 7, docs/image.md "Cloud exports").
 *
 * - GCP: DER X.509 files for `gcloud compute images create --platform-key-file
 *   --key-exchange-key-file --signature-database-file --forbidden-database-file`.
 * - Azure: `securityProfile.uefiSettings` of a gallery image version (Compute API
 *   2023-07-03+): `signatureTemplateNames` and `additionalSignatures` {pk, kek, db, dbx},
 *   each a UefiKey {type: "x509" | "sha256", value: [base64]}.
 * - AWS: the `--uefi-data` blob of `register-image`, as python-uefivars' `aws.py` writes it.
 */

export interface ExportInputs {
  PK: Certificate;
  KEK: Certificate[];
  db: Certificate[];
  /** dbx entries: certificates and SHA-256 hashes (optional). */
  dbx?: { certificates: readonly Certificate[]; hashes: readonly Buffer[] };
}

// ---------------------------------------------------------------- GCP

export interface GcpFile {
  name: string;
  data: Buffer;
  flag: '--platform-key-file' | '--key-exchange-key-file' | '--signature-database-file' | '--forbidden-database-file';
}

/**
 * One DER certificate per file; the list flags take comma-separated paths. dbx hashes have no
 * X.509 form: they go into `dbx-hashes.bin`, a binary EFI_SIGNATURE_LIST (the API's
 * FileContentBuffer fileType BIN), passed to --forbidden-database-file with the certificates.
 */
export function gcpFiles(x: ExportInputs, owner: string): GcpFile[] {
  const files: GcpFile[] = [{ name: 'PK.cer', data: x.PK.der, flag: '--platform-key-file' }];
  x.KEK.forEach((c, i) => files.push({ name: `KEK${x.KEK.length > 1 ? `-${i + 1}` : ''}.cer`, data: c.der, flag: '--key-exchange-key-file' }));
  x.db.forEach((c, i) => files.push({ name: `db${x.db.length > 1 ? `-${i + 1}` : ''}.cer`, data: c.der, flag: '--signature-database-file' }));
  (x.dbx?.certificates ?? []).forEach((c, i) => files.push({ name: `dbx-${i + 1}.cer`, data: c.der, flag: '--forbidden-database-file' }));
  if (x.dbx && x.dbx.hashes.length > 0) files.push({ name: 'dbx-hashes.bin', data: sha256Esl(x.dbx.hashes, owner), flag: '--forbidden-database-file' });
  return files;
}

function sha256Esl(hashes: readonly Buffer[], owner: string): Buffer {
  const o = guidBytes(owner, 'owner GUID');
  const head = Buffer.alloc(28);
  guidBytes('c1c41626-504c-4092-aca9-41f936934328').copy(head, 0);
  head.writeUInt32LE(28 + hashes.length * 48, 16);
  head.writeUInt32LE(0, 20);
  head.writeUInt32LE(48, 24);
  return Buffer.concat([head, ...hashes.map((h) => Buffer.concat([o, h]))]);
}

function shellQuote(s: string): string {
  return /^[\w./,=:@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The example command line, files relative to `dir`. */
export function gcpCommand(files: readonly GcpFile[], dir: string, image = 'IMAGE_NAME'): string {
  const flags = new Map<string, string[]>();
  for (const f of files) flags.set(f.flag, [...(flags.get(f.flag) ?? []), `${dir.replace(/\/$/, '')}/${f.name}`]);
  const parts = [`gcloud compute images create ${image}`, '--source-disk=SOURCE_DISK --source-disk-zone=ZONE', '--guest-os-features=UEFI_COMPATIBLE'];
  for (const [flag, paths] of flags) parts.push(`${flag}=${shellQuote(paths.join(','))}`);
  return parts.join(' \\\n  ');
}

// ---------------------------------------------------------------- Azure

export const AZURE_SIGNATURE_TEMPLATES = ['NoSignatureTemplate', 'MicrosoftUefiCertificateAuthorityTemplate', 'MicrosoftWindowsTemplate'] as const;
export type AzureSignatureTemplate = (typeof AZURE_SIGNATURE_TEMPLATES)[number];

export interface AzureUefiKey {
  type: 'x509' | 'sha256';
  value: string[];
}

export interface AzureUefiSettings {
  signatureTemplateNames: AzureSignatureTemplate[];
  additionalSignatures: { pk: AzureUefiKey; kek: AzureUefiKey[]; db: AzureUefiKey[]; dbx?: AzureUefiKey[] };
}

const b64 = (b: Buffer): string => b.toString('base64');

/** `properties.securityProfile.uefiSettings` of a gallery image version. */
export function azureUefiSettings(x: ExportInputs, templates: readonly string[] = ['NoSignatureTemplate']): AzureUefiSettings {
  for (const t of templates) {
    if (!(AZURE_SIGNATURE_TEMPLATES as readonly string[]).includes(t)) throw inputError('USAGE', `unknown Azure signature template "${t}": one of ${AZURE_SIGNATURE_TEMPLATES.join(', ')}`);
  }
  if (templates.length === 0) throw inputError('USAGE', 'give at least one Azure signature template (NoSignatureTemplate for only your own keys)');
  if (templates.includes('NoSignatureTemplate') && templates.length > 1) throw inputError('USAGE', 'NoSignatureTemplate cannot be combined with the Microsoft templates');
  const dbx: AzureUefiKey[] = [];
  if (x.dbx && x.dbx.certificates.length > 0) dbx.push({ type: 'x509', value: x.dbx.certificates.map((c) => b64(c.der)) });
  if (x.dbx && x.dbx.hashes.length > 0) dbx.push({ type: 'sha256', value: x.dbx.hashes.map(b64) });
  return {
    signatureTemplateNames: [...templates] as AzureSignatureTemplate[],
    additionalSignatures: {
      pk: { type: 'x509', value: [b64(x.PK.der)] },
      kek: [{ type: 'x509', value: x.KEK.map((c) => b64(c.der)) }],
      db: [{ type: 'x509', value: x.db.map((c) => b64(c.der)) }],
      ...(dbx.length > 0 ? { dbx } : {}),
    },
  };
}

// ---------------------------------------------------------------- AWS

/** "AMZNUEFI" read as a little-endian u64, the blob's first 8 bytes. */
export const AWS_MAGIC = Buffer.from('AMZNUEFI', 'latin1');
/**
 * Adler-32 of python-uefivars' `UEFIVarStoreV0.dict` (the preset zlib dictionary of blob
 * version 0), as the zlib header of the published example `testdata/t02.aws` names it
 * (bytes 16..23 of that blob: 78 f9 6b b7 d9 f7).
 */
export const AWS_V0_DICT_ADLER32 = 0x6bb7d9f7;

export interface AwsVariable {
  name: string;
  guid: string;
  attributes: number;
  data: Buffer;
  /** 16-byte EFI_TIME, present when the attributes have TIME_BASED_AUTHENTICATED_WRITE_ACCESS. */
  timestamp?: Buffer;
  /** Present with the timestamp; python-uefivars keeps it as opaque bytes. */
  digest?: Buffer;
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as the `crc32c` Python module computes it. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = (CRC32C_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const x of data) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Checks that `dict` is the version-0 dictionary AWS and python-uefivars use. */
export function checkAwsDictionary(dict: Buffer): void {
  const a = adler32(dict);
  if (a !== AWS_V0_DICT_ADLER32) {
    throw inputError('AWS_BAD_DICTIONARY', `the zlib dictionary has Adler-32 0x${a.toString(16).padStart(8, '0')}, not 0x${AWS_V0_DICT_ADLER32.toString(16)}: it is not python-uefivars' UEFIVarStoreV0.dict (virt-firmware's aws/dict.v0)`);
  }
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** The uncompressed variable store: u64 count, then per variable name, data, GUID, attributes [, timestamp, digest]. */
export function encodeAwsVarStore(vars: readonly AwsVariable[]): Buffer {
  const out: Buffer[] = [u64(vars.length)];
  for (const v of vars) {
    const name = Buffer.from(v.name, 'utf8');
    out.push(u64(name.length), name, u64(v.data.length), v.data, guidBytes(v.guid, 'variable GUID'), u32(v.attributes));
    if (v.attributes & EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) {
      const ts = v.timestamp ?? Buffer.alloc(16);
      if (ts.length !== 16) throw inputError('USAGE', `variable ${v.name}: an EFI_TIME is 16 bytes, got ${ts.length}`);
      const digest = v.digest ?? Buffer.alloc(0);
      out.push(ts, u64(digest.length), digest);
    }
  }
  return Buffer.concat(out);
}

/** The `--uefi-data` blob, binary (base64 it for the AWS CLI): magic, CRC-32C, version 0, zlib stream. */
export function encodeAwsUefiData(vars: readonly AwsVariable[], dictionary: Buffer): Buffer {
  checkAwsDictionary(dictionary);
  const z = deflateSync(encodeAwsVarStore(vars), { level: 9, dictionary });
  const rest = Buffer.concat([u32(0), z]);
  return Buffer.concat([AWS_MAGIC, u32(crc32c(rest)), rest]);
}

function bad(msg: string): never {
  throw inputError('AWS_BAD_UEFI_DATA', msg);
}

/** Reads a blob (binary or base64 text) back into its variables, checking magic, CRC-32C and version. */
export function decodeAwsUefiData(input: Buffer, dictionary?: Buffer): AwsVariable[] {
  let blob = input;
  if (!blob.subarray(0, 8).equals(AWS_MAGIC)) blob = Buffer.from(input.toString('latin1').trim(), 'base64');
  if (blob.length < 16 || !blob.subarray(0, 8).equals(AWS_MAGIC)) bad('not an AWS UEFI variable store: no "AMZNUEFI" magic');
  const crc = blob.readUInt32LE(8);
  const rest = blob.subarray(12);
  if (crc32c(rest) !== crc) bad(`CRC-32C mismatch: the header says 0x${crc.toString(16)}, the data gives 0x${crc32c(rest).toString(16)}`);
  const version = blob.readUInt32LE(12);
  if (version !== 0) bad(`version ${version} is not supported (only 0)`);
  const z = blob.subarray(16);
  const fdict = z.length >= 6 && ((z[1] as number) & 0x20) !== 0;
  if (fdict) {
    const id = z.readUInt32BE(2);
    if (!dictionary) bad(`the zlib stream needs its preset dictionary (Adler-32 0x${id.toString(16)})`);
    if (adler32(dictionary) !== id) bad(`the zlib stream wants dictionary 0x${id.toString(16)}, the one given is 0x${adler32(dictionary).toString(16)}`);
  }
  let raw: Buffer;
  try {
    raw = fdict && dictionary ? inflateSync(z, { dictionary }) : inflateSync(z);
  } catch (e) {
    bad(`the zlib stream does not inflate: ${(e as Error).message}`);
  }
  let off = 0;
  const take = (n: number | bigint): Buffer => {
    const len = Number(n);
    if (!Number.isSafeInteger(len) || off + len > raw.length) bad(`truncated variable store at offset ${off}`);
    const b = raw.subarray(off, off + len);
    off += len;
    return b;
  };
  const read64 = (): bigint => take(8).readBigUInt64LE();
  const count = read64();
  if (count > 100_000n) bad(`implausible variable count ${count}`);
  const vars: AwsVariable[] = [];
  for (let i = 0n; i < count; i++) {
    const name = take(read64()).toString('utf8');
    const data = Buffer.from(take(read64()));
    const guid = formatGuid(take(16));
    const attributes = take(4).readUInt32LE();
    const v: AwsVariable = { name, guid, attributes, data };
    if (attributes & EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) {
      v.timestamp = Buffer.from(take(16));
      v.digest = Buffer.from(take(read64()));
    }
    vars.push(v);
  }
  if (off !== raw.length) bad(`${raw.length - off} bytes after the last variable`);
  return vars;
}

/** PK, KEK, db (and dbx) as authenticated variables with the values given (ESLs). */
export function awsSecureBootVariables(values: { PK: Buffer; KEK: Buffer; db: Buffer; dbx?: Buffer }, at: Date): AwsVariable[] {
  const timestamp = encodeEfiTime(efiTime(at));
  const out: AwsVariable[] = [];
  for (const name of ['PK', 'KEK', 'db', 'dbx'] as const) {
    const data = values[name];
    if (!data) continue;
    if (data.length > 0) parseSignatureDatabase(data);
    out.push({ name, guid: variableGuid(name), attributes: SECURE_BOOT_ATTRIBUTES, data, timestamp, digest: Buffer.alloc(0) });
  }
  return out;
}
