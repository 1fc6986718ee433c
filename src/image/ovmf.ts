import { ByteReader } from '../bytes/reader.js';
import { inputError } from '../errors.js';
import { formatGuid } from './guid.js';

/**
 * The OVMF "footer table" (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm): a GUIDed table that
 * ends 32 bytes before the end of the flash image and is walked backwards. It locates the SEV
 * metadata, the SEV-ES AP reset vector and the TDVF metadata that launch measurements need.
 */

const CODE = 'OVMF_BAD_IMAGE';
export const OVMF_TABLE_FOOTER_GUID = '96b582de-1fb2-45f7-baea-a366c55a082d';
export const SEV_ES_RESET_BLOCK_GUID = '00f771de-1a7e-4fcb-890e-68c77e2fb44e';
export const SEV_METADATA_GUID = 'dc886566-984a-4798-a75e-5585a7bf67cc';
export const TDVF_METADATA_GUID = 'e47a6535-984a-4798-865e-4685a7bf8ec2';
export const SEV_HASH_TABLE_RV_GUID = '7255371f-3a3b-4b04-927b-1da6efa8d454';

export interface OvmfTableEntry {
  guid: string;
  /** Entry data (without the 18-byte length + GUID trailer). */
  data: Buffer;
  /** File offset of the data. */
  offset: number;
}

/** The footer table entries, in the order they are found walking backwards. Empty when there is no table. */
export function ovmfFooterTable(image: Uint8Array): OvmfTableEntry[] {
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  if (buf.length < 32 + 18) return [];
  const footerEnd = buf.length - 32;
  const r = new ByteReader(buf, 'OVMF footer table');
  const guid = formatGuid(r.seek(footerEnd - 16).bytes(16));
  if (guid !== OVMF_TABLE_FOOTER_GUID) return [];
  const size = r.seek(footerEnd - 18).u16le();
  if (size < 18 || size > footerEnd) throw inputError(CODE, `OVMF footer table size ${size} is out of range`);
  const start = footerEnd - size;
  let end = footerEnd - 18;
  const out: OvmfTableEntry[] = [];
  while (end > start) {
    if (end - start < 18) throw inputError(CODE, 'OVMF footer table has a truncated entry');
    const eguid = formatGuid(r.seek(end - 16).bytes(16));
    const len = r.seek(end - 18).u16le();
    if (len < 18 || len > end - start) throw inputError(CODE, `OVMF footer table entry ${eguid} has length ${len}, outside the table`);
    out.push({ guid: eguid, data: r.seek(end - len).bytes(len - 18), offset: end - len });
    end -= len;
    if (out.length > 64) throw inputError(CODE, 'OVMF footer table has more than 64 entries');
  }
  return out;
}

export function footerEntry(image: Uint8Array, guid: string): OvmfTableEntry | undefined {
  return ovmfFooterTable(image).find((e) => e.guid === guid);
}

/** SEV metadata section types (OvmfPkg/ResetVector: OVMF_SECTION_TYPE_*). */
export const SEV_SECTION = { SNP_SEC_MEM: 1, SNP_SECRETS: 2, CPUID: 3, SVSM_CAA: 4, SNP_KERNEL_HASHES: 0x10 } as const;

export interface SevMetadataSection {
  gpa: number;
  size: number;
  type: number;
  typeName: string;
}

function sevTypeName(t: number): string {
  return Object.entries(SEV_SECTION).find(([, v]) => v === t)?.[0] ?? `UNKNOWN_0x${t.toString(16)}`;
}

/** The SEV metadata ("ASEV") sections, or undefined when the image carries none. */
export function sevMetadata(image: Uint8Array): SevMetadataSection[] | undefined {
  const e = footerEntry(image, SEV_METADATA_GUID);
  if (!e) return undefined;
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const back = new ByteReader(e.data, 'SEV metadata entry').u32le();
  if (back > buf.length || back < 16) throw inputError(CODE, `SEV metadata offset ${back} lies outside the image`);
  const r = new ByteReader(buf, 'SEV metadata', buf.length - back);
  if (r.bytes(4).toString('latin1') !== 'ASEV') throw inputError(CODE, 'SEV metadata does not start with "ASEV"');
  const size = r.u32le();
  const version = r.u32le();
  const count = r.u32le();
  if (version !== 1) throw inputError(CODE, `SEV metadata version ${version} is not 1`);
  if (size !== 16 + 12 * count || count > 64) throw inputError(CODE, `SEV metadata size ${size} does not match ${count} sections`);
  const out: SevMetadataSection[] = [];
  for (let i = 0; i < count; i++) {
    const gpa = r.u32le();
    const sz = r.u32le();
    const type = r.u32le();
    if (gpa % 4096 !== 0 || sz % 4096 !== 0 || sz === 0) throw inputError(CODE, `SEV metadata section ${i} (0x${gpa.toString(16)}+0x${sz.toString(16)}) is not whole 4 KiB pages`);
    out.push({ gpa, size: sz, type, typeName: sevTypeName(type) });
  }
  return out;
}

/** The SEV-ES AP reset vector (EIP) from the footer table, or undefined. */
export function sevEsResetEip(image: Uint8Array): number | undefined {
  const e = footerEntry(image, SEV_ES_RESET_BLOCK_GUID);
  if (!e) return undefined;
  return new ByteReader(e.data, 'SEV-ES reset block').u32le();
}

/** GPA and size of the kernel-hashes area for SEV (non-SNP) guests, from the footer table. */
export function sevHashTableArea(image: Uint8Array): { gpa: number; size: number } | undefined {
  const e = footerEntry(image, SEV_HASH_TABLE_RV_GUID);
  if (!e) return undefined;
  const r = new ByteReader(e.data, 'SEV hash table entry');
  return { gpa: r.u32le(), size: r.u32le() };
}
