import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { isAllZero, toHex } from '../../bytes/hex.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import type { Crl } from '../../pki/crl.js';
import { verifyChain, type TrustAnchor } from '../../pki/chain.js';
import { loadPinnedRoot } from '../../pki/roots.js';
import { parseDcapQuote, type DcapQuote, type QuoteParseOptions } from './quote.js';
import { readPckExtensions, type PckExtensions } from './pck.js';
import type { QeIdentity, SignedJson, TcbInfo, TcbStatus } from './collateral.js';
import { convergeTcbStatus, isProblem, platformTcb, qeTcb, tdxModuleTcb, type PlatformTcb, type QeTcb, type TdxModuleTcb } from './tcb.js';

export const INTEL_ROOT_ID = 'intel-sgx-root-ca';
export const PCK_LEAF_CN = 'Intel SGX PCK Certificate';
export const TCB_SIGNING_CN = 'Intel SGX TCB Signing';
/** The QE vendor ID of Intel's quoting enclaves (the only vendor Coffer supports). */
export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607';

/** Who signed the quoting enclave, and which product of theirs it is. */
export interface QeSigner {
  mrSigner: Buffer;
  isvProdId: number;
}

/**
 * The minimum QE identity enforced on every quote, collateral or not: Intel's QE (SGX, ISVPRODID
 * 1) and TD_QE (TDX, ISVPRODID 2), as Intel's QE identity collateral names them (the vectors'
 * qeIdentity_TD_QE_*.json: MRSIGNER dc9e2a7c…, isvprodid 2). Without it, a PCK key could sign any
 * enclave's report as "the QE" and nothing would notice until a QE identity was supplied.
 */
export const INTEL_QE_SIGNERS: Readonly<Record<'sgx' | 'tdx', QeSigner>> = {
  sgx: { mrSigner: Buffer.from('8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff', 'hex'), isvProdId: 1 },
  tdx: { mrSigner: Buffer.from('dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5', 'hex'), isvProdId: 2 },
};

/** Offline collateral: any number of TCB infos and QE identities (the right ones are chosen), certificates and CRLs. */
export interface DcapCollateral {
  tcbInfos?: readonly TcbInfo[];
  qeIdentities?: readonly QeIdentity[];
  /** The TCB signing chain (Intel SGX TCB Signing, with or without the root) and any CRL issuer chain. */
  certificates?: readonly Certificate[];
  /** PCK CRL (Platform or Processor CA) and Root CA CRL; the ones that belong to a chain are applied to it. */
  crls?: readonly Crl[];
}

export interface DcapVerifyOptions extends QuoteParseOptions {
  at: Date;
  collateral?: DcapCollateral;
  /** Trust anchors; default the pinned Intel SGX Root CA. Only tests and explicit callers pass others. */
  roots?: readonly TrustAnchor[];
  /** Require this TEE (a `coffer tdx verify` refuses an SGX quote and vice versa). */
  tee?: 'sgx' | 'tdx';
  /** The QE signer to require; default Intel's production QE / TD_QE. Only tests with their own `roots` pass another. */
  qeSigner?: QeSigner;
}

export interface DcapTcbResult {
  /** The converged status (platform, TDX module, QE). */
  status: TcbStatus;
  advisoryIds: string[];
  platform: PlatformTcb;
  tdxModule: TdxModuleTcb | undefined;
  qe: QeTcb | undefined;
  tcbInfo: { fmspc: string; issueDate: string; nextUpdate: string; tcbEvaluationDataNumber: number; version: number; id: string };
}

export interface DcapVerified {
  quote: DcapQuote;
  pckCertificate: Certificate;
  pck: PckExtensions;
  /** PCK leaf, Platform/Processor CA, root. */
  chain: Certificate[];
  /** Present when a TCB info for the platform's FMSPC was supplied. */
  tcb: DcapTcbResult | undefined;
  /** Present when a QE identity was supplied (even without a TCB info). */
  qe: QeTcb | undefined;
  /** Whether any TCB info or QE identity was supplied at all. */
  collateralGiven: boolean;
  checks: Check[];
}

function failWith(checks: Check[], name: string, code: string, description: string, extra: Partial<Check> = {}): never {
  checks.push(fail(name, code, description, extra));
  throw verifyError(code, description, { checks });
}

function withChecks(e: unknown, checks: Check[], prefix?: string): never {
  if (e instanceof CofferError) {
    const inner = ((e.details?.checks as Check[] | undefined) ?? []).map((c) => (prefix ? { ...c, name: `${prefix}.${c.name}` } : c));
    throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks: [...checks, ...inner] } });
  }
  throw e;
}

const keyCache = new Map<string, KeyObject | null>();
/** A P-256 public key from x || y; null when the point is not on the curve. */
export function p256Key(xy: Buffer): KeyObject | null {
  const id = xy.toString('hex');
  const hit = keyCache.get(id);
  if (hit !== undefined) return hit;
  let key: KeyObject | null;
  try {
    key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: xy.subarray(0, 32).toString('base64url'), y: xy.subarray(32, 64).toString('base64url') }, format: 'jwk' });
  } catch {
    key = null;
  }
  if (keyCache.size >= 256) keyCache.clear();
  keyCache.set(id, key);
  return key;
}

function es256(data: Uint8Array, sig: Buffer, key: KeyObject | null): boolean {
  if (!key || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return false;
  try {
    return cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}

/** The PEM chain of certification data type 5: PEM blocks and nothing else but whitespace and a final NUL. */
function pckChain(data: Buffer): Certificate[] {
  const text = data.toString('latin1');
  const rest = text.replace(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g, '');
  if (!/^[\s\0]*$/.test(rest)) throw inputError('DCAP_BAD_CERT_DATA', 'the PCK certificate chain in the quote holds something other than PEM certificates');
  return parseCertificates(text, 'PCK certificate chain in the quote');
}

function anchorsOf(opts: DcapVerifyOptions): readonly TrustAnchor[] {
  return opts.roots ?? [loadPinnedRoot(INTEL_ROOT_ID)];
}

/** CRLs whose issuer is one of `names`: each chain gets the lists that can speak about it. */
function crlsFor(crls: readonly Crl[], names: readonly string[]): Crl[] {
  return crls.filter((c) => names.includes(c.issuer));
}

// Collateral is parsed once and checked on every quote: its signature result is cached per parsed
// document (by identity) and signing certificate, as chain.ts caches certificate signatures.
const collateralSigCache = new WeakMap<SignedJson, Map<string, boolean>>();
function collateralSignedBy(doc: SignedJson, cert: Certificate): boolean {
  let m = collateralSigCache.get(doc);
  if (!m) collateralSigCache.set(doc, (m = new Map()));
  const hit = m.get(cert.sha256);
  if (hit !== undefined) return hit;
  const ok = es256(doc.signed, doc.signature, cert.publicKey);
  m.set(cert.sha256, ok);
  return ok;
}

/**
 * Checks one signed collateral document: the signing certificate (Intel SGX TCB Signing, among
 * `certificates`) chains to the anchors at `at`, its key verifies the signature over the exact
 * signed bytes, and `at` lies within [issueDate, nextUpdate].
 */
export function verifyCollateralSignature(
  doc: SignedJson & { issueDate: Date; nextUpdate: Date },
  label: string,
  name: string,
  certificates: readonly Certificate[],
  anchors: readonly TrustAnchor[],
  at: Date,
  crls: readonly Crl[],
  checks: Check[],
): void {
  const signers = certificates.filter((c) => !c.isCa && c.subjectCn === TCB_SIGNING_CN);
  if (signers.length === 0) {
    failWith(checks, `${name}.signer`, 'DCAP_NO_TCB_SIGNING_CERT', `no "${TCB_SIGNING_CN}" certificate was supplied to check the ${label} signature (add the TCB-Info-Issuer-Chain to the collateral)`);
  }
  // Intel re-issues the TCB Signing certificate with the same key: of the certificates whose key
  // verifies, prefer one valid at `at` (the chain check below still judges the one chosen).
  const t = at.getTime();
  const verifying = signers.filter((c) => collateralSignedBy(doc, c));
  const signer = verifying.find((c) => c.notBefore.getTime() <= t && t <= c.notAfter.getTime()) ?? verifying[0];
  if (!signer) failWith(checks, `${name}.signature`, 'DCAP_COLLATERAL_BAD_SIGNATURE', `the ${label} signature does not verify with the ${TCB_SIGNING_CN} key`);
  checks.push(pass(`${name}.signature`, `ECDSA P-256/SHA-256 signature over the ${label} JSON (${doc.signed.length} bytes as served) verifies with ${TCB_SIGNING_CN}`));
  try {
    const intermediates = certificates.filter((c) => c.isCa && !c.isSelfIssued);
    const names = [signer.subject, ...anchors.map((a) => a.cert.subject)];
    const chain = verifyChain(signer, intermediates, anchors, { at, crls: crlsFor(crls, names) });
    checks.push(...chain.checks.map((c) => ({ ...c, name: `${name}.${c.name}` })));
  } catch (e) {
    withChecks(e, checks, name);
  }
  const window = `${doc.issueDate.toISOString()} .. ${doc.nextUpdate.toISOString()}`;
  if (at.getTime() < doc.issueDate.getTime()) failWith(checks, `${name}.validity`, 'DCAP_COLLATERAL_NOT_YET_VALID', `the ${label} was issued at ${doc.issueDate.toISOString()}, after the verification time ${at.toISOString()}`, { expected: window, found: at.toISOString() });
  if (at.getTime() > doc.nextUpdate.getTime()) failWith(checks, `${name}.validity`, 'DCAP_COLLATERAL_EXPIRED', `the ${label} expired at its nextUpdate ${doc.nextUpdate.toISOString()} (checked at ${at.toISOString()})`, { expected: window, found: at.toISOString() });
  checks.push(pass(`${name}.validity`, `the ${label} is current at ${at.toISOString()}`, { expected: window, found: at.toISOString() }));
}

/**
 * Verifies an Intel DCAP quote (SGX v3, TDX v4/v5), signatures first:
 *  1. the quote signature (ECDSA P-256 over header and body) with the attestation key;
 *  2. the QE report signature with the PCK leaf's key;
 *  3. the QE report data binding: SHA-256(attestation key || QE auth data) then 32 zero bytes;
 *  4. the PCK chain (leaf → Platform or Processor CA → the pinned Intel SGX Root CA), CRLs;
 *  5. the PCK certificate's SGX extensions;
 *  6. with collateral: the TCB info and QE identity signatures (TCB signing chain to the same
 *     root) and dates, then the TCB level and status, TDX module and QE identity as Intel's QVL.
 * A TCB status of Revoked, or a TCB that no level covers, fails here; which of the other statuses
 * are acceptable is a policy decision left to validation. Throws a CofferError whose
 * `details.checks` lists the checks up to the first failure.
 */
export function verifyDcapQuote(input: Uint8Array, opts: DcapVerifyOptions): DcapVerified {
  const checks: Check[] = [];
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the verification time is not a valid date');
  const quote = parseDcapQuote(input, opts);
  const { header, signatureData: sd } = quote;
  if (opts.tee && header.teeType !== opts.tee) {
    throw inputError('DCAP_WRONG_TEE', `this is ${header.teeType === 'tdx' ? 'a TDX' : 'an SGX'} quote, not ${opts.tee === 'tdx' ? 'a TDX' : 'an SGX'} quote`);
  }
  const bodyName = quote.bodyKind === 'sgx' ? 'SGX enclave report' : quote.bodyKind === 'td10' ? 'TDX 1.0 TD report' : 'TDX 1.5 TD report';
  checks.push(pass('dcap.format', `quote v${header.version} (${header.teeType.toUpperCase()}, ${bodyName}, ECDSA-256-with-P-256) is well formed${quote.trailing.length > 0 ? `; ${quote.trailing.length} byte(s) after its end ${quote.trailing.allZero ? 'are zero padding' : 'are NOT zero and were ignored as allowed (unsigned)'}` : ''}`));

  // 1. The quote signature, before any field of the quote is believed.
  if (!es256(quote.raw.subarray(0, quote.signedLength), sd.signature, p256Key(sd.attestationKey))) {
    failWith(checks, 'dcap.quote-signature', 'DCAP_QUOTE_BAD_SIGNATURE', `the quote's ECDSA P-256 signature over bytes 0x000-0x${(quote.signedLength - 1).toString(16)} does not verify with its attestation key`);
  }
  checks.push(pass('dcap.quote-signature', `ECDSA P-256/SHA-256 signature over header and body (bytes 0x000-0x${(quote.signedLength - 1).toString(16)}) verifies with the attestation key`));

  // The header is now authenticated: only Intel's quoting enclaves are understood.
  const vendor = toHex(header.qeVendorId);
  if (vendor !== INTEL_QE_VENDOR_ID) {
    failWith(checks, 'dcap.qe-vendor', 'DCAP_UNSUPPORTED_QE_VENDOR', `the quote's QE vendor ID ${vendor} is not Intel's: only Intel's quoting enclaves are supported`, { expected: INTEL_QE_VENDOR_ID, found: vendor });
  }
  checks.push(pass('dcap.qe-vendor', "the QE vendor ID is Intel's", { found: vendor }));
  // Reserved fields are judged only once signed (QVL does not require them zero): a non-zero one
  // means a layout Coffer does not know, so the report is refused rather than half-read.
  if (quote.sgx && quote.sgx.reservedNonZero.length > 0) {
    failWith(checks, 'dcap.reserved', 'DCAP_RESERVED_NONZERO', `the enclave report's reserved field(s) ${quote.sgx.reservedNonZero.join(', ')} are not zero: a report layout Coffer does not know`);
  }

  // 2. The QE report, signed by the PCK key.
  const certs = pckChain(sd.certification.data);
  const leaves = certs.filter((c) => !c.isCa && c.subjectCn === PCK_LEAF_CN);
  if (leaves.length !== 1) {
    failWith(checks, 'dcap.pck-certificate', 'DCAP_NO_PCK_CERTIFICATE', `the quote's certification data must hold exactly one "${PCK_LEAF_CN}", it holds ${leaves.length}`);
  }
  const leaf = leaves[0] as Certificate;
  if (!es256(sd.qeReport.raw, sd.qeReportSignature, leaf.publicKey)) {
    failWith(checks, 'dcap.qe-report-signature', 'DCAP_QE_REPORT_BAD_SIGNATURE', `the QE report's ECDSA P-256 signature does not verify with the PCK certificate's key (serial ${leaf.serial})`);
  }
  checks.push(pass('dcap.qe-report-signature', `the QE report is signed by the PCK certificate's key (serial ${leaf.serial})`));
  if (sd.qeReport.reservedNonZero.length > 0) {
    failWith(checks, 'dcap.reserved', 'DCAP_RESERVED_NONZERO', `the QE report's reserved field(s) ${sd.qeReport.reservedNonZero.join(', ')} are not zero: a report layout Coffer does not know`);
  }
  checks.push(pass('dcap.reserved', `reserved fields of the signed ${quote.sgx ? 'enclave report and ' : ''}QE report are zero`));

  // 3. The QE vouches for the attestation key through its report data.
  const binding = createHash('sha256').update(sd.attestationKey).update(sd.qeAuthData).digest();
  const rd = sd.qeReport.reportData;
  if (!rd.subarray(0, 32).equals(binding) || !isAllZero(rd.subarray(32))) {
    failWith(checks, 'dcap.qe-binding', 'DCAP_QE_BINDING_MISMATCH', "the QE report data is not SHA-256(attestation key || QE authentication data) followed by 32 zero bytes: the attestation key is not the one the QE certified", {
      expected: `${toHex(binding)}${'0'.repeat(64)}`,
      found: toHex(rd),
    });
  }
  checks.push(pass('dcap.qe-binding', 'QE report data = SHA-256(attestation key || QE auth data) || 0³²: the QE certified the attestation key', { found: toHex(binding) }));

  // 4. PCK chain to the pinned root.
  const anchors = anchorsOf(opts);
  const allCrls = opts.collateral?.crls ?? [];
  let chain;
  try {
    // The quote's own root goes in as a candidate too: a chain to a look-alike root then fails as
    // PKI_UNTRUSTED_ROOT (it is not the pinned one), not as a bare signature failure.
    const intermediates = certs.filter((c) => c.isCa);
    const names = [...certs.map((c) => c.subject), ...anchors.map((a) => a.cert.subject)];
    chain = verifyChain(leaf, intermediates, anchors, { at: opts.at, crls: crlsFor(allCrls, names) });
  } catch (e) {
    withChecks(e, checks);
  }
  checks.push(...chain.checks);
  if (chain.path.length !== 3) failWith(checks, 'pki.chain', 'PKI_CHAIN_INCOMPLETE', `expected PCK certificate → PCK Platform/Processor CA → Intel SGX Root CA, got a chain of ${chain.path.length}`);
  const pckCrl = allCrls.some((c) => c.issuer === chain.path[1]?.subject);
  const rootCrl = allCrls.some((c) => c.issuer === chain.path[2]?.subject);
  if (!pckCrl) checks.push(notChecked('pki.revocation.pck', `no CRL of ${chain.path[1]?.subjectCn ?? 'the PCK CA'} was supplied: a revoked PCK certificate would not be noticed`));
  if (!rootCrl) checks.push(notChecked('pki.revocation.root', 'no Intel SGX Root CA CRL was supplied: a revoked PCK CA or TCB signing certificate would not be noticed'));

  // 5. What the PCK certificate says about the platform.
  let pck: PckExtensions;
  try {
    pck = readPckExtensions(leaf);
  } catch (e) {
    if (e instanceof CofferError) failWith(checks, 'dcap.pck-extensions', e.code, e.message);
    throw e;
  }
  checks.push(pass('dcap.pck-extensions', `PCK certificate (${pck.ca} CA): FMSPC ${toHex(pck.fmspc)}, PCE-ID ${toHex(pck.pceId)}, PCESVN ${pck.tcb.pceSvn}, SGX TCB ${pck.tcb.components.join('.')}`));

  // 5b. The minimum QE identity, with or without collateral: the QE report (now signed by a PCK
  // key that chains to the root) must be Intel's QE / TD_QE, not debuggable.
  const qeName = header.teeType === 'tdx' ? 'TD_QE' : 'QE';
  const signer = opts.qeSigner ?? INTEL_QE_SIGNERS[header.teeType];
  const qr = sd.qeReport;
  if (!qr.mrSigner.equals(signer.mrSigner)) {
    failWith(checks, 'dcap.qe-identity.minimum', 'DCAP_QE_IDENTITY_MISMATCH', `the QE report's MRSIGNER is not Intel's ${qeName} signer: the attestation key was certified by some other enclave`, { expected: toHex(signer.mrSigner), found: toHex(qr.mrSigner) });
  }
  if (qr.isvProdId !== signer.isvProdId) {
    failWith(checks, 'dcap.qe-identity.minimum', 'DCAP_QE_IDENTITY_MISMATCH', `the QE report's ISVPRODID is not Intel's ${qeName}`, { expected: String(signer.isvProdId), found: String(qr.isvProdId) });
  }
  if (((qr.attributes[0] ?? 0) & 0x02) !== 0) {
    failWith(checks, 'dcap.qe-identity.minimum', 'DCAP_QE_IDENTITY_MISMATCH', `the QE is a debug enclave (ATTRIBUTES.DEBUG set): its memory, and so the attestation key, is readable by the host`, { expected: 'DEBUG clear', found: toHex(qr.attributes) });
  }
  checks.push(pass('dcap.qe-identity.minimum', `the QE is Intel's ${qeName} (MRSIGNER ${toHex(qr.mrSigner).slice(0, 16)}…, ISVPRODID ${qr.isvProdId}, debug off), ISVSVN ${qr.isvSvn}`, { found: `mrsigner ${toHex(qr.mrSigner)} isvprodid ${qr.isvProdId} isvsvn ${qr.isvSvn}` }));

  // 6. Collateral.
  const col = opts.collateral ?? {};
  const colCerts = col.certificates ?? [];
  const wantId = header.teeType === 'tdx' ? 'TDX' : 'SGX';
  const qeId = header.teeType === 'tdx' ? 'TD_QE' : 'QE';
  let tcb: DcapTcbResult | undefined;
  let qe: QeTcb | undefined;

  // Every supplied document's signature first, before any of its fields picks it or drops it: a
  // tampered document is an error, never a reason to report "NOT CHECKED".
  const allDocs: [SignedJson, string][] = [
    ...(col.tcbInfos ?? []).map((t, n): [SignedJson, string] => [t, `TCB info #${n + 1} (${t.id}, FMSPC ${toHex(t.fmspc)}, issued ${t.issueDate.toISOString()})`]),
    ...(col.qeIdentities ?? []).map((q, n): [SignedJson, string] => [q, `QE identity #${n + 1} (${q.id}, issued ${q.issueDate.toISOString()})`]),
  ];
  if (allDocs.length > 0) {
    const signers = colCerts.filter((c) => !c.isCa && c.subjectCn === TCB_SIGNING_CN);
    if (signers.length === 0) {
      failWith(checks, 'dcap.collateral.signer', 'DCAP_NO_TCB_SIGNING_CERT', `no "${TCB_SIGNING_CN}" certificate was supplied to check the collateral signatures (add the TCB-Info-Issuer-Chain to the collateral)`);
    }
    for (const [doc, label] of allDocs) {
      if (!signers.some((c) => collateralSignedBy(doc, c))) failWith(checks, 'dcap.collateral.signatures', 'DCAP_COLLATERAL_BAD_SIGNATURE', `the supplied ${label} signature does not verify with the ${TCB_SIGNING_CN} key: it was altered or is not Intel's`);
    }
    checks.push(pass('dcap.collateral.signatures', `every supplied collateral document (${allDocs.length}) is signed with the ${TCB_SIGNING_CN} key; the one used is checked in full below`));
  }
  const newestCurrent = <T extends { issueDate: Date; nextUpdate: Date; tcbEvaluationDataNumber: number }>(list: readonly T[]): T | undefined => {
    const current = list.filter((t) => opts.at >= t.issueDate && opts.at <= t.nextUpdate);
    return (current.length > 0 ? current : list).reduce<T | undefined>((best, t) => (!best || t.tcbEvaluationDataNumber > best.tcbEvaluationDataNumber ? t : best), undefined);
  };
  const infos = (col.tcbInfos ?? []).filter((t) => t.fmspc.equals(pck.fmspc) && t.pceId.equals(pck.pceId) && t.id === wantId);
  const info = newestCurrent(infos);
  if (!info) {
    const other = (col.tcbInfos ?? []).map((t) => `${t.id} ${toHex(t.fmspc)}`).join(', ');
    checks.push(notChecked('dcap.tcb', `${allDocs.length === 0 ? 'no collateral was given: ' : ''}no ${wantId} TCB info for FMSPC ${toHex(pck.fmspc)} / PCE-ID ${toHex(pck.pceId)} was supplied${other ? ` (supplied: ${other})` : ''}: the platform's TCB status is unknown`));
  } else {
    verifyCollateralSignature(info, `TCB info (FMSPC ${toHex(info.fmspc)}, issued ${info.issueDate.toISOString()})`, 'dcap.tcb-info', colCerts, anchors, opts.at, allCrls, checks);
    checks.push(pass('dcap.tcb-info.applies', `TCB info ${info.id} v${info.version} is for this platform's FMSPC ${toHex(pck.fmspc)} and PCE-ID ${toHex(pck.pceId)}`));
  }

  const identities = (col.qeIdentities ?? []).filter((q) => q.id === qeId);
  const identity = newestCurrent(identities);
  if (!identity) {
    checks.push(notChecked('dcap.qe-identity', `no ${qeId} identity was supplied: the quoting enclave's identity and TCB are not checked`));
  } else {
    verifyCollateralSignature(identity, `${qeId} identity (issued ${identity.issueDate.toISOString()})`, 'dcap.qe-identity', colCerts, anchors, opts.at, allCrls, checks);
    const r = qeTcb(identity, sd.qeReport);
    if (isProblem(r)) failWith(checks, 'dcap.qe-identity.match', r.code, r.message, 'expected' in r ? { expected: r.expected, found: r.found } : {});
    qe = r;
    checks.push(pass('dcap.qe-identity.match', `the QE is Intel's ${qeId} (MRSIGNER, ISVPRODID, attributes and MISCSELECT match); ISVSVN ${r.isvSvn} is ${r.status}`, { found: r.status }));
  }

  if (info) {
    const td = quote.td;
    const p = platformTcb(info, pck.tcb, td?.teeTcbSvn);
    if (isProblem(p)) failWith(checks, 'dcap.tcb.level', p.code, p.message);
    let mod: TdxModuleTcb | undefined;
    if (td) {
      const m = tdxModuleTcb(info, td);
      if (isProblem(m)) failWith(checks, 'dcap.tdx-module', m.code, m.message);
      mod = m;
      checks.push(
        m
          ? pass('dcap.tdx-module', `TDX module ${m.identity}: MRSIGNERSEAM and SEAMATTRIBUTES match${m.status ? `; SVN ${m.isvSvn} is ${m.status}` : ''}`, m.status ? { found: m.status } : {})
          : notChecked('dcap.tdx-module', 'the TCB info carries no TDX module identity'),
      );
    }
    let status = convergeTcbStatus(p.status, mod?.status);
    status = convergeTcbStatus(status, qe?.status);
    const advisoryIds = [...new Set([...p.advisoryIds, ...(mod?.advisoryIds ?? []), ...(qe?.advisoryIds ?? [])])].sort();
    tcb = {
      status,
      advisoryIds,
      platform: p,
      tdxModule: mod,
      qe,
      tcbInfo: { fmspc: toHex(info.fmspc), issueDate: info.issueDate.toISOString(), nextUpdate: info.nextUpdate.toISOString(), tcbEvaluationDataNumber: info.tcbEvaluationDataNumber, version: info.version, id: info.id },
    };
    const desc = `TCB level ${p.levelIndex} (${p.level.tcbDate.slice(0, 10)}) is ${p.status}${mod?.status ? `, TDX module ${mod.status}` : ''}${qe ? `, QE ${qe.status}` : ''} → ${status}${advisoryIds.length > 0 ? `; advisories ${advisoryIds.join(', ')}` : ''}`;
    if (status === 'Revoked') failWith(checks, 'dcap.tcb.level', 'DCAP_TCB_REVOKED', `the platform's TCB is revoked: ${desc}`, { found: status });
    checks.push(pass('dcap.tcb.level', desc, { found: status }));
  }

  return { quote, pckCertificate: leaf, pck, chain: chain.path, tcb, qe, collateralGiven: allDocs.length > 0, checks };
}
