import { createHash } from 'node:crypto';
import { ByteReader } from '../bytes/reader.js';
import { inputError } from '../errors.js';
import { footerEntry, TDVF_METADATA_GUID } from './ovmf.js';

/**
 * The TDX MRTD of a TD built from a TDVF (OVMF with TDX support) image, from the TDVF metadata
 * (TDVF design guide, "TDVF Metadata"): the TDX module folds TDH.MEM.PAGE.ADD (GPA only) and
 * TDH.MR.EXTEND (GPA and 256 bytes of contents) into one running SHA-384 (TDX module ABI),
 * and the VMM chooses the order.
 */

const CODE = 'OVMF_BAD_IMAGE';
const PAGE = 4096;
const CHUNK = 256;

export const TDVF_SECTION_TYPES = ['BFV', 'CFV', 'TD_HOB', 'TEMP_MEM', 'PERM_MEM', 'PAYLOAD', 'PAYLOAD_PARAM'] as const;
export const TDVF_ATTR_MR_EXTEND = 1;
export const TDVF_ATTR_PAGE_AUG = 2;

export interface TdvfSection {
  dataOffset: number;
  rawDataSize: number;
  memoryAddress: bigint;
  memorySize: bigint;
  type: number;
  typeName: string;
  attributes: number;
  /** File offset of this 32-byte descriptor (for cross-checks). */
  descriptorOffset: number;
}

export interface TdvfMetadata {
  offset: number;
  length: number;
  version: number;
  sections: TdvfSection[];
}

/** The TDVF metadata of an OVMF image, or undefined when it carries none. */
export function tdvfMetadata(image: Uint8Array): TdvfMetadata | undefined {
  const e = footerEntry(image, TDVF_METADATA_GUID);
  if (!e) return undefined;
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const back = new ByteReader(e.data, 'TDVF metadata entry').u32le();
  if (back > buf.length || back < 16) throw inputError(CODE, `TDVF metadata offset ${back} lies outside the image`);
  const offset = buf.length - back;
  const r = new ByteReader(buf, 'TDVF metadata', offset);
  if (r.bytes(4).toString('latin1') !== 'TDVF') throw inputError(CODE, 'TDVF metadata does not start with "TDVF"');
  const length = r.u32le();
  const version = r.u32le();
  const count = r.u32le();
  if (version !== 1) throw inputError(CODE, `TDVF metadata version ${version} is not 1`);
  if (count > 64 || length !== 16 + 32 * count) throw inputError(CODE, `TDVF metadata length ${length} does not match ${count} sections`);
  const sections: TdvfSection[] = [];
  for (let i = 0; i < count; i++) {
    const descriptorOffset = r.offset;
    const dataOffset = r.u32le();
    const rawDataSize = r.u32le();
    const memoryAddress = r.u64le();
    const memorySize = r.u64le();
    const type = r.u32le();
    const attributes = r.u32le();
    if (memoryAddress % BigInt(PAGE) !== 0n || memorySize % BigInt(PAGE) !== 0n) throw inputError(CODE, `TDVF section ${i} memory 0x${memoryAddress.toString(16)}+0x${memorySize.toString(16)} is not whole pages`);
    if (dataOffset + rawDataSize > buf.length) throw inputError(CODE, `TDVF section ${i} data 0x${dataOffset.toString(16)}+0x${rawDataSize.toString(16)} lies outside the image`);
    if (BigInt(rawDataSize) > memorySize) throw inputError(CODE, `TDVF section ${i} has more raw data than memory`);
    if (memorySize > 0x40000000n) throw inputError(CODE, `TDVF section ${i} is larger than 1 GiB`);
    sections.push({ dataOffset, rawDataSize, memoryAddress, memorySize, type, typeName: TDVF_SECTION_TYPES[type] ?? `UNKNOWN_${type}`, attributes, descriptorOffset });
  }
  return { offset, length, version, sections };
}

/** `per-page`: current KVM (add a page, then extend it); `section-first`: older QEMU (add all pages of a section, then extend them). */
export type TdxPageOrder = 'per-page' | 'section-first';

function pageAdd(gpa: bigint): Buffer {
  const b = Buffer.alloc(128);
  b.write('MEM.PAGE.ADD', 0, 'latin1');
  b.writeBigUInt64LE(gpa, 16);
  return b;
}

function extendHeader(gpa: bigint): Buffer {
  const b = Buffer.alloc(128);
  b.write('MR.EXTEND', 0, 'latin1');
  b.writeBigUInt64LE(gpa, 16);
  return b;
}

/** The MRTD for one page order. */
export function tdxMrtd(image: Uint8Array, order: TdxPageOrder = 'per-page', meta: TdvfMetadata | undefined = tdvfMetadata(image)): Buffer {
  if (!meta) throw inputError('OVMF_NO_TDVF_METADATA', 'the OVMF image carries no TDVF metadata (footer-table entry e47a6535-…): it is not a TDX-capable build');
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const h = createHash('sha384');
  for (const s of meta.sections) {
    if (s.attributes & TDVF_ATTR_PAGE_AUG) continue;
    const mem = Buffer.alloc(Number(s.memorySize));
    buf.copy(mem, 0, s.dataOffset, s.dataOffset + s.rawDataSize);
    const extend = (s.attributes & TDVF_ATTR_MR_EXTEND) !== 0;
    const extendPage = (off: number) => {
      for (let c = off; c < off + PAGE; c += CHUNK) h.update(extendHeader(s.memoryAddress + BigInt(c))).update(mem.subarray(c, c + CHUNK));
    };
    if (order === 'per-page') {
      for (let off = 0; off < mem.length; off += PAGE) {
        h.update(pageAdd(s.memoryAddress + BigInt(off)));
        if (extend) extendPage(off);
      }
    } else {
      for (let off = 0; off < mem.length; off += PAGE) h.update(pageAdd(s.memoryAddress + BigInt(off)));
      if (extend) for (let off = 0; off < mem.length; off += PAGE) extendPage(off);
    }
  }
  return h.digest();
}

export interface TdxMeasurement {
  mrtd: { perPage: string; sectionFirst: string };
  sections: TdvfSection[];
}

export function tdxMeasurement(image: Uint8Array): TdxMeasurement {
  const meta = tdvfMetadata(image);
  if (!meta) throw inputError('OVMF_NO_TDVF_METADATA', 'the OVMF image carries no TDVF metadata (footer-table entry e47a6535-…): it is not a TDX-capable build');
  return { mrtd: { perPage: tdxMrtd(image, 'per-page', meta).toString('hex'), sectionFirst: tdxMrtd(image, 'section-first', meta).toString('hex') }, sections: meta.sections };
}
