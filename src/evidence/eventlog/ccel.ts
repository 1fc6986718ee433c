import { ByteReader } from '../../bytes/reader.js';
import { inputError } from '../../errors.js';

/**
 * The ACPI "CCEL" table (ACPI 6.5, "Confidential Computing Event Log Table"), 56 bytes: the
 * standard 36-byte header, CC type and subtype, reserved, then the log area's minimum length
 * (LAML) and start address (LASA).
 */
export interface CcelTable {
  length: number;
  revision: number;
  checksum: number;
  /** Does the byte sum of the whole table equal zero, as ACPI requires? */
  checksumValid: boolean;
  oemId: string;
  oemTableId: string;
  oemRevision: number;
  creatorId: string;
  creatorRevision: number;
  /** 1 = AMD SEV, 2 = Intel TDX. */
  ccType: number;
  ccTypeName: string;
  ccSubtype: number;
  laml: bigint;
  lasa: bigint;
}

export const CCEL_TABLE_SIZE = 56;

const CC_TYPES: Record<number, string> = { 1: 'SEV', 2: 'TDX' };

export function parseCcelTable(bytes: Uint8Array): CcelTable {
  const buf = Buffer.from(bytes);
  if (buf.length !== CCEL_TABLE_SIZE) throw inputError('CCEL_BAD_TABLE', `a CCEL ACPI table is ${CCEL_TABLE_SIZE} bytes, got ${buf.length}`);
  const r = new ByteReader(buf, 'CCEL table');
  const signature = r.view(4).toString('latin1');
  if (signature !== 'CCEL') throw inputError('CCEL_BAD_TABLE', `ACPI table signature is "${signature.replace(/[^\x20-\x7e]/g, '?')}", not "CCEL"`);
  const length = r.u32le();
  if (length !== CCEL_TABLE_SIZE) throw inputError('CCEL_BAD_TABLE', `CCEL table length field is ${length}, not ${CCEL_TABLE_SIZE}`);
  const revision = r.u8();
  const checksum = r.u8();
  const ascii = (n: number) => r.view(n).toString('latin1').replace(/[^\x20-\x7e]/g, '').trim();
  const oemId = ascii(6);
  const oemTableId = ascii(8);
  const oemRevision = r.u32le();
  const creatorId = ascii(4);
  const creatorRevision = r.u32le();
  const ccType = r.u8();
  const ccSubtype = r.u8();
  r.skip(2); // reserved
  const laml = r.u64le();
  const lasa = r.u64le();
  r.end();
  let sum = 0;
  for (const b of buf) sum = (sum + b) & 0xff;
  return {
    length, revision, checksum, checksumValid: sum === 0, oemId, oemTableId, oemRevision, creatorId, creatorRevision,
    ccType, ccTypeName: CC_TYPES[ccType] ?? `unknown (${ccType})`, ccSubtype, laml, lasa,
  };
}
