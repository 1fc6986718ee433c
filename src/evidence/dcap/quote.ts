import { ByteReader } from '../../bytes/reader.js';
import { isAllZero } from '../../bytes/hex.js';
import { inputError } from '../../errors.js';

/**
 * Intel DCAP ECDSA quotes: version 3 (SGX enclave report), version 4 (TDX 1.0 TD report) and
 * version 5 (a typed body: SGX, TDX 1.0 or TDX 1.5), all little-endian, as laid out in Intel's
 * "SGX ECDSA Quote Library API" (v3) and "TDX DCAP Quote Generation Library" (v4, v5) specs.
 * Only attestation key type 2 (ECDSA-256 with P-256) exists; anything else is refused. Every
 * length field is checked against the bytes actually present, and the quote must end exactly where
 * its signature data says it does: zero padding after it (a fixed-size buffer) is measured and
 * reported, non-zero bytes after it are refused unless the caller explicitly allows them.
 */

export const QUOTE_HEADER_SIZE = 48;
export const SGX_REPORT_SIZE = 384;
export const TD10_REPORT_SIZE = 584;
export const TD15_REPORT_SIZE = 648;
export const ATTESTATION_KEY_TYPE_ECDSA_P256 = 2;
export const TEE_TYPE_SGX = 0x00000000;
export const TEE_TYPE_TDX = 0x00000081;
/** Certification data types (Intel quote spec, "Certification Data"). */
export const CERT_DATA_PCK_CHAIN = 5;
export const CERT_DATA_QE_REPORT = 6;
/** A quote with its certificates is a few KiB; anything over this is not a quote. */
export const MAX_QUOTE_SIZE = 1 << 20;

export type QuoteBodyKind = 'sgx' | 'td10' | 'td15';

export interface QuoteHeader {
  version: 3 | 4 | 5;
  attestationKeyType: number;
  teeType: 'sgx' | 'tdx';
  /** Raw TEE type (0 for SGX, 0x81 for TDX). */
  teeTypeRaw: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: Buffer;
  userData: Buffer;
}

/** An SGX enclave REPORTBODY (384 bytes): the application enclave's body in a v3 quote, and the QE report. */
export interface EnclaveReport {
  readonly raw: Buffer;
  cpuSvn: Buffer;
  miscSelect: number;
  isvExtProdId: Buffer;
  /** 16 bytes: flags (u64 LE) then XFRM (u64 LE). */
  attributes: Buffer;
  mrEnclave: Buffer;
  mrSigner: Buffer;
  configId: Buffer;
  isvProdId: number;
  isvSvn: number;
  configSvn: number;
  isvFamilyId: Buffer;
  reportData: Buffer;
  /**
   * Reserved fields that are not zero (names). The parser does not refuse them, since nothing in the
   * report is believed before its signature; verification refuses them after the signature.
   */
  reservedNonZero: string[];
}

export interface TdReport {
  readonly raw: Buffer;
  kind: 'td10' | 'td15';
  teeTcbSvn: Buffer;
  mrSeam: Buffer;
  mrSignerSeam: Buffer;
  seamAttributes: Buffer;
  tdAttributes: Buffer;
  xfam: Buffer;
  mrTd: Buffer;
  mrConfigId: Buffer;
  mrOwner: Buffer;
  mrOwnerConfig: Buffer;
  rtmrs: [Buffer, Buffer, Buffer, Buffer];
  reportData: Buffer;
  /** TDX 1.5 only. */
  teeTcbSvn2?: Buffer;
  mrServiceTd?: Buffer;
}

export interface CertificationData {
  type: number;
  data: Buffer;
}

export interface QuoteSignatureData {
  /** r || s, 32 bytes each, big-endian (IEEE P1363). */
  signature: Buffer;
  /** The attestation public key: x || y of a P-256 point (64 bytes, no 0x04 prefix). */
  attestationKey: Buffer;
  qeReport: EnclaveReport;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  /** The innermost certification data: for every supported quote, type 5 (PCK chain, PEM). */
  certification: CertificationData;
  /** v4/v5: the outer certification data type (6, QE report certification data); v3: undefined. */
  outerCertificationType?: number;
}

export interface DcapQuote {
  /** The quote's own bytes (a private copy), padding excluded. */
  readonly raw: Buffer;
  readonly header: QuoteHeader;
  readonly bodyKind: QuoteBodyKind;
  /** v5: the body type field (1 SGX, 2 TDX 1.0, 3 TDX 1.5). */
  readonly bodyType: number | undefined;
  readonly sgx: EnclaveReport | undefined;
  readonly td: TdReport | undefined;
  /** The bytes the attestation key signs: header and body (for v5 including the body type and size). */
  readonly signedLength: number;
  readonly signatureData: QuoteSignatureData;
  /** Bytes after the quote in the buffer that was parsed. */
  readonly trailing: { length: number; allZero: boolean };
}

export interface QuoteParseOptions {
  /**
   * Accept non-zero bytes after the end of the quote (they are outside every signature and are
   * ignored). Zero padding is always accepted. Default false.
   */
  allowTrailingBytes?: boolean;
}

export function parseEnclaveReport(data: Uint8Array, what = 'enclave report'): EnclaveReport {
  const r = new ByteReader(data, what);
  const raw = Buffer.from(r.view(SGX_REPORT_SIZE));
  r.seek(0);
  const reservedNonZero: string[] = [];
  const reserved = (n: number, name: string): void => {
    if (!isAllZero(r.bytes(n))) reservedNonZero.push(name);
  };
  const cpuSvn = r.bytes(16);
  const miscSelect = r.u32le();
  reserved(12, 'RESERVED1');
  const isvExtProdId = r.bytes(16);
  const attributes = r.bytes(16);
  const mrEnclave = r.bytes(32);
  reserved(32, 'RESERVED2');
  const mrSigner = r.bytes(32);
  reserved(32, 'RESERVED3');
  const configId = r.bytes(64);
  const isvProdId = r.u16le();
  const isvSvn = r.u16le();
  const configSvn = r.u16le();
  reserved(42, 'RESERVED4');
  const isvFamilyId = r.bytes(16);
  const reportData = r.bytes(64);
  r.end();
  return { raw, cpuSvn, miscSelect, isvExtProdId, attributes, mrEnclave, mrSigner, configId, isvProdId, isvSvn, configSvn, isvFamilyId, reportData, reservedNonZero };
}

export function parseTdReport(data: Uint8Array, kind: 'td10' | 'td15'): TdReport {
  const r = new ByteReader(data, kind === 'td10' ? 'TDX 1.0 TD report' : 'TDX 1.5 TD report');
  const raw = Buffer.from(r.view(r.length));
  r.seek(0);
  const out: TdReport = {
    raw,
    kind,
    teeTcbSvn: r.bytes(16),
    mrSeam: r.bytes(48),
    mrSignerSeam: r.bytes(48),
    seamAttributes: r.bytes(8),
    tdAttributes: r.bytes(8),
    xfam: r.bytes(8),
    mrTd: r.bytes(48),
    mrConfigId: r.bytes(48),
    mrOwner: r.bytes(48),
    mrOwnerConfig: r.bytes(48),
    rtmrs: [r.bytes(48), r.bytes(48), r.bytes(48), r.bytes(48)],
    reportData: r.bytes(64),
  };
  if (kind === 'td15') {
    out.teeTcbSvn2 = r.bytes(16);
    out.mrServiceTd = r.bytes(48);
  }
  r.end();
  return out;
}

function certificationData(r: ByteReader, what: string): CertificationData {
  const type = r.u16le();
  const size = r.u32le();
  if (size > r.remaining) {
    throw inputError('DCAP_BAD_LENGTH', `${what}: certification data size 0x${size.toString(16)} exceeds the 0x${r.remaining.toString(16)} byte(s) left`);
  }
  return { type, data: r.bytes(size) };
}

/** QE report certification data (type 6): QE report, its signature, QE auth data, nested certification data. */
function qeReportCertification(data: Buffer): Omit<QuoteSignatureData, 'signature' | 'attestationKey' | 'outerCertificationType'> {
  const r = new ByteReader(data, 'QE report certification data');
  const qeReport = parseEnclaveReport(r.view(SGX_REPORT_SIZE), 'QE report');
  const qeReportSignature = r.bytes(64);
  const authSize = r.u16le();
  if (authSize > r.remaining) throw inputError('DCAP_BAD_LENGTH', `QE authentication data size ${authSize} exceeds the ${r.remaining} byte(s) left`);
  const qeAuthData = r.bytes(authSize);
  const certification = certificationData(r, 'QE report certification data');
  if (r.remaining !== 0) throw inputError('DCAP_BAD_LENGTH', `QE report certification data has ${r.remaining} byte(s) after its nested certification data`);
  return { qeReport, qeReportSignature, qeAuthData, certification };
}

function readHeader(r: ByteReader): QuoteHeader {
  const version = r.u16le();
  if (version !== 3 && version !== 4 && version !== 5) throw inputError('DCAP_UNSUPPORTED_VERSION', `quote version ${version} is not supported (3, 4 and 5 are)`);
  const attestationKeyType = r.u16le();
  if (attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256) {
    throw inputError('DCAP_UNSUPPORTED_KEY_TYPE', `attestation key type ${attestationKeyType} is not supported (only 2, ECDSA-256-with-P-256)`);
  }
  const teeTypeRaw = r.u32le();
  let teeType: 'sgx' | 'tdx';
  if (teeTypeRaw === TEE_TYPE_SGX) teeType = 'sgx';
  else if (teeTypeRaw === TEE_TYPE_TDX) teeType = 'tdx';
  else throw inputError('DCAP_UNSUPPORTED_TEE', `TEE type 0x${teeTypeRaw.toString(16)} is neither SGX (0x0) nor TDX (0x81)`);
  if (version === 4 && teeType !== 'tdx') throw inputError('DCAP_UNSUPPORTED_TEE', 'a version 4 quote must be a TDX quote (TEE type 0x81)');
  if (version === 3 && teeType !== 'sgx') throw inputError('DCAP_UNSUPPORTED_TEE', 'a version 3 quote must be an SGX quote (TEE type 0)');
  const qeSvn = r.u16le();
  const pceSvn = r.u16le();
  const qeVendorId = r.bytes(16);
  const userData = r.bytes(20);
  return { version, attestationKeyType, teeType, teeTypeRaw, qeSvn, pceSvn, qeVendorId, userData };
}

const V5_BODY: Record<number, { kind: QuoteBodyKind; size: number; tee: 'sgx' | 'tdx' }> = {
  1: { kind: 'sgx', size: SGX_REPORT_SIZE, tee: 'sgx' },
  2: { kind: 'td10', size: TD10_REPORT_SIZE, tee: 'tdx' },
  3: { kind: 'td15', size: TD15_REPORT_SIZE, tee: 'tdx' },
};

/**
 * Parses a DCAP quote. Framing only decides where the signed region, the signature and the
 * certificates are; nothing in it is trusted until `verifyDcapQuote` has checked the signatures.
 */
export function parseDcapQuote(data: Uint8Array, opts: QuoteParseOptions = {}): DcapQuote {
  if (data.length > MAX_QUOTE_SIZE) throw inputError('DCAP_BAD_LENGTH', `a quote is at most ${MAX_QUOTE_SIZE} bytes, got ${data.length}`);
  const buf = Buffer.from(data);
  const r = new ByteReader(buf, 'DCAP quote');
  const header = readHeader(r);
  let bodyKind: QuoteBodyKind;
  let bodyType: number | undefined;
  if (header.version === 5) {
    bodyType = r.u16le();
    const size = r.u32le();
    const body = V5_BODY[bodyType];
    if (!body) throw inputError('DCAP_UNSUPPORTED_BODY', `quote body type ${bodyType} is not supported (1 SGX, 2 TDX 1.0, 3 TDX 1.5)`);
    if (body.tee !== header.teeType) throw inputError('DCAP_UNSUPPORTED_BODY', `quote body type ${bodyType} does not match TEE type 0x${header.teeTypeRaw.toString(16)}`);
    if (size !== body.size) throw inputError('DCAP_BAD_LENGTH', `quote body type ${bodyType} is ${body.size} bytes, the quote says ${size}`);
    bodyKind = body.kind;
  } else {
    bodyKind = header.version === 3 ? 'sgx' : 'td10';
  }
  const bodySize = bodyKind === 'sgx' ? SGX_REPORT_SIZE : bodyKind === 'td10' ? TD10_REPORT_SIZE : TD15_REPORT_SIZE;
  const bodyBytes = r.view(bodySize);
  const signedLength = r.offset;
  const sgx = bodyKind === 'sgx' ? parseEnclaveReport(bodyBytes, 'quote enclave report') : undefined;
  const td = bodyKind === 'sgx' ? undefined : parseTdReport(bodyBytes, bodyKind);

  const sigLen = r.u32le();
  if (sigLen > r.remaining) throw inputError('DCAP_BAD_LENGTH', `quote signature data length 0x${sigLen.toString(16)} exceeds the 0x${r.remaining.toString(16)} byte(s) left`);
  const sr = new ByteReader(r.view(sigLen), 'quote signature data');
  const signature = sr.bytes(64);
  const attestationKey = sr.bytes(64);
  let signatureData: QuoteSignatureData;
  if (header.version === 3) {
    const qeReport = parseEnclaveReport(sr.view(SGX_REPORT_SIZE), 'QE report');
    const qeReportSignature = sr.bytes(64);
    const authSize = sr.u16le();
    if (authSize > sr.remaining) throw inputError('DCAP_BAD_LENGTH', `QE authentication data size ${authSize} exceeds the ${sr.remaining} byte(s) left`);
    const qeAuthData = sr.bytes(authSize);
    const certification = certificationData(sr, 'quote signature data');
    signatureData = { signature, attestationKey, qeReport, qeReportSignature, qeAuthData, certification };
  } else {
    const outer = certificationData(sr, 'quote signature data');
    if (outer.type !== CERT_DATA_QE_REPORT) {
      throw inputError('DCAP_UNSUPPORTED_CERT_DATA', `certification data type ${outer.type} is not supported in a version ${header.version} quote (6, QE report certification data, is)`);
    }
    signatureData = { signature, attestationKey, ...qeReportCertification(outer.data), outerCertificationType: outer.type };
  }
  if (sr.remaining !== 0) throw inputError('DCAP_BAD_LENGTH', `quote signature data has ${sr.remaining} byte(s) after its certification data`);
  if (signatureData.certification.type !== CERT_DATA_PCK_CHAIN) {
    throw inputError('DCAP_UNSUPPORTED_CERT_DATA', `certification data type ${signatureData.certification.type} is not supported (5, the PCK certificate chain, is)`);
  }
  const end = r.offset;
  const rest = buf.subarray(end);
  const trailing = { length: rest.length, allZero: isAllZero(rest) };
  if (!trailing.allZero && !opts.allowTrailingBytes) {
    throw inputError('DCAP_TRAILING_BYTES', `${rest.length} non-zero byte(s) follow the quote's end at offset 0x${end.toString(16)}; they are not signed (allow them explicitly to ignore them)`);
  }
  return {
    raw: Buffer.from(buf.subarray(0, end)),
    header,
    bodyKind,
    bodyType,
    sgx,
    td,
    signedLength,
    signatureData,
    trailing,
  };
}
