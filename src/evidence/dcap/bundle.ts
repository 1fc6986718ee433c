import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inputError } from '../../errors.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import { parseCrl, type Crl } from '../../pki/crl.js';
import { parseQeIdentity, parseTcbInfo, qeIdentityFromParts, tcbInfoFromParts, type QeIdentity, type TcbInfo } from './collateral.js';
import type { DcapCollateral } from './verify.js';

/**
 * Offline collateral at the edge (this module reads files; verification never does). Accepted:
 *  - a directory whose files are each one of: a PCS TCB info response (`{"tcbInfo": ...}`), a PCS
 *    enclave identity response (`{"enclaveIdentity": ...}`), a PEM bundle of certificates (the
 *    TCB-Info-Issuer-Chain, the PCK CRL issuer chain), or a CRL (DER or PEM);
 *  - one JSON file in the dcap-qvl "QuoteCollateralV3" form: `tcb_info` / `qe_identity` (the inner
 *    JSON text exactly as signed), `tcb_info_signature` / `qe_identity_signature` (hex),
 *    `tcb_info_issuer_chain` / `qe_identity_issuer_chain` / `pck_crl_issuer_chain` (PEM),
 *    `pck_crl` / `root_ca_crl` (hex DER); or a PCS TCB info or enclave identity response alone.
 * Collateral is untrusted input: its signatures and dates are checked by `verifyDcapQuote`.
 */
export interface CollateralBundle extends DcapCollateral {
  tcbInfos: TcbInfo[];
  qeIdentities: QeIdentity[];
  certificates: Certificate[];
  crls: Crl[];
}

function empty(): CollateralBundle {
  return { tcbInfos: [], qeIdentities: [], certificates: [], crls: [] };
}

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    throw inputError('FILE_UNREADABLE', `collateral file ${path} cannot be read`);
  }
}

function str(o: Record<string, unknown>, k: string, what: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw inputError('DCAP_BAD_COLLATERAL', `${what}: "${k}" must be a string`);
  return v;
}

function hexDer(s: string, what: string): Buffer {
  const clean = s.trim();
  if (!/^([0-9a-fA-F]{2})+$/.test(clean)) throw inputError('DCAP_BAD_COLLATERAL', `${what} must be hex-encoded DER`);
  return Buffer.from(clean, 'hex');
}

function addJson(out: CollateralBundle, data: Buffer, what: string): void {
  const text = data.toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw inputError('DCAP_BAD_COLLATERAL', `${what} is not valid JSON`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw inputError('DCAP_BAD_COLLATERAL', `${what} is not a JSON object`);
  const o = doc as Record<string, unknown>;
  if ('tcbInfo' in o) return void out.tcbInfos.push(parseTcbInfo(data, what));
  if ('enclaveIdentity' in o) return void out.qeIdentities.push(parseQeIdentity(data, what));
  const tcb = str(o, 'tcb_info', what);
  const qe = str(o, 'qe_identity', what);
  if (tcb === undefined && qe === undefined) throw inputError('DCAP_BAD_COLLATERAL', `${what} holds neither a TCB info nor a QE identity`);
  if (tcb !== undefined) out.tcbInfos.push(tcbInfoFromParts(tcb, str(o, 'tcb_info_signature', what) ?? '', `${what} tcb_info`));
  if (qe !== undefined) out.qeIdentities.push(qeIdentityFromParts(qe, str(o, 'qe_identity_signature', what) ?? '', `${what} qe_identity`));
  for (const k of ['tcb_info_issuer_chain', 'qe_identity_issuer_chain', 'pck_crl_issuer_chain']) {
    const pem = str(o, k, what);
    if (pem !== undefined) out.certificates.push(...parseCertificates(pem, `${what} ${k}`));
  }
  for (const k of ['pck_crl', 'root_ca_crl']) {
    const crl = str(o, k, what);
    if (crl !== undefined) out.crls.push(parseCrl(crl.includes('-----BEGIN') ? crl : hexDer(crl, `${what} ${k}`)));
  }
}

function addFile(out: CollateralBundle, data: Buffer, what: string): void {
  const head = data.subarray(0, 64).toString('latin1').trimStart();
  if (head.startsWith('{')) return addJson(out, data, what);
  if (head.includes('-----BEGIN X509 CRL')) return void out.crls.push(parseCrl(data));
  if (head.includes('-----BEGIN CERTIFICATE')) return void out.certificates.push(...parseCertificates(data, what));
  try {
    out.crls.push(parseCrl(data));
  } catch {
    out.certificates.push(...parseCertificates(data, what));
  }
}

/** Reads an offline collateral bundle: a directory or one JSON file (see above). */
export function loadCollateral(path: string): CollateralBundle {
  const out = empty();
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch {
    throw inputError('FILE_UNREADABLE', `collateral ${path} does not exist`);
  }
  if (!dir) {
    addFile(out, read(path), path);
    return out;
  }
  for (const name of readdirSync(path).sort()) {
    const p = join(path, name);
    if (name.startsWith('.') || !statSync(p).isFile()) continue;
    addFile(out, read(p), p);
  }
  return out;
}

/** Merges bundles (several --collateral options). */
export function mergeCollateral(...bundles: CollateralBundle[]): CollateralBundle {
  const out = empty();
  for (const b of bundles) {
    out.tcbInfos.push(...b.tcbInfos);
    out.qeIdentities.push(...b.qeIdentities);
    out.certificates.push(...b.certificates);
    out.crls.push(...b.crls);
  }
  return out;
}
