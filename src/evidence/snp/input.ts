import { decode as cborDecode } from 'cbor2';
import { ByteReader } from '../../bytes/reader.js';
import { isAllZero } from '../../bytes/hex.js';
import { inputError } from '../../errors.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import { SNP_REPORT_SIZE } from './report.js';

/**
 * The ways an SEV-SNP report reaches Coffer: raw 1184 bytes, hex or base64 text, the Linux
 * configfs-tsm outblob with its auxblob (the GHCB certificate table holding VCEK/ASK/ARK), or
 * that pair as a CBOR map {outblob, auxblob, provider}. Everything here is untrusted input;
 * certificates found in an auxblob are verified like any others.
 */

/** GHCB certificate-table GUIDs (stored in string byte order in the table). */
export const CERT_TABLE_GUIDS: Readonly<Record<string, string>> = {
  'c0b406a4-a803-4952-9743-3fb6014cd0ae': 'ARK',
  '4ab7b379-bbac-4fe4-a02f-05aef327c782': 'ASK',
  '63da758d-e664-4564-adc5-f4b93be8accd': 'VCEK',
  'a8074bc2-a25a-483e-aae6-39c045a0b8a1': 'VLEK',
};

export interface CertTableEntry {
  guid: string;
  /** ARK, ASK, VCEK, VLEK, or undefined for an entry Coffer does not know. */
  role: string | undefined;
  data: Buffer;
}

function guidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const MAX_CERT_TABLE_ENTRIES = 64;

/** Parses the GHCB certificate table (`auxblob`): {GUID, u32 offset, u32 length}… ending in an all-zero entry. */
export function parseCertTable(blob: Uint8Array): CertTableEntry[] {
  const r = new ByteReader(blob, 'certificate table');
  const headers: { guid: string; offset: number; length: number }[] = [];
  for (;;) {
    if (headers.length > MAX_CERT_TABLE_ENTRIES) throw inputError('SNP_BAD_CERT_TABLE', `certificate table has more than ${MAX_CERT_TABLE_ENTRIES} entries`);
    const guid = r.bytes(16);
    const offset = r.u32le();
    const length = r.u32le();
    if (isAllZero(guid) && offset === 0 && length === 0) break;
    headers.push({ guid: guidString(guid), offset, length });
  }
  const tableEnd = r.offset;
  return headers.map((h, i) => {
    if (h.offset < tableEnd || h.offset + h.length > blob.length) {
      throw inputError('SNP_BAD_CERT_TABLE', `certificate table entry ${i} (${h.guid}) points outside the blob (offset ${h.offset}, length ${h.length}, blob ${blob.length})`);
    }
    return { guid: h.guid, role: CERT_TABLE_GUIDS[h.guid], data: Buffer.from(blob.subarray(h.offset, h.offset + h.length)) };
  });
}

/** The certificates of a certificate table (DER or PEM entries); unknown GUIDs are skipped. */
export function certificatesFromTable(entries: readonly CertTableEntry[]): Certificate[] {
  return entries.filter((e) => e.role !== undefined).flatMap((e) => parseCertificates(e.data, `auxblob ${e.role ?? e.guid}`));
}

const HEX = /^[0-9a-fA-F\s]+$/;
const B64 = /^[A-Za-z0-9+/=_\-\s]+$/;

export interface SnpEvidence {
  report: Buffer;
  /** Certificates that came with the evidence (auxblob), unverified. */
  certificates: Certificate[];
  form: 'raw' | 'hex' | 'base64' | 'tsm-cbor';
}

/** Decodes a report file in any accepted form. */
export function decodeSnpEvidence(data: Uint8Array): SnpEvidence {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length === SNP_REPORT_SIZE) return { report: Buffer.from(buf), certificates: [], form: 'raw' };
  // CBOR map (major type 5) holding outblob/auxblob, as configfs-tsm captures are often stored.
  if (buf.length > 0 && ((buf[0] ?? 0) & 0xe0) === 0xa0) {
    let decoded: unknown;
    try {
      decoded = cborDecode(buf);
    } catch {
      decoded = undefined;
    }
    if (decoded && typeof decoded === 'object' && 'outblob' in decoded) {
      const m = decoded as { outblob?: unknown; auxblob?: unknown; provider?: unknown };
      if (!(m.outblob instanceof Uint8Array)) throw inputError('SNP_BAD_INPUT', 'TSM CBOR: outblob is not a byte string');
      // configfs-tsm's provider file ends in a newline, and captures keep it.
      const provider = typeof m.provider === 'string' ? m.provider.trim() : m.provider;
      if (provider !== undefined && provider !== 'sev_guest') throw inputError('SNP_BAD_INPUT', `TSM CBOR: provider "${String(provider)}" is not sev_guest`);
      const certs = m.auxblob instanceof Uint8Array && m.auxblob.length > 0 ? certificatesFromTable(parseCertTable(m.auxblob)) : [];
      return { report: checkSize(Buffer.from(m.outblob), 'TSM outblob'), certificates: certs, form: 'tsm-cbor' };
    }
  }
  const text = buf.toString('latin1').trim();
  if (text.length > 0 && HEX.test(text)) {
    const clean = text.replace(/\s+/g, '');
    if (clean.length === SNP_REPORT_SIZE * 2) return { report: Buffer.from(clean, 'hex'), certificates: [], form: 'hex' };
  }
  if (text.length > 0 && B64.test(text)) {
    const b = Buffer.from(text.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === SNP_REPORT_SIZE) return { report: b, certificates: [], form: 'base64' };
  }
  throw inputError('SNP_BAD_INPUT', `not an SEV-SNP report: expected ${SNP_REPORT_SIZE} raw bytes, ${SNP_REPORT_SIZE * 2} hex digits, base64, or a configfs-tsm CBOR capture (got ${buf.length} bytes)`);
}

function checkSize(b: Buffer, what: string): Buffer {
  if (b.length !== SNP_REPORT_SIZE) throw inputError('SNP_BAD_SIZE', `${what} is ${b.length} bytes; an SEV-SNP report is ${SNP_REPORT_SIZE}`);
  return b;
}

/** The configfs-tsm pair: outblob (the report) and auxblob (the certificate table). */
export function fromTsm(outblob: Uint8Array, auxblob?: Uint8Array): SnpEvidence {
  const certs = auxblob && auxblob.length > 0 ? certificatesFromTable(parseCertTable(auxblob)) : [];
  return { report: checkSize(Buffer.from(outblob), 'outblob'), certificates: certs, form: 'raw' };
}
