import { inputError } from '../errors.js';
import { SNP_REPORT_SIZE } from './snp/report.js';
import { decodeSnpEvidence } from './snp/input.js';
import { HCL_MAGIC, HCL_RUNTIME_HEADER_OFFSET } from './azure/hcl.js';
import { parseGceAttestation } from './gcp/attestation.js';
import { decodeNitroInput } from './nitro/document.js';

/**
 * Which evidence a file holds, from its bytes alone (the `--kind auto` of `coffer evidence
 * verify`). Detection only routes: every kind is then parsed strictly and verified, so a file that
 * looks like one kind but is not fails there with that kind's error.
 */
export type EvidenceKind = 'snp' | 'tdx' | 'sgx' | 'tpm' | 'azure-snp' | 'azure-tdx' | 'gcp' | 'nitro';

export const EVIDENCE_KINDS: readonly EvidenceKind[] = ['snp', 'tdx', 'sgx', 'tpm', 'azure-snp', 'azure-tdx', 'gcp', 'nitro'];

export interface DetectedEvidence {
  kind: EvidenceKind;
  /** How it was recognised, e.g. "HCL report", "COSE_Sign1", "Azure evidence v1 JSON". */
  form: string;
}

const TPM_GENERATED = 0xff544347;

function jsonShape(text: string): DetectedEvidence | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const o = doc as Record<string, unknown>;
  if ('td_quote' in o && 'hcl_report' in o) return { kind: 'azure-tdx', form: 'Azure TDX evidence JSON' };
  if ('hcl_report' in o && 'version' in o) return { kind: 'azure-snp', form: `Azure SNP evidence v${String(o.version)} JSON` };
  if ('report' in o && 'quote' in o && 'vcek' in o) return { kind: 'azure-snp', form: 'Azure SNP evidence v0 JSON' };
  const att = o.attestation;
  if (att !== null && typeof att === 'object' && 'nitro' in att) return { kind: 'nitro', form: 'NitroTPM bundle JSON' };
  if ('signature' in o && 'message' in o && 'pcrs' in o) return { kind: 'tpm', form: 'TPM quote JSON {signature, message, pcrs}' };
  return undefined;
}

function dcapKind(b: Buffer): DetectedEvidence | undefined {
  if (b.length < 48) return undefined;
  const version = b.readUInt16LE(0);
  const akType = b.readUInt16LE(2);
  const tee = b.readUInt32LE(4);
  if (![3, 4, 5].includes(version) || akType !== 2) return undefined;
  if (tee === 0x81) return { kind: 'tdx', form: `DCAP quote v${version}` };
  if (tee === 0) return { kind: 'sgx', form: `DCAP quote v${version}` };
  return undefined;
}

/** Detects the kind of evidence in `data`; unknown input is a CofferError (EVIDENCE_UNKNOWN_KIND, exit 2). */
export function detectEvidenceKind(data: Uint8Array): DetectedEvidence {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length >= 4 && b.subarray(0, 4).toString('latin1') === HCL_MAGIC) {
    const type = b.length >= HCL_RUNTIME_HEADER_OFFSET + 12 ? b.readUInt32LE(HCL_RUNTIME_HEADER_OFFSET + 8) : -1;
    return { kind: type === 4 ? 'azure-tdx' : 'azure-snp', form: 'Azure HCL report' };
  }
  if (b.length === SNP_REPORT_SIZE) return { kind: 'snp', form: 'raw SEV-SNP report' };
  const dcap = dcapKind(b);
  if (dcap) return dcap;
  // A bare TPMS_ATTEST carries no signature and names no AK, so it is not evidence by itself.
  if (b.length >= 4 && b.readUInt32BE(0) === TPM_GENERATED) {
    throw inputError('EVIDENCE_UNKNOWN_KIND', 'this is a bare TPMS_ATTEST (TPM2_Quote message) without its signature: give the quote as JSON {signature, message, pcrs} with --ak');
  }
  const first = b[0] ?? 0;
  if (first === 0x84 || first === 0xd2) return { kind: 'nitro', form: 'COSE_Sign1 (CBOR)' };
  // protobuf: field 1 (ak_pub), length-delimited.
  if (first === 0x0a) {
    try {
      parseGceAttestation(b);
      return { kind: 'gcp', form: 'go-tpm-tools Attestation protobuf' };
    } catch {
      // not a GCE attestation; keep looking
    }
  }
  const text = b.subarray(0, Math.min(b.length, 1 << 22)).toString('utf8').trim();
  if (text.startsWith('{')) {
    const j = jsonShape(text);
    if (j) return j;
  }
  if (text.length > 0 && /^[A-Za-z0-9+/=_\-\s]+$/.test(text)) {
    const nitro = decodeNitroInput(b);
    if ((nitro[0] === 0x84 || nitro[0] === 0xd2)) return { kind: 'nitro', form: 'COSE_Sign1 (base64)' };
  }
  try {
    const ev = decodeSnpEvidence(b);
    return { kind: 'snp', form: ev.form === 'tsm-cbor' ? 'configfs-tsm CBOR' : `SEV-SNP report (${ev.form})` };
  } catch {
    // fall through
  }
  throw inputError('EVIDENCE_UNKNOWN_KIND', `cannot tell what evidence this is (${b.length} bytes): not an SEV-SNP report, DCAP quote, Azure HCL report or evidence JSON, Nitro COSE_Sign1, GCE attestation or TPM quote; give --kind`);
}
