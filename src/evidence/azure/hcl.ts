import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { fromHex } from '../../bytes/hex.js';
import { inputError } from '../../errors.js';
import { SNP_REPORT_SIZE } from '../snp/report.js';

/**
 * The Azure confidential VM "HCL report": the blob the paravisor (HCL) writes to vTPM NV index
 * 0x01400001. Layout (Azure/confidential-computing-cvm-guest-attestation, IGVM attestation
 * headers), little-endian:
 *
 *   0x000  header (32): "HCLA", version, report size, request type, status, 12 reserved
 *   0x020  hardware report (1184): an SEV-SNP report, or a TDREPORT (1024) and zero padding
 *   0x4C0  runtime-data header (20): data size, version, report type (2 SNP, 4 TDX),
 *          hash type (1 SHA-256), runtime data size
 *   0x4D4  runtime data: JSON {keys: [HCLAkPub, HCLEkPub JWKs], vm-configuration, user-data}
 *
 * The hardware report's REPORT_DATA[0:32] is SHA-256 of the runtime data bytes exactly as
 * embedded: that is the only thing that ties the vTPM's AK to the CPU's signature.
 */

export const HCL_MAGIC = 'HCLA';
export const HCL_HEADER_SIZE = 32;
export const HCL_HW_REPORT_OFFSET = 0x20;
export const HCL_RUNTIME_HEADER_OFFSET = HCL_HW_REPORT_OFFSET + SNP_REPORT_SIZE;
export const HCL_RUNTIME_DATA_OFFSET = HCL_RUNTIME_HEADER_OFFSET + 20;
export const TDREPORT_SIZE = 1024;
/** The vTPM NV index holds at most this much. */
export const MAX_HCL_SIZE = 1 << 16;

export const HCL_REPORT_TYPES: Readonly<Record<number, string>> = { 1: 'VBS', 2: 'SNP', 3: 'TVM', 4: 'TDX' };
const KNOWN_HEADER_VERSIONS = new Set([1, 2]);
const KNOWN_REQUEST_TYPES = new Set([1, 2, 3]);
const HASH_SHA256 = 1;

export interface HclReport {
  readonly raw: Buffer;
  version: number;
  /** The header's report size: header, hardware report and runtime data, without padding. */
  reportSize: number;
  requestType: number;
  status: number;
  tee: 'snp' | 'tdx';
  /** 1184 bytes: an SEV-SNP report, or a TDREPORT followed by zero padding. */
  hardwareReport: Buffer;
  runtimeVersion: number;
  hashType: 'sha256';
  /** The runtime data bytes exactly as embedded (what REPORT_DATA[0:32] hashes). */
  runtimeData: Buffer;
  /** SHA-256 of runtimeData. */
  runtimeDataDigest: Buffer;
}

function bad(code: string, why: string): never {
  throw inputError(code, `Azure HCL report: ${why}`);
}

/** Parses the HCL report structure. The runtime data JSON is parsed separately (parseRuntimeData). */
export function parseHclReport(data: Uint8Array): HclReport {
  const raw = Buffer.from(data);
  if (raw.length > MAX_HCL_SIZE) bad('AZURE_HCL_BAD_SIZE', `${raw.length} bytes is more than the ${MAX_HCL_SIZE} an NV index holds`);
  const r = new ByteReader(raw, 'Azure HCL report');
  if (r.bytes(4).toString('latin1') !== HCL_MAGIC) bad('AZURE_HCL_BAD_MAGIC', 'does not start with "HCLA"');
  const version = r.u32le();
  if (!KNOWN_HEADER_VERSIONS.has(version)) bad('AZURE_HCL_UNSUPPORTED', `header version ${version} is unknown (1 and 2 are)`);
  const reportSize = r.u32le();
  const requestType = r.u32le();
  const status = r.u32le();
  // The header is outside every signature: refuse what a genuine report never carries.
  if (!KNOWN_REQUEST_TYPES.has(requestType)) bad('AZURE_HCL_UNSUPPORTED', `request type ${requestType} is unknown (1 key release, 2 AK certificate, 3 wrapped key)`);
  if (status !== 0) bad('AZURE_HCL_BAD_STATUS', `the header reports status ${status}: the HCL did not produce a report`);
  r.zeros(12, 'header reserved');
  const hardwareReport = r.bytes(SNP_REPORT_SIZE);
  const dataSize = r.u32le();
  const runtimeVersion = r.u32le();
  const reportType = r.u32le();
  const hashType = r.u32le();
  const runtimeSize = r.u32le();
  if (runtimeVersion !== 1) bad('AZURE_HCL_UNSUPPORTED', `runtime-data header version ${runtimeVersion} is unknown (1 is)`);
  const teeName = HCL_REPORT_TYPES[reportType];
  if (reportType !== 2 && reportType !== 4) bad('AZURE_HCL_UNSUPPORTED', `report type ${reportType}${teeName ? ` (${teeName})` : ''} is not SEV-SNP (2) or TDX (4)`);
  if (hashType !== HASH_SHA256) bad('AZURE_HCL_UNSUPPORTED', `runtime-data hash type ${hashType} is not SHA-256 (1)`);
  if (dataSize !== runtimeSize + 20) bad('AZURE_HCL_BAD_SIZE', `runtime-data header says ${dataSize} bytes in all but ${runtimeSize} bytes of runtime data (expected header 20 + data)`);
  if (reportSize !== HCL_RUNTIME_HEADER_OFFSET + dataSize) bad('AZURE_HCL_BAD_SIZE', `header report size ${reportSize} differs from the structure's ${HCL_RUNTIME_HEADER_OFFSET + dataSize} bytes`);
  const runtimeData = r.bytes(runtimeSize);
  // What follows is the NV index's unused remainder; a non-zero byte there is not ours to ignore.
  r.zeros(r.remaining, 'padding after the runtime data');
  const tee = reportType === 2 ? 'snp' : 'tdx';
  if (tee === 'tdx') new ByteReader(hardwareReport, 'Azure HCL TDX hardware report', TDREPORT_SIZE).zeros(SNP_REPORT_SIZE - TDREPORT_SIZE, 'padding after the TDREPORT');
  return {
    raw,
    version,
    reportSize,
    requestType,
    status,
    tee,
    hardwareReport,
    runtimeVersion,
    hashType: 'sha256',
    runtimeData,
    runtimeDataDigest: createHash('sha256').update(runtimeData).digest(),
  };
}

export interface HclKey {
  kid: string;
  jwk: Readonly<Record<string, unknown>>;
  key: KeyObject;
}

export interface HclRuntimeData {
  keys: HclKey[];
  akPub: HclKey;
  ekPub: HclKey | undefined;
  vmConfiguration: Readonly<Record<string, unknown>> | undefined;
  /** user-data (64 bytes; Azure puts the guest's report data here), when present. */
  userData: Buffer | undefined;
}

function rbad(why: string): never {
  throw inputError('AZURE_BAD_RUNTIME_DATA', `Azure HCL runtime data: ${why}`);
}

function jwkKey(jwk: Record<string, unknown>, kid: string): KeyObject {
  const pub = Object.fromEntries(['kty', 'n', 'e', 'crv', 'x', 'y'].filter((k) => typeof jwk[k] === 'string').map((k) => [k, jwk[k] as string]));
  try {
    const k = createPublicKey({ key: pub, format: 'jwk' });
    if (k.asymmetricKeyType !== 'rsa' && k.asymmetricKeyType !== 'ec') rbad(`${kid} is a ${k.asymmetricKeyType ?? 'unknown'} key`);
    return k;
  } catch (e) {
    if (e instanceof Error && 'code' in e && (e as { code?: unknown }).code === 'AZURE_BAD_RUNTIME_DATA') throw e;
    return rbad(`${kid} is not a valid public JWK`);
  }
}

/** Parses the runtime data JSON: the HCL's AK (HCLAkPub) and EK (HCLEkPub), VM configuration, user data. */
export function parseRuntimeData(bytes: Uint8Array): HclRuntimeData {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    rbad('is not valid UTF-8 JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) rbad('is not a JSON object');
  const o = doc as Record<string, unknown>;
  if (!Array.isArray(o.keys)) rbad('has no "keys" array');
  const keys: HclKey[] = o.keys.map((k, i) => {
    if (k === null || typeof k !== 'object' || Array.isArray(k)) rbad(`keys[${i}] is not a JWK object`);
    const jwk = k as Record<string, unknown>;
    const kid = typeof jwk.kid === 'string' ? jwk.kid : rbad(`keys[${i}] has no "kid"`);
    return { kid, jwk, key: jwkKey(jwk, kid) };
  });
  const named = (kid: string): HclKey | undefined => {
    const hits = keys.filter((k) => k.kid === kid);
    if (hits.length > 1) rbad(`${kid} appears ${hits.length} times`);
    return hits[0];
  };
  const akPub = named('HCLAkPub') ?? rbad('carries no HCLAkPub key (the vTPM attestation key)');
  const ekPub = named('HCLEkPub');
  const vm = o['vm-configuration'];
  if (vm !== undefined && (vm === null || typeof vm !== 'object' || Array.isArray(vm))) rbad('"vm-configuration" is not an object');
  let userData: Buffer | undefined;
  const ud = o['user-data'];
  if (ud !== undefined) {
    if (typeof ud !== 'string') rbad('"user-data" is not a hex string');
    try {
      userData = fromHex(ud, 'user-data');
    } catch {
      rbad('"user-data" is not valid hex');
    }
    if (userData.length > 64) rbad(`"user-data" is ${userData.length} bytes, at most 64`);
  }
  return { keys, akPub, ekPub, vmConfiguration: vm as Record<string, unknown> | undefined, userData };
}
