import { inflateSync } from 'node:zlib';
import { ByteReader } from '../bytes/reader.js';
import { ByteWriter } from '../bytes/writer.js';
import { CofferError, inputError } from '../errors.js';
import { formatGuid, guidBytes } from './guid.js';
import { SECURE_BOOT_ATTRIBUTES, EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS, variableGuid, encodeEfiTime, efiTime } from './auth.js';
import { parseSignatureDatabase } from './esl.js';
import { AWS_V0_DICT_ADLER32, adler32, awsV0Dictionary } from './aws-dict.js';
import { zlibDeflateLevel9 } from './zlib-deflate.js';

/**
 * The AWS UEFI variable store, version 0: the `--uefi-data` blob of `aws ec2 register-image`
 * (what awslabs/python-uefivars `-o aws` writes and `aws ec2 get-instance-uefi-data` returns).
 *
 *   u64 LE magic "AMZNUEFI" | u32 LE CRC-32C of everything after it | u32 LE version 0 |
 *   zlib stream (RFC 1950, level 9) with the preset dictionary of aws-dict.ts (DICTID 0x6bb7d9f7)
 *
 * and the zlib stream holds: u64 count, then per variable u64 length + UTF-8 name, u64 length +
 * data, the 16-byte GUID (EFI byte order), u32 attributes and, when the attributes have
 * TIME_BASED_AUTHENTICATED_WRITE_ACCESS, the 16-byte EFI_TIME and u64 length + digest.
 * The file handed to the AWS CLI is the base64 of the whole blob.
 */

export const AWS_MAGIC = Buffer.from('AMZNUEFI', 'latin1');
export const AWS_VERSION = 0;
/** python-uefivars' EMPTY_DIGEST: what it writes (and AWS returns) for "no digest". */
export const AWS_EMPTY_DIGEST = Buffer.alloc(32);
/** python-uefivars' EMPTY_TIMESTAMP. */
export const AWS_EMPTY_TIMESTAMP = Buffer.alloc(16);

// Limits well above any real variable store (OVMF's is 256 KiB in all), so that a crafted blob
// cannot make the decoder allocate without bound.
const MAX_STORE = 16 * 1024 * 1024;
const MAX_VARIABLES = 4096;
const MAX_NAME = 1024;

export interface AwsVariable {
  name: string;
  /** Vendor GUID, canonical lower-case text. */
  guid: string;
  attributes: number;
  data: Buffer;
  /** 16-byte EFI_TIME; present exactly when the attributes have TIME_BASED_AUTHENTICATED_WRITE_ACCESS. */
  timestamp?: Buffer;
  /** Opaque to python-uefivars and to us; present exactly when `timestamp` is. */
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

/** CRC-32C (Castagnoli, reflected, init and xor-out 0xffffffff), as google_crc32c computes it. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = (CRC32C_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function bad(msg: string): never {
  throw inputError('AWS_BAD_UEFI_DATA', msg);
}

function isAuthenticated(attributes: number): boolean {
  return (attributes & EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) !== 0;
}

/** The uncompressed variable store (python-uefivars `AWSUEFIVarStore.__bytes__` before zlib). */
export function encodeAwsVarStore(vars: readonly AwsVariable[]): Buffer {
  if (vars.length > MAX_VARIABLES) throw inputError('USAGE', `at most ${MAX_VARIABLES} variables, got ${vars.length}`);
  const w = new ByteWriter().u64le(BigInt(vars.length));
  for (const v of vars) {
    const shown = unprintable(v.name);
    if (shown !== undefined) throw inputError('USAGE', `variable name "${shown}" has a control, format, private-use or lone surrogate character`);
    const name = Buffer.from(v.name, 'utf8');
    if (name.length === 0 || name.length > MAX_NAME) throw inputError('USAGE', `variable name "${v.name}" must be 1 to ${MAX_NAME} bytes of UTF-8`);
    if (!Number.isInteger(v.attributes) || v.attributes < 0 || v.attributes > 0xffffffff) throw inputError('USAGE', `variable ${v.name}: attributes must be a u32`);
    w.u64le(BigInt(name.length)).bytes(name).u64le(BigInt(v.data.length)).bytes(v.data).bytes(guidBytes(v.guid, `GUID of variable ${v.name}`)).u32le(v.attributes);
    if (isAuthenticated(v.attributes)) {
      const ts = v.timestamp ?? AWS_EMPTY_TIMESTAMP;
      if (ts.length !== 16) throw inputError('USAGE', `variable ${v.name}: an EFI_TIME is 16 bytes, got ${ts.length}`);
      const digest = v.digest ?? AWS_EMPTY_DIGEST;
      w.bytes(ts).u64le(BigInt(digest.length)).bytes(digest);
    } else if (v.timestamp !== undefined || v.digest !== undefined) {
      throw inputError('USAGE', `variable ${v.name}: a timestamp or digest needs attribute TIME_BASED_AUTHENTICATED_WRITE_ACCESS (0x20)`);
    }
  }
  return w.toBuffer();
}

/**
 * Frames an already compressed zlib stream: magic, CRC-32C of version and stream, version.
 * Split out so that a test can frame a stream from another compressor (python's zlib).
 */
export function frameAwsUefiData(zlibStream: Buffer): Buffer {
  const rest = new ByteWriter().u32le(AWS_VERSION).bytes(zlibStream).toBuffer();
  return new ByteWriter().bytes(AWS_MAGIC).u32le(crc32c(rest)).bytes(rest).toBuffer();
}

/**
 * The binary blob (base64 it for the AWS CLI), byte-identical to python-uefivars' for the same
 * variables: its zlib stream is compressed at level 9 against the v0 dictionary by our port of
 * stock zlib's deflate (zlib-deflate.ts), not by Node's zlib, which is Chromium's fork and
 * chooses other matches at level 9 (valid, but different bytes).
 */
export function encodeAwsUefiData(vars: readonly AwsVariable[]): Buffer {
  return frameAwsUefiData(zlibDeflateLevel9(encodeAwsVarStore(vars), awsV0Dictionary()));
}

/** `encodeAwsUefiData` as the base64 text that `--uefi-data file://...` takes (no newline). */
export function encodeAwsUefiDataBase64(vars: readonly AwsVariable[]): string {
  return encodeAwsUefiData(vars).toString('base64');
}

// Whitespace is removed before the test: a pattern with whitespace both inside and after the
// base64 class backtracks quadratically (40,000 spaces and a stray byte took seconds). ASCII
// whitespace only: JavaScript's \s would also drop the byte 0xa0 (U+00A0 in latin1).
const BASE64_WHITESPACE = /[\t\n\v\f\r ]+/g;
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

/** Binary blob or its base64 text (whitespace allowed) to the binary blob. */
function unwrap(input: Buffer): Buffer {
  if (input.length >= 8 && input.subarray(0, 8).equals(AWS_MAGIC)) return input;
  const compact = input.toString('latin1').replace(BASE64_WHITESPACE, '');
  if (!BASE64_TEXT.test(compact)) bad('not an AWS UEFI variable store: neither the binary blob ("AMZNUEFI") nor base64 text');
  if (compact.length % 4 !== 0) bad('not an AWS UEFI variable store: the base64 text has a length that is not a multiple of 4 (truncated?)');
  const blob = Buffer.from(compact, 'base64');
  // Node's decoder skips what it does not understand; insist that the text round-trips.
  if (blob.toString('base64') !== compact) bad('not an AWS UEFI variable store: malformed base64');
  return blob;
}

/** The zlib stream header (RFC 1950 2.2): deflate, window at most 32 KiB, the v0 dictionary. */
function checkZlibHeader(z: Buffer): void {
  if (z.length < 6 + 2 + 4) bad(`the zlib stream is ${z.length} bytes: too short`);
  const cmf = z[0] as number;
  const flg = z[1] as number;
  if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7) bad(`the zlib stream header 0x${cmf.toString(16)} is not deflate with a window of at most 32 KiB`);
  if (((cmf << 8) | flg) % 31 !== 0) bad('the zlib stream header fails its FCHECK');
  if ((flg & 0x20) === 0) bad('the zlib stream has no preset dictionary: version 0 blobs are compressed against the AWS v0 dictionary');
  const id = z.readUInt32BE(2);
  if (id !== AWS_V0_DICT_ADLER32) bad(`the zlib stream wants dictionary 0x${id.toString(16).padStart(8, '0')}, not the AWS v0 dictionary 0x${AWS_V0_DICT_ADLER32.toString(16)}`);
}

function inflateStore(z: Buffer): Buffer {
  checkZlibHeader(z);
  let out: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    // `info` exposes how much input the stream used, to refuse bytes after its end.
    out = inflateSync(z, { dictionary: awsV0Dictionary(), maxOutputLength: MAX_STORE, info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') bad(`the variable store inflates to more than ${MAX_STORE} bytes`);
    bad(`the zlib stream does not inflate (${code ?? 'error'}: ${(e as Error).message}); zlib checks its Adler-32 of the variable store too`);
  }
  if (out.engine.bytesWritten !== z.length) bad(`${z.length - out.engine.bytesWritten} bytes after the end of the zlib stream`);
  return out.buffer;
}

// ignoreBOM: a leading U+FEFF is part of the name, not a byte-order mark to drop silently.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// Names are printed (`secureboot show`): a control character (newline, ESC) could forge output
// lines or terminal escapes, and an invisible format character (U+200B, U+202E, U+FEFF) could
// make a variable look like PK. UEFI variable names have none of these.
const UNPRINTABLE_NAME = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/gu;

/** The name with each unprintable character written \u{...}, or undefined if it has none. */
function unprintable(name: string): string | undefined {
  const shown = name.replace(UNPRINTABLE_NAME, (c) => `\\u{${(c.codePointAt(0) as number).toString(16)}}`);
  return shown === name ? undefined : shown;
}

function length(r: ByteReader, what: string, max: number): number {
  const at = r.offset;
  const n = r.u64le();
  if (n > BigInt(max)) bad(`${what} at offset 0x${at.toString(16)} of the variable store claims ${n} bytes, more than the ${max} allowed`);
  if (n > BigInt(r.remaining)) bad(`${what} at offset 0x${at.toString(16)} of the variable store claims ${n} bytes, ${r.remaining} remain`);
  return Number(n);
}

/** Parses the uncompressed store: every length checked, nothing left over, no duplicates. */
export function parseAwsVarStore(raw: Buffer): AwsVariable[] {
  try {
    const r = new ByteReader(raw, 'AWS variable store');
    const count = r.u64le();
    if (count > BigInt(MAX_VARIABLES)) bad(`the variable store claims ${count} variables (at most ${MAX_VARIABLES})`);
    const vars: AwsVariable[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < Number(count); i++) {
      const nameBytes = r.bytes(length(r, `the name of variable ${i}`, MAX_NAME));
      let name: string;
      try {
        name = UTF8.decode(nameBytes);
      } catch {
        bad(`the name of variable ${i} is not UTF-8`);
      }
      if (name.length === 0) bad(`variable ${i} has an empty name`);
      const shown = unprintable(name);
      if (shown !== undefined) bad(`the name of variable ${i} ("${shown}") has a control, format or private-use character`);
      const data = r.bytes(length(r, `the data of ${name}`, MAX_STORE));
      const guid = formatGuid(r.bytes(16));
      const attributes = r.u32le();
      const v: AwsVariable = { name, guid, attributes, data };
      if (isAuthenticated(attributes)) {
        v.timestamp = r.bytes(16);
        v.digest = r.bytes(length(r, `the digest of ${name}`, MAX_STORE));
      }
      const key = `${guid}:${name}`;
      if (seen.has(key)) bad(`variable ${name} (${guid}) appears twice`);
      seen.add(key);
      vars.push(v);
    }
    if (r.remaining !== 0) bad(`${r.remaining} bytes after the last of ${count} variables`);
    return vars;
  } catch (e) {
    if (e instanceof CofferError && e.code === 'TRUNCATED') bad(`the variable store is truncated: ${e.message}`);
    throw e;
  }
}

/** Strict reader of a blob (binary or base64): magic, CRC-32C, version 0, dictionary, store. */
export function decodeAwsUefiData(input: Buffer): AwsVariable[] {
  const blob = unwrap(input);
  if (blob.length < 16) bad(`the blob is ${blob.length} bytes, shorter than its 16-byte header`);
  if (!blob.subarray(0, 8).equals(AWS_MAGIC)) bad('not an AWS UEFI variable store: no "AMZNUEFI" magic');
  const crc = blob.readUInt32LE(8);
  const actual = crc32c(blob.subarray(12));
  if (actual !== crc) bad(`CRC-32C mismatch: the header says 0x${crc.toString(16).padStart(8, '0')}, the data gives 0x${actual.toString(16).padStart(8, '0')} (damaged or incompletely copied)`);
  const version = blob.readUInt32LE(12);
  if (version !== AWS_VERSION) throw inputError('AWS_UNSUPPORTED_VERSION', `AWS UEFI variable store version ${version} is not supported (only ${AWS_VERSION})`);
  return parseAwsVarStore(inflateStore(blob.subarray(16)));
}

export interface AwsSecureBootValues {
  PK: Buffer;
  KEK: Buffer;
  db: Buffer;
  dbx?: Buffer;
}

/**
 * PK, KEK, db (and dbx) as python-uefivars `-i none -o aws -P PK.esl -K KEK.esl --db db.esl
 * --dbx dbx.esl` stores them: in that order, attributes 0x27, the value as given (an ESL),
 * the empty (all-zero) timestamp unless `at` is given, and the 32-byte empty digest.
 */
export function awsSecureBootVariables(values: AwsSecureBootValues, at?: Date): AwsVariable[] {
  const timestamp = at ? encodeEfiTime(efiTime(at)) : AWS_EMPTY_TIMESTAMP;
  const out: AwsVariable[] = [];
  for (const name of ['PK', 'KEK', 'db', 'dbx'] as const) {
    const data = values[name];
    if (data === undefined) continue;
    // python-uefivars refuses an empty file too: an empty PK is Setup Mode, not a key.
    if (data.length === 0) throw inputError('SECUREBOOT_BAD_ESL', `${name} is empty`);
    parseSignatureDatabase(data);
    out.push({ name, guid: variableGuid(name), attributes: SECURE_BOOT_ATTRIBUTES, data: Buffer.from(data), timestamp: Buffer.from(timestamp), digest: Buffer.from(AWS_EMPTY_DIGEST) });
  }
  return out;
}

export { AWS_V0_DICT_ADLER32, adler32, awsV0Dictionary };
