import { createHash } from 'node:crypto';
import { ByteReader } from '../bytes/reader.js';
import { ByteWriter } from '../bytes/writer.js';
import { inputError } from '../errors.js';

/**
 * PE/COFF as Authenticode needs it (Microsoft PE format specification; "Windows Authenticode
 * Portable Executable Signature Format"): the header fields a signature skips, the section
 * table, and the attribute certificate table. Every offset is read through ByteReader.
 */

const CODE = 'PE_BAD_IMAGE';
export const WIN_CERT_REVISION_2_0 = 0x0200;
export const WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002;
const MAX_SECTIONS = 96;

export interface PeSection {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
}

export interface PeAttributeCertificate {
  /** File offset of the WIN_CERTIFICATE. */
  offset: number;
  revision: number;
  type: number;
  /** bCertificate: for PKCS_SIGNED_DATA a ContentInfo (DER, possibly followed by padding). */
  data: Buffer;
}

export interface PeImage {
  /** PE32 (0x10b) or PE32+ (0x20b). */
  magic: number;
  machine: number;
  checksumOffset: number;
  checksum: number;
  /** Offset of the Certificate Table data directory entry, or undefined when NumberOfRvaAndSizes <= 4. */
  certDirOffset: number | undefined;
  sizeOfHeaders: number;
  sections: PeSection[];
  /** The attribute certificate table (file offset and size), when present. */
  certTable: { offset: number; size: number } | undefined;
  fileSize: number;
}

export function parsePe(data: Uint8Array): PeImage {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const r = new ByteReader(buf, 'PE image');
  if (buf.length < 0x40 || r.u16le() !== 0x5a4d) throw inputError(CODE, 'not a PE image: no MZ header');
  const peOffset = r.seek(0x3c).u32le();
  r.seek(peOffset);
  if (r.u32le() !== 0x00004550) throw inputError(CODE, `not a PE image: no PE signature at offset 0x${peOffset.toString(16)}`);
  const machine = r.u16le();
  const nsections = r.u16le();
  r.skip(12);
  const optSize = r.u16le();
  r.skip(2);
  const opt = r.offset;
  const magic = r.u16le();
  if (magic !== 0x10b && magic !== 0x20b) throw inputError(CODE, `optional header magic 0x${magic.toString(16)} is neither PE32 nor PE32+`);
  const sizeOfHeaders = r.seek(opt + 60).u32le();
  const checksumOffset = opt + 64;
  const checksum = r.u32le();
  const dirs = opt + (magic === 0x20b ? 112 : 96);
  const nDirs = r.seek(dirs - 4).u32le();
  if (dirs + 8 * Math.min(nDirs, 16) > opt + optSize) throw inputError(CODE, `${nDirs} data directories do not fit the ${optSize}-byte optional header`);
  let certDirOffset: number | undefined;
  let certTable: PeImage['certTable'];
  if (nDirs > 4) {
    certDirOffset = dirs + 4 * 8;
    const offset = r.seek(certDirOffset).u32le();
    const size = r.u32le();
    if (size !== 0 || offset !== 0) {
      if (offset < sizeOfHeaders || size < 8 || offset + size > buf.length) {
        throw inputError(CODE, `certificate table at 0x${offset.toString(16)} (${size} bytes) lies outside the ${buf.length}-byte image`);
      }
      certTable = { offset, size };
    }
  }
  if (nsections > MAX_SECTIONS) throw inputError(CODE, `${nsections} sections is more than the ${MAX_SECTIONS} PE allows`);
  if (sizeOfHeaders > buf.length || sizeOfHeaders < opt + optSize + 40 * nsections) {
    throw inputError(CODE, `SizeOfHeaders 0x${sizeOfHeaders.toString(16)} does not cover the headers or exceeds the file`);
  }
  if (certDirOffset !== undefined && certDirOffset + 8 > sizeOfHeaders) throw inputError(CODE, 'the certificate table entry lies beyond SizeOfHeaders');
  r.seek(opt + optSize);
  const sections: PeSection[] = [];
  for (let i = 0; i < nsections; i++) {
    const name = r.bytes(8).toString('latin1').replace(/\0+$/, '');
    const s = { name, virtualSize: r.u32le(), virtualAddress: r.u32le(), sizeOfRawData: r.u32le(), pointerToRawData: r.u32le() };
    r.skip(16);
    if (s.sizeOfRawData !== 0 && (s.pointerToRawData + s.sizeOfRawData > buf.length || s.pointerToRawData < sizeOfHeaders)) {
      throw inputError(CODE, `section ${JSON.stringify(name)} raw data 0x${s.pointerToRawData.toString(16)}+0x${s.sizeOfRawData.toString(16)} lies outside the image`);
    }
    sections.push(s);
  }
  return { magic, machine, checksumOffset, checksum, certDirOffset, sizeOfHeaders, sections, certTable, fileSize: buf.length };
}

/** The WIN_CERTIFICATE entries of the attribute certificate table, each 8-byte aligned. */
export function attributeCertificates(data: Uint8Array, pe: PeImage = parsePe(data)): PeAttributeCertificate[] {
  if (!pe.certTable) return [];
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const r = new ByteReader(buf.subarray(0, pe.certTable.offset + pe.certTable.size), 'certificate table', pe.certTable.offset);
  const out: PeAttributeCertificate[] = [];
  while (r.remaining >= 8) {
    const offset = r.offset;
    const length = r.u32le();
    const revision = r.u16le();
    const type = r.u16le();
    if (length < 8 || length - 8 > r.remaining) throw inputError(CODE, `WIN_CERTIFICATE at 0x${offset.toString(16)} has length ${length}, beyond the certificate table`);
    out.push({ offset, revision, type, data: r.bytes(length - 8) });
    r.skip(Math.min(r.remaining, (8 - (length % 8)) % 8));
    if (out.length > 64) throw inputError(CODE, 'the certificate table holds more than 64 entries');
  }
  return out;
}

export type AuthenticodeDigest = 'sha256' | 'sha384' | 'sha512' | 'sha1';

/**
 * The Authenticode image hash. Hashed: the headers without CheckSum and the Certificate
 * Table entry, each section's raw data in order of PointerToRawData, then the bytes after
 * the sections up to the certificate table. An image without a certificate table is hashed
 * as if zero-padded to a multiple of 8 bytes, as sbsign, pesign, osslsigncode and efitools
 * do (signing pads it before appending the table, so the hash stays valid); `pad: false`
 * gives the unpadded hash.
 */
export function authenticodeHash(data: Uint8Array, digest: AuthenticodeDigest = 'sha256', opts: { pad?: boolean } = {}): Buffer {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const pe = parsePe(buf);
  const h = createHash(digest);
  h.update(buf.subarray(0, pe.checksumOffset));
  if (pe.certDirOffset !== undefined) {
    h.update(buf.subarray(pe.checksumOffset + 4, pe.certDirOffset));
    h.update(buf.subarray(pe.certDirOffset + 8, pe.sizeOfHeaders));
  } else {
    h.update(buf.subarray(pe.checksumOffset + 4, pe.sizeOfHeaders));
  }
  let hashed = pe.sizeOfHeaders;
  for (const s of [...pe.sections].filter((x) => x.sizeOfRawData > 0).sort((a, b) => a.pointerToRawData - b.pointerToRawData)) {
    h.update(buf.subarray(s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData));
    hashed += s.sizeOfRawData;
  }
  const end = pe.certTable ? buf.length - pe.certTable.size : buf.length;
  if (end > hashed) h.update(buf.subarray(hashed, end));
  if (!pe.certTable && (opts.pad ?? true) && buf.length % 8 !== 0) h.update(Buffer.alloc(8 - (buf.length % 8)));
  return h.digest();
}

/** The PE CheckSum (as imagehlp's CheckSumMappedFile and sbsign compute it). */
export function peChecksum(buf: Buffer, checksumOffset: number): number {
  let sum = 0;
  const n = buf.length;
  for (let i = 0; i + 1 < n; i += 2) {
    if (i === checksumOffset || i === checksumOffset + 2) continue;
    sum += buf.readUInt16LE(i);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (n % 2 === 1) {
    sum += buf[n - 1] ?? 0;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + n) >>> 0;
}

/**
 * Appends one WIN_CERTIFICATE (PKCS_SIGNED_DATA) holding `contentInfo` to the image's
 * certificate table, creating it at the 8-aligned end of an unsigned image, then updates the
 * data directory and the CheckSum. `image` must be the result of `prepareForSigning`.
 */
export function appendAttributeCertificate(image: Buffer, contentInfo: Uint8Array): Buffer {
  const pe = parsePe(image);
  if (pe.certDirOffset === undefined) throw inputError(CODE, 'the image has no Certificate Table data directory (NumberOfRvaAndSizes <= 4)');
  const tableOffset = pe.certTable?.offset ?? image.length;
  if (pe.certTable && pe.certTable.offset + pe.certTable.size !== image.length) throw inputError(CODE, 'the certificate table is not at the end of the image: cannot add a signature');
  if (tableOffset % 8 !== 0) throw inputError(CODE, 'the image is not padded to 8 bytes: use prepareForSigning');
  const entry = new ByteWriter().u32le(8 + contentInfo.length).u16le(WIN_CERT_REVISION_2_0).u16le(WIN_CERT_TYPE_PKCS_SIGNED_DATA).bytes(contentInfo);
  entry.zeros((8 - (entry.length % 8)) % 8);
  const out = Buffer.concat([image, entry.toBuffer()]);
  out.writeUInt32LE(tableOffset, pe.certDirOffset);
  out.writeUInt32LE(out.length - tableOffset, pe.certDirOffset + 4);
  out.writeUInt32LE(peChecksum(out, pe.checksumOffset), pe.checksumOffset);
  return out;
}

/**
 * The image ready to take a (further) signature: an unsigned image zero-padded to 8 bytes;
 * a signed one unchanged, or with its certificate table removed when `replace` is set.
 */
export function prepareForSigning(data: Uint8Array, replace = false): Buffer {
  const buf = Buffer.from(data);
  const pe = parsePe(buf);
  if (pe.certTable && !replace) {
    if (pe.certTable.offset + pe.certTable.size !== buf.length) throw inputError(CODE, 'the certificate table is not at the end of the image: cannot add a signature');
    return buf;
  }
  let body = pe.certTable ? buf.subarray(0, pe.certTable.offset) : buf;
  if (pe.certTable && pe.certDirOffset !== undefined) {
    body = Buffer.from(body);
    body.writeUInt32LE(0, pe.certDirOffset);
    body.writeUInt32LE(0, pe.certDirOffset + 4);
  }
  const pad = (8 - (body.length % 8)) % 8;
  return pad === 0 ? Buffer.from(body) : Buffer.concat([body, Buffer.alloc(pad)]);
}
