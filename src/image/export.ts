import { inputError } from '../errors.js';
import type { Certificate } from '../pki/certificate.js';
import { guidBytes } from './guid.js';

/**
 * Cloud exports of the owner's Secure Boot variables (issue 7, docs/image.md "Cloud exports").
 *
 * - GCP: DER X.509 files for `gcloud compute images create --platform-key-file
 *   --key-exchange-key-file --signature-database-file --forbidden-database-file`.
 * - Azure: `securityProfile.uefiSettings` of a gallery image version (Compute API
 *   2023-07-03+): `signatureTemplateNames` and `additionalSignatures` {pk, kek, db, dbx},
 *   each a UefiKey {type: "x509" | "sha256", value: [base64]}.
 * - AWS: the `--uefi-data` blob of `register-image`, as python-uefivars' `aws.py` writes it
 *   (aws-varstore.ts).
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
 * One DER certificate per file; the list flags take comma-separated paths. gcloud decides the
 * FileContentBuffer type from the name alone (Cloud SDK `image_utils.GetFileContentAndFileType`):
 * a path ending in `.bin` is sent as `BIN`, anything else must begin with the bytes 30 82 (a DER
 * SEQUENCE of 256 bytes or more) and is sent as `X509`, else gcloud stops with "File is not in
 * X509 binary DER form" (so PEM is refused). Certificates are therefore written as `.cer` DER
 * and checked for that prefix here. dbx hashes have no X.509 form: they go into
 * `dbx-hashes.bin`, a binary EFI_SIGNATURE_LIST of SHA-256 entries, sent as `BIN`.
 */
export function gcpFiles(x: ExportInputs, owner: string): GcpFile[] {
  const files: GcpFile[] = [];
  const cert = (name: string, c: Certificate, flag: GcpFile['flag']): void => {
    if (c.der[0] !== 0x30 || c.der[1] !== 0x82) {
      throw inputError('GCP_CERT_NOT_ACCEPTED', `${name} (${c.subjectCn || c.subject}) is ${c.der.length} bytes of DER: gcloud accepts only DER certificates that begin 30 82 (a body of 256 bytes or more), e.g. RSA 2048 or larger`);
    }
    files.push({ name, data: c.der, flag });
  };
  cert('PK.cer', x.PK, '--platform-key-file');
  x.KEK.forEach((c, i) => cert(`KEK${x.KEK.length > 1 ? `-${i + 1}` : ''}.cer`, c, '--key-exchange-key-file'));
  x.db.forEach((c, i) => cert(`db${x.db.length > 1 ? `-${i + 1}` : ''}.cer`, c, '--signature-database-file'));
  (x.dbx?.certificates ?? []).forEach((c, i) => cert(`dbx-${i + 1}.cer`, c, '--forbidden-database-file'));
  if (x.dbx && x.dbx.hashes.length > 0) files.push({ name: 'dbx-hashes.bin', data: sha256Esl(x.dbx.hashes, owner), flag: '--forbidden-database-file' });
  return files;
}

function sha256Esl(hashes: readonly Buffer[], owner: string): Buffer {
  const o = guidBytes(owner, 'owner GUID');
  // Each entry is sized 16 + 32 in the list header: another length would make a list no firmware reads.
  for (const h of hashes) if (h.length !== 32) throw inputError('USAGE', `a dbx SHA-256 hash is 32 bytes, got ${h.length}`);
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
  // The list flags split their value at commas: a comma in the directory would name other files.
  if (dir.includes(',')) throw inputError('USAGE', `the output directory "${dir}" has a comma, which gcloud's list flags would split at`);
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

// The AWS `--uefi-data` blob has its own module (format, dictionary, strict decoder).
export * from './aws-varstore.js';
