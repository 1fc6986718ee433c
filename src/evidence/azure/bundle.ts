import { inputError } from '../../errors.js';
import { fromHex } from '../../bytes/hex.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import { TPM_ALG } from '../tpm/constants.js';

/**
 * The JSON shapes Azure CVM evidence travels in (confidential-containers/trustee's az-snp-vtpm
 * and az-tdx-vtpm verifiers, and the az-cvm-vtpm crate):
 *  - vTPM quote: {signature, message (TPMS_ATTEST), pcrs[24 × SHA-256]}, as hex strings or byte arrays;
 *  - SNP v0: {quote, report (HCL report bytes), vcek (PEM)};
 *  - SNP v1/v2: {version, tpm_quote, hcl_report (base64url), vcek (base64url DER)};
 *  - TDX v0: {tpm_quote, hcl_report, td_quote} (byte arrays).
 * In v2, the HCL's user-data carries the report data the verifier expects.
 */

export interface AzureVtpmQuote {
  /** Raw RSASSA-PKCS1-v1_5 signature (the TPMT_SIGNATURE's payload only). */
  signature: Buffer;
  /** TPMS_ATTEST. */
  message: Buffer;
  /** SHA-256 PCR values, index = position. */
  pcrs: Buffer[];
}

export interface AzureEvidence {
  format: 'snp-v0' | 'snp-v1' | 'snp-v2' | 'tdx-v0';
  version: 0 | 1 | 2;
  tee: 'snp' | 'tdx';
  hclReport: Buffer;
  tpmQuote: AzureVtpmQuote;
  /** SNP: the VCEK (and any chain) that came with the evidence. */
  certificates: Certificate[];
  /** TDX: the TD quote (may carry zero padding). */
  tdQuote: Buffer | undefined;
}

function bad(why: string): never {
  throw inputError('AZURE_BAD_EVIDENCE', `Azure evidence: ${why}`);
}

const MAX_ARRAY = 1 << 16;

/** Bytes from a JSON value: an array of 0-255 integers, or a hex string. */
function bytesOf(v: unknown, where: string, encodings: readonly ('hex' | 'base64url' | 'array')[] = ['hex', 'array']): Buffer {
  if (Array.isArray(v) && encodings.includes('array')) {
    if (v.length > MAX_ARRAY) bad(`${where} is longer than ${MAX_ARRAY} bytes`);
    if (!v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 255)) bad(`${where} is not an array of bytes`);
    return Buffer.from(v as number[]);
  }
  if (typeof v === 'string') {
    if (encodings.includes('hex') && /^[0-9a-fA-F]*$/.test(v) && v.length % 2 === 0) return fromHex(v, where);
    if (encodings.includes('base64url') && /^[A-Za-z0-9_\-+/]*={0,2}$/.test(v)) return Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  }
  return bad(`${where} is not ${encodings.join(' or ')}`);
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(`${where} is not an object`);
  return v as Record<string, unknown>;
}

/** The vTPM quote JSON ({signature, message, pcrs}). */
export function parseAzureVtpmQuote(v: unknown, where = 'tpm quote'): AzureVtpmQuote {
  const o = obj(v, where);
  const signature = bytesOf(o.signature, `${where}.signature`);
  const message = bytesOf(o.message, `${where}.message`);
  if (!Array.isArray(o.pcrs)) bad(`${where}.pcrs is not an array`);
  if (o.pcrs.length > 32) bad(`${where}.pcrs has ${o.pcrs.length} entries, at most 32`);
  const pcrs = o.pcrs.map((p, i) => {
    const b = bytesOf(p, `${where}.pcrs[${i}]`);
    if (b.length !== 32) bad(`${where}.pcrs[${i}] is ${b.length} bytes, a SHA-256 PCR is 32`);
    return b;
  });
  if (signature.length === 0 || message.length === 0) bad(`${where} has an empty signature or message`);
  return { signature, message, pcrs };
}

/** The raw RSA signature as the TPMT_SIGNATURE the vTPM produced (RSASSA, SHA-256). */
export function azureTpmtSignature(q: AzureVtpmQuote): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt16BE(TPM_ALG.RSASSA, 0);
  head.writeUInt16BE(TPM_ALG.SHA256, 2);
  head.writeUInt16BE(q.signature.length, 4);
  return Buffer.concat([head, q.signature]);
}

/** Parses any of the evidence bundle shapes (JSON text). */
export function parseAzureEvidence(text: string): AzureEvidence {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    bad('is not valid JSON');
  }
  const o = obj(doc, 'the evidence');
  if ('td_quote' in o) {
    return {
      format: 'tdx-v0',
      version: 0,
      tee: 'tdx',
      hclReport: bytesOf(o.hcl_report, 'hcl_report'),
      tpmQuote: parseAzureVtpmQuote(o.tpm_quote, 'tpm_quote'),
      certificates: [],
      tdQuote: bytesOf(o.td_quote, 'td_quote'),
    };
  }
  if ('version' in o) {
    const version = o.version;
    if (version !== 1 && version !== 2) bad(`version ${JSON.stringify(version)} is unknown (1 and 2 are)`);
    const vcek = bytesOf(o.vcek, 'vcek', ['base64url']);
    return {
      format: version === 1 ? 'snp-v1' : 'snp-v2',
      version,
      tee: 'snp',
      hclReport: bytesOf(o.hcl_report, 'hcl_report', ['base64url']),
      tpmQuote: parseAzureVtpmQuote(o.tpm_quote, 'tpm_quote'),
      certificates: parseCertificates(vcek, 'vcek'),
      tdQuote: undefined,
    };
  }
  if ('report' in o && 'quote' in o) {
    if (typeof o.vcek !== 'string') bad('vcek is not a PEM string');
    return {
      format: 'snp-v0',
      version: 0,
      tee: 'snp',
      hclReport: bytesOf(o.report, 'report'),
      tpmQuote: parseAzureVtpmQuote(o.quote, 'quote'),
      certificates: parseCertificates(o.vcek, 'vcek'),
      tdQuote: undefined,
    };
  }
  return bad('is none of the known shapes (SNP v0 {quote, report, vcek}, v1/v2 {version, tpm_quote, hcl_report, vcek}, TDX {tpm_quote, hcl_report, td_quote})');
}
