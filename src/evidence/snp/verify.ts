import { verify as cryptoVerify } from 'node:crypto';
import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { toHex, isAllZero } from '../../bytes/hex.js';
import type { Certificate } from '../../pki/certificate.js';
import type { Crl } from '../../pki/crl.js';
import { verifyChain } from '../../pki/chain.js';
import { amdRoots, type ProductAnchor } from '../../pki/roots.js';
import { parseSnpReport, productFromCpuid, SNP_REPORT_SIZE, SNP_SIGNED_LENGTH, type SnpProduct, type SnpReport } from './report.js';
import { decodeTcbSet, formatTcb, tcbReservedBytes, type SnpTcbSet } from './tcb.js';
import { productFromSignerCn, readEndorsementKey, type EndorsementKeyInfo } from './vcek.js';

export interface SnpVerifyOptions {
  /** Time at which certificates must be valid (and CRLs current). */
  at: Date;
  /** The VCEK or VLEK, and any of its chain (ASK/ASVK, ARK) in any order. */
  certificates: readonly Certificate[];
  crls?: readonly Crl[];
  /**
   * Trust anchors. Defaults to the pinned AMD ARKs; only tests (with a generated AMD stand-in)
   * and callers who pin their own roots pass this.
   */
  roots?: readonly ProductAnchor[];
  /** Product line, for version 2 reports that carry no CPUID (checked against the chain). */
  product?: SnpProduct;
}

export interface SnpVerified {
  report: SnpReport;
  product: SnpProduct;
  signingKey: 'vcek' | 'vlek';
  endorsementKey: Certificate;
  endorsement: EndorsementKeyInfo;
  /** Leaf, ASK/ASVK, ARK. */
  chain: Certificate[];
  tcb: SnpTcbSet;
  checks: Check[];
}

const ECDSA_LE = 72;
const SIG_R = SNP_SIGNED_LENGTH;
const SIG_S = SNP_SIGNED_LENGTH + ECDSA_LE;

function failWith(checks: Check[], name: string, code: string, description: string, extra: Partial<Check> = {}): never {
  checks.push(fail(name, code, description, extra));
  throw verifyError(code, description, { checks });
}

/** r||s big-endian (IEEE P1363) from the report's little-endian 72-byte fields, or undefined if malformed. */
function p1363Signature(raw: Buffer): Buffer | undefined {
  const out = Buffer.alloc(96);
  for (const [off, dst] of [[SIG_R, 0], [SIG_S, 48]] as const) {
    for (let i = 48; i < ECDSA_LE; i++) if (raw[off + i] !== 0) return undefined;
    for (let i = 0; i < 48; i++) out[dst + 47 - i] = raw[off + i] as number;
  }
  return out;
}

function signatureVerifies(raw: Buffer, sig: Buffer | undefined, leaf: Certificate): boolean {
  if (!sig || leaf.publicKey.asymmetricKeyType !== 'ec') return false;
  return cryptoVerify('sha384', raw.subarray(0, SNP_SIGNED_LENGTH), { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
}

/**
 * Chooses the endorsement key among the supplied certificates (duplicates collapse by content):
 * with one candidate, that one; with several, the one whose key verifies the signature.
 */
function pickLeaf(raw: Buffer, sig: Buffer | undefined, certs: readonly Certificate[], checks: Check[]): Certificate {
  const leaves = [...new Map(certs.filter((c) => !c.isCa).map((c) => [c.sha256, c])).values()];
  if (leaves.length === 0) {
    checks.push(fail('snp.endorsement-key', 'SNP_NO_ENDORSEMENT_KEY', 'no VCEK or VLEK certificate was supplied'));
    throw inputError('SNP_NO_ENDORSEMENT_KEY', 'no VCEK or VLEK certificate was supplied (give --vcek FILE, a configfs-tsm auxblob, or --fetch)', { checks });
  }
  if (leaves.length === 1) return leaves[0] as Certificate;
  return leaves.find((c) => signatureVerifies(raw, sig, c)) ?? (leaves[0] as Certificate);
}

function diagnoseBadSignature(report: SnpReport | undefined, leaf: Certificate): string {
  if (!report) return '';
  const hw = leaf.extension('1.3.6.1.4.1.3704.1.4');
  if (hw && !isAllZero(report.chipId) && !report.chipId.subarray(0, hw.length).equals(hw)) {
    return ` (the ${leaf.subjectCn} belongs to chip ${toHex(hw).slice(0, 16)}…, the report claims chip ${toHex(report.chipId).slice(0, 16)}…)`;
  }
  return '';
}

/**
 * Verifies an SEV-SNP report end to end: the ECDSA P-384 signature by the VCEK or VLEK over
 * bytes [0, 0x2A0) first (so any altered byte fails as a signature error, before anything in
 * the report is believed), then the strict parse, the chain VCEK→ASK→ARK (or VLEK→ASVK→ARK)
 * to the pinned ARK of the report's product, revocation, and the endorsement key's AMD
 * extensions against the report (TCB, chip id, product).
 * Throws a CofferError with `details.checks` at the first failure.
 */
export function verifySnpReport(rawReport: Uint8Array, opts: SnpVerifyOptions): SnpVerified {
  const checks: Check[] = [];
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the verification time is not a valid date');
  if (rawReport.length !== SNP_REPORT_SIZE) {
    throw inputError('SNP_BAD_SIZE', `an SEV-SNP report is ${SNP_REPORT_SIZE} bytes, got ${rawReport.length}`);
  }
  // A private copy: the bytes parsed below are exactly the bytes whose signature was checked.
  const raw = Buffer.from(rawReport);
  const sig = p1363Signature(raw);
  const leaf = pickLeaf(raw, sig, opts.certificates, checks);
  if (leaf.publicKey.asymmetricKeyType !== 'ec' || leaf.publicKey.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    failWith(checks, 'snp.endorsement-key', 'SNP_BAD_ENDORSEMENT_KEY', `${leaf.subjectCn || 'the leaf certificate'} does not hold an ECDSA P-384 key`);
  }

  // 1. Signature, on the raw bytes, before trusting any field.
  let tentative: SnpReport | undefined;
  if (!signatureVerifies(raw, sig, leaf)) {
    try {
      tentative = parseSnpReport(raw);
    } catch {
      tentative = undefined;
    }
    failWith(checks, 'snp.signature', 'SNP_BAD_SIGNATURE', `the report's ECDSA P-384 signature does not verify with the supplied ${leaf.subjectCn || 'key'}${diagnoseBadSignature(tentative, leaf)}`);
  }
  checks.push(pass('snp.signature', `ECDSA P-384/SHA-384 signature over bytes 0x000-0x29F verifies with ${leaf.subjectCn}`));

  // 2. Strict parse (reserved fields, versions) of the now-authenticated bytes.
  let report: SnpReport;
  try {
    report = parseSnpReport(raw);
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
    checks.push(fail('snp.format', e.code, e.message));
    throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks } });
  }
  checks.push(pass('snp.format', `report version ${report.version} is well formed; every reserved field is zero`));

  if (report.keyInfo.signingKey === 'none') failWith(checks, 'snp.signing-key', 'SNP_UNSIGNED', 'the report says it is not signed (SIGNING_KEY = 7)');
  if (report.keyInfo.maskChipKey) {
    failWith(checks, 'snp.signing-key', 'SNP_UNSIGNED', 'the report sets MASK_CHIP_KEY, under which the firmware does not use the VCEK, yet it carries a signature');
  }
  const kind = report.keyInfo.signingKey;
  const expectedCn = kind === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK';
  if (leaf.subjectCn !== expectedCn) {
    failWith(checks, 'snp.signing-key', 'SNP_WRONG_KEY_TYPE', `the report says it is signed by a ${kind.toUpperCase()}, but the certificate is ${leaf.subjectCn}`, { expected: expectedCn, found: leaf.subjectCn });
  }
  checks.push(pass('snp.signing-key', `report is signed by a ${kind.toUpperCase()}`));

  // 3. Product: from CPUID (v3+), the signer's issuer, and the caller, all of which must agree.
  const issuerInfo = productFromSignerCn(leaf.issuerCn);
  if (!issuerInfo || issuerInfo.vlek !== (kind === 'vlek')) {
    failWith(checks, 'snp.product', 'SNP_WRONG_KEY_TYPE', `${leaf.subjectCn} is issued by "${leaf.issuerCn}", which is not an AMD ${kind === 'vlek' ? 'ASVK (SEV-VLEK-<product>)' : 'ASK (SEV-<product>)'}`);
  }
  const product = issuerInfo.product;
  const cpuidProduct = productFromCpuid(report.cpuid);
  if (report.cpuid && !cpuidProduct && !opts.product) {
    failWith(checks, 'snp.product', 'SNP_UNKNOWN_PRODUCT', `CPUID family 0x${report.cpuid.family.toString(16)} model 0x${report.cpuid.model.toString(16)} is not a known SEV-SNP product`);
  }
  for (const [source, claimed] of [['the report CPUID', cpuidProduct], ['the caller', opts.product]] as const) {
    if (claimed && claimed !== product) {
      failWith(checks, 'snp.product', 'SNP_WRONG_PRODUCT', `${source} says ${claimed} but ${leaf.subjectCn} is issued by ${leaf.issuerCn}`, { expected: claimed, found: product });
    }
  }
  const intermediates = opts.certificates.filter((c) => c.isCa && !c.isSelfIssued);
  if (!intermediates.some((c) => c.subject === leaf.issuer)) {
    const other = intermediates.find((c) => productFromSignerCn(c.subjectCn));
    if (other) {
      failWith(checks, 'snp.product', 'SNP_WRONG_PRODUCT', `${leaf.subjectCn} is issued by ${leaf.issuerCn}, but the supplied AMD signing key is ${other.subjectCn}`, { expected: leaf.issuerCn, found: other.subjectCn });
    }
  }
  const endorsement = readEndorsementKey(leaf, kind, product);
  if (endorsement.productName !== undefined && !endorsement.productName.startsWith(product)) {
    failWith(checks, 'snp.product', 'SNP_WRONG_PRODUCT', `${leaf.subjectCn} productName "${endorsement.productName}" is not a ${product} part`, { expected: product, found: endorsement.productName });
  }
  checks.push(pass('snp.product', `product ${product}${cpuidProduct ? ' (CPUID agrees)' : ''}`, { found: product }));

  // 4. Chain to the pinned root of that product.
  const anchors = (opts.roots ?? amdRoots()).filter((r) => r.product === product);
  if (anchors.length === 0) failWith(checks, 'pki.anchor', 'PKI_UNTRUSTED_ROOT', `no trusted AMD root for ${product}`);
  let chain;
  try {
    chain = verifyChain(leaf, intermediates, anchors, { at: opts.at, crls: opts.crls ?? [] });
  } catch (e) {
    if (e instanceof CofferError) {
      const chainChecks = (e.details?.checks as Check[] | undefined) ?? [];
      throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks: [...checks, ...chainChecks] } });
    }
    throw e;
  }
  checks.push(...chain.checks);
  if ((opts.crls ?? []).length === 0) {
    checks.push(notChecked('pki.revocation', 'no CRL was supplied (--crl FILE or --fetch): a revoked AMD signing key would not be noticed'));
  }
  if (chain.path.length !== 3) {
    failWith(checks, 'pki.chain', 'PKI_CHAIN_INCOMPLETE', `expected ${leaf.subjectCn} → AMD signing key → ARK, got a chain of ${chain.path.length}`);
  }

  // 5. The endorsement key's extensions against the (signed) report.
  const tcb = decodeTcbSet(report, product);
  const reported = tcb.reported;
  for (const [name, v] of [['reported', report.reportedTcb], ['current', report.currentTcb], ['committed', report.committedTcb], ['launch', report.launchTcb]] as const) {
    const bad = tcbReservedBytes(v, product);
    if (bad.length > 0) failWith(checks, 'snp.tcb.format', 'RESERVED_NOT_ZERO', `${name} TCB 0x${v.toString(16)} has non-zero reserved byte(s) ${bad.join(', ')}`);
  }
  const keyTcb = endorsement.tcb;
  const mismatched = (['fmc', 'bootloader', 'tee', 'snp', 'microcode'] as const).filter((k) => keyTcb[k] !== undefined && keyTcb[k] !== reported[k]);
  const keyTcbText = formatTcb({ raw: 0n, ...keyTcb });
  if (mismatched.length > 0) {
    failWith(checks, 'snp.tcb', 'SNP_TCB_MISMATCH', `${leaf.subjectCn} certifies TCB ${keyTcbText} but the report's REPORTED_TCB is ${formatTcb(reported)}`, { expected: keyTcbText, found: formatTcb(reported) });
  }
  checks.push(pass('snp.tcb', `REPORTED_TCB equals the TCB certified by the ${kind.toUpperCase()}`, { found: formatTcb(reported) }));

  if (kind === 'vcek') {
    const hw = endorsement.hwId;
    const width = product === 'Turin' ? 8 : 64;
    if (!hw || hw.length !== width) {
      failWith(checks, 'snp.chip-id', 'SNP_BAD_ENDORSEMENT_KEY', `VCEK hwID extension must be ${width} bytes for ${product}, found ${hw?.length ?? 'none'}`);
    }
    // MASK_CHIP_ID makes the firmware report an all-zero CHIP_ID. (MASK_CHIP_KEY is another
    // thing: the VCEK is not used at all, and such a report has failed the signature check.)
    if (isAllZero(report.chipId)) {
      checks.push(pass('snp.chip-id', 'CHIP_ID is masked by the host; the chip is identified by the VCEK that signed the report', { expected: toHex(hw) }));
    } else if (!report.chipId.subarray(0, width).equals(hw) || !isAllZero(report.chipId.subarray(width))) {
      failWith(checks, 'snp.chip-id', 'SNP_CHIP_ID_MISMATCH', `the VCEK is for chip ${toHex(hw)} but the report comes from chip ${toHex(report.chipId.subarray(0, width))}`, { expected: toHex(hw), found: toHex(report.chipId.subarray(0, width)) });
    } else {
      checks.push(pass('snp.chip-id', "VCEK hwID equals the report's CHIP_ID", { found: toHex(report.chipId) }));
    }
  } else {
    checks.push(pass('snp.chip-id', `VLEK signed: the chip is vouched for by ${endorsement.cspId ?? 'the cloud provider that holds the VLEK'}, not by a chip id`));
  }

  return {
    report,
    product,
    signingKey: kind,
    endorsementKey: leaf,
    endorsement,
    chain: chain.path,
    tcb,
    checks,
  };
}
