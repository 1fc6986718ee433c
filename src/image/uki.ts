import { ByteReader } from '../bytes/reader.js';
import { ByteWriter } from '../bytes/writer.js';
import { inputError } from '../errors.js';
import { parsePe, peChecksum, type PeImage } from './pe.js';
import { signPe } from './authenticode.js';
import type { Signer } from './cms.js';

/**
 * Unified kernel images: systemd-stub (linuxx64.efi.stub) with the kernel, initrd, command
 * line, os-release and PCR public key added as PE sections, which the stub finds by name,
 * measures into PCR 11 and boots. The section appender is our own (no objcopy): it writes new
 * section headers into the spare header space, places the data after the stub's sections at
 * increasing, aligned virtual addresses, and fixes the header fields a loader and an
 * Authenticode verifier read.
 */

const CODE = 'PE_BAD_IMAGE';
const SECTION_HEADER = 40;
/** IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ, as ukify and objcopy set for data sections. */
const DATA_SECTION = 0x40000040;

/** The sections systemd-stub (252) knows, in the order it measures them into PCR 11. */
export const UKI_MEASURED_SECTIONS = ['.linux', '.osrel', '.cmdline', '.initrd', '.splash', '.dtb', '.pcrpkey'] as const;
export type UkiSectionName = (typeof UKI_MEASURED_SECTIONS)[number];

export interface NewSection {
  name: string;
  data: Uint8Array;
  characteristics?: number;
}

export interface AddedSection {
  name: string;
  virtualAddress: number;
  virtualSize: number;
  pointerToRawData: number;
  sizeOfRawData: number;
}

interface Headers {
  pe: PeImage;
  coff: number;
  opt: number;
  optSize: number;
  nsections: number;
  sectionAlignment: number;
  fileAlignment: number;
  symbolTable: number;
}

const align = (v: number, a: number): number => Math.ceil(v / a) * a;

function headers(buf: Buffer): Headers {
  const pe = parsePe(buf);
  const r = new ByteReader(buf, 'PE image');
  const coff = r.seek(0x3c).u32le() + 4;
  r.seek(coff + 2);
  const nsections = r.u16le();
  r.skip(4);
  const symbolTable = r.u32le();
  r.skip(4);
  const optSize = r.u16le();
  const opt = coff + 20;
  const sectionAlignment = r.seek(opt + 32).u32le();
  const fileAlignment = r.u32le();
  const pow2 = (v: number) => v > 0 && (v & (v - 1)) === 0;
  if (!pow2(sectionAlignment) || !pow2(fileAlignment) || fileAlignment < 512 || sectionAlignment < fileAlignment) {
    throw inputError(CODE, `SectionAlignment 0x${sectionAlignment.toString(16)} / FileAlignment 0x${fileAlignment.toString(16)} are not valid powers of two`);
  }
  return { pe, coff, opt, optSize, nsections, sectionAlignment, fileAlignment, symbolTable };
}

/**
 * Appends sections to a PE image. The image's attribute certificate table (a signature) is
 * dropped, since adding sections invalidates it; data after the last section (a COFF symbol
 * table, as the Debian stub carries) is kept and moved after the new sections.
 */
export function addPeSections(image: Uint8Array, sections: readonly NewSection[]): { image: Buffer; added: AddedSection[] } {
  const src = Buffer.from(image);
  const h = headers(src);
  const { pe } = h;
  for (const s of sections) {
    if (!/^\.?[\x21-\x7e]{1,8}$/.test(s.name) || s.name.length > 8) throw inputError(CODE, `section name "${s.name}" must be 1 to 8 printable characters`);
    if (pe.sections.some((x) => x.name === s.name)) throw inputError('UKI_SECTION_EXISTS', `the image already has a ${s.name} section`);
    if (s.data.length === 0) throw inputError('UKI_EMPTY_SECTION', `section ${s.name} would be empty`);
  }
  const tableEnd = h.opt + h.optSize + SECTION_HEADER * h.nsections;
  const firstRaw = Math.min(pe.sizeOfHeaders, ...pe.sections.filter((s) => s.sizeOfRawData > 0).map((s) => s.pointerToRawData));
  const needed = tableEnd + SECTION_HEADER * sections.length;
  if (needed > firstRaw) {
    throw inputError('PE_NO_HEADER_ROOM', `the headers have room for ${Math.floor((firstRaw - tableEnd) / SECTION_HEADER)} more section header(s), ${sections.length} needed`);
  }
  if (h.nsections + sections.length > 96) throw inputError(CODE, 'more than 96 sections');
  for (let i = tableEnd; i < needed; i++) if (src[i] !== 0) throw inputError('PE_NO_HEADER_ROOM', `the header space after the section table is not free (byte 0x${i.toString(16)} is not zero)`);

  // Drop the signature: it no longer covers the image.
  const bodyEnd = pe.certTable ? pe.certTable.offset : src.length;
  const rawEnd = Math.max(pe.sizeOfHeaders, ...pe.sections.map((s) => s.pointerToRawData + s.sizeOfRawData));
  if (rawEnd > bodyEnd) throw inputError(CODE, 'section data overlaps the certificate table');
  const trailing = src.subarray(rawEnd, bodyEnd);
  let va = align(Math.max(...pe.sections.map((s) => s.virtualAddress + Math.max(s.virtualSize, s.sizeOfRawData)), pe.sizeOfHeaders), h.sectionAlignment);
  let raw = align(rawEnd, h.fileAlignment);

  const added: AddedSection[] = [];
  const table = new ByteWriter();
  const data = new ByteWriter().zeros(raw - rawEnd);
  let initialized = 0;
  for (const s of sections) {
    const sizeOfRawData = align(s.data.length, h.fileAlignment);
    const name = Buffer.alloc(8);
    name.write(s.name, 'latin1');
    table.bytes(name).u32le(s.data.length).u32le(va).u32le(sizeOfRawData).u32le(raw).u32le(0).u32le(0).u16le(0).u16le(0).u32le(s.characteristics ?? DATA_SECTION);
    data.bytes(s.data).zeros(sizeOfRawData - s.data.length);
    added.push({ name: s.name, virtualAddress: va, virtualSize: s.data.length, pointerToRawData: raw, sizeOfRawData });
    initialized += sizeOfRawData;
    va = align(va + s.data.length, h.sectionAlignment);
    raw += sizeOfRawData;
    if (va > 0xffffffff || raw > 0xffffffff) throw inputError(CODE, 'the image would exceed 4 GiB');
  }
  const out = Buffer.concat([src.subarray(0, rawEnd), data.toBuffer(), trailing]);
  table.toBuffer().copy(out, tableEnd);
  out.writeUInt16LE(h.nsections + sections.length, h.coff + 2);
  if (h.symbolTable !== 0 && h.symbolTable >= rawEnd) out.writeUInt32LE(h.symbolTable + (raw - rawEnd), h.coff + 8);
  const initOffset = h.opt + 8;
  out.writeUInt32LE((out.readUInt32LE(initOffset) + initialized) >>> 0, initOffset);
  out.writeUInt32LE(va, h.opt + 56); // SizeOfImage: already aligned to SectionAlignment
  if (pe.certDirOffset !== undefined) {
    out.writeUInt32LE(0, pe.certDirOffset);
    out.writeUInt32LE(0, pe.certDirOffset + 4);
  }
  out.writeUInt32LE(peChecksum(out, pe.checksumOffset), pe.checksumOffset);
  return { image: out, added };
}

export interface UkiInputs {
  linux: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string | Uint8Array;
  osrel?: Uint8Array;
  pcrpkey?: Uint8Array;
  splash?: Uint8Array;
  dtb?: Uint8Array;
}

export interface UkiBuildResult {
  image: Buffer;
  sections: AddedSection[];
  signed: boolean;
}

/** The section order in the file: small metadata first, then the kernel and initrd (as ukify does). */
const LAYOUT: readonly [keyof UkiInputs, string][] = [
  ['osrel', '.osrel'],
  ['cmdline', '.cmdline'],
  ['dtb', '.dtb'],
  ['splash', '.splash'],
  ['pcrpkey', '.pcrpkey'],
  ['linux', '.linux'],
  ['initrd', '.initrd'],
];

export function ukiSectionsOf(inputs: UkiInputs): NewSection[] {
  const out: NewSection[] = [];
  for (const [key, name] of LAYOUT) {
    const v = inputs[key];
    if (v === undefined) continue;
    out.push({ name, data: typeof v === 'string' ? Buffer.from(v, 'utf8') : v });
  }
  return out;
}

/** Builds a UKI from the stub and inputs; signs it (Authenticode) when a signer is given. */
export function buildUki(stub: Uint8Array, inputs: UkiInputs, opts: { signer?: Signer } = {}): UkiBuildResult {
  if (!inputs.linux || inputs.linux.length === 0) throw inputError('UKI_NO_KERNEL', 'a UKI needs a kernel (.linux)');
  const stubPe = parsePe(stub);
  const magic = stubPe.sections.find((s) => s.name === '.sdmagic');
  const magicText = magic ? Buffer.from(stub.buffer, stub.byteOffset, stub.byteLength).subarray(magic.pointerToRawData, magic.pointerToRawData + Math.min(magic.virtualSize, magic.sizeOfRawData)).toString('latin1') : '';
  if (!magicText.includes('systemd-stub')) throw inputError('UKI_NOT_A_STUB', 'the stub has no .sdmagic section: it is not systemd-stub (linuxx64.efi.stub)');
  const { image, added } = addPeSections(stub, ukiSectionsOf(inputs));
  if (!opts.signer) return { image, sections: added, signed: false };
  return { image: signPe(image, opts.signer), sections: added, signed: true };
}

/**
 * The bytes of each UKI section systemd-stub measures, as it sees them in memory: VirtualSize
 * bytes at the section's address (raw data, zero-filled beyond SizeOfRawData).
 */
export function ukiSections(image: Uint8Array): Partial<Record<UkiSectionName, Buffer>> {
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const pe = parsePe(buf);
  const out: Partial<Record<UkiSectionName, Buffer>> = {};
  for (const s of pe.sections) {
    if (!(UKI_MEASURED_SECTIONS as readonly string[]).includes(s.name)) continue;
    const name = s.name as UkiSectionName;
    if (out[name]) throw inputError(CODE, `the image has two ${name} sections`);
    const mem = Buffer.alloc(s.virtualSize);
    buf.copy(mem, 0, s.pointerToRawData, s.pointerToRawData + Math.min(s.virtualSize, s.sizeOfRawData));
    out[name] = mem;
  }
  return out;
}
