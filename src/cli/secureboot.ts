import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import type { Check } from '../check.js';
import { parseCertificates, type Certificate } from '../pki/certificate.js';
import { fromHex } from '../bytes/hex.js';
import {
  authenticodeHash,
  buildAuthVariable,
  checkSignatures,
  encodeSignatureDatabase,
  generateSecureBootKeys,
  keySetFiles,
  normaliseGuid,
  parseAuthVariable,
  parseSignatureDatabase,
  readAuthenticode,
  signPe,
  verifyAuthVariable,
  verifyAuthenticode,
  efiTimeToDate,
  variableGuid,
  SHIM_LOCK_GUID,
  type SignatureDbEntry,
  type SignatureDatabase,
  type Signer,
  gcpFiles,
  gcpCommand,
  azureUefiSettings,
  awsSecureBootVariables,
  encodeAwsUefiDataBase64,
  decodeAwsUefiData,
  AWS_MAGIC,
  type AwsVariable,
  type ExportInputs,
} from '../image/index.js';
import type { SignatureEntry } from '../evidence/eventlog/efi.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { readInput, parseTime, collect } from './files.js';

/** Loads a signing key and its certificate, checking that they belong together. */
export function loadSigner(keyPath: string, certPath: string): Signer {
  const certificate = parseCertificates(readInput(certPath, 'certificate'), certPath)[0] as Certificate;
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readInput(keyPath, 'private key'));
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw inputError('SIGNING_KEY_UNREADABLE', `${keyPath} is not an unencrypted PEM or DER private key`);
  }
  if (!certificate.publicKey.export({ type: 'spki', format: 'der' }).equals(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))) {
    throw inputError('SIGNING_KEY_MISMATCH', `${keyPath} is not the private key of ${certPath} (${certificate.subjectCn || certificate.subject})`);
  }
  return { certificate, privateKey };
}

/** What a file passed as a signature database holds: an ESL, a .auth (its ESL), or certificates. */
function loadDatabase(paths: readonly string[] | undefined, what: string): { db: SignatureDatabase; entries: SignatureEntry[] } {
  const certificates: Certificate[] = [];
  const hashes: Buffer[] = [];
  const entries: SignatureEntry[] = [];
  for (const p of paths ?? []) {
    const data = readInput(p, `${what} file`);
    let list: SignatureEntry[];
    if (data[0] === 0x30 || data.subarray(0, 64).toString('latin1').includes('-----BEGIN')) {
      const certs = parseCertificates(data, p);
      certificates.push(...certs);
      entries.push(...certs.map((c) => ({ owner: '(file)', kind: 'x509' as const, subject: c.subjectCn || c.subject, sha256: c.sha256 })));
      continue;
    }
    if (looksLikeAuth(data)) list = parseSignatureDatabase(parseAuthVariable(data).data);
    else list = parseSignatureDatabase(data);
    for (const e of list) {
      entries.push(e);
      if (e.kind === 'x509' && e.der) certificates.push(...parseCertificates(e.der));
      if (e.kind === 'sha256') hashes.push(Buffer.from(e.sha256, 'hex'));
    }
  }
  return { db: { certificates, hashes }, entries };
}

/** EFI_VARIABLE_AUTHENTICATION_2: WIN_CERTIFICATE revision 0x0200 and type 0x0EF1 right after the 16-byte EFI_TIME. */
function looksLikeAuth(b: Buffer): boolean {
  return b.length >= 40 && b.readUInt16LE(20) === 0x0200 && b.readUInt16LE(22) === 0x0ef1;
}

/** The AWS blob, binary ("AMZNUEFI") or as the base64 text that the AWS CLI takes. */
function looksLikeAws(b: Buffer): boolean {
  return b.subarray(0, 8).equals(AWS_MAGIC) || b.subarray(0, 10).toString('latin1') === AWS_MAGIC.toString('base64').slice(0, 10);
}

/** The value of dbx for AWS: an ESL as given, the ESL inside a .auth, or certificates made into one list each. */
function dbxValue(path: string, owner: string): Buffer {
  const data = readInput(path, '--dbx file');
  if (looksLikeAuth(data)) return parseAuthVariable(data).data;
  if (data[0] === 0x30 || data.subarray(0, 64).toString('latin1').includes('-----BEGIN')) {
    return encodeSignatureDatabase(parseCertificates(data, path).map((certificate) => ({ kind: 'x509' as const, owner, certificate })));
  }
  parseSignatureDatabase(data);
  return data;
}

function shq(s: string): string {
  return /^[\w./,=:@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `aws ec2 register-image` for an EBS snapshot of the image, with the blob and UEFI boot. */
function awsCommand(path: string, arch: string, tpm: boolean): string {
  return [
    'aws ec2 register-image --name IMAGE_NAME',
    `--architecture ${arch} --boot-mode uefi${tpm ? ' --tpm-support v2.0' : ''} --ena-support`,
    `--root-device-name /dev/xvda --block-device-mappings 'DeviceName=/dev/xvda,Ebs={SnapshotId=SNAPSHOT_ID}'`,
    `--uefi-data ${shq(`file://${path}`)}`,
  ].join(' \\\n  ');
}

const SIGNATURE_VARIABLES: Record<string, string> = { PK: variableGuid('PK'), KEK: variableGuid('KEK'), db: variableGuid('db'), dbx: variableGuid('dbx') };

function awsVariableJson(v: AwsVariable): Record<string, unknown> {
  return { name: v.name, guid: v.guid, attributes: v.attributes, size: v.data.length, sha256: createHash('sha256').update(v.data).digest('hex'), ...(v.timestamp ? { timestamp: v.timestamp.toString('hex'), digest: v.digest?.toString('hex') } : {}) };
}

/** The signature database a PK/KEK/db/dbx variable holds, or why it cannot be read as one. */
function awsVariableEntries(v: AwsVariable): { entries?: SignatureEntry[]; error?: string } | undefined {
  if (SIGNATURE_VARIABLES[v.name] !== v.guid) return undefined;
  try {
    return { entries: parseSignatureDatabase(v.data) };
  } catch (e) {
    if (e instanceof CofferError) return { error: e.message };
    throw e;
  }
}

function entryJson(e: SignatureEntry): Record<string, unknown> {
  return { owner: e.owner, kind: e.kind, ...(e.type ? { type: e.type } : {}), ...(e.subject !== undefined ? { subject: e.subjectDn ?? e.subject, issuer: e.issuer } : {}), sha256: e.sha256 };
}

function entryLine(e: SignatureEntry): string {
  if (e.kind === 'x509') return `  X509    owner ${e.owner}  ${e.subject}  (issuer ${e.issuer}, sha256 ${e.sha256})`;
  if (e.kind === 'sha256') return `  SHA256  owner ${e.owner}  ${e.sha256}`;
  return `  ${e.type ?? 'OTHER'}  owner ${e.owner}  sha256 of data ${e.sha256}`;
}

function checkLine(c: Check): string {
  return `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(28)} ${c.description}`;
}

function writeOut(path: string, data: Buffer): void {
  try {
    writeFileSync(path, data);
  } catch {
    throw inputError('FILE_UNWRITABLE', `${path} cannot be written`);
  }
}

const VARIABLES = ['PK', 'KEK', 'db', 'dbx'];

function variableName(v: string): string {
  if (!VARIABLES.includes(v)) throw inputError('SECUREBOOT_UNKNOWN_VARIABLE', `variable must be one of ${VARIABLES.join(', ')}, got "${v}"`);
  return v;
}

export function registerSecureboot(program: Command, ctx: CliContext): void {
  const sb = program.command('secureboot').description('UEFI Secure Boot: owner keys, signature lists, authenticated variables, Authenticode');

  common(
    sb
      .command('keygen')
      .description('generate PK, KEK and db keys with self-signed certificates, their ESLs and enrolment .auth files')
      .requiredOption('--out <dir>', 'directory for the key files (created; existing key files are not overwritten)')
      .option('--bits <n>', 'RSA key size: 2048 or 3072', '2048')
      .option('--owner-guid <guid>', 'owner GUID (default: a new random GUID, written to GUID.txt)')
      .option('--subject-prefix <s>', 'certificate common names are "<prefix> PK", "<prefix> KEK", "<prefix> db"', 'Coffer')
      .option('--at <iso8601>', 'start of validity and timestamp of the .auth files (default: now)'),
  ).action(
    action(ctx, (f: { out: string; bits: string; ownerGuid?: string; subjectPrefix: string; at?: string; json?: boolean }) => {
      if (!/^\d+$/.test(f.bits)) throw inputError('USAGE', `--bits must be 2048 or 3072, got "${f.bits}"`);
      const at = parseTime(f.at);
      const names = ['GUID.txt', ...['PK', 'KEK', 'db'].flatMap((v) => ['key', 'crt', 'cer', 'esl', 'auth'].map((e) => `${v}.${e}`))];
      const clash = names.map((n) => join(f.out, n)).filter((p) => existsSync(p));
      if (clash.length > 0) throw inputError('FILE_EXISTS', `${clash[0]} already exists: keygen never overwrites keys (use an empty directory)`);
      const set = generateSecureBootKeys({ bits: Number(f.bits), subjectPrefix: f.subjectPrefix, at, ...(f.ownerGuid !== undefined ? { owner: f.ownerGuid } : {}) });
      const files = keySetFiles(set, at);
      try {
        mkdirSync(f.out, { recursive: true, mode: 0o700 });
      } catch {
        throw inputError('FILE_UNWRITABLE', `${f.out} cannot be created`);
      }
      for (const file of files) {
        try {
          writeFileSync(join(f.out, file.name), file.data, { mode: file.secret ? 0o600 : 0o644, flag: 'wx' });
        } catch {
          throw inputError('FILE_UNWRITABLE', `${join(f.out, file.name)} cannot be written`);
        }
      }
      const summary = (['PK', 'KEK', 'db'] as const).map((v) => ({ variable: v, subject: set[v].certificate.subject, sha256: set[v].certificate.sha256, key: join(f.out, `${v}.key`) }));
      if (f.json) ctx.io.out(toJson({ ok: true, owner: set.owner, bits: set.bits, dir: f.out, keys: summary, files: files.map((x) => x.name) }));
      else ctx.io.out(`Secure Boot keys in ${f.out} (RSA ${set.bits}, owner GUID ${set.owner})\n${summary.map((s) => `  ${s.variable.padEnd(4)} ${s.subject}  sha256 ${s.sha256}`).join('\n')}\n  private keys (*.key) are unencrypted, mode 0600: move them offline after use`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('esl')
      .description('write an EFI_SIGNATURE_LIST from certificates, SHA-256 hashes or PE images (their Authenticode hashes)')
      .requiredOption('--out <file>', 'output ESL file')
      .option('--owner-guid <guid>', 'owner GUID of the entries (required with --cert)')
      .option('--cert <file>', 'X.509 certificate, PEM or DER (repeatable)', collect)
      .option('--hash <hex>', 'SHA-256 hash (repeatable)', collect)
      .option('--image <file>', 'PE image whose Authenticode SHA-256 goes in (repeatable)', collect),
  ).action(
    action(ctx, (f: { out: string; ownerGuid?: string; cert?: string[]; hash?: string[]; image?: string[]; json?: boolean }) => {
      const entries: SignatureDbEntry[] = [];
      if (f.cert && f.ownerGuid === undefined) throw inputError('USAGE', '--cert needs --owner-guid (the GUID of the key owner, e.g. from GUID.txt)');
      const owner = f.ownerGuid !== undefined ? normaliseGuid(f.ownerGuid, '--owner-guid') : SHIM_LOCK_GUID;
      for (const c of f.cert ?? []) for (const certificate of parseCertificates(readInput(c, 'certificate'), c)) entries.push({ kind: 'x509', owner, certificate });
      for (const h of f.hash ?? []) {
        const b = fromHex(h, '--hash');
        if (b.length !== 32) throw inputError('BAD_HEX', `--hash must be 32 bytes (64 hex digits), got ${b.length}`);
        entries.push({ kind: 'sha256', owner, hash: b });
      }
      for (const i of f.image ?? []) entries.push({ kind: 'sha256', owner, hash: authenticodeHash(readInput(i, 'PE image')) });
      if (entries.length === 0) throw inputError('USAGE', 'give at least one --cert, --hash or --image');
      const esl = encodeSignatureDatabase(entries);
      writeOut(f.out, esl);
      const parsed = parseSignatureDatabase(esl);
      if (f.json) ctx.io.out(toJson({ ok: true, out: f.out, size: esl.length, entries: parsed.map(entryJson) }));
      else ctx.io.out(`wrote ${f.out} (${esl.length} bytes, ${parsed.length} entr${parsed.length === 1 ? 'y' : 'ies'})\n${parsed.map(entryLine).join('\n')}`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('auth')
      .description('sign an ESL as a time-based authenticated variable (.auth) for PK, KEK, db or dbx')
      .argument('<variable>', 'PK, KEK, db or dbx')
      .argument('<esl>', 'the new value (an EFI_SIGNATURE_LIST; an empty file deletes PK)')
      .requiredOption('--key <file>', 'private key of the signer (PK for PK and KEK; KEK for db and dbx)')
      .requiredOption('--cert <file>', "the signer's certificate")
      .requiredOption('--out <file>', 'output .auth file')
      .option('--append', 'append to the variable (EFI_VARIABLE_APPEND_WRITE) instead of replacing it')
      .option('--timestamp <iso8601>', 'EFI_TIME of the update, UTC (default: now); must be later than the current value for a replace'),
  ).action(
    action(ctx, (variable: string, eslPath: string, f: { key: string; cert: string; out: string; append?: boolean; timestamp?: string; json?: boolean }) => {
      const name = variableName(variable);
      const esl = readInput(eslPath, 'ESL');
      if (esl.length > 0) parseSignatureDatabase(esl);
      const signer = loadSigner(f.key, f.cert);
      const at = parseTime(f.timestamp);
      const auth = buildAuthVariable({ name, append: f.append ?? false }, at, esl, signer);
      writeOut(f.out, auth);
      if (f.json) ctx.io.out(toJson({ ok: true, out: f.out, variable: name, append: f.append ?? false, timestamp: at.toISOString(), signer: signer.certificate.subject, size: auth.length }));
      else ctx.io.out(`wrote ${f.out}: ${name} ${f.append ? 'append' : 'replace'}, ${at.toISOString()}, signed by ${signer.certificate.subjectCn || signer.certificate.subject}`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('verify-auth')
      .description('verify a .auth file for a variable, optionally against the certificates that must have signed it')
      .argument('<variable>', 'PK, KEK, db or dbx')
      .argument('<auth>', '.auth file')
      .option('--append', 'the .auth is an append (attributes 0x67)')
      .option('--trust <file>', 'trusted signer: certificates, ESL or .auth (PK for KEK, KEK for db/dbx; repeatable)', collect),
  ).action(
    action(ctx, (variable: string, authPath: string, f: { append?: boolean; trust?: string[]; json?: boolean }) => {
      const name = variableName(variable);
      const trusted = f.trust ? loadDatabase(f.trust, 'trust').db.certificates : undefined;
      const v = verifyAuthVariable(readInput(authPath, '.auth file'), { name, append: f.append ?? false }, trusted);
      const entries = v.parsed.data.length > 0 ? parseSignatureDatabase(v.parsed.data) : [];
      const ts = efiTimeToDate(v.parsed.timestamp).toISOString();
      if (f.json) ctx.io.out(toJson({ ok: true, variable: name, timestamp: ts, signer: v.signer.subject, anchor: v.anchor?.subject ?? null, checks: v.checks, entries: entries.map(entryJson) }));
      else ctx.io.out(`VERIFIED  ${name} .auth, ${ts}, signed by ${v.signer.subjectCn || v.signer.subject}${trusted ? '' : ' (signer NOT CHECKED against a trusted certificate: pass --trust)'}\n${v.checks.map(checkLine).join('\n')}\n${entries.map(entryLine).join('\n')}`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('show')
      .description('list the entries of an ESL, a .auth file or an AWS --uefi-data blob (decoded, not verified)')
      .argument('<file>', 'EFI_SIGNATURE_LIST, .auth, or AWS uefi-data (base64 or binary)'),
  ).action(
    action(ctx, (path: string, f: { json?: boolean }) => {
      const data = readInput(path, 'ESL or .auth file');
      if (looksLikeAws(data)) {
        const vars = decodeAwsUefiData(data);
        const listed = vars.map((v) => ({ v, db: awsVariableEntries(v) }));
        if (f.json) {
          ctx.io.out(toJson({ ok: true, verified: false, form: 'aws-uefi-data', variables: listed.map(({ v, db }) => ({ ...awsVariableJson(v), ...(db?.entries ? { entries: db.entries.map(entryJson) } : {}), ...(db?.error ? { eslError: db.error } : {}) })) }));
        } else {
          const lines = listed.map(({ v, db }) => `${v.name} ${v.guid} attributes 0x${v.attributes.toString(16)} ${v.data.length} bytes${db?.error ? ` (not an EFI_SIGNATURE_LIST: ${db.error})` : ''}${db?.entries ? `\n${db.entries.map(entryLine).join('\n')}` : ''}`);
          ctx.io.out(`AWS UEFI variable store (version 0, CRC-32C ok; NOT verified): ${vars.length} variable${vars.length === 1 ? '' : 's'}\n${lines.join('\n')}`);
        }
        return EXIT_OK;
      }
      const auth = looksLikeAuth(data) ? parseAuthVariable(data) : undefined;
      const esl = auth ? auth.data : data;
      const entries = esl.length > 0 ? parseSignatureDatabase(esl) : [];
      const head = auth ? { form: 'auth', timestamp: efiTimeToDate(auth.timestamp).toISOString(), signers: auth.signedData.certificates.map((c) => c.subject) } : { form: 'esl' };
      if (f.json) ctx.io.out(toJson({ ok: true, verified: false, ...head, entries: entries.map(entryJson) }));
      else ctx.io.out(`${auth ? `.auth (${head.timestamp}, certificates: ${auth.signedData.certificates.map((c) => c.subjectCn || c.subject).join(', ')}; NOT verified)` : 'EFI_SIGNATURE_LIST'}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}\n${entries.map(entryLine).join('\n')}`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('export')
      .description('write the files a cloud needs to install your PK, KEK, db (and dbx) into its VM firmware')
      .requiredOption('--cloud <cloud>', 'gcp, azure or aws')
      .requiredOption('--keys <dir>', 'directory written by `coffer secureboot keygen` (PK/KEK/db .cer, .esl, GUID.txt)')
      .requiredOption('--out <dir>', 'output directory (created)')
      .option('--dbx <file>', 'forbidden signatures: ESL, .auth or certificates')
      .option('--azure-template <name>', 'Azure signature template (repeatable; default NoSignatureTemplate)', collect)
      .option('--aws-architecture <arch>', 'AWS: x86_64 or arm64, for the printed register-image command', 'x86_64')
      .option('--no-aws-tpm', 'AWS: leave --tpm-support v2.0 (NitroTPM, needed for measured boot and attestation) out of the command')
      .option('--at <iso8601>', 'AWS: EFI_TIME stored with PK, KEK, db, dbx (default: all zero, as python-uefivars writes)'),
  ).action(
    action(ctx, (f: { cloud: string; keys: string; out: string; dbx?: string; azureTemplate?: string[]; awsArchitecture?: string; awsTpm?: boolean; at?: string; json?: boolean }) => {
      if (!['gcp', 'azure', 'aws'].includes(f.cloud)) throw inputError('USAGE', `--cloud must be gcp, azure or aws, got "${f.cloud}"`);
      const cert = (v: string): Certificate => parseCertificates(readInput(join(f.keys, `${v}.cer`), `${v} certificate`), join(f.keys, `${v}.cer`))[0] as Certificate;
      const owner = normaliseGuid(readInput(join(f.keys, 'GUID.txt'), 'owner GUID').toString('utf8'), 'GUID.txt');
      const dbxDb = f.dbx ? loadDatabase([f.dbx], '--dbx').db : undefined;
      const inputs: ExportInputs = { PK: cert('PK'), KEK: [cert('KEK')], db: [cert('db')], ...(dbxDb ? { dbx: { certificates: dbxDb.certificates, hashes: (dbxDb.hashes ?? []).map((h) => Buffer.from(h)) } } : {}) };
      try {
        mkdirSync(f.out, { recursive: true });
      } catch {
        throw inputError('FILE_UNWRITABLE', `${f.out} cannot be created`);
      }
      if (f.cloud === 'gcp') {
        const files = gcpFiles(inputs, owner);
        const command = gcpCommand(files, f.out);
        for (const file of files) writeOut(join(f.out, file.name), file.data);
        writeOut(join(f.out, 'gcloud.sh'), Buffer.from(`${command}\n`));
        if (f.json) ctx.io.out(toJson({ ok: true, cloud: 'gcp', out: f.out, files: files.map((x) => ({ name: x.name, flag: x.flag, size: x.data.length })), command }));
        else ctx.io.out(`GCP: ${files.length} files in ${f.out} (DER X.509${files.some((x) => x.name.endsWith('.bin')) ? '; dbx hashes as a binary ESL' : ''})\n${command}`);
        return EXIT_OK;
      }
      if (f.cloud === 'azure') {
        const settings = azureUefiSettings(inputs, f.azureTemplate ?? ['NoSignatureTemplate']);
        const doc = { securityProfile: { uefiSettings: settings } };
        const path = join(f.out, 'azure-uefi-settings.json');
        writeOut(path, Buffer.from(`${JSON.stringify(doc, null, 2)}\n`));
        if (f.json) ctx.io.out(toJson({ ok: true, cloud: 'azure', out: path, uefiSettings: settings }));
        else ctx.io.out(`Azure: wrote ${path}: properties.securityProfile.uefiSettings of a gallery image version (Compute API 2023-07-03 or later), templates ${settings.signatureTemplateNames.join(', ')}`);
        return EXIT_OK;
      }
      const esl = (v: string): Buffer => readInput(join(f.keys, `${v}.esl`), `${v} ESL`);
      const vars = awsSecureBootVariables({ PK: esl('PK'), KEK: esl('KEK'), db: esl('db'), ...(f.dbx ? { dbx: dbxValue(f.dbx, owner) } : {}) }, f.at !== undefined ? parseTime(f.at) : undefined);
      const arch = f.awsArchitecture ?? 'x86_64';
      if (!['x86_64', 'arm64'].includes(arch)) throw inputError('USAGE', `--aws-architecture must be x86_64 or arm64, got "${arch}"`);
      const text = encodeAwsUefiDataBase64(vars);
      const path = join(f.out, 'uefi-data.b64');
      // No trailing newline: the AWS CLI passes file:// contents verbatim as the parameter value.
      writeOut(path, Buffer.from(text, 'latin1'));
      const command = awsCommand(path, arch, f.awsTpm !== false);
      writeOut(join(f.out, 'aws.sh'), Buffer.from(`${command}\n`));
      const size = Buffer.from(text, 'base64').length;
      if (f.json) ctx.io.out(toJson({ ok: true, cloud: 'aws', out: path, size, base64Length: text.length, sha256: createHash('sha256').update(text).digest('hex'), variables: vars.map(awsVariableJson), command }));
      else ctx.io.out(`AWS: wrote ${path} (${size} bytes, ${text.length} as base64; ${vars.map((v) => v.name).join(', ')})\n${command}`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('hash')
      .description('print the Authenticode SHA-256 hash of a PE image (as sbsign and hash-to-efi-sig-list compute it)')
      .argument('<image>', 'PE/COFF image')
      .option('--no-pad', 'do not hash an unsigned image as zero-padded to 8 bytes (the strict Authenticode reading)'),
  ).action(
    action(ctx, (path: string, f: { pad: boolean; json?: boolean }) => {
      const h = authenticodeHash(readInput(path, 'PE image'), 'sha256', { pad: f.pad }).toString('hex');
      ctx.io.out(f.json ? toJson({ ok: true, sha256: h }) : h);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('sign')
      .description('sign a PE image (EFI application, UKI) with a db key')
      .argument('<image>', 'PE/COFF image')
      .requiredOption('--key <file>', 'db private key')
      .requiredOption('--cert <file>', 'db certificate')
      .requiredOption('--out <file>', 'signed image')
      .option('--replace', 'drop existing signatures instead of adding to them'),
  ).action(
    action(ctx, (path: string, f: { key: string; cert: string; out: string; replace?: boolean; json?: boolean }) => {
      const signer = loadSigner(f.key, f.cert);
      const signed = signPe(readInput(path, 'PE image'), signer, { replace: f.replace ?? false });
      writeOut(f.out, signed);
      const sigs = readAuthenticode(signed);
      const hash = sigs[sigs.length - 1]?.imageHash.toString('hex');
      if (f.json) ctx.io.out(toJson({ ok: true, out: f.out, sha256: hash, signatures: sigs.length, signer: signer.certificate.subject }));
      else ctx.io.out(`wrote ${f.out}: Authenticode SHA-256 ${hash}, signed by ${signer.certificate.subjectCn || signer.certificate.subject} (${sigs.length} signature${sigs.length === 1 ? '' : 's'})`);
      return EXIT_OK;
    }),
  );

  common(
    sb
      .command('verify')
      .description('verify a PE image against db (and dbx) as UEFI firmware does')
      .argument('<image>', 'PE/COFF image')
      .requiredOption('--db <file>', 'db: ESL, .auth or certificates (repeatable)', collect)
      .option('--dbx <file>', 'dbx: ESL, .auth or certificates (repeatable)', collect),
  ).action(
    action(ctx, (path: string, f: { db: string[]; dbx?: string[]; json?: boolean }) => {
      const image = readInput(path, 'PE image');
      const db = loadDatabase(f.db, 'db').db;
      const dbx = loadDatabase(f.dbx, 'dbx').db;
      try {
        const r = verifyAuthenticode(image, db, dbx);
        if (f.json) ctx.io.out(toJson({ ok: true, ...r }));
        else ctx.io.out(`VERIFIED  ${path}: allowed by ${r.authorizedBy === 'hash' ? 'its hash in db' : 'a signature chaining to db'} (Authenticode SHA-256 ${r.sha256})\n${r.checks.map(checkLine).join('\n')}`);
        return EXIT_OK;
      } catch (e) {
        if (f.json && e instanceof CofferError && e.kind === 'verify') {
          ctx.io.out(toJson({ ok: false, checks: e.details?.checks ?? [], signatures: e.details?.signatures ?? [], error: { code: e.code, message: e.message } }));
          return EXIT_FAILED;
        }
        throw e;
      }
    }),
  );

  common(
    sb
      .command('list')
      .description('list the Authenticode signatures of a PE image, each checked on its own (no trust decision)')
      .argument('<image>', 'PE/COFF image'),
  ).action(
    action(ctx, (path: string, f: { json?: boolean }) => {
      const image = readInput(path, 'PE image');
      const sigs = readAuthenticode(image);
      const verdicts = checkSignatures(image);
      const sha256 = authenticodeHash(image).toString('hex');
      const list = sigs.map((s, i) => ({ ...verdicts[i], certificates: s.signedData.certificates.map((c) => ({ subject: c.subject, issuer: c.issuer, sha256: c.sha256 })) }));
      if (f.json) ctx.io.out(toJson({ ok: true, sha256, signatures: list }));
      else
        ctx.io.out(
          `${path}: Authenticode SHA-256 ${sha256}, ${sigs.length} signature${sigs.length === 1 ? '' : 's'}\n` +
            list.map((s) => `  [${s.index}] ${s.ok ? 'valid  ' : 'INVALID'} signer ${s.signer ?? '?'} (issuer ${s.issuer ?? '?'}), ${s.digest}${s.ok ? '' : `: ${s.reason}`}\n${s.certificates.map((c) => `        cert ${c.subject}`).join('\n')}`).join('\n'),
        );
      return EXIT_OK;
    }),
  );
}
