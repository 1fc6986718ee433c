import { createHash } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { inputError } from '../../errors.js';
import { TDREPORT_SIZE } from './hcl.js';

/**
 * TDREPORT_STRUCT (Intel TDX module ABI, 1024 bytes): REPORTMACSTRUCT (256), TEE_TCB_INFO (239)
 * and 17 reserved bytes, TDINFO_STRUCT (512). It is MACed with a key only the CPU holds, so off the
 * platform it proves nothing by itself: Coffer believes its fields only where they equal the
 * fields of a DCAP-verified TD quote of the same TD.
 */
export interface TdReportStruct {
  readonly raw: Buffer;
  reportType: { type: number; subtype: number; version: number };
  cpuSvn: Buffer;
  teeTcbInfoHash: Buffer;
  teeInfoHash: Buffer;
  reportData: Buffer;
  mac: Buffer;
  /** TEE_TCB_INFO (239 bytes as hashed into teeTcbInfoHash). */
  teeTcbInfo: Buffer;
  teeTcbSvn: Buffer;
  mrSeam: Buffer;
  mrSignerSeam: Buffer;
  seamAttributes: Buffer;
  /** TDINFO_STRUCT (512 bytes as hashed into teeInfoHash). */
  tdInfo: Buffer;
  tdAttributes: Buffer;
  xfam: Buffer;
  mrTd: Buffer;
  mrConfigId: Buffer;
  mrOwner: Buffer;
  mrOwnerConfig: Buffer;
  rtmrs: [Buffer, Buffer, Buffer, Buffer];
}

export const TDX_REPORT_TYPE = 0x81;

export function parseTdReportStruct(data: Uint8Array): TdReportStruct {
  if (data.length < TDREPORT_SIZE) throw inputError('AZURE_BAD_TDREPORT', `a TDREPORT is ${TDREPORT_SIZE} bytes, got ${data.length}`);
  const raw = Buffer.from(data.subarray(0, TDREPORT_SIZE));
  const r = new ByteReader(raw, 'TDREPORT');
  const reportType = { type: r.u8(), subtype: r.u8(), version: r.u8() };
  r.skip(1);
  if (reportType.type !== TDX_REPORT_TYPE) throw inputError('AZURE_BAD_TDREPORT', `TDREPORT type is 0x${reportType.type.toString(16)}, not TDX (0x81)`);
  r.skip(12);
  const cpuSvn = r.bytes(16);
  const teeTcbInfoHash = r.bytes(48);
  const teeInfoHash = r.bytes(48);
  const reportData = r.bytes(64);
  r.skip(32);
  const mac = r.bytes(32);
  const teeTcbInfo = Buffer.from(raw.subarray(256, 256 + 239));
  const t = new ByteReader(teeTcbInfo, 'TEE_TCB_INFO', 8);
  const teeTcbSvn = t.bytes(16);
  const mrSeam = t.bytes(48);
  const mrSignerSeam = t.bytes(48);
  const seamAttributes = t.bytes(8);
  const tdInfo = Buffer.from(raw.subarray(512, 1024));
  const d = new ByteReader(tdInfo, 'TDINFO');
  const tdAttributes = d.bytes(8);
  const xfam = d.bytes(8);
  const mrTd = d.bytes(48);
  const mrConfigId = d.bytes(48);
  const mrOwner = d.bytes(48);
  const mrOwnerConfig = d.bytes(48);
  const rtmrs: [Buffer, Buffer, Buffer, Buffer] = [d.bytes(48), d.bytes(48), d.bytes(48), d.bytes(48)];
  return { raw, reportType, cpuSvn, teeTcbInfoHash, teeInfoHash, reportData, mac, teeTcbInfo, teeTcbSvn, mrSeam, mrSignerSeam, seamAttributes, tdInfo, tdAttributes, xfam, mrTd, mrConfigId, mrOwner, mrOwnerConfig, rtmrs };
}

/** The TDREPORT's internal digests: TEE_TCB_INFO_HASH and TEE_INFO_HASH are SHA-384 of their structures. */
export function tdReportDigestsConsistent(t: TdReportStruct): { tcbInfo: boolean; tdInfo: boolean } {
  return {
    tcbInfo: createHash('sha384').update(t.teeTcbInfo).digest().equals(t.teeTcbInfoHash),
    tdInfo: createHash('sha384').update(t.tdInfo).digest().equals(t.teeInfoHash),
  };
}
